//! `GET /v1/stream/vehicles`: a WebSocket of vehicle changes inside a map viewport.
//!
//! Query: `bbox=south,west,north,east` (required), `max_hz` (frames per second, 1..=20, default
//! 5), `access_token` (browsers cannot set headers on a WebSocket; a Bearer header works too).
//!
//! Frames (JSON text):
//! - `{"type":"snapshot","vehicles":[…]}` first, and again after the client moves the viewport
//!   (send `{"bbox":[south,west,north,east]}`) or falls behind (`"resync": true`). A viewport
//!   with more than [`FRAME_VEHICLES_MAX`] vehicles continues in `{"type":"snapshot_more",…}`
//!   frames right after (up to [`SNAPSHOT_VEHICLES_MAX`] in all): a map of a 50,000-vehicle
//!   city gets every vehicle;
//! - `{"type":"changes","vehicles":[…]}` at most `max_hz` times a second, with each changed
//!   vehicle's latest state once (coalesced), at most [`FRAME_VEHICLES_MAX`] per frame.
//!
//! The rate bound protects both the client (a browser map) and the server (one slow client
//! costs one bounded buffer, never back-pressure on ingest).

use std::{collections::HashMap, time::Duration};

use axum::{
    Router,
    extract::{
        FromRequestParts, State, WebSocketUpgrade,
        ws::{Message, Utf8Bytes, WebSocket},
    },
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::{SinkExt, StreamExt};
use mobility_core::{LatLon, Role};
use mobility_fleet::{StateFilter, TypeMask};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::{AppState, Problem, extract::bad_request};
use mobility_live::fleet::Change;

/// Most vehicles in one frame.
pub const FRAME_VEHICLES_MAX: usize = 5_000;
/// Most vehicles in one snapshot (over several frames).
pub const SNAPSHOT_VEHICLES_MAX: usize = 250_000;
/// Highest frame rate a client may ask for.
pub const MAX_HZ_MAX: u32 = 20;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/stream/vehicles", get(stream))
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Viewport {
    south: f64,
    west: f64,
    north: f64,
    east: f64,
}

impl Viewport {
    fn parse(parts: &[f64]) -> Result<Self, String> {
        let [south, west, north, east] = parts else {
            return Err("bbox is south,west,north,east".into());
        };
        LatLon::new(*south, *west).map_err(|e| e.to_string())?;
        LatLon::new(*north, *east).map_err(|e| e.to_string())?;
        if south > north || west > east {
            return Err("bbox must have south <= north and west <= east".into());
        }
        Ok(Self {
            south: *south,
            west: *west,
            north: *north,
            east: *east,
        })
    }

    fn contains(&self, c: &Change) -> bool {
        (self.south..=self.north).contains(&c.lat) && (self.west..=self.east).contains(&c.lon)
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamParams {
    bbox: String,
    max_hz: Option<u32>,
    access_token: Option<String>,
}

/// Authenticates from the header or the `access_token` query parameter (staff or admin).
async fn authorize(
    parts: &Parts,
    state: &AppState,
    query_token: Option<&str>,
) -> Result<(), Response> {
    if parts
        .headers
        .contains_key(axum::http::header::AUTHORIZATION)
    {
        let mut p = parts.clone();
        return crate::auth::StaffCaller::from_request_parts(&mut p, state)
            .await
            .map(|_| ());
    }
    let unauthorized = || {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            .with_detail("send Authorization: Bearer <token> or ?access_token=<token>")
            .into_response()
    };
    let token = query_token.ok_or_else(unauthorized)?;
    match state.auth.role_of(token).await {
        Some(role) if role.includes(Role::Staff) => Ok(()),
        Some(_) => Err(
            Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                .with_detail("the stream needs the staff role")
                .into_response(),
        ),
        None => Err(unauthorized()),
    }
}

async fn stream(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let params =
        match axum::extract::Query::<StreamParams>::from_request_parts(&mut parts, &state).await {
            Ok(q) => q.0,
            Err(e) => return bad_request("invalid_query", e.body_text()),
        };
    if let Err(r) = authorize(&parts, &state, params.access_token.as_deref()).await {
        return r;
    }
    let numbers: Result<Vec<f64>, _> = params
        .bbox
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect();
    let viewport = match numbers
        .map_err(|e| e.to_string())
        .and_then(|n| Viewport::parse(&n))
    {
        Ok(v) => v,
        Err(e) => return bad_request("invalid_query", e),
    };
    let max_hz = params.max_hz.unwrap_or(5);
    if !(1..=MAX_HZ_MAX).contains(&max_hz) {
        return bad_request(
            "invalid_query",
            format!("max_hz must be in 1..={MAX_HZ_MAX}"),
        );
    }
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => ws,
        Err(e) => return bad_request("not_websocket", e.body_text()),
    };
    ws.on_upgrade(move |socket| run(socket, state, viewport, max_hz))
}

fn snapshot(state: &AppState, v: Viewport) -> Vec<Change> {
    let (Ok(sw), Ok(ne)) = (LatLon::new(v.south, v.west), LatLon::new(v.north, v.east)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for shard in state.fleet.shards() {
        let views = shard.index.read().within_bbox(
            sw,
            ne,
            TypeMask::ALL,
            StateFilter::Any,
            SNAPSHOT_VEHICLES_MAX,
        );
        out.extend(views.iter().filter_map(Change::of));
        if out.len() >= SNAPSHOT_VEHICLES_MAX {
            out.truncate(SNAPSHOT_VEHICLES_MAX);
            break;
        }
    }
    out
}

/// A snapshot as frames: `snapshot` with the first [`FRAME_VEHICLES_MAX`], then
/// `snapshot_more` with the rest.
fn snapshot_frames(state: &AppState, v: Viewport, resync: bool) -> Vec<Message> {
    let all = snapshot(state, v);
    let mut frames: Vec<Message> = all
        .chunks(FRAME_VEHICLES_MAX)
        .enumerate()
        .map(|(i, chunk)| {
            frame(
                if i == 0 { "snapshot" } else { "snapshot_more" },
                chunk,
                resync,
            )
        })
        .collect();
    if frames.is_empty() {
        frames.push(frame("snapshot", &[], resync));
    }
    frames
}

fn frame(kind: &str, vehicles: &[Change], resync: bool) -> Message {
    let mut body = json!({ "type": kind, "vehicles": vehicles });
    if resync {
        body["resync"] = json!(true);
    }
    Message::Text(Utf8Bytes::from(body.to_string()))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(super) struct ClientMessage {
    bbox: Vec<f64>,
}

async fn run(socket: WebSocket, state: AppState, mut viewport: Viewport, max_hz: u32) {
    metrics::gauge!("stream_clients").increment(1.0);
    let mut changes = state.live.changes.subscribe();
    let (mut tx, mut rx) = socket.split();
    let mut pending: HashMap<String, Change> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1_000 / u64::from(max_hz)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outgoing: Vec<Message> = snapshot_frames(&state, viewport, false);
    // More changes in one tick than a frame holds: the next tick sends a fresh snapshot
    // instead, so no change is lost.
    let mut overflow = false;
    'run: loop {
        for msg in outgoing.drain(..) {
            if tx.send(msg).await.is_err() {
                break 'run;
            }
        }
        tokio::select! {
            batch = changes.recv() => match batch {
                Ok(batch) => {
                    for c in batch.iter().filter(|c| viewport.contains(c)) {
                        if pending.len() < FRAME_VEHICLES_MAX || pending.contains_key(&c.id) {
                            pending.insert(c.id.clone(), c.clone());
                        } else {
                            overflow = true;
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    metrics::counter!("stream_resyncs_total").increment(1);
                    pending.clear();
                    overflow = false;
                    outgoing = snapshot_frames(&state, viewport, true);
                }
                Err(RecvError::Closed) => break 'run,
            },
            _ = tick.tick() => {
                if overflow {
                    metrics::counter!("stream_resyncs_total").increment(1);
                    pending.clear();
                    overflow = false;
                    outgoing = snapshot_frames(&state, viewport, true);
                } else if !pending.is_empty() {
                    let vehicles: Vec<Change> = pending.drain().map(|(_, c)| c).collect();
                    outgoing = vec![frame("changes", &vehicles, false)];
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<ClientMessage>(&text).map_err(|e| e.to_string()).and_then(|m| Viewport::parse(&m.bbox)) {
                        Ok(v) => {
                            viewport = v;
                            pending.clear();
                            overflow = false;
                            outgoing = snapshot_frames(&state, viewport, false);
                        }
                        Err(e) => {
                            outgoing = vec![Message::Text(Utf8Bytes::from(json!({"type": "error", "detail": e}).to_string()))];
                        }
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break 'run,
                Some(Ok(_)) => {}
            },
        }
    }
    metrics::gauge!("stream_clients").decrement(1.0);
}
