//! Fleet intelligence in the running platform (ADR 0007): what the simulator measures, done on
//! the live fleet.
//!
//! - **Demand.** Riders' searches are the platform's measure of demand (one that found no
//!   vehicle is demand the fleet lost). Every minute the finished minutes of the search log go
//!   into the store as counts per H3 zone (resolution 8, [`DEMAND_RESOLUTION`]) and 15-minute
//!   slot; counts add up, so several API processes may report the same slot.
//! - **Forecast.** At every new slot each city's requests are forecast per zone for the next
//!   two hours ([`HORIZON_SLOTS`]). With a trained model in the city's registry it forecasts;
//!   until there is one (a new city has no history), the mean of the same slot over the past
//!   days that exist stands in, and with less than a day the last hour's rate of searches (from
//!   the live search log, so a new city is priced from its first minutes). The source is
//!   part of every answer. A model is trained at 03:00 UTC each day, or as soon as
//!   [`TRAIN_MIN_DAYS`] days of history exist; the registry keeps it only if it beats the
//!   current one on the last two days (`mobility_intel::Registry`), and saves it under
//!   `DATA_DIR/models/<city>/`.
//! - **Prices.** Every 5 minutes each zone gets a multiplier from forecast demand against
//!   rentable supply (`mobility_intel::pricing::price_zone`: bounded, smoothed, with its
//!   reason), and zones short of vehicles offer a credit for ending trips there, zones with
//!   spare ones a discount for starting there. The board is cached for quotes and bookings.
//! - **Field plan.** Every 15 minutes: battery swaps where riders will need them, moves from
//!   surplus to deficit zones, collections of vehicles out of service
//!   (`mobility_intel::tasks`), routed over the city's vans (`mobility_intel::routing`).
//!
//! Calendar features and incentive days use UTC: cities carry an IANA zone name, and no time
//! zone database is linked. A city's slot of day is then shifted by its offset, which the model
//! learns the same way.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Arc,
};

use h3o::{CellIndex, LatLng};
use mobility_core::{CityId, LatLon, TimestampMs, VehicleId, VehicleState, VehicleType};
use mobility_intel::{
    ForecastConfig, Forecaster, Registry, Series,
    pricing::{PricingConfig, ZonePrice, price_zone},
    routing,
    series::{Crowd, event_riders},
    tasks,
};
use mobility_store::{DemandSlot, Store, StoreError};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use mobility_live::fleet::{DEMAND_RESOLUTION, Fleet};

/// Length of a demand slot, ms.
pub const SLOT_MS: i64 = 15 * 60_000;
/// Slots forecast ahead (2 h).
pub const HORIZON_SLOTS: usize = 8;
/// History the forecast reads, days.
pub const HISTORY_DAYS: i64 = 35;
/// Days of history before the first model is trained (a week of lags and two days to judge).
pub const TRAIN_MIN_DAYS: i64 = 9;
/// How often zones are priced, ms.
pub const PRICE_EVERY_MS: i64 = 5 * 60_000;
/// How often the field plan is made, ms.
pub const PLAN_EVERY_MS: i64 = 15 * 60_000;
/// Vehicles per van when the number of vans is not configured.
pub const VEHICLES_PER_VAN: usize = 150;
/// Jobs handed to the router at most (the most valuable first).
pub const PLAN_JOBS_MAX: usize = 600;
const DAY_MS: i64 = 86_400_000;

/// How the intelligence runs.
#[derive(Debug, Clone)]
pub struct IntelSettings {
    /// Price bounds, smoothing and incentives.
    pub pricing: PricingConfig,
    /// Vans per city (0: one per [`VEHICLES_PER_VAN`] vehicles).
    pub vans: u32,
    /// Where each city's model registry is saved (`None`: in memory only).
    pub models_dir: Option<PathBuf>,
    /// Solver generations per plan.
    pub generations: usize,
}

impl Default for IntelSettings {
    fn default() -> Self {
        Self {
            pricing: PricingConfig::default(),
            vans: 0,
            models_dir: None,
            generations: 60,
        }
    }
}

/// A city's demand forecast.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastView {
    /// When it was made.
    pub issued_at_ms: i64,
    /// Start of the first slot it forecasts.
    pub first_slot_ms: i64,
    /// Slot length, ms.
    pub slot_ms: i64,
    /// `model` (a trained model), `seasonal_mean` (the same slot on past days) or
    /// `recent_rate` (the last hour).
    pub source: &'static str,
    /// The model's version, when a model made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<u32>,
    /// The covariates it knew (weather where a feed gives it).
    pub covariates: Vec<String>,
    /// Days of history it had.
    pub history_days: f64,
    /// Expected requests per zone and slot.
    pub zones: BTreeMap<String, Vec<f64>>,
    /// Where the returns forecast comes from (the same choices, its own model).
    pub returns_source: &'static str,
    /// Expected returns (trips ending) per zone and slot.
    pub returns: BTreeMap<String, Vec<f64>>,
}

impl ForecastView {
    /// Expected requests in `zone` over the whole horizon.
    #[must_use]
    pub fn total(&self, zone: &str) -> f64 {
        self.zones.get(zone).map_or(0.0, |v| v.iter().sum())
    }

    /// Expected returns in `zone` over the whole horizon.
    #[must_use]
    pub fn returns_total(&self, zone: &str) -> f64 {
        self.returns.get(zone).map_or(0.0, |v| v.iter().sum())
    }
}

/// One zone's price and incentives.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneEntry {
    /// The H3 cell.
    pub zone: String,
    /// Price, incentives and why.
    #[serde(flatten)]
    pub price: ZonePrice,
}

/// A city's prices, cached for quotes.
#[derive(Debug, Clone, Serialize)]
pub struct PriceBoard {
    /// When they were computed.
    pub computed_at_ms: i64,
    /// The forecast they follow (its source).
    pub forecast_source: &'static str,
    /// Price bounds.
    pub floor: f64,
    /// Price bounds.
    pub cap: f64,
    /// Zones, by cell.
    pub zones: Vec<ZoneEntry>,
    #[serde(skip)]
    by_cell: HashMap<CellIndex, usize>,
}

impl PriceBoard {
    /// The zone at `at`, if it is priced.
    #[must_use]
    pub fn at(&self, at: LatLon) -> Option<&ZoneEntry> {
        let cell = cell_of(at)?;
        self.by_cell.get(&cell).map(|i| &self.zones[*i])
    }
}

/// A stop on a van's route.
#[derive(Debug, Clone, Serialize)]
pub struct StopView {
    /// `swap`, `pickup`, `dropoff`, `collect`, `reload` or `depot`.
    pub kind: &'static str,
    /// Where.
    pub lat: f64,
    /// Where.
    pub lon: f64,
    /// The vehicle, for vehicle tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<VehicleId>,
    /// Seconds after planning the van is due there.
    pub arrival_s: f64,
}

/// A van's route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    /// The van.
    pub van: String,
    /// Stops in order.
    pub stops: Vec<StopView>,
    /// Road distance, m.
    pub distance_m: f64,
    /// Duration, s.
    pub duration_s: f64,
}

/// A city's field plan.
#[derive(Debug, Clone, Serialize)]
pub struct FieldPlan {
    /// When it was made.
    pub planned_at_ms: i64,
    /// The depot (lat, lon) vans start from, reload at and return to.
    pub depot: [f64; 2],
    /// Vans planned for.
    pub vans: usize,
    /// Tasks chosen, by kind.
    pub tasks: BTreeMap<&'static str, usize>,
    /// Tasks no van could fit this period.
    pub unassigned: usize,
    /// Routes, one per van with work.
    pub routes: Vec<RouteView>,
}

#[derive(Debug, Default)]
struct CityIntel {
    forecast: RwLock<Option<Arc<ForecastView>>>,
    board: RwLock<Option<Arc<PriceBoard>>>,
    plan: RwLock<Option<Arc<FieldPlan>>>,
    registry: Arc<Mutex<Registry>>,
    returns_registry: Arc<Mutex<Registry>>,
    /// Search-log minutes before this one are in the store.
    flushed_minute: Mutex<i64>,
    last_forecast_slot: Mutex<i64>,
    last_price_ms: Mutex<i64>,
    last_plan_ms: Mutex<i64>,
    last_train_day: Mutex<i64>,
}

/// Fleet intelligence for every city.
#[derive(Debug)]
pub struct Intel {
    store: Arc<dyn Store>,
    fleet: Arc<Fleet>,
    settings: IntelSettings,
    cities: RwLock<HashMap<CityId, Arc<CityIntel>>>,
    /// When this process started counting searches.
    started: TimestampMs,
}

/// The H3 zone of a position.
#[must_use]
pub fn cell_of(at: LatLon) -> Option<CellIndex> {
    LatLng::new(at.lat(), at.lon())
        .ok()
        .map(|ll| ll.to_cell(DEMAND_RESOLUTION))
}

fn micromobility(t: VehicleType) -> bool {
    matches!(t, VehicleType::Scooter | VehicleType::Ebike)
}

fn point(p: LatLon) -> routing::Point {
    routing::Point {
        lat: p.lat(),
        lon: p.lon(),
    }
}

/// Builds the series the forecast reads: `count` of `rows` (requests or returns) from
/// `start_ms` up to `now_slot`, then [`HORIZON_SLOTS`] empty slots ahead.
#[must_use]
pub fn series_of(
    rows: &[DemandSlot],
    start_ms: i64,
    now_slot: i64,
    count: impl Fn(&DemandSlot) -> u32,
) -> Series {
    let mut zones: Vec<String> = rows.iter().map(|r| r.zone.clone()).collect();
    zones.sort_unstable();
    zones.dedup();
    let past = usize::try_from((now_slot - start_ms).max(0) / SLOT_MS).unwrap_or(0);
    let mut s = Series::zeros(start_ms, SLOT_MS, past + HORIZON_SLOTS, zones);
    for r in rows {
        let (Ok(z), Ok(k)) = (
            s.zones.binary_search(&r.zone),
            usize::try_from((r.slot.0 - start_ms) / SLOT_MS),
        ) else {
            continue;
        };
        if k < past {
            s.counts[z][k] += f64::from(count(r));
        }
    }
    s
}

/// Rain (0/1) and temperature per slot of `series` from hourly weather; NaN where unknown.
/// Pure.
#[must_use]
pub fn weather_covariates(
    hours: &[mobility_store::WeatherHour],
    series: &Series,
) -> (Vec<f64>, Vec<f64>) {
    let by_hour: HashMap<i64, &mobility_store::WeatherHour> = hours
        .iter()
        .map(|h| (h.hour.0.div_euclid(3_600_000), h))
        .collect();
    (0..series.slots)
        .map(|k| {
            let hour = series.slot_start(k).div_euclid(3_600_000);
            by_hour.get(&hour).map_or((f64::NAN, f64::NAN), |h| {
                (
                    h.rain.map_or(f64::NAN, |r| f64::from(u8::from(r))),
                    h.temp_c.unwrap_or(f64::NAN),
                )
            })
        })
        .unzip()
}

/// The stand-in forecast without a model: the mean of the same slot over up to seven past
/// days, or with less than a day of history the last hour's rate. Pure.
#[must_use]
pub fn fallback(series: &Series) -> (&'static str, Vec<Vec<f64>>) {
    let past = series.slots.saturating_sub(HORIZON_SLOTS);
    let spd = series.slots_per_day().max(1);
    let days = past / spd;
    let out = series
        .counts
        .iter()
        .map(|c| {
            (0..HORIZON_SLOTS)
                .map(|h| {
                    let t = past + h;
                    if days == 0 {
                        let from = past.saturating_sub(4);
                        #[allow(clippy::cast_precision_loss)]
                        let n = (past - from).max(1) as f64;
                        c[from..past].iter().sum::<f64>() / n
                    } else {
                        let back: Vec<f64> = (1..=days.min(7))
                            .filter_map(|d| t.checked_sub(d * spd).map(|i| c[i]))
                            .collect();
                        #[allow(clippy::cast_precision_loss)]
                        let n = back.len().max(1) as f64;
                        back.iter().sum::<f64>() / n
                    }
                })
                .collect()
        })
        .collect();
    (
        if days == 0 {
            "recent_rate"
        } else {
            "seasonal_mean"
        },
        out,
    )
}

/// Counts per 15-minute slot from the last hour's counts per cell (searches or returns),
/// observed over `observed_min` minutes. Pure.
#[must_use]
pub fn recent_rate(cells: &[(CellIndex, u32)], observed_min: f64) -> BTreeMap<String, Vec<f64>> {
    cells
        .iter()
        .map(|(cell, n)| {
            let per_slot = f64::from(*n) * 15.0 / observed_min.max(1.0);
            (cell.to_string(), vec![per_slot; HORIZON_SLOTS])
        })
        .collect()
}

/// Trains a model on `series` (all but its future slots, judged on the last two days) and
/// submits it to the registry, which keeps it only if it wins; saves the registry.
fn train_into(
    reg: &mut Registry,
    series: &Series,
    now: TimestampMs,
    dir: Option<&std::path::Path>,
    city: &str,
    what: &str,
) {
    let past = series.slots - HORIZON_SLOTS;
    let mut hist = series.clone();
    hist.slots = past;
    for z in &mut hist.counts {
        z.truncate(past);
    }
    let test_start = past.saturating_sub(2 * hist.slots_per_day());
    let cfg = ForecastConfig {
        horizons: HORIZON_SLOTS,
        ..ForecastConfig::default()
    };
    match Forecaster::train(&hist, test_start, &cfg) {
        Ok(model) => {
            let card = reg.submit(model, &hist, test_start, now.0);
            tracing::info!(city, what, version = card.version, promoted = card.promoted, reason = %card.reason, "demand model trained");
            if let Some(dir) = dir
                && let Err(e) = reg.save(dir)
            {
                tracing::warn!(city, what, error = %e, "cannot save the demand models");
            }
        }
        Err(e) => tracing::warn!(city, what, error = %e, "cannot train a demand model"),
    }
}

/// The forecast per zone: the registry's model when there is one that fits, else the stand-in
/// (with less than a day of history, the stored last hour or the live one, whichever saw
/// more: after a restart the live log is empty, in a city's first quarter hour the store is).
fn forecast_with(
    reg: &Registry,
    series: &Series,
    live: &[(CellIndex, u32)],
    observed_min: f64,
) -> (&'static str, Option<u32>, BTreeMap<String, Vec<f64>>) {
    let t = series.slots - HORIZON_SLOTS;
    let modelled = reg.current().and_then(|(card, m)| {
        (m.covariates == series.covariate_names
            && m.step_ms == SLOT_MS
            && m.horizons == HORIZON_SLOTS)
            .then(|| m.forecast(series, t).ok().map(|f| (card.version, f)))
            .flatten()
    });
    if let Some((v, f)) = modelled {
        return (
            "model",
            Some(v),
            series.zones.iter().cloned().zip(f).collect(),
        );
    }
    match fallback(series) {
        ("recent_rate", stored) => {
            let mut zones = recent_rate(live, observed_min);
            for (z, f) in series.zones.iter().zip(stored) {
                let e = zones.entry(z.clone()).or_insert_with(|| f.clone());
                if f.first() > e.first() {
                    *e = f;
                }
            }
            ("recent_rate", None, zones)
        }
        (source, f) => (source, None, series.zones.iter().cloned().zip(f).collect()),
    }
}

impl Intel {
    /// Intelligence over the store's demand history and the live fleet. Cities' saved model
    /// registries are loaded as cities are first seen.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        fleet: Arc<Fleet>,
        settings: IntelSettings,
        now: TimestampMs,
    ) -> Self {
        Self {
            store,
            fleet,
            settings,
            cities: RwLock::new(HashMap::new()),
            started: now,
        }
    }

    /// The pricing rules.
    #[must_use]
    pub fn pricing(&self) -> &PricingConfig {
        &self.settings.pricing
    }

    fn city(&self, id: &CityId) -> Arc<CityIntel> {
        if let Some(c) = self.cities.read().get(id) {
            return c.clone();
        }
        let load = |sub: &str| {
            let Some(dir) = &self.settings.models_dir else {
                return Registry::new();
            };
            let dir = dir.join(id.as_str()).join(sub);
            Registry::load(&dir).unwrap_or_else(|e| {
                tracing::warn!(city = %id, dir = %dir.display(), error = %e, "cannot read the saved demand models; starting without them");
                Registry::new()
            })
        };
        let c = Arc::new(CityIntel {
            registry: Arc::new(Mutex::new(load(""))),
            returns_registry: Arc::new(Mutex::new(load("returns"))),
            ..CityIntel::default()
        });
        self.cities
            .write()
            .entry(id.clone())
            .or_insert_with(|| c)
            .clone()
    }

    /// A city's latest forecast.
    #[must_use]
    pub fn forecast(&self, city: &CityId) -> Option<Arc<ForecastView>> {
        self.cities.read().get(city)?.forecast.read().clone()
    }

    /// A city's latest prices.
    #[must_use]
    pub fn board(&self, city: &CityId) -> Option<Arc<PriceBoard>> {
        self.cities.read().get(city)?.board.read().clone()
    }

    /// A city's latest field plan.
    #[must_use]
    pub fn plan(&self, city: &CityId) -> Option<Arc<FieldPlan>> {
        self.cities.read().get(city)?.plan.read().clone()
    }

    /// Cards of a city's model versions.
    #[must_use]
    pub fn models(&self, city: &CityId) -> Vec<mobility_intel::Card> {
        self.cities.read().get(city).map_or_else(Vec::new, |c| {
            c.registry.lock().cards().into_iter().cloned().collect()
        })
    }

    /// Does what is due for every city: stores finished search minutes, forecasts at a new
    /// slot, prices every 5 minutes, plans every 15. Call it about once a minute.
    pub async fn tick(&self, now: TimestampMs) {
        for shard in self.fleet.shards() {
            let id = shard.city.read().id.clone();
            if let Err(e) = self.city_tick(&id, now).await {
                tracing::warn!(city = %id, error = %e, "fleet intelligence: cannot update; will retry");
            }
        }
    }

    /// Forces a forecast, prices and a plan now (start-up, tests, the admin's refresh).
    pub async fn refresh(&self, city: &CityId, now: TimestampMs) -> Result<(), StoreError> {
        let c = self.city(city);
        *c.last_forecast_slot.lock() = i64::MIN;
        *c.last_price_ms.lock() = i64::MIN;
        *c.last_plan_ms.lock() = i64::MIN;
        self.city_tick(city, now).await
    }

    async fn city_tick(&self, city: &CityId, now: TimestampMs) -> Result<(), StoreError> {
        let c = self.city(city);
        self.flush_demand(city, &c, now).await?;
        let slot = now.0.div_euclid(SLOT_MS) * SLOT_MS;
        let forecast_due = *c.last_forecast_slot.lock() != slot;
        if forecast_due {
            self.make_forecast(city, &c, now, slot).await?;
            *c.last_forecast_slot.lock() = slot;
        }
        let price_due = now.0.saturating_sub(*c.last_price_ms.lock()) >= PRICE_EVERY_MS;
        let plan_due = now.0.saturating_sub(*c.last_plan_ms.lock()) >= PLAN_EVERY_MS;
        if price_due || plan_due {
            let (cands, ids) = self.candidates(city);
            if price_due {
                self.price(&c, &cands, now);
                *c.last_price_ms.lock() = now.0;
            }
            if plan_due {
                self.make_plan(city, &c, cands, ids, now).await;
                *c.last_plan_ms.lock() = now.0;
            }
        }
        Ok(())
    }

    async fn flush_demand(
        &self,
        city: &CityId,
        c: &CityIntel,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        let minute = now.0.div_euclid(60_000);
        let from = *c.flushed_minute.lock();
        let slots = self.fleet.search_slots(city, from, minute, SLOT_MS);
        if !slots.is_empty() {
            self.store.add_demand(city, &slots).await?;
        }
        *c.flushed_minute.lock() = minute;
        Ok(())
    }

    async fn make_forecast(
        &self,
        city: &CityId,
        c: &Arc<CityIntel>,
        now: TimestampMs,
        slot: i64,
    ) -> Result<(), StoreError> {
        let from = slot - HISTORY_DAYS * DAY_MS;
        let rows = self.store.demand_since(city, TimestampMs(from)).await?;
        let start = rows
            .first()
            .map_or(slot, |r| r.slot.0.div_euclid(SLOT_MS) * SLOT_MS);
        let mut requests = series_of(&rows, start, slot, |r| r.searches);
        let mut returns = series_of(&rows, start, slot, |r| r.returns);
        // Covariates of both, for the past and the horizon: the weather where a feed gave it
        // (unknown hours are missing values), and the crowds of the city's events calendar.
        // Always all three, so a model keeps fitting whether or not a feed is running.
        let horizon_end = slot + i64::try_from(HORIZON_SLOTS).unwrap_or(8) * SLOT_MS;
        let weather = self
            .store
            .weather_between(city, TimestampMs(start), TimestampMs(horizon_end))
            .await?;
        let crowds: Vec<Crowd> = self
            .store
            .calendar_events(city, TimestampMs(start - DAY_MS))
            .await?
            .into_iter()
            .filter(|e| e.ends_at.0 < horizon_end)
            .map(|e| Crowd {
                venue: point(e.venue),
                ends_at_ms: e.ends_at.0,
                egress_ms: e.egress_ms,
                riders: e.riders,
            })
            .collect();
        let (rain, temp) = weather_covariates(&weather, &requests);
        let centres: Vec<Option<routing::Point>> = requests
            .zones
            .iter()
            .map(|z| z.parse::<CellIndex>().ok().and_then(centre))
            .collect();
        let event = event_riders(&centres, &crowds, start, SLOT_MS, requests.slots);
        for s in [&mut requests, &mut returns] {
            let n = s.zones.len();
            s.add_covariate("rain", vec![rain.clone(); n]);
            s.add_covariate("temp_c", vec![temp.clone(); n]);
            s.add_covariate("event_riders", event.clone());
        }
        #[allow(clippy::cast_precision_loss)]
        let history_days = (slot - start) as f64 / DAY_MS as f64;
        let day = slot.div_euclid(DAY_MS);
        let train = {
            let has_model = c.registry.lock().current().is_some();
            let hour = (slot.rem_euclid(DAY_MS)) / 3_600_000;
            let last = *c.last_train_day.lock();
            history_days >= TRAIN_MIN_DAYS as f64 && last != day && (!has_model || hour == 3)
        };
        if train {
            *c.last_train_day.lock() = day;
        }
        // The last hour as the live log holds it (up to the current minute): what the
        // recent-rate stand-in reads, so a new city is priced from its first minutes.
        let live_requests: Vec<(CellIndex, u32)> = self
            .fleet
            .search_cells(city, DEMAND_RESOLUTION, now)
            .into_iter()
            .map(|(cell, n, _)| (cell, n))
            .collect();
        let live_returns = self.fleet.return_cells(city, now);
        // At least a slot's worth: a few searches in the first minutes are not a rate.
        #[allow(clippy::cast_precision_loss)]
        let observed_min = ((now.0 - self.started.0) as f64 / 60_000.0).clamp(15.0, 60.0);
        let dir = self
            .settings
            .models_dir
            .as_ref()
            .map(|d| d.join(city.as_str()));
        let (registry, returns_registry) = (c.registry.clone(), c.returns_registry.clone());
        let city_name = city.to_string();
        let view = tokio::task::spawn_blocking(move || {
            let ask = |reg: &Mutex<Registry>,
                       series: &Series,
                       live: &[(CellIndex, u32)],
                       dir: Option<PathBuf>,
                       what: &str| {
                let mut reg = reg.lock();
                if train {
                    train_into(&mut reg, series, now, dir.as_deref(), &city_name, what);
                }
                forecast_with(&reg, series, live, observed_min)
            };
            let (source, model_version, zones) =
                ask(&registry, &requests, &live_requests, dir.clone(), "rentals");
            let (returns_source, _, returns) = ask(
                &returns_registry,
                &returns,
                &live_returns,
                dir.map(|d| d.join("returns")),
                "returns",
            );
            ForecastView {
                issued_at_ms: now.0,
                first_slot_ms: slot,
                slot_ms: SLOT_MS,
                source,
                model_version,
                covariates: requests.covariate_names.clone(),
                history_days,
                zones,
                returns_source,
                returns,
            }
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("forecast task: {e}")))?;
        metrics::counter!("intel_forecasts_total", "source" => view.source).increment(1);
        *c.forecast.write() = Some(Arc::new(view));
        Ok(())
    }

    /// Every parked vehicle of the city as a planning candidate, with its id.
    fn candidates(&self, city: &CityId) -> (Vec<tasks::Candidate<CellIndex>>, Vec<VehicleId>) {
        let mut cands = Vec::new();
        let mut ids = Vec::new();
        let Some(shard) = self.fleet.shard(city) else {
            return (cands, ids);
        };
        let index = shard.index.read();
        for v in index.iter() {
            let Some(at) = v.position else { continue };
            let battery = v.battery.map_or(100.0, |b| f64::from(b.get()));
            let status = match v.state {
                VehicleState::Available => tasks::Status::Rentable,
                VehicleState::NonOperational if battery < 15.0 => tasks::Status::Flat,
                VehicleState::NonOperational => tasks::Status::Broken,
                _ => continue,
            };
            cands.push(tasks::Candidate {
                key: ids.len(),
                at: point(at),
                zone: cell_of(at),
                battery,
                status,
                micromobility: micromobility(v.vehicle_type),
                claimed: false,
            });
            ids.push(v.id);
        }
        (cands, ids)
    }

    fn price(&self, c: &CityIntel, cands: &[tasks::Candidate<CellIndex>], now: TimestampMs) {
        let forecast = c.forecast.read().clone();
        let rules = tasks::TaskRules::default();
        let supply = tasks::supply(cands, &rules);
        let mut zones: BTreeMap<CellIndex, f64> = BTreeMap::new();
        if let Some(f) = &forecast {
            for z in f.zones.keys().chain(f.returns.keys()) {
                if let Ok(cell) = z.parse::<CellIndex>() {
                    zones.insert(cell, f.total(z));
                }
            }
        }
        for z in supply.keys() {
            zones.entry(*z).or_insert(0.0);
        }
        let previous = c.board.read().clone();
        let cfg = &self.settings.pricing;
        let mut entries = Vec::with_capacity(zones.len());
        let mut by_cell = HashMap::with_capacity(zones.len());
        for (cell, demand) in zones {
            let s = u32::try_from(supply.get(&cell).map_or(0, Vec::len)).unwrap_or(u32::MAX);
            let prev = previous
                .as_ref()
                .and_then(|b| b.by_cell.get(&cell).map(|i| b.zones[*i].price.multiplier));
            let returns = forecast
                .as_ref()
                .map_or(0.0, |f| f.returns_total(&cell.to_string()));
            // Returns are shown, not counted as supply: in the simulated city counting them
            // made prices fall where riders end trips and lost more demand (ADR 0007).
            let mut price = price_zone(demand, s, prev, cfg);
            price.forecast_returns = returns;
            by_cell.insert(cell, entries.len());
            entries.push(ZoneEntry {
                zone: cell.to_string(),
                price,
            });
        }
        *c.board.write() = Some(Arc::new(PriceBoard {
            computed_at_ms: now.0,
            forecast_source: forecast.as_ref().map_or("none", |f| f.source),
            floor: cfg.floor,
            cap: cfg.cap,
            zones: entries,
            by_cell,
        }));
    }

    async fn make_plan(
        &self,
        city: &CityId,
        c: &CityIntel,
        cands: Vec<tasks::Candidate<CellIndex>>,
        ids: Vec<VehicleId>,
        now: TimestampMs,
    ) {
        let forecast = c.forecast.read().clone();
        // Requests, not requests less returns: in the simulated city planning on the net lost
        // more demand (swaps and moves left out of busy zones that also see many returns).
        let demand: BTreeMap<CellIndex, f64> = forecast
            .as_ref()
            .map(|f| {
                f.zones
                    .keys()
                    .filter_map(|z| Some((z.parse::<CellIndex>().ok()?, f.total(z))))
                    .collect()
            })
            .unwrap_or_default();
        let depot = self.depot(city, &cands);
        let vans = if self.settings.vans > 0 {
            usize::try_from(self.settings.vans).unwrap_or(1)
        } else {
            (ids.len() / VEHICLES_PER_VAN).max(1)
        };
        let van_vehicles = 10;
        let rules = tasks::TaskRules {
            max_moves: vans * van_vehicles,
            ..tasks::TaskRules::default()
        };
        let generations = self.settings.generations;
        let city_name = city.to_string();
        let planned = tokio::task::spawn_blocking(move || {
            let mut chosen = tasks::generate(&cands, &demand, centre, &rules);
            // The most valuable jobs when there are more than a plan can route.
            if chosen.jobs.len() > PLAN_JOBS_MAX {
                chosen
                    .jobs
                    .sort_by(|a, b| job_value(b).total_cmp(&job_value(a)));
                chosen.jobs.truncate(PLAN_JOBS_MAX);
            }
            let van_list: Vec<routing::Van> = (0..vans)
                .map(|v| routing::Van {
                    id: format!("van-{}", v + 1),
                    start: depot,
                    depot,
                    vehicle_capacity: i32::try_from(van_vehicles).unwrap_or(10),
                    packs_on_board: 40,
                    pack_capacity: 40,
                    // One planning period and a half, as the simulator plans.
                    shift_left_s: 1.5 * 3_600.0,
                })
                .collect();
            let settings = routing::Settings {
                speed_m_s: 6.0,
                detour: 1.35,
                generations,
                #[allow(clippy::cast_sign_loss)]
                seed: now.0 as u64,
            };
            let plan = if chosen.jobs.is_empty() {
                routing::Plan::default()
            } else {
                routing::plan(&van_list, &chosen.jobs, &settings).unwrap_or_else(|e| {
                    tracing::warn!(city = %city_name, error = %e, "cannot route the vans");
                    routing::Plan::default()
                })
            };
            (chosen, plan)
        })
        .await;
        let Ok((chosen, plan)) = planned else {
            return;
        };
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for t in chosen.tasks.values() {
            let kind = match t {
                tasks::Task::Swap { .. } => "swap",
                tasks::Task::Move { .. } => "move",
                tasks::Task::Collect { .. } => "collect",
            };
            *counts.entry(kind).or_default() += 1;
        }
        let routes = plan
            .routes
            .iter()
            .map(|r| RouteView {
                van: r.van_id.clone(),
                distance_m: r.distance_m,
                duration_s: r.duration_s,
                stops: r
                    .stops
                    .iter()
                    .map(|s| StopView {
                        kind: match s.kind {
                            routing::StopKind::Swap => "swap",
                            routing::StopKind::Pickup => "pickup",
                            routing::StopKind::Dropoff => "dropoff",
                            routing::StopKind::Collect => "collect",
                            routing::StopKind::Reload => "reload",
                            routing::StopKind::Depot => "depot",
                        },
                        lat: s.at.lat,
                        lon: s.at.lon,
                        vehicle_id: s
                            .job_id
                            .as_ref()
                            .and_then(|j| chosen.tasks.get(j))
                            .and_then(|t| ids.get(t.key()).copied()),
                        arrival_s: s.arrival_s,
                    })
                    .collect(),
            })
            .collect();
        *c.plan.write() = Some(Arc::new(FieldPlan {
            planned_at_ms: now.0,
            depot: [depot.lat, depot.lon],
            vans,
            tasks: counts,
            unassigned: plan.unassigned.len(),
            routes,
        }));
    }

    /// The depot: the middle of the operating area, else of the fleet.
    fn depot(&self, city: &CityId, cands: &[tasks::Candidate<CellIndex>]) -> routing::Point {
        let area = self.fleet.shard(city).and_then(|s| {
            s.city.read().operating_area.as_ref().map(|a| {
                let r = a.ring();
                #[allow(clippy::cast_precision_loss)]
                let n = r.len().max(1) as f64;
                routing::Point {
                    lat: r.iter().map(LatLon::lat).sum::<f64>() / n,
                    lon: r.iter().map(LatLon::lon).sum::<f64>() / n,
                }
            })
        });
        area.unwrap_or_else(|| {
            #[allow(clippy::cast_precision_loss)]
            let n = cands.len().max(1) as f64;
            routing::Point {
                lat: cands.iter().map(|c| c.at.lat).sum::<f64>() / n,
                lon: cands.iter().map(|c| c.at.lon).sum::<f64>() / n,
            }
        })
    }
}

/// The dynamic price a trip is unlocked at: what the rider was shown, kept with the booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LockedPrice {
    /// The zone it starts in.
    pub zone: String,
    /// Multiplier on time and distance, per mille.
    pub multiplier_permille: u32,
    /// Discount for starting here (a zone with spare vehicles), hundredths of the currency.
    pub start_discount_cents: i64,
    /// Why.
    pub reason: String,
}

impl Intel {
    /// The price of a trip starting at `at` now. Scooters and e-bikes only: the zone balance
    /// counts them; cars and vans keep their plan's price.
    #[must_use]
    pub fn lock_price(
        &self,
        city: &CityId,
        vehicle_type: VehicleType,
        at: LatLon,
    ) -> Option<LockedPrice> {
        if !micromobility(vehicle_type) {
            return None;
        }
        let board = self.board(city)?;
        let z = board.at(at)?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let multiplier_permille =
            (z.price.multiplier * 1_000.0).round().clamp(0.0, 10_000.0) as u32;
        Some(LockedPrice {
            zone: z.zone.clone(),
            multiplier_permille,
            start_discount_cents: z.price.start_discount_cents,
            reason: z.price.reason.clone(),
        })
    }
}

fn centre(z: CellIndex) -> Option<routing::Point> {
    let ll = LatLng::from(z);
    Some(routing::Point {
        lat: ll.lat(),
        lon: ll.lng(),
    })
}

fn job_value(j: &routing::Job) -> f64 {
    match j {
        routing::Job::Swap { value, .. }
        | routing::Job::Move { value, .. }
        | routing::Job::Collect { value, .. } => *value,
    }
}

/// UTC day number, the incentive budget's day.
#[must_use]
pub fn budget_day(at: mobility_core::TimestampMs) -> i64 {
    at.0.div_euclid(86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(slot: i64, zone: &str, n: u32) -> DemandSlot {
        DemandSlot {
            slot: TimestampMs(slot),
            zone: zone.to_owned(),
            searches: n,
            unmet: 0,
            returns: 0,
        }
    }

    #[test]
    fn the_series_holds_the_past_and_room_for_the_horizon() {
        let rows = [
            row(0, "b", 2),
            row(SLOT_MS, "a", 3),
            row(2 * SLOT_MS, "a", 9),
        ];
        let s = series_of(&rows, 0, 2 * SLOT_MS, |r| r.searches);
        assert_eq!(s.zones, ["a", "b"]);
        assert_eq!(s.slots, 2 + HORIZON_SLOTS);
        assert_eq!(
            &s.counts[0][..3],
            &[0.0, 3.0, 0.0],
            "the current slot is not past yet"
        );
        assert!((s.counts[1][0] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn the_recent_rate_scales_what_was_seen_to_a_slot() {
        let cell = LatLng::new(41.39, 2.17).unwrap().to_cell(DEMAND_RESOLUTION);
        let r = recent_rate(&[(cell, 6)], 5.0);
        assert_eq!(r[&cell.to_string()], vec![18.0; HORIZON_SLOTS]);
        let r = recent_rate(&[(cell, 6)], 60.0);
        assert!((r[&cell.to_string()][0] - 1.5).abs() < 1e-12);
    }

    #[test]
    fn without_a_model_the_same_slot_of_past_days_stands_in() {
        let spd = usize::try_from(DAY_MS / SLOT_MS).unwrap();
        // Two days: zone a sees 4 at slot 10 each day; forecast from slot 10 of day 3.
        let now = i64::try_from(2 * spd + 10).unwrap() * SLOT_MS;
        let rows = [
            row(10 * SLOT_MS, "a", 4),
            row(i64::try_from(spd + 10).unwrap() * SLOT_MS, "a", 6),
        ];
        let s = series_of(&rows, 0, now, |r| r.searches);
        let (source, f) = fallback(&s);
        assert_eq!(source, "seasonal_mean");
        assert!((f[0][0] - 5.0).abs() < 1e-12, "{:?}", f[0]);
        assert!(f[0][1].abs() < 1e-12);
        // Less than a day: the last hour's rate.
        let rows = [row(0, "a", 8), row(SLOT_MS, "a", 4)];
        let (source, f) = fallback(&series_of(&rows, 0, 2 * SLOT_MS, |r| r.searches));
        assert_eq!(source, "recent_rate");
        assert!((f[0][5] - 6.0).abs() < 1e-12, "{:?}", f[0]);
    }
}
