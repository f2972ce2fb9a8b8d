//! Admin endpoints: cities, the vehicle registry (with device credentials) and API tokens.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use mobility_core::{
    City, CityId, Currency, LatLon, OperatingArea, Role, Vehicle, VehicleId, VehicleType,
};
use mobility_store::{ApiToken, StoreError};
use serde::{Deserialize, Serialize};

use super::{
    AppState, Problem,
    extract::{ApiJson, ApiQuery, bad_request},
};
use mobility_services::accounts::{new_secret, sha256_hex};

use crate::auth::{AdminCaller, StaffCaller};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cities", get(list_cities))
        .route("/v1/admin/cities/{id}", put(put_city))
        .route(
            "/v1/admin/vehicles",
            post(register_vehicle).get(list_vehicles),
        )
        .route("/v1/admin/vehicles/batch", post(register_batch))
        .route("/v1/admin/tokens", post(issue_token).get(list_tokens))
        .route("/v1/admin/tokens/{id}", delete(revoke_token))
}

/// A store failure as a problem: conflicts and missing references are the client's, the rest ours.
pub(super) fn store_problem(e: &StoreError) -> Response {
    let (status, slug, title) = match e {
        StoreError::AlreadyExists(_) | StoreError::VersionConflict { .. } => {
            (StatusCode::CONFLICT, "conflict", "Conflict")
        }
        StoreError::MissingReference(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing-reference",
            "Unprocessable Entity",
        ),
        StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not Found"),
        _ => {
            tracing::error!(error = %e, "store error");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "Service Unavailable",
            )
            .with_detail("the database did not complete the request; try again")
            .into_response();
        }
    };
    metrics::counter!("http_rejections_total", "reason" => slug).increment(1);
    Problem::new(status, slug, title)
        .with_detail(e.to_string())
        .into_response()
}

/// A GeoJSON Polygon geometry (outer ring only).
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GeoPolygon {
    #[serde(rename = "type")]
    kind: String,
    coordinates: Vec<Vec<[f64; 2]>>,
}

impl GeoPolygon {
    /// A polygon from an open ring of `[lon, lat]` pairs (closed on output, as GeoJSON wants).
    #[must_use]
    pub fn from_pairs(ring: &[[f64; 2]]) -> Self {
        let mut ring = ring.to_vec();
        if let Some(first) = ring.first().copied() {
            ring.push(first);
        }
        Self {
            kind: "Polygon".into(),
            coordinates: vec![ring],
        }
    }

    /// The outer ring as `[lon, lat]` pairs (validated), or why it is unusable.
    pub fn outer_ring(&self) -> Result<Vec<[f64; 2]>, String> {
        let area = self.to_area()?;
        Ok(area.ring().iter().map(|p| [p.lon(), p.lat()]).collect())
    }
}

impl GeoPolygon {
    fn from_area(a: &OperatingArea) -> Self {
        let mut ring: Vec<[f64; 2]> = a.ring().iter().map(|p| [p.lon(), p.lat()]).collect();
        if let Some(first) = ring.first().copied() {
            ring.push(first);
        }
        Self {
            kind: "Polygon".into(),
            coordinates: vec![ring],
        }
    }

    fn to_area(&self) -> Result<OperatingArea, String> {
        if self.kind != "Polygon" {
            return Err(format!(
                "operating_area must be a GeoJSON Polygon, not {:?}",
                self.kind
            ));
        }
        match self.coordinates.as_slice() {
            [outer] => {
                let ring = outer
                    .iter()
                    .map(|[lon, lat]| LatLon::new(*lat, *lon))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                OperatingArea::new(ring).map_err(|e| e.to_string())
            }
            [] => Err("operating_area has no ring".into()),
            _ => Err("operating_area holes are not supported; send only the outer ring".into()),
        }
    }
}

#[derive(Debug, Serialize)]
struct CityDto {
    id: String,
    name: String,
    timezone: String,
    currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    operating_area: Option<GeoPolygon>,
}

impl From<&City> for CityDto {
    fn from(c: &City) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            timezone: c.timezone.clone(),
            currency: c.currency.to_string(),
            operating_area: c.operating_area.as_ref().map(GeoPolygon::from_area),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PutCity {
    name: String,
    timezone: String,
    currency: String,
    operating_area: Option<GeoPolygon>,
}

/// Public: which cities the platform runs in.
async fn list_cities(State(state): State<AppState>) -> Response {
    match state.store.cities().await {
        Ok(cities) => Json(cities.iter().map(CityDto::from).collect::<Vec<_>>()).into_response(),
        Err(e) => store_problem(&e),
    }
}

async fn put_city(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PutCity>,
) -> Response {
    let id = match CityId::parse(&id) {
        Ok(id) => id,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    let currency = match Currency::parse(&body.currency) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    let area = match body
        .operating_area
        .as_ref()
        .map(GeoPolygon::to_area)
        .transpose()
    {
        Ok(a) => a,
        Err(e) => return bad_request("invalid_field", e),
    };
    let city = match City::new(id, &body.name, &body.timezone, currency, area) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    if let Err(e) = state.store.put_city(&city, state.now()).await {
        return store_problem(&e);
    }
    state.fleet.put_city(city.clone());
    // The operating area is one of the city's fences.
    match state.store.geofences(&city.id).await {
        Ok(records) => state.fleet.set_fences(&city.id, &records),
        Err(e) => return store_problem(&e),
    }
    Json(CityDto::from(&city)).into_response()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterVehicle {
    city: String,
    #[serde(rename = "type")]
    vehicle_type: String,
    /// Optional: keep an id the device already has (a UUID). New UUIDv7 otherwise.
    id: Option<String>,
}

#[derive(Debug, Serialize)]
struct Registered {
    id: String,
    city: String,
    #[serde(rename = "type")]
    vehicle_type: &'static str,
    state: &'static str,
    /// Shown once: the store keeps only its digest.
    device_secret: String,
    mqtt: MqttCredentials,
}

#[derive(Debug, Serialize)]
struct MqttCredentials {
    client_id: String,
    username: String,
    password: String,
    telemetry_topic: String,
    commands_topic: String,
}

/// Most vehicles in one batch registration.
pub const REGISTER_BATCH_MAX: usize = 1_000;

/// Parses one registration into the vehicle and its fresh device secret.
fn new_vehicle(
    body: &RegisterVehicle,
    now: mobility_core::TimestampMs,
) -> Result<(Vehicle, String), String> {
    let city = CityId::parse(&body.city).map_err(|e| e.to_string())?;
    let vehicle_type = VehicleType::parse(&body.vehicle_type).map_err(|e| e.to_string())?;
    let id = match body.id.as_deref().map(VehicleId::parse).transpose() {
        Ok(Some(id)) => id,
        Ok(None) => VehicleId::from_uuid(uuid::Uuid::now_v7()),
        Err(e) => return Err(e.to_string()),
    };
    Ok((
        Vehicle::registered(id, city, vehicle_type, now),
        new_secret(),
    ))
}

fn registered(vehicle: &Vehicle, secret: String) -> Registered {
    let id = vehicle.id.to_string();
    Registered {
        id: id.clone(),
        city: vehicle.city.to_string(),
        vehicle_type: vehicle.vehicle_type.as_str(),
        state: vehicle.state.as_str(),
        device_secret: secret.clone(),
        mqtt: MqttCredentials {
            client_id: id.clone(),
            username: id.clone(),
            password: secret,
            telemetry_topic: format!("v1/vehicles/{id}/telemetry"),
            commands_topic: format!("v1/vehicles/{id}/commands"),
        },
    }
}

async fn register_vehicle(
    _: AdminCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterVehicle>,
) -> Response {
    let (vehicle, secret) = match new_vehicle(&body, state.now()) {
        Ok(x) => x,
        Err(e) => return bad_request("invalid_field", e),
    };
    if let Err(e) = state
        .store
        .insert_vehicle(&vehicle, &sha256_hex(&secret))
        .await
    {
        return store_problem(&e);
    }
    state.fleet.register(&vehicle);
    (StatusCode::CREATED, Json(registered(&vehicle, secret))).into_response()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterBatch {
    vehicles: Vec<RegisterVehicle>,
}

#[derive(Debug, Serialize)]
struct RegisteredBatch {
    vehicles: Vec<Registered>,
}

/// Registers up to [`REGISTER_BATCH_MAX`] vehicles in one transaction (a delivery of a fleet):
/// all are registered or, on any invalid or duplicate entry, none.
async fn register_batch(
    _: AdminCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterBatch>,
) -> Response {
    if body.vehicles.is_empty() || body.vehicles.len() > REGISTER_BATCH_MAX {
        return bad_request(
            "invalid_field",
            format!("vehicles must hold 1 to {REGISTER_BATCH_MAX} entries"),
        );
    }
    let mut fresh = Vec::with_capacity(body.vehicles.len());
    for (i, v) in body.vehicles.iter().enumerate() {
        match new_vehicle(v, state.now()) {
            Ok(x) => fresh.push(x),
            Err(e) => return bad_request("invalid_field", format!("vehicles[{i}]: {e}")),
        }
    }
    let rows: Vec<(Vehicle, String)> = fresh
        .iter()
        .map(|(v, s)| (v.clone(), sha256_hex(s)))
        .collect();
    if let Err(e) = state.store.insert_vehicles(&rows).await {
        return store_problem(&e);
    }
    for (v, _) in &fresh {
        state.fleet.register(v);
    }
    tracing::info!(count = fresh.len(), "registered a batch of vehicles");
    let vehicles = fresh.into_iter().map(|(v, s)| registered(&v, s)).collect();
    (StatusCode::CREATED, Json(RegisteredBatch { vehicles })).into_response()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListVehicles {
    city: String,
    after: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct RegistryEntry {
    id: String,
    city: String,
    #[serde(rename = "type")]
    vehicle_type: &'static str,
    state: &'static str,
    version: u64,
    updated_at_ms: i64,
}

async fn list_vehicles(
    _: StaffCaller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListVehicles>,
) -> Response {
    let city = match CityId::parse(&q.city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_query", e.to_string()),
    };
    let after = match q.after.as_deref().map(VehicleId::parse).transpose() {
        Ok(a) => a,
        Err(e) => return bad_request("invalid_query", e.to_string()),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    match state.store.vehicles(&city, after.as_ref(), limit).await {
        Ok(vs) => Json(
            vs.iter()
                .map(|v| RegistryEntry {
                    id: v.id.to_string(),
                    city: v.city.to_string(),
                    vehicle_type: v.vehicle_type.as_str(),
                    state: v.state.as_str(),
                    version: v.version,
                    updated_at_ms: v.updated_at.0,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IssueToken {
    role: String,
    label: String,
}

#[derive(Debug, Serialize)]
struct TokenDto {
    id: String,
    role: &'static str,
    label: String,
    created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at_ms: Option<i64>,
    /// Only in the response that issues it.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl TokenDto {
    fn of(t: &ApiToken, secret: Option<String>) -> Self {
        Self {
            id: t.id.clone(),
            role: t.role.as_str(),
            label: t.label.clone(),
            created_at_ms: t.created_at.0,
            revoked_at_ms: t.revoked_at.map(|x| x.0),
            token: secret,
        }
    }
}

async fn issue_token(
    _: AdminCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<IssueToken>,
) -> Response {
    let role = match Role::parse(&body.role) {
        Ok(Role::Rider) => {
            return bad_request(
                "invalid_field",
                "riders sign in with accounts (POST /v1/auth/signup), not API tokens",
            );
        }
        Ok(r) => r,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    let label = body.label.trim();
    if label.is_empty() || label.len() > 200 {
        return bad_request("invalid_field", "label must be 1 to 200 characters");
    }
    let secret = new_secret();
    let token = ApiToken {
        id: uuid::Uuid::now_v7().to_string(),
        role,
        label: label.to_owned(),
        secret_sha256: sha256_hex(&secret),
        created_at: state.now(),
        revoked_at: None,
    };
    if let Err(e) = state.store.insert_api_token(&token).await {
        return store_problem(&e);
    }
    tracing::info!(token_id = %token.id, role = role.as_str(), "issued API token");
    (
        StatusCode::CREATED,
        Json(TokenDto::of(&token, Some(secret))),
    )
        .into_response()
}

async fn list_tokens(_: AdminCaller, State(state): State<AppState>) -> Response {
    match state.store.api_tokens().await {
        Ok(ts) => {
            Json(ts.iter().map(|t| TokenDto::of(t, None)).collect::<Vec<_>>()).into_response()
        }
        Err(e) => store_problem(&e),
    }
}

async fn revoke_token(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match state.store.revoke_api_token(&id, state.now()).await {
        Ok(true) => {
            state.auth.forget_cached();
            tracing::info!(token_id = %id, "revoked API token");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => store_problem(&StoreError::NotFound(format!("api token {id}"))),
        Err(e) => store_problem(&e),
    }
}
