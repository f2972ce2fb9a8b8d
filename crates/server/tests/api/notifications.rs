//! E-mail and push notifications end to end: a real SMTP conversation with a mail sink on a
//! loopback port, and a JSON POST to a push gateway; each event is sent once per channel.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use std::sync::{Arc, Mutex};

use common::{ADMIN, TestApp, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// A minimal SMTP server that accepts every message and keeps its DATA.
async fn mail_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            write.write_all(b"354 go ahead\r\n").await.unwrap();
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            kept.lock().unwrap().push(data);
                            b"250 queued\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, got)
}

/// A push gateway that records what it is asked to send.
async fn push_gateway() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    use axum::{extract::State, http::HeaderMap, routing::post};
    type Shared = Arc<Mutex<Vec<(String, Value)>>>;
    let got: Shared = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route(
            "/send",
            post(|State(got): State<Shared>, headers: HeaderMap, body: axum::Json<Value>| async move {
                let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                got.lock().unwrap().push((auth, body.0));
                axum::http::StatusCode::ACCEPTED
            }),
        )
        .with_state(got.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyc_results_arrive_by_email_and_push_once() {
    let (smtp_port, mails) = mail_sink().await;
    let (push_url, pushes) = push_gateway().await;
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, move |s| {
        s.smtp_url = Some(format!("smtp://127.0.0.1:{smtp_port}"));
        s.smtp_from = "Mobility <no-reply@example.com>".into();
        s.push_url = Some(push_url);
        s.push_token = Some("gateway-secret".into());
        s.rate_limit_per_s = 10_000;
    })
    .await
    else {
        return;
    };
    let password = "correct horse battery";
    let r = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(&json!({"email": "ada@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let session: Value = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rider = session["access_token"].as_str().unwrap().to_owned();

    // E-mail goes to the account's address unless another is given; push needs a device token.
    let (s, e) = call(
        &app,
        Method::PUT,
        "/v1/me/notifications/email",
        &rider,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(
        (s, e["address"].as_str()),
        (200, Some("ada@example.com")),
        "{e}"
    );
    assert!(e.get("signing_key").is_none());
    assert_eq!(
        call(
            &app,
            Method::PUT,
            "/v1/me/notifications/push",
            &rider,
            Some(json!({"enabled": true}))
        )
        .await
        .0,
        400
    );
    let (s, _) = call(
        &app,
        Method::PUT,
        "/v1/me/notifications/push",
        &rider,
        Some(json!({"enabled": true, "address": "device-token-1"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        call(
            &app,
            Method::PUT,
            "/v1/me/notifications/email",
            &rider,
            Some(json!({"enabled": true, "address": "not an address"}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &app,
            Method::PUT,
            "/v1/me/notifications/sms",
            &rider,
            Some(json!({"enabled": true, "address": "+34600000000"}))
        )
        .await
        .0,
        400
    );

    // A KYC decision is announced on both channels.
    let (s, k) = call(&app, Method::POST, "/v1/me/kyc", &rider,
        Some(json!({"kind": "identity", "full_name": "Ada Lovelace", "date_of_birth": "1990-12-10", "document_number": "X1234567"}))).await;
    assert_eq!(s, 201, "{k}");
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/kyc/{}/decision", k["id"].as_str().unwrap()),
        ADMIN,
        Some(json!({"decision": "rejected", "reason": "the photo is blurred"})),
    )
    .await;
    assert_eq!(s, 200);
    let mail = eventually("the e-mail arrives", || {
        let mails = mails.clone();
        async move { mails.lock().unwrap().first().cloned() }
    })
    .await;
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    assert!(
        mail.contains("From: Mobility <no-reply@example.com>"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: Your identity check: rejected"),
        "{mail}"
    );
    assert!(mail.contains("the photo is blurred"), "{mail}");
    let (auth, push) = eventually("the push arrives", || {
        let pushes = pushes.clone();
        async move { pushes.lock().unwrap().first().cloned() }
    })
    .await;
    assert_eq!(auth, "Bearer gateway-secret");
    assert_eq!(push["to"], "device-token-1");
    assert_eq!(push["title"], "Your identity check: rejected");
    // Once per event and channel, however often the worker runs.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        (mails.lock().unwrap().len(), pushes.lock().unwrap().len()),
        (1, 1)
    );
    app.stop().await;
}

/// Without a provider configured, the channel cannot be turned on.
#[tokio::test]
async fn channels_without_a_provider_are_refused() {
    let Some(app) = TestApp::spawn(mobility_store::testsuite::sqlite().await).await else {
        return;
    };
    let password = "correct horse battery";
    app.client
        .post(app.url("/v1/auth/signup"))
        .json(&json!({"email": "bo@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    let session: Value = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "bo@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rider = session["access_token"].as_str().unwrap().to_owned();
    let (s, e) = call(
        &app,
        Method::PUT,
        "/v1/me/notifications/email",
        &rider,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["detail"].as_str().unwrap().contains("no email provider"),
        "{e}"
    );
    app.stop().await;
}
