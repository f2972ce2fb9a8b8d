//! Two processes on one PostgreSQL and one NATS: each keeps a replica of the live fleet fed
//! from the bus, so a vehicle reported to either is found by nearby on both. Runs when
//! `MOBILITY_TEST_POSTGRES_URL` and `MOBILITY_TEST_NATS_URL` are set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use std::{io::Write, time::Duration};

use common::{ADMIN, TestApp, now_ms};
use reqwest::Method;
use serde_json::{Value, json};

async fn nearby_ids(app: &TestApp, lat: f64, lon: f64) -> Vec<String> {
    let body: Value = app
        .authed(
            Method::GET,
            &format!("/v1/vehicles/nearby?lat={lat}&lon={lon}&radius_m=300&state=any"),
            ADMIN,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["vehicles"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `app`'s nearby at (lat, lon) lists `id`; returns how long it took.
async fn found(app: &TestApp, id: &str, lat: f64, lon: f64) -> Duration {
    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if nearby_ids(app, lat, lon).await.iter().any(|v| v == id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{id} not found near {lat},{lon}"));
    started.elapsed()
}

async fn ingest(app: &TestApp, id: &str, ts: i64, lat: f64, lon: f64) {
    let r = app
        .authed(Method::POST, "/v1/ingest/telemetry", ADMIN)
        .json(&json!([{"vehicle_id": id, "ts": ts, "lat": lat, "lon": lon, "battery_pct": 80}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Deletes the streams a test's processes made on the shared NATS server.
async fn drop_streams(nats: &str, prefix: &str) {
    if let Ok(bus) =
        mobility_bus::NatsBus::connect(nats, prefix, mobility_bus::BusConfig::default()).await
    {
        let _ = bus.delete_streams().await;
    }
}

/// A process of a platform on the shared database `url` and the NATS prefix `prefix`, with
/// `adjust` applied to its settings.
async fn process(
    url: &str,
    nats: &str,
    prefix: &str,
    adjust: impl FnOnce(&mut mobility_server::Settings) + Send + 'static,
) -> TestApp {
    let (url, nats, prefix) = (url.to_owned(), nats.to_owned(), prefix.to_owned());
    TestApp::spawn_with(mobility_store::testsuite::postgres().await, move |s| {
        s.database_url = Some(url);
        s.bus_url = nats;
        s.bus_prefix = prefix;
        // JetStream reserves each stream's most bytes: keep the tests' small.
        s.bus_stream_max_mib = 8;
        adjust(s);
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_vehicle_reported_to_one_process_is_found_by_nearby_on_the_other() {
    let Ok(nats) = std::env::var("MOBILITY_TEST_NATS_URL") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: scale-out test (MOBILITY_TEST_NATS_URL is not set; e.g. nats://127.0.0.1:4222)"
        );
        return;
    };
    let Some(shared) = mobility_store::testsuite::postgres().await else {
        return;
    };
    // `t` and a v7 UUID, as the bus suite names its prefixes: a run that panicked leaves streams
    // the next run of that suite sweeps once they are an hour old.
    let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
    let spawn = || process(&shared.url, &nats, &prefix, |_| {});
    let a = spawn().await;
    let b = spawn().await;
    let r = a
        .authed(Method::PUT, "/v1/admin/cities/barcelona", ADMIN)
        .json(&json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Registered through one process after both started: the other learns of it from the
    // store when its first report arrives.
    let created: Value = a
        .authed(Method::POST, "/v1/admin/vehicles", ADMIN)
        .json(&json!({"city": "barcelona", "type": "scooter"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let t0 = now_ms();
    ingest(&a, &id, t0, 41.3870, 2.1700).await;
    let on_a = found(&a, &id, 41.3870, 2.1700).await;
    let on_b = found(&b, &id, 41.3870, 2.1700).await;
    // And the other way: a report to the second process moves the vehicle on the first.
    ingest(&b, &id, t0 + 1_000, 41.4010, 2.1900).await;
    let back_on_a = found(&a, &id, 41.4010, 2.1900).await;
    let _ = writeln!(
        std::io::stderr(),
        "scale-out: found on the ingesting process after {on_a:?}, on the other after {on_b:?}; back the other way after {back_on_a:?}"
    );
    assert!(
        !nearby_ids(&a, 41.3870, 2.1700).await.contains(&id),
        "the first process moved the vehicle away from where it was"
    );

    a.stop().await;
    b.stop().await;
    drop_streams(&nats, &prefix).await;
    shared.cleanup().await;
}

/// With several processes on one external broker, a vehicle's ack reaches whichever process
/// the broker hands it to; the process that sent the command (and waits for it) learns of the
/// decision from the store. And a rider books through one process and unlocks through the
/// other. Needs Mosquitto too (`MOBILITY_TEST_MQTT_URL`).
#[tokio::test]
async fn commands_and_bookings_work_through_either_process() {
    let (Ok(nats), Ok(mqtt)) = (
        std::env::var("MOBILITY_TEST_NATS_URL"),
        std::env::var("MOBILITY_TEST_MQTT_URL"),
    ) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: scale-out command test (needs MOBILITY_TEST_NATS_URL and MOBILITY_TEST_MQTT_URL)"
        );
        return;
    };
    let Some(shared) = mobility_store::testsuite::postgres().await else {
        return;
    };
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("t{unique}");
    let spawn = |who: &'static str| {
        let (url, nats, mqtt, prefix, unique) = (
            shared.url.clone(),
            nats.clone(),
            mqtt.clone(),
            prefix.clone(),
            unique.clone(),
        );
        async move {
            TestApp::spawn_with(mobility_store::testsuite::postgres().await, move |s| {
                s.database_url = Some(url);
                s.bus_url = nats;
                s.bus_prefix = prefix;
                // JetStream reserves each stream's most bytes: keep the tests' small.
                s.bus_stream_max_mib = 8;
                s.mqtt_url = Some(mqtt);
                s.mqtt_client_id = format!("mobility-test-{who}-{unique}");
                s.mqtt_share_group = format!("test-{unique}");
                s.mqtt_session_expiry_s = 0;
                // One key for access tokens: a rider signed in through one process is known
                // to the other.
                s.jwt_secret = Some(format!("scale-out-test-{unique}"));
                s.rate_limit_per_s = 10_000;
            })
            .await
            .unwrap()
        }
    };
    let a = spawn("a").await;
    let b = spawn("b").await;
    let r = a
        .authed(Method::PUT, "/v1/admin/cities/barcelona", ADMIN)
        .json(&json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let creds: Value = a
        .authed(Method::POST, "/v1/admin/vehicles", ADMIN)
        .json(&json!({"city": "barcelona", "type": "scooter"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parsed = url::Url::parse(&mqtt).unwrap();
    let broker: std::net::SocketAddr = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(1883)
    )
    .parse()
    .unwrap();
    let mut v = crate::commands::vehicle(broker, &creds, crate::commands::Reply::Ok).await;
    // Both processes' subscriptions may still be on their way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Eight commands, each sent through one process or the other: the broker splits the acks
    // between them, so some are decided by the process that did not send them. Each answer
    // comes back acked, long before the 30 s the command may wait.
    for i in 0..8 {
        // Two through each in turn: were the broker to hand acks out strictly in turn, the
        // second of each pair is decided by the other process.
        let through = if (i / 2) % 2 == 0 { &a } else { &b };
        let started = tokio::time::Instant::now();
        let (status, c) = crate::commands::command(
            through,
            &v.id,
            json!({"command": "ring", "wait": true, "timeout_s": 30}),
        )
        .await;
        assert_eq!(status, 200, "{c}");
        assert_eq!(c["state"], "acked", "{c}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "command {i} waited {:?} for an ack that another process took",
            started.elapsed()
        );
        assert!(v.received.recv().await.is_some());
    }

    // A rider books through one process and unlocks through the other.
    ingest(&a, &v.id, now_ms(), 41.3870, 2.1700).await;
    let r = a
        .authed(Method::POST, "/v1/vehicles/events", ADMIN)
        .json(&json!({"changes": [{"vehicle_id": v.id, "event_types": ["provider_drop_off"], "vehicle_state": "available"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The other process mirrors the state from the lifecycle stream.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let body: Value = b
                .authed(
                    Method::GET,
                    "/v1/vehicles/nearby?lat=41.3870&lon=2.1700&radius_m=300",
                    ADMIN,
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["vehicles"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|x| x["id"] == v.id.as_str()))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the other process sees the vehicle available");
    let signed: Value = a
        .client
        .post(a.url("/v1/auth/signup"))
        .json(&json!({"email": format!("rider-{unique}@example.com"), "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rider = signed["access_token"].as_str().unwrap().to_owned();
    let booked = b
        .authed(Method::POST, "/v1/bookings", &rider)
        .json(&json!({"vehicle_id": v.id}))
        .send()
        .await
        .unwrap();
    let status = booked.status();
    let booking: Value = booked.json().await.unwrap();
    assert_eq!(status, 201, "{booking}");
    let unlocked = a
        .authed(
            Method::POST,
            &format!("/v1/bookings/{}/unlock", booking["id"].as_str().unwrap()),
            &rider,
        )
        .send()
        .await
        .unwrap();
    let status = unlocked.status();
    let trip: Value = unlocked.json().await.unwrap();
    assert_eq!(status, 200, "{trip}");
    assert_eq!(trip["state"], "on_trip", "{trip}");
    a.stop().await;
    b.stop().await;
    drop_streams(&nats, &prefix).await;
    shared.cleanup().await;
}

/// A process that joins late starts from the fleet's snapshot on the bus and follows the
/// stream from the sequence after it. The `fleet-snapshot` job writes a real one; then a
/// snapshot saying the vehicle was elsewhere, earlier, and covering the whole stream so far,
/// is what the joiner shows: it did not read the stream's past (where a newer report is).
#[tokio::test]
async fn a_process_joining_late_starts_from_the_fleets_snapshot_on_the_bus() {
    let Ok(nats) = std::env::var("MOBILITY_TEST_NATS_URL") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: late-join test (MOBILITY_TEST_NATS_URL is not set; e.g. nats://127.0.0.1:4222)"
        );
        return;
    };
    let Some(shared) = mobility_store::testsuite::postgres().await else {
        return;
    };
    let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
    let spawn = || {
        process(&shared.url, &nats, &prefix, |s| {
            s.replica_snapshot_interval_s = 1;
        })
    };
    let a = spawn().await;
    let bus = a.bus.clone();
    let r = a
        .authed(Method::PUT, "/v1/admin/cities/barcelona", ADMIN)
        .json(&json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = a
        .authed(Method::POST, "/v1/admin/vehicles", ADMIN)
        .json(&json!({"city": "barcelona", "type": "scooter"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let vehicle = mobility_core::VehicleId::parse(&id).unwrap();
    let t0 = now_ms();
    ingest(&a, &id, t0, 41.3870, 2.1700).await;
    found(&a, &id, 41.3870, 2.1700).await;
    // The job's snapshot: the vehicle where it reported, covering the stream.
    let written = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Some(bytes) = bus.get_blob("fleet").await.unwrap()
                && let Some((covers, _, reports)) = mobility_live::replica::decode_snapshot(&bytes)
                && reports
                    .iter()
                    .any(|t| t.vehicle_id == vehicle && t.at.0 == t0)
            {
                return covers;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the fleet-snapshot job writes the fleet to the bus");
    assert!(written > 0);
    a.stop().await;
    // Now the snapshot says: earlier, elsewhere, and the stream so far is covered.
    let last = bus
        .stream_info(mobility_core::Domain::Telemetry)
        .await
        .unwrap()
        .last_seq;
    let earlier = mobility_core::Telemetry {
        vehicle_id: vehicle,
        at: mobility_core::TimestampMs(t0 - 60_000),
        position: mobility_core::LatLon::new(41.4010, 2.1900).unwrap(),
        battery: None,
        speed_m_s: None,
        heading_deg: None,
        odometer_m: None,
        locked: None,
        error_codes: vec![],
    };
    bus.put_blob(
        "fleet",
        mobility_live::replica::encode_snapshot(last, mobility_core::TimestampMs(t0), &[earlier]),
    )
    .await
    .unwrap();
    let b = spawn().await;
    found(&b, &id, 41.4010, 2.1900).await;
    assert!(
        !nearby_ids(&b, 41.3870, 2.1700).await.contains(&id),
        "the joiner read the stream's past instead of starting after the snapshot"
    );
    b.stop().await;
    drop_streams(&nats, &prefix).await;
    shared.cleanup().await;
}
