//! The OpenAPI document agrees with the router (every documented operation is routed; other
//! methods on its path are refused with 405), the docs page is served, and schemathesis (when
//! installed: `pip install schemathesis`; `.ci/run` installs it) fuzzes every operation from the
//! document and finds no server error and no answer that breaks its documented schema.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use common::{ADMIN, TestApp};
use mobility_api::openapi::OPS;
use reqwest::Method;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_matches_the_router_and_the_docs_page_is_served() {
    let Some(app) = TestApp::spawn(mobility_store::testsuite::sqlite().await).await else {
        return;
    };
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let methods = ["get", "post", "put", "delete"];
    let mut paths: Vec<&str> = OPS.iter().map(|o| o.path).collect();
    paths.sort_unstable();
    paths.dedup();
    for path in paths {
        let concrete = path.replace(['{', '}'], "");
        for m in methods {
            let documented = OPS.iter().any(|o| o.path == path && o.method == m);
            assert_eq!(
                doc["paths"][path][m].is_object(),
                documented,
                "{m} {path} in the document"
            );
            let r = app
                .authed(
                    Method::from_bytes(m.to_uppercase().as_bytes()).unwrap(),
                    &concrete,
                    ADMIN,
                )
                .send()
                .await
                .unwrap();
            let refused = r.status().as_u16() == 405;
            assert_eq!(
                !refused,
                documented,
                "{m} {path}: documented {documented}, answered {}",
                r.status()
            );
        }
    }
    let page = app.get("/docs").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(page.text().await.unwrap().contains("/docs/docs.js"));
    assert_eq!(app.get("/docs/docs.js").await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let installed = std::process::Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!(
            "SKIPPED schemathesis_finds_no_server_error_and_no_schema_violation: schemathesis is not installed (pip install schemathesis; .ci/run does)"
        );
        return;
    }
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, |s| {
        s.rate_limit_per_s = 100_000;
        s.sign_in_per_min = 100_000;
    })
    .await
    else {
        return;
    };
    let url = app.url("/openapi.json");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("schemathesis")
            .args([
                "run",
                &url,
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--header",
                &format!("Authorization: Bearer {ADMIN}"),
                "--max-examples",
                "10",
                "--seed",
                "1",
                "--exclude-path",
                "/v1/stream/vehicles",
                "--no-color",
            ])
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect();
    eprintln!("{}", summary.join("\n"));
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
    app.stop().await;
}
