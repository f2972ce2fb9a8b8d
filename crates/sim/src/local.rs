//! The in-process platform: the domain core's own fleet index, fed exactly as the server feeds
//! it (telemetry judged by timestamp, lifecycle changes setting the state). A simulated day runs
//! in seconds, and what the index decides is what the server would decide.

use mobility_core::{TimestampMs, VehicleState};
use mobility_fleet::{CityIndex, Hit, NearbyQuery, Reject, Verdict, index::CELL_M_DEFAULT};
use serde::Serialize;

use crate::sim::{Outgoing, Platform, Sim};

/// What the platform did with what it received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Received {
    /// Reports applied.
    pub applied: u64,
    /// Redeliveries recognised (no-ops).
    pub duplicates: u64,
    /// Reports older than the vehicle's latest (not applied).
    pub stale: u64,
    /// Reports refused for another reason.
    pub rejected: u64,
    /// Lifecycle changes applied.
    pub lifecycle: u64,
    /// IMU events received.
    pub imu_events: u64,
    /// Lifecycle changes the vehicle's MDS state machine refuses (a simulator bug if not 0).
    pub illegal_lifecycle: u64,
}

/// The domain core in process.
#[derive(Debug)]
pub struct LocalPlatform {
    /// The live index, as the server keeps it.
    pub index: CityIndex,
    /// Counters.
    pub received: Received,
}

impl LocalPlatform {
    /// An index with every simulated vehicle registered (not yet in service).
    #[must_use]
    pub fn for_sim(sim: &Sim) -> Self {
        let reference = sim
            .city()
            .hotspots
            .first()
            .map_or(mobility_core::LatLon::ORIGIN, |h| h.center);
        let mut index = CityIndex::new(reference, CELL_M_DEFAULT);
        for v in sim.vehicles() {
            index.register(v.id, v.vehicle_type, VehicleState::Removed);
        }
        Self {
            index,
            received: Received::default(),
        }
    }
}

impl Platform for LocalPlatform {
    fn search(&mut self, q: &NearbyQuery, out: &mut Vec<Hit>) {
        self.index.nearest(q, out);
    }

    fn deliver(&mut self, msg: &Outgoing, now: TimestampMs) {
        match msg {
            Outgoing::Telemetry(t) => match self.index.apply(t, now) {
                Ok(Verdict::Applied) => self.received.applied += 1,
                Ok(Verdict::Duplicate) => self.received.duplicates += 1,
                Err(Reject::Stale) => self.received.stale += 1,
                Err(_) => self.received.rejected += 1,
            },
            Outgoing::Lifecycle {
                vehicle,
                events,
                to,
                ..
            } => {
                // Checked as the server checks it: against the mode's MDS state machine.
                let legal = self.index.get(vehicle).is_some_and(|v| {
                    v.vehicle_type
                        .mode()
                        .apply_events(v.state, events, *to)
                        .is_ok()
                });
                if legal && self.index.set_state(vehicle, *to) {
                    self.received.lifecycle += 1;
                } else {
                    self.received.illegal_lifecycle += 1;
                }
            }
            Outgoing::Imu { .. } => self.received.imu_events += 1,
        }
    }
}
