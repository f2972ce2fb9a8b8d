//! The index against brute force, and the ingest rules under reordering and duplication.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use mobility_core::{BatteryPct, LatLon, TimestampMs, VehicleId, VehicleState, VehicleType};
use mobility_fleet::{
    CityIndex, NearbyQuery, Reject, StateFilter, Telemetry, TypeMask, Verdict,
    index::CELL_M_DEFAULT,
};
use proptest::prelude::*;
use uuid::Uuid;

const NOW: TimestampMs = TimestampMs(1_800_000_000_000);

fn id(n: u32) -> VehicleId {
    VehicleId::from_uuid(Uuid::from_u128(u128::from(n) + 1))
}

fn pos(lat: f64, lon: f64) -> LatLon {
    LatLon::new(lat, lon).unwrap()
}

fn report(n: u32, at: i64, lat: f64, lon: f64, battery: u8) -> Telemetry {
    Telemetry {
        vehicle_id: id(n),
        at: TimestampMs(at),
        position: pos(lat, lon),
        battery: Some(BatteryPct::new(i64::from(battery)).unwrap()),
        speed_m_s: None,
        heading_deg: None,
        odometer_m: None,
        locked: None,
        error_codes: vec![],
    }
}

fn barcelona() -> CityIndex {
    CityIndex::new(pos(41.39, 2.15), CELL_M_DEFAULT)
}

/// The model: every vehicle's latest (lat_e7, lon_e7, battery, type, state).
#[derive(Clone, Debug)]
struct Model {
    v: std::collections::BTreeMap<u32, (i32, i32, u8, VehicleType, VehicleState)>,
}

#[allow(clippy::cast_possible_truncation)]
fn e7(x: f64) -> i32 {
    (x * 1e7).round() as i32
}

fn brute_nearest(m: &Model, q: &NearbyQuery) -> Vec<VehicleId> {
    let m_lat = 111_195.08 / 1e7;
    let m_lon = m_lat * q.center.lat().to_radians().cos();
    let (c_lat, c_lon) = (e7(q.center.lat()), e7(q.center.lon()));
    let mut hits: Vec<(f64, VehicleId)> =
        m.v.iter()
            .filter(|(_, (_, _, b, t, s))| {
                q.types.contains(*t)
                    && *b >= q.min_battery
                    && match q.state {
                        StateFilter::Any => true,
                        StateFilter::Only(want) => *s == want,
                    }
            })
            .map(|(n, (lat, lon, ..))| {
                let dy = f64::from(lat - c_lat) * m_lat;
                let dx = f64::from(lon - c_lon) * m_lon;
                (dx * dx + dy * dy, id(*n))
            })
            .filter(|(d2, _)| *d2 <= q.radius_m * q.radius_m)
            .collect();
    hits.sort_by(|a, b| a.partial_cmp(b).unwrap());
    hits.truncate(q.limit);
    hits.into_iter().map(|(_, i)| i).collect()
}

#[derive(Debug, Clone)]
enum Op {
    Move {
        n: u32,
        lat: f64,
        lon: f64,
        battery: u8,
    },
    Remove {
        n: u32,
    },
    State {
        n: u32,
        available: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    // A ~3 km square so cells hold several vehicles and rings matter.
    prop_oneof![
        6 => (0u32..120, 41.38f64..41.41, 2.14f64..2.18, 0u8..=100)
            .prop_map(|(n, lat, lon, battery)| Op::Move { n, lat, lon, battery }),
        1 => (0u32..120).prop_map(|n| Op::Remove { n }),
        1 => (0u32..120, any::<bool>()).prop_map(|(n, available)| Op::State { n, available }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn nearest_equals_brute_force(
        ops in prop::collection::vec(op(), 1..400),
        qlat in 41.375f64..41.415, qlon in 2.135f64..2.185,
        radius_m in 10.0f64..2_500.0, limit in 1usize..30, min_battery in 0u8..60,
        scooters_only in any::<bool>(), any_state in any::<bool>(),
    ) {
        let mut index = barcelona();
        let mut model = Model { v: Default::default() };
        let mut clock = 1_000i64;
        for op in ops {
            clock += 1;
            match op {
                Op::Move { n, lat, lon, battery } => {
                    let t = if n % 3 == 0 { VehicleType::Ebike } else { VehicleType::Scooter };
                    let st = model.v.get(&n).map_or(VehicleState::Available, |e| e.4);
                    index.register(id(n), t, st);
                    prop_assert_eq!(index.apply(&report(n, clock, lat, lon, battery), NOW), Ok(Verdict::Applied));
                    model.v.insert(n, (e7(lat), e7(lon), battery, t, st));
                }
                Op::Remove { n } => {
                    prop_assert_eq!(index.remove(&id(n)), model.v.remove(&n).is_some());
                }
                Op::State { n, available } => {
                    let s = if available { VehicleState::Available } else { VehicleState::OnTrip };
                    prop_assert_eq!(index.set_state(&id(n), s), model.v.contains_key(&n));
                    if let Some(e) = model.v.get_mut(&n) { e.4 = s; }
                }
            }
        }
        prop_assert_eq!(index.len(), model.v.len());
        let q = NearbyQuery {
            center: pos(qlat, qlon),
            radius_m,
            limit,
            types: if scooters_only { TypeMask::of(&[VehicleType::Scooter]) } else { TypeMask::ALL },
            min_battery,
            state: if any_state { StateFilter::Any } else { StateFilter::Only(VehicleState::Available) },
        };
        let mut out = Vec::new();
        index.nearest(&q, &mut out);
        let got: Vec<VehicleId> = out.iter().map(|h| h.id).collect();
        prop_assert_eq!(got, brute_nearest(&model, &q));
        prop_assert!(out.windows(2).all(|w| w[0].distance_m <= w[1].distance_m));
        prop_assert!(out.iter().all(|h| f64::from(h.distance_m) <= radius_m + 0.01));
    }

    /// However reports are reordered or repeated, the vehicle ends at its newest report, and
    /// every older report arriving later is refused as stale.
    #[test]
    fn reordered_and_duplicated_telemetry_converges_to_the_newest(
        reports in prop::collection::vec((1i64..10_000, 41.38f64..41.41, 2.14f64..2.18, 0u8..=100), 1..50),
        order in prop::collection::vec(any::<prop::sample::Index>(), 1..150),
    ) {
        let mut index = barcelona();
        index.register(id(1), VehicleType::Scooter, VehicleState::Available);
        // Deliveries: a random sequence drawn (with repetition) from the reports.
        let deliveries: Vec<_> = order.iter().map(|i| reports[i.index(reports.len())]).collect();
        let mut newest_applied: Option<i64> = None;
        for (at, lat, lon, b) in &deliveries {
            let verdict = index.apply(&report(1, *at, *lat, *lon, *b), NOW);
            match newest_applied {
                None => prop_assert_eq!(verdict, Ok(Verdict::Applied)),
                Some(t) if *at > t => prop_assert_eq!(verdict, Ok(Verdict::Applied)),
                Some(t) if *at == t => prop_assert_eq!(verdict, Ok(Verdict::Duplicate)),
                Some(_) => prop_assert_eq!(verdict, Err(Reject::Stale)),
            }
            newest_applied = Some(newest_applied.map_or(*at, |t| t.max(*at)));
        }
        let newest = newest_applied.unwrap();
        // The first delivery with the newest timestamp is the one that stuck.
        let (_, lat, lon, b) = deliveries.iter().find(|d| d.0 == newest).unwrap();
        let v = index.get(&id(1)).unwrap();
        prop_assert_eq!(v.at, Some(TimestampMs(newest)));
        let p = v.position.unwrap();
        prop_assert!((p.lat() - lat).abs() < 1e-6 && (p.lon() - lon).abs() < 1e-6);
        prop_assert_eq!(v.battery.map(BatteryPct::get), Some(*b));
    }
}

#[test]
fn rejects_unknown_vehicles_and_future_reports() {
    let mut index = barcelona();
    assert_eq!(
        index.apply(&report(5, 1, 41.39, 2.15, 50), NOW),
        Err(Reject::UnknownVehicle)
    );
    index.register(id(5), VehicleType::Scooter, VehicleState::Available);
    let future = report(5, NOW.0 + 30_001, 41.39, 2.15, 50);
    assert_eq!(index.apply(&future, NOW), Err(Reject::FromTheFuture));
    assert_eq!(index.get(&id(5)).unwrap().position, None, "nothing changed");
}

#[test]
fn view_carries_every_telemetry_field() {
    let mut index = barcelona();
    index.register(id(1), VehicleType::Car, VehicleState::Available);
    let mut t = report(1, 10, 41.39, 2.15, 77);
    t.speed_m_s = Some(4.25);
    t.heading_deg = Some(359.5);
    t.odometer_m = Some(123_456);
    t.locked = Some(true);
    t.error_codes = vec![7, 42];
    index.apply(&t, NOW).unwrap();
    let v = index.get(&id(1)).unwrap();
    assert_eq!(v.vehicle_type, VehicleType::Car);
    assert_eq!(v.speed_m_s, Some(4.25));
    assert_eq!(v.heading_deg, Some(359.5));
    assert_eq!(v.odometer_m, Some(123_456));
    assert_eq!(v.locked, Some(true));
    assert_eq!(v.error_codes, vec![7, 42]);
    // A later report without optional fields keeps what was known, and clears fault codes.
    index.apply(&report(1, 11, 41.391, 2.15, 76), NOW).unwrap();
    let v = index.get(&id(1)).unwrap();
    assert_eq!(
        (v.locked, v.odometer_m, v.error_codes.len()),
        (Some(true), Some(123_456), 0)
    );
}

#[test]
fn bbox_h3_and_stats() {
    let mut index = barcelona();
    for n in 0..10u32 {
        index.register(
            id(n),
            if n < 7 {
                VehicleType::Scooter
            } else {
                VehicleType::Van
            },
            VehicleState::Available,
        );
        index
            .apply(
                &report(
                    n,
                    1,
                    41.39 + f64::from(n) * 0.001,
                    2.15,
                    u8::try_from(n * 10).unwrap(),
                ),
                NOW,
            )
            .unwrap();
    }
    index.register(id(99), VehicleType::Ebike, VehicleState::Removed); // never reported
    let boxed = index.within_bbox(
        pos(41.3925, 2.14),
        pos(41.3965, 2.16),
        TypeMask::ALL,
        StateFilter::Any,
        100,
    );
    let mut ns: Vec<_> = boxed.iter().map(|v| v.id).collect();
    ns.sort();
    assert_eq!(ns, vec![id(3), id(4), id(5), id(6)]);
    let vans = index.within_bbox(
        pos(41.0, 2.0),
        pos(42.0, 3.0),
        TypeMask::of(&[VehicleType::Van]),
        StateFilter::Any,
        100,
    );
    assert_eq!(vans.len(), 3);
    let h3 = index.h3_counts(h3o::Resolution::Nine, TypeMask::ALL, StateFilter::Any);
    assert_eq!(
        h3.iter().map(|(_, c)| c).sum::<u32>(),
        10,
        "the unplaced vehicle is not counted"
    );
    let stats = index.stats();
    assert_eq!(stats.total, 11);
    assert_eq!(stats.battery_bands, [2, 2, 2, 2, 2, 1]);
    assert!(stats.by_state.contains(&(VehicleState::Available, 10)));
    assert!(stats.by_type.contains(&(VehicleType::Van, 3)));
}

#[test]
fn polygon_query_takes_only_what_is_inside() {
    use mobility_fleet::geofence::{Geofence, ZoneKind};
    let mut index = barcelona();
    for n in 0..20u32 {
        index.register(id(n), VehicleType::Scooter, VehicleState::Available);
        // A west-east line of vehicles at 41.385 N, from 2.1462 to 2.1747 E (none on an edge).
        index
            .apply(
                &report(n, 1, 41.385, 2.1462 + f64::from(n) * 0.0015, 50),
                NOW,
            )
            .unwrap();
    }
    // A right triangle; at 41.385 N it spans 2.155..2.175 E, so vehicles 6..=19 are inside
    // (2.1552..2.1747) and 0..=5 are in its bounding box but outside it.
    let tri = Geofence::new(
        "t".into(),
        "t".into(),
        ZoneKind::NoParking,
        vec![pos(41.375, 2.145), pos(41.375, 2.175), pos(41.405, 2.175)],
    )
    .unwrap();
    let inside = index.within_polygon(&tri, TypeMask::ALL, StateFilter::Any, 100);
    let all_in_bbox = {
        let (sw, ne) = tri.bounds();
        index.within_bbox(sw, ne, TypeMask::ALL, StateFilter::Any, 100)
    };
    assert_eq!((inside.len(), all_in_bbox.len()), (14, 20));
    assert!(inside.iter().all(|v| tri.contains(v.position.unwrap())));
    assert_eq!(
        index
            .within_polygon(&tri, TypeMask::ALL, StateFilter::Any, 2)
            .len(),
        2
    );
}

#[test]
fn vehicles_anywhere_on_earth_are_found() {
    let mut index = barcelona();
    let far = [
        (-33.86, 151.21),
        (64.14, -21.94),
        (0.0, 179.999),
        (-0.0001, -179.999),
        (89.9, 10.0),
    ];
    for (n, (lat, lon)) in far.iter().enumerate() {
        let n = u32::try_from(n).unwrap();
        index.register(id(n), VehicleType::Scooter, VehicleState::Available);
        index.apply(&report(n, 1, *lat, *lon, 90), NOW).unwrap();
        let mut out = Vec::new();
        let q = NearbyQuery {
            center: pos(*lat, *lon),
            radius_m: 100.0,
            limit: 5,
            types: TypeMask::ALL,
            min_battery: 0,
            state: StateFilter::Any,
        };
        index.nearest(&q, &mut out);
        assert_eq!(
            out.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![id(n)],
            "at {lat},{lon}"
        );
    }
}
