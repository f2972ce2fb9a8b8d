//! Field operations in the simulated city: staff vans that swap batteries and move vehicles, run
//! by one of two policies, so the intelligence can be measured against what operators do
//! without it.
//!
//! - [`Policy::Reactive`], the baseline: a van goes to the nearest vehicle whose battery fell
//!   below 20 % and swaps it, then the next; no forecasting, no moves, no incentives.
//! - [`Policy::Forecast`]: every planning period, the demand model forecasts each H3 zone's
//!   requests for the next two hours; zones short of vehicles get moves from zones with spare
//!   ones, batteries are swapped where riders will need them (prioritised by forecast demand),
//!   flat vehicles in quiet zones are picked up, swapped and brought to where they are short,
//!   and the vans' routes come from the vehicle-routing solver. Riders are offered a credit for
//!   ending trips in zones that are short, within a daily budget, and prices follow forecast
//!   demand against supply.
//!
//! The model is retrained every night on everything seen so far and kept only if it beats the
//! current one on the last two days (the registry decides).

use std::collections::{BTreeMap, VecDeque};

use h3o::CellIndex;
use mobility_core::LatLon;
use mobility_intel::{
    ForecastConfig, Registry, Series,
    pricing::{Budget, PricingConfig},
};
use serde::Serialize;

const HOUR_MS: i64 = 3_600_000;

/// How the operator runs the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Swap every battery that falls below the threshold, nearest first.
    Reactive,
    /// Forecast-driven tasks, routed vans, incentives and prices.
    Forecast,
}

/// Field operations settings.
#[derive(Debug, Clone, Serialize)]
pub struct OpsConfig {
    /// The policy.
    pub policy: Policy,
    /// Staff vans.
    pub vans: u32,
    /// Van speed in city traffic, m/s.
    pub speed_m_s: f64,
    /// Road distance over straight-line distance.
    pub detour: f64,
    /// Time to swap a battery, s.
    pub swap_s: f64,
    /// Time to load or unload a vehicle, s.
    pub handle_s: f64,
    /// Time to reload packs at the depot, s.
    pub reload_s: f64,
    /// Charged packs a van carries.
    pub packs: i32,
    /// Vehicles a van carries.
    pub van_vehicles: i32,
    /// Shift, local hours [start, end).
    pub shift: (u32, u32),
    /// Reactive: swap below this battery, percent.
    pub reactive_threshold: f64,
    /// Forecast: swap below this battery where riders are expected, percent.
    pub swap_threshold: f64,
    /// Forecast: planning period, ms.
    pub plan_every_ms: i64,
    /// Forecast: solver generations per plan.
    pub generations: usize,
    /// Pricing and incentives.
    pub pricing: PricingConfig,
    /// Probability that a rider offered a credit ends the trip in the zone that is short.
    pub incentive_accept: f64,
    /// Price with forecast returns counted as arriving supply (an experiment: it loses more
    /// demand, see docs/benchmarks.md; off by default, and the platform does not).
    pub use_returns: bool,
}

impl OpsConfig {
    /// Defaults for a fleet: one van per 150 vehicles (two people swapping and moving), on
    /// shift 06:00–22:00.
    #[must_use]
    pub fn new(policy: Policy, fleet: u32) -> Self {
        Self {
            policy,
            vans: (fleet / 150).max(1),
            speed_m_s: 6.0,
            detour: 1.35,
            swap_s: 90.0,
            handle_s: 60.0,
            reload_s: 300.0,
            packs: 40,
            van_vehicles: 10,
            shift: (6, 22),
            reactive_threshold: 20.0,
            swap_threshold: 18.0,
            plan_every_ms: HOUR_MS,
            generations: 120,
            pricing: PricingConfig::default(),
            incentive_accept: 0.4,
            use_returns: false,
        }
    }
}

/// What operations did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpsStats {
    /// Kilometres driven by vans.
    pub staff_km: f64,
    /// Batteries swapped.
    pub swaps: u64,
    /// Vehicles moved.
    pub moves: u64,
    /// Plans made (forecast policy).
    pub plans: u64,
    /// Jobs the solver could not fit.
    pub unassigned_jobs: u64,
    /// Riders who took a relocation credit.
    pub incentives_accepted: u64,
    /// Credits paid, cents.
    pub incentives_cents: i64,
    /// Offers declined by riders or refused by the budget.
    pub incentives_declined: u64,
    /// Model versions trained, and of those promoted.
    pub models_trained: u32,
    /// Model versions promoted.
    pub models_promoted: u32,
    /// Mean price multiplier over trips started.
    pub mean_multiplier: f64,
    pub(crate) multiplier_sum: f64,
    pub(crate) multiplier_n: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Task {
    Swap(usize, LatLon),
    Pickup(usize, LatLon),
    Drop(usize, LatLon),
    Reload,
    Home,
}

#[derive(Debug, Clone)]
pub(crate) struct Van {
    pub(crate) pos: LatLon,
    pub(crate) packs: i32,
    pub(crate) carrying: Vec<usize>,
    pub(crate) queue: VecDeque<Task>,
    pub(crate) current: Option<(Task, LatLon)>,
    pub(crate) done_at: i64,
    pub(crate) idle_until: i64,
}

/// Field operations state.
#[derive(Debug)]
pub struct Ops {
    pub(crate) cfg: OpsConfig,
    pub(crate) depot: LatLon,
    pub(crate) vans: Vec<Van>,
    pub(crate) claimed: Vec<bool>,
    pub(crate) registry: Registry,
    pub(crate) history: Option<Series>,
    /// Returns: their own model and history.
    pub(crate) returns_registry: Registry,
    pub(crate) returns_history: Option<Series>,
    pub(crate) forecast_cfg: ForecastConfig,
    pub(crate) balance: BTreeMap<CellIndex, i32>,
    pub(crate) prices: BTreeMap<CellIndex, f64>,
    pub(crate) budget: Budget,
    pub(crate) next_plan: i64,
    pub(crate) last_retrain_day: i64,
    /// What operations did.
    pub stats: OpsStats,
}
