//! Demand as a regular time series per zone: what the forecaster learns from and is judged on.
//!
//! The platform builds it from its own history (trips started plus failed searches, so demand
//! that found no vehicle counts too); `mobility forecast eval --csv` reads it from a file.

use serde::Serialize;

/// Why a demand file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeriesError {
    /// The header is not `timestamp,zone,count[,covariate...]`.
    #[error(
        "the header must start with timestamp,zone,count (then optional numeric covariates), not {0:?}"
    )]
    Header(String),
    /// A row could not be read.
    #[error("line {line}: {why}")]
    Row {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        why: String,
    },
    /// The timestamps do not form a regular grid.
    #[error("{0}")]
    Grid(String),
    /// Too little data to do anything with.
    #[error("{0}")]
    TooShort(String),
}

/// Counts per zone on a regular grid of slots, with optional covariates.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Start of the first slot, UTC milliseconds.
    pub start_ms: i64,
    /// Slot length, milliseconds.
    pub step_ms: i64,
    /// Number of slots.
    pub slots: usize,
    /// Local time offset for calendar features (minutes east of UTC).
    pub utc_offset_min: i32,
    /// Zone ids (H3 cells as hex on the platform, any string in a file).
    pub zones: Vec<String>,
    /// Counts, `[zone][slot]`.
    pub counts: Vec<Vec<f64>>,
    /// Names of the covariates.
    pub covariate_names: Vec<String>,
    /// Covariates, `[covariate][zone][slot]`; NaN where unknown.
    pub covariates: Vec<Vec<Vec<f64>>>,
}

impl Series {
    /// An empty series (all zero counts) on this grid.
    #[must_use]
    pub fn zeros(start_ms: i64, step_ms: i64, slots: usize, zones: Vec<String>) -> Self {
        let counts = vec![vec![0.0; slots]; zones.len()];
        Self {
            start_ms,
            step_ms,
            slots,
            utc_offset_min: 0,
            zones,
            counts,
            covariate_names: Vec::new(),
            covariates: Vec::new(),
        }
    }

    /// Adds a covariate known for every zone and slot (NaN where unknown).
    pub fn add_covariate(&mut self, name: &str, values: Vec<Vec<f64>>) {
        self.covariate_names.push(name.to_owned());
        self.covariates.push(values);
    }

    /// Appends a later series that starts where this one ends (same step and covariates);
    /// zones new in `later` get zero counts and unknown covariates before it.
    ///
    /// # Errors
    /// Series that do not line up.
    pub fn append(&mut self, later: &Self) -> Result<(), SeriesError> {
        if later.step_ms != self.step_ms
            || later.start_ms != self.slot_start(self.slots)
            || later.covariate_names != self.covariate_names
        {
            return Err(SeriesError::Grid(
                "the later series must start where this one ends, with the same step and covariates"
                    .into(),
            ));
        }
        let old = self.slots;
        let total = old + later.slots;
        let mut index: std::collections::HashMap<String, usize> = self
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.clone(), i))
            .collect();
        for z in &later.zones {
            if !index.contains_key(z) {
                index.insert(z.clone(), self.zones.len());
                self.zones.push(z.clone());
                self.counts.push(vec![0.0; old]);
                for c in &mut self.covariates {
                    c.push(vec![f64::NAN; old]);
                }
            }
        }
        for z in &mut self.counts {
            z.resize(total, 0.0);
        }
        for c in &mut self.covariates {
            for z in c.iter_mut() {
                z.resize(total, f64::NAN);
            }
        }
        for (lz, name) in later.zones.iter().enumerate() {
            let z = index[name];
            self.counts[z][old..].copy_from_slice(&later.counts[lz]);
            for (c, cov) in later.covariates.iter().enumerate() {
                self.covariates[c][z][old..].copy_from_slice(&cov[lz]);
            }
        }
        // Zones absent from `later` keep zero counts there, and covariates shared by every zone
        // (weather) are copied from any zone of `later`.
        if !later.zones.is_empty() {
            for (c, cov) in later.covariates.iter().enumerate() {
                let shared = cov.windows(2).all(|w| {
                    w[0].iter()
                        .zip(&w[1])
                        .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()))
                });
                if shared {
                    for z in 0..self.zones.len() {
                        if !later.zones.contains(&self.zones[z]) {
                            self.covariates[c][z][old..].copy_from_slice(&cov[0]);
                        }
                    }
                }
            }
        }
        self.slots = total;
        Ok(())
    }

    /// Slots per day on this grid (at least 1).
    #[must_use]
    pub fn slots_per_day(&self) -> usize {
        usize::try_from(86_400_000 / self.step_ms.max(1))
            .unwrap_or(1)
            .max(1)
    }

    /// Start of slot `s`, UTC ms.
    #[must_use]
    pub fn slot_start(&self, s: usize) -> i64 {
        self.start_ms + i64::try_from(s).unwrap_or(i64::MAX / 2) * self.step_ms
    }

    /// Total count of a slot over all zones.
    #[must_use]
    pub fn city_total(&self, s: usize) -> f64 {
        self.counts.iter().map(|z| z[s]).sum()
    }

    /// Reads `timestamp,zone,count[,covariate...]` (RFC 3339 UTC timestamps on a regular grid;
    /// any zone id; non-negative integer counts; extra columns numeric, empty for unknown).
    /// A (timestamp, zone) pair without a row counts 0 with unknown covariates.
    ///
    /// # Errors
    /// A clear [`SeriesError`] naming the line for anything malformed.
    pub fn from_csv(reader: impl std::io::Read) -> Result<Self, SeriesError> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let header = rdr
            .headers()
            .map_err(|e| SeriesError::Header(e.to_string()))?
            .clone();
        let names: Vec<String> = header.iter().map(str::to_owned).collect();
        if names.len() < 3
            || !names[0].eq_ignore_ascii_case("timestamp")
            || !names[1].eq_ignore_ascii_case("zone")
            || !names[2].eq_ignore_ascii_case("count")
        {
            return Err(SeriesError::Header(names.join(",")));
        }
        let covariate_names: Vec<String> = names[3..].to_vec();
        struct Row {
            t: i64,
            zone: usize,
            count: f64,
            cov: Vec<f64>,
            line: u64,
        }
        let mut zone_ids: std::collections::BTreeMap<String, usize> = Default::default();
        let mut zones: Vec<String> = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| SeriesError::Row {
                line: e.position().map_or(0, csv::Position::line),
                why: e.to_string(),
            })?;
            let line = rec.position().map_or(0, csv::Position::line);
            let bad = |why: String| SeriesError::Row { line, why };
            if rec.len() != names.len() {
                return Err(bad(format!(
                    "{} fields, the header has {}",
                    rec.len(),
                    names.len()
                )));
            }
            let ts = time::OffsetDateTime::parse(
                &rec[0],
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| bad(format!("timestamp {:?} is not RFC 3339: {e}", &rec[0])))?;
            if ts.offset() != time::UtcOffset::UTC {
                return Err(bad(format!("timestamp {:?} must be UTC (Z)", &rec[0])));
            }
            let t = i64::try_from(ts.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| bad("timestamp out of range".into()))?;
            if rec[1].is_empty() {
                return Err(bad("empty zone".into()));
            }
            let count: u32 = rec[2]
                .parse()
                .map_err(|_| bad(format!("count {:?} is not a non-negative integer", &rec[2])))?;
            let mut cov = Vec::with_capacity(covariate_names.len());
            for (k, field) in rec.iter().enumerate().skip(3) {
                if field.is_empty() {
                    cov.push(f64::NAN);
                } else {
                    let v: f64 = field
                        .parse()
                        .ok()
                        .filter(|v: &f64| v.is_finite())
                        .ok_or_else(|| {
                            bad(format!("{} value {field:?} is not a number", names[k]))
                        })?;
                    cov.push(v);
                }
            }
            let next = zones.len();
            let zone = *zone_ids.entry(rec[1].to_owned()).or_insert_with(|| {
                zones.push(rec[1].to_owned());
                next
            });
            rows.push(Row {
                t,
                zone,
                count: f64::from(count),
                cov,
                line,
            });
        }
        if rows.is_empty() {
            return Err(SeriesError::TooShort("the file has no rows".into()));
        }
        let mut times: Vec<i64> = rows.iter().map(|r| r.t).collect();
        times.sort_unstable();
        times.dedup();
        if times.len() < 2 {
            return Err(SeriesError::TooShort(
                "the file has a single timestamp: no time series".into(),
            ));
        }
        let step = times.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(1);
        let start = times[0];
        if let Some(off) = times.iter().find(|t| (*t - start) % step != 0) {
            return Err(SeriesError::Grid(format!(
                "timestamps are not on a regular grid: the smallest gap is {} s but {} is not a multiple of it from the first",
                step / 1000,
                off
            )));
        }
        let slots = usize::try_from((times[times.len() - 1] - start) / step + 1)
            .map_err(|_| SeriesError::Grid("too many slots".into()))?;
        if slots > 5_000_000 / zones.len().max(1) {
            return Err(SeriesError::Grid(format!(
                "{slots} slots × {} zones is too large a grid (step {} s)",
                zones.len(),
                step / 1000
            )));
        }
        let mut series = Self::zeros(start, step, slots, zones);
        series.covariate_names.clone_from(&covariate_names);
        series.covariates =
            vec![vec![vec![f64::NAN; slots]; series.zones.len()]; covariate_names.len()];
        let mut seen = vec![vec![false; slots]; series.zones.len()];
        for r in rows {
            let s = usize::try_from((r.t - start) / step).unwrap_or(0);
            if std::mem::replace(&mut seen[r.zone][s], true) {
                return Err(SeriesError::Row {
                    line: r.line,
                    why: format!(
                        "a second row for zone {:?} at this timestamp",
                        series.zones[r.zone]
                    ),
                });
            }
            series.counts[r.zone][s] = r.count;
            for (c, v) in r.cov.into_iter().enumerate() {
                series.covariates[c][r.zone][s] = v;
            }
        }
        Ok(series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_becomes_a_grid_and_missing_rows_are_zero() {
        let text = "timestamp,zone,count,temp\n\
            2026-01-01T00:00:00Z,a,3,10.5\n\
            2026-01-01T00:15:00Z,a,1,\n\
            2026-01-01T00:45:00Z,b,7,9\n";
        let s = Series::from_csv(text.as_bytes()).expect("valid");
        assert_eq!(s.step_ms, 900_000);
        assert_eq!(s.slots, 4);
        assert_eq!(s.zones, vec!["a", "b"]);
        assert_eq!(s.counts[0], vec![3.0, 1.0, 0.0, 0.0]);
        assert_eq!(s.counts[1], vec![0.0, 0.0, 0.0, 7.0]);
        assert_eq!(s.covariate_names, vec!["temp"]);
        assert!((s.covariates[0][0][0] - 10.5).abs() < 1e-9);
        assert!(s.covariates[0][0][1].is_nan());
        assert_eq!(s.slots_per_day(), 96);
    }

    #[test]
    fn malformed_files_are_refused_with_the_line() {
        let cases = [
            ("time,zone,count\n2026-01-01T00:00:00Z,a,1\n", "header"),
            (
                "timestamp,zone,count\nyesterday,a,1\n2026-01-01T00:00:00Z,a,1\n",
                "line 2",
            ),
            (
                "timestamp,zone,count\n2026-01-01T00:00:00Z,a,-1\n2026-01-01T01:00:00Z,a,1\n",
                "line 2",
            ),
            (
                "timestamp,zone,count\n2026-01-01T00:00:00+01:00,a,1\n",
                "UTC",
            ),
            (
                "timestamp,zone,count\n2026-01-01T00:00:00Z,a,1\n",
                "single timestamp",
            ),
            (
                "timestamp,zone,count\n2026-01-01T00:00:00Z,a,1\n2026-01-01T00:00:00Z,a,2\n2026-01-01T01:00:00Z,a,1\n",
                "second row",
            ),
            (
                "timestamp,zone,count\n2026-01-01T00:00:00Z,a,1\n2026-01-01T00:10:00Z,a,2\n2026-01-01T00:25:00Z,a,1\n",
                "regular grid",
            ),
            (
                "timestamp,zone,count,x\n2026-01-01T00:00:00Z,a,1,abc\n",
                "not a number",
            ),
        ];
        for (text, want) in cases {
            let err = Series::from_csv(text.as_bytes())
                .expect_err(text)
                .to_string();
            assert!(err.contains(want), "{text:?} → {err}");
        }
    }
}

/// A crowd leaving an event: where, when it ends, over how long it leaves and how many of it
/// look for a vehicle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crowd {
    /// The venue.
    pub venue: crate::routing::Point,
    /// When the event ends, UTC ms.
    pub ends_at_ms: i64,
    /// Over how long the crowd leaves, ms.
    pub egress_ms: i64,
    /// Riders expected among it.
    pub riders: f64,
}

/// Metres from a venue within which a zone's centre counts its crowd.
pub const CROWD_RADIUS_M: f64 = 500.0;

/// The `event_riders` covariate: riders expected per slot from crowds leaving events, spread
/// evenly over each crowd's egress, in every zone whose centre is within [`CROWD_RADIUS_M`] of
/// the venue. `centres` are the zones' centres, in series order. Pure.
#[must_use]
pub fn event_riders(
    centres: &[Option<crate::routing::Point>],
    crowds: &[Crowd],
    start_ms: i64,
    step_ms: i64,
    slots: usize,
) -> Vec<Vec<f64>> {
    let mut out = vec![vec![0.0; slots]; centres.len()];
    for e in crowds {
        let egress_ms = e.egress_ms.max(1);
        let first = (e.ends_at_ms - start_ms).div_euclid(step_ms);
        let last = (e.ends_at_ms + egress_ms - 1 - start_ms).div_euclid(step_ms);
        #[allow(clippy::cast_precision_loss)]
        let per_slot = e.riders * step_ms as f64 / egress_ms as f64;
        for (z, c) in centres.iter().enumerate() {
            if c.is_some_and(|c| crate::routing::distance_m(c, e.venue) <= CROWD_RADIUS_M) {
                for k in first..=last {
                    if let Ok(k) = usize::try_from(k)
                        && k < slots
                    {
                        out[z][k] += per_slot;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod crowd_tests {
    use super::*;
    use crate::routing::Point;

    #[test]
    fn a_crowd_is_spread_over_its_egress_in_the_zones_near_the_venue() {
        let venue = Point {
            lat: 41.38,
            lon: 2.12,
        };
        let near = Some(Point {
            lat: 41.381,
            lon: 2.12,
        }); // 111 m
        let far = Some(Point {
            lat: 41.40,
            lon: 2.12,
        }); // 2.2 km
        let crowd = Crowd {
            venue,
            ends_at_ms: 1_800_000,
            egress_ms: 1_800_000,
            riders: 300.0,
        };
        let e = event_riders(&[near, far, None], &[crowd], 0, 900_000, 6);
        assert_eq!(e[0], vec![0.0, 0.0, 150.0, 150.0, 0.0, 0.0]);
        assert!(e[1].iter().chain(&e[2]).all(|v| *v == 0.0));
        // A crowd before the series or after it adds nothing and does not panic.
        let early = Crowd {
            ends_at_ms: -10_000_000,
            ..crowd
        };
        let late = Crowd {
            ends_at_ms: 100_000_000,
            ..crowd
        };
        assert!(
            event_riders(&[near], &[early, late], 0, 900_000, 6)[0]
                .iter()
                .all(|v| *v == 0.0)
        );
    }
}
