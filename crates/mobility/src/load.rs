//! `mobility load mqtt`: a telemetry load generator that speaks the real vehicle protocol.
//!
//! It registers vehicles through the admin API, connects each as its own MQTT client with its
//! own credentials, and publishes telemetry as fast as a bounded window per connection allows
//! (or at a fixed total rate). At QoS 1 it measures publish→PUBACK latency. The embedded broker
//! sends the PUBACK only after the report has been applied to the index and written to the
//! write-ahead log, so this latency is an upper bound on publish→queryable. Throughput is read
//! from the server's own `telemetry_applied_total` counter, so it counts reports the platform
//! *accepted*, not merely bytes sent.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use mobility_core::{BatteryPct, LatLon, TimestampMs, VehicleId};
use mobility_fleet::Telemetry;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{Value, json};

/// Options of `mobility load mqtt`.
#[derive(Debug, Clone, clap::Args)]
pub struct MqttLoad {
    /// Base URL of the platform's HTTP API (for setup and metrics).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Admin token (default: read from ./data/admin-token).
    #[arg(long, env = "MOBILITY_LOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// MQTT broker address (host:port) the vehicles connect to.
    #[arg(long, default_value = "127.0.0.1:1884")]
    pub broker: String,
    /// Number of vehicles, each with its own connection.
    #[arg(long, default_value_t = 500)]
    pub vehicles: u32,
    /// How long to publish, seconds.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// MQTT QoS of the telemetry (0 or 1).
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// Publishes in flight per connection.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Reports per MQTT message (binary records; 1 = one report per message).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Payload format.
    #[arg(long, value_parser = ["bin", "json"], default_value = "bin")]
    pub format: String,
    /// Total messages per second across all vehicles (0 = as fast as the window allows).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// City the load vehicles are registered in (created if missing).
    #[arg(long, default_value = "load-test")]
    pub city: String,
}

struct Vehicle {
    id: VehicleId,
    secret: String,
}

async fn setup(o: &MqttLoad, token: &str, http: &reqwest::Client) -> anyhow::Result<Vec<Vehicle>> {
    let city = json!({"name": "Load test", "timezone": "UTC", "currency": "EUR"});
    let r = http
        .put(format!("{}/v1/admin/cities/{}", o.api, o.city))
        .bearer_auth(token)
        .json(&city)
        .send()
        .await
        .context("cannot reach the API")?;
    if !r.status().is_success() {
        bail!(
            "creating the city failed: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    let mut out = Vec::with_capacity(o.vehicles as usize);
    for _ in 0..o.vehicles {
        let r = http
            .post(format!("{}/v1/admin/vehicles", o.api))
            .bearer_auth(token)
            .json(&json!({"city": o.city, "type": "scooter"}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("registering a vehicle failed: {}", r.status());
        }
        let v: Value = r.json().await?;
        out.push(Vehicle {
            id: VehicleId::parse(v["id"].as_str().unwrap_or_default())?,
            secret: v["device_secret"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok(out)
}

async fn applied_total(http: &reqwest::Client, api: &str) -> anyhow::Result<f64> {
    let text = http
        .get(format!("{api}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("telemetry_applied_total{") && l.contains("source=\"mqtt\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

fn payload(o: &MqttLoad, vehicle: VehicleId, seq: &mut i64, t0: i64, k: u64) -> Bytes {
    let mut reports = Vec::with_capacity(o.batch);
    for _ in 0..o.batch {
        *seq += 1;
        // Vehicles spread evenly over a Barcelona-sized box, each circling a few metres a report.
        #[allow(clippy::cast_precision_loss)]
        let (step, kf) = ((*seq as f64) * 1e-3, k as f64);
        let lat = 41.321 + 0.148 * (kf * 0.618_033_988_7).fract() + step.sin() * 2e-4;
        let lon = 2.071 + 0.158 * (kf * 0.414_213_562_4).fract() + step.cos() * 2e-4;
        reports.push(Telemetry {
            vehicle_id: vehicle,
            at: TimestampMs(t0 + *seq),
            position: LatLon::new(lat, lon).unwrap_or(LatLon::ORIGIN),
            battery: BatteryPct::new(80).ok(),
            speed_m_s: Some(4.0),
            heading_deg: Some(90.0),
            odometer_m: None,
            locked: Some(false),
            error_codes: vec![],
        });
    }
    if o.format == "json" {
        let items: Vec<Value> = reports
            .iter()
            .map(|t| json!({"ts": t.at.0, "lat": t.position.lat(), "lon": t.position.lon(), "battery_pct": 80, "speed_mps": 4.0}))
            .collect();
        Bytes::from(if items.len() == 1 {
            items[0].to_string()
        } else {
            Value::Array(items).to_string()
        })
    } else {
        Bytes::from(mobility_server::ingest::encode_binary(&reports))
    }
}

/// Runs the load and prints the figures.
pub async fn run(o: MqttLoad) -> anyhow::Result<()> {
    let token = match &o.token {
        Some(t) => t.clone(),
        None => std::fs::read_to_string("data/admin-token")
            .context("no --token and no ./data/admin-token")?
            .trim()
            .to_owned(),
    };
    let qos = match o.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => bail!("--qos must be 0 or 1"),
    };
    let (host, port) = o.broker.rsplit_once(':').context("--broker is host:port")?;
    let port: u16 = port.parse().context("--broker port")?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let vehicles = setup(&o, &token, &http).await?;
    eprintln!(
        "registered {} vehicles in {:.1} s",
        vehicles.len(),
        started.elapsed().as_secs_f64()
    );

    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let before = applied_total(&http, &o.api).await?;
    let deadline = Instant::now() + Duration::from_secs(o.duration_s);
    let t0 = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let mut tasks = Vec::new();
    for (k, v) in vehicles.into_iter().enumerate() {
        let (hist, sent, o) = (hist.clone(), sent.clone(), o.clone());
        let host = host.to_owned();
        tasks.push(tokio::spawn(async move {
            let id = v.id.to_string();
            let mut opts = MqttOptions::new(&id, host, port);
            opts.set_credentials(&id, &v.secret)
                .set_keep_alive(Duration::from_secs(30));
            opts.set_inflight(u16::try_from(o.window.max(1)).unwrap_or(u16::MAX));
            let (client, mut eventloop) = AsyncClient::new(opts, o.window.max(1) * 2);
            let topic = format!(
                "v1/vehicles/{id}/telemetry{}",
                if o.format == "bin" { "/bin" } else { "" }
            );
            let in_flight = Arc::new(tokio::sync::Semaphore::new(o.window.max(1)));
            let publisher = {
                let (client, in_flight, sent) = (client.clone(), in_flight.clone(), sent.clone());
                tokio::spawn(async move {
                    let mut seq = 0i64;
                    let every = (o.rate > 0).then(|| {
                        Duration::from_secs_f64(f64::from(o.vehicles.max(1)) / o.rate as f64)
                    });
                    let mut next = Instant::now();
                    while Instant::now() < deadline {
                        if let Some(every) = every {
                            tokio::time::sleep_until(next.into()).await;
                            next += every;
                        }
                        let Ok(permit) = in_flight.clone().acquire_owned().await else {
                            break;
                        };
                        permit.forget();
                        let body = payload(&o, v.id, &mut seq, t0, k as u64);
                        if client
                            .publish_bytes(topic.clone(), qos, false, body)
                            .await
                            .is_err()
                        {
                            break;
                        }
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if qos == QoS::AtMostOnce {
                            in_flight.add_permits(1);
                            tokio::task::yield_now().await;
                        }
                    }
                })
            };
            let mut sent_at: VecDeque<Instant> = VecDeque::new();
            let drain_until = deadline + Duration::from_secs(5);
            loop {
                let ev = tokio::time::timeout_at(drain_until.into(), eventloop.poll()).await;
                match ev {
                    Ok(Ok(Event::Outgoing(Outgoing::Publish(_)))) => {
                        sent_at.push_back(Instant::now())
                    }
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                        if let Some(t) = sent_at.pop_front() {
                            let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                            let _ = hist.lock().map(|mut h| h.record(us.max(1)));
                        }
                        in_flight.add_permits(1);
                        if publisher.is_finished() && sent_at.is_empty() {
                            break;
                        }
                    }
                    Ok(Ok(_)) => {
                        if qos == QoS::AtMostOnce && publisher.is_finished() {
                            break;
                        }
                    }
                    Ok(Err(e)) => {
                        eprintln!("vehicle {id}: {e}");
                        break;
                    }
                    Err(_) => break,
                }
            }
            publisher.abort();
            let _ = client.disconnect().await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    // QoS 0 has no acks: wait until the server has worked through what is queued, and count
    // the time until then.
    let publish_start = deadline - Duration::from_secs(o.duration_s);
    let mut after = applied_total(&http, &o.api).await?;
    let mut settled_at = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = applied_total(&http, &o.api).await?;
        if (now - after).abs() < 0.5 {
            break;
        }
        after = now;
        settled_at = Instant::now();
    }
    let elapsed = settled_at
        .duration_since(publish_start)
        .as_secs_f64()
        .max(o.duration_s as f64);
    let messages = sent.load(std::sync::atomic::Ordering::Relaxed);
    let applied = after - before;
    println!(
        "mqtt load: {} vehicles, qos {}, {} format, batch {}, window {}, {} s, rate {}",
        o.vehicles,
        o.qos,
        o.format,
        o.batch,
        o.window,
        o.duration_s,
        if o.rate == 0 {
            "max".to_owned()
        } else {
            format!("{}/s", o.rate)
        }
    );
    #[allow(clippy::cast_precision_loss)]
    {
        println!(
            "  messages published: {messages} ({:.0}/s)",
            messages as f64 / elapsed
        );
    }
    println!(
        "  reports applied by the platform: {applied:.0} ({:.0}/s over {elapsed:.1} s until the server had applied everything)",
        applied / elapsed
    );
    let h = hist.lock().map_err(|_| anyhow::anyhow!("histogram lock"))?;
    if qos == QoS::AtLeastOnce && !h.is_empty() {
        #[allow(clippy::cast_precision_loss)]
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "  publish->PUBACK (after apply + fsync): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
            ms(0.5),
            ms(0.99),
            ms(0.999),
            ms(1.0),
            h.len()
        );
    }
    Ok(())
}
