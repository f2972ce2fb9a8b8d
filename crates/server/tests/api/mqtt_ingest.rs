//! Vehicles over MQTT end to end: registered through the API, logged in with the credentials it
//! returned, telemetry (JSON and binary) visible through the API. Against the embedded broker,
//! and against the external broker (Mosquitto) when `MOBILITY_TEST_MQTT_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use std::{io::Write, net::SocketAddr, time::Duration};

use common::{ADMIN, TestApp, now_ms};
use mobility_core::{BatteryPct, LatLon, TimestampMs, VehicleId};
use mobility_fleet::Telemetry;
use reqwest::Method;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

async fn registered_vehicle(app: &TestApp) -> Value {
    let r = app
        .authed(Method::PUT, "/v1/admin/cities/barcelona", ADMIN)
        .json(&json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .authed(Method::POST, "/v1/admin/vehicles", ADMIN)
        .json(&json!({"city": "barcelona", "type": "scooter"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

fn vehicle_client(addr: SocketAddr, creds: &Value) -> (AsyncClient, rumqttc::EventLoop) {
    let m = &creds["mqtt"];
    let mut o = MqttOptions::new(
        m["client_id"].as_str().unwrap(),
        addr.ip().to_string(),
        addr.port(),
    );
    o.set_credentials(
        m["username"].as_str().unwrap(),
        m["password"].as_str().unwrap(),
    );
    o.set_max_packet_size(2 << 20, 2 << 20); // room for the oversize test message
    AsyncClient::new(o, 16)
}

/// Polls the vehicle's event loop in the background (it must run for publishes to go out).
fn drive(mut eventloop: rumqttc::EventLoop) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Ok(_) => {}
            }
        }
    })
}

/// Waits until the API shows the vehicle at `ts`.
async fn until_reported(app: &TestApp, id: &str, ts: i64) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let v: Value = app
                .authed(Method::GET, &format!("/v1/vehicles/{id}"), ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["reported_at_ms"] == ts {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("telemetry visible through the API")
}

#[tokio::test]
async fn embedded_broker_feeds_json_and_binary_telemetry_into_the_fleet() {
    let app = TestApp::spawn(mobility_store::testsuite::sqlite().await)
        .await
        .unwrap();
    let creds = registered_vehicle(&app).await;
    let id = creds["id"].as_str().unwrap().to_owned();
    let (client, eventloop) = vehicle_client(app.mqtt_addr.unwrap(), &creds);
    let driver = drive(eventloop);
    let topic = creds["mqtt"]["telemetry_topic"].as_str().unwrap();

    let ts = now_ms();
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            json!({"ts": ts, "lat": 41.39, "lon": 2.17, "battery_pct": 55}).to_string(),
        )
        .await
        .unwrap();
    let v = until_reported(&app, &id, ts).await;
    assert_eq!(
        (v["lat"].as_f64(), v["battery_pct"].as_u64()),
        (Some(41.39), Some(55))
    );

    let t = Telemetry {
        vehicle_id: VehicleId::parse(&id).unwrap(),
        at: TimestampMs(ts + 1_000),
        position: LatLon::new(41.40, 2.18).unwrap(),
        battery: Some(BatteryPct::new(54).unwrap()),
        speed_m_s: Some(3.5),
        heading_deg: None,
        odometer_m: None,
        locked: Some(false),
        error_codes: vec![],
    };
    let bin = mobility_live::ingest::encode_binary(&[t]);
    client
        .publish(format!("{topic}/bin"), QoS::AtLeastOnce, false, bin)
        .await
        .unwrap();
    let v = until_reported(&app, &id, ts + 1_000).await;
    assert_eq!(
        (
            v["lat"].as_f64(),
            v["speed_mps"].as_f64(),
            v["locked"].as_bool()
        ),
        (Some(41.40), Some(3.5), Some(false))
    );

    // An older report over MQTT is stale too, and garbage is counted, not fatal.
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            json!({"ts": ts - 10, "lat": 41.0, "lon": 2.0}).to_string(),
        )
        .await
        .unwrap();
    client
        .publish(topic, QoS::AtLeastOnce, false, "not json")
        .await
        .unwrap();
    client
        .publish(topic, QoS::AtLeastOnce, false, vec![b' '; 300 * 1024])
        .await
        .unwrap();
    let metrics = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = app.get("/metrics").await.text().await.unwrap();
            if m.contains(r#"telemetry_rejected_total{source="mqtt",reason="malformed"}"#)
                && m.contains(r#"telemetry_rejected_total{source="mqtt",reason="stale"}"#)
                && m.contains(r#"telemetry_rejected_total{source="mqtt",reason="oversize"}"#)
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let metrics = match metrics {
        Ok(m) => m,
        Err(_) => {
            let m = app.get("/metrics").await.text().await.unwrap();
            panic!(
                "rejections not counted: {}",
                m.lines()
                    .filter(|l| l.contains("telemetry_") || l.contains("mqtt_"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    };
    assert!(metrics.contains(r#"mqtt_logins_total{outcome="accepted"}"#));
    assert!(
        metrics.contains(r#"telemetry_applied_total{source="mqtt"}"#),
        "applied reports are counted"
    );
    assert!(metrics.contains(r#"mqtt_messages_total{channel="telemetry_bin"}"#));
    let connected = metrics.lines().find_map(|l| {
        l.strip_prefix("mqtt_vehicles_connected ")?
            .parse::<f64>()
            .ok()
    });
    assert!(
        connected.is_some_and(|n| n >= 1.0),
        "the broker's connected gauge: {connected:?}"
    );
    let v: Value = app
        .authed(Method::GET, &format!("/v1/vehicles/{id}"), ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["lat"], 41.40, "the stale report did not overwrite");
    // Raw history keeps every valid report, the stale one included.
    let history = mobility_live::live_log::read_telemetry(
        &app.data_dir().join("live"),
        &app.data_dir().join("history"),
    )
    .unwrap();
    let kept: Vec<i64> = history.iter().map(|t| t.at.0).collect();
    assert!(
        kept.contains(&ts) && kept.contains(&(ts + 1_000)) && kept.contains(&(ts - 10)),
        "{kept:?}"
    );
    driver.abort();
    app.stop().await;
}

#[tokio::test]
async fn external_broker_mode_ingests_from_mosquitto() {
    let Ok(url) = std::env::var("MOBILITY_TEST_MQTT_URL") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: external MQTT broker test (MOBILITY_TEST_MQTT_URL is not set; e.g. mqtt://127.0.0.1:1883)"
        );
        return;
    };
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let app = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.mqtt_url = Some(url.clone());
        s.mqtt_client_id = format!("mobility-test-{unique}");
        s.mqtt_share_group = format!("test-{unique}");
    })
    .await
    .unwrap();
    assert_eq!(app.mqtt_addr, None, "no embedded broker in external mode");
    let creds = registered_vehicle(&app).await;
    let id = creds["id"].as_str().unwrap().to_owned();
    let parsed = url::Url::parse(&url).unwrap();
    let broker: SocketAddr = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(1883)
    )
    .parse()
    .unwrap();
    let (client, eventloop) = vehicle_client(broker, &creds);
    let driver = drive(eventloop);
    let topic = creds["mqtt"]["telemetry_topic"]
        .as_str()
        .unwrap()
        .to_owned();
    // The platform's shared subscription may still be on its way: publish until it lands.
    let mut ts = now_ms();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            ts += 1;
            client
                .publish(
                    &topic,
                    QoS::AtLeastOnce,
                    false,
                    json!({"ts": ts, "lat": 41.39, "lon": 2.17}).to_string(),
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let v: Value = app
                .authed(Method::GET, &format!("/v1/vehicles/{id}"), ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["lat"] == 41.39 {
                return v;
            }
        }
    })
    .await
    .expect("telemetry through Mosquitto reached the fleet");
    assert_eq!(found["state"], "removed");
    driver.abort();
    app.stop().await;
}

/// Issue 18's bug, shown fixed: a broker hands a shared subscription's messages to every
/// session of the group, connected or not. A process that left on purpose (unsubscribed on
/// shutdown) and one that vanished (its MQTT 5 session expired) take no share of the traffic:
/// every report reaches the process that remains.
#[tokio::test]
async fn processes_that_left_the_share_group_take_none_of_its_traffic() {
    let Ok(url) = std::env::var("MOBILITY_TEST_MQTT_URL") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: external MQTT broker test (MOBILITY_TEST_MQTT_URL is not set; e.g. mqtt://127.0.0.1:1883)"
        );
        return;
    };
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let group = format!("test-{unique}");
    let parsed = url::Url::parse(&url).unwrap();
    let (host, port) = (
        parsed.host_str().unwrap().to_owned(),
        parsed.port().unwrap_or(1883),
    );
    let app = |who: &'static str| {
        let (url, group, unique) = (url.clone(), group.clone(), unique.clone());
        async move {
            TestApp::spawn_with(mobility_store::testsuite::sqlite().await, move |s| {
                s.mqtt_url = Some(url);
                s.mqtt_client_id = format!("mobility-test-{who}-{unique}");
                s.mqtt_share_group = group;
                s.mqtt_session_expiry_s = 1;
            })
            .await
            .unwrap()
        }
    };
    let stays = app("stays").await;

    // A process that vanishes: the platform's own client of the broker (its session lives a
    // second after a disconnect), whose connection then drops without a word. (With the MQTT
    // 3.1.1 persistent session the platform used before, which never expires, 20 of these 40
    // reports were queued for such a ghost and lost.)
    {
        #[derive(Debug)]
        struct Nobody;
        #[async_trait::async_trait]
        impl mobility_mqtt::VehicleLink for Nobody {
            async fn authenticate(&self, _: &VehicleId, _: &[u8]) -> bool {
                false
            }
            async fn deliver(
                &self,
                _: VehicleId,
                _: mobility_mqtt::Channel,
                _: bytes::Bytes,
                _: mobility_mqtt::Ack,
            ) {
            }
        }
        let ghost = mobility_mqtt::ExternalBroker::connect_with(
            &url,
            &format!("mobility-test-ghost-{unique}"),
            &group,
            std::sync::Arc::new(Nobody),
            mobility_mqtt::SessionOptions {
                expiry: Duration::from_secs(1),
            },
        )
        .unwrap();
        // Subscribed by now (the connection and its subscriptions take milliseconds).
        tokio::time::sleep(Duration::from_millis(500)).await;
        ghost.abort();
    }
    // A process that leaves on purpose.
    let leaves = app("leaves").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    leaves.stop().await;
    // The ghost's session expires a second after its connection went.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let creds = registered_vehicle(&stays).await;
    let id = creds["id"].as_str().unwrap().to_owned();
    let broker: SocketAddr = format!("{host}:{port}").parse().unwrap();
    let (client, eventloop) = vehicle_client(broker, &creds);
    let driver = drive(eventloop);
    let topic = creds["mqtt"]["telemetry_topic"]
        .as_str()
        .unwrap()
        .to_owned();
    let t0 = now_ms() - 60_000;
    for i in 0..40 {
        client
            .publish(
                &topic,
                QoS::AtLeastOnce,
                false,
                json!({"ts": t0 + i * 100, "lat": 41.39, "lon": 2.17 + (i as f64) * 1e-4})
                    .to_string(),
            )
            .await
            .unwrap();
    }
    let kept = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let history = mobility_live::live_log::read_telemetry(
                &stays.data_dir().join("live"),
                &stays.data_dir().join("history"),
            )
            .unwrap();
            let mine: Vec<i64> = history
                .iter()
                .filter(|t| t.vehicle_id.to_string() == id)
                .map(|t| t.at.0)
                .collect();
            if mine.len() >= 40 {
                return mine;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let kept = match kept {
        Ok(k) => k,
        Err(_) => {
            let history = mobility_live::live_log::read_telemetry(
                &stays.data_dir().join("live"),
                &stays.data_dir().join("history"),
            )
            .unwrap();
            panic!(
                "only {} of 40 reports reached the process that stayed",
                history
                    .iter()
                    .filter(|t| t.vehicle_id.to_string() == id)
                    .count()
            );
        }
    };
    assert_eq!(kept.len(), 40, "each report once");
    driver.abort();
    stays.stop().await;
}
