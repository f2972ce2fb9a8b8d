//! The conformance cases of [`crate::bookings`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// No double booking: 200 riders reserving one vehicle at once, exactly one succeeds.
pub async fn of_200_concurrent_reservations_of_one_vehicle_exactly_one_wins(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let v = vehicle(500, VehicleType::Scooter);
    store.insert_vehicle(&v, SECRET).await.unwrap();
    let mut riders = Vec::new();
    for n in 0..200 {
        let u = user(1_000 + n, &format!("rider{n}@example.com"));
        store.insert_user(&u).await.unwrap();
        riders.push(u);
    }
    let attempts: Vec<_> = riders
        .iter()
        .enumerate()
        .map(|(n, u)| {
            let (store, b) = (store.clone(), booking(n as u32, u, &v, 1_000));
            tokio::spawn(async move { store.insert_booking(&b).await })
        })
        .collect();
    let mut won = 0;
    for a in attempts {
        match a.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => panic!("a losing reservation must be AlreadyExists, got {e:?}"),
        }
    }
    assert_eq!(won, 1);
    // The same rider cannot hold a second vehicle either.
    let w = vehicle(501, VehicleType::Scooter);
    store.insert_vehicle(&w, SECRET).await.unwrap();
    let mut winner = None;
    for (n, u) in riders.iter().enumerate() {
        if store
            .booking(&booking(n as u32, u, &v, 0).id)
            .await
            .unwrap()
            .is_some()
        {
            winner = Some((n, u.clone()));
        }
    }
    let (n, u) = winner.unwrap();
    assert!(matches!(
        store.insert_booking(&booking(10_000, &u, &w, 1_000)).await,
        Err(StoreError::AlreadyExists(_))
    ));
    // Once the hold ends, the vehicle can be booked again.
    let id = booking(n as u32, &u, &v, 0).id;
    assert!(
        store
            .transition_booking(&id, "reserved", "cancelled", TimestampMs(20))
            .await
            .unwrap()
            .is_some()
    );
    store
        .insert_booking(&booking(10_001, &riders[(n + 1) % 200], &v, 1_000))
        .await
        .unwrap();
}

/// Holds lapse once; a booking changes state only from the state the caller saw.
pub async fn holds_expire_and_bookings_change_state_once(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let (v1, v2) = (
        vehicle(600, VehicleType::Scooter),
        vehicle(601, VehicleType::Ebike),
    );
    store.insert_vehicle(&v1, SECRET).await.unwrap();
    store.insert_vehicle(&v2, SECRET).await.unwrap();
    let (a, b) = (user(2_001, "a@example.com"), user(2_002, "b@example.com"));
    store.insert_user(&a).await.unwrap();
    store.insert_user(&b).await.unwrap();
    let early = booking(1, &a, &v1, 100);
    let late = booking(2, &b, &v2, 500);
    store.insert_booking(&early).await.unwrap();
    store.insert_booking(&late).await.unwrap();
    let expired = store.expire_holds(TimestampMs(100)).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].id.as_str(), expired[0].state.as_str()),
        (early.id.as_str(), "expired")
    );
    assert!(
        store
            .expire_holds(TimestampMs(100))
            .await
            .unwrap()
            .is_empty(),
        "expires once"
    );
    // Cancelling an expired booking does nothing; cancelling the live one works once.
    assert!(
        store
            .transition_booking(&early.id, "reserved", "cancelled", TimestampMs(150))
            .await
            .unwrap()
            .is_none()
    );
    let done = store
        .transition_booking(&late.id, "reserved", "cancelled", TimestampMs(150))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.state.as_str(), done.updated_at),
        ("cancelled", TimestampMs(150))
    );
    assert!(
        store
            .transition_booking(&late.id, "reserved", "cancelled", TimestampMs(160))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.booking("nope").await.unwrap(), None);
    // Trip facts are set once and kept.
    let trip = booking(3, &a, &v1, 1_000);
    store.insert_booking(&trip).await.unwrap();
    let facts = crate::TripFacts {
        started_at: Some(TimestampMs(200)),
        start_odometer_m: Some(1_234),
        ..crate::TripFacts::default()
    };
    let t = store
        .update_booking(&trip.id, "reserved", "on_trip", &facts, TimestampMs(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.state.as_str(), t.trip.started_at, t.trip.start_odometer_m),
        ("on_trip", Some(TimestampMs(200)), Some(1_234))
    );
    let end = crate::TripFacts {
        started_at: Some(TimestampMs(999)),
        ended_at: Some(TimestampMs(300)),
        distance_m: Some(2_500),
        receipt: Some("{\"total\":\"4.00 EUR\"}".into()),
        ..crate::TripFacts::default()
    };
    let t = store
        .update_booking(&trip.id, "on_trip", "ended", &end, TimestampMs(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t.trip.started_at,
        Some(TimestampMs(200)),
        "facts are kept once set"
    );
    assert_eq!(
        (t.trip.ended_at, t.trip.distance_m),
        (Some(TimestampMs(300)), Some(2_500))
    );
    assert!(t.trip.receipt.unwrap().contains("4.00 EUR"));
    // An ended booking no longer holds the vehicle.
    store
        .insert_booking(&booking(4, &a, &v1, 1_000))
        .await
        .unwrap();
}
