//! The embedded broker (rmqtt). See docs/notes/rmqtt-embedding.md for how rmqtt is driven.
//!
//! Security: anonymous logins are refused; a client must log in with client id = username =
//! its vehicle id and password = its device secret. It may publish only to its own
//! `v1/vehicles/{id}/...` channels and subscribe only to its own commands topic. Will messages
//! bypass the publish ACL in rmqtt, so a will on any other topic is refused at login.

use std::{net::SocketAddr, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use mobility_core::VehicleId;
use rmqtt::{
    codec::v5::{PublishProperties, SubscribeAckReason},
    context::ServerContext,
    hook::{Handler, HookResult, Parameter, Register, ReturnType, Type},
    net::Builder,
    server::MqttServer,
    session::SessionState,
    types::{
        AuthResult, CodecPublish, From, Id, LastWill, Publish, PublishAclResult, QoS,
        SubscribeAclResult,
    },
    utils::timestamp_millis,
};

use crate::{Channel, MqttError, PACKET_BYTES_MAX, VehicleLink, commands_topic, parse_topic};

/// The platform's own MQTT broker.
pub struct EmbeddedBroker {
    scx: ServerContext,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<rmqtt::Result<()>>,
    register: Box<dyn Register>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Hooks {
    link: Arc<dyn VehicleLink>,
}

fn own_vehicle(client_id: &str) -> Option<VehicleId> {
    VehicleId::parse(client_id).ok()
}

/// May the client with id `client_id` publish to `topic`?
fn may_publish(client_id: &str, topic: &str) -> Option<(VehicleId, Channel)> {
    let own = own_vehicle(client_id)?;
    parse_topic(topic).filter(|(v, _)| *v == own)
}

/// May the client subscribe to `filter`? Only to its own commands topic, exactly.
fn may_subscribe(client_id: &str, filter: &str) -> bool {
    own_vehicle(client_id).is_some_and(|v| filter == commands_topic(&v))
}

#[async_trait]
impl Handler for Hooks {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(ci) => {
                let client_id: &str = ci.client_id();
                let creds_ok = match (own_vehicle(client_id), ci.username(), ci.password()) {
                    (Some(vehicle), Some(user), Some(password)) if &**user == client_id => {
                        self.link.authenticate(&vehicle, password).await
                    }
                    _ => false,
                };
                let will_ok = match ci.last_will() {
                    None => true,
                    Some(LastWill::V3(w)) => may_publish(client_id, &w.topic).is_some(),
                    Some(LastWill::V5(w)) => may_publish(client_id, &w.topic).is_some(),
                };
                let result = if creds_ok && will_ok {
                    AuthResult::Allow(false, None)
                } else {
                    tracing::debug!(client_id, creds_ok, will_ok, "MQTT login refused");
                    AuthResult::BadUsernameOrPassword
                };
                (false, Some(HookResult::AuthResult(result)))
            }
            Parameter::ClientSubscribeCheckAcl(session, sub) => {
                let result = if may_subscribe(&session.id.client_id, &sub.topic_filter) {
                    SubscribeAclResult::new_success(sub.opts.qos(), None)
                } else {
                    tracing::debug!(client_id = %session.id.client_id, filter = %sub.topic_filter, "MQTT subscribe refused");
                    SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                };
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let Some((vehicle, channel)) = may_publish(&session.id.client_id, &publish.topic)
                else {
                    tracing::debug!(client_id = %session.id.client_id, topic = %publish.topic, "MQTT publish refused");
                    // MQTT 3.1.1 cannot refuse a PUBLISH except by disconnecting.
                    return (
                        false,
                        Some(HookResult::PublishAclResult(PublishAclResult::rejected(
                            true, None,
                        ))),
                    );
                };
                self.link
                    .deliver(vehicle, channel, publish.payload.clone())
                    .await;
                (
                    false,
                    Some(HookResult::PublishAclResult(PublishAclResult::allow())),
                )
            }
            _ => (true, acc),
        }
    }
}

impl EmbeddedBroker {
    /// Starts the broker on `addr` (port 0 picks a free port; see [`Self::local_addr`]).
    pub async fn start(addr: SocketAddr, link: Arc<dyn VehicleLink>) -> Result<Self, MqttError> {
        let fail = |reason: String| MqttError::Listen {
            addr: addr.to_string(),
            reason,
        };
        // The busy check refuses logins when the machine's CPU is above 90 %: wrong for us.
        let scx = ServerContext::new().busy_check_enable(false).build().await;
        let register = scx.extends.hook_mgr().register();
        let hooks = Hooks { link };
        register
            .add(Type::ClientAuthenticate, Box::new(hooks.clone()))
            .await;
        register
            .add(Type::ClientSubscribeCheckAcl, Box::new(hooks.clone()))
            .await;
        register
            .add(Type::MessagePublishCheckAcl, Box::new(hooks))
            .await;
        register.start().await;
        let listener = Builder::new()
            .name("vehicles/tcp")
            .laddr(addr)
            .allow_anonymous(false)
            // Commands (unlock, lock) and their acks are single small packets that someone
            // waits for: send them at once instead of letting Nagle hold them for an ACK.
            .nodelay(true)
            .max_packet_size(PACKET_BYTES_MAX)
            .reuseaddr(Some(true))
            .bind()
            .map_err(|e| fail(e.to_string()))?
            .tcp()
            .map_err(|e| fail(e.to_string()))?;
        let bound = listener.local_addr().map_err(|e| fail(e.to_string()))?;
        let server = MqttServer::new(scx.clone())
            .listener_by_id(listener, 1)
            .build();
        // run(), not start(): start() exits the process on error.
        let task = tokio::spawn(server.run());
        tracing::info!("MQTT broker listening on mqtt://{bound}");
        Ok(Self {
            scx,
            addr: bound,
            task,
            register,
        })
    }

    /// The address the broker listens on.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes `payload` to a vehicle's commands topic (QoS 1).
    pub async fn send_command(&self, vehicle: &VehicleId, payload: Bytes) -> Result<(), MqttError> {
        let topic = commands_topic(vehicle);
        let packet = CodecPublish {
            dup: false,
            retain: false,
            qos: QoS::AtLeastOnce,
            topic: topic.clone().into(),
            packet_id: None,
            payload,
            properties: Some(PublishProperties::default()),
        };
        let publish = Publish::from(packet).create_time(timestamp_millis());
        let from = From::from_system(Id::new(
            self.scx.node.id(),
            0,
            None,
            None,
            "mobility".into(),
            None,
        ));
        SessionState::forwards(&self.scx, from, publish, false, None)
            .await
            .map_err(|e| MqttError::Publish {
                topic,
                reason: e.to_string(),
            })
    }

    /// Stops accepting connections and disconnects every client.
    pub async fn shutdown(&self) {
        self.task.abort();
        let ids: Vec<Id> = self
            .scx
            .extends
            .shared()
            .await
            .iter()
            .map(|e| e.id())
            .collect();
        for id in ids {
            let mut entry = self.scx.extends.shared().await.entry(id);
            let _ = entry.kick(true, true, true).await;
        }
        self.register.stop().await;
        tracing::info!("MQTT broker stopped");
    }
}
