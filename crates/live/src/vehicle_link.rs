//! The platform's side of the MQTT vehicle channel: checks device secrets against the store and
//! feeds decoded telemetry into the same ingest path as HTTP (source label `mqtt`); the `events`
//! channel (and wills) are published to the bus as `vehicle.reported`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use mobility_core::VehicleId;
use mobility_mqtt::{Ack, Channel, VehicleLink};
use mobility_store::Store;
use subtle::ConstantTimeEq;

use mobility_core::{Clock, digest::sha256_hex};

use crate::{
    commands::{CommandChannel, Commands},
    ingest::{IngestCounters, count_invalid, decode_binary, decode_json},
    state::{Durability, LiveState},
};

/// Connects vehicles to the fleet state.
#[derive(Debug)]
pub struct PlatformLink {
    live: Arc<LiveState>,
    store: Arc<dyn Store>,
    commands: Arc<Commands>,
    bus: Arc<dyn mobility_bus::EventBus>,
    clock: Arc<dyn Clock>,
    counters: IngestCounters,
    messages: [metrics::Counter; 4],
}

impl PlatformLink {
    /// A link over the given live state, store and commands.
    #[must_use]
    pub fn new(
        live: Arc<LiveState>,
        store: Arc<dyn Store>,
        commands: Arc<Commands>,
        bus: Arc<dyn mobility_bus::EventBus>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let messages = [
            Channel::Telemetry,
            Channel::TelemetryBinary,
            Channel::Events,
            Channel::CommandAck,
        ]
        .map(|c| metrics::counter!("mqtt_messages_total", "channel" => c.label()));
        Self {
            live,
            store,
            commands,
            bus,
            clock,
            counters: IngestCounters::new("mqtt"),
            messages,
        }
    }
}

/// The running vehicle channel, as the rest of the platform sends through it.
#[derive(Debug)]
pub enum VehicleChannel {
    /// The embedded broker.
    Embedded(mobility_mqtt::EmbeddedBroker),
    /// An external broker cluster.
    External(mobility_mqtt::ExternalBroker),
}

impl VehicleChannel {
    /// Stops it.
    pub async fn shutdown(&self) {
        match self {
            Self::Embedded(b) => b.shutdown().await,
            Self::External(b) => b.shutdown().await,
        }
    }
}

#[async_trait]
impl CommandChannel for VehicleChannel {
    async fn publish(&self, vehicle: &VehicleId, payload: Bytes) -> Result<(), String> {
        let r = match self {
            Self::Embedded(b) => b.send_command(vehicle, payload).await,
            Self::External(b) => b.send_command(vehicle, payload).await,
        };
        r.map_err(|e| e.to_string())
    }
}

#[async_trait]
impl VehicleLink for PlatformLink {
    async fn authenticate(&self, vehicle: &VehicleId, secret: &[u8]) -> bool {
        let ok = match (
            std::str::from_utf8(secret),
            self.store.device_secret_sha256(vehicle).await,
        ) {
            (Ok(secret), Ok(Some(digest))) => sha256_hex(secret)
                .as_bytes()
                .ct_eq(digest.as_bytes())
                .into(),
            (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot check a vehicle's credentials");
                false
            }
            _ => false,
        };
        let outcome = if ok { "accepted" } else { "refused" };
        metrics::counter!("mqtt_logins_total", "outcome" => outcome).increment(1);
        ok
    }

    async fn deliver(&self, vehicle: VehicleId, channel: Channel, payload: Bytes, ack: Ack) {
        self.deliver_batch(vehicle, &[(channel, payload)], ack)
            .await;
    }

    async fn deliver_batch(&self, vehicle: VehicleId, messages: &[(Channel, Bytes)], ack: Ack) {
        let mut reports = Vec::with_capacity(messages.len());
        let mut signals = Vec::new();
        let (mut received, mut oversize) = (0u64, 0u64);
        for (channel, payload) in messages {
            let slot = Channel::ALL.iter().position(|c| c == channel).unwrap_or(0);
            self.messages[slot].increment(1);
            if payload.len() > mobility_mqtt::PAYLOAD_BYTES_MAX {
                oversize += 1;
                tracing::debug!(%vehicle, bytes = payload.len(), "oversize MQTT message refused");
                continue;
            }
            let decoded = match channel {
                Channel::Telemetry => decode_json(vehicle, payload),
                Channel::TelemetryBinary => decode_binary(vehicle, payload),
                Channel::CommandAck => {
                    self.commands
                        .on_ack(vehicle, payload, self.clock.now())
                        .await;
                    continue;
                }
                Channel::Events => {
                    match crate::ingest::decode_vehicle_event(payload, self.clock.now()) {
                        Ok((at, signal)) => {
                            let city = self.live.fleet.city_of(&vehicle);
                            signals.push(mobility_core::NewEvent::new(
                                uuid::Uuid::now_v7(),
                                city,
                                at,
                                mobility_core::DomainEvent::VehicleReported {
                                    vehicle,
                                    at,
                                    signal,
                                },
                            ));
                        }
                        Err(e) => {
                            metrics::counter!("vehicle_events_rejected_total", "reason" => e.label()).increment(1);
                            tracing::debug!(%vehicle, error = %e, "vehicle event refused");
                        }
                    }
                    continue;
                }
            };
            received += decoded.len() as u64;
            for d in decoded {
                match d {
                    Ok(t) => reports.push(t),
                    Err(e) => count_invalid("mqtt", &e),
                }
            }
        }
        if oversize > 0 {
            metrics::counter!("telemetry_rejected_total", "source" => "mqtt", "reason" => "oversize").increment(oversize);
        }
        // A vehicle's events are acknowledged (PUBACK) once they are durable on the bus.
        if !signals.is_empty() {
            let n = signals.len() as u64;
            match self.bus.publish(&signals).await {
                Ok(_) => metrics::counter!("vehicle_events_total").increment(n),
                Err(e) => {
                    metrics::counter!("vehicle_events_unpublished_total").increment(n);
                    tracing::error!(%vehicle, error = %e, "cannot publish a vehicle's events");
                }
            }
        }
        if received == 0 {
            return;
        }
        // A vehicle registered through another process (several processes share the store)
        // is loaded on its first report here, not refused as unknown.
        if self.live.fleet.city_of(&vehicle).is_none() {
            crate::replica::load(&self.live.fleet, self.store.as_ref(), vehicle).await;
        }
        self.counters.received(received);
        // On a log failure the reports are applied but not durable; it is logged and counted,
        // and the vehicle's next report supersedes them.
        let durability = match ack {
            Ack::Durable => Durability::Synced,
            Ack::None => Durability::Queued,
        };
        if let Ok(outcomes) = self
            .live
            .submit(&reports, self.clock.now(), durability)
            .await
        {
            self.counters.outcomes(&outcomes);
        }
    }
}
