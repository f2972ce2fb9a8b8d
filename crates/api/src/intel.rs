//! Fleet intelligence over HTTP: each city's zone prices and incentives (public, like every
//! price), its demand forecast and model versions, and the field plan (staff).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use mobility_core::CityId;
use serde::Deserialize;
use serde_json::json;

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, ApiQuery, bad_request},
};
use crate::auth::{AdminCaller, GatewayCaller, StaffCaller};

/// Hours one weather update carries at most (a month).
const WEATHER_HOURS_MAX: usize = 24 * 31;
/// How far back and ahead weather may be given, days.
const WEATHER_PAST_DAYS: i64 = 40;
const WEATHER_AHEAD_DAYS: i64 = 16;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WeatherBody {
    /// Hours, each observed or forecast.
    hours: Vec<WeatherHourBody>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct WeatherHourBody {
    /// Start of the hour, UTC ms (a whole hour).
    start_ms: i64,
    /// Whether it rains (or will).
    rain: Option<bool>,
    /// Temperature, °C.
    temp_c: Option<f64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventBody {
    /// What it is (shown to staff).
    name: String,
    /// The venue.
    lat: f64,
    /// The venue.
    lon: f64,
    /// When it ends, UTC ms.
    ends_at_ms: i64,
    /// Over how many minutes the crowd leaves (1 to 240).
    egress_min: u32,
    /// Riders expected among the crowd (0 to 100,000).
    expected_riders: f64,
}

fn event_json(e: &mobility_store::CityEventRecord) -> serde_json::Value {
    json!({
        "id": e.id, "city": e.city, "name": e.name, "lat": e.venue.lat(), "lon": e.venue.lon(),
        "ends_at_ms": e.ends_at.0, "egress_min": e.egress_ms / 60_000,
        "expected_riders": e.riders, "updated_at_ms": e.updated_at.0,
    })
}

/// Admin: adds or changes an event of the city's calendar (a concert, a match): when its crowd
/// leaves, riders look for vehicles near the venue, and the forecast expects them.
async fn put_event(
    _: AdminCaller,
    State(state): State<AppState>,
    Path((city, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<EventBody>,
) -> Response {
    let city = match city_of(&state, &city) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad_request(
            "invalid_field",
            "the event id must be 1 to 64 letters, digits, - or _",
        );
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return bad_request("invalid_field", "name must be 1 to 200 characters");
    }
    let Ok(venue) = mobility_core::LatLon::new(body.lat, body.lon) else {
        return bad_request("invalid_field", "lat and lon must be a position on Earth");
    };
    let now_ms = state.now().0;
    if !((now_ms - WEATHER_PAST_DAYS * 86_400_000)..=(now_ms + 366 * 86_400_000))
        .contains(&body.ends_at_ms)
    {
        return bad_request(
            "invalid_field",
            format!("ends_at_ms must be from {WEATHER_PAST_DAYS} days ago to a year ahead"),
        );
    }
    let fits = (1..=240).contains(&body.egress_min)
        && body.expected_riders.is_finite()
        && (0.0..=100_000.0).contains(&body.expected_riders);
    if !fits {
        return bad_request(
            "invalid_field",
            "egress_min must be 1 to 240 and expected_riders 0 to 100000",
        );
    }
    let event = mobility_store::CityEventRecord {
        id,
        city,
        name: name.to_owned(),
        venue,
        ends_at: mobility_core::TimestampMs(body.ends_at_ms),
        egress_ms: i64::from(body.egress_min) * 60_000,
        riders: body.expected_riders,
        updated_at: state.now(),
    };
    match state.store.put_calendar_event(&event).await {
        Ok(()) => Json(event_json(&event)).into_response(),
        Err(e) => store_problem(&e),
    }
}

/// Staff: the city's events that ended in the last day or are still to come.
async fn list_events(
    _: StaffCaller,
    State(state): State<AppState>,
    Path(city): Path<String>,
) -> Response {
    let city = match city_of(&state, &city) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let from = mobility_core::TimestampMs(state.now().0 - 86_400_000);
    match state.store.calendar_events(&city, from).await {
        Ok(list) => Json(list.iter().map(event_json).collect::<Vec<_>>()).into_response(),
        Err(e) => store_problem(&e),
    }
}

/// Admin: removes an event from its city's calendar.
async fn delete_event(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match state.store.delete_calendar_event(&id).await {
        Ok(Some(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(None) => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
            .with_detail(format!("no event {id}"))
            .into_response(),
        Err(e) => store_problem(&e),
    }
}

/// A weather feed (gateway or admin token): the hours' weather, a covariate of the demand
/// forecast. Replaces what was known of those hours.
async fn put_weather(
    _: GatewayCaller,
    State(state): State<AppState>,
    Path(city): Path<String>,
    ApiJson(body): ApiJson<WeatherBody>,
) -> Response {
    let city = match city_of(&state, &city) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if body.hours.is_empty() || body.hours.len() > WEATHER_HOURS_MAX {
        return bad_request(
            "invalid_field",
            format!("hours must hold 1 to {WEATHER_HOURS_MAX} entries"),
        );
    }
    let now_ms = state.now().0;
    let (earliest, latest) = (
        now_ms - WEATHER_PAST_DAYS * 86_400_000,
        now_ms + WEATHER_AHEAD_DAYS * 86_400_000,
    );
    let mut hours = Vec::with_capacity(body.hours.len());
    for (i, h) in body.hours.iter().enumerate() {
        if h.start_ms.rem_euclid(3_600_000) != 0 || !(earliest..=latest).contains(&h.start_ms) {
            return bad_request(
                "invalid_field",
                format!(
                    "hours[{i}].start_ms must be a whole UTC hour from {WEATHER_PAST_DAYS} days ago to {WEATHER_AHEAD_DAYS} days ahead"
                ),
            );
        }
        if h.temp_c
            .is_some_and(|t| !(t.is_finite() && (-60.0..=60.0).contains(&t)))
        {
            return bad_request(
                "invalid_field",
                format!("hours[{i}].temp_c must be between -60 and 60"),
            );
        }
        hours.push(mobility_store::WeatherHour {
            hour: mobility_core::TimestampMs(h.start_ms),
            rain: h.rain,
            temp_c: h.temp_c,
        });
    }
    match state.store.put_weather(&city, &hours).await {
        Ok(()) => Json(json!({ "city": city, "hours": hours.len() })).into_response(),
        Err(e) => store_problem(&e),
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cities/{city}/zones", get(zones))
        .route("/v1/ops/forecast", get(forecast))
        .route("/v1/ops/plan", get(plan))
        .route("/v1/admin/cities/{city}/intel/refresh", post(refresh))
        .route("/v1/admin/cities/{city}/weather", put(put_weather))
        .route("/v1/admin/cities/{city}/events", get(list_events))
        .route("/v1/admin/cities/{city}/events/{id}", put(put_event))
        .route("/v1/admin/events/{id}", delete(delete_event))
}

fn city_of(state: &AppState, raw: &str) -> Result<CityId, Box<Response>> {
    let city =
        CityId::parse(raw).map_err(|e| Box::new(bad_request("invalid_field", e.to_string())))?;
    if state.fleet.shard(&city).is_none() {
        return Err(Box::new(
            Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
                .with_detail(format!("no city {city}"))
                .into_response(),
        ));
    }
    Ok(city)
}

/// Makes sure a city has been thought about once (a city created since the last tick).
async fn ensure(state: &AppState, city: &CityId) -> Result<(), Box<Response>> {
    if state.intel.board(city).is_none() {
        state
            .intel
            .refresh(city, state.now())
            .await
            .map_err(|e| Box::new(store_problem(&e)))?;
    }
    Ok(())
}

/// Public: each zone's price multiplier, why, and the incentives it offers.
async fn zones(State(state): State<AppState>, Path(city): Path<String>) -> Response {
    let city = match city_of(&state, &city) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = ensure(&state, &city).await {
        return *r;
    }
    let Some(board) = state.intel.board(&city) else {
        return store_problem(&mobility_store::StoreError::NotFound("prices".into()));
    };
    let spent = match state
        .store
        .incentive_spent(&city, mobility_services::intel::budget_day(state.now()))
        .await
    {
        Ok(s) => s,
        Err(e) => return store_problem(&e),
    };
    let budget = state.intel.pricing().daily_budget_cents;
    Json(json!({
        "city": city,
        "computed_at_ms": board.computed_at_ms,
        "forecast_source": board.forecast_source,
        "floor": board.floor,
        "cap": board.cap,
        "incentive_budget": { "daily": budget, "left_today": (budget - spent).max(0) },
        "zones": board.zones,
    }))
    .into_response()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CityParams {
    city: String,
}

/// Staff: the latest forecast per zone and slot, with the model versions and their scores.
async fn forecast(
    _: StaffCaller,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<CityParams>,
) -> Response {
    let city = match city_of(&state, &p.city) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = ensure(&state, &city).await {
        return *r;
    }
    let models = state.intel.models(&city);
    Json(json!({
        "forecast": state.intel.forecast(&city),
        "models": models,
    }))
    .into_response()
}

/// Staff: the field plan: each van's stops in order.
async fn plan(
    _: StaffCaller,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<CityParams>,
) -> Response {
    let city = match city_of(&state, &p.city) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = ensure(&state, &city).await {
        return *r;
    }
    Json(state.intel.plan(&city)).into_response()
}

/// Admin: forecast, price and plan now instead of at the next period.
async fn refresh(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(city): Path<String>,
) -> Response {
    let city = match city_of(&state, &city) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(e) = state.intel.refresh(&city, state.now()).await {
        return store_problem(&e);
    }
    let board = state.intel.board(&city);
    let plan = state.intel.plan(&city);
    Json(json!({
        "zones": board.as_ref().map_or(0, |b| b.zones.len()),
        "forecast_source": board.as_ref().map(|b| b.forecast_source),
        "plan_tasks": plan.as_ref().map(|p| p.tasks.clone()),
    }))
    .into_response()
}
