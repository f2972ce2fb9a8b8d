//! Transactional storage: a trait per domain (each in its folder, beside its conformance
//! cases), [`Store`] over all of them, and two backends chosen by URL.
//!
//! - `sqlite://PATH` — the embedded default: one file (WAL mode), created on first start.
//! - `postgres://…` / `postgresql://…` — PostgreSQL 13 or later, for scale-out.
//!
//! Both backends run the *same SQL text* (written with `$1` placeholders, which SQLite and
//! PostgreSQL both accept) generated from one macro, so there is one code path to review; only the
//! migrations differ (DDL dialects). The conformance suite in [`testsuite`] runs against both.
//!
//! **Architecture invariant:** the store never decides domain rules. It persists what the core
//! decided, and enforces only what needs the database to be atomic: uniqueness and optimistic
//! concurrency (a state change applies only to the vehicle version it was decided from).

mod backend;
mod url_redact;

pub mod accounts;
pub mod bookings;
pub mod cities;
pub mod commands;
pub mod events;
pub mod geofences;
pub mod intel;
pub mod jobs;
pub mod kyc;
pub mod notifications;
pub mod open_data;
pub mod payments;
pub mod pricing;
pub mod vehicles;

pub use {
    accounts::AccountStore,
    bookings::BookingStore,
    cities::CityStore,
    commands::CommandStore,
    events::EventStore,
    geofences::GeofenceStore,
    intel::IntelStore,
    jobs::{JobRun, JobStatus, JobStore},
    kyc::KycStore,
    notifications::NotificationStore,
    open_data::OpenDataStore,
    payments::PaymentStore,
    pricing::PricingStore,
    vehicles::VehicleStore,
};

#[cfg(feature = "testsuite")]
pub mod testsuite;

use std::{path::Path, sync::Arc, time::Duration};

use async_trait::async_trait;
use mobility_core::{
    City, CityId, CommandKind, CommandState, EventType, Role, StateChange, TimestampMs, Vehicle,
    VehicleId, VehicleState,
};

pub use backend::{PostgresStore, SqliteStore};
pub use url_redact::redact_url;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Lowercase name, for logs and metrics labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What `/readyz` needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Migrations known to this binary that the database has not applied.
    pub pending_migrations: usize,
    /// Highest applied migration version, if any.
    pub schema_version: Option<i64>,
}

/// One recorded MDS vehicle event.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Monotonic sequence number assigned by the store.
    pub seq: i64,
    /// The vehicle.
    pub vehicle_id: VehicleId,
    /// Vehicle version after the event.
    pub version: u64,
    /// State before.
    pub from: VehicleState,
    /// State after.
    pub to: VehicleState,
    /// Ordered event types.
    pub events: Vec<EventType>,
    /// When it happened.
    pub at: TimestampMs,
    /// Where the vehicle was, when the platform knew.
    pub location: Option<mobility_core::LatLon>,
    /// The booking (MDS trip) it belongs to.
    pub trip_id: Option<String>,
    /// Older than the vehicle's state when it arrived: logged, not applied.
    pub late: bool,
}

/// A bearer token issued to an agency (a city regulator) for the MDS Provider API. The token
/// itself is a signed JWT; this row lets an admin list and revoke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdsToken {
    /// The JWT's `jti`.
    pub id: String,
    /// Who it was issued to.
    pub agency: String,
    /// The one city whose data it reads.
    pub city: CityId,
    /// When it was issued.
    pub created_at: TimestampMs,
    /// When it expires.
    pub expires_at: TimestampMs,
    /// When it was revoked, if it was.
    pub revoked_at: Option<TimestampMs>,
}

/// Which bookings to list (staff views), newest first.
#[derive(Debug, Clone, Default)]
pub struct BookingFilter {
    /// Only this city's.
    pub city: Option<CityId>,
    /// Only in this state (`reserved`, `on_trip`, `ended`, …).
    pub state: Option<String>,
    /// Only of this vehicle.
    pub vehicle_id: Option<VehicleId>,
    /// Only of this rider.
    pub user_id: Option<String>,
    /// Only created before this (the next page: the last one's `created_at`).
    pub before: Option<TimestampMs>,
    /// Most to return (capped at [`PAGE_LIMIT_MAX`]).
    pub limit: u32,
}

/// A pass a city sells: a price, how long it lasts, and what it gives on each trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassPlan {
    /// Identifier (chosen by the admin, e.g. `commuter-30`).
    pub id: String,
    /// The city.
    pub city: CityId,
    /// Its name.
    pub name: String,
    /// What it costs.
    pub price: mobility_core::Money,
    /// How long it lasts once bought.
    pub valid_days: u32,
    /// The vehicle types it covers.
    pub vehicle_types: Vec<mobility_core::VehicleType>,
    /// What it gives on every covered trip.
    pub benefit: mobility_core::PassBenefit,
    /// Still sold.
    pub active: bool,
    /// Last change.
    pub updated_at: TimestampMs,
}

/// A pass a rider bought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiderPass {
    /// Identifier.
    pub id: String,
    /// The rider.
    pub user_id: String,
    /// The plan.
    pub plan_id: String,
    /// From when it is valid.
    pub starts_at: TimestampMs,
    /// Until when (exclusive).
    pub ends_at: TimestampMs,
    /// The purchase's idempotency key (one pass per purchase).
    pub payment_key: String,
    /// When it was bought.
    pub created_at: TimestampMs,
}

/// A service alert for riders (GBFS `system_alerts.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// Identifier.
    pub id: String,
    /// The city.
    pub city: CityId,
    /// GBFS alert type: `system_closure`, `station_closure`, `station_move` or `other`.
    pub alert_type: String,
    /// One line for riders.
    pub summary: String,
    /// More detail.
    pub description: Option<String>,
    /// A page with more.
    pub url: Option<String>,
    /// When it starts applying.
    pub starts_at: Option<TimestampMs>,
    /// When it stops applying.
    pub ends_at: Option<TimestampMs>,
    /// Last change.
    pub updated_at: TimestampMs,
}

/// Weather in a city for one hour (observed or forecast).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeatherHour {
    /// Start of the hour.
    pub hour: TimestampMs,
    /// Whether it rains.
    pub rain: Option<bool>,
    /// Temperature, °C.
    pub temp_c: Option<f64>,
}

/// An event in a city's calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct CityEventRecord {
    /// Identifier (the caller's).
    pub id: String,
    /// The city.
    pub city: CityId,
    /// What it is.
    pub name: String,
    /// The venue.
    pub venue: mobility_core::LatLon,
    /// When it ends.
    pub ends_at: TimestampMs,
    /// Over how long the crowd leaves, ms.
    pub egress_ms: i64,
    /// Riders expected among the crowd.
    pub riders: f64,
    /// Last change.
    pub updated_at: TimestampMs,
}

/// Riders' searches in one zone and 15-minute slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemandSlot {
    /// Start of the slot.
    pub slot: TimestampMs,
    /// The zone (an H3 cell as text).
    pub zone: String,
    /// Searches.
    pub searches: u32,
    /// Searches that found no vehicle.
    pub unmet: u32,
    /// Trips that ended in the zone.
    pub returns: u32,
}

/// A role-scoped API token as stored (the secret itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Public identifier (shown in listings, used to revoke).
    pub id: String,
    /// What the token may do.
    pub role: Role,
    /// Who or what it was issued to.
    pub label: String,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
    /// When it was issued.
    pub created_at: TimestampMs,
    /// When it was revoked, if it was.
    pub revoked_at: Option<TimestampMs>,
}

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// User id (UUID).
    pub id: String,
    /// E-mail address, lower-cased; unique.
    pub email: String,
    /// argon2id PHC string (never the password).
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// When the account was created.
    pub created_at: TimestampMs,
}

/// A refresh token as stored (only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    /// Whose it is.
    pub user_id: String,
    /// The login it descends from.
    pub family_id: String,
    /// When it was issued.
    pub created_at: TimestampMs,
    /// When it stops working.
    pub expires_at: TimestampMs,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was valid and unused: it is now used and `next` is stored in its family.
    Rotated {
        /// The user.
        user_id: String,
    },
    /// The token had been used before: its whole family is now revoked.
    ReuseDetected,
    /// Unknown, expired or revoked.
    Invalid,
}

/// A booking as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRecord {
    /// Booking id (UUID).
    pub id: String,
    /// The rider.
    pub user_id: String,
    /// The vehicle.
    pub vehicle_id: VehicleId,
    /// The vehicle's city.
    pub city: CityId,
    /// `reserved`, `cancelled`, `expired` (trip states come with unlocking).
    pub state: String,
    /// When it was made.
    pub created_at: TimestampMs,
    /// When an unused hold lapses.
    pub hold_until: TimestampMs,
    /// Last change.
    pub updated_at: TimestampMs,
    /// The trip, once unlocked.
    pub trip: TripFacts,
}

/// What a booking records about its trip (each set once, when known).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TripFacts {
    /// When the vehicle unlocked.
    pub started_at: Option<TimestampMs>,
    /// When the trip ended.
    pub ended_at: Option<TimestampMs>,
    /// The vehicle's odometer at the start, metres.
    pub start_odometer_m: Option<i64>,
    /// Distance ridden, metres.
    pub distance_m: Option<i64>,
    /// The receipt: the itemised fare, JSON.
    pub receipt: Option<String>,
    /// Why it failed, or other notes.
    pub detail: Option<String>,
    /// The dynamic price locked at unlock (multiplier, incentives, why), JSON.
    pub pricing: Option<String>,
}

/// A KYC submission as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct KycRecord {
    /// Submission id (UUID).
    pub id: String,
    /// The rider.
    pub user_id: String,
    /// `identity` or `driving_licence`.
    pub kind: String,
    /// `pending`, `verified` or `rejected`.
    pub state: String,
    /// Name on the document.
    pub full_name: String,
    /// YYYY-MM-DD.
    pub date_of_birth: String,
    /// Document number.
    pub document_number: String,
    /// Licence expiry, YYYY-MM-DD.
    pub expires_on: Option<String>,
    /// Who checks it: `manual` or an external provider's name.
    pub provider: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// When it was submitted.
    pub submitted_at: TimestampMs,
    /// When it was decided.
    pub decided_at: Option<TimestampMs>,
    /// Who decided (staff user id, or the provider).
    pub decided_by: Option<String>,
}

impl std::fmt::Debug for KycRecord {
    // Personal data stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KycRecord")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A pricing plan as stored: the tariff for one vehicle type in one city.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricingPlan {
    /// The city.
    pub city: CityId,
    /// The vehicle type.
    pub vehicle_type: mobility_core::VehicleType,
    /// Name shown to riders.
    pub name: String,
    /// The tariff.
    pub tariff: mobility_core::Tariff,
    /// Last change.
    pub updated_at: TimestampMs,
}

/// A payment as stored, keyed by its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    /// Idempotency key: the same key is the same payment, however often it is tried.
    pub idempotency_key: String,
    /// The rider.
    pub user_id: String,
    /// The booking it pays for, if any.
    pub booking_id: Option<String>,
    /// What it is.
    pub kind: mobility_core::payments::PaymentKind,
    /// Amount (positive).
    pub amount: mobility_core::Money,
    /// How it ended (one its kind may end in).
    pub state: mobility_core::payments::PaymentState,
    /// Provider that took it.
    pub provider: Option<String>,
    /// The provider's reference.
    pub provider_ref: Option<String>,
    /// Why it failed.
    pub detail: Option<String>,
    /// When.
    pub created_at: TimestampMs,
}

/// A notification waiting in (or done with) the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Message id (UUID).
    pub id: String,
    /// What it announces, per channel: at most one message per key, ever.
    pub event_key: String,
    /// Recipient.
    pub user_id: String,
    /// `webhook`, `email` or `push`.
    pub channel: String,
    /// Template name.
    pub template: String,
    /// JSON the template renders.
    pub payload: String,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_at: TimestampMs,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was written.
    pub created_at: TimestampMs,
}

/// A rider's choice for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationPreference {
    /// `webhook`, `email` or `push`.
    pub channel: String,
    /// Whether to send on it.
    pub enabled: bool,
    /// Webhook URL or e-mail address.
    pub address: Option<String>,
}

/// The states in which a booking holds its vehicle.
pub const ACTIVE_BOOKING_STATES: &[&str] = &["reserved", "unlocking", "on_trip", "paused"];

/// A command sent to a vehicle, with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// Command id (UUID), sent to the vehicle and echoed in its acknowledgement.
    pub id: String,
    /// The vehicle.
    pub vehicle_id: VehicleId,
    /// What it was asked to do.
    pub kind: CommandKind,
    /// Where it stands.
    pub state: CommandState,
    /// The vehicle's explanation for a failure, if any.
    pub detail: Option<String>,
    /// When it was sent.
    pub created_at: TimestampMs,
    /// When it times out.
    pub deadline: TimestampMs,
    /// When its outcome was decided.
    pub finished_at: Option<TimestampMs>,
    /// When an acknowledgement arrived after the deadline, if one did.
    pub late_ack_at: Option<TimestampMs>,
}

/// A geofence as stored (the domain type with its polygon lives in mobility-fleet).
#[derive(Debug, Clone, PartialEq)]
pub struct GeofenceRecord {
    /// Stable id.
    pub id: String,
    /// The city.
    pub city: CityId,
    /// Display name.
    pub name: String,
    /// Kind name: operating_area, no_parking, no_riding, slow_zone, parking_hub.
    pub kind: String,
    /// Slow zones' limit.
    pub speed_limit_kmh: Option<i64>,
    /// Outer ring as `[lon, lat]` pairs, open.
    pub ring: Vec<[f64; 2]>,
    /// Last change.
    pub updated_at: TimestampMs,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long to wait for a connection before failing (also bounds the first connect).
    pub connect_timeout: Duration,
    /// Most connections in the pool.
    pub max_connections: u32,
    /// PostgreSQL only: run in this schema (created if missing). Used by tests for isolation.
    pub postgres_schema: Option<String>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            max_connections: 16,
            postgres_schema: None,
        }
    }
}

/// Largest page the listing methods return.
pub const PAGE_LIMIT_MAX: u32 = 10_000;

/// Storage errors, each with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not one we understand.
    #[error("unsupported database URL {url:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl {
        /// The URL, with any password redacted.
        url: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot connect to {backend} database {url}: {reason}")]
    Connect {
        /// Which backend.
        backend: &'static str,
        /// The URL, password redacted.
        url: String,
        /// Why.
        reason: String,
    },
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// Something that must exist does not.
    #[error("{0} not found")]
    NotFound(String),
    /// Something that must be unique already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A referenced row does not exist (e.g. a vehicle's city).
    #[error("{0}")]
    MissingReference(String),
    /// The vehicle changed since the state change was decided; re-read and decide again.
    #[error("vehicle {vehicle} is at version {current}, not {expected}")]
    VersionConflict {
        /// The vehicle.
        vehicle: VehicleId,
        /// The version the change was decided from.
        expected: u64,
        /// The version in the store.
        current: u64,
    },
    /// A stored row no longer parses into a domain value (hand-edited or corrupted data).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A domain event waiting in the outbox to be relayed to the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Its place in the outbox (relay and delete in this order).
    pub seq: i64,
    /// The event.
    pub event: mobility_core::NewEvent,
}

/// The events a store change is published as. Ids are derived from what changed, so writing
/// the same change twice (a retried request) is the same event, deduplicated by the bus.
pub mod outbox {
    use mobility_core::{DomainEvent, NewEvent, StateChange, TimestampMs, Vehicle};

    use crate::{BookingRecord, KycRecord, PaymentRecord};

    fn id(key: &str) -> uuid::Uuid {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes())
    }

    /// A booking moved (`from` is `None` for a new one).
    #[must_use]
    pub fn booking(b: &BookingRecord, from: Option<&str>, to: &str, at: TimestampMs) -> NewEvent {
        NewEvent::new(
            id(&format!("booking:{}:{}:{to}", b.id, from.unwrap_or("new"))),
            Some(b.city.clone()),
            at,
            DomainEvent::BookingChanged {
                booking: b.id.clone(),
                user: b.user_id.clone(),
                vehicle: b.vehicle_id,
                from: from.map(str::to_owned),
                to: to.to_owned(),
                at,
            },
        )
    }

    /// A payment was recorded.
    #[must_use]
    pub fn payment(p: &PaymentRecord) -> NewEvent {
        NewEvent::new(
            id(&format!("payment:{}", p.idempotency_key)),
            None,
            p.created_at,
            DomainEvent::PaymentRecorded {
                key: p.idempotency_key.clone(),
                user: p.user_id.clone(),
                booking: p.booking_id.clone(),
                kind: p.kind,
                state: p.state,
                amount: p.amount,
                provider: p.provider.clone().unwrap_or_default(),
                at: p.created_at,
            },
        )
    }

    /// A KYC submission was decided.
    #[must_use]
    pub fn kyc(k: &KycRecord, at: TimestampMs) -> NewEvent {
        NewEvent::new(
            id(&format!("kyc:{}:{}", k.id, k.state)),
            None,
            at,
            DomainEvent::KycDecided {
                user: k.user_id.clone(),
                submission: k.id.clone(),
                kind: k.kind.clone(),
                decision: k.state.clone(),
                at,
            },
        )
    }

    /// An MDS state change was recorded (`v` is the vehicle after it).
    #[must_use]
    pub fn state_change(c: &StateChange, v: &Vehicle) -> NewEvent {
        let key = if c.late {
            format!(
                "vehicle:{}:late:{}:{}:{}",
                c.vehicle_id,
                c.at.0,
                c.from.as_str(),
                c.to.as_str()
            )
        } else {
            format!("vehicle:{}:v{}", c.vehicle_id, c.from_version + 1)
        };
        NewEvent::new(
            id(&key),
            Some(v.city.clone()),
            c.at,
            DomainEvent::VehicleStateChanged {
                vehicle: c.vehicle_id,
                at: c.at,
                from: c.from,
                to: c.to,
                event_types: c.events.clone(),
                trip_id: c.trip_id.clone(),
                location: c.location,
            },
        )
    }
}

/// Transactional storage used by every service of the platform: every per-domain store (one
/// trait and its conformance cases per folder: `cities/`, `vehicles/`, `bookings/`, …) on one
/// database, so a change and its outbox event commit in one transaction. A service that needs
/// one domain can be handed that trait alone.
#[async_trait]
pub trait Store:
    CityStore
    + VehicleStore
    + BookingStore
    + PricingStore
    + PaymentStore
    + NotificationStore
    + KycStore
    + AccountStore
    + OpenDataStore
    + IntelStore
    + CommandStore
    + GeofenceStore
    + EventStore
    + JobStore
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// The backend behind this store.
    fn backend(&self) -> Backend;

    /// Applies pending migrations; returns how many were applied.
    async fn migrate(&self) -> Result<usize, StoreError>;

    /// Checks the database answers and reports migration status.
    async fn readiness(&self) -> Result<Readiness, StoreError>;

    /// Waits for in-flight queries and closes all connections (SQLite checkpoints its WAL).
    async fn close(&self);

    /// The connection pool now: for `/metrics` (a pool always at its most, with none idle,
    /// is saturated: requests wait for a connection).
    fn pool_stats(&self) -> PoolStats;
}

/// A store's connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open.
    pub size: u32,
    /// Of those, idle.
    pub idle: u32,
    /// Most it may open.
    pub max: u32,
}

/// The default database URL for a data directory: `sqlite://DATA_DIR/mobility.db`.
#[must_use]
pub fn default_sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("mobility.db").display())
}

/// Opens the store named by `url` (without migrating).
pub async fn open(url: &str, options: &OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("sqlite") => Ok(Arc::new(SqliteStore::open(url, options).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(PostgresStore::open(url, options).await?)),
        _ => Err(StoreError::UnsupportedUrl {
            url: redact_url(url),
        }),
    }
}
