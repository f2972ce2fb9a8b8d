//! The simulated city over the real protocols: every simulated vehicle is its own MQTT client
//! with its own credentials (it publishes telemetry and IMU events and acknowledges commands),
//! and riders and lifecycle changes use the HTTP API. `mobility demo` runs this beside the
//! platform; tests run it against a test platform.
//!
//! The simulation runs on its own thread and is advanced to the wall clock times the speed. Its
//! timestamps are mapped to wall-clock timestamps by [`Clock`], so the platform never sees a
//! report from the future, and the order of every vehicle's reports is kept.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use mobility_core::{EventType, TimestampMs, VehicleId, VehicleState, VehicleType};
use mobility_fleet::{Hit, NearbyQuery, StateFilter, Telemetry};
use mobility_sim::{CityModel, Outgoing, Platform, Sim, SimConfig};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The fastest clock the protocol driver accepts (timestamps must stay distinct and ordered).
pub const SPEED_MAX: f64 = 50.0;
const BATCH: usize = 1_000;

/// Maps simulated time to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Wall clock at the start, ms.
    pub wall_start: i64,
    /// Simulated clock at the start, ms.
    pub sim_start: i64,
    /// Simulated seconds per wall second.
    pub speed: f64,
}

impl Clock {
    /// The wall-clock timestamp a simulated report carries. Whole simulated seconds are
    /// compressed by the speed; the sub-second part (a vehicle's same-tick reports, 1 ms apart)
    /// is kept, so the mapping is strictly increasing for every speed up to [`SPEED_MAX`].
    #[must_use]
    #[allow(clippy::cast_possible_truncation)]
    pub fn wall_ts(&self, sim: i64) -> i64 {
        let d = sim - self.sim_start;
        let (secs, rem) = (d.div_euclid(1_000), d.rem_euclid(1_000));
        self.wall_start + (secs as f64 * 1_000.0 / self.speed).floor() as i64 + rem.min(19)
    }

    /// The simulated time at a wall-clock time.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)]
    pub fn sim_at(&self, wall: i64) -> i64 {
        self.sim_start + ((wall - self.wall_start) as f64 * self.speed) as i64
    }
}

fn wall_now() -> i64 {
    mobility_server::clock::now().0
}

/// What `mobility demo` (or a test) asks for.
#[derive(Clone)]
pub struct DemoConfig {
    /// Base URL of the platform's HTTP API.
    pub api: String,
    /// MQTT broker the vehicles connect to (host:port).
    pub mqtt: String,
    /// Admin token (to create the city, its zones, the fleet and a rider token).
    pub admin_token: String,
    /// Where the fleet's device credentials are kept between runs (a private file).
    pub state_dir: PathBuf,
    /// The simulation.
    pub sim: SimConfig,
    /// The city.
    pub city: CityModel,
    /// Simulated seconds per wall second (1 = real time), at most [`SPEED_MAX`].
    pub speed: f64,
}

impl std::fmt::Debug for DemoConfig {
    // The admin token is a secret: never in logs or panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoConfig")
            .field("api", &self.api)
            .field("mqtt", &self.mqtt)
            .field("admin_token", &"***")
            .field("state_dir", &self.state_dir)
            .field("speed", &self.speed)
            .finish_non_exhaustive()
    }
}

/// Live counters of a running demo.
#[derive(Debug, Default)]
pub struct DemoStatus {
    /// Simulated time, ms.
    pub sim_time: AtomicU64,
    /// Vehicles connected to the broker.
    pub connected: AtomicU64,
    /// Trips in progress.
    pub on_trip: AtomicU64,
    /// Rider requests.
    pub demand: AtomicU64,
    /// Trips started.
    pub served: AtomicU64,
    /// Requests lost.
    pub lost: AtomicU64,
    /// MQTT messages published.
    pub published: AtomicU64,
    /// Messages that could not be queued (a vehicle's link was congested).
    pub dropped: AtomicU64,
    /// Lifecycle changes the platform refused.
    pub refused: AtomicU64,
    /// Rider searches that failed (HTTP errors).
    pub search_errors: AtomicU64,
    /// Commands acknowledged by vehicles.
    pub commands_acked: AtomicU64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Credentials {
    city: String,
    seed: u64,
    vehicles: Vec<(String, String)>,
}

/// A running simulated city.
#[derive(Debug)]
pub struct Demo {
    /// Live counters.
    pub status: Arc<DemoStatus>,
    /// Time mapping.
    pub clock: Clock,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Sim>>,
    clients: Vec<AsyncClient>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    api: Api,
    /// Tokens issued for this run (riders, field staff), revoked when it ends.
    token_ids: Vec<String>,
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl std::fmt::Debug for Api {
    // The token is a secret: never in logs or panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("token", &"***")
            .finish_non_exhaustive()
    }
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let r = req
            .bearer_auth(&self.token)
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
}

fn ring_json(ring: &[mobility_core::LatLon]) -> Value {
    let mut pts: Vec<[f64; 2]> = ring.iter().map(|p| [p.lon(), p.lat()]).collect();
    if let Some(first) = pts.first().copied() {
        pts.push(first);
    }
    json!({"type": "Polygon", "coordinates": [pts]})
}

/// Creates the city and its zones (zones only when the city has none yet).
async fn setup_city(api: &Api, city: &CityModel) -> anyhow::Result<()> {
    api.send(
        api.http
            .put(format!("{}/v1/admin/cities/{}", api.base, city.id))
            .json(&json!({
                "name": city.name, "timezone": city.timezone, "currency": city.currency,
                "operating_area": ring_json(&city.operating_area),
            })),
        "creating the city",
    )
    .await?;
    let existing = api
        .send(
            api.http
                .get(format!("{}/v1/cities/{}/geofences", api.base, city.id)),
            "listing geofences",
        )
        .await?;
    if existing.as_array().is_some_and(|a| !a.is_empty()) {
        return Ok(());
    }
    for z in &city.zones {
        let mut body = json!({"name": z.name, "kind": z.kind, "geometry": ring_json(&z.ring)});
        if let Some(limit) = z.speed_limit_kmh {
            body["speed_limit_kmh"] = json!(limit);
        }
        api.send(
            api.http
                .post(format!(
                    "{}/v1/admin/cities/{}/geofences",
                    api.base, city.id
                ))
                .json(&body),
            "creating a geofence",
        )
        .await?;
    }
    Ok(())
}

/// Registers the simulated fleet (or reuses the one registered by an earlier run) and returns
/// each vehicle's device secret, in the simulation's order.
async fn setup_fleet(api: &Api, cfg: &DemoConfig, sim: &Sim) -> anyhow::Result<Vec<String>> {
    let path = cfg
        .state_dir
        .join(format!("demo-fleet-{}.json", cfg.city.id));
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(saved) = serde_json::from_str::<Credentials>(&text)
        && saved.seed == cfg.sim.seed
        && saved.city == cfg.city.id
        && saved.vehicles.len() == sim.vehicles().len()
        && saved
            .vehicles
            .iter()
            .zip(sim.vehicles())
            .all(|((id, _), v)| *id == v.id.to_string())
    {
        return Ok(saved.vehicles.into_iter().map(|(_, s)| s).collect());
    }
    let mut secrets = Vec::with_capacity(sim.vehicles().len());
    for chunk in sim.vehicles().chunks(BATCH) {
        let body = json!({"vehicles": chunk.iter().map(|v| json!({
            "city": cfg.city.id, "type": v.vehicle_type.as_str(), "id": v.id.to_string(),
        })).collect::<Vec<_>>()});
        let out = api
            .send(
                api.http
                    .post(format!("{}/v1/admin/vehicles/batch", api.base))
                    .json(&body),
                "registering the fleet",
            )
            .await
            .with_context(|| {
                format!(
                    "the demo fleet (seed {}) seems registered already but its credentials file {} \
                     is missing or different: use another --seed or a fresh data directory",
                    cfg.sim.seed,
                    path.display()
                )
            })?;
        for v in out["vehicles"].as_array().into_iter().flatten() {
            secrets.push(v["device_secret"].as_str().unwrap_or_default().to_owned());
        }
    }
    let saved = Credentials {
        city: cfg.city.id.clone(),
        seed: cfg.sim.seed,
        vehicles: sim
            .vehicles()
            .iter()
            .map(|v| v.id.to_string())
            .zip(secrets.iter().cloned())
            .collect(),
    };
    std::fs::create_dir_all(&cfg.state_dir).ok();
    mobility_services::accounts::secrets::write_private(&path, &serde_json::to_string(&saved)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secrets)
}

/// The events that bring a vehicle from `from` back to available, if any are legal.
fn back_to_service(vehicle_type: VehicleType, from: VehicleState) -> Option<Vec<EventType>> {
    use EventType as E;
    let candidates: [&[EventType]; 9] = [
        &[E::ProviderDropOff],
        &[E::TripEnd],
        &[E::BatteryCharged],
        &[E::ReservationCancel],
        &[E::ServiceStart],
        &[E::Recommission, E::ServiceStart],
        &[E::TripStop, E::TripEnd],
        &[E::ProviderCancellation],
        &[E::ReservationStop, E::ProviderCancellation],
    ];
    candidates
        .into_iter()
        .find(|events| {
            vehicle_type
                .mode()
                .apply_events(from, events, VehicleState::Available)
                .is_ok()
        })
        .map(<[EventType]>::to_vec)
}

/// Puts every simulated vehicle in service (available), whatever state an earlier run left.
async fn deploy(api: &Api, cfg: &DemoConfig, sim: &Sim) -> anyhow::Result<()> {
    let mut states = std::collections::HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!(
            "{}/v1/admin/vehicles?city={}&limit=1000",
            api.base, cfg.city.id
        );
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page = api.send(api.http.get(url), "listing the fleet").await?;
        let rows = page.as_array().cloned().unwrap_or_default();
        for r in &rows {
            states.insert(
                r["id"].as_str().unwrap_or_default().to_owned(),
                r["state"].as_str().unwrap_or_default().to_owned(),
            );
        }
        match rows.last() {
            Some(last) if rows.len() == 1_000 => {
                after = last["id"].as_str().map(str::to_owned);
            }
            _ => break,
        }
    }
    let mut changes = Vec::new();
    for v in sim.vehicles() {
        let id = v.id.to_string();
        let Some(state) = states.get(&id).and_then(|s| VehicleState::parse(s).ok()) else {
            continue;
        };
        if state == VehicleState::Available {
            continue;
        }
        if let Some(events) = back_to_service(v.vehicle_type, state) {
            changes.push(json!({
                "vehicle_id": id,
                "event_types": events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                "vehicle_state": "available",
            }));
        }
    }
    for chunk in changes.chunks(BATCH) {
        api.send(
            api.http
                .post(format!("{}/v1/vehicles/events", api.base))
                .json(&json!({"changes": chunk})),
            "deploying the fleet",
        )
        .await?;
    }
    Ok(())
}

/// The platform as reached over MQTT and HTTP, from the simulation thread.
struct Remote {
    rt: tokio::runtime::Handle,
    http: reqwest::Client,
    base: String,
    rider_token: String,
    staff_token: String,
    city: String,
    clients: Vec<AsyncClient>,
    topics: Vec<(String, String)>,
    clock: Clock,
    status: Arc<DemoStatus>,
}

fn vehicle_slot(id: &VehicleId, n: usize) -> Option<usize> {
    // Simulated ids carry the vehicle's index in their low 64 bits.
    #[allow(clippy::cast_possible_truncation)]
    let k = id.as_uuid().as_u128() as u64;
    usize::try_from(k).ok().filter(|k| *k < n)
}

impl Remote {
    fn publish(&self, k: usize, topic: &str, body: String) {
        match self.clients[k].try_publish(topic, QoS::AtLeastOnce, false, body) {
            Ok(()) => self.status.published.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.status.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn telemetry_json(&self, t: &Telemetry) -> String {
        let mut o = json!({
            "ts": self.clock.wall_ts(t.at.0),
            "lat": t.position.lat(),
            "lon": t.position.lon(),
        });
        if let Some(b) = t.battery {
            o["battery_pct"] = json!(b.get());
        }
        if let Some(s) = t.speed_m_s {
            o["speed_mps"] = json!(s);
        }
        if let Some(m) = t.odometer_m {
            o["odometer_m"] = json!(m);
        }
        if let Some(l) = t.locked {
            o["locked"] = json!(l);
        }
        o.to_string()
    }
}

impl Platform for Remote {
    fn search(&mut self, q: &NearbyQuery, out: &mut Vec<Hit>) {
        let types: Vec<&str> = [
            VehicleType::Scooter,
            VehicleType::Ebike,
            VehicleType::Car,
            VehicleType::Van,
        ]
        .into_iter()
        .filter(|t| q.types.contains(*t))
        .map(VehicleType::as_str)
        .collect();
        let state = match q.state {
            StateFilter::Any => "any",
            StateFilter::Only(_) => "available",
        };
        let url = format!(
            "{}/v1/vehicles/nearby?lat={}&lon={}&radius_m={}&limit={}&type={}&min_battery={}&city={}&state={state}",
            self.base,
            q.center.lat(),
            q.center.lon(),
            q.radius_m,
            q.limit,
            types.join(","),
            q.min_battery,
            self.city
        );
        let req = self.http.get(url).bearer_auth(&self.rider_token);
        let result = self.rt.block_on(async move {
            let r = req.send().await?.error_for_status()?;
            r.json::<Value>().await
        });
        let Ok(body) = result else {
            self.status.search_errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        for v in body["vehicles"].as_array().into_iter().flatten() {
            let (Some(id), Some(lat), Some(lon)) = (
                v["id"].as_str().and_then(|s| VehicleId::parse(s).ok()),
                v["lat"].as_f64(),
                v["lon"].as_f64(),
            ) else {
                continue;
            };
            let Ok(position) = mobility_core::LatLon::new(lat, lon) else {
                continue;
            };
            out.push(Hit {
                id,
                #[allow(clippy::cast_possible_truncation)]
                distance_m: v["distance_m"].as_f64().unwrap_or(0.0) as f32,
                position,
                vehicle_type: v["type"]
                    .as_str()
                    .and_then(|t| VehicleType::parse(t).ok())
                    .unwrap_or(VehicleType::Scooter),
                battery: v["battery_pct"]
                    .as_i64()
                    .and_then(|b| mobility_core::BatteryPct::new(b).ok()),
            });
        }
    }

    fn deliver(&mut self, msg: &Outgoing, _now: TimestampMs) {
        match msg {
            Outgoing::Telemetry(t) => {
                if let Some(k) = vehicle_slot(&t.vehicle_id, self.clients.len()) {
                    let body = self.telemetry_json(t);
                    self.publish(k, &self.topics[k].0, body);
                }
            }
            Outgoing::Imu {
                vehicle,
                at,
                peak_g,
                position,
            } => {
                if let Some(k) = vehicle_slot(vehicle, self.clients.len()) {
                    let body = json!({
                        "type": "imu", "ts": self.clock.wall_ts(at.0), "peak_g": peak_g,
                        "lat": position.lat(), "lon": position.lon(),
                    })
                    .to_string();
                    self.publish(k, &self.topics[k].1, body);
                }
            }
            Outgoing::Lifecycle {
                vehicle,
                events,
                to,
                ..
            } => {
                let body = json!({"changes": [{
                    "vehicle_id": vehicle.to_string(),
                    "event_types": events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                    "vehicle_state": to.as_str(),
                }]});
                let req = self
                    .http
                    .post(format!("{}/v1/vehicles/events", self.base))
                    .bearer_auth(&self.staff_token)
                    .json(&body);
                let ok = self
                    .rt
                    .block_on(async move { req.send().await.map(|r| r.status().is_success()) })
                    .unwrap_or(false);
                if !ok {
                    self.status.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// One vehicle's MQTT connection: keeps it up, subscribes to its commands and acknowledges them
/// (counted in `status`). Used by the demo and by `mobility load trips`.
pub async fn vehicle_link(
    client: AsyncClient,
    mut eventloop: rumqttc::EventLoop,
    id: String,
    status: Arc<DemoStatus>,
) {
    let commands = format!("v1/vehicles/{id}/commands");
    let acks = format!("v1/vehicles/{id}/commands/ack");
    let mut up = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if !up {
                    status.connected.fetch_add(1, Ordering::Relaxed);
                    up = true;
                }
                let _ = client.try_subscribe(&commands, QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == commands => {
                let cmd: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                if let Some(cid) = cmd["id"].as_str() {
                    let ack = json!({"id": cid, "status": "ok"}).to_string();
                    if client
                        .try_publish(&acks, QoS::AtLeastOnce, false, ack)
                        .is_ok()
                    {
                        status.commands_acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(_) => {
                if up {
                    status.connected.fetch_sub(1, Ordering::Relaxed);
                    up = false;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl Demo {
    /// Sets up the city on the platform, connects the fleet and starts the clock.
    pub async fn start(cfg: DemoConfig) -> anyhow::Result<Self> {
        if !(cfg.speed.is_finite() && cfg.speed > 0.0 && cfg.speed <= SPEED_MAX) {
            bail!("the demo speed must be in (0, {SPEED_MAX}]");
        }
        let api = Api {
            http: reqwest::Client::new(),
            base: cfg.api.trim_end_matches('/').to_owned(),
            token: cfg.admin_token.clone(),
        };
        let sim = Sim::new(cfg.sim.clone(), cfg.city.clone());
        setup_city(&api, &cfg.city).await?;
        let secrets = setup_fleet(&api, &cfg, &sim).await?;
        deploy(&api, &cfg, &sim).await?;
        let issue = |role: &str, label: &str| {
            api.send(
                api.http
                    .post(format!("{}/v1/admin/tokens", api.base))
                    .json(&json!({"role": role, "label": label})),
                "issuing a token",
            )
        };
        // Riders search with a staff token until rider accounts exist (bookings issue).
        let riders = issue("staff", "demo riders").await?;
        let staff = issue("staff", "demo field staff").await?;
        let token_ids = [&riders, &staff]
            .iter()
            .filter_map(|t| t["id"].as_str().map(str::to_owned))
            .collect();
        let rider_token = riders["token"].as_str().unwrap_or_default().to_owned();
        let staff_token = staff["token"].as_str().unwrap_or_default().to_owned();

        let (host, port) = cfg
            .mqtt
            .rsplit_once(':')
            .context("the MQTT address is host:port")?;
        let port: u16 = port.parse().context("MQTT port")?;
        let status = Arc::new(DemoStatus::default());
        let mut clients = Vec::with_capacity(secrets.len());
        let mut tasks = Vec::with_capacity(secrets.len());
        let mut topics = Vec::with_capacity(secrets.len());
        for (v, secret) in sim.vehicles().iter().zip(&secrets) {
            let id = v.id.to_string();
            let mut opts = MqttOptions::new(&id, host, port);
            opts.set_credentials(&id, secret)
                .set_keep_alive(Duration::from_secs(60))
                .set_clean_session(true);
            let (client, mut eventloop) = AsyncClient::new(opts, 256);
            let mut network = rumqttc::NetworkOptions::new();
            network.set_tcp_nodelay(true);
            eventloop.set_network_options(network);
            tasks.push(tokio::spawn(vehicle_link(
                client.clone(),
                eventloop,
                id.clone(),
                status.clone(),
            )));
            topics.push((
                format!("v1/vehicles/{id}/telemetry"),
                format!("v1/vehicles/{id}/events"),
            ));
            clients.push(client);
        }

        let clock = Clock {
            wall_start: wall_now(),
            sim_start: sim.now().0,
            speed: cfg.speed,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut remote = Remote {
            rt: tokio::runtime::Handle::current(),
            http: api.http.clone(),
            base: api.base.clone(),
            rider_token,
            staff_token,
            city: cfg.city.id.clone(),
            clients: clients.clone(),
            topics,
            clock,
            status: status.clone(),
        };
        let thread = {
            let (stop, status) = (stop.clone(), status.clone());
            std::thread::Builder::new()
                .name("demo-city".into())
                .spawn(move || {
                    let mut sim = sim;
                    while !stop.load(Ordering::Relaxed) {
                        let target = clock.sim_at(wall_now());
                        sim.advance_to(TimestampMs(target), &mut remote);
                        let t = sim.totals();
                        status
                            .sim_time
                            .store(u64::try_from(sim.now().0).unwrap_or(0), Ordering::Relaxed);
                        status
                            .on_trip
                            .store(sim.trips_in_progress() as u64, Ordering::Relaxed);
                        status.demand.store(t.demand, Ordering::Relaxed);
                        status.served.store(t.served, Ordering::Relaxed);
                        status.lost.store(t.lost, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    sim.flush(&mut remote);
                    sim
                })
                .context("cannot start the simulation thread")?
        };
        Ok(Self {
            status,
            clock,
            stop,
            thread: Some(thread),
            clients,
            tasks,
            api,
            token_ids,
        })
    }

    /// Stops the simulated clock and delivers what was held back ("messages stop"); the
    /// vehicles stay connected. Returns the simulation, whose vehicles' last reports are what the
    /// platform must converge to.
    pub async fn stop_clock(&mut self) -> anyhow::Result<Sim> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().context("the clock is already stopped")?;
        tokio::task::spawn_blocking(move || thread.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the simulation thread panicked"))
    }

    /// Disconnects every vehicle.
    pub async fn close(mut self) {
        if self.thread.is_some() {
            let _ = self.stop_clock().await;
        }
        for c in &self.clients {
            let _ = c.try_disconnect();
        }
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        for id in &self.token_ids {
            let url = format!("{}/v1/admin/tokens/{id}", self.api.base);
            let _ = self
                .api
                .http
                .delete(url)
                .bearer_auth(&self.api.token)
                .send()
                .await;
        }
    }
}
