//! The platform's black-box tests, in one binary: each module starts real `Application`s on
//! port 0 (SQLite in a temp dir; PostgreSQL, Mosquitto and NATS when their URL variables are
//! set) and talks to them over HTTP, MQTT and WebSocket. One binary links the platform once
//! (seventeen used to link it seventeen times).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

mod accounts;
mod bookings;
mod commands;
mod fleet_api;
mod geofences;
mod intel_api;
mod jobs;
mod mqtt_ingest;
mod no_5xx;
mod notifications;
mod oidc;
mod open_data;
mod openapi;
mod ops_api;
mod payments;
mod platform;
mod scale_out;
mod stream;
