//! Pricing plans per city and vehicle type, and quotes.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, put},
};
use mobility_core::{CityId, Money, Tariff, VehicleId, VehicleType, fare};
use mobility_store::PricingPlan;
use serde::{Deserialize, Serialize};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, ApiQuery, bad_request},
};
use crate::auth::{AdminCaller, RiderCaller};

/// Largest amount in a plan, minor units (100,000.00 in a 2-decimal currency).
const AMOUNT_MAX: i64 = 10_000_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/cities/{city}/pricing/{type}", put(put_plan))
        .route("/v1/cities/{city}/pricing", get(list))
        .route("/v1/vehicles/{id}/quote", get(quote))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanBody {
    name: String,
    unlock_fee: i64,
    per_minute: i64,
    per_km: i64,
    daily_cap: Option<i64>,
}

#[derive(Debug, Serialize)]
struct PlanDto {
    vehicle_type: &'static str,
    name: String,
    currency: String,
    unlock_fee: i64,
    per_minute: i64,
    per_km: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    daily_cap: Option<i64>,
    /// True when no plan is configured and the built-in default applies.
    default: bool,
}

fn dto(t: VehicleType, name: String, tariff: &Tariff, default: bool) -> PlanDto {
    PlanDto {
        vehicle_type: t.as_str(),
        name,
        currency: tariff.unlock_fee.currency.to_string(),
        unlock_fee: tariff.unlock_fee.minor,
        per_minute: tariff.per_minute.minor,
        per_km: tariff.per_km.minor,
        daily_cap: tariff.daily_cap.map(|m| m.minor),
        default,
    }
}

fn not_found(what: String) -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
        .with_detail(what)
        .into_response()
}

async fn put_plan(
    _: AdminCaller,
    State(state): State<AppState>,
    Path((city, vehicle_type)): Path<(String, String)>,
    ApiJson(body): ApiJson<PlanBody>,
) -> Response {
    let (city, t) = match (CityId::parse(&city), VehicleType::parse(&vehicle_type)) {
        (Ok(c), Ok(t)) => (c, t),
        (Err(e), _) | (_, Err(e)) => return bad_request("invalid_field", e.to_string()),
    };
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return bad_request("invalid_field", "name must be 1 to 100 characters");
    }
    let amounts = [
        ("unlock_fee", Some(body.unlock_fee)),
        ("per_minute", Some(body.per_minute)),
        ("per_km", Some(body.per_km)),
        ("daily_cap", body.daily_cap),
    ];
    for (field, v) in amounts {
        if let Some(v) = v
            && !(0..=AMOUNT_MAX).contains(&v)
        {
            return bad_request(
                "invalid_field",
                format!("{field} must be 0 to {AMOUNT_MAX} (minor units of the city's currency)"),
            );
        }
    }
    let Some(shard) = state.fleet.shard(&city) else {
        return not_found(format!("no city {city}"));
    };
    let currency = shard.city.read().currency;
    let plan = PricingPlan {
        city,
        vehicle_type: t,
        name: name.to_owned(),
        tariff: Tariff {
            unlock_fee: Money::new(body.unlock_fee, currency),
            per_minute: Money::new(body.per_minute, currency),
            per_km: Money::new(body.per_km, currency),
            daily_cap: body.daily_cap.map(|c| Money::new(c, currency)),
        },
        updated_at: state.now(),
    };
    match state.store.put_pricing_plan(&plan).await {
        Ok(()) => Json(dto(t, plan.name, &plan.tariff, false)).into_response(),
        Err(e) => store_problem(&e),
    }
}

/// Public: prices are what every rider and trip planner may know.
async fn list(State(state): State<AppState>, Path(city): Path<String>) -> Response {
    let city = match CityId::parse(&city) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    let Some(shard) = state.fleet.shard(&city) else {
        return not_found(format!("no city {city}"));
    };
    let currency = shard.city.read().currency;
    let mut out = Vec::new();
    for t in VehicleType::ALL {
        match state.bookings.tariff_for(&city, *t, currency).await {
            Ok((name, tariff)) => {
                let default = name == "default";
                out.push(dto(*t, name, &tariff, default));
            }
            Err(e) => return store_problem(&e),
        }
    }
    Json(out).into_response()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct QuoteParams {
    minutes: Option<u32>,
    km: Option<f64>,
}

#[derive(Debug, Serialize)]
struct QuoteDto {
    vehicle_id: String,
    plan: PlanDto,
    minutes: u32,
    km: f64,
    /// Estimated total for the given minutes and kilometres, minor units (with the zone's
    /// multiplier and the start discount, before any credit for where the trip ends).
    estimate: i64,
    estimate_display: String,
    /// The zone's price multiplier on time and distance (1 without dynamic pricing).
    multiplier: f64,
    /// Why the price is what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    price_reason: Option<String>,
    /// Discount for starting here (the zone has spare vehicles), minor units.
    start_discount: i64,
    /// Zones nearby short of vehicles: ending the trip in one earns its credit (nearest first).
    end_credit_zones: Vec<serde_json::Value>,
}

/// Deficit zones listed in a quote at most.
const CREDIT_ZONES_MAX: usize = 5;

async fn quote(
    _: RiderCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<QuoteParams>,
) -> Response {
    let id = match VehicleId::parse(&id) {
        Ok(id) => id,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    let minutes = q.minutes.unwrap_or(10);
    let km = q.km.unwrap_or(2.0);
    if minutes > 24 * 60 || !(km.is_finite() && (0.0..=500.0).contains(&km)) {
        return bad_request("invalid_query", "minutes must be 0 to 1440 and km 0 to 500");
    }
    let Some((city, view)) = state.fleet.vehicle(&id) else {
        return not_found(format!("no vehicle {id}"));
    };
    let Some(shard) = state.fleet.shard(&city) else {
        return not_found(format!("no city {city}"));
    };
    let currency = shard.city.read().currency;
    let (name, tariff) = match state
        .bookings
        .tariff_for(&city, view.vehicle_type, currency)
        .await
    {
        Ok(x) => x,
        Err(e) => return store_problem(&e),
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let metres = (km * 1_000.0).round() as u64;
    let locked = view
        .position
        .and_then(|at| state.intel.lock_price(&city, view.vehicle_type, at));
    let multiplier = locked.as_ref().map_or(1_000, |l| l.multiplier_permille);
    let f = match fare(
        &tariff,
        i64::from(minutes) * 60_000,
        metres,
        Money::zero(currency),
        multiplier,
    ) {
        Ok(f) => f,
        Err(e) => return bad_request("invalid_query", e.to_string()),
    };
    let scale = 10_i64.pow(currency.minor_digits());
    let start_discount = locked
        .as_ref()
        .map_or(0, |l| l.start_discount_cents * scale / 100)
        .min(f.total.minor);
    let total = Money::new(f.total.minor - start_discount, currency);
    let mut end_credit_zones: Vec<(f64, serde_json::Value)> = Vec::new();
    if locked.is_some()
        && let (Some(at), Some(board)) = (view.position, state.intel.board(&city))
    {
        for z in board.zones.iter().filter(|z| z.price.end_credit_cents > 0) {
            let Ok(cell) = z.zone.parse::<h3o::CellIndex>() else {
                continue;
            };
            let ll = h3o::LatLng::from(cell);
            let Ok(centre) = mobility_core::LatLon::new(ll.lat(), ll.lng()) else {
                continue;
            };
            let d = at.distance_m(&centre);
            end_credit_zones.push((
                d,
                serde_json::json!({
                    "zone": z.zone, "lat": centre.lat(), "lon": centre.lon(),
                    "distance_m": d.round(), "credit": z.price.end_credit_cents * scale / 100,
                }),
            ));
        }
        end_credit_zones.sort_by(|a, b| a.0.total_cmp(&b.0));
        end_credit_zones.truncate(CREDIT_ZONES_MAX);
    }
    let default = name == "default";
    Json(QuoteDto {
        vehicle_id: id.to_string(),
        plan: dto(view.vehicle_type, name, &tariff, default),
        minutes,
        km,
        estimate: total.minor,
        estimate_display: total.to_string(),
        multiplier: f64::from(multiplier) / 1_000.0,
        price_reason: locked.map(|l| l.reason),
        start_discount,
        end_credit_zones: end_credit_zones.into_iter().map(|(_, v)| v).collect(),
    })
    .into_response()
}
