//! Reservations: `POST /v1/bookings`, `GET /v1/bookings/{id}`, `POST /v1/bookings/{id}/cancel`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use mobility_core::{Role, VehicleId};
use mobility_store::BookingRecord;
use serde::{Deserialize, Serialize};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, bad_request},
    now,
};
use crate::{auth::UserCaller, bookings::BookingError};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/bookings", post(reserve))
        .route("/v1/bookings/{id}", get(one))
        .route("/v1/bookings/{id}/cancel", post(cancel))
        .route("/v1/bookings/{id}/unlock", post(unlock))
        .route("/v1/bookings/{id}/end", post(end))
        .route("/v1/bookings/{id}/pause", post(pause))
        .route("/v1/bookings/{id}/resume", post(resume))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReserveBody {
    vehicle_id: String,
}

#[derive(Debug, Serialize)]
struct BookingDto {
    id: String,
    vehicle_id: String,
    city: String,
    state: String,
    created_at_ms: i64,
    hold_until_ms: i64,
    updated_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_m: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl From<&BookingRecord> for BookingDto {
    fn from(b: &BookingRecord) -> Self {
        Self {
            id: b.id.clone(),
            vehicle_id: b.vehicle_id.to_string(),
            city: b.city.to_string(),
            state: b.state.clone(),
            created_at_ms: b.created_at.0,
            hold_until_ms: b.hold_until.0,
            updated_at_ms: b.updated_at.0,
            started_at_ms: b.trip.started_at.map(|t| t.0),
            ended_at_ms: b.trip.ended_at.map(|t| t.0),
            distance_m: b.trip.distance_m,
            receipt: b
                .trip
                .receipt
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            detail: b.trip.detail.clone(),
        }
    }
}

fn problem(e: &BookingError) -> Response {
    let (status, slug, title) = match e {
        BookingError::UnknownVehicle(_) | BookingError::NotFound => {
            (StatusCode::NOT_FOUND, "not-found", "Not Found")
        }
        BookingError::Unavailable(_) => (
            StatusCode::CONFLICT,
            "vehicle-unavailable",
            "Vehicle unavailable",
        ),
        BookingError::Conflict => (StatusCode::CONFLICT, "already-booked", "Already booked"),
        BookingError::WrongState(_) => (StatusCode::CONFLICT, "wrong-state", "Wrong state"),
        BookingError::LicenceRequired => (
            StatusCode::FORBIDDEN,
            "licence-required",
            "Driving licence required",
        ),
        BookingError::VehicleDidNot(..) => (
            StatusCode::BAD_GATEWAY,
            "vehicle-did-not-respond",
            "The vehicle did not respond",
        ),
        BookingError::OutsideOperatingArea => (
            StatusCode::CONFLICT,
            "outside-operating-area",
            "Outside the operating area",
        ),
        BookingError::Store(s) => return store_problem(s),
    };
    metrics::counter!("http_rejections_total", "reason" => slug).increment(1);
    Problem::new(status, slug, title)
        .with_detail(e.to_string())
        .into_response()
}

/// A booking, or the problem that stopped the request.
fn reply(r: Result<BookingRecord, BookingError>) -> Response {
    match r {
        Ok(b) => Json(BookingDto::from(&b)).into_response(),
        Err(e) => problem(&e),
    }
}

/// Staff and admins see every booking; riders their own.
fn owner_filter(caller: &UserCaller) -> Option<&str> {
    (!caller.role.includes(Role::Staff)).then_some(caller.user_id.as_str())
}

async fn reserve(
    caller: UserCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReserveBody>,
) -> Response {
    let vehicle = match VehicleId::parse(&body.vehicle_id) {
        Ok(v) => v,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    match state
        .bookings
        .reserve(&caller.user_id, vehicle, now())
        .await
    {
        Ok(b) => (StatusCode::CREATED, Json(BookingDto::from(&b))).into_response(),
        Err(e) => problem(&e),
    }
}

async fn one(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    reply(state.bookings.get(&id, owner_filter(&caller)).await)
}

async fn cancel(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    reply(
        state
            .bookings
            .cancel(&id, owner_filter(&caller), now())
            .await,
    )
}

async fn unlock(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    reply(
        state
            .bookings
            .unlock(&id, owner_filter(&caller), now())
            .await,
    )
}

async fn end(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    reply(state.bookings.end(&id, owner_filter(&caller), now()).await)
}

async fn pause(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    reply(
        state
            .bookings
            .pause(&id, owner_filter(&caller), now())
            .await,
    )
}

async fn resume(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    reply(
        state
            .bookings
            .resume(&id, owner_filter(&caller), now())
            .await,
    )
}
