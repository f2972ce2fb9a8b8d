//! Live fleet queries: nearby search, one vehicle, fleet statistics.
//!
//! Nearby search needs a token for now (staff; riders once rider accounts exist): it reveals
//! stable vehicle ids, which would let anyone follow a vehicle from trip to trip. The public,
//! privacy-preserving view of available vehicles is the GBFS feed, whose ids rotate.

use axum::{
    Json, Router,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::get,
};
use mobility_core::{CityId, LatLon, VehicleId, VehicleState, VehicleType};
use mobility_fleet::{
    NearbyQuery, StateFilter, TypeMask, VehicleView,
    index::{NEAREST_LIMIT_MAX, RADIUS_M_MAX},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    AppState, Problem,
    extract::{ApiQuery, bad_request},
};
use crate::auth::{RiderCaller, StaffCaller};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/vehicles/nearby", get(nearby))
        .route("/v1/vehicles/{id}", get(vehicle))
        .route("/v1/fleet/stats", get(stats))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NearbyParams {
    lat: f64,
    lon: f64,
    radius_m: Option<f64>,
    limit: Option<usize>,
    /// Comma-separated vehicle types.
    #[serde(rename = "type")]
    types: Option<String>,
    min_battery: Option<u8>,
    city: Option<String>,
    /// `available` (default) or `any`.
    state: Option<String>,
}

#[derive(Debug, Serialize)]
struct NearbyResponse {
    vehicles: Vec<NearbyHit>,
}

#[derive(Debug, Serialize)]
struct NearbyHit {
    id: String,
    #[serde(rename = "type")]
    vehicle_type: &'static str,
    lat: f64,
    lon: f64,
    distance_m: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    battery_pct: Option<u8>,
}

fn parse_nearby(p: &NearbyParams) -> Result<(Option<CityId>, NearbyQuery), String> {
    let center = LatLon::new(p.lat, p.lon).map_err(|e| e.to_string())?;
    let radius_m = p.radius_m.unwrap_or(500.0);
    if !(radius_m.is_finite() && radius_m > 0.0 && radius_m <= RADIUS_M_MAX) {
        return Err(format!("radius_m must be in (0, {RADIUS_M_MAX}]"));
    }
    let limit = p.limit.unwrap_or(10);
    if !(1..=NEAREST_LIMIT_MAX).contains(&limit) {
        return Err(format!("limit must be in 1..={NEAREST_LIMIT_MAX}"));
    }
    let types = match &p.types {
        None => TypeMask::ALL,
        Some(list) => TypeMask::of(
            &list
                .split(',')
                .map(|t| VehicleType::parse(t.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?,
        ),
    };
    let min_battery = p.min_battery.unwrap_or(0);
    if min_battery > 100 {
        return Err("min_battery must be in 0..=100".into());
    }
    let state = match p.state.as_deref() {
        None | Some("available") => StateFilter::Only(VehicleState::Available),
        Some("any") => StateFilter::Any,
        Some(other) => return Err(format!("state must be available or any, not {other:?}")),
    };
    let city = p
        .city
        .as_deref()
        .map(CityId::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok((
        city,
        NearbyQuery {
            center,
            radius_m,
            limit,
            types,
            min_battery,
            state,
        },
    ))
}

async fn nearby(
    _: RiderCaller,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<NearbyParams>,
) -> Response {
    let (city, q) = match parse_nearby(&p) {
        Ok(x) => x,
        Err(e) => return bad_request("invalid_query", e),
    };
    let hits = state.fleet.nearest(city.as_ref(), &q);
    if let Some(c) = state.fleet.city_at(city.as_ref(), q.center) {
        // Demand is an event: counted here, published, and logged by the intel-demand consumer.
        state
            .demand
            .searched(&c, q.center, !hits.is_empty(), state.now());
    }
    let vehicles: Vec<NearbyHit> = hits
        .iter()
        .map(|h| NearbyHit {
            id: h.id.to_string(),
            vehicle_type: h.vehicle_type.as_str(),
            lat: h.position.lat(),
            lon: h.position.lon(),
            distance_m: (f64::from(h.distance_m) * 10.0).round() / 10.0,
            battery_pct: h.battery.map(|b| b.get()),
        })
        .collect();
    Json(NearbyResponse { vehicles }).into_response()
}

/// A vehicle's live state as the API shows it.
#[derive(Debug, Serialize)]
pub struct VehicleDto {
    id: String,
    city: String,
    #[serde(rename = "type")]
    vehicle_type: &'static str,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reported_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    battery_pct: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed_mps: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heading_deg: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    odometer_m: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locked: Option<bool>,
    errors: Vec<u16>,
}

impl VehicleDto {
    /// Renders a live view.
    #[must_use]
    pub fn of(city: &CityId, v: &VehicleView) -> Self {
        Self {
            id: v.id.to_string(),
            city: city.to_string(),
            vehicle_type: v.vehicle_type.as_str(),
            state: v.state.as_str(),
            lat: v.position.map(|p| p.lat()),
            lon: v.position.map(|p| p.lon()),
            reported_at_ms: v.at.map(|t| t.0),
            battery_pct: v.battery.map(|b| b.get()),
            speed_mps: v.speed_m_s,
            heading_deg: v.heading_deg,
            odometer_m: v.odometer_m,
            locked: v.locked,
            errors: v.error_codes.clone(),
        }
    }
}

async fn vehicle(
    _: StaffCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let id = match VehicleId::parse(&id) {
        Ok(id) => id,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    match state.fleet.vehicle(&id) {
        Some((city, view)) => Json(VehicleDto::of(&city, &view)).into_response(),
        None => Problem::new(axum::http::StatusCode::NOT_FOUND, "not-found", "Not Found")
            .with_detail(format!("no vehicle {id}"))
            .into_response(),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StatsParams {
    city: String,
}

async fn stats(
    _: StaffCaller,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<StatsParams>,
) -> Response {
    let city = match CityId::parse(&p.city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_query", e.to_string()),
    };
    let Some(s) = state.fleet.stats(&city) else {
        return Problem::new(axum::http::StatusCode::NOT_FOUND, "not-found", "Not Found")
            .with_detail(format!("no city {city}"))
            .into_response();
    };
    let by_state: serde_json::Map<String, serde_json::Value> = s
        .by_state
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
        .collect();
    let by_type: serde_json::Map<String, serde_json::Value> = s
        .by_type
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
        .collect();
    let b = s.battery_bands;
    let demand = state.fleet.search_demand(&city, state.now());
    Json(json!({
        "searches_last_hour": { "total": demand.searches, "unmet": demand.unmet },
        "city": city.as_str(),
        "total": s.total,
        "by_state": by_state,
        "by_type": by_type,
        "battery": {
            "0-19": b[0], "20-39": b[1], "40-59": b[2], "60-79": b[3], "80-100": b[4], "unknown": b[5],
        },
    }))
    .into_response()
}
