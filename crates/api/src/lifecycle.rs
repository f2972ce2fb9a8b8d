//! Vehicle lifecycle: MDS events that move vehicles between states (deploy, trip start and end,
//! battery low, maintenance…), checked against the MDS 2.0 state machine of the vehicle's mode.
//!
//! Staff record them for field work; the bookings service records trip events itself.
//! A batch is one transaction: every change is legal and applied, or nothing is.
//!
//! An event may say when it happened (`timestamp`, the vehicle's clock) and where (`location`).
//! One older than the vehicle's current state arrived out of order: MDS accepts such events
//! without enforcing the prior state, so it is logged (and published) where it belongs in time,
//! and the vehicle keeps its newer state (`late: true` in the answer).

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use mobility_core::{EventType, LatLon, StateChange, TimestampMs, VehicleId, VehicleState};
use mobility_fleet::telemetry::FUTURE_SKEW_MS_MAX;
use mobility_store::StoreError;
use serde::{Deserialize, Serialize};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, bad_request},
};
use crate::auth::StaffCaller;

/// Most changes in one request.
pub const CHANGES_MAX: usize = 1_000;
/// How often a batch is decided again when a vehicle changed concurrently.
const CONFLICT_RETRIES: usize = 3;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/vehicles/events", post(record))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Body {
    changes: Vec<ChangeBody>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangeBody {
    vehicle_id: String,
    event_types: Vec<String>,
    vehicle_state: String,
    /// When it happened, ms since 1970 (default: on arrival).
    timestamp: Option<i64>,
    /// Where it happened (default: the vehicle's last reported position).
    location: Option<LocationBody>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LocationBody {
    lat: f64,
    lng: f64,
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
    /// Older than the vehicle's state: logged, not applied.
    late: bool,
}

struct Wanted {
    id: VehicleId,
    events: Vec<EventType>,
    to: VehicleState,
    at: Option<TimestampMs>,
    location: Option<LatLon>,
}

fn parse(body: &Body, arrived: TimestampMs) -> Result<Vec<Wanted>, String> {
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
                at: match c.timestamp {
                    Some(ms) if ms <= 0 || ms.saturating_sub(arrived.0) > FUTURE_SKEW_MS_MAX => {
                        return Err(at(format!(
                            "timestamp must be milliseconds since 1970 and at most {} s ahead of this server",
                            FUTURE_SKEW_MS_MAX / 1_000
                        )));
                    }
                    t => t.map(TimestampMs),
                },
                location: c
                    .location
                    .as_ref()
                    .map(|l| LatLon::new(l.lat, l.lng))
                    .transpose()
                    .map_err(|e| at(e.to_string()))?,
            })
        })
        .collect()
}

/// Decides every change from the stored vehicles, or says which one is refused and why.
async fn decide(state: &AppState, wanted: &[Wanted]) -> Result<Vec<StateChange>, Response> {
    let at = state.now();
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
        let when = w.at.unwrap_or(at);
        let decided = if when < vehicle.updated_at {
            vehicle.decide_late(&w.events, w.to, when)
        } else {
            vehicle.decide(&w.events, w.to, when)
        };
        match decided {
            Ok(c) => {
                // A late event happened elsewhere than where the vehicle is now: only the
                // position sent with it will do.
                let here = w.location.or_else(|| {
                    (!c.late)
                        .then(|| state.fleet.vehicle(&w.id).and_then(|(_, v)| v.position))
                        .flatten()
                });
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
    let wanted = match parse(&body, state.now()) {
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
                    .zip(&changes)
                    .map(|(v, c)| AppliedVehicle {
                        id: v.id.to_string(),
                        state: v.state.as_str(),
                        version: v.version,
                        late: c.late,
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
