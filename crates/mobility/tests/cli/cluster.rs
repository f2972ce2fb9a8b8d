//! The platform split over processes by role, as `deploy/compose` runs it: two `api`, one
//! `ingest` and three `worker` processes of the real binary on one PostgreSQL, one NATS
//! JetStream and one Mosquitto. Runs when `MOBILITY_TEST_POSTGRES_URL`, `MOBILITY_TEST_NATS_URL`
//! and `MOBILITY_TEST_MQTT_URL` are all set.
//!
//! What it shows: a vehicle reporting through the broker is found by nearby on both api
//! processes; a rider books through one and unlocks through the other (the vehicle's ack
//! reaches the ingest process); each scheduled job runs in one worker at a time and another
//! takes over when that one is killed; `kill -9` of the ingest process in the middle of a
//! stream of acknowledged reports loses none of them (a fresh process on the same data
//! directory and MQTT session takes over); processes without the api role serve health only.

use super::{Server, call, get, mobility, now_ms};

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

/// Everything the processes share, as environment variables.
struct Shared {
    env: Vec<(&'static str, String)>,
    unique: String,
    admin: String,
}

impl Shared {
    /// A process with `roles`, in its own data directory, with its own MQTT client id.
    fn command(&self, dir: &Path, name: &str) -> Command {
        let mut cmd = mobility(dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.env(
            "MOBILITY_MQTT_CLIENT_ID",
            format!("test-{name}-{}", self.unique),
        );
        cmd
    }

    fn start(&self, dir: &Path, name: &str, roles: &str) -> Server {
        let mut cmd = self.command(dir, name);
        cmd.env("MOBILITY_ROLES", roles);
        Server::start(cmd)
    }
}

/// `job_runs_total` of each job in a process's `/metrics` (both outcomes).
fn job_runs(server: &Server) -> BTreeMap<String, u64> {
    let (status, text) = get(&server.url("/metrics"));
    assert_eq!(status, 200);
    let mut runs = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("job_runs_total{")) {
        let Some(job) = line
            .split("job=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        let n: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        {
            *runs.entry(job.to_owned()).or_insert(0) += n as u64;
        }
    }
    runs
}

/// How many runs of `job` each worker added between two readings.
fn added(before: &[BTreeMap<String, u64>], after: &[BTreeMap<String, u64>], job: &str) -> Vec<u64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            a.get(job)
                .copied()
                .unwrap_or(0)
                .saturating_sub(b.get(job).copied().unwrap_or(0))
        })
        .collect()
}

/// A vehicle at the broker that acknowledges every command it is sent.
async fn acking_vehicle(host: &str, port: u16, id: &str) -> AsyncClient {
    let mut o = MqttOptions::new(id, host, port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    let commands = format!("v1/vehicles/{id}/commands");
    let acks = format!("v1/vehicles/{id}/commands/ack");
    client.subscribe(&commands, QoS::AtLeastOnce).await.unwrap();
    let responder = client.clone();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(t) = ready_tx.take() {
                        let _ = t.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) if p.topic == commands => {
                    let cmd: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                    let ack = json!({"id": cmd["id"], "status": "ok"});
                    let _ = responder
                        .publish(&acks, QoS::AtLeastOnce, false, ack.to_string())
                        .await;
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .unwrap()
        .unwrap();
    client
}

/// Publishes one report per vehicle at QoS 1, one at a time, each acknowledged by the broker
/// before the next; returns the timestamp each acknowledged report carried. `progress` counts
/// the acknowledged ones.
async fn stream_reports(
    host: String,
    port: u16,
    client_id: String,
    vehicles: Vec<(String, f64, f64)>,
    progress: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<(String, i64)> {
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    let (acked_tx, mut acked) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::PubAck(a)) = ev {
                let _ = acked_tx.send(a.pkid);
            }
        }
    });
    let mut sent = Vec::new();
    for (id, lat, lon) in vehicles {
        let ts = now_ms();
        let body = json!({"ts": ts, "lat": lat, "lon": lon, "battery_pct": 77});
        client
            .publish(
                format!("v1/vehicles/{id}/telemetry"),
                QoS::AtLeastOnce,
                false,
                body.to_string(),
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), acked.recv())
            .await
            .expect("the broker acknowledges a report")
            .unwrap();
        sent.push((id, ts));
        progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // A stream, not a burst: the kill lands in the middle of it.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = client.disconnect().await;
    sent
}

/// Waits until `server` has every (vehicle, timestamp) as the vehicle's latest report; returns
/// those it still lacks after `within`.
fn missing_after(
    server: &Server,
    admin: &str,
    want: &[(String, i64)],
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut left: Vec<&(String, i64)> = want.iter().collect();
    loop {
        left.retain(|(id, ts)| {
            let (status, v) = call(
                "GET",
                &server.url(&format!("/v1/vehicles/{id}")),
                admin,
                None,
            );
            !(status == 200 && v["reported_at_ms"] == json!(ts))
        });
        if left.is_empty() || Instant::now() > deadline {
            return left.iter().map(|(id, _)| id.clone()).collect();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn nearby_has(server: &Server, admin: &str, id: &str, lat: f64, lon: f64, state: &str) -> bool {
    let (_, body) = call(
        "GET",
        &server.url(&format!(
            "/v1/vehicles/nearby?lat={lat}&lon={lon}&radius_m=300&state={state}"
        )),
        admin,
        None,
    );
    body["vehicles"]
        .as_array()
        .is_some_and(|vs| vs.iter().any(|v| v["id"] == id))
}

/// Polls until `server`'s nearby lists `id`; returns how long it took.
fn found_within(
    server: &Server,
    admin: &str,
    id: &str,
    lat: f64,
    lon: f64,
    state: &str,
) -> Duration {
    let started = Instant::now();
    while !nearby_has(server, admin, id, lat, lon, state) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{id} not found near {lat},{lon} (state {state}) at {}",
            server.addr
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

#[test]
#[allow(clippy::too_many_lines)] // One scenario, told in order.
fn roles_split_the_platform_over_processes_and_survive_kill_9() {
    let (Ok(nats), Ok(mqtt)) = (
        std::env::var("MOBILITY_TEST_NATS_URL"),
        std::env::var("MOBILITY_TEST_MQTT_URL"),
    ) else {
        eprintln!(
            "SKIPPED: processes by role (needs MOBILITY_TEST_POSTGRES_URL, MOBILITY_TEST_NATS_URL and MOBILITY_TEST_MQTT_URL)"
        );
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(mobility_store::testsuite::postgres()) else {
        return;
    };
    let authority = mqtt
        .trim_start_matches("mqtt://")
        .trim_start_matches("tcp://")
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap()),
        None => (authority.clone(), 1883),
    };
    let unique = uuid::Uuid::now_v7().simple().to_string();
    // `t` and a v7 UUID, as the bus suite names its prefixes: a run that panics leaves streams
    // the next run of that suite sweeps once they are an hour old.
    let prefix = format!("t{unique}");
    let admin = format!("admin-{unique}");
    let shared = Shared {
        env: vec![
            ("MOBILITY_DATABASE_URL", db.url.clone()),
            ("MOBILITY_BUS_URL", nats.clone()),
            ("MOBILITY_BUS_PREFIX", prefix.clone()),
            // JetStream reserves each stream's most bytes: keep the tests' small.
            ("MOBILITY_BUS_STREAM_MAX_MIB", "8".into()),
            ("MOBILITY_MQTT_URL", mqtt.clone()),
            ("MOBILITY_MQTT_SHARE_GROUP", format!("test-{unique}")),
            ("MOBILITY_ADMIN_TOKEN", admin.clone()),
            ("MOBILITY_JWT_SECRET", format!("jwt-{unique}")),
            ("MOBILITY_RATE_LIMIT_PER_S", "10000".into()),
            // Snapshots every second: the kill below lands among them.
            ("MOBILITY_LIVE_SNAPSHOT_INTERVAL_S", "1".into()),
        ],
        unique: unique.clone(),
        admin: admin.clone(),
    };
    let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    // The ingest process is started by flag, the others by setting: both ways work.
    let ingest_cmd = || {
        let mut cmd = shared.command(dirs[0].path(), "ingest");
        cmd.env("MOBILITY_MQTT_SESSION_EXPIRY_S", "60");
        cmd
    };
    let mut ingest = Server::start_with(ingest_cmd(), &["--roles", "ingest"]);
    let api_a = shared.start(dirs[1].path(), "api-a", "api");
    let api_b = shared.start(dirs[2].path(), "api-b", "api");
    let mut workers: Vec<Option<Server>> = (0..3)
        .map(|i| Some(shared.start(dirs[3 + i].path(), &format!("worker-{i}"), "worker")))
        .collect();
    let admin = shared.admin.as_str();

    // Every process answers health; only api processes serve the API.
    for s in [&ingest, &api_a, &api_b] {
        let (status, body) = get(&s.url("/readyz"));
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = call(
        "GET",
        &ingest.url("/v1/vehicles/nearby?lat=41.387&lon=2.17"),
        admin,
        None,
    );
    assert_eq!(status, 404, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap_or("")
            .ends_with("not-served-here")
            && body["detail"].as_str().unwrap_or("").contains("ingest"),
        "{body}"
    );

    // A city and its fleet, registered through one api process.
    let (status, _) = call(
        "PUT",
        &api_a.url("/v1/admin/cities/barcelona"),
        admin,
        Some(json!({"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"})),
    );
    assert_eq!(status, 200);
    let fleet: Vec<Value> = (0..401)
        .map(|_| json!({"city": "barcelona", "type": "scooter"}))
        .collect();
    let (status, registered) = call(
        "POST",
        &api_a.url("/v1/admin/vehicles/batch"),
        admin,
        Some(json!({ "vehicles": fleet })),
    );
    assert_eq!(status, 201, "{registered}");
    let ids: Vec<String> = registered["vehicles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();

    // A vehicle reporting through the broker is found by nearby on both api processes.
    let rider_vehicle = ids[0].clone();
    let vehicle = rt.block_on(acking_vehicle(&host, port, &rider_vehicle));
    rt.block_on(vehicle.publish(
        format!("v1/vehicles/{rider_vehicle}/telemetry"),
        QoS::AtLeastOnce,
        false,
        json!({"ts": now_ms(), "lat": 41.3870, "lon": 2.1700, "battery_pct": 90}).to_string(),
    ))
    .unwrap();
    let on_a = found_within(&api_a, admin, &rider_vehicle, 41.3870, 2.1700, "any");
    let on_b = found_within(&api_b, admin, &rider_vehicle, 41.3870, 2.1700, "any");
    eprintln!(
        "roles: a report through the broker was found by nearby on api-a after {on_a:?}, on api-b after {on_b:?}"
    );

    // A rider books through one api process and unlocks through the other; the vehicle's ack
    // goes to the ingest process, which decides the command in the store.
    let (status, body) = call(
        "POST",
        &api_a.url("/v1/vehicles/events"),
        admin,
        Some(
            json!({"changes": [{"vehicle_id": rider_vehicle, "event_types": ["provider_drop_off"], "vehicle_state": "available"}]}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    found_within(&api_b, admin, &rider_vehicle, 41.3870, 2.1700, "available");
    let (status, signed) = call(
        "POST",
        &api_a.url("/v1/auth/signup"),
        "",
        Some(
            json!({"email": format!("rider-{unique}@example.com"), "password": "correct horse battery"}),
        ),
    );
    assert_eq!(status, 201, "{signed}");
    let rider = signed["access_token"].as_str().unwrap().to_owned();
    let (status, booking) = call(
        "POST",
        &api_b.url("/v1/bookings"),
        &rider,
        Some(json!({"vehicle_id": rider_vehicle})),
    );
    assert_eq!(status, 201, "{booking}");
    let (status, trip) = call(
        "POST",
        &api_a.url(&format!(
            "/v1/bookings/{}/unlock",
            booking["id"].as_str().unwrap()
        )),
        &rider,
        None,
    );
    assert_eq!((status, &trip["state"]), (200, &json!("on_trip")), "{trip}");
    drop(vehicle);

    // Each job runs in one worker at a time: over a few seconds exactly one worker's count
    // of each fast job rises, by no more than the seconds allow (three workers each running
    // it would triple that). The api and ingest processes run none.
    let read = |ws: &[Option<Server>]| -> Vec<BTreeMap<String, u64>> {
        ws.iter()
            .map(|w| w.as_ref().map(job_runs).unwrap_or_default())
            .collect()
    };
    let before = read(&workers);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let after = read(&workers);
    let window = started.elapsed();
    let mut holders = BTreeMap::new();
    for job in ["command-timeouts", "hold-expiry", "notification-delivery"] {
        let rose = added(&before, &after, job);
        let runners: Vec<usize> = (0..3).filter(|&i| rose[i] > 0).collect();
        assert_eq!(runners.len(), 1, "{job}: runs added per worker {rose:?}");
        let most = u64::try_from(window.as_millis() / 250).unwrap() + 2;
        let total: u64 = rose.iter().sum();
        assert!(
            total <= most && total >= 2,
            "{job}: {total} runs in {window:?} (period 250 ms; at most {most})"
        );
        holders.insert(job, runners[0]);
    }
    for s in [&api_a, &api_b, &ingest] {
        assert!(
            job_runs(s).is_empty(),
            "a process without the worker role ran jobs"
        );
    }
    // The holder dies without a word; another worker takes the jobs over when the lease
    // runs out (10 s for these).
    let holder = holders["command-timeouts"];
    let mut dead = workers[holder].take().unwrap();
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let before = read(&workers);
    let killed_at = Instant::now();
    let taken_over = loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = read(&workers);
        let rose = added(&before, &now, "command-timeouts");
        if let Some(i) = (0..3).find(|&i| rose[i] > 0) {
            break (i, killed_at.elapsed());
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "no worker took the jobs over after the holder was killed"
        );
    };
    assert_ne!(taken_over.0, holder);
    eprintln!(
        "roles: worker {} took the jobs over {:?} after worker {holder} was killed",
        taken_over.0, taken_over.1
    );

    // A stream of acknowledged reports, one per vehicle; the ingest process is killed in the
    // middle of it and a fresh one takes its place (same data directory and MQTT session, as
    // a restarted unit or a StatefulSet's pod has). Every acknowledged report reaches both
    // replicas.
    let streamed: Vec<(String, f64, f64)> = ids[1..]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            #[allow(clippy::cast_precision_loss)]
            let k = i as f64;
            (
                id.clone(),
                41.30 + (k % 20.0) * 0.005,
                2.10 + (k / 20.0).floor() * 0.005,
            )
        })
        .collect();
    let total = streamed.len();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stream = rt.spawn(stream_reports(
        host.clone(),
        port,
        format!("test-fleet-{unique}"),
        streamed,
        progress.clone(),
    ));
    while progress.load(std::sync::atomic::Ordering::SeqCst) < total / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    ingest.child.kill().unwrap(); // SIGKILL: no shutdown code runs
    ingest.child.wait().unwrap();
    let killed_after = progress.load(std::sync::atomic::Ordering::SeqCst);
    ingest = Server::start_with(ingest_cmd(), &["--roles", "ingest"]);
    let sent = rt.block_on(stream).unwrap();
    assert_eq!(sent.len(), total);
    eprintln!("roles: ingest killed after {killed_after} of {total} acknowledged reports");
    for api in [&api_a, &api_b] {
        let missing = missing_after(api, admin, &sent, Duration::from_secs(30));
        assert!(
            missing.is_empty(),
            "{} of {total} acknowledged reports never reached the replica at {}: {:?}",
            missing.len(),
            api.addr,
            missing.iter().take(5).collect::<BTreeSet<_>>()
        );
    }

    // Everyone stops cleanly.
    for s in [Some(ingest), Some(api_a), Some(api_b)]
        .into_iter()
        .chain(workers)
        .flatten()
    {
        let (status, lines) = s.terminate();
        assert!(status.success(), "{lines:?}");
    }
    rt.block_on(async {
        if let Ok(bus) =
            mobility_bus::NatsBus::connect(&nats, &prefix, mobility_bus::BusConfig::default()).await
        {
            let _ = bus.delete_streams().await;
        }
        db.cleanup().await;
    });
}
