//! The live fleet at runtime: what the platform knows of its vehicles right now and how it
//! learns it.
//!
//! - [`fleet`]: the in-memory fleet (the pure index of `mobility-fleet` per city, sharded), the
//!   dashboard's recent-events feed and the changes live views follow;
//! - [`state`]: [`state::LiveState`], ingest made durable through the [`live_log`] and handed to
//!   the [`relay`];
//! - [`ingest`]: parsing and checking vehicle reports (JSON and the binary frame) at the edge;
//! - [`vehicle_link`]: the platform's side of the MQTT vehicle channel;
//! - [`commands`]: unlock, lock, speed limits, sent and acknowledged;
//! - [`relay`]: what ingest accepted (and riders' searches), published to the event bus;
//! - [`feed`]: the live views' changes, followed from the bus's telemetry stream;
//! - [`replica`]: on a shared bus, the telemetry and states other processes accepted.
//!
//! No HTTP and no SQL here: the store is reached through its seam, the bus through its.

pub mod commands;
pub mod feed;
pub mod fleet;
pub mod ingest;
pub mod live_log;
pub mod relay;
pub mod replica;
pub mod state;
pub mod vehicle_link;
