//! The WebSocket vehicle stream: snapshot, viewport filtering, coalescing under the rate bound,
//! viewport moves, and authentication.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use std::time::{Duration, Instant};

use common::{ADMIN, TestApp, now_ms};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::{connect_async, tungstenite::Message};

async fn call(app: &TestApp, method: Method, path: &str, body: Value) -> Value {
    let r = app
        .authed(method, path, ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

fn ids(frame: &Value) -> Vec<String> {
    let mut v: Vec<String> = frame["vehicles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_stream_shows_the_viewport_at_a_bounded_rate() {
    let app = TestApp::spawn(mobility_store::testsuite::sqlite().await)
        .await
        .unwrap();
    call(
        &app,
        Method::PUT,
        "/v1/admin/cities/barcelona",
        json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"}),
    )
    .await;
    let inside = call(
        &app,
        Method::POST,
        "/v1/admin/vehicles",
        json!({"city": "barcelona", "type": "scooter"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let outside = call(
        &app,
        Method::POST,
        "/v1/admin/vehicles",
        json!({"city": "barcelona", "type": "ebike"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t0 = now_ms();
    call(
        &app,
        Method::POST,
        "/v1/ingest/telemetry",
        json!([
            {"vehicle_id": inside, "ts": t0, "lat": 41.39, "lon": 2.17},
            {"vehicle_id": outside, "ts": t0, "lat": 41.45, "lon": 2.20},
        ]),
    )
    .await;

    let url = format!(
        "ws://{}/v1/stream/vehicles?bbox=41.38,2.16,41.40,2.18&max_hz=4&access_token={ADMIN}",
        app.addr
    );
    let (mut ws, _) = connect_async(url).await.unwrap();
    let first = next_frame(&mut ws).await;
    assert_eq!(first["type"], "snapshot");
    assert_eq!(ids(&first), vec![inside.clone()]);

    // 40 quick moves of both vehicles: the client sees only the inside one, coalesced.
    let start = Instant::now();
    for i in 1..=40 {
        call(
            &app,
            Method::POST,
            "/v1/ingest/telemetry",
            json!([
                {"vehicle_id": inside, "ts": t0 + i, "lat": 41.39 + (i as f64) * 1e-5, "lon": 2.17},
                {"vehicle_id": outside, "ts": t0 + i, "lat": 41.45, "lon": 2.20},
            ]),
        )
        .await;
    }
    let mut frames = Vec::new();
    let mut last_lat = 0.0;
    while last_lat < 41.39 + 40.0 * 1e-5 - 1e-9 {
        let f = next_frame(&mut ws).await;
        assert_eq!(f["type"], "changes");
        assert_eq!(ids(&f), vec![inside.clone()], "only the viewport");
        last_lat = f["vehicles"][0]["lat"].as_f64().unwrap();
        frames.push(f);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let bound = (elapsed * 4.0).ceil() as usize + 1;
    assert!(
        frames.len() <= bound,
        "{} frames in {elapsed:.2} s at max_hz=4",
        frames.len()
    );
    assert!(frames.len() < 40, "updates are coalesced");

    // Moving the viewport answers with a snapshot of the new one.
    ws.send(Message::Text(
        json!({"bbox": [41.44, 2.19, 41.46, 2.21]})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let moved = loop {
        let f = next_frame(&mut ws).await;
        if f["type"] == "snapshot" {
            break f;
        }
    };
    assert_eq!(ids(&moved), vec![outside.clone()]);
    ws.send(Message::Text("{\"bbox\": [1, 2]}".into()))
        .await
        .unwrap();
    let err = loop {
        let f = next_frame(&mut ws).await;
        if f["type"] == "error" {
            break f;
        }
    };
    assert!(err["detail"].as_str().unwrap().contains("bbox"));
    app.stop().await;
}

#[tokio::test]
async fn the_stream_needs_a_staff_token_and_a_valid_viewport() {
    let app = TestApp::spawn(mobility_store::testsuite::sqlite().await)
        .await
        .unwrap();
    let gateway = call(
        &app,
        Method::POST,
        "/v1/admin/tokens",
        json!({"role": "gateway", "label": "gw"}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("ws://{}/v1/stream/vehicles", app.addr);
    let status = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
        Ok(_) => 101,
    };
    assert_eq!(
        status(
            connect_async(format!("{base}?bbox=41,2,42,3"))
                .await
                .map(|_| ())
        ),
        401
    );
    assert_eq!(
        status(
            connect_async(format!("{base}?bbox=41,2,42,3&access_token=nope"))
                .await
                .map(|_| ())
        ),
        401
    );
    assert_eq!(
        status(
            connect_async(format!("{base}?bbox=41,2,42,3&access_token={gateway}"))
                .await
                .map(|_| ())
        ),
        403
    );
    assert_eq!(
        status(
            connect_async(format!("{base}?bbox=42,2,41,3&access_token={ADMIN}"))
                .await
                .map(|_| ())
        ),
        400
    );
    assert_eq!(
        status(
            connect_async(format!(
                "{base}?bbox=41,2,42,3&max_hz=100&access_token={ADMIN}"
            ))
            .await
            .map(|_| ())
        ),
        400
    );
    assert_eq!(
        status(
            connect_async(format!("{base}?bbox=41,2,42,3&access_token={ADMIN}"))
                .await
                .map(|_| ())
        ),
        101
    );
    app.stop().await;
}

/// A viewport with more vehicles than a frame holds gets them all: the snapshot continues in
/// `snapshot_more` frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_snapshot_continues_over_several_frames() {
    let app = TestApp::spawn(mobility_store::testsuite::sqlite().await)
        .await
        .unwrap();
    call(
        &app,
        Method::PUT,
        "/v1/admin/cities/barcelona",
        json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"}),
    )
    .await;
    let t0 = now_ms();
    let mut all = Vec::new();
    for batch in 0..6 {
        let body: Vec<Value> = (0..1_000)
            .map(|_| json!({"city": "barcelona", "type": "scooter"}))
            .collect();
        let r = call(
            &app,
            Method::POST,
            "/v1/admin/vehicles/batch",
            json!({"vehicles": body}),
        )
        .await;
        let ids: Vec<String> = r["vehicles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect();
        let reports: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({"vehicle_id": id, "ts": t0, "lat": 41.30 + f64::from(batch) * 0.02, "lon": 2.10 + i as f64 * 0.0001})
            })
            .collect();
        call(&app, Method::POST, "/v1/ingest/telemetry", json!(reports)).await;
        all.extend(ids);
    }
    all.sort();
    let url = format!(
        "ws://{}/v1/stream/vehicles?bbox=41.2,2.0,41.5,2.3&access_token={ADMIN}",
        app.addr
    );
    let (mut ws, _) = connect_async(url).await.unwrap();
    let first = next_frame(&mut ws).await;
    assert_eq!(first["type"], "snapshot");
    assert_eq!(first["vehicles"].as_array().unwrap().len(), 5_000);
    let more = next_frame(&mut ws).await;
    assert_eq!(more["type"], "snapshot_more");
    let mut seen = ids(&first);
    seen.extend(ids(&more));
    seen.sort();
    assert_eq!(seen, all, "every vehicle, once");
    app.stop().await;
}
