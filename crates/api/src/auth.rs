//! Authentication and least privilege for the HTTP API.
//!
//! Callers present `Authorization: Bearer <token>`; `mobility_services::accounts::Auth` says
//! which role it grants. Handlers take an extractor naming the role they need
//! ([`AdminCaller`], [`StaffCaller`], [`GatewayCaller`]): a missing or unknown token is 401, a
//! valid token of another role is 403.

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use mobility_core::Role;

use crate::{AppState, Problem};

/// The token of an `Authorization: Bearer <token>` header (trimmed, non-empty, at most 4 KiB).
#[must_use]
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 4_096)
}

fn unauthorized(detail: &str) -> Response {
    metrics::counter!("http_rejections_total", "reason" => "unauthorized").increment(1);
    let mut r = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
        .with_detail(detail)
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

fn forbidden(role: Role, needed: Role) -> Response {
    metrics::counter!("http_rejections_total", "reason" => "forbidden").increment(1);
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
        .with_detail(format!(
            "a {role} token cannot do this; it needs the {needed} role"
        ))
        .into_response()
}

async fn authorize(parts: &Parts, state: &AppState, needed: Role) -> Result<Role, Response> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 2_048)
        .ok_or_else(|| unauthorized("the Authorization header must be: Bearer <token>"))?;
    let role = state
        .auth
        .role_of(token)
        .await
        .ok_or_else(|| unauthorized("the token is unknown or revoked"))?;
    if role.includes(needed) {
        Ok(role)
    } else {
        Err(forbidden(role, needed))
    }
}

macro_rules! caller {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name(pub Role);

        impl FromRequestParts<AppState> for $name {
            type Rejection = Response;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                authorize(parts, state, $role).await.map(Self)
            }
        }
    };
}

caller!(
    /// A caller with the admin role.
    AdminCaller, Role::Admin
);
caller!(
    /// A caller with the staff role (or admin).
    StaffCaller, Role::Staff
);
caller!(
    /// A caller with the gateway role (or admin).
    GatewayCaller, Role::Gateway
);
caller!(
    /// A caller with the rider role (or staff, or admin).
    RiderCaller, Role::Rider
);

/// A signed-in account (an access token, not an API token): who it is and its role.
#[derive(Debug, Clone)]
pub struct UserCaller {
    /// The user id.
    pub user_id: String,
    /// The account's role.
    pub role: Role,
}

impl FromRequestParts<AppState> for UserCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| unauthorized("send Authorization: Bearer <access token>"))?;
        let (user_id, role) = state.auth.user_of(token).await.ok_or_else(|| {
            unauthorized("sign in: this needs an account's access token, valid and unexpired")
        })?;
        Ok(Self { user_id, role })
    }
}
