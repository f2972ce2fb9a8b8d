//! The simulation itself: a pure state machine advanced by [`Sim::advance_to`]. It holds the
//! truth (where every vehicle really is, its real battery, who rides it) and talks to the
//! platform only through [`Platform`]: it hands over what the vehicles send and asks where a
//! rider can find a vehicle. The same run drives the domain core in process or the real
//! platform over MQTT and HTTP.
//!
//! Randomness comes from one ChaCha8 generator seeded by [`SimConfig::seed`], time only from the
//! simulated clock, and every collection is iterated in a fixed order: the same configuration gives
//! the same run, bit for bit.

use std::{cmp::Reverse, collections::BinaryHeap};

use mobility_core::{
    BatteryPct, EventType, LatLon, TimestampMs, VehicleId, VehicleState, VehicleType,
};
use mobility_fleet::{Hit, NearbyQuery, StateFilter, Telemetry, index::TypeMask};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Poisson, StandardNormal};
use serde::Serialize;

use crate::city::CityModel;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// Share of each vehicle type in the fleet.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FleetMix {
    /// E-scooters.
    pub scooter: f64,
    /// E-bikes.
    pub ebike: f64,
    /// Cars.
    pub car: f64,
    /// Vans.
    pub van: f64,
}

impl Default for FleetMix {
    fn default() -> Self {
        Self {
            scooter: 0.60,
            ebike: 0.30,
            car: 0.07,
            van: 0.03,
        }
    }
}

/// Faults the vehicles' connectivity injects into what the platform receives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Faults {
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is held back 1–15 s, so later ones overtake it.
    pub reorder: f64,
    /// Offline periods started per vehicle-hour (a vehicle sends nothing while offline and
    /// reports its current state when it reconnects).
    pub offline_per_hour: f64,
    /// Mean length of an offline period, seconds.
    pub offline_mean_s: f64,
    /// Standard deviation of GPS error on reported positions, metres.
    pub gps_jitter_m: f64,
}

impl Faults {
    /// No faults at all (GPS still jitters a little, as real receivers do).
    #[must_use]
    pub const fn none() -> Self {
        Self {
            duplicate: 0.0,
            reorder: 0.0,
            offline_per_hour: 0.0,
            offline_mean_s: 600.0,
            gps_jitter_m: 4.0,
        }
    }

    /// Realistic rates for a demo: 1 % duplicates, 1 % reordered, one offline period per vehicle
    /// every 2 days.
    #[must_use]
    pub const fn realistic() -> Self {
        Self {
            duplicate: 0.01,
            reorder: 0.01,
            offline_per_hour: 1.0 / 48.0,
            offline_mean_s: 600.0,
            gps_jitter_m: 4.0,
        }
    }
}

/// Everything that shapes a run.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    /// Seed of the one random generator.
    pub seed: u64,
    /// Fleet size.
    pub vehicles: u32,
    /// Fleet composition.
    pub mix: FleetMix,
    /// When the simulated clock starts (UTC ms).
    pub start: TimestampMs,
    /// How far riders walk to a scooter or e-bike, metres.
    pub walk_radius_m: f64,
    /// How far riders walk to a car or van, metres.
    pub car_walk_radius_m: f64,
    /// Potential trips (rider requests) per vehicle per day on a dry weekday.
    pub demand_per_vehicle_day: f64,
    /// Share of requests from anywhere in the operating area rather than from a hotspot.
    pub background_share: f64,
    /// Connectivity faults.
    pub faults: Faults,
    /// Share of vehicles whose battery slowly degrades (ground truth for predictive maintenance).
    pub degrading_share: f64,
    /// Probability that a trip ends in a crash (IMU spike; ground truth for incidents).
    pub crash_per_trip: f64,
    /// Report interval while moving, seconds.
    pub report_moving_s: u32,
    /// Report interval while parked, seconds.
    pub report_idle_s: u32,
    /// Simulation step, seconds.
    pub tick_s: u32,
    /// Riders only: requests are drawn and logged but nobody looks for a vehicle and vehicles
    /// stand still (a fast way to make weeks of demand history for forecasting).
    pub demand_only: bool,
}

impl SimConfig {
    /// The default city run: 5,000 vehicles, realistic demand, no faults.
    #[must_use]
    pub fn new(seed: u64, start: TimestampMs) -> Self {
        Self {
            seed,
            vehicles: 5_000,
            mix: FleetMix::default(),
            start,
            walk_radius_m: 400.0,
            car_walk_radius_m: 800.0,
            demand_per_vehicle_day: 6.0,
            background_share: 0.25,
            faults: Faults::none(),
            degrading_share: 0.03,
            crash_per_trip: 0.002,
            report_moving_s: 10,
            report_idle_s: 300,
            tick_s: 5,
            demand_only: false,
        }
    }
}

/// A message from a vehicle or a lifecycle change, as the platform receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A telemetry report (MQTT telemetry topic).
    Telemetry(Telemetry),
    /// A lifecycle change (MDS events; the bookings service records these once it exists).
    Lifecycle {
        /// Vehicle.
        vehicle: VehicleId,
        /// MDS event types.
        events: Vec<EventType>,
        /// New state.
        to: VehicleState,
        /// When.
        at: TimestampMs,
    },
    /// An IMU spike (MQTT events topic).
    Imu {
        /// Vehicle.
        vehicle: VehicleId,
        /// When.
        at: TimestampMs,
        /// Peak acceleration, g.
        peak_g: f64,
        /// Where.
        position: LatLon,
    },
}

/// The platform as the simulation sees it.
pub trait Platform {
    /// Vehicles near a rider, nearest first, as the platform knows them.
    fn search(&mut self, q: &NearbyQuery, out: &mut Vec<Hit>);
    /// Delivers one message (telemetry over the vehicle link, lifecycle over the API).
    fn deliver(&mut self, msg: &Outgoing, now: TimestampMs);
}

/// What a simulated vehicle is doing, in truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// Parked and rentable.
    Available,
    /// Ridden.
    OnTrip,
    /// Parked with a flat battery (non-operational until swapped).
    LowBattery,
    /// In a staff van, being moved.
    WithStaff,
}

#[derive(Debug, Clone)]
struct Trip {
    from: LatLon,
    to: LatLon,
    start: i64,
    end: i64,
    distance_m: f64,
    crash_at: Option<i64>,
    crash_g: f64,
    /// Price multiplier of the zone it started in.
    multiplier: f64,
}

/// A vehicle as it really is.
#[derive(Debug, Clone)]
pub struct SimVehicle {
    /// Id.
    pub id: VehicleId,
    /// Type.
    pub vehicle_type: VehicleType,
    /// True position.
    pub position: LatLon,
    /// True battery, percent.
    pub battery: f64,
    /// What it is doing.
    pub activity: Activity,
    /// Odometer, metres.
    pub odometer_m: f64,
    /// Energy use relative to a healthy battery (1.0; degrading batteries climb).
    pub drain_factor: f64,
    /// Growth of `drain_factor` per simulated day (0 for healthy batteries).
    pub degrade_per_day: f64,
    trip: Option<Trip>,
    offline_until: Option<i64>,
    next_report: i64,
    last_ts: i64,
    /// The newest report the vehicle generated (what the platform must converge to).
    pub last_report: Option<Telemetry>,
}

/// Range on a full battery, metres.
fn range_m(t: VehicleType) -> f64 {
    match t {
        VehicleType::Scooter => 35_000.0,
        VehicleType::Ebike => 60_000.0,
        VehicleType::Car => 250_000.0,
        VehicleType::Van => 180_000.0,
    }
}

/// Cruising speed in city traffic, m/s.
fn speed_m_s(t: VehicleType) -> f64 {
    match t {
        VehicleType::Scooter => 4.2,
        VehicleType::Ebike => 4.7,
        VehicleType::Car => 7.0,
        VehicleType::Van => 6.0,
    }
}

/// Battery below which a vehicle is not rented, percent.
fn rentable_battery(t: VehicleType) -> u8 {
    if micromobility(t) { 15 } else { 20 }
}

/// A lifecycle step of the simulation, as MDS events of the vehicle's mode (micromobility and
/// car share have different state machines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Put in service.
    Deploy,
    /// A rider takes it.
    TripStart,
    /// The rider parks it.
    TripEnd,
    /// The rider parks it with a flat battery.
    TripEndFlat,
    /// Its battery ran flat while parked.
    Flat,
    /// Staff swapped the battery of a flat vehicle.
    Charged,
    /// Staff took it away to put it elsewhere (back with [`Step::Deploy`]).
    Pickup,
}

/// The MDS events and the resulting state for a lifecycle step of a vehicle type.
#[must_use]
pub fn lifecycle(t: VehicleType, step: Step) -> (Vec<EventType>, VehicleState) {
    use EventType as E;
    use VehicleState as S;
    let micro = micromobility(t);
    match (step, micro) {
        (Step::Deploy, true) => (vec![E::ProviderDropOff], S::Available),
        (Step::Deploy, false) => (vec![E::Recommission, E::ServiceStart], S::Available),
        (Step::TripStart, true) => (vec![E::TripStart], S::OnTrip),
        (Step::TripStart, false) => (
            vec![E::ReservationStart, E::ReservationStop, E::TripStart],
            S::OnTrip,
        ),
        (Step::TripEnd, true) => (vec![E::TripEnd], S::Available),
        (Step::TripEnd, false) => (vec![E::TripStop, E::TripEnd], S::Available),
        (Step::TripEndFlat, true) => (vec![E::TripEnd, E::BatteryLow], S::NonOperational),
        (Step::TripEndFlat, false) => (
            vec![E::TripStop, E::TripEnd, E::ServiceEnd],
            S::NonOperational,
        ),
        (Step::Flat, true) => (vec![E::BatteryLow], S::NonOperational),
        (Step::Flat, false) => (vec![E::ServiceEnd], S::NonOperational),
        (Step::Charged, true) => (vec![E::BatteryCharged], S::Available),
        (Step::Charged, false) => (vec![E::ServiceStart], S::Available),
        (Step::Pickup, true) => (vec![E::RebalancePickUp], S::Removed),
        (Step::Pickup, false) => (vec![E::MaintenancePickUp], S::Removed),
    }
}

pub(crate) fn lifecycle_msg(v: &SimVehicle, step: Step, at: i64) -> Outgoing {
    let (events, to) = lifecycle(v.vehicle_type, step);
    Outgoing::Lifecycle {
        vehicle: v.id,
        events,
        to,
        at: TimestampMs(at),
    }
}

/// Distance over which a destination's pull falls by a factor e (gravity model), metres.
const TRIP_DECAY_M: f64 = 1_800.0;

/// Battery below which a parked vehicle is taken out of service, percent.
const FLAT_PCT: f64 = 10.0;

/// Simulated tariff (cents): unlock fee and per minute. Bookings bring real pricing plans.
fn fare_cents(t: VehicleType, minutes: f64) -> i64 {
    let (unlock, per_min) = match t {
        VehicleType::Scooter => (100.0, 25.0),
        VehicleType::Ebike => (100.0, 22.0),
        VehicleType::Car => (0.0, 32.0),
        VehicleType::Van => (0.0, 40.0),
    };
    #[allow(clippy::cast_possible_truncation)]
    let cents = (unlock + per_min * minutes.ceil()).round() as i64;
    cents
}

/// Scooters and e-bikes (the micromobility mode), as opposed to car share.
fn micromobility(t: VehicleType) -> bool {
    matches!(t, VehicleType::Scooter | VehicleType::Ebike)
}

/// Weather the simulation provides (the forecasting issue reads it as an input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weather {
    /// Dry.
    Dry,
    /// Raining: far fewer scooter and bike trips.
    Rain,
}

/// Counters for one hour of simulated time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HourStats {
    /// Hour index since the start.
    pub hour: u32,
    /// Local hour of day.
    pub local_hour: u32,
    /// Rider requests (potential demand).
    pub demand: u32,
    /// Trips started.
    pub served: u32,
    /// Requests with no rentable vehicle within walking distance.
    pub lost: u32,
    /// Whether it rained.
    pub rain: bool,
}

/// Ground truth for the predictive-maintenance and incident issues.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroundTruth {
    /// Vehicles with degrading batteries and their degradation per day.
    pub degrading_batteries: Vec<(VehicleId, f64)>,
    /// Crashes: vehicle, time, position, peak g.
    pub crashes: Vec<Crash>,
}

/// One crash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Crash {
    /// Vehicle.
    pub vehicle: VehicleId,
    /// When.
    pub at: TimestampMs,
    /// Where.
    pub position: LatLon,
    /// Peak acceleration, g.
    pub peak_g: f64,
}

/// Running totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Rider requests.
    pub demand: u64,
    /// Trips started.
    pub served: u64,
    /// Requests lost: nothing rentable within walking distance.
    pub lost: u64,
    /// Of the lost: the platform showed a vehicle that was not really there or not rentable.
    pub lost_phantom: u64,
    /// Trips completed.
    pub trips_completed: u64,
    /// Sum of walking distances of served riders, metres.
    pub walk_m_sum: f64,
    /// Sum of trip distances, metres.
    pub trip_m_sum: f64,
    /// Vehicle-milliseconds spent on trips.
    pub on_trip_ms: i64,
    /// Simulated revenue, cents.
    pub revenue_cents: i64,
    /// Vehicles relocated by staff (none without an operations policy).
    pub relocations: u64,
    /// Batteries swapped by staff (none without an operations policy).
    pub battery_swaps: u64,
    /// Messages handed to the platform (including duplicates).
    pub messages: u64,
    /// Duplicated messages.
    pub duplicated: u64,
    /// Messages held back and delivered out of order.
    pub reordered: u64,
    /// Offline periods.
    pub offline_periods: u64,
    /// Vehicles that went flat during the run.
    pub went_flat: u64,
    /// Lost requests per district (index into the city's hotspots).
    pub lost_by_district: Vec<u64>,
    /// Requests per district.
    pub demand_by_district: Vec<u64>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    deliver_at: i64,
    seq: u64,
    // Index into `Sim::held`; the message itself is kept out of the ordering.
    slot: usize,
}

/// Length of a demand slot, ms (15 minutes: the forecasting step).
pub const DEMAND_SLOT_MS: i64 = 15 * MINUTE_MS;

/// H3 resolution of demand zones: 8 (cells of about 0.74 km², edges of about 460 m), the
/// distance a rider walks to a vehicle, so a cell's demand is what its vehicles can serve.
pub const ZONE_RESOLUTION: h3o::Resolution = h3o::Resolution::Eight;

/// The H3 zone of a position (`None` only for non-finite coordinates, which [`LatLon`]
/// already refuses).
#[must_use]
pub fn zone_of(p: LatLon) -> Option<h3o::CellIndex> {
    h3o::LatLng::new(p.lat(), p.lon())
        .ok()
        .map(|ll| ll.to_cell(ZONE_RESOLUTION))
}

/// An event in the city's calendar: when it ends, a crowd looks for vehicles near the venue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CityEvent {
    /// Where.
    pub venue: LatLon,
    /// The hotspot it is held at.
    pub venue_name: String,
    /// When it ends.
    pub ends_at: TimestampMs,
    /// Over how long the crowd leaves, ms.
    pub egress_ms: i64,
    /// How many of the crowd look for a vehicle (expected).
    pub riders: f64,
}

/// Requests per zone and slot.
#[derive(Debug, Clone, Default)]
pub struct DemandLog {
    /// Start of slot 0, UTC ms.
    pub start_ms: i64,
    /// Slot length, ms.
    pub step_ms: i64,
    /// Counts per zone, by slot.
    pub cells: std::collections::BTreeMap<h3o::CellIndex, Vec<u32>>,
    /// Slots covered so far.
    pub slots: usize,
}

impl DemandLog {
    fn new(start_ms: i64, step_ms: i64) -> Self {
        Self {
            start_ms,
            step_ms,
            ..Self::default()
        }
    }

    fn record(&mut self, at: i64, p: LatLon) {
        let Ok(slot) = usize::try_from((at - 1 - self.start_ms).div_euclid(self.step_ms)) else {
            return;
        };
        let Some(zone) = zone_of(p) else { return };
        let v = self.cells.entry(zone).or_default();
        if v.len() <= slot {
            v.resize(slot + 1, 0);
        }
        v[slot] += 1;
        self.slots = self.slots.max(slot + 1);
    }
}

/// A simulated city in motion.
#[derive(Debug)]
pub struct Sim {
    pub(crate) cfg: SimConfig,
    pub(crate) city: CityModel,
    rng: ChaCha8Rng,
    pub(crate) now: i64,
    pub(crate) vehicles: Vec<SimVehicle>,
    pub(crate) ops: Option<Box<crate::ops::Ops>>,
    queue: BinaryHeap<Reverse<Pending>>,
    held: Vec<Option<Outgoing>>,
    free_slots: Vec<usize>,
    seq: u64,
    weather: Weather,
    /// Hourly weather from the start, drawn ahead from its own stream (so it can be forecast).
    weather_plan: Vec<Weather>,
    /// Hourly temperature, °C, drawn with the weather.
    temp_plan: Vec<f64>,
    /// Today's temperature anomaly, °C (an AR(1) from day to day).
    temp_anomaly: f64,
    /// Events in the city's calendar, drawn a day ahead with the weather.
    events: Vec<CityEvent>,
    weather_rng: ChaCha8Rng,
    demand_log: DemandLog,
    returns_log: DemandLog,
    hours: Vec<HourStats>,
    pub(crate) totals: Totals,
    truth: GroundTruth,
    hits: Vec<Hit>,
    on_trip: Vec<usize>,
}

pub use mobility_core::time::days_from_civil;

/// Offsets a position by metres north and east.
fn offset(q: LatLon, north_m: f64, east_m: f64) -> LatLon {
    let lat = (q.lat() + north_m / 111_320.0).clamp(-90.0, 90.0);
    let lon = q.lon() + east_m / (111_320.0 * q.lat().to_radians().cos().max(0.01));
    LatLon::new(lat, lon.clamp(-180.0, 180.0)).unwrap_or(q)
}

impl Sim {
    /// A city at the start of the run, with the fleet deployed near where riders are.
    #[must_use]
    pub fn new(cfg: SimConfig, city: CityModel) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let districts = city.hotspots.len();
        let mut sim = Self {
            now: cfg.start.0,
            vehicles: Vec::with_capacity(cfg.vehicles as usize),
            queue: BinaryHeap::new(),
            held: Vec::new(),
            free_slots: Vec::new(),
            ops: None,
            seq: 0,
            weather: Weather::Dry,
            weather_plan: Vec::new(),
            temp_plan: Vec::new(),
            temp_anomaly: 0.0,
            events: Vec::new(),
            weather_rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5745_4154_4845_5221),
            demand_log: DemandLog::new(cfg.start.0, DEMAND_SLOT_MS),
            returns_log: DemandLog::new(cfg.start.0, DEMAND_SLOT_MS),
            hours: Vec::new(),
            totals: Totals {
                lost_by_district: vec![0; districts],
                demand_by_district: vec![0; districts],
                ..Totals::default()
            },
            truth: GroundTruth::default(),
            hits: Vec::with_capacity(8),
            on_trip: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(0),
            cfg,
            city,
        };
        for k in 0..sim.cfg.vehicles {
            let vehicle_type = sim.pick_type(&mut rng);
            // Operators deploy overnight where the morning's riders will be: mostly at hotspots
            // weighted by size, the rest spread over the city.
            let position = if rng.random_bool(0.7) {
                let h = sim.pick_hotspot(&mut rng, |_| 1.0);
                sim.around(&mut rng, h)
            } else {
                sim.anywhere(&mut rng)
            };
            let degrading = rng.random_bool(sim.cfg.degrading_share.clamp(0.0, 1.0));
            let degrade_per_day = if degrading {
                rng.random_range(0.05..0.25)
            } else {
                0.0
            };
            let id = VehicleId::from_uuid(uuid::Uuid::from_u128(
                (u128::from(rng.random::<u64>()) << 64) | u128::from(k),
            ));
            if degrading {
                sim.truth.degrading_batteries.push((id, degrade_per_day));
            }
            let report_idle_ms = i64::from(sim.cfg.report_idle_s) * 1_000;
            sim.vehicles.push(SimVehicle {
                id,
                vehicle_type,
                position,
                battery: rng.random_range(45.0..100.0),
                activity: Activity::Available,
                odometer_m: rng.random_range(0.0..2_000_000.0_f64).floor(),
                drain_factor: 1.0,
                degrade_per_day,
                trip: None,
                offline_until: None,
                // Every vehicle reports within its first 3 s (a fleet coming online), spread so
                // they do not all arrive at once; then every `report_idle_s`.
                next_report: sim.now + rng.random_range(0..report_idle_ms.clamp(1, 3_000)),
                last_ts: 0,
                last_report: None,
            });
        }
        sim.rng = rng;
        sim
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The city.
    #[must_use]
    pub fn city(&self) -> &CityModel {
        &self.city
    }

    /// The simulated clock.
    #[must_use]
    pub fn now(&self) -> TimestampMs {
        TimestampMs(self.now)
    }

    /// The vehicles, in truth.
    #[must_use]
    pub fn vehicles(&self) -> &[SimVehicle] {
        &self.vehicles
    }

    /// Weather now.
    #[must_use]
    pub fn weather(&self) -> Weather {
        self.weather
    }

    /// The weather forecast for time `t`: the simulator draws its weather a day ahead, so the
    /// next 24 hours are known (the weather input of demand forecasting). `None` before the
    /// start or past what is drawn.
    #[must_use]
    pub fn weather_at(&self, t: TimestampMs) -> Option<Weather> {
        let k = usize::try_from((t.0 - self.cfg.start.0).div_euclid(HOUR_MS)).ok()?;
        self.weather_plan.get(k).copied()
    }

    /// Rider requests so far per H3 cell (resolution 8) and 15-minute slot: the demand the
    /// platform sees as searches, whether or not a vehicle was found.
    #[must_use]
    pub fn demand_log(&self) -> &DemandLog {
        &self.demand_log
    }

    /// Demand per zone as a forecasting series: complete 15-minute slots so far, plus
    /// `ahead` future slots with zero counts, with the covariate `rain` (1 when it rains in the
    /// slot, from the weather forecast) on every slot.
    #[must_use]
    pub fn demand_series(&self, ahead: usize) -> mobility_intel::Series {
        self.log_series(&self.demand_log, ahead)
    }

    /// Returns (trips that ended) per zone as a forecasting series, like [`Self::demand_series`].
    /// In a demand-only run every request counts as a trip ending at its destination when a
    /// scooter would arrive there.
    #[must_use]
    pub fn returns_series(&self, ahead: usize) -> mobility_intel::Series {
        self.log_series(&self.returns_log, ahead)
    }

    fn log_series(&self, log: &DemandLog, ahead: usize) -> mobility_intel::Series {
        let done = usize::try_from((self.now - log.start_ms) / log.step_ms).unwrap_or(0);
        let slots = done + ahead;
        let zones: Vec<String> = log.cells.keys().map(ToString::to_string).collect();
        let mut s = mobility_intel::Series::zeros(log.start_ms, log.step_ms, slots, zones);
        s.utc_offset_min = self.city.utc_offset_min;
        for (z, counts) in log.cells.values().enumerate() {
            for (k, c) in counts.iter().take(done).enumerate() {
                s.counts[z][k] = f64::from(*c);
            }
        }
        let rain: Vec<f64> = (0..slots)
            .map(|k| {
                let t = log.start_ms + i64::try_from(k).unwrap_or(0) * log.step_ms;
                match self.weather_at(TimestampMs(t)) {
                    Some(Weather::Rain) => 1.0,
                    Some(Weather::Dry) => 0.0,
                    None => f64::NAN,
                }
            })
            .collect();
        let temp: Vec<f64> = (0..slots)
            .map(|k| {
                let t = log.start_ms + i64::try_from(k).unwrap_or(0) * log.step_ms;
                self.temperature_at(TimestampMs(t)).unwrap_or(f64::NAN)
            })
            .collect();
        let n = s.zones.len();
        s.add_covariate("rain", vec![rain; n]);
        s.add_covariate("temp_c", vec![temp; n]);
        // Expected riders leaving events per slot, in the zones near the venue.
        let centres: Vec<Option<mobility_intel::routing::Point>> = log
            .cells
            .keys()
            .map(|c| {
                let ll = h3o::LatLng::from(*c);
                Some(mobility_intel::routing::Point {
                    lat: ll.lat(),
                    lon: ll.lng(),
                })
            })
            .collect();
        let crowds: Vec<mobility_intel::series::Crowd> = self
            .events
            .iter()
            .map(|e| mobility_intel::series::Crowd {
                venue: mobility_intel::routing::Point {
                    lat: e.venue.lat(),
                    lon: e.venue.lon(),
                },
                ends_at_ms: e.ends_at.0,
                egress_ms: e.egress_ms,
                riders: e.riders,
            })
            .collect();
        let event = mobility_intel::series::event_riders(
            &centres,
            &crowds,
            log.start_ms,
            log.step_ms,
            slots,
        );
        s.add_covariate("event_riders", event);
        s
    }

    /// The temperature forecast for time `t`, °C (known a day ahead, like [`Self::weather_at`]).
    #[must_use]
    pub fn temperature_at(&self, t: TimestampMs) -> Option<f64> {
        let k = usize::try_from((t.0 - self.cfg.start.0).div_euclid(HOUR_MS)).ok()?;
        self.temp_plan.get(k).copied()
    }

    /// Events in the city's calendar so far and for the next day.
    #[must_use]
    pub fn events(&self) -> &[CityEvent] {
        &self.events
    }

    /// Draws the hourly weather, temperature and the events' calendar up to `until` plus a day.
    fn plan_weather(&mut self, until: i64) {
        let hours =
            usize::try_from((until - self.cfg.start.0).div_euclid(HOUR_MS) + 25).unwrap_or(0);
        while self.weather_plan.len() < hours {
            let k = self.weather_plan.len();
            let t = self.cfg.start.0 + i64::try_from(k).unwrap_or(0) * HOUR_MS;
            let (local_hour, _) = self.local(t);
            if local_hour == 0 || k == 0 {
                // A new day: its temperature anomaly, and perhaps an event in the evening.
                let z: f64 = self.weather_rng.sample(StandardNormal);
                self.temp_anomaly = 0.75 * self.temp_anomaly + 2.5 * z;
                if self.weather_rng.random_bool(0.4) && !self.city.hotspots.is_empty() {
                    let venue = self.weather_rng.random_range(0..self.city.hotspots.len());
                    let end_hour = self.weather_rng.random_range(20..24);
                    let riders = self.weather_rng.random_range(300.0..1_200.0);
                    let midnight = t - i64::from(local_hour) * HOUR_MS;
                    self.events.push(CityEvent {
                        venue: self.city.hotspots[venue].center,
                        venue_name: self.city.hotspots[venue].name.clone(),
                        ends_at: TimestampMs(midnight + i64::from(end_hour) * HOUR_MS),
                        egress_ms: 45 * MINUTE_MS,
                        riders,
                    });
                }
            }
            let prev = self.weather_plan.last().copied().unwrap_or(Weather::Dry);
            // A two-state Markov chain: showers start rarely and pass within hours.
            let next = match prev {
                Weather::Dry if self.weather_rng.random_bool(0.03) => Weather::Rain,
                Weather::Rain if self.weather_rng.random_bool(0.35) => Weather::Dry,
                w => w,
            };
            self.weather_plan.push(next);
            // 21 °C on an average early-summer day, 4 °C warmer mid-afternoon than at dawn.
            let diurnal =
                4.0 * ((f64::from(local_hour) - 9.0) / 24.0 * std::f64::consts::TAU).sin();
            let wet = if next == Weather::Rain { -2.0 } else { 0.0 };
            self.temp_plan
                .push(21.0 + self.temp_anomaly + diurnal + wet);
        }
    }

    /// Counters per hour so far.
    #[must_use]
    pub fn hours(&self) -> &[HourStats] {
        &self.hours
    }

    /// Running totals.
    #[must_use]
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Ground truth recorded so far.
    #[must_use]
    pub fn truth(&self) -> &GroundTruth {
        &self.truth
    }

    /// Messages held back (reordered) and not yet delivered.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Vehicles on a trip right now.
    #[must_use]
    pub fn trips_in_progress(&self) -> usize {
        self.on_trip.len()
    }

    /// The lifecycle changes that put the fleet into service at the start (one per vehicle).
    #[must_use]
    pub fn deployment(&self) -> Vec<Outgoing> {
        self.vehicles
            .iter()
            .map(|v| lifecycle_msg(v, Step::Deploy, self.now))
            .collect()
    }

    fn local(&self, t: i64) -> (u32, bool) {
        let local = t + i64::from(self.city.utc_offset_min) * MINUTE_MS;
        let hour = u32::try_from(local.rem_euclid(DAY_MS) / HOUR_MS).unwrap_or(0);
        // 1970-01-01 was a Thursday; 0 = Sunday.
        let weekday = (local.div_euclid(DAY_MS) + 4).rem_euclid(7);
        (hour, weekday == 0 || weekday == 6)
    }

    fn pick_type(&self, rng: &mut ChaCha8Rng) -> VehicleType {
        let m = self.cfg.mix;
        let total = m.scooter + m.ebike + m.car + m.van;
        let x = rng.random_range(0.0..total.max(f64::MIN_POSITIVE));
        if x < m.scooter {
            VehicleType::Scooter
        } else if x < m.scooter + m.ebike {
            VehicleType::Ebike
        } else if x < m.scooter + m.ebike + m.car {
            VehicleType::Car
        } else {
            VehicleType::Van
        }
    }

    fn pick_hotspot(
        &self,
        rng: &mut ChaCha8Rng,
        factor: impl Fn(&crate::city::Hotspot) -> f64,
    ) -> usize {
        let total: f64 = self
            .city
            .hotspots
            .iter()
            .map(|h| h.weight * factor(h))
            .sum();
        if total <= 0.0 {
            return rng.random_range(0..self.city.hotspots.len().max(1));
        }
        let mut x = rng.random_range(0.0..total);
        for (i, h) in self.city.hotspots.iter().enumerate() {
            x -= h.weight * factor(h);
            if x < 0.0 {
                return i;
            }
        }
        self.city.hotspots.len() - 1
    }

    /// A point around a hotspot, inside the operating area.
    fn around(&self, rng: &mut ChaCha8Rng, h: usize) -> LatLon {
        let spot = &self.city.hotspots[h];
        for _ in 0..8 {
            let (dn, de) = (gauss(rng, spot.radius_m), gauss(rng, spot.radius_m));
            let q = offset(spot.center, dn, de);
            if self.city.contains(q) {
                return q;
            }
        }
        spot.center
    }

    /// A uniformly random point in the operating area.
    fn anywhere(&self, rng: &mut ChaCha8Rng) -> LatLon {
        let (sw, ne) = self.city.bounds();
        for _ in 0..32 {
            let q = LatLon::new(
                rng.random_range(sw.lat()..ne.lat()),
                rng.random_range(sw.lon()..ne.lon()),
            )
            .unwrap_or(sw);
            if self.city.contains(q) {
                return q;
            }
        }
        self.city.hotspots.first().map_or(sw, |h| h.center)
    }

    /// Advances the simulated clock to `until`, delivering what happens on the way.
    pub fn advance_to(&mut self, until: TimestampMs, platform: &mut impl Platform) {
        let tick = i64::from(self.cfg.tick_s.max(1)) * 1_000;
        self.plan_weather(until.0);
        while self.now + tick <= until.0 {
            self.now += tick;
            self.step(tick, platform);
        }
    }

    /// Delivers every message still held back (call once the run is over: "messages stop"),
    /// and brings offline vehicles back so they report their current state.
    pub fn flush(&mut self, platform: &mut impl Platform) {
        for k in 0..self.vehicles.len() {
            if self.vehicles[k].offline_until.take().is_some() {
                self.report(k, platform);
            }
        }
        while let Some(Reverse(p)) = self.queue.pop() {
            if let Some(msg) = self.held[p.slot].take() {
                self.free_slots.push(p.slot);
                platform.deliver(&msg, TimestampMs(self.now.max(p.deliver_at)));
            }
        }
    }

    fn step(&mut self, tick: i64, platform: &mut impl Platform) {
        let now = self.now;
        self.roll_hour(now);
        if self.cfg.demand_only {
            self.demand(tick, platform);
            return;
        }
        // 1. Held-back messages that are due.
        while let Some(Reverse(p)) = self.queue.peek() {
            if p.deliver_at > now {
                break;
            }
            let slot = p.slot;
            self.queue.pop();
            if let Some(msg) = self.held[slot].take() {
                self.free_slots.push(slot);
                platform.deliver(&msg, TimestampMs(now));
            }
        }
        // 2. Trips in progress move; finished ones end.
        let riding = std::mem::take(&mut self.on_trip);
        let mut still = Vec::with_capacity(riding.len());
        for k in riding {
            if self.ride(k, platform) {
                still.push(k);
            }
        }
        self.on_trip = still;
        // 3. Parked vehicles: heartbeats, idle drain, connectivity.
        let tick_h = tick as f64 / HOUR_MS as f64;
        let offline_p = (self.cfg.faults.offline_per_hour * tick_h).clamp(0.0, 1.0);
        for k in 0..self.vehicles.len() {
            if offline_p > 0.0
                && self.vehicles[k].offline_until.is_none()
                && self.rng.random_bool(offline_p)
            {
                let mean = self.cfg.faults.offline_mean_s.max(1.0);
                let secs = Exp::new(1.0 / mean).map_or(mean, |d| d.sample(&mut self.rng));
                #[allow(clippy::cast_possible_truncation)]
                let until = now + (secs * 1_000.0) as i64;
                self.vehicles[k].offline_until = Some(until);
                self.totals.offline_periods += 1;
            }
            if let Some(until) = self.vehicles[k].offline_until
                && until <= now
            {
                self.vehicles[k].offline_until = None;
                // Back online: say where it is now.
                self.report(k, platform);
            }
            let v = &mut self.vehicles[k];
            if v.activity != Activity::OnTrip && v.activity != Activity::WithStaff {
                // The IoT module draws a little power when parked.
                v.battery = (v.battery - 0.3 * tick_h).max(0.0);
                if v.activity == Activity::Available && v.battery < FLAT_PCT {
                    v.activity = Activity::LowBattery;
                    self.totals.went_flat += 1;
                    platform.deliver(&lifecycle_msg(v, Step::Flat, now), TimestampMs(now));
                }
                if self.vehicles[k].next_report <= now {
                    self.report(k, platform);
                }
            }
        }
        // 4. Riders.
        self.demand(tick, platform);
        // 5. Staff.
        if self.ops.is_some() {
            self.ops_step(platform);
        }
    }

    pub(crate) fn rng_bool(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    pub(crate) fn report_now(&mut self, k: usize, platform: &mut impl Platform) {
        self.report(k, platform);
    }

    fn roll_hour(&mut self, now: i64) {
        // A tick covers (now - tick, now]: it belongs to the hour its first instant is in.
        let now = now - 1;
        let index = u32::try_from((now - self.cfg.start.0).max(0) / HOUR_MS).unwrap_or(0);
        if self.hours.last().is_none_or(|h| h.hour != index) {
            self.weather = self
                .weather_plan
                .get(index as usize)
                .copied()
                .unwrap_or(Weather::Dry);
            let (local_hour, _) = self.local(now);
            self.hours.push(HourStats {
                hour: index,
                local_hour,
                rain: self.weather == Weather::Rain,
                ..HourStats::default()
            });
        }
    }

    /// Requests per hour on a dry weekday at this local hour, as a share of the day.
    fn hour_share(hour: u32, weekend: bool) -> f64 {
        const WEEKDAY: [f64; 24] = [
            0.6, 0.4, 0.3, 0.2, 0.2, 0.4, 1.2, 3.0, 5.5, 4.8, 3.6, 3.8, 4.6, 5.2, 4.8, 4.4, 5.0,
            6.2, 7.0, 6.2, 4.8, 3.8, 2.6, 1.6,
        ];
        const WEEKEND: [f64; 24] = [
            1.6, 1.4, 1.0, 0.6, 0.3, 0.3, 0.4, 0.8, 1.6, 2.8, 4.2, 5.2, 5.8, 6.0, 5.8, 5.6, 5.6,
            5.8, 5.6, 5.0, 4.2, 3.6, 3.0, 2.4,
        ];
        let table = if weekend { &WEEKEND } else { &WEEKDAY };
        let sum: f64 = table.iter().sum();
        table[hour as usize % 24] / sum
    }

    fn demand(&mut self, tick: i64, platform: &mut impl Platform) {
        let (hour, weekend) = self.local(self.now);
        let mut per_day = self.cfg.demand_per_vehicle_day * f64::from(self.cfg.vehicles);
        if weekend {
            per_day *= 0.9;
        }
        if self.weather == Weather::Rain {
            per_day *= 0.5;
        }
        // Warm days bring riders out, cool ones keep them in.
        let temp = self.temperature_at(TimestampMs(self.now)).unwrap_or(21.0);
        per_day *= (1.0 + 0.035 * (temp - 21.0)).clamp(0.55, 1.35);
        // Crowds leaving events.
        let mut extra: Vec<(LatLon, f64)> = Vec::new();
        for e in &self.events {
            if e.ends_at.0 < self.now && self.now <= e.ends_at.0 + e.egress_ms {
                extra.push((e.venue, e.riders * tick as f64 / e.egress_ms as f64));
            }
        }
        for (venue, expected) in extra {
            let n = Poisson::new(expected).map_or(0.0, |d| d.sample(&mut self.rng));
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            for _ in 0..(n as u32) {
                let (dn, de) = (gauss(&mut self.rng, 200.0), gauss(&mut self.rng, 200.0));
                let at = offset(venue, dn, de);
                self.request(hour, weekend, Some(at), platform);
            }
        }
        let expected = per_day * Self::hour_share(hour, weekend) * tick as f64 / HOUR_MS as f64;
        let n = if expected > 0.0 {
            Poisson::new(expected).map_or(0.0, |d| d.sample(&mut self.rng))
        } else {
            0.0
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        for _ in 0..(n as u32) {
            self.request(hour, weekend, None, platform);
        }
    }

    fn request(
        &mut self,
        hour: u32,
        weekend: bool,
        at: Option<LatLon>,
        platform: &mut impl Platform,
    ) {
        let mut rng = std::mem::replace(&mut self.rng, ChaCha8Rng::seed_from_u64(0));
        let origin = if let Some(at) = at {
            at
        } else if rng.random_bool(self.cfg.background_share.clamp(0.0, 1.0)) {
            self.anywhere(&mut rng)
        } else {
            let h = self.pick_hotspot(&mut rng, |h| h.kind.produces(hour, weekend));
            self.around(&mut rng, h)
        };
        // A gravity model: people go to attractive places, and rather to near ones.
        let dest_h = self.pick_hotspot(&mut rng, |h| {
            h.kind.attracts(hour, weekend) * (-h.center.distance_m(&origin) / TRIP_DECAY_M).exp()
        });
        let destination = self.around(&mut rng, dest_h);
        // One rider in ten wants a car or van (longer trips, loads).
        let wants_car = rng.random_bool(0.1);
        let crash_roll = rng.random_bool(self.cfg.crash_per_trip.clamp(0.0, 1.0));
        let crash_frac = rng.random_range(0.2..0.9);
        let crash_g = rng.random_range(6.0..16.0);
        self.rng = rng;

        let district = self.city.district_of(origin);
        self.demand_log.record(self.now, origin);
        self.totals.demand += 1;
        self.totals.demand_by_district[district] += 1;
        if let Some(h) = self.hours.last_mut() {
            h.demand += 1;
        }
        if self.cfg.demand_only {
            #[allow(clippy::cast_possible_truncation)]
            let ride_ms = ((origin.distance_m(&destination) * 1.3).max(300.0)
                / speed_m_s(VehicleType::Scooter)
                * 1_000.0) as i64
                + 60_000;
            self.returns_log.record(self.now + ride_ms, destination);
            return;
        }
        let (types, radius) = if wants_car {
            (
                TypeMask::of(&[VehicleType::Car, VehicleType::Van]),
                self.cfg.car_walk_radius_m,
            )
        } else {
            (
                TypeMask::of(&[VehicleType::Scooter, VehicleType::Ebike]),
                self.cfg.walk_radius_m,
            )
        };
        let q = NearbyQuery {
            center: origin,
            radius_m: radius,
            limit: 5,
            types,
            min_battery: if wants_car { 20 } else { 15 },
            state: StateFilter::Only(VehicleState::Available),
        };
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        platform.search(&q, &mut hits);
        // The rider walks to the first vehicle that is really there and rentable (the
        // platform's view can lag the truth by a report interval, or a vehicle may be offline).
        let chosen = hits.iter().find_map(|hit| {
            let k = self.vehicle_index(&hit.id)?;
            let v = &self.vehicles[k];
            let walk = v.position.distance_m(&origin);
            (v.activity == Activity::Available
                && v.battery >= f64::from(rentable_battery(v.vehicle_type))
                && walk <= radius + 50.0)
                .then_some((k, walk))
        });
        let had_hits = !hits.is_empty();
        self.hits = hits;
        let Some((k, walk)) = chosen else {
            self.totals.lost += 1;
            if had_hits {
                self.totals.lost_phantom += 1;
            }
            self.totals.lost_by_district[district] += 1;
            if let Some(h) = self.hours.last_mut() {
                h.lost += 1;
            }
            return;
        };
        self.totals.served += 1;
        self.totals.walk_m_sum += walk;
        if let Some(h) = self.hours.last_mut() {
            h.served += 1;
        }
        // Relocation incentives may send the rider to a neighbouring zone short of vehicles.
        let destination = self.incentive(destination);
        let multiplier = self.price_at(origin);
        let now = self.now;
        let v = &mut self.vehicles[k];
        let distance_m = (v.position.distance_m(&destination) * 1.3).max(300.0);
        #[allow(clippy::cast_possible_truncation)]
        let duration = (distance_m / speed_m_s(v.vehicle_type) * 1_000.0) as i64 + 60_000;
        #[allow(clippy::cast_possible_truncation)]
        let crash_at = crash_roll.then(|| now + (duration as f64 * crash_frac) as i64);
        v.trip = Some(Trip {
            from: v.position,
            to: destination,
            start: now,
            end: now + duration,
            distance_m,
            crash_at,
            crash_g,
            multiplier,
        });
        v.activity = Activity::OnTrip;
        platform.deliver(&lifecycle_msg(v, Step::TripStart, now), TimestampMs(now));
        self.on_trip.push(k);
        self.report(k, platform);
    }

    fn vehicle_index(&self, id: &VehicleId) -> Option<usize> {
        // Ids embed the vehicle's index in their low 64 bits (see `Sim::new`).
        let k = usize::try_from(id.as_uuid().as_u128() as u64).ok()?;
        (self.vehicles.get(k)?.id == *id).then_some(k)
    }

    /// Moves a riding vehicle; returns whether the trip goes on.
    fn ride(&mut self, k: usize, platform: &mut impl Platform) -> bool {
        let now = self.now;
        let days = (now - self.cfg.start.0) as f64 / DAY_MS as f64;
        let v = &mut self.vehicles[k];
        let Some(trip) = v.trip.clone() else {
            v.activity = Activity::Available;
            return false;
        };
        let crashed = trip.crash_at.is_some_and(|c| c <= now);
        let end = if crashed {
            trip.crash_at.unwrap_or(trip.end)
        } else {
            trip.end
        };
        let t = ((now.min(end) - trip.start) as f64 / (trip.end - trip.start).max(1) as f64)
            .clamp(0.0, 1.0);
        let before = v.position;
        v.position = LatLon::new(
            trip.from.lat() + (trip.to.lat() - trip.from.lat()) * t,
            trip.from.lon() + (trip.to.lon() - trip.from.lon()) * t,
        )
        .unwrap_or(before);
        let moved = (before.distance_m(&v.position) * 1.3).max(0.0);
        v.odometer_m += moved;
        v.drain_factor = 1.0 + v.degrade_per_day * days;
        v.battery = (v.battery - moved / range_m(v.vehicle_type) * 100.0 * v.drain_factor).max(0.0);
        if now < end {
            if now >= v.next_report {
                self.report(k, platform);
            }
            return true;
        }
        // The trip ends: here, or where the rider fell.
        let minutes = (end - trip.start) as f64 / 60_000.0;
        self.totals.trips_completed += 1;
        self.totals.on_trip_ms += end - trip.start;
        self.totals.trip_m_sum += trip.distance_m * t;
        #[allow(clippy::cast_possible_truncation)]
        {
            self.totals.revenue_cents +=
                (fare_cents(v.vehicle_type, minutes) as f64 * trip.multiplier).round() as i64;
        }
        v.trip = None;
        let flat = v.battery < FLAT_PCT;
        v.activity = if flat {
            Activity::LowBattery
        } else {
            Activity::Available
        };
        let (id, position) = (v.id, v.position);
        self.returns_log.record(now, position);
        if crashed {
            let g = trip.crash_g;
            self.truth.crashes.push(Crash {
                vehicle: id,
                at: TimestampMs(now),
                position,
                peak_g: g,
            });
            platform.deliver(
                &Outgoing::Imu {
                    vehicle: id,
                    at: TimestampMs(now),
                    peak_g: g,
                    position,
                },
                TimestampMs(now),
            );
        }
        let step = if flat {
            self.totals.went_flat += 1;
            Step::TripEndFlat
        } else {
            Step::TripEnd
        };
        platform.deliver(
            &lifecycle_msg(&self.vehicles[k], step, now),
            TimestampMs(now),
        );
        self.report(k, platform);
        false
    }

    /// The vehicle reports its state (unless offline), through the fault model.
    fn report(&mut self, k: usize, platform: &mut impl Platform) {
        let now = self.now;
        let jitter = self.cfg.faults.gps_jitter_m;
        let v = &self.vehicles[k];
        let interval = if v.activity == Activity::OnTrip {
            self.cfg.report_moving_s
        } else {
            self.cfg.report_idle_s
        };
        let next = now + i64::from(interval.max(1)) * 1_000;
        if v.offline_until.is_some() {
            self.vehicles[k].next_report = next;
            return;
        }
        let (dn, de) = (gauss(&mut self.rng, jitter), gauss(&mut self.rng, jitter));
        let v = &mut self.vehicles[k];
        let ts = now.max(v.last_ts + 1);
        v.last_ts = ts;
        v.next_report = next;
        let on_trip = v.activity == Activity::OnTrip;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let report = Telemetry {
            vehicle_id: v.id,
            at: TimestampMs(ts),
            position: offset(v.position, dn, de),
            battery: BatteryPct::new(v.battery.round().clamp(0.0, 100.0) as i64).ok(),
            speed_m_s: Some(if on_trip {
                speed_m_s(v.vehicle_type) as f32
            } else {
                0.0
            }),
            heading_deg: None,
            odometer_m: Some(v.odometer_m.min(f64::from(u32::MAX)) as u32),
            locked: Some(!on_trip),
            error_codes: Vec::new(),
        };
        v.last_report = Some(report.clone());
        self.send(Outgoing::Telemetry(report), platform);
    }

    /// Hands a message to the platform through the fault model.
    fn send(&mut self, msg: Outgoing, platform: &mut impl Platform) {
        let now = self.now;
        let f = self.cfg.faults;
        let duplicate = f.duplicate > 0.0 && self.rng.random_bool(f.duplicate.clamp(0.0, 1.0));
        let reorder = f.reorder > 0.0 && self.rng.random_bool(f.reorder.clamp(0.0, 1.0));
        if reorder {
            let delay = self.rng.random_range(1_000..15_000);
            self.totals.reordered += 1;
            self.hold(msg.clone(), now + delay);
        } else {
            self.totals.messages += 1;
            platform.deliver(&msg, TimestampMs(now));
        }
        if duplicate {
            let delay = self.rng.random_range(0..2_000);
            self.totals.duplicated += 1;
            self.hold(msg, now + delay);
        }
    }

    fn hold(&mut self, msg: Outgoing, deliver_at: i64) {
        self.totals.messages += 1;
        let slot = if let Some(s) = self.free_slots.pop() {
            self.held[s] = Some(msg);
            s
        } else {
            self.held.push(Some(msg));
            self.held.len() - 1
        };
        self.seq += 1;
        self.queue.push(Reverse(Pending {
            deliver_at,
            seq: self.seq,
            slot,
        }));
    }
}

/// A normally distributed offset with this standard deviation (0 when it is not positive).
fn gauss(rng: &mut ChaCha8Rng, sd: f64) -> f64 {
    if sd > 0.0 && sd.is_finite() {
        let z: f64 = rng.sample(StandardNormal);
        z * sd
    } else {
        0.0
    }
}
