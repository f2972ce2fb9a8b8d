//! The conformance cases every [`EventBus`] backend passes, and the helpers that hand each
//! case a fresh bus: [`embedded`] (a temp directory) and [`nats`] (a unique stream prefix on
//! the server `MOBILITY_TEST_NATS_URL` names, deleted afterwards; without the variable the
//! NATS cases print `SKIPPED` and pass). [`conformance_tests!`] instantiates every case for
//! one backend.

use std::{sync::Arc, time::Duration};

use mobility_core::{CityId, Domain, DomainEvent, NewEvent, TimestampMs};

use crate::{
    BusConfig, ConsumerSpec, EmbeddedBus, EventBus, NatsBus, Retention, StartAt, wall_now,
};

/// A bus for one test, cleaned up by [`Harness::close`].
#[derive(Debug)]
pub struct Harness {
    /// The bus.
    pub bus: Arc<dyn EventBus>,
    nats: Option<NatsBus>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// Deletes what the test left on a shared server.
    pub async fn close(self) {
        if let Some(n) = self.nats {
            let _ = n.delete_streams().await;
        }
    }
}

/// The retention the cases use: small, so retention is seen within a test.
#[must_use]
pub fn test_config() -> BusConfig {
    BusConfig {
        region: "test".to_owned(),
        prefix: "mobility".to_owned(),
        retention: vec![
            (
                Domain::Telemetry,
                Retention {
                    max_age: Duration::from_secs(3600),
                    max_bytes: 512 * 1024,
                },
            ),
            (
                Domain::Vehicle,
                Retention {
                    max_age: Duration::from_secs(1),
                    max_bytes: 1 << 30,
                },
            ),
            // Everything else: an hour, so streams a crashed test leaves behind empty soon.
            (
                Domain::Booking,
                Retention {
                    max_age: Duration::from_secs(3600),
                    max_bytes: 1 << 30,
                },
            ),
        ],
    }
}

/// A fresh embedded bus in a temp directory.
pub async fn embedded() -> Option<Harness> {
    let dir = tempfile::tempdir().ok()?;
    let bus = EmbeddedBus::open(dir.path(), test_config()).ok()?;
    Some(Harness {
        bus: Arc::new(bus),
        nats: None,
        _dir: Some(dir),
    })
}

/// A bus on the NATS server `MOBILITY_TEST_NATS_URL` names, under a unique prefix; `None`
/// (after a `SKIPPED` line) when the variable is unset.
pub async fn nats() -> Option<Harness> {
    let Ok(url) = std::env::var("MOBILITY_TEST_NATS_URL") else {
        eprintln!(
            "SKIPPED: NATS bus case (set MOBILITY_TEST_NATS_URL, e.g. nats://127.0.0.1:4222)"
        );
        return None;
    };
    let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
    let bus = NatsBus::connect(&url, &prefix, test_config())
        .await
        .unwrap_or_else(|e| panic!("MOBILITY_TEST_NATS_URL is set but: {e}"));
    sweep_stale_test_streams(&bus).await;
    Some(Harness {
        bus: Arc::new(bus.clone()),
        nats: Some(bus),
        _dir: None,
    })
}

/// Deletes streams that earlier test runs left behind (a case that panicked before its
/// clean-up): test prefixes are `t` + a v7 UUID, whose first 48 bits are its creation time,
/// so only streams over an hour old go, never those of a run in progress.
async fn sweep_stale_test_streams(bus: &NatsBus) {
    use futures_util::StreamExt;
    let horizon_ms = u64::try_from(wall_now().0)
        .unwrap_or(0)
        .saturating_sub(3_600_000);
    let mut names = bus.js.stream_names();
    let mut stale = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        // A prefix's streams (`T<uuid>_<DOMAIN>`) and its blobs' (`OBJ_t<uuid>_blobs`).
        let bare = name.strip_prefix("OBJ_").unwrap_or(&name);
        let Some(hex) = bare
            .strip_prefix('T')
            .or_else(|| bare.strip_prefix('t'))
            .and_then(|r| r.get(..12))
        else {
            continue;
        };
        let is_test = bare.len() > 34 && bare.as_bytes()[33] == b'_';
        if let Ok(ms) = u64::from_str_radix(hex, 16)
            && is_test
            && ms < horizon_ms
        {
            stale.push(name);
        }
    }
    for name in stale {
        let _ = bus.js.delete_stream(&name).await;
    }
}

fn city(s: &str) -> CityId {
    CityId::parse(s).expect("city")
}

/// A booking event numbered `n` in `c`.
#[must_use]
pub fn booking(n: u64, c: &str) -> NewEvent {
    NewEvent::new(
        uuid::Uuid::now_v7(),
        Some(city(c)),
        TimestampMs(i64::try_from(n).unwrap_or(0)),
        DomainEvent::BookingChanged {
            booking: format!("b{n}"),
            user: "u".into(),
            vehicle: mobility_core::VehicleId::from_uuid(uuid::Uuid::from_u128(1)),
            from: None,
            to: "reserved".into(),
            at: TimestampMs(i64::try_from(n).unwrap_or(0)),
        },
    )
}

fn number(e: &crate::Envelope) -> u64 {
    match &e.event {
        DomainEvent::BookingChanged { booking, .. } => {
            booking.trim_start_matches('b').parse().expect("number")
        }
        other => panic!("not a booking event: {other:?}"),
    }
}

fn spec(name: &str) -> ConsumerSpec {
    ConsumerSpec {
        ack_wait: Duration::from_secs(1),
        backoff: vec![Duration::from_millis(50)],
        ..ConsumerSpec::new(name, Domain::Booking)
    }
}

/// Takes `n` deliveries (or fails after `within`).
async fn take(
    c: &mut Box<dyn crate::Consumer>,
    n: usize,
    within: Duration,
) -> Vec<crate::Delivery> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !left.is_zero(),
            "got {} of {n} deliveries in {within:?}",
            got.len()
        );
        got.extend(
            c.fetch(n - got.len(), left.min(Duration::from_millis(500)))
                .await
                .expect("fetch"),
        );
    }
    got
}

/// Events of one stream come in publish order with increasing sequences; a consumer of one
/// city sees only that city's, in order.
pub async fn order_per_subject(h: Harness) {
    let events: Vec<NewEvent> = (1..=200)
        .map(|n| booking(n, if n % 3 == 0 { "bcn" } else { "mad" }))
        .collect();
    let published = h.bus.publish(&events).await.expect("publish");
    assert!(published.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(published.iter().all(|p| !p.duplicate));
    let mut all = h.bus.consumer(spec("all")).await.expect("consumer");
    let got = take(&mut all, 200, Duration::from_secs(10)).await;
    let numbers: Vec<u64> = got.iter().map(|d| number(&d.envelope)).collect();
    assert_eq!(numbers, (1..=200).collect::<Vec<_>>());
    assert!(
        got.windows(2)
            .all(|w| w[0].envelope.seq < w[1].envelope.seq)
    );
    assert_eq!(got[0].envelope.subject, "booking.mad");
    assert_eq!(got[0].envelope.region, "test");
    for d in got {
        d.ack().await.expect("ack");
    }
    let mut bcn = h
        .bus
        .consumer(ConsumerSpec {
            city: Some(city("bcn")),
            ..spec("bcn-only")
        })
        .await
        .expect("consumer");
    let got = take(&mut bcn, 66, Duration::from_secs(10)).await;
    let numbers: Vec<u64> = got.iter().map(|d| number(&d.envelope)).collect();
    assert_eq!(numbers, (1..=66).map(|n| n * 3).collect::<Vec<_>>());
    assert!(
        bcn.fetch(10, Duration::from_millis(200))
            .await
            .expect("fetch")
            .is_empty()
    );
    h.close().await;
}

/// A consumer that dies before acking gets the events again (and not those it acked); the
/// redelivery says which attempt it is.
pub async fn redelivery_after_a_consumer_dies(h: Harness) {
    let events: Vec<NewEvent> = (1..=10).map(|n| booking(n, "bcn")).collect();
    h.bus.publish(&events).await.expect("publish");
    {
        let mut c = h.bus.consumer(spec("worker")).await.expect("consumer");
        let got = take(&mut c, 10, Duration::from_secs(10)).await;
        for d in got.into_iter().take(4) {
            d.ack().await.expect("ack");
        }
        // Dies here: six delivered, never acked.
    }
    let mut again = h.bus.consumer(spec("worker")).await.expect("reopen");
    let got = take(&mut again, 6, Duration::from_secs(10)).await;
    let mut numbers: Vec<u64> = got.iter().map(|d| number(&d.envelope)).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, vec![5, 6, 7, 8, 9, 10]);
    assert!(got.iter().all(|d| d.attempt == 2), "{got:?}");
    for d in got {
        d.ack().await.expect("ack");
    }
    assert!(
        again
            .fetch(10, Duration::from_millis(1_500))
            .await
            .expect("fetch")
            .is_empty()
    );
    assert_eq!(again.lag().await.expect("lag"), 0);
    h.close().await;
}

/// The same id published twice is stored once.
pub async fn deduplication_by_id(h: Harness) {
    let e = booking(1, "bcn");
    let first = h
        .bus
        .publish(std::slice::from_ref(&e))
        .await
        .expect("publish");
    let second = h
        .bus
        .publish(&[e.clone(), booking(2, "bcn")])
        .await
        .expect("publish");
    assert!(!first[0].duplicate);
    assert!(second[0].duplicate);
    assert_eq!(second[0].seq, first[0].seq);
    assert!(!second[1].duplicate);
    let all = h
        .bus
        .read(Domain::Booking, None, StartAt::First, 100)
        .await
        .expect("read");
    assert_eq!(all.iter().map(number).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(
        h.bus
            .stream_info(Domain::Booking)
            .await
            .expect("info")
            .messages,
        2
    );
    h.close().await;
}

/// Reading from a time gives the events stored since, the same ones every time; a consumer
/// reset to that time gets them again.
pub async fn replay_from_a_time(h: Harness) {
    let before: Vec<NewEvent> = (1..=20).map(|n| booking(n, "bcn")).collect();
    h.bus.publish(&before).await.expect("publish");
    let mut c = h.bus.consumer(spec("replayed")).await.expect("consumer");
    for d in take(&mut c, 20, Duration::from_secs(10)).await {
        d.ack().await.expect("ack");
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let t = wall_now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let after: Vec<NewEvent> = (21..=50).map(|n| booking(n, "bcn")).collect();
    h.bus.publish(&after).await.expect("publish");
    for d in take(&mut c, 30, Duration::from_secs(10)).await {
        d.ack().await.expect("ack");
    }
    let once = h
        .bus
        .read(Domain::Booking, None, StartAt::Time(t), 1000)
        .await
        .expect("read");
    let twice = h
        .bus
        .read(Domain::Booking, None, StartAt::Time(t), 1000)
        .await
        .expect("read");
    assert_eq!(
        once.iter().map(number).collect::<Vec<_>>(),
        (21..=50).collect::<Vec<_>>()
    );
    assert_eq!(once, twice);
    assert!(once.iter().all(|e| e.stored >= t));
    // From a sequence, too.
    let from_seq = h
        .bus
        .read(Domain::Booking, None, StartAt::Seq(once[5].seq), 1000)
        .await
        .expect("read");
    assert_eq!(from_seq.len(), 25);
    // The consumer, moved back to the time, gets the same events again.
    drop(c);
    h.bus
        .reset_consumer(spec("replayed"), StartAt::Time(t))
        .await
        .expect("reset");
    let mut c = h.bus.consumer(spec("replayed")).await.expect("consumer");
    let again = take(&mut c, 30, Duration::from_secs(10)).await;
    assert_eq!(
        again.iter().map(|d| d.envelope.clone()).collect::<Vec<_>>(),
        once
    );
    h.close().await;
}

/// A stream over its size drops its oldest events; one past its age drops them all.
pub async fn retention_by_size_and_age(h: Harness) {
    // Telemetry keeps 512 KiB in the test config: publish about 4 MiB.
    let report = mobility_core::Telemetry {
        vehicle_id: mobility_core::VehicleId::from_uuid(uuid::Uuid::from_u128(9)),
        at: TimestampMs(1),
        position: mobility_core::LatLon::new(41.39, 2.17).expect("position"),
        battery: None,
        speed_m_s: None,
        heading_deg: None,
        odometer_m: None,
        locked: None,
        error_codes: vec![],
    };
    let batch = DomainEvent::TelemetryAccepted {
        reports: vec![report; 20],
    };
    for round in 0..20 {
        let events: Vec<NewEvent> = (0..20)
            .map(|_| {
                NewEvent::new(
                    uuid::Uuid::now_v7(),
                    Some(city("bcn")),
                    TimestampMs(round),
                    batch.clone(),
                )
            })
            .collect();
        h.bus.publish(&events).await.expect("publish");
    }
    let info = h.bus.stream_info(Domain::Telemetry).await.expect("info");
    assert_eq!(info.last_seq, 400);
    assert!(info.first_seq > 1, "{info:?}");
    assert!(info.bytes <= 512 * 1024 + 128 * 1024, "{info:?}");
    let last = h
        .bus
        .read(Domain::Telemetry, None, StartAt::Seq(400), 10)
        .await
        .expect("read");
    assert_eq!(last.len(), 1);
    let kept = h
        .bus
        .read(Domain::Telemetry, None, StartAt::First, 10_000)
        .await
        .expect("read");
    assert_eq!(kept.first().map(|e| e.seq), Some(info.first_seq));
    // Vehicle events keep a second in the test config.
    let signal = |n: u128| {
        NewEvent::new(
            uuid::Uuid::now_v7(),
            Some(city("bcn")),
            TimestampMs(1),
            DomainEvent::VehicleReported {
                vehicle: mobility_core::VehicleId::from_uuid(uuid::Uuid::from_u128(n)),
                at: TimestampMs(1),
                signal: mobility_core::VehicleSignal::Offline,
            },
        )
    };
    h.bus
        .publish(&(1..=10).map(signal).collect::<Vec<_>>())
        .await
        .expect("publish");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = h.bus.stream_info(Domain::Vehicle).await.expect("info");
        if info.messages == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "vehicle events older than their age are still kept: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = h.bus.publish(&[signal(11)]).await.expect("publish");
    assert_eq!(p[0].seq, 11);
    h.close().await;
}

/// An event that fails its attempts goes to the dead letters and no longer blocks.
pub async fn dead_lettering(h: Harness) {
    h.bus
        .publish(&[booking(1, "bcn"), booking(2, "bcn")])
        .await
        .expect("publish");
    let mut c = h
        .bus
        .consumer(ConsumerSpec {
            max_attempts: 2,
            ..spec("picky")
        })
        .await
        .expect("consumer");
    let mut attempts = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut handled = Vec::new();
    let mut dead = Vec::new();
    while tokio::time::Instant::now() < deadline && dead.is_empty() {
        for d in c
            .fetch(10, Duration::from_millis(300))
            .await
            .expect("fetch")
        {
            if number(&d.envelope) == 1 {
                attempts += 1;
                assert!(d.attempt <= 2, "delivered past its attempts: {d:?}");
                d.nak().await.expect("nak");
            } else {
                handled.push(d.envelope.seq);
                d.ack().await.expect("ack");
            }
        }
        dead = h
            .bus
            .read(Domain::DeadLetter, None, StartAt::First, 10)
            .await
            .expect("read");
    }
    assert_eq!(handled.len(), 1, "the next event is not blocked");
    assert_eq!(attempts, 2);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].subject, "dead_letter.picky");
    match &dead[0].event {
        DomainEvent::DeadLettered {
            consumer,
            subject,
            attempts,
            original,
            ..
        } => {
            assert_eq!(consumer, "picky");
            assert_eq!(subject, "booking.bcn");
            assert_eq!(*attempts, 2);
            assert!(original.contains("\"b1\""), "{original}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        c.fetch(10, Duration::from_millis(1_500))
            .await
            .expect("fetch")
            .is_empty()
    );
    h.close().await;
}

/// Lag counts what a consumer has not acked.
pub async fn consumer_lag(h: Harness) {
    h.bus
        .publish(&(1..=10).map(|n| booking(n, "bcn")).collect::<Vec<_>>())
        .await
        .expect("publish");
    let mut c = h.bus.consumer(spec("lagging")).await.expect("consumer");
    assert_eq!(c.lag().await.expect("lag"), 10);
    let got = take(&mut c, 10, Duration::from_secs(10)).await;
    for d in got {
        d.ack().await.expect("ack");
    }
    // JetStream counts acks as they arrive; give it a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while c.lag().await.expect("lag") != 0 {
        assert!(tokio::time::Instant::now() < deadline, "lag stays above 0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        h.bus.consumers(Domain::Booking).await.expect("list"),
        vec!["lagging".to_owned()]
    );
    h.bus
        .delete_consumer(Domain::Booking, "lagging")
        .await
        .expect("delete");
    assert!(
        h.bus
            .consumers(Domain::Booking)
            .await
            .expect("list")
            .is_empty()
    );
    h.close().await;
}

/// Instantiates every conformance case for one backend: `conformance_tests!(embedded)`.
/// A subscription from now sees only later events, in order, as they are published; one of a
/// city sees only that city's; one from a sequence starts there.
pub async fn subscriptions_follow_the_stream(h: Harness) {
    h.bus
        .publish(&(1..=10).map(|n| booking(n, "bcn")).collect::<Vec<_>>())
        .await
        .expect("publish");
    let mut all = h
        .bus
        .subscribe(Domain::Booking, None, StartAt::New)
        .await
        .expect("subscribe");
    let mut mad = h
        .bus
        .subscribe(Domain::Booking, Some(&city("mad")), StartAt::New)
        .await
        .expect("subscribe");
    // Nothing yet: it waits, then says so.
    assert!(
        all.next(10, Duration::from_millis(50))
            .await
            .expect("next")
            .is_empty()
    );
    let later: Vec<NewEvent> = (11..=40)
        .map(|n| booking(n, if n % 2 == 0 { "mad" } else { "bcn" }))
        .collect();
    let published = h.bus.publish(&later).await.expect("publish");
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 30 && tokio::time::Instant::now() < deadline {
        seen.extend(all.next(7, Duration::from_millis(500)).await.expect("next"));
    }
    assert_eq!(
        seen.iter().map(number).collect::<Vec<_>>(),
        (11..=40).collect::<Vec<_>>()
    );
    let mut seen_mad = Vec::new();
    while seen_mad.len() < 15 && tokio::time::Instant::now() < deadline {
        seen_mad.extend(
            mad.next(100, Duration::from_millis(500))
                .await
                .expect("next"),
        );
    }
    assert_eq!(
        seen_mad.iter().map(number).collect::<Vec<_>>(),
        (11..=40).filter(|n| n % 2 == 0).collect::<Vec<_>>()
    );
    // And from a sequence: the last five.
    let mut tail = h
        .bus
        .subscribe(Domain::Booking, None, StartAt::Seq(published[25].seq))
        .await
        .expect("subscribe");
    let mut last = Vec::new();
    while last.len() < 5 && tokio::time::Instant::now() < deadline {
        last.extend(
            tail.next(100, Duration::from_millis(500))
                .await
                .expect("next"),
        );
    }
    assert_eq!(
        last.iter().map(number).collect::<Vec<_>>(),
        (36..=40).collect::<Vec<_>>()
    );
    h.close().await;
}

/// A blob is stored and read back whole (several MiB: NATS keeps it in chunks), replaced by
/// the next under its name, absent until stored; a bad name is refused.
pub async fn blobs_are_replaced_whole(h: Harness) {
    assert_eq!(h.bus.get_blob("fleet").await.expect("get"), None);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    h.bus.put_blob("fleet", big.clone()).await.expect("put");
    assert_eq!(h.bus.get_blob("fleet").await.expect("get"), Some(big));
    h.bus
        .put_blob("fleet", b"smaller".to_vec())
        .await
        .expect("put");
    h.bus.put_blob("other", b"x".to_vec()).await.expect("put");
    assert_eq!(
        h.bus.get_blob("fleet").await.expect("get").as_deref(),
        Some(&b"smaller"[..])
    );
    assert!(h.bus.put_blob("../escape", vec![1]).await.is_err());
    assert!(h.bus.get_blob("").await.is_err());
    h.close().await;
}

#[macro_export]
macro_rules! conformance_tests {
    ($backend:ident) => {
        mod $backend {
            $crate::conformance_tests!(@cases $backend,
                order_per_subject,
                redelivery_after_a_consumer_dies,
                deduplication_by_id,
                replay_from_a_time,
                retention_by_size_and_age,
                dead_lettering,
                consumer_lag,
                subscriptions_follow_the_stream,
                blobs_are_replaced_whole,
            );
        }
    };
    (@cases $backend:ident, $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(h) = $crate::testsuite::$backend().await {
                    $crate::testsuite::$case(h).await;
                }
            }
        )*
    };
}
