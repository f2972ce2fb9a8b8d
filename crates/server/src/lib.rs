//! The process shell of the mobility platform, and nothing more: typed configuration
//! ([`Settings`]), telemetry (logs, metrics, traces), the wall clock, [`Application::build`]
//! (which opens the store, the bus and the live fleet and wires the services and the API), and
//! the workers (the bus consumers and the loops that feed the bus).
//!
//! The binary (`crates/mobility`) is a thin command-line front over [`Application`]; tests build
//! the same `Application` on port 0 (see `tests/`).

pub mod app;
pub mod clock;
pub mod config;
pub mod jobs;
pub mod telemetry;
pub mod workers;

#[cfg(test)]
mod layout;

pub use app::{Application, StartupError};
pub use clock::SystemClock;
pub use config::{ConfigError, LogFormat, Settings};
