//! RFC 9457 problem details (`application/problem+json`).
//!
//! Every error the API returns is a [`Problem`] with a stable `type` (a relative URI under
//! `/problems/`), so clients can branch on `type` rather than on wording.

use axum::{
    http::{HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// The media type of problem responses.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// Stable identifier of the problem kind.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the kind, the same for every occurrence.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong this time, for a human.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl Problem {
    /// A problem of kind `slug` (its `type` becomes `/problems/{slug}`).
    #[must_use]
    pub fn new(status: StatusCode, slug: &str, title: &str) -> Self {
        Self {
            type_uri: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            instance: None,
        }
    }

    /// Adds the occurrence-specific explanation.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds the request path.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

/// Fallback for unknown paths.
pub async fn not_found(uri: Uri) -> Problem {
    metrics::counter!("http_rejections_total", "reason" => "not_found").increment(1);
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
        .with_detail(format!("there is no resource at {}", uri.path()))
        .with_instance(uri.path().to_owned())
}

/// Fallback of a process that serves no API (its roles leave `api` out).
pub fn not_served_here(uri: &Uri, detail: &str) -> Problem {
    metrics::counter!("http_rejections_total", "reason" => "not_found").increment(1);
    Problem::new(StatusCode::NOT_FOUND, "not-served-here", "Not Served Here")
        .with_detail(detail.to_owned())
        .with_instance(uri.path().to_owned())
}

/// Fallback for a known path with the wrong method.
pub async fn method_not_allowed(uri: Uri) -> Problem {
    metrics::counter!("http_rejections_total", "reason" => "method_not_allowed").increment(1);
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method Not Allowed",
    )
    .with_detail(format!("{} does not accept this method", uri.path()))
    .with_instance(uri.path().to_owned())
}

/// Turns a handler panic (a bug) into a 500 problem instead of a dropped connection.
#[allow(clippy::needless_pass_by_value)]
pub fn from_panic(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked; this is a bug");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal Server Error",
    )
    .with_detail("the server hit a bug; it has been logged")
    .into_response()
}
