//! The vehicle channel against real MQTT clients (rumqttc, 3.1.1 and 5): the embedded broker's
//! login, ACLs, delivery and commands; and the external-broker client against Mosquitto when
//! `MOBILITY_TEST_MQTT_URL` is set (SKIPPED otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::{collections::HashMap, io::Write, net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use mobility_core::VehicleId;
use mobility_mqtt::{
    Ack, Channel, EmbeddedBroker, ExternalBroker, VehicleLink, commands_topic, topic,
};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS, SubscribeReasonCode,
};
use tokio::sync::{Mutex, mpsc};

const WAIT: Duration = Duration::from_secs(10);

struct TestLink {
    secrets: HashMap<VehicleId, String>,
    delivered: mpsc::UnboundedSender<(VehicleId, Channel, Bytes, Ack)>,
}

#[async_trait]
impl VehicleLink for TestLink {
    async fn authenticate(&self, vehicle: &VehicleId, secret: &[u8]) -> bool {
        self.secrets
            .get(vehicle)
            .is_some_and(|s| s.as_bytes() == secret)
    }
    async fn deliver(&self, vehicle: VehicleId, channel: Channel, payload: Bytes, ack: Ack) {
        let _ = self.delivered.send((vehicle, channel, payload, ack));
    }
}

fn new_id() -> VehicleId {
    VehicleId::from_uuid(uuid::Uuid::now_v7())
}

type Delivered = Arc<Mutex<mpsc::UnboundedReceiver<(VehicleId, Channel, Bytes, Ack)>>>;

async fn broker(vehicles: &[(VehicleId, &str)]) -> (EmbeddedBroker, Delivered) {
    let (tx, rx) = mpsc::unbounded_channel();
    let link = TestLink {
        secrets: vehicles
            .iter()
            .map(|(v, s)| (*v, (*s).to_owned()))
            .collect(),
        delivered: tx,
    };
    let b = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap(), Arc::new(link))
        .await
        .unwrap();
    (b, Arc::new(Mutex::new(rx)))
}

/// A vehicle client whose events arrive on a channel.
struct Client {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Event, String>>,
}

fn connect(addr: SocketAddr, client_id: &str, user: &str, password: &str) -> Client {
    let mut o = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    o.set_credentials(user, password)
        .set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(o, 16);
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let ev = eventloop.poll().await.map_err(|e| e.to_string());
            let stop = ev.is_err();
            if tx.send(ev).is_err() || stop {
                break;
            }
        }
    });
    Client { client, events }
}

impl Client {
    /// Waits for the first event matching `pick`, or the first error.
    async fn until<T>(&mut self, mut pick: impl FnMut(&Event) -> Option<T>) -> Result<T, String> {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.events.recv().await {
                    Some(Ok(ev)) => {
                        if let Some(t) = pick(&ev) {
                            return Ok(t);
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err("event loop ended".into()),
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
    }

    async fn connected(&mut self) -> Result<(), String> {
        self.until(|ev| match ev {
            Event::Incoming(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success => Some(()),
            _ => None,
        })
        .await
    }
}

async fn next_delivery_with_ack(d: &Delivered) -> (VehicleId, Channel, Bytes, Ack) {
    tokio::time::timeout(WAIT, d.lock().await.recv())
        .await
        .expect("delivered in time")
        .unwrap()
}

async fn next_delivery(d: &Delivered) -> (VehicleId, Channel, Bytes) {
    let (v, c, p, _) = next_delivery_with_ack(d).await;
    (v, c, p)
}

#[tokio::test]
async fn a_vehicle_publishes_its_telemetry_and_gets_a_puback_after_delivery() {
    let v = new_id();
    let (b, delivered) = broker(&[(v, "s3cret")]).await;
    let mut c = connect(b.local_addr(), &v.to_string(), &v.to_string(), "s3cret");
    c.connected().await.unwrap();
    c.client
        .publish(
            topic(&v, Channel::Telemetry),
            QoS::AtLeastOnce,
            false,
            r#"{"ts":1}"#,
        )
        .await
        .unwrap();
    c.until(|ev| matches!(ev, Event::Incoming(Packet::PubAck(_))).then_some(()))
        .await
        .unwrap();
    let (who, channel, payload, ack) = next_delivery_with_ack(&delivered).await;
    assert_eq!(
        (who, channel, &payload[..], ack),
        (v, Channel::Telemetry, &br#"{"ts":1}"#[..], Ack::Durable)
    );
    c.client
        .publish(
            topic(&v, Channel::TelemetryBinary),
            QoS::AtMostOnce,
            false,
            vec![1u8, 2, 3],
        )
        .await
        .unwrap();
    // QoS 0 is never acknowledged, so the platform is told it need not wait for durability.
    let (_, channel, _, ack) = next_delivery_with_ack(&delivered).await;
    assert_eq!((channel, ack), (Channel::TelemetryBinary, Ack::None));
    b.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_refused() {
    let v = new_id();
    let (b, _) = broker(&[(v, "s3cret")]).await;
    for (client_id, user, pass) in [
        (v.to_string(), v.to_string(), "wrong".to_owned()),
        (v.to_string(), v.to_string(), String::new()),
        (v.to_string(), new_id().to_string(), "s3cret".to_owned()), // username must equal client id
        (
            "not-a-vehicle".to_owned(),
            "not-a-vehicle".to_owned(),
            "s3cret".to_owned(),
        ),
    ] {
        let mut c = connect(b.local_addr(), &client_id, &user, &pass);
        let err = c.connected().await.unwrap_err();
        assert!(
            err.contains("refused") || err.contains("Refused"),
            "{client_id}/{user}: {err}"
        );
    }
    b.shutdown().await;
}

#[tokio::test]
async fn a_vehicle_cannot_publish_as_another_or_read_anothers_commands() {
    let (v, other) = (new_id(), new_id());
    let (b, delivered) = broker(&[(v, "a"), (other, "b")]).await;
    let mut c = connect(b.local_addr(), &v.to_string(), &v.to_string(), "a");
    c.connected().await.unwrap();
    c.client
        .subscribe(commands_topic(&other), QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = c
        .until(|ev| match ev {
            Event::Incoming(Packet::SubAck(a)) => Some(a.return_codes.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(codes, vec![SubscribeReasonCode::Failure]);
    c.client
        .subscribe("v1/vehicles/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = c
        .until(|ev| match ev {
            Event::Incoming(Packet::SubAck(a)) => Some(a.return_codes.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(
        codes,
        vec![SubscribeReasonCode::Failure],
        "wildcards are refused too"
    );
    // Publishing under someone else's id gets the client disconnected and delivers nothing.
    c.client
        .publish(
            topic(&other, Channel::Telemetry),
            QoS::AtLeastOnce,
            false,
            "{}",
        )
        .await
        .unwrap();
    assert!(c.until(|_| None::<()>).await.is_err(), "disconnected");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), delivered.lock().await.recv())
            .await
            .is_err()
    );
    b.shutdown().await;
}

#[tokio::test]
async fn commands_reach_the_vehicle_on_its_own_topic() {
    let v = new_id();
    let (b, _) = broker(&[(v, "a")]).await;
    let mut c = connect(b.local_addr(), &v.to_string(), &v.to_string(), "a");
    c.connected().await.unwrap();
    c.client
        .subscribe(commands_topic(&v), QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = c
        .until(|ev| match ev {
            Event::Incoming(Packet::SubAck(a)) => Some(a.return_codes.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(codes, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    b.send_command(&v, Bytes::from_static(br#"{"command":"ring"}"#))
        .await
        .unwrap();
    let got = c
        .until(|ev| match ev {
            Event::Incoming(Packet::Publish(p)) => Some((p.topic.clone(), p.payload.clone())),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(
        got,
        (
            commands_topic(&v),
            Bytes::from_static(br#"{"command":"ring"}"#)
        )
    );
    b.shutdown().await;
}

#[tokio::test]
async fn mqtt_5_clients_are_served_too() {
    use rumqttc::v5::{
        AsyncClient as Client5, Event as Event5, MqttOptions as Options5, mqttbytes::QoS as QoS5,
        mqttbytes::v5::Packet as Packet5,
    };
    let v = new_id();
    let (b, delivered) = broker(&[(v, "five")]).await;
    let mut o = Options5::new(v.to_string(), "127.0.0.1", b.local_addr().port());
    o.set_credentials(v.to_string(), "five");
    let (client, mut eventloop) = Client5::new(o, 16);
    client
        .publish(topic(&v, Channel::Events), QoS5::AtLeastOnce, false, "imu")
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event5::Incoming(Packet5::PubAck(_)) = eventloop.poll().await.unwrap() {
                break;
            }
        }
    })
    .await
    .unwrap();
    let (who, channel, payload) = next_delivery(&delivered).await;
    assert_eq!(
        (who, channel, &payload[..]),
        (v, Channel::Events, &b"imu"[..])
    );
    b.shutdown().await;
}

/// Against the external broker (CI: Mosquitto on 127.0.0.1:1883).
#[tokio::test]
async fn external_broker_delivers_through_a_shared_subscription_and_sends_commands() {
    let Ok(url) = std::env::var("MOBILITY_TEST_MQTT_URL") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: external MQTT broker test (MOBILITY_TEST_MQTT_URL is not set; e.g. mqtt://127.0.0.1:1883)"
        );
        return;
    };
    let v = new_id();
    let (tx, rx) = mpsc::unbounded_channel();
    let link = TestLink {
        secrets: HashMap::new(),
        delivered: tx,
    };
    let delivered: Delivered = Arc::new(Mutex::new(rx));
    let platform = ExternalBroker::connect_with(
        &url,
        &format!("mobility-test-{}", new_id()),
        &format!("test-{}", new_id()),
        Arc::new(link),
        mobility_mqtt::SessionOptions {
            expiry: Duration::ZERO,
        },
    )
    .unwrap();
    let parsed = url::Url::parse(&url).unwrap();
    let addr: SocketAddr = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(1883)
    )
    .parse()
    .unwrap();
    let mut vehicle = connect(addr, &v.to_string(), &v.to_string(), "unused-by-mosquitto");
    vehicle.connected().await.unwrap();
    vehicle
        .client
        .subscribe(commands_topic(&v), QoS::AtLeastOnce)
        .await
        .unwrap();
    vehicle
        .until(|ev| matches!(ev, Event::Incoming(Packet::SubAck(_))).then_some(()))
        .await
        .unwrap();
    // The platform's subscription may still be on its way: publish until it arrives.
    let got = tokio::time::timeout(WAIT, async {
        loop {
            vehicle
                .client
                .publish(topic(&v, Channel::Telemetry), QoS::AtLeastOnce, false, "{}")
                .await
                .unwrap();
            // Other tests' vehicles publish on the same broker, and every share group gets
            // a copy: only this vehicle's message counts.
            if let Ok(Some(d)) =
                tokio::time::timeout(Duration::from_millis(200), delivered.lock().await.recv())
                    .await
                && d.0 == v
            {
                return d;
            }
        }
    })
    .await
    .expect("delivered through the shared subscription");
    assert_eq!((got.0, got.1, got.3), (v, Channel::Telemetry, Ack::Durable));
    platform
        .send_command(&v, Bytes::from_static(b"lock"))
        .await
        .unwrap();
    let cmd = vehicle
        .until(|ev| match ev {
            Event::Incoming(Packet::Publish(p)) => Some(p.payload.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(&cmd[..], b"lock");
    platform.shutdown().await;
}

/// A link whose every delivery takes a while (a durable write), recording what it got and how
/// many deliveries ran at once.
struct SlowLink {
    got: std::sync::Mutex<Vec<(VehicleId, Bytes)>>,
    running: std::sync::atomic::AtomicUsize,
    most_at_once: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl VehicleLink for SlowLink {
    async fn authenticate(&self, _: &VehicleId, _: &[u8]) -> bool {
        true
    }
    async fn deliver(&self, vehicle: VehicleId, channel: Channel, payload: Bytes, ack: Ack) {
        self.deliver_batch(vehicle, &[(channel, payload)], ack)
            .await;
    }
    async fn deliver_batch(&self, vehicle: VehicleId, messages: &[(Channel, Bytes)], _: Ack) {
        use std::sync::atomic::Ordering;
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.got
            .lock()
            .unwrap()
            .extend(messages.iter().map(|(_, p)| (vehicle, p.clone())));
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The external broker's messages are delivered a batch at a time, vehicles side by side and
/// each vehicle's in order; nothing is lost (the client acknowledges each after delivery).
#[tokio::test]
async fn external_broker_delivers_vehicles_side_by_side_and_each_in_order() {
    let Ok(url) = std::env::var("MOBILITY_TEST_MQTT_URL") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: external MQTT broker test (MOBILITY_TEST_MQTT_URL is not set; e.g. mqtt://127.0.0.1:1883)"
        );
        return;
    };
    let link = Arc::new(SlowLink {
        got: std::sync::Mutex::new(Vec::new()),
        running: std::sync::atomic::AtomicUsize::new(0),
        most_at_once: std::sync::atomic::AtomicUsize::new(0),
    });
    let platform = ExternalBroker::connect_with(
        &url,
        &format!("mobility-test-{}", new_id()),
        &format!("test-{}", new_id()),
        link.clone(),
        mobility_mqtt::SessionOptions {
            expiry: Duration::ZERO,
        },
    )
    .unwrap();
    let parsed = url::Url::parse(&url).unwrap();
    let addr: SocketAddr = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(1883)
    )
    .parse()
    .unwrap();
    let vehicles: Vec<VehicleId> = (0..20).map(|_| new_id()).collect();
    let mut sender = connect(addr, &format!("fleet-{}", new_id()), "fleet", "unused");
    sender.connected().await.unwrap();
    // The platform's subscription may still be on its way: a first message until it lands.
    tokio::time::timeout(WAIT, async {
        loop {
            sender
                .client
                .publish(
                    topic(&vehicles[0], Channel::Telemetry),
                    QoS::AtLeastOnce,
                    false,
                    "0",
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            if !link.got.lock().unwrap().is_empty() {
                return;
            }
        }
    })
    .await
    .expect("the platform's subscription is in place");
    link.got.lock().unwrap().clear();
    // Ten messages from each of twenty vehicles, interleaved, as fast as the client sends.
    for k in 1..=10 {
        for v in &vehicles {
            sender
                .client
                .publish(
                    topic(v, Channel::Telemetry),
                    QoS::AtLeastOnce,
                    false,
                    k.to_string(),
                )
                .await
                .unwrap();
        }
    }
    let all = tokio::time::timeout(WAIT, async {
        loop {
            // Redeliveries of the first messages may come too; count each vehicle's distinct.
            let got = link.got.lock().unwrap().clone();
            let complete = vehicles
                .iter()
                .all(|v| got.iter().filter(|(x, p)| x == v && &p[..] != b"0").count() >= 10);
            if complete {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every message is delivered");
    for v in &vehicles {
        let seen: Vec<String> = all
            .iter()
            .filter(|(x, p)| x == v && &p[..] != b"0")
            .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
            .collect();
        let want: Vec<String> = (1..=10).map(|k: i32| k.to_string()).collect();
        assert_eq!(
            seen, want,
            "vehicle {v}: its messages in the order it sent them"
        );
    }
    // One at a time, 200 deliveries of 20 ms would take 4 s; side by side they overlap.
    let most = link.most_at_once.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        most > 1,
        "deliveries ran one at a time (at most {most} at once)"
    );
    platform.shutdown().await;
}
