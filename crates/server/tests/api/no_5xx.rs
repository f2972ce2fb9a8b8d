//! No client mistake yields a 5xx: every documented route, with its methods, gets garbage path
//! parameters, query strings and bodies (deterministic pseudo-random cases, admin token so that
//! input reaches the handlers), and must answer below 500 with a problem document for errors.
//! A few real entities exist so that handlers get past their lookups too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use common::{ADMIN, TestApp, now_ms};
use reqwest::Method;
use serde_json::{Value, json};

/// Routes besides the documented operations (`mobility_api::openapi::OPS`).
const PAGES: &[&str] = &["/", "/ui/", "/ui/config.json", "/docs"];

/// A tiny deterministic generator (xorshift64*): the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[usize::try_from(self.next() % xs.len() as u64).unwrap()]
    }
}

fn segment(rng: &mut Rng, real: &[String]) -> String {
    let garbage = [
        "nope",
        "00000000-0000-0000-0000-000000000000",
        "0190f1c2-7a3b-7cde-8f01-23456789abcd",
        "%C3%A4%F0%9F%9A%B2",
        "%2E%2E",
        "a%00b",
        "micromobility",
        "car-share",
        "gbfs.json",
        "vehicle_status.json",
        "barcelona",
        "scooter",
        "webhook",
        "email",
        "-1",
        "99999999999999999999",
    ];
    if rng.next().is_multiple_of(3) && !real.is_empty() {
        return rng.pick(real).clone();
    }
    if rng.next().is_multiple_of(7) {
        return "x".repeat(300 + (rng.next() % 3000) as usize);
    }
    (*rng.pick(&garbage)).to_owned()
}

fn query(rng: &mut Rng) -> String {
    let keys = [
        "city",
        "lat",
        "lon",
        "radius_m",
        "limit",
        "type",
        "min_battery",
        "after",
        "before",
        "state",
        "vehicle_id",
        "user_id",
        "end_time",
        "event_time",
        "telemetry_time",
        "start_time",
        "minutes",
        "resolution",
        "layer",
        "bbox",
        "max_hz",
        "currency",
        "km",
    ];
    let values = [
        "",
        "0",
        "-1",
        "1e309",
        "NaN",
        "barcelona",
        "2026-11-23T16",
        "2026-13-40T99",
        "41.39",
        "2.17",
        "999999999999999999999",
        "%FF",
        "a,b,c",
        "true",
        "scooter,ebike",
        "ended",
    ];
    (0..rng.next() % 4)
        .map(|_| format!("{}={}", rng.pick(&keys), rng.pick(&values)))
        .collect::<Vec<_>>()
        .join("&")
}

fn body(rng: &mut Rng) -> Option<String> {
    let leaves = [
        json!(null),
        json!(0),
        json!(-1),
        json!(1.5e300),
        json!(""),
        json!("x"),
        json!(true),
        json!([]),
        json!({}),
        json!("2026-11-23T16"),
        json!(i64::MAX),
    ];
    let keys = [
        "name",
        "email",
        "password",
        "role",
        "city",
        "type",
        "vehicle_id",
        "amount",
        "currency",
        "changes",
        "event_types",
        "vehicle_state",
        "geometry",
        "kind",
        "enabled",
        "address",
        "plan_id",
        "price",
        "decision",
        "reason",
        "command",
        "agency",
        "summary",
        "vehicles",
        "lat",
        "lon",
        "ts",
        "full_name",
        "valid_days",
    ];
    match rng.next() % 6 {
        0 => None,
        1 => Some("{not json".into()),
        2 => Some("[".repeat(5_000)),
        _ => {
            let mut o = serde_json::Map::new();
            for _ in 0..rng.next() % 5 {
                o.insert(
                    (*rng.pick(&keys)).to_owned(),
                    if rng.next().is_multiple_of(4) {
                        json!([rng.pick(&leaves).clone(), {"lat": 95, "lon": "x"}])
                    } else {
                        rng.pick(&leaves).clone()
                    },
                );
            }
            Some(Value::Object(o).to_string())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_answers_a_client_mistake_with_a_5xx() {
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.rate_limit_per_s = 100_000;
        s.sign_in_per_min = 100_000;
    })
    .await
    else {
        return;
    };
    // Some real things for lookups to find.
    let r = app
        .authed(Method::PUT, "/v1/admin/cities/barcelona", ADMIN)
        .json(&json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = app
        .authed(Method::POST, "/v1/admin/vehicles", ADMIN)
        .json(&json!({"city": "barcelona", "type": "scooter"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let vehicle = v["id"].as_str().unwrap().to_owned();
    app.authed(Method::POST, "/v1/ingest/telemetry", ADMIN)
        .json(&json!([{"vehicle_id": vehicle, "ts": now_ms(), "lat": 41.39, "lon": 2.17}]))
        .send()
        .await
        .unwrap();
    let real = vec![vehicle, "barcelona".to_owned()];
    // An account (for /v1/me and bookings) and an agency token (for MDS) besides the admin token.
    let password = "correct horse battery";
    let r = app
        .authed(Method::POST, "/v1/admin/users", ADMIN)
        .json(&json!({"email": "ops@example.com", "password": password, "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let session: Value = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "ops@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = session["access_token"].as_str().unwrap().to_owned();
    let agency: Value = app
        .authed(Method::POST, "/v1/admin/mds/tokens", ADMIN)
        .json(&json!({"agency": "City", "city": "barcelona"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agency = agency["token"].as_str().unwrap().to_owned();
    let token_for = |route: &str| -> String {
        if route.starts_with("/mds/") {
            agency.clone()
        } else if route.starts_with("/v1/me") || route.starts_with("/v1/bookings") {
            account.clone()
        } else {
            ADMIN.to_owned()
        }
    };

    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    let mut routes: Vec<&str> = mobility_api::openapi::OPS
        .iter()
        .map(|o| o.path)
        .chain(PAGES.iter().copied())
        .collect();
    routes.sort_unstable();
    routes.dedup();
    for route in routes {
        // The methods the route takes (405 for the others), found by asking.
        let probe = app.url(&route.replace(['{', '}'], ""));
        let mut allowed = Vec::new();
        for m in &methods {
            let r = app
                .client
                .request(m.clone(), &probe)
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap();
            if r.status().as_u16() != 405 {
                allowed.push(m.clone());
            }
        }
        assert!(
            !allowed.is_empty() || route.starts_with("/ui"),
            "{route} takes no method"
        );
        if allowed.is_empty() {
            continue;
        }
        for _ in 0..25 {
            let path: String = route
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        segment(&mut rng, &real)
                    } else {
                        s.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let q = query(&mut rng);
            let url = if q.is_empty() {
                app.url(&path)
            } else {
                app.url(&format!("{path}?{q}"))
            };
            let method = rng.pick(&allowed).clone();
            let mut req = app.client.request(method.clone(), url.clone());
            if !rng.next().is_multiple_of(5) {
                req = req.bearer_auth(token_for(route));
            }
            if rng.next().is_multiple_of(4) {
                req = req.header("idempotency-key", segment(&mut rng, &[]));
            }
            if let Some(b) = body(&mut rng) {
                req = req.header("content-type", "application/json").body(b);
            }
            let r = req.send().await.unwrap();
            cases += 1;
            let status = r.status();
            *statuses.entry(status.as_u16()).or_default() += 1;
            if status.is_server_error() {
                let text = r.text().await.unwrap_or_default();
                failures.push(format!(
                    "{method} {url} -> {status}: {}",
                    &text[..text.len().min(300)]
                ));
            } else if status.is_client_error() {
                let ct = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap_or("").to_owned());
                if ct.as_deref() != Some("application/problem+json") {
                    failures.push(format!(
                        "{method} {url} -> {status} without a problem document ({ct:?})"
                    ));
                }
            }
        }
    }
    eprintln!("{cases} cases; answers by status: {statuses:?}");
    assert!(cases > 1_500);
    assert!(
        statuses.keys().any(|s| *s < 300),
        "some cases got through to a handler"
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}
