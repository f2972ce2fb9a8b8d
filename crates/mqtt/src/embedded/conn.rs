//! One vehicle's connection: login, then a loop that reads whatever the vehicle sent, hands
//! its publishes to the platform as one batch, and answers everything in one write.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use mobility_core::VehicleId;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::mpsc,
    time::Instant,
};

use super::{
    COMMANDS_QUEUED_MAX, Shared, ToConn,
    wire::{self, Hello, In, Login, Proto},
};
use crate::{Ack, Channel, PACKET_BYTES_MAX, commands_topic, parse_topic};

/// A client must send CONNECT this soon after connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A write to a vehicle that stays blocked this long closes the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes asked of the socket per read (several hundred telemetry messages).
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most publishes handed to the platform in one batch.
const BATCH_MAX: usize = 1_024;
/// Commands sent to the vehicle and not yet acknowledged by it.
const COMMANDS_IN_FLIGHT_MAX: usize = COMMANDS_QUEUED_MAX;
/// QoS 2 publishes received and not yet released (PUBREL).
const QOS2_PENDING_MAX: usize = 1_024;
/// Bytes of the PACKET_BYTES_MAX bound as the codec's usize.
const PACKET_MAX: usize = PACKET_BYTES_MAX as usize;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("the client disconnected")]
    Disconnected,
    #[error("the broker is stopping")]
    Stopping,
    #[error("another connection logged in as this vehicle")]
    TakenOver,
    #[error("connection closed without DISCONNECT")]
    Closed,
    #[error("no packet within 1.5 × the keep-alive")]
    KeepAlive,
    #[error("not authorised: {0}")]
    NotAuthorised(String),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl End {
    /// Stable metric label.
    const fn label(&self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Stopping => "stopping",
            Self::TakenOver => "taken_over",
            Self::Closed => "closed",
            Self::KeepAlive => "keep_alive",
            Self::NotAuthorised(_) => "not_authorised",
            Self::Protocol(_) => "protocol",
            Self::Io(_) => "io",
        }
    }

    /// Whether the will is published: only when the connection was lost, not ended on purpose.
    const fn publishes_will(&self) -> bool {
        matches!(
            self,
            Self::Closed | Self::KeepAlive | Self::Io(_) | Self::Protocol(_)
        )
    }
}

impl From<wire::WireError> for End {
    fn from(e: wire::WireError) -> Self {
        Self::Protocol(e.to_string())
    }
}

/// Serves one accepted connection until it ends.
pub(super) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, conn: u64) {
    // Commands and acks are small packets someone waits for: no Nagle delay.
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut c = Conn {
        shared,
        rd,
        wr,
        inbuf: BytesMut::with_capacity(READ_CHUNK_BYTES),
        out: BytesMut::with_capacity(4 * 1024),
        proto: Proto::V4,
        conn,
    };
    match c.login().await {
        Ok(Some((vehicle, keep_alive, will))) => {
            let (tx, rx) = mpsc::channel(COMMANDS_QUEUED_MAX);
            c.shared.attach(vehicle, conn, tx);
            let mut s = Session {
                vehicle,
                keep_alive,
                last_heard: Instant::now(),
                commands: rx,
                aliases: HashMap::new(),
                next_pkid: 0,
                in_flight: HashSet::new(),
                qos2: HashSet::new(),
            };
            let end = c.session(&mut s).await;
            c.shared.detach(&vehicle, conn);
            metrics::counter!("mqtt_sessions_ended_total", "reason" => end.label()).increment(1);
            tracing::debug!(%peer, %vehicle, reason = %end, "MQTT session ended");
            if end.publishes_will()
                && let Some((topic, payload)) = will
                && let Some((v, channel)) = parse_topic(&topic)
            {
                c.shared
                    .link
                    .deliver(v, channel, payload, Ack::Durable)
                    .await;
            }
            let _ = c.wr.shutdown().await;
        }
        Ok(None) => {
            metrics::counter!("mqtt_connections_refused_total", "reason" => "login").increment(1);
        }
        Err(e) => {
            metrics::counter!("mqtt_connections_refused_total", "reason" => e.label()).increment(1);
            tracing::debug!(%peer, error = %e, "MQTT login failed");
        }
    }
}

struct Conn {
    shared: Arc<Shared>,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    inbuf: BytesMut,
    out: BytesMut,
    proto: Proto,
    conn: u64,
}

struct Session {
    vehicle: VehicleId,
    keep_alive: Option<Duration>,
    /// When the vehicle last sent anything.
    last_heard: Instant,
    commands: mpsc::Receiver<ToConn>,
    /// v5 topic aliases the vehicle set.
    aliases: HashMap<u16, String>,
    next_pkid: u16,
    /// Packet ids of commands written and not yet acknowledged.
    in_flight: HashSet<u16>,
    /// Packet ids of QoS 2 publishes delivered and waiting for PUBREL.
    qos2: HashSet<u16>,
}

/// Publishes gathered from one read, handed to the platform together.
#[derive(Default)]
struct Batch {
    messages: Vec<(Channel, Bytes)>,
    /// (packet id, QoS) of each publish to acknowledge once the batch is processed.
    acks: Vec<(u16, u8)>,
}

impl Conn {
    /// Reads more bytes; `Ok(false)` when the peer closed.
    async fn fill(&mut self) -> std::io::Result<bool> {
        self.inbuf.reserve(READ_CHUNK_BYTES);
        Ok(self.rd.read_buf(&mut self.inbuf).await? > 0)
    }

    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(WRITE_TIMEOUT, self.wr.write_all(&self.out)).await {
            Ok(r) => r?,
            Err(_) => return Err(End::Protocol("the client stopped reading".into())),
        }
        self.out.clear();
        Ok(())
    }

    /// Reads CONNECT and answers it. `Ok(None)`: refused (and answered).
    #[allow(clippy::type_complexity)]
    async fn login(
        &mut self,
    ) -> Result<Option<(VehicleId, Option<Duration>, Option<(String, Bytes)>)>, End> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let connect = loop {
            match wire::hello(&self.inbuf) {
                Hello::More => {}
                Hello::Connect(p) => {
                    self.proto = p;
                    if let Some(In::Connect(c)) = wire::read(p, &mut self.inbuf, PACKET_MAX)? {
                        break c;
                    }
                }
                Hello::Unsupported => {
                    // CONNACK "unacceptable protocol version" in the 3.1.1 encoding, which
                    // older clients read too.
                    self.out.extend_from_slice(&[0x20, 0x02, 0x00, 0x01]);
                    self.flush().await?;
                    return Ok(None);
                }
                Hello::NotConnect => {
                    return Err(End::Protocol("first packet is not CONNECT".into()));
                }
            }
            let stop = self.shared.stop.clone();
            let read = tokio::select! {
                () = stop.cancelled() => return Err(End::Stopping),
                r = tokio::time::timeout_at(deadline, self.fill()) => r,
            };
            match read {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Err(End::Closed),
                Ok(Err(e)) => return Err(End::Io(e)),
                Err(_) => return Err(End::Protocol("no CONNECT in time".into())),
            }
        };
        let vehicle = VehicleId::parse(&connect.client_id).ok();
        let creds_ok = match (vehicle, &connect.username, &connect.password) {
            (Some(v), Some(user), Some(password)) if *user == connect.client_id => {
                self.shared.link.authenticate(&v, password.as_bytes()).await
            }
            _ => false,
        };
        let will_ok = connect.will.as_ref().is_none_or(|(topic, _)| {
            vehicle.is_some_and(|v| parse_topic(topic).is_some_and(|(w, _)| w == v))
        });
        let login = match (creds_ok, will_ok) {
            (true, true) => Login::Accepted,
            (false, _) => Login::BadCredentials,
            (true, false) => Login::NotAuthorized,
        };
        wire::connack(self.proto, login, PACKET_BYTES_MAX, &mut self.out);
        self.flush().await?;
        match (login, vehicle) {
            (Login::Accepted, Some(v)) => {
                let keep_alive = (connect.keep_alive_s > 0)
                    .then(|| Duration::from_millis(u64::from(connect.keep_alive_s) * 1_500));
                Ok(Some((v, keep_alive, connect.will)))
            }
            _ => {
                tracing::debug!(client_id = %connect.client_id, creds_ok, will_ok, "MQTT login refused");
                Ok(None)
            }
        }
    }

    async fn session(&mut self, s: &mut Session) -> End {
        let stop = self.shared.stop.clone();
        // A client may send its first packets in the same write as CONNECT.
        if !self.inbuf.is_empty()
            && let Err(end) = self.process(s).await
        {
            return self.close(end).await;
        }
        loop {
            let idle_until = s.keep_alive.map(|k| s.last_heard + k);
            let step = tokio::select! {
                biased;
                () = stop.cancelled() => Err(End::Stopping),
                cmd = s.commands.recv() => match cmd {
                    Some(ToConn::Command(payload)) => self.command(s, payload).await,
                    Some(ToConn::TakenOver) | None => Err(End::TakenOver),
                },
                () = sleep_until_opt(idle_until) => Err(End::KeepAlive),
                read = self.fill() => match read {
                    Ok(true) => {
                        s.last_heard = Instant::now();
                        self.process(s).await
                    }
                    Ok(false) => Err(End::Closed),
                    Err(e) => Err(End::Io(e)),
                },
            };
            if let Err(end) = step {
                return self.close(end).await;
            }
        }
    }

    /// Tells a v5 client why the broker ends the session, where there is something to say.
    async fn close(&mut self, end: End) -> End {
        let not_authorised = matches!(end, End::NotAuthorised(_));
        if matches!(end, End::Stopping | End::TakenOver | End::NotAuthorised(_)) {
            wire::disconnect(self.proto, not_authorised, &mut self.out);
            let _ = self.flush().await;
        }
        end
    }

    async fn command(&mut self, s: &mut Session, payload: Bytes) -> Result<(), End> {
        if s.in_flight.len() >= COMMANDS_IN_FLIGHT_MAX {
            tracing::warn!(vehicle = %s.vehicle, "vehicle does not acknowledge its commands; one dropped");
            return Ok(());
        }
        s.next_pkid = s.next_pkid.checked_add(1).unwrap_or(1);
        while s.in_flight.contains(&s.next_pkid) {
            s.next_pkid = s.next_pkid.checked_add(1).unwrap_or(1);
        }
        s.in_flight.insert(s.next_pkid);
        let topic = commands_topic(&s.vehicle);
        wire::publish(
            self.proto,
            &topic,
            s.next_pkid,
            false,
            payload,
            &mut self.out,
        );
        self.flush().await
    }

    /// Handles every whole packet read so far.
    async fn process(&mut self, s: &mut Session) -> Result<(), End> {
        let mut batch = Batch::default();
        loop {
            let Some(packet) = wire::read(self.proto, &mut self.inbuf, PACKET_MAX)? else {
                break;
            };
            if let In::Publish {
                topic,
                alias,
                qos,
                pkid,
                payload,
            } = packet
            {
                let topic = self.resolve_alias(s, topic, alias)?;
                let own = parse_topic(&topic).filter(|(v, _)| *v == s.vehicle);
                let Some((_, channel)) = own else {
                    // Publishes before this one are processed and acknowledged first. MQTT
                    // 3.1.1 cannot refuse a PUBLISH except by disconnecting.
                    self.deliver(s, &mut batch).await?;
                    return Err(End::NotAuthorised(format!("publish to {topic}")));
                };
                if qos == 2 && s.qos2.contains(&pkid) {
                    // A redelivery before PUBREL: delivered already, only acknowledge again.
                    batch.acks.push((pkid, qos));
                    continue;
                }
                batch.messages.push((channel, payload));
                if qos > 0 {
                    batch.acks.push((pkid, qos));
                }
                if batch.messages.len() >= BATCH_MAX {
                    self.deliver(s, &mut batch).await?;
                }
                continue;
            }
            // Everything else is answered in order, after the publishes before it.
            self.deliver(s, &mut batch).await?;
            match packet {
                In::PubAck(pkid) => {
                    s.in_flight.remove(&pkid);
                }
                In::PubRel(pkid) => {
                    s.qos2.remove(&pkid);
                    wire::pubcomp(self.proto, pkid, &mut self.out);
                }
                In::QoS2Answer => {}
                In::Subscribe { pkid, filters } => {
                    let own = commands_topic(&s.vehicle);
                    let granted: Vec<bool> = filters.iter().map(|f| *f == own).collect();
                    for (f, ok) in filters.iter().zip(&granted) {
                        if !ok {
                            tracing::debug!(vehicle = %s.vehicle, filter = %f, "MQTT subscribe refused");
                        }
                    }
                    if granted.iter().any(|g| *g) {
                        self.shared.set_subscribed(&s.vehicle, self.conn, true);
                    }
                    wire::suback(self.proto, pkid, &granted, &mut self.out);
                }
                In::Unsubscribe { pkid, filters } => {
                    if filters.contains(&commands_topic(&s.vehicle)) {
                        self.shared.set_subscribed(&s.vehicle, self.conn, false);
                    }
                    wire::unsuback(self.proto, pkid, filters.len(), &mut self.out);
                }
                In::PingReq => wire::pingresp(self.proto, &mut self.out),
                In::Disconnect => {
                    self.flush().await?;
                    return Err(End::Disconnected);
                }
                In::Connect(_) => return Err(End::Protocol("a second CONNECT".into())),
                In::Unexpected => return Err(End::Protocol("a packet only a broker sends".into())),
                In::Publish { .. } => {}
            }
        }
        self.deliver(s, &mut batch).await?;
        self.flush().await
    }

    fn resolve_alias(
        &self,
        s: &mut Session,
        topic: String,
        alias: Option<u16>,
    ) -> Result<String, End> {
        let Some(alias) = alias else {
            return Ok(topic);
        };
        if alias == 0 || alias > wire::TOPIC_ALIASES_MAX {
            return Err(End::Protocol(format!("topic alias {alias} out of range")));
        }
        if topic.is_empty() {
            s.aliases
                .get(&alias)
                .cloned()
                .ok_or_else(|| End::Protocol(format!("unknown topic alias {alias}")))
        } else {
            s.aliases.insert(alias, topic.clone());
            Ok(topic)
        }
    }

    /// Hands the batch to the platform, then queues its acknowledgements.
    async fn deliver(&mut self, s: &mut Session, batch: &mut Batch) -> Result<(), End> {
        if !batch.messages.is_empty() {
            // Anything acknowledged must be durable first; a batch of QoS 0 only need not wait.
            let ack = if batch.acks.is_empty() {
                Ack::None
            } else {
                Ack::Durable
            };
            self.shared
                .link
                .deliver_batch(s.vehicle, &batch.messages, ack)
                .await;
            batch.messages.clear();
        }
        for (pkid, qos) in batch.acks.drain(..) {
            if qos == 2 {
                if s.qos2.len() >= QOS2_PENDING_MAX {
                    return Err(End::Protocol("too many QoS 2 publishes unreleased".into()));
                }
                s.qos2.insert(pkid);
                wire::pubrec(self.proto, pkid, &mut self.out);
            } else {
                wire::puback(self.proto, pkid, &mut self.out);
            }
        }
        Ok(())
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
