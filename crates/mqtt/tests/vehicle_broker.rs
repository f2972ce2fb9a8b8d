//! The embedded vehicle broker at the packet level (ADR 0008): pipelined publishes are handed
//! to the platform in batches and acknowledged only after the platform returns, in order; the
//! will, keep-alive, session take-over, QoS 2, v5 topic aliases and refused protocol versions.
//! A raw TCP client writes packets encoded by rumqttc's codec, so the test controls exactly
//! what arrives in one read.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use mobility_core::VehicleId;
use mobility_mqtt::{Ack, Channel, EmbeddedBroker, VehicleLink, topic};
use rumqttc::mqttbytes::{Error as CodecError, QoS, v4};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Mutex, Semaphore, mpsc},
};

const WAIT: Duration = Duration::from_secs(10);

/// A platform that records each batch and, when gated, holds every batch until released.
struct Link {
    secrets: HashMap<VehicleId, String>,
    batches: mpsc::UnboundedSender<(Vec<(Channel, Bytes)>, Ack)>,
    gate: Option<Arc<Semaphore>>,
}

#[async_trait]
impl VehicleLink for Link {
    async fn authenticate(&self, vehicle: &VehicleId, secret: &[u8]) -> bool {
        self.secrets
            .get(vehicle)
            .is_some_and(|s| s.as_bytes() == secret)
    }
    async fn deliver(&self, vehicle: VehicleId, channel: Channel, payload: Bytes, ack: Ack) {
        self.deliver_batch(vehicle, &[(channel, payload)], ack)
            .await;
    }
    async fn deliver_batch(&self, _: VehicleId, messages: &[(Channel, Bytes)], ack: Ack) {
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        let _ = self.batches.send((messages.to_vec(), ack));
    }
}

type Batches = Mutex<mpsc::UnboundedReceiver<(Vec<(Channel, Bytes)>, Ack)>>;

async fn broker(v: VehicleId, gate: Option<Arc<Semaphore>>) -> (EmbeddedBroker, Batches) {
    let (tx, rx) = mpsc::unbounded_channel();
    let link = Link {
        secrets: HashMap::from([(v, "pw".to_owned())]),
        batches: tx,
        gate,
    };
    let b = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap(), Arc::new(link))
        .await
        .unwrap();
    (b, Mutex::new(rx))
}

fn new_id() -> VehicleId {
    VehicleId::from_uuid(uuid::Uuid::now_v7())
}

/// A vehicle speaking MQTT 3.1.1 packet by packet.
struct Raw {
    s: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn open(addr: SocketAddr) -> Self {
        Self {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    async fn login(addr: SocketAddr, v: VehicleId, keep_alive_s: u16, will: bool) -> Self {
        let mut c = Self::open(addr).await;
        let id = v.to_string();
        let mut connect = v4::Connect::new(id.as_str());
        connect.keep_alive = keep_alive_s;
        connect.set_login(id.as_str(), "pw");
        if will {
            connect.last_will = Some(v4::LastWill::new(
                topic(&v, Channel::Events),
                r#"{"type":"offline"}"#,
                QoS::AtLeastOnce,
                false,
            ));
        }
        let mut out = BytesMut::new();
        connect.write(&mut out).unwrap();
        c.send(&out).await;
        match c.next().await {
            Some(v4::Packet::ConnAck(a)) => assert_eq!(a.code, v4::ConnectReturnCode::Success),
            other => panic!("no CONNACK: {other:?}"),
        }
        c
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// The next packet, or `None` once the broker closed the connection.
    async fn next(&mut self) -> Option<v4::Packet> {
        tokio::time::timeout(WAIT, async {
            loop {
                match v4::Packet::read(&mut self.buf, 1 << 20) {
                    Ok(p) => return Some(p),
                    Err(CodecError::InsufficientBytes(_)) => {}
                    Err(e) => panic!("bad packet: {e}"),
                }
                match self.s.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("a packet or the end in time")
    }
}

fn publish(out: &mut BytesMut, topic: &str, qos: QoS, pkid: u16, payload: &str) {
    let mut p = v4::Publish::new(topic, qos, payload.as_bytes().to_vec());
    p.pkid = pkid;
    p.write(out).unwrap();
}

#[tokio::test]
async fn pipelined_publishes_are_one_batch_and_acked_in_order_only_after_processing() {
    let v = new_id();
    let gate = Arc::new(Semaphore::new(0));
    let (b, batches) = broker(v, Some(gate.clone())).await;
    let mut c = Raw::login(b.local_addr(), v, 60, false).await;
    let mut out = BytesMut::new();
    for pkid in 1..=50u16 {
        publish(
            &mut out,
            &topic(&v, Channel::Telemetry),
            QoS::AtLeastOnce,
            pkid,
            &format!(r#"{{"ts":{pkid}}}"#),
        );
    }
    c.send(&out).await;
    // The platform has not returned: no PUBACK may arrive.
    let early = tokio::time::timeout(Duration::from_millis(300), c.next()).await;
    assert!(early.is_err(), "a PUBACK before processing: {early:?}");
    gate.add_permits(1_000);
    let mut acked = Vec::new();
    while acked.len() < 50 {
        match c.next().await {
            Some(v4::Packet::PubAck(a)) => acked.push(a.pkid),
            other => panic!("expected PUBACKs, got {other:?}"),
        }
    }
    assert_eq!(acked, (1..=50).collect::<Vec<_>>(), "in publish order");
    let mut rx = batches.lock().await;
    let mut got = Vec::new();
    let mut calls = 0;
    while got.len() < 50 {
        let (batch, ack) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ack, Ack::Durable, "QoS 1 must be durable before its PUBACK");
        got.extend(batch);
        calls += 1;
    }
    assert!(
        calls < 50,
        "50 publishes in one write reach the platform in fewer batches ({calls})"
    );
    assert_eq!(got[0].1, Bytes::from_static(br#"{"ts":1}"#));
    assert_eq!(got[49].1, Bytes::from_static(br#"{"ts":50}"#));
    drop(rx);
    b.shutdown().await;
}

#[tokio::test]
async fn the_will_is_delivered_when_the_connection_is_lost_not_after_disconnect() {
    let v = new_id();
    let (b, batches) = broker(v, None).await;
    let c = Raw::login(b.local_addr(), v, 60, true).await;
    drop(c); // Lost without DISCONNECT.
    let (batch, _) = tokio::time::timeout(WAIT, batches.lock().await.recv())
        .await
        .expect("the will in time")
        .unwrap();
    assert_eq!(
        batch,
        vec![(
            Channel::Events,
            Bytes::from_static(br#"{"type":"offline"}"#)
        )]
    );
    let mut c = Raw::login(b.local_addr(), v, 60, true).await;
    let mut out = BytesMut::new();
    v4::Disconnect.write(&mut out).unwrap();
    c.send(&out).await;
    assert!(c.next().await.is_none(), "closed after DISCONNECT");
    let none = tokio::time::timeout(Duration::from_millis(300), batches.lock().await.recv()).await;
    assert!(none.is_err(), "no will after a clean DISCONNECT: {none:?}");
    b.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_one_and_a_half_keep_alives_and_pings_keep_it() {
    let v = new_id();
    let (b, _batches) = broker(v, None).await;
    let mut pinging = Raw::login(b.local_addr(), v, 1, false).await;
    let mut ping = BytesMut::new();
    v4::PingReq.write(&mut ping).unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        pinging.send(&ping).await;
        assert_eq!(pinging.next().await, Some(v4::Packet::PingResp));
    }
    drop(pinging);
    let mut silent = Raw::login(b.local_addr(), v, 1, false).await;
    let started = std::time::Instant::now();
    assert!(silent.next().await.is_none(), "closed");
    assert!(
        started.elapsed() >= Duration::from_millis(1_400),
        "not before 1.5 × keep-alive: {:?}",
        started.elapsed()
    );
    b.shutdown().await;
}

#[tokio::test]
async fn a_second_login_takes_the_session_over() {
    let v = new_id();
    let (b, _batches) = broker(v, None).await;
    let mut first = Raw::login(b.local_addr(), v, 60, false).await;
    let _second = Raw::login(b.local_addr(), v, 60, false).await;
    assert!(
        first.next().await.is_none(),
        "the first connection is closed"
    );
    assert_eq!(b.connected(), 1);
    b.shutdown().await;
}

#[tokio::test]
async fn qos_2_is_delivered_once_and_completed() {
    let v = new_id();
    let (b, batches) = broker(v, None).await;
    let mut c = Raw::login(b.local_addr(), v, 60, false).await;
    let mut out = BytesMut::new();
    let t = topic(&v, Channel::Telemetry);
    publish(&mut out, &t, QoS::ExactlyOnce, 7, r#"{"ts":1}"#);
    c.send(&out).await;
    assert_eq!(c.next().await, Some(v4::Packet::PubRec(v4::PubRec::new(7))));
    // Sent again before PUBREL (the PUBREC was lost): acknowledged, not delivered again.
    out.clear();
    publish(&mut out, &t, QoS::ExactlyOnce, 7, r#"{"ts":1}"#);
    c.send(&out).await;
    assert_eq!(c.next().await, Some(v4::Packet::PubRec(v4::PubRec::new(7))));
    out.clear();
    v4::PubRel::new(7).write(&mut out).unwrap();
    c.send(&out).await;
    assert_eq!(
        c.next().await,
        Some(v4::Packet::PubComp(v4::PubComp::new(7)))
    );
    let mut rx = batches.lock().await;
    let (batch, ack) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((batch.len(), ack), (1, Ack::Durable));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .is_err()
    );
    drop(rx);
    b.shutdown().await;
}

#[tokio::test]
async fn mqtt_3_1_and_garbage_are_refused() {
    let v = new_id();
    let (b, _batches) = broker(v, None).await;
    // MQTT 3.1 ("MQIsdp", level 3): CONNACK "unacceptable protocol version".
    let mut old = Raw::open(b.local_addr()).await;
    old.send(&[
        0x10, 12, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60,
    ])
    .await;
    assert_eq!(
        old.next().await,
        Some(v4::Packet::ConnAck(v4::ConnAck::new(
            v4::ConnectReturnCode::RefusedProtocolVersion,
            false
        )))
    );
    // Not MQTT at all: closed without an answer.
    let mut http = Raw::open(b.local_addr()).await;
    http.send(b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(http.next().await.is_none());
    b.shutdown().await;
}

#[tokio::test]
async fn v5_topic_aliases_name_the_vehicles_own_topics() {
    use rumqttc::v5::mqttbytes::{QoS as Q5, v5};
    let v = new_id();
    let (b, batches) = broker(v, None).await;
    let mut c = Raw::open(b.local_addr()).await;
    let id = v.to_string();
    let mut out = BytesMut::new();
    v5::Connect {
        keep_alive: 60,
        client_id: id.clone(),
        clean_start: true,
        properties: None,
    }
    .write(
        &None,
        &Some(v5::Login {
            username: id.clone(),
            password: "pw".into(),
        }),
        &mut out,
    )
    .unwrap();
    let alias = |a| {
        Some(v5::PublishProperties {
            topic_alias: Some(a),
            ..Default::default()
        })
    };
    let mut first = v5::Publish::new(
        topic(&v, Channel::Telemetry),
        Q5::AtLeastOnce,
        "{\"ts\":1}",
        alias(3),
    );
    first.pkid = 1;
    first.write(&mut out).unwrap();
    let mut second = v5::Publish::new("", Q5::AtLeastOnce, "{\"ts\":2}", alias(3));
    second.pkid = 2;
    second.write(&mut out).unwrap();
    c.send(&out).await;
    let mut rx = batches.lock().await;
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(
            tokio::time::timeout(WAIT, rx.recv())
                .await
                .unwrap()
                .unwrap()
                .0,
        );
    }
    assert_eq!(
        got,
        vec![
            (Channel::Telemetry, Bytes::from_static(b"{\"ts\":1}")),
            (Channel::Telemetry, Bytes::from_static(b"{\"ts\":2}")),
        ]
    );
    // An alias never set is a protocol error: the connection closes, nothing is delivered.
    out.clear();
    let mut bad = v5::Publish::new("", Q5::AtLeastOnce, "{\"ts\":3}", alias(9));
    bad.pkid = 3;
    bad.write(&mut out).unwrap();
    c.send(&out).await;
    let mut closed = false;
    for _ in 0..10 {
        let mut chunk = [0u8; 256];
        match tokio::time::timeout(WAIT, c.s.read(&mut chunk))
            .await
            .unwrap()
        {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {} // CONNACK and PUBACKs.
        }
    }
    assert!(closed);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .is_err()
    );
    drop(rx);
    b.shutdown().await;
}
