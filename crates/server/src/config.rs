//! Configuration: one typed [`Settings`] struct, layered defaults → `mobility.toml` →
//! `MOBILITY_*` environment variables. Unknown keys are errors that name the key and its source.
//!
//! Environment names are the upper-cased key with the `MOBILITY_` prefix (`http_addr` →
//! `MOBILITY_HTTP_ADDR`); keys of nested sections, added by later features, use `__` between
//! levels. The standard `OTEL_EXPORTER_OTLP_ENDPOINT` variable is honoured as `otlp_endpoint`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment, Metadata, Profile, Provider,
    error::Kind,
    providers::{Format, Serialized, Toml},
    value::{Dict, Map, Value},
};
use serde::{Deserialize, Serialize};

/// Environment variables with this prefix configure the platform.
pub const ENV_PREFIX: &str = "MOBILITY_";

/// Variables with the prefix that are not settings (and so are not rejected as unknown).
const ENV_NOT_SETTINGS: &[&str] = &["CONFIG"];
const ENV_TEST_PREFIX: &str = "TEST_";

/// The default config file, read when it exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "mobility.toml";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// What one process does (ADR 0012). Every process serves `/healthz`, `/readyz` and
/// `/metrics`, keeps its replica of the live fleet and relays the event outbox; the roles add:
/// - `ingest`: the vehicles' MQTT messages (the embedded broker, or a share of the external
///   broker's shared subscription) and the commands' acknowledgements;
/// - `api`: the HTTP API, the dashboard, the vehicle stream and riders' searches;
/// - `worker`: the scheduled jobs (under leases) and the event bus's consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Takes vehicles' messages.
    pub ingest: bool,
    /// Serves the HTTP API.
    pub api: bool,
    /// Runs jobs and consumers.
    pub worker: bool,
}

impl Roles {
    /// Every role: one process runs the whole platform.
    pub const ALL: Self = Self {
        ingest: true,
        api: true,
        worker: true,
    };

    /// Whether this process runs the whole platform.
    #[must_use]
    pub fn all(self) -> bool {
        self == Self::ALL
    }

    /// Parses `ingest,api,worker` (any order, any subset but none; spaces allowed).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut roles = Self {
            ingest: false,
            api: false,
            worker: false,
        };
        for name in text.split(',').map(str::trim) {
            match name {
                "ingest" => roles.ingest = true,
                "api" => roles.api = true,
                "worker" => roles.worker = true,
                "" => {}
                other => {
                    return Err(ConfigError(format!(
                        "roles: unknown role {other:?}; the roles are ingest, api and worker (comma-separated)"
                    )));
                }
            }
        }
        if !(roles.ingest || roles.api || roles.worker) {
            return Err(ConfigError(
                "roles must name at least one of ingest, api and worker".into(),
            ));
        }
        Ok(roles)
    }
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (self.ingest, "ingest"),
            (self.api, "api"),
            (self.worker, "worker"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        f.write_str(&names.join(","))
    }
}

impl Default for Roles {
    fn default() -> Self {
        Self::ALL
    }
}

impl Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A comma-separated string (`MOBILITY_ROLES=api,worker`) or a TOML list.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            List(Vec<String>),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::List(l) => l.join(","),
        };
        Self::parse(&text).map_err(|e| serde::de::Error::custom(e.0))
    }
}

/// Everything the process can be configured with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// What this process does: `ingest`, `api`, `worker`, comma-separated (default all three).
    /// Running only some needs the shared engines: a NATS bus, an external MQTT broker and one
    /// database for every process.
    pub roles: Roles,
    /// HTTP listen address. Port 0 picks a free port; the chosen address is logged.
    pub http_addr: SocketAddr,
    /// Directory for the embedded database and other local state. Created if missing.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`. Default: SQLite in `data_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Seconds to wait for the database before giving up at start-up.
    pub database_connect_timeout_s: u64,
    /// Most database connections held open.
    pub database_max_connections: u32,
    /// Log filter, `tracing` `EnvFilter` syntax, e.g. `info` or `info,mobility_store=debug`.
    pub log: String,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// On SIGINT/SIGTERM, how long in-flight requests get to finish, in seconds.
    pub shutdown_timeout_s: u64,
    /// Longest time one HTTP request may take, in seconds.
    pub http_request_timeout_s: u64,
    /// Where the embedded MQTT broker for vehicles listens (ignored when `mqtt_url` is set).
    /// Not 1883 by default: a system Mosquitto often holds that port.
    pub mqtt_addr: SocketAddr,
    /// An external MQTT broker (`mqtt://[user:password@]host:port`) to use instead of the
    /// embedded one; the platform subscribes with a shared subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_url: Option<String>,
    /// This process's client id at the external broker; unique per ingest process.
    pub mqtt_client_id: String,
    /// Shared-subscription group at the external broker: processes in one group split the
    /// vehicles' messages between them.
    pub mqtt_share_group: String,
    /// Seconds the external broker keeps this process's session after it disconnects: a
    /// restart within it gets what was queued meanwhile; a process gone longer stops taking
    /// a share of the group's messages. 0: a clean session, forgotten at once.
    pub mqtt_session_expiry_s: u32,
    /// The event bus: `embedded` (a durable log under `data_dir/bus`, for one process) or
    /// `nats://[user:password@]host:port` (NATS JetStream, for several processes).
    pub bus_url: String,
    /// This platform's region, stamped on every event it publishes.
    pub region: String,
    /// Hours of accepted telemetry the bus keeps (its `telemetry` stream; 1 to 8760). Short by
    /// default: the live log's raw history (`history_retention_days`) is the long record; the
    /// stream is for consumers that follow the fleet (replicas, detectors).
    pub bus_telemetry_retention_hours: u32,
    /// Days the bus keeps the other streams' events (1 to 3650; the admin trail keeps at least
    /// a year whatever this says).
    pub bus_retention_days: u32,
    /// Most bytes each stream keeps, in MiB (the oldest go first; telemetry keeps 4× this).
    pub bus_stream_max_mib: u32,
    /// NATS only: the prefix of this platform's streams (`<PREFIX>_<DOMAIN>`) and subjects, so
    /// several platforms can share one server.
    pub bus_prefix: String,
    /// Seconds between snapshots of the live fleet state (0: only at shutdown). Between
    /// snapshots, applied telemetry is kept in a write-ahead log under `data_dir/live`.
    pub live_snapshot_interval_s: u64,
    /// Seconds between the live fleet's snapshots on a shared bus (NATS), which processes
    /// joining late start from (1 to 86400; the `fleet-snapshot` job, run by one worker).
    pub replica_snapshot_interval_s: u64,
    /// Days of raw telemetry history kept under `data_dir/history` (0: keep none).
    pub history_retention_days: u32,
    /// How long a reservation holds its vehicle before it lapses, seconds.
    pub reservation_hold_s: u64,
    /// Requests a second per rider or staff credential (bursts of twice that; admin and gateway
    /// credentials are not limited); anonymous calls get ten times that per client address.
    pub rate_limit_per_s: u32,
    /// Sign-in and sign-up attempts a minute per client address (bursts of a third).
    pub sign_in_per_min: u32,
    /// Browser origins allowed to call the API (CORS), e.g. `["https://app.example.com"]`;
    /// empty: none (the built-in dashboard is same-origin and needs none).
    pub cors_origins: Vec<String>,
    /// How long unlocking and locking wait for the vehicle's acknowledgement, seconds.
    pub unlock_timeout_s: u64,
    /// The fee for ending a trip in a no-parking zone, in hundredths of the city's currency.
    pub no_parking_fee_cents: u32,
    /// Lowest price multiplier dynamic pricing may set, percent of the tariff (80 = ×0.80).
    pub price_floor_pct: u32,
    /// Highest price multiplier, percent of the tariff (150 = ×1.50).
    pub price_cap_pct: u32,
    /// Credit for ending a trip in a zone short of vehicles, hundredths of the currency.
    pub incentive_end_credit_cents: u32,
    /// Discount for starting a trip in a zone with spare vehicles, hundredths of the currency.
    pub incentive_start_discount_cents: u32,
    /// Incentives a city may give per day (UTC), hundredths of the currency.
    pub incentive_daily_budget_cents: u32,
    /// Staff vans per city the field plan routes (0: one per 150 vehicles).
    pub ops_vans: u32,
    /// Bootstrap admin bearer token. When unset, one is generated into `DATA_DIR/admin-token`
    /// on first start (set it explicitly when several processes share a database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Secret that signs account access tokens (HS256). When unset, one is generated into
    /// `DATA_DIR/jwt-secret` on first start (set it explicitly when several processes serve the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// Secret from which each rider's webhook signing key is derived. When unset, one is
    /// generated into `DATA_DIR/webhook-secret` (set it explicitly when several processes run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// OTLP/HTTP collector base URL (e.g. `http://127.0.0.1:4318`); traces are exported when set.
    /// Also read from the standard `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// The base URL riders, trip planners and cities reach this platform at (e.g.
    /// `https://mobility.example.com`): GBFS and MDS links are built on it. Unset: each
    /// request's `Host` header (right on one machine; set it behind a proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The operator's name, as trip planners show it (GBFS `system_information`).
    pub operator_name: String,
    /// Where trip planners report problems with the feeds (GBFS `feed_contact_email`).
    pub feed_contact_email: String,
    /// This operator's MDS `provider_id` (a UUID). Unset: one is generated into
    /// `DATA_DIR/provider-id` on first start (set it when several processes serve MDS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<uuid::Uuid>,
    /// A basemap for the dashboard: an XYZ tile URL template such as
    /// `https://tile.example.com/{z}/{x}/{y}.png`. Unset: the map draws without one (nothing is
    /// fetched from anywhere but this platform).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_tile_url: Option<String>,
    /// The attribution the tile provider requires, shown on the map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_tile_attribution: Option<String>,
    /// Outgoing mail server for the e-mail channel: `smtp://user:pass@host:587` (STARTTLS when
    /// the server offers it; `?tls=required` to insist), `smtps://…:465` (TLS). Unset: no e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// The sender of e-mail.
    pub smtp_from: String,
    /// Push gateway for the push channel: each message is POSTed as JSON
    /// (`{"to": <device token>, "title", "body", "event"}`) to this URL, with `push_token` as a
    /// bearer token. An FCM/APNs relay or a self-hosted gateway sits behind it. Unset: no push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_url: Option<String>,
    /// Bearer token for the push gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_token: Option<String>,
    /// An external OpenID Connect provider whose tokens are accepted as accounts' (its `iss`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// Where its signing keys are (JWKS). Required with `oidc_issuer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_jwks_url: Option<String>,
    /// The audience its tokens must name (`aud`); unset: not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_audience: Option<String>,
    /// The claim holding the person's roles (`admin`, `staff`; anything else is a rider).
    pub oidc_role_claim: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            roles: Roles::ALL,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_connect_timeout_s: 5,
            database_max_connections: 16,
            log: "info".to_owned(),
            log_format: LogFormat::Human,
            shutdown_timeout_s: 10,
            http_request_timeout_s: 30,
            mqtt_addr: SocketAddr::from(([127, 0, 0, 1], 1884)),
            mqtt_url: None,
            mqtt_client_id: "mobility-platform".to_owned(),
            mqtt_share_group: mobility_mqtt::SHARE_GROUP_DEFAULT.to_owned(),
            mqtt_session_expiry_s: 60,
            bus_url: "embedded".to_owned(),
            region: "local".to_owned(),
            bus_telemetry_retention_hours: 6,
            bus_retention_days: 30,
            bus_stream_max_mib: 1024,
            bus_prefix: "mobility".to_owned(),
            live_snapshot_interval_s: 60,
            replica_snapshot_interval_s: 60,
            history_retention_days: 30,
            reservation_hold_s: 600,
            rate_limit_per_s: 20,
            cors_origins: Vec::new(),
            sign_in_per_min: 60,
            unlock_timeout_s: 5,
            no_parking_fee_cents: 500,
            price_floor_pct: 80,
            price_cap_pct: 150,
            incentive_end_credit_cents: 100,
            incentive_start_discount_cents: 50,
            incentive_daily_budget_cents: 300_000,
            ops_vans: 0,
            admin_token: None,
            jwt_secret: None,
            webhook_secret: None,
            otlp_endpoint: None,
            public_url: None,
            operator_name: "Mobility".to_owned(),
            feed_contact_email: "feeds@mobility.invalid".to_owned(),
            provider_id: None,
            map_tile_url: None,
            map_tile_attribution: None,
            smtp_url: None,
            smtp_from: "Mobility <no-reply@mobility.invalid>".to_owned(),
            push_url: None,
            push_token: None,
            oidc_issuer: None,
            oidc_jwks_url: None,
            oidc_audience: None,
            oidc_role_claim: "roles".to_owned(),
        }
    }
}

/// A configuration that cannot be used, said in one line that names the key and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Dynamic pricing and incentives as configured.
    #[must_use]
    pub fn pricing(&self) -> mobility_intel::pricing::PricingConfig {
        mobility_intel::pricing::PricingConfig {
            floor: f64::from(self.price_floor_pct) / 100.0,
            cap: f64::from(self.price_cap_pct) / 100.0,
            end_credit_cents: i64::from(self.incentive_end_credit_cents),
            start_discount_cents: i64::from(self.incentive_start_discount_cents),
            daily_budget_cents: i64::from(self.incentive_daily_budget_cents),
            ..mobility_intel::pricing::PricingConfig::default()
        }
    }

    /// Loads defaults, then the config file, then the process environment.
    ///
    /// `file` is an explicit `--config` path (must exist); without it `./mobility.toml` is read
    /// if present.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        match file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError(format!(
                        "config file {} does not exist or is not a file",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None => {
                if Path::new(DEFAULT_CONFIG_FILE).is_file() {
                    figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
                }
            }
        }
        for (name, value) in env {
            let key = if name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
                if value.is_empty() {
                    continue;
                }
                "otlp_endpoint".to_owned()
            } else {
                let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                    continue;
                };
                if rest.is_empty()
                    || ENV_NOT_SETTINGS.contains(&rest)
                    || rest.starts_with(ENV_TEST_PREFIX)
                {
                    continue;
                }
                rest.to_ascii_lowercase().replace("__", ".")
            };
            figment = figment.merge(EnvVar { name, key, value });
        }
        let settings: Self = figment.extract().map_err(describe)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Whether these roles can work with these engines: a process that runs only part of the
    /// platform relies on other processes for the rest, which they can do only through a
    /// shared bus, broker and database.
    pub fn check_roles(&self) -> Result<(), ConfigError> {
        if self.roles.all() {
            return Ok(());
        }
        let roles = self.roles;
        if !self.bus_url.starts_with("nats://") {
            return Err(ConfigError(format!(
                "roles {roles}: a process that runs only some roles needs a bus shared with the processes that run the others; set bus_url = \"nats://HOST:4222\" (the embedded bus serves one process), or roles = \"ingest,api,worker\""
            )));
        }
        if self.mqtt_url.is_none() {
            return Err(ConfigError(format!(
                "roles {roles}: a process that runs only some roles reaches vehicles through an external MQTT broker (the embedded one lives in a single process); set mqtt_url = \"mqtt://HOST:1883\""
            )));
        }
        if self.database_url.is_none() {
            return Err(ConfigError(format!(
                "roles {roles}: every process must share one database; set database_url (postgres://USER@HOST:PORT/DB) instead of each process's own SQLite file"
            )));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.check_roles()?;
        if let Some(url) = &self.database_url {
            let ok = ["sqlite://", "postgres://", "postgresql://"]
                .iter()
                .any(|p| url.starts_with(p));
            if !ok {
                return Err(ConfigError(format!(
                    "database_url {} is not supported: use sqlite://PATH or postgres://USER@HOST:PORT/DB",
                    mobility_store::redact_url(url)
                )));
            }
        }
        if !(10..=100).contains(&self.price_floor_pct) || !(100..=500).contains(&self.price_cap_pct)
        {
            return Err(ConfigError(format!(
                "price_floor_pct must be 10 to 100 and price_cap_pct 100 to 500, not {} and {}",
                self.price_floor_pct, self.price_cap_pct
            )));
        }
        if self.ops_vans > 10_000 {
            return Err(ConfigError("ops_vans must be at most 10000".into()));
        }
        if self.log_format == LogFormat::Human && self.log.trim().is_empty() {
            return Err(ConfigError("log must not be empty (try \"info\")".into()));
        }
        if let Some(url) = &self.mqtt_url
            && !url.starts_with("mqtt://")
            && !url.starts_with("tcp://")
        {
            return Err(ConfigError(format!(
                "mqtt_url {} is not supported: use mqtt://HOST:PORT",
                mobility_store::redact_url(url)
            )));
        }
        if !(self.bus_url == "embedded"
            || self.bus_url.starts_with("embedded:")
            || self.bus_url.starts_with("nats://")
            || self.bus_url.starts_with("tls://"))
        {
            return Err(ConfigError(format!(
                "bus_url {} is not supported: use \"embedded\" or nats://HOST:PORT",
                mobility_store::redact_url(&self.bus_url)
            )));
        }
        if !(1..=8_760).contains(&self.bus_telemetry_retention_hours) {
            return Err(ConfigError(
                "bus_telemetry_retention_hours must be 1 to 8760".into(),
            ));
        }
        if !(1..=86_400).contains(&self.replica_snapshot_interval_s) {
            return Err(ConfigError(
                "replica_snapshot_interval_s must be 1 to 86400".into(),
            ));
        }
        if !(1..=3_650).contains(&self.bus_retention_days) {
            return Err(ConfigError("bus_retention_days must be 1 to 3650".into()));
        }
        if self.bus_prefix.is_empty()
            || self.bus_prefix.len() > 64
            || !self
                .bus_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ConfigError(format!(
                "bus_prefix {:?}: 1 to 64 lower-case letters, digits or '_'",
                self.bus_prefix
            )));
        }
        if !(1..=1_048_576).contains(&self.bus_stream_max_mib) {
            return Err(ConfigError(
                "bus_stream_max_mib must be 1 to 1048576".into(),
            ));
        }
        if self.region.is_empty()
            || self.region.len() > 32
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError(format!(
                "region {:?}: use 1 to 32 lower-case letters, digits or '-'",
                self.region
            )));
        }
        if let Some(url) = &self.public_url {
            let ok = url::Url::parse(url).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.query().is_none()
            });
            if !ok {
                return Err(ConfigError(format!(
                    "public_url {url:?} is not usable: give the base URL, e.g. https://mobility.example.com"
                )));
            }
        }
        if let Some(t) = &self.map_tile_url
            && mobility_api::ui::tile_origin(t).is_none()
        {
            return Err(ConfigError(format!(
                "map_tile_url {t:?} is not a tile URL template: give http(s)://host/…{{z}}/{{x}}/{{y}}…"
            )));
        }
        if let Some(u) = &self.smtp_url
            && !url::Url::parse(u)
                .is_ok_and(|u| matches!(u.scheme(), "smtp" | "smtps") && u.host().is_some())
        {
            return Err(ConfigError(format!(
                "smtp_url {} is not usable: give smtp://[user:pass@]host:port or smtps://…",
                mobility_store::redact_url(u)
            )));
        }
        if !mobility_services::notifications::is_sender_address(&self.smtp_from) {
            return Err(ConfigError(format!(
                "smtp_from {:?} is not a sender address (e.g. \"Mobility <no-reply@example.com>\")",
                self.smtp_from
            )));
        }
        if let Some(u) = &self.push_url
            && !url::Url::parse(u)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        {
            return Err(ConfigError(format!(
                "push_url {} is not an http(s) URL",
                mobility_store::redact_url(u)
            )));
        }
        match (&self.oidc_issuer, &self.oidc_jwks_url) {
            (Some(_), Some(j))
                if url::Url::parse(j).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) => {}
            (None, None) => {}
            _ => {
                return Err(ConfigError(
                    "oidc_issuer and oidc_jwks_url go together; oidc_jwks_url is the provider's https JWKS URL".into(),
                ));
            }
        }
        let email = self.feed_contact_email.trim();
        let at = email.find('@').unwrap_or(0);
        if at == 0 || at + 1 >= email.len() || email.contains(char::is_whitespace) {
            return Err(ConfigError(format!(
                "feed_contact_email {email:?} is not an e-mail address"
            )));
        }
        if self.operator_name.trim().is_empty() {
            return Err(ConfigError("operator_name must not be empty".into()));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError(
                "database_max_connections must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The database URL in effect: the configured one, or SQLite in the data directory.
    #[must_use]
    pub fn effective_database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| mobility_store::default_sqlite_url(&self.data_dir))
    }

    /// The event bus's configuration: region and each stream's retention.
    #[must_use]
    pub fn bus(&self) -> mobility_bus::BusConfig {
        use std::time::Duration;
        let mib = u64::from(self.bus_stream_max_mib) * 1024 * 1024;
        let days = |d: u32| Duration::from_secs(u64::from(d) * 86_400);
        let retention = mobility_core::Domain::ALL
            .into_iter()
            .map(|d| {
                let r = match d {
                    mobility_core::Domain::Telemetry => mobility_bus::Retention {
                        max_age: Duration::from_secs(
                            u64::from(self.bus_telemetry_retention_hours) * 3_600,
                        ),
                        max_bytes: mib * 4,
                    },
                    mobility_core::Domain::Admin => mobility_bus::Retention {
                        max_age: days(self.bus_retention_days.max(365)),
                        max_bytes: mib,
                    },
                    _ => mobility_bus::Retention {
                        max_age: days(self.bus_retention_days),
                        max_bytes: mib,
                    },
                };
                (d, r)
            })
            .collect();
        mobility_bus::BusConfig {
            region: self.region.clone(),
            retention,
            prefix: self.bus_prefix.clone(),
        }
    }

    /// The effective configuration as TOML, secrets redacted, ready to save as `mobility.toml`.
    #[must_use]
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.admin_token = self.admin_token.as_ref().map(|_| "***".to_owned());
        shown.jwt_secret = self.jwt_secret.as_ref().map(|_| "***".to_owned());
        shown.webhook_secret = self.webhook_secret.as_ref().map(|_| "***".to_owned());
        shown.database_url = Some(mobility_store::redact_url(&self.effective_database_url()));
        shown.otlp_endpoint = self
            .otlp_endpoint
            .as_deref()
            .map(mobility_store::redact_url);
        shown.smtp_url = self.smtp_url.as_deref().map(mobility_store::redact_url);
        shown.bus_url = mobility_store::redact_url(&self.bus_url);
        shown.push_url = self.push_url.as_deref().map(mobility_store::redact_url);
        shown.push_token = self.push_token.as_ref().map(|_| "***".to_owned());
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

/// Environment values are typed like TOML values when they parse as such (`5`, `true`), and are
/// strings otherwise (`127.0.0.1:8080`, `postgres://…`).
fn parse_env_value(raw: &str) -> Value {
    let trimmed = raw.trim();
    if let Ok(n) = trimmed.parse::<i64>() {
        return Value::from(n);
    }
    match trimmed {
        "true" => Value::from(true),
        "false" => Value::from(false),
        _ => Value::from(raw.to_owned()),
    }
}

/// One environment variable as a configuration source, so errors can name the variable.
struct EnvVar {
    name: String,
    key: String,
    value: String,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::default(&self.key, parse_env_value(&self.value)).data()
    }
}

/// The top-level setting names, for "known settings" hints.
fn known_settings() -> String {
    let v = serde_json::to_value(Settings::default()).unwrap_or_default();
    let mut keys: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.extend([
        "admin_token".to_owned(),
        "jwt_secret".to_owned(),
        "webhook_secret".to_owned(),
        "database_url".to_owned(),
        "otlp_endpoint".to_owned(),
    ]);
    keys.sort();
    keys.dedup();
    keys.join(", ")
}

/// Folds a multi-line parser message (with its source excerpt) into one line.
fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| {
            let excerpt = l.starts_with('|')
                || l.split_once('|').is_some_and(|(n, _)| {
                    !n.trim().is_empty() && n.trim().chars().all(|c| c.is_ascii_digit())
                });
            !l.is_empty() && !excerpt
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// Turns a figment error into one line naming the key and its source.
fn describe(err: figment::Error) -> ConfigError {
    let place = err.metadata.as_ref().map_or_else(
        || "the configuration".to_owned(),
        |m| match &m.source {
            Some(figment::Source::File(path)) => format!("config file {}", path.display()),
            _ => m.name.to_string(),
        },
    );
    let key = err.path.join(".");
    let msg = match &err.kind {
        Kind::UnknownField(field, _) => {
            let key = if key.is_empty() { field.clone() } else { key };
            format!(
                "unknown setting `{key}` in {place}; known settings: {}",
                known_settings()
            )
        }
        Kind::InvalidType(actual, expected) => format!(
            "setting `{key}` in {place} has the wrong type: found {actual}, expected {expected}"
        ),
        Kind::Message(m) if key.is_empty() => format!("cannot read {place}: {}", one_line(m)),
        Kind::Message(m) => format!("setting `{key}` in {place} is invalid: {}", one_line(m)),
        other if key.is_empty() => format!("cannot read {place}: {other}"),
        other => format!("setting `{key}` in {place} is invalid: {other}"),
    };
    ConfigError(msg)
}

impl Settings {
    /// What the open-data feeds are configured with.
    #[must_use]
    pub fn feeds(&self) -> mobility_services::open_data::FeedSettings {
        mobility_services::open_data::FeedSettings {
            operator_name: self.operator_name.clone(),
            feed_contact_email: self.feed_contact_email.clone(),
            public_url: self.public_url.clone(),
            data_dir: self.data_dir.clone(),
            history_retention_days: self.history_retention_days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load(file: Option<&Path>, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load_from(file, env(pairs))
    }

    #[test]
    fn defaults_match_the_readme() {
        let s = load(None, &[]).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.effective_database_url(), "sqlite://./data/mobility.db");
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mobility.toml");
        std::fs::write(
            &file,
            "http_addr = \"0.0.0.0:9000\"\nlog = \"debug\"\nshutdown_timeout_s = 3\n",
        )
        .unwrap();
        let s = load(
            Some(&file),
            &[
                ("MOBILITY_LOG", "warn"),
                ("MOBILITY_DATA_DIR", "/var/lib/mobility"),
                ("PATH", "/bin"),
            ],
        )
        .unwrap();
        assert_eq!(s.http_addr.to_string(), "0.0.0.0:9000", "from the file");
        assert_eq!(s.log, "warn", "env beats file");
        assert_eq!(s.shutdown_timeout_s, 3);
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/mobility"));
        assert_eq!(s.database_connect_timeout_s, 5, "default kept");
    }

    #[test]
    fn typed_values_from_the_environment() {
        let s = load(
            None,
            &[
                ("MOBILITY_HTTP_ADDR", "127.0.0.1:0"),
                ("MOBILITY_SHUTDOWN_TIMEOUT_S", "1"),
                ("MOBILITY_LOG_FORMAT", "json"),
                ("MOBILITY_DATABASE_URL", "postgres://app@db/mobility"),
            ],
        )
        .unwrap();
        assert_eq!(s.http_addr.port(), 0);
        assert_eq!(s.shutdown_timeout_s, 1);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.effective_database_url(), "postgres://app@db/mobility");
    }

    #[test]
    fn the_bus_is_configured_and_checked() {
        let s = load(
            None,
            &[
                ("MOBILITY_BUS_URL", "nats://u:secret@nats:4222"),
                ("MOBILITY_REGION", "eu-west"),
                ("MOBILITY_BUS_TELEMETRY_RETENTION_HOURS", "6"),
            ],
        )
        .unwrap();
        let bus = s.bus();
        assert_eq!(bus.region, "eu-west");
        let telemetry = bus.retention_of(mobility_core::Domain::Telemetry);
        assert_eq!(telemetry.max_age.as_secs(), 6 * 3_600);
        assert!(
            bus.retention_of(mobility_core::Domain::Admin)
                .max_age
                .as_secs()
                >= 365 * 86_400
        );
        assert!(!s.to_redacted_toml().contains("secret"));
        for (k, v, needle) in [
            ("MOBILITY_BUS_URL", "kafka://k:9092", "bus_url"),
            ("MOBILITY_REGION", "EU West", "region"),
            ("MOBILITY_BUS_RETENTION_DAYS", "0", "bus_retention_days"),
        ] {
            let err = load(None, &[(k, v)]).unwrap_err().0;
            assert!(err.contains(needle), "{k}={v}: {err}");
        }
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_source() {
        let err = load(None, &[("MOBILITY_HTTP_ADRR", "127.0.0.1:1")])
            .unwrap_err()
            .0;
        assert!(
            err.starts_with(
                "unknown setting `http_adrr` in environment variable MOBILITY_HTTP_ADRR"
            ),
            "{err}"
        );
        assert!(err.contains("http_addr"), "lists the known keys: {err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(&file, "datadir = \"x\"\n").unwrap();
        let err = load(Some(&file), &[]).unwrap_err().0;
        assert!(
            err.starts_with("unknown setting `datadir` in config file "),
            "{err}"
        );
        assert!(err.contains("m.toml"), "{err}");
    }

    #[test]
    fn bad_values_and_files_are_one_line_errors() {
        let err = load(None, &[("MOBILITY_SHUTDOWN_TIMEOUT_S", "soon")])
            .unwrap_err()
            .0;
        assert!(
            err.contains("`shutdown_timeout_s`") && err.contains("MOBILITY_SHUTDOWN_TIMEOUT_S"),
            "{err}"
        );
        let err = load(None, &[("MOBILITY_HTTP_ADDR", "localhost")])
            .unwrap_err()
            .0;
        assert!(err.contains("`http_addr`"), "{err}");
        let err = load(None, &[("MOBILITY_DATABASE_URL", "mysql://root:pw@h/db")])
            .unwrap_err()
            .0;
        assert!(
            err.contains("not supported") && !err.contains("pw@"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broken.toml");
        std::fs::write(&file, "http_addr = \n").unwrap();
        let err = load(Some(&file), &[]).unwrap_err().0;
        assert!(!err.contains('\n'), "one line: {err}");
        assert!(err.contains("broken.toml"), "{err}");
        let err = load(Some(&dir.path().join("missing.toml")), &[])
            .unwrap_err()
            .0;
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn non_setting_variables_are_ignored() {
        let s = load(
            None,
            &[
                ("MOBILITY_CONFIG", "x.toml"),
                ("MOBILITY_TEST_POSTGRES_URL", "postgres://x"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ],
        )
        .unwrap();
        assert_eq!(s.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
    }

    #[test]
    fn roles_parse_from_env_and_file_and_need_the_shared_engines() {
        let shared = [
            ("MOBILITY_BUS_URL", "nats://127.0.0.1:4222"),
            ("MOBILITY_MQTT_URL", "mqtt://127.0.0.1:1883"),
            ("MOBILITY_DATABASE_URL", "postgres://app@db:5432/mobility"),
        ];
        let with = |roles: &str| {
            let mut env = shared.to_vec();
            env.push(("MOBILITY_ROLES", roles));
            load(None, &env)
        };
        assert_eq!(load(None, &[]).unwrap().roles, Roles::ALL);
        let api = with("api").unwrap().roles;
        assert!(api.api && !api.ingest && !api.worker);
        assert_eq!(
            with(" worker , ingest ").unwrap().roles.to_string(),
            "ingest,worker"
        );
        assert!(with("ingest,api,worker").unwrap().roles.all());
        let e = with("api,web").unwrap_err().0;
        assert!(
            e.contains("unknown role \"web\"") && e.contains("MOBILITY_ROLES"),
            "{e}"
        );
        assert!(with("").unwrap_err().0.contains("at least one"));
        // A TOML list works too, and the printed form loads back.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mobility.toml");
        std::fs::write(&file, "roles = [\"worker\"]\n").unwrap();
        let s = load(Some(&file), &shared).unwrap();
        assert_eq!(s.roles.to_string(), "worker");
        assert!(s.to_redacted_toml().contains("roles = \"worker\""));
        // Part of the platform alone, on engines only one process can use: refused, saying why.
        for (missing, needle) in [
            ("MOBILITY_BUS_URL", "bus_url"),
            ("MOBILITY_MQTT_URL", "mqtt_url"),
            ("MOBILITY_DATABASE_URL", "database_url"),
        ] {
            let mut env: Vec<_> = shared
                .iter()
                .filter(|(k, _)| *k != missing)
                .copied()
                .collect();
            env.push(("MOBILITY_ROLES", "api"));
            let e = load(None, &env).unwrap_err().0;
            assert!(e.contains("roles api") && e.contains(needle), "{e}");
        }
        // The whole platform in one process needs none of them.
        assert!(load(None, &[("MOBILITY_ROLES", "api,worker,ingest")]).is_ok());
    }

    #[test]
    fn printed_configuration_has_no_secrets_and_loads_back() {
        let s = load(
            None,
            &[
                (
                    "MOBILITY_DATABASE_URL",
                    "postgres://app:hunter2@db:5432/mobility?sslmode=require",
                ),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://user:tok@collector:4318",
                ),
            ],
        )
        .unwrap();
        let shown = s.to_redacted_toml();
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok@"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres://app:***@db:5432/mobility?sslmode=require"),
            "{shown}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mobility.toml");
        std::fs::write(&file, &shown).unwrap();
        let back = load(Some(&file), &[]).unwrap();
        assert_eq!(back.http_addr, s.http_addr);
        assert_eq!(back.log, s.log);
    }
}
