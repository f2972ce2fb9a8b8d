//! MDS 2.0 Provider API: what cities that license the operator read, one mode per base URL
//! (`/mds/micromobility/…` for scooters and bikes, `/mds/car-share/…` for cars and vans), as
//! MDS describes one mode per endpoint set.
//!
//! - Data comes from what the platform records anyway: the vehicle registry, the MDS event log
//!   (each event with where the vehicle was and its trip), bookings (trips) and the raw
//!   telemetry history. Nothing is kept twice for MDS.
//! - Hourly endpoints (`/trips?end_time=`, `/events/historical?event_time=`,
//!   `/telemetry?telemetry_time=`, hours as `YYYY-MM-DDTHH` UTC): 404 for an hour that has not
//!   begun, 202 while it is running or settling ([`SETTLE_MS`] after its end, for late reports),
//!   then 200 with the whole hour.
//! - Access: a bearer JWT per agency (`aud: mds`, `provider_id`, `city`), issued and revoked by
//!   an admin at `/v1/admin/mds/tokens`; it reads only its city.
//! - Media type `application/vnd.mds+json;version=2.0`; asking for another MDS version is 406.

// Helpers answer early with a finished response; that path is cold, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{delete, get},
};
use mobility_core::{
    CityId, LatLon, Mode, TimestampMs, Vehicle, VehicleId, VehicleType, time::HOUR_MS,
};
use mobility_store::{BookingRecord, MdsToken, RecordedEvent};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, ApiQuery, bad_request},
};
use mobility_services::open_data::derived_uuid;

use crate::auth::AdminCaller;

/// The MDS version served.
pub const VERSION: &str = "2.0.0";
/// The response media type.
pub const MEDIA_TYPE: &str = "application/vnd.mds+json;version=2.0";
/// How long after an hour ends its data may still change (late telemetry): 202 until then.
pub const SETTLE_MS: i64 = 5 * 60_000;
/// Vehicles per page of `/vehicles` and `/vehicles/status`.
const PAGE: u32 = 1_000;
/// Events per page of `/events/recent`.
const EVENTS_PAGE: u32 = 10_000;
/// How far back `/events/recent` reaches (MDS: two weeks).
const RECENT_MS: i64 = 14 * 86_400_000;
/// Telemetry sampling: at most one point per vehicle this often during a trip…
const TRIP_SAMPLE_MS: i64 = 5_000;
/// …and this often between trips.
const IDLE_SAMPLE_MS: i64 = 300_000;
/// Longest lifetime of an agency token.
const TOKEN_DAYS_MAX: u32 = 730;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/mds/{mode}/vehicles", get(vehicles))
        .route("/mds/{mode}/vehicles/status", get(vehicles_status))
        .route(
            "/mds/{mode}/vehicles/status/{device}",
            get(vehicle_status_one),
        )
        .route("/mds/{mode}/vehicles/{device}", get(vehicle_one))
        .route("/mds/{mode}/trips", get(trips))
        .route("/mds/{mode}/events/historical", get(events_historical))
        .route("/mds/{mode}/events/recent", get(events_recent))
        .route("/mds/{mode}/telemetry", get(telemetry))
        .route("/v1/admin/mds/tokens", get(list_tokens).post(issue_token))
        .route("/v1/admin/mds/tokens/{id}", delete(revoke_token))
}

fn problem(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Response {
    metrics::counter!("mds_rejections_total", "reason" => slug.to_owned()).increment(1);
    let mut r = Problem::new(status, slug, title)
        .with_detail(detail)
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// An agency, authenticated by its token: it reads one city.
#[derive(Debug, Clone)]
pub struct Agency {
    /// The city it may read.
    pub city: CityId,
}

impl FromRequestParts<AppState> for Agency {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let unauthorized =
            |d: &str| problem(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", d);
        let token = crate::auth::bearer_token(&parts.headers)
            .ok_or_else(|| unauthorized("send Authorization: Bearer <agency token>"))?;
        let claims = state.open_data.verify_agency_token(token).ok_or_else(|| {
            unauthorized("not a valid, unexpired MDS agency token of this provider")
        })?;
        match state.store.mds_token(&claims.jti).await {
            Ok(Some(t)) if t.revoked_at.is_none() && t.city.as_str() == claims.city => {
                Ok(Self { city: t.city })
            }
            Ok(_) => Err(unauthorized("the token was revoked")),
            Err(e) => Err(store_problem(&e)),
        }
    }
}

/// The mode of a base URL, or 404.
fn mode_of(raw: &str) -> Result<Mode, Response> {
    match raw {
        "micromobility" => Ok(Mode::Micromobility),
        "car-share" => Ok(Mode::CarShare),
        _ => Err(problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            format!("no MDS mode {raw:?}: use micromobility or car-share"),
        )),
    }
}

/// Refuses requests for another MDS version (the `version` parameter of the MDS media type).
fn check_accept(headers: &HeaderMap) -> Result<(), Response> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    for range in accept.split(',') {
        let mut params = range.split(';').map(str::trim);
        let media = params.next().unwrap_or_default();
        if !media.eq_ignore_ascii_case("application/vnd.mds+json") {
            continue;
        }
        let version = params.find_map(|p| {
            p.strip_prefix("version=")
                .map(|v| v.trim_matches('"').to_owned())
        });
        match version.as_deref() {
            None | Some("2.0" | "2.0.0") => return Ok(()),
            Some(_) => {}
        }
    }
    if accept.contains("application/vnd.mds+json")
        && !accept.contains("application/json")
        && !accept.contains("*/*")
    {
        return Err(problem(
            StatusCode::NOT_ACCEPTABLE,
            "unsupported-version",
            "Not Acceptable",
            format!("this provider serves MDS {VERSION} only ({MEDIA_TYPE})"),
        ));
    }
    Ok(())
}

fn respond(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    r
}

/// Whether an hour's data is final: `Err` with 404 (not begun) or 202 (running or settling).
fn hour_ready(raw: Option<&str>, param: &str, at: TimestampMs) -> Result<TimestampMs, Response> {
    let Some(raw) = raw else {
        return Err(bad_request(
            "missing_field",
            format!("{param} is required: the UTC hour as YYYY-MM-DDTHH"),
        ));
    };
    let start = TimestampMs::parse_hour(raw)
        .map_err(|e| bad_request("invalid_field", format!("{param}: {e}")))?;
    if start > at {
        return Err(problem(
            StatusCode::NOT_FOUND,
            "future-hour",
            "Not Found",
            format!("{raw} has not begun"),
        ));
    }
    if at.0 < start.0 + HOUR_MS + SETTLE_MS {
        let mut r = respond(
            StatusCode::ACCEPTED,
            &json!({ "version": VERSION, "detail": format!("{raw} is still being processed") }),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return Err(r);
    }
    Ok(start)
}

fn in_mode(t: VehicleType, mode: Mode) -> bool {
    t.mode() == mode
}

fn gps(p: LatLon) -> Value {
    json!({ "lat": super::gbfs::round6(p.lat()), "lng": super::gbfs::round6(p.lon()) })
}

fn vehicle_json(state: &AppState, v: &Vehicle) -> Value {
    json!({
        "device_id": v.id.to_string(),
        "provider_id": state.open_data.provider_id.to_string(),
        "vehicle_id": v.id.to_string()[..8].to_uppercase(),
        "vehicle_type": v.vehicle_type.mds_vehicle_type(),
        "propulsion_types": [v.vehicle_type.propulsion()],
    })
}

/// A recorded event as MDS publishes it: one MDS event per event type, each with the state it
/// led to (the published schema allows only the types of the resulting state), so a car's
/// `[trip_stop, trip_end]` becomes `stopped` then `available`. Empty when the platform never
/// knew where the vehicle was (MDS events need a location).
fn event_json(state: &AppState, mode: Mode, e: &RecordedEvent) -> Vec<Value> {
    // An applied event without a recorded position (the vehicle had not reported yet) is placed
    // where the vehicle is; a late one happened elsewhere, so it needs its own.
    let Some(location) = e.location.or_else(|| {
        (!e.late)
            .then(|| {
                state
                    .fleet
                    .vehicle(&e.vehicle_id)
                    .and_then(|(_, v)| v.position)
            })
            .flatten()
    }) else {
        metrics::counter!("mds_events_without_location_total").increment(1);
        return Vec::new();
    };
    let mut steps = mode
        .steps(e.from, &e.events, e.to)
        .unwrap_or_else(|_| e.events.iter().map(|t| (*t, e.to)).collect());
    // Upstream inconsistency (ADR 0003): car share's `recommission` is `recommissioned` in the
    // mode's state table, so no published event can carry it. Within a longer event (the usual
    // `[recommission, service_start]`), the later types say where the vehicle went; drop it.
    if mode == Mode::CarShare && steps.len() > 1 {
        steps.retain(|(t, _)| *t != mobility_core::EventType::Recommission);
    }
    let device = e.vehicle_id.to_string();
    steps
        .iter()
        .enumerate()
        .map(|(i, (event, to))| {
            let mut o = json!({
                "device_id": device,
                "provider_id": state.open_data.provider_id.to_string(),
                "event_id": derived_uuid(&[b"event", device.as_bytes(), &e.version.to_le_bytes(), &i.to_le_bytes()]).to_string(),
                "vehicle_state": to.as_str(),
                "event_types": [event.as_str()],
                "timestamp": e.at.0,
                "publication_time": e.at.0,
                "location": gps(location),
            });
            if let Some(trip) = &e.trip_id {
                o["trip_ids"] = json!([trip]);
            }
            o
        })
        .collect()
}

fn type_of(state: &AppState, id: &VehicleId) -> Option<VehicleType> {
    state.fleet.vehicle(id).map(|(_, v)| v.vehicle_type)
}

fn next_link(headers: &HeaderMap, state: &AppState, path: &str, query: &str) -> Value {
    json!({ "next": format!("{}{path}?{query}", state.open_data.base_url(crate::host(headers))) })
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    after: Option<String>,
}

fn parse_after(q: &PageQuery) -> Result<Option<VehicleId>, Response> {
    q.after
        .as_deref()
        .map(VehicleId::parse)
        .transpose()
        .map_err(|e| bad_request("invalid_field", format!("after: {e}")))
}

async fn vehicles(
    agency: Agency,
    State(state): State<AppState>,
    Path(mode): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let (mode, after) = match (mode_of(&mode), parse_after(&q), check_accept(&headers)) {
        (Ok(m), Ok(a), Ok(())) => (m, a),
        (Err(r), ..) | (_, Err(r), _) | (.., Err(r)) => return r,
    };
    let page = match state
        .store
        .vehicles(&agency.city, after.as_ref(), PAGE)
        .await
    {
        Ok(p) => p,
        Err(e) => return store_problem(&e),
    };
    let items: Vec<Value> = page
        .iter()
        .filter(|v| in_mode(v.vehicle_type, mode))
        .map(|v| vehicle_json(&state, v))
        .collect();
    let last = (page.len() == PAGE as usize)
        .then(|| page.last().map(|v| v.id))
        .flatten();
    paged(&headers, &state, mode, "vehicles", items, last)
}

async fn vehicle_one(
    agency: Agency,
    State(state): State<AppState>,
    Path((mode, device)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match agency_vehicle(&state, &agency, &mode, &device, &headers).await {
        Ok(v) => respond(
            StatusCode::OK,
            &page_body("vehicles", vec![vehicle_json(&state, &v)], state.now()),
        ),
        Err(r) => r,
    }
}

/// A vehicle of the agency's city in the mode of the base URL, or the answer saying why not.
async fn agency_vehicle(
    state: &AppState,
    agency: &Agency,
    mode: &str,
    device: &str,
    headers: &HeaderMap,
) -> Result<Vehicle, Response> {
    let mode = mode_of(mode)?;
    check_accept(headers)?;
    let missing = || {
        problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            format!("no {} vehicle {device} here", mode.as_str()),
        )
    };
    let id = VehicleId::parse(device).map_err(|_| missing())?;
    match state.store.vehicle(&id).await {
        Ok(Some(v)) if v.city == agency.city && in_mode(v.vehicle_type, mode) => Ok(v),
        Ok(_) => Err(missing()),
        Err(e) => Err(store_problem(&e)),
    }
}

/// A page of `/vehicles` or `/vehicles/status`; `last` is the last vehicle of a full page (so a
/// next one may follow).
fn paged(
    headers: &HeaderMap,
    state: &AppState,
    mode: Mode,
    key: &str,
    items: Vec<Value>,
    last: Option<VehicleId>,
) -> Response {
    let mut body = page_body(key, items, state.now());
    if let Some(last) = last {
        let path = if key == "vehicles" {
            "vehicles"
        } else {
            "vehicles/status"
        };
        body["links"] = next_link(
            headers,
            state,
            &format!("/mds/{}/{path}", mode.as_str()),
            &format!("after={last}"),
        );
    }
    respond(StatusCode::OK, &body)
}

/// The body of a `/vehicles` or `/vehicles/status` answer.
fn page_body(key: &str, items: Vec<Value>, now: TimestampMs) -> Value {
    let mut body = json!({ "version": VERSION, "last_updated": now.0, "ttl": 0 });
    body[key] = Value::Array(items);
    body
}

/// `vehicles_status` item: the event of the current state and the latest telemetry; `None` for
/// a vehicle never deployed or never heard from (MDS needs both).
fn status_json(state: &AppState, v: &Vehicle, e: Option<&RecordedEvent>) -> Option<Value> {
    let event = event_json(state, v.vehicle_type.mode(), e?).pop()?;
    let (_, view) = state.fleet.vehicle(&v.id)?;
    let (position, at) = (view.position?, view.at?);
    let device = v.id.to_string();
    let mut t = json!({
        "device_id": device,
        "provider_id": state.open_data.provider_id.to_string(),
        "telemetry_id": derived_uuid(&[b"telemetry", device.as_bytes(), &at.0.to_le_bytes()]).to_string(),
        "timestamp": at.0,
        "trip_ids": null,
        "journey_id": null,
        "location": gps(position),
    });
    if let Some(b) = view.battery {
        t["battery_percent"] = json!(b.get());
    }
    Some(json!({
        "device_id": device,
        "provider_id": state.open_data.provider_id.to_string(),
        "last_event": event,
        "last_telemetry": t,
    }))
}

async fn vehicles_status(
    agency: Agency,
    State(state): State<AppState>,
    Path(mode): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let (mode, after) = match (mode_of(&mode), parse_after(&q), check_accept(&headers)) {
        (Ok(m), Ok(a), Ok(())) => (m, a),
        (Err(r), ..) | (_, Err(r), _) | (.., Err(r)) => return r,
    };
    let page = match state
        .store
        .vehicles_with_last_event(&agency.city, after.as_ref(), PAGE)
        .await
    {
        Ok(p) => p,
        Err(e) => return store_problem(&e),
    };
    let items: Vec<Value> = page
        .iter()
        .filter(|(v, _)| in_mode(v.vehicle_type, mode))
        .filter_map(|(v, e)| status_json(&state, v, e.as_ref()))
        .collect();
    let last = (page.len() == PAGE as usize)
        .then(|| page.last().map(|(v, _)| v.id))
        .flatten();
    paged(&headers, &state, mode, "vehicles_status", items, last)
}

async fn vehicle_status_one(
    agency: Agency,
    State(state): State<AppState>,
    Path((mode, device)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let v = match agency_vehicle(&state, &agency, &mode, &device, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let last = match state.store.vehicle_events(&v.id, 1).await {
        Ok(mut l) => l.pop().filter(|e| e.version == v.version),
        Err(e) => return store_problem(&e),
    };
    match status_json(&state, &v, last.as_ref()) {
        Some(s) => respond(
            StatusCode::OK,
            &page_body("vehicles_status", vec![s], state.now()),
        ),
        None => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            format!("{device} has no status yet: never deployed or never heard from"),
        ),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TripsQuery {
    end_time: Option<String>,
}

/// Start and end locations of trips, from their events (trip id → (start, end)).
async fn trip_ends(
    state: &AppState,
    city: &CityId,
    from: TimestampMs,
    to: TimestampMs,
) -> Result<HashMap<String, (Option<LatLon>, Option<LatLon>)>, mobility_store::StoreError> {
    let mut out: HashMap<String, (Option<LatLon>, Option<LatLon>)> = HashMap::new();
    let mut after = 0;
    loop {
        let page = state
            .store
            .city_events(city, from, to, after, 10_000)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            let Some(trip) = &e.trip_id else { continue };
            let entry = out.entry(trip.clone()).or_default();
            for t in &e.events {
                match t {
                    mobility_core::EventType::TripStart => entry.0 = e.location.or(entry.0),
                    mobility_core::EventType::TripEnd => entry.1 = e.location.or(entry.1),
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

fn trip_json(
    state: &AppState,
    mode: Mode,
    b: &BookingRecord,
    ends: &HashMap<String, (Option<LatLon>, Option<LatLon>)>,
) -> Option<Value> {
    let (start, end) = (b.trip.started_at?, b.trip.ended_at?);
    let (Some(from), Some(to)) = ends.get(&b.id).copied()? else {
        return None;
    };
    let distance = b
        .trip
        .distance_m
        .unwrap_or_else(|| from.distance_m(&to).round() as i64)
        .max(0);
    let mut o = json!({
        "provider_id": state.open_data.provider_id.to_string(),
        "device_id": b.vehicle_id.to_string(),
        "trip_id": b.id,
        "start_time": start.0,
        "end_time": end.0,
        "start_location": gps(from),
        "end_location": gps(to),
        "duration": end.since(start).max(0) / 1_000,
        "distance": distance,
    });
    if mode == Mode::CarShare {
        // The customer drives: a private trip, paid in the app at the metered rate.
        o["trip_type"] = json!(["private"]);
        o["fare_attributes"] = json!({ "payment_type": "mobile_app", "fare_type": "meter_fare" });
    }
    Some(o)
}

async fn trips(
    agency: Agency,
    State(state): State<AppState>,
    Path(mode): Path<String>,
    ApiQuery(q): ApiQuery<TripsQuery>,
    headers: HeaderMap,
) -> Response {
    let at = state.now();
    let (mode, hour) = match (
        mode_of(&mode),
        check_accept(&headers),
        hour_ready(q.end_time.as_deref(), "end_time", at),
    ) {
        (Ok(m), Ok(()), Ok(h)) => (m, h),
        (Err(r), ..) | (_, Err(r), _) | (.., Err(r)) => return r,
    };
    let end = hour.plus_ms(HOUR_MS);
    let result = async {
        let bookings = state.store.trips_between(&agency.city, hour, end).await?;
        let ended: Vec<BookingRecord> = bookings
            .into_iter()
            .filter(|b| b.state == "ended" && b.trip.ended_at.is_some_and(|t| t >= hour && t < end))
            .filter(|b| type_of(&state, &b.vehicle_id).is_some_and(|t| in_mode(t, mode)))
            .collect();
        let earliest = ended
            .iter()
            .filter_map(|b| b.trip.started_at)
            .min()
            .unwrap_or(hour);
        let ends = trip_ends(&state, &agency.city, earliest, end).await?;
        Ok::<_, mobility_store::StoreError>(
            ended
                .iter()
                .filter_map(|b| trip_json(&state, mode, b, &ends))
                .collect::<Vec<_>>(),
        )
    }
    .await;
    match result {
        Ok(trips) => respond(
            StatusCode::OK,
            &json!({ "version": VERSION, "trips": trips }),
        ),
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoricalQuery {
    event_time: Option<String>,
}

async fn collect_events(
    state: &AppState,
    city: &CityId,
    mode: Mode,
    from: TimestampMs,
    to: TimestampMs,
    after: i64,
    limit: u32,
) -> Result<(Vec<Value>, Option<i64>), mobility_store::StoreError> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let page = state
            .store
            .city_events(city, from, to, cursor, limit)
            .await?;
        let full = page.len() == limit as usize;
        for e in &page {
            cursor = e.seq;
            if type_of(state, &e.vehicle_id).is_some_and(|t| in_mode(t, mode)) {
                out.extend(event_json(state, mode, e));
            }
        }
        if !full {
            return Ok((out, None));
        }
        if out.len() >= limit as usize {
            return Ok((out, Some(cursor)));
        }
    }
}

async fn events_historical(
    agency: Agency,
    State(state): State<AppState>,
    Path(mode): Path<String>,
    ApiQuery(q): ApiQuery<HistoricalQuery>,
    headers: HeaderMap,
) -> Response {
    let at = state.now();
    let (mode, hour) = match (
        mode_of(&mode),
        check_accept(&headers),
        hour_ready(q.event_time.as_deref(), "event_time", at),
    ) {
        (Ok(m), Ok(()), Ok(h)) => (m, h),
        (Err(r), ..) | (_, Err(r), _) | (.., Err(r)) => return r,
    };
    // The whole hour in one answer (MDS pages only /events/recent).
    match collect_events(
        &state,
        &agency.city,
        mode,
        hour,
        hour.plus_ms(HOUR_MS),
        0,
        u32::MAX / 2,
    )
    .await
    {
        Ok((events, _)) => respond(
            StatusCode::OK,
            &json!({ "version": VERSION, "events": events }),
        ),
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RecentQuery {
    start_time: Option<i64>,
    end_time: Option<i64>,
    after: Option<i64>,
}

async fn events_recent(
    agency: Agency,
    State(state): State<AppState>,
    Path(mode): Path<String>,
    ApiQuery(q): ApiQuery<RecentQuery>,
    headers: HeaderMap,
) -> Response {
    let at = state.now();
    let mode = match (mode_of(&mode), check_accept(&headers)) {
        (Ok(m), Ok(())) => m,
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let (Some(start), Some(end)) = (q.start_time, q.end_time) else {
        return bad_request(
            "missing_field",
            "start_time and end_time are required (milliseconds since 1970, UTC)",
        );
    };
    if end <= start {
        return bad_request("invalid_field", "end_time must be after start_time");
    }
    if start < at.0 - RECENT_MS {
        return bad_request(
            "invalid_field",
            "start_time is more than two weeks ago: use /events/historical for older hours",
        );
    }
    match collect_events(
        &state,
        &agency.city,
        mode,
        TimestampMs(start),
        TimestampMs(end),
        q.after.unwrap_or(0).max(0),
        EVENTS_PAGE,
    )
    .await
    {
        Ok((events, more)) => {
            let mut body = json!({ "version": VERSION, "events": events });
            if let Some(cursor) = more {
                body["links"] = next_link(
                    &headers,
                    &state,
                    &format!("/mds/{}/events/recent", mode.as_str()),
                    &format!("start_time={start}&end_time={end}&after={cursor}"),
                );
            }
            respond(StatusCode::OK, &body)
        }
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TelemetryQuery {
    telemetry_time: Option<String>,
}

async fn telemetry(
    agency: Agency,
    State(state): State<AppState>,
    Path(mode): Path<String>,
    ApiQuery(q): ApiQuery<TelemetryQuery>,
    headers: HeaderMap,
) -> Response {
    let at = state.now();
    let (mode, hour) = match (
        mode_of(&mode),
        check_accept(&headers),
        hour_ready(q.telemetry_time.as_deref(), "telemetry_time", at),
    ) {
        (Ok(m), Ok(()), Ok(h)) => (m, h),
        (Err(r), ..) | (_, Err(r), _) | (.., Err(r)) => return r,
    };
    let end = hour.plus_ms(HOUR_MS);
    // Which trip each vehicle was on when: points during a trip carry its id.
    let trips = match state.store.trips_between(&agency.city, hour, end).await {
        Ok(t) => t,
        Err(e) => return store_problem(&e),
    };
    let mut on_trip: HashMap<VehicleId, Vec<(TimestampMs, TimestampMs, String)>> = HashMap::new();
    for b in trips {
        if let Some(s) = b.trip.started_at {
            on_trip.entry(b.vehicle_id).or_default().push((
                s,
                b.trip.ended_at.unwrap_or(end),
                b.id,
            ));
        }
    }
    let city = agency.city.clone();
    let fleet = state.fleet.clone();
    let od = state.open_data.clone();
    let scanned = tokio::task::spawn_blocking(move || {
        let (live, history) = od.telemetry_dirs();
        let provider = od.provider_id.to_string();
        let mut last_kept: HashMap<VehicleId, TimestampMs> = HashMap::new();
        let mut types: HashMap<VehicleId, Option<VehicleType>> = HashMap::new();
        let mut out = Vec::new();
        mobility_live::live_log::scan_telemetry(live, history, hour, end, |t| {
            let vt = *types.entry(t.vehicle_id).or_insert_with(|| {
                fleet
                    .vehicle(&t.vehicle_id)
                    .filter(|(c, _)| *c == city)
                    .map(|(_, v)| v.vehicle_type)
            });
            if !vt.is_some_and(|vt| in_mode(vt, mode)) {
                return;
            }
            let trip = on_trip.get(&t.vehicle_id).and_then(|spans| {
                spans
                    .iter()
                    .find(|(s, e, _)| t.at >= *s && t.at <= *e)
                    .map(|x| x.2.clone())
            });
            let gap = if trip.is_some() { TRIP_SAMPLE_MS } else { IDLE_SAMPLE_MS };
            if let Some(prev) = last_kept.get(&t.vehicle_id)
                && t.at.since(*prev).abs() < gap
            {
                return;
            }
            last_kept.insert(t.vehicle_id, t.at);
            let device = t.vehicle_id.to_string();
            let mut o = json!({
                "device_id": device,
                "provider_id": provider,
                "telemetry_id": derived_uuid(&[b"telemetry", device.as_bytes(), &t.at.0.to_le_bytes()]).to_string(),
                "timestamp": t.at.0,
                // Journeys are not used by these modes; outside a trip both are null.
                "trip_ids": trip.map(|x| vec![x]),
                "journey_id": null,
                "location": gps(t.position),
            });
            if let Some(b) = t.battery {
                o["battery_percent"] = json!(b.get());
            }
            out.push(o);
        })
        .map(|()| out)
    })
    .await;
    match scanned {
        Ok(Ok(points)) => respond(
            StatusCode::OK,
            &json!({ "version": VERSION, "telemetry": points }),
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading telemetry history failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "history-unavailable",
                "Service Unavailable",
                "the telemetry history cannot be read right now",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "telemetry scan panicked");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal Server Error",
                "reading telemetry failed",
            )
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    agency: String,
    city: String,
    valid_days: Option<u32>,
}

fn token_json(t: &MdsToken) -> Value {
    json!({
        "id": t.id,
        "agency": t.agency,
        "city": t.city.as_str(),
        "created_at": t.created_at.0,
        "expires_at": t.expires_at.0,
        "revoked_at": t.revoked_at.map(|r| r.0),
    })
}

async fn issue_token(
    _: AdminCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TokenBody>,
) -> Response {
    let agency = body.agency.trim();
    if agency.is_empty() || agency.len() > 200 {
        return bad_request("invalid_field", "agency must be 1 to 200 characters");
    }
    let city = match CityId::parse(&body.city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    let days = body.valid_days.unwrap_or(365);
    if days == 0 || days > TOKEN_DAYS_MAX {
        return bad_request(
            "invalid_field",
            format!("valid_days must be 1 to {TOKEN_DAYS_MAX}"),
        );
    }
    let at = state.now();
    let record = MdsToken {
        id: uuid::Uuid::now_v7().to_string(),
        agency: agency.to_owned(),
        city,
        created_at: at,
        expires_at: at.plus_ms(i64::from(days) * 86_400_000),
        revoked_at: None,
    };
    let token = match state.open_data.issue_agency_token(
        &record.id,
        &record.agency,
        &record.city,
        at,
        record.expires_at,
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "signing an agency token failed");
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal Server Error",
                "the token could not be signed",
            );
        }
    };
    if let Err(e) = state.store.insert_mds_token(&record).await {
        return store_problem(&e);
    }
    let mut body = token_json(&record);
    body["token"] = json!(token);
    body["provider_id"] = json!(state.open_data.provider_id.to_string());
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn list_tokens(_: AdminCaller, State(state): State<AppState>) -> Response {
    match state.store.mds_tokens().await {
        Ok(all) => Json(all.iter().map(token_json).collect::<Vec<_>>()).into_response(),
        Err(e) => store_problem(&e),
    }
}

async fn revoke_token(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match state.store.revoke_mds_token(&id, state.now()).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            format!("no MDS token {id}"),
        ),
        Err(e) => store_problem(&e),
    }
}
