//! Staff-van routing for a shared e-scooter fleet, solved with [`vrp_core`].
//!
//! # Model
//!
//! * Distances: one routing matrix over the distinct locations (van starts, depots, job points),
//!   `road_m = haversine × detour`; durations are `distance / speed`.
//! * Capacity has two dimensions, `[vehicle slots, battery packs]`:
//!   * `Swap` is a *static delivery* of one pack (loaded at the route start or at a reload),
//!   * `Move` is a pickup/delivery pair (`from` → `to`) of one vehicle slot,
//!   * `Collect` is a *static pickup* of one vehicle slot, unloaded at the next depot visit
//!     (a reload stop or the end of the route, which is always the van's depot).
//! * Reloads (multi-trip): each van may return to its depot in the middle of its route
//!   ([`StopKind::Reload`]); there it refills packs up to `pack_capacity` and unloads collected
//!   vehicles. A reload stop takes [`RELOAD_SERVICE_S`] seconds; at most 6 reloads per van and
//!   plan. Vehicles being *moved* stay on board across a reload. A returned (spent) pack does not
//!   take space. `vrp-core` checks a move's pickup against the van's load until the end of the
//!   route (conservative when a reload follows).
//! * Packs on board at the start (`packs_on_board < pack_capacity`) are modelled by a hidden,
//!   zero-duration "start" job locked at the first position of the van's route, which occupies
//!   `pack_capacity − packs_on_board` pack slots until the first reload. It also makes every van's
//!   route exist from the start, which keeps the solver deterministic (see below).
//! * Shift: every van starts at `start` at time 0 and must arrive at its `depot` by
//!   `shift_left_s` (hard time constraint). Vans that cannot even drive from `start` to `depot`
//!   in time get no work.
//! * Objective (lexicographic): minimise the total value of unassigned jobs, then the total
//!   distance. Values are rounded to 1/1000 inside the objective so that sums are exact whatever
//!   the summation order (a job of value 0 may be left unassigned).
//!
//! # Determinism
//!
//! `vrp-core` is not reproducible out of the box (thread scheduling, hash-set iteration order of
//! pointer-hashed jobs, time-based quotas and time-based operator rewards). This module therefore:
//! * runs the whole solve on a fresh single-thread rayon pool,
//! * uses a counter-based random generator seeded from [`Settings::seed`] (the few places where
//!   `vrp-core` asks for a raw RNG get rosomaxa's repeatable thread-local generator, which is fresh
//!   on the new thread and advanced by a seed-dependent amount),
//! * uses a *static* hyper-heuristic, its own population (best + current with annealing
//!   acceptance driven by the generation count) and bounded generations only: no wall-clock
//!   limits anywhere (no decompose search, no swap-star, no dynamic selective: they all measure time),
//! * uses its own ruin operators (the built-in ones rely on a tabu list that evicts entries in
//!   hash-set order) and only recreate/local-search operators that do not depend on hash order,
//! * keeps the solver's work lists (`required`, `ignored`) sorted by a stable job key.
//!
//! # Search
//!
//! Ruin and recreate: remove up to 20 jobs (related to a random assigned or valuable unassigned
//! job, strings of consecutive stops, worst detours, random, or a whole route), then re-insert
//! them one by one (random or value order, SISR-style with blinks) at the cheapest position in the
//! routes passing closest to each job (plus idle routes). Previously unassigned jobs closest to
//! the ruined area are retried too. A candidate replaces the current solution when it leaves less
//! value unassigned, or by simulated annealing on value and distance; the best one is returned.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use vrp_core::construction::features::{
    MinimizeUnassignedBuilder, ReloadFeatureFactory, TransportFeatureBuilder,
    create_locked_jobs_feature,
};
use vrp_core::construction::heuristics::{
    BestResultSelector, BlinkResultSelector, InsertionContext, InsertionHeuristic, JobSelector,
    LegSelection, MoveContext, ResultSelection, RouteContext, RouteSelector, SolutionContext,
    UnassignmentInfo,
};
use vrp_core::models::common::{Demand, MultiDimLoad};
use vrp_core::models::problem::{
    Actor, Job as CoreJob, MultiBuilder, SimpleTransportCost, Single, SingleBuilder, TransportCost,
    VehicleBuilder, VehicleDetailBuilder,
};
use vrp_core::models::solution::Route as CoreRoute;
use vrp_core::models::{
    ConstraintViolation, Feature, FeatureBuilder, FeatureConstraint, FeatureState, GoalContext,
    GoalContextBuilder, Lock, LockDetail, LockOrder, LockPosition, Problem, ProblemBuilder,
    ViolationCode,
};
use vrp_core::rosomaxa::evolution::{ProcessingConfig, TelemetryMode};
use vrp_core::rosomaxa::hyper::StaticSelective;
use vrp_core::rosomaxa::population::{HeuristicPopulation, SelectionPhase};
use vrp_core::rosomaxa::prelude::{HeuristicObjective, HeuristicSolution, HeuristicStatistics};
use vrp_core::rosomaxa::utils::{
    DefaultRandom, Environment, Float, Parallelism, Random, RandomGen,
};
use vrp_core::solver::search::{
    CompositeLocalOperator, ConfigurableRecreate, ExchangeSequence, LocalSearch, Recreate, Ruin,
    RuinAndRecreate, WeightedHeuristicOperator, WeightedRecreate,
};
use vrp_core::solver::{
    ProblemConfigBuilder, RecreateInitialOperator, RefinementContext, Solver, TargetHeuristicGroup,
    TargetSearchOperator, create_scalar_operator_probability,
};

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// A point, WGS84 degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

/// A staff van for one planning period.
#[derive(Debug, Clone)]
pub struct Van {
    pub id: String,
    /// Where the van is now (start of its route).
    pub start: Point,
    /// The depot where it reloads battery packs and unloads vehicles, and where its shift ends.
    pub depot: Point,
    /// Vehicles it can carry at once (for moves).
    pub vehicle_capacity: i32,
    /// Charged battery packs on board at the start.
    ///
    /// Values above `pack_capacity` are clamped to `pack_capacity` (the model cannot represent an
    /// overloaded van).
    pub packs_on_board: i32,
    /// Packs it can carry after a reload at the depot.
    pub pack_capacity: i32,
    /// Seconds from the planning instant until the shift ends (the van must be back at the depot by then).
    pub shift_left_s: f64,
}

/// Work to do.
#[derive(Debug, Clone)]
pub enum Job {
    /// Swap the battery of the vehicle at `at` (uses one pack).
    Swap {
        id: String,
        at: Point,
        service_s: f64,
        value: f64,
    },
    /// Move a vehicle from `from` to `to` (occupies one vehicle slot between the two).
    ///
    /// `service_s` is spent at the pickup and again at the drop-off.
    Move {
        id: String,
        from: Point,
        to: Point,
        service_s: f64,
        value: f64,
    },
    /// Collect a vehicle for repair and bring it to the van's depot (occupies one vehicle slot until the depot).
    Collect {
        id: String,
        at: Point,
        service_s: f64,
        value: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum StopKind {
    Swap,
    Pickup,
    Dropoff,
    Collect,
    Reload,
    Depot,
}

#[derive(Debug, Clone)]
pub struct Stop {
    pub job_id: Option<String>,
    pub kind: StopKind,
    pub at: Point,
    pub arrival_s: f64,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub van_id: String,
    pub stops: Vec<Stop>,
    pub distance_m: f64,
    pub duration_s: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub routes: Vec<Route>,
    pub unassigned: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Road speed of vans, m/s (city traffic; e.g. 6.0).
    pub speed_m_s: f64,
    /// Road distance = great-circle distance × this (e.g. 1.35).
    pub detour: f64,
    /// Solver generations (bounded work, no wall-clock limit, so that results are reproducible).
    pub generations: usize,
    /// Seed for the solver's randomness.
    pub seed: u64,
}

/// Service time of a reload stop at the depot (refill packs, unload collected vehicles), seconds.
pub const RELOAD_SERVICE_S: f64 = 300.0;

/// Mean Earth radius used by [`road_m`], metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Upper bound of reload stops offered to one van per plan.
const MAX_RELOADS_PER_VAN: usize = 6;

/// Plans the vans' routes. Deterministic: same input and settings, same plan (bit for bit), whatever the machine load.
/// Objective: serve as much job value as possible (unassigned jobs cost their value), then minimise distance.
///
/// Routes are returned in the order of `vans`, only for vans that serve at least one job; each
/// route lists its stops in visiting order (the start position is not a stop; the last stop is
/// always [`StopKind::Depot`]). `unassigned` keeps the order of `jobs`.
///
/// `settings.generations == 0` is treated as 1 (initial construction plus one improvement step).
pub fn plan(vans: &[Van], jobs: &[Job], settings: &Settings) -> Result<Plan, String> {
    validate(vans, jobs, settings)?;

    let usable_vans: Vec<usize> = (0..vans.len())
        .filter(|&idx| {
            let van = &vans[idx];
            van.shift_left_s >= road_m(van.start, van.depot, settings) / settings.speed_m_s
        })
        .collect();

    if jobs.is_empty() || usable_vans.is_empty() {
        return Ok(Plan {
            routes: vec![],
            unassigned: jobs.iter().map(|job| job_id(job).to_string()).collect(),
        });
    }

    let seed = settings.seed;
    let generations = settings.generations;
    let input = Input {
        vans,
        jobs,
        settings,
        usable_vans: &usable_vans,
    };

    // NOTE: a fresh single-thread pool: rayon-parallel code inside vrp-core runs sequentially and
    // deterministically, and rosomaxa's thread-local repeatable RNG starts from its fixed state.
    let result = catch_unwind(AssertUnwindSafe(|| {
        Parallelism::new(1, 1).thread_pool_execute(0, || {
            // mix the seed into the thread-local repeatable generator used by `Random::get_rng`
            let thread_rng = DefaultRandom::new_repeatable();
            for _ in 0..(seed % 997) {
                thread_rng.is_head_not_tails();
            }
            solve(&input, seed, generations)
        })
    }));

    match result {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(format!("vrp solver panicked: {msg}"))
        }
    }
}

/// Road distance in metres between two points under these settings (haversine × detour).
/// Great-circle distance, metres.
#[must_use]
pub fn distance_m(a: Point, b: Point) -> f64 {
    haversine_m(a, b)
}

pub fn road_m(a: Point, b: Point, s: &Settings) -> f64 {
    haversine_m(a, b) * s.detour
}

// ---------------------------------------------------------------------------------------------
// Internals: input handling
// ---------------------------------------------------------------------------------------------

struct Input<'a> {
    vans: &'a [Van],
    jobs: &'a [Job],
    settings: &'a Settings,
    usable_vans: &'a [usize],
}

fn haversine_m(a: Point, b: Point) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.).sin().powi(2);
    2. * EARTH_RADIUS_M * h.sqrt().min(1.).asin()
}

fn job_id(job: &Job) -> &str {
    match job {
        Job::Swap { id, .. } | Job::Move { id, .. } | Job::Collect { id, .. } => id,
    }
}

fn job_value(job: &Job) -> f64 {
    match job {
        Job::Swap { value, .. } | Job::Move { value, .. } | Job::Collect { value, .. } => *value,
    }
}

fn job_service(job: &Job) -> f64 {
    match job {
        Job::Swap { service_s, .. }
        | Job::Move { service_s, .. }
        | Job::Collect { service_s, .. } => *service_s,
    }
}

fn job_points(job: &Job) -> Vec<Point> {
    match job {
        Job::Swap { at, .. } | Job::Collect { at, .. } => vec![*at],
        Job::Move { from, to, .. } => vec![*from, *to],
    }
}

fn check_point(p: Point, what: &str) -> Result<(), String> {
    if p.lat.is_finite()
        && p.lon.is_finite()
        && (-90. ..=90.).contains(&p.lat)
        && (-180. ..=180.).contains(&p.lon)
    {
        Ok(())
    } else {
        Err(format!("invalid coordinates for {what}: {p:?}"))
    }
}

fn validate(vans: &[Van], jobs: &[Job], s: &Settings) -> Result<(), String> {
    if !(s.speed_m_s.is_finite() && s.speed_m_s > 0.) {
        return Err(format!(
            "speed_m_s must be positive and finite, got {}",
            s.speed_m_s
        ));
    }
    if !(s.detour.is_finite() && s.detour > 0.) {
        return Err(format!(
            "detour must be positive and finite, got {}",
            s.detour
        ));
    }

    let mut van_ids = std::collections::HashSet::new();
    for van in vans {
        if !van_ids.insert(van.id.as_str()) {
            return Err(format!("duplicate van id '{}'", van.id));
        }
        check_point(van.start, &format!("van '{}' start", van.id))?;
        check_point(van.depot, &format!("van '{}' depot", van.id))?;
        if van.vehicle_capacity < 0 || van.pack_capacity < 0 || van.packs_on_board < 0 {
            return Err(format!(
                "van '{}' has a negative capacity or pack count",
                van.id
            ));
        }
        if van.shift_left_s.is_nan() {
            return Err(format!("van '{}' has NaN shift_left_s", van.id));
        }
    }

    let mut job_ids = std::collections::HashSet::new();
    for job in jobs {
        let id = job_id(job);
        if !job_ids.insert(id) {
            return Err(format!("duplicate job id '{id}'"));
        }
        for p in job_points(job) {
            check_point(p, &format!("job '{id}'"))?;
        }
        let (service, value) = (job_service(job), job_value(job));
        if !(service.is_finite() && service >= 0.) {
            return Err(format!("job '{id}' has invalid service_s {service}"));
        }
        if !(value.is_finite() && value >= 0.) {
            return Err(format!("job '{id}' has invalid value {value}"));
        }
    }

    Ok(())
}

/// Distinct locations and the routing matrix over them.
struct Matrix {
    points: Vec<Point>,
    distances: Vec<f64>,
}

impl Matrix {
    fn distance(&self, from: usize, to: usize) -> f64 {
        self.distances[from * self.points.len() + to]
    }
}

#[derive(Default)]
struct LocationIndex {
    points: Vec<Point>,
    index: HashMap<(u64, u64), usize>,
}

impl LocationIndex {
    fn add(&mut self, p: Point) -> usize {
        // NOTE normalise -0.0 to 0.0 so that equal coordinates share a location
        let key = ((p.lat + 0.).to_bits(), (p.lon + 0.).to_bits());
        *self.index.entry(key).or_insert_with(|| {
            self.points.push(p);
            self.points.len() - 1
        })
    }

    fn into_matrix(self, s: &Settings) -> Matrix {
        let n = self.points.len();
        let mut distances = vec![0.; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    distances[i * n + j] = road_m(self.points[i], self.points[j], s);
                }
            }
        }
        Matrix {
            points: self.points,
            distances,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Internals: job/vehicle tags stored in vrp-core dimensions
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tag {
    Swap,
    Pickup,
    Dropoff,
    Collect,
    Reload,
    Start,
}

#[derive(Clone, Copy, Debug)]
struct JobInfo {
    /// Unique, stable ordering key (used to sort the solver's work lists).
    order: usize,
    tag: Tag,
    /// Index in the input `jobs` (real jobs) or in the input `vans` (reload/start jobs).
    owner: usize,
    /// Value in 1/1000 units (integral, so sums are exact).
    value_units: f64,
    /// Matrix index of the (first) location.
    location: usize,
}

struct JobInfoKey;
struct VanIdxKey;

fn info_of(job: &CoreJob) -> Option<&JobInfo> {
    job.dimens().get_value::<JobInfoKey, JobInfo>()
}

fn single_info(single: &Single) -> Option<&JobInfo> {
    single.dimens.get_value::<JobInfoKey, JobInfo>()
}

fn van_idx_of(actor: &Actor) -> Option<usize> {
    actor
        .vehicle
        .dimens
        .get_value::<VanIdxKey, usize>()
        .copied()
}

fn load(vehicles: i32, packs: i32) -> MultiDimLoad {
    MultiDimLoad::new(vec![vehicles, packs])
}

fn demand(
    static_pickup: MultiDimLoad,
    dynamic_pickup: MultiDimLoad,
    static_delivery: MultiDimLoad,
    dynamic_delivery: MultiDimLoad,
) -> Demand<MultiDimLoad> {
    Demand {
        pickup: (static_pickup, dynamic_pickup),
        delivery: (static_delivery, dynamic_delivery),
    }
}

// ---------------------------------------------------------------------------------------------
// Internals: solving
// ---------------------------------------------------------------------------------------------

const CODE_TIME: ViolationCode = ViolationCode(1);
const CODE_CAPACITY: ViolationCode = ViolationCode(2);
const CODE_LOCK: ViolationCode = ViolationCode(3);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn solve(input: &Input<'_>, seed: u64, generations: usize) -> Result<Plan, String> {
    let Input {
        vans,
        jobs,
        settings,
        usable_vans,
    } = *input;

    // locations: van starts and depots first, then jobs
    let mut locations = LocationIndex::default();
    let van_locs: Vec<(usize, usize)> = vans
        .iter()
        .map(|v| (locations.add(v.start), locations.add(v.depot)))
        .collect();
    let job_locs: Vec<Vec<usize>> = jobs
        .iter()
        .map(|job| {
            job_points(job)
                .into_iter()
                .map(|p| locations.add(p))
                .collect()
        })
        .collect();
    let matrix = Arc::new(locations.into_matrix(settings));

    let durations: Vec<f64> = matrix
        .distances
        .iter()
        .map(|d| d / settings.speed_m_s)
        .collect();
    let transport: Arc<dyn TransportCost> =
        Arc::new(SimpleTransportCost::new(durations, matrix.distances.clone()).map_err(err)?);

    // vehicles
    let vehicles = usable_vans
        .iter()
        .map(|&van_idx| {
            let van = &vans[van_idx];
            let (start, depot) = van_locs[van_idx];
            VehicleBuilder::default()
                .id(van.id.as_str())
                .dimension(|d| d.set_value::<VanIdxKey, usize>(van_idx))
                .add_detail(
                    VehicleDetailBuilder::default()
                        .set_start_location(start)
                        .set_start_time(0.)
                        .set_end_location(depot)
                        .set_end_time(van.shift_left_s.min(f64::MAX))
                        .build()?,
                )
                .capacity(load(van.vehicle_capacity, van.pack_capacity))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;

    // real jobs
    let zero = load(0, 0);
    let mut order = 0_usize;
    let mut next_order = || {
        order += 1;
        order
    };
    let mut core_jobs =
        Vec::with_capacity(jobs.len() + usable_vans.len() * (MAX_RELOADS_PER_VAN + 1));
    for (idx, job) in jobs.iter().enumerate() {
        let value_units = (job_value(job) * 1000.).round();
        let service = job_service(job);
        let locs = &job_locs[idx];
        let info = |tag: Tag, order: usize| JobInfo {
            order,
            tag,
            owner: idx,
            value_units,
            location: if tag == Tag::Dropoff {
                locs[locs.len() - 1]
            } else {
                locs[0]
            },
        };
        let core_job = match job {
            Job::Swap { id, .. } => SingleBuilder::default()
                .id(id)
                .demand(demand(zero, zero, load(0, 1), zero))
                .dimension(|d| d.set_value::<JobInfoKey, JobInfo>(info(Tag::Swap, next_order())))
                .location(locs[0])
                .and_then(|b| b.duration(service))
                .and_then(|b| b.build_as_job()),
            Job::Collect { id, .. } => SingleBuilder::default()
                .id(id)
                .demand(demand(load(1, 0), zero, zero, zero))
                .dimension(|d| d.set_value::<JobInfoKey, JobInfo>(info(Tag::Collect, next_order())))
                .location(locs[0])
                .and_then(|b| b.duration(service))
                .and_then(|b| b.build_as_job()),
            Job::Move { id, .. } => {
                let order = next_order();
                let pickup = SingleBuilder::default()
                    .demand(demand(zero, load(1, 0), zero, zero))
                    .dimension(|d| d.set_value::<JobInfoKey, JobInfo>(info(Tag::Pickup, order)))
                    .location(locs[0])
                    .and_then(|b| b.duration(service))
                    .and_then(|b| b.build());
                let dropoff = SingleBuilder::default()
                    .demand(demand(zero, zero, zero, load(1, 0)))
                    .dimension(|d| d.set_value::<JobInfoKey, JobInfo>(info(Tag::Dropoff, order)))
                    .location(locs[1])
                    .and_then(|b| b.duration(service))
                    .and_then(|b| b.build());
                pickup
                    .and_then(|pickup| dropoff.map(|dropoff| (pickup, dropoff)))
                    .and_then(|(pickup, dropoff)| {
                        MultiBuilder::default()
                            .id(id)
                            .dimension(|d| {
                                d.set_value::<JobInfoKey, JobInfo>(info(Tag::Pickup, order))
                            })
                            .add_job(pickup)
                            .add_job(dropoff)
                            .build_as_job()
                    })
            }
        }
        .map_err(err)?;
        core_jobs.push(core_job);
    }

    // reload jobs: enough to cover all swaps/collects (upper bound), capped
    let n_swaps = jobs
        .iter()
        .filter(|j| matches!(j, Job::Swap { .. }))
        .count();
    let n_collects = jobs
        .iter()
        .filter(|j| matches!(j, Job::Collect { .. }))
        .count();

    // start jobs (initial pack load + route pre-creation) and reloads, per usable van
    let mut start_jobs = Vec::with_capacity(usable_vans.len());
    for &van_idx in usable_vans {
        let van = &vans[van_idx];
        let (start, depot) = van_locs[van_idx];
        let on_board = van.packs_on_board.min(van.pack_capacity);
        let empty_slots = van.pack_capacity - on_board;
        let start_job = SingleBuilder::default()
            .id(&format!("__start_{}", van.id))
            .demand(demand(load(0, empty_slots), zero, zero, zero))
            .dimension(|d| {
                d.set_value::<JobInfoKey, JobInfo>(JobInfo {
                    order: next_order(),
                    tag: Tag::Start,
                    owner: van_idx,
                    value_units: 0.,
                    location: start,
                })
            })
            .location(start)
            .and_then(|b| b.build_as_job())
            .map_err(err)?;
        start_jobs.push((van_idx, start_job.clone()));
        core_jobs.push(start_job);

        let trips = |count: usize, cap: i32| {
            if count == 0 {
                0
            } else {
                count.div_ceil(cap.max(1) as usize)
            }
        };
        let reloads = (trips(n_swaps, van.pack_capacity) + trips(n_collects, van.vehicle_capacity))
            .min(MAX_RELOADS_PER_VAN);
        for r in 0..reloads {
            let reload = SingleBuilder::default()
                .id(&format!("__reload_{}_{r}", van.id))
                .dimension(|d| {
                    d.set_value::<JobInfoKey, JobInfo>(JobInfo {
                        order: next_order(),
                        tag: Tag::Reload,
                        owner: van_idx,
                        value_units: 0.,
                        location: depot,
                    })
                })
                .location(depot)
                .and_then(|b| b.duration(RELOAD_SERVICE_S))
                .and_then(|b| b.build_as_job())
                .map_err(err)?;
            core_jobs.push(reload);
        }
    }

    // goal features; the lock feature needs the fleet, which only the problem builder creates:
    // build the problem with a preliminary goal first, then swap in the final goal and the locks
    let features = create_features(transport.clone())?;
    let preliminary_goal = GoalContextBuilder::with_features(&features)
        .and_then(|b| b.build())
        .map_err(err)?;

    let problem = ProblemBuilder::default()
        .add_jobs(core_jobs.into_iter())
        .add_vehicles(vehicles.into_iter())
        .with_vehicle_similarity(|_| {
            Box::new(|actor: &Actor| van_idx_of(actor).unwrap_or(usize::MAX))
        })
        .with_goal(preliminary_goal)
        .with_transport_cost(transport)
        .with_logger(Arc::new(|_: &str| {}))
        .build()
        .map_err(err)?;

    let locks: Vec<Arc<Lock>> = start_jobs
        .into_iter()
        .map(|(van_idx, job)| {
            Arc::new(Lock::new(
                Arc::new(move |actor: &Actor| van_idx_of(actor) == Some(van_idx)),
                vec![LockDetail::new(
                    LockOrder::Strict,
                    LockPosition::Departure,
                    vec![job],
                )],
                false,
            ))
        })
        .collect();

    let lock_feature =
        create_locked_jobs_feature("locks", problem.fleet.as_ref(), &locks, CODE_LOCK)
            .map_err(err)?;
    let order_feature = FeatureBuilder::default()
        .with_name("stable-order")
        .with_constraint(NoConstraint)
        .with_state(StableOrderState {
            matrix: matrix.clone(),
        })
        .build()
        .map_err(err)?;
    let mut all_features = features;
    all_features.push(lock_feature);
    all_features.push(order_feature);
    let goal = GoalContextBuilder::with_features(&all_features)
        .and_then(|b| b.build())
        .map_err(err)?;

    let problem = Arc::new(Problem {
        goal: Arc::new(goal),
        locks,
        ..problem
    });

    // solver configuration
    let random: Arc<dyn Random> = Arc::new(SeededRandom::new(seed));
    let environment = Arc::new(Environment::new(
        random.clone(),
        None,
        Parallelism::new_with_cpus(1),
        Arc::new(|_: &str| {}),
        false,
    ));

    let config = create_config(problem.clone(), environment, matrix.clone(), generations)?;
    let solution = Solver::new(problem, config).solve().map_err(err)?;

    Ok(convert(input, &matrix, &solution.routes))
}

fn create_features(transport: Arc<dyn TransportCost>) -> Result<Vec<Feature>, String> {
    let min_unassigned = MinimizeUnassignedBuilder::new("min-unassigned")
        .set_job_estimator(|_: &SolutionContext, job: &CoreJob| {
            info_of(job).map_or(0., |info| info.value_units)
        })
        .build()
        .map_err(err)?;

    let min_distance = TransportFeatureBuilder::new("min-distance")
        .set_transport_cost(transport)
        .set_time_constrained(true)
        .set_violation_code(CODE_TIME)
        .build_minimize_distance()
        .map_err(err)?;

    let is_reload =
        |single: &Single| single_info(single).is_some_and(|info| info.tag == Tag::Reload);
    let reload = ReloadFeatureFactory::<MultiDimLoad>::new("capacity")
        .set_capacity_code(CODE_CAPACITY)
        .set_is_reload_single(is_reload)
        .set_belongs_to_route(move |route: &CoreRoute, job: &CoreJob| {
            job.as_single()
                .and_then(|single| single_info(single))
                .filter(|info| info.tag == Tag::Reload)
                .zip(van_idx_of(route.actor.as_ref()))
                .is_some_and(|(info, van_idx)| info.owner == van_idx)
        })
        .set_load_schedule_threshold(|capacity: &MultiDimLoad| {
            // consider a reload once a dimension reaches 90% of its capacity; dimensions with zero
            // capacity never trigger it
            let mut threshold = *capacity;
            threshold
                .load
                .iter_mut()
                .take(capacity.size)
                .for_each(|value| {
                    *value = if *value <= 0 {
                        i32::MAX / 2
                    } else {
                        ((*value as Float) * 0.9).round().max(1.) as i32
                    };
                });
            threshold
        })
        .build_simple()
        .map_err(err)?;

    Ok(vec![min_unassigned, min_distance, reload])
}

fn create_config(
    problem: Arc<Problem>,
    environment: Arc<Environment>,
    matrix: Arc<Matrix>,
    generations: usize,
) -> Result<
    vrp_core::rosomaxa::evolution::EvolutionConfig<
        RefinementContext,
        GoalContext,
        InsertionContext,
    >,
    String,
> {
    let random = environment.random.clone();

    // SISR-like recreates: one job at a time (random or value order), best position over the
    // routes passing closest to the job; cost is linear in the number of jobs to insert.
    let recreate = Arc::new(WeightedRecreate::new(vec![
        (
            one_by_one(JobOrder::Random, false, &matrix, random.clone()),
            40,
        ),
        (
            one_by_one(JobOrder::Random, true, &matrix, random.clone()),
            30,
        ),
        (
            one_by_one(JobOrder::ValueDesc, false, &matrix, random.clone()),
            30,
        ),
    ]));
    let ruin = Arc::new(StableRuin {
        matrix: matrix.clone(),
    });
    let ruin_recreate: TargetSearchOperator = Arc::new(RuinAndRecreate::new(ruin, recreate));
    let local_search: TargetSearchOperator = Arc::new(LocalSearch::new(Arc::new(
        CompositeLocalOperator::new(vec![(Arc::new(ExchangeSequence::default()), 1)], 1, 2),
    )));

    let search_group: TargetHeuristicGroup = vec![
        (
            ruin_recreate.clone(),
            create_scalar_operator_probability(1., random.clone()),
        ),
        (
            local_search,
            create_scalar_operator_probability(0.05, random.clone()),
        ),
    ];
    // NOTE the population is always in exploitation phase, so diversification is never called,
    //      but the heuristic requires at least one diversify operator
    let diversify =
        vec![Arc::new(WeightedHeuristicOperator::new(vec![ruin_recreate], vec![1])) as _];
    let heuristic = Box::new(StaticSelective::new(search_group, diversify));

    let wrap = |recreate: Arc<dyn Recreate>| Box::new(RecreateInitialOperator::new(recreate)) as _;
    // NOTE value order beat cheapest insertion, nearest neighbour and all-routes variants in
    //      quality and speed on test instances
    let initial = vec![(
        wrap(one_by_one(
            JobOrder::ValueDesc,
            false,
            &matrix,
            random.clone(),
        )),
        1,
    )];
    let n_initial = initial.len();

    let values: Vec<Float> = problem
        .jobs
        .all()
        .iter()
        .filter_map(info_of)
        .filter(|i| i.value_units > 0.)
        .map(|i| i.value_units)
        .collect();
    let mean_value_units = if values.is_empty() {
        0.
    } else {
        values.iter().sum::<Float>() / values.len() as Float
    };
    let population = Box::new(AnnealingPopulation::new(
        problem.goal.clone(),
        mean_value_units,
    ));
    let context = RefinementContext::new(problem, population, TelemetryMode::None, environment);

    ProblemConfigBuilder::default()
        .with_heuristic(heuristic)
        .with_context(context)
        .with_processing(ProcessingConfig {
            context: vec![],
            solution: vec![],
        })
        .with_initial(n_initial, 0.05, initial)
        // NOTE with a limit of 0 the evolution would not even build an initial solution
        .with_max_generations(Some(generations.max(1)))
        .build()
        .map_err(err)
}

#[derive(Clone, Copy)]
enum JobOrder {
    Random,
    /// Reload stops first (they are only offered when needed), then by decreasing value.
    ValueDesc,
}

/// Picks one job per insertion step: random order or value order (random among equal values).
struct OneByOneJobSelector {
    order: JobOrder,
}

fn shuffle(jobs: &mut [CoreJob], random: &dyn Random) {
    for i in (1..jobs.len()).rev() {
        let j = random.uniform_int(0, i as i32) as usize;
        jobs.swap(i, j);
    }
}

impl JobSelector for OneByOneJobSelector {
    fn prepare(&self, insertion_ctx: &mut InsertionContext) {
        let random = insertion_ctx.environment.random.clone();
        let required = &mut insertion_ctx.solution.required;
        shuffle(required, random.as_ref());
        if let JobOrder::ValueDesc = self.order {
            let key = |job: &CoreJob| match info_of(job) {
                Some(info) if info.tag == Tag::Reload => Float::INFINITY,
                Some(info) => info.value_units,
                None => 0.,
            };
            required.sort_by(|a, b| key(b).total_cmp(&key(a)));
        }
    }

    fn select<'a>(
        &'a self,
        insertion_ctx: &'a InsertionContext,
    ) -> Box<dyn Iterator<Item = &'a CoreJob> + 'a> {
        Box::new(insertion_ctx.solution.required.iter().take(1))
    }
}

/// Offers a job only to the routes passing closest to it, plus all routes without work yet
/// (all routes when there are few); a reload stop only to its van.
struct NearestRoutesSelector {
    matrix: Arc<Matrix>,
    /// Route limits for single-location jobs and moves.
    limits: (usize, usize),
}

/// Routes considered for a single-location job / for a move (whose evaluation is quadratic).
const NEAREST_ROUTES_SINGLE: usize = 4;
const NEAREST_ROUTES_MOVE: usize = 3;

impl RouteSelector for NearestRoutesSelector {
    fn prepare(&self, _: &mut InsertionContext) {}

    fn select<'a>(
        &'a self,
        insertion_ctx: &'a InsertionContext,
        jobs: &[&'a CoreJob],
    ) -> Box<dyn Iterator<Item = &'a RouteContext> + 'a> {
        let routes = &insertion_ctx.solution.routes;

        // a reload stop belongs to one van: offer it to that van only
        let reload_owners: Vec<usize> = jobs
            .iter()
            .filter_map(|job| info_of(job))
            .filter(|info| info.tag == Tag::Reload)
            .map(|info| info.owner)
            .collect();
        if !reload_owners.is_empty() {
            return Box::new(routes.iter().filter(move |route_ctx| {
                van_idx_of(route_ctx.route().actor.as_ref())
                    .is_some_and(|van_idx| reload_owners.contains(&van_idx))
            }));
        }

        let job_locations: Vec<usize> = jobs
            .iter()
            .flat_map(|job| match job {
                CoreJob::Single(single) => vec![single],
                CoreJob::Multi(multi) => multi.jobs.iter().collect(),
            })
            .filter_map(|single| single.places.first().and_then(|place| place.location))
            .collect();
        let limit = if jobs.iter().any(|job| job.as_multi().is_some()) {
            self.limits.1
        } else {
            self.limits.0
        };

        if routes.len() <= limit || job_locations.is_empty() {
            return Box::new(routes.iter());
        }

        // routes without work are cheap to evaluate and would never rank close to anything:
        // always offer them
        let is_idle = |route_ctx: &RouteContext| {
            route_ctx
                .route()
                .tour
                .all_activities()
                .filter_map(|a| a.job.as_ref())
                .all(|single| {
                    single_info(single)
                        .is_none_or(|info| matches!(info.tag, Tag::Start | Tag::Reload))
                })
        };
        let mut selected: Vec<usize> = (0..routes.len())
            .filter(|&idx| is_idle(&routes[idx]))
            .collect();

        let mut ranked: Vec<(f64, usize)> = routes
            .iter()
            .enumerate()
            .filter(|(_, route_ctx)| !is_idle(route_ctx))
            .map(|(idx, route_ctx)| {
                let closeness: f64 = job_locations
                    .iter()
                    .map(|&job_loc| {
                        route_ctx
                            .route()
                            .tour
                            .all_activities()
                            .map(|a| self.matrix.distance(a.place.location, job_loc))
                            .fold(f64::INFINITY, f64::min)
                    })
                    .sum();
                (closeness, idx)
            })
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        selected.extend(ranked.into_iter().take(limit).map(|(_, idx)| idx));
        selected.sort_unstable();

        Box::new(selected.into_iter().filter_map(move |idx| routes.get(idx)))
    }
}

fn one_by_one(
    order: JobOrder,
    blink: bool,
    matrix: &Arc<Matrix>,
    random: Arc<dyn Random>,
) -> Arc<dyn Recreate> {
    let limits = (NEAREST_ROUTES_SINGLE, NEAREST_ROUTES_MOVE);
    let result_selector: Box<dyn vrp_core::construction::heuristics::ResultSelector> = if blink {
        Box::new(BlinkResultSelector::new_with_defaults(random.clone()))
    } else {
        Box::<BestResultSelector>::default()
    };
    Arc::new(ConfigurableRecreate::new(
        Box::new(OneByOneJobSelector { order }),
        Box::new(NearestRoutesSelector {
            matrix: matrix.clone(),
            limits,
        }),
        LegSelection::Stochastic(random),
        ResultSelection::Concrete(result_selector),
        InsertionHeuristic::default(),
    ))
}

fn convert(input: &Input<'_>, matrix: &Matrix, routes: &[CoreRoute]) -> Plan {
    let Input { vans, jobs, .. } = *input;
    let mut assigned = vec![false; jobs.len()];
    let mut result: Vec<(usize, Route)> = Vec::new();

    for route in routes {
        let Some(van_idx) = van_idx_of(route.actor.as_ref()) else {
            continue;
        };
        let van = &vans[van_idx];
        let activities: Vec<_> = route.tour.all_activities().collect();

        let mut stops = Vec::with_capacity(activities.len());
        let mut has_work = false;
        for activity in activities.iter().skip(1) {
            let at = matrix.points[activity.place.location];
            let arrival_s = activity.schedule.arrival;
            let Some(single) = activity.job.as_ref() else {
                stops.push(Stop {
                    job_id: None,
                    kind: StopKind::Depot,
                    at,
                    arrival_s,
                });
                continue;
            };
            let Some(info) = single_info(single) else {
                continue;
            };
            let kind = match info.tag {
                Tag::Start => continue,
                Tag::Reload => {
                    stops.push(Stop {
                        job_id: None,
                        kind: StopKind::Reload,
                        at,
                        arrival_s,
                    });
                    continue;
                }
                Tag::Swap => StopKind::Swap,
                Tag::Pickup => StopKind::Pickup,
                Tag::Dropoff => StopKind::Dropoff,
                Tag::Collect => StopKind::Collect,
            };
            has_work = true;
            assigned[info.owner] = true;
            stops.push(Stop {
                job_id: Some(job_id(&jobs[info.owner]).to_string()),
                kind,
                at,
                arrival_s,
            });
        }

        if !has_work {
            continue;
        }

        let distance_m = activities
            .windows(2)
            .map(|w| matrix.distance(w[0].place.location, w[1].place.location))
            .sum();
        let duration_s = activities.last().map_or(0., |a| a.schedule.arrival);

        result.push((
            van_idx,
            Route {
                van_id: van.id.clone(),
                stops,
                distance_m,
                duration_s,
            },
        ));
    }

    result.sort_by_key(|(van_idx, _)| *van_idx);

    Plan {
        routes: result.into_iter().map(|(_, route)| route).collect(),
        unassigned: jobs
            .iter()
            .zip(assigned)
            .filter(|(_, assigned)| !assigned)
            .map(|(job, _)| job_id(job).to_string())
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Internals: determinism helpers
// ---------------------------------------------------------------------------------------------

/// Probability that a ruin is centred on a (value-weighted) unassigned job instead of an assigned one.
const UNASSIGNED_SEED_PROBABILITY: Float = 0.3;
/// Upper bound of jobs removed by one ruin.
const MAX_RUINED_JOBS: usize = 20;

/// A counter-based (SplitMix64) generator: deterministic for a single thread, seeded per call.
struct SeededRandom {
    state: AtomicU64,
}

impl SeededRandom {
    fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed ^ 0x5DEE_CE66_D1CE_4E5B),
        }
    }

    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, AtomicOrdering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1. / (1_u64 << 53) as f64)
    }
}

impl Random for SeededRandom {
    fn uniform_int(&self, min: i32, max: i32) -> i32 {
        if min >= max {
            return min;
        }
        let range = (max as i64 - min as i64 + 1) as u64;
        (min as i64 + (self.next_u64() % range) as i64) as i32
    }

    fn uniform_real(&self, min: Float, max: Float) -> Float {
        if (min - max).abs() < Float::EPSILON || min > max {
            return min;
        }
        min + (max - min) * self.next_f64()
    }

    fn is_head_not_tails(&self) -> bool {
        self.next_u64() & 1 == 1
    }

    fn is_hit(&self, probability: Float) -> bool {
        self.next_f64() < probability.clamp(0., 1.)
    }

    fn weighted(&self, weights: &[usize]) -> usize {
        // same scheme as rosomaxa's default: the smallest exponential sample wins
        weights
            .iter()
            .enumerate()
            .map(|(idx, &weight)| (-(1. - self.next_f64()).ln() / weight as Float, idx))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(0, |(_, idx)| idx)
    }

    fn get_rng(&self) -> RandomGen {
        RandomGen::new_repeatable()
    }
}

/// A best-plus-current population with simulated-annealing acceptance on distance: a candidate
/// replaces the current solution if it leaves less value unassigned, or the same value and its
/// distance is not much worse (temperature decreasing linearly with the generation progress).
/// Everything is driven by generation counts and the seeded random, never by time.
struct AnnealingPopulation {
    objective: Arc<GoalContext>,
    best: Option<InsertionContext>,
    current: Option<InsertionContext>,
    progress: Float,
    mean_value_units: Float,
}

/// Start temperature for distance, as a fraction of the best known distance.
const ANNEALING_DISTANCE_START: Float = 0.003;
/// Start temperature for unassigned value, as a fraction of the mean job value.
const ANNEALING_VALUE_START: Float = 1.0;

impl AnnealingPopulation {
    fn new(objective: Arc<GoalContext>, mean_value_units: Float) -> Self {
        Self {
            objective,
            best: None,
            current: None,
            progress: 0.,
            mean_value_units,
        }
    }

    fn value_and_distance(solution: &InsertionContext) -> (Float, Float) {
        let mut fitness = solution.fitness();
        (
            fitness.next().unwrap_or_default(),
            fitness.next().unwrap_or_default(),
        )
    }

    fn accepts(&self, candidate: &InsertionContext, current: &InsertionContext) -> bool {
        let (new_value, new_distance) = Self::value_and_distance(candidate);
        let (cur_value, cur_distance) = Self::value_and_distance(current);
        if new_value < cur_value {
            return true;
        }
        if new_value > cur_value {
            let temperature = ANNEALING_VALUE_START * self.mean_value_units * (1. - self.progress);
            if temperature <= 0. {
                return false;
            }
            let u = candidate.environment.random.uniform_real(0., 1.);
            return new_value - cur_value < -temperature * (1. - u).ln();
        }
        if new_distance <= cur_distance {
            return true;
        }
        let best_distance = self
            .best
            .as_ref()
            .map_or(cur_distance, |best| Self::value_and_distance(best).1);
        let temperature = ANNEALING_DISTANCE_START * best_distance * (1. - self.progress);
        if temperature <= 0. {
            return false;
        }
        let u = candidate.environment.random.uniform_real(0., 1.);
        new_distance - cur_distance < -temperature * (1. - u).ln()
    }
}

impl HeuristicPopulation for AnnealingPopulation {
    type Objective = GoalContext;
    type Individual = InsertionContext;

    fn add_all(&mut self, individuals: Vec<Self::Individual>) -> bool {
        let mut is_improved = false;
        for individual in individuals {
            is_improved |= self.add(individual);
        }
        is_improved
    }

    fn add(&mut self, individual: Self::Individual) -> bool {
        let is_best = self.best.as_ref().is_none_or(|best| {
            self.objective.total_order(&individual, best) == std::cmp::Ordering::Less
        });
        let is_accepted = is_best
            || self
                .current
                .as_ref()
                .is_none_or(|current| self.accepts(&individual, current));

        if is_best {
            self.best = Some(individual.deep_copy());
        }
        if is_accepted {
            self.current = Some(individual);
        }

        is_best
    }

    fn on_generation(&mut self, statistics: &HeuristicStatistics) {
        self.progress = statistics.termination_estimate.clamp(0., 1.);
    }

    fn cmp(&self, a: &Self::Individual, b: &Self::Individual) -> std::cmp::Ordering {
        self.objective.total_order(a, b)
    }

    fn select<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::Individual> + 'a> {
        Box::new(self.current.iter().chain(self.best.iter()).take(1))
    }

    fn ranked<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::Individual> + 'a> {
        Box::new(self.best.iter())
    }

    fn all<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::Individual> + 'a> {
        Box::new(self.best.iter().chain(self.current.iter()))
    }

    fn size(&self) -> usize {
        usize::from(self.best.is_some()) + usize::from(self.current.is_some())
    }

    fn selection_phase(&self) -> SelectionPhase {
        SelectionPhase::Exploitation
    }
}

/// A constraint which never rejects anything (a feature needs a constraint or an objective).
struct NoConstraint;

impl FeatureConstraint for NoConstraint {
    fn evaluate(&self, _: &MoveContext<'_>) -> Option<ConstraintViolation> {
        None
    }
}

/// Keeps the solver's job lists in a stable order (vrp-core fills them from hash maps/sets keyed
/// by job pointers, whose iteration order differs from run to run) and bounds the work of a
/// recreate step by offering only the previously unassigned jobs closest to the ruined ones.
struct StableOrderState {
    matrix: Arc<Matrix>,
}

fn sort_jobs(jobs: &mut [CoreJob]) {
    jobs.sort_by_cached_key(|job| info_of(job).map_or(usize::MAX, |info| info.order));
}

/// Minimum number of previously unassigned jobs offered to a recreate step.
const MIN_RETRIED_UNASSIGNED: usize = 8;

impl StableOrderState {
    /// Keeps in `required` only the previously unassigned jobs which are closest to the freshly
    /// ruined ones (the others stay unassigned for this step). Idempotent, so it is safe inside
    /// vrp-core's fixed-point loop over feature states.
    fn limit_retried_unassigned(&self, solution_ctx: &mut SolutionContext) {
        let is_real = |info: &JobInfo| !matches!(info.tag, Tag::Reload | Tag::Start);
        let ruined: Vec<usize> = solution_ctx
            .required
            .iter()
            .filter(|job| !solution_ctx.unassigned.contains_key(*job))
            .filter_map(info_of)
            .filter(|info| is_real(info))
            .map(|info| info.location)
            .collect();
        if ruined.is_empty() {
            return;
        }

        let mut retried: Vec<(f64, usize)> = solution_ctx
            .required
            .iter()
            .filter(|job| solution_ctx.unassigned.contains_key(*job))
            .filter_map(info_of)
            .filter(|info| is_real(info))
            .map(|info| {
                let closest = ruined
                    .iter()
                    .map(|&loc| {
                        self.matrix
                            .distance(loc, info.location)
                            .min(self.matrix.distance(info.location, loc))
                    })
                    .fold(f64::INFINITY, f64::min);
                (closest, info.order)
            })
            .collect();

        let limit = MIN_RETRIED_UNASSIGNED.max(2 * ruined.len());
        if retried.len() <= limit {
            return;
        }
        retried.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let keep: std::collections::HashSet<usize> = retried
            .iter()
            .take(limit)
            .map(|(_, order)| *order)
            .collect();

        let unassigned = &solution_ctx.unassigned;
        solution_ctx.required.retain(|job| {
            !unassigned.contains_key(job)
                || info_of(job).is_none_or(|info| !is_real(info) || keep.contains(&info.order))
        });
    }
}

impl FeatureState for StableOrderState {
    fn accept_insertion(&self, solution_ctx: &mut SolutionContext, _: usize, _: &CoreJob) {
        sort_jobs(&mut solution_ctx.required);
        sort_jobs(&mut solution_ctx.ignored);
    }

    fn accept_route_state(&self, _: &mut RouteContext) {}

    fn accept_solution_state(&self, solution_ctx: &mut SolutionContext) {
        sort_jobs(&mut solution_ctx.required);
        sort_jobs(&mut solution_ctx.ignored);
        self.limit_retried_unassigned(solution_ctx);
        // NOTE vrp-core skips evaluating an unassigned job that has a concrete reason code in a
        //      non-modified route; when such a job is the only one selected (one-by-one
        //      recreate), the evaluator returns a job-less failure which moves *all* remaining
        //      jobs to unassigned. Forget the reasons so that every job is evaluated again.
        solution_ctx
            .unassigned
            .values_mut()
            .for_each(|info| *info = UnassignmentInfo::Unknown);
    }
}

// ---------------------------------------------------------------------------------------------
// Internals: ruin operators (deterministic replacements of vrp-core's tabu-list based ones)
// ---------------------------------------------------------------------------------------------

struct Candidate {
    route: usize,
    job: CoreJob,
    location: usize,
    /// Distance saved by removing all activities of the job (approximation: removals evaluated independently).
    savings: f64,
}

struct StableRuin {
    matrix: Arc<Matrix>,
}

impl StableRuin {
    fn candidates(&self, ctx: &InsertionContext) -> Vec<Candidate> {
        let locked = &ctx.solution.locked;
        let mut result: Vec<Candidate> = Vec::new();
        for (route_idx, route_ctx) in ctx.solution.routes.iter().enumerate() {
            let activities: Vec<_> = route_ctx.route().tour.all_activities().collect();
            let first_of_route = result.len();
            for idx in 1..activities.len() {
                let Some(job) = activities[idx].retrieve_job() else {
                    continue;
                };
                if locked.contains(&job) {
                    continue;
                }
                let loc = activities[idx].place.location;
                let prev = activities[idx - 1].place.location;
                let savings = activities.get(idx + 1).map_or(0., |next| {
                    let next = next.place.location;
                    self.matrix.distance(prev, loc) + self.matrix.distance(loc, next)
                        - self.matrix.distance(prev, next)
                });
                if let Some(existing) = result[first_of_route..].iter_mut().find(|c| c.job == job) {
                    existing.savings += savings;
                } else {
                    result.push(Candidate {
                        route: route_idx,
                        job,
                        location: loc,
                        savings,
                    });
                }
            }
        }
        result
    }

    /// Picks up to `count` items from `list` (best first) with a bias towards the front.
    fn pick_biased(
        random: &dyn Random,
        mut list: Vec<usize>,
        count: usize,
        power: i32,
    ) -> Vec<usize> {
        let mut picked = Vec::with_capacity(count);
        while picked.len() < count && !list.is_empty() {
            let u = random.uniform_real(0., 1.);
            let idx = ((u.powi(power) * list.len() as f64) as usize).min(list.len() - 1);
            picked.push(list.remove(idx));
        }
        picked
    }
}

impl Ruin for StableRuin {
    fn run(&self, _: &RefinementContext, mut insertion_ctx: InsertionContext) -> InsertionContext {
        let candidates = self.candidates(&insertion_ctx);
        if candidates.is_empty() {
            return insertion_ctx;
        }
        let random = insertion_ctx.environment.random.clone();
        let random = random.as_ref();

        let n = candidates.len();
        let max_count = ((n as f64 * 0.3).ceil() as usize)
            .max(n.min(4))
            .min(MAX_RUINED_JOBS)
            .min(n);
        let count = random.uniform_int(1, max_count as i32) as usize;
        let seed = random.uniform_int(0, n as i32 - 1) as usize;
        // sometimes ruin around a valuable unassigned job to make room for it
        let unassigned_seed = {
            let mut unassigned: Vec<&JobInfo> = insertion_ctx
                .solution
                .unassigned
                .keys()
                .filter_map(info_of)
                .filter(|info| !matches!(info.tag, Tag::Reload | Tag::Start))
                .collect();
            unassigned.sort_by_key(|info| info.order);
            if !unassigned.is_empty() && random.is_hit(UNASSIGNED_SEED_PROBABILITY) {
                let weights: Vec<usize> = unassigned
                    .iter()
                    .map(|info| (info.value_units as usize).max(1))
                    .collect();
                Some(unassigned[random.weighted(&weights)].location)
            } else {
                None
            }
        };
        let seed_loc = unassigned_seed.unwrap_or(candidates[seed].location);
        let by_seed_distance = || {
            let mut indices: Vec<usize> = (0..n).collect();
            indices.sort_by(|&a, &b| {
                let da = self.matrix.distance(seed_loc, candidates[a].location);
                let db = self.matrix.distance(seed_loc, candidates[b].location);
                da.total_cmp(&db)
            });
            indices
        };

        let selected: Vec<usize> = match random.weighted(&[30, 30, 15, 15, 5]) {
            // related (Shaw) removal around a random seed job
            0 => Self::pick_biased(random, by_seed_distance(), count, 3),
            // string removal: consecutive jobs in the routes closest to the seed
            1 => {
                let mut route_order: Vec<usize> = Vec::new();
                for idx in by_seed_distance() {
                    if !route_order.contains(&candidates[idx].route) {
                        route_order.push(candidates[idx].route);
                    }
                }
                let routes = random.uniform_int(1, route_order.len().min(3) as i32) as usize;
                let mut selected = Vec::new();
                for &route in route_order.iter().take(routes) {
                    let left = count.saturating_sub(selected.len()).max(1);
                    let in_route: Vec<usize> =
                        (0..n).filter(|&i| candidates[i].route == route).collect();
                    let Some(anchor) = (0..in_route.len()).min_by(|&a, &b| {
                        let da = self
                            .matrix
                            .distance(seed_loc, candidates[in_route[a]].location);
                        let db = self
                            .matrix
                            .distance(seed_loc, candidates[in_route[b]].location);
                        da.total_cmp(&db)
                    }) else {
                        continue;
                    };
                    let len =
                        random.uniform_int(1, in_route.len().min(left).min(10) as i32) as usize;
                    let shift = random.uniform_int(0, len as i32 - 1) as usize;
                    let start = anchor.saturating_sub(shift).min(in_route.len() - len);
                    selected.extend_from_slice(&in_route[start..start + len]);
                }
                selected
            }
            // worst removal: jobs with the largest detour
            2 => {
                let mut indices: Vec<usize> = (0..n).collect();
                indices.sort_by(|&a, &b| candidates[b].savings.total_cmp(&candidates[a].savings));
                Self::pick_biased(random, indices, count, 3)
            }
            // random removal
            3 => Self::pick_biased(random, (0..n).collect(), count, 1),
            // route removal: everything (not locked) from one route
            _ => {
                let route = candidates[seed].route;
                (0..n).filter(|&i| candidates[i].route == route).collect()
            }
        };

        for idx in selected {
            let candidate = &candidates[idx];
            if let Some(route_ctx) = insertion_ctx.solution.routes.get_mut(candidate.route)
                && route_ctx.route_mut().tour.remove(&candidate.job)
            {
                insertion_ctx.solution.required.push(candidate.job.clone());
            }
        }

        insertion_ctx
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Point = Point {
        lat: 52.52,
        lon: 13.40,
    };

    fn settings(generations: usize) -> Settings {
        Settings {
            speed_m_s: 6.0,
            detour: 1.35,
            generations,
            seed: 42,
        }
    }

    fn pt(dlat: f64, dlon: f64) -> Point {
        Point {
            lat: BASE.lat + dlat,
            lon: BASE.lon + dlon,
        }
    }

    fn van(id: &str, start: Point, depot: Point) -> Van {
        Van {
            id: id.to_string(),
            start,
            depot,
            vehicle_capacity: 4,
            packs_on_board: 20,
            pack_capacity: 20,
            shift_left_s: 8. * 3600.,
        }
    }

    fn swap(id: &str, at: Point) -> Job {
        Job::Swap {
            id: id.to_string(),
            at,
            service_s: 120.,
            value: 10.,
        }
    }

    fn stop_ids(route: &Route) -> Vec<String> {
        route
            .stops
            .iter()
            .filter_map(|s| s.job_id.clone())
            .collect()
    }

    /// Checks the invariants every plan must satisfy and returns nothing; panics on violation.
    fn check_plan(vans: &[Van], jobs: &[Job], s: &Settings, plan: &Plan) {
        let mut seen = std::collections::HashSet::new();
        for route in &plan.routes {
            let van = vans
                .iter()
                .find(|v| v.id == route.van_id)
                .expect("unknown van");
            let last = route.stops.last().expect("empty route");
            assert_eq!(last.kind, StopKind::Depot);
            assert_eq!(last.at, van.depot);
            assert!(
                last.arrival_s <= van.shift_left_s + 1e-6,
                "shift exceeded: {} > {}",
                last.arrival_s,
                van.shift_left_s
            );
            assert!((route.duration_s - last.arrival_s).abs() < 1e-9);

            // distance equals the sum of road legs, arrivals are non-decreasing
            let mut prev = van.start;
            let mut distance = 0.;
            let mut prev_arrival = 0.;
            for stop in &route.stops {
                distance += road_m(prev, stop.at, s);
                prev = stop.at;
                assert!(stop.arrival_s + 1e-9 >= prev_arrival);
                prev_arrival = stop.arrival_s;
            }
            assert!(
                (distance - route.distance_m).abs() < 1e-6,
                "{distance} vs {}",
                route.distance_m
            );

            // capacity along the route
            let mut packs = van.packs_on_board.min(van.pack_capacity);
            let mut moving = 0;
            let mut collected = 0;
            let mut picked = std::collections::HashSet::new();
            for stop in &route.stops {
                match stop.kind {
                    StopKind::Swap => packs -= 1,
                    StopKind::Pickup => {
                        moving += 1;
                        picked.insert(stop.job_id.clone());
                    }
                    StopKind::Dropoff => {
                        assert!(
                            picked.contains(&stop.job_id),
                            "dropoff before pickup: {:?}",
                            stop.job_id
                        );
                        moving -= 1;
                    }
                    StopKind::Collect => collected += 1,
                    StopKind::Reload => {
                        assert_eq!(stop.at, van.depot);
                        packs = van.pack_capacity;
                        collected = 0;
                    }
                    StopKind::Depot => collected = 0,
                }
                assert!(packs >= 0, "packs went negative on {}", route.van_id);
                assert!(
                    moving + collected <= van.vehicle_capacity,
                    "vehicle capacity exceeded on {}",
                    route.van_id
                );
                if let Some(id) = &stop.job_id {
                    let job = jobs.iter().find(|j| job_id(j) == id).expect("unknown job");
                    let expected_at = match (job, &stop.kind) {
                        (Job::Move { to, .. }, StopKind::Dropoff) => *to,
                        (Job::Move { from, .. }, _) => *from,
                        (Job::Swap { at, .. } | Job::Collect { at, .. }, _) => *at,
                    };
                    assert_eq!(stop.at, expected_at);
                }
            }
            assert_eq!(moving, 0, "a moved vehicle was not dropped off");
            for id in stop_ids(route) {
                seen.insert(id);
            }
        }
        for id in &plan.unassigned {
            assert!(!seen.contains(id), "job {id} both assigned and unassigned");
        }
        assert_eq!(
            seen.len() + plan.unassigned.len(),
            jobs.len(),
            "every job is assigned or unassigned"
        );
    }

    fn fingerprint(plan: &Plan) -> Vec<String> {
        plan.routes
            .iter()
            .map(|r| {
                let stops: Vec<String> = r
                    .stops
                    .iter()
                    .map(|s| format!("{:?}/{:?}/{:x}", s.job_id, s.kind, s.arrival_s.to_bits()))
                    .collect();
                format!(
                    "{}:{:x}:{:x}:{}",
                    r.van_id,
                    r.distance_m.to_bits(),
                    r.duration_s.to_bits(),
                    stops.join(",")
                )
            })
            .chain(std::iter::once(plan.unassigned.join(",")))
            .collect()
    }

    /// A small deterministic generator for test instances.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1_u64 << 53) as f64
        }

        fn point(&mut self, radius_deg: f64) -> Point {
            pt(
                (self.next() - 0.5) * radius_deg,
                (self.next() - 0.5) * radius_deg * 1.6,
            )
        }
    }

    fn instance(n_vans: usize, n_jobs: usize, seed: u64) -> (Vec<Van>, Vec<Job>) {
        let mut rng = Lcg(seed);
        let depots = [pt(0., 0.), pt(0.03, -0.05)];
        let vans = (0..n_vans)
            .map(|i| Van {
                id: format!("van{i}"),
                start: rng.point(0.1),
                depot: depots[i % depots.len()],
                vehicle_capacity: 3 + (i % 3) as i32,
                packs_on_board: 5 + (i % 7) as i32,
                pack_capacity: 15,
                shift_left_s: 3. * 3600. + 600. * i as f64,
            })
            .collect();
        let jobs = (0..n_jobs)
            .map(|i| {
                let value = 5. + (rng.next() * 20.).round();
                match i % 5 {
                    0..=2 => Job::Swap {
                        id: format!("s{i}"),
                        at: rng.point(0.12),
                        service_s: 180.,
                        value,
                    },
                    3 => Job::Move {
                        id: format!("m{i}"),
                        from: rng.point(0.12),
                        to: rng.point(0.12),
                        service_s: 60.,
                        value,
                    },
                    _ => Job::Collect {
                        id: format!("c{i}"),
                        at: rng.point(0.12),
                        service_s: 120.,
                        value,
                    },
                }
            })
            .collect();
        (vans, jobs)
    }

    #[test]
    fn road_m_is_haversine_times_detour() {
        let s = settings(0);
        let a = Point { lat: 0., lon: 0. };
        let b = Point { lat: 0., lon: 1. };
        // one degree of longitude at the equator
        let expected = EARTH_RADIUS_M * 1_f64.to_radians() * 1.35;
        assert!((road_m(a, b, &s) - expected).abs() < 1e-6);
        assert_eq!(road_m(a, a, &s), 0.);
        assert!((road_m(a, b, &s) - road_m(b, a, &s)).abs() < 1e-9);
    }

    #[test]
    fn single_van_three_swaps_in_a_line() {
        let s = settings(100);
        let vans = vec![van("v1", BASE, BASE)];
        // given in scrambled order on a line going east
        let jobs = vec![
            swap("b", pt(0., 0.02)),
            swap("c", pt(0., 0.03)),
            swap("a", pt(0., 0.01)),
        ];

        let plan = plan(&vans, &jobs, &s).expect("plan");
        check_plan(&vans, &jobs, &s, &plan);

        assert!(plan.unassigned.is_empty());
        assert_eq!(plan.routes.len(), 1);
        let route = &plan.routes[0];
        let ids = stop_ids(route);
        assert!(
            ids == ["a", "b", "c"] || ids == ["c", "b", "a"],
            "not in line order: {ids:?}"
        );
        assert_eq!(route.stops.len(), 4, "3 swaps + depot, no reload needed");

        let expected = road_m(BASE, pt(0., 0.01), &s)
            + road_m(pt(0., 0.01), pt(0., 0.02), &s)
            + road_m(pt(0., 0.02), pt(0., 0.03), &s)
            + road_m(pt(0., 0.03), BASE, &s);
        let reversed = road_m(BASE, pt(0., 0.03), &s)
            + road_m(pt(0., 0.03), pt(0., 0.02), &s)
            + road_m(pt(0., 0.02), pt(0., 0.01), &s)
            + road_m(pt(0., 0.01), BASE, &s);
        let expected = if ids[0] == "a" { expected } else { reversed };
        assert!(
            (route.distance_m - expected).abs() < 1e-6,
            "{} vs {expected}",
            route.distance_m
        );

        // arrival times follow distance / speed + service
        let first_arrival = road_m(BASE, route.stops[0].at, &s) / s.speed_m_s;
        assert!((route.stops[0].arrival_s - first_arrival).abs() < 1e-6);
        let expected_duration = expected / s.speed_m_s + 3. * 120.;
        assert!((route.duration_s - expected_duration).abs() < 1e-6);
    }

    #[test]
    fn moves_pickup_before_dropoff_and_capacity_respected() {
        let s = settings(200);
        let mut v = van("v1", BASE, BASE);
        v.vehicle_capacity = 1;
        let vans = vec![v];
        // pickups all to the west, drop-offs all to the east: a bigger van would carry several
        let jobs: Vec<Job> = (0..3)
            .map(|i| Job::Move {
                id: format!("m{i}"),
                from: pt(0.002 * i as f64, -0.02),
                to: pt(0.002 * i as f64, 0.02),
                service_s: 60.,
                value: 10.,
            })
            .collect();

        let plan = plan(&vans, &jobs, &s).expect("plan");
        check_plan(&vans, &jobs, &s, &plan);
        assert!(plan.unassigned.is_empty());
        let route = &plan.routes[0];
        assert_eq!(route.stops.len(), 7);
        // with capacity 1, pickups and drop-offs must alternate
        for pair in route.stops[..6].chunks(2) {
            assert_eq!(pair[0].kind, StopKind::Pickup);
            assert_eq!(pair[1].kind, StopKind::Dropoff);
            assert_eq!(pair[0].job_id, pair[1].job_id);
        }

        // with capacity 3 the van carries them together
        let mut big = vans[0].clone();
        big.vehicle_capacity = 3;
        let big_vans = vec![big];
        let plan = super::plan(&big_vans, &jobs, &s).expect("plan");
        check_plan(&big_vans, &jobs, &s, &plan);
        let kinds: Vec<_> = plan.routes[0]
            .stops
            .iter()
            .map(|s| s.kind.clone())
            .collect();
        assert_eq!(
            &kinds[..3],
            &[StopKind::Pickup, StopKind::Pickup, StopKind::Pickup]
        );
    }

    #[test]
    fn shift_too_short_leaves_jobs_unassigned() {
        let s = settings(100);
        let mut v = van("v1", BASE, BASE);
        // 20 minutes: near job (~1 km) fits, far job (~14 km) does not
        v.shift_left_s = 1200.;
        let vans = vec![v];
        let jobs = vec![swap("near", pt(0.005, 0.)), swap("far", pt(0.1, 0.1))];

        let plan = plan(&vans, &jobs, &s).expect("plan");
        check_plan(&vans, &jobs, &s, &plan);
        assert_eq!(plan.unassigned, vec!["far".to_string()]);
        assert_eq!(stop_ids(&plan.routes[0]), vec!["near".to_string()]);

        // no time at all: everything unassigned, no routes
        let mut v = vans[0].clone();
        v.shift_left_s = 60.;
        v.start = pt(0.05, 0.);
        let plan = super::plan(&[v], &jobs, &s).expect("plan");
        assert!(plan.routes.is_empty());
        assert_eq!(plan.unassigned, vec!["near".to_string(), "far".to_string()]);
    }

    #[test]
    fn higher_value_job_is_preferred() {
        let s = settings(100);
        let mut v = van("v1", BASE, BASE);
        // time for only one of two jobs in opposite directions (~1.9 km away each)
        v.shift_left_s = 900.;
        let vans = vec![v];
        let make = |low_first: bool| {
            vec![
                Job::Swap {
                    id: "east".into(),
                    at: pt(0., 0.02),
                    service_s: 60.,
                    value: if low_first { 1. } else { 9. },
                },
                Job::Swap {
                    id: "west".into(),
                    at: pt(0., -0.02),
                    service_s: 60.,
                    value: if low_first { 9. } else { 1. },
                },
            ]
        };
        let plan_a = plan(&vans, &make(true), &s).expect("plan");
        assert_eq!(plan_a.unassigned, vec!["east".to_string()]);
        let plan_b = plan(&vans, &make(false), &s).expect("plan");
        assert_eq!(plan_b.unassigned, vec!["west".to_string()]);
    }

    #[test]
    fn collect_ends_at_the_depot() {
        let s = settings(100);
        let depot = pt(0., 0.);
        let mut v = van("v1", pt(0.01, 0.01), depot);
        v.vehicle_capacity = 1;
        let vans = vec![v];
        let jobs = vec![
            Job::Collect {
                id: "c1".into(),
                at: pt(0.02, 0.02),
                service_s: 120.,
                value: 10.,
            },
            Job::Collect {
                id: "c2".into(),
                at: pt(0.02, -0.02),
                service_s: 120.,
                value: 10.,
            },
        ];

        let plan = plan(&vans, &jobs, &s).expect("plan");
        check_plan(&vans, &jobs, &s, &plan);
        assert!(plan.unassigned.is_empty());
        let stops = &plan.routes[0].stops;
        // capacity 1: collect, unload at the depot (reload stop), collect, end at depot
        let kinds: Vec<_> = stops.iter().map(|s| s.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                StopKind::Collect,
                StopKind::Reload,
                StopKind::Collect,
                StopKind::Depot
            ]
        );
        assert_eq!(stops[1].at, depot);
        assert_eq!(stops[3].at, depot);
    }

    #[test]
    fn packs_are_reloaded_at_the_depot() {
        let s = settings(100);
        let mut v = van("v1", BASE, BASE);
        v.packs_on_board = 1;
        v.pack_capacity = 2;
        let vans = vec![v];
        let jobs: Vec<Job> = (0..3)
            .map(|i| swap(&format!("s{i}"), pt(0.01, 0.005 * i as f64)))
            .collect();

        let plan = plan(&vans, &jobs, &s).expect("plan");
        check_plan(&vans, &jobs, &s, &plan);
        assert!(plan.unassigned.is_empty());
        let kinds: Vec<_> = plan.routes[0]
            .stops
            .iter()
            .map(|s| s.kind.clone())
            .collect();
        assert_eq!(
            kinds,
            vec![
                StopKind::Swap,
                StopKind::Reload,
                StopKind::Swap,
                StopKind::Swap,
                StopKind::Depot
            ],
            "one pack on board, then a reload to serve the other two"
        );

        // no packs at all and no time to reload: swaps stay unassigned
        let mut v = vans[0].clone();
        v.packs_on_board = 0;
        v.pack_capacity = 0;
        let plan = super::plan(&[v], &jobs, &s).expect("plan");
        assert_eq!(plan.unassigned.len(), 3);
    }

    #[test]
    fn every_van_can_reload_at_a_shared_depot() {
        let s = settings(200);
        // six empty vans at one depot: every swap needs a reload first
        let vans: Vec<Van> = (0..6)
            .map(|i| {
                let mut v = van(&format!("v{i}"), BASE, BASE);
                v.packs_on_board = 0;
                v.pack_capacity = 2;
                v.shift_left_s = 1800.;
                v
            })
            .collect();
        // twelve swaps in six clusters, each cluster far enough from the others that one van per
        // cluster is best (but all reachable in the shift)
        let jobs: Vec<Job> = (0..12)
            .map(|i| {
                let angle = (i / 2) as f64 * std::f64::consts::PI / 3.;
                let r = 0.02 + 0.001 * (i % 2) as f64;
                swap(&format!("s{i}"), pt(r * angle.sin(), 1.6 * r * angle.cos()))
            })
            .collect();

        let plan = plan(&vans, &jobs, &s).expect("plan");
        check_plan(&vans, &jobs, &s, &plan);
        assert!(
            plan.unassigned.is_empty(),
            "unassigned: {:?}",
            plan.unassigned
        );
        for route in &plan.routes {
            assert_eq!(
                route.stops[0].kind,
                StopKind::Reload,
                "an empty van reloads first"
            );
        }
    }

    #[test]
    fn deterministic_for_same_seed() {
        let s = settings(100);
        let (vans, jobs) = instance(6, 80, 7);
        let a = plan(&vans, &jobs, &s).expect("plan");
        check_plan(&vans, &jobs, &s, &a);
        let b = plan(&vans, &jobs, &s).expect("plan");
        assert_eq!(fingerprint(&a), fingerprint(&b));

        // also when run from another thread while this one is busy
        let (vans2, jobs2) = (vans.clone(), jobs.clone());
        let handle = std::thread::spawn(move || plan(&vans2, &jobs2, &s).expect("plan"));
        let c = plan(&vans, &jobs, &s).expect("plan");
        let d = handle.join().expect("thread");
        assert_eq!(fingerprint(&a), fingerprint(&c));
        assert_eq!(fingerprint(&a), fingerprint(&d));

        // the seed is actually used
        let other = plan(&vans, &jobs, &Settings { seed: 43, ..s }).expect("plan");
        check_plan(&vans, &jobs, &s, &other);
        assert_ne!(fingerprint(&a), fingerprint(&other));
    }

    #[test]
    fn invalid_input_is_an_error() {
        let s = settings(10);
        let vans = vec![van("v1", BASE, BASE), van("v1", BASE, BASE)];
        assert!(plan(&vans, &[swap("a", BASE)], &s).is_err());
        let vans = vec![van("v1", BASE, BASE)];
        assert!(plan(&vans, &[swap("a", BASE), swap("a", BASE)], &s).is_err());
        assert!(
            plan(
                &vans,
                &[swap(
                    "a",
                    Point {
                        lat: f64::NAN,
                        lon: 0.
                    }
                )],
                &s
            )
            .is_err()
        );
        let bad = Settings { speed_m_s: 0., ..s };
        assert!(plan(&vans, &[swap("a", BASE)], &bad).is_err());
        // no jobs, no vans: empty plans
        assert!(plan(&vans, &[], &s).expect("plan").routes.is_empty());
        assert_eq!(
            plan(&[], &[swap("a", BASE)], &s).expect("plan").unassigned,
            vec!["a".to_string()]
        );
    }

    #[test]
    fn mixed_instance_is_feasible() {
        let s = settings(100);
        let (vans, jobs) = instance(5, 80, 11);
        let plan = plan(&vans, &jobs, &s).expect("plan");
        check_plan(&vans, &jobs, &s, &plan);
        assert!(plan.unassigned.len() < jobs.len());
    }

    /// Timing: `cargo test --release -- --ignored --nocapture timing`
    #[test]
    #[ignore]
    fn timing_8_vans_200_jobs() {
        let (vans, jobs) = instance(8, 200, 3);
        for generations in [1, 100, 200, 300, 400, 800] {
            let s = Settings {
                generations,
                ..settings(0)
            };
            let t = std::time::Instant::now();
            let plan = plan(&vans, &jobs, &s).expect("plan");
            let elapsed = t.elapsed();
            check_plan(&vans, &jobs, &s, &plan);
            let value: f64 = jobs
                .iter()
                .filter(|j| plan.unassigned.iter().any(|u| u == job_id(j)))
                .map(job_value)
                .sum();
            let distance: f64 = plan.routes.iter().map(|r| r.distance_m).sum();
            println!(
                "generations={generations:4} time={:7.3}s unassigned={:3} unassigned_value={value:6.1} distance={:9.0}m",
                elapsed.as_secs_f64(),
                plan.unassigned.len(),
                distance
            );
        }
    }
}
