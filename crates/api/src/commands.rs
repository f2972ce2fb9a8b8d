//! `POST /v1/vehicles/{id}/commands`, `GET /v1/commands/{id}`, `GET /v1/vehicles/{id}/commands`.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use mobility_core::{
    CommandKind, VehicleId,
    command::{COMMAND_TIMEOUT_MS_MAX, COMMAND_TIMEOUT_MS_MIN},
};
use mobility_store::CommandRecord;
use serde::{Deserialize, Serialize};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, bad_request},
};
use mobility_live::commands::CommandError;

use crate::auth::StaffCaller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/vehicles/{id}/commands", post(send).get(history))
        .route("/v1/commands/{id}", get(one))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SendCommand {
    command: String,
    speed_limit_kmh: Option<i64>,
    /// Seconds to wait for the vehicle's acknowledgement (1..=120, default 10).
    timeout_s: Option<i64>,
    /// Answer only once the command is decided (or timed out).
    #[serde(default)]
    wait: bool,
}

#[derive(Debug, Serialize)]
struct CommandDto {
    id: String,
    vehicle_id: String,
    #[serde(flatten)]
    kind: CommandKind,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    created_at_ms: i64,
    deadline_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    late_ack_at_ms: Option<i64>,
}

impl From<&CommandRecord> for CommandDto {
    fn from(c: &CommandRecord) -> Self {
        Self {
            id: c.id.clone(),
            vehicle_id: c.vehicle_id.to_string(),
            kind: c.kind,
            state: c.state.as_str(),
            detail: c.detail.clone(),
            created_at_ms: c.created_at.0,
            deadline_ms: c.deadline.0,
            finished_at_ms: c.finished_at.map(|t| t.0),
            late_ack_at_ms: c.late_ack_at.map(|t| t.0),
        }
    }
}

fn not_found(what: String) -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
        .with_detail(format!("no {what}"))
        .into_response()
}

async fn send(
    _: StaffCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SendCommand>,
) -> Response {
    let vehicle = match VehicleId::parse(&id) {
        Ok(v) => v,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    let kind = match CommandKind::parse(&body.command, body.speed_limit_kmh) {
        Ok(k) => k,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    let timeout_ms = body.timeout_s.unwrap_or(10).saturating_mul(1_000);
    if !(COMMAND_TIMEOUT_MS_MIN..=COMMAND_TIMEOUT_MS_MAX).contains(&timeout_ms) {
        return bad_request(
            "invalid_field",
            format!(
                "timeout_s must be in {}..={}",
                COMMAND_TIMEOUT_MS_MIN / 1000,
                COMMAND_TIMEOUT_MS_MAX / 1000
            ),
        );
    }
    // The live fleet knows every vehicle this process loaded or heard from; one registered
    // through another process since (and silent so far) is known to the store.
    if state.fleet.city_of(&vehicle).is_none() {
        match state.store.vehicle(&vehicle).await {
            Ok(Some(_)) => {}
            Ok(None) => return not_found(format!("vehicle {vehicle}")),
            Err(e) => return store_problem(&e),
        }
    }
    let record = match state
        .commands
        .send(vehicle, kind, timeout_ms, state.now())
        .await
    {
        Ok(r) => r,
        Err(CommandError::Store(e)) => return store_problem(&e),
        Err(e @ CommandError::NoChannel) => {
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-vehicle-channel",
                "Service Unavailable",
            )
            .with_detail(e.to_string())
            .into_response();
        }
    };
    if !body.wait || record.state.is_final() {
        let status = if record.state.is_final() {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        return (status, Json(CommandDto::from(&record))).into_response();
    }
    // The sweeper decides a time-out within its interval after the deadline.
    let until =
        Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0)) + Duration::from_secs(1);
    match state.commands.wait(&record.id, until).await {
        Ok(Some(r)) => Json(CommandDto::from(&r)).into_response(),
        Ok(None) => not_found(format!("command {}", record.id)),
        Err(e) => store_problem(&e),
    }
}

async fn one(_: StaffCaller, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.store.command(&id).await {
        Ok(Some(c)) => Json(CommandDto::from(&c)).into_response(),
        Ok(None) => not_found(format!("command {id}")),
        Err(e) => store_problem(&e),
    }
}

async fn history(
    _: StaffCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let vehicle = match VehicleId::parse(&id) {
        Ok(v) => v,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    match state.store.vehicle_commands(&vehicle, 100).await {
        Ok(cs) => Json(cs.iter().map(CommandDto::from).collect::<Vec<_>>()).into_response(),
        Err(e) => store_problem(&e),
    }
}
