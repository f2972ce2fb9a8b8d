//! Geofence administration and the feed of geofence events and alerts.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use mobility_core::CityId;
use mobility_fleet::geofence::ZoneKind;
use mobility_store::GeofenceRecord;
use serde::{Deserialize, Serialize};

use super::{
    AppState, Problem,
    admin::{GeoPolygon, store_problem},
    extract::{ApiJson, ApiQuery, bad_request},
};
use mobility_live::fleet::fence_from_record;

use crate::auth::{AdminCaller, StaffCaller};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/cities/{city}/geofences", post(create))
        .route("/v1/admin/geofences/{id}", put(replace).delete(remove))
        .route("/v1/cities/{city}/geofences", get(list))
        .route("/v1/fleet/events", get(events))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FenceBody {
    name: String,
    kind: String,
    speed_limit_kmh: Option<i64>,
    geometry: GeoPolygon,
    /// Only in PUT: the city the fence belongs to.
    city: Option<String>,
}

#[derive(Debug, Serialize)]
struct FenceDto {
    id: String,
    city: String,
    name: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed_limit_kmh: Option<i64>,
    geometry: GeoPolygon,
}

impl From<&GeofenceRecord> for FenceDto {
    fn from(r: &GeofenceRecord) -> Self {
        Self {
            id: r.id.clone(),
            city: r.city.to_string(),
            name: r.name.clone(),
            kind: r.kind.clone(),
            speed_limit_kmh: r.speed_limit_kmh,
            geometry: GeoPolygon::from_pairs(&r.ring),
        }
    }
}

fn record(
    id: String,
    city: CityId,
    body: &FenceBody,
    now: mobility_core::TimestampMs,
) -> Result<GeofenceRecord, String> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err("name must be 1 to 200 characters".into());
    }
    ZoneKind::parse(&body.kind, body.speed_limit_kmh).map_err(|e| e.to_string())?;
    let r = GeofenceRecord {
        id,
        city,
        name: name.to_owned(),
        kind: body.kind.clone(),
        speed_limit_kmh: body.speed_limit_kmh,
        ring: body.geometry.outer_ring()?,
        updated_at: now,
    };
    fence_from_record(&r).map_err(|e| e.to_string())?;
    Ok(r)
}

async fn store_and_reload(state: &AppState, r: &GeofenceRecord) -> Result<(), Response> {
    state
        .store
        .put_geofence(r)
        .await
        .map_err(|e| store_problem(&e))?;
    let all = state
        .store
        .geofences(&r.city)
        .await
        .map_err(|e| store_problem(&e))?;
    state.fleet.set_fences(&r.city, &all);
    Ok(())
}

async fn create(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(city): Path<String>,
    ApiJson(body): ApiJson<FenceBody>,
) -> Response {
    let city = match CityId::parse(&city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    if body.city.is_some() {
        return bad_request(
            "invalid_field",
            "the city is in the path; do not repeat it in the body",
        );
    }
    let r = match record(uuid::Uuid::now_v7().to_string(), city, &body, state.now()) {
        Ok(r) => r,
        Err(e) => return bad_request("invalid_field", e),
    };
    if let Err(resp) = store_and_reload(&state, &r).await {
        return resp;
    }
    (StatusCode::CREATED, Json(FenceDto::from(&r))).into_response()
}

async fn replace(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FenceBody>,
) -> Response {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return bad_request(
            "invalid_field",
            "a geofence id is 1 to 64 letters, digits or '-'",
        );
    }
    let Some(city) = body.city.as_deref() else {
        return bad_request("invalid_field", "missing field `city`");
    };
    let city = match CityId::parse(city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    let r = match record(id, city, &body, state.now()) {
        Ok(r) => r,
        Err(e) => return bad_request("invalid_field", e),
    };
    if let Err(resp) = store_and_reload(&state, &r).await {
        return resp;
    }
    Json(FenceDto::from(&r)).into_response()
}

async fn remove(_: AdminCaller, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.store.delete_geofence(&id).await {
        Ok(Some(city)) => match state.store.geofences(&city).await {
            Ok(all) => {
                state.fleet.set_fences(&city, &all);
                StatusCode::NO_CONTENT.into_response()
            }
            Err(e) => store_problem(&e),
        },
        Ok(None) => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
            .with_detail(format!("no geofence {id}"))
            .into_response(),
        Err(e) => store_problem(&e),
    }
}

async fn list(_: StaffCaller, State(state): State<AppState>, Path(city): Path<String>) -> Response {
    let city = match CityId::parse(&city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    match state.store.geofences(&city).await {
        Ok(rs) => Json(rs.iter().map(FenceDto::from).collect::<Vec<_>>()).into_response(),
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsParams {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn events(
    _: StaffCaller,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<EventsParams>,
) -> Response {
    let limit = p.limit.unwrap_or(100).clamp(1, 1_000);
    Json(state.live.events().since(p.after.unwrap_or(0), limit)).into_response()
}
