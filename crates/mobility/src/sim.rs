//! `mobility sim`: a headless run of the simulated city against the domain core in process,
//! written out as a report (JSON and CSV), the ground truth, and plots (SVG).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use mobility_core::TimestampMs;
use mobility_sim::{
    CityModel, Faults, FleetMix, LocalPlatform, Ops, OpsConfig, Platform, Policy, Report, Sim,
    SimConfig,
};

/// The city and its people: options shared by `mobility sim` and `mobility demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct CityArgs {
    /// City to simulate, as JSON (default: Barcelona; `mobility sim --print-city` prints it to
    /// start from).
    #[arg(long, value_name = "FILE")]
    pub city: Option<PathBuf>,
    /// Fleet mix as shares of scooter,ebike,car,van.
    #[arg(long, default_value = "0.60,0.30,0.07,0.03")]
    pub mix: String,
    /// How far riders walk to a scooter or e-bike, metres (twice that to a car or van).
    #[arg(long, default_value_t = 400.0)]
    pub walk_m: f64,
    /// Probability that a message is delivered twice (overrides --faults).
    #[arg(long)]
    pub duplicate: Option<f64>,
    /// Probability that a message is held back 1–15 s and overtaken (overrides --faults).
    #[arg(long)]
    pub reorder: Option<f64>,
    /// Offline periods per vehicle-hour (overrides --faults).
    #[arg(long)]
    pub offline_per_hour: Option<f64>,
}

impl CityArgs {
    /// The city: from `--city`, else Barcelona.
    pub fn city(&self) -> anyhow::Result<CityModel> {
        match &self.city {
            None => Ok(CityModel::barcelona()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                CityModel::from_json(&text)
                    .map_err(|e| anyhow::anyhow!("{} is not a usable city: {e}", path.display()))
            }
        }
    }

    /// Applies the options to a configuration whose faults hold the preset.
    pub fn apply(&self, cfg: &mut SimConfig) -> anyhow::Result<()> {
        let shares: Vec<f64> = self
            .mix
            .split(',')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .ok()
            .filter(|v: &Vec<f64>| {
                v.len() == 4
                    && v.iter().all(|x| x.is_finite() && *x >= 0.0)
                    && v.iter().sum::<f64>() > 0.0
            })
            .with_context(|| {
                format!(
                    "--mix must be four non-negative shares scooter,ebike,car,van, not {:?}",
                    self.mix
                )
            })?;
        cfg.mix = FleetMix {
            scooter: shares[0],
            ebike: shares[1],
            car: shares[2],
            van: shares[3],
        };
        if !(self.walk_m.is_finite() && self.walk_m > 0.0 && self.walk_m <= 2_500.0) {
            bail!("--walk-m must be in (0, 2500]");
        }
        cfg.walk_radius_m = self.walk_m;
        cfg.car_walk_radius_m = (self.walk_m * 2.0).min(5_000.0);
        let prob = |name: &str, v: Option<f64>, into: &mut f64| -> anyhow::Result<()> {
            if let Some(v) = v {
                if !(0.0..=1.0).contains(&v) {
                    bail!("--{name} must be a probability in [0, 1]");
                }
                *into = v;
            }
            Ok(())
        };
        prob("duplicate", self.duplicate, &mut cfg.faults.duplicate)?;
        prob("reorder", self.reorder, &mut cfg.faults.reorder)?;
        if let Some(v) = self.offline_per_hour {
            if !(v.is_finite() && (0.0..=3_600.0).contains(&v)) {
                bail!("--offline-per-hour must be in [0, 3600]");
            }
            cfg.faults.offline_per_hour = v;
        }
        Ok(())
    }
}

/// Options of `mobility sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Simulated hours.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Clock speed: `max` (as fast as possible) or a factor of real time (60 = an hour a minute).
    #[arg(long, default_value = "max")]
    pub speed: String,
    /// Seed: the same seed and options give the same report.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Fleet size.
    #[arg(long, default_value_t = 5_000)]
    pub vehicles: u32,
    /// First simulated day (local midnight), YYYY-MM-DD. 2026-06-01 is a Monday.
    #[arg(long, default_value = "2026-06-01")]
    pub start: String,
    /// Potential trips per vehicle per day (rider requests) on a dry weekday.
    #[arg(long, default_value_t = 6.0)]
    pub demand: f64,
    /// Connectivity faults: `none` or `realistic` (duplicates, reordering, offline periods).
    #[arg(long, value_parser = ["none", "realistic"], default_value = "none")]
    pub faults: String,
    /// Directory for report.json, hourly.csv, districts.csv, truth.json and the SVG plots.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print the default city as JSON (a starting point for --city) and exit.
    #[arg(long)]
    pub print_city: bool,
    /// Field operations: `off` (nobody swaps or moves anything), `reactive` (vans swap every
    /// battery below 20 %, nearest first) or `forecast` (the fleet intelligence: forecast-driven
    /// swaps and moves on solver-routed vans, incentives and dynamic prices).
    #[arg(long, value_parser = ["off", "reactive", "forecast"], default_value = "off")]
    pub ops: String,
    /// Days of demand history before the run the first forecast model learns from.
    #[arg(long, default_value_t = 28)]
    pub history_days: u32,
    /// Staff vans (default: one per 150 vehicles).
    #[arg(long)]
    pub vans: Option<u32>,
    /// Relocation incentives the city may give per day, hundredths of its currency (the
    /// platform's `incentive_daily_budget_cents`).
    #[arg(long, default_value_t = 300_000)]
    pub incentive_budget_cents: u32,
    /// Price with forecast returns counted as arriving supply (an experiment; see
    /// docs/benchmarks.md).
    #[arg(long)]
    pub price_with_returns: bool,
    #[command(flatten)]
    pub city: CityArgs,
}

/// Parses `YYYY-MM-DD` into the UTC instant of local midnight in a city `utc_offset_min` ahead.
pub fn parse_start(s: &str, utc_offset_min: i32) -> anyhow::Result<TimestampMs> {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        bail!("--start must be YYYY-MM-DD, not {s:?}");
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().context("--start year")?,
        m.parse().context("--start month")?,
        d.parse().context("--start day")?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        bail!("--start {s:?} is not a date between 1970 and 9999");
    }
    let days = mobility_sim::days_from_civil(y, m, d);
    Ok(TimestampMs(
        days * 86_400_000 - i64::from(utc_offset_min) * 60_000,
    ))
}

/// Parses `--speed`: `None` for as fast as possible.
pub fn parse_speed(s: &str) -> anyhow::Result<Option<f64>> {
    if s == "max" {
        return Ok(None);
    }
    let f: f64 = s
        .parse()
        .with_context(|| format!("--speed must be `max` or a positive number, not {s:?}"))?;
    if !(f.is_finite() && f > 0.0) {
        bail!("--speed must be `max` or a positive number, not {s:?}");
    }
    Ok(Some(f))
}

pub fn run(a: &SimArgs) -> anyhow::Result<()> {
    if a.print_city {
        println!("{}", serde_json::to_string_pretty(&CityModel::barcelona())?);
        return Ok(());
    }
    let city = a.city.city()?;
    let speed = parse_speed(&a.speed)?;
    if a.hours == 0 || a.hours > 24 * 366 {
        bail!("--hours must be 1 to 8784");
    }
    if !(a.demand.is_finite() && a.demand >= 0.0 && a.demand <= 1_000.0) {
        bail!("--demand must be between 0 and 1000");
    }
    let mut cfg = SimConfig::new(a.seed, parse_start(&a.start, city.utc_offset_min)?);
    cfg.vehicles = a.vehicles;
    cfg.demand_per_vehicle_day = a.demand;
    cfg.faults = if a.faults == "realistic" {
        Faults::realistic()
    } else {
        Faults::none()
    };
    a.city.apply(&mut cfg)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;

    let wall = Instant::now();
    let history = if a.ops == "forecast" {
        if !(2..=400).contains(&a.history_days) {
            bail!("--history-days must be in 2..=400");
        }
        // The platform's past: the same city, earlier days, another stream of riders.
        let days = i64::from(a.history_days);
        let mut h = cfg.clone();
        h.seed = cfg.seed ^ 0x4849_5354;
        h.start = TimestampMs(cfg.start.0 - days * 86_400_000);
        h.demand_only = true;
        h.tick_s = 60;
        let mut past = Sim::new(h, city.clone());
        let mut p = LocalPlatform::for_sim(&past);
        past.advance_to(cfg.start, &mut p);
        Some((past.demand_series(0), past.returns_series(0)))
    } else {
        None
    };
    let mut sim = Sim::new(cfg, city);
    if a.ops != "off" {
        let policy = if a.ops == "forecast" {
            Policy::Forecast
        } else {
            Policy::Reactive
        };
        let mut ops_cfg = OpsConfig::new(policy, a.vehicles);
        if let Some(v) = a.vans {
            if !(1..=10_000).contains(&v) {
                bail!("--vans must be in 1..=10000");
            }
            ops_cfg.vans = v;
        }
        ops_cfg.pricing.daily_budget_cents = i64::from(a.incentive_budget_cents);
        ops_cfg.use_returns = a.price_with_returns;
        let (requests, returns) = history.unzip();
        let ops = Ops::new(ops_cfg, &sim, requests, returns).map_err(|e| anyhow::anyhow!(e))?;
        sim.set_ops(ops);
    }
    let mut platform = LocalPlatform::for_sim(&sim);
    let start = sim.now();
    for msg in sim.deployment() {
        platform.deliver(&msg, start);
    }
    let bar = if a.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(u64::from(a.hours) * 60)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} sim min  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    // Advance a simulated minute at a time; at a finite speed, wait for the wall clock.
    for minute in 1..=u64::from(a.hours) * 60 {
        let minute_i = i64::try_from(minute).unwrap_or(i64::MAX);
        sim.advance_to(start.plus_ms(minute_i * 60_000), &mut platform);
        if let Some(speed) = speed {
            let due = Duration::from_secs_f64(minute as f64 * 60.0 / speed);
            if let Some(wait) = due.checked_sub(wall.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if minute % 10 == 0 {
            let t = sim.totals();
            bar.set_position(minute);
            bar.set_message(format!(
                "trips {} lost {:.1} %",
                t.served,
                if t.demand == 0 {
                    0.0
                } else {
                    t.lost as f64 * 100.0 / t.demand as f64
                }
            ));
        }
    }
    sim.flush(&mut platform);
    bar.finish_and_clear();
    let report = Report::of(&sim, a.hours, &platform.received);
    let elapsed = wall.elapsed();
    write_outputs(&a.out, &report, &sim)?;
    println!(
        "simulated {} h of {} with {} vehicles (seed {}) in {:.1} s",
        a.hours,
        sim.city().name,
        report.vehicles,
        report.seed,
        elapsed.as_secs_f64()
    );
    println!(
        "  demand {}  served {}  lost {} ({:.1} %)  utilisation {:.1} %  revenue {:.0} {}",
        report.demand,
        report.trips_served,
        report.lost,
        report.lost_demand_pct,
        report.utilisation_pct,
        report.revenue,
        sim.city().currency
    );
    println!(
        "  avg walk {:.0} m  avg trip {:.2} km  relocations {}  battery swaps {}  flat at end {}",
        report.avg_walk_m,
        report.avg_trip_km,
        report.relocations,
        report.battery_swaps,
        report.flat_at_end
    );
    if let Some(o) = &report.ops {
        println!(
            "  ops {:?} with {} vans: staff {:.0} km ({:.1} km per 1,000 trips), swaps {} ({:.1} per 1,000 trips), moves {}, incentives {} ({:.0} {}), mean price ×{:.2}, models {} trained / {} promoted",
            o.policy,
            o.vans,
            o.staff_km,
            o.staff_km_per_1000_trips,
            o.stats.swaps,
            o.swaps_per_1000_trips,
            o.stats.moves,
            o.stats.incentives_accepted,
            o.stats.incentives_cents as f64 / 100.0,
            sim.city().currency,
            if o.stats.mean_multiplier > 0.0 {
                o.stats.mean_multiplier
            } else {
                1.0
            },
            o.stats.models_trained,
            o.stats.models_promoted
        );
    }
    println!("  report written to {}", a.out.display());
    Ok(())
}

fn write_outputs(dir: &std::path::Path, report: &Report, sim: &Sim) -> anyhow::Result<()> {
    let write = |name: &str, body: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))
    };
    write(
        "report.json",
        serde_json::to_string_pretty(report)?.as_bytes(),
    )?;
    write("hourly.csv", report.hourly_csv().as_bytes())?;
    write("districts.csv", report.districts_csv().as_bytes())?;
    write(
        "truth.json",
        serde_json::to_string_pretty(sim.truth())?.as_bytes(),
    )?;
    let plot = |r: Result<String, String>| r.map_err(|e| anyhow::anyhow!("plot: {e}"));
    write(
        "demand_vs_served.svg",
        plot(report.demand_svg())?.as_bytes(),
    )?;
    write(
        "lost_by_zone.svg",
        plot(report.lost_by_zone_svg())?.as_bytes(),
    )?;
    write("battery.svg", plot(report.battery_svg())?.as_bytes())?;
    Ok(())
}
