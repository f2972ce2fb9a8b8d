//! `POST /v1/ingest/telemetry`: batches of telemetry from gateways (gateway or admin token).
//!
//! Each report is judged on its own: one bad report does not sink the batch. The answer says how
//! many were applied, how many were redeliveries, and why each refused one was refused.

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    response::{IntoResponse, Response},
    routing::post,
};
use mobility_fleet::{Reject, Verdict};
use serde::Serialize;

use super::{
    AppState,
    extract::{ApiJson, bad_request},
};
use mobility_live::ingest::{
    BATCH_BYTES_MAX, BATCH_REPORTS_MAX, Invalid, RawReport, count_invalid, count_outcome,
};

use crate::auth::GatewayCaller;

/// Most per-report errors listed in a response.
const ERRORS_LISTED_MAX: usize = 100;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/ingest/telemetry", post(ingest))
        .layer(DefaultBodyLimit::max(BATCH_BYTES_MAX))
}

#[derive(Debug, Serialize)]
struct ReportError {
    index: usize,
    reason: &'static str,
    detail: String,
}

#[derive(Debug, Serialize)]
struct IngestResult {
    applied: usize,
    duplicates: usize,
    rejected: usize,
    errors: Vec<ReportError>,
}

async fn ingest(
    _: GatewayCaller,
    State(state): State<AppState>,
    ApiJson(items): ApiJson<Vec<serde_json::Value>>,
) -> Response {
    if items.len() > BATCH_REPORTS_MAX {
        return bad_request(
            "too_many_reports",
            format!(
                "at most {BATCH_REPORTS_MAX} reports per batch, not {}",
                items.len()
            ),
        );
    }
    metrics::counter!("telemetry_received_total", "source" => "http").increment(items.len() as u64);
    let mut errors = Vec::new();
    let mut rejected = 0usize;
    let mut reports = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let parsed = serde_json::from_value::<RawReport>(item)
            .map_err(|e| Invalid::Malformed(e.to_string()))
            .and_then(|r| r.validate(None));
        match parsed {
            Ok(t) => {
                reports.push(t);
                positions.push(index);
            }
            Err(e) => {
                count_invalid("http", &e);
                rejected += 1;
                if errors.len() < ERRORS_LISTED_MAX {
                    errors.push(ReportError {
                        index,
                        reason: e.label(),
                        detail: e.to_string(),
                    });
                }
            }
        }
    }
    let verdicts = match state
        .live
        .submit(
            &reports,
            state.now(),
            mobility_live::state::Durability::Synced,
        )
        .await
    {
        Ok(v) => v,
        Err(e) => {
            return super::Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "not-durable",
                "Service Unavailable",
            )
            .with_detail(format!(
                "the reports could not be made durable ({e}); retry later"
            ))
            .into_response();
        }
    };
    let (mut applied, mut duplicates) = (0, 0);
    for (verdict, index) in verdicts.iter().zip(positions) {
        count_outcome("http", verdict);
        match verdict {
            Ok(Verdict::Applied) => applied += 1,
            Ok(Verdict::Duplicate) => duplicates += 1,
            Err(r) => {
                rejected += 1;
                if errors.len() < ERRORS_LISTED_MAX {
                    errors.push(ReportError {
                        index,
                        reason: r.label(),
                        detail: reject_detail(*r),
                    });
                }
            }
        }
    }
    errors.sort_by_key(|e| e.index);
    Json(IngestResult {
        applied,
        duplicates,
        rejected,
        errors,
    })
    .into_response()
}

fn reject_detail(r: Reject) -> String {
    r.to_string()
}
