//! Field operations at work in the simulated city: the `Sim`'s side of [`crate::ops`] (the
//! vans' steps, the plans, the incentives and prices), kept apart so that `ops.rs` (what
//! operations are) needs nothing of `sim.rs` and the two do not import each other.

use std::collections::{BTreeMap, VecDeque};

use h3o::CellIndex;
use mobility_core::{LatLon, TimestampMs, VehicleType};
use mobility_intel::{
    ForecastConfig, Forecaster, Registry, Series,
    pricing::{Budget, price_zone_flow},
    routing, tasks,
};

use crate::{
    ops::{Ops, OpsConfig, OpsStats, Policy, Task, Van},
    sim::{Activity, Platform, Sim, Step, zone_of},
};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

impl Ops {
    /// Operations for a simulation. `history` is the platform's demand before the run (for the
    /// forecast policy: the first model is trained on it).
    ///
    /// # Errors
    /// A forecast policy without enough history to train on.
    pub fn new(
        cfg: OpsConfig,
        sim: &Sim,
        history: Option<Series>,
        returns_history: Option<Series>,
    ) -> Result<Self, String> {
        let city = sim.city();
        let (sw, ne) = city.bounds();
        let middle = LatLon::new(
            f64::midpoint(sw.lat(), ne.lat()),
            f64::midpoint(sw.lon(), ne.lon()),
        )
        .unwrap_or(sw);
        let depot = city
            .hotspots
            .iter()
            .map(|h| h.center)
            .min_by(|a, b| a.distance_m(&middle).total_cmp(&b.distance_m(&middle)))
            .unwrap_or(middle);
        let vans = (0..cfg.vans)
            .map(|_| Van {
                pos: depot,
                packs: cfg.packs,
                carrying: Vec::new(),
                queue: VecDeque::new(),
                current: None,
                done_at: 0,
                idle_until: 0,
            })
            .collect();
        let forecast_cfg = ForecastConfig {
            max_rows: 120_000,
            iterations: 100,
            ..ForecastConfig::default()
        };
        let mut registry = Registry::new();
        let mut returns_registry = Registry::new();
        let mut stats = OpsStats::default();
        if cfg.policy == Policy::Forecast {
            let h = history
                .as_ref()
                .ok_or("the forecast policy needs demand history")?;
            let spd = h.slots_per_day();
            let test_start = h.slots.saturating_sub(2 * spd);
            let model =
                Forecaster::train(h, test_start, &forecast_cfg).map_err(|e| e.to_string())?;
            registry.submit(model, h, test_start, sim.now().0);
            stats.models_trained = 1;
            stats.models_promoted = 1;
            if let Some(r) = returns_history.as_ref() {
                let test_start = r.slots.saturating_sub(2 * r.slots_per_day());
                if let Ok(model) = Forecaster::train(r, test_start, &forecast_cfg) {
                    returns_registry.submit(model, r, test_start, sim.now().0);
                }
            }
        }
        Ok(Self {
            claimed: vec![false; sim.vehicles().len()],
            depot,
            vans,
            registry,
            history,
            returns_registry,
            returns_history,
            forecast_cfg,
            balance: BTreeMap::new(),
            prices: BTreeMap::new(),
            budget: Budget {
                day: 0,
                spent_cents: 0,
            },
            next_plan: sim.now().0,
            last_retrain_day: sim.now().0.div_euclid(86_400_000),
            stats,
            cfg,
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &OpsConfig {
        &self.cfg
    }

    /// The model registry.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn road_m(&self, a: LatLon, b: LatLon) -> f64 {
        a.distance_m(&b) * self.cfg.detour
    }
}

fn point(p: LatLon) -> routing::Point {
    routing::Point {
        lat: p.lat(),
        lon: p.lon(),
    }
}

fn micromobility(t: VehicleType) -> bool {
    matches!(t, VehicleType::Scooter | VehicleType::Ebike)
}

impl Sim {
    /// Puts field operations in place (before the run).
    pub fn set_ops(&mut self, ops: Ops) {
        self.ops = Some(Box::new(ops));
    }

    /// Field operations, if any.
    #[must_use]
    pub fn ops(&self) -> Option<&Ops> {
        self.ops.as_deref()
    }

    /// The price multiplier of the zone a trip starts in (1 without operations).
    pub(crate) fn price_at(&mut self, p: LatLon) -> f64 {
        let Some(ops) = self.ops.as_deref_mut() else {
            return 1.0;
        };
        let m = zone_of(p)
            .and_then(|z| ops.prices.get(&z).copied())
            .unwrap_or(1.0);
        ops.stats.multiplier_sum += m;
        ops.stats.multiplier_n += 1;
        #[allow(clippy::cast_precision_loss)]
        {
            ops.stats.mean_multiplier = ops.stats.multiplier_sum / ops.stats.multiplier_n as f64;
        }
        m
    }

    /// Where a rider going to `destination` ends the trip: in a neighbouring zone that is
    /// short of vehicles if offered a credit and willing.
    pub(crate) fn incentive(&mut self, destination: LatLon) -> LatLon {
        let Some(mut ops) = self.ops.take() else {
            return destination;
        };
        let out = self.incentive_with(&mut ops, destination);
        self.ops = Some(ops);
        out
    }

    fn incentive_with(&mut self, ops: &mut Ops, destination: LatLon) -> LatLon {
        if ops.cfg.policy != Policy::Forecast {
            return destination;
        }
        let Some(cell) = zone_of(destination) else {
            return destination;
        };
        if ops.balance.get(&cell).is_some_and(|b| *b > 0) {
            return destination;
        }
        let target = cell
            .grid_disk::<Vec<_>>(1)
            .into_iter()
            .filter(|c| *c != cell)
            .filter_map(|c| ops.balance.get(&c).map(|b| (c, *b)))
            .filter(|(_, b)| *b > 0)
            .max_by_key(|(c, b)| (*b, std::cmp::Reverse(u64::from(*c))));
        let Some((target, _)) = target else {
            return destination;
        };
        let accept = ops.cfg.incentive_accept.clamp(0.0, 1.0);
        let day =
            (self.now + i64::from(self.city.utc_offset_min) * MINUTE_MS).div_euclid(86_400_000);
        let credit = ops.cfg.pricing.end_credit_cents;
        if !self.rng_bool(accept) || !ops.budget.spend(day, credit, &ops.cfg.pricing) {
            ops.stats.incentives_declined += 1;
            return destination;
        }
        ops.stats.incentives_accepted += 1;
        ops.stats.incentives_cents += credit;
        if let Some(b) = ops.balance.get_mut(&target) {
            *b -= 1;
        }
        let ll = h3o::LatLng::from(target);
        LatLon::new(ll.lat(), ll.lng()).unwrap_or(destination)
    }

    /// One tick of field operations.
    pub(crate) fn ops_step(&mut self, platform: &mut impl Platform) {
        let Some(mut ops) = self.ops.take() else {
            return;
        };
        let now = self.now;
        let (hour, _) = self.local_hour(now);
        let on_shift = hour >= ops.cfg.shift.0 && hour < ops.cfg.shift.1;
        if ops.cfg.policy == Policy::Forecast {
            let day =
                (now + i64::from(self.city.utc_offset_min) * MINUTE_MS).div_euclid(86_400_000);
            if hour == 3 && day != ops.last_retrain_day {
                ops.last_retrain_day = day;
                self.retrain(&mut ops);
            }
            if now >= ops.next_plan {
                ops.next_plan = now + ops.cfg.plan_every_ms;
                self.plan(&mut ops, on_shift);
            }
        }
        for v in 0..ops.vans.len() {
            self.van_step(&mut ops, v, on_shift, platform);
        }
        self.ops = Some(ops);
    }

    fn local_hour(&self, t: i64) -> (u32, i64) {
        let local = t + i64::from(self.city.utc_offset_min) * MINUTE_MS;
        (
            u32::try_from(local.rem_euclid(86_400_000) / HOUR_MS).unwrap_or(0),
            local.div_euclid(86_400_000),
        )
    }

    fn van_step(&mut self, ops: &mut Ops, v: usize, on_shift: bool, platform: &mut impl Platform) {
        let now = self.now;
        if let Some((task, at)) = ops.vans[v].current {
            if now < ops.vans[v].done_at {
                return;
            }
            ops.vans[v].current = None;
            ops.vans[v].pos = at;
            self.apply(ops, v, task, platform);
        }
        if ops.vans[v].queue.is_empty() {
            if now < ops.vans[v].idle_until {
                return;
            }
            match ops.cfg.policy {
                Policy::Reactive => self.reactive_next(ops, v, on_shift),
                Policy::Forecast => {
                    if !on_shift && ops.vans[v].pos.distance_m(&ops.depot) > 50.0 {
                        ops.vans[v].queue.push_back(Task::Home);
                    }
                }
            }
            if ops.vans[v].queue.is_empty() {
                ops.vans[v].idle_until = now + MINUTE_MS;
                return;
            }
        }
        let Some(task) = ops.vans[v].queue.pop_front() else {
            return;
        };
        let at = match task {
            Task::Swap(_, p) | Task::Pickup(_, p) | Task::Drop(_, p) => p,
            Task::Reload | Task::Home => ops.depot,
        };
        let dist = ops.road_m(ops.vans[v].pos, at);
        let service = match task {
            Task::Swap(..) => ops.cfg.swap_s,
            Task::Pickup(..) | Task::Drop(..) => ops.cfg.handle_s,
            Task::Reload => ops.cfg.reload_s,
            Task::Home => 0.0,
        };
        ops.stats.staff_km += dist / 1_000.0;
        #[allow(clippy::cast_possible_truncation)]
        let took = ((dist / ops.cfg.speed_m_s.max(0.1) + service) * 1_000.0) as i64;
        ops.vans[v].done_at = now + took.max(1_000);
        ops.vans[v].current = Some((task, at));
    }

    fn reactive_next(&mut self, ops: &mut Ops, v: usize, on_shift: bool) {
        let van = &ops.vans[v];
        if !on_shift {
            if van.pos.distance_m(&ops.depot) > 50.0 {
                ops.vans[v].queue.push_back(Task::Home);
            }
            return;
        }
        if van.packs <= 0 {
            ops.vans[v].queue.push_back(Task::Reload);
            return;
        }
        let pos = van.pos;
        let threshold = ops.cfg.reactive_threshold;
        let best = self
            .vehicles
            .iter()
            .enumerate()
            .filter(|(k, x)| {
                !ops.claimed[*k]
                    && x.battery < threshold
                    && matches!(x.activity, Activity::Available | Activity::LowBattery)
            })
            .min_by(|a, b| {
                a.1.position
                    .distance_m(&pos)
                    .total_cmp(&b.1.position.distance_m(&pos))
            })
            .map(|(k, x)| (k, x.position));
        if let Some((k, p)) = best {
            ops.claimed[k] = true;
            ops.vans[v].queue.push_back(Task::Swap(k, p));
        }
    }

    fn apply(&mut self, ops: &mut Ops, v: usize, task: Task, platform: &mut impl Platform) {
        let now = self.now;
        match task {
            Task::Swap(k, p) => {
                ops.claimed[k] = false;
                let x = &self.vehicles[k];
                if ops.vans[v].packs > 0
                    && matches!(x.activity, Activity::Available | Activity::LowBattery)
                    && x.position.distance_m(&p) < 100.0
                {
                    self.swap(ops, v, k, platform);
                }
            }
            Task::Pickup(k, p) => {
                let x = &self.vehicles[k];
                if matches!(x.activity, Activity::Available | Activity::LowBattery)
                    && x.position.distance_m(&p) < 100.0
                    && i32::try_from(ops.vans[v].carrying.len()).unwrap_or(i32::MAX)
                        < ops.cfg.van_vehicles
                {
                    if x.battery < 30.0 && ops.vans[v].packs > 0 {
                        self.swap(ops, v, k, platform);
                    }
                    let x = &mut self.vehicles[k];
                    x.activity = Activity::WithStaff;
                    platform.deliver(
                        &crate::sim::lifecycle_msg(x, Step::Pickup, now),
                        TimestampMs(now),
                    );
                    ops.vans[v].carrying.push(k);
                } else {
                    ops.claimed[k] = false;
                    // Nothing to drop off for this one.
                    ops.vans[v]
                        .queue
                        .retain(|t| !matches!(t, Task::Drop(j, _) if *j == k));
                }
            }
            Task::Drop(k, p) => {
                ops.claimed[k] = false;
                if let Some(i) = ops.vans[v].carrying.iter().position(|j| *j == k) {
                    ops.vans[v].carrying.swap_remove(i);
                    let x = &mut self.vehicles[k];
                    x.position = p;
                    x.activity = Activity::Available;
                    platform.deliver(
                        &crate::sim::lifecycle_msg(x, Step::Deploy, now),
                        TimestampMs(now),
                    );
                    ops.stats.moves += 1;
                    self.totals.relocations += 1;
                    self.report_now(k, platform);
                }
            }
            Task::Reload => ops.vans[v].packs = ops.cfg.packs,
            Task::Home => {
                // Vehicles still on board go back out at the depot.
                let carrying = std::mem::take(&mut ops.vans[v].carrying);
                for k in carrying {
                    ops.claimed[k] = false;
                    let x = &mut self.vehicles[k];
                    x.position = ops.depot;
                    x.activity = Activity::Available;
                    platform.deliver(
                        &crate::sim::lifecycle_msg(x, Step::Deploy, now),
                        TimestampMs(now),
                    );
                    self.report_now(k, platform);
                }
                ops.vans[v].packs = ops.cfg.packs;
            }
        }
    }

    fn swap(&mut self, ops: &mut Ops, v: usize, k: usize, platform: &mut impl Platform) {
        let now = self.now;
        ops.vans[v].packs -= 1;
        ops.stats.swaps += 1;
        self.totals.battery_swaps += 1;
        let x = &mut self.vehicles[k];
        x.battery = 100.0;
        if x.activity == Activity::LowBattery {
            x.activity = Activity::Available;
            platform.deliver(
                &crate::sim::lifecycle_msg(x, Step::Charged, now),
                TimestampMs(now),
            );
        }
        if x.activity != Activity::WithStaff {
            self.report_now(k, platform);
        }
    }

    /// Retrains the model on everything seen so far; the registry keeps it if it beats the
    /// current one on the last two days.
    fn retrain(&mut self, ops: &mut Ops) {
        if let Some(mut r) = ops.returns_history.clone()
            && r.append(&self.returns_series(0)).is_ok()
        {
            let test_start = r.slots.saturating_sub(2 * r.slots_per_day());
            if let Ok(model) = Forecaster::train(&r, test_start, &ops.forecast_cfg) {
                ops.returns_registry.submit(model, &r, test_start, self.now);
            }
        }
        let Some(series) = self.history_and_now(ops, 0) else {
            return;
        };
        let spd = series.slots_per_day();
        let test_start = series.slots.saturating_sub(2 * spd);
        if let Ok(model) = Forecaster::train(&series, test_start, &ops.forecast_cfg) {
            let card = ops.registry.submit(model, &series, test_start, self.now);
            ops.stats.models_trained += 1;
            if card.promoted {
                ops.stats.models_promoted += 1;
            }
        }
    }

    fn history_and_now(&self, ops: &Ops, ahead: usize) -> Option<Series> {
        let mut s = ops.history.clone()?;
        s.append(&self.demand_series(ahead)).ok()?;
        Some(s)
    }

    /// Forecast returns per zone for the next two hours.
    fn forecast_returns(&self, ops: &Ops) -> BTreeMap<CellIndex, f64> {
        let mut out = BTreeMap::new();
        let Some((_, model)) = ops.returns_registry.current() else {
            return out;
        };
        let Some(mut series) = ops.returns_history.clone() else {
            return out;
        };
        if series.append(&self.returns_series(model.horizons)).is_err() {
            return out;
        }
        let t = series.slots - model.horizons;
        let Ok(f) = model.forecast(&series, t) else {
            return out;
        };
        for (z, name) in series.zones.iter().enumerate() {
            if let Ok(cell) = name.parse::<CellIndex>() {
                out.insert(cell, f[z].iter().sum());
            }
        }
        out
    }

    /// Forecast demand per zone for the next two hours.
    fn forecast_zones(&self, ops: &Ops) -> BTreeMap<CellIndex, f64> {
        let mut out = BTreeMap::new();
        let Some((_, model)) = ops.registry.current() else {
            return out;
        };
        let ahead = model.horizons;
        let Some(series) = self.history_and_now(ops, ahead) else {
            return out;
        };
        let t = series.slots - ahead;
        let Ok(f) = model.forecast(&series, t) else {
            return out;
        };
        for (z, name) in series.zones.iter().enumerate() {
            if let Ok(cell) = name.parse::<CellIndex>() {
                out.insert(cell, f[z].iter().sum());
            }
        }
        out
    }

    /// The forecast policy's planning: tasks from forecast demand against supply, routed.
    #[allow(clippy::too_many_lines)]
    fn plan(&mut self, ops: &mut Ops, on_shift: bool) {
        let demand = self.forecast_zones(ops);
        // Vehicles trips will bring back, as arriving supply in prices (only with use_returns).
        let returns = if ops.cfg.use_returns {
            self.forecast_returns(ops)
        } else {
            BTreeMap::new()
        };
        // Supply: rentable scooters and e-bikes per zone.
        let mut supply: BTreeMap<CellIndex, Vec<usize>> = BTreeMap::new();
        for (k, x) in self.vehicles.iter().enumerate() {
            if micromobility(x.vehicle_type)
                && x.activity == Activity::Available
                && x.battery >= 20.0
                && let Some(z) = zone_of(x.position)
            {
                supply.entry(z).or_default().push(k);
            }
        }
        ops.balance.clear();
        let mut zones: Vec<CellIndex> = demand.keys().chain(supply.keys()).copied().collect();
        zones.sort_unstable();
        zones.dedup();
        let mut prices = BTreeMap::new();
        for z in &zones {
            let d = demand.get(z).copied().unwrap_or(0.0);
            let s = u32::try_from(supply.get(z).map_or(0, Vec::len)).unwrap_or(u32::MAX);
            let r = returns.get(z).copied().unwrap_or(0.0);
            let p = price_zone_flow(d, s, r, ops.prices.get(z).copied(), &ops.cfg.pricing);
            ops.balance.insert(*z, p.balance);
            prices.insert(*z, p.multiplier);
        }
        ops.prices = prices;
        if !on_shift {
            return;
        }
        ops.stats.plans += 1;
        // Vans carrying vehicles finish what they are doing; the others are planned afresh.
        let free: Vec<usize> = (0..ops.vans.len())
            .filter(|v| ops.vans[*v].carrying.is_empty())
            .collect();
        for &v in &free {
            for t in std::mem::take(&mut ops.vans[v].queue) {
                if let Task::Swap(k, _) | Task::Pickup(k, _) | Task::Drop(k, _) = t {
                    ops.claimed[k] = false;
                }
            }
        }
        // The candidates: every parked scooter, e-bike, car and van.
        let cands: Vec<tasks::Candidate<CellIndex>> = self
            .vehicles
            .iter()
            .enumerate()
            .filter_map(|(k, x)| {
                let status = match x.activity {
                    Activity::Available => tasks::Status::Rentable,
                    Activity::LowBattery => tasks::Status::Flat,
                    Activity::OnTrip | Activity::WithStaff => return None,
                };
                Some(tasks::Candidate {
                    key: k,
                    at: point(x.position),
                    zone: zone_of(x.position),
                    battery: x.battery,
                    status,
                    micromobility: micromobility(x.vehicle_type),
                    claimed: ops.claimed[k],
                })
            })
            .collect();
        let rules = tasks::TaskRules {
            swap_threshold: ops.cfg.swap_threshold,
            other_threshold: ops.cfg.reactive_threshold,
            max_moves: free.len() * usize::try_from(ops.cfg.van_vehicles).unwrap_or(1),
            swap_s: ops.cfg.swap_s,
            handle_s: ops.cfg.handle_s,
            ..tasks::TaskRules::default()
        };
        let centre = |z: CellIndex| {
            let ll = h3o::LatLng::from(z);
            Some(routing::Point {
                lat: ll.lat(),
                lon: ll.lng(),
            })
        };
        let chosen = tasks::generate(&cands, &demand, centre, &rules);
        let jobs = chosen.jobs;
        let mut tasks: BTreeMap<String, (Task, Option<Task>)> = BTreeMap::new();
        let ll = |p: routing::Point| LatLon::new(p.lat, p.lon).ok();
        for (id, t) in chosen.tasks {
            ops.claimed[t.key()] = true;
            let task = match t {
                tasks::Task::Swap { key, at } => ll(at).map(|at| (Task::Swap(key, at), None)),
                tasks::Task::Move { key, from, to, .. } => ll(from)
                    .zip(ll(to))
                    .map(|(from, to)| (Task::Pickup(key, from), Some(Task::Drop(key, to)))),
                tasks::Task::Collect { .. } => None,
            };
            if let Some(task) = task {
                tasks.insert(id, task);
            }
        }
        let (hour, _) = self.local_hour(self.now);
        let to_shift_end = f64::from(ops.cfg.shift.1.saturating_sub(hour)) * 3_600.0;
        let horizon_s = (to_shift_end).min(1.5 * ops.cfg.plan_every_ms as f64 / 1_000.0);
        let vans: Vec<routing::Van> = free
            .iter()
            .map(|&v| {
                let van = &ops.vans[v];
                let start = van.current.map_or(van.pos, |(_, at)| at);
                routing::Van {
                    id: v.to_string(),
                    start: point(start),
                    depot: point(ops.depot),
                    vehicle_capacity: ops.cfg.van_vehicles,
                    packs_on_board: van.packs.max(0),
                    pack_capacity: ops.cfg.packs,
                    shift_left_s: horizon_s + ops.road_m(start, ops.depot) / ops.cfg.speed_m_s,
                }
            })
            .collect();
        let settings = routing::Settings {
            speed_m_s: ops.cfg.speed_m_s,
            detour: ops.cfg.detour,
            generations: ops.cfg.generations,
            seed: self.cfg.seed ^ ops.stats.plans,
        };
        let plan = if jobs.is_empty() || vans.is_empty() {
            routing::Plan::default()
        } else {
            routing::plan(&vans, &jobs, &settings).unwrap_or_default()
        };
        ops.stats.unassigned_jobs += plan.unassigned.len() as u64;
        for id in &plan.unassigned {
            if let Some((Task::Swap(k, _) | Task::Pickup(k, _), _)) = tasks.get(id) {
                ops.claimed[*k] = false;
            }
        }
        for route in plan.routes {
            let Ok(v) = route.van_id.parse::<usize>() else {
                continue;
            };
            for stop in route.stops {
                let task = match (stop.kind, stop.job_id.as_ref().and_then(|id| tasks.get(id))) {
                    (routing::StopKind::Swap, Some((t, _)))
                    | (routing::StopKind::Pickup, Some((t, _))) => *t,
                    (routing::StopKind::Dropoff, Some((_, Some(t)))) => *t,
                    (routing::StopKind::Reload, _) => Task::Reload,
                    _ => continue,
                };
                ops.vans[v].queue.push_back(task);
            }
        }
    }
}
