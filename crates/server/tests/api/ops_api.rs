//! What the dashboard reads beyond the live map: bookings lists for staff, accounts and roles
//! for admins, a vehicle's events and telemetry, supply per H3 cell. Each is refused to roles
//! that may not read it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use common::{ADMIN, TestApp, now_ms};
use reqwest::Method;
use serde_json::{Value, json};

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
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn account(app: &TestApp, email: &str, role: &str) -> (String, String) {
    let password = "correct horse battery";
    let (s, u) = call(
        app,
        Method::POST,
        "/v1/admin/users",
        ADMIN,
        Some(json!({"email": email, "password": password, "role": role})),
    )
    .await;
    assert_eq!(s, 201, "{u}");
    let r = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let session: Value = r.json().await.unwrap();
    (
        u["id"].as_str().unwrap().to_owned(),
        session["access_token"].as_str().unwrap().to_owned(),
    )
}

macro_rules! ops_tests {
    ($backend:ident, $make:path) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn staff_read_bookings_events_telemetry_and_supply_admins_manage_roles() {
                let Some(app) = TestApp::spawn_with($make().await, |s| s.rate_limit_per_s = 10_000).await else { return };
                let area = json!({"type": "Polygon", "coordinates": [[[2.07, 41.32], [2.23, 41.32], [2.23, 41.47], [2.07, 41.47], [2.07, 41.32]]]});
                let (s, _) = call(&app, Method::PUT, "/v1/admin/cities/barcelona", ADMIN,
                    Some(json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR", "operating_area": area}))).await;
                assert_eq!(s, 200);
                let (_, v) = call(&app, Method::POST, "/v1/admin/vehicles", ADMIN, Some(json!({"city": "barcelona", "type": "scooter"}))).await;
                let id = v["id"].as_str().unwrap().to_owned();
                let t0 = now_ms() - 60_000;
                let reports: Vec<Value> = (0..30)
                    .map(|k| json!({"vehicle_id": id, "ts": t0 + k * 1_000, "lat": 41.387 + k as f64 * 1e-5, "lon": 2.17, "battery_pct": 90 - k / 10}))
                    .collect();
                let (s, r) = call(&app, Method::POST, "/v1/ingest/telemetry", ADMIN, Some(json!(reports))).await;
                assert_eq!(s, 200, "{r}");
                let (s, _) = call(&app, Method::POST, "/v1/vehicles/events", ADMIN,
                    Some(json!({"changes": [{"vehicle_id": id, "event_types": ["provider_drop_off"], "vehicle_state": "available"}]}))).await;
                assert_eq!(s, 200);

                let (admin_id, admin) = account(&app, "boss@example.com", "admin").await;
                let (_, staff) = account(&app, "field@example.com", "staff").await;
                let (rider_id, rider) = account(&app, "rider@example.com", "rider").await;
                let (s, b) = call(&app, Method::POST, "/v1/bookings", &rider, Some(json!({"vehicle_id": id}))).await;
                assert_eq!(s, 201, "{b}");

                // Searches are demand: one that finds nothing is unmet (the vehicle is reserved).
                let (s, _) = call(&app, Method::GET, "/v1/vehicles/nearby?lat=41.39&lon=2.17&radius_m=2000", &rider, None).await;
                assert_eq!(s, 200);
                // Counted through the bus (published every second, then logged by a consumer).
                let mut stats = Value::Null;
                for _ in 0..100 {
                    stats = call(&app, Method::GET, "/v1/fleet/stats?city=barcelona", &staff, None).await.1;
                    if stats["searches_last_hour"]["total"] == 1 {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                assert_eq!(stats["searches_last_hour"], json!({"total": 1, "unmet": 1}));
                let (s, demand) = call(&app, Method::GET, "/v1/fleet/h3?city=barcelona&layer=demand", &staff, None).await;
                assert_eq!(s, 200, "{demand}");
                assert_eq!((demand["cells"][0]["searches"].as_u64(), demand["cells"][0]["unmet"].as_u64()), (Some(1), Some(1)));
                let (_, coarse) = call(&app, Method::GET, "/v1/fleet/h3?city=barcelona&layer=demand&resolution=6", &staff, None).await;
                assert_eq!(coarse["cells"].as_array().unwrap().len(), 1, "aggregated to a parent cell");
                assert_eq!(call(&app, Method::GET, "/v1/fleet/h3?city=barcelona&layer=demand&resolution=9", &staff, None).await.0, 400);
                assert_eq!(call(&app, Method::GET, "/v1/fleet/h3?city=barcelona&layer=weather", &staff, None).await.0, 400);

                // Bookings: staff list and filter; riders may not list.
                let (s, list) = call(&app, Method::GET, "/v1/bookings?city=barcelona", &staff, None).await;
                assert_eq!(s, 200, "{list}");
                assert_eq!(list[0]["id"], b["id"]);
                assert_eq!(list[0]["user_id"], rider_id.as_str());
                let (_, reserved) = call(&app, Method::GET, &format!("/v1/bookings?state=reserved&vehicle_id={id}"), &staff, None).await;
                assert_eq!(reserved.as_array().unwrap().len(), 1);
                let (_, ended) = call(&app, Method::GET, "/v1/bookings?state=ended", &staff, None).await;
                assert_eq!(ended, json!([]));
                assert_eq!(call(&app, Method::GET, "/v1/bookings?state=flying", &staff, None).await.0, 400);
                assert_eq!(call(&app, Method::GET, "/v1/bookings", &rider, None).await.0, 403);

                // A vehicle's events (newest first) and telemetry (oldest first).
                let (s, events) = call(&app, Method::GET, &format!("/v1/vehicles/{id}/events"), &staff, None).await;
                assert_eq!(s, 200);
                assert_eq!(events[0]["event_types"], json!(["reservation_start"]));
                assert_eq!(events[0]["trip_id"], b["id"]);
                assert_eq!(events[1]["event_types"], json!(["provider_drop_off"]));
                let (s, tel) = call(&app, Method::GET, &format!("/v1/vehicles/{id}/telemetry?minutes=5"), &staff, None).await;
                assert_eq!(s, 200, "{tel}");
                let points = tel["points"].as_array().unwrap();
                assert_eq!(points.len(), 30);
                assert_eq!(points[0]["at_ms"], t0);
                assert_eq!(points[29]["battery_pct"], 88);
                assert_eq!(call(&app, Method::GET, &format!("/v1/vehicles/{id}/telemetry"), &rider, None).await.0, 403);
                assert_eq!(call(&app, Method::GET, "/v1/vehicles/0190f1c2-7a3b-7cde-8f01-23456789abcd/telemetry", &staff, None).await.0, 404);

                // Supply per H3 cell: the reserved scooter is not supply; after release it is.
                let (_, h3) = call(&app, Method::GET, "/v1/fleet/h3?city=barcelona&resolution=8", &staff, None).await;
                assert_eq!(h3["cells"], json!([]));
                let (s, _) = call(&app, Method::POST, &format!("/v1/bookings/{}/cancel", b["id"].as_str().unwrap()), &rider, None).await;
                assert_eq!(s, 200);
                let (_, h3) = call(&app, Method::GET, "/v1/fleet/h3?city=barcelona&resolution=8", &staff, None).await;
                assert_eq!(h3["cells"][0]["available"], 1);
                assert_eq!(h3["cells"][0]["boundary"].as_array().unwrap().len(), 6);
                assert_eq!(call(&app, Method::GET, "/v1/fleet/h3?city=barcelona&resolution=15", &staff, None).await.0, 400);

                // Accounts: admins list them and change roles; not their own; staff may not.
                let (s, users) = call(&app, Method::GET, "/v1/admin/users", &admin, None).await;
                assert_eq!(s, 200);
                assert_eq!(users.as_array().unwrap().len(), 3);
                assert!(users.as_array().unwrap().iter().all(|u| u.get("password_hash").is_none()));
                let (s, u) = call(&app, Method::PUT, &format!("/v1/admin/users/{rider_id}/role"), &admin, Some(json!({"role": "staff"}))).await;
                assert_eq!((s, u["role"].as_str()), (200, Some("staff")));
                assert_eq!(call(&app, Method::PUT, &format!("/v1/admin/users/{admin_id}/role"), &admin, Some(json!({"role": "rider"}))).await.0, 409);
                assert_eq!(call(&app, Method::PUT, &format!("/v1/admin/users/{rider_id}/role"), &admin, Some(json!({"role": "gateway"}))).await.0, 400);
                assert_eq!(call(&app, Method::PUT, "/v1/admin/users/nobody/role", &admin, Some(json!({"role": "staff"}))).await.0, 404);
                assert_eq!(call(&app, Method::GET, "/v1/admin/users", &staff, None).await.0, 403);
                app.stop().await;
            }
        }
    };
}

ops_tests!(sqlite, mobility_store::testsuite::sqlite);
ops_tests!(postgres, mobility_store::testsuite::postgres);

/// The dashboard is served by the binary, with a CSP that lets it reach only this origin (and
/// the tile server when one is configured).
#[tokio::test]
async fn the_dashboard_is_served_with_its_own_policy() {
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.map_tile_url = Some("https://tiles.example.com/{z}/{x}/{y}.png".into());
        s.map_tile_attribution = Some("© Example".into());
    })
    .await
    else {
        return;
    };
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.url().path(), "/ui/", "/ redirects to the dashboard");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("img-src 'self' data: https://tiles.example.com;"),
        "{csp}"
    );
    assert!(r.text().await.unwrap().contains("/ui/app.js"));
    let js = app.client.get(app.url("/ui/app.js")).send().await.unwrap();
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let config: Value = app.get("/ui/config.json").await.json().await.unwrap();
    assert_eq!(
        config,
        json!({"tile_url": "https://tiles.example.com/{z}/{x}/{y}.png", "tile_attribution": "© Example"})
    );
    app.stop().await;
}
