//! Fleet intelligence over HTTP: the weather feed (validated at the edge), and a city's first
//! model: with nine days of stored demand the forecast comes from a model trained on them, with
//! the weather as covariates, promoted by the registry and saved under the data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use common::{ADMIN, TestApp, now_ms};
use mobility_core::{CityId, TimestampMs};
use mobility_store::DemandSlot;
use reqwest::Method;
use serde_json::{Value, json};

const HOUR_MS: i64 = 3_600_000;
const SLOT_MS: i64 = 900_000;

async fn call(app: &TestApp, method: Method, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .authed(method, path, ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_days_of_demand_make_a_model_and_the_weather_feed_is_its_covariate() {
    let Some(app) = TestApp::spawn(mobility_store::testsuite::sqlite().await).await else {
        return;
    };
    let (s, _) = call(
        &app,
        Method::PUT,
        "/v1/admin/cities/barcelona",
        json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"}),
    )
    .await;
    assert_eq!(s, 200);
    let hour_now = now_ms().div_euclid(HOUR_MS) * HOUR_MS;
    let path = "/v1/admin/cities/barcelona/weather";

    // Bad weather input is refused with a problem, and nothing is stored.
    for (body, what) in [
        (json!({"hours": []}), "no hours"),
        (
            json!({"hours": [{"start_ms": hour_now + 1, "rain": true}]}),
            "not a whole hour",
        ),
        (
            json!({"hours": [{"start_ms": hour_now, "temp_c": 99.0}]}),
            "too hot",
        ),
        (
            json!({"hours": [{"start_ms": hour_now - 60 * 86_400_000, "rain": true}]}),
            "too old",
        ),
        (
            json!({"hours": [{"start_ms": hour_now, "snow": true}]}),
            "unknown field",
        ),
    ] {
        let (s, p) = call(&app, Method::PUT, path, body).await;
        assert_eq!(s, 400, "{what}: {p}");
        assert!(p["type"].as_str().is_some(), "{what}: {p}");
    }
    let anonymous = app
        .client
        .put(app.url(path))
        .json(&json!({"hours": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let (s, _) = call(
        &app,
        Method::PUT,
        "/v1/admin/cities/atlantis/weather",
        json!({"hours": [{"start_ms": hour_now, "rain": true}]}),
    )
    .await;
    assert_eq!(s, 404);

    // Ten days of weather (rain every evening) and of demand that rain dampens, in three zones.
    let days = 10;
    let start = hour_now - days * 86_400_000;
    let rains = |hour_ms: i64| (hour_ms.div_euclid(HOUR_MS) % 24) >= 18;
    let hours: Vec<Value> = (0..days * 24 + 3)
        .map(|h| {
            let t = start + h * HOUR_MS;
            json!({"start_ms": t, "rain": rains(t), "temp_c": 15.0 + f64::from(i32::try_from(h % 24).unwrap()) * 0.3})
        })
        .collect();
    let (s, r) = call(&app, Method::PUT, path, json!({"hours": hours})).await;
    assert_eq!(
        (s, r["hours"].as_u64()),
        (200, Some(u64::try_from(days * 24 + 3).unwrap())),
        "{r}"
    );
    let zones = ["88394461c7fffff", "8839446001fffff", "88394462e7fffff"];
    let mut rows = Vec::new();
    for k in 0..days * 96 {
        let t = start + k * SLOT_MS;
        let hour_of_day = (t.div_euclid(HOUR_MS) % 24) as u32;
        let peak = if (8..10).contains(&hour_of_day) || (17..20).contains(&hour_of_day) {
            3
        } else {
            1
        };
        for (z, zone) in zones.iter().enumerate() {
            let wobble = u32::try_from((k * 7 + i64::try_from(z).unwrap() * 3) % 3).unwrap();
            let searches = (peak * (z as u32 + 1) + wobble) / if rains(t) { 2 } else { 1 };
            rows.push(DemandSlot {
                slot: TimestampMs(t),
                zone: (*zone).to_owned(),
                searches,
                unmet: 0,
                returns: searches / 2,
            });
        }
    }
    let city = CityId::parse("barcelona").unwrap();
    app.store.add_demand(&city, &rows).await.unwrap();

    let (s, r) = call(
        &app,
        Method::POST,
        "/v1/admin/cities/barcelona/intel/refresh",
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let (s, f) = call(
        &app,
        Method::GET,
        "/v1/ops/forecast?city=barcelona",
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{f}");
    let forecast = &f["forecast"];
    assert_eq!(forecast["source"], "model", "{forecast}");
    assert_eq!(forecast["returns_source"], "model", "{forecast}");
    assert_eq!(forecast["model_version"], 1);
    assert_eq!(
        forecast["covariates"],
        json!(["rain", "temp_c", "event_riders"])
    );
    for zone in zones {
        let slots = forecast["zones"][zone].as_array().unwrap();
        assert_eq!(slots.len(), 8);
        assert!(
            slots
                .iter()
                .all(|v| v.as_f64().unwrap().is_finite() && v.as_f64().unwrap() >= 0.0),
            "{forecast}"
        );
    }
    let card = &f["models"][0];
    assert_eq!(
        (card["version"].as_u64(), card["promoted"].as_bool()),
        (Some(1), Some(true)),
        "{card}"
    );
    assert!(
        card["evaluation"]["horizons"]
            .as_array()
            .is_some_and(|h| h.len() == 8),
        "{card}"
    );
    let models = app.data_dir().join("models/barcelona");
    for file in [
        "v0001/model.json",
        "v0001/card.json",
        "current",
        "returns/v0001/model.json",
    ] {
        assert!(models.join(file).is_file(), "{file} saved");
    }
    // The events calendar: validated, listed, replaced by id, removed once.
    let ends = hour_now + 2 * HOUR_MS;
    let good = json!({"name": "Match", "lat": 41.3809, "lon": 2.1228, "ends_at_ms": ends, "egress_min": 45, "expected_riders": 600});
    for (id, body, what) in [
        ("bad id", good.clone(), "an id with a space"),
        (
            "m1",
            json!({"name": "Match", "lat": 91.0, "lon": 2.1, "ends_at_ms": ends, "egress_min": 45, "expected_riders": 600}),
            "off the planet",
        ),
        (
            "m1",
            json!({"name": "Match", "lat": 41.38, "lon": 2.12, "ends_at_ms": ends, "egress_min": 0, "expected_riders": 600}),
            "no egress",
        ),
        (
            "m1",
            json!({"name": " ", "lat": 41.38, "lon": 2.12, "ends_at_ms": ends, "egress_min": 45, "expected_riders": 600}),
            "no name",
        ),
    ] {
        let (s, p) = call(
            &app,
            Method::PUT,
            &format!(
                "/v1/admin/cities/barcelona/events/{}",
                id.replace(' ', "%20")
            ),
            body,
        )
        .await;
        assert_eq!(s, 400, "{what}: {p}");
    }
    let (s, e) = call(
        &app,
        Method::PUT,
        "/v1/admin/cities/barcelona/events/m1",
        good,
    )
    .await;
    assert_eq!((s, e["egress_min"].as_u64()), (200, Some(45)), "{e}");
    let (s, list) = call(
        &app,
        Method::GET,
        "/v1/admin/cities/barcelona/events",
        Value::Null,
    )
    .await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)), "{list}");
    let (s, _) = call(
        &app,
        Method::POST,
        "/v1/admin/cities/barcelona/intel/refresh",
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "the forecast reads the calendar");
    let (s, _) = call(&app, Method::DELETE, "/v1/admin/events/m1", Value::Null).await;
    assert_eq!(s, 204);
    let (s, _) = call(&app, Method::DELETE, "/v1/admin/events/m1", Value::Null).await;
    assert_eq!(s, 404);

    // An unknown city is not found.
    let (s, _) = call(
        &app,
        Method::GET,
        "/v1/ops/forecast?city=nowhere",
        Value::Null,
    )
    .await;
    assert_eq!(s, 404);
}
