//! The embedded vehicle broker: an MQTT 3.1.1 and 5 server for vehicles only (ADR 0008).
//!
//! Why not a general broker: every client here is a vehicle that may publish only under its
//! own topics and subscribe only to its own commands topic, and the only subscriber to what
//! vehicles publish is the platform. A general broker (rmqtt, until ADR 0008) routes each
//! PUBLISH through its session loop, hook chain and topic tree one at a time, so a vehicle's
//! next message waited for the previous one's group commit. This server reads whatever a
//! connection has sent, hands the whole read to the platform as one batch (one log append,
//! one fsync wait), and then writes all the PUBACKs at once.
//!
//! Security: anonymous logins are refused; a client must log in with client id = username =
//! its vehicle id and password = its device secret. It may publish only to its own
//! `v1/vehicles/{id}/...` channels (anything else disconnects it) and subscribe only to its own
//! commands topic, exactly. A will is accepted only on one of its own topics; it is delivered
//! to the platform if the connection ends without DISCONNECT.
//!
//! Sessions are not kept across connections (CONNACK always says `session_present = false`):
//! a vehicle subscribes again after reconnecting, and a command sent while it is offline is
//! not queued; the command service times it out and reports it.

mod conn;
mod wire;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use mobility_core::VehicleId;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{MqttError, VehicleLink, commands_topic};

/// Most connections served at once; further ones are closed at accept (a bound on memory).
pub const CONNECTIONS_MAX: usize = 250_000;
/// Commands waiting to be written to one vehicle's connection.
const COMMANDS_QUEUED_MAX: usize = 64;
/// How long shutdown waits for connections to finish what they were processing.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// What the rest of the platform sends to a connection.
#[derive(Debug)]
enum ToConn {
    /// A command to publish to the vehicle (QoS 1).
    Command(Bytes),
    /// Another connection logged in as the same vehicle: this one closes.
    TakenOver,
}

#[derive(Debug)]
struct Session {
    conn: u64,
    subscribed: bool,
    tx: mpsc::Sender<ToConn>,
}

/// State shared by the accept loop, the connections and the handle.
struct Shared {
    link: Arc<dyn VehicleLink>,
    sessions: Mutex<HashMap<VehicleId, Session>>,
    next_conn: AtomicU64,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("connections", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<VehicleId, Session>> {
        // A poisoned lock only means a panic elsewhere while holding it; the map stays usable.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `conn` as the vehicle's session; an older one is told to close.
    fn attach(&self, vehicle: VehicleId, conn: u64, tx: mpsc::Sender<ToConn>) {
        let (old, connected) = {
            let mut sessions = self.sessions();
            let old = sessions.insert(
                vehicle,
                Session {
                    conn,
                    subscribed: false,
                    tx,
                },
            );
            (old, sessions.len())
        };
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("mqtt_vehicles_connected").set(connected as f64);
        if let Some(old) = old {
            let _ = old.tx.try_send(ToConn::TakenOver);
        }
    }

    fn detach(&self, vehicle: &VehicleId, conn: u64) {
        let mut sessions = self.sessions();
        if sessions.get(vehicle).is_some_and(|s| s.conn == conn) {
            sessions.remove(vehicle);
        }
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("mqtt_vehicles_connected").set(sessions.len() as f64);
    }

    fn set_subscribed(&self, vehicle: &VehicleId, conn: u64, subscribed: bool) {
        if let Some(s) = self.sessions().get_mut(vehicle)
            && s.conn == conn
        {
            s.subscribed = subscribed;
        }
    }
}

/// The platform's own MQTT broker for vehicles.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl EmbeddedBroker {
    /// Starts the broker on `addr` (port 0 picks a free port; see [`Self::local_addr`]).
    pub async fn start(addr: SocketAddr, link: Arc<dyn VehicleLink>) -> Result<Self, MqttError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| MqttError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        let bound = listener.local_addr().map_err(|e| MqttError::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        let shared = Arc::new(Shared {
            link,
            sessions: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let accepting = shared.clone();
        shared.tasks.spawn(accept(listener, accepting));
        tracing::info!("MQTT broker listening on mqtt://{bound}");
        Ok(Self {
            addr: bound,
            shared,
        })
    }

    /// The address the broker listens on.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Vehicles connected now.
    #[must_use]
    pub fn connected(&self) -> usize {
        self.shared.sessions().len()
    }

    /// Publishes `payload` to a vehicle's commands topic (QoS 1). A vehicle that is not
    /// connected, or not subscribed to its commands, does not get it (as with any broker and a
    /// clean session); the command service times the command out.
    pub async fn send_command(&self, vehicle: &VehicleId, payload: Bytes) -> Result<(), MqttError> {
        let tx = {
            let sessions = self.shared.sessions();
            match sessions.get(vehicle) {
                Some(s) if s.subscribed => s.tx.clone(),
                _ => {
                    tracing::debug!(%vehicle, "command for a vehicle that is not listening");
                    return Ok(());
                }
            }
        };
        tx.try_send(ToConn::Command(payload))
            .map_err(|e| MqttError::Publish {
                topic: commands_topic(vehicle),
                reason: match e {
                    mpsc::error::TrySendError::Full(_) => {
                        format!("{COMMANDS_QUEUED_MAX} commands already wait for this vehicle")
                    }
                    mpsc::error::TrySendError::Closed(_) => "the vehicle disconnected".into(),
                },
            })
    }

    /// Stops accepting connections, lets each connection finish the batch it is processing,
    /// and disconnects every client.
    pub async fn shutdown(&self) {
        self.shared.stop.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(SHUTDOWN_WAIT, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("MQTT connections still busy after {SHUTDOWN_WAIT:?}");
        }
        tracing::info!("MQTT broker stopped");
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "MQTT accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.tasks.len() > CONNECTIONS_MAX {
            metrics::counter!("mqtt_connections_refused_total", "reason" => "too_many")
                .increment(1);
            tracing::warn!(%peer, "MQTT connection refused: {CONNECTIONS_MAX} connections already");
            continue;
        }
        let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        shared
            .tasks
            .spawn(conn::serve(shared.clone(), stream, peer, conn));
    }
}
