//! GBFS 3.0: the public feeds trip planners read, one set per city, plus service alerts that
//! admins publish in them.
//!
//! - `/gbfs/manifest.json` lists every city's `gbfs.json`; `/gbfs/{city}/{feed}.json` serves
//!   `gbfs`, `gbfs_versions`, `system_information`, `vehicle_types`, `vehicle_status`,
//!   `geofencing_zones`, `system_pricing_plans` and `system_alerts`. (`system_regions` is not
//!   served: cities have no regions to publish yet; station feeds neither: the fleet is free
//!   floating.)
//! - Rules the spec sets: only vehicles a rider could take (or see disabled in the street) are
//!   listed, never one reserved or on a trip; public ids rotate after every rental (see
//!   [`crate::open_data`]); coordinates have 6 decimals; `last_updated` is when the data last
//!   changed (so unchanged feeds keep their ETag), `ttl` how long to cache it.
//! - Public, no authentication; `ETag` + `If-None-Match` (304), `Cache-Control: public,
//!   max-age=ttl`, any origin may read (`Access-Control-Allow-Origin: *`), gzip when asked.

use std::collections::BTreeSet;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get},
};
use mobility_core::{CityId, Money, TimestampMs, VehicleState, VehicleType};
use mobility_fleet::geofence::ZoneKind;
use mobility_store::AlertRecord;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, bad_request},
};
use crate::auth::AdminCaller;

/// GBFS version served.
pub const VERSION: &str = "3.0";
/// Language of the texts.
const LANGUAGE: &str = "en";
/// Seconds trip planners may cache feeds drawn from configuration.
const TTL_CONFIG_S: u32 = 300;
/// Seconds trip planners may cache the vehicles' status (0: always refresh; they revalidate with
/// the ETag, which stays while nothing moves).
const TTL_STATUS_S: u32 = 0;
/// Longest alert texts.
const ALERT_TEXT_MAX: usize = 2_000;

/// The feeds of a city, in `gbfs.json` order.
pub const FEEDS: &[&str] = &[
    "system_information",
    "vehicle_types",
    "vehicle_status",
    "geofencing_zones",
    "system_pricing_plans",
    "system_alerts",
    "gbfs_versions",
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/gbfs/manifest.json", get(manifest))
        .route("/gbfs/{city}/{file}", get(city_feed))
        .route(
            "/v1/admin/cities/{city}/alerts",
            get(list_alerts).post(create_alert),
        )
        .route("/v1/admin/alerts/{id}", delete(delete_alert))
}

/// Facts about a vehicle type that GBFS wants and the registry does not hold (design values of
/// the fleet the platform is built for; operators with other models change them here).
struct TypeFacts {
    name: &'static str,
    max_range_m: f64,
    wheels: u8,
    max_speed_kmh: u8,
    riders: u8,
}

const fn facts(t: VehicleType) -> TypeFacts {
    match t {
        VehicleType::Scooter => TypeFacts {
            name: "E-scooter",
            max_range_m: 45_000.0,
            wheels: 2,
            max_speed_kmh: 25,
            riders: 1,
        },
        VehicleType::Ebike => TypeFacts {
            name: "E-bike",
            max_range_m: 70_000.0,
            wheels: 2,
            max_speed_kmh: 25,
            riders: 1,
        },
        VehicleType::Car => TypeFacts {
            name: "Electric car",
            max_range_m: 350_000.0,
            wheels: 4,
            max_speed_kmh: 130,
            riders: 5,
        },
        VehicleType::Van => TypeFacts {
            name: "Electric van",
            max_range_m: 250_000.0,
            wheels: 4,
            max_speed_kmh: 110,
            riders: 3,
        },
    }
}

/// The GBFS `form_factor` (MDS and GBFS share the words).
const fn form_factor(t: VehicleType) -> &'static str {
    t.mds_vehicle_type()
}

/// The id of a city's plan for a vehicle type (one plan per city and type).
fn plan_id(t: VehicleType) -> String {
    format!("{}-standard", t.as_str())
}

/// A coordinate rounded to 6 decimals (about 0.1 m), as GBFS asks.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn text(s: &str) -> Value {
    json!([{ "text": s, "language": LANGUAGE }])
}

fn envelope(last_updated: TimestampMs, ttl: u32, data: Value) -> Value {
    json!({
        "last_updated": last_updated.rfc3339(),
        "ttl": ttl,
        "version": VERSION,
        "data": data,
    })
}

/// A feed response: JSON with a weak ETag of its bytes (weak: gzip may re-encode them), 304 when
/// the client has it already, cacheable for `ttl` seconds, readable from any origin.
pub fn cached_json(request: &HeaderMap, body: &Value, ttl: u32, content_type: &str) -> Response {
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "feed does not serialise");
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal Server Error",
            )
            .into_response();
        }
    };
    let digest = sha2::Sha256::digest(&bytes);
    let tag: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("W/\"{tag}\"");
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/") == etag.trim_start_matches("W/"))
        });
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = bytes.into_response();
        if let Ok(v) = HeaderValue::from_str(content_type) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={ttl}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

fn feed(request: &HeaderMap, last_updated: TimestampMs, ttl: u32, data: Value) -> Response {
    cached_json(
        request,
        &envelope(last_updated, ttl, data),
        ttl,
        "application/json",
    )
}

fn not_found(detail: String) -> Response {
    metrics::counter!("http_rejections_total", "reason" => "not_found").increment(1);
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
        .with_detail(detail)
        .into_response()
}

async fn manifest(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = state.open_data.base_url(crate::host(&headers));
    let mut cities: Vec<CityId> = state
        .fleet
        .shards()
        .iter()
        .map(|s| s.city.read().id.clone())
        .collect();
    cities.sort();
    let datasets: Vec<Value> = cities
        .iter()
        .map(|c| {
            json!({
                "system_id": c.as_str(),
                "versions": [{ "version": VERSION, "url": format!("{base}/gbfs/{c}/gbfs.json") }],
            })
        })
        .collect();
    feed(
        &headers,
        state.open_data.started_at,
        TTL_CONFIG_S,
        json!({ "datasets": datasets }),
    )
}

async fn city_feed(
    State(state): State<AppState>,
    Path((city, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let unknown = || not_found(format!("there is no GBFS feed {city}/{file}"));
    let Ok(id) = CityId::parse(&city) else {
        return unknown();
    };
    let Some(name) = file.strip_suffix(".json") else {
        return unknown();
    };
    if state.fleet.shard(&id).is_none() {
        return not_found(format!("no city {city}"));
    }
    let built = match name {
        "gbfs" => Ok(gbfs(&state, &id, &headers)),
        "gbfs_versions" => Ok(versions(&state, &id, &headers)),
        "system_information" => Ok(system_information(&state, &id, &headers)),
        "vehicle_types" => vehicle_types(&state, &id).await,
        "vehicle_status" => Ok(vehicle_status(&state, &id).await),
        "geofencing_zones" => geofencing_zones(&state, &id).await,
        "system_pricing_plans" => pricing_plans(&state, &id).await,
        "system_alerts" => alerts(&state, &id).await,
        _ => return unknown(),
    };
    match built {
        Ok((last_updated, ttl, data)) => feed(&headers, last_updated, ttl, data),
        Err(e) => store_problem(&e),
    }
}

type Built = (TimestampMs, u32, Value);

fn gbfs(state: &AppState, city: &CityId, headers: &HeaderMap) -> Built {
    let base = state.open_data.base_url(crate::host(headers));
    let feeds: Vec<Value> = FEEDS
        .iter()
        .map(|f| json!({ "name": f, "url": format!("{base}/gbfs/{city}/{f}.json") }))
        .collect();
    (
        state.open_data.started_at,
        TTL_CONFIG_S,
        json!({ "feeds": feeds }),
    )
}

fn versions(state: &AppState, city: &CityId, headers: &HeaderMap) -> Built {
    let base = state.open_data.base_url(crate::host(headers));
    (
        state.open_data.started_at,
        TTL_CONFIG_S,
        json!({ "versions": [{ "version": VERSION, "url": format!("{base}/gbfs/{city}/gbfs.json") }] }),
    )
}

fn system_information(state: &AppState, city: &CityId, headers: &HeaderMap) -> Built {
    let (name, timezone) = state.fleet.shard(city).map_or_else(
        || (city.to_string(), "UTC".to_owned()),
        |s| {
            let c = s.city.read();
            (c.name.clone(), c.timezone.clone())
        },
    );
    let od = &state.open_data;
    let base = od.base_url(crate::host(headers));
    let data = json!({
        "system_id": city.as_str(),
        "languages": [LANGUAGE],
        "name": text(&format!("{} {name}", od.operator_name)),
        "operator": text(&od.operator_name),
        "opening_hours": "24/7",
        "feed_contact_email": od.feed_contact_email,
        "timezone": timezone,
        "manifest_url": format!("{base}/gbfs/manifest.json"),
    });
    (od.started_at, TTL_CONFIG_S, data)
}

/// The vehicle types of a city's registered fleet.
fn types_in(state: &AppState, city: &CityId) -> BTreeSet<VehicleType> {
    state.fleet.shard(city).map_or_else(BTreeSet::new, |s| {
        s.index.read().iter().map(|v| v.vehicle_type).collect()
    })
}

async fn plans_updated(
    state: &AppState,
    city: &CityId,
) -> Result<TimestampMs, mobility_store::StoreError> {
    Ok(state
        .store
        .pricing_plans(city)
        .await?
        .iter()
        .map(|p| p.updated_at)
        .max()
        .map_or(state.open_data.started_at, |t| {
            t.max(state.open_data.started_at)
        }))
}

async fn vehicle_types(
    state: &AppState,
    city: &CityId,
) -> Result<Built, mobility_store::StoreError> {
    let types: Vec<Value> = types_in(state, city)
        .into_iter()
        .map(|t| {
            let f = facts(t);
            json!({
                "vehicle_type_id": t.as_str(),
                "form_factor": form_factor(t),
                "propulsion_type": t.propulsion(),
                "name": text(f.name),
                "wheel_count": f.wheels,
                "max_permitted_speed": f.max_speed_kmh,
                "rider_capacity": f.riders,
                "max_range_meters": f.max_range_m,
                "default_pricing_plan_id": plan_id(t),
                "pricing_plan_ids": [plan_id(t)],
            })
        })
        .collect();
    Ok((
        plans_updated(state, city).await?,
        TTL_CONFIG_S,
        json!({ "vehicle_types": types }),
    ))
}

async fn vehicle_status(state: &AppState, city: &CityId) -> Built {
    let views: Vec<_> = state.fleet.shard(city).map_or_else(Vec::new, |s| {
        s.index
            .read()
            .iter()
            .filter(|v| {
                matches!(
                    v.state,
                    VehicleState::Available | VehicleState::NonOperational
                ) && v.position.is_some()
            })
            .collect()
    });
    let mut newest = state.open_data.started_at;
    let mut vehicles = Vec::with_capacity(views.len());
    for v in &views {
        let Some(p) = v.position else { continue };
        let version = state.fleet.version_of(&v.id);
        let mut o = json!({
            "vehicle_id": state.open_data.public_vehicle_id(&v.id, version),
            "lat": round6(p.lat()),
            "lon": round6(p.lon()),
            "is_reserved": false,
            "is_disabled": v.state != VehicleState::Available,
            "vehicle_type_id": v.vehicle_type.as_str(),
            "pricing_plan_id": plan_id(v.vehicle_type),
        });
        if let Some(at) = v.at {
            newest = newest.max(at);
            o["last_reported"] = json!(at.rfc3339());
        }
        let pct = v.battery.map_or(0.0, |b| f64::from(b.get()) / 100.0);
        o["current_fuel_percent"] = json!(pct);
        o["current_range_meters"] = json!((facts(v.vehicle_type).max_range_m * pct).round());
        vehicles.push(o);
    }
    // A stable order, so an unchanged fleet gives the same bytes (and ETag).
    vehicles.sort_by(|a, b| a["vehicle_id"].as_str().cmp(&b["vehicle_id"].as_str()));
    (newest, TTL_STATUS_S, json!({ "vehicles": vehicles }))
}

/// GBFS rules of a zone kind: (start, end, through, max speed).
fn rules(kind: &ZoneKind) -> Value {
    let (start, end, through, speed) = match kind {
        ZoneKind::NoRiding => (false, false, false, None),
        ZoneKind::NoParking => (true, false, true, None),
        ZoneKind::SlowZone { speed_limit_kmh } => (true, true, true, Some(*speed_limit_kmh)),
        ZoneKind::ParkingHub | ZoneKind::OperatingArea => (true, true, true, None),
    };
    let mut r = json!({
        "ride_start_allowed": start,
        "ride_end_allowed": end,
        "ride_through_allowed": through,
        "station_parking": false,
    });
    if let Some(s) = speed {
        r["maximum_speed_kph"] = json!(s);
    }
    json!([r])
}

/// Overlapping zones: GBFS applies the first one listed, so the strictest come first.
const fn precedence(kind: &ZoneKind) -> u8 {
    match kind {
        ZoneKind::NoRiding => 0,
        ZoneKind::NoParking => 1,
        ZoneKind::SlowZone { .. } => 2,
        ZoneKind::ParkingHub => 3,
        ZoneKind::OperatingArea => 4,
    }
}

fn polygon(ring: impl Iterator<Item = (f64, f64)>) -> Value {
    let mut coords: Vec<[f64; 2]> = ring.map(|(lon, lat)| [round6(lon), round6(lat)]).collect();
    if coords.first() != coords.last()
        && let Some(first) = coords.first().copied()
    {
        coords.push(first);
    }
    json!({ "type": "MultiPolygon", "coordinates": [[coords]] })
}

async fn geofencing_zones(
    state: &AppState,
    city: &CityId,
) -> Result<Built, mobility_store::StoreError> {
    let records = state.store.geofences(city).await?;
    let mut zones: Vec<(u8, String, Value)> = Vec::new();
    let mut updated = state.open_data.started_at;
    let mut has_area = false;
    for r in &records {
        let Ok(kind) = ZoneKind::parse(&r.kind, r.speed_limit_kmh) else {
            continue;
        };
        updated = updated.max(r.updated_at);
        has_area |= kind == ZoneKind::OperatingArea;
        let feature = json!({
            "type": "Feature",
            "geometry": polygon(r.ring.iter().map(|p| (p[0], p[1]))),
            "properties": { "name": text(&r.name), "rules": rules(&kind) },
        });
        zones.push((precedence(&kind), r.name.clone(), feature));
    }
    if let Some(area) = state
        .fleet
        .shard(city)
        .and_then(|s| s.city.read().operating_area.clone())
    {
        has_area = true;
        let feature = json!({
            "type": "Feature",
            "geometry": polygon(area.ring().iter().map(|p| (p.lon(), p.lat()))),
            "properties": {
                "name": text("Operating area"),
                "rules": rules(&ZoneKind::OperatingArea),
            },
        });
        zones.push((precedence(&ZoneKind::OperatingArea), String::new(), feature));
    }
    zones.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    // Outside every zone: when the city has an operating area, trips may pass through but not
    // start or end there; without one, anywhere goes.
    let global = json!([{
        "ride_start_allowed": !has_area,
        "ride_end_allowed": !has_area,
        "ride_through_allowed": true,
    }]);
    let features: Vec<Value> = zones.into_iter().map(|z| z.2).collect();
    Ok((
        updated,
        TTL_CONFIG_S,
        json!({
            "geofencing_zones": { "type": "FeatureCollection", "features": features },
            "global_rules": global,
        }),
    ))
}

#[allow(clippy::cast_precision_loss)]
fn major(m: Money) -> f64 {
    m.minor as f64 / 10_f64.powi(i32::try_from(m.currency.minor_digits()).unwrap_or(2))
}

fn money_text(m: Money) -> String {
    let digits = usize::try_from(m.currency.minor_digits()).unwrap_or(2);
    format!("{:.digits$} {}", major(m), m.currency.code())
}

async fn pricing_plans(
    state: &AppState,
    city: &CityId,
) -> Result<Built, mobility_store::StoreError> {
    let Some(currency) = state.fleet.shard(city).map(|s| s.city.read().currency) else {
        return Ok((
            state.open_data.started_at,
            TTL_CONFIG_S,
            json!({ "plans": [] }),
        ));
    };
    let mut plans = Vec::new();
    for t in types_in(state, city) {
        let (name, tariff) = state.bookings.tariff_for(city, t, currency).await?;
        let name = if name == "default" {
            format!("{} standard", facts(t).name)
        } else {
            name
        };
        let mut description = format!(
            "{} to unlock, then {} a minute",
            money_text(tariff.unlock_fee),
            money_text(tariff.per_minute)
        );
        if tariff.per_km.minor > 0 {
            description.push_str(&format!(" and {} a km", money_text(tariff.per_km)));
        }
        if let Some(cap) = tariff.daily_cap {
            description.push_str(&format!("; at most {} a day", money_text(cap)));
        }
        let mut plan = json!({
            "plan_id": plan_id(t),
            "name": text(&name),
            "currency": currency.code(),
            "price": major(tariff.unlock_fee),
            "is_taxable": false,
            "description": text(&description),
        });
        if tariff.per_minute.minor > 0 {
            plan["per_min_pricing"] =
                json!([{ "start": 0, "rate": major(tariff.per_minute), "interval": 1 }]);
        }
        if tariff.per_km.minor > 0 {
            plan["per_km_pricing"] =
                json!([{ "start": 0, "rate": major(tariff.per_km), "interval": 1 }]);
        }
        plans.push(plan);
    }
    Ok((
        plans_updated(state, city).await?,
        TTL_CONFIG_S,
        json!({ "plans": plans }),
    ))
}

async fn alerts(state: &AppState, city: &CityId) -> Result<Built, mobility_store::StoreError> {
    let at = state.now();
    let mut updated = state.open_data.started_at;
    let mut out = Vec::new();
    for a in state.store.alerts(city).await? {
        updated = updated.max(a.updated_at);
        if a.ends_at.is_some_and(|end| end <= at) {
            continue;
        }
        out.push(alert_json(&a));
    }
    Ok((updated, TTL_CONFIG_S, json!({ "alerts": out })))
}

fn alert_json(a: &AlertRecord) -> Value {
    let mut o = json!({
        "alert_id": a.id,
        "type": a.alert_type,
        "summary": text(&a.summary),
        "last_updated": a.updated_at.rfc3339(),
    });
    if let Some(d) = &a.description {
        o["description"] = text(d);
    }
    if let Some(u) = &a.url {
        o["url"] = text(u);
    }
    if let Some(start) = a.starts_at {
        let mut t = json!({ "start": start.rfc3339() });
        if let Some(end) = a.ends_at {
            t["end"] = json!(end.rfc3339());
        }
        o["times"] = json!([t]);
    }
    o
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertBody {
    #[serde(rename = "type")]
    alert_type: String,
    summary: String,
    description: Option<String>,
    url: Option<String>,
    starts_at_ms: Option<i64>,
    ends_at_ms: Option<i64>,
}

fn parse_alert(city: CityId, b: AlertBody, now: TimestampMs) -> Result<AlertRecord, String> {
    if !matches!(b.alert_type.as_str(), "system_closure" | "other") {
        return Err(
            "type must be system_closure or other (the fleet has no stations to close or move)"
                .into(),
        );
    }
    let summary = b.summary.trim();
    if summary.is_empty() || summary.len() > 200 {
        return Err("summary must be 1 to 200 characters".into());
    }
    if b.description
        .as_ref()
        .is_some_and(|d| d.len() > ALERT_TEXT_MAX)
    {
        return Err(format!(
            "description must be at most {ALERT_TEXT_MAX} bytes"
        ));
    }
    if let Some(u) = &b.url {
        let ok = url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok || u.len() > 2_000 {
            return Err("url must be an http(s) URL".into());
        }
    }
    let bound = |t: Option<i64>, what: &str| -> Result<Option<TimestampMs>, String> {
        match t {
            Some(ms) if !(0..=253_402_300_799_000).contains(&ms) => Err(format!(
                "{what} must be milliseconds since 1970 before year 10000"
            )),
            t => Ok(t.map(TimestampMs)),
        }
    };
    let starts_at = bound(b.starts_at_ms, "starts_at_ms")?;
    let ends_at = bound(b.ends_at_ms, "ends_at_ms")?;
    if ends_at.is_some() && starts_at.is_none() {
        return Err("an alert with an end needs a start (starts_at_ms)".into());
    }
    if let (Some(s), Some(e)) = (starts_at, ends_at)
        && e <= s
    {
        return Err("ends_at_ms must be after starts_at_ms".into());
    }
    Ok(AlertRecord {
        id: uuid::Uuid::now_v7().to_string(),
        city,
        alert_type: b.alert_type,
        summary: summary.to_owned(),
        description: b.description.map(|d| d.trim().to_owned()),
        url: b.url,
        starts_at,
        ends_at,
        updated_at: now,
    })
}

async fn create_alert(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(city): Path<String>,
    ApiJson(body): ApiJson<AlertBody>,
) -> Response {
    let city = match CityId::parse(&city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    if state.fleet.shard(&city).is_none() {
        return not_found(format!("no city {city}"));
    }
    let alert = match parse_alert(city, body, state.now()) {
        Ok(a) => a,
        Err(e) => return bad_request("invalid_field", e),
    };
    if let Err(e) = state.store.put_alert(&alert).await {
        return store_problem(&e);
    }
    (StatusCode::CREATED, Json(alert_json(&alert))).into_response()
}

async fn list_alerts(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(city): Path<String>,
) -> Response {
    let city = match CityId::parse(&city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    match state.store.alerts(&city).await {
        Ok(all) => Json(all.iter().map(alert_json).collect::<Vec<_>>()).into_response(),
        Err(e) => store_problem(&e),
    }
}

async fn delete_alert(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match state.store.delete_alert(&id).await {
        Ok(Some(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(None) => not_found(format!("no alert {id}")),
        Err(e) => store_problem(&e),
    }
}
