//! Field tasks from forecast demand and the fleet as it stands: which batteries to swap, which
//! vehicles to move where, which to collect for repair. Pure; the simulator and the platform
//! both plan with it, and hand the jobs to [`crate::routing::plan`].
//!
//! **Moves** go one vehicle at a time where it serves most. A zone expecting X ~ Poisson(D)
//! requests over the horizon with s rentable vehicles loses a rider for want of the next vehicle
//! with probability P(X > s), so each move goes to the zone where that is highest, from the
//! spare vehicle whose own zone misses it least (P(X > s − 1) there), nearer donors first. Only
//! zones with a clear excess (P(X > keep) < 5 %) give vehicles; flat vehicles where nobody is
//! expected cost nothing to take (they are swapped on the way). A move is made only when what it
//! gains beats what it costs by [`TaskRules::move_margin`].
//!
//! **Swaps** go where riders will need the vehicle: scooters and e-bikes below
//! [`TaskRules::swap_threshold`] in zones with expected demand (a flat vehicle nobody will ask
//! for waits, or is moved); cars and vans whenever they fall below
//! [`TaskRules::other_threshold`]. A swap's value grows with the forecast demand of its zone, so
//! the router serves the busiest first when vans cannot do everything.
//!
//! **Collections**: vehicles out of service (broken) go to the depot for repair.

use std::collections::BTreeMap;

use crate::routing::{self, Job, Point};

/// What a vehicle can do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Parked and rentable.
    Rentable,
    /// Parked with a battery too low to rent.
    Flat,
    /// Out of service: needs a workshop.
    Broken,
}

/// A vehicle the planner may give work for.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<Z> {
    /// The caller's key for the vehicle (an index into its own list).
    pub key: usize,
    /// Where it stands.
    pub at: Point,
    /// Its demand zone.
    pub zone: Option<Z>,
    /// Battery, percent.
    pub battery: f64,
    /// What it can do.
    pub status: Status,
    /// Scooter or e-bike: moved by vans and swapped where needed. Cars and vans are only
    /// swapped (charged) when low.
    pub micromobility: bool,
    /// Already part of a task a van is doing.
    pub claimed: bool,
}

/// How tasks are chosen.
#[derive(Debug, Clone, Copy)]
pub struct TaskRules {
    /// Swap scooters and e-bikes below this battery, percent, where riders are expected.
    pub swap_threshold: f64,
    /// Swap (charge) cars and vans below this battery, percent.
    pub other_threshold: f64,
    /// Rentable vehicles count as supply from this battery, percent.
    pub supply_battery: f64,
    /// A zone expecting fewer requests than this over the horizon is quiet.
    pub quiet_demand: f64,
    /// Vehicles moved at most (the free vans' capacity).
    pub max_moves: usize,
    /// A move is worth making when the probability it serves a rider beats the probability its
    /// donor zone misses the vehicle by at least this much.
    pub move_margin: f64,
    /// The neediest zone must lose a rider for want of a vehicle with at least this probability.
    pub move_min_gain: f64,
    /// Metres of donor distance that cost as much as a certain lost rider (nearer donors first).
    pub donor_distance_m: f64,
    /// Seconds to swap a battery.
    pub swap_s: f64,
    /// Seconds to load or unload a vehicle.
    pub handle_s: f64,
}

impl Default for TaskRules {
    fn default() -> Self {
        Self {
            swap_threshold: 18.0,
            other_threshold: 20.0,
            supply_battery: 20.0,
            quiet_demand: 0.3,
            max_moves: 0,
            move_margin: 0.05,
            move_min_gain: 0.15,
            donor_distance_m: 20_000.0,
            swap_s: 90.0,
            handle_s: 60.0,
        }
    }
}

/// One task, as the caller will carry it out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Task {
    /// Swap the battery of vehicle `key` at `at`.
    Swap {
        /// The vehicle.
        key: usize,
        /// Where it stands.
        at: Point,
    },
    /// Move vehicle `key` from `from` to `to`.
    Move {
        /// The vehicle.
        key: usize,
        /// Where it stands.
        from: Point,
        /// Where it is wanted (the centre of the zone short of vehicles).
        to: Point,
        /// The chance, when planned, that it serves a rider there over the horizon.
        gain: f64,
    },
    /// Take vehicle `key` at `at` to the depot.
    Collect {
        /// The vehicle.
        key: usize,
        /// Where it stands.
        at: Point,
    },
}

impl Task {
    /// The vehicle.
    #[must_use]
    pub fn key(&self) -> usize {
        match *self {
            Self::Swap { key, .. } | Self::Move { key, .. } | Self::Collect { key, .. } => key,
        }
    }
}

/// The jobs for the router and the task behind each job id.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    /// Jobs in the order they were chosen (moves, then swaps, then collections).
    pub jobs: Vec<Job>,
    /// What each job id stands for.
    pub tasks: BTreeMap<String, Task>,
}

/// P(X > s) for X ~ Poisson(mu): the chance that a zone expecting `mu` requests has a rider for
/// its (s+1)-th vehicle.
#[must_use]
pub fn poisson_tail(mu: f64, s: usize) -> f64 {
    if mu <= 0.0 {
        return 0.0;
    }
    let (mut p, mut cdf) = ((-mu).exp(), 0.0);
    for k in 0..=s {
        if k > 0 {
            #[allow(clippy::cast_precision_loss)]
            {
                p *= mu / k as f64;
            }
        }
        cdf += p;
    }
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// Rentable scooters and e-bikes per zone (the supply moves and prices look at), in key order.
#[must_use]
pub fn supply<Z: Ord + Copy>(cands: &[Candidate<Z>], rules: &TaskRules) -> BTreeMap<Z, Vec<usize>> {
    let mut out: BTreeMap<Z, Vec<usize>> = BTreeMap::new();
    for (i, c) in cands.iter().enumerate() {
        if c.micromobility
            && c.status == Status::Rentable
            && c.battery >= rules.supply_battery
            && let Some(z) = c.zone
        {
            out.entry(z).or_default().push(i);
        }
    }
    out
}

/// Chooses the tasks. `demand` is each zone's forecast requests over the horizon; `centre`
/// gives a zone's centre (where moved vehicles are dropped).
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn generate<Z: Ord + Copy + Into<u64>>(
    cands: &[Candidate<Z>],
    demand: &BTreeMap<Z, f64>,
    centre: impl Fn(Z) -> Option<Point>,
    rules: &TaskRules,
) -> Tasks {
    let mut out = Tasks::default();
    let mut taken: Vec<bool> = cands.iter().map(|c| c.claimed).collect();
    let zone_demand =
        |c: &Candidate<Z>| c.zone.and_then(|z| demand.get(&z).copied()).unwrap_or(0.0);
    let supply = supply(cands, rules);
    let mut zones: Vec<Z> = demand.keys().chain(supply.keys()).copied().collect();
    zones.sort_unstable();
    zones.dedup();
    let mut have: BTreeMap<Z, i32> = zones
        .iter()
        .map(|z| {
            let n = supply.get(z).map_or(0, Vec::len);
            (*z, i32::try_from(n).unwrap_or(i32::MAX))
        })
        .collect();
    // Donors: (candidate index, zone it leaves).
    let mut donors: Vec<(usize, Option<Z>)> = Vec::new();
    for (z, members) in &supply {
        let d = demand.get(z).copied().unwrap_or(0.0);
        let mut members = members.clone();
        members.sort_by(|a, b| cands[*a].battery.total_cmp(&cands[*b].battery));
        let n = members.len();
        let keep = (0..=n).find(|s| poisson_tail(d, *s) < 0.05).unwrap_or(n);
        donors.extend(
            members
                .into_iter()
                .take(n - keep)
                .filter(|i| !taken[*i])
                .map(|i| (i, Some(*z))),
        );
    }
    for (i, c) in cands.iter().enumerate() {
        if c.micromobility
            && c.status == Status::Flat
            && !taken[i]
            && zone_demand(c) < rules.quiet_demand
        {
            donors.push((i, None));
        }
    }
    for _ in 0..rules.max_moves {
        let best_to = zones
            .iter()
            .map(|z| {
                let d = demand.get(z).copied().unwrap_or(0.0);
                (*z, poisson_tail(d, usize::try_from(have[z]).unwrap_or(0)))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then((b.0).into().cmp(&(a.0).into())));
        let Some((to_zone, gain)) = best_to else {
            break;
        };
        if gain < rules.move_min_gain {
            break;
        }
        let Some(to) = centre(to_zone) else { break };
        let best_from = donors
            .iter()
            .enumerate()
            .map(|(n, (i, z))| {
                let cost = z.map_or(0.0, |z| {
                    let d = demand.get(&z).copied().unwrap_or(0.0);
                    poisson_tail(d, usize::try_from(have[&z] - 1).unwrap_or(0))
                });
                (
                    n,
                    cost + routing::distance_m(cands[*i].at, to) / rules.donor_distance_m,
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((n, cost)) = best_from else { break };
        if gain - cost < rules.move_margin {
            // Nothing worth moving for the neediest zone: it will not get better.
            have.insert(to_zone, have[&to_zone] + 1_000);
            continue;
        }
        let (i, from_zone) = donors.swap_remove(n);
        if let Some(z) = from_zone {
            have.insert(z, have[&z] - 1);
        }
        have.insert(to_zone, have[&to_zone] + 1);
        taken[i] = true;
        let c = &cands[i];
        let id = format!("m{}", c.key);
        out.jobs.push(Job::Move {
            id: id.clone(),
            from: c.at,
            to,
            service_s: rules.handle_s,
            value: 1.0 + 4.0 * gain,
        });
        out.tasks.insert(
            id,
            Task::Move {
                key: c.key,
                from: c.at,
                to,
                gain,
            },
        );
    }
    for (i, c) in cands.iter().enumerate() {
        if taken[i] || c.status == Status::Broken {
            continue;
        }
        let d = zone_demand(c);
        let wanted = if c.micromobility {
            c.battery < rules.swap_threshold && d >= rules.quiet_demand
        } else {
            c.battery < rules.other_threshold
        };
        if wanted {
            taken[i] = true;
            let id = format!("s{}", c.key);
            out.jobs.push(Job::Swap {
                id: id.clone(),
                at: c.at,
                service_s: rules.swap_s,
                value: 1.0 + d,
            });
            out.tasks.insert(
                id,
                Task::Swap {
                    key: c.key,
                    at: c.at,
                },
            );
        }
    }
    for (i, c) in cands.iter().enumerate() {
        if !taken[i] && c.status == Status::Broken && c.micromobility {
            let id = format!("c{}", c.key);
            out.jobs.push(Job::Collect {
                id: id.clone(),
                at: c.at,
                service_s: rules.handle_s,
                value: 1.0,
            });
            out.tasks.insert(
                id,
                Task::Collect {
                    key: c.key,
                    at: c.at,
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lon: f64) -> Point {
        Point { lat, lon }
    }

    fn cand(key: usize, zone: u64, battery: f64, status: Status) -> Candidate<u64> {
        Candidate {
            key,
            at: at(41.38 + zone as f64 * 0.01, 2.17),
            zone: Some(zone),
            battery,
            status,
            micromobility: true,
            claimed: false,
        }
    }

    fn centre(z: u64) -> Option<Point> {
        Some(at(41.38 + z as f64 * 0.01, 2.17))
    }

    #[test]
    fn the_poisson_tail_is_the_chance_of_more_requests_than_vehicles() {
        assert!(poisson_tail(0.0, 0).abs() < 1e-12);
        // P(X > 0) = 1 - e^-mu.
        assert!((poisson_tail(2.0, 0) - (1.0 - (-2.0f64).exp())).abs() < 1e-12);
        assert!(poisson_tail(2.0, 5) < poisson_tail(2.0, 1));
    }

    #[test]
    fn surplus_goes_where_riders_will_be_and_flat_batteries_are_swapped_only_where_needed() {
        // Zone 1 has ten idle vehicles and no demand; zone 2 expects six riders and has none.
        let mut cands: Vec<_> = (0..10)
            .map(|k| cand(k, 1, 80.0, Status::Rentable))
            .collect();
        cands.push(cand(10, 2, 5.0, Status::Flat)); // needed where it stands: swap
        cands.push(cand(11, 3, 5.0, Status::Flat)); // nobody in zone 3: a free donor
        cands.push(cand(12, 1, 50.0, Status::Broken));
        let demand = BTreeMap::from([(2u64, 6.0)]);
        let rules = TaskRules {
            max_moves: 20,
            ..TaskRules::default()
        };
        let t = generate(&cands, &demand, centre, &rules);
        let moves: Vec<_> = t
            .tasks
            .values()
            .filter_map(|t| match t {
                Task::Move { key, to, .. } => Some((*key, *to)),
                _ => None,
            })
            .collect();
        assert!(moves.len() >= 4 && moves.len() <= 11, "{moves:?}");
        assert!(moves.iter().all(|(_, to)| *to == centre(2).unwrap()));
        assert!(
            matches!(t.tasks.get("s10"), Some(Task::Swap { key: 10, .. })),
            "{t:?}"
        );
        assert!(!t.tasks.contains_key("s11"), "no swap where nobody rides");
        assert!(matches!(
            t.tasks.get("c12"),
            Some(Task::Collect { key: 12, .. })
        ));
        // Every job has its task, and nothing is given two tasks.
        assert_eq!(t.jobs.len(), t.tasks.len());
        let mut keys: Vec<_> = t.tasks.values().map(Task::key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), t.tasks.len());
    }

    #[test]
    fn claimed_vehicles_and_balanced_zones_get_no_work() {
        let mut cands: Vec<_> = (0..3).map(|k| cand(k, 1, 90.0, Status::Rentable)).collect();
        cands.push(Candidate {
            claimed: true,
            ..cand(3, 1, 2.0, Status::Flat)
        });
        let demand = BTreeMap::from([(1u64, 1.0)]);
        let rules = TaskRules {
            max_moves: 10,
            ..TaskRules::default()
        };
        let t = generate(&cands, &demand, centre, &rules);
        assert!(t.jobs.is_empty(), "{t:?}");
    }
}
