//! Fleet intelligence: vehicles where riders will be, so that fewer bookings are lost and staff
//! drive less.
//!
//! - [`series`]: demand per zone as a regular time series (from the platform or a CSV file).
//! - [`forecast`]: gradient-boosted demand forecasts per zone and horizon, and their evaluation
//!   against seasonal-naive.
//! - [`registry`]: model versions with their evaluations; a new one is used only if it wins.
//! - [`pricing`]: price multipliers and relocation incentives per zone, within a daily budget.
//! - [`tasks`]: which batteries to swap, which vehicles to move where, which to collect.
//! - [`routing`]: staff vans' routes for swaps, moves and pick-ups (vrp-core).
//!
//! Pure: no clock and no randomness but what callers pass in.

pub mod forecast;
pub mod pricing;
pub mod registry;
pub mod routing;
pub mod series;
pub mod tasks;

pub use forecast::{Evaluation, ForecastConfig, Forecaster, evaluate};
pub use registry::{Card, Registry};
pub use series::Series;
