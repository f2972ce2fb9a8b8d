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

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Body {
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
    if !matches!(channel.as_str(), "webhook" | "email" | "push") {
        return bad_request(
            "invalid_field",
            format!("{channel:?}: the channels are webhook, email and push"),
        );
    }
    if body.enabled && !state.notifier.offers(&channel) {
        return bad_request(
            "invalid_field",
            format!("{channel}: this platform has no {channel} provider configured"),
        );
    }
    let mut address = body
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    // E-mail goes to the account's address unless another is given.
    if channel == "email" && address.is_none() && body.enabled {
        address = match state.store.user(&caller.user_id).await {
            Ok(u) => u.map(|u| u.email),
            Err(e) => return store_problem(&e),
        };
    }
    match (address.as_deref(), channel.as_str()) {
        (Some(a), "webhook") => match url::Url::parse(a) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && a.len() <= 2_000 => {}
            _ => return bad_request("invalid_field", "address must be an http(s) URL"),
        },
        (Some(a), "email") => {
            if mobility_services::accounts::parse_email(a).is_err() {
                return bad_request("invalid_field", "address must be an e-mail address");
            }
        }
        (Some(a), _) => {
            if a.len() > 4_096 || a.chars().any(char::is_control) {
                return bad_request(
                    "invalid_field",
                    "address must be a device token (at most 4 KiB)",
                );
            }
        }
        (None, _) if body.enabled => {
            return bad_request(
                "invalid_field",
                format!("an enabled {channel} needs an address"),
            );
        }
        (None, _) => {}
    }
    let pref = NotificationPreference {
        channel: channel.clone(),
        enabled: body.enabled,
        address,
    };
    if let Err(e) = state
        .store
        .set_notification_preference(&caller.user_id, &pref)
        .await
    {
        return store_problem(&e);
    }
    let signing_key =
        (channel == "webhook").then(|| state.notifier.webhook().key_for(&caller.user_id));
    Json(PrefDto {
        channel,
        enabled: pref.enabled,
        address: pref.address,
        signing_key,
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
