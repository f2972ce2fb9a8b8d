//! The NATS JetStream backend: one stream per domain (`<PREFIX>_<DOMAIN>`, subjects
//! `<prefix>.<domain>.>`), file storage, retention by age and size, deduplication through
//! `Nats-Msg-Id`; durable pull consumers with explicit acks, `ack_wait`, back-off and
//! `max_deliver` one past the consumer's attempts (that last delivery is the one dead-lettered
//! by the shared rule in [`crate::screen`]).
//!
//! Checked against nats-server 2.9 (the oldest this machine kind has): no setting of a later
//! server is sent.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    message::AckKind,
    stream,
};
use async_trait::async_trait;
use futures_util::StreamExt;
use mobility_core::{CityId, Domain, NewEvent, TimestampMs};

use crate::{
    Acker, BusConfig, BusError, Consumer, ConsumerSpec, Delivery, Envelope, EventBus, FETCH_MAX,
    PUBLISH_BATCH_MAX, Published, StartAt, StreamInfo, Subscription, codec,
};

fn nats_err(e: impl std::fmt::Display) -> BusError {
    BusError::Nats(e.to_string())
}

/// The JetStream bus.
#[derive(Debug, Clone)]
pub struct NatsBus {
    pub(crate) js: jetstream::Context,
    prefix: String,
    region: String,
}

#[allow(clippy::cast_possible_truncation)]
fn to_ms(t: time::OffsetDateTime) -> TimestampMs {
    TimestampMs((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn deliver_policy(start: StartAt) -> Result<DeliverPolicy, BusError> {
    Ok(match start {
        StartAt::First => DeliverPolicy::All,
        StartAt::Seq(s) => DeliverPolicy::ByStartSequence {
            start_sequence: s.max(1),
        },
        StartAt::Time(t) => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(t.0) * 1_000_000,
            )
            .map_err(|e| BusError::Config(format!("start time: {e}")))?,
        },
        StartAt::New => DeliverPolicy::New,
    })
}

impl NatsBus {
    /// Connects and makes sure every domain's stream exists with its retention. `prefix`
    /// separates platforms (or tests) sharing one server: lower-case letters, digits, `_`.
    pub async fn connect(url: &str, prefix: &str, config: BusConfig) -> Result<Self, BusError> {
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(BusError::Config(format!(
                "bus prefix {prefix:?}: use lower-case letters, digits and '_'"
            )));
        }
        let client = async_nats::ConnectOptions::new()
            .name("mobility")
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| {
                BusError::Nats(format!("cannot connect to {}: {e}", crate::redact(url)))
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(10))
            .max_ack_inflight(PUBLISH_BATCH_MAX)
            .build(client);
        let bus = Self {
            js,
            prefix: prefix.to_owned(),
            region: config.region.clone(),
        };
        for d in Domain::ALL {
            let r = config.retention_of(d);
            let cfg = stream::Config {
                name: bus.stream_name(d),
                subjects: vec![format!("{}.{}.>", bus.prefix, d.as_str())],
                storage: stream::StorageType::File,
                max_age: r.max_age,
                max_bytes: i64::try_from(r.max_bytes).unwrap_or(i64::MAX),
                duplicate_window: crate::DEDUP_WINDOW.min(r.max_age),
                discard: stream::DiscardPolicy::Old,
                ..Default::default()
            };
            match bus.js.get_stream(&cfg.name).await {
                Ok(_) => {
                    bus.js.update_stream(&cfg).await.map_err(nats_err)?;
                }
                Err(_) => {
                    bus.js.create_stream(cfg).await.map_err(nats_err)?;
                }
            }
        }
        Ok(bus)
    }

    /// The JetStream stream of a domain.
    #[must_use]
    pub fn stream_name(&self, d: Domain) -> String {
        format!("{}_{}", self.prefix, d.as_str()).to_ascii_uppercase()
    }

    fn full_subject(&self, logical: &str) -> String {
        format!("{}.{logical}", self.prefix)
    }

    fn filter(&self, d: Domain, city: Option<&CityId>) -> String {
        match city {
            Some(c) => self.full_subject(&crate::subject_of(d, Some(c))),
            None => format!("{}.{}.>", self.prefix, d.as_str()),
        }
    }

    /// Deletes every stream of this prefix, its blobs' too (tests clean up the shared server
    /// with it).
    pub async fn delete_streams(&self) -> Result<(), BusError> {
        for d in Domain::ALL {
            let _ = self.js.delete_stream(self.stream_name(d)).await;
        }
        let _ = self.js.delete_object_store(self.blob_bucket()).await;
        Ok(())
    }

    /// The object store bucket of this prefix's blobs.
    fn blob_bucket(&self) -> String {
        format!("{}_blobs", self.prefix)
    }

    /// The blob bucket, created on first use (no size bound: JetStream would reserve it; a
    /// blob replaced by the same name gives its space back).
    async fn blobs(&self) -> Result<async_nats::jetstream::object_store::ObjectStore, BusError> {
        if let Ok(store) = self.js.get_object_store(self.blob_bucket()).await {
            return Ok(store);
        }
        self.js
            .create_object_store(async_nats::jetstream::object_store::Config {
                bucket: self.blob_bucket(),
                description: Some("the platform's snapshots (mobility)".into()),
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(nats_err)
    }

    async fn stream(&self, d: Domain) -> Result<stream::Stream, BusError> {
        self.js
            .get_stream(self.stream_name(d))
            .await
            .map_err(nats_err)
    }

    fn pull_config(&self, spec: &ConsumerSpec) -> Result<pull::Config, BusError> {
        Ok(pull::Config {
            durable_name: Some(spec.name.clone()),
            deliver_policy: deliver_policy(spec.start)?,
            ack_policy: AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            // One more than the attempts: that delivery is dead-lettered, not handled.
            max_deliver: i64::from(spec.max_attempts) + 1,
            filter_subject: self.filter(spec.domain, spec.city.as_ref()),
            max_ack_pending: 100_000,
            ..Default::default()
        })
    }

    fn envelope(&self, m: &jetstream::Message) -> Result<(Envelope, u32), BusError> {
        let info = m.info().map_err(nats_err)?;
        let seq = info.stream_sequence;
        let stored = to_ms(info.published);
        let attempt = u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX);
        let subject = m
            .subject
            .as_str()
            .strip_prefix(&format!("{}.", self.prefix))
            .unwrap_or(m.subject.as_str())
            .to_owned();
        Ok(match codec::decode(&m.payload, seq, stored) {
            Ok(e) => (e, attempt),
            Err(_) => (
                codec::undecodable(&m.payload, seq, stored, &subject),
                u32::MAX,
            ),
        })
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn publish(&self, events: &[NewEvent]) -> Result<Vec<Published>, BusError> {
        if events.len() > PUBLISH_BATCH_MAX {
            return Err(BusError::Config(format!(
                "at most {PUBLISH_BATCH_MAX} events per publish"
            )));
        }
        // Pipelined: every publish is sent, then the acks are awaited in order.
        let mut acks = Vec::with_capacity(events.len());
        for e in events {
            let subject = codec::subject_for(e);
            let bytes = codec::encode(e, &subject, &self.region)?;
            let msg = jetstream::message::PublishMessage::build()
                .payload(bytes.into())
                .message_id(e.id.to_string());
            acks.push(
                self.js
                    .send_publish(self.full_subject(&subject), msg)
                    .await
                    .map_err(nats_err)?,
            );
            metrics::counter!("bus_published_total", "domain" => e.event.domain().as_str())
                .increment(1);
        }
        let mut out = Vec::with_capacity(acks.len());
        for ack in acks {
            let a = ack.await.map_err(nats_err)?;
            out.push(Published {
                seq: a.sequence,
                duplicate: a.duplicate,
            });
        }
        Ok(out)
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn Consumer>, BusError> {
        spec.validate()?;
        let stream = self.stream(spec.domain).await?;
        let config = self.pull_config(&spec)?;
        // An existing consumer keeps its cursor and settings (2.9 servers cannot update them;
        // `reset_consumer` recreates one).
        let consumer: PullConsumer = match stream.get_consumer(&spec.name).await {
            Ok(c) => c,
            Err(_) => stream.create_consumer(config).await.map_err(nats_err)?,
        };
        Ok(Box::new(NatsConsumer {
            bus: self.clone(),
            consumer,
            spec,
        }))
    }

    async fn reset_consumer(&self, spec: ConsumerSpec, from: StartAt) -> Result<(), BusError> {
        spec.validate()?;
        let stream = self.stream(spec.domain).await?;
        let _ = stream.delete_consumer(&spec.name).await;
        let mut config = self.pull_config(&spec)?;
        config.deliver_policy = deliver_policy(from)?;
        stream.create_consumer(config).await.map_err(nats_err)?;
        Ok(())
    }

    async fn delete_consumer(&self, domain: Domain, name: &str) -> Result<(), BusError> {
        crate::valid_name(name)?;
        let stream = self.stream(domain).await?;
        stream
            .delete_consumer(name)
            .await
            .map(|_| ())
            .map_err(|_| BusError::NoConsumer(name.to_owned()))
    }

    async fn consumers(&self, domain: Domain) -> Result<Vec<String>, BusError> {
        let stream = self.stream(domain).await?;
        let mut names: Vec<String> = Vec::new();
        let mut list = stream.consumer_names();
        while let Some(n) = list.next().await {
            let n = n.map_err(nats_err)?;
            // Ephemeral readers have generated upper-case names; durable ones are ours.
            if crate::valid_name(&n).is_ok() {
                names.push(n);
            }
        }
        names.sort();
        Ok(names)
    }

    async fn read(
        &self,
        domain: Domain,
        city: Option<&CityId>,
        from: StartAt,
        max: usize,
    ) -> Result<Vec<Envelope>, BusError> {
        let max = max.clamp(1, FETCH_MAX);
        let stream = self.stream(domain).await?;
        let consumer: PullConsumer = stream
            .create_consumer(pull::Config {
                deliver_policy: deliver_policy(from)?,
                ack_policy: AckPolicy::None,
                filter_subject: self.filter(domain, city),
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(nats_err)?;
        let mut out = Vec::new();
        while out.len() < max {
            let pending = consumer.get_info().await.map_err(nats_err)?.num_pending;
            if pending == 0 {
                break;
            }
            let want = (max - out.len()).min(usize::try_from(pending).unwrap_or(usize::MAX));
            let mut batch = consumer
                .fetch()
                .max_messages(want)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .map_err(nats_err)?;
            let before = out.len();
            while let Some(m) = batch.next().await {
                let m = m.map_err(nats_err)?;
                out.push(self.envelope(&m)?.0);
            }
            if out.len() == before {
                break;
            }
        }
        let name = consumer.cached_info().name.clone();
        let _ = stream.delete_consumer(&name).await;
        Ok(out)
    }

    async fn subscribe(
        &self,
        domain: Domain,
        city: Option<&CityId>,
        from: StartAt,
    ) -> Result<Box<dyn Subscription>, BusError> {
        // An ordered consumer: ephemeral, no acks, recreated by the client on a gap; the server
        // drops it a while after this process stops asking.
        let consumer = self
            .stream(domain)
            .await?
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.filter(domain, city),
                deliver_policy: deliver_policy(from)?,
                ..Default::default()
            })
            .await
            .map_err(nats_err)?;
        let messages = consumer.messages().await.map_err(nats_err)?;
        Ok(Box::new(NatsSubscription {
            bus: self.clone(),
            messages,
        }))
    }

    async fn stream_info(&self, domain: Domain) -> Result<StreamInfo, BusError> {
        let info = self
            .stream(domain)
            .await?
            .get_info()
            .await
            .map_err(nats_err)?;
        let s = info.state;
        Ok(StreamInfo {
            first_seq: if s.messages == 0 { 0 } else { s.first_sequence },
            last_seq: s.last_sequence,
            messages: s.messages,
            bytes: s.bytes,
        })
    }

    async fn put_blob(&self, name: &str, bytes: Vec<u8>) -> Result<(), BusError> {
        crate::check_blob_name(name)?;
        let store = self.blobs().await?;
        store
            .put(name, &mut bytes.as_slice())
            .await
            .map_err(nats_err)?;
        Ok(())
    }

    async fn get_blob(&self, name: &str) -> Result<Option<Vec<u8>>, BusError> {
        use async_nats::jetstream::object_store::GetErrorKind;
        use tokio::io::AsyncReadExt;
        crate::check_blob_name(name)?;
        let store = self.blobs().await?;
        let mut object = match store.get(name).await {
            Ok(o) => o,
            Err(e) if e.kind() == GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(nats_err(e)),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| BusError::Nats(format!("reading blob {name}: {e}")))?;
        Ok(Some(bytes))
    }

    fn backend(&self) -> &'static str {
        "nats"
    }
}

/// A reader following a stream through an ordered consumer.
struct NatsSubscription {
    bus: NatsBus,
    messages: pull::Ordered,
}

impl std::fmt::Debug for NatsSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSubscription").finish_non_exhaustive()
    }
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self, max: usize, wait: Duration) -> Result<Vec<Envelope>, BusError> {
        use futures_util::FutureExt;
        let max = max.clamp(1, FETCH_MAX);
        let mut out = Vec::new();
        let Ok(first) = tokio::time::timeout(wait, self.messages.next()).await else {
            return Ok(out);
        };
        let mut next = first;
        loop {
            match next {
                Some(Ok(m)) => out.push(self.bus.envelope(&m)?.0),
                Some(Err(e)) => return Err(nats_err(e)),
                None => return Err(BusError::Nats("the subscription ended".into())),
            }
            if out.len() >= max {
                break;
            }
            // Whatever else has arrived already, without waiting.
            match self.messages.next().now_or_never() {
                Some(m) => next = m,
                None => break,
            }
        }
        Ok(out)
    }
}

/// A handle on a JetStream durable consumer.
#[derive(Debug)]
pub struct NatsConsumer {
    bus: NatsBus,
    consumer: PullConsumer,
    spec: ConsumerSpec,
}

struct NatsAck {
    msg: jetstream::Message,
    backoff: Vec<Duration>,
}

#[async_trait]
impl Acker for NatsAck {
    async fn ack(&self) -> Result<(), BusError> {
        // A double ack waits for the server's confirmation, so an acked event is not
        // redelivered after a crash right after.
        self.msg.double_ack().await.map_err(nats_err)
    }

    async fn nak(&self, attempt: u32) -> Result<(), BusError> {
        let i = (attempt.max(1) - 1) as usize;
        let delay = self.backoff.get(i).or_else(|| self.backoff.last()).copied();
        self.msg
            .ack_with(AckKind::Nak(delay))
            .await
            .map_err(nats_err)
    }
}

#[async_trait]
impl Consumer for NatsConsumer {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let max = max.clamp(1, FETCH_MAX);
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(wait.max(Duration::from_millis(10)))
            .messages()
            .await
            .map_err(nats_err)?;
        let mut out = Vec::new();
        while let Some(m) = batch.next().await {
            let m = m.map_err(nats_err)?;
            let (envelope, attempt) = self.bus.envelope(&m)?;
            out.push(Delivery {
                envelope,
                attempt,
                acker: Box::new(NatsAck {
                    msg: m,
                    backoff: self.spec.backoff.clone(),
                }),
            });
        }
        crate::screen(&self.bus, &self.spec, out).await
    }

    async fn lag(&self) -> Result<u64, BusError> {
        let info = self.consumer.get_info().await.map_err(nats_err)?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    fn spec(&self) -> &ConsumerSpec {
        &self.spec
    }
}
