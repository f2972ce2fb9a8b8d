//! The event bus: every domain event, durable, in order per stream, for named consumers.
//!
//! One seam, two backends chosen by URL (`MOBILITY_BUS_URL`):
//! - `embedded` (the default): a segmented, checksummed, group-committed log per domain under
//!   the data directory ([`embedded`]); one process, no service to run.
//! - `nats://host:4222`: NATS JetStream ([`nats`]), one stream per domain, for several
//!   processes and machines.
//!
//! What both guarantee, and what the conformance suite ([`testsuite`]) checks on both:
//! - **Streams per domain** ([`Domain`]), each with its own retention by age and size; subjects
//!   `<domain>.<city>` (`<domain>._` for events of no city), so a consumer can take one city.
//! - **A sequence per stream**: events of one stream are stored, and delivered to each consumer,
//!   in the order they were published; the envelope carries the sequence.
//! - **Deduplication by id** within a window ([`DEDUP_WINDOW`]): publishing an event again with
//!   the same id (a retry after a lost answer, an outbox relayed twice) stores it once.
//! - **Durable named consumers**, each with its own cursor: at-least-once delivery, explicit
//!   ack, redelivery after the ack wait or a nak with back-off, and after
//!   [`ConsumerSpec::max_attempts`] the event goes to the dead-letter stream (subject
//!   `dead_letter.<consumer>`) instead of blocking the consumer forever.
//! - **Replay** from a sequence or a time, without a cursor ([`EventBus::read`]) or by moving a
//!   consumer's cursor ([`EventBus::reset_consumer`]).
//!
//! Only this crate knows the wire format ([`codec`]).

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use mobility_core::{CityId, Domain, DomainEvent, NewEvent, TimestampMs};

pub mod codec;
pub mod embedded;
pub mod nats;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use embedded::EmbeddedBus;
pub use nats::NatsBus;

/// Publishing an id again within this window stores it once (JetStream's default, too).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(120);
/// Most events one [`EventBus::publish`] call takes.
pub const PUBLISH_BATCH_MAX: usize = 65_536;
/// Most events one fetch or read returns.
pub const FETCH_MAX: usize = 10_000;
/// Largest encoded event, bytes (JetStream's default payload limit is 1 MiB).
pub const EVENT_BYTES_MAX: usize = 1024 * 1024;

/// An event as the bus delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Unique id (the publisher's).
    pub id: uuid::Uuid,
    /// `<domain>.<city or _>`, or `dead_letter.<consumer>`.
    pub subject: String,
    /// The event's type name ([`DomainEvent::type_name`]).
    pub event_type: String,
    /// The city, if the event belongs to one.
    pub city: Option<CityId>,
    /// The region whose platform published it.
    pub region: String,
    /// When it happened (the publisher's time).
    pub at: TimestampMs,
    /// Its sequence in its domain's stream.
    pub seq: u64,
    /// When the bus stored it (replay from a time uses this).
    pub stored: TimestampMs,
    /// The event.
    pub event: DomainEvent,
}

impl Envelope {
    /// The domain of the stream it came from.
    #[must_use]
    pub fn domain(&self) -> Domain {
        self.event.domain()
    }
}

/// What publishing one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Its sequence (for a duplicate: the sequence of the first copy, where the backend says).
    pub seq: u64,
    /// It had been published before (same id, within [`DEDUP_WINDOW`]); nothing was stored.
    pub duplicate: bool,
}

/// Where a read or a consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest event still kept.
    First,
    /// The first event at or after this sequence.
    Seq(u64),
    /// The first event stored at or after this time.
    Time(TimestampMs),
    /// Only events published from now on.
    New,
}

/// A durable consumer: its name is its identity (a consumer opened again by the same name goes
/// on from its cursor; several handles of one name share the work).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSpec {
    /// Name: lower-case letters, digits, `-` and `_` (it becomes a subject token).
    pub name: String,
    /// The stream it reads.
    pub domain: Domain,
    /// Only this city's events, or all.
    pub city: Option<CityId>,
    /// Where a new consumer starts (an existing one keeps its cursor).
    pub start: StartAt,
    /// A delivered event not acked within this is delivered again.
    pub ack_wait: Duration,
    /// Attempts before an event is dead-lettered (the next delivery goes to the dead letters).
    pub max_attempts: u32,
    /// Delay before the n-th redelivery after a nak (the last entry repeats).
    pub backoff: Vec<Duration>,
}

impl ConsumerSpec {
    /// A consumer of `domain` from its first event, with the defaults: 30 s ack wait, 5
    /// attempts, back-off 1 s, 5 s, 30 s.
    #[must_use]
    pub fn new(name: impl Into<String>, domain: Domain) -> Self {
        Self {
            name: name.into(),
            domain,
            city: None,
            start: StartAt::First,
            ack_wait: Duration::from_secs(30),
            max_attempts: 5,
            backoff: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
        }
    }

    /// The delay before redelivery after the `attempt`-th attempt failed.
    #[must_use]
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let i = (attempt.max(1) - 1) as usize;
        self.backoff
            .get(i)
            .or_else(|| self.backoff.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// Checks the name and the bounds.
    pub fn validate(&self) -> Result<(), BusError> {
        valid_name(&self.name)?;
        if self.max_attempts == 0 || self.max_attempts > 1_000 {
            return Err(BusError::Config(format!(
                "consumer {}: max_attempts must be 1..=1000",
                self.name
            )));
        }
        if self.ack_wait < Duration::from_millis(100) {
            return Err(BusError::Config(format!(
                "consumer {}: ack_wait must be at least 100 ms",
                self.name
            )));
        }
        Ok(())
    }
}

/// Checks that `name` can be a consumer name (and so a subject token and a file name).
pub fn valid_name(name: &str) -> Result<(), BusError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BusError::Config(format!(
            "consumer name {name:?}: use 1 to 64 lower-case letters, digits, '-' or '_'"
        )))
    }
}

/// How long a stream keeps its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events older than this are dropped.
    pub max_age: Duration,
    /// The oldest events are dropped while the stream holds more than this.
    pub max_bytes: u64,
}

impl Retention {
    /// The default retention of a domain: telemetry 6 hours (the live log's raw history is
    /// its long record), the admin trail a year, the rest 30 days; sizes bound the disk
    /// either way.
    #[must_use]
    pub const fn default_for(domain: Domain) -> Self {
        const DAY: u64 = 86_400;
        const GIB: u64 = 1024 * 1024 * 1024;
        match domain {
            Domain::Telemetry => Self {
                max_age: Duration::from_secs(6 * 3_600),
                max_bytes: 4 * GIB,
            },
            Domain::Admin => Self {
                max_age: Duration::from_secs(365 * DAY),
                max_bytes: GIB,
            },
            _ => Self {
                max_age: Duration::from_secs(30 * DAY),
                max_bytes: GIB,
            },
        }
    }
}

/// What a stream holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamInfo {
    /// Its first kept sequence (0 when empty).
    pub first_seq: u64,
    /// Its last sequence (0 when nothing was ever published).
    pub last_seq: u64,
    /// Events kept.
    pub messages: u64,
    /// Bytes kept.
    pub bytes: u64,
}

/// Configuration both backends share.
#[derive(Debug, Clone, PartialEq)]
pub struct BusConfig {
    /// This platform's region, stamped on every envelope.
    pub region: String,
    /// Retention per domain (domains not listed keep [`Retention::default_for`]).
    pub retention: Vec<(Domain, Retention)>,
    /// NATS: the prefix of this platform's streams and subjects (several platforms, or tests,
    /// may share a server). Lower-case letters, digits and `_`.
    pub prefix: String,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            region: "local".to_owned(),
            retention: Vec::new(),
            prefix: "mobility".to_owned(),
        }
    }
}

impl BusConfig {
    /// The retention of `domain`.
    #[must_use]
    pub fn retention_of(&self, domain: Domain) -> Retention {
        self.retention
            .iter()
            .find(|(d, _)| *d == domain)
            .map_or_else(|| Retention::default_for(domain), |(_, r)| *r)
    }
}

/// Why the bus could not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The embedded log's files.
    #[error("event log: {0}")]
    Io(String),
    /// The NATS server.
    #[error("nats: {0}")]
    Nats(String),
    /// An event that cannot be encoded or decoded.
    #[error("event encoding: {0}")]
    Codec(String),
    /// A setting or argument.
    #[error("{0}")]
    Config(String),
    /// No such consumer.
    #[error("no consumer {0}")]
    NoConsumer(String),
}

impl From<std::io::Error> for BusError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// One delivered event, to be acked once handled (or nak'd to have it again later).
pub struct Delivery {
    /// The event.
    pub envelope: Envelope,
    /// Which attempt this is (1 for the first delivery).
    pub attempt: u32,
    acker: Box<dyn Acker>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("seq", &self.envelope.seq)
            .field("subject", &self.envelope.subject)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// Handled: never deliver it to this consumer again.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }

    /// Not handled: deliver it again after the consumer's back-off for this attempt.
    pub async fn nak(self) -> Result<(), BusError> {
        self.acker.nak(self.attempt).await
    }
}

/// A backend's handle on one delivered event.
#[async_trait]
pub(crate) trait Acker: Send + Sync {
    async fn ack(&self) -> Result<(), BusError>;
    async fn nak(&self, attempt: u32) -> Result<(), BusError>;
}

/// A durable consumer's handle.
#[async_trait]
pub trait Consumer: Send + Sync + fmt::Debug {
    /// The next events (at most `max`), waiting up to `wait` for the first one. Redeliveries
    /// come first. An event past its attempts is moved to the dead letters, not returned.
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError>;
    /// Events of its stream it has not acked yet.
    async fn lag(&self) -> Result<u64, BusError>;
    /// Its spec.
    fn spec(&self) -> &ConsumerSpec;
}

/// A reader that follows one stream from a point on, without a cursor kept by the bus: it ends
/// with its process, and the events it saw are not acknowledged to anyone. What a process's
/// live views follow (the vehicle stream); reactions that must not miss an event are durable
/// [`Consumer`]s instead.
#[async_trait]
pub trait Subscription: Send + fmt::Debug {
    /// The events after the last ones returned (at most `max`, in stream order), waiting up to
    /// `wait` for the first.
    async fn next(&mut self, max: usize, wait: Duration) -> Result<Vec<Envelope>, BusError>;
}

/// The event bus.
#[async_trait]
pub trait EventBus: Send + Sync + fmt::Debug {
    /// Stores the events (each in its domain's stream, in order) and returns what happened to
    /// each, in order, once they are durable. At most [`PUBLISH_BATCH_MAX`] per call.
    async fn publish(&self, events: &[NewEvent]) -> Result<Vec<Published>, BusError>;
    /// Opens a durable consumer (created at `spec.start` if it does not exist).
    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn Consumer>, BusError>;
    /// Moves a consumer's cursor: everything from `from` on is delivered to it again.
    async fn reset_consumer(&self, spec: ConsumerSpec, from: StartAt) -> Result<(), BusError>;
    /// Deletes a consumer and its cursor.
    async fn delete_consumer(&self, domain: Domain, name: &str) -> Result<(), BusError>;
    /// Names of a stream's consumers.
    async fn consumers(&self, domain: Domain) -> Result<Vec<String>, BusError>;
    /// Reads up to `max` events of a stream from `from`, without a cursor (tail, replay, audit).
    async fn read(
        &self,
        domain: Domain,
        city: Option<&CityId>,
        from: StartAt,
        max: usize,
    ) -> Result<Vec<Envelope>, BusError>;
    /// Follows a stream (one city's subject, or all) from `from` on.
    async fn subscribe(
        &self,
        domain: Domain,
        city: Option<&CityId>,
        from: StartAt,
    ) -> Result<Box<dyn Subscription>, BusError>;
    /// What a stream holds.
    async fn stream_info(&self, domain: Domain) -> Result<StreamInfo, BusError>;
    /// Stores `bytes` under `name` ([`blob_name_ok`]), replacing what was there: large
    /// state a process joining late starts from instead of the whole stream (the live fleet's
    /// snapshot). Durable once it returns.
    async fn put_blob(&self, name: &str, bytes: Vec<u8>) -> Result<(), BusError>;
    /// What `name` holds, if anything.
    async fn get_blob(&self, name: &str) -> Result<Option<Vec<u8>>, BusError>;
    /// Which backend, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
}

/// Whether `name` can name a blob: 1 to 64 lower-case letters, digits, `-` or `_`.
#[must_use]
pub fn blob_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_blob_name(name: &str) -> Result<(), BusError> {
    if blob_name_ok(name) {
        Ok(())
    } else {
        Err(BusError::Config(format!(
            "blob name {name:?}: 1 to 64 lower-case letters, digits, '-' or '_'"
        )))
    }
}

/// The directory of an embedded bus URL (`embedded`: `data_dir/bus`; `embedded:PATH`), or
/// `None` for another backend.
fn embedded_dir(url: &str, data_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    (url == "embedded" || url.starts_with("embedded:")).then(|| {
        url.strip_prefix("embedded:")
            .filter(|p| !p.is_empty())
            .map_or_else(|| data_dir.join("bus"), std::path::PathBuf::from)
    })
}

/// Opens the bus a URL names: `embedded` (a log under `data_dir/bus`) or `nats://…`.
pub async fn open(
    url: &str,
    data_dir: &std::path::Path,
    config: BusConfig,
) -> Result<Arc<dyn EventBus>, BusError> {
    if let Some(dir) = embedded_dir(url, data_dir) {
        return Ok(Arc::new(EmbeddedBus::open(&dir, config)?));
    }
    if url.starts_with("nats://") || url.starts_with("tls://") {
        return Ok(Arc::new(
            NatsBus::connect(url, &config.prefix.clone(), config).await?,
        ));
    }
    Err(BusError::Config(format!(
        "bus_url: expected \"embedded\" or nats://host:port, got {:?}",
        redact(url)
    )))
}

/// Opens the bus a URL names for an operator's look (`mobility events`): the embedded log is
/// opened read-only, so it works beside the `serve` process that writes it.
pub async fn open_read_only(
    url: &str,
    data_dir: &std::path::Path,
    config: BusConfig,
) -> Result<Arc<dyn EventBus>, BusError> {
    if let Some(dir) = embedded_dir(url, data_dir) {
        return Ok(Arc::new(EmbeddedBus::open_read_only(&dir)?));
    }
    open(url, data_dir, config).await
}

/// `url` with any password replaced by `***`, for messages.
#[must_use]
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The subject key of an event: its city, or `_`.
#[must_use]
pub fn subject_of(domain: Domain, city: Option<&CityId>) -> String {
    format!("{}.{}", domain.as_str(), city.map_or("_", CityId::as_str))
}

/// Moves deliveries past their attempts to the dead letters (acking them where they were),
/// and returns the rest. Shared by both backends so they behave the same.
pub(crate) async fn screen(
    bus: &dyn EventBus,
    spec: &ConsumerSpec,
    deliveries: Vec<Delivery>,
) -> Result<Vec<Delivery>, BusError> {
    let mut keep = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        if d.attempt <= spec.max_attempts {
            keep.push(d);
            continue;
        }
        dead_letter(
            bus,
            spec,
            &d.envelope,
            d.attempt - 1,
            codec::encode_envelope(&d.envelope)?,
        )
        .await?;
        d.ack().await?;
    }
    Ok(keep)
}

/// Publishes an event (or bytes that could not be decoded) to `dead_letter.<consumer>`.
pub(crate) async fn dead_letter(
    bus: &dyn EventBus,
    spec: &ConsumerSpec,
    envelope: &Envelope,
    attempts: u32,
    original: String,
) -> Result<(), BusError> {
    metrics::counter!("bus_dead_letters_total", "consumer" => spec.name.clone()).increment(1);
    tracing::warn!(
        consumer = %spec.name,
        subject = %envelope.subject,
        seq = envelope.seq,
        attempts,
        "event dead-lettered"
    );
    // A deterministic id: dead-lettering the same delivery twice stores it once.
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{}:{}:{}", spec.name, envelope.domain(), envelope.seq).as_bytes(),
    );
    let event = NewEvent::new(
        id,
        None,
        envelope.stored,
        DomainEvent::DeadLettered {
            consumer: spec.name.clone(),
            attempts,
            subject: envelope.subject.clone(),
            seq: envelope.seq,
            original,
        },
    );
    bus.publish(std::slice::from_ref(&event)).await.map(|_| ())
}

/// Wall-clock now, ms (the bus stamps when it stored an event).
#[must_use]
#[allow(clippy::cast_possible_truncation)]
pub fn wall_now() -> TimestampMs {
    TimestampMs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_subject_tokens() {
        assert!(valid_name("geofence-actions_1").is_ok());
        for bad in ["", "A", "a.b", "a b", "a*", &"x".repeat(65)] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backoff_repeats_its_last_step() {
        let s = ConsumerSpec::new("c", Domain::Booking);
        assert_eq!(s.backoff_after(1), Duration::from_secs(1));
        assert_eq!(s.backoff_after(3), Duration::from_secs(30));
        assert_eq!(s.backoff_after(9), Duration::from_secs(30));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("nats://u:secret@h:4222"), "nats://u:***@h:4222");
    }
}
