//! The admin trail: every change made by a staff, admin or gateway credential (a successful
//! request that is not a read) becomes an `admin.changed` event: who (the account, or the API
//! token by a prefix of its digest, never the secret), what (method and route), to what (the
//! path), when. It goes through the store's outbox to the bus's `admin` stream, kept a year.
//!
//! Written after the handler's change committed, in a statement of its own: a crash between the
//! two loses the record of that change (counted as `audit_unrecorded_total` when the write
//! fails). Riders' own changes (bookings, payments) are their own domain events; telemetry
//! ingest and sign-in are not admin changes.

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use mobility_core::{DomainEvent, NewEvent, Role};

use super::AppState;

/// Paths whose writes are not admin changes (high-volume ingest, credentials).
const NOT_AUDITED: [&str; 3] = ["/v1/ingest/", "/v1/auth/", "/v1/vehicles/events"];

/// Records successful changes by privileged callers.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_owned();
    if NOT_AUDITED.iter().any(|p| path.starts_with(p)) {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |m| m.as_str().to_owned());
    let token = crate::auth::bearer_token(req.headers()).map(str::to_owned);
    let response = next.run(req).await;
    if !response.status().is_success() {
        return response;
    }
    let Some(token) = token else {
        return response;
    };
    let (role, actor) = if token.bytes().filter(|b| *b == b'.').count() == 2 {
        match state.auth.user_of(&token).await {
            Some((id, role)) => (role, format!("user:{id}")),
            None => return response,
        }
    } else {
        match state.auth.role_of(&token).await {
            Some(role) => (
                role,
                format!(
                    "token:{}",
                    &mobility_services::accounts::sha256_hex(&token)[..12]
                ),
            ),
            None => return response,
        }
    };
    if role == Role::Rider {
        return response;
    }
    let now = state.now();
    let event = NewEvent::new(
        uuid::Uuid::now_v7(),
        None,
        now,
        DomainEvent::AdminChanged {
            actor,
            action: format!("{method} {route}"),
            target: path,
            at: now,
        },
    );
    if let Err(e) = state.store.record_event(&event).await {
        metrics::counter!("audit_unrecorded_total").increment(1);
        tracing::error!(error = %e, "cannot record an admin change in the audit trail");
    }
    response
}
