//! Black-box HTTP tests of the foundation endpoints, on SQLite and (when configured) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use common::TestApp;
use serde_json::Value;

macro_rules! api_tests {
    ($backend:ident, $make:path, $name:literal) => {
        mod $backend {
            use super::*;

            async fn app() -> Option<TestApp> {
                TestApp::spawn($make().await).await
            }

            #[tokio::test]
            async fn healthz_answers() {
                let Some(app) = app().await else { return };
                let r = app.get("/healthz").await;
                assert_eq!(r.status(), 200);
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["status"], "ok");
                assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
                app.stop().await;
            }

            #[tokio::test]
            async fn readyz_reports_the_store_and_schema() {
                let Some(app) = app().await else { return };
                let r = app.get("/readyz").await;
                assert_eq!(r.status(), 200);
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["status"], "ready");
                assert_eq!(body["store"], $name);
                assert_eq!(body["schema_version"], 16);
                assert_eq!(body["bus"], "embedded");
                app.stop().await;
            }

            #[tokio::test]
            async fn readyz_is_503_problem_when_the_store_is_gone() {
                let Some(app) = app().await else { return };
                app.store.close().await;
                let r = app.get("/readyz").await;
                assert_eq!(r.status(), 503);
                assert_eq!(r.headers()["content-type"], "application/problem+json");
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["type"], "/problems/not-ready");
                assert_eq!(body["status"], 503);
                assert!(
                    body["detail"].as_str().unwrap().contains("unreachable"),
                    "{body}"
                );
                app.stop().await;
            }

            #[tokio::test]
            async fn metrics_expose_requests_by_route() {
                let Some(app) = app().await else { return };
                assert_eq!(app.get("/healthz").await.status(), 200);
                assert_eq!(app.get("/no/such/thing/123").await.status(), 404);
                let r = app.get("/metrics").await;
                assert_eq!(r.status(), 200);
                assert!(
                    r.headers()["content-type"]
                        .to_str()
                        .unwrap()
                        .starts_with("text/plain")
                );
                let text = r.text().await.unwrap();
                assert!(text.contains("mobility_build_info{version="), "{text}");
                assert!(
                    text.contains(
                        r#"http_requests_total{method="GET",route="/healthz",status="200"}"#
                    ),
                    "{text}"
                );
                assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
                assert!(
                    text.contains(r#"http_rejections_total{reason="not_found"}"#),
                    "{text}"
                );
                assert!(
                    !text.contains("/no/such/thing"),
                    "raw paths must not become labels"
                );
                app.stop().await;
            }

            #[tokio::test]
            async fn unknown_paths_and_methods_are_problem_json() {
                let Some(app) = app().await else { return };
                let r = app.get("/v1/nothing").await;
                assert_eq!(r.status(), 404);
                assert_eq!(r.headers()["content-type"], "application/problem+json");
                assert_eq!(r.headers()["x-content-type-options"], "nosniff");
                assert!(r.headers().contains_key("x-request-id"));
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["type"], "/problems/not-found");
                assert_eq!(body["instance"], "/v1/nothing");
                let r = app.client.post(app.url("/healthz")).send().await.unwrap();
                assert_eq!(r.status(), 405);
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["type"], "/problems/method-not-allowed");
                app.stop().await;
            }

            #[tokio::test]
            async fn request_ids_are_propagated() {
                let Some(app) = app().await else { return };
                let r = app
                    .client
                    .get(app.url("/healthz"))
                    .header("x-request-id", "abc-123")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.headers()["x-request-id"], "abc-123");
                app.stop().await;
            }
        }
    };
}

api_tests!(sqlite, mobility_store::testsuite::sqlite, "sqlite");
api_tests!(postgres, mobility_store::testsuite::postgres, "postgres");
