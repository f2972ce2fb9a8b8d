//! Sign-up, sign-in, refresh, sign-out and the caller's own account; admins create staff.

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use mobility_core::Role;
use mobility_store::UserRecord;
use serde::{Deserialize, Serialize};

use super::{
    AppState, Problem,
    admin::store_problem,
    extract::{ApiJson, bad_request},
};
use mobility_services::accounts::{
    RefreshError, Session, check_password, hash_password, parse_email,
};

use crate::auth::{AdminCaller, UserCaller};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/signup", post(signup))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/me", get(me))
        .route("/v1/admin/users", post(create_user).get(list_users))
        .route("/v1/admin/users/{id}/role", axum::routing::put(set_role))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UsersParams {
    after: Option<String>,
    limit: Option<u32>,
}

/// Admins list accounts (oldest first; page with `after` = the last id).
async fn list_users(
    _: AdminCaller,
    State(state): State<AppState>,
    super::extract::ApiQuery(p): super::extract::ApiQuery<UsersParams>,
) -> Response {
    match state
        .store
        .users(p.after.as_deref(), p.limit.unwrap_or(100).clamp(1, 1_000))
        .await
    {
        Ok(users) => Json(users.iter().map(UserDto::from).collect::<Vec<_>>()).into_response(),
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleBody {
    role: String,
}

/// Admins change an account's role (rider, staff, admin). Access tokens already issued keep
/// their role until they expire (at most 15 minutes); refreshing gives the new one.
async fn set_role(
    caller: AdminCaller,
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<RoleBody>,
) -> Response {
    let role = match Role::parse(&body.role) {
        Ok(Role::Gateway) => {
            return bad_request("invalid_field", "gateways use API tokens, not accounts");
        }
        Ok(r) => r,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    // An admin cannot demote themselves: there must always be someone to undo it.
    if role != Role::Admin
        && crate::auth::bearer_token(&headers)
            .and_then(|t| state.auth.accounts().verify(t))
            .is_some_and(|(me, _)| me == id)
    {
        return Problem::new(StatusCode::CONFLICT, "own-role", "Conflict")
            .with_detail("you cannot change your own role")
            .into_response();
    }
    let _ = caller;
    match state.store.set_user_role(&id, role).await {
        Ok(true) => match state.store.user(&id).await {
            Ok(Some(u)) => Json(UserDto::from(&u)).into_response(),
            Ok(None) => StatusCode::NOT_FOUND.into_response(),
            Err(e) => store_problem(&e),
        },
        Ok(false) => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
            .with_detail(format!("no account {id}"))
            .into_response(),
        Err(e) => store_problem(&e),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    email: String,
    password: String,
    role: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshBody {
    refresh_token: String,
}

#[derive(Debug, Serialize)]
struct UserDto {
    id: String,
    email: String,
    role: &'static str,
    created_at_ms: i64,
}

impl From<&UserRecord> for UserDto {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            role: u.role.as_str(),
            created_at_ms: u.created_at.0,
        }
    }
}

#[derive(Debug, Serialize)]
struct Signed {
    user: UserDto,
    #[serde(flatten)]
    session: Session,
}

fn unauthorized(detail: &str) -> Response {
    metrics::counter!("http_rejections_total", "reason" => "unauthorized").increment(1);
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
        .with_detail(detail)
        .into_response()
}

async fn create(
    state: &AppState,
    email: &str,
    password: &str,
    role: Role,
) -> Result<UserRecord, Response> {
    let email = parse_email(email).map_err(|e| bad_request("invalid_field", e))?;
    check_password(password).map_err(|e| bad_request("invalid_field", e))?;
    let password_hash = hash_password(password.to_owned()).await.map_err(|e| {
        tracing::error!(error = %e, "cannot hash a password");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error",
        )
        .into_response()
    })?;
    let user = UserRecord {
        id: uuid::Uuid::now_v7().to_string(),
        email,
        password_hash,
        role,
        created_at: state.now(),
    };
    state
        .store
        .insert_user(&user)
        .await
        .map_err(|e| store_problem(&e))?;
    tracing::info!(user_id = %user.id, role = role.as_str(), "account created");
    Ok(user)
}

/// Riders create their own account and are signed in.
async fn signup(State(state): State<AppState>, ApiJson(body): ApiJson<Credentials>) -> Response {
    let user = match create(&state, &body.email, &body.password, Role::Rider).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match state
        .auth
        .accounts()
        .start_session(&user, state.now())
        .await
    {
        Ok(session) => (
            StatusCode::CREATED,
            Json(Signed {
                user: UserDto::from(&user),
                session,
            }),
        )
            .into_response(),
        Err(e) => store_problem(&e),
    }
}

async fn login(State(state): State<AppState>, ApiJson(body): ApiJson<Credentials>) -> Response {
    // The same answer for an unknown e-mail and a wrong password.
    let email = parse_email(&body.email).unwrap_or_default();
    let accounts = state.auth.accounts();
    match accounts.authenticate(&email, &body.password).await {
        Ok(Some(user)) => match accounts.start_session(&user, state.now()).await {
            Ok(session) => Json(Signed {
                user: UserDto::from(&user),
                session,
            })
            .into_response(),
            Err(e) => store_problem(&e),
        },
        Ok(None) => unauthorized("wrong e-mail or password"),
        Err(e) => store_problem(&e),
    }
}

async fn refresh(State(state): State<AppState>, ApiJson(body): ApiJson<RefreshBody>) -> Response {
    match state
        .auth
        .accounts()
        .refresh(&body.refresh_token, state.now())
        .await
    {
        Ok(session) => Json(session).into_response(),
        Err(RefreshError::Store(e)) => store_problem(&e),
        Err(e) => unauthorized(&e.to_string()),
    }
}

async fn logout(State(state): State<AppState>, ApiJson(body): ApiJson<RefreshBody>) -> Response {
    match state
        .auth
        .accounts()
        .logout(&body.refresh_token, state.now())
        .await
    {
        // Unknown tokens too: logging out twice is not an error worth telling a client about.
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => store_problem(&e),
    }
}

async fn me(caller: UserCaller, State(state): State<AppState>) -> Response {
    match state.store.user(&caller.user_id).await {
        Ok(Some(u)) => Json(UserDto::from(&u)).into_response(),
        Ok(None) => unauthorized("this account no longer exists"),
        Err(e) => store_problem(&e),
    }
}

/// Admins create staff, admin (and rider) accounts.
async fn create_user(
    _: AdminCaller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewUser>,
) -> Response {
    let role = match Role::parse(&body.role) {
        Ok(Role::Gateway) => {
            return bad_request("invalid_field", "gateways use API tokens, not accounts");
        }
        Ok(r) => r,
        Err(e) => return bad_request("invalid_field", e.to_string()),
    };
    match create(&state, &body.email, &body.password, role).await {
        Ok(u) => (StatusCode::CREATED, Json(UserDto::from(&u))).into_response(),
        Err(r) => r,
    }
}
