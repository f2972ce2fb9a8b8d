//! Rate limits (429 with `Retry-After`): per account or API token for riders and staff, per
//! client address for sign-in and sign-up (slowing password guessing) and for anonymous calls.
//! Admin and gateway credentials are trusted services and are not limited; health and metrics
//! never are.

use std::{net::SocketAddr, num::NonZeroU32, sync::Arc};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use mobility_core::Role;

use super::{AppState, Problem};
use mobility_services::accounts::sha256_hex;

/// The three limiters.
pub struct Limits {
    accounts: DefaultKeyedRateLimiter<String>,
    sign_in: DefaultKeyedRateLimiter<String>,
    anonymous: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    /// Limits: `per_s` requests a second per rider or staff credential (bursts of twice that),
    /// `sign_in_per_min` sign-in and sign-up attempts a minute per address (bursts of a third),
    /// and ten times `per_s` for anonymous calls per address.
    #[must_use]
    pub fn new(per_s: u32, sign_in_per_min: u32) -> Self {
        Self {
            accounts: RateLimiter::keyed(Quota::per_second(nz(per_s)).allow_burst(nz(per_s * 2))),
            sign_in: RateLimiter::keyed(
                Quota::per_minute(nz(sign_in_per_min)).allow_burst(nz(sign_in_per_min / 3)),
            ),
            anonymous: RateLimiter::keyed(
                Quota::per_second(nz(per_s * 10)).allow_burst(nz(per_s * 20)),
            ),
        }
    }

    /// Forgets idle keys (call now and then).
    pub fn housekeeping(&self) {
        for l in [&self.accounts, &self.sign_in, &self.anonymous] {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn too_many(wait_s: u64, what: &str) -> Response {
    metrics::counter!("http_rejections_total", "reason" => "rate-limited").increment(1);
    let mut r = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too Many Requests",
    )
    .with_detail(format!("too many requests {what}; retry in {wait_s} s"))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&wait_s.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// `None` when the request may go ahead, else the limited request's 429.
fn check(
    limiter: &DefaultKeyedRateLimiter<String>,
    key: String,
    what: &str,
) -> Option<Box<Response>> {
    limiter.check_key(&key).err().map(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Box::new(too_many(
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            what,
        ))
    })
}

/// The middleware.
pub(super) async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    let limits: &Arc<Limits> = &state.limits;
    // Built only where a limit is keyed by address: most calls carry a token.
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let address = || ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    if path.starts_with("/v1/auth/") {
        if let Some(r) = check(&limits.sign_in, address(), "to sign in from this address") {
            return *r;
        }
        return next.run(req).await;
    }
    let bearer = crate::auth::bearer_token(req.headers()).map(str::to_owned);
    let verdict = match bearer {
        None => check(&limits.anonymous, address(), "from this address"),
        Some(token) => match state.auth.accounts().verify(&token) {
            Some((_, Role::Admin | Role::Gateway)) => None,
            Some((user, _)) => check(&limits.accounts, format!("user:{user}"), "for this account"),
            None => match state.auth.role_of(&token).await {
                Some(Role::Admin | Role::Gateway) => None,
                Some(_) => check(
                    &limits.accounts,
                    format!("token:{}", sha256_hex(&token)),
                    "for this account",
                ),
                // Unknown tokens are refused by the handler; limit them by address.
                None => check(&limits.anonymous, address(), "from this address"),
            },
        },
    };
    match verdict {
        None => next.run(req).await,
        Some(r) => *r,
    }
}
