//! Live fleet state: every vehicle's latest position and condition, queryable in microseconds.
//!
//! - [`index::CityIndex`]: one city's vehicles in a hashed uniform grid, with nearest-k within a
//!   radius (filtered by type, battery and state), bounding-box and H3 queries, and fleet stats.
//! - [`telemetry`]: the ingest rules: what a telemetry report is, and when it is applied, ignored
//!   as a duplicate, or rejected as stale, from the future or from an unknown vehicle.
//!
//! Like the core, this crate does no IO and reads no clock; the server owns concurrency (one
//! writer per city, readers on snapshots or short read locks) and persistence.

pub mod geofence;
pub mod index;
pub mod telemetry;

pub use index::{CityIndex, Hit, NearbyQuery, StateFilter, TypeMask, VehicleView};
pub use telemetry::{Reject, Telemetry, Verdict};
