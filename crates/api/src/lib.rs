//! The HTTP API: routes per feature (each with its OpenAPI entry in [`openapi`]), the
//! authentication extractors, middleware, RFC 9457 problem responses, the vehicle stream and
//! the built-in dashboard ([`ui`]).
//!
//! **API boundary:** JSON shapes live here, not in the core; handlers parse requests into core
//! types and render core values into DTOs explicitly.

mod accounts;
mod admin;
mod audit;
pub mod auth;
mod bookings;
mod commands;
pub mod extract;
pub mod gbfs;
mod geofences;
mod health;
mod ingest;
mod intel;
mod jobs;
mod kyc;
mod lifecycle;
pub mod limits;
pub mod mds;
mod metrics_layer;
mod notifications;
pub mod openapi;
mod ops;
mod passes;
pub mod pricing;
mod problem;
mod stream;
pub mod ui;
mod vehicles;
mod wallet;

use std::{sync::Arc, time::Duration};

use axum::{Router, http::HeaderValue, middleware};
use metrics_exporter_prometheus::PrometheusHandle;
use mobility_core::TimestampMs;
use mobility_store::Store;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

pub use problem::Problem;

/// What handlers share: one `Arc`, since axum clones the state for every extractor and
/// middleware that asks for it (a struct of a dozen `Arc`s cost a dozen atomic increments and
/// decrements each time, several times per request).
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppStateInner>);

impl AppState {
    /// Wraps the shared parts.
    #[must_use]
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct AppStateInner {
    /// Transactional storage.
    pub store: Arc<dyn Store>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Live fleet state.
    pub fleet: Arc<mobility_live::fleet::Fleet>,
    /// Live fleet state with durability (ingest goes through this).
    pub live: Arc<mobility_live::state::LiveState>,
    /// Bearer-token authentication.
    pub auth: Arc<mobility_services::accounts::Auth>,
    /// Vehicle commands.
    pub commands: Arc<mobility_live::commands::Commands>,
    /// Bookings.
    pub bookings: Arc<mobility_services::bookings::Bookings>,
    /// Rate limits.
    pub limits: Arc<limits::Limits>,
    /// KYC.
    pub kyc: Arc<mobility_services::kyc::Kyc>,
    /// Notifications.
    pub notifier: Arc<mobility_services::notifications::Notifier>,
    /// Identity and keys of the open-data feeds (GBFS, MDS).
    pub open_data: Arc<mobility_services::open_data::OpenData>,
    /// What the dashboard is configured with (basemap).
    pub ui: Arc<ui::UiSettings>,
    /// Forecasts, prices and incentives, field plans.
    pub intel: Arc<mobility_services::intel::Intel>,
    /// The event bus.
    pub bus: Arc<dyn mobility_bus::EventBus>,
    /// Riders' searches on their way to the bus.
    pub demand: Arc<mobility_live::relay::DemandRelay>,
    /// What time it is.
    pub clock: Arc<dyn mobility_core::Clock>,
    /// The scheduled jobs this version runs, and how often (for `GET /v1/admin/jobs`).
    pub jobs: Vec<(&'static str, Duration)>,
}

impl AppStateInner {
    /// Now, by the platform's clock.
    #[must_use]
    pub fn now(&self) -> TimestampMs {
        self.clock.now()
    }
}

/// Serves `router` on `listener` until `stop` resolves; then no new connections are taken and
/// the future completes when in-flight requests have finished.
pub fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = std::io::Result<()>> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .into_future()
}

/// CORS for browser apps on other origins (`cors_origins`); `None` when no origin is allowed.
/// Credentials travel in the Authorization header, never in cookies, so none are allowed.
#[must_use]
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{Method, header};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([
                header::RETRY_AFTER,
                header::HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// The complete router with its middleware stack.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let routes = Router::new()
        .merge(health::routes())
        .merge(admin::routes())
        .merge(accounts::routes())
        .merge(bookings::routes())
        .merge(kyc::routes())
        .merge(pricing::routes())
        .merge(notifications::routes())
        .merge(wallet::routes())
        .merge(vehicles::routes())
        .merge(ingest::routes())
        .merge(lifecycle::routes())
        .merge(commands::routes())
        .merge(geofences::routes())
        .merge(stream::routes())
        .merge(ui::routes())
        .merge(openapi::routes())
        .merge(ops::routes())
        .merge(passes::routes())
        .merge(intel::routes())
        .merge(jobs::routes())
        .merge(
            // Open-data feeds are large and polled: gzip them when the client asks.
            gbfs::routes()
                .merge(mds::routes())
                .layer(tower_http::compression::CompressionLayer::new()),
        )
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed);
    with_middleware(routes, state, request_timeout)
}

/// The router of a process without the `api` role (ADR 0012): health, readiness and metrics,
/// and for anything else a 404 that says which roles this process runs.
pub fn health_router(state: AppState, request_timeout: Duration, roles: &str) -> Router {
    let detail: Arc<str> = Arc::from(format!(
        "this process runs the roles {roles} and serves no API; send API requests to a process with the api role"
    ));
    let routes = Router::new()
        .merge(health::routes())
        .fallback(move |uri: axum::http::Uri| {
            let detail = detail.clone();
            async move { problem::not_served_here(&uri, &detail) }
        });
    with_middleware(routes, state, request_timeout)
}

/// The middleware stack every router has.
fn with_middleware(routes: Router<AppState>, state: AppState, request_timeout: Duration) -> Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    routes
        .layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .layer(middleware::from_fn_with_state(state.clone(), limits::limit))
        .with_state(state)
        .layer(middleware::from_fn(metrics_layer::record))
        .layer(CatchPanicLayer::custom(problem::from_panic))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // DEBUG: free when logs are at info (the default); trace export enables it (see
            // telemetry::init), so every request still becomes a span in the collector.
            tracing::debug_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        // API answers are data, never pages: nothing may frame, run or embed them. (The
        // dashboard will set its own policy on its routes; these apply only where none is set.)
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

/// The request's `Host` header, if it is text.
pub(crate) fn host(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
}
