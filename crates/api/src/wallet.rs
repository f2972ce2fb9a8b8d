//! A rider's wallet: prepaid credit, topped up through the payment providers and spent on trips
//! before any card charge.

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use mobility_core::{Currency, Money};
use serde::Deserialize;

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, ApiQuery, bad_request},
};
use crate::auth::UserCaller;

/// Largest single top-up, minor units.
const TOP_UP_MAX: i64 = 50_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/wallet", get(balance))
        .route("/v1/me/wallet/top-up", post(top_up))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CurrencyParam {
    currency: String,
}

async fn balance(
    caller: UserCaller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<CurrencyParam>,
) -> Response {
    let currency = match Currency::parse(&q.currency) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_query", e.to_string()),
    };
    match state
        .bookings
        .payments()
        .wallet(&caller.user_id, currency)
        .await
    {
        Ok(minor) => Json(serde_json::json!({
            "currency": currency.to_string(),
            "balance": minor,
            "balance_display": Money::new(minor, currency).to_string(),
        }))
        .into_response(),
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TopUp {
    amount: i64,
    currency: String,
}

async fn top_up(
    caller: UserCaller,
    State(state): State<AppState>,
    super::extract::IdempotencyKey(key): super::extract::IdempotencyKey,
    ApiJson(body): ApiJson<TopUp>,
) -> Response {
    let key = key.as_str();
    let currency = match Currency::parse(&body.currency) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    if !(1..=TOP_UP_MAX).contains(&body.amount) {
        return bad_request(
            "invalid_field",
            format!("amount must be 1 to {TOP_UP_MAX} minor units"),
        );
    }
    let payments = state.bookings.payments();
    let key = format!("top-up:{}:{key}", caller.user_id);
    match payments
        .top_up(&key, &caller.user_id, Money::new(body.amount, currency))
        .await
    {
        Ok(p) if p.state == mobility_core::payments::PaymentState::Succeeded => {
            let balance = payments
                .wallet(&caller.user_id, currency)
                .await
                .unwrap_or_default();
            Json(serde_json::json!({
                "amount": p.amount.minor,
                "currency": currency.to_string(),
                "provider": p.provider,
                "balance": balance,
            }))
            .into_response()
        }
        Ok(p) => Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment-failed",
            "Payment failed",
        )
        .with_detail(p.detail.unwrap_or_default())
        .into_response(),
        Err(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "payment-pending",
            "Payment pending",
        )
        .with_detail(e.to_string())
        .into_response(),
    }
}
