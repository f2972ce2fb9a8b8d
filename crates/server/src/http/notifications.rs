//! A rider's notification channels.

use axum::{
    Json, Router,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use mobility_store::NotificationPreference;
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    admin::store_problem,
    extract::{ApiJson, bad_request},
};
use crate::auth::UserCaller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/notifications", get(list))
        .route("/v1/me/notifications/{channel}", put(set))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    enabled: bool,
    address: Option<String>,
}

#[derive(Debug, Serialize)]
struct PrefDto {
    channel: String,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    /// Webhooks: the key of `X-Mobility-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_key: Option<String>,
}

async fn set(
    caller: UserCaller,
    State(state): State<AppState>,
    Path(channel): Path<String>,
    ApiJson(body): ApiJson<Body>,
) -> Response {
    if channel != "webhook" {
        return bad_request(
            "invalid_field",
            format!(
                "{channel:?}: only webhook is available (e-mail and push need their providers configured)"
            ),
        );
    }
    let address = body
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    match address {
        Some(a) => match url::Url::parse(a) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && a.len() <= 2_000 => {}
            _ => return bad_request("invalid_field", "address must be an http(s) URL"),
        },
        None if body.enabled => {
            return bad_request("invalid_field", "an enabled webhook needs an address");
        }
        None => {}
    }
    let pref = NotificationPreference {
        channel: channel.clone(),
        enabled: body.enabled,
        address: address.map(str::to_owned),
    };
    if let Err(e) = state
        .store
        .set_notification_preference(&caller.user_id, &pref)
        .await
    {
        return store_problem(&e);
    }
    Json(PrefDto {
        channel,
        enabled: pref.enabled,
        address: pref.address,
        signing_key: Some(state.notifier.webhook().key_for(&caller.user_id)),
    })
    .into_response()
}

async fn list(caller: UserCaller, State(state): State<AppState>) -> Response {
    match state.store.notification_preferences(&caller.user_id).await {
        Ok(prefs) => Json(
            prefs
                .into_iter()
                .map(|p| PrefDto {
                    channel: p.channel,
                    enabled: p.enabled,
                    address: p.address,
                    signing_key: None,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => store_problem(&e),
    }
}
