//! Black-box tests of the `mobility` binary: start-up, endpoints, clean shutdown on SIGTERM,
//! one-line errors for bad input, JSON logs and OpenTelemetry export.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

#[path = "cli/cluster.rs"]
mod cluster;

const BIN: &str = env!("CARGO_BIN_EXE_mobility");

/// A command with a clean environment: no MOBILITY_* leaking in from the developer's shell.
fn mobility(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("MOBILITY_") || k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("MOBILITY_HTTP_ADDR", "127.0.0.1:0");
    cmd.env("MOBILITY_MQTT_ADDR", "127.0.0.1:0");
    cmd
}

/// A running `mobility serve` whose stderr is collected line by line.
struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    addr: SocketAddr,
}

impl Server {
    /// The embedded MQTT broker's address, from its log line.
    fn mqtt_addr(&self) -> Option<String> {
        self.lines.lock().unwrap().iter().find_map(|l| {
            let rest = l.split("MQTT broker listening on mqtt://").nth(1)?;
            Some(
                rest.chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect(),
            )
        })
    }
}

impl Server {
    fn start(cmd: Command) -> Self {
        Self::start_with(cmd, &[])
    }

    /// `mobility serve ARGS…`.
    fn start_with(mut cmd: Command, args: &[&str]) -> Self {
        let mut child = cmd
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mobility");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let addr: String = addr
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("address in log line"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not log its address; stderr: {:?}",
                    lines.lock().unwrap()
                );
            }
        };
        Self { child, lines, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50)); // let the reader drain
                return (status, self.lines.lock().unwrap().clone());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.expect("request");
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

/// Sends a JSON request with a bearer token; returns status and body.
fn call(
    method: &str,
    url: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url);
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    })
}

/// Registers Barcelona and one scooter; returns the vehicle id.
fn register_scooter(server: &Server, admin: &str) -> String {
    let city =
        serde_json::json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"});
    assert_eq!(
        call(
            "PUT",
            &server.url("/v1/admin/cities/barcelona"),
            admin,
            Some(city)
        )
        .0,
        200
    );
    let (status, v) = call(
        "POST",
        &server.url("/v1/admin/vehicles"),
        admin,
        Some(serde_json::json!({"city": "barcelona", "type": "scooter"})),
    );
    assert_eq!(status, 201);
    v["id"].as_str().unwrap().to_owned()
}

fn report(id: &str, ts: i64, lat: f64) -> serde_json::Value {
    serde_json::json!({"vehicle_id": id, "ts": ts, "lat": lat, "lon": 2.17, "battery_pct": 70})
}

/// Asserts the command failed with exactly one line on stderr, starting `error:`, containing `needle`.
fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "expected {needle:?} in: {stderr}"
    );
}

#[test]
fn serve_creates_its_database_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(mobility(dir.path()));
    assert!(
        dir.path().join("data/mobility.db").exists(),
        "SQLite file created in ./data"
    );
    let (status, body) = get(&server.url("/healthz"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&server.url("/readyz"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"sqlite\""), "{body}");
    let (status, body) = get(&server.url("/metrics"));
    assert_eq!(status, 200);
    assert!(body.contains("http_requests_total"), "{body}");
    let (status, lines) = server.terminate();
    assert!(status.success(), "exit status {status:?}; log: {lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("received SIGTERM")),
        "{lines:?}"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("stopped")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("\x1b[")),
        "no colour codes when not on a terminal"
    );
}

#[test]
fn serve_runs_on_postgres_when_configured() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(mobility_store::testsuite::postgres()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = mobility(dir.path());
    cmd.env("MOBILITY_DATABASE_URL", &db.url);
    let server = Server::start(cmd);
    let (status, body) = get(&server.url("/readyz"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"postgres\""), "{body}");
    let (status, _) = server.terminate();
    assert!(status.success());
    assert!(
        !dir.path().join("data/mobility.db").exists(),
        "no SQLite file when on PostgreSQL"
    );
    rt.block_on(db.cleanup());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = mobility(dir.path());
    cmd.arg("--log-json");
    let server = Server::start(cmd);
    let (status, lines) = server.terminate();
    assert!(status.success());
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn port_in_use_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = mobility(dir.path())
        .env("MOBILITY_HTTP_ADDR", &addr)
        .arg("serve")
        .output()
        .unwrap();
    assert_one_line_error(
        &out,
        &format!("cannot listen on {addr}: address already in use"),
    );
}

#[test]
fn unwritable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A path under a regular file can never be a directory, even for root.
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let out = mobility(dir.path())
        .env("MOBILITY_DATA_DIR", "file/data")
        .arg("serve")
        .output()
        .unwrap();
    assert_one_line_error(&out, "data directory file/data is not usable");
}

#[test]
fn unreachable_database_is_a_clear_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = mobility(dir.path())
        .env(
            "MOBILITY_DATABASE_URL",
            "postgres://app:hunter2@127.0.0.1:1/mobility",
        )
        .env("MOBILITY_DATABASE_CONNECT_TIMEOUT_S", "2")
        .arg("serve")
        .output()
        .unwrap();
    assert_one_line_error(
        &out,
        "cannot connect to postgres database postgres://app:***@127.0.0.1:1/mobility",
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
}

#[test]
fn malformed_and_unknown_configuration_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mobility.toml"), "http_addr = [\n").unwrap();
    let out = mobility(dir.path()).arg("serve").output().unwrap();
    assert_one_line_error(&out, "cannot read config file mobility.toml");

    std::fs::write(
        dir.path().join("mobility.toml"),
        "htp_addr = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = mobility(dir.path()).arg("config").output().unwrap();
    assert_one_line_error(
        &out,
        "unknown setting `htp_addr` in config file mobility.toml",
    );

    std::fs::remove_file(dir.path().join("mobility.toml")).unwrap();
    let out = mobility(dir.path())
        .env("MOBILITY_LOGG", "debug")
        .arg("serve")
        .output()
        .unwrap();
    assert_one_line_error(
        &out,
        "unknown setting `logg` in environment variable MOBILITY_LOGG",
    );

    let out = mobility(dir.path())
        .args(["--config", "absent.toml", "serve"])
        .output()
        .unwrap();
    assert_one_line_error(&out, "config file absent.toml does not exist");

    let out = mobility(dir.path())
        .env("MOBILITY_LOG", "info,[[")
        .arg("serve")
        .output()
        .unwrap();
    assert_one_line_error(&out, "setting `log` is not a valid filter");
}

#[test]
fn config_prints_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mobility.toml"), "shutdown_timeout_s = 7\n").unwrap();
    let out = mobility(dir.path())
        .env(
            "MOBILITY_DATABASE_URL",
            "postgres://app:hunter2@db:5432/mobility",
        )
        .arg("config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("shutdown_timeout_s = 7"), "{text}");
    assert!(
        text.contains("database_url = \"postgres://app:***@db:5432/mobility\""),
        "{text}"
    );
    assert!(!text.contains("hunter2"));
}

#[test]
fn migrate_creates_the_schema_and_jobs_and_version_print() {
    let dir = tempfile::tempdir().unwrap();
    let out = mobility(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sqlite database is at schema version 16"
    );
    // No job has run yet: each is listed, free, never run.
    let out = mobility(dir.path()).arg("jobs").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("JOB"), "{table}");
    for job in [
        "command-timeouts",
        "hold-expiry",
        "notification-delivery",
        "intel",
        "fleet-snapshot",
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(job))
            .unwrap_or_else(|| panic!("{job}: {table}"));
        assert!(line.contains("(free)") && line.contains("never"), "{line}");
    }
    let out = mobility(dir.path()).arg("version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("mobility {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A minimal OTLP/HTTP collector: counts protobuf POSTs to /v1/traces.
fn fake_collector(rt: &tokio::runtime::Runtime) -> (SocketAddr, Arc<Mutex<Vec<usize>>>) {
    use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                sink.lock().unwrap().push(body.len());
                ""
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

#[test]
fn traces_are_exported_over_otlp_when_configured() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (collector, received) = fake_collector(&rt);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = mobility(dir.path());
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"));
    let server = Server::start(cmd);
    for _ in 0..3 {
        assert_eq!(get(&server.url("/healthz")).0, 200);
    }
    let (status, lines) = server.terminate();
    assert!(status.success(), "{lines:?}");
    let batches = received.lock().unwrap().clone();
    assert!(
        !batches.is_empty() && batches.iter().all(|n| *n > 0),
        "spans flushed at shutdown: {batches:?}"
    );
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Sends acknowledged telemetry, then kills the process with SIGKILL (no shutdown code runs) and
/// restarts it: every acknowledged report must be back, from the write-ahead log.
fn acknowledged_telemetry_survives(stop: impl FnOnce(Server)) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(mobility(dir.path()));
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let id = register_scooter(&server, &admin);
    let t0 = now_ms();
    let mut last = (0, 0.0);
    for i in 0..50 {
        let lat = 41.38 + f64::from(i) * 0.0001;
        let (status, body) = call(
            "POST",
            &server.url("/v1/ingest/telemetry"),
            &admin,
            Some(serde_json::json!([report(&id, t0 + i64::from(i), lat)])),
        );
        assert_eq!(
            (status, &body["applied"]),
            (200, &serde_json::json!(1)),
            "{body}"
        );
        last = (t0 + i64::from(i), lat);
    }
    stop(server);
    let server = Server::start(mobility(dir.path()));
    let (status, v) = call(
        "GET",
        &server.url(&format!("/v1/vehicles/{id}")),
        &admin,
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["reported_at_ms"], last.0, "{v}");
    assert_eq!(v["lat"], last.1);
    assert_eq!(v["battery_pct"], 70);
    // And it keeps working: a newer report applies, an older one is still stale.
    let (_, body) = call(
        "POST",
        &server.url("/v1/ingest/telemetry"),
        &admin,
        Some(serde_json::json!([
            report(&id, last.0 - 5, 41.0),
            report(&id, last.0 + 1, 41.5)
        ])),
    );
    assert_eq!(
        (body["applied"].as_u64(), body["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{body}"
    );
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn acknowledged_telemetry_survives_kill_9() {
    acknowledged_telemetry_survives(|mut server| {
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
    });
}

#[test]
fn acknowledged_telemetry_survives_a_clean_restart_via_the_snapshot() {
    acknowledged_telemetry_survives(|server| {
        let (status, lines) = server.terminate();
        assert!(status.success());
        assert!(
            lines
                .iter()
                .any(|l| l.contains("final live-state snapshot written")),
            "{lines:?}"
        );
    });
}

#[test]
fn the_mqtt_load_generator_drives_a_running_platform() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(mobility(dir.path()));
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let broker = server.mqtt_addr().expect("broker address logged");
    let out = mobility(dir.path())
        .args([
            "load",
            "mqtt",
            "--api",
            &server.url(""),
            "--broker",
            &broker,
            "--token",
            &admin,
        ])
        .args([
            "--vehicles",
            "5",
            "--duration-s",
            "1",
            "--qos",
            "1",
            "--window",
            "2",
            "--batch",
            "3",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied: f64 = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("reports applied by the platform: ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .expect("applied line");
    assert!(applied >= 15.0, "{stdout}");
    assert!(stdout.contains("publish->PUBACK"), "{stdout}");
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn the_http_load_generator_reports_throughput_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(mobility(dir.path()));
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let out = mobility(dir.path())
        .args(["load", "http", "--api", &server.url(""), "--token", &admin])
        .args(["--connections", "4", "--duration-s", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(" ok (") && stdout.contains("0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("p99 "), "{stdout}");
    // A wrong token: every request fails, and the tool says so.
    let out = mobility(dir.path())
        .args(["load", "http", "--api", &server.url(""), "--token", "wrong"])
        .args(["--connections", "1", "--duration-s", "1"])
        .output()
        .unwrap();
    assert_one_line_error(&out, "no request succeeded");
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn sim_writes_a_report_and_the_same_seed_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &str, seed: &str| {
        let o = mobility(dir.path())
            .args(["sim", "--hours", "6", "--vehicles", "1000", "--seed", seed])
            .args(["--faults", "realistic", "--quiet", "--out", out])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let stdout = run("a", "5");
    assert!(stdout.contains("lost"), "{stdout}");
    run("b", "5");
    run("c", "6");
    let read = |d: &str, f: &str| std::fs::read(dir.path().join(d).join(f)).unwrap();
    for f in [
        "report.json",
        "hourly.csv",
        "districts.csv",
        "truth.json",
        "demand_vs_served.svg",
        "lost_by_zone.svg",
        "battery.svg",
    ] {
        assert!(
            read("a", f) == read("b", f),
            "{f} differs between equal runs"
        );
    }
    assert!(
        read("a", "report.json") != read("c", "report.json"),
        "seeds 5 and 6 agree"
    );
    let report: serde_json::Value = serde_json::from_slice(&read("a", "report.json")).unwrap();
    for key in [
        "trips_served",
        "lost_demand_pct",
        "utilisation_pct",
        "revenue",
        "relocations",
        "battery_swaps",
        "avg_walk_m",
    ] {
        assert!(report.get(key).is_some(), "report.json lacks {key}");
    }
    assert_eq!(report["hourly"].as_array().unwrap().len(), 6);
    // Bad options are one-line errors.
    let o = mobility(dir.path())
        .args(["sim", "--start", "2026-13-01"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "--start");
    let o = mobility(dir.path())
        .args(["sim", "--speed", "fast"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "--speed");
    let o = mobility(dir.path())
        .args(["sim", "--mix", "1,2"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "--mix");
}

#[test]
fn sim_runs_a_city_from_a_file_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = mobility(dir.path())
        .args(["sim", "--print-city"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let mut city: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(city["id"], "barcelona");
    // A smaller town: only the first three hotspots, renamed.
    city["id"] = "petita".into();
    city["name"] = "Petita".into();
    let hotspots: Vec<serde_json::Value> = city["hotspots"].as_array().unwrap()[..3].to_vec();
    city["hotspots"] = hotspots.into();
    std::fs::write(dir.path().join("town.json"), city.to_string()).unwrap();
    let o = mobility(dir.path())
        .args([
            "sim",
            "--city",
            "town.json",
            "--hours",
            "2",
            "--vehicles",
            "200",
        ])
        .args(["--mix", "1,0,0,0", "--quiet", "--out", "town"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("town/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["city"], "petita");
    assert_eq!(report["districts"].as_array().unwrap().len(), 3);
    city["hotspots"][0]["center"] = serde_json::json!({"lat": 10.0, "lon": 10.0});
    std::fs::write(dir.path().join("broken.json"), city.to_string()).unwrap();
    let o = mobility(dir.path())
        .args(["sim", "--city", "broken.json"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "outside the operating area");
}

#[test]
fn demo_shows_a_living_city_within_10_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = mobility(dir.path())
        .args(["demo", "--vehicles", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut api = None;
    let mut living = None;
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if let Some(rest) = line.trim().strip_prefix("API") {
            api = rest.split_whitespace().next().map(str::to_owned);
        }
        let last = line.contains("Ctrl-C");
        seen.push(line);
        if last {
            break;
        }
    }
    let api = api.unwrap_or_else(|| panic!("no API line: {seen:?}"));
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    // Every command and URL the demo prints works as printed: the token it names is the file
    // it says, the query is one the API takes.
    // (Paths are printed as the demo was given them: relative to where it runs.)
    let token_of = |file: &str| {
        std::fs::read_to_string(dir.path().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .trim()
            .to_owned()
    };
    let mut checked = 0;
    for line in &seen {
        if let Some(rest) = line
            .split_once("curl -H \"Authorization: Bearer $(cat ")
            .map(|(_, r)| r)
        {
            let (file, rest) = rest.split_once(")\" '").unwrap();
            let url = rest.trim_end_matches('\'');
            let (code, body) = call("GET", url, &token_of(file), None);
            assert_eq!(code, 200, "{line}: {body}");
            checked += 1;
        } else if let Some(rest) = line.split_once("websocat \"").map(|(_, r)| r) {
            let (url, file) = rest.split_once("$(cat ").unwrap();
            let url = format!("{url}{}", token_of(file.trim_end_matches(")\"")));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let code = rt.block_on(async {
                reqwest::Client::new()
                    .get(url.replacen("ws://", "http://", 1))
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-version", "13")
                    .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            });
            assert_eq!(code, 101, "{line}");
            checked += 1;
        } else if let Some(url) = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") && (w.contains("/gbfs/") || w.ends_with("/metrics")))
        {
            assert_eq!(call("GET", url, "", None).0, 200, "{line}");
            checked += 1;
        }
    }
    assert_eq!(
        checked, 5,
        "nearby, fleet, live map, GBFS and metrics lines: {seen:#?}"
    );
    // Living: the platform knows where the vehicles are, and they move.
    while started.elapsed() < Duration::from_secs(10) {
        let (code, body) = call(
            "GET",
            &format!("{api}/v1/fleet/stats?city=barcelona"),
            &admin,
            None,
        );
        if code == 200 {
            let stats = body;
            let reporting = 300 - stats["battery"]["unknown"].as_u64().unwrap_or(300);
            if reporting >= 250 {
                living = Some(started.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let living = living.unwrap_or_else(|| panic!("no living city within 10 s of start: {seen:?}"));
    eprintln!(
        "demo: 250 of 300 vehicles reporting {:.1} s after start",
        living.as_secs_f64()
    );
    let (code, body) = call(
        "GET",
        &format!("{api}/v1/cities/barcelona/geofences"),
        &admin,
        None,
    );
    assert_eq!(code, 200);
    let body = body.to_string();
    assert!(
        body.contains("slow_zone") && body.contains("no_parking"),
        "{body}"
    );
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "demo exited with {status}");
    let printed: Vec<String> = rx.try_iter().collect();
    assert!(
        printed.iter().chain(&seen).any(|l| l.contains("connected")),
        "no status line: {seen:?} {printed:?}"
    );
}

#[test]
fn the_trips_load_generator_rides_full_trips() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(mobility(dir.path()));
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let broker = server.mqtt_addr().expect("broker address logged");
    let out = mobility(dir.path())
        .args([
            "load",
            "trips",
            "--api",
            &server.url(""),
            "--broker",
            &broker,
        ])
        .args(["--token", &admin, "--riders", "2", "--duration-s", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trips: u64 = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("full trips (reserve → unlock → end): ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .expect("trips line");
    assert!(trips >= 2, "{stdout}");
    assert!(
        stdout.contains("unlock (request → vehicle ack → on trip): p50"),
        "{stdout}"
    );
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn forecast_eval_scores_an_external_csv_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    // Four weeks of hourly demand in two zones with a daily cycle and a temperature column.
    let mut csv = String::from("timestamp,zone,count,temp_c\n");
    let start = 1_780_000_000 / 86_400 * 86_400;
    for k in 0..28 * 24 {
        let t = start + k * 3_600;
        let hour = (k % 24) as f64;
        let temp = 18.0 + (k / 24 % 5) as f64;
        for (z, scale) in [("north", 4.0), ("south", 9.0)] {
            let noise = ((k * 7 + z.len() as i64 * 13) % 5) as f64 - 2.0;
            let count =
                (scale * (1.0 + (hour / 24.0 * std::f64::consts::TAU).sin()) + noise + temp - 18.0)
                    .max(0.0);
            let ts = time_rfc3339(t);
            csv.push_str(&format!("{ts},{z},{},{temp}\n", count.round() as i64));
        }
    }
    std::fs::write(dir.path().join("demand.csv"), csv).unwrap();
    let o = mobility(dir.path())
        .args([
            "forecast",
            "eval",
            "--csv",
            "demand.csv",
            "--iterations",
            "40",
        ])
        .args(["--json", "eval.json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        "2 zones",
        "60 min",
        "model WAPE",
        "naive MAE",
        "city-wide hourly WAPE",
        "temp_c",
    ] {
        assert!(stdout.contains(want), "{want} missing from\n{stdout}");
    }
    let ev: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("eval.json")).unwrap()).unwrap();
    let horizons = ev["horizons"].as_array().unwrap();
    assert_eq!(horizons.len(), 8);
    for h in horizons {
        assert!(h["model_wape"].as_f64().unwrap().is_finite());
        assert!(h["naive_mae"].as_f64().unwrap().is_finite());
    }
    // The last 20 % of 28 days is held out.
    assert_eq!(ev["test_slots"].as_u64(), Some(134));

    std::fs::write(
        dir.path().join("bad.csv"),
        "timestamp,zone,count\n2026-01-01T00:00:00Z,a,1\n2026-01-01T01:00:00Z,a,lots\n",
    )
    .unwrap();
    let o = mobility(dir.path())
        .args(["forecast", "eval", "--csv", "bad.csv"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "line 3");
}

/// RFC 3339 UTC for a Unix time in seconds (the test's own formatter, to check the parser).
fn time_rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

#[test]
fn sim_with_field_operations_reports_staff_work() {
    let dir = tempfile::tempdir().unwrap();
    for policy in ["reactive", "forecast"] {
        let o = mobility(dir.path())
            .args(["sim", "--hours", "12", "--vehicles", "500", "--seed", "3"])
            .args([
                "--ops",
                policy,
                "--history-days",
                "7",
                "--quiet",
                "--out",
                policy,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout.contains("staff"), "{stdout}");
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join(policy).join("report.json")).unwrap(),
        )
        .unwrap();
        let ops = &report["ops"];
        assert_eq!(ops["policy"], policy, "{ops}");
        assert!(ops["staff_km"].as_f64().unwrap() > 0.0, "{ops}");
        if policy == "forecast" {
            assert!(ops["stats"]["plans"].as_u64().unwrap() > 0, "{ops}");
            assert!(ops["stats"]["moves"].as_u64().unwrap() > 0, "{ops}");
            assert_eq!(ops["stats"]["models_promoted"].as_u64(), Some(1), "{ops}");
        } else {
            assert!(ops["stats"]["swaps"].as_u64().unwrap() > 0, "{ops}");
        }
    }
}

#[test]
fn events_commands_tail_and_list_the_bus_beside_the_server_and_replay_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(mobility(dir.path()));
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    register_scooter(&server, admin.trim());
    // The admin change reaches the bus through the outbox; tail reads it beside the server.
    let deadline = Instant::now() + Duration::from_secs(20);
    let tail = loop {
        let out = mobility(dir.path())
            .args(["events", "tail", "admin", "--limit", "10"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        if text.contains("POST /v1/admin/vehicles") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let lines: Vec<serde_json::Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|e| e["event"]["action"] == "PUT /v1/admin/cities/{id}"
                && e["subject"] == "admin._"
                && e["event"]["actor"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("token:"))),
        "{tail}"
    );
    assert!(
        !tail.contains(admin.trim()),
        "the admin token never appears in an event"
    );
    let info = mobility(dir.path())
        .args(["events", "info"])
        .output()
        .unwrap();
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(
        info.contains("lifecycle") && info.contains("consumer geofence-actions"),
        "{info}"
    );
    // Replay moves a cursor, so it needs the embedded log to itself.
    let busy = mobility(dir.path())
        .args([
            "events",
            "replay",
            "--consumer",
            "geofence-actions",
            "--from",
            "1h",
        ])
        .output()
        .unwrap();
    assert_one_line_error(&busy, "another process");
    let (status, _) = server.terminate();
    assert!(status.success());
    let out = mobility(dir.path())
        .args([
            "events",
            "replay",
            "--consumer",
            "geofence-actions",
            "--from",
            "1h",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("geofence-actions"));
    let bad = mobility(dir.path())
        .args(["events", "tail", "nope"])
        .output()
        .unwrap();
    assert_one_line_error(&bad, "is not a stream");
}
