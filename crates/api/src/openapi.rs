//! The OpenAPI 3.1 document (`/openapi.json`) and its interactive page (`/docs`, served by the
//! binary, offline).
//!
//! Request bodies and query strings are described by JSON Schemas generated from the very types
//! the handlers parse (`schemars` derives on them, so `deny_unknown_fields`, optional fields and
//! value types carry over); paths, methods, roles and success statuses come from [`OPS`], kept
//! beside the router. `tests/openapi.rs` checks the two agree: every documented operation is
//! routed, and every other method on a documented path is refused (405). Every error is an RFC
//! 9457 problem, documented once as the default response.

use axum::{
    Json, Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use super::{
    AppState, accounts, admin, bookings, commands, gbfs, geofences, intel, kyc, lifecycle, mds,
    notifications, ops, passes, pricing, stream, vehicles, wallet,
};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A signed-in account (its own data).
    Account,
    /// An account or API token with the rider role or above.
    Rider,
    /// Staff or admin.
    Staff,
    /// Admin.
    Admin,
    /// A gateway API token (or admin).
    Gateway,
    /// An MDS agency token.
    Agency,
}

impl Access {
    const fn describe(self) -> &'static str {
        match self {
            Self::Public => "Public.",
            Self::Account => "A signed-in account (an access token from /v1/auth/login).",
            Self::Rider => "Rider, staff or admin.",
            Self::Staff => "Staff or admin.",
            Self::Admin => "Admin.",
            Self::Gateway => "A gateway API token (or admin).",
            Self::Agency => "An MDS agency token for the city (POST /v1/admin/mds/tokens).",
        }
    }
}

type SchemaFn = fn(&mut SchemaGenerator) -> Value;

/// One documented operation.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    /// `get`, `post`, `put` or `delete`.
    pub method: &'static str,
    /// The path template, as routed.
    pub path: &'static str,
    /// Group.
    pub tag: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What it does.
    pub summary: &'static str,
    /// Its success status.
    pub ok: u16,
    /// The content type of its success answer.
    pub produces: &'static str,
    /// The JSON body it parses.
    pub body: Option<SchemaFn>,
    /// The query string it parses.
    pub query: Option<SchemaFn>,
    /// Whether it needs an `Idempotency-Key` header.
    pub idempotent: bool,
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

fn telemetry_batch(_: &mut SchemaGenerator) -> Value {
    json!({
        "type": "array", "maxItems": 10_000,
        "items": {"type": "object", "required": ["vehicle_id", "ts", "lat", "lon"], "properties": {
            "vehicle_id": {"type": "string", "format": "uuid"},
            "ts": {"type": "integer", "description": "milliseconds since 1970 (vehicle clock)"},
            "lat": {"type": "number"}, "lon": {"type": "number"},
            "battery_pct": {"type": "integer", "minimum": 0, "maximum": 100},
            "speed_mps": {"type": "number"}, "heading_deg": {"type": "number"},
            "odometer_m": {"type": "integer"}, "locked": {"type": "boolean"},
            "errors": {"type": "array", "items": {"type": "integer"}}
        }}
    })
}

const JSON: &str = "application/json";

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    access: Access,
    ok: u16,
    summary: &'static str,
) -> Op {
    Op {
        method,
        path,
        tag,
        access,
        summary,
        ok,
        produces: JSON,
        body: None,
        query: None,
        idempotent: false,
    }
}

const fn with_body(mut o: Op, body: SchemaFn) -> Op {
    o.body = Some(body);
    o
}

const fn with_query(mut o: Op, query: SchemaFn) -> Op {
    o.query = Some(query);
    o
}

const fn idempotent(mut o: Op) -> Op {
    o.idempotent = true;
    o
}

const fn produces(mut o: Op, content_type: &'static str) -> Op {
    o.produces = content_type;
    o
}

use Access::{Account, Admin, Agency, Gateway, Public, Rider, Staff};

/// Every operation of the API.
pub const OPS: &[Op] = &[
    // Health and documents.
    op(
        "get",
        "/healthz",
        "health",
        Public,
        200,
        "Liveness: the process answers",
    ),
    op(
        "get",
        "/readyz",
        "health",
        Public,
        200,
        "Readiness: the store answers and is migrated, and the event bus answers (503 otherwise)",
    ),
    produces(
        op(
            "get",
            "/metrics",
            "health",
            Public,
            200,
            "Prometheus metrics",
        ),
        "text/plain",
    ),
    op("get", "/openapi.json", "docs", Public, 200, "This document"),
    produces(
        op(
            "get",
            "/docs",
            "docs",
            Public,
            200,
            "Interactive documentation (offline)",
        ),
        "text/html",
    ),
    // Accounts.
    with_body(
        op(
            "post",
            "/v1/auth/signup",
            "accounts",
            Public,
            201,
            "Create a rider account",
        ),
        schema::<accounts::Credentials>,
    ),
    with_body(
        op(
            "post",
            "/v1/auth/login",
            "accounts",
            Public,
            200,
            "Sign in: an access token (15 min) and a refresh token",
        ),
        schema::<accounts::Credentials>,
    ),
    with_body(
        op(
            "post",
            "/v1/auth/refresh",
            "accounts",
            Public,
            200,
            "Exchange a refresh token (once) for a new session",
        ),
        schema::<accounts::RefreshBody>,
    ),
    with_body(
        op(
            "post",
            "/v1/auth/logout",
            "accounts",
            Public,
            204,
            "Revoke a session's refresh tokens",
        ),
        schema::<accounts::RefreshBody>,
    ),
    op(
        "get",
        "/v1/me",
        "accounts",
        Account,
        200,
        "The signed-in account",
    ),
    with_body(
        op(
            "post",
            "/v1/admin/users",
            "accounts",
            Admin,
            201,
            "Create an account with a role",
        ),
        schema::<accounts::NewUser>,
    ),
    with_query(
        op(
            "get",
            "/v1/admin/users",
            "accounts",
            Admin,
            200,
            "List accounts",
        ),
        schema::<accounts::UsersParams>,
    ),
    with_body(
        op(
            "put",
            "/v1/admin/users/{id}/role",
            "accounts",
            Admin,
            200,
            "Change an account's role (never one's own)",
        ),
        schema::<accounts::RoleBody>,
    ),
    // Cities, vehicles, tokens.
    op(
        "get",
        "/v1/cities",
        "cities",
        Public,
        200,
        "Cities and their operating areas",
    ),
    with_body(
        op(
            "put",
            "/v1/admin/cities/{id}",
            "cities",
            Admin,
            200,
            "Create or update a city",
        ),
        schema::<admin::PutCity>,
    ),
    with_body(
        op(
            "post",
            "/v1/admin/vehicles",
            "vehicles",
            Admin,
            201,
            "Register a vehicle (its device secret is shown once)",
        ),
        schema::<admin::RegisterVehicle>,
    ),
    with_query(
        op(
            "get",
            "/v1/admin/vehicles",
            "vehicles",
            Staff,
            200,
            "The registry, by city, paged",
        ),
        schema::<admin::ListVehicles>,
    ),
    with_body(
        op(
            "post",
            "/v1/admin/vehicles/batch",
            "vehicles",
            Admin,
            201,
            "Register up to 1,000 vehicles in one transaction",
        ),
        schema::<admin::RegisterBatch>,
    ),
    with_body(
        op(
            "post",
            "/v1/admin/tokens",
            "accounts",
            Admin,
            201,
            "Issue an API token for a role (shown once)",
        ),
        schema::<admin::IssueToken>,
    ),
    op(
        "get",
        "/v1/admin/tokens",
        "accounts",
        Admin,
        200,
        "List API tokens",
    ),
    op(
        "delete",
        "/v1/admin/tokens/{id}",
        "accounts",
        Admin,
        204,
        "Revoke an API token",
    ),
    op(
        "get",
        "/v1/admin/jobs",
        "console",
        Admin,
        200,
        "Scheduled jobs: lease holder, last run, duration, last error, next run",
    ),
    // Live fleet.
    with_query(
        op(
            "get",
            "/v1/vehicles/nearby",
            "fleet",
            Rider,
            200,
            "Nearest available vehicles",
        ),
        schema::<vehicles::NearbyParams>,
    ),
    op(
        "get",
        "/v1/vehicles/{id}",
        "fleet",
        Staff,
        200,
        "A vehicle's live state",
    ),
    with_query(
        op(
            "get",
            "/v1/fleet/stats",
            "fleet",
            Staff,
            200,
            "Counts by state, type and battery; searches in the last hour",
        ),
        schema::<vehicles::StatsParams>,
    ),
    with_query(
        op(
            "get",
            "/v1/fleet/h3",
            "fleet",
            Staff,
            200,
            "Supply or demand per H3 cell",
        ),
        schema::<ops::H3Params>,
    ),
    with_query(
        op(
            "get",
            "/v1/fleet/events",
            "fleet",
            Staff,
            200,
            "Geofence crossings and alerts",
        ),
        schema::<geofences::EventsParams>,
    ),
    with_query(
        op(
            "get",
            "/v1/vehicles/{id}/events",
            "fleet",
            Staff,
            200,
            "A vehicle's MDS events, newest first",
        ),
        schema::<ops::EventsParams>,
    ),
    with_query(
        op(
            "get",
            "/v1/vehicles/{id}/telemetry",
            "fleet",
            Staff,
            200,
            "A vehicle's recent raw telemetry",
        ),
        schema::<ops::TelemetryParams>,
    ),
    with_query(
        op(
            "get",
            "/v1/stream/vehicles",
            "fleet",
            Staff,
            101,
            "WebSocket of vehicle changes in a viewport",
        ),
        schema::<stream::StreamParams>,
    ),
    with_body(
        op(
            "post",
            "/v1/ingest/telemetry",
            "fleet",
            Gateway,
            200,
            "Batch telemetry from a gateway",
        ),
        telemetry_batch,
    ),
    with_body(
        op(
            "post",
            "/v1/vehicles/events",
            "fleet",
            Staff,
            200,
            "MDS lifecycle events (late ones are logged, not applied)",
        ),
        schema::<lifecycle::Body>,
    ),
    with_body(
        op(
            "post",
            "/v1/vehicles/{id}/commands",
            "fleet",
            Staff,
            202,
            "Send a command (lock, unlock, ring, locate, set_speed_limit)",
        ),
        schema::<commands::SendCommand>,
    ),
    op(
        "get",
        "/v1/vehicles/{id}/commands",
        "fleet",
        Staff,
        200,
        "A vehicle's recent commands",
    ),
    op(
        "get",
        "/v1/commands/{id}",
        "fleet",
        Staff,
        200,
        "A command's outcome",
    ),
    // Zones.
    with_body(
        op(
            "post",
            "/v1/admin/cities/{city}/geofences",
            "zones",
            Admin,
            201,
            "Create a zone",
        ),
        schema::<geofences::FenceBody>,
    ),
    with_body(
        op(
            "put",
            "/v1/admin/geofences/{id}",
            "zones",
            Admin,
            200,
            "Replace a zone",
        ),
        schema::<geofences::FenceBody>,
    ),
    op(
        "delete",
        "/v1/admin/geofences/{id}",
        "zones",
        Admin,
        204,
        "Delete a zone",
    ),
    op(
        "get",
        "/v1/cities/{city}/geofences",
        "zones",
        Staff,
        200,
        "A city's zones",
    ),
    // Riders.
    with_body(
        op(
            "post",
            "/v1/me/kyc",
            "riders",
            Account,
            201,
            "Submit identity or a driving licence",
        ),
        schema::<kyc::Submission>,
    ),
    op(
        "get",
        "/v1/me/kyc",
        "riders",
        Account,
        200,
        "My KYC submissions",
    ),
    with_query(
        op(
            "get",
            "/v1/kyc/queue",
            "riders",
            Staff,
            200,
            "The review queue, oldest first",
        ),
        schema::<kyc::QueueParams>,
    ),
    with_body(
        op(
            "post",
            "/v1/kyc/{id}/decision",
            "riders",
            Staff,
            200,
            "Verify or reject (with a reason)",
        ),
        schema::<kyc::Decision>,
    ),
    op(
        "get",
        "/v1/me/notifications",
        "riders",
        Account,
        200,
        "My notification channels",
    ),
    with_body(
        op(
            "put",
            "/v1/me/notifications/{channel}",
            "riders",
            Account,
            200,
            "Set a channel: webhook, email or push",
        ),
        schema::<notifications::Body>,
    ),
    with_query(
        op(
            "get",
            "/v1/me/wallet",
            "payments",
            Account,
            200,
            "My wallet balance",
        ),
        schema::<wallet::CurrencyParam>,
    ),
    idempotent(with_body(
        op(
            "post",
            "/v1/me/wallet/top-up",
            "payments",
            Account,
            200,
            "Top up the wallet",
        ),
        schema::<wallet::TopUp>,
    )),
    // Bookings.
    with_body(
        op(
            "post",
            "/v1/bookings",
            "bookings",
            Account,
            201,
            "Reserve a vehicle",
        ),
        schema::<bookings::ReserveBody>,
    ),
    with_query(
        op(
            "get",
            "/v1/bookings",
            "bookings",
            Staff,
            200,
            "Bookings and trips, newest first, filtered",
        ),
        schema::<bookings::ListParams>,
    ),
    op(
        "get",
        "/v1/bookings/{id}",
        "bookings",
        Account,
        200,
        "A booking (one's own; staff see all), with live time, distance and fare during the trip",
    ),
    op(
        "post",
        "/v1/bookings/{id}/cancel",
        "bookings",
        Account,
        200,
        "Cancel a reservation",
    ),
    op(
        "post",
        "/v1/bookings/{id}/unlock",
        "bookings",
        Account,
        200,
        "Hold the fare, unlock, start the trip",
    ),
    op(
        "post",
        "/v1/bookings/{id}/pause",
        "bookings",
        Account,
        200,
        "Pause the trip (vehicle locked)",
    ),
    op(
        "post",
        "/v1/bookings/{id}/resume",
        "bookings",
        Account,
        200,
        "Resume the trip",
    ),
    op(
        "post",
        "/v1/bookings/{id}/end",
        "bookings",
        Account,
        200,
        "End the trip: lock, price, pay",
    ),
    idempotent(with_body(
        op(
            "post",
            "/v1/bookings/{id}/refund",
            "payments",
            Staff,
            200,
            "Refund (part of) a trip",
        ),
        schema::<bookings::RefundBody>,
    )),
    // Pricing and passes.
    with_body(
        op(
            "put",
            "/v1/admin/cities/{city}/pricing/{type}",
            "pricing",
            Admin,
            200,
            "Set a vehicle type's plan",
        ),
        schema::<pricing::PlanBody>,
    ),
    op(
        "get",
        "/v1/cities/{city}/pricing",
        "pricing",
        Public,
        200,
        "A city's plans",
    ),
    op(
        "get",
        "/v1/cities/{city}/zones",
        "pricing",
        Public,
        200,
        "Each zone's price multiplier, why, and its relocation incentives",
    ),
    with_query(
        op(
            "get",
            "/v1/ops/forecast",
            "intelligence",
            Staff,
            200,
            "Demand forecast per zone for the next two hours, and the model versions",
        ),
        schema::<intel::CityParams>,
    ),
    with_query(
        op(
            "get",
            "/v1/ops/plan",
            "intelligence",
            Staff,
            200,
            "The field plan: swaps, moves and collections, each van's stops in order",
        ),
        schema::<intel::CityParams>,
    ),
    with_body(
        op(
            "put",
            "/v1/admin/cities/{city}/weather",
            "intelligence",
            Gateway,
            200,
            "A weather feed: observed or forecast weather per hour (a covariate of the demand forecast)",
        ),
        schema::<intel::WeatherBody>,
    ),
    op(
        "get",
        "/v1/admin/cities/{city}/events",
        "intelligence",
        Staff,
        200,
        "The city's events calendar (ended in the last day or to come)",
    ),
    with_body(
        op(
            "put",
            "/v1/admin/cities/{city}/events/{id}",
            "intelligence",
            Admin,
            200,
            "Add or change an event: its crowd is a covariate of the demand forecast",
        ),
        schema::<intel::EventBody>,
    ),
    op(
        "delete",
        "/v1/admin/events/{id}",
        "intelligence",
        Admin,
        204,
        "Remove an event from its city's calendar",
    ),
    op(
        "post",
        "/v1/admin/cities/{city}/intel/refresh",
        "intelligence",
        Admin,
        200,
        "Forecast, price and plan now",
    ),
    with_query(
        op(
            "get",
            "/v1/vehicles/{id}/quote",
            "pricing",
            Rider,
            200,
            "What a trip on this vehicle would cost",
        ),
        schema::<pricing::QuoteParams>,
    ),
    with_body(
        op(
            "put",
            "/v1/admin/cities/{city}/passes/{id}",
            "pricing",
            Admin,
            200,
            "Create or change a pass",
        ),
        schema::<passes::PlanBody>,
    ),
    op(
        "get",
        "/v1/cities/{city}/passes",
        "pricing",
        Public,
        200,
        "The passes on sale",
    ),
    op("get", "/v1/me/passes", "pricing", Account, 200, "My passes"),
    idempotent(with_body(
        op(
            "post",
            "/v1/me/passes",
            "pricing",
            Account,
            201,
            "Buy a pass",
        ),
        schema::<passes::BuyBody>,
    )),
    // Open data.
    op(
        "get",
        "/gbfs/manifest.json",
        "gbfs",
        Public,
        200,
        "GBFS manifest: every city's gbfs.json",
    ),
    op(
        "get",
        "/gbfs/{city}/{file}",
        "gbfs",
        Public,
        200,
        "A GBFS 3.0 feed of a city (gbfs.json, vehicle_status.json, …)",
    ),
    op(
        "get",
        "/v1/admin/cities/{city}/alerts",
        "gbfs",
        Admin,
        200,
        "A city's service alerts",
    ),
    with_body(
        op(
            "post",
            "/v1/admin/cities/{city}/alerts",
            "gbfs",
            Admin,
            201,
            "Publish a service alert",
        ),
        schema::<gbfs::AlertBody>,
    ),
    op(
        "delete",
        "/v1/admin/alerts/{id}",
        "gbfs",
        Admin,
        204,
        "Withdraw an alert",
    ),
    with_query(
        produces(
            op(
                "get",
                "/mds/{mode}/vehicles",
                "mds",
                Agency,
                200,
                "MDS vehicles",
            ),
            mds::MEDIA_TYPE,
        ),
        schema::<mds::PageQuery>,
    ),
    produces(
        op(
            "get",
            "/mds/{mode}/vehicles/{device}",
            "mds",
            Agency,
            200,
            "MDS vehicle",
        ),
        mds::MEDIA_TYPE,
    ),
    with_query(
        produces(
            op(
                "get",
                "/mds/{mode}/vehicles/status",
                "mds",
                Agency,
                200,
                "MDS vehicle status",
            ),
            mds::MEDIA_TYPE,
        ),
        schema::<mds::PageQuery>,
    ),
    produces(
        op(
            "get",
            "/mds/{mode}/vehicles/status/{device}",
            "mds",
            Agency,
            200,
            "MDS status of a vehicle",
        ),
        mds::MEDIA_TYPE,
    ),
    with_query(
        produces(
            op(
                "get",
                "/mds/{mode}/trips",
                "mds",
                Agency,
                200,
                "MDS trips that ended in an hour (202 while processing)",
            ),
            mds::MEDIA_TYPE,
        ),
        schema::<mds::TripsQuery>,
    ),
    with_query(
        produces(
            op(
                "get",
                "/mds/{mode}/events/historical",
                "mds",
                Agency,
                200,
                "MDS events of an hour",
            ),
            mds::MEDIA_TYPE,
        ),
        schema::<mds::HistoricalQuery>,
    ),
    with_query(
        produces(
            op(
                "get",
                "/mds/{mode}/events/recent",
                "mds",
                Agency,
                200,
                "MDS events of the last two weeks, paged",
            ),
            mds::MEDIA_TYPE,
        ),
        schema::<mds::RecentQuery>,
    ),
    with_query(
        produces(
            op(
                "get",
                "/mds/{mode}/telemetry",
                "mds",
                Agency,
                200,
                "MDS telemetry of an hour",
            ),
            mds::MEDIA_TYPE,
        ),
        schema::<mds::TelemetryQuery>,
    ),
    op(
        "get",
        "/v1/admin/mds/tokens",
        "mds",
        Admin,
        200,
        "Agency tokens",
    ),
    with_body(
        op(
            "post",
            "/v1/admin/mds/tokens",
            "mds",
            Admin,
            201,
            "Issue an agency token (shown once)",
        ),
        schema::<mds::TokenBody>,
    ),
    op(
        "delete",
        "/v1/admin/mds/tokens/{id}",
        "mds",
        Admin,
        204,
        "Revoke an agency token",
    ),
    // Console.
    produces(
        op(
            "get",
            "/ui/",
            "console",
            Public,
            200,
            "The operations dashboard and admin console",
        ),
        "text/html",
    ),
    op(
        "get",
        "/ui/config.json",
        "console",
        Public,
        200,
        "The console's configuration (basemap)",
    ),
];

/// The document.
#[must_use]
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = settings.into_generator();
    let mut paths: Map<String, Value> = Map::new();
    for o in OPS {
        let mut params: Vec<Value> = o
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true,
                       "schema": {"type": "string", "maxLength": 200}})
            })
            .collect();
        if let Some(q) = o.query {
            let s = q(&mut g);
            let resolved = resolve(&s, &g);
            let required: Vec<&str> = resolved["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = resolved["properties"].as_object() {
                for (name, schema) in props {
                    params.push(json!({
                        "name": name, "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": schema,
                    }));
                }
            }
        }
        if o.idempotent {
            params.push(json!({"name": "Idempotency-Key", "in": "header", "required": true,
                "description": "One operation per key: a retry with the same key moves no money twice",
                "schema": {"type": "string", "minLength": 1, "maxLength": 200}}));
        }
        let mut operation = json!({
            "tags": [o.tag],
            "summary": o.summary,
            "description": o.access.describe(),
            "operationId": operation_id(o),
            "parameters": params,
            "responses": {
                o.ok.to_string(): {"description": "Success", "content": {o.produces: {}}},
                "default": {"description": "An RFC 9457 problem (4xx: the request; 5xx: ours)",
                            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
        });
        if let Some(b) = o.body {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": b(&mut g)}}});
        }
        if o.access != Access::Public {
            operation["security"] = json!([{"bearer": []}]);
        }
        let entry = paths.entry(o.path.to_owned()).or_insert_with(|| json!({}));
        entry[o.method] = operation;
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object", "required": ["type", "title", "status"],
            "properties": {
                "type": {"type": "string", "description": "Stable kind, e.g. /problems/not-found"},
                "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "instance": {"type": "string"}
            }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "mobility",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The shared-fleet platform's API. Errors are RFC 9457 problems. Authenticate with `Authorization: Bearer <token>`: an account's access token, an API token, or an MDS agency token.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

/// A schema with a top-level `$ref` into the definitions replaced by its target.
fn resolve(schema: &Value, g: &SchemaGenerator) -> Value {
    let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    else {
        return schema.clone();
    };
    g.definitions()
        .get(name)
        .cloned()
        .unwrap_or_else(|| schema.clone())
}

fn operation_id(o: &Op) -> String {
    let mut id = o.method.to_owned();
    for part in o.path.split(['/', '.', '-']).filter(|p| !p.is_empty()) {
        let part = part.trim_start_matches('{').trim_end_matches('}');
        id.push('_');
        id.push_str(part);
    }
    id
}

const DOCS: &str = include_str!("../ui/docs.html");
const DOCS_JS: &str = include_str!("../ui/docs.js");

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async {
                let mut r = Json(document()).into_response();
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                r
            }),
        )
        .route(
            "/docs",
            get(|| async { page(DOCS, "text/html; charset=utf-8") }),
        )
        .route(
            "/docs/docs.js",
            get(|| async { page(DOCS_JS, "text/javascript; charset=utf-8") }),
        )
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_operation_once() {
        let d = document();
        assert_eq!(d["openapi"], "3.1.0");
        let mut seen = std::collections::HashSet::new();
        for o in OPS {
            assert!(
                seen.insert((o.method, o.path)),
                "{} {} twice",
                o.method,
                o.path
            );
            let op = &d["paths"][o.path][o.method];
            assert!(op.is_object(), "{} {}", o.method, o.path);
            if o.body.is_some() {
                assert!(op["requestBody"]["content"]["application/json"]["schema"].is_object());
            }
        }
        // Request types come with their rules: unknown fields refused, required ones required.
        let schemas = &d["components"]["schemas"];
        assert_eq!(schemas["NewUser"]["additionalProperties"], false);
        assert!(
            schemas["NewUser"]["required"]
                .as_array()
                .unwrap()
                .contains(&json!("email"))
        );
        let nearby = &d["paths"]["/v1/vehicles/nearby"]["get"]["parameters"];
        assert!(
            nearby
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "lat" && p["required"] == true)
        );
        // Every $ref resolves.
        let text = d.to_string();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(schemas.get(name).is_some(), "dangling $ref {name}");
        }
    }
}
