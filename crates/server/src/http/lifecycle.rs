//! Vehicle lifecycle: MDS events that move vehicles between states (deploy, trip start and end,
//! battery low, maintenance…), checked against the MDS 2.0 state machine of the vehicle's mode.
//!
//! Staff record them for field work; the bookings service will record trip events itself.
//! A batch is one transaction: every change is legal and applied, or nothing is.

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use mobility_core::{EventType, StateChange, VehicleId, VehicleState};
use mobility_store::StoreError;
use serde::{Deserialize, Serialize};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, bad_request},
    now,
};
use crate::auth::StaffCaller;

/// Most changes in one request.
pub const CHANGES_MAX: usize = 1_000;
/// How often a batch is decided again when a vehicle changed concurrently.
const CONFLICT_RETRIES: usize = 3;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/vehicles/events", post(record))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    changes: Vec<ChangeBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    vehicle_id: String,
    event_types: Vec<String>,
    vehicle_state: String,
}

#[derive(Debug, Serialize)]
struct Applied {
    vehicles: Vec<AppliedVehicle>,
}

#[derive(Debug, Serialize)]
struct AppliedVehicle {
    id: String,
    state: &'static str,
    version: u64,
}

struct Wanted {
    id: VehicleId,
    events: Vec<EventType>,
    to: VehicleState,
}

fn parse(body: &Body) -> Result<Vec<Wanted>, String> {
    if body.changes.is_empty() || body.changes.len() > CHANGES_MAX {
        return Err(format!("changes must hold 1 to {CHANGES_MAX} entries"));
    }
    body.changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let at = |e: String| format!("changes[{i}]: {e}");
            Ok(Wanted {
                id: VehicleId::parse(&c.vehicle_id).map_err(|e| at(e.to_string()))?,
                events: c
                    .event_types
                    .iter()
                    .map(|e| EventType::parse(e))
                    .collect::<Result<_, _>>()
                    .map_err(|e| at(e.to_string()))?,
                to: VehicleState::parse(&c.vehicle_state).map_err(|e| at(e.to_string()))?,
            })
        })
        .collect()
}

/// Decides every change from the stored vehicles, or says which one is refused and why.
async fn decide(state: &AppState, wanted: &[Wanted]) -> Result<Vec<StateChange>, Response> {
    let at = now();
    let mut changes = Vec::with_capacity(wanted.len());
    for (i, w) in wanted.iter().enumerate() {
        let vehicle = match state.store.vehicle(&w.id).await {
            Ok(Some(v)) => v,
            Ok(None) => {
                return Err(store_problem(&StoreError::NotFound(format!(
                    "changes[{i}]: vehicle {}",
                    w.id
                ))));
            }
            Err(e) => return Err(store_problem(&e)),
        };
        match vehicle.decide(&w.events, w.to, at) {
            Ok(c) => {
                let here = state.fleet.vehicle(&w.id).and_then(|(_, v)| v.position);
                changes.push(c.with_context(here, None));
            }
            Err(e) => {
                metrics::counter!("http_rejections_total", "reason" => "illegal-transition")
                    .increment(1);
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "illegal-transition",
                    "Illegal state transition",
                )
                .with_detail(format!("changes[{i}] (vehicle {}): {e}", w.id))
                .into_response());
            }
        }
    }
    Ok(changes)
}

async fn record(
    _: StaffCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Body>,
) -> Response {
    let wanted = match parse(&body) {
        Ok(w) => w,
        Err(e) => return bad_request("invalid_field", e),
    };
    let mut attempt = 0;
    loop {
        let changes = match decide(&state, &wanted).await {
            Ok(c) => c,
            Err(r) => return r,
        };
        match state.store.record_state_changes(&changes).await {
            Ok(vehicles) => {
                for v in &vehicles {
                    state.fleet.apply_vehicle(v);
                }
                let vehicles = vehicles
                    .iter()
                    .map(|v| AppliedVehicle {
                        id: v.id.to_string(),
                        state: v.state.as_str(),
                        version: v.version,
                    })
                    .collect();
                return Json(Applied { vehicles }).into_response();
            }
            // Someone else changed one of the vehicles between our read and write: decide again
            // from the new state (which may now refuse the change).
            Err(StoreError::VersionConflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
            Err(e) => return store_problem(&e),
        }
    }
}
