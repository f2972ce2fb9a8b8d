//! `mobility load http`: nearby searches with keep-alive from many connections, reporting
//! throughput and latency percentiles (HDR histogram). Riders in a Barcelona-sized box.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;

/// Options of `mobility load http`.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLoad {
    /// Base URL of the platform's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Bearer token (default: read from ./data/admin-token).
    #[arg(long, env = "MOBILITY_LOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// How long to run, seconds.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Total requests per second across connections (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Search radius, metres.
    #[arg(long, default_value_t = 500.0)]
    pub radius_m: f64,
}

pub async fn run(o: HttpLoad) -> anyhow::Result<()> {
    let token = match &o.token {
        Some(t) => t.clone(),
        None => std::fs::read_to_string("data/admin-token")
            .context("no --token and no ./data/admin-token")?
            .trim()
            .to_owned(),
    };
    if o.connections == 0 || o.connections > 10_000 {
        bail!("--connections must be 1 to 10000");
    }
    let deadline = Instant::now() + Duration::from_secs(o.duration_s);
    let per_conn_interval =
        (o.rate > 0).then(|| Duration::from_secs_f64(o.connections as f64 / o.rate as f64));
    let mut tasks = Vec::with_capacity(o.connections);
    for c in 0..o.connections {
        let (o, token) = (o.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            // One client per task: one keep-alive connection each.
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut k = c as u64 * 7_919;
            let mut next = Instant::now();
            while Instant::now() < deadline {
                if let Some(every) = per_conn_interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += every;
                }
                k += 1;
                #[allow(clippy::cast_precision_loss)]
                let kf = k as f64;
                let lat = 41.33 + 0.13 * (kf * 0.618_033_988_7).fract();
                let lon = 2.08 + 0.14 * (kf * 0.414_213_562_4).fract();
                let url = format!(
                    "{}/v1/vehicles/nearby?lat={lat:.6}&lon={lon:.6}&radius_m={}&limit=10",
                    o.api, o.radius_m
                );
                let t = Instant::now();
                let r = http.get(url).bearer_auth(&token).send().await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok += 1;
                        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                        h.record(us.max(1))?;
                    }
                    _ => failed += 1,
                }
            }
            anyhow::Ok((h, ok, failed))
        }));
    }
    let started = Instant::now();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut failed) = (0u64, 0u64);
    for t in tasks {
        let (h, o_, f) = t.await??;
        all.add(h)?;
        ok += o_;
        failed += f;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    #[allow(clippy::cast_precision_loss)]
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "http load: {} connections, {} s, GET /v1/vehicles/nearby (radius {} m, limit 10)",
        o.connections, o.duration_s, o.radius_m
    );
    #[allow(clippy::cast_precision_loss)]
    {
        println!(
            "  requests: {ok} ok ({:.0}/s), {failed} failed",
            ok as f64 / secs
        );
    }
    if !all.is_empty() {
        println!(
            "  latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            ms(0.5),
            ms(0.99),
            ms(0.999),
            ms(1.0)
        );
    }
    if ok == 0 {
        bail!("no request succeeded ({failed} failed)");
    }
    Ok(())
}
