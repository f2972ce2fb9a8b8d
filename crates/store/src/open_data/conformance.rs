//! The conformance cases of [`crate::open_data`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// What GBFS and MDS read: events with where they happened and their trip, per city and hour
/// window and in `seq` pages; each vehicle with the event of its current version; trips that
/// overlap a window; agency tokens (revocable once issued); alerts per city.
pub async fn open_data_events_trips_tokens_and_alerts(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let (a, b) = (
        vehicle(900, VehicleType::Scooter),
        vehicle(901, VehicleType::Car),
    );
    store.insert_vehicle(&a, SECRET).await.unwrap();
    store.insert_vehicle(&b, SECRET).await.unwrap();
    let here = LatLon::new(41.39, 2.17).unwrap();
    let t0 = 1_700_000_000_000_i64;
    let drop = a
        .decide(
            &[EventType::ProviderDropOff],
            VehicleState::Available,
            TimestampMs(t0 + 10),
        )
        .unwrap()
        .with_context(Some(here), None);
    let a1 = store.record_state_change(&drop).await.unwrap();
    let start = a1
        .decide(
            &[EventType::TripStart],
            VehicleState::OnTrip,
            TimestampMs(t0 + 20),
        )
        .unwrap()
        .with_context(Some(here), Some("trip-1".into()));
    let a2 = store.record_state_change(&start).await.unwrap();
    // An event older than the current state (out of order, as MDS allows): logged, not applied.
    let late = a2
        .decide_late(
            &[EventType::BatteryLow],
            VehicleState::NonOperational,
            TimestampMs(t0 + 5),
        )
        .unwrap()
        .with_context(Some(here), None);
    let after_late = store.record_state_change(&late).await.unwrap();
    assert_eq!(
        after_late, a2,
        "the vehicle keeps its newer state and version"
    );
    let logged = store.vehicle_events(&a.id, 10).await.unwrap();
    assert_eq!(logged.len(), 3);
    assert!(logged[0].late && logged[0].at == TimestampMs(t0 + 5));
    let again = store.record_state_change(&late).await.unwrap();
    assert_eq!(again, a2, "several late events may share a version");

    let all = store
        .city_events(
            &barcelona().id,
            TimestampMs(t0),
            TimestampMs(t0 + 100),
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 4, "late events included");
    assert_eq!(all.iter().filter(|e| e.late).count(), 2);
    assert_eq!(all[1].trip_id.as_deref(), Some("trip-1"));
    assert_eq!(all[1].location, Some(here));
    assert_eq!(all[0].trip_id, None);
    let page = store
        .city_events(
            &barcelona().id,
            TimestampMs(t0),
            TimestampMs(t0 + 100),
            all[0].seq,
            10,
        )
        .await
        .unwrap();
    assert_eq!(page, all[1..].to_vec(), "pages continue after a seq");
    let (first, second) = (&all[0], &all[1]);
    assert!(!first.late && !second.late);
    assert!(
        store
            .city_events(
                &barcelona().id,
                TimestampMs(t0 + 20),
                TimestampMs(t0 + 21),
                0,
                10
            )
            .await
            .unwrap()
            .len()
            == 1,
        "the window is half open"
    );
    let with_last = store
        .vehicles_with_last_event(&barcelona().id, None, 10)
        .await
        .unwrap();
    assert_eq!(with_last.len(), 2);
    assert_eq!(with_last[0].0.id, a.id);
    assert_eq!(
        with_last[0].1.as_ref().map(|e| (e.version, e.late)),
        Some((2, false)),
        "the event of the current version, not a late one"
    );
    assert!(
        with_last[1].1.is_none(),
        "a vehicle never changed has no event"
    );

    let rider = user(9_001, "open@example.com");
    store.insert_user(&rider).await.unwrap();
    let mut trip = booking(90, &rider, &a, t0 + 600_000);
    trip.created_at = TimestampMs(t0);
    store.insert_booking(&trip).await.unwrap();
    let started = TripFacts {
        started_at: Some(TimestampMs(t0 + 20)),
        ..TripFacts::default()
    };
    store
        .update_booking(
            &trip.id,
            "reserved",
            "on_trip",
            &started,
            TimestampMs(t0 + 20),
        )
        .await
        .unwrap()
        .unwrap();
    let open = store
        .trips_between(
            &barcelona().id,
            TimestampMs(t0 + 1_000),
            TimestampMs(t0 + 2_000),
        )
        .await
        .unwrap();
    assert_eq!(
        open.len(),
        1,
        "a trip in progress overlaps every later window"
    );
    let ended = TripFacts {
        ended_at: Some(TimestampMs(t0 + 500)),
        ..TripFacts::default()
    };
    store
        .update_booking(&trip.id, "on_trip", "ended", &ended, TimestampMs(t0 + 500))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .trips_between(
                &barcelona().id,
                TimestampMs(t0 + 1_000),
                TimestampMs(t0 + 2_000)
            )
            .await
            .unwrap()
            .is_empty()
    );
    let hit = store
        .trips_between(&barcelona().id, TimestampMs(t0), TimestampMs(t0 + 1_000))
        .await
        .unwrap();
    assert_eq!(hit.len(), 1);
    assert_eq!(hit[0].trip.ended_at, Some(TimestampMs(t0 + 500)));

    // Staff lists: newest first, filtered, paged by creation time.
    let mut second = booking(91, &rider, &b, t0 + 600_000);
    second.created_at = TimestampMs(t0 + 100);
    store.insert_booking(&second).await.unwrap();
    let all = store
        .list_bookings(&BookingFilter {
            limit: 10,
            ..BookingFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        [second.id.as_str(), trip.id.as_str()]
    );
    let ended_only = BookingFilter {
        state: Some("ended".into()),
        limit: 10,
        ..BookingFilter::default()
    };
    assert_eq!(store.list_bookings(&ended_only).await.unwrap().len(), 1);
    let of_b = BookingFilter {
        vehicle_id: Some(b.id),
        city: Some(barcelona().id),
        limit: 10,
        ..BookingFilter::default()
    };
    assert_eq!(store.list_bookings(&of_b).await.unwrap()[0].id, second.id);
    let older = BookingFilter {
        before: Some(second.created_at),
        limit: 10,
        ..BookingFilter::default()
    };
    assert_eq!(store.list_bookings(&older).await.unwrap()[0].id, trip.id);
    let of_nobody = BookingFilter {
        user_id: Some("nobody".into()),
        limit: 10,
        ..BookingFilter::default()
    };
    assert!(store.list_bookings(&of_nobody).await.unwrap().is_empty());

    // Accounts: listed in id order, roles changed by id.
    let staff = user(9_002, "staff-open@example.com");
    store.insert_user(&staff).await.unwrap();
    let users = store.users(None, 10).await.unwrap();
    assert_eq!(users.len(), 2);
    assert!(store.users(Some(&users[0].id), 10).await.unwrap().len() == 1);
    assert!(store.set_user_role(&staff.id, Role::Staff).await.unwrap());
    assert_eq!(
        store.user(&staff.id).await.unwrap().unwrap().role,
        Role::Staff
    );
    assert!(!store.set_user_role("nobody", Role::Admin).await.unwrap());

    let token = MdsToken {
        id: "tok-1".into(),
        agency: "Ajuntament".into(),
        city: barcelona().id,
        created_at: TimestampMs(t0),
        expires_at: TimestampMs(t0 + 1_000),
        revoked_at: None,
    };
    store.insert_mds_token(&token).await.unwrap();
    assert_eq!(store.mds_token("tok-1").await.unwrap(), Some(token.clone()));
    assert!(matches!(
        store.insert_mds_token(&token).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let mut elsewhere = token.clone();
    elsewhere.id = "tok-2".into();
    elsewhere.city = CityId::parse("nowhere").unwrap();
    assert!(matches!(
        store.insert_mds_token(&elsewhere).await,
        Err(StoreError::MissingReference(_))
    ));
    assert!(
        store
            .revoke_mds_token("tok-1", TimestampMs(t0 + 5))
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_mds_token("tok-1", TimestampMs(t0 + 9))
            .await
            .unwrap()
    );
    assert_eq!(
        store.mds_token("tok-1").await.unwrap().unwrap().revoked_at,
        Some(TimestampMs(t0 + 5)),
        "revoked once"
    );
    assert!(
        !store
            .revoke_mds_token("nope", TimestampMs(t0))
            .await
            .unwrap()
    );
    assert_eq!(store.mds_tokens().await.unwrap().len(), 1);

    let mut alert = AlertRecord {
        id: "closure".into(),
        city: barcelona().id,
        alert_type: "system_closure".into(),
        summary: "Closed for the marathon".into(),
        description: None,
        url: None,
        starts_at: Some(TimestampMs(t0)),
        ends_at: None,
        updated_at: TimestampMs(t0),
    };
    store.put_alert(&alert).await.unwrap();
    alert.summary = "Closed for the marathon until 14:00".into();
    alert.ends_at = Some(TimestampMs(t0 + 1));
    store.put_alert(&alert).await.unwrap();
    assert_eq!(
        store.alerts(&barcelona().id).await.unwrap(),
        vec![alert.clone()]
    );
    assert_eq!(
        store.delete_alert("closure").await.unwrap(),
        Some(barcelona().id)
    );
    assert_eq!(store.delete_alert("closure").await.unwrap(), None);
    assert!(store.alerts(&barcelona().id).await.unwrap().is_empty());
}
