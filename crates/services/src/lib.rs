//! The platform's services, one module (folder) per domain. Each owns its rules on top of the
//! core and reaches storage through the `Store` seam, the bus through `EventBus` and time
//! through a `Clock`; none knows HTTP (that is `mobility-api`) or SQL (that is
//! `mobility-store`).
//!
//! Coming domains (incidents, OTA, replication) get a folder here of their own.

pub mod accounts;
pub mod bookings;
pub mod intel;
pub mod kyc;
pub mod notifications;
pub mod open_data;
pub mod payments;
