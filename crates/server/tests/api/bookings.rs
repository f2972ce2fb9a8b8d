//! Reservations over HTTP: no double booking under 200 concurrent riders, holds that lapse,
//! cancellation, ownership, and the vehicle's live state following along. On SQLite, and on
//! PostgreSQL when `MOBILITY_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use std::sync::Arc;

use common::{ADMIN, TestApp, eventually, now_ms};
use mobility_core::{Role, TimestampMs};
use mobility_services::accounts::Accounts;
use mobility_store::{UserRecord, testsuite::TestStore};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "test-jwt-secret-for-bookings";

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.authed(method, path, token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Barcelona with one vehicle of `kind` at `battery` %, in service.
async fn vehicle(app: &TestApp, kind: &str, battery: u8) -> String {
    let (s, _) = call(
        app,
        Method::PUT,
        "/v1/admin/cities/barcelona",
        ADMIN,
        Some(json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = call(
        app,
        Method::POST,
        "/v1/admin/vehicles",
        ADMIN,
        Some(json!({"city": "barcelona", "type": kind})),
    )
    .await;
    assert_eq!(s, 201);
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, r) = call(
        app,
        Method::POST,
        "/v1/ingest/telemetry",
        ADMIN,
        Some(json!([
            {"vehicle_id": id, "ts": now_ms(), "lat": 41.387, "lon": 2.170, "battery_pct": battery}
        ])),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let events = if kind == "car" || kind == "van" {
        json!(["recommission", "service_start"])
    } else {
        json!(["provider_drop_off"])
    };
    let (s, r) = call(
        app,
        Method::POST,
        "/v1/vehicles/events",
        ADMIN,
        Some(json!({"changes": [
            {"vehicle_id": id, "event_types": events, "vehicle_state": "available"}
        ]})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    id
}

/// `n` rider accounts with access tokens (made directly in the store: hashing 200 passwords
/// would only slow the test).
async fn riders(app: &TestApp, n: usize) -> Vec<String> {
    let accounts = Accounts::new(SECRET, app.store.clone()).await.unwrap();
    let mut tokens = Vec::new();
    for k in 0..n {
        let user = UserRecord {
            id: uuid::Uuid::now_v7().to_string(),
            email: format!("rider{k}-{}@example.com", uuid::Uuid::now_v7().simple()),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            role: Role::Rider,
            created_at: TimestampMs(now_ms()),
        };
        app.store.insert_user(&user).await.unwrap();
        tokens.push(
            accounts
                .start_session(&user, TimestampMs(now_ms()))
                .await
                .unwrap()
                .access_token,
        );
    }
    tokens
}

async fn scenario(store: Option<TestStore>) {
    let Some(app) = TestApp::spawn_with(store, |s| {
        s.jwt_secret = Some(SECRET.into());
        s.reservation_hold_s = 2;
        // The test polls; rate limits have their own test.
        s.rate_limit_per_s = 10_000;
    })
    .await
    else {
        return;
    };
    let app = Arc::new(app);
    let scooter = vehicle(&app, "scooter", 80).await;
    let tokens = riders(&app, 200).await;

    // 200 riders reserve the same scooter at once: exactly one wins.
    let attempts: Vec<_> = tokens
        .iter()
        .map(|t| {
            let (app, t, id) = (app.clone(), t.clone(), scooter.clone());
            tokio::spawn(async move {
                call(
                    &app,
                    Method::POST,
                    "/v1/bookings",
                    &t,
                    Some(json!({"vehicle_id": id})),
                )
                .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (k, a) in attempts.into_iter().enumerate() {
        let (status, body) = a.await.unwrap();
        match status {
            201 => winners.push((k, body)),
            409 => assert!(
                body["type"].as_str().unwrap().contains("/problems/"),
                "{body}"
            ),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one reservation wins");
    let (k, booking) = winners.pop().unwrap();
    let id = booking["id"].as_str().unwrap().to_owned();
    assert_eq!(booking["state"], "reserved");
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("/v1/vehicles/{scooter}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(v["state"], "reserved");
    let (_, near) = call(
        &app,
        Method::GET,
        "/v1/vehicles/nearby?lat=41.387&lon=2.170",
        &tokens[0],
        None,
    )
    .await;
    assert!(
        near["vehicles"].as_array().unwrap().is_empty(),
        "a reserved vehicle is not offered: {near}"
    );

    // Only its rider (and staff) see it; cancelling works once and frees the vehicle.
    let other = &tokens[(k + 1) % 200];
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("/v1/bookings/{id}"),
            other,
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &app,
            Method::POST,
            &format!("/v1/bookings/{id}/cancel"),
            other,
            None
        )
        .await
        .0,
        404
    );
    let (s, b) = call(
        &app,
        Method::GET,
        &format!("/v1/bookings/{id}"),
        &tokens[k],
        None,
    )
    .await;
    assert_eq!((s, b["id"].as_str()), (200, Some(id.as_str())));
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{id}/cancel"),
        &tokens[k],
        None,
    )
    .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("cancelled")), "{b}");
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{id}/cancel"),
        &tokens[k],
        None,
    )
    .await;
    assert_eq!(s, 409, "{b}");
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("/v1/vehicles/{scooter}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(v["state"], "available");

    // An unused hold lapses and the vehicle is offered again.
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        other,
        Some(json!({"vehicle_id": scooter})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let id2 = b["id"].as_str().unwrap().to_owned();
    eventually("the hold lapses", || {
        let (app, other, id2) = (app.clone(), other.clone(), id2.clone());
        async move {
            let (_, b) = call(
                &app,
                Method::GET,
                &format!("/v1/bookings/{id2}"),
                &other,
                None,
            )
            .await;
            (b["state"] == "expired").then_some(())
        }
    })
    .await;
    // The sweeper releases the vehicle right after it expires the hold.
    eventually("the vehicle is offered again", || {
        let (app, scooter) = (app.clone(), scooter.clone());
        async move {
            let (_, v) = call(
                &app,
                Method::GET,
                &format!("/v1/vehicles/{scooter}"),
                ADMIN,
                None,
            )
            .await;
            (v["state"] == "available").then_some(())
        }
    })
    .await;

    // Refusals: flat battery, cars without a licence, unknown vehicles, API tokens.
    let flat = vehicle(&app, "ebike", 9).await;
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &tokens[3],
        Some(json!({"vehicle_id": flat})),
    )
    .await;
    assert_eq!(
        (
            s,
            b["type"]
                .as_str()
                .map(|t| t.ends_with("vehicle-unavailable"))
        ),
        (409, Some(true)),
        "{b}"
    );
    let car = vehicle(&app, "car", 90).await;
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &tokens[3],
        Some(json!({"vehicle_id": car})),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    let (s, _) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &tokens[3],
        Some(json!({"vehicle_id": uuid::Uuid::now_v7().to_string()})),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &tokens[3],
        Some(json!({"vehicle_id": "x"})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        ADMIN,
        Some(json!({"vehicle_id": scooter})),
    )
    .await;
    assert_eq!(s, 401, "bookings belong to accounts");
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_on_sqlite() {
    scenario(mobility_store::testsuite::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_on_postgres() {
    scenario(mobility_store::testsuite::postgres().await).await;
}

/// A vehicle on MQTT that answers every command with `status` (or stays silent).
async fn connected_vehicle(
    app: &TestApp,
    status: Option<&'static str>,
) -> (String, rumqttc::AsyncClient) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (s, creds) = call(
        app,
        Method::POST,
        "/v1/admin/vehicles",
        ADMIN,
        Some(json!({"city": "barcelona", "type": "scooter"})),
    )
    .await;
    assert_eq!(s, 201);
    let id = creds["id"].as_str().unwrap().to_owned();
    let addr = app.mqtt_addr.unwrap();
    let mut o = MqttOptions::new(&id, addr.ip().to_string(), addr.port());
    o.set_credentials(&id, creds["device_secret"].as_str().unwrap());
    let (client, mut eventloop) = AsyncClient::new(o, 16);
    let commands = format!("v1/vehicles/{id}/commands");
    let acks = format!("v1/vehicles/{id}/commands/ack");
    client.subscribe(&commands, QoS::AtLeastOnce).await.unwrap();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let responder = client.clone();
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(t) = ready_tx.take() {
                        let _ = t.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) if p.topic == commands => {
                    let cmd: Value = serde_json::from_slice(&p.payload).unwrap();
                    if let Some(status) = status {
                        let ack = json!({"id": cmd["id"], "status": status, "detail": "scripted"});
                        let _ = responder
                            .publish(&acks, QoS::AtLeastOnce, false, ack.to_string())
                            .await;
                    }
                }
                _ => {}
            }
        }
    });
    ready.await.unwrap();
    (id, client)
}

async fn report(app: &TestApp, id: &str, lat: f64, lon: f64, odometer: u32) {
    let (s, r) = call(app, Method::POST, "/v1/ingest/telemetry", ADMIN, Some(json!([
        {"vehicle_id": id, "ts": now_ms(), "lat": lat, "lon": lon, "battery_pct": 80, "odometer_m": odometer}
    ]))).await;
    assert_eq!((s, r["applied"].as_u64()), (200, Some(1)), "{r}");
}

async fn deploy(app: &TestApp, id: &str) {
    let (s, r) = call(
        app,
        Method::POST,
        "/v1/vehicles/events",
        ADMIN,
        Some(json!({"changes": [
            {"vehicle_id": id, "event_types": ["provider_drop_off"], "vehicle_state": "available"}
        ]})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_unlocks_over_mqtt_ends_inside_the_area_and_is_priced() {
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.jwt_secret = Some(SECRET.into());
        s.unlock_timeout_s = 1;
    })
    .await
    else {
        return;
    };
    // Central Barcelona as the operating area, Plaça Catalunya as a no-parking zone.
    let area = json!({"type": "Polygon", "coordinates": [[[2.10, 41.36], [2.22, 41.36], [2.22, 41.43], [2.10, 41.43], [2.10, 41.36]]]});
    let (s, _) = call(&app, Method::PUT, "/v1/admin/cities/barcelona", ADMIN,
        Some(json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR", "operating_area": area}))).await;
    assert_eq!(s, 200);
    let square = json!({"type": "Polygon", "coordinates": [[[2.168, 41.386], [2.172, 41.386], [2.172, 41.388], [2.168, 41.388], [2.168, 41.386]]]});
    let (s, f) = call(
        &app,
        Method::POST,
        "/v1/admin/cities/barcelona/geofences",
        ADMIN,
        Some(json!({"name": "Plaça Catalunya", "kind": "no_parking", "geometry": square})),
    )
    .await;
    assert_eq!(s, 201, "{f}");
    let rider = riders(&app, 1).await.pop().unwrap();
    // The rider's webhook: its first delivery fails (500), so the outbox must retry.
    let hook = webhook_receiver().await;
    let (s, pref) = call(
        &app,
        Method::PUT,
        "/v1/me/notifications/webhook",
        &rider,
        Some(json!({"enabled": true, "address": hook.url})),
    )
    .await;
    assert_eq!(s, 200, "{pref}");
    let signing_key = pref["signing_key"].as_str().unwrap().to_owned();
    let (s, _) = call(
        &app,
        Method::PUT,
        "/v1/me/notifications/webhook",
        &rider,
        Some(json!({"enabled": true, "address": "ftp://x"})),
    )
    .await;
    assert_eq!(s, 400);
    // Scooters get a plan; the other types keep the built-in default.
    let (s, p) = call(&app, Method::PUT, "/v1/admin/cities/barcelona/pricing/scooter", ADMIN,
        Some(json!({"name": "Scooter city", "unlock_fee": 50, "per_minute": 30, "per_km": 10, "daily_cap": 2500}))).await;
    assert_eq!(s, 200, "{p}");
    let (s, p) = call(
        &app,
        Method::PUT,
        "/v1/admin/cities/barcelona/pricing/scooter",
        ADMIN,
        Some(json!({"name": "x", "unlock_fee": -1, "per_minute": 30, "per_km": 10})),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    assert_eq!(
        call(
            &app,
            Method::PUT,
            "/v1/admin/cities/barcelona/pricing/scooter",
            &rider,
            Some(json!({"name": "x", "unlock_fee": 1, "per_minute": 1, "per_km": 1}))
        )
        .await
        .0,
        403
    );
    let public = app.get("/v1/cities/barcelona/pricing").await;
    assert_eq!(public.status(), 200, "prices are public");
    let plans: Value = public.json().await.unwrap();
    let plans = plans.as_array().unwrap();
    assert_eq!(plans.len(), 4);
    assert!(
        plans.iter().any(|p| p["vehicle_type"] == "scooter"
            && p["default"] == false
            && p["per_minute"] == 30)
    );
    assert!(
        plans
            .iter()
            .any(|p| p["vehicle_type"] == "car" && p["default"] == true)
    );

    // A good trip: unlock (acked), ride 2.4 km, end in the no-parking square: fare + fee.
    let (id, _client) = connected_vehicle(&app, Some("ok")).await;
    report(&app, &id, 41.400, 2.150, 10_000).await;
    deploy(&app, &id).await;
    let (s, q) = call(
        &app,
        Method::GET,
        &format!("/v1/vehicles/{id}/quote?minutes=10&km=2"),
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 200, "{q}");
    assert_eq!(q["estimate"], 50 + 300 + 20, "{q}");
    assert_eq!(q["plan"]["name"], "Scooter city");
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &rider,
        Some(json!({"vehicle_id": id})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let booking = b["id"].as_str().unwrap().to_owned();
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/unlock"),
        &rider,
        None,
    )
    .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("on_trip")), "{b}");
    assert!(b["started_at_ms"].as_i64().is_some());
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("/v1/vehicles/{id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(v["state"], "on_trip");
    // Pause and resume lock and unlock the vehicle; the trip goes on.
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/pause"),
        &rider,
        None,
    )
    .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("paused")), "{b}");
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/pause"),
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 409, "already paused");
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/resume"),
        &rider,
        None,
    )
    .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("on_trip")), "{b}");
    // Outside the operating area the trip cannot end.
    report(&app, &id, 41.450, 2.150, 11_000).await;
    let (s, p) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/end"),
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 409, "{p}");
    assert!(
        p["type"]
            .as_str()
            .unwrap()
            .ends_with("outside-operating-area")
    );
    report(&app, &id, 41.387, 2.170, 12_400).await;
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/end"),
        &rider,
        None,
    )
    .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("ended")), "{b}");
    assert_eq!(b["distance_m"], 2_400);
    let r = &b["receipt"];
    // Under a minute on the city's plan: 0.50 unlock + 0.30 for the started minute + 2.4 km at
    // 0.10 + 5.00 no-parking fee.
    assert_eq!(
        (
            r["unlock"].as_i64(),
            r["time"].as_i64(),
            r["distance"].as_i64(),
            r["parking_fee"].as_i64()
        ),
        (Some(50), Some(30), Some(24), Some(500)),
        "{r}"
    );
    assert_eq!(r["total"], 604);
    assert_eq!(r["plan"], "Scooter city");
    assert_eq!(b["detail"], "paid 6.04 EUR via sandbox", "{b}");
    // Staff refund part of it, idempotently; riders cannot; never more than was paid.
    let refund = |token: String, key: &'static str, body: Value| {
        let (app, booking) = (&app, booking.clone());
        async move {
            let mut req = app
                .authed(
                    Method::POST,
                    &format!("/v1/bookings/{booking}/refund"),
                    &token,
                )
                .json(&body);
            if !key.is_empty() {
                req = req.header("idempotency-key", key);
            }
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(
        refund(rider.clone(), "k1", json!({"amount": 100})).await.0,
        403
    );
    assert_eq!(
        refund(ADMIN.into(), "", json!({"amount": 100})).await.0,
        400
    );
    let (s, r) = refund(
        ADMIN.into(),
        "k1",
        json!({"amount": 100, "reason": "bumpy ride"}),
    )
    .await;
    assert_eq!((s, r["amount"].as_i64()), (200, Some(100)), "{r}");
    let (s, again) = refund(ADMIN.into(), "k1", json!({"amount": 100})).await;
    assert_eq!(
        (s, again["amount"].as_i64()),
        (200, Some(100)),
        "same key, same refund"
    );
    let (s, r) = refund(ADMIN.into(), "k2", json!({"amount": 600})).await;
    assert_eq!(s, 400, "604 paid, 100 refunded: {r}");
    let (s, r) = refund(ADMIN.into(), "k3", json!({})).await;
    assert_eq!((s, r["amount"].as_i64()), (200, Some(504)), "the rest: {r}");
    // The receipt reaches the webhook once, signed, after one failed attempt.
    eventually("the receipt is delivered", || {
        let got = hook.got.clone();
        async move { (!got.lock().unwrap().is_empty()).then_some(()) }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "delivered once: {got:?}");
    assert_eq!(hook.attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    let (sig, body) = &got[0];
    assert_eq!(
        *sig,
        mobility_services::notifications::signature(&signing_key, body.as_bytes())
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["subject"], "Your trip receipt");
    assert!(
        body["text"].as_str().unwrap().contains("6.04 EUR"),
        "{body}"
    );
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("/v1/vehicles/{id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(v["state"], "available");
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/end"),
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 409, "a trip ends once");

    // A vehicle that refuses, and one that never answers: the booking fails cleanly and the
    // vehicle is released.
    for status in [Some("failed"), None] {
        let (id, _client) = connected_vehicle(&app, status).await;
        report(&app, &id, 41.400, 2.150, 0).await;
        deploy(&app, &id).await;
        let (s, b) = call(
            &app,
            Method::POST,
            "/v1/bookings",
            &rider,
            Some(json!({"vehicle_id": id})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        let booking = b["id"].as_str().unwrap().to_owned();
        let (s, p) = call(
            &app,
            Method::POST,
            &format!("/v1/bookings/{booking}/unlock"),
            &rider,
            None,
        )
        .await;
        assert_eq!(s, 502, "{p}");
        let (_, b) = call(
            &app,
            Method::GET,
            &format!("/v1/bookings/{booking}"),
            &rider,
            None,
        )
        .await;
        assert_eq!(b["state"], "failed", "{b}");
        assert!(
            b["detail"].as_str().unwrap().contains("unlock failed"),
            "{b}"
        );
        let (_, v) = call(
            &app,
            Method::GET,
            &format!("/v1/vehicles/{id}"),
            ADMIN,
            None,
        )
        .await;
        assert_eq!(v["state"], "available");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cars_need_a_licence_verified_in_the_review_queue() {
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.jwt_secret = Some(SECRET.into());
    })
    .await
    else {
        return;
    };
    let car = vehicle(&app, "car", 90).await;
    let mut tokens = riders(&app, 2).await;
    let (rider, other) = (tokens.remove(0), tokens.remove(0));
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &rider,
        Some(json!({"vehicle_id": car})),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert!(b["type"].as_str().unwrap().ends_with("licence-required"));

    // Bad submissions are refused with the field named.
    for (bad, needle) in [
        (
            json!({"kind": "driving_licence", "full_name": "Ana Puig", "date_of_birth": "1990-04-01", "document_number": "B1234567"}),
            "expires_on",
        ),
        (
            json!({"kind": "driving_licence", "full_name": "Ana Puig", "date_of_birth": "1990-04-01", "document_number": "B1234567", "expires_on": "2001-01-01"}),
            "expired",
        ),
        (
            json!({"kind": "passport", "full_name": "Ana Puig", "date_of_birth": "1990-04-01", "document_number": "B1234567"}),
            "kind",
        ),
        (
            json!({"kind": "identity", "full_name": "Ana Puig", "date_of_birth": "1990-02-30", "document_number": "B1234567"}),
            "date_of_birth",
        ),
    ] {
        let (s, p) = call(&app, Method::POST, "/v1/me/kyc", &rider, Some(bad)).await;
        assert_eq!(s, 400, "{p}");
        assert!(p["detail"].as_str().unwrap().contains(needle), "{p}");
    }
    let licence = json!({"kind": "driving_licence", "full_name": "Ana Puig", "date_of_birth": "1990-04-01",
        "document_number": "B1234567", "expires_on": "2099-01-01"});
    let (s, k) = call(
        &app,
        Method::POST,
        "/v1/me/kyc",
        &rider,
        Some(licence.clone()),
    )
    .await;
    assert_eq!((s, k["state"].as_str()), (201, Some("pending")), "{k}");
    assert!(
        k.get("document_number").is_none(),
        "riders are not shown their document back"
    );
    let kyc_id = k["id"].as_str().unwrap().to_owned();

    // Riders cannot see the queue; staff can, with what they need to check.
    assert_eq!(
        call(&app, Method::GET, "/v1/kyc/queue", &rider, None)
            .await
            .0,
        403
    );
    let (s, q) = call(&app, Method::GET, "/v1/kyc/queue", ADMIN, None).await;
    assert_eq!(s, 200);
    let entry = q
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == kyc_id.as_str())
        .unwrap();
    assert_eq!(entry["document_number"], "B1234567");
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/kyc/{kyc_id}/decision"),
        &rider,
        Some(json!({"decision": "verified"})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, p) = call(
        &app,
        Method::POST,
        &format!("/v1/kyc/{kyc_id}/decision"),
        ADMIN,
        Some(json!({"decision": "rejected"})),
    )
    .await;
    assert_eq!(s, 400, "a rejection needs a reason: {p}");
    let (s, k) = call(
        &app,
        Method::POST,
        &format!("/v1/kyc/{kyc_id}/decision"),
        ADMIN,
        Some(json!({"decision": "verified"})),
    )
    .await;
    assert_eq!((s, k["state"].as_str()), (200, Some("verified")), "{k}");
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/kyc/{kyc_id}/decision"),
        ADMIN,
        Some(json!({"decision": "rejected", "reason": "late"})),
    )
    .await;
    assert_eq!(s, 409, "decisions are final");

    // Now the car can be booked; another rider's rejected licence still cannot.
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &rider,
        Some(json!({"vehicle_id": car})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (_, k) = call(&app, Method::POST, "/v1/me/kyc", &other, Some(licence)).await;
    let other_id = k["id"].as_str().unwrap();
    let (s, k) = call(
        &app,
        Method::POST,
        &format!("/v1/kyc/{other_id}/decision"),
        ADMIN,
        Some(json!({"decision": "rejected", "reason": "photo unreadable"})),
    )
    .await;
    assert_eq!((s, k["reason"].as_str()), (200, Some("photo unreadable")));
    let (_, mine) = call(&app, Method::GET, "/v1/me/kyc", &other, None).await;
    assert_eq!(mine[0]["state"], "rejected");
    let car2 = vehicle(&app, "van", 90).await;
    let (s, _) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &other,
        Some(json!({"vehicle_id": car2})),
    )
    .await;
    assert_eq!(s, 403);
    app.stop().await;
}

struct Hook {
    url: String,
    got: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    attempts: Arc<std::sync::atomic::AtomicU32>,
}

/// A webhook receiver on port 0 that answers 500 to the first call and 200 after.
async fn webhook_receiver() -> Hook {
    use axum::{extract::State, http::HeaderMap, routing::post};
    type Shared = (
        Arc<std::sync::Mutex<Vec<(String, String)>>>,
        Arc<std::sync::atomic::AtomicU32>,
    );
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let app = axum::Router::new()
        .route(
            "/hook",
            post(|State((got, attempts)): State<Shared>, headers: HeaderMap, body: String| async move {
                if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                let sig = headers["x-mobility-signature"].to_str().unwrap().to_owned();
                got.lock().unwrap().push((sig, body));
                axum::http::StatusCode::NO_CONTENT
            }),
        )
        .with_state((got.clone(), attempts.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Hook { url, got, attempts }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallets_top_up_once_per_key_and_pay_for_trips_first() {
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.jwt_secret = Some(SECRET.into());
    })
    .await
    else {
        return;
    };
    let rider = riders(&app, 1).await.pop().unwrap();
    let top_up = |key: &'static str, body: Value| {
        let (app, rider) = (&app, rider.clone());
        async move {
            let mut req = app
                .authed(Method::POST, "/v1/me/wallet/top-up", &rider)
                .json(&body);
            if !key.is_empty() {
                req = req.header("idempotency-key", key);
            }
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(
        top_up("", json!({"amount": 1000, "currency": "EUR"}))
            .await
            .0,
        400
    );
    assert_eq!(
        top_up("t1", json!({"amount": 0, "currency": "EUR"}))
            .await
            .0,
        400
    );
    assert_eq!(
        top_up("t1", json!({"amount": 1000, "currency": "EURO"}))
            .await
            .0,
        400
    );
    let (s, r) = top_up("t1", json!({"amount": 1000, "currency": "EUR"})).await;
    assert_eq!(
        (s, r["balance"].as_i64(), r["provider"].as_str()),
        (200, Some(1000), Some("sandbox")),
        "{r}"
    );
    let (s, r) = top_up("t1", json!({"amount": 1000, "currency": "EUR"})).await;
    assert_eq!(
        (s, r["balance"].as_i64()),
        (200, Some(1000)),
        "same key, one top-up: {r}"
    );

    // A trip is paid from the wallet before any card.
    vehicle(&app, "scooter", 80).await; // creates the city
    let (id, _client) = connected_vehicle(&app, Some("ok")).await;
    report(&app, &id, 41.400, 2.150, 10_000).await;
    deploy(&app, &id).await;
    let (_, b) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &rider,
        Some(json!({"vehicle_id": id})),
    )
    .await;
    let booking = b["id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/unlock"),
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 200);
    // While the trip runs, the booking shows time, distance and the fare so far.
    let (_, live) = call(
        &app,
        Method::GET,
        &format!("/v1/bookings/{booking}"),
        &rider,
        None,
    )
    .await;
    assert_eq!(live["state"], "on_trip", "{live}");
    assert!(live["live"]["duration_s"].as_i64().unwrap() >= 0, "{live}");
    assert!(
        live["live"]["fare"].as_i64().unwrap() >= 100,
        "at least the unlock fee: {live}"
    );
    assert!(
        live["live"]["fare_display"]
            .as_str()
            .unwrap()
            .ends_with("EUR")
    );
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/end"),
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["detail"], "paid 1.25 EUR via wallet", "{b}");
    let (_, after) = call(
        &app,
        Method::GET,
        &format!("/v1/bookings/{booking}"),
        &rider,
        None,
    )
    .await;
    assert!(
        after.get("live").is_none(),
        "an ended trip has its receipt instead"
    );
    assert!(
        app.store
            .booking_payments(&booking)
            .await
            .unwrap()
            .iter()
            .all(|p| p.kind.as_str() != "authorization"),
        "a wallet that covers the trip needs no hold"
    );
    let (_, w) = call(
        &app,
        Method::GET,
        "/v1/me/wallet?currency=EUR",
        &rider,
        None,
    )
    .await;
    assert_eq!(w["balance"], 875, "{w}");
    // A refund of a wallet-paid trip goes back to the wallet.
    let r = app
        .authed(
            Method::POST,
            &format!("/v1/bookings/{booking}/refund"),
            ADMIN,
        )
        .header("idempotency-key", "r1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, w) = call(
        &app,
        Method::GET,
        "/v1/me/wallet?currency=EUR",
        &rider,
        None,
    )
    .await;
    assert_eq!(w["balance"], 1000, "{w}");
    let balances = app.store.ledger_balances().await.unwrap();
    assert_eq!(
        balances.iter().map(|(_, _, v)| v).sum::<i64>(),
        0,
        "the books reconcile"
    );
    app.stop().await;
}

/// Passes: an admin sells one; a rider buys it once per key (from the wallet when it holds
/// enough); a covered trip costs what the pass does not cover, and the receipt says what it
/// saved; a type it does not cover pays in full.
#[tokio::test]
async fn a_pass_covers_unlocks_and_first_minutes_and_is_bought_once_per_key() {
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.jwt_secret = Some(SECRET.into());
    })
    .await
    else {
        return;
    };
    vehicle(&app, "scooter", 80).await; // creates the city
    let plan = json!({"name": "Commuter 30", "price": 1500, "valid_days": 30,
        "vehicle_types": ["scooter", "ebike"], "free_unlock": true, "free_minutes": 30});
    let (s, p) = call(
        &app,
        Method::PUT,
        "/v1/admin/cities/barcelona/passes/commuter-30",
        ADMIN,
        Some(plan.clone()),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["price_display"], "15.00 EUR");
    let mut nothing = plan.clone();
    nothing["free_unlock"] = json!(false);
    nothing["free_minutes"] = json!(0);
    assert_eq!(
        call(
            &app,
            Method::PUT,
            "/v1/admin/cities/barcelona/passes/empty",
            ADMIN,
            Some(nothing)
        )
        .await
        .0,
        400
    );
    let (_, sold) = call(&app, Method::GET, "/v1/cities/barcelona/passes", "", None).await;
    assert_eq!(sold[0]["id"], "commuter-30", "the list is public: {sold}");

    let rider = riders(&app, 1).await.pop().unwrap();
    let buy = |key: &'static str| {
        let (app, rider) = (&app, rider.clone());
        async move {
            let mut req = app
                .authed(Method::POST, "/v1/me/passes", &rider)
                .json(&json!({"plan_id": "commuter-30"}));
            if !key.is_empty() {
                req = req.header("idempotency-key", key);
            }
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(buy("").await.0, 400, "an Idempotency-Key is required");
    let (s, first) = buy("k1").await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["active"], true);
    let (s, again) = buy("k1").await;
    assert_eq!((s, &again["id"]), (200, &first["id"]), "one pass per key");
    let charges: Vec<_> = app
        .store
        .ledger_balances()
        .await
        .unwrap()
        .into_iter()
        .filter(|(account, _, _)| account.starts_with("revenue"))
        .collect();
    assert_eq!(
        charges.iter().map(|(_, _, v)| v).sum::<i64>().abs(),
        1500,
        "charged once: {charges:?}"
    );

    // A covered 0-minute trip: unlock waived, minutes free.
    let (id, _client) = connected_vehicle(&app, Some("ok")).await;
    report(&app, &id, 41.400, 2.150, 10_000).await;
    deploy(&app, &id).await;
    let (_, b) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &rider,
        Some(json!({"vehicle_id": id})),
    )
    .await;
    let booking = b["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &app,
            Method::POST,
            &format!("/v1/bookings/{booking}/unlock"),
            &rider,
            None
        )
        .await
        .0,
        200
    );
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/end"),
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["receipt"]["total"], 0, "{b}");
    assert_eq!(b["receipt"]["unlock"], 0);
    assert_eq!(b["receipt"]["pass"]["plan"], "Commuter 30");
    assert_eq!(
        b["receipt"]["pass"]["saved"], 125,
        "1.00 unlock + one started minute at 0.25"
    );
    // No wallet: unlocking placed a hold (30 minutes' worth); the free trip released it.
    let paid = app.store.booking_payments(&booking).await.unwrap();
    let hold = paid
        .iter()
        .find(|p| p.kind.as_str() == "authorization")
        .expect("a hold at unlock");
    assert_eq!(
        (hold.state.as_str(), hold.amount.minor),
        ("authorized", 100 + 30 * 25),
        "{paid:?}"
    );
    let charge = paid.iter().find(|p| p.kind.as_str() == "charge").unwrap();
    assert_eq!(
        (charge.state.as_str(), charge.amount.minor),
        ("succeeded", 0)
    );
    let (_, mine) = call(&app, Method::GET, "/v1/me/passes", &rider, None).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["plan"]["name"], "Commuter 30");
    app.stop().await;
}

/// Dynamic pricing end to end: demand history makes one zone short of vehicles and another
/// has spare ones; the public board prices both and says why; a quote in the spare zone shows
/// its discount, its multiplier and where a credit can be earned; the trip is charged at the
/// multiplier locked at unlock, and the incentives come off the fare only as far as the city's
/// daily budget goes. Staff see the forecast and a routed field plan that moves the spare
/// vehicles to where riders will be; riders do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_are_priced_from_forecast_demand_and_trips_pay_what_was_quoted() {
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.jwt_secret = Some(SECRET.into());
        s.unlock_timeout_s = 2;
        // Room for the start discount (0.50) but not for the end credit (1.00) after it.
        s.incentive_daily_budget_cents = 120;
        s.rate_limit_per_s = 10_000;
    })
    .await
    else {
        return;
    };
    let area = json!({"type": "Polygon", "coordinates": [[[2.10, 41.36], [2.22, 41.36], [2.22, 41.43], [2.10, 41.43], [2.10, 41.36]]]});
    let (s, _) = call(&app, Method::PUT, "/v1/admin/cities/barcelona", ADMIN,
        Some(json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR", "operating_area": area}))).await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &app,
        Method::PUT,
        "/v1/admin/cities/barcelona/pricing/scooter",
        ADMIN,
        Some(json!({"name": "Scooter city", "unlock_fee": 200, "per_minute": 30, "per_km": 100})),
    )
    .await;
    assert_eq!(s, 200);
    let rider = riders(&app, 1).await.pop().unwrap();
    // Five scooters stand in a quiet zone (A); nobody is near the busy one (B).
    let (a_lat, a_lon, b_lat, b_lon) = (41.400, 2.150, 41.387, 2.170);
    let (id, _client) = connected_vehicle(&app, Some("ok")).await;
    report(&app, &id, a_lat, a_lon, 10_000).await;
    deploy(&app, &id).await;
    for k in 0..4 {
        let (s, v) = call(
            &app,
            Method::POST,
            "/v1/admin/vehicles",
            ADMIN,
            Some(json!({"city": "barcelona", "type": "scooter"})),
        )
        .await;
        assert_eq!(s, 201);
        let other = v["id"].as_str().unwrap().to_owned();
        report(&app, &other, a_lat + f64::from(k) * 0.0002, a_lon, 0).await;
        deploy(&app, &other).await;
    }
    // The last hour: eight searches every quarter in zone B.
    let cell = |lat: f64, lon: f64| {
        h3o::LatLng::new(lat, lon)
            .unwrap()
            .to_cell(h3o::Resolution::Eight)
            .to_string()
    };
    let (zone_a, zone_b) = (cell(a_lat, a_lon), cell(b_lat, b_lon));
    let slot = now_ms().div_euclid(900_000) * 900_000;
    let history: Vec<_> = (1..=4)
        .map(|k| mobility_store::DemandSlot {
            slot: TimestampMs(slot - k * 900_000),
            zone: zone_b.clone(),
            searches: 8,
            unmet: 8,
            returns: 0,
        })
        .collect();
    let city = mobility_core::CityId::parse("barcelona").unwrap();
    app.store.add_demand(&city, &history).await.unwrap();
    let (s, r) = call(
        &app,
        Method::POST,
        "/v1/admin/cities/barcelona/intel/refresh",
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 403, "riders cannot refresh: {r}");
    let (s, r) = call(
        &app,
        Method::POST,
        "/v1/admin/cities/barcelona/intel/refresh",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(s, 200, "{r}");

    // The public board.
    let board: Value = app
        .get("/v1/cities/barcelona/zones")
        .await
        .json()
        .await
        .unwrap();
    let zone = |z: &str| {
        board["zones"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["zone"] == z)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (a, b) = (zone(&zone_a), zone(&zone_b));
    assert_eq!(board["forecast_source"], "recent_rate", "{board}");
    assert_eq!(
        (b["multiplier"].as_f64(), b["end_credit_cents"].as_i64()),
        (Some(1.5), Some(100)),
        "{b}"
    );
    assert!(b["reason"].as_str().unwrap().contains("short"), "{b}");
    assert!(
        (b["forecast_demand"].as_f64().unwrap() - 64.0).abs() < 1e-9,
        "{b}"
    );
    assert_eq!(
        (
            a["multiplier"].as_f64(),
            a["start_discount_cents"].as_i64(),
            a["supply"].as_u64()
        ),
        (Some(0.8), Some(50), Some(5)),
        "{a}"
    );
    assert_eq!(board["incentive_budget"]["left_today"], 120);

    // A quote in zone A.
    let (s, q) = call(
        &app,
        Method::GET,
        &format!("/v1/vehicles/{id}/quote?minutes=10&km=2"),
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 200, "{q}");
    // 2.00 unlock + 10 min × 0.30 × 0.8 + 2 km × 1.00 × 0.8 − 0.50 start discount.
    assert_eq!(
        (q["multiplier"].as_f64(), q["start_discount"].as_i64()),
        (Some(0.8), Some(50)),
        "{q}"
    );
    assert_eq!(q["estimate"], 200 + 240 + 160 - 50, "{q}");
    assert_eq!(q["end_credit_zones"][0]["zone"], zone_b.as_str(), "{q}");

    // Staff see the forecast and the plan: spare scooters from A go to B, routed.
    let (s, f) = call(
        &app,
        Method::GET,
        "/v1/ops/forecast?city=barcelona",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(s, 200, "{f}");
    assert_eq!(
        f["forecast"]["zones"][&zone_b].as_array().map(Vec::len),
        Some(8),
        "{f}"
    );
    let (s, p) = call(
        &app,
        Method::GET,
        "/v1/ops/plan?city=barcelona",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert!(p["tasks"]["move"].as_u64().unwrap() >= 3, "{p}");
    let stops = p["routes"][0]["stops"].as_array().unwrap();
    let first_drop = stops.iter().position(|s| s["kind"] == "dropoff").unwrap();
    let first_pick = stops.iter().position(|s| s["kind"] == "pickup").unwrap();
    assert!(first_pick < first_drop, "{p}");
    assert!(stops[first_pick]["vehicle_id"].is_string(), "{p}");
    assert_eq!(stops.last().unwrap()["kind"], "depot");
    let (s, _) = call(
        &app,
        Method::GET,
        "/v1/ops/plan?city=barcelona",
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 403);

    // The trip: from A to B. The price locked at unlock holds; the start discount fits the
    // budget, the end credit no longer does.
    let (s, bk) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &rider,
        Some(json!({"vehicle_id": id})),
    )
    .await;
    assert_eq!(s, 201, "{bk}");
    let booking = bk["id"].as_str().unwrap().to_owned();
    let (s, bk) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/unlock"),
        &rider,
        None,
    )
    .await;
    assert_eq!((s, bk["state"].as_str()), (200, Some("on_trip")), "{bk}");
    report(&app, &id, b_lat, b_lon, 12_000).await;
    let (s, bk) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/end"),
        &rider,
        None,
    )
    .await;
    assert_eq!((s, bk["state"].as_str()), (200, Some("ended")), "{bk}");
    let r = &bk["receipt"];
    assert_eq!(r["multiplier"].as_f64(), Some(0.8), "{r}");
    // Under a minute: 0.30 × 0.8; 2 km × 1.00 × 0.8.
    assert_eq!(
        (r["time"].as_i64(), r["distance"].as_i64()),
        (Some(24), Some(160)),
        "{r}"
    );
    assert_eq!(r["incentives"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["incentives"][0]["kind"], "start_discount", "{r}");
    assert_eq!(r["total"], 200 + 24 + 160 - 50, "{r}");
    let board: Value = app
        .get("/v1/cities/barcelona/zones")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(board["incentive_budget"]["left_today"], 70, "{board}");

    // The trip that ended in B is a return: forecast at the recent rate (one a quarter hour),
    // and counted as arriving supply in B's price. (Returns are counted by a consumer of the
    // lifecycle stream: refresh until it has.)
    let mut back = 0.0;
    let mut f = Value::Null;
    for _ in 0..100 {
        let (s, _) = call(
            &app,
            Method::POST,
            "/v1/admin/cities/barcelona/intel/refresh",
            ADMIN,
            None,
        )
        .await;
        assert_eq!(s, 200);
        f = call(
            &app,
            Method::GET,
            "/v1/ops/forecast?city=barcelona",
            ADMIN,
            None,
        )
        .await
        .1;
        back = f["forecast"]["returns"][&zone_b]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        if back > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!((back - 8.0).abs() < 1e-9, "{f}");
    let board: Value = app
        .get("/v1/cities/barcelona/zones")
        .await
        .json()
        .await
        .unwrap();
    let b = board["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["zone"] == zone_b.as_str())
        .unwrap();
    assert!(
        (b["forecast_returns"].as_f64().unwrap() - 8.0).abs() < 1e-9,
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_lifecycle_and_admin_changes_reach_the_bus_through_the_outbox() {
    use mobility_core::{Domain, DomainEvent, VehicleState};
    let app = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.jwt_secret = Some(SECRET.into());
    })
    .await
    .unwrap();
    let scooter = vehicle(&app, "scooter", 80).await;
    let rider = riders(&app, 1).await.remove(0);
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/bookings",
        &rider,
        Some(json!({"vehicle_id": scooter})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let booking = b["id"].as_str().unwrap().to_owned();
    let (subject, to) = common::on_bus(&app, Domain::Booking, |e| match &e.event {
        DomainEvent::BookingChanged {
            booking: id,
            from: None,
            to,
            ..
        } if *id == booking => Some((e.subject.clone(), to.clone())),
        _ => None,
    })
    .await;
    assert_eq!(
        (subject.as_str(), to.as_str()),
        ("booking.barcelona", "reserved")
    );
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/bookings/{booking}/cancel"),
        &rider,
        None,
    )
    .await;
    assert_eq!(s, 200);
    common::on_bus(&app, Domain::Booking, |e| match &e.event {
        DomainEvent::BookingChanged {
            booking: id,
            from: Some(f),
            to,
            ..
        } if *id == booking && f == "reserved" && to == "cancelled" => Some(()),
        _ => None,
    })
    .await;
    // The vehicle was put in service and reserved: its MDS state changes are on the bus too.
    let states = common::on_bus(&app, Domain::Lifecycle, |e| match &e.event {
        DomainEvent::VehicleStateChanged {
            vehicle,
            to: VehicleState::Reserved,
            ..
        } if vehicle.to_string() == scooter => Some(e.subject.clone()),
        _ => None,
    })
    .await;
    assert_eq!(states, "lifecycle.barcelona");
    // Admin changes: who (the token by a digest prefix, never the secret), what, to what.
    let (actor, action) = common::on_bus(&app, Domain::Admin, |e| match &e.event {
        DomainEvent::AdminChanged {
            actor,
            action,
            target,
            ..
        } if target == "/v1/admin/cities/barcelona" => Some((actor.clone(), action.clone())),
        _ => None,
    })
    .await;
    assert_eq!(action, "PUT /v1/admin/cities/{id}");
    assert!(
        actor.starts_with("token:") && !actor.contains(ADMIN),
        "{actor}"
    );
    // Riders' own changes are not admin changes.
    let admin = app
        .bus
        .read(Domain::Admin, None, mobility_bus::StartAt::First, 1_000)
        .await
        .unwrap();
    assert!(admin.iter().all(|e| match &e.event {
        DomainEvent::AdminChanged { target, .. } => !target.starts_with("/v1/bookings"),
        _ => false,
    }));
    app.stop().await;
}
