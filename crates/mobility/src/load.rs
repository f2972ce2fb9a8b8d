//! `mobility load mqtt`: a telemetry load generator that speaks the real vehicle protocol.
//!
//! It registers vehicles through the admin API (in batches), connects each as its own MQTT 3.1.1 client with
//! its own credentials, and publishes telemetry as fast as a bounded window per connection
//! allows (or at a fixed total rate). Packets are encoded with rumqttc's codec and written
//! straight to the socket, many per write: the load shares the machine with the server it
//! measures, so it must cost far less per message than the server does. At QoS 1 it measures
//! publish→PUBACK latency. The embedded broker sends the PUBACK only after the report has been
//! applied to the index and written to the write-ahead log, so this latency is an upper bound
//! on publish→queryable. Throughput is read from the server's own `telemetry_applied_total`
//! counter, so it counts reports the platform *accepted*, not merely bytes sent; refusals are
//! printed too.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use mobility_core::{BatteryPct, LatLon, TimestampMs, VehicleId};
use mobility_fleet::Telemetry;
use rumqttc::{
    QoS,
    mqttbytes::{Error as CodecError, v4},
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    /// Worker threads of the load tool (it shares the machine with the server it measures).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Where to read the ingest counters (`/metrics` of the process that takes the vehicles'
    /// messages). Default: --api.
    #[arg(long)]
    pub metrics: Option<String>,
    /// Another process's base URL (an api process of the same platform, fed by the bus): a
    /// probe vehicle publishes a report every 50 ms during the load and times how long until
    /// that process shows it; its `replica_lag_seconds` is read as well.
    #[arg(long)]
    pub watch: Option<String>,
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
    let total = o.vehicles as usize + usize::from(o.watch.is_some());
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        // In batches of up to 1,000 (the admin API's most per call).
        let n = (total - out.len()).min(1_000);
        let batch: Vec<Value> = (0..n)
            .map(|_| json!({"city": o.city, "type": "scooter"}))
            .collect();
        let r = http
            .post(format!("{}/v1/admin/vehicles/batch", o.api))
            .bearer_auth(token)
            .json(&json!({ "vehicles": batch }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("registering vehicles failed: {}", r.status());
        }
        let body: Value = r.json().await?;
        for v in body["vehicles"].as_array().into_iter().flatten() {
            out.push(Vehicle {
                id: VehicleId::parse(v["id"].as_str().unwrap_or_default())?,
                secret: v["device_secret"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    Ok(out)
}

/// The server's MQTT telemetry counters: (applied, refused).
async fn counters(http: &reqwest::Client, api: &str) -> anyhow::Result<(f64, f64)> {
    let text = http
        .get(format!("{api}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains("source=\"mqtt\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    Ok((
        sum("telemetry_applied_total{"),
        sum("telemetry_rejected_total{"),
    ))
}

/// The wall clock in Unix milliseconds.
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The next report timestamp of a vehicle: its clock, but at least 1 ms after its last report
/// (the protocol treats an equal timestamp as a redelivery). A vehicle sending more than 1,000
/// reports a second therefore runs ahead of the clock, and past 30 s its reports are refused
/// as from the future: load with more vehicles instead.
fn next_ts(last: &mut i64) -> i64 {
    *last = wall_ms().max(*last + 1);
    *last
}

fn payload(o: &MqttLoad, vehicle: VehicleId, seq: &mut i64, last_ts: &mut i64, k: u64) -> Bytes {
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
            at: TimestampMs(next_ts(last_ts)),
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
        Bytes::from(mobility_live::ingest::encode_binary(&reports))
    }
}

/// A paced vehicle wakes at most this often and then sends every message that is due: one
/// timer and one write per message would cost the load tool more than the server.
const PACE_TICK: Duration = Duration::from_millis(10);

/// Largest packet the load tool reads back (PUBACKs are 4 bytes; anything larger is a bug).
const READ_PACKET_BYTES_MAX: usize = 64 * 1024;

/// Reads packets into `buf` until one parses; `Ok(None)` when the server closed the stream.
async fn read_packet(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
) -> anyhow::Result<Option<v4::Packet>> {
    loop {
        match v4::Packet::read(buf, READ_PACKET_BYTES_MAX) {
            Ok(p) => return Ok(Some(p)),
            Err(CodecError::InsufficientBytes(_)) => {}
            Err(e) => bail!("bad packet from the broker: {e}"),
        }
        if rd.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Connects to the broker at `addr` and logs in as `v` (MQTT 3.1.1, its own credentials).
async fn login(
    addr: &str,
    v: &Vehicle,
) -> anyhow::Result<(
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
    BytesMut,
)> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let id = v.id.to_string();
    let mut connect = v4::Connect::new(id.as_str());
    connect.keep_alive = 60;
    connect.set_login(id.as_str(), v.secret.as_str());
    let mut out = BytesMut::new();
    connect.write(&mut out)?;
    wr.write_all(&out).await?;
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    match read_packet(&mut rd, &mut inbuf).await? {
        Some(v4::Packet::ConnAck(a)) if a.code == v4::ConnectReturnCode::Success => {}
        other => bail!("login refused: {other:?}"),
    }
    Ok((rd, wr, inbuf))
}

/// One vehicle's connection: logs in with its own credentials, then publishes telemetry until
/// `deadline` with at most `window` QoS 1 messages unacknowledged (at QoS 0, `window` messages
/// per write). Speaks MQTT 3.1.1 directly on the socket (packets encoded by rumqttc's codec):
/// a full client's event loop and channels cost the load tool as much CPU as the server spends
/// on the message, and both share the machine.
#[allow(clippy::too_many_arguments)]
async fn vehicle_load(
    o: Arc<MqttLoad>,
    addr: String,
    v: Vehicle,
    k: u64,
    qos: QoS,
    deadline: Instant,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut rd, mut wr, mut inbuf) = login(&addr, &v).await?;
    let id = v.id.to_string();
    let mut out = BytesMut::with_capacity(16 * 1024);
    let topic = format!(
        "v1/vehicles/{id}/telemetry{}",
        if o.format == "bin" { "/bin" } else { "" }
    );
    let window = o.window.max(1);
    let every = (o.rate > 0).then(|| {
        #[allow(clippy::cast_precision_loss)]
        Duration::from_secs_f64(f64::from(o.vehicles.max(1)) / o.rate as f64)
    });
    let mut next = Instant::now();
    let mut wake = next;
    let mut seq = 0i64;
    let mut last_ts = 0i64;
    let mut published = 0u64;
    let mut pkid: u16 = 0;
    // Packet id → when it was written. Acks may come in any order.
    let mut in_flight: std::collections::HashMap<u16, Instant> =
        std::collections::HashMap::with_capacity(window * 2);
    let drain_until = deadline + Duration::from_secs(5);
    if let Some(every) = every {
        // Spread the vehicles over one interval instead of sending in lockstep.
        #[allow(clippy::cast_precision_loss)]
        let phase = (k % u64::from(o.vehicles.max(1))) as f64 / f64::from(o.vehicles.max(1));
        next += every.mul_f64(phase);
    }
    loop {
        let now = Instant::now();
        let open = now < deadline;
        if open {
            let room = if qos == QoS::AtMostOnce {
                window
            } else {
                window.saturating_sub(in_flight.len())
            };
            let mut due = room;
            if let Some(every) = every {
                // Every message whose time has come, as far as the window allows.
                due = 0;
                while due < room && next <= now {
                    due += 1;
                    next += every;
                }
                wake = now + PACE_TICK.max(every);
            }
            for _ in 0..due {
                let mut p = v4::Publish::from_bytes(
                    topic.as_str(),
                    qos,
                    payload(&o, v.id, &mut seq, &mut last_ts, k),
                );
                if qos == QoS::AtLeastOnce {
                    pkid = pkid.checked_add(1).unwrap_or(1);
                    p.pkid = pkid;
                    in_flight.insert(pkid, now);
                }
                p.write(&mut out)?;
                published += 1;
            }
            if !out.is_empty() {
                wr.write_all(&out).await?;
                out.clear();
            }
        }
        if qos == QoS::AtMostOnce {
            if !open {
                break;
            }
            match every {
                Some(_) => tokio::time::sleep_until(wake.max(next).into()).await,
                None => tokio::task::yield_now().await,
            }
            continue;
        }
        if !open && in_flight.is_empty() {
            break;
        }
        // Wait for acks, or for the next send time of a paced vehicle with room in its window.
        let tick = every.is_some() && open && in_flight.len() < window;
        let first = tokio::select! {
            p = read_packet(&mut rd, &mut inbuf) => p?,
            () = tokio::time::sleep_until(wake.max(next).into()), if tick => continue,
            () = tokio::time::sleep_until(drain_until.into()) => {
                bail!("{} publishes unacknowledged after the drain time", in_flight.len())
            }
        };
        let at = Instant::now();
        let mut packet = first;
        loop {
            match packet {
                None => bail!("the broker closed the connection"),
                Some(v4::Packet::PubAck(a)) => {
                    if let Some(t) = in_flight.remove(&a.pkid) {
                        let us =
                            u64::try_from(at.duration_since(t).as_micros()).unwrap_or(u64::MAX);
                        hist.record(us.max(1))?;
                    }
                }
                Some(_) => {}
            }
            packet = match v4::Packet::read(&mut inbuf, READ_PACKET_BYTES_MAX) {
                Ok(p) => Some(p),
                Err(CodecError::InsufficientBytes(_)) => break,
                Err(e) => bail!("bad packet from the broker: {e}"),
            };
        }
    }
    out.clear();
    v4::Disconnect.write(&mut out)?;
    let _ = wr.write_all(&out).await;
    Ok((published, hist))
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
    let http = reqwest::Client::new();
    let started = Instant::now();
    let vehicles = setup(&o, &token, &http).await?;
    eprintln!(
        "registered {} vehicles in {:.1} s",
        vehicles.len(),
        started.elapsed().as_secs_f64()
    );

    let metrics_url = o.metrics.clone().unwrap_or_else(|| o.api.clone());
    let (before, refused_before) = counters(&http, &metrics_url).await?;
    let lag_before = match &o.watch {
        Some(w) => Some(lag_buckets(&http, w).await?),
        None => None,
    };
    let deadline = Instant::now() + Duration::from_secs(o.duration_s);
    let mut vehicles = vehicles;
    let probe = match &o.watch {
        Some(w) => {
            let v = vehicles.pop().context("no vehicle left for the probe")?;
            Some(tokio::spawn(probe(
                o.broker.clone(),
                v,
                w.clone(),
                token.clone(),
                deadline,
            )))
        }
        None => None,
    };
    let o = Arc::new(o);
    let mut tasks = Vec::new();
    for (k, v) in vehicles.into_iter().enumerate() {
        let o = o.clone();
        let addr = o.broker.clone();
        tasks.push(tokio::spawn(async move {
            let id = v.id;
            vehicle_load(o, addr, v, k as u64, qos, deadline)
                .await
                .map_err(|e| format!("vehicle {id}: {e:#}"))
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut messages = 0u64;
    let mut failures = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok((n, h))) => {
                messages += n;
                hist.add(h)?;
            }
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    for f in failures.iter().take(5) {
        eprintln!("{f}");
    }
    // QoS 0 has no acks: wait until the server has worked through what is queued, and count
    // the time until then.
    let publish_start = deadline - Duration::from_secs(o.duration_s);
    let (mut after, mut refused) = counters(&http, &metrics_url).await?;
    let mut settled_at = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (now, now_refused) = counters(&http, &metrics_url).await?;
        if (now - after).abs() < 0.5 && (now_refused - refused).abs() < 0.5 {
            break;
        }
        (after, refused) = (now, now_refused);
        settled_at = Instant::now();
    }
    let elapsed = settled_at
        .duration_since(publish_start)
        .as_secs_f64()
        .max(o.duration_s as f64);
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
    let refused = refused - refused_before;
    if refused > 0.5 {
        println!(
            "  reports refused by the platform: {refused:.0} (see telemetry_rejected_total in /metrics)"
        );
    }
    let h = &hist;
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
    if let (Some(watch), Some(probe), Some(lag_before)) = (&o.watch, probe, lag_before) {
        let seen = probe.await??;
        if !seen.is_empty() {
            #[allow(clippy::cast_precision_loss)]
            let ms = |q: f64| seen.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "  publish->visible at {watch}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} probes)",
                ms(0.5),
                ms(0.99),
                ms(1.0),
                seen.len()
            );
        }
        let lag_after = lag_buckets(&http, watch).await?;
        let total = lag_after.last().map_or(0.0, |b| b.1) - lag_before.last().map_or(0.0, |b| b.1);
        if total > 0.0 {
            let within = |le: f64| -> f64 {
                let at = |bs: &[(f64, f64)]| {
                    bs.iter()
                        .find(|(l, _)| (*l - le).abs() < 1e-9)
                        .map_or(0.0, |b| b.1)
                };
                (at(&lag_after) - at(&lag_before)) / total * 100.0
            };
            println!(
                "  replica_lag_seconds at {watch} (accepted by ingest -> applied there), {total:.0} events: {:.2} % within 10 ms, {:.2} % within 50 ms, {:.2} % within 100 ms",
                within(0.01),
                within(0.05),
                within(0.1)
            );
        }
    }
    Ok(())
}

/// The cumulative buckets of `replica_lag_seconds` at `base`: (le, count), `+Inf` last.
async fn lag_buckets(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<(f64, f64)>> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut out: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with("replica_lag_seconds_bucket{"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

/// A probe vehicle: every 50 ms until `deadline`, publishes one report (QoS 1) and times how
/// long until `watch` shows it as the vehicle's latest (microseconds).
async fn probe(
    broker: String,
    v: Vehicle,
    watch: String,
    token: String,
    deadline: Instant,
) -> anyhow::Result<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let http = reqwest::Client::new();
    let (mut rd, mut wr, mut inbuf) = login(&broker, &v).await.context("the probe")?;
    let id = v.id.to_string();
    let mut out = BytesMut::new();
    // Acks are read and dropped.
    tokio::spawn(async move { while let Ok(Some(_)) = read_packet(&mut rd, &mut inbuf).await {} });
    let topic = format!("v1/vehicles/{id}/telemetry");
    let url = format!("{watch}/v1/vehicles/{id}");
    let mut pkid: u16 = 0;
    let mut k = 0u32;
    while Instant::now() < deadline {
        k += 1;
        let ts = wall_ms();
        #[allow(clippy::cast_precision_loss)]
        let lat = 41.38 + f64::from(k % 100) * 1e-5;
        let body = json!({"ts": ts, "lat": lat, "lon": 2.17, "battery_pct": 80});
        let mut p = v4::Publish::new(topic.as_str(), QoS::AtLeastOnce, body.to_string());
        pkid = pkid.checked_add(1).unwrap_or(1);
        p.pkid = pkid;
        out.clear();
        p.write(&mut out)?;
        let sent = Instant::now();
        wr.write_all(&out).await?;
        loop {
            let v: Value = http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await
                .unwrap_or_default();
            if v["reported_at_ms"].as_i64() == Some(ts) {
                let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                hist.record(us.max(1))?;
                break;
            }
            if sent.elapsed() > Duration::from_secs(10) {
                bail!("the probe's report did not show at {watch} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(hist)
}
