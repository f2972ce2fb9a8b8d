//! The operations dashboard and admin console, served by the binary itself: three files
//! compiled in (no build step, no CDN), so a fresh clone with only cargo has it and closed
//! networks can use it. It talks to the same API as everyone else with the signed-in account's
//! token; what it shows is what that account may read. A basemap is optional
//! (`map_tile_url`): without one nothing is fetched from anywhere but this platform.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use serde_json::json;

use super::AppState;

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// The dashboard's configuration and its content security policy.
#[derive(Debug)]
pub struct UiSettings {
    tile_url: Option<String>,
    tile_attribution: Option<String>,
    /// Scripts and styles only from this origin, API calls and the WebSocket only to it; images
    /// also from the tile server when one is configured.
    csp: HeaderValue,
}

/// The origin (`scheme://host[:port]`) of a tile URL template, if it is one.
#[must_use]
pub fn tile_origin(template: &str) -> Option<String> {
    if !["{z}", "{x}", "{y}"].iter().all(|p| template.contains(p)) {
        return None;
    }
    let probe = template
        .replace("{z}", "0")
        .replace("{x}", "0")
        .replace("{y}", "0");
    let url = url::Url::parse(&probe).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .then(|| url.origin().ascii_serialization())
}

impl UiSettings {
    /// Settings with an optional basemap.
    #[must_use]
    pub fn new(tile_url: Option<String>, tile_attribution: Option<String>) -> Self {
        let tiles = tile_url.as_deref().and_then(tile_origin);
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:{}; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            tiles.map(|o| format!(" {o}")).unwrap_or_default()
        );
        Self {
            tile_url: tile_url.filter(|t| tile_origin(t).is_some()),
            tile_attribution,
            csp: HeaderValue::from_str(&csp).unwrap_or_else(|_| {
                HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'")
            }),
        }
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route(
            "/ui/",
            get(|State(s): State<AppState>| async move {
                asset(&s, INDEX, "text/html; charset=utf-8")
            }),
        )
        .route(
            "/ui/app.js",
            get(|State(s): State<AppState>| async move {
                asset(&s, APP_JS, "text/javascript; charset=utf-8")
            }),
        )
        .route(
            "/ui/app.css",
            get(|State(s): State<AppState>| async move {
                asset(&s, APP_CSS, "text/css; charset=utf-8")
            }),
        )
        .route(
            "/ui/config.json",
            get(|State(s): State<AppState>| async move {
                Json(json!({
                    "tile_url": s.ui.tile_url,
                    "tile_attribution": s.ui.tile_attribution,
                }))
            }),
        )
}

fn asset(state: &AppState, body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, state.ui.csp.clone());
    // Revalidate every time: a new binary serves new files at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_templates_give_their_origin_and_the_csp_allows_it() {
        assert_eq!(
            tile_origin("https://tiles.example.com:8443/osm/{z}/{x}/{y}.png").as_deref(),
            Some("https://tiles.example.com:8443")
        );
        assert_eq!(tile_origin("https://tiles.example.com/{z}/{x}.png"), None);
        assert_eq!(tile_origin("ftp://tiles.example.com/{z}/{x}/{y}.png"), None);
        assert_eq!(tile_origin("{z}/{x}/{y}"), None);
        let with = UiSettings::new(Some("https://t.example.com/{z}/{x}/{y}.png".into()), None);
        assert!(
            with.csp
                .to_str()
                .unwrap()
                .contains("img-src 'self' data: https://t.example.com;")
        );
        let without = UiSettings::new(None, None);
        assert!(
            without
                .csp
                .to_str()
                .unwrap()
                .contains("img-src 'self' data:;")
        );
    }
}
