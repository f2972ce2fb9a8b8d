//! `GET /v1/admin/jobs`: the scheduled jobs (each run by one process at a time under a lease
//! in the store): who holds each, when it last ran, how long it took, its last error, and when
//! it runs next.

use axum::{
    Json, Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use super::{AppState, admin::store_problem};
use crate::auth::AdminCaller;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/admin/jobs", get(list))
}

async fn list(_: AdminCaller, State(state): State<AppState>) -> Response {
    let statuses = match state.store.job_statuses().await {
        Ok(s) => s,
        Err(e) => return store_problem(&e),
    };
    let now = state.now();
    let mut out: Vec<Value> = Vec::new();
    // The jobs this version runs, in their order, then any other the store knows of (a job an
    // older or newer version runs).
    let known: Vec<&str> = state.jobs.iter().map(|(n, _)| *n).collect();
    let mut names: Vec<&str> = known.clone();
    names.extend(
        statuses
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| !known.contains(n)),
    );
    for name in names {
        let every = state.jobs.iter().find(|(n, _)| *n == name).map(|(_, e)| *e);
        let status = statuses.iter().find(|s| s.name == name);
        let lease = status
            .and_then(|s| s.lease.as_ref())
            .filter(|(_, until)| until.0 > now.0);
        let last = status.and_then(|s| s.last_run.as_ref());
        let every_ms = every.map(|e| i64::try_from(e.as_millis()).unwrap_or(i64::MAX));
        out.push(json!({
            "name": name,
            "every_ms": every_ms,
            "lease": lease.map(|(holder, until)| json!({"holder": holder, "until_ms": until.0})),
            "last_run": last.map(|r| json!({
                "started_at_ms": r.started_at.0,
                "duration_ms": r.duration_ms,
                "holder": r.holder,
                "error": r.error,
            })),
            "next_run_ms": last.zip(every_ms).map(|(r, e)| r.started_at.0.saturating_add(e)),
            "runs": status.map_or(0, |s| s.runs),
            "failures": status.map_or(0, |s| s.failures),
            "last_error": status.and_then(|s| s.last_error.as_ref()).map(|(e, at)| json!({"error": e, "at_ms": at.0})),
        }));
    }
    Json(json!({ "jobs": out })).into_response()
}
