//! A client of an external broker cluster (Mosquitto, EMQX, VerneMQ, …).
//!
//! Vehicles authenticate to that broker, which must enforce the per-vehicle ACLs described in
//! docs/vehicle-protocol.md. The platform subscribes with a *shared* subscription
//! (`$share/mobility-ingest/v1/vehicles/+/…`), so each message goes to one of the ingest
//! processes. Acknowledgements are manual: a message is acknowledged only after
//! [`VehicleLink::deliver`] returns, so a crash before processing leaves it with the broker to
//! redeliver.
//!
//! Sessions, and why MQTT 5: a broker hands a shared subscription's messages to every session
//! in the group, connected or not, and queues them for the absent ones. With MQTT 3.1.1's
//! persistent sessions, which never expire, a process that had left (scaled down, renamed,
//! crashed for good) kept taking its share of the vehicles' reports: acknowledged to the
//! vehicle, never seen by the platform (Mosquitto gave 35 of 40 reports to dead sessions). So:
//! - the session lives [`SessionOptions::expiry`] after a disconnect (60 s by default): a
//!   process restarted within it gets what was queued for it meanwhile; one that stays away is
//!   forgotten, and takes no more of the traffic;
//! - leaving on purpose ([`ExternalBroker::shutdown`]) first unsubscribes from the group, so
//!   from that moment every message goes to the processes that remain, then disconnects.
//!
//! Throughput: one connection carries every vehicle's messages, so they are not processed one
//! at a time (each QoS 1 message would wait for its own fsync). The event loop hands messages
//! to a delivery task, which takes everything waiting, delivers each vehicle's messages in
//! order and the vehicles side by side (their durable writes share a group commit), then
//! acknowledges the lot in the order received. The next batch gathers while one is delivered.
//! Acknowledgements are queued to the client without waiting: its request queue holds more
//! than the broker may have unacknowledged with us (MQTT 5's receive maximum), so the event
//! loop and the delivery task never wait for each other.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use mobility_core::VehicleId;
use rumqttc::v5::{
    AsyncClient, Event, MqttOptions,
    mqttbytes::{QoS, v5::Packet},
};

use crate::{Ack, Channel, MqttError, PACKET_BYTES_MAX, VehicleLink, commands_topic, parse_topic};

/// Default shared-subscription group of the platform's ingest processes.
pub const SHARE_GROUP_DEFAULT: &str = "mobility-ingest";
/// Requests queued towards the broker before a sender waits: more than the QoS 1 messages the
/// broker may have unacknowledged with us (MQTT 5's receive maximum, 65,535 at most), so
/// acknowledging never waits for the event loop.
const CLIENT_QUEUE_MAX: usize = 70_000;
/// Most messages delivered in one batch.
const DELIVERY_BATCH_MAX: usize = 8_192;
/// QoS 0 messages waiting for delivery past which new ones are dropped (counted): QoS 0 allows
/// loss, and nothing else bounds what a broker streams at a platform that falls behind. QoS 1
/// messages are never dropped (the broker's receive maximum bounds them).
const QOS0_WAITING_MAX: usize = 500_000;

/// One vehicle's messages in a batch, in order, and whether any must be made durable.
type VehicleGroup = (VehicleId, Ack, Vec<(Channel, Bytes)>);

/// A message on its way from the event loop to the delivery task.
struct Incoming {
    vehicle: VehicleId,
    channel: Channel,
    payload: Bytes,
    ack: Ack,
    /// The packet, to acknowledge once delivered (QoS 1).
    publish: Option<rumqttc::v5::mqttbytes::v5::Publish>,
}

/// How the platform's session at the broker lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// How long the broker keeps the session (and queues its share of messages) after a
    /// disconnect; zero: a clean session, forgotten at once (tests, throw-away processes).
    pub expiry: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            expiry: Duration::from_secs(60),
        }
    }
}

/// The platform's connection to an external broker.
#[derive(Debug)]
pub struct ExternalBroker {
    client: AsyncClient,
    filters: Vec<String>,
    task: tokio::task::JoinHandle<()>,
    delivery: tokio::task::JoinHandle<()>,
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
        Self::connect_with(
            raw_url,
            client_id,
            share_group,
            link,
            SessionOptions::default(),
        )
    }

    /// Like [`Self::connect`], with the session's lifetime given.
    pub fn connect_with(
        raw_url: &str,
        client_id: &str,
        share_group: &str,
        link: Arc<dyn VehicleLink>,
        session: SessionOptions,
    ) -> Result<Self, MqttError> {
        Self::open(
            raw_url,
            client_id,
            subscriptions(share_group),
            link,
            session,
        )
    }

    /// Connects only to send commands: no subscription, so this process takes no share of the
    /// vehicles' messages (a process without the ingest role; the vehicles' acks reach an
    /// ingest process, which decides the command in the store). A clean session: nothing is
    /// queued for it.
    pub fn connect_publisher(
        raw_url: &str,
        client_id: &str,
        link: Arc<dyn VehicleLink>,
    ) -> Result<Self, MqttError> {
        Self::open(
            raw_url,
            client_id,
            Vec::new(),
            link,
            SessionOptions {
                expiry: Duration::ZERO,
            },
        )
    }

    fn open(
        raw_url: &str,
        client_id: &str,
        filters: Vec<String>,
        link: Arc<dyn VehicleLink>,
        session: SessionOptions,
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
        let expiry_s = u32::try_from(session.expiry.as_secs()).unwrap_or(u32::MAX);
        options
            .set_keep_alive(Duration::from_secs(15))
            .set_clean_start(expiry_s == 0)
            .set_session_expiry_interval((expiry_s > 0).then_some(expiry_s))
            .set_manual_acks(true)
            .set_max_packet_size(Some(PACKET_BYTES_MAX));
        if !url.username().is_empty() {
            options.set_credentials(url.username(), url.password().unwrap_or(""));
        }
        let (client, mut eventloop) = AsyncClient::new(options, CLIENT_QUEUE_MAX);
        // Commands to vehicles are small packets someone waits for: no Nagle delay.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.options.set_network_options(network);
        let shown = redact(&url);
        let subscriber = client.clone();
        let to_subscribe = filters.clone();
        let (to_deliver, waiting) = tokio::sync::mpsc::unbounded_channel::<Incoming>();
        let qos0_waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let delivery = tokio::spawn(deliver(waiting, link, client.clone(), qos0_waiting.clone()));
        let task = tokio::spawn(async move {
            let dropped = metrics::counter!("mqtt_qos0_dropped_total");
            let mut backoff = Duration::from_millis(100);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(100);
                        tracing::info!(broker = %shown, "connected to the MQTT broker");
                        for filter in &to_subscribe {
                            if let Err(e) =
                                subscriber.subscribe(filter.clone(), QoS::AtLeastOnce).await
                            {
                                tracing::warn!(error = %e, "cannot queue MQTT subscription");
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let topic = std::str::from_utf8(&p.topic).unwrap_or("");
                        let Some((vehicle, channel)) = parse_topic(topic) else {
                            tracing::debug!(topic, "ignoring message on a non-vehicle topic");
                            if let Err(e) = subscriber.try_ack(&p) {
                                tracing::warn!(error = %e, "cannot queue MQTT acknowledgement");
                            }
                            continue;
                        };
                        let (ack, publish) = if p.qos == QoS::AtMostOnce {
                            use std::sync::atomic::Ordering;
                            if qos0_waiting.load(Ordering::Relaxed) >= QOS0_WAITING_MAX {
                                dropped.increment(1);
                                continue;
                            }
                            qos0_waiting.fetch_add(1, Ordering::Relaxed);
                            (Ack::None, None)
                        } else {
                            (Ack::Durable, Some(p.clone()))
                        };
                        let sent = to_deliver.send(Incoming {
                            vehicle,
                            channel,
                            payload: p.payload,
                            ack,
                            publish,
                        });
                        if sent.is_err() {
                            // The delivery task is gone (shutting down): what is not
                            // acknowledged stays with the broker.
                            return;
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
        Ok(Self {
            client,
            filters,
            task,
            delivery,
        })
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

    /// Drops the connection at once, without leaving the group or saying goodbye: what a crash
    /// does (tests). The broker keeps the session until it expires.
    pub fn abort(&self) {
        self.task.abort();
        self.delivery.abort();
    }

    /// Leaves the share group, then disconnects: unsubscribing first means the broker hands
    /// this process nothing more (what it already sent is delivered and acknowledged
    /// meanwhile), so the processes that remain take all the traffic at once.
    pub async fn shutdown(&self) {
        for filter in &self.filters {
            let _ = self.client.unsubscribe(filter.clone()).await;
        }
        // The unsubscriptions reach the broker and its answers come back; messages it sent
        // before are delivered and acknowledged by the event loop meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.task.abort();
        self.delivery.abort();
    }
}

/// Delivers what the event loop received, a batch at a time: each vehicle's messages in
/// order, the vehicles side by side, then every QoS 1 message of the batch acknowledged in the
/// order it came.
async fn deliver(
    mut waiting: tokio::sync::mpsc::UnboundedReceiver<Incoming>,
    link: Arc<dyn VehicleLink>,
    client: AsyncClient,
    qos0_waiting: Arc<std::sync::atomic::AtomicUsize>,
) {
    let batch_size = metrics::histogram!("mqtt_external_batch_messages");
    let mut batch = Vec::with_capacity(DELIVERY_BATCH_MAX);
    loop {
        if waiting.recv_many(&mut batch, DELIVERY_BATCH_MAX).await == 0 {
            return;
        }
        #[allow(clippy::cast_precision_loss)]
        batch_size.record(batch.len() as f64);
        let qos0 = batch.iter().filter(|m| m.ack == Ack::None).count();
        qos0_waiting.fetch_sub(qos0, std::sync::atomic::Ordering::Relaxed);
        // Each vehicle's messages, in the order they came; durable if any of them must be.
        let mut groups: Vec<VehicleGroup> = Vec::new();
        let mut slot: std::collections::HashMap<VehicleId, usize> =
            std::collections::HashMap::with_capacity(batch.len());
        for m in &mut batch {
            let i = *slot.entry(m.vehicle).or_insert_with(|| {
                groups.push((m.vehicle, Ack::None, Vec::new()));
                groups.len() - 1
            });
            let g = &mut groups[i];
            if m.ack == Ack::Durable {
                g.1 = Ack::Durable;
            }
            g.2.push((m.channel, std::mem::take(&mut m.payload)));
        }
        if groups.len() == 1 {
            if let Some((vehicle, ack, messages)) = groups.pop() {
                link.deliver_batch(vehicle, &messages, ack).await;
            }
        } else {
            let mut running = tokio::task::JoinSet::new();
            for (vehicle, ack, messages) in groups {
                let link = link.clone();
                running.spawn(async move { link.deliver_batch(vehicle, &messages, ack).await });
            }
            while running.join_next().await.is_some() {}
        }
        for m in batch.drain(..) {
            if let Some(p) = m.publish
                && let Err(e) = client.try_ack(&p)
            {
                tracing::warn!(error = %e, "cannot queue MQTT acknowledgement");
            }
        }
    }
}
