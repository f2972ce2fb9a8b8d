//! Scheduled jobs run once across processes that share a database: one holds each job's
//! lease and runs it, the others wait; when the holder stops, another takes the jobs over.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use std::time::Duration;

use common::{ADMIN, TestApp};
use mobility_store::testsuite::TestStore;
use reqwest::Method;
use serde_json::Value;

async fn jobs(app: &TestApp) -> Vec<Value> {
    let r = app
        .authed(Method::GET, "/v1/admin/jobs", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["jobs"].as_array().unwrap().clone()
}

fn field<'a>(job: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(job, |v, k| &v[*k])
}

const FAST: [&str; 3] = ["command-timeouts", "hold-expiry", "notification-delivery"];

/// Waits until `check` holds for the jobs as `app` reports them.
async fn until(app: &TestApp, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let js = jobs(app).await;
        if check(&js) {
            return js;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {js:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scenario(shared: TestStore, fresh: impl AsyncFn() -> Option<TestStore>) {
    let url = shared.url.clone();
    let first = TestApp::spawn_with(fresh().await, |s| s.database_url = Some(url.clone()))
        .await
        .unwrap();
    // The first process takes every job and runs the fast ones.
    let js = until(&first, "the first process runs the jobs", |js| {
        FAST.iter().all(|name| {
            js.iter().any(|j| {
                j["name"] == *name
                    && !j["lease"].is_null()
                    && field(j, &["runs"]).as_i64() > Some(0)
            })
        })
    })
    .await;
    let holder = field(&js[0], &["lease", "holder"])
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        js.iter()
            .all(|j| field(j, &["lease", "holder"]) == holder.as_str()),
        "{js:#?}"
    );
    assert_eq!(js.len(), 5, "every job is listed: {js:#?}");
    assert!(js.iter().all(|j| j["every_ms"].as_i64() > Some(0)));

    // A second process on the same database runs none of them while the first holds them.
    let second = TestApp::spawn_with(fresh().await, |s| s.database_url = Some(url.clone()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let js = jobs(&second).await;
    for j in &js {
        assert_eq!(field(j, &["lease", "holder"]), holder.as_str(), "{j:#}");
        assert_eq!(field(j, &["last_run", "holder"]), holder.as_str(), "{j:#}");
    }

    // The first stops (giving its leases up): the second takes the fast jobs over at once.
    first.stop().await;
    let js = until(&second, "the second process takes over", |js| {
        FAST.iter().all(|name| {
            js.iter().any(|j| {
                j["name"] == *name
                    && !field(j, &["lease", "holder"]).is_null()
                    && field(j, &["lease", "holder"]) != holder.as_str()
                    && field(j, &["last_run", "holder"]) == field(j, &["lease", "holder"])
            })
        })
    })
    .await;
    assert!(js.iter().all(|j| j["last_error"].is_null()), "{js:#?}");
    second.stop().await;
    shared.cleanup().await;
}

#[tokio::test]
async fn jobs_run_once_across_processes_and_pass_on_when_one_stops() {
    let fresh = mobility_store::testsuite::sqlite;
    scenario(fresh().await.unwrap(), fresh).await;
    if let Some(pg) = mobility_store::testsuite::postgres().await {
        scenario(pg, mobility_store::testsuite::postgres).await;
    }
}
