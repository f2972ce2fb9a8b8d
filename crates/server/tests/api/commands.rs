//! Vehicle commands end to end: API → MQTT → a scripted vehicle → ack → API; failures,
//! time-outs, late acks, and acks a vehicle may not give.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use std::{net::SocketAddr, time::Duration};

use common::{ADMIN, TestApp, eventually};
use reqwest::Method;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// How the scripted vehicle answers a command.
#[derive(Clone, Copy)]
pub(crate) enum Reply {
    Ok,
    Fail,
    Silent,
}

pub(crate) struct Vehicle {
    pub(crate) id: String,
    pub(crate) client: AsyncClient,
    pub(crate) received: mpsc::UnboundedReceiver<Value>,
}

async fn register(app: &TestApp) -> Value {
    app.authed(Method::PUT, "/v1/admin/cities/barcelona", ADMIN)
        .json(&json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    let r = app
        .authed(Method::POST, "/v1/admin/vehicles", ADMIN)
        .json(&json!({"city": "barcelona", "type": "scooter"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// A vehicle that subscribes to its commands and answers each per `reply`.
pub(crate) async fn vehicle(addr: SocketAddr, creds: &Value, reply: Reply) -> Vehicle {
    let id = creds["id"].as_str().unwrap().to_owned();
    let mut o = MqttOptions::new(&id, addr.ip().to_string(), addr.port());
    o.set_credentials(&id, creds["device_secret"].as_str().unwrap());
    let (client, mut eventloop) = AsyncClient::new(o, 16);
    let (tx, received) = mpsc::unbounded_channel();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let responder = client.clone();
    let commands = format!("v1/vehicles/{id}/commands");
    let acks = format!("v1/vehicles/{id}/commands/ack");
    client.subscribe(&commands, QoS::AtLeastOnce).await.unwrap();
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
                    let _ = tx.send(cmd.clone());
                    let ack = match reply {
                        Reply::Ok => Some(json!({"id": cmd["id"], "status": "ok"})),
                        Reply::Fail => Some(
                            json!({"id": cmd["id"], "status": "failed", "detail": "wheel blocked"}),
                        ),
                        Reply::Silent => None,
                    };
                    if let Some(ack) = ack {
                        responder
                            .publish(&acks, QoS::AtLeastOnce, false, ack.to_string())
                            .await
                            .unwrap();
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .unwrap()
        .unwrap();
    Vehicle {
        id,
        client,
        received,
    }
}

pub(crate) async fn command(app: &TestApp, vehicle: &str, body: Value) -> (u16, Value) {
    let r = app
        .authed(
            Method::POST,
            &format!("/v1/vehicles/{vehicle}/commands"),
            ADMIN,
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn app() -> TestApp {
    TestApp::spawn(mobility_store::testsuite::sqlite().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_acknowledged_command_is_acked() {
    let app = app().await;
    let creds = register(&app).await;
    let mut v = vehicle(app.mqtt_addr.unwrap(), &creds, Reply::Ok).await;
    let (status, c) = command(
        &app,
        &v.id,
        json!({"command": "set_speed_limit", "speed_limit_kmh": 15, "wait": true}),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["state"], "acked");
    assert_eq!(c["command"], "set_speed_limit");
    let got = v.received.recv().await.unwrap();
    assert_eq!(
        (&got["id"], &got["command"], &got["speed_limit_kmh"]),
        (&c["id"], &json!("set_speed_limit"), &json!(15))
    );
    assert!(got["deadline_ms"].as_i64().unwrap() > 0);
    // Without wait the answer is 202 pending, and the record resolves afterwards.
    let (status, c) = command(&app, &v.id, json!({"command": "ring"})).await;
    assert_eq!((status, c["state"].as_str()), (202, Some("pending")));
    let id = c["id"].as_str().unwrap().to_owned();
    let done = eventually("the command is decided", || async {
        let c = app.admin_json(&format!("/v1/commands/{id}")).await;
        (c["state"] != "pending").then_some(c)
    })
    .await;
    assert_eq!(done["state"], "acked");
    let history: Value = app
        .authed(
            Method::GET,
            &format!("/v1/vehicles/{}/commands", v.id),
            ADMIN,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);
    drop(v.client);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_command_fails_with_the_vehicles_reason() {
    let app = app().await;
    let creds = register(&app).await;
    let v = vehicle(app.mqtt_addr.unwrap(), &creds, Reply::Fail).await;
    let (_, c) = command(&app, &v.id, json!({"command": "unlock", "wait": true})).await;
    assert_eq!(
        (c["state"].as_str(), c["detail"].as_str()),
        (Some("failed"), Some("wheel blocked"))
    );
    app.stop().await;
}

#[tokio::test]
async fn silence_times_out_and_a_late_ack_does_not_change_that() {
    let app = app().await;
    let creds = register(&app).await;
    let mut v = vehicle(app.mqtt_addr.unwrap(), &creds, Reply::Silent).await;
    let (_, c) = command(
        &app,
        &v.id,
        json!({"command": "lock", "timeout_s": 1, "wait": true}),
    )
    .await;
    assert_eq!(c["state"], "timed_out", "{c}");
    let got = v.received.recv().await.unwrap();
    // The vehicle answers after the deadline.
    v.client
        .publish(
            format!("v1/vehicles/{}/commands/ack", v.id),
            QoS::AtLeastOnce,
            false,
            json!({"id": got["id"], "status": "ok"}).to_string(),
        )
        .await
        .unwrap();
    let id = c["id"].as_str().unwrap();
    let late = eventually("the late ack is noted", || async {
        let c = app.admin_json(&format!("/v1/commands/{id}")).await;
        c.get("late_ack_at_ms").is_some().then_some(c)
    })
    .await;
    assert_eq!(late["state"], "timed_out");
    app.stop().await;
}

#[tokio::test]
async fn a_vehicle_cannot_answer_for_another() {
    let app = app().await;
    let a = register(&app).await;
    let b = register(&app).await;
    let va = vehicle(app.mqtt_addr.unwrap(), &a, Reply::Silent).await;
    let mut vb = vehicle(app.mqtt_addr.unwrap(), &b, Reply::Silent).await;
    let (_, c) = command(&app, &vb.id, json!({"command": "ring", "timeout_s": 2})).await;
    let _ = vb.received.recv().await.unwrap();
    // A publishes an ack for B's command on its own ack topic: refused as unknown.
    va.client
        .publish(
            format!("v1/vehicles/{}/commands/ack", va.id),
            QoS::AtLeastOnce,
            false,
            json!({"id": c["id"], "status": "ok"}).to_string(),
        )
        .await
        .unwrap();
    // (The metrics are the process's, shared with the other tests in this binary: that the
    // refusal is counted says the ack was seen; what it did to the command is checked below.)
    eventually("the refused ack is counted", || async {
        let m = app.get("/metrics").await.text().await.unwrap();
        m.contains(r#"command_acks_total{outcome="unknown_command"}"#)
            .then_some(())
    })
    .await;
    let c: Value = app
        .authed(
            Method::GET,
            &format!("/v1/commands/{}", c["id"].as_str().unwrap()),
            ADMIN,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["state"], "pending");
    app.stop().await;
}

#[tokio::test]
async fn bad_command_requests_are_refused() {
    let app = app().await;
    let creds = register(&app).await;
    let id = creds["id"].as_str().unwrap();
    for (body, status) in [
        (json!({"command": "self_destruct"}), 400),
        (json!({"command": "set_speed_limit"}), 400),
        (
            json!({"command": "set_speed_limit", "speed_limit_kmh": 500}),
            400,
        ),
        (json!({"command": "ring", "timeout_s": 0}), 400),
        (json!({"command": "ring", "timeout_s": 1000}), 400),
        (json!({"command": "ring", "colour": "red"}), 400),
    ] {
        assert_eq!(command(&app, id, body.clone()).await.0, status, "{body}");
    }
    assert_eq!(
        command(
            &app,
            "0190f1c2-7a3b-7cde-8f01-23456789abcd",
            json!({"command": "ring"})
        )
        .await
        .0,
        404
    );
    let gateway: Value = app
        .authed(Method::POST, "/v1/admin/tokens", ADMIN)
        .json(&json!({"role": "gateway", "label": "gw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .authed(
            Method::POST,
            &format!("/v1/vehicles/{id}/commands"),
            gateway["token"].as_str().unwrap(),
        )
        .json(&json!({"command": "ring"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        app.authed(Method::GET, "/v1/commands/nope", ADMIN)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.stop().await;
}
