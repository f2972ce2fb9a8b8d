//! GBFS 3.0 and MDS 2.0 end to end over HTTP: every feed and endpoint, validated against the
//! official schemas (the repository's `spec/`), in several city states; plus the rules the
//! specifications set (hidden rented vehicles, rotating ids, hourly 202/404, agency tokens).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use std::{collections::HashSet, path::PathBuf};

use common::{ADMIN, TestApp, now_ms};
use mobility_core::{EventType, LatLon, Role, TimestampMs, VehicleId, VehicleState};
use mobility_store::{BookingRecord, TripFacts, UserRecord};
use reqwest::Method;
use serde_json::{Value, json};

fn spec(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../spec")
        .join(path)
}

/// Validates `instance` against a schema file; panics listing every violation.
fn assert_valid(schema_path: &str, instance: &Value) {
    let schema: Value = serde_json::from_slice(&std::fs::read(spec(schema_path)).unwrap()).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{schema_path} does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} (at {})", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{schema_path}: {} violation(s):\n{}\nin {}",
        errors.len(),
        errors.join("\n"),
        serde_json::to_string_pretty(instance).unwrap()
    );
}

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

async fn city(app: &TestApp, id: &str, name: &str) {
    let body = json!({"name": name, "timezone": "Europe/Madrid", "currency": "EUR", "operating_area": square(41.30, 2.00, 0.30)});
    let (s, r) = call(
        app,
        Method::PUT,
        &format!("/v1/admin/cities/{id}"),
        Some(body),
    )
    .await;
    assert_eq!(s, 200, "{r}");
}

/// A vehicle of `kind` in Barcelona, reported at (`lat`, `lon`) and dropped off (available).
async fn deployed(app: &TestApp, kind: &str, lat: f64, lon: f64) -> String {
    let (s, v) = call(
        app,
        Method::POST,
        "/v1/admin/vehicles",
        Some(json!({"city": "barcelona", "type": kind})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, r) = call(
        app,
        Method::POST,
        "/v1/ingest/telemetry",
        Some(
            json!([{"vehicle_id": id, "ts": now_ms(), "lat": lat, "lon": lon, "battery_pct": 80}]),
        ),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let events = if kind == "car" || kind == "van" {
        json!(["recommission", "service_start"])
    } else {
        json!(["provider_drop_off"])
    };
    lifecycle(app, &id, events, "available").await;
    id
}

async fn lifecycle(app: &TestApp, id: &str, events: Value, to: &str) {
    let (s, r) = call(
        app,
        Method::POST,
        "/v1/vehicles/events",
        Some(json!({"changes": [{"vehicle_id": id, "event_types": events, "vehicle_state": to}]})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
}

async fn public_json(app: &TestApp, path: &str) -> Value {
    let r = app.get(path).await;
    assert_eq!(r.status(), 200, "{path}");
    assert_eq!(r.headers()["access-control-allow-origin"], "*", "{path}");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age="),
        "{path}"
    );
    r.json().await.unwrap()
}

/// Fetches every feed gbfs.json lists (and the manifest), validating each against its schema.
async fn validate_every_feed(app: &TestApp, city: &str) -> Value {
    let manifest = public_json(app, "/gbfs/manifest.json").await;
    assert_valid("gbfs-3.0/manifest.json", &manifest);
    let discovery = public_json(app, &format!("/gbfs/{city}/gbfs.json")).await;
    assert_valid("gbfs-3.0/gbfs.json", &discovery);
    let mut all = json!({});
    for feed in discovery["data"]["feeds"].as_array().unwrap() {
        let name = feed["name"].as_str().unwrap();
        let url = feed["url"].as_str().unwrap();
        let path = url
            .split_once(&app.addr.to_string())
            .unwrap_or_else(|| panic!("{url} is not on {}", app.addr))
            .1;
        let body = public_json(app, path).await;
        assert_valid(&format!("gbfs-3.0/{name}.json"), &body);
        assert_eq!(body["version"], "3.0");
        all[name] = body;
    }
    all
}

fn assert_six_decimals(x: f64) {
    let scaled = x * 1e6;
    assert!(
        (scaled - scaled.round()).abs() < 1e-6,
        "{x} has more than 6 decimals"
    );
}

macro_rules! open_data_tests {
    ($backend:ident, $make:path) => {
        mod $backend {
            use super::*;

            async fn app() -> Option<TestApp> {
                TestApp::spawn_with($make().await, |s| s.rate_limit_per_s = 10_000).await
            }

            #[tokio::test]
            async fn gbfs_feeds_are_valid_empty_busy_and_multi_city() {
                let Some(app) = app().await else { return };
                // Empty: a city with no vehicles, zones or plans.
                city(&app, "barcelona", "Barcelona").await;
                let empty = validate_every_feed(&app, "barcelona").await;
                assert_eq!(empty["vehicle_status"]["data"]["vehicles"], json!([]));
                assert_eq!(empty["system_information"]["data"]["timezone"], "Europe/Madrid");
                // The city's operating area is a zone; outside it trips may not end.
                let zones = &empty["geofencing_zones"]["data"];
                assert_eq!(zones["geofencing_zones"]["features"].as_array().unwrap().len(), 1);
                assert_eq!(zones["global_rules"][0]["ride_end_allowed"], false);

                // Busy: a mixed fleet, every kind of zone, a plan, an alert, rentals.
                let scooters: Vec<String> = futures_util::future::join_all(
                    (0..5).map(|i| deployed(&app, "scooter", 41.3851234 + f64::from(i) * 0.001, 2.1734567)),
                )
                .await;
                let ebike = deployed(&app, "ebike", 41.39, 2.18).await;
                let car = deployed(&app, "car", 41.40, 2.16).await;
                for (name, kind, extra) in [
                    ("Park", "no_riding", json!({})),
                    ("Market", "no_parking", json!({})),
                    ("Old town", "slow_zone", json!({"speed_limit_kmh": 10})),
                    ("Hub", "parking_hub", json!({})),
                ] {
                    let mut body = json!({"name": name, "kind": kind, "geometry": square(41.38, 2.16, 0.01)});
                    if let Some(s) = extra.get("speed_limit_kmh") {
                        body["speed_limit_kmh"] = s.clone();
                    }
                    let (s, r) = call(&app, Method::POST, "/v1/admin/cities/barcelona/geofences", Some(body)).await;
                    assert_eq!(s, 201, "{r}");
                }
                let plan = json!({"name": "City scooter", "unlock_fee": 50, "per_minute": 19, "per_km": 0, "daily_cap": 2500});
                let (s, r) = call(&app, Method::PUT, "/v1/admin/cities/barcelona/pricing/scooter", Some(plan)).await;
                assert_eq!(s, 200, "{r}");
                let alert = json!({"type": "system_closure", "summary": "No service during the marathon",
                    "url": "https://example.com/marathon", "starts_at_ms": now_ms(), "ends_at_ms": now_ms() + 3_600_000});
                let (s, r) = call(&app, Method::POST, "/v1/admin/cities/barcelona/alerts", Some(alert)).await;
                assert_eq!(s, 201, "{r}");
                let (s, _) = call(&app, Method::POST, "/v1/admin/cities/barcelona/alerts",
                    Some(json!({"type": "station_move", "summary": "x"}))).await;
                assert_eq!(s, 400, "stations do not exist here");

                let before = validate_every_feed(&app, "barcelona").await;
                let listed = |feed: &Value| -> Vec<Value> {
                    feed["data"]["vehicles"].as_array().unwrap().clone()
                };
                let vehicles = listed(&before["vehicle_status"]);
                assert_eq!(vehicles.len(), 7);
                for v in &vehicles {
                    assert_six_decimals(v["lat"].as_f64().unwrap());
                    assert_six_decimals(v["lon"].as_f64().unwrap());
                    let id = v["vehicle_id"].as_str().unwrap();
                    assert!(scooters.iter().chain([&ebike, &car]).all(|d| !id.contains(&d[..8])), "device ids stay private");
                }
                let types: HashSet<&str> = before["vehicle_types"]["data"]["vehicle_types"]
                    .as_array().unwrap().iter().map(|t| t["vehicle_type_id"].as_str().unwrap()).collect();
                assert_eq!(types, HashSet::from(["scooter", "ebike", "car"]));
                let plans = before["system_pricing_plans"]["data"]["plans"].as_array().unwrap();
                let scooter_plan = plans.iter().find(|p| p["plan_id"] == "scooter-standard").unwrap();
                assert_eq!(scooter_plan["price"], 0.5);
                assert_eq!(scooter_plan["per_min_pricing"][0]["rate"], 0.19);
                assert_eq!(before["system_alerts"]["data"]["alerts"][0]["type"], "system_closure");
                let features = before["geofencing_zones"]["data"]["geofencing_zones"]["features"].as_array().unwrap();
                assert_eq!(features.len(), 5);
                assert_eq!(features[0]["properties"]["rules"][0]["ride_through_allowed"], false, "no riding first");
                assert_eq!(features[2]["properties"]["rules"][0]["maximum_speed_kph"], 10);

                // A rental: reserved and on trip, the vehicle is not listed; after, it is back under a new id.
                let rented = &scooters[0];
                let public_ids = |feeds: &Value| -> HashSet<String> {
                    listed(feeds).iter().map(|v| v["vehicle_id"].as_str().unwrap().to_owned()).collect()
                };
                lifecycle(&app, rented, json!(["reservation_start"]), "reserved").await;
                let during = public_json(&app, "/gbfs/barcelona/vehicle_status.json").await;
                assert_eq!(listed(&during).len(), 6, "a reserved vehicle is hidden");
                lifecycle(&app, rented, json!(["trip_start"]), "on_trip").await;
                let during = public_json(&app, "/gbfs/barcelona/vehicle_status.json").await;
                assert_valid("gbfs-3.0/vehicle_status.json", &during);
                assert_eq!(listed(&during).len(), 6, "a vehicle on a trip is hidden");
                let others = public_ids(&during);
                lifecycle(&app, rented, json!(["trip_end"]), "available").await;
                let after = public_json(&app, "/gbfs/barcelona/vehicle_status.json").await;
                let after_ids = public_ids(&after);
                assert_eq!(after_ids.len(), 7);
                let new_id: Vec<_> = after_ids.difference(&others).collect();
                assert_eq!(new_id.len(), 1);
                assert!(!public_ids(&before["vehicle_status"]).contains(new_id[0]), "the id rotated after the rental");
                assert!(others.is_subset(&public_ids(&before["vehicle_status"])), "vehicles that stood still keep theirs");
                // A vehicle out of service stays visible but disabled.
                lifecycle(&app, &scooters[1], json!(["battery_low"]), "non_operational").await;
                let status = public_json(&app, "/gbfs/barcelona/vehicle_status.json").await;
                assert_valid("gbfs-3.0/vehicle_status.json", &status);
                assert_eq!(listed(&status).iter().filter(|v| v["is_disabled"] == true).count(), 1);

                // Caching: the ETag answers 304 while nothing changes; gzip when asked.
                let r = app.get("/gbfs/barcelona/system_information.json").await;
                let etag = r.headers()["etag"].to_str().unwrap().to_owned();
                let r = app.client.get(app.url("/gbfs/barcelona/system_information.json"))
                    .header("if-none-match", &etag).send().await.unwrap();
                assert_eq!(r.status(), 304);
                let r = app.client.get(app.url("/gbfs/barcelona/vehicle_status.json"))
                    .header("accept-encoding", "gzip").send().await.unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.headers()["content-encoding"], "gzip");
                assert_eq!(app.get("/gbfs/barcelona/station_status.json").await.status(), 404);
                assert_eq!(app.get("/gbfs/nowhere/gbfs.json").await.status(), 404);

                // Multi-city: the manifest lists every city, each feed set validates.
                city(&app, "madrid", "Madrid").await;
                let manifest = public_json(&app, "/gbfs/manifest.json").await;
                assert_valid("gbfs-3.0/manifest.json", &manifest);
                let systems: Vec<&str> = manifest["data"]["datasets"].as_array().unwrap()
                    .iter().map(|d| d["system_id"].as_str().unwrap()).collect();
                assert_eq!(systems, ["barcelona", "madrid"]);
                validate_every_feed(&app, "madrid").await;
                validate_every_feed(&app, "barcelona").await;
                app.stop().await;
            }

            #[tokio::test]
            async fn mds_endpoints_are_valid_for_micromobility_and_car_share() {
                let Some(app) = app().await else { return };
                city(&app, "barcelona", "Barcelona").await;
                city(&app, "madrid", "Madrid").await;
                let scooter = deployed(&app, "scooter", 41.385, 2.173).await;
                let car = deployed(&app, "car", 41.40, 2.16).await;
                let ebike = deployed(&app, "ebike", 41.39, 2.18).await;

                // Two hours ago, a trip of each mode: recorded as the platform records them,
                // arriving now (after later events: out of order, as MDS allows).
                let hour = TimestampMs(now_ms() - 2 * 3_600_000).hour_start();
                let rider = UserRecord {
                    id: uuid::Uuid::now_v7().to_string(),
                    email: format!("mds-{}@example.com", uuid::Uuid::now_v7().simple()),
                    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                    role: Role::Rider,
                    created_at: hour,
                };
                app.store.insert_user(&rider).await.unwrap();
                let mut trips = Vec::new();
                for (i, (device, micro)) in [(&scooter, true), (&car, false)].into_iter().enumerate() {
                    let id = VehicleId::parse(device).unwrap();
                    let trip = uuid::Uuid::now_v7().to_string();
                    let t = |m: i64| TimestampMs(hour.0 + (10 + m + i as i64) * 60_000);
                    let (a, b) = (LatLon::new(41.385, 2.173).unwrap(), LatLon::new(41.395, 2.183).unwrap());
                    let steps: Vec<(Vec<EventType>, VehicleState, TimestampMs, LatLon)> = if micro {
                        vec![
                            (vec![EventType::ReservationStart], VehicleState::Reserved, t(0), a),
                            (vec![EventType::TripStart], VehicleState::OnTrip, t(2), a),
                            (vec![EventType::TripEnd], VehicleState::Available, t(12), b),
                        ]
                    } else {
                        vec![
                            (vec![EventType::ReservationStart], VehicleState::Reserved, t(0), a),
                            (vec![EventType::ReservationStop, EventType::TripStart], VehicleState::OnTrip, t(2), a),
                            (vec![EventType::TripStop, EventType::TripEnd], VehicleState::Available, t(12), b),
                        ]
                    };
                    for (events, to, at, here) in steps {
                        let v = app.store.vehicle(&id).await.unwrap().unwrap();
                        let change = v.decide(&events, to, at).unwrap().with_context(Some(here), Some(trip.clone()));
                        app.store.record_state_change(&change).await.unwrap();
                    }
                    let booking = BookingRecord {
                        id: trip.clone(),
                        user_id: rider.id.clone(),
                        vehicle_id: id,
                        city: mobility_core::CityId::parse("barcelona").unwrap(),
                        state: "reserved".into(),
                        created_at: t(0),
                        // Not lapsed yet: the sweeper expires lapsed holds every 250 ms, which
                        // would race the updates below.
                        hold_until: TimestampMs(now_ms() + 600_000),
                        updated_at: t(0),
                        trip: TripFacts::default(),
                    };
                    app.store.insert_booking(&booking).await.unwrap();
                    let started = TripFacts { started_at: Some(t(2)), ..TripFacts::default() };
                    app.store.update_booking(&trip, "reserved", "on_trip", &started, t(2)).await.unwrap().unwrap();
                    let ended = TripFacts { ended_at: Some(t(12)), distance_m: Some(1_400), ..TripFacts::default() };
                    app.store.update_booking(&trip, "on_trip", "ended", &ended, t(12)).await.unwrap().unwrap();
                    // Telemetry during the trip (every 2 s: sampled to one point in 5 s).
                    let reports: Vec<Value> = (0..300)
                        .map(|k| json!({"vehicle_id": device, "ts": t(2).0 + k * 2_000, "lat": 41.385 + k as f64 * 1e-5, "lon": 2.173, "battery_pct": 70}))
                        .collect();
                    let (s, r) = call(&app, Method::POST, "/v1/ingest/telemetry", Some(json!(reports))).await;
                    assert_eq!(s, 200, "{r}");
                    trips.push(trip);
                }

                // An event from that hour arrives only now (the e-bike was offline): it is logged
                // where it belongs in time; the e-bike keeps its newer state.
                let (s, r) = call(&app, Method::POST, "/v1/vehicles/events", Some(json!({"changes": [{
                    "vehicle_id": ebike, "event_types": ["battery_low"], "vehicle_state": "non_operational",
                    "timestamp": hour.0 + 30 * 60_000, "location": {"lat": 41.3812345, "lng": 2.1712345}}]}))).await;
                assert_eq!(s, 200, "{r}");
                assert_eq!((r["vehicles"][0]["late"].as_bool(), r["vehicles"][0]["state"].as_str()), (Some(true), Some("available")));
                let (s, r) = call(&app, Method::POST, "/v1/vehicles/events", Some(json!({"changes": [{
                    "vehicle_id": ebike, "event_types": ["trip_start"], "vehicle_state": "available",
                    "timestamp": hour.0}]}))).await;
                assert_eq!(s, 409, "late events still follow the table: {r}");
                let (s, _) = call(&app, Method::POST, "/v1/vehicles/events", Some(json!({"changes": [{
                    "vehicle_id": ebike, "event_types": ["battery_low"], "vehicle_state": "non_operational",
                    "timestamp": now_ms() + 120_000}]}))).await;
                assert_eq!(s, 400, "not from the future");

                // Tokens: issued by an admin, per agency and city.
                let (s, issued) = call(&app, Method::POST, "/v1/admin/mds/tokens",
                    Some(json!({"agency": "Ajuntament de Barcelona", "city": "barcelona"}))).await;
                assert_eq!(s, 201, "{issued}");
                let token = issued["token"].as_str().unwrap().to_owned();
                let get = |path: String| {
                    let req = app.authed(Method::GET, &path, &token)
                        .header("accept", "application/vnd.mds+json;version=2.0");
                    async move {
                        let r = req.send().await.unwrap();
                        let status = r.status().as_u16();
                        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
                        let text = r.text().await.unwrap();
                        (status, ct, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null))
                    }
                };
                let h = hour.mds_hour();
                for (mode, bundle, trip, device, other) in [
                    ("micromobility", "mds-2.0/bundled-micromobility", &trips[0], &scooter, &car),
                    ("car-share", "mds-2.0/bundled-car-share", &trips[1], &car, &scooter),
                ] {
                    let checks = [
                        (format!("/mds/{mode}/vehicles"), "provider-vehicles.json", "vehicles"),
                        (format!("/mds/{mode}/vehicles/{device}"), "provider-vehicles-device_id.json", "vehicles"),
                        (format!("/mds/{mode}/vehicles/status"), "provider-vehicles-status.json", "vehicles_status"),
                        (format!("/mds/{mode}/vehicles/status/{device}"), "provider-vehicles-status-device_id.json", "vehicles_status"),
                        (format!("/mds/{mode}/trips?end_time={h}"), "provider-trips.json", "trips"),
                        (format!("/mds/{mode}/events/historical?event_time={h}"), "provider-events-historical.json", "events"),
                        (format!("/mds/{mode}/events/recent?start_time={}&end_time={}", hour.0, now_ms()), "provider-events-recent.json", "events"),
                        (format!("/mds/{mode}/telemetry?telemetry_time={h}"), "provider-telemetry.json", "telemetry"),
                    ];
                    for (path, schema, key) in checks {
                        let (s, ct, body) = get(path.clone()).await;
                        assert_eq!(s, 200, "{path}: {body}");
                        assert_eq!(ct.as_deref(), Some("application/vnd.mds+json;version=2.0"), "{path}");
                        assert_valid(&format!("{bundle}/{schema}"), &body);
                        let items = body[key].as_array().unwrap();
                        assert!(!items.is_empty(), "{path} is empty");
                        assert!(
                            items.iter().all(|i| i.get("device_id").is_none_or(|d| d != other.as_str())),
                            "{path} shows only this mode's vehicles"
                        );
                        assert!(
                            items.iter().any(|i| i.get("device_id").is_none_or(|d| d == device.as_str())),
                            "{path} shows {device}"
                        );
                    }
                    let (_, _, t) = get(format!("/mds/{mode}/trips?end_time={h}")).await;
                    assert_eq!(t["trips"].as_array().unwrap().len(), 1);
                    assert_eq!(t["trips"][0]["trip_id"], trip.as_str());
                    assert_eq!(t["trips"][0]["duration"], 600);
                    assert_eq!(t["trips"][0]["distance"], 1_400);
                    assert_eq!(t["trips"][0]["end_location"]["lat"], 41.395);
                    let (_, _, e) = get(format!("/mds/{mode}/events/historical?event_time={h}")).await;
                    let all = e["events"].as_array().unwrap();
                    let events: Vec<&Value> = all.iter().filter(|e| e["device_id"] == device.as_str()).collect();
                    if mode == "micromobility" {
                        let late: Vec<&Value> = all.iter().filter(|e| e["device_id"] == ebike.as_str()).collect();
                        assert_eq!(late.len(), 1, "the late event is in its hour");
                        assert_eq!(late[0]["event_types"], json!(["battery_low"]));
                        assert_eq!(late[0]["location"], json!({"lat": 41.381235, "lng": 2.171235}));
                    }
                    // One published event per event type: a car's `[trip_stop, trip_end]` is
                    // `stopped` then `available`.
                    let states: Vec<&str> = events.iter().map(|e| e["vehicle_state"].as_str().unwrap()).collect();
                    let expected: &[&str] = if mode == "car-share" {
                        &["reserved", "stopped", "on_trip", "stopped", "available"]
                    } else {
                        &["reserved", "on_trip", "available"]
                    };
                    assert_eq!(states, expected, "the hour's events only");
                    assert!(events.iter().all(|e| e["trip_ids"][0] == trip.as_str()));
                    let (_, _, tel) = get(format!("/mds/{mode}/telemetry?telemetry_time={h}")).await;
                    let points = tel["telemetry"].as_array().unwrap();
                    assert!((95..=105).contains(&points.len()), "sampled to one point in 5 s: {}", points.len());
                    assert!(points.iter().all(|p| p["trip_ids"][0] == trip.as_str()));
                }

                // Hours: the current one is processing (202), a future one does not exist (404).
                let now_hour = TimestampMs(now_ms()).mds_hour();
                let next_hour = TimestampMs(now_ms() + 3_600_000).mds_hour();
                assert_eq!(get(format!("/mds/micromobility/trips?end_time={now_hour}")).await.0, 202);
                assert_eq!(get(format!("/mds/micromobility/trips?end_time={next_hour}")).await.0, 404);
                assert_eq!(get(format!("/mds/micromobility/telemetry?telemetry_time={next_hour}")).await.0, 404);
                assert_eq!(get("/mds/micromobility/trips?end_time=yesterday".into()).await.0, 400);
                assert_eq!(get("/mds/micromobility/trips".into()).await.0, 400);
                assert_eq!(get("/mds/delivery-robots/vehicles".into()).await.0, 404);
                let old = now_ms() - 15 * 86_400_000;
                assert_eq!(get(format!("/mds/micromobility/events/recent?start_time={old}&end_time={}", now_ms())).await.0, 400);

                // Versions other than 2.0 are not served.
                let r = app.authed(Method::GET, "/mds/micromobility/vehicles", &token)
                    .header("accept", "application/vnd.mds+json;version=1.2").send().await.unwrap();
                assert_eq!(r.status(), 406);

                // Access: no token, an account token, another city's token, a revoked token.
                assert_eq!(app.get("/mds/micromobility/vehicles").await.status(), 401);
                let r = app.authed(Method::GET, "/mds/micromobility/vehicles", ADMIN).send().await.unwrap();
                assert_eq!(r.status(), 401, "the admin token is not an agency token");
                let (_, madrid) = call(&app, Method::POST, "/v1/admin/mds/tokens",
                    Some(json!({"agency": "Madrid", "city": "madrid"}))).await;
                let r = app.authed(Method::GET, "/mds/micromobility/vehicles", madrid["token"].as_str().unwrap())
                    .send().await.unwrap();
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["vehicles"], json!([]), "Madrid sees none of Barcelona's vehicles");
                let r = app.authed(Method::GET, &format!("/mds/micromobility/vehicles/{scooter}"), madrid["token"].as_str().unwrap())
                    .send().await.unwrap();
                assert_eq!(r.status(), 404);
                let (s, list) = call(&app, Method::GET, "/v1/admin/mds/tokens", None).await;
                assert_eq!(s, 200);
                assert_eq!(list.as_array().unwrap().len(), 2);
                assert!(list[0].get("token").is_none(), "tokens are shown only when issued");
                let id = issued["id"].as_str().unwrap();
                let (s, _) = call(&app, Method::DELETE, &format!("/v1/admin/mds/tokens/{id}"), None).await;
                assert_eq!(s, 204);
                assert_eq!(get("/mds/micromobility/vehicles".into()).await.0, 401);
                let (s, _) = call(&app, Method::POST, "/v1/admin/mds/tokens",
                    Some(json!({"agency": "x", "city": "atlantis"}))).await;
                assert_eq!(s, 422, "no such city");
                app.stop().await;
            }
        }
    };
}

open_data_tests!(sqlite, mobility_store::testsuite::sqlite);
open_data_tests!(postgres, mobility_store::testsuite::postgres);
