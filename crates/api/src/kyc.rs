//! KYC: riders submit identity or driving-licence data; staff work the review queue.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use mobility_store::KycRecord;
use serde::{Deserialize, Serialize};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, ApiQuery, bad_request},
};
use mobility_services::kyc::{date_of, parse_date};

use crate::auth::{StaffCaller, UserCaller};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/kyc", post(submit).get(mine))
        .route("/v1/kyc/queue", get(queue))
        .route("/v1/kyc/{id}/decision", post(decide))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Submission {
    kind: String,
    full_name: String,
    date_of_birth: String,
    document_number: String,
    expires_on: Option<String>,
}

/// What a rider sees of their submissions (no document numbers echoed back).
#[derive(Debug, Serialize)]
struct MineDto {
    id: String,
    kind: String,
    state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_on: Option<String>,
    submitted_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_at_ms: Option<i64>,
}

impl From<&KycRecord> for MineDto {
    fn from(k: &KycRecord) -> Self {
        Self {
            id: k.id.clone(),
            kind: k.kind.clone(),
            state: k.state.clone(),
            reason: k.reason.clone(),
            expires_on: k.expires_on.clone(),
            submitted_at_ms: k.submitted_at.0,
            decided_at_ms: k.decided_at.map(|t| t.0),
        }
    }
}

/// What a reviewer sees.
#[derive(Debug, Serialize)]
struct ReviewDto {
    id: String,
    user_id: String,
    kind: String,
    state: String,
    full_name: String,
    date_of_birth: String,
    document_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_on: Option<String>,
    provider: String,
    submitted_at_ms: i64,
}

impl From<&KycRecord> for ReviewDto {
    fn from(k: &KycRecord) -> Self {
        Self {
            id: k.id.clone(),
            user_id: k.user_id.clone(),
            kind: k.kind.clone(),
            state: k.state.clone(),
            full_name: k.full_name.clone(),
            date_of_birth: k.date_of_birth.clone(),
            document_number: k.document_number.clone(),
            expires_on: k.expires_on.clone(),
            provider: k.provider.clone(),
            submitted_at_ms: k.submitted_at.0,
        }
    }
}

fn validate(body: &Submission, today: &str) -> Result<(), String> {
    if !matches!(body.kind.as_str(), "identity" | "driving_licence") {
        return Err("kind must be identity or driving_licence".into());
    }
    let name = body.full_name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err("full_name must be 1 to 200 characters".into());
    }
    parse_date(&body.date_of_birth).map_err(|e| format!("date_of_birth: {e}"))?;
    if body.date_of_birth.as_str() >= today {
        return Err("date_of_birth must be in the past".into());
    }
    let doc = body.document_number.trim();
    if !(3..=40).contains(&doc.len())
        || !doc
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ')
    {
        return Err("document_number must be 3 to 40 letters, digits, spaces or dashes".into());
    }
    match (&body.expires_on, body.kind.as_str()) {
        (None, "driving_licence") => Err("a driving licence needs expires_on".into()),
        (Some(e), _) => {
            parse_date(e).map_err(|err| format!("expires_on: {err}"))?;
            if e.as_str() < today {
                Err("this document has expired".into())
            } else {
                Ok(())
            }
        }
        (None, _) => Ok(()),
    }
}

async fn submit(
    caller: UserCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Submission>,
) -> Response {
    let at = state.now();
    if let Err(e) = validate(&body, &date_of(at)) {
        return bad_request("invalid_field", e);
    }
    let record = KycRecord {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: caller.user_id,
        kind: body.kind,
        state: "pending".into(),
        full_name: body.full_name.trim().to_owned(),
        date_of_birth: body.date_of_birth,
        document_number: body.document_number.trim().to_owned(),
        expires_on: body.expires_on,
        provider: String::new(),
        reason: None,
        submitted_at: at,
        decided_at: None,
        decided_by: None,
    };
    match state.kyc.submit(record, at).await {
        Ok(k) => (StatusCode::CREATED, Json(MineDto::from(&k))).into_response(),
        Err(e) => store_problem(&e),
    }
}

async fn mine(caller: UserCaller, State(state): State<AppState>) -> Response {
    match state.store.user_kyc(&caller.user_id).await {
        Ok(list) => Json(list.iter().map(MineDto::from).collect::<Vec<_>>()).into_response(),
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueParams {
    limit: Option<u32>,
}

async fn queue(
    _: StaffCaller,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<QueueParams>,
) -> Response {
    match state
        .store
        .kyc_queue(p.limit.unwrap_or(50).clamp(1, 500))
        .await
    {
        Ok(list) => Json(list.iter().map(ReviewDto::from).collect::<Vec<_>>()).into_response(),
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Decision {
    decision: String,
    reason: Option<String>,
}

/// Who decided: the staff account, or "api-token" for a staff API token.
fn reviewer(parts_headers: &axum::http::HeaderMap, state: &AppState) -> String {
    parts_headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| state.auth.accounts().verify(t.trim()))
        .map_or_else(|| "api-token".to_owned(), |(user, _)| user)
}

async fn decide(
    _: StaffCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<Decision>,
) -> Response {
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let target = match (body.decision.as_str(), reason) {
        ("verified", _) => "verified",
        ("rejected", Some(r)) if r.chars().count() <= 500 => "rejected",
        ("rejected", Some(_)) => {
            return bad_request("invalid_field", "reason is at most 500 characters");
        }
        ("rejected", None) => {
            return bad_request(
                "invalid_field",
                "a rejection needs a reason the rider is shown",
            );
        }
        _ => return bad_request("invalid_field", "decision must be verified or rejected"),
    };
    let by = reviewer(&headers, &state);
    match state
        .store
        .decide_kyc(
            &id,
            target,
            reason.filter(|_| target == "rejected"),
            &by,
            state.now(),
        )
        .await
    {
        Ok(Some(k)) => {
            tracing::info!(kyc_id = %k.id, state = %k.state, "KYC decided");
            // The rider is told by the notify-accounts consumer (the decision is an event).
            metrics::counter!("kyc_decisions_total", "state" => k.state.clone()).increment(1);
            Json(MineDto::from(&k)).into_response()
        }
        Ok(None) => Problem::new(StatusCode::CONFLICT, "wrong-state", "Wrong state")
            .with_detail("no pending submission with this id (already decided, or unknown)")
            .into_response(),
        Err(e) => store_problem(&e),
    }
}
