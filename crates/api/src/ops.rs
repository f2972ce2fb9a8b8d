//! What operations staff look at beyond the live index: a vehicle's event log and recent
//! telemetry (for its detail view), and supply per H3 cell (the map's heat layer).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use mobility_core::{CityId, TimestampMs, VehicleId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiQuery, bad_request},
};
use crate::auth::StaffCaller;

/// Most telemetry points one answer carries (older ones are thinned evenly).
const TELEMETRY_POINTS_MAX: usize = 600;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/vehicles/{id}/events", get(events))
        .route("/v1/vehicles/{id}/telemetry", get(telemetry))
        .route("/v1/fleet/h3", get(h3))
}

fn not_found(detail: String) -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
        .with_detail(detail)
        .into_response()
}

fn vehicle_id(raw: &str) -> Result<VehicleId, Box<Response>> {
    VehicleId::parse(raw).map_err(|e| Box::new(bad_request("invalid_field", e.to_string())))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsParams {
    limit: Option<u32>,
}

/// A vehicle's MDS events, newest first.
async fn events(
    _: StaffCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<EventsParams>,
) -> Response {
    let id = match vehicle_id(&id) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match state
        .store
        .vehicle_events(&id, p.limit.unwrap_or(50).clamp(1, 500))
        .await
    {
        Ok(list) => Json(
            list.iter()
                .map(|e| {
                    json!({
                        "at_ms": e.at.0,
                        "from": e.from.as_str(),
                        "to": e.to.as_str(),
                        "event_types": e.events.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                        "trip_id": e.trip_id,
                        "late": e.late,
                        "lat": e.location.map(|l| l.lat()),
                        "lon": e.location.map(|l| l.lon()),
                    })
                })
                .collect::<Vec<Value>>(),
        )
        .into_response(),
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TelemetryParams {
    minutes: Option<u32>,
}

/// A vehicle's raw telemetry of the last `minutes` (default 60, at most a day) from the history,
/// oldest first, thinned to at most [`TELEMETRY_POINTS_MAX`] points.
async fn telemetry(
    _: StaffCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<TelemetryParams>,
) -> Response {
    let id = match vehicle_id(&id) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if state.fleet.city_of(&id).is_none() {
        return not_found(format!("no vehicle {id}"));
    }
    let minutes = p.minutes.unwrap_or(60).clamp(1, 1_440);
    let to = state.now().plus_ms(1);
    let from = TimestampMs(to.0 - i64::from(minutes) * 60_000);
    let od = state.open_data.clone();
    let scanned = tokio::task::spawn_blocking(move || {
        let (live, history) = od.telemetry_dirs();
        let mut points = Vec::new();
        mobility_live::live_log::scan_telemetry(live, history, from, to, |t| {
            if t.vehicle_id == id {
                points.push(t);
            }
        })
        .map(|()| points)
    })
    .await;
    let mut points = match scanned {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading telemetry history failed");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "history-unavailable",
                "Service Unavailable",
            )
            .with_detail("the telemetry history cannot be read right now")
            .into_response();
        }
        Err(_) => {
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal Server Error",
            )
            .into_response();
        }
    };
    points.sort_by_key(|t| t.at);
    points.dedup_by_key(|t| t.at);
    let step = points.len().div_ceil(TELEMETRY_POINTS_MAX).max(1);
    let out: Vec<Value> = points
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i + 1 == points.len())
        .map(|(_, t)| {
            json!({
                "at_ms": t.at.0,
                "lat": t.position.lat(),
                "lon": t.position.lon(),
                "battery_pct": t.battery.map(|b| b.get()),
                "speed_mps": t.speed_m_s,
            })
        })
        .collect();
    Json(json!({ "vehicle_id": id.to_string(), "minutes": minutes, "points": out })).into_response()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct H3Params {
    city: String,
    resolution: Option<u8>,
    /// `supply` (available vehicles, default), `demand` (riders' searches in the last hour) or
    /// `price` (each zone's dynamic price and incentives; resolution 8).
    layer: Option<String>,
}

/// Available vehicles per H3 cell of a city, each cell with its boundary (`[lon, lat]` ring),
/// for a heat layer.
async fn h3(
    _: StaffCaller,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<H3Params>,
) -> Response {
    let city = match CityId::parse(&p.city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_query", e.to_string()),
    };
    let raw = p.resolution.unwrap_or(8);
    let resolution = match h3o::Resolution::try_from(raw) {
        Ok(r) if (5..=10).contains(&raw) => r,
        _ => return bad_request("invalid_query", "resolution must be 5 to 10"),
    };
    let ring = |cell: &h3o::CellIndex| -> Vec<[f64; 2]> {
        cell.boundary()
            .iter()
            .map(|ll| [ll.lng(), ll.lat()])
            .collect()
    };
    let layer = p.layer.as_deref().unwrap_or("supply");
    let out: Vec<Value> = match layer {
        "supply" => {
            let Some(cells) = state.fleet.h3_supply(&city, resolution) else {
                return not_found(format!("no city {city}"));
            };
            cells
                .iter()
                .map(|(cell, n)| {
                    json!({ "cell": cell.to_string(), "available": n, "boundary": ring(cell) })
                })
                .collect()
        }
        "demand" => {
            if resolution > mobility_live::fleet::DEMAND_RESOLUTION {
                return bad_request(
                    "invalid_query",
                    "demand is counted at resolution 8: ask for 5 to 8",
                );
            }
            if state.fleet.shard(&city).is_none() {
                return not_found(format!("no city {city}"));
            }
            state
                .fleet
                .search_cells(&city, resolution, state.now())
                .iter()
                .map(|(cell, n, unmet)| {
                    json!({ "cell": cell.to_string(), "searches": n, "unmet": unmet, "boundary": ring(cell) })
                })
                .collect()
        }
        "price" => {
            if resolution != mobility_live::fleet::DEMAND_RESOLUTION {
                return bad_request("invalid_query", "zones are priced at resolution 8");
            }
            if state.fleet.shard(&city).is_none() {
                return not_found(format!("no city {city}"));
            }
            state
                .intel
                .board(&city)
                .map(|b| {
                    b.zones
                        .iter()
                        .filter_map(|z| {
                            let cell = z.zone.parse::<h3o::CellIndex>().ok()?;
                            Some(json!({
                                "cell": z.zone, "multiplier": z.price.multiplier,
                                "end_credit_cents": z.price.end_credit_cents,
                                "start_discount_cents": z.price.start_discount_cents,
                                "reason": z.price.reason, "boundary": ring(&cell),
                            }))
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        _ => return bad_request("invalid_query", "layer is supply, demand or price"),
    };
    Json(json!({ "city": city.as_str(), "resolution": raw, "layer": layer, "cells": out }))
        .into_response()
}
