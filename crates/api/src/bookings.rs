//! Reservations: `POST /v1/bookings`, `GET /v1/bookings/{id}`, `POST /v1/bookings/{id}/cancel`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use mobility_core::{Role, VehicleId};
use mobility_store::{BookingFilter, BookingRecord};
use serde::{Deserialize, Serialize};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, ApiQuery, bad_request},
};
use mobility_services::bookings::BookingError;

use crate::auth::UserCaller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/bookings", post(reserve).get(list))
        .route("/v1/bookings/{id}", get(one))
        .route("/v1/bookings/{id}/cancel", post(cancel))
        .route("/v1/bookings/{id}/unlock", post(unlock))
        .route("/v1/bookings/{id}/end", post(end))
        .route("/v1/bookings/{id}/pause", post(pause))
        .route("/v1/bookings/{id}/resume", post(resume))
        .route("/v1/bookings/{id}/refund", post(refund))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReserveBody {
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

/// A booking as staff see it in lists: with its rider.
#[derive(Debug, Serialize)]
struct StaffBookingDto {
    user_id: String,
    #[serde(flatten)]
    booking: BookingDto,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    city: Option<String>,
    state: Option<String>,
    vehicle_id: Option<String>,
    user_id: Option<String>,
    /// The next page: bookings created before this (ms).
    before: Option<i64>,
    limit: Option<u32>,
}

/// Staff: bookings and trips, newest first, with filters (city, state, vehicle, rider).
async fn list(
    _: crate::auth::StaffCaller,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Response {
    const STATES: &[&str] = &[
        "reserved",
        "unlocking",
        "on_trip",
        "paused",
        "ended",
        "cancelled",
        "expired",
        "failed",
    ];
    let city = match p
        .city
        .as_deref()
        .map(mobility_core::CityId::parse)
        .transpose()
    {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_query", format!("city: {e}")),
    };
    let vehicle_id = match p.vehicle_id.as_deref().map(VehicleId::parse).transpose() {
        Ok(v) => v,
        Err(e) => return bad_request("invalid_query", format!("vehicle_id: {e}")),
    };
    if let Some(s) = &p.state
        && !STATES.contains(&s.as_str())
    {
        return bad_request(
            "invalid_query",
            format!("state must be one of {}", STATES.join(", ")),
        );
    }
    let filter = BookingFilter {
        city,
        state: p.state,
        vehicle_id,
        user_id: p.user_id,
        before: p.before.map(mobility_core::TimestampMs),
        limit: p.limit.unwrap_or(50).clamp(1, 500),
    };
    match state.store.list_bookings(&filter).await {
        Ok(list) => Json(
            list.iter()
                .map(|b| StaffBookingDto {
                    user_id: b.user_id.clone(),
                    booking: BookingDto::from(b),
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => store_problem(&e),
    }
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
        BookingError::PaymentDeclined(_) => (
            StatusCode::PAYMENT_REQUIRED,
            "payment-declined",
            "Payment declined",
        ),
        BookingError::PaymentPending(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "payment-pending",
            "Payment pending",
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
        .reserve(&caller.user_id, vehicle, state.now())
        .await
    {
        Ok(b) => (StatusCode::CREATED, Json(BookingDto::from(&b))).into_response(),
        Err(e) => problem(&e),
    }
}

/// A booking; while the trip runs, with `live` figures (time, distance, fare so far).
async fn one(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let b = match state.bookings.get(&id, owner_filter(&caller)).await {
        Ok(b) => b,
        Err(e) => return problem(&e),
    };
    let mut body = serde_json::to_value(BookingDto::from(&b)).unwrap_or_default();
    match state.bookings.live(&b, state.now()).await {
        Ok(Some(live)) => body["live"] = serde_json::to_value(live).unwrap_or_default(),
        Ok(None) => {}
        Err(e) => return problem(&e),
    }
    Json(body).into_response()
}

async fn cancel(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    reply(
        state
            .bookings
            .cancel(&id, owner_filter(&caller), state.now())
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
            .unlock(&id, owner_filter(&caller), state.now())
            .await,
    )
}

async fn end(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    reply(
        state
            .bookings
            .end(&id, owner_filter(&caller), state.now())
            .await,
    )
}

async fn pause(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    reply(
        state
            .bookings
            .pause(&id, owner_filter(&caller), state.now())
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
            .resume(&id, owner_filter(&caller), state.now())
            .await,
    )
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefundBody {
    /// Minor units; default: everything not yet refunded.
    amount: Option<i64>,
    reason: Option<String>,
}

/// Staff refund (part of) a trip's fare. `Idempotency-Key` is required: the same key is the
/// same refund, however often it is sent.
async fn refund(
    _: crate::auth::StaffCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    super::extract::IdempotencyKey(key): super::extract::IdempotencyKey,
    ApiJson(body): ApiJson<RefundBody>,
) -> Response {
    let key = key.as_str();
    if body
        .reason
        .as_deref()
        .is_some_and(|r| r.chars().count() > 500)
    {
        return bad_request("invalid_field", "reason is at most 500 characters");
    }
    let payments = match state.store.booking_payments(&id).await {
        Ok(p) => p,
        Err(e) => return store_problem(&e),
    };
    let Some(charge) = payments.iter().find(|p| {
        p.kind == mobility_core::payments::PaymentKind::Charge
            && p.state == mobility_core::payments::PaymentState::Succeeded
    }) else {
        return problem(&BookingError::WrongState(
            "not paid: nothing to refund".into(),
        ));
    };
    let refunded: i64 = payments
        .iter()
        .filter(|p| {
            p.kind == mobility_core::payments::PaymentKind::Refund
                && p.state == mobility_core::payments::PaymentState::Succeeded
        })
        .map(|p| p.amount.minor)
        .sum();
    let amount = body.amount.unwrap_or(charge.amount.minor - refunded);
    let money = mobility_core::Money::new(amount, charge.amount.currency);
    match state
        .bookings
        .payments()
        .refund(
            &format!("refund:{id}:{key}"),
            &charge.idempotency_key,
            money,
            refunded,
        )
        .await
    {
        Ok(Ok(r)) => Json(serde_json::json!({
            "booking_id": id,
            "amount": r.amount.minor,
            "currency": r.amount.currency.to_string(),
            "provider": r.provider,
            "state": r.state,
        }))
        .into_response(),
        Ok(Err(why)) => bad_request("invalid_field", why),
        Err(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "payment-pending",
            "Payment pending",
        )
        .with_detail(e.to_string())
        .into_response(),
    }
}
