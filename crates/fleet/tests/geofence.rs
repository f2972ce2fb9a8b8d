//! Reordered or duplicated telemetry never invents a geofence crossing: crossings are computed
//! only for applied reports, so per fence they alternate enter/exit and end consistent with the
//! vehicle's final position.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::collections::BTreeMap;

use mobility_core::{LatLon, TimestampMs, VehicleId, VehicleState, VehicleType};
use mobility_fleet::{
    CityIndex, Telemetry, Verdict,
    geofence::{Direction, FenceSet, Geofence, ZoneKind},
    index::CELL_M_DEFAULT,
};
use proptest::prelude::*;

fn p(lat: f64, lon: f64) -> LatLon {
    LatLon::new(lat, lon).unwrap()
}

fn fence(i: usize, lat: f64, lon: f64, size: f64) -> Geofence {
    let kind = [
        ZoneKind::NoParking,
        ZoneKind::SlowZone {
            speed_limit_kmh: 10,
        },
        ZoneKind::NoRiding,
    ][i % 3];
    Geofence::new(
        format!("f{i}"),
        format!("f{i}"),
        kind,
        vec![
            p(lat, lon),
            p(lat, lon + size),
            p(lat + size, lon + size),
            p(lat + size, lon),
        ],
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_invented_crossings(
        fences in prop::collection::vec((41.0f64..41.02, 2.0f64..2.02, 0.002f64..0.01), 1..6),
        path in prop::collection::vec((41.0f64..41.03, 2.0f64..2.03), 1..40),
        order in prop::collection::vec(any::<prop::sample::Index>(), 1..120),
    ) {
        let set = FenceSet::new(fences.iter().enumerate().map(|(i, (a, b, s))| fence(i, *a, *b, *s)).collect());
        let id = VehicleId::from_uuid(uuid::Uuid::from_u128(1));
        let mut index = CityIndex::new(p(41.0, 2.0), CELL_M_DEFAULT);
        index.register(id, VehicleType::Scooter, VehicleState::OnTrip);
        // Report k is at time k along the path; deliveries repeat and reorder them.
        let deliveries: Vec<usize> = order.iter().map(|i| i.index(path.len())).collect();
        let mut per_fence: BTreeMap<String, Vec<Direction>> = BTreeMap::new();
        for k in deliveries {
            let (lat, lon) = path[k];
            let t = Telemetry {
                vehicle_id: id, at: TimestampMs(k as i64 + 1), position: p(lat, lon), battery: None,
                speed_m_s: None, heading_deg: None, odometer_m: None, locked: None, error_codes: vec![],
            };
            let previous = index.get(&id).and_then(|v| v.position);
            if index.apply(&t, TimestampMs(1_000)) == Ok(Verdict::Applied) {
                for c in set.crossings(previous, t.position) {
                    per_fence.entry(c.fence_id).or_default().push(c.direction);
                }
            }
        }
        let last = index.get(&id).unwrap().position.unwrap();
        for f in set.fences() {
            let dirs = per_fence.get(&f.id).cloned().unwrap_or_default();
            for (i, d) in dirs.iter().enumerate() {
                let expected = if i % 2 == 0 { Direction::Enter } else { Direction::Exit };
                prop_assert_eq!(*d, expected, "fence {}: {:?}", f.id, dirs);
            }
            let inside_by_events = dirs.len() % 2 == 1;
            prop_assert_eq!(inside_by_events, f.contains(last), "fence {} ends inconsistent", f.id);
        }
    }
}
