//! Demand forecasting per zone: gradient-boosted trees over calendar features, recent lags and
//! covariates (weather, events), one global model for every zone and horizon.
//!
//! The model learns the *expected* count of a slot (squared loss): pricing and rebalancing
//! need expectations, and sums of expectations are the city-wide forecast. The *point*
//! forecast judged by WAPE and MAE is the median of a Poisson with that mean: absolute-error
//! metrics are minimised by the median, and on sparse zone counts the median and the mean
//! differ a lot (a zone expecting 0.4 rentals in 15 minutes most likely sees none).
//!
//! A forecast issued at the start of slot `t` knows counts of slots before `t` only; horizon
//! `h` (1-based) is the slot `t + h - 1`, which ends `h` slots after the issue. Covariates are
//! taken as known ahead for the target slot, like a weather forecast or an event calendar.

use forust_ml::{GradientBooster, Matrix, objective::ObjectiveType};
use serde::{Deserialize, Serialize};

use crate::series::Series;

/// Names of the built-in features, in column order. Each covariate follows twice: its value at
/// the target slot, then that value less its mean over the same slot on the seven days before
/// (the days the seasonal features come from), so the model can tell a cool day after a hot
/// week from a cool day after a cool one.
pub const FEATURES: [&str; 12] = [
    "horizon_slots",
    "slot_of_day",
    "day_of_week",
    "lag_1d",
    "lag_7d",
    "mean_same_slot_7d",
    "mean_same_daytype",
    "last_hour",
    "last_hour_usual",
    "city_level",
    "zone_mean_7d",
    "city_level_day",
];

/// Training settings.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ForecastConfig {
    /// How many slots ahead to forecast (8 × 15 min = 2 h).
    pub horizons: usize,
    /// Training rows at most (a deterministic sample beyond that).
    pub max_rows: usize,
    /// Boosting rounds.
    pub iterations: usize,
    /// Learning rate.
    pub learning_rate: f32,
    /// Tree depth.
    pub max_depth: usize,
    /// Seed (sampling).
    pub seed: u64,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            horizons: 8,
            max_rows: 250_000,
            iterations: 150,
            learning_rate: 0.1,
            max_depth: 6,
            seed: 1,
        }
    }
}

/// Why training or loading failed.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// Not enough history.
    #[error("{0}")]
    TooShort(String),
    /// The model library refused.
    #[error("model: {0}")]
    Model(String),
    /// The series does not match the model (other covariates or slot length).
    #[error("{0}")]
    Mismatch(String),
}

/// Precomputed sums over a series, so features cost O(1) each.
struct Ctx<'a> {
    s: &'a Series,
    spd: usize,
    sph: usize,
    prefix: Vec<Vec<f64>>,
    city_prefix: Vec<f64>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[allow(clippy::cast_precision_loss)]
fn f(x: usize) -> f64 {
    x as f64
}

impl<'a> Ctx<'a> {
    fn new(s: &'a Series) -> Self {
        let spd = s.slots_per_day();
        let sph = usize::try_from(3_600_000 / s.step_ms.max(1))
            .unwrap_or(1)
            .max(1);
        let prefix: Vec<Vec<f64>> = s
            .counts
            .iter()
            .map(|z| {
                let mut p = Vec::with_capacity(z.len() + 1);
                p.push(0.0);
                let mut acc = 0.0;
                for c in z {
                    acc += c;
                    p.push(acc);
                }
                p
            })
            .collect();
        let mut city_prefix = vec![0.0; s.slots + 1];
        for p in &prefix {
            for (i, v) in p.iter().enumerate() {
                city_prefix[i] += v;
            }
        }
        Self {
            s,
            spd,
            sph,
            prefix,
            city_prefix,
        }
    }

    /// Sum of a zone's counts over slots `[a, b)` (clamped at 0).
    fn sum(&self, z: usize, a: isize, b: isize) -> f64 {
        let n = self.s.slots as isize;
        let (a, b) = (a.clamp(0, n) as usize, b.clamp(0, n) as usize);
        if b <= a {
            return 0.0;
        }
        self.prefix[z][b] - self.prefix[z][a]
    }

    fn city_sum(&self, a: isize, b: isize) -> f64 {
        let n = self.s.slots as isize;
        let (a, b) = (a.clamp(0, n) as usize, b.clamp(0, n) as usize);
        if b <= a {
            return 0.0;
        }
        self.city_prefix[b] - self.city_prefix[a]
    }

    /// Local (day index, slot of day, day of week 0 = Sunday) of slot `s`.
    fn calendar(&self, s: usize) -> (i64, usize, i64) {
        let local = self.s.slot_start(s) + i64::from(self.s.utc_offset_min) * 60_000;
        let day = local.div_euclid(86_400_000);
        let sod =
            usize::try_from(local.rem_euclid(86_400_000) / self.s.step_ms.max(1)).unwrap_or(0);
        (day, sod, (day + 4).rem_euclid(7))
    }

    fn weekend(&self, s: usize) -> bool {
        let (_, _, dow) = self.calendar(s);
        dow == 0 || dow == 6
    }

    /// Mean of `value(k)` for k in 1..=7 days back where the window ends before `t`.
    fn mean_days_back(&self, t: usize, target: usize, len: usize, z: Option<usize>) -> f64 {
        let mut sum = 0.0;
        let mut n = 0usize;
        for k in 1..=7 {
            let back = k * self.spd;
            if target < back || target - back + len > t {
                continue;
            }
            let a = (target - back) as isize;
            sum += match z {
                Some(z) => self.sum(z, a, a + len as isize),
                None => self.city_sum(a, a + len as isize),
            };
            n += 1;
        }
        if n == 0 { f64::NAN } else { sum / f(n) }
    }

    /// The city-wide "today versus usual" ratios at issue slot `t`: over the last hour, and
    /// over the day so far (at least three hours).
    fn city_level(&self, t: usize) -> [f64; 2] {
        let ratio = |len: usize| {
            if t < len || len == 0 {
                return f64::NAN;
            }
            let last = self.city_sum((t - len) as isize, t as isize);
            let usual = self.mean_days_back(t, t - len, len, None);
            if usual.is_finite() && usual > 0.0 {
                (last + 1.0) / (usual + 1.0)
            } else {
                f64::NAN
            }
        };
        let since_midnight = self.calendar(t).1.max(3 * self.sph);
        [ratio(self.sph), ratio(since_midnight)]
    }

    /// Writes the feature row for zone `z`, issue slot `t`, horizon `h` into `out`.
    fn row(&self, z: usize, t: usize, h: usize, city_level: [f64; 2], out: &mut [f64]) {
        let target = t + h - 1;
        let counts = &self.s.counts[z];
        let (_, sod, dow) = self.calendar(target);
        out[0] = f(h);
        out[1] = f(sod);
        #[allow(clippy::cast_precision_loss)]
        {
            out[2] = dow as f64;
        }
        out[3] = if target >= self.spd && target - self.spd < t {
            counts[target - self.spd]
        } else {
            f64::NAN
        };
        out[4] = if target >= 7 * self.spd {
            counts[target - 7 * self.spd]
        } else {
            f64::NAN
        };
        out[5] = self.mean_days_back(t, target, 1, Some(z));
        // Same kind of day (weekday or weekend), up to four of them within two weeks.
        let wk = self.weekend(target);
        let (mut sum, mut n) = (0.0, 0usize);
        for k in 1..=14 {
            let back = k * self.spd;
            if target < back || n == 4 {
                break;
            }
            let s = target - back;
            if s < t && self.weekend(s) == wk {
                sum += counts[s];
                n += 1;
            }
        }
        out[6] = if n == 0 { f64::NAN } else { sum / f(n) };
        let sph = self.sph as isize;
        out[7] = self.sum(z, t as isize - sph, t as isize);
        out[8] = if t >= self.sph {
            self.mean_days_back(t, t - self.sph, self.sph, Some(z))
        } else {
            f64::NAN
        };
        out[9] = city_level[0];
        out[11] = city_level[1];
        let week = (7 * self.spd).min(t);
        out[10] = if week == 0 {
            f64::NAN
        } else {
            self.sum(z, (t - week) as isize, t as isize) / f(week)
        };
        let n = self.s.covariates.len();
        for (c, cov) in self.s.covariates.iter().enumerate() {
            out[FEATURES.len() + c] = cov[z][target];
            let (mut sum, mut k_n) = (0.0, 0usize);
            for k in 1..=7 {
                if let Some(v) = target
                    .checked_sub(k * self.spd)
                    .map(|s| cov[z][s])
                    .filter(|v| v.is_finite())
                {
                    sum += v;
                    k_n += 1;
                }
            }
            // As a difference from the target's value: "how much warmer than last week".
            out[FEATURES.len() + n + c] = if k_n == 0 {
                f64::NAN
            } else {
                cov[z][target] - sum / f(k_n)
            };
        }
    }

    fn cols(&self) -> usize {
        FEATURES.len() + 2 * self.s.covariates.len()
    }
}

/// The seasonal baseline a feature row implies: the model learns the ratio of the count to it,
/// so weather, temperature and events act as factors on each zone's own level (as they do on
/// demand) rather than as amounts added to every zone alike.
fn baseline(row: &[f64]) -> f64 {
    let (same_slot, daytype, zone_mean) = (row[5], row[6], row[10]);
    let b = match (daytype.is_finite(), same_slot.is_finite()) {
        (true, true) => 0.6 * daytype + 0.4 * same_slot,
        (true, false) => daytype,
        (false, true) => same_slot,
        (false, false) if zone_mean.is_finite() => zone_mean,
        _ => 0.0,
    };
    b.max(MIN_BASELINE)
}

/// Floor of the baseline, so zones that were quiet can still be forecast to wake up.
const MIN_BASELINE: f64 = 0.05;

/// A trained demand model.
#[derive(Serialize, Deserialize)]
pub struct Forecaster {
    booster: GradientBooster,
    /// Horizons it forecasts, slots.
    pub horizons: usize,
    /// Slot length it was trained on, ms.
    pub step_ms: i64,
    /// Covariates it expects, in order.
    pub covariates: Vec<String>,
    /// Training rows used.
    pub trained_rows: usize,
}

impl std::fmt::Debug for Forecaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forecaster")
            .field("horizons", &self.horizons)
            .field("step_ms", &self.step_ms)
            .field("covariates", &self.covariates)
            .field("trained_rows", &self.trained_rows)
            .finish_non_exhaustive()
    }
}

/// Column-major matrix builder.
struct Rows {
    cols: usize,
    data: Vec<Vec<f64>>,
    n: usize,
}

impl Rows {
    fn new(cols: usize) -> Self {
        Self {
            cols,
            data: vec![Vec::new(); cols],
            n: 0,
        }
    }
    fn push(&mut self, row: &[f64]) {
        for (c, v) in row.iter().enumerate() {
            self.data[c].push(*v);
        }
        self.n += 1;
    }
    fn flat(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.n * self.cols);
        for c in &self.data {
            out.extend_from_slice(c);
        }
        out
    }
}

impl Forecaster {
    /// Trains on slots `[0, train_end)` of the series.
    ///
    /// # Errors
    /// Too little history (under two days), or the model library failing.
    pub fn train(
        series: &Series,
        train_end: usize,
        cfg: &ForecastConfig,
    ) -> Result<Self, ForecastError> {
        let ctx = Ctx::new(series);
        let train_end = train_end.min(series.slots);
        if train_end < 2 * ctx.spd {
            return Err(ForecastError::TooShort(format!(
                "training needs at least two days of history, this has {} slots of {} min",
                train_end,
                series.step_ms / 60_000
            )));
        }
        let horizons = cfg.horizons.max(1);
        // Start once a day of lags exists.
        let warm = ctx.spd;
        let active: Vec<usize> = (0..series.zones.len())
            .filter(|&z| ctx.sum(z, 0, train_end as isize) > 0.0)
            .collect();
        let candidates = active.len() * (train_end - warm);
        let keep = if candidates > cfg.max_rows {
            (cfg.max_rows as f64 / candidates as f64).clamp(0.0, 1.0)
        } else {
            1.0
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let threshold = (keep * u64::MAX as f64) as u64;
        let levels: Vec<[f64; 2]> = (0..=series.slots).map(|t| ctx.city_level(t)).collect();
        let mut rows = Rows::new(ctx.cols());
        let mut y = Vec::new();
        let mut w = Vec::new();
        let mut row = vec![0.0; ctx.cols()];
        for &z in &active {
            for target in warm..train_end {
                let key = splitmix(cfg.seed ^ ((z as u64) << 32) ^ target as u64);
                if keep < 1.0 && key > threshold {
                    continue;
                }
                let h = 1 + (splitmix(key) % horizons as u64) as usize;
                let t = (target + 1).saturating_sub(h).max(1);
                let h = target + 1 - t;
                ctx.row(z, t, h, levels[t], &mut row);
                rows.push(&row);
                // Ratio to the baseline, weighted by it: least squares on counts / b with
                // weight b is Σ (y - r·b)² / b, a Poisson-like fit of the ratio r.
                let b = baseline(&row);
                y.push(series.counts[z][target] / b);
                w.push(b);
            }
        }
        if y.is_empty() {
            return Err(ForecastError::TooShort(
                "no demand at all in the training span".into(),
            ));
        }
        let flat = rows.flat();
        let m = Matrix::new(&flat, rows.n, rows.cols);
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::SquaredLoss)
            .set_iterations(cfg.iterations)
            .set_learning_rate(cfg.learning_rate)
            .set_max_depth(cfg.max_depth)
            .set_min_leaf_weight(20.0)
            .set_seed(cfg.seed)
            .set_parallel(false);
        booster
            .fit(&m, &y, &w, None)
            .map_err(|e| ForecastError::Model(e.to_string()))?;
        Ok(Self {
            booster,
            horizons,
            step_ms: series.step_ms,
            covariates: series.covariate_names.clone(),
            trained_rows: y.len(),
        })
    }

    fn check(&self, series: &Series) -> Result<(), ForecastError> {
        if series.step_ms != self.step_ms || series.covariate_names != self.covariates {
            return Err(ForecastError::Mismatch(format!(
                "the model was trained on {}-minute slots with covariates {:?}; this series has {}-minute slots with {:?}",
                self.step_ms / 60_000,
                self.covariates,
                series.step_ms / 60_000,
                series.covariate_names
            )));
        }
        Ok(())
    }

    /// Expected counts for every zone and horizon, issued at the start of slot `t`:
    /// `[zone][h - 1]` (targets past the series' end are still forecast: covariates there are
    /// NaN unless provided).
    ///
    /// # Errors
    /// A series that does not match the model.
    pub fn forecast(&self, series: &Series, t: usize) -> Result<Vec<Vec<f64>>, ForecastError> {
        self.check(series)?;
        let out = self.forecast_many(series, &[t], |_| true);
        Ok(out.into_iter().next().unwrap_or_default())
    }

    /// Expected counts for several issue slots at once: `[issue][zone][h - 1]`. Zones for which
    /// `zone_ok` is false get zeros without asking the model.
    fn forecast_many(
        &self,
        series: &Series,
        issues: &[usize],
        zone_ok: impl Fn(usize) -> bool,
    ) -> Vec<Vec<Vec<f64>>> {
        let ctx = Ctx::new(series);
        let cols = ctx.cols();
        let mut rows = Rows::new(cols);
        let mut row = vec![0.0; cols];
        // Covariates past the end of the series are unknown.
        let padded;
        let extra = issues
            .iter()
            .map(|&t| t + self.horizons)
            .max()
            .unwrap_or(0)
            .saturating_sub(series.slots);
        let (ctx, series) = if extra > 0 {
            let mut s = series.clone();
            s.slots += extra;
            for z in &mut s.counts {
                z.extend(std::iter::repeat_n(0.0, extra));
            }
            for c in &mut s.covariates {
                for z in c {
                    z.extend(std::iter::repeat_n(f64::NAN, extra));
                }
            }
            padded = s;
            (Ctx::new(&padded), &padded)
        } else {
            (ctx, series)
        };
        let zones = series.zones.len();
        for &t in issues {
            let level = ctx.city_level(t);
            for z in 0..zones {
                if !zone_ok(z) {
                    continue;
                }
                for h in 1..=self.horizons {
                    ctx.row(z, t, h, level, &mut row);
                    rows.push(&row);
                }
            }
        }
        let flat = rows.flat();
        let preds = if rows.n == 0 {
            Vec::new()
        } else {
            let ratio = self
                .booster
                .predict(&Matrix::new(&flat, rows.n, rows.cols), false);
            let mut row = vec![0.0; cols];
            ratio
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    for (c, v) in row.iter_mut().enumerate() {
                        *v = flat[c * rows.n + i];
                    }
                    r * baseline(&row)
                })
                .collect()
        };
        let mut it = preds.into_iter();
        let mut out = Vec::with_capacity(issues.len());
        for _ in issues {
            let mut per_zone = Vec::with_capacity(zones);
            for z in 0..zones {
                if zone_ok(z) {
                    per_zone.push(
                        (0..self.horizons)
                            .map(|_| it.next().unwrap_or(0.0).max(0.0))
                            .collect(),
                    );
                } else {
                    per_zone.push(vec![0.0; self.horizons]);
                }
            }
            out.push(per_zone);
        }
        out
    }

    /// The model as JSON (for the registry).
    ///
    /// # Errors
    /// Serialisation failing.
    pub fn to_json(&self) -> Result<String, ForecastError> {
        serde_json::to_string(self).map_err(|e| ForecastError::Model(e.to_string()))
    }

    /// A model back from [`Self::to_json`].
    ///
    /// # Errors
    /// Text that is not a model.
    pub fn from_json(text: &str) -> Result<Self, ForecastError> {
        serde_json::from_str(text).map_err(|e| ForecastError::Model(e.to_string()))
    }
}

/// The median of a Poisson distribution with mean `mu`: the point forecast that minimises
/// absolute error when counts are Poisson around the expectation.
#[must_use]
pub fn poisson_median(mu: f64) -> f64 {
    if mu.is_nan() || mu <= 0.0 {
        return 0.0;
    }
    if mu > 50.0 {
        return (mu + 1.0 / 3.0 - 0.02 / mu).floor();
    }
    let (mut k, mut p) = (0.0, (-mu).exp());
    let mut cdf = p;
    while cdf < 0.5 {
        k += 1.0;
        p *= mu / k;
        cdf += p;
    }
    k
}

/// Scores at one horizon.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HorizonScore {
    /// Horizon, slots.
    pub h: usize,
    /// Horizon, minutes.
    pub minutes: i64,
    /// Actual total over the scored (zone, slot) pairs.
    pub actual: f64,
    /// Model WAPE (point forecast), percent.
    pub model_wape: f64,
    /// Model MAE, counts per zone-slot.
    pub model_mae: f64,
    /// Seasonal-naive WAPE, percent.
    pub naive_wape: f64,
    /// Seasonal-naive MAE.
    pub naive_mae: f64,
}

/// An evaluation on held-out slots.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    /// First held-out slot.
    pub test_start: usize,
    /// Held-out slots.
    pub test_slots: usize,
    /// Seasonal-naive period, slots (a week when the series has three, else a day).
    pub season_slots: usize,
    /// Forecasts issued (one per hour of held-out time).
    pub issues: usize,
    /// Per horizon, pooled over zones.
    pub horizons: Vec<HorizonScore>,
    /// Horizon (slots) that ends one hour after the issue.
    pub hour_h: usize,
    /// Zones with demand in the held-out span.
    pub zones_scored: usize,
    /// Of those with at least one count an hour on average, how many have a model WAPE at
    /// least 30 % below seasonal-naive's at one hour, and how many there are.
    pub busy_zones_beating_naive_by_30pct: (usize, usize),
    /// City-wide hourly WAPE of the model (sum of expected counts of the hour's slots over all
    /// zones, issued at the hour's start), percent.
    pub city_hourly_wape: f64,
    /// The same for seasonal-naive.
    pub city_hourly_naive_wape: f64,
    /// City-wide bias of the model: (forecast − actual) / actual over the scored hours, percent.
    pub city_bias: f64,
}

impl Evaluation {
    /// Score at the one-hour horizon.
    #[must_use]
    pub fn at_hour(&self) -> Option<&HorizonScore> {
        self.horizons.iter().find(|s| s.h == self.hour_h)
    }

    /// Whether the issue's bars hold: per-zone WAPE at one hour at least 30 % below
    /// seasonal-naive's, and city-wide hourly WAPE at most 15 %.
    #[must_use]
    pub fn meets_bars(&self) -> bool {
        self.at_hour()
            .is_some_and(|s| s.model_wape <= 0.7 * s.naive_wape)
            && self.city_hourly_wape <= 15.0
    }
}

fn pct(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        100.0 * num / den
    } else {
        f64::NAN
    }
}

/// Evaluates a model on slots `[test_start, series.slots)`: forecasts issued every hour, every
/// horizon scored against the truth, next to seasonal-naive (the count one season earlier).
#[must_use]
pub fn evaluate(model: &Forecaster, series: &Series, test_start: usize) -> Evaluation {
    let ctx = Ctx::new(series);
    let (spd, sph) = (ctx.spd, ctx.sph);
    let season = if series.slots >= 21 * spd {
        7 * spd
    } else {
        spd
    };
    let horizons = model.horizons;
    let zones = series.zones.len();
    let active: Vec<bool> = (0..zones)
        .map(|z| ctx.sum(z, 0, series.slots as isize) > 0.0)
        .collect();
    // Issue at every hour boundary (local) in the held-out span whose whole horizon is known.
    let issues: Vec<usize> = (test_start.max(season)..series.slots)
        .filter(|&t| ctx.calendar(t).1.is_multiple_of(sph) && t + horizons <= series.slots)
        .collect();
    let preds = model.forecast_many(series, &issues, |z| active[z]);
    let mut err_m = vec![0.0; horizons];
    let mut err_n = vec![0.0; horizons];
    let mut act = vec![0.0; horizons];
    let mut cnt = vec![0usize; horizons];
    let hour_h = sph.min(horizons).max(1);
    let mut zone_err = vec![(0.0, 0.0, 0.0); zones];
    let (mut city_err, mut city_naive_err, mut city_act, mut city_signed) = (0.0, 0.0, 0.0, 0.0);
    for (i, &t) in issues.iter().enumerate() {
        let (mut hour_pred, mut hour_naive, mut hour_act) = (0.0, 0.0, 0.0);
        for z in 0..zones {
            for h in 1..=horizons {
                let s = t + h - 1;
                let y = series.counts[z][s];
                let mu = preds[i][z][h - 1];
                let naive = series.counts[z][s - season];
                let pm = poisson_median(mu);
                err_m[h - 1] += (y - pm).abs();
                err_n[h - 1] += (y - naive).abs();
                act[h - 1] += y;
                cnt[h - 1] += 1;
                if h == hour_h {
                    let e = &mut zone_err[z];
                    e.0 += (y - pm).abs();
                    e.1 += (y - naive).abs();
                    e.2 += y;
                }
                if h <= sph {
                    hour_pred += mu;
                    hour_naive += naive;
                    hour_act += y;
                }
            }
        }
        city_err += (hour_act - hour_pred).abs();
        city_signed += hour_pred - hour_act;
        city_naive_err += (hour_act - hour_naive).abs();
        city_act += hour_act;
    }
    let scores = (1..=horizons)
        .map(|h| {
            let n = f(cnt[h - 1].max(1));
            HorizonScore {
                h,
                minutes: i64::try_from(h).unwrap_or(0) * series.step_ms / 60_000,
                actual: act[h - 1],
                model_wape: pct(err_m[h - 1], act[h - 1]),
                model_mae: err_m[h - 1] / n,
                naive_wape: pct(err_n[h - 1], act[h - 1]),
                naive_mae: err_n[h - 1] / n,
            }
        })
        .collect();
    let per_hour_issue = f(issues.len().max(1));
    let busy: Vec<&(f64, f64, f64)> = zone_err
        .iter()
        .filter(|e| e.2 / per_hour_issue * f(sph) >= 1.0)
        .collect();
    let beating = busy.iter().filter(|e| e.0 <= 0.7 * e.1).count();
    Evaluation {
        test_start,
        test_slots: series.slots - test_start.min(series.slots),
        season_slots: season,
        issues: issues.len(),
        horizons: scores,
        hour_h,
        zones_scored: zone_err.iter().filter(|e| e.2 > 0.0).count(),
        busy_zones_beating_naive_by_30pct: (beating, busy.len()),
        city_hourly_wape: pct(city_err, city_act),
        city_hourly_naive_wape: pct(city_naive_err, city_act),
        city_bias: pct(city_signed, city_act),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_median_is_the_median() {
        assert!((poisson_median(0.0)).abs() < 1e-12);
        assert!((poisson_median(0.5)).abs() < 1e-12); // P(0) = 0.61
        assert!((poisson_median(0.7) - 1.0).abs() < 1e-12); // P(0) = 0.497
        assert!((poisson_median(3.0) - 3.0).abs() < 1e-12);
        assert!((poisson_median(100.0) - 100.0).abs() < 1e-12);
    }
}
