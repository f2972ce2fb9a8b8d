//! A seeded, deterministic simulated city: vehicles that move, drain and report (with the
//! faults real connectivity has), riders whose demand follows the time of day, the weekday, the
//! weather and the city's hotspots, and the ground truth the AI and incident features are
//! measured against.
//!
//! **Pure:** no IO, no wall clock, no global randomness. [`Sim`] talks to the platform through
//! the [`Platform`] trait; [`LocalPlatform`] is the domain core in process, and the server's demo
//! driver implements the same trait over MQTT and HTTP.

pub mod city;
mod field;
pub mod local;
pub mod ops;
pub mod report;
pub mod sim;

pub use city::{CityModel, Hotspot, HotspotKind, Zone};
pub use local::{LocalPlatform, Received};
pub use ops::{Ops, OpsConfig, OpsStats, Policy};
pub use report::Report;
pub use sim::{
    Activity, Faults, FleetMix, GroundTruth, Outgoing, Platform, Sim, SimConfig, SimVehicle, Step,
    Weather, days_from_civil, lifecycle,
};
pub use sim::{CityEvent, DEMAND_SLOT_MS, DemandLog, ZONE_RESOLUTION, zone_of};

/// Runs a whole simulation in process and returns its report. `progress` is called about once per
/// simulated hour with the fraction done.
pub fn run_in_process(
    cfg: SimConfig,
    city: CityModel,
    hours: u32,
    mut progress: impl FnMut(f64),
) -> (Report, GroundTruth) {
    let mut sim = Sim::new(cfg, city);
    let mut platform = LocalPlatform::for_sim(&sim);
    let start = sim.now();
    for msg in sim.deployment() {
        platform.deliver(&msg, start);
    }
    for h in 1..=hours {
        sim.advance_to(start.plus_ms(i64::from(h) * 3_600_000), &mut platform);
        progress(f64::from(h) / f64::from(hours.max(1)));
    }
    sim.flush(&mut platform);
    let report = Report::of(&sim, hours, &platform.received);
    (report, sim.truth().clone())
}
