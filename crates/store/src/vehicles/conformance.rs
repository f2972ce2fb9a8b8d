//! The conformance cases of [`crate::vehicles`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// A vehicle is registered once, only in a city that exists.
pub async fn vehicles_register_once_in_known_cities(store: Arc<dyn Store>) {
    let v = vehicle(1, VehicleType::Scooter);
    let err = store.insert_vehicle(&v, SECRET).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingReference(_)), "{err}");
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    store.insert_vehicle(&v, SECRET).await.unwrap();
    assert_eq!(store.vehicle(&v.id).await.unwrap(), Some(v.clone()));
    let err = store.insert_vehicle(&v, SECRET).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    let unknown = VehicleId::from_uuid(Uuid::from_u128(999));
    assert_eq!(store.vehicle(&unknown).await.unwrap(), None);
}

/// Listing pages through a city's vehicles in id order, with no gaps or repeats.
pub async fn vehicles_page_in_id_order(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    for n in (1..=25u128).rev() {
        let t = VehicleType::ALL[(n % 4) as usize];
        store.insert_vehicle(&vehicle(n, t), SECRET).await.unwrap();
    }
    let city = CityId::parse("barcelona").unwrap();
    let mut seen = Vec::new();
    let mut after: Option<VehicleId> = None;
    loop {
        let page = store.vehicles(&city, after.as_ref(), 10).await.unwrap();
        assert!(page.len() <= 10);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|v| v.id);
        seen.extend(page.into_iter().map(|v| v.id));
    }
    let expected: Vec<VehicleId> = (1..=25u128)
        .map(|n| VehicleId::from_uuid(Uuid::from_u128(n)))
        .collect();
    assert_eq!(seen, expected);
    let other = CityId::parse("lisbon").unwrap();
    assert!(store.vehicles(&other, None, 10).await.unwrap().is_empty());
}

/// Decided changes apply in order, bump the version and land in the event log, newest first.
pub async fn state_changes_apply_and_are_logged(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let v = vehicle(7, VehicleType::Scooter);
    store.insert_vehicle(&v, SECRET).await.unwrap();
    let steps = [
        (vec![EventType::ProviderDropOff], VehicleState::Available),
        (vec![EventType::ReservationStart], VehicleState::Reserved),
        (vec![EventType::TripStart], VehicleState::OnTrip),
        (
            vec![EventType::TripEnd, EventType::BatteryLow],
            VehicleState::NonOperational,
        ),
    ];
    let mut current = v;
    for (i, (events, to)) in steps.iter().enumerate() {
        let at = TimestampMs(1_700_000_000_000 + 1_000 * (i as i64 + 1));
        let change = current.decide(events, *to, at).unwrap();
        let stored = store.record_state_change(&change).await.unwrap();
        current = current.with_change(&change);
        assert_eq!(stored, current);
    }
    assert_eq!(current.version, 4);
    let log = store.vehicle_events(&current.id, 10).await.unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].version, 4);
    assert_eq!(log[0].from, VehicleState::OnTrip);
    assert_eq!(log[0].to, VehicleState::NonOperational);
    assert_eq!(
        log[0].events,
        vec![EventType::TripEnd, EventType::BatteryLow]
    );
    assert_eq!(log[3].events, vec![EventType::ProviderDropOff]);
    assert!(log.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(store.vehicle_events(&current.id, 2).await.unwrap().len(), 2);
}

/// A change decided from an old version is refused and changes nothing.
pub async fn stale_state_change_is_a_conflict(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let v = vehicle(8, VehicleType::Ebike);
    store.insert_vehicle(&v, SECRET).await.unwrap();
    let drop_off = v
        .decide(
            &[EventType::ProviderDropOff],
            VehicleState::Available,
            TimestampMs(2),
        )
        .unwrap();
    let stale = v
        .decide(
            &[EventType::AgencyDropOff],
            VehicleState::Available,
            TimestampMs(3),
        )
        .unwrap();
    store.record_state_change(&drop_off).await.unwrap();
    match store.record_state_change(&stale).await {
        Err(StoreError::VersionConflict {
            expected: 0,
            current: 1,
            ..
        }) => {}
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert_eq!(store.vehicle_events(&v.id, 10).await.unwrap().len(), 1);
}

/// Many writers racing to change the same vehicle version: exactly one wins.
pub async fn concurrent_state_changes_exactly_one_wins(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let v = vehicle(9, VehicleType::Scooter);
    store.insert_vehicle(&v, SECRET).await.unwrap();
    let available = v
        .decide(
            &[EventType::ProviderDropOff],
            VehicleState::Available,
            TimestampMs(2),
        )
        .unwrap();
    let v = v.with_change(&available);
    store.record_state_change(&available).await.unwrap();
    let attempts = 50;
    let mut tasks = Vec::new();
    for i in 0..attempts {
        let store = store.clone();
        let change = v
            .decide(
                &[EventType::ReservationStart],
                VehicleState::Reserved,
                TimestampMs(10 + i),
            )
            .unwrap();
        tasks.push(tokio::spawn(async move {
            store.record_state_change(&change).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::VersionConflict { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(wins, 1);
    let stored = store.vehicle(&v.id).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.version), (VehicleState::Reserved, 2));
    assert_eq!(store.vehicle_events(&v.id, 100).await.unwrap().len(), 2);
}

/// A change for a vehicle that was never registered is `NotFound`.
pub async fn unknown_vehicle_state_change_is_not_found(store: Arc<dyn Store>) {
    let ghost = vehicle(404, VehicleType::Car);
    let change = ghost
        .decide(
            &[EventType::Recommission],
            VehicleState::NonOperational,
            TimestampMs(5),
        )
        .unwrap();
    let err = store.record_state_change(&change).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

/// Each vehicle's device secret digest is stored and returned; unknown vehicles have none.
pub async fn device_secrets_are_kept_per_vehicle(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let a = vehicle(21, VehicleType::Scooter);
    let b = vehicle(22, VehicleType::Scooter);
    store.insert_vehicle(&a, "aa").await.unwrap();
    store.insert_vehicle(&b, "bb").await.unwrap();
    assert_eq!(
        store.device_secret_sha256(&a.id).await.unwrap().as_deref(),
        Some("aa")
    );
    assert_eq!(
        store.device_secret_sha256(&b.id).await.unwrap().as_deref(),
        Some("bb")
    );
    let ghost = VehicleId::from_uuid(Uuid::from_u128(777));
    assert_eq!(store.device_secret_sha256(&ghost).await.unwrap(), None);
}

/// `all_vehicles` pages through every city's vehicles in id order.
pub async fn all_vehicles_pages_across_cities(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let lisbon = City::new(
        CityId::parse("lisbon").unwrap(),
        "Lisboa",
        "Europe/Lisbon",
        Currency::EUR,
        None,
    )
    .unwrap();
    store.put_city(&lisbon, TimestampMs(1)).await.unwrap();
    for n in 1..=7u128 {
        let mut v = vehicle(n, VehicleType::Ebike);
        if n % 2 == 0 {
            v.city = lisbon.id.clone();
        }
        store.insert_vehicle(&v, SECRET).await.unwrap();
    }
    let first = store.all_vehicles(None, 4).await.unwrap();
    let rest = store
        .all_vehicles(first.last().map(|v| &v.id), 4)
        .await
        .unwrap();
    assert_eq!((first.len(), rest.len()), (4, 3));
    let ids: Vec<u128> = first
        .iter()
        .chain(&rest)
        .map(|v| v.id.as_uuid().as_u128())
        .collect();
    assert_eq!(ids, (1..=7).collect::<Vec<_>>());
    // Every field as the registry has it (pages come back in bulk, not row by row).
    for v in first.iter().chain(&rest) {
        assert_eq!(Some(v), store.vehicle(&v.id).await.unwrap().as_ref());
    }
    assert!(
        store
            .all_vehicles(rest.last().map(|v| &v.id), 4)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Batch registration and batch state changes are all-or-nothing transactions.
pub async fn batches_register_and_change_all_or_nothing(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let fleet: Vec<(Vehicle, String)> = (100..110)
        .map(|n| (vehicle(n, VehicleType::Scooter), SECRET.to_owned()))
        .collect();
    store.insert_vehicles(&fleet).await.unwrap();
    // One duplicate in a batch: none of the batch is registered.
    let mixed = vec![
        (vehicle(200, VehicleType::Ebike), SECRET.to_owned()),
        fleet[3].clone(),
    ];
    assert!(matches!(
        store.insert_vehicles(&mixed).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(store.vehicle(&mixed[0].0.id).await.unwrap().is_none());

    let drop_offs: Vec<_> = fleet
        .iter()
        .map(|(v, _)| {
            v.decide(
                &[EventType::ProviderDropOff],
                VehicleState::Available,
                TimestampMs(5),
            )
            .unwrap()
        })
        .collect();
    let stored = store.record_state_changes(&drop_offs).await.unwrap();
    assert_eq!(stored.len(), 10);
    assert!(
        stored
            .iter()
            .all(|v| v.state == VehicleState::Available && v.version == 1)
    );
    // A stale change in a batch fails the whole batch: the fresh one is not applied either.
    let fresh = stored[0]
        .decide(
            &[EventType::TripStart],
            VehicleState::OnTrip,
            TimestampMs(6),
        )
        .unwrap();
    match store
        .record_state_changes(&[fresh, drop_offs[1].clone()])
        .await
    {
        Err(StoreError::VersionConflict { .. }) => {}
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let v0 = store.vehicle(&stored[0].id).await.unwrap().unwrap();
    assert_eq!(v0.state, VehicleState::Available);
    assert_eq!(store.vehicle_events(&v0.id, 10).await.unwrap().len(), 1);
}
