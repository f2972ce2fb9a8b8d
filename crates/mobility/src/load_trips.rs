//! `mobility load trips`: full trips over the real protocols. Riders (accounts) reserve, unlock
//! and end trips over HTTP; vehicles (each its own MQTT client with its own credentials) ack the
//! unlock and lock commands. Reports trips per second and latency percentiles (HDR histograms):
//! unlock (request → vehicle ack → trip started) and end (request → lock ack → receipt).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use mobility::driver::{DemoStatus, vehicle_link};
use rumqttc::{AsyncClient, MqttOptions};
use serde_json::{Value, json};

/// Options of `mobility load trips`.
#[derive(Debug, Clone, clap::Args)]
pub struct TripsLoad {
    /// Base URL of the platform's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Admin token (default: read from ./data/admin-token).
    #[arg(long, env = "MOBILITY_LOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// MQTT broker address (host:port) the vehicles connect to.
    #[arg(long, default_value = "127.0.0.1:1884")]
    pub broker: String,
    /// Riders, each with their own vehicle, riding trips back to back.
    #[arg(long, default_value_t = 32)]
    pub riders: usize,
    /// How long to ride, seconds.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
}

async fn send(req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let r = req
        .send()
        .await
        .with_context(|| format!("{what}: cannot reach the API"))?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{what}: {status} {body}");
    }
    Ok(body)
}

fn hist() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?)
}

pub async fn run(o: TripsLoad) -> anyhow::Result<()> {
    let token = match &o.token {
        Some(t) => t.clone(),
        None => std::fs::read_to_string("data/admin-token")
            .context("no --token and no ./data/admin-token")?
            .trim()
            .to_owned(),
    };
    if o.riders == 0 || o.riders > 1_000 {
        bail!("--riders must be 1 to 1000");
    }
    let (host, port) = o.broker.rsplit_once(':').context("--broker is host:port")?;
    let port: u16 = port.parse().context("--broker port")?;
    let http = reqwest::Client::new();
    let api = o.api.trim_end_matches('/').to_owned();
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let city = "load-trips";
    send(
        http.put(format!("{api}/v1/admin/cities/{city}"))
            .bearer_auth(&token)
            .json(&json!({"name": "Trips load", "timezone": "UTC", "currency": "EUR"})),
        "creating the city",
    )
    .await?;
    let reg = send(http.post(format!("{api}/v1/admin/vehicles/batch")).bearer_auth(&token)
        .json(&json!({"vehicles": (0..o.riders).map(|_| json!({"city": city, "type": "scooter"})).collect::<Vec<_>>()})),
        "registering vehicles").await?;
    let vehicles: Vec<(String, String)> = reg["vehicles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["id"].as_str().unwrap_or_default().to_owned(),
                v["device_secret"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    // Every vehicle online and acking commands.
    let status = Arc::new(DemoStatus::default());
    let mut links = Vec::new();
    let mut clients = Vec::new();
    for (id, secret) in &vehicles {
        let mut opts = MqttOptions::new(id, host, port);
        opts.set_credentials(id, secret)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        links.push(tokio::spawn(vehicle_link(
            client.clone(),
            eventloop,
            id.clone(),
            status.clone(),
        )));
        clients.push(client);
    }
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let reports: Vec<Value> = vehicles.iter().enumerate().map(|(k, (id, _))| json!({
        "vehicle_id": id, "ts": now, "lat": 41.38 + (k as f64) * 1e-4, "lon": 2.17, "battery_pct": 90, "odometer_m": 1000,
    })).collect();
    send(
        http.post(format!("{api}/v1/ingest/telemetry"))
            .bearer_auth(&token)
            .json(&reports),
        "placing vehicles",
    )
    .await?;
    send(http.post(format!("{api}/v1/vehicles/events")).bearer_auth(&token).json(&json!({"changes":
        vehicles.iter().map(|(id, _)| json!({"vehicle_id": id, "event_types": ["provider_drop_off"], "vehicle_state": "available"})).collect::<Vec<_>>()})),
        "deploying vehicles").await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while status.connected.load(std::sync::atomic::Ordering::Relaxed) < vehicles.len() as u64 {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} vehicles connected to {}",
                status.connected.load(std::sync::atomic::Ordering::Relaxed),
                vehicles.len(),
                o.broker
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Riders: accounts created by the admin, then signed in.
    let mut sessions = Vec::new();
    for k in 0..o.riders {
        let email = format!("load-{run_id}-{k}@example.invalid");
        let password = format!("load-password-{run_id}");
        send(
            http.post(format!("{api}/v1/admin/users"))
                .bearer_auth(&token)
                .json(&json!({"email": email, "password": password, "role": "rider"})),
            "creating a rider",
        )
        .await?;
        let s = send(
            http.post(format!("{api}/v1/auth/login"))
                .json(&json!({"email": email, "password": password})),
            "signing in (raise sign_in_per_min for large rider counts)",
        )
        .await?;
        sessions.push(s["access_token"].as_str().unwrap_or_default().to_owned());
    }
    eprintln!(
        "{} riders and vehicles ready; riding for {} s",
        o.riders, o.duration_s
    );

    let started = Instant::now();
    let stop = started + Duration::from_secs(o.duration_s);
    let mut tasks = Vec::new();
    for (access, (vehicle, _)) in sessions.into_iter().zip(vehicles.iter().cloned()) {
        let (http, api) = (http.clone(), api.clone());
        tasks.push(tokio::spawn(async move {
            let (mut unlock, mut end, mut trip) = (hist()?, hist()?, hist()?);
            let mut failed = 0u64;
            while Instant::now() < stop {
                let t0 = Instant::now();
                let b = send(
                    http.post(format!("{api}/v1/bookings"))
                        .bearer_auth(&access)
                        .json(&json!({"vehicle_id": vehicle})),
                    "reserve",
                )
                .await;
                let Ok(b) = b else {
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let id = b["id"].as_str().unwrap_or_default().to_owned();
                let t1 = Instant::now();
                if send(
                    http.post(format!("{api}/v1/bookings/{id}/unlock"))
                        .bearer_auth(&access),
                    "unlock",
                )
                .await
                .is_err()
                {
                    failed += 1;
                    continue;
                }
                let t2 = Instant::now();
                if send(
                    http.post(format!("{api}/v1/bookings/{id}/end"))
                        .bearer_auth(&access),
                    "end",
                )
                .await
                .is_err()
                {
                    failed += 1;
                    continue;
                }
                let t3 = Instant::now();
                let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
                unlock.record(us(t2 - t1))?;
                end.record(us(t3 - t2))?;
                trip.record(us(t3 - t0))?;
            }
            anyhow::Ok((unlock, end, trip, failed))
        }));
    }
    let (mut unlock, mut end, mut trip) = (hist()?, hist()?, hist()?);
    let mut failed = 0;
    for t in tasks {
        let (u, e, tr, f) = t.await??;
        unlock.add(u)?;
        end.add(e)?;
        trip.add(tr)?;
        failed += f;
    }
    let secs = started.elapsed().as_secs_f64();
    for c in &clients {
        let _ = c.try_disconnect();
    }
    for l in links {
        l.abort();
    }
    #[allow(clippy::cast_precision_loss)]
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!("trips load: {} riders, {} s", o.riders, o.duration_s);
    #[allow(clippy::cast_precision_loss)]
    {
        println!(
            "  full trips (reserve → unlock → end): {} ({:.1}/s), {failed} failed",
            trip.len(),
            trip.len() as f64 / secs
        );
    }
    for (name, h) in [
        ("unlock (request → vehicle ack → on trip)", &unlock),
        ("end (request → lock ack → receipt)", &end),
        ("whole trip", &trip),
    ] {
        if !h.is_empty() {
            println!(
                "  {name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(h, 0.5),
                ms(h, 0.99),
                ms(h, 1.0)
            );
        }
    }
    if trip.is_empty() {
        bail!("no trip completed ({failed} failed)");
    }
    Ok(())
}
