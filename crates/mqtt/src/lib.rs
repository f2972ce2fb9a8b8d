//! The vehicle channel over MQTT (3.1.1 and 5).
//!
//! Two ways to run it, one interface to the rest of the platform ([`VehicleLink`]):
//! - [`EmbeddedBroker`]: the platform is the broker (in process, for vehicles only; ADR 0008).
//!   Every vehicle logs in with its own id and device secret, and may publish only under its
//!   own topics and subscribe only to its own commands. What a connection sent is handed to the
//!   platform in batches, and a PUBACK is written only after its batch was processed (and, at
//!   QoS 1, made durable): a PUBACK means the report was processed.
//! - [`ExternalBroker`]: vehicles talk to an operator's broker cluster (Mosquitto, EMQX,
//!   VerneMQ); the platform subscribes with a shared subscription so several ingest processes
//!   split the load, and acknowledges each message only after processing it (manual acks).
//!
//! Topics (see docs/vehicle-protocol.md): `v1/vehicles/{id}/telemetry` (JSON),
//! `v1/vehicles/{id}/telemetry/bin` (compact binary), `v1/vehicles/{id}/events`,
//! `v1/vehicles/{id}/commands` (platform → vehicle), `v1/vehicles/{id}/commands/ack`.

mod embedded;
mod external;

use async_trait::async_trait;
use bytes::Bytes;
use mobility_core::VehicleId;

pub use embedded::EmbeddedBroker;
pub use external::{ExternalBroker, SHARE_GROUP_DEFAULT, SessionOptions};

/// Root of every vehicle topic.
pub const TOPIC_ROOT: &str = "v1/vehicles";
/// Largest MQTT packet the broker reads at all, bytes (bounds memory per message). Payloads
/// above [`PAYLOAD_BYTES_MAX`] but below this are read, refused and counted as oversize.
pub const PACKET_BYTES_MAX: u32 = 1024 * 1024;
/// Largest payload the protocol allows (docs/vehicle-protocol.md).
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024;

/// What a vehicle publishes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// JSON telemetry: one report or an array of reports.
    Telemetry,
    /// Compact binary telemetry records.
    TelemetryBinary,
    /// Vehicle events (IMU samples, faults, lock changes).
    Events,
    /// Acknowledgements of commands.
    CommandAck,
}

impl Channel {
    /// Every channel a vehicle may publish on.
    pub const ALL: &'static [Self] = &[
        Self::Telemetry,
        Self::TelemetryBinary,
        Self::Events,
        Self::CommandAck,
    ];

    /// The topic suffix after `v1/vehicles/{id}/`.
    #[must_use]
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::TelemetryBinary => "telemetry/bin",
            Self::Events => "events",
            Self::CommandAck => "commands/ack",
        }
    }

    /// Stable metric label.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::TelemetryBinary => "telemetry_bin",
            Self::Events => "events",
            Self::CommandAck => "command_ack",
        }
    }
}

/// The topic a vehicle publishes `channel` messages on.
#[must_use]
pub fn topic(vehicle: &VehicleId, channel: Channel) -> String {
    format!("{TOPIC_ROOT}/{vehicle}/{}", channel.suffix())
}

/// The topic a vehicle receives its commands on.
#[must_use]
pub fn commands_topic(vehicle: &VehicleId) -> String {
    format!("{TOPIC_ROOT}/{vehicle}/commands")
}

/// Splits a vehicle topic into its vehicle and channel; `None` for anything else.
#[must_use]
pub fn parse_topic(topic: &str) -> Option<(VehicleId, Channel)> {
    let rest = topic.strip_prefix(TOPIC_ROOT)?.strip_prefix('/')?;
    let (id, suffix) = rest.split_once('/')?;
    let vehicle = VehicleId::parse(id).ok()?;
    let channel = Channel::ALL
        .iter()
        .copied()
        .find(|c| c.suffix() == suffix)?;
    Some((vehicle, channel))
}

/// What the sender of a message waits for (its MQTT QoS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// QoS 0: nothing is acknowledged, so processing may return as soon as the reports are
    /// applied and queued for the log (a crash can lose the last few milliseconds of them,
    /// which QoS 0 allows: at most once).
    None,
    /// QoS 1: the broker acknowledges once [`VehicleLink::deliver`] returns, so by then every
    /// accepted report must be durable.
    Durable,
}

/// The platform side of the channel: checks credentials and takes delivered messages.
#[async_trait]
pub trait VehicleLink: Send + Sync + 'static {
    /// Whether `secret` is the device secret of `vehicle`.
    async fn authenticate(&self, vehicle: &VehicleId, secret: &[u8]) -> bool;

    /// A message a vehicle published on one of its own topics. Returns when it has been
    /// processed (and, for [`Ack::Durable`], made durable); the broker acknowledges the
    /// message to the vehicle after that.
    async fn deliver(&self, vehicle: VehicleId, channel: Channel, payload: Bytes, ack: Ack);

    /// Messages one vehicle published, in order, processed together (one durable write for
    /// the lot). Returns when all of them have been processed, as [`Self::deliver`] does.
    async fn deliver_batch(&self, vehicle: VehicleId, messages: &[(Channel, Bytes)], ack: Ack) {
        for (channel, payload) in messages {
            self.deliver(vehicle, *channel, payload.clone(), ack).await;
        }
    }
}

/// Failures of the MQTT channel.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The embedded broker could not listen.
    #[error("cannot start the MQTT broker on {addr}: {reason}")]
    Listen {
        /// Address asked for.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The external broker URL is not usable.
    #[error("invalid MQTT broker URL {url}: {reason}")]
    Url {
        /// The URL, password redacted.
        url: String,
        /// Why.
        reason: String,
    },
    /// Publishing a message failed.
    #[error("cannot publish to {topic}: {reason}")]
    Publish {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_reject_everything_else() {
        let id = VehicleId::parse("0190f1c2-7a3b-7cde-8f01-23456789abcd").unwrap();
        for c in Channel::ALL {
            assert_eq!(parse_topic(&topic(&id, *c)), Some((id, *c)));
        }
        assert_eq!(
            commands_topic(&id),
            "v1/vehicles/0190f1c2-7a3b-7cde-8f01-23456789abcd/commands"
        );
        for bad in [
            "v1/vehicles/0190f1c2-7a3b-7cde-8f01-23456789abcd/commands",
            "v1/vehicles/0190f1c2-7a3b-7cde-8f01-23456789abcd/telemetry/extra",
            "v1/vehicles/not-a-uuid/telemetry",
            "v2/vehicles/0190f1c2-7a3b-7cde-8f01-23456789abcd/telemetry",
            "v1/vehicles/+/telemetry",
            "",
        ] {
            assert_eq!(parse_topic(bad), None, "{bad}");
        }
    }
}
