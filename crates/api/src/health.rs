//! Liveness, readiness and metrics endpoints. Public: they reveal no data (see ARCHITECTURE.md).

use std::time::Duration;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::{AppState, Problem};

/// Readiness must answer quickly even when the database hangs.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is alive and serving HTTP.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// The process can do its work: the store answers and every migration is applied.
async fn readyz(State(state): State<AppState>) -> Response {
    let backend = state.store.backend().as_str();
    let result = tokio::time::timeout(READINESS_TIMEOUT, state.store.readiness()).await;
    let problem = |detail: String| {
        metrics::gauge!("store_ready").set(0.0);
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not Ready")
            .with_detail(detail)
            .with_instance("/readyz")
            .into_response()
    };
    match result {
        Err(_) => problem(format!(
            "the {backend} store did not answer within {} s",
            READINESS_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => problem(format!("the {backend} store is unreachable: {e}")),
        Ok(Ok(r)) if r.pending_migrations > 0 => problem(format!(
            "{} database migration(s) not applied; run `mobility migrate`",
            r.pending_migrations
        )),
        Ok(Ok(r)) => {
            metrics::gauge!("store_ready").set(1.0);
            // The event bus must answer too: without it nothing that happens is recorded.
            let bus = state.bus.backend();
            match tokio::time::timeout(
                READINESS_TIMEOUT,
                state.bus.stream_info(mobility_core::Domain::Admin),
            )
            .await
            {
                Err(_) => {
                    metrics::gauge!("bus_ready").set(0.0);
                    problem(format!(
                        "the {bus} event bus did not answer within {} s",
                        READINESS_TIMEOUT.as_secs()
                    ))
                }
                Ok(Err(e)) => {
                    metrics::gauge!("bus_ready").set(0.0);
                    problem(format!("the {bus} event bus is unreachable: {e}"))
                }
                Ok(Ok(_)) => {
                    metrics::gauge!("bus_ready").set(1.0);
                    Json(json!({
                        "status": "ready",
                        "store": backend,
                        "schema_version": r.schema_version,
                        "bus": bus,
                    }))
                    .into_response()
                }
            }
        }
    }
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
