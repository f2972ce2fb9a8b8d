//! Request extractors whose rejections are RFC 9457 problems (axum's own are plain text), and
//! are counted in `http_rejections_total`.

use axum::{
    extract::{
        FromRequest, FromRequestParts, Request, rejection::JsonRejection, rejection::QueryRejection,
    },
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;

use super::Problem;

/// A 400 problem for input that does not parse; counted by `reason`.
pub fn bad_request(reason: &'static str, detail: impl Into<String>) -> Response {
    metrics::counter!("http_rejections_total", "reason" => reason).increment(1);
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-request",
        "Invalid Request",
    )
    .with_detail(detail)
    .into_response()
}

/// JSON body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(e) => Err(match e {
                JsonRejection::MissingJsonContentType(_) => {
                    metrics::counter!("http_rejections_total", "reason" => "unsupported_media_type")
                        .increment(1);
                    Problem::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported-media-type",
                        "Unsupported Media Type",
                    )
                    .with_detail("send the body as JSON with Content-Type: application/json")
                    .into_response()
                }
                JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    metrics::counter!("http_rejections_total", "reason" => "too_large")
                        .increment(1);
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too-large",
                        "Payload Too Large",
                    )
                    .with_detail(b.body_text())
                    .into_response()
                }
                other => bad_request("invalid_json", other.body_text()),
            }),
        }
    }
}

/// Query string.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| bad_request("invalid_query", e.body_text()))
    }
}

/// The `Idempotency-Key` header a money-moving request must carry (1 to 200 characters):
/// the same key never moves money twice.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 200)
            .map(|k| Self(k.to_owned()))
            .ok_or_else(|| {
                bad_request(
                    "missing_header",
                    "send an Idempotency-Key header (1 to 200 characters)",
                )
            })
    }
}
