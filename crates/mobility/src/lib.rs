//! The `mobility` binary's drivers, as a library so that their tests can use them: the
//! simulated city over the real protocols ([`driver`]), which `mobility demo` and the load
//! tools run against a platform. The platform itself is `mobility-server`; it does not link
//! the simulator or an MQTT client for these.

pub mod driver;
