//! The process shell of the mobility platform: typed configuration, telemetry (logs, metrics,
//! traces), the HTTP API and the application lifecycle (build, serve, graceful shutdown).
//!
//! The binary (`crates/mobility`) is a thin command-line front over [`Application`]; tests build
//! the same `Application` on port 0 (see `tests/`).

pub mod accounts;
pub mod app;
pub mod auth;
pub mod bookings;
pub mod commands;
pub mod config;
pub mod fleet;
pub mod http;
pub mod ingest;
pub mod intel;
pub mod kyc;
pub mod live_log;
pub mod notifications;
pub mod oidc;
pub mod open_data;
pub mod payments;
pub mod reactions;
pub mod telemetry;
pub mod vehicle_link;

pub use app::{Application, StartupError};
pub use config::{ConfigError, LogFormat, Settings};
