//! `mobility demo`: the platform with embedded defaults plus a simulated city driving it over the
//! real protocols (vehicles over MQTT, riders and lifecycle over HTTP), with a live status line.

use std::{io::IsTerminal, io::Write, sync::atomic::Ordering, time::Duration};

use anyhow::Context;
use mobility::driver::{Demo, DemoConfig, SPEED_MAX};
use mobility_core::{CityId, TimestampMs};
use mobility_server::{Application, Settings, app};
use mobility_sim::{Faults, SimConfig};

/// Options of `mobility demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Fleet size.
    #[arg(long, default_value_t = 5_000)]
    pub vehicles: u32,
    /// Seed of the simulated city.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Simulated seconds per second (1 = real time; at most 50).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Connectivity faults: `none` or `realistic` (duplicates, reordering, offline periods).
    #[arg(long, value_parser = ["none", "realistic"], default_value = "realistic")]
    pub faults: String,
    #[command(flatten)]
    pub city: crate::sim::CityArgs,
}

pub async fn run(settings: Settings, a: DemoArgs) -> anyhow::Result<()> {
    if !(a.speed > 0.0 && a.speed <= SPEED_MAX) {
        anyhow::bail!("--speed must be in (0, {SPEED_MAX}]");
    }
    if a.vehicles == 0 || a.vehicles > 100_000 {
        anyhow::bail!("--vehicles must be 1 to 100000");
    }
    let city = a.city.city()?;
    // Options are checked before anything starts.
    a.city.apply(&mut SimConfig::new(a.seed, TimestampMs(0)))?;
    let started = std::time::Instant::now();
    let shutdown = app::shutdown_signal();
    let data_dir = settings.data_dir.clone();
    let admin_token = settings.admin_token.clone();
    let external = settings.mqtt_url.clone();
    let app = Application::build(settings).await?;
    let api = format!("http://{}", app.local_addr());
    let mqtt = match (app.mqtt_addr(), external) {
        (Some(addr), _) => addr.to_string(),
        (None, Some(url)) => url
            .trim_start_matches("mqtt://")
            .trim_end_matches('/')
            .to_owned(),
        (None, None) => anyhow::bail!("no MQTT broker to connect the vehicles to"),
    };
    let fleet = app.fleet();
    let (token, _) = mobility_services::accounts::secrets::bootstrap_admin_token(
        admin_token.as_deref(),
        &data_dir,
    )
    .context("reading the admin token")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));

    let city_id = CityId::parse(&city.id)?;
    let (city_name, utc_offset_ms) = (city.name.clone(), i64::from(city.utc_offset_min) * 60_000);
    let mut sim = SimConfig::new(a.seed, TimestampMs(mobility_server::clock::now().0));
    sim.vehicles = a.vehicles;
    // One-second steps: at real time a map should move smoothly (the cost is negligible).
    sim.tick_s = 1;
    sim.faults = if a.faults == "realistic" {
        Faults::realistic()
    } else {
        Faults::none()
    };
    a.city.apply(&mut sim)?;
    let demo = Demo::start(DemoConfig {
        api: api.clone(),
        mqtt: mqtt.clone(),
        admin_token: token.clone(),
        state_dir: data_dir.clone(),
        sim,
        city,
        speed: a.speed,
    })
    .await?;
    let ops_email = ops_account(&api, &token, &data_dir).await?;
    println!(
        "mobility demo: {} with {} simulated vehicles (seed {}, speed {}x), ready in {:.1} s",
        city_name,
        a.vehicles,
        a.seed,
        a.speed,
        started.elapsed().as_secs_f64()
    );
    let token_file = data_dir.join("admin-token");
    let bearer = format!(
        "-H \"Authorization: Bearer $(cat {})\"",
        token_file.display()
    );
    println!(
        "  API        {api}   (admin token in {})",
        token_file.display()
    );
    println!(
        "  nearby     curl {bearer} '{api}/v1/vehicles/nearby?lat=41.3870&lon=2.1700&radius_m=500'"
    );
    println!("  fleet      curl {bearer} '{api}/v1/fleet/stats?city=barcelona'");
    println!(
        "  live map   websocat \"ws://{}/v1/stream/vehicles?bbox=41.32,2.07,41.47,2.23&access_token=$(cat {})\"",
        api.trim_start_matches("http://"),
        token_file.display()
    );
    println!(
        "  dashboard  {api}/   (sign in as {ops_email}; the password is in {})",
        data_dir.join(OPS_PASSWORD_FILE).display()
    );
    println!("  GBFS       {api}/gbfs/manifest.json   (trip planners: public)");
    println!(
        "  MDS        {api}/mds/micromobility/vehicles   (cities: an agency token from POST /v1/admin/mds/tokens)"
    );
    println!("  metrics    {api}/metrics        vehicles' MQTT broker: {mqtt}");
    println!(
        "  Ctrl-C stops the demo; the city and its fleet are kept in {}",
        data_dir.display()
    );

    let tty = std::io::stdout().is_terminal();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(if tty { 1 } else { 10 }));
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {
                let s = &demo.status;
                let demand = s.demand.load(Ordering::Relaxed);
                let lost = s.lost.load(Ordering::Relaxed);
                let sim_ms = i64::try_from(s.sim_time.load(Ordering::Relaxed)).unwrap_or(0);
                let local = (sim_ms + utc_offset_ms).rem_euclid(86_400_000) / 60_000;
                let (available, reporting) = fleet.stats(&city_id).map_or((0, 0), |st| {
                    let avail = st.by_state.iter().filter(|(state, _)| state.as_str() == "available").map(|(_, n)| *n).sum::<u32>();
                    (avail, st.total)
                });
                let line = format!(
                    "sim {:02}:{:02} | connected {}/{} | platform: {} vehicles, {} available | on trip {} | trips {} | lost {:.1} % | msgs {} (dropped {})",
                    local / 60, local % 60,
                    s.connected.load(Ordering::Relaxed), a.vehicles,
                    reporting, available,
                    s.on_trip.load(Ordering::Relaxed),
                    s.served.load(Ordering::Relaxed),
                    if demand == 0 { 0.0 } else { lost as f64 * 100.0 / demand as f64 },
                    s.published.load(Ordering::Relaxed),
                    s.dropped.load(Ordering::Relaxed),
                );
                if tty {
                    print!("\r{line}\x1b[K");
                    let _ = std::io::stdout().flush();
                } else {
                    println!("{line}");
                }
            }
        }
    }
    if tty {
        println!();
    }
    println!("stopping the simulated city…");
    demo.close().await;
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}

/// The demo's operations account: an admin who signs in to the dashboard.
const OPS_EMAIL: &str = "ops@demo.invalid";
/// Its password, generated once under the data directory (mode 0600) and never printed.
const OPS_PASSWORD_FILE: &str = "demo-ops-password";

/// Makes sure the demo's operations account exists; returns its e-mail address.
async fn ops_account(
    api: &str,
    admin_token: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<&'static str> {
    let (password, _) = mobility_services::accounts::secrets::bootstrap_secret(
        None,
        &data_dir.join(OPS_PASSWORD_FILE),
    )
    .context("creating the dashboard password")?;
    let r = reqwest::Client::new()
        .post(format!("{api}/v1/admin/users"))
        .bearer_auth(admin_token)
        .json(&serde_json::json!({"email": OPS_EMAIL, "password": password, "role": "admin"}))
        .send()
        .await
        .context("creating the dashboard account")?;
    // 409: it exists from an earlier run of this data directory.
    if !(r.status().is_success() || r.status() == reqwest::StatusCode::CONFLICT) {
        anyhow::bail!("creating the dashboard account: HTTP {}", r.status());
    }
    Ok(OPS_EMAIL)
}
