//! Accounts over HTTP: sign-up, sign-in, access tokens per role, refresh rotation with reuse
//! detection, sign-out. On SQLite, and on PostgreSQL when `MOBILITY_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use common::{ADMIN, TestApp};
use mobility_store::testsuite::TestStore;
use reqwest::Method;
use serde_json::{Value, json};

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.client.post(app.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let r = app.authed(Method::GET, path, token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn journey(store: Option<TestStore>) {
    let Some(app) = TestApp::spawn(store).await else {
        return;
    };
    // Sign up.
    let creds = json!({"email": " Ana@Example.com ", "password": "correct horse battery"});
    let (status, signed) = post(&app, "/v1/auth/signup", None, creds.clone()).await;
    assert_eq!(status, 201, "{signed}");
    assert_eq!(signed["user"]["email"], "ana@example.com");
    assert_eq!(signed["user"]["role"], "rider");
    assert_eq!(signed["token_type"], "Bearer");
    let access = signed["access_token"].as_str().unwrap().to_owned();
    let first_refresh = signed["refresh_token"].as_str().unwrap().to_owned();
    let (status, dup) = post(&app, "/v1/auth/signup", None, creds.clone()).await;
    assert_eq!(status, 409, "{dup}");
    for bad in [
        json!({"email": "ana", "password": "correct horse battery"}),
        json!({"email": "bo@example.com", "password": "short"}),
        json!({"email": "bo@example.com"}),
    ] {
        let (status, p) = post(&app, "/v1/auth/signup", None, bad).await;
        assert_eq!(status, 400, "{p}");
        assert!(p["type"].as_str().unwrap().contains("/problems/"), "{p}");
    }

    // Who am I; what may a rider do.
    let (status, me) = get(&app, "/v1/me", &access).await;
    assert_eq!(
        (status, me["email"].as_str()),
        (200, Some("ana@example.com"))
    );
    let (status, _) = get(&app, "/v1/me", ADMIN).await;
    assert_eq!(status, 401, "an API token is not an account");
    let mut tampered = access.clone();
    tampered.pop();
    tampered.push(if access.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(get(&app, "/v1/me", &tampered).await.0, 401);
    assert_eq!(get(&app, "/v1/me", "a.b.c").await.0, 401);
    let (status, body) = get(&app, "/v1/vehicles/nearby?lat=41.38&lon=2.17", &access).await;
    assert_eq!(status, 200, "riders search nearby: {body}");
    assert_eq!(
        get(&app, "/v1/fleet/stats?city=barcelona", &access).await.0,
        403
    );
    assert_eq!(get(&app, "/v1/admin/tokens", &access).await.0, 403);

    // Sign in: wrong password and unknown e-mail look the same.
    let (s1, p1) = post(
        &app,
        "/v1/auth/login",
        None,
        json!({"email": "ana@example.com", "password": "wrong horse battery"}),
    )
    .await;
    let (s2, p2) = post(
        &app,
        "/v1/auth/login",
        None,
        json!({"email": "nobody@example.com", "password": "wrong horse battery"}),
    )
    .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(p1["detail"], p2["detail"]);
    let (status, login) = post(&app, "/v1/auth/login", None, creds.clone()).await;
    assert_eq!(status, 200, "{login}");

    // Refresh rotates; using a refresh token twice revokes its login (but not other logins).
    let (status, second) = post(
        &app,
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": first_refresh}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(
        get(&app, "/v1/me", second["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    let (status, reused) = post(
        &app,
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": first_refresh}),
    )
    .await;
    assert_eq!(status, 401, "{reused}");
    assert!(
        reused["detail"].as_str().unwrap().contains("already used"),
        "{reused}"
    );
    let (status, _) = post(
        &app,
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": second_refresh}),
    )
    .await;
    assert_eq!(status, 401, "the stolen family is revoked");
    let other = login["refresh_token"].as_str().unwrap();
    let (status, third) = post(
        &app,
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": other}),
    )
    .await;
    assert_eq!(status, 200, "another login is unaffected: {third}");

    // Sign out ends that login.
    let third_refresh = third["refresh_token"].as_str().unwrap();
    let (status, _) = post(
        &app,
        "/v1/auth/logout",
        None,
        json!({"refresh_token": third_refresh}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = post(
        &app,
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": third_refresh}),
    )
    .await;
    assert_eq!(status, 401);

    // Admins create staff accounts; staff see the fleet; riders cannot create accounts for others.
    let staff =
        json!({"email": "ops@example.com", "password": "staff password 1", "role": "staff"});
    assert_eq!(
        post(&app, "/v1/admin/users", Some(&access), staff.clone())
            .await
            .0,
        403
    );
    let (status, created) = post(&app, "/v1/admin/users", Some(ADMIN), staff).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["role"], "staff");
    let (_, staff_login) = post(
        &app,
        "/v1/auth/login",
        None,
        json!({"email": "ops@example.com", "password": "staff password 1"}),
    )
    .await;
    let staff_access = staff_login["access_token"].as_str().unwrap();
    let (status, _) = get(&app, "/v1/admin/vehicles?city=barcelona", staff_access).await;
    assert_eq!(status, 200);
    assert_eq!(get(&app, "/v1/admin/tokens", staff_access).await.0, 403);
    let (status, _) = post(
        &app,
        "/v1/admin/users",
        Some(ADMIN),
        json!({"email": "gw@example.com", "password": "gateway password", "role": "gateway"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post(
        &app,
        "/v1/admin/tokens",
        Some(ADMIN),
        json!({"role": "rider", "label": "x"}),
    )
    .await;
    assert_eq!(status, 400, "riders have accounts, not API tokens");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_journey_on_sqlite() {
    journey(mobility_store::testsuite::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_journey_on_postgres() {
    journey(mobility_store::testsuite::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_and_spare_trusted_services() {
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.rate_limit_per_s = 1;
        s.sign_in_per_min = 6;
        s.cors_origins = vec!["https://app.example.com".into()];
    })
    .await
    else {
        return;
    };
    // Sign-in attempts per address: a burst of 2, then 429.
    let creds = json!({"email": "ana@example.com", "password": "correct horse battery"});
    let (s, signed) = post(&app, "/v1/auth/signup", None, creds.clone()).await;
    assert_eq!(s, 201, "{signed}");
    let (s, _) = post(&app, "/v1/auth/login", None, creds.clone()).await;
    assert_eq!(s, 200);
    let r = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["type"].as_str().unwrap().ends_with("rate-limited"),
        "{body}"
    );

    // Per account: a burst of 2 a second.
    let access = signed["access_token"].as_str().unwrap();
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(get(&app, "/v1/me", access).await.0);
    }
    assert_eq!(&codes[..2], &[200, 200]);
    assert!(codes[2..].contains(&429), "{codes:?}");

    // Admin credentials and health checks are not limited.
    for _ in 0..30 {
        assert_eq!(get(&app, "/v1/admin/tokens", ADMIN).await.0, 200);
        assert_eq!(app.get("/healthz").await.status(), 200);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("reason=\"rate-limited\""),
        "rejections are counted"
    );

    // Security headers on API answers.
    let r = app.get("/v1/cities").await;
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(r.headers()[h], v);
    }
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    // CORS: the configured origin may call, others get no grant.
    let pre = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/v1/cities"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = pre("https://app.example.com").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = pre("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}
