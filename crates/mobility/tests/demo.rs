//! The simulated city over the real protocols, with faults: duplicated, reordered and delayed
//! MQTT messages and vehicles dropping offline. Once messages stop, the platform's view of every
//! vehicle must equal the simulator's truth: no stale overwrite, no lost update.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::{io::Write, net::SocketAddr, time::Duration};

use mobility::driver::{Demo, DemoConfig};
use mobility_core::TimestampMs;
use mobility_server::{Application, Settings};
use mobility_sim::{Activity, CityModel, Faults, SimConfig};
use serde_json::Value;

const ADMIN: &str = "test-admin-token";

fn now_ms() -> i64 {
    mobility_server::clock::now().0
}

/// A platform on port 0 with SQLite in a temp directory.
struct TestApp {
    addr: SocketAddr,
    mqtt_addr: Option<SocketAddr>,
    client: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            mqtt_addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            admin_token: Some(ADMIN.to_owned()),
            shutdown_timeout_s: 2,
            ..Settings::default()
        };
        adjust(&mut settings);
        let app = Application::build(settings).await.expect("app builds");
        let (addr, mqtt_addr) = (app.local_addr(), app.mqtt_addr());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            mqtt_addr,
            client: reqwest::Client::new(),
            stop,
            server,
            _dir: dir,
        }
    }

    fn authed(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}{path}", self.addr))
            .bearer_auth(token)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

async fn converges(app: &TestApp, mqtt: String, seed: u64) {
    let mut cfg = SimConfig::new(seed, TimestampMs(now_ms()));
    cfg.vehicles = 60;
    cfg.tick_s = 1;
    cfg.report_idle_s = 3;
    cfg.report_moving_s = 2;
    // Busy enough that trips start and end within seconds of simulated time.
    cfg.demand_per_vehicle_day = 3_000.0;
    cfg.faults = Faults {
        duplicate: 0.2,
        reorder: 0.2,
        offline_per_hour: 40.0,
        offline_mean_s: 15.0,
        gps_jitter_m: 5.0,
    };
    let state_dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(DemoConfig {
        api: format!("http://{}", app.addr),
        mqtt,
        admin_token: ADMIN.to_owned(),
        state_dir: state_dir.path().to_path_buf(),
        sim: cfg,
        city: CityModel::barcelona(),
        speed: 10.0,
    })
    .await
    .expect("the demo city starts");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let sim = demo.stop_clock().await.unwrap();
    let t = sim.totals();
    assert!(
        t.duplicated > 0 && t.reordered > 0 && t.offline_periods > 0,
        "{t:?}"
    );
    assert!(t.served > 0, "no trips: {t:?}");
    assert_eq!(
        demo.status
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut mismatches: Vec<String>;
    loop {
        mismatches = Vec::new();
        for v in sim.vehicles() {
            let truth = v.last_report.as_ref().unwrap();
            let seen: Value = app
                .authed(
                    reqwest::Method::GET,
                    &format!("/v1/vehicles/{}", v.id),
                    ADMIN,
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let want_state = match v.activity {
                Activity::Available => "available",
                Activity::OnTrip => "on_trip",
                Activity::LowBattery => "non_operational",
                Activity::WithStaff => "removed",
            };
            let ok = seen["reported_at_ms"].as_i64() == Some(demo.clock.wall_ts(truth.at.0))
                && (seen["lat"].as_f64().unwrap_or(0.0) - truth.position.lat()).abs() < 1e-6
                && (seen["lon"].as_f64().unwrap_or(0.0) - truth.position.lon()).abs() < 1e-6
                && seen["battery_pct"].as_u64() == truth.battery.map(|b| u64::from(b.get()))
                && seen["locked"].as_bool() == truth.locked
                && seen["state"] == want_state;
            if !ok {
                mismatches.push(format!("{} truth {truth:?} {want_state} seen {seen}", v.id));
            }
        }
        if mismatches.is_empty() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    demo.close().await;
    assert!(
        mismatches.is_empty(),
        "{} vehicles differ from the truth, e.g. {}",
        mismatches.len(),
        mismatches[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_city_converges_to_the_truth_over_the_embedded_broker() {
    // The simulated city runs at 10× with dense demand: more than a person's request rate.
    let app = TestApp::spawn_with(|s| {
        s.rate_limit_per_s = 10_000;
    })
    .await;
    let mqtt = app.mqtt_addr.unwrap().to_string();
    converges(&app, mqtt, 21).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_city_converges_to_the_truth_over_an_external_broker() {
    let Ok(url) = std::env::var("MOBILITY_TEST_MQTT_URL") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: demo over an external MQTT broker (MOBILITY_TEST_MQTT_URL is not set)"
        );
        return;
    };
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let app = TestApp::spawn_with(|s| {
        s.mqtt_url = Some(url.clone());
        s.mqtt_client_id = format!("mobility-test-{unique}");
        s.mqtt_share_group = format!("test-{unique}");
        s.rate_limit_per_s = 10_000;
    })
    .await;
    let mqtt = url
        .trim_start_matches("mqtt://")
        .trim_end_matches('/')
        .to_owned();
    converges(&app, mqtt, 22).await;
    app.stop().await;
}
