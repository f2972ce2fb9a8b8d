//! Geofences end to end: CRUD over the API, crossings from telemetry, slow-zone speed limits
//! sent to the vehicle over MQTT, alerts, and no invented events from repeated or stale reports.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use std::time::Duration;

use common::{ADMIN, TestApp, now_ms};
use reqwest::Method;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn square(lat: f64, lon: f64, size: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]]})
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.authed(method, path, ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn crossings_drive_speed_limits_and_alerts() {
    let app = TestApp::spawn(mobility_store::testsuite::sqlite().await)
        .await
        .unwrap();
    // Operating area 41.30..41.50 N, 2.00..2.30 E; a slow zone and a no-riding zone inside it.
    let city = json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR", "operating_area": square(41.30, 2.00, 0.20)});
    assert_eq!(
        call(&app, Method::PUT, "/v1/admin/cities/barcelona", Some(city))
            .await
            .0,
        200
    );
    let (s, slow) = call(&app, Method::POST, "/v1/admin/cities/barcelona/geofences",
        Some(json!({"name": "Old town", "kind": "slow_zone", "speed_limit_kmh": 10, "geometry": square(41.38, 2.17, 0.01)}))).await;
    assert_eq!(s, 201, "{slow}");
    let (s, noride) = call(
        &app,
        Method::POST,
        "/v1/admin/cities/barcelona/geofences",
        Some(json!({"name": "Park", "kind": "no_riding", "geometry": square(41.40, 2.17, 0.01)})),
    )
    .await;
    assert_eq!(s, 201, "{noride}");

    let (_, v) = call(
        &app,
        Method::POST,
        "/v1/admin/vehicles",
        Some(json!({"city": "barcelona", "type": "scooter"})),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_owned();
    // The vehicle listens for commands and acks them.
    let addr = app.mqtt_addr.unwrap();
    let mut o = MqttOptions::new(&id, addr.ip().to_string(), addr.port());
    o.set_credentials(&id, v["device_secret"].as_str().unwrap());
    let (client, mut eventloop) = AsyncClient::new(o, 16);
    let topic = format!("v1/vehicles/{id}/commands");
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let (tx, mut commands) = mpsc::unbounded_channel::<Value>();
    let (sub_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut sub_tx = Some(sub_tx);
    let acker = client.clone();
    let ack_topic = format!("{topic}/ack");
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(t) = sub_tx.take() {
                        let _ = t.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let c: Value = serde_json::from_slice(&p.payload).unwrap();
                    acker
                        .publish(
                            &ack_topic,
                            QoS::AtLeastOnce,
                            false,
                            json!({"id": c["id"], "status": "ok"}).to_string(),
                        )
                        .await
                        .unwrap();
                    let _ = tx.send(c);
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .unwrap()
        .unwrap();

    let t0 = now_ms();
    let at = |i: i64, lat: f64, lon: f64| json!({"vehicle_id": id, "ts": t0 + i, "lat": lat, "lon": lon});
    let ingest = |reports: Value| call(&app, Method::POST, "/v1/ingest/telemetry", Some(reports));
    // 1: in the operating area; 2: into the slow zone; 2 again (redelivery) and 1 (stale) change nothing.
    assert_eq!(
        ingest(json!([
            at(1, 41.35, 2.10),
            at(2, 41.385, 2.175),
            at(2, 41.385, 2.175),
            at(1, 41.35, 2.10)
        ]))
        .await
        .0,
        200
    );
    let cmd = tokio::time::timeout(Duration::from_secs(10), commands.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (cmd["command"].as_str(), cmd["speed_limit_kmh"].as_u64()),
        (Some("set_speed_limit"), Some(10))
    );
    // 3: out of the slow zone (back to the scooter default), into the no-riding park; 4: out of the city.
    ingest(json!([at(3, 41.405, 2.175)])).await;
    let cmd = tokio::time::timeout(Duration::from_secs(10), commands.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cmd["speed_limit_kmh"].as_u64(), Some(25));
    ingest(json!([at(4, 41.60, 2.175)])).await;

    // The feed is kept by a consumer of the bus: it catches up within moments.
    let mut events = Value::Null;
    for _ in 0..200 {
        events = call(&app, Method::GET, "/v1/fleet/events", None).await.1;
        if events.as_array().is_some_and(|a| a.len() >= 8) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let seen: Vec<(String, String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().into(),
                e["name"].as_str().unwrap().into(),
                e["zone"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = |k: &str, n: &str, z: &str| (k.to_owned(), n.to_owned(), z.to_owned());
    assert_eq!(
        seen,
        vec![
            expect("geofence", "enter", "operating_area"),
            expect("geofence", "enter", "slow_zone"),
            expect("geofence", "exit", "slow_zone"),
            expect("geofence", "enter", "no_riding"),
            expect("alert", "entered_no_riding_zone", "no_riding"),
            expect("geofence", "exit", "no_riding"),
            expect("geofence", "exit", "operating_area"),
            expect("alert", "left_operating_area", "operating_area"),
        ],
        "exactly these, once each"
    );
    let (_, later) = call(
        &app,
        Method::GET,
        &format!("/v1/fleet/events?after={}", events[5]["seq"]),
        None,
    )
    .await;
    assert_eq!(later.as_array().unwrap().len(), 2);
    drop(client);
    app.stop().await;
}

#[tokio::test]
async fn geofences_are_managed_through_the_api() {
    let app = TestApp::spawn(mobility_store::testsuite::sqlite().await)
        .await
        .unwrap();
    let city = json!({"name": "Lisboa", "timezone": "Europe/Lisbon", "currency": "EUR"});
    assert_eq!(
        call(&app, Method::PUT, "/v1/admin/cities/lisbon", Some(city))
            .await
            .0,
        200
    );
    let (s, f) = call(
        &app,
        Method::POST,
        "/v1/admin/cities/lisbon/geofences",
        Some(
            json!({"name": "Baixa", "kind": "no_parking", "geometry": square(38.71, -9.14, 0.005)}),
        ),
    )
    .await;
    assert_eq!(s, 201);
    let id = f["id"].as_str().unwrap().to_owned();
    assert_eq!(
        f["geometry"]["coordinates"][0].as_array().unwrap().len(),
        5,
        "closed ring in GeoJSON"
    );
    let (s, replaced) = call(&app, Method::PUT, &format!("/v1/admin/geofences/{id}"),
        Some(json!({"city": "lisbon", "name": "Baixa slow", "kind": "slow_zone", "speed_limit_kmh": 8, "geometry": square(38.71, -9.14, 0.005)}))).await;
    assert_eq!((s, replaced["kind"].as_str()), (200, Some("slow_zone")));
    let (_, list) = call(&app, Method::GET, "/v1/cities/lisbon/geofences", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["speed_limit_kmh"], 8);
    for (body, status) in [
        (
            json!({"name": "x", "kind": "lava", "geometry": square(38.7, -9.1, 0.01)}),
            400,
        ),
        (
            json!({"name": "x", "kind": "slow_zone", "geometry": square(38.7, -9.1, 0.01)}),
            400,
        ),
        (
            json!({"name": "x", "kind": "no_parking", "speed_limit_kmh": 5, "geometry": square(38.7, -9.1, 0.01)}),
            400,
        ),
        (
            json!({"name": "x", "kind": "no_parking", "geometry": {"type": "Point", "coordinates": [[[0, 0]]]}}),
            400,
        ),
        (
            json!({"name": "x", "kind": "no_parking", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]], [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]]}}),
            400,
        ),
        (
            json!({"name": "", "kind": "no_parking", "geometry": square(38.7, -9.1, 0.01)}),
            400,
        ),
    ] {
        let (s, p) = call(
            &app,
            Method::POST,
            "/v1/admin/cities/lisbon/geofences",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, status, "{body}: {p}");
    }
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/v1/admin/cities/atlantis/geofences",
            Some(json!({"name": "x", "kind": "no_parking", "geometry": square(38.7, -9.1, 0.01)}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("/v1/admin/geofences/{id}"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("/v1/admin/geofences/{id}"),
            None
        )
        .await
        .0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn imu_events_wills_and_accepted_telemetry_are_published_on_their_subjects() {
    use mobility_core::{Domain, DomainEvent, TimestampMs, VehicleId, VehicleSignal};
    let app = TestApp::spawn(mobility_store::testsuite::sqlite().await)
        .await
        .unwrap();
    let (status, _) = call(
        &app,
        Method::PUT,
        "/v1/admin/cities/barcelona",
        Some(json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, creds) = call(
        &app,
        Method::POST,
        "/v1/admin/vehicles",
        Some(json!({"city": "barcelona", "type": "scooter"})),
    )
    .await;
    assert_eq!(status, 201);
    let id = VehicleId::parse(creds["id"].as_str().unwrap()).unwrap();
    let addr = app.mqtt_addr.unwrap();
    let m = &creds["mqtt"];
    let events_topic = format!("v1/vehicles/{id}/events");
    let mut o = MqttOptions::new(
        m["client_id"].as_str().unwrap(),
        addr.ip().to_string(),
        addr.port(),
    );
    o.set_credentials(
        m["username"].as_str().unwrap(),
        m["password"].as_str().unwrap(),
    );
    o.set_keep_alive(Duration::from_secs(5));
    o.set_last_will(rumqttc::LastWill::new(
        &events_topic,
        json!({"type": "offline"}).to_string(),
        QoS::AtLeastOnce,
        false,
    ));
    let (client, eventloop) = AsyncClient::new(o, 16);
    let driver = tokio::spawn(async move {
        let mut eventloop = eventloop;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(_) => {}
            }
        }
    });

    let ts = now_ms();
    client
        .publish(
            m["telemetry_topic"].as_str().unwrap(),
            QoS::AtLeastOnce,
            false,
            json!({"ts": ts, "lat": 41.39, "lon": 2.17, "battery_pct": 55}).to_string(),
        )
        .await
        .unwrap();
    client
        .publish(
            &events_topic,
            QoS::AtLeastOnce,
            false,
            json!({"type": "imu", "ts": ts, "peak_g": 4.5}).to_string(),
        )
        .await
        .unwrap();
    // Garbage on the events channel is refused and counted, never published.
    client
        .publish(&events_topic, QoS::AtLeastOnce, false, "not json")
        .await
        .unwrap();

    let imu = common::on_bus(&app, Domain::Vehicle, |e| match &e.event {
        DomainEvent::VehicleReported {
            vehicle,
            signal: VehicleSignal::Imu { peak_g },
            at,
        } if *vehicle == id => Some((e.subject.clone(), *peak_g, *at)),
        _ => None,
    })
    .await;
    assert_eq!(imu, ("vehicle.barcelona".to_owned(), 4.5, TimestampMs(ts)));
    let reports = common::on_bus(&app, Domain::Telemetry, |e| match &e.event {
        DomainEvent::TelemetryAccepted { reports }
            if reports.iter().any(|r| r.vehicle_id == id) =>
        {
            Some((e.subject.clone(), reports.len()))
        }
        _ => None,
    })
    .await;
    assert_eq!(reports, ("telemetry.barcelona".to_owned(), 1));

    // The connection is lost (no DISCONNECT): the will arrives as an offline signal.
    driver.abort();
    drop(client);
    let offline = common::on_bus(&app, Domain::Vehicle, |e| match &e.event {
        DomainEvent::VehicleReported {
            vehicle,
            signal: VehicleSignal::Offline,
            ..
        } if *vehicle == id => Some(e.subject.clone()),
        _ => None,
    })
    .await;
    assert_eq!(offline, "vehicle.barcelona");
    let all = app
        .bus
        .read(Domain::Vehicle, None, mobility_bus::StartAt::First, 100)
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        2,
        "the garbage message was not published: {all:?}"
    );
    app.stop().await;
}
