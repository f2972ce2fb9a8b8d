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
    DemandSlot, GeofenceRecord, JobRun, KycRecord, MdsToken, OpenOptions, PostgresStore,
    RefreshToken, Rotation, Store, StoreError, TripFacts, UserRecord, WeatherHour,
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
            job_leases_have_one_holder_and_pass_on_when_they_run_out,
            job_runs_are_counted_and_the_last_error_kept,
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
    assert_eq!(r.schema_version, Some(16));
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

// The cases live beside the trait they check (`src/<domain>/conformance.rs`).
#[path = "../cities/conformance.rs"]
mod cities;
pub use cities::*;
#[path = "../vehicles/conformance.rs"]
mod vehicles;
pub use vehicles::*;
#[path = "../accounts/conformance.rs"]
mod accounts;
pub use accounts::*;
#[path = "../commands/conformance.rs"]
mod commands;
pub use commands::*;
#[path = "../geofences/conformance.rs"]
mod geofences;
pub use geofences::*;
#[path = "../bookings/conformance.rs"]
mod bookings;
pub use bookings::*;
#[path = "../kyc/conformance.rs"]
mod kyc;
pub use kyc::*;
#[path = "../pricing/conformance.rs"]
mod pricing;
pub use pricing::*;
#[path = "../payments/conformance.rs"]
mod payments;
pub use payments::*;
#[path = "../notifications/conformance.rs"]
mod notifications;
pub use notifications::*;
#[path = "../open_data/conformance.rs"]
mod open_data;
pub use open_data::*;
#[path = "../intel/conformance.rs"]
mod intel;
pub use intel::*;
#[path = "../events/conformance.rs"]
mod events;
pub use events::*;
#[path = "../jobs/conformance.rs"]
mod jobs;
pub use jobs::*;
