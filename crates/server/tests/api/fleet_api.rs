//! The fleet API end to end over HTTP: least-privilege auth, cities, vehicle registration,
//! batch telemetry ingest with its rules, nearby search, vehicle detail and stats.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use common::{ADMIN, TestApp, now_ms};
use reqwest::Method;
use serde_json::{Value, json};

fn barcelona_area() -> Value {
    json!({"type": "Polygon", "coordinates": [[[2.07, 41.32], [2.23, 41.32], [2.23, 41.47], [2.07, 41.47], [2.07, 41.32]]]})
}

async fn setup_city(app: &TestApp) {
    let r = app
        .authed(Method::PUT, "/v1/admin/cities/barcelona", ADMIN)
        .json(&json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR", "operating_area": barcelona_area()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn register(app: &TestApp, vehicle_type: &str) -> Value {
    let r = app
        .authed(Method::POST, "/v1/admin/vehicles", ADMIN)
        .json(&json!({"city": "barcelona", "type": vehicle_type}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn token(app: &TestApp, role: &str) -> String {
    let r = app
        .authed(Method::POST, "/v1/admin/tokens", ADMIN)
        .json(&json!({"role": role, "label": format!("test {role}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn ingest(app: &TestApp, token: &str, reports: Value) -> Value {
    let r = app
        .authed(Method::POST, "/v1/ingest/telemetry", token)
        .json(&reports)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

macro_rules! fleet_tests {
    ($backend:ident, $make:path) => {
        mod $backend {
            use super::*;

            async fn app() -> Option<TestApp> {
                TestApp::spawn($make().await).await
            }

            #[tokio::test]
            async fn every_role_gets_exactly_its_rights() {
                let Some(app) = app().await else { return };
                setup_city(&app).await;
                let staff = token(&app, "staff").await;
                let gateway = token(&app, "gateway").await;

                let r = app.client.get(app.url("/v1/fleet/stats?city=barcelona")).send().await.unwrap();
                assert_eq!(r.status(), 401);
                assert_eq!(r.headers()["www-authenticate"], "Bearer");
                assert_eq!(r.headers()["content-type"], "application/problem+json");
                let r = app.authed(Method::GET, "/v1/fleet/stats?city=barcelona", "wrong").send().await.unwrap();
                assert_eq!(r.status(), 401);
                assert_eq!(app.authed(Method::GET, "/v1/fleet/stats?city=barcelona", &staff).send().await.unwrap().status(), 200);
                // Staff cannot configure; gateways can only submit telemetry.
                let r = app.authed(Method::POST, "/v1/admin/vehicles", &staff)
                    .json(&json!({"city": "barcelona", "type": "scooter"})).send().await.unwrap();
                assert_eq!(r.status(), 403);
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["type"], "/problems/forbidden");
                assert_eq!(app.authed(Method::GET, "/v1/fleet/stats?city=barcelona", &gateway).send().await.unwrap().status(), 403);
                assert_eq!(app.authed(Method::POST, "/v1/ingest/telemetry", &staff).json(&json!([])).send().await.unwrap().status(), 403);
                assert_eq!(app.authed(Method::POST, "/v1/ingest/telemetry", &gateway).json(&json!([])).send().await.unwrap().status(), 200);
                // The city list is public.
                let cities: Value = app.get("/v1/cities").await.json().await.unwrap();
                assert_eq!(cities[0]["id"], "barcelona");
                assert_eq!(cities[0]["operating_area"]["type"], "Polygon");
                app.stop().await;
            }

            #[tokio::test]
            async fn revoked_tokens_stop_working() {
                let Some(app) = app().await else { return };
                let staff = token(&app, "staff").await;
                assert_eq!(app.authed(Method::GET, "/v1/cities", &staff).send().await.unwrap().status(), 200);
                let list: Value = app.authed(Method::GET, "/v1/admin/tokens", ADMIN).send().await.unwrap().json().await.unwrap();
                let id = list[0]["id"].as_str().unwrap().to_owned();
                assert!(list[0].get("token").is_none(), "secrets are shown only once");
                let r = app.authed(Method::DELETE, &format!("/v1/admin/tokens/{id}"), ADMIN).send().await.unwrap();
                assert_eq!(r.status(), 204);
                let r = app.authed(Method::GET, "/v1/fleet/stats?city=barcelona", &staff).send().await.unwrap();
                assert_eq!(r.status(), 401);
                let r = app.authed(Method::DELETE, "/v1/admin/tokens/nope", ADMIN).send().await.unwrap();
                assert_eq!(r.status(), 404);
                app.stop().await;
            }

            #[tokio::test]
            async fn telemetry_flows_into_nearby_search_detail_and_stats() {
                let Some(app) = app().await else { return };
                setup_city(&app).await;
                let gateway = token(&app, "gateway").await;
                let staff = token(&app, "staff").await;
                let mut ids = Vec::new();
                for t in ["scooter", "scooter", "ebike", "car"] {
                    let v = register(&app, t).await;
                    assert_eq!(v["state"], "removed", "registered vehicles start in the depot");
                    assert_eq!(v["device_secret"].as_str().unwrap().len(), 64);
                    assert_eq!(v["mqtt"]["username"], v["id"]);
                    ids.push(v["id"].as_str().unwrap().to_owned());
                }
                let now = now_ms();
                // Four vehicles 0, ~110 m, ~220 m and ~1.1 km north of Plaça de Catalunya.
                let reports: Vec<Value> = [0.0, 0.001, 0.002, 0.01]
                    .iter()
                    .zip(&ids)
                    .map(|(d, id)| json!({"vehicle_id": id, "ts": now, "lat": 41.387 + d, "lon": 2.170, "battery_pct": 80, "locked": true}))
                    .collect();
                let res = ingest(&app, &gateway, json!(reports)).await;
                assert_eq!((res["applied"].as_u64(), res["rejected"].as_u64()), (Some(4), Some(0)));

                // Freshly registered vehicles are `removed` (not rentable): a default search finds none.
                let q = "/v1/vehicles/nearby?lat=41.387&lon=2.170&radius_m=500";
                let body: Value = app.authed(Method::GET, q, &staff).send().await.unwrap().json().await.unwrap();
                assert_eq!(body["vehicles"].as_array().unwrap().len(), 0);
                let body: Value = app.authed(Method::GET, &format!("{q}&state=any"), &staff).send().await.unwrap().json().await.unwrap();
                let found: Vec<&str> = body["vehicles"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
                assert_eq!(found, vec![ids[0].as_str(), ids[1].as_str(), ids[2].as_str()], "closest first, 1.1 km one outside");
                let d1 = body["vehicles"][1]["distance_m"].as_f64().unwrap();
                assert!((105.0..=117.0).contains(&d1), "{d1}");
                let body: Value = app.authed(Method::GET, "/v1/vehicles/nearby?lat=41.387&lon=2.170&radius_m=2000&state=any&type=ebike,car", &staff).send().await.unwrap().json().await.unwrap();
                assert_eq!(body["vehicles"].as_array().unwrap().len(), 2);
                assert_eq!(body["vehicles"][0]["type"], "ebike");

                let v: Value = app.authed(Method::GET, &format!("/v1/vehicles/{}", ids[3]), &staff).send().await.unwrap().json().await.unwrap();
                assert_eq!(v["type"], "car");
                assert_eq!(v["locked"], true);
                assert_eq!(v["battery_pct"], 80);
                assert_eq!(v["reported_at_ms"], now);

                let s: Value = app.authed(Method::GET, "/v1/fleet/stats?city=barcelona", &staff).send().await.unwrap().json().await.unwrap();
                assert_eq!(s["total"], 4);
                assert_eq!(s["by_state"]["removed"], 4);
                assert_eq!(s["by_type"]["scooter"], 2);
                assert_eq!(s["battery"]["80-100"], 4);
                app.stop().await;
            }

            #[tokio::test]
            async fn ingest_rules_reject_and_count_every_bad_report() {
                let Some(app) = app().await else { return };
                setup_city(&app).await;
                let gateway = token(&app, "gateway").await;
                let id = register(&app, "scooter").await["id"].as_str().unwrap().to_owned();
                let now = now_ms();
                let ok = |ts: i64, lat: f64| json!({"vehicle_id": id, "ts": ts, "lat": lat, "lon": 2.17});
                let res = ingest(&app, &gateway, json!([
                    ok(now, 41.39),                                   // 0 applied
                    ok(now, 41.39),                                   // 1 duplicate
                    ok(now - 5_000, 41.40),                           // 2 stale: must not overwrite
                    ok(now + 60_000, 41.41),                          // 3 from the future
                    json!({"vehicle_id": "0190f1c2-7a3b-7cde-8f01-23456789abcd", "ts": now, "lat": 41.0, "lon": 2.0}), // 4 unknown
                    json!({"vehicle_id": id, "ts": now + 1, "lat": 95.0, "lon": 2.17}), // 5 bad latitude
                    json!({"hello": "world"}),                        // 6 malformed
                    json!({"vehicle_id": id, "ts": now + 2, "lat": 41.0, "lon": 2.0, "battery_pct": 140}), // 7 bad field
                ])).await;
                assert_eq!(res["applied"], 1);
                assert_eq!(res["duplicates"], 1);
                assert_eq!(res["rejected"], 6);
                let reasons: Vec<(u64, &str)> = res["errors"].as_array().unwrap().iter()
                    .map(|e| (e["index"].as_u64().unwrap(), e["reason"].as_str().unwrap())).collect();
                assert_eq!(reasons, vec![
                    (2, "stale"), (3, "future_timestamp"), (4, "unknown_vehicle"),
                    (5, "invalid_position"), (6, "malformed"), (7, "invalid_field"),
                ]);
                let admin_view: Value = app.authed(Method::GET, &format!("/v1/vehicles/{id}"), ADMIN).send().await.unwrap().json().await.unwrap();
                assert_eq!(admin_view["lat"], 41.39, "the stale report did not overwrite");
                let metrics = app.get("/metrics").await.text().await.unwrap();
                for reason in ["stale", "future_timestamp", "unknown_vehicle", "invalid_position", "malformed", "invalid_field"] {
                    let needle = format!("telemetry_rejected_total{{source=\"http\",reason=\"{reason}\"}}");
                    assert!(metrics.contains(&needle), "missing {needle}");
                }
                assert!(metrics.contains("telemetry_duplicates_total{source=\"http\"}"));
                app.stop().await;
            }

            #[tokio::test]
            async fn bad_requests_are_problems_not_crashes() {
                let Some(app) = app().await else { return };
                setup_city(&app).await;
                let cases: Vec<(Method, &str, Option<Value>, u16)> = vec![
                    (Method::GET, "/v1/vehicles/nearby?lat=91&lon=2", None, 400),
                    (Method::GET, "/v1/vehicles/nearby?lat=41&lon=2&radius_m=-5", None, 400),
                    (Method::GET, "/v1/vehicles/nearby?lat=41&lon=2&limit=1000", None, 400),
                    (Method::GET, "/v1/vehicles/nearby?lat=41&lon=2&type=bus", None, 400),
                    (Method::GET, "/v1/vehicles/nearby?lat=abc&lon=2", None, 400),
                    (Method::GET, "/v1/vehicles/nearby?lat=41&lon=2&bogus=1", None, 400),
                    (Method::GET, "/v1/vehicles/not-a-uuid", None, 400),
                    (Method::GET, "/v1/vehicles/0190f1c2-7a3b-7cde-8f01-23456789abcd", None, 404),
                    (Method::GET, "/v1/fleet/stats?city=atlantis", None, 404),
                    (Method::POST, "/v1/admin/vehicles", Some(json!({"city": "atlantis", "type": "scooter"})), 422),
                    (Method::POST, "/v1/admin/vehicles", Some(json!({"city": "barcelona", "type": "hovercraft"})), 400),
                    (Method::POST, "/v1/admin/vehicles", Some(json!({"city": "barcelona", "type": "scooter", "colour": "red"})), 400),
                    (Method::PUT, "/v1/admin/cities/Bad%20Name", Some(json!({"name": "x", "timezone": "UTC", "currency": "EUR"})), 400),
                    (Method::PUT, "/v1/admin/cities/x", Some(json!({"name": "x", "timezone": "UTC", "currency": "EUR",
                        "operating_area": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}})), 400),
                    (Method::POST, "/v1/admin/tokens", Some(json!({"role": "root", "label": "x"})), 400),
                    (Method::POST, "/v1/ingest/telemetry", Some(json!({"not": "an array"})), 400),
                ];
                for (method, path, body, status) in cases {
                    let mut req = app.authed(method.clone(), path, ADMIN);
                    if let Some(b) = &body {
                        req = req.json(b);
                    }
                    let r = req.send().await.unwrap();
                    assert_eq!(r.status().as_u16(), status, "{method} {path} {body:?}");
                    assert_eq!(r.headers()["content-type"], "application/problem+json", "{method} {path}");
                }
                // Duplicate registration of a given id is a conflict.
                let body = json!({"city": "barcelona", "type": "scooter", "id": "0190f1c2-7a3b-7cde-8f01-23456789abcd"});
                assert_eq!(app.authed(Method::POST, "/v1/admin/vehicles", ADMIN).json(&body).send().await.unwrap().status(), 201);
                assert_eq!(app.authed(Method::POST, "/v1/admin/vehicles", ADMIN).json(&body).send().await.unwrap().status(), 409);
                // Not JSON at all.
                let r = app.authed(Method::POST, "/v1/ingest/telemetry", ADMIN).body("[1,2").header("content-type", "application/json").send().await.unwrap();
                assert_eq!(r.status(), 400);
                let r = app.authed(Method::POST, "/v1/ingest/telemetry", ADMIN).body("[]").send().await.unwrap();
                assert_eq!(r.status(), 415);
                app.stop().await;
            }
        }
    };
}

fleet_tests!(sqlite, mobility_store::testsuite::sqlite);
fleet_tests!(postgres, mobility_store::testsuite::postgres);
