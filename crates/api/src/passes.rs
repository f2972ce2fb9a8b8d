//! Passes: plans a city sells (a monthly commuter pass, say: free unlocks and the first 30
//! minutes of every trip) and the passes riders buy. Trips a pass covers are priced with it
//! (`mobility_core::fare_with_pass`); the receipt says what it saved.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, put},
};
use mobility_core::{CityId, Money, PassBenefit, TimestampMs, VehicleType};
use mobility_store::{PassPlan, RiderPass, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, bad_request},
};
use crate::auth::{AdminCaller, UserCaller};

/// Highest price of a pass, minor units.
const PRICE_MAX: i64 = 10_000_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/cities/{city}/passes/{id}", put(put_plan))
        .route("/v1/cities/{city}/passes", get(list_plans))
        .route("/v1/me/passes", get(mine).post(buy))
}

fn problem(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Response {
    Problem::new(status, slug, title)
        .with_detail(detail)
        .into_response()
}

fn plan_json(p: &PassPlan) -> Value {
    json!({
        "id": p.id,
        "city": p.city.as_str(),
        "name": p.name,
        "price": p.price.minor,
        "currency": p.price.currency.code(),
        "price_display": p.price.to_string(),
        "valid_days": p.valid_days,
        "vehicle_types": p.vehicle_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "free_unlock": p.benefit.free_unlock,
        "free_minutes": p.benefit.free_minutes,
        "active": p.active,
    })
}

fn pass_json(p: &RiderPass, plan: Option<&PassPlan>, at: TimestampMs) -> Value {
    json!({
        "id": p.id,
        "plan_id": p.plan_id,
        "plan": plan.map(plan_json),
        "starts_at_ms": p.starts_at.0,
        "ends_at_ms": p.ends_at.0,
        "active": p.starts_at <= at && at < p.ends_at,
    })
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanBody {
    name: String,
    price: i64,
    valid_days: u32,
    vehicle_types: Vec<String>,
    free_unlock: bool,
    free_minutes: u32,
    active: Option<bool>,
}

async fn put_plan(
    _: AdminCaller,
    State(state): State<AppState>,
    Path((city, id)): Path<(String, String)>,
    ApiJson(b): ApiJson<PlanBody>,
) -> Response {
    let city = match CityId::parse(&city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    let Some(currency) = state.fleet.shard(&city).map(|s| s.city.read().currency) else {
        return problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            format!("no city {city}"),
        );
    };
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return bad_request("invalid_field", "the pass id is 1 to 64 of a-z, 0-9 and -");
    }
    let name = b.name.trim();
    if name.is_empty() || name.len() > 200 {
        return bad_request("invalid_field", "name must be 1 to 200 characters");
    }
    if !(0..=PRICE_MAX).contains(&b.price) {
        return bad_request(
            "invalid_field",
            format!("price must be 0 to {PRICE_MAX} minor units"),
        );
    }
    if !(1..=366).contains(&b.valid_days) {
        return bad_request("invalid_field", "valid_days must be 1 to 366");
    }
    if b.free_minutes > 24 * 60 {
        return bad_request("invalid_field", "free_minutes must be at most 1440");
    }
    if !b.free_unlock && b.free_minutes == 0 {
        return bad_request(
            "invalid_field",
            "a pass must give something: free_unlock and/or free_minutes",
        );
    }
    let mut types = Vec::new();
    for t in &b.vehicle_types {
        match VehicleType::parse(t) {
            Ok(t) if !types.contains(&t) => types.push(t),
            Ok(_) => {}
            Err(e) => return bad_request("invalid_field", e.to_string()),
        }
    }
    if types.is_empty() {
        return bad_request("invalid_field", "vehicle_types must name at least one type");
    }
    let plan = PassPlan {
        id: id.clone(),
        city: city.clone(),
        name: name.to_owned(),
        price: Money::new(b.price, currency),
        valid_days: b.valid_days,
        vehicle_types: types,
        benefit: PassBenefit {
            free_unlock: b.free_unlock,
            free_minutes: b.free_minutes,
        },
        active: b.active.unwrap_or(true),
        updated_at: state.now(),
    };
    if let Err(e) = state.store.put_pass_plan(&plan).await {
        return store_problem(&e);
    }
    // An id is one city's: the upsert leaves another city's plan alone, which is a conflict.
    match state.store.pass_plan(&id).await {
        Ok(Some(stored)) if stored.city == city => Json(plan_json(&stored)).into_response(),
        Ok(_) => problem(
            StatusCode::CONFLICT,
            "pass-id-taken",
            "Conflict",
            format!("the pass id {id} belongs to another city"),
        ),
        Err(e) => store_problem(&e),
    }
}

/// Public: the passes a city sells.
async fn list_plans(State(state): State<AppState>, Path(city): Path<String>) -> Response {
    let city = match CityId::parse(&city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    match state.store.pass_plans(&city).await {
        Ok(plans) => Json(
            plans
                .iter()
                .filter(|p| p.active)
                .map(plan_json)
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => store_problem(&e),
    }
}

async fn mine(caller: UserCaller, State(state): State<AppState>) -> Response {
    let at = state.now();
    let passes = match state.store.rider_passes(&caller.user_id).await {
        Ok(p) => p,
        Err(e) => return store_problem(&e),
    };
    let mut out = Vec::with_capacity(passes.len());
    for p in &passes {
        let plan = state.store.pass_plan(&p.plan_id).await.ok().flatten();
        out.push(pass_json(p, plan.as_ref(), at));
    }
    Json(out).into_response()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BuyBody {
    plan_id: String,
}

/// Buys a pass: paid from the wallet if it holds enough, else through the payment providers,
/// once per `Idempotency-Key`. It starts now, or when the rider's current pass of the same plan
/// ends (passes stack).
async fn buy(
    caller: UserCaller,
    State(state): State<AppState>,
    super::extract::IdempotencyKey(key): super::extract::IdempotencyKey,
    ApiJson(body): ApiJson<BuyBody>,
) -> Response {
    let key = key.as_str();
    let key = format!("pass:{}:{key}", caller.user_id);
    let at = state.now();
    match state.store.rider_pass_by_key(&key).await {
        Ok(Some(done)) => {
            let plan = state.store.pass_plan(&done.plan_id).await.ok().flatten();
            return Json(pass_json(&done, plan.as_ref(), at)).into_response();
        }
        Ok(None) => {}
        Err(e) => return store_problem(&e),
    }
    let plan = match state.store.pass_plan(&body.plan_id).await {
        Ok(Some(p)) if p.active => p,
        Ok(_) => {
            return problem(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not Found",
                format!("no pass {} on sale", body.plan_id),
            );
        }
        Err(e) => return store_problem(&e),
    };
    let payments = state.bookings.payments();
    let paid = match payments
        .pay_from_wallet(&key, &caller.user_id, None, plan.price)
        .await
    {
        Ok(Some(p)) => Ok(p),
        Ok(None) => {
            payments
                .charge(&key, &caller.user_id, None, plan.price)
                .await
        }
        Err(e) => Err(e),
    };
    match paid {
        Ok(p) if p.state == mobility_core::payments::PaymentState::Succeeded => {}
        Ok(p) => {
            return problem(
                StatusCode::PAYMENT_REQUIRED,
                "payment-failed",
                "Payment failed",
                p.detail.unwrap_or_default(),
            );
        }
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "payment-pending",
                "Payment pending",
                e.to_string(),
            );
        }
    }
    let held = state
        .store
        .rider_passes(&caller.user_id)
        .await
        .unwrap_or_default();
    let starts_at = held
        .iter()
        .filter(|p| p.plan_id == plan.id && p.ends_at > at)
        .map(|p| p.ends_at)
        .max()
        .unwrap_or(at);
    let pass = RiderPass {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: caller.user_id.clone(),
        plan_id: plan.id.clone(),
        starts_at,
        ends_at: starts_at.plus_ms(i64::from(plan.valid_days) * 86_400_000),
        payment_key: key.clone(),
        created_at: at,
    };
    match state.store.insert_rider_pass(&pass).await {
        Ok(()) => (StatusCode::CREATED, Json(pass_json(&pass, Some(&plan), at))).into_response(),
        // A concurrent retry with the same key got there first: answer with its pass.
        Err(StoreError::AlreadyExists(_)) => match state.store.rider_pass_by_key(&key).await {
            Ok(Some(done)) => Json(pass_json(&done, Some(&plan), at)).into_response(),
            Ok(None) => store_problem(&StoreError::NotFound(key)),
            Err(e) => store_problem(&e),
        },
        Err(e) => store_problem(&e),
    }
}
