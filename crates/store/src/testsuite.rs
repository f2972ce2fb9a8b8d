//! The conformance suite every [`Store`] backend must pass, plus helpers that give tests an
//! isolated store: a SQLite file in a temp dir, or a fresh schema on the PostgreSQL server named by
//! `MOBILITY_TEST_POSTGRES_URL` (skipped, with a clear line on stderr, when that is unset).
//!
//! Instantiate with [`conformance_tests!`](crate::conformance_tests) for each backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::{
    io::Write,
    sync::{Arc, atomic::AtomicBool, atomic::Ordering},
};

use mobility_core::{
    City, CityId, CommandKind, CommandState, Currency, EventType, LatLon, OperatingArea, Role,
    TimestampMs, Vehicle, VehicleId, VehicleState, VehicleType,
    payments::{PaymentKind, PaymentState},
};
use uuid::Uuid;

use crate::{
    AlertRecord, ApiToken, BookingFilter, BookingRecord, CityEventRecord, CommandRecord,
    DemandSlot, GeofenceRecord, KycRecord, MdsToken, OpenOptions, PostgresStore, RefreshToken,
    Rotation, Store, StoreError, TripFacts, UserRecord, WeatherHour,
};

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "MOBILITY_TEST_POSTGRES_URL";

/// An isolated, migrated store for one test; dropped data is cleaned up by [`TestStore::cleanup`].
#[derive(Debug)]
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn Store>,
    /// A URL other components (or a child process) can open to reach the same data.
    pub url: String,
    dir: Option<tempfile::TempDir>,
    pg_schema: Option<(PostgresStore, String)>,
}

impl TestStore {
    /// Closes the store and removes its data (temp dir or PostgreSQL schema).
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some((admin, schema)) = self.pg_schema {
            admin.drop_schema(&schema).await.ok();
            admin.close_pool().await;
        }
        drop(self.dir);
    }
}

/// A migrated SQLite store in a fresh temp dir.
pub async fn sqlite() -> Option<TestStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = crate::default_sqlite_url(dir.path());
    let store = crate::open(&url, &OpenOptions::default())
        .await
        .expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    Some(TestStore {
        store,
        url,
        dir: Some(dir),
        pg_schema: None,
    })
}

static SKIP_NOTICE: AtomicBool = AtomicBool::new(false);

/// Says once per test binary, on stderr (not captured by the test harness), that PostgreSQL
/// tests are skipped.
fn say_skipped() {
    if !SKIP_NOTICE.swap(true, Ordering::Relaxed) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: PostgreSQL tests ({POSTGRES_URL_VAR} is not set; e.g. \
             {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
        );
    }
}

/// A migrated store in a new schema of the server named by `MOBILITY_TEST_POSTGRES_URL`, or
/// `None` (after saying SKIPPED) when the variable is unset. Panics if it is set but unusable:
/// a configured database that fails must fail the test run, not skip it.
pub async fn postgres() -> Option<TestStore> {
    let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
        say_skipped();
        return None;
    };
    let schema = format!("t_{}", Uuid::now_v7().simple());
    let options = OpenOptions {
        postgres_schema: Some(schema.clone()),
        max_connections: 8,
        ..OpenOptions::default()
    };
    let admin = PostgresStore::open(&base, &OpenOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but unusable: {e}"));
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::open(&base, &options)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}: {e}")),
    );
    store.migrate().await.expect("migrate postgres");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some(TestStore {
        store,
        url,
        dir: None,
        pg_schema: Some((admin, schema)),
    })
}

/// Generates one `#[tokio::test]` per conformance case, each on a fresh store from `$make`
/// (an async fn returning `Option<TestStore>`; `None` skips).
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@cases $make;
            migrations_apply_once_and_report_ready,
            cities_round_trip_and_upsert,
            vehicles_register_once_in_known_cities,
            vehicles_page_in_id_order,
            state_changes_apply_and_are_logged,
            stale_state_change_is_a_conflict,
            concurrent_state_changes_exactly_one_wins,
            unknown_vehicle_state_change_is_not_found,
            device_secrets_are_kept_per_vehicle,
            all_vehicles_pages_across_cities,
            api_tokens_issue_find_and_revoke,
            commands_resolve_once_and_expire,
            geofences_put_list_replace_delete,
            batches_register_and_change_all_or_nothing,
            users_are_unique_by_email,
            refresh_tokens_rotate_once_and_reuse_revokes_the_family,
            of_200_concurrent_reservations_of_one_vehicle_exactly_one_wins,
            holds_expire_and_bookings_change_state_once,
            kyc_queue_is_oldest_first_and_decisions_are_final,
            pricing_plans_are_one_per_city_and_type,
            payments_are_idempotent_and_the_ledger_balances,
            the_outbox_sends_each_event_once_and_retries_when_due,
            open_data_events_trips_tokens_and_alerts,
            passes_are_sold_per_city_and_bought_once_per_key,
            demand_adds_up_and_incentives_stay_within_the_budget,
            store_changes_and_their_events_commit_together,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(t) = $make().await {
                    $crate::testsuite::$case(t.store.clone()).await;
                    t.cleanup().await;
                }
            }
        )*
    };
}

const SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn barcelona() -> City {
    let p = |lat, lon| LatLon::new(lat, lon).unwrap();
    let area = OperatingArea::new(vec![
        p(41.32, 2.07),
        p(41.32, 2.23),
        p(41.47, 2.23),
        p(41.47, 2.07),
    ])
    .unwrap();
    City::new(
        CityId::parse("barcelona").unwrap(),
        "Barcelona",
        "Europe/Madrid",
        Currency::EUR,
        Some(area),
    )
    .unwrap()
}

fn vehicle(n: u128, t: VehicleType) -> Vehicle {
    Vehicle::registered(
        VehicleId::from_uuid(Uuid::from_u128(n)),
        CityId::parse("barcelona").unwrap(),
        t,
        TimestampMs(1_700_000_000_000),
    )
}

/// Migrating twice applies nothing the second time; readiness reports no pending migration.
pub async fn migrations_apply_once_and_report_ready(store: Arc<dyn Store>) {
    assert_eq!(
        store.migrate().await.unwrap(),
        0,
        "already migrated by the helper"
    );
    let r = store.readiness().await.unwrap();
    assert_eq!(r.pending_migrations, 0);
    assert_eq!(r.schema_version, Some(15));
}

/// Cities are stored whole, listed by id, and replaced by `put_city`.
pub async fn cities_round_trip_and_upsert(store: Arc<dyn Store>) {
    assert!(store.cities().await.unwrap().is_empty());
    let bcn = barcelona();
    store.put_city(&bcn, TimestampMs(1)).await.unwrap();
    assert_eq!(store.city(&bcn.id).await.unwrap().as_ref(), Some(&bcn));
    let mut renamed = bcn.clone();
    renamed.name = "Barcelona (Eixample)".into();
    renamed.operating_area = None;
    store.put_city(&renamed, TimestampMs(2)).await.unwrap();
    assert_eq!(store.city(&bcn.id).await.unwrap(), Some(renamed.clone()));
    let lis = City::new(
        CityId::parse("lisbon").unwrap(),
        "Lisboa",
        "Europe/Lisbon",
        Currency::EUR,
        None,
    )
    .unwrap();
    store.put_city(&lis, TimestampMs(3)).await.unwrap();
    let ids: Vec<String> = store
        .cities()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(ids, ["barcelona", "lisbon"]);
    assert_eq!(
        store.city(&CityId::parse("paris").unwrap()).await.unwrap(),
        None
    );
}

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
}

/// Tokens are found by secret digest, listed newest first, and revoked once.
pub async fn api_tokens_issue_find_and_revoke(store: Arc<dyn Store>) {
    let token = |id: &str, role, at| ApiToken {
        id: id.to_owned(),
        role,
        label: format!("{id} label"),
        secret_sha256: format!("sha-{id}"),
        created_at: TimestampMs(at),
        revoked_at: None,
    };
    store
        .insert_api_token(&token("t1", Role::Staff, 10))
        .await
        .unwrap();
    store
        .insert_api_token(&token("t2", Role::Gateway, 20))
        .await
        .unwrap();
    let err = store
        .insert_api_token(&token("t1", Role::Admin, 30))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert_eq!(
        store.api_token_by_secret("sha-t2").await.unwrap(),
        Some(token("t2", Role::Gateway, 20))
    );
    assert_eq!(store.api_token_by_secret("nope").await.unwrap(), None);
    let ids: Vec<String> = store
        .api_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["t2", "t1"]);
    assert!(store.revoke_api_token("t1", TimestampMs(40)).await.unwrap());
    assert!(
        store.revoke_api_token("t1", TimestampMs(50)).await.unwrap(),
        "revoking twice is fine"
    );
    assert!(!store.revoke_api_token("t9", TimestampMs(50)).await.unwrap());
    let t1 = store.api_token_by_secret("sha-t1").await.unwrap().unwrap();
    assert_eq!(
        t1.revoked_at,
        Some(TimestampMs(40)),
        "first revocation time is kept"
    );
}

/// A command is resolved by exactly one decider; expiry takes only overdue pending ones; a late
/// ack is noted without changing the outcome.
pub async fn commands_resolve_once_and_expire(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let v = vehicle(31, VehicleType::Scooter);
    store.insert_vehicle(&v, SECRET).await.unwrap();
    let cmd = |id: &str, created: i64, kind| CommandRecord {
        id: id.to_owned(),
        vehicle_id: v.id,
        kind,
        state: CommandState::Pending,
        detail: None,
        created_at: TimestampMs(created),
        deadline: TimestampMs(created + 1_000),
        finished_at: None,
        late_ack_at: None,
    };
    store
        .insert_command(&cmd("c1", 100, CommandKind::Unlock))
        .await
        .unwrap();
    store
        .insert_command(&cmd(
            "c2",
            200,
            CommandKind::SetSpeedLimit {
                speed_limit_kmh: 15,
            },
        ))
        .await
        .unwrap();
    store
        .insert_command(&cmd("c3", 5_000, CommandKind::Ring))
        .await
        .unwrap();
    let mut ghost = cmd("c4", 1, CommandKind::Lock);
    ghost.vehicle_id = VehicleId::from_uuid(Uuid::from_u128(4242));
    assert!(matches!(
        store.insert_command(&ghost).await.unwrap_err(),
        StoreError::MissingReference(_)
    ));

    assert!(
        store
            .resolve_command("c1", CommandState::Acked, None, TimestampMs(150))
            .await
            .unwrap()
    );
    assert!(
        !store
            .resolve_command("c1", CommandState::Failed, Some("x"), TimestampMs(160))
            .await
            .unwrap(),
        "only once"
    );
    let expired = store.expire_commands(TimestampMs(2_000)).await.unwrap();
    assert_eq!(
        expired,
        vec!["c2".to_owned()],
        "c1 is resolved, c3 not yet due"
    );
    assert!(
        !store
            .resolve_command("c2", CommandState::Acked, None, TimestampMs(2_100))
            .await
            .unwrap()
    );
    store.note_late_ack("c2", TimestampMs(2_100)).await.unwrap();
    let c2 = store.command("c2").await.unwrap().unwrap();
    assert_eq!(
        (c2.state, c2.finished_at, c2.late_ack_at),
        (
            CommandState::TimedOut,
            Some(TimestampMs(2_000)),
            Some(TimestampMs(2_100))
        )
    );
    assert_eq!(
        c2.kind,
        CommandKind::SetSpeedLimit {
            speed_limit_kmh: 15
        }
    );
    let c1 = store.command("c1").await.unwrap().unwrap();
    assert_eq!(
        (c1.state, c1.finished_at),
        (CommandState::Acked, Some(TimestampMs(150)))
    );
    let ids: Vec<String> = store
        .vehicle_commands(&v.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["c3", "c2", "c1"]);
    assert_eq!(store.command("nope").await.unwrap(), None);
}

/// Geofences are stored per city, replaced by id, and deleted with their city returned.
pub async fn geofences_put_list_replace_delete(store: Arc<dyn Store>) {
    let city = CityId::parse("barcelona").unwrap();
    let fence = |id: &str, kind: &str, kmh: Option<i64>| GeofenceRecord {
        id: id.to_owned(),
        city: city.clone(),
        name: format!("{id} zone"),
        kind: kind.to_owned(),
        speed_limit_kmh: kmh,
        ring: vec![[2.1, 41.3], [2.2, 41.3], [2.2, 41.4]],
        updated_at: TimestampMs(1),
    };
    let err = store
        .put_geofence(&fence("g1", "no_parking", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::MissingReference(_)), "{err}");
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    store
        .put_geofence(&fence("g2", "slow_zone", Some(10)))
        .await
        .unwrap();
    store
        .put_geofence(&fence("g1", "no_parking", None))
        .await
        .unwrap();
    assert_eq!(
        store.geofences(&city).await.unwrap(),
        vec![
            fence("g1", "no_parking", None),
            fence("g2", "slow_zone", Some(10))
        ]
    );
    store
        .put_geofence(&fence("g2", "slow_zone", Some(6)))
        .await
        .unwrap();
    assert_eq!(
        store.geofences(&city).await.unwrap()[1].speed_limit_kmh,
        Some(6)
    );
    assert_eq!(
        store.delete_geofence("g1").await.unwrap(),
        Some(city.clone())
    );
    assert_eq!(store.delete_geofence("g1").await.unwrap(), None);
    assert_eq!(store.geofences(&city).await.unwrap().len(), 1);
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

fn user(n: u32, email: &str) -> UserRecord {
    UserRecord {
        id: format!("00000000-0000-7000-8000-{n:012}"),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        role: Role::Rider,
        created_at: TimestampMs(1),
    }
}

/// Accounts: one per e-mail; found by e-mail and by id.
pub async fn users_are_unique_by_email(store: Arc<dyn Store>) {
    let ana = user(1, "ana@example.com");
    store.insert_user(&ana).await.unwrap();
    assert!(matches!(
        store.insert_user(&user(2, "ana@example.com")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store.user_by_email("ana@example.com").await.unwrap(),
        Some(ana.clone())
    );
    assert_eq!(store.user(&ana.id).await.unwrap(), Some(ana));
    assert_eq!(store.user_by_email("bo@example.com").await.unwrap(), None);
}

/// A refresh token works once; presenting it again revokes every token of its login.
pub async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family(store: Arc<dyn Store>) {
    let ana = user(3, "ana3@example.com");
    store.insert_user(&ana).await.unwrap();
    let first = RefreshToken {
        token_sha256: "a".repeat(64),
        user_id: ana.id.clone(),
        family_id: "family-1".into(),
        created_at: TimestampMs(10),
        expires_at: TimestampMs(1_000),
    };
    store.insert_refresh_token(&first).await.unwrap();
    let b = "b".repeat(64);
    let c = "c".repeat(64);
    assert_eq!(
        store
            .rotate_refresh_token(&first.token_sha256, &b, TimestampMs(1_000), TimestampMs(20))
            .await
            .unwrap(),
        Rotation::Rotated {
            user_id: ana.id.clone()
        }
    );
    // The successor works...
    assert_eq!(
        store
            .rotate_refresh_token(&b, &c, TimestampMs(1_000), TimestampMs(30))
            .await
            .unwrap(),
        Rotation::Rotated {
            user_id: ana.id.clone()
        }
    );
    // ...but the first token again is theft: the family dies, including the newest token.
    assert_eq!(
        store
            .rotate_refresh_token(
                &first.token_sha256,
                &"d".repeat(64),
                TimestampMs(1_000),
                TimestampMs(40)
            )
            .await
            .unwrap(),
        Rotation::ReuseDetected
    );
    assert_eq!(
        store
            .rotate_refresh_token(&c, &"e".repeat(64), TimestampMs(1_000), TimestampMs(50))
            .await
            .unwrap(),
        Rotation::Invalid
    );
    // Unknown and expired tokens are invalid.
    assert_eq!(
        store
            .rotate_refresh_token(
                &"f".repeat(64),
                &"g".repeat(64),
                TimestampMs(1_000),
                TimestampMs(50)
            )
            .await
            .unwrap(),
        Rotation::Invalid
    );
    let old = RefreshToken {
        token_sha256: "h".repeat(64),
        family_id: "family-2".into(),
        expires_at: TimestampMs(100),
        ..first.clone()
    };
    store.insert_refresh_token(&old).await.unwrap();
    assert_eq!(
        store
            .rotate_refresh_token(
                &old.token_sha256,
                &"i".repeat(64),
                TimestampMs(1_000),
                TimestampMs(100)
            )
            .await
            .unwrap(),
        Rotation::Invalid
    );
    // Logout revokes the family.
    let live = RefreshToken {
        token_sha256: "j".repeat(64),
        family_id: "family-3".into(),
        ..first
    };
    store.insert_refresh_token(&live).await.unwrap();
    assert!(
        store
            .revoke_refresh_family(&live.token_sha256, TimestampMs(60))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .rotate_refresh_token(
                &live.token_sha256,
                &"k".repeat(64),
                TimestampMs(1_000),
                TimestampMs(70)
            )
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert!(
        !store
            .revoke_refresh_family(&"z".repeat(64), TimestampMs(60))
            .await
            .unwrap()
    );
}

fn booking(n: u32, user: &UserRecord, vehicle: &Vehicle, hold_until: i64) -> BookingRecord {
    BookingRecord {
        id: format!("00000000-0000-7000-9000-{n:012}"),
        user_id: user.id.clone(),
        vehicle_id: vehicle.id,
        city: vehicle.city.clone(),
        state: "reserved".into(),
        created_at: TimestampMs(10),
        hold_until: TimestampMs(hold_until),
        updated_at: TimestampMs(10),
        trip: crate::TripFacts::default(),
    }
}

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

fn kyc(n: u32, user: &UserRecord, kind: &str, at: i64) -> KycRecord {
    KycRecord {
        id: format!("00000000-0000-7000-a000-{n:012}"),
        user_id: user.id.clone(),
        kind: kind.into(),
        state: "pending".into(),
        full_name: "Ana Puig".into(),
        date_of_birth: "1990-04-01".into(),
        document_number: format!("X{n:07}"),
        expires_on: (kind == "driving_licence").then(|| "2031-01-01".into()),
        provider: "manual".into(),
        reason: None,
        submitted_at: TimestampMs(at),
        decided_at: None,
        decided_by: None,
    }
}

/// The review queue lists pending submissions oldest first; a decision is made once.
pub async fn kyc_queue_is_oldest_first_and_decisions_are_final(store: Arc<dyn Store>) {
    let (a, b) = (user(3_001, "k1@example.com"), user(3_002, "k2@example.com"));
    store.insert_user(&a).await.unwrap();
    store.insert_user(&b).await.unwrap();
    store.insert_kyc(&kyc(2, &b, "identity", 20)).await.unwrap();
    store
        .insert_kyc(&kyc(1, &a, "driving_licence", 10))
        .await
        .unwrap();
    store.insert_kyc(&kyc(3, &a, "identity", 30)).await.unwrap();
    let queue = store.kyc_queue(10).await.unwrap();
    let ids: Vec<&str> = queue.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            kyc(1, &a, "", 0).id,
            kyc(2, &a, "", 0).id,
            kyc(3, &a, "", 0).id
        ]
    );
    assert_eq!(store.kyc_queue(1).await.unwrap().len(), 1);
    let first = &queue[0].id;
    let done = store
        .decide_kyc(first, "verified", None, "staff-1", TimestampMs(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            done.state.as_str(),
            done.decided_by.as_deref(),
            done.decided_at
        ),
        ("verified", Some("staff-1"), Some(TimestampMs(40)))
    );
    assert!(
        store
            .decide_kyc(
                first,
                "rejected",
                Some("blurry"),
                "staff-2",
                TimestampMs(50)
            )
            .await
            .unwrap()
            .is_none()
    );
    let mine = store.user_kyc(&a.id).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0].kind, "identity", "newest first");
    assert_eq!(store.kyc_queue(10).await.unwrap().len(), 2);
    // Debug output carries no personal data.
    assert!(!format!("{:?}", mine[0]).contains("Ana"));
}

/// One plan per city and vehicle type; putting again replaces it.
pub async fn pricing_plans_are_one_per_city_and_type(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let eur = |m| mobility_core::Money::new(m, Currency::parse("EUR").unwrap());
    let plan = |t: VehicleType, per_minute: i64| crate::PricingPlan {
        city: barcelona().id,
        vehicle_type: t,
        name: format!("{} standard", t.as_str()),
        tariff: mobility_core::Tariff {
            unlock_fee: eur(100),
            per_minute: eur(per_minute),
            per_km: eur(0),
            daily_cap: (t == VehicleType::Scooter).then(|| eur(3_000)),
        },
        updated_at: TimestampMs(5),
    };
    store
        .put_pricing_plan(&plan(VehicleType::Scooter, 25))
        .await
        .unwrap();
    store
        .put_pricing_plan(&plan(VehicleType::Ebike, 22))
        .await
        .unwrap();
    store
        .put_pricing_plan(&plan(VehicleType::Scooter, 29))
        .await
        .unwrap();
    let plans = store.pricing_plans(&barcelona().id).await.unwrap();
    assert_eq!(plans.len(), 2);
    let scooter = plans
        .iter()
        .find(|p| p.vehicle_type == VehicleType::Scooter)
        .unwrap();
    assert_eq!(*scooter, plan(VehicleType::Scooter, 29));
    let mut nowhere = plan(VehicleType::Car, 30);
    nowhere.city = CityId::parse("atlantis").unwrap();
    assert!(matches!(
        store.put_pricing_plan(&nowhere).await,
        Err(StoreError::MissingReference(_))
    ));
}

/// A payment is recorded once per idempotency key, with its journal entry; the ledger balances.
pub async fn payments_are_idempotent_and_the_ledger_balances(store: Arc<dyn Store>) {
    use mobility_core::payments::JournalEntry;
    let eur = |m| mobility_core::Money::new(m, Currency::parse("EUR").unwrap());
    let pay = |key: &str, amount: i64, provider: &str| crate::PaymentRecord {
        idempotency_key: key.into(),
        user_id: "u1".into(),
        booking_id: Some("b1".into()),
        kind: PaymentKind::Charge,
        amount: eur(amount),
        state: PaymentState::Succeeded,
        provider: Some(provider.into()),
        provider_ref: Some(format!("{provider}-{key}")),
        detail: None,
        created_at: TimestampMs(1),
    };
    let first = pay("trip:b1", 625, "primary");
    let entry = JournalEntry::trip_charge("primary", eur(625)).unwrap();
    assert_eq!(
        store.record_payment(&first, Some(&entry)).await.unwrap(),
        first
    );
    // A retry, even naming another provider and amount, returns the first outcome and posts nothing.
    let retry = pay("trip:b1", 999, "fallback");
    let again = store
        .record_payment(
            &retry,
            Some(&JournalEntry::trip_charge("fallback", eur(999)).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(again, first);
    let second = pay("trip:b2", 400, "fallback");
    store
        .record_payment(
            &second,
            Some(&JournalEntry::trip_charge("fallback", eur(400)).unwrap()),
        )
        .await
        .unwrap();
    let balances = store.ledger_balances().await.unwrap();
    let get = |a: &str| {
        balances
            .iter()
            .find(|(acc, _, _)| acc == a)
            .map(|(_, _, v)| *v)
    };
    assert_eq!(get("psp:primary"), Some(625));
    assert_eq!(get("psp:fallback"), Some(400));
    assert_eq!(get("revenue:trips"), Some(-1_025));
    assert_eq!(
        balances.iter().map(|(_, _, v)| v).sum::<i64>(),
        0,
        "the books reconcile"
    );
    assert_eq!(store.payment("trip:b2").await.unwrap(), Some(second));
    assert_eq!(store.payment("nope").await.unwrap(), None);
    assert_eq!(
        store.account_balance("psp:primary", "EUR").await.unwrap(),
        625
    );
    assert_eq!(
        store.account_balance("psp:primary", "USD").await.unwrap(),
        0
    );
    assert_eq!(store.account_balance("nobody", "EUR").await.unwrap(), 0);
}

/// One outbox message per event key; due messages come back until sent or given up.
pub async fn the_outbox_sends_each_event_once_and_retries_when_due(store: Arc<dyn Store>) {
    let ana = user(4_001, "n@example.com");
    store.insert_user(&ana).await.unwrap();
    let msg = |n: u32, key: &str| crate::OutboxMessage {
        id: format!("00000000-0000-7000-b000-{n:012}"),
        event_key: key.into(),
        user_id: ana.id.clone(),
        channel: "webhook".into(),
        template: "receipt".into(),
        payload: "{}".into(),
        state: "pending".into(),
        attempts: 0,
        next_attempt_at: TimestampMs(100),
        last_error: None,
        created_at: TimestampMs(100),
    };
    assert!(
        store
            .enqueue_notification(&msg(1, "receipt:b1:webhook"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .enqueue_notification(&msg(2, "receipt:b1:webhook"))
            .await
            .unwrap(),
        "same event, not again"
    );
    assert!(
        store
            .due_notifications(TimestampMs(99), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.due_notifications(TimestampMs(100), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    store
        .finish_notification(
            &due[0].id,
            "pending",
            TimestampMs(200),
            Some("HTTP 500"),
            TimestampMs(100),
        )
        .await
        .unwrap();
    assert!(
        store
            .due_notifications(TimestampMs(150), 10)
            .await
            .unwrap()
            .is_empty(),
        "backed off"
    );
    let again = store.due_notifications(TimestampMs(200), 10).await.unwrap();
    assert_eq!(
        (again[0].attempts, again[0].last_error.as_deref()),
        (1, Some("HTTP 500"))
    );
    store
        .finish_notification(
            &again[0].id,
            "sent",
            TimestampMs(200),
            None,
            TimestampMs(201),
        )
        .await
        .unwrap();
    assert!(
        store
            .due_notifications(TimestampMs(10_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .notification("receipt:b1:webhook")
            .await
            .unwrap()
            .unwrap()
            .state,
        "sent"
    );
    let pref = crate::NotificationPreference {
        channel: "webhook".into(),
        enabled: true,
        address: Some("https://example.com/hook".into()),
    };
    store
        .set_notification_preference(&ana.id, &pref)
        .await
        .unwrap();
    let off = crate::NotificationPreference {
        enabled: false,
        ..pref.clone()
    };
    store
        .set_notification_preference(&ana.id, &off)
        .await
        .unwrap();
    assert_eq!(
        store.notification_preferences(&ana.id).await.unwrap(),
        vec![off]
    );
}

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

/// Pass plans are upserted per city (never moved to another); a bought pass is recorded once
/// per payment key.
pub async fn passes_are_sold_per_city_and_bought_once_per_key(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let mut plan = crate::PassPlan {
        id: "commuter-30".into(),
        city: barcelona().id,
        name: "Commuter 30 days".into(),
        price: mobility_core::Money::new(2_500, Currency::EUR),
        valid_days: 30,
        vehicle_types: vec![VehicleType::Scooter, VehicleType::Ebike],
        benefit: mobility_core::PassBenefit {
            free_unlock: true,
            free_minutes: 30,
        },
        active: true,
        updated_at: TimestampMs(10),
    };
    store.put_pass_plan(&plan).await.unwrap();
    plan.price = mobility_core::Money::new(2_900, Currency::EUR);
    plan.active = false;
    store.put_pass_plan(&plan).await.unwrap();
    assert_eq!(
        store.pass_plans(&barcelona().id).await.unwrap(),
        vec![plan.clone()]
    );
    assert_eq!(
        store.pass_plan("commuter-30").await.unwrap(),
        Some(plan.clone())
    );
    assert_eq!(store.pass_plan("nope").await.unwrap(), None);
    let mut elsewhere = plan.clone();
    elsewhere.id = "x".into();
    elsewhere.city = CityId::parse("nowhere").unwrap();
    assert!(matches!(
        store.put_pass_plan(&elsewhere).await,
        Err(StoreError::MissingReference(_))
    ));

    let rider = user(9_100, "pass@example.com");
    store.insert_user(&rider).await.unwrap();
    let pass = crate::RiderPass {
        id: "p1".into(),
        user_id: rider.id.clone(),
        plan_id: plan.id.clone(),
        starts_at: TimestampMs(100),
        ends_at: TimestampMs(100 + 30 * 86_400_000),
        payment_key: "pass:k1".into(),
        created_at: TimestampMs(100),
    };
    store.insert_rider_pass(&pass).await.unwrap();
    let mut again = pass.clone();
    again.id = "p2".into();
    assert!(matches!(
        store.insert_rider_pass(&again).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store.rider_pass_by_key("pass:k1").await.unwrap(),
        Some(pass.clone())
    );
    assert_eq!(store.rider_passes(&rider.id).await.unwrap(), vec![pass]);
    assert!(store.rider_passes("nobody").await.unwrap().is_empty());
}

/// Demand slots add up when two reporters count the same slot; incentive spending never passes
/// the day's budget, even when many processes spend at once; days are separate.
pub async fn demand_adds_up_and_incentives_stay_within_the_budget(store: Arc<dyn Store>) {
    let city = barcelona();
    store.put_city(&city, TimestampMs(1)).await.unwrap();
    let slot = |t: i64, zone: &str, searches: u32, unmet: u32| DemandSlot {
        slot: TimestampMs(t),
        zone: zone.to_owned(),
        searches,
        unmet,
        returns: searches / 2,
    };
    store
        .add_demand(&city.id, &[slot(900_000, "a", 3, 1), slot(0, "b", 2, 0)])
        .await
        .unwrap();
    store
        .add_demand(&city.id, &[slot(900_000, "a", 4, 2)])
        .await
        .unwrap();
    assert_eq!(
        store.demand_since(&city.id, TimestampMs(0)).await.unwrap(),
        vec![
            slot(0, "b", 2, 0),
            DemandSlot {
                returns: 3,
                ..slot(900_000, "a", 7, 3)
            }
        ]
    );
    assert_eq!(
        store.demand_since(&city.id, TimestampMs(1)).await.unwrap(),
        vec![DemandSlot {
            returns: 3,
            ..slot(900_000, "a", 7, 3)
        }]
    );
    let unknown = CityId::parse("atlantis").unwrap();
    assert!(matches!(
        store.add_demand(&unknown, &[slot(0, "a", 1, 0)]).await,
        Err(StoreError::MissingReference(_))
    ));

    // Weather: replaced per hour, unknowns stay unknown, read by range.
    let hour = |h: i64, rain: Option<bool>, temp_c: Option<f64>| WeatherHour {
        hour: TimestampMs(h * 3_600_000),
        rain,
        temp_c,
    };
    store
        .put_weather(
            &city.id,
            &[hour(1, Some(true), Some(12.5)), hour(2, None, None)],
        )
        .await
        .unwrap();
    store
        .put_weather(
            &city.id,
            &[hour(1, Some(false), Some(14.0)), hour(3, Some(true), None)],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .weather_between(&city.id, TimestampMs(3_600_000), TimestampMs(3 * 3_600_000))
            .await
            .unwrap(),
        vec![hour(1, Some(false), Some(14.0)), hour(2, None, None)]
    );

    // Events: replaced by id, listed by end from a time on, deleted once.
    let event = |id: &str, ends: i64| CityEventRecord {
        id: id.to_owned(),
        city: city.id.clone(),
        name: format!("event {id}"),
        venue: LatLon::new(41.38, 2.12).unwrap(),
        ends_at: TimestampMs(ends),
        egress_ms: 1_800_000,
        riders: 250.5,
        updated_at: TimestampMs(1),
    };
    store
        .put_calendar_event(&event("match", 5_000))
        .await
        .unwrap();
    store
        .put_calendar_event(&event("concert", 9_000))
        .await
        .unwrap();
    store
        .put_calendar_event(&event("match", 7_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .calendar_events(&city.id, TimestampMs(6_000))
            .await
            .unwrap(),
        vec![event("match", 7_000), event("concert", 9_000)]
    );
    assert_eq!(
        store.delete_calendar_event("match").await.unwrap(),
        Some(city.id.clone())
    );
    assert_eq!(store.delete_calendar_event("match").await.unwrap(), None);
    assert!(matches!(
        store
            .put_calendar_event(&CityEventRecord {
                city: CityId::parse("atlantis").unwrap(),
                ..event("x", 1)
            })
            .await,
        Err(StoreError::MissingReference(_))
    ));

    // 40 spenders of 100 against a budget of 1,000: exactly ten win.
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let store = store.clone();
        let id = city.id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .spend_incentive(&id, 20_000, 100, 1_000)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += i32::from(t.await.unwrap());
    }
    assert_eq!(won, 10);
    assert_eq!(
        store.incentive_spent(&city.id, 20_000).await.unwrap(),
        1_000
    );
    assert!(
        !store
            .spend_incentive(&city.id, 20_000, 1, 1_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .spend_incentive(&city.id, 20_001, 1_000, 1_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .spend_incentive(&city.id, 20_002, 1_001, 1_000)
            .await
            .unwrap()
    );
    assert_eq!(store.incentive_spent(&city.id, 20_002).await.unwrap(), 0);
}

/// A change and its domain event are written in one transaction: a change that does not
/// happen (a lost race, a refused insert) leaves no event, and the relay reads them in order.
pub async fn store_changes_and_their_events_commit_together(store: Arc<dyn Store>) {
    use mobility_core::{DomainEvent, NewEvent};
    let types = |store: &Arc<dyn Store>| {
        let store = store.clone();
        async move {
            store
                .outbox_events(0, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.event.event.type_name())
                .collect::<Vec<_>>()
        }
    };
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let v = vehicle(900, VehicleType::Scooter);
    store.insert_vehicle(&v, SECRET).await.unwrap();
    let (a, b) = (
        user(9_001, "ev-a@example.com"),
        user(9_002, "ev-b@example.com"),
    );
    store.insert_user(&a).await.unwrap();
    store.insert_user(&b).await.unwrap();
    assert!(types(&store).await.is_empty());
    let first = booking(90, &a, &v, 10_000);
    store.insert_booking(&first).await.unwrap();
    // The vehicle is taken: refused, and no event.
    assert!(
        store
            .insert_booking(&booking(91, &b, &v, 10_000))
            .await
            .is_err()
    );
    assert_eq!(types(&store).await, vec!["booking.changed"]);
    store
        .transition_booking(&first.id, "reserved", "cancelled", TimestampMs(20))
        .await
        .unwrap()
        .unwrap();
    // Lost compare-and-set: no event.
    assert!(
        store
            .transition_booking(&first.id, "reserved", "cancelled", TimestampMs(21))
            .await
            .unwrap()
            .is_none()
    );
    let change = v
        .decide(
            &[EventType::ProviderDropOff],
            VehicleState::Available,
            TimestampMs(1_700_000_001_000),
        )
        .unwrap();
    store.record_state_change(&change).await.unwrap();
    // A stale change is a conflict: no event.
    assert!(store.record_state_change(&change).await.is_err());
    let k = kyc(90, &a, "identity", 5);
    store.insert_kyc(&k).await.unwrap();
    store
        .decide_kyc(&k.id, "verified", None, "staff-1", TimestampMs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .decide_kyc(&k.id, "rejected", Some("late"), "staff-2", TimestampMs(31))
            .await
            .unwrap()
            .is_none()
    );
    let admin = NewEvent::new(
        Uuid::from_u128(77),
        None,
        TimestampMs(40),
        DomainEvent::AdminChanged {
            actor: "token:abc".into(),
            action: "PUT /v1/admin/cities/{city}".into(),
            target: "/v1/admin/cities/barcelona".into(),
            at: TimestampMs(40),
        },
    );
    store.record_event(&admin).await.unwrap();
    store.record_event(&admin).await.unwrap();
    assert_eq!(
        types(&store).await,
        vec![
            "booking.changed",
            "booking.changed",
            "lifecycle.state_changed",
            "account.kyc_decided",
            "admin.changed"
        ]
    );
    let all = store.outbox_events(0, 100).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    match &all[1].event.event {
        DomainEvent::BookingChanged {
            from, to, booking, ..
        } => {
            assert_eq!(
                (from.as_deref(), to.as_str(), booking.as_str()),
                (Some("reserved"), "cancelled", first.id.as_str())
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        all[2].event.city.as_ref().map(CityId::as_str),
        Some("barcelona")
    );
    assert_eq!(all[4].event, admin);
    // Relayed ones are deleted; the rest stay, in order.
    assert_eq!(store.delete_outbox_events(all[2].seq).await.unwrap(), 3);
    let rest = store.outbox_events(0, 100).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![all[3].seq, all[4].seq]
    );
    assert_eq!(store.outbox_events(all[3].seq, 100).await.unwrap().len(), 1);
}
