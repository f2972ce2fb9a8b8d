//! `TestApp`: a real `Application` on 127.0.0.1:0 with an isolated store, driven over HTTP.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::{net::SocketAddr, sync::Arc};

use mobility_server::{Application, Settings};
use mobility_store::{Store, testsuite::TestStore};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Polls `probe` every 20 ms until it yields a value; fails the test after 10 s, naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The bootstrap admin token every `TestApp` is configured with.
pub const ADMIN: &str = "test-admin-token";

#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    pub mqtt_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    /// The app's event bus.
    pub bus: Arc<dyn mobility_bus::EventBus>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    test_store: Option<TestStore>,
    _data_dir: tempfile::TempDir,
}

impl TestApp {
    /// Starts an app on the given isolated store (`None` when the backend is skipped).
    pub async fn spawn(test_store: Option<TestStore>) -> Option<Self> {
        Self::spawn_with(test_store, |_| {}).await
    }

    /// Like `spawn`, with a chance to adjust the settings.
    pub async fn spawn_with(
        test_store: Option<TestStore>,
        adjust: impl FnOnce(&mut Settings),
    ) -> Option<Self> {
        let test_store = test_store?;
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.path().to_path_buf(),
            database_url: Some(test_store.url.clone()),
            shutdown_timeout_s: 2,
            admin_token: Some(ADMIN.to_owned()),
            mqtt_addr: "127.0.0.1:0".parse().unwrap(),
            ..Settings::default()
        };
        adjust(&mut settings);
        let app = Application::build(settings).await.expect("app builds");
        let addr = app.local_addr();
        let mqtt_addr = app.mqtt_addr();
        let store = app.store();
        let bus = app.bus();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Some(Self {
            addr,
            mqtt_addr,
            client: reqwest::Client::new(),
            store,
            bus,
            stop: Some(tx),
            server: Some(server),
            test_store: Some(test_store),
            _data_dir: data_dir,
        })
    }

    /// The app's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request with `Authorization: Bearer <token>`.
    pub fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// GET `path` as admin and parse the JSON body.
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        self.authed(reqwest::Method::GET, path, ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Stops the server gracefully and removes the test data.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
        if let Some(t) = self.test_store.take() {
            t.cleanup().await;
        }
    }
}

/// Waits (10 s at most) until a stream of the app's bus holds an event `pick` accepts.
pub async fn on_bus<T>(
    app: &TestApp,
    domain: mobility_core::Domain,
    mut pick: impl FnMut(&mobility_bus::Envelope) -> Option<T>,
) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let all = app
                .bus
                .read(domain, None, mobility_bus::StartAt::First, 10_000)
                .await
                .unwrap();
            if let Some(t) = all.iter().find_map(&mut pick) {
                return t;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the event reached the bus")
}
