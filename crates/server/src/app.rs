//! The application lifecycle: [`Application::build`] prepares everything that can fail at start-up
//! (data directory, database, migrations, listener) and reports it as one [`StartupError`];
//! [`Application::run_until`] serves until a shutdown signal, then drains within a bound.

use std::{future::Future, io::ErrorKind, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use mobility_store::{OpenOptions, Store, StoreError};
use tokio::net::TcpListener;

use mobility_api::{self as http, AppState};
use mobility_core::Clock;
use mobility_live::{commands::Commands, vehicle_link::VehicleChannel};

use crate::{SystemClock, config::Settings, telemetry};

/// Why the platform could not start, in words that say how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The data directory cannot be created or written.
    #[error(
        "data directory {path} is not usable: {reason}; set MOBILITY_DATA_DIR (or data_dir in mobility.toml) to a writable directory"
    )]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// The database could not be opened or migrated.
    #[error("{0}; check MOBILITY_DATABASE_URL (or database_url in mobility.toml)")]
    Store(StoreError),
    /// The admin token file could not be read or written.
    #[error("{0}; set MOBILITY_ADMIN_TOKEN or make the data directory writable")]
    AdminToken(mobility_services::accounts::secrets::AdminTokenError),
    /// The MQTT side could not start.
    #[error(
        "{0}; set MOBILITY_MQTT_ADDR to a free address (port 0 picks one) or MOBILITY_MQTT_URL to an external broker"
    )]
    Mqtt(mobility_mqtt::MqttError),
    /// The event bus could not be opened.
    #[error("{0}; check MOBILITY_BUS_URL (or bus_url in mobility.toml)")]
    Bus(mobility_bus::BusError),
    /// The settings cannot work together.
    #[error("{0}")]
    Config(crate::config::ConfigError),
    /// The HTTP address could not be bound.
    #[error(
        "cannot listen on {addr}: {reason}; set MOBILITY_HTTP_ADDR to a free address (port 0 picks one)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

// Not `#[from]`: that would also make the store error the `source`, and `{:#}` would print it twice.
impl From<StoreError> for StartupError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A built, not yet serving, platform process.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    settings: Settings,
    mqtt: Arc<VehicleChannel>,
    relay_task: tokio::task::JoinHandle<()>,
}

/// Checks that `dir` exists (creating it) and that we can write a file in it.
fn ensure_writable_dir(dir: &Path) -> Result<(), StartupError> {
    let fail = |reason: String| StartupError::DataDir {
        path: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| fail(e.to_string()))?;
    std::fs::remove_file(&probe).map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Opens and migrates the store named by the settings.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartupError> {
    let url = settings.effective_database_url();
    let options = OpenOptions {
        connect_timeout: Duration::from_secs(settings.database_connect_timeout_s.max(1)),
        max_connections: settings.database_max_connections,
        postgres_schema: None,
    };
    let store = mobility_store::open(&url, &options).await?;
    let applied = store.migrate().await?;
    if applied > 0 {
        tracing::info!(
            applied,
            backend = store.backend().as_str(),
            "applied database migrations"
        );
    }
    Ok(store)
}

impl Application {
    /// Prepares the data directory, opens and migrates the store, and binds the HTTP listener.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`Application::build`] with a clock of the caller's (the simulator, tests).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        // First: components cache metric handles, which must come from the real recorder.
        let metrics = telemetry::metrics_handle();
        settings.check_roles().map_err(StartupError::Config)?;
        ensure_writable_dir(&settings.data_dir)?;
        let listener = TcpListener::bind(settings.http_addr).await.map_err(|e| {
            let reason = match e.kind() {
                ErrorKind::AddrInUse => "address already in use".to_owned(),
                ErrorKind::PermissionDenied => {
                    "permission denied (ports below 1024 need privileges)".to_owned()
                }
                ErrorKind::AddrNotAvailable => "address not available on this machine".to_owned(),
                _ => e.to_string(),
            };
            StartupError::Bind {
                addr: settings.http_addr,
                reason,
            }
        })?;
        // The live log is read (snapshot and segments decoded) while the store opens and the
        // registry loads: neither needs the other.
        let live_dir = settings.data_dir.join("live");
        let history_dir =
            (settings.history_retention_days > 0).then(|| settings.data_dir.join("history"));
        let log_read = {
            let (live_dir, history_dir) = (live_dir.clone(), history_dir.clone());
            tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                mobility_live::live_log::LiveLog::open(&live_dir, history_dir.as_deref())
                    .map(|(log, recovered)| (log, recovered, started.elapsed()))
            })
        };
        let phase = std::time::Instant::now();
        let store = open_store(&settings).await?;
        let store_ms = phase.elapsed().as_millis();
        let (admin_token, created) = mobility_services::accounts::secrets::bootstrap_admin_token(
            settings.admin_token.as_deref(),
            &settings.data_dir,
        )
        .map_err(StartupError::AdminToken)?;
        if created {
            tracing::info!(
                path = %settings.data_dir.join(mobility_services::accounts::secrets::ADMIN_TOKEN_FILE).display(),
                "generated an admin token; read it from this file (it is never logged)"
            );
        }
        let (webhook_secret, _) = mobility_services::accounts::secrets::bootstrap_secret(
            settings.webhook_secret.as_deref(),
            &settings.data_dir.join("webhook-secret"),
        )
        .map_err(StartupError::AdminToken)?;
        let (jwt_secret, _) = mobility_services::accounts::secrets::bootstrap_secret(
            settings.jwt_secret.as_deref(),
            &settings
                .data_dir
                .join(mobility_services::accounts::JWT_SECRET_FILE),
        )
        .map_err(StartupError::AdminToken)?;
        let accounts = Arc::new(
            mobility_services::accounts::Accounts::new(&jwt_secret, store.clone())
                .await
                .map_err(|reason| {
                    StartupError::AdminToken(
                        mobility_services::accounts::secrets::AdminTokenError::other(reason),
                    )
                })?,
        );
        let provider_id = mobility_services::open_data::bootstrap_provider_id(
            settings.provider_id,
            &settings.data_dir,
        )
        .map_err(StartupError::AdminToken)?;
        let open_data = Arc::new(mobility_services::open_data::OpenData::new(
            &settings.feeds(),
            provider_id,
            &jwt_secret,
            clock.now(),
        ));
        let mut auth =
            mobility_services::accounts::Auth::new(&admin_token, store.clone(), accounts);
        if let (Some(issuer), Some(jwks)) = (&settings.oidc_issuer, &settings.oidc_jwks_url) {
            let oidc = Arc::new(mobility_services::accounts::oidc::Oidc::new(
                issuer,
                jwks,
                settings.oidc_audience.as_deref(),
                &settings.oidc_role_claim,
                clock.clone(),
            ));
            oidc.prefetch().await;
            auth = auth.with_oidc(oidc);
        }
        let auth = Arc::new(auth);
        let phase = std::time::Instant::now();
        let fleet = Arc::new(mobility_live::fleet::Fleet::load(store.as_ref()).await?);
        tracing::info!(
            vehicles = fleet.len(),
            store_ms,
            registry_ms = u64::try_from(phase.elapsed().as_millis()).unwrap_or(u64::MAX),
            "loaded the vehicle registry"
        );
        let started = std::time::Instant::now();
        let commands = Arc::new(Commands::new(store.clone()));
        let events = Arc::new(mobility_live::fleet::FleetEvents::default());
        let bus = mobility_bus::open(&settings.bus_url, &settings.data_dir, settings.bus())
            .await
            .map_err(StartupError::Bus)?;
        tracing::info!(
            backend = bus.backend(),
            url = %mobility_store::redact_url(&settings.bus_url),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "event bus open"
        );
        let (relay, relay_task) = mobility_live::relay::Relay::start(bus.clone(), clock.clone());
        let log_failed = |reason: String| StartupError::DataDir {
            path: live_dir.display().to_string(),
            reason: format!("cannot open the live-state log: {reason}"),
        };
        let (log, mut recovered, read_in) = log_read
            .await
            .map_err(|e| log_failed(e.to_string()))?
            .map_err(|e| log_failed(e.to_string()))?;
        let live = Arc::new(mobility_live::state::LiveState::with_log(
            fleet.clone(),
            log,
            &recovered,
            history_dir.as_deref(),
            events.clone(),
            relay,
        ));
        // What the log's segments held may not have reached the bus before the process
        // stopped (a crash between the fsync and the relay): publish it again, in the
        // background; consumers ignore what they already have.
        let tail = recovered
            .reports
            .split_off(recovered.from_snapshot.min(recovered.reports.len()));
        let recovered_n = recovered.reports.len() + tail.len();
        if !tail.is_empty() {
            let (live, now) = (live.clone(), clock.now());
            tokio::spawn(async move {
                let n = live.republish(&tail, now).await;
                tracing::info!(
                    reports = n,
                    "published the live log's recovered reports again"
                );
            });
        }
        tracing::info!(
            reports = recovered_n,
            from_snapshot = recovered.from_snapshot,
            torn_bytes = recovered.torn_bytes,
            read_ms = u64::try_from(read_in.as_millis()).unwrap_or(u64::MAX),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "recovered live fleet state"
        );
        let link = Arc::new(mobility_live::vehicle_link::PlatformLink::new(
            live.clone(),
            store.clone(),
            commands.clone(),
            bus.clone(),
            clock.clone(),
        ));
        let mqtt = match &settings.mqtt_url {
            // Without the ingest role: a connection that only sends commands.
            Some(url) if !settings.roles.ingest => VehicleChannel::External(
                mobility_mqtt::ExternalBroker::connect_publisher(
                    url,
                    &settings.mqtt_client_id,
                    link,
                )
                .map_err(StartupError::Mqtt)?,
            ),
            Some(url) => VehicleChannel::External(
                mobility_mqtt::ExternalBroker::connect_with(
                    url,
                    &settings.mqtt_client_id,
                    &settings.mqtt_share_group,
                    link,
                    mobility_mqtt::SessionOptions {
                        expiry: Duration::from_secs(u64::from(settings.mqtt_session_expiry_s)),
                    },
                )
                .map_err(StartupError::Mqtt)?,
            ),
            None => VehicleChannel::Embedded(
                mobility_mqtt::EmbeddedBroker::start(settings.mqtt_addr, link)
                    .await
                    .map_err(StartupError::Mqtt)?,
            ),
        };
        let mqtt = Arc::new(mqtt);
        commands.attach(mqtt.clone());
        Ok(Self {
            listener,
            state: {
                let mut notifier =
                    mobility_services::notifications::Notifier::new(store.clone(), &webhook_secret);
                if let Some(url) = &settings.smtp_url {
                    let email =
                        mobility_services::notifications::Email::new(url, &settings.smtp_from)
                            .map_err(|reason| {
                                StartupError::AdminToken(
                                    mobility_services::accounts::secrets::AdminTokenError::other(
                                        reason,
                                    ),
                                )
                            })?;
                    notifier = notifier.with_email(Arc::new(email));
                }
                if let Some(url) = &settings.push_url {
                    notifier =
                        notifier.with_push(Arc::new(mobility_services::notifications::Push::new(
                            url,
                            settings.push_token.as_deref(),
                        )));
                }
                let notifier = Arc::new(notifier);
                let kyc = Arc::new(mobility_services::kyc::Kyc::new(
                    store.clone(),
                    Arc::new(mobility_services::kyc::ManualReview),
                ));
                let intel = Arc::new(mobility_services::intel::Intel::new(
                    store.clone(),
                    fleet.clone(),
                    mobility_services::intel::IntelSettings {
                        pricing: settings.pricing(),
                        vans: settings.ops_vans,
                        models_dir: Some(settings.data_dir.join("models")),
                        ..mobility_services::intel::IntelSettings::default()
                    },
                    clock.now(),
                ));
                AppState::new(mobility_api::AppStateInner {
                    intel: intel.clone(),
                    open_data,
                    ui: Arc::new(mobility_api::ui::UiSettings::new(
                        settings.map_tile_url.clone(),
                        settings.map_tile_attribution.clone(),
                    )),
                    kyc: kyc.clone(),
                    notifier: notifier.clone(),
                    limits: Arc::new(mobility_api::limits::Limits::new(
                        settings.rate_limit_per_s,
                        settings.sign_in_per_min,
                    )),
                    bookings: Arc::new(
                        mobility_services::bookings::Bookings::new(
                            store.clone(),
                            fleet.clone(),
                            commands.clone(),
                            kyc,
                            Arc::new(mobility_services::payments::Payments::new(
                                store.clone(),
                                vec![Arc::new(mobility_services::payments::SandboxProvider::new(
                                    "sandbox",
                                ))],
                                Duration::from_secs(5),
                                clock.clone(),
                            )),
                            mobility_services::bookings::BookingTiming {
                                hold_s: settings.reservation_hold_s,
                                unlock_timeout_s: settings.unlock_timeout_s,
                                no_parking_fee_cents: i64::from(settings.no_parking_fee_cents),
                            },
                            clock.clone(),
                        )
                        .with_intel(intel),
                    ),
                    store,
                    metrics,
                    fleet,
                    live,
                    auth,
                    commands,
                    bus: bus.clone(),
                    demand: Arc::new(mobility_live::relay::DemandRelay::default()),
                    clock: clock.clone(),
                    jobs: crate::jobs::configured(&settings)
                        .iter()
                        .map(|j| (j.name, j.every))
                        .collect(),
                })
            },
            mqtt,
            settings,
            relay_task,
        })
    }

    /// The bound address (with the real port when port 0 was asked for).
    ///
    /// # Panics
    /// Never in practice: a bound TCP listener always has a local address.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The bound port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The store in use.
    #[must_use]
    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// Where the embedded MQTT broker listens (`None` with an external broker).
    #[must_use]
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        match self.mqtt.as_ref() {
            VehicleChannel::Embedded(b) => Some(b.local_addr()),
            VehicleChannel::External(_) => None,
        }
    }

    /// The event bus.
    #[must_use]
    pub fn bus(&self) -> Arc<dyn mobility_bus::EventBus> {
        self.state.bus.clone()
    }

    /// The live fleet state.
    #[must_use]
    pub fn fleet(&self) -> Arc<mobility_live::fleet::Fleet> {
        self.state.fleet.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting connections, gives in-flight
    /// requests up to `shutdown_timeout_s` to finish, and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.local_addr();
        let drain = Duration::from_secs(self.settings.shutdown_timeout_s);
        let store = self.state.store.clone();
        let metrics = self.state.metrics.clone();
        let limits = self.state.limits.clone();
        let pool_store = store.clone();
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                metrics.run_upkeep();
                limits.housekeeping();
                let pool = pool_store.pool_stats();
                metrics::gauge!("store_pool_connections", "state" => "in_use")
                    .set(f64::from(pool.size.saturating_sub(pool.idle)));
                metrics::gauge!("store_pool_connections", "state" => "idle")
                    .set(f64::from(pool.idle));
                metrics::gauge!("store_pool_max").set(f64::from(pool.max));
            }
        });
        #[allow(clippy::cast_precision_loss)]
        if let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
        {
            metrics::gauge!("process_start_time_seconds").set(since_epoch.as_secs_f64());
        }
        let roles = self.settings.roles;
        // The scheduled jobs, each run by one process at a time (crate::jobs), in workers.
        let holder = crate::jobs::holder_id();
        let (jobs_stop, jobs_rx) = tokio::sync::watch::channel(false);
        let mut jobs = Vec::new();
        for spec in crate::jobs::configured(&self.settings)
            .into_iter()
            .filter(|_| roles.worker)
        {
            let (store, clock, holder, stop) = (
                self.state.store.clone(),
                self.state.clock.clone(),
                holder.clone(),
                jobs_rx.clone(),
            );
            let (commands, bookings, notifier, intel) = (
                self.state.commands.clone(),
                self.state.bookings.clone(),
                self.state.notifier.clone(),
                self.state.intel.clone(),
            );
            let (bus, fleet) = (self.state.bus.clone(), self.state.fleet.clone());
            jobs.push(tokio::spawn(crate::jobs::run(
                store,
                clock,
                holder,
                spec,
                stop,
                move |now| {
                    let (commands, bookings, notifier, intel) = (
                        commands.clone(),
                        bookings.clone(),
                        notifier.clone(),
                        intel.clone(),
                    );
                    let (bus, fleet) = (bus.clone(), fleet.clone());
                    async move {
                        match spec.name {
                            "command-timeouts" => {
                                commands.expire(now).await;
                                Ok(())
                            }
                            "hold-expiry" => bookings
                                .expire(now)
                                .await
                                .map(|_| ())
                                .map_err(|e| e.to_string()),
                            "notification-delivery" => notifier
                                .deliver_due(now)
                                .await
                                .map(|_| ())
                                .map_err(|e| e.to_string()),
                            // In its own task: a bug in one city's update is a failed run, and
                            // the next minute runs again.
                            "intel" => tokio::spawn(async move { intel.tick(now).await })
                                .await
                                .map_err(|e| format!("the update panicked: {e}")),
                            "fleet-snapshot" => {
                                mobility_live::replica::publish_snapshot(bus.as_ref(), &fleet, now)
                                    .await
                                    .map(|n| {
                                        tracing::debug!(vehicles = n, "fleet snapshot on the bus")
                                    })
                            }
                            other => Err(format!("no job {other}")),
                        }
                    }
                },
            )));
        }
        let retention_days = self.settings.history_retention_days;
        let pruner = tokio::spawn({
            let live = self.state.live.clone();
            let clock = self.state.clock.clone();
            async move {
                if retention_days == 0 {
                    return;
                }
                let mut tick = tokio::time::interval(Duration::from_secs(3_600));
                loop {
                    tick.tick().await;
                    match live.prune_history(retention_days, clock.now()).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(files = n, retention_days, "pruned telemetry history")
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot prune telemetry history"),
                    }
                }
            }
        });
        let live = self.state.live.clone();
        let every = self.settings.live_snapshot_interval_s;
        let snapshots = tokio::spawn({
            let live = live.clone();
            async move {
                if every == 0 {
                    return;
                }
                let mut tick = tokio::time::interval(Duration::from_secs(every));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match live.snapshot().await {
                        Ok(n) => tracing::debug!(vehicles = n, "live-state snapshot written"),
                        Err(e) => tracing::error!(error = %e, "cannot write a live-state snapshot"),
                    }
                }
            }
        });
        // The reactions: consumers of the bus, stopped after the last publisher. Every process
        // makes sure they exist before its first request (so none misses an event, whichever
        // process starts first); workers run them.
        if let Err(e) = crate::workers::ensure_consumers(self.state.bus.as_ref()).await {
            tracing::error!(error = %e, "cannot open the event bus's consumers; they retry in the background");
        }
        let (reactions_stop, reactions_rx) = tokio::sync::watch::channel(false);
        let mut reactions = Vec::new();
        if roles.worker {
            reactions.push(tokio::spawn(crate::workers::intel(
                self.state.bus.clone(),
                self.state.fleet.clone(),
                reactions_rx.clone(),
            )));
            reactions.push(tokio::spawn(crate::workers::geofence_actions(
                self.state.bus.clone(),
                self.state.live.events().clone(),
                self.state.commands.clone(),
                self.state.clock.clone(),
                reactions_rx.clone(),
            )));
            reactions.push(tokio::spawn(crate::workers::notifications(
                self.state.bus.clone(),
                self.state.store.clone(),
                self.state.notifier.clone(),
                reactions_rx.clone(),
            )));
        }
        let lag = roles.worker.then(|| {
            tokio::spawn(crate::workers::lag_metrics(
                self.state.bus.clone(),
                reactions_rx.clone(),
            ))
        });
        // Riders' searches and the vehicle stream belong to the API.
        let (demand_stop, demand_rx) = tokio::sync::watch::channel(false);
        let demand = roles.api.then(|| {
            tokio::spawn(
                self.state
                    .demand
                    .clone()
                    .run(self.state.bus.clone(), demand_rx),
            )
        });
        let feed = roles.api.then(|| {
            tokio::spawn(mobility_live::feed::run(
                self.state.bus.clone(),
                self.state.live.clone(),
                reactions_rx.clone(),
            ))
        });
        let replica = tokio::spawn(mobility_live::replica::run(
            self.state.bus.clone(),
            self.state.fleet.clone(),
            self.state.store.clone(),
            self.state.clock.clone(),
            reactions_rx.clone(),
        ));
        let (outbox_stop, outbox_rx) = tokio::sync::watch::channel(false);
        let outbox = tokio::spawn(crate::workers::outbox_relay(
            self.state.store.clone(),
            self.state.bus.clone(),
            outbox_rx,
        ));
        let bus = self.state.bus.clone();
        let timeout = Duration::from_secs(self.settings.http_request_timeout_s.max(1));
        let router = if roles.api {
            http::router(self.state, timeout)
        } else {
            http::health_router(self.state, timeout, &roles.to_string())
        };
        let router = match http::cors(&self.settings.cors_origins) {
            Some(cors) => router.layer(cors),
            None => router,
        };
        tracing::info!(
            backend = store.backend().as_str(),
            roles = %roles,
            "listening on http://{addr}"
        );

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = http::serve(self.listener, router, async move {
            let _ = stop_rx.await;
        });
        tokio::pin!(server);
        tokio::pin!(shutdown);
        let result = tokio::select! {
            result = &mut server => result,
            () = &mut shutdown => {
                tracing::info!(drain_s = drain.as_secs(), "shutting down: no new connections, draining in-flight requests");
                let _ = stop_tx.send(());
                if let Ok(result) = tokio::time::timeout(drain, &mut server).await {
                    result
                } else {
                    tracing::warn!(drain_s = drain.as_secs(), "in-flight requests did not finish in time; closing them");
                    Ok(())
                }
            }
        };
        upkeep.abort();
        let _ = jobs_stop.send(true);
        for job in jobs {
            let _ = tokio::time::timeout(Duration::from_secs(5), job).await;
        }
        pruner.abort();
        self.mqtt.shutdown().await;
        // Everything accepted is published before the reactions stop.
        live.relay().drain(Duration::from_secs(5)).await;
        snapshots.abort();
        // A final snapshot makes the next start fast (nothing to replay); it waits for the
        // relay to publish what the log holds.
        match live.snapshot().await {
            Ok(n) => tracing::info!(vehicles = n, "final live-state snapshot written"),
            Err(e) => {
                tracing::error!(error = %e, "cannot write the final live-state snapshot; the log still holds everything")
            }
        }
        let _ = demand_stop.send(true);
        if let Some(demand) = demand {
            let _ = tokio::time::timeout(Duration::from_secs(5), demand).await;
        }
        let _ = outbox_stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), outbox).await;
        let _ = reactions_stop.send(true);
        for reaction in reactions {
            let _ = tokio::time::timeout(Duration::from_secs(2), reaction).await;
        }
        if let Some(lag) = lag {
            lag.abort();
        }
        if let Some(feed) = feed {
            let _ = tokio::time::timeout(Duration::from_secs(2), feed).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), replica).await;
        self.relay_task.abort();
        drop(bus);
        store.close().await;
        tracing::info!("stopped");
        result
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called (not
/// when the future is first polled), so a signal that arrives right after start-up is never
/// the default, fatal one. Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        async move {
            let int = async {
                match interrupt.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let term = async {
                match terminate.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = int => tracing::info!("received SIGINT"),
                () = term => tracing::info!("received SIGTERM"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("received Ctrl-C");
    }
}
