//! `mobility forecast eval`: trains the demand model and scores it on held-out time against
//! seasonal-naive, on simulated demand or on an external CSV.

use std::path::PathBuf;

use anyhow::{Context, bail};
use mobility_intel::{Evaluation, ForecastConfig, Forecaster, Series, evaluate};
use mobility_sim::{LocalPlatform, Sim, SimConfig};

use crate::sim::{CityArgs, parse_start};

/// Options of `mobility forecast eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Demand file: `timestamp,zone,count[,covariate...]` (RFC 3339 UTC timestamps on a
    /// regular step, any zone id, integer counts, extra numeric columns used as covariates).
    /// Without it, the simulated city makes the demand.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Share of the time span held out for scoring (the last part).
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Local time offset of the CSV's zones, minutes east of UTC (calendar features use local
    /// hours and days).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub utc_offset_min: i32,
    /// Simulated days of demand (without --csv).
    #[arg(long, default_value_t = 35)]
    pub days: u32,
    /// Seed of the simulated city.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Fleet size of the simulated city (demand scales with it).
    #[arg(long, default_value_t = 5_000)]
    pub vehicles: u32,
    /// First simulated day, YYYY-MM-DD.
    #[arg(long, default_value = "2026-05-04")]
    pub start: String,
    /// Boosting rounds.
    #[arg(long, default_value_t = 150)]
    pub iterations: usize,
    /// Write the evaluation as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Exit with status 3 when the bars are not met (per-zone WAPE at 1 h at least 30 % below
    /// seasonal-naive, city-wide hourly WAPE at most 15 %).
    #[arg(long)]
    pub require_bars: bool,
    #[command(flatten)]
    pub city: CityArgs,
}

/// Simulated demand history: `days` days of rider requests in the city.
pub fn simulated_demand(
    city: &CityArgs,
    seed: u64,
    vehicles: u32,
    start: &str,
    days: u32,
) -> anyhow::Result<Series> {
    let model = city.city()?;
    let mut cfg = SimConfig::new(seed, parse_start(start, model.utc_offset_min)?);
    city.apply(&mut cfg)?;
    cfg.vehicles = vehicles;
    cfg.demand_only = true;
    cfg.tick_s = 60;
    let mut sim = Sim::new(cfg, model);
    let mut platform = LocalPlatform::for_sim(&sim);
    let end = sim.now().plus_ms(i64::from(days) * 86_400_000);
    sim.advance_to(end, &mut platform);
    Ok(sim.demand_series(0))
}

/// Runs the command.
pub fn eval(a: &EvalArgs) -> anyhow::Result<()> {
    if !(a.holdout > 0.0 && a.holdout < 0.9) {
        bail!("--holdout must be in (0, 0.9)");
    }
    let (series, source) = match &a.csv {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut s = Series::from_csv(std::io::BufReader::new(file))
                .with_context(|| format!("{} is not a usable demand file", path.display()))?;
            s.utc_offset_min = a.utc_offset_min;
            (s, path.display().to_string())
        }
        None => {
            if !(2..=400).contains(&a.days) {
                bail!("--days must be in 2..=400");
            }
            let s = simulated_demand(&a.city, a.seed, a.vehicles, &a.start, a.days)?;
            (
                s,
                format!(
                    "simulated city, {} vehicles, seed {}, {} days from {}",
                    a.vehicles, a.seed, a.days, a.start
                ),
            )
        }
    };
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let test_start = series.slots - ((series.slots as f64 * a.holdout).round() as usize).max(1);
    let cfg = ForecastConfig {
        iterations: a.iterations.clamp(1, 5_000),
        ..ForecastConfig::default()
    };
    let started = std::time::Instant::now();
    let model = Forecaster::train(&series, test_start, &cfg)?;
    let trained_in = started.elapsed();
    let ev = evaluate(&model, &series, test_start);
    print!("{}", render(&series, &source, &model, &ev, trained_in));
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&ev)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if a.require_bars && !ev.meets_bars() {
        eprintln!("error: the forecast bars are not met");
        std::process::exit(3);
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn render(
    series: &Series,
    source: &str,
    model: &Forecaster,
    ev: &Evaluation,
    trained_in: std::time::Duration,
) -> String {
    use std::fmt::Write;
    let step_min = series.step_ms / 60_000;
    let days = |slots: usize| slots as f64 * series.step_ms as f64 / 86_400_000.0;
    let mut out = String::new();
    let _ = writeln!(out, "demand forecast evaluation — {source}");
    let _ = writeln!(
        out,
        "{} zones, {} slots of {step_min} min ({:.1} days); trained on the first {:.1} days ({} rows, {:.1} s), scored on the last {:.1} days ({} forecasts issued hourly)",
        series.zones.len(),
        series.slots,
        days(series.slots),
        days(ev.test_start),
        model.trained_rows,
        trained_in.as_secs_f64(),
        days(ev.test_slots),
        ev.issues,
    );
    let _ = writeln!(
        out,
        "covariates: {}; seasonal-naive: the same slot {} earlier",
        if series.covariate_names.is_empty() {
            "none".to_owned()
        } else {
            series.covariate_names.join(", ")
        },
        if ev.season_slots * 7 == series.slots_per_day() * 49 {
            "7 days"
        } else {
            "1 day"
        }
    );
    let _ = writeln!(
        out,
        "\n{:>8}  {:>10}  {:>9}  {:>10}  {:>9}  {:>9}",
        "horizon", "model WAPE", "model MAE", "naive WAPE", "naive MAE", "WAPE cut"
    );
    for s in &ev.horizons {
        let _ = writeln!(
            out,
            "{:>5} min  {:>9.1}%  {:>9.3}  {:>9.1}%  {:>9.3}  {:>8.1}%",
            s.minutes,
            s.model_wape,
            s.model_mae,
            s.naive_wape,
            s.naive_mae,
            100.0 * (1.0 - s.model_wape / s.naive_wape)
        );
    }
    let _ = writeln!(
        out,
        "\ncity-wide hourly WAPE: model {:.1}% (bias {:+.1}%), seasonal-naive {:.1}%",
        ev.city_hourly_wape, ev.city_bias, ev.city_hourly_naive_wape
    );
    if let Some(h) = ev.at_hour() {
        let (beat, busy) = ev.busy_zones_beating_naive_by_30pct;
        let _ = writeln!(
            out,
            "per-zone WAPE at 1 h: model {:.1}%, seasonal-naive {:.1}% ({:.1}% lower); busy zones (≥ 1 an hour) at least 30% lower: {beat} of {busy}",
            h.model_wape,
            h.naive_wape,
            100.0 * (1.0 - h.model_wape / h.naive_wape)
        );
    }
    let _ = writeln!(
        out,
        "bars (per-zone WAPE at 1 h ≥ 30% below seasonal-naive; city-wide hourly WAPE ≤ 15%): {}",
        if ev.meets_bars() { "met" } else { "NOT met" }
    );
    out
}
