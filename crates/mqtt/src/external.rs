//! A client of an external broker cluster (Mosquitto, EMQX, VerneMQ, …).
//!
//! Vehicles authenticate to that broker, which must enforce the per-vehicle ACLs described in
//! docs/vehicle-protocol.md. The platform subscribes with a *shared* subscription
//! (`$share/mobility-ingest/v1/vehicles/+/…`), so each message goes to one of the ingest
//! processes. The session is persistent (clean session off) and acknowledgements are manual:
//! a message is acknowledged only after [`VehicleLink::deliver`] returns, so a crash before
//! processing leaves it with the broker to redeliver.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use mobility_core::VehicleId;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::{Ack, Channel, MqttError, PACKET_BYTES_MAX, VehicleLink, commands_topic, parse_topic};

/// Default shared-subscription group of the platform's ingest processes.
pub const SHARE_GROUP_DEFAULT: &str = "mobility-ingest";
/// Requests queued towards the broker before `send_command` waits.
const CLIENT_QUEUE_MAX: usize = 1_024;

/// The platform's connection to an external broker.
#[derive(Debug)]
pub struct ExternalBroker {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

/// The filters the platform subscribes to.
fn subscriptions(group: &str) -> Vec<String> {
    Channel::ALL
        .iter()
        .map(|c| format!("$share/{group}/{}/+/{}", crate::TOPIC_ROOT, c.suffix()))
        .collect()
}

impl ExternalBroker {
    /// Connects to `mqtt://[user[:password]@]host[:port]` as `client_id` and starts delivering
    /// vehicle messages to `link`. Connection failures are retried in the background.
    /// Processes sharing `share_group` split the messages between them.
    pub fn connect(
        raw_url: &str,
        client_id: &str,
        share_group: &str,
        link: Arc<dyn VehicleLink>,
    ) -> Result<Self, MqttError> {
        Self::connect_with(raw_url, client_id, share_group, link, true)
    }

    /// Like [`Self::connect`]; `persistent = false` asks for a clean session that the broker
    /// forgets on disconnect (for tests and throw-away processes).
    pub fn connect_with(
        raw_url: &str,
        client_id: &str,
        share_group: &str,
        link: Arc<dyn VehicleLink>,
        persistent: bool,
    ) -> Result<Self, MqttError> {
        let url = url::Url::parse(raw_url).map_err(|e| MqttError::Url {
            url: "<unparseable>".into(),
            reason: e.to_string(),
        })?;
        let bad = |reason: &str| MqttError::Url {
            url: redact(&url),
            reason: reason.to_owned(),
        };
        if url.scheme() != "mqtt" && url.scheme() != "tcp" {
            return Err(bad(
                "use mqtt://host:port (TLS brokers are not supported yet)",
            ));
        }
        let host = url.host_str().ok_or_else(|| bad("no host"))?.to_owned();
        let port = url.port().unwrap_or(1883);
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_keep_alive(Duration::from_secs(15))
            .set_clean_session(!persistent)
            .set_manual_acks(true)
            .set_max_packet_size(PACKET_BYTES_MAX as usize, PACKET_BYTES_MAX as usize);
        if !url.username().is_empty() {
            options.set_credentials(url.username(), url.password().unwrap_or(""));
        }
        let (client, mut eventloop) = AsyncClient::new(options, CLIENT_QUEUE_MAX);
        // Commands to vehicles are small packets someone waits for: no Nagle delay.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let shown = redact(&url);
        let filters = subscriptions(share_group);
        let subscriber = client.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(100);
                        tracing::info!(broker = %shown, "connected to the MQTT broker");
                        for filter in &filters {
                            if let Err(e) =
                                subscriber.subscribe(filter.clone(), QoS::AtLeastOnce).await
                            {
                                tracing::warn!(error = %e, "cannot queue MQTT subscription");
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Some((vehicle, channel)) = parse_topic(&p.topic) {
                            let ack = if p.qos == QoS::AtMostOnce {
                                Ack::None
                            } else {
                                Ack::Durable
                            };
                            link.deliver(vehicle, channel, p.payload.clone(), ack).await;
                        } else {
                            tracing::debug!(topic = %p.topic, "ignoring message on a non-vehicle topic");
                        }
                        if let Err(e) = subscriber.ack(&p).await {
                            tracing::warn!(error = %e, "cannot queue MQTT acknowledgement");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(broker = %shown, error = %e, retry_ms = backoff.as_millis(), "MQTT connection problem; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
        Ok(Self { client, task })
    }

    /// Publishes `payload` to a vehicle's commands topic (QoS 1).
    pub async fn send_command(&self, vehicle: &VehicleId, payload: Bytes) -> Result<(), MqttError> {
        let topic = commands_topic(vehicle);
        self.client
            .publish_bytes(topic.clone(), QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| MqttError::Publish {
                topic,
                reason: e.to_string(),
            })
    }

    /// Disconnects (the persistent session keeps queued messages for the next start).
    pub async fn shutdown(&self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.task.abort();
    }
}
