//! The embedded backend: one [`log::Log`] per domain under one directory, and durable
//! consumers whose cursors are files beside them. For one process: the directory is locked.
//!
//! A consumer's state is its next fresh sequence and the sequences delivered but not acked
//! (with their attempts). Everything before the next sequence that is not pending was acked,
//! so the state stays small whatever the stream's size. It is written (atomically, by rename)
//! at most every [`CURSOR_FLUSH`] and when the bus closes; a crash loses at most that much
//! progress, which means redelivery, never loss.

pub mod log;

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use mobility_core::{CityId, Domain, NewEvent};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{
    Acker, BusConfig, BusError, Consumer, ConsumerSpec, Delivery, Envelope, EventBus, FETCH_MAX,
    PUBLISH_BATCH_MAX, Published, StartAt, StreamInfo, Subscription, codec,
};

/// How often changed consumer cursors are written.
pub const CURSOR_FLUSH: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct Cursor {
    /// Next sequence never delivered.
    next: u64,
    /// Delivered, not acked: seq → attempts so far.
    pending: BTreeMap<u64, u32>,
}

#[derive(Debug)]
struct ConsumerState {
    spec: ConsumerSpec,
    cursor: Cursor,
    /// When each pending sequence is due again.
    due: HashMap<u64, Instant>,
    dirty: bool,
    path: PathBuf,
}

impl ConsumerState {
    fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let tmp = self.path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec(&self.cursor).unwrap_or_default())?;
        fs::rename(&tmp, &self.path)?;
        self.dirty = false;
        Ok(())
    }

    /// Everything before this is acked.
    fn floor(&self) -> u64 {
        self.cursor
            .pending
            .keys()
            .next()
            .copied()
            .unwrap_or(self.cursor.next)
            .min(self.cursor.next)
    }
}

type Shared = Arc<Mutex<ConsumerState>>;

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    region: String,
    logs: HashMap<Domain, log::Log>,
    consumers: Mutex<HashMap<(Domain, String), Shared>>,
    /// `None` when opened read-only.
    _lock: Option<fs::File>,
}

impl Inner {
    fn log(&self, d: Domain) -> &log::Log {
        // Every domain's log is opened at start.
        &self.logs[&d]
    }

    fn cursor_path(&self, d: Domain, name: &str) -> PathBuf {
        self.dir
            .join("consumers")
            .join(format!("{}.{name}.json", d.as_str()))
    }

    fn start_seq(&self, d: Domain, start: StartAt) -> Result<u64, BusError> {
        let log = self.log(d);
        let (first, last, _) = log.extent();
        Ok(match start {
            StartAt::First => first,
            StartAt::Seq(s) => s.max(first),
            StartAt::Time(t) => log.seq_at_time(t)?.max(first),
            StartAt::New => last + 1,
        })
    }

    fn flush_all(&self) {
        for c in self.consumers.lock().values() {
            if let Err(e) = c.lock().save() {
                tracing::warn!(error = %e, "cannot save a consumer's cursor");
            }
        }
    }
}

/// The embedded event bus.
#[derive(Debug, Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

impl EmbeddedBus {
    /// Opens (or creates) the bus in `dir`. Fails if another process has it open.
    pub fn open(dir: &Path, config: BusConfig) -> Result<Self, BusError> {
        fs::create_dir_all(dir.join("consumers"))?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        lock.try_lock().map_err(|_| {
            BusError::Config(format!(
                "the event log in {} is open in another process; the embedded bus serves one \
                 process (set bus_url to nats://… to run several)",
                dir.display()
            ))
        })?;
        let mut logs = HashMap::new();
        for d in Domain::ALL {
            logs.insert(
                d,
                log::Log::open(&dir.join(d.as_str()), config.retention_of(d), sync_of(d))?,
            );
        }
        let inner = Arc::new(Inner {
            dir: dir.to_owned(),
            region: config.region,
            logs,
            consumers: Mutex::new(HashMap::new()),
            _lock: Some(lock),
        });
        // Cursors are written in the background; the task ends with the last handle.
        let weak = Arc::downgrade(&inner);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(CURSOR_FLUSH);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    tokio::task::spawn_blocking(move || inner.flush_all())
                        .await
                        .ok();
                }
            });
        }
        Ok(Self { inner })
    }

    /// Opens the bus in `dir` for reading only, beside the process that writes it: reads,
    /// stream info and consumers' lag see what is on disk now; publishing and consuming are
    /// refused.
    pub fn open_read_only(dir: &Path) -> Result<Self, BusError> {
        let mut logs = HashMap::new();
        for d in Domain::ALL {
            logs.insert(d, log::Log::open_read_only(&dir.join(d.as_str()))?);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                region: String::new(),
                logs,
                consumers: Mutex::new(HashMap::new()),
                _lock: None,
            }),
        })
    }

    fn read_only(&self) -> bool {
        self.inner._lock.is_none()
    }

    /// Writes every consumer's cursor now (also done every [`CURSOR_FLUSH`] and on drop).
    pub fn flush(&self) {
        self.inner.flush_all();
    }

    fn shared(&self, spec: &ConsumerSpec) -> Result<Shared, BusError> {
        spec.validate()?;
        let key = (spec.domain, spec.name.clone());
        let mut all = self.inner.consumers.lock();
        if let Some(s) = all.get(&key) {
            s.lock().spec = spec.clone();
            return Ok(s.clone());
        }
        let path = self.inner.cursor_path(spec.domain, &spec.name);
        let (cursor, dirty) = match fs::read(&path) {
            Ok(b) => (
                serde_json::from_slice::<Cursor>(&b).map_err(|e| {
                    BusError::Io(format!("consumer cursor {}: {e}", path.display()))
                })?,
                false,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                Cursor {
                    next: self.inner.start_seq(spec.domain, spec.start)?,
                    pending: BTreeMap::new(),
                },
                true,
            ),
            Err(e) => return Err(e.into()),
        };
        // What was pending when the cursor was written is due now.
        let now = Instant::now();
        let due = cursor.pending.keys().map(|s| (*s, now)).collect();
        let mut state = ConsumerState {
            spec: spec.clone(),
            cursor,
            due,
            dirty: dirty && !self.read_only(),
            path,
        };
        state.save()?;
        let s = Arc::new(Mutex::new(state));
        all.insert(key, s.clone());
        Ok(s)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self._lock.is_some() {
            self.flush_all();
        }
    }
}

fn matches_city(bytes: &[u8], subject: Option<&str>) -> bool {
    // The subject is the second field of the encoding, so a prefix test is exact enough to
    // skip other cities cheaply; decoding checks it exactly.
    subject.is_none_or(|s| {
        let needle = format!("\"subject\":\"{s}\"");
        bytes
            .windows(needle.len())
            .take(200)
            .any(|w| w == needle.as_bytes())
    })
}

#[async_trait]
impl EventBus for EmbeddedBus {
    async fn publish(&self, events: &[NewEvent]) -> Result<Vec<Published>, BusError> {
        if events.len() > PUBLISH_BATCH_MAX {
            return Err(BusError::Config(format!(
                "at most {PUBLISH_BATCH_MAX} events per publish"
            )));
        }
        // Group by domain, keeping each event's place in the answer.
        let mut by_domain: BTreeMap<Domain, (Vec<usize>, log::Pending)> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            let slot = by_domain.entry(e.event.domain()).or_default();
            slot.0.push(i);
            slot.1
                .push(e.id, |buf| codec::encode_into(e, &self.inner.region, buf))?;
        }
        let mut out = vec![
            Published {
                seq: 0,
                duplicate: false
            };
            events.len()
        ];
        for (domain, (places, pending)) in by_domain {
            let n = pending.len() as u64;
            let done = self.inner.log(domain).append(pending).await?;
            metrics::counter!("bus_published_total", "domain" => domain.as_str()).increment(n);
            for (place, (seq, duplicate)) in places.into_iter().zip(done) {
                out[place] = Published { seq, duplicate };
            }
        }
        Ok(out)
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn Consumer>, BusError> {
        let state = self.shared(&spec)?;
        Ok(Box::new(EmbeddedConsumer {
            bus: self.clone(),
            state,
            spec,
        }))
    }

    async fn reset_consumer(&self, spec: ConsumerSpec, from: StartAt) -> Result<(), BusError> {
        if self.read_only() {
            return Err(BusError::Config(
                "the embedded event log is open read-only: stop the process that has it".into(),
            ));
        }
        let state = self.shared(&spec)?;
        let next = self.inner.start_seq(spec.domain, from)?;
        let mut s = state.lock();
        s.cursor = Cursor {
            next,
            pending: BTreeMap::new(),
        };
        s.due.clear();
        s.dirty = true;
        s.save()?;
        Ok(())
    }

    async fn delete_consumer(&self, domain: Domain, name: &str) -> Result<(), BusError> {
        crate::valid_name(name)?;
        let removed = self
            .inner
            .consumers
            .lock()
            .remove(&(domain, name.to_owned()));
        let path = self.inner.cursor_path(domain, name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && removed.is_some() => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(BusError::NoConsumer(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn consumers(&self, domain: Domain) -> Result<Vec<String>, BusError> {
        let prefix = format!("{}.", domain.as_str());
        let mut names: Vec<String> = fs::read_dir(self.inner.dir.join("consumers"))?
            .filter_map(|e| {
                let n = e.ok()?.file_name().into_string().ok()?;
                Some(n.strip_prefix(&prefix)?.strip_suffix(".json")?.to_owned())
            })
            .collect();
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
        let start = self.inner.start_seq(domain, from)?;
        let subject = city.map(|c| crate::subject_of(domain, Some(c)));
        let inner = self.inner.clone();
        let max = max.min(FETCH_MAX);
        let (records, _) = tokio::task::spawn_blocking(move || {
            inner
                .log(domain)
                .read(start, max, |b| matches_city(b, subject.as_deref()))
        })
        .await
        .map_err(|e| BusError::Io(e.to_string()))??;
        Ok(records
            .into_iter()
            .map(|r| {
                codec::decode(&r.bytes, r.seq, r.stored).unwrap_or_else(|_| {
                    codec::undecodable(&r.bytes, r.seq, r.stored, domain.as_str())
                })
            })
            .collect())
    }

    async fn subscribe(
        &self,
        domain: Domain,
        city: Option<&CityId>,
        from: StartAt,
    ) -> Result<Box<dyn Subscription>, BusError> {
        Ok(Box::new(EmbeddedSubscription {
            inner: self.inner.clone(),
            domain,
            subject: city.map(|c| crate::subject_of(domain, Some(c))),
            next: self.inner.start_seq(domain, from)?,
        }))
    }

    async fn stream_info(&self, domain: Domain) -> Result<StreamInfo, BusError> {
        let (first, last, bytes) = self.inner.log(domain).extent();
        let messages = (last + 1).saturating_sub(first);
        Ok(StreamInfo {
            first_seq: if messages == 0 { 0 } else { first },
            last_seq: last,
            messages,
            bytes,
        })
    }

    async fn put_blob(&self, name: &str, bytes: Vec<u8>) -> Result<(), BusError> {
        crate::check_blob_name(name)?;
        let dir = self.inner.dir.join("blobs");
        let name = name.to_owned();
        // A temp file, fsync'd, renamed over the old one: a reader sees the old or the new.
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!("{name}.tmp"));
            {
                let mut f = fs::File::create(&tmp)?;
                std::io::Write::write_all(&mut f, &bytes)?;
                f.sync_all()?;
            }
            fs::rename(&tmp, dir.join(&name))?;
            fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| BusError::Io(e.to_string()))??;
        Ok(())
    }

    async fn get_blob(&self, name: &str) -> Result<Option<Vec<u8>>, BusError> {
        crate::check_blob_name(name)?;
        let path = self.inner.dir.join("blobs").join(name);
        match tokio::task::spawn_blocking(move || fs::read(path))
            .await
            .map_err(|e| BusError::Io(e.to_string()))?
        {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

/// A handle on an embedded consumer.
#[derive(Debug)]
pub struct EmbeddedConsumer {
    bus: EmbeddedBus,
    state: Shared,
    spec: ConsumerSpec,
}

struct EmbeddedAck {
    state: Shared,
    seq: u64,
}

#[async_trait]
impl Acker for EmbeddedAck {
    async fn ack(&self) -> Result<(), BusError> {
        let mut s = self.state.lock();
        if s.cursor.pending.remove(&self.seq).is_some() {
            s.due.remove(&self.seq);
            s.dirty = true;
        }
        Ok(())
    }

    async fn nak(&self, attempt: u32) -> Result<(), BusError> {
        let mut s = self.state.lock();
        if s.cursor.pending.contains_key(&self.seq) {
            let delay = s.spec.backoff_after(attempt);
            s.due.insert(self.seq, Instant::now() + delay);
        }
        Ok(())
    }
}

impl EmbeddedConsumer {
    /// Takes what is due and fresh now (no waiting).
    fn take(&self, max: usize) -> Result<Vec<Delivery>, BusError> {
        let domain = self.spec.domain;
        let log = self.bus.inner.log(domain);
        let now = Instant::now();
        let ack_wait = self.spec.ack_wait;
        let subject = self
            .spec
            .city
            .as_ref()
            .map(|c| crate::subject_of(domain, Some(c)));
        let mut out = Vec::new();
        // Redeliveries first, oldest sequence first.
        let due: Vec<(u64, u32)> = {
            let mut s = self.state.lock();
            let mut due: Vec<(u64, u32)> = s
                .due
                .iter()
                .filter(|(_, t)| **t <= now)
                .map(|(seq, _)| *seq)
                .filter_map(|seq| s.cursor.pending.get(&seq).map(|a| (seq, *a)))
                .collect();
            due.sort_unstable();
            due.truncate(max);
            for (seq, _) in &due {
                s.due.insert(*seq, now + ack_wait);
                if let Some(a) = s.cursor.pending.get_mut(seq) {
                    *a += 1;
                }
            }
            if !due.is_empty() {
                s.dirty = true;
            }
            due
        };
        for (seq, attempts) in due {
            let (records, _) = log.read(seq, 1, |_| true)?;
            match records.into_iter().next().filter(|r| r.seq == seq) {
                Some(r) => out.push(self.delivery(&r, attempts + 1)),
                None => {
                    // Expired by retention before it was handled: nothing left to deliver.
                    let mut s = self.state.lock();
                    s.cursor.pending.remove(&seq);
                    s.due.remove(&seq);
                    metrics::counter!("bus_expired_unacked_total", "consumer" => self.spec.name.clone()).increment(1);
                }
            }
        }
        if out.len() < max {
            let next = self.state.lock().cursor.next;
            let (records, after) = log.read(next, max - out.len(), |b| {
                matches_city(b, subject.as_deref())
            })?;
            let mut s = self.state.lock();
            // Another handle of the same consumer may have taken these meanwhile.
            if s.cursor.next == next {
                s.cursor.next = after;
                for r in &records {
                    s.cursor.pending.insert(r.seq, 1);
                    s.due.insert(r.seq, now + ack_wait);
                }
                if after != next {
                    s.dirty = true;
                }
                drop(s);
                for r in &records {
                    out.push(self.delivery(r, 1));
                }
            }
        }
        Ok(out)
    }

    fn delivery(&self, r: &log::Record, attempt: u32) -> Delivery {
        let envelope = codec::decode(&r.bytes, r.seq, r.stored).unwrap_or_else(|_| {
            // Past its attempts at once: it goes straight to the dead letters.
            codec::undecodable(&r.bytes, r.seq, r.stored, self.spec.domain.as_str())
        });
        let attempt = if envelope.event_type == "undecodable" {
            u32::MAX
        } else {
            attempt
        };
        Delivery {
            envelope,
            attempt,
            acker: Box::new(EmbeddedAck {
                state: self.state.clone(),
                seq: r.seq,
            }),
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.state.lock().due.values().min().copied()
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        if self.bus.read_only() {
            return Err(BusError::Config(
                "the embedded event log is open read-only".into(),
            ));
        }
        let max = max.clamp(1, FETCH_MAX);
        let deadline = tokio::time::Instant::now() + wait;
        let mut durable = self.bus.inner.log(self.spec.domain).durable();
        loop {
            durable.borrow_and_update();
            let me = Self {
                bus: self.bus.clone(),
                state: self.state.clone(),
                spec: self.spec.clone(),
            };
            let got = tokio::task::spawn_blocking(move || me.take(max))
                .await
                .map_err(|e| BusError::Io(e.to_string()))??;
            let got = crate::screen(&self.bus, &self.spec, got).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut until = deadline;
            if let Some(due) = self.next_due() {
                until = until.min(tokio::time::Instant::from_std(due));
            }
            tokio::select! {
                changed = durable.changed() => {
                    if changed.is_err() {
                        return Err(BusError::Io("the event log writer stopped".into()));
                    }
                }
                () = tokio::time::sleep_until(until.max(now + Duration::from_millis(1))) => {}
            }
        }
    }

    async fn lag(&self) -> Result<u64, BusError> {
        let (_, last, _) = self.bus.inner.log(self.spec.domain).extent();
        let floor = self.state.lock().floor();
        Ok((last + 1).saturating_sub(floor))
    }

    fn spec(&self) -> &ConsumerSpec {
        &self.spec
    }
}

/// A reader following one stream of the embedded log: the next sequence to read, and a wake-up
/// on every commit of the stream's writer.
#[derive(Debug)]
struct EmbeddedSubscription {
    inner: Arc<Inner>,
    domain: Domain,
    subject: Option<String>,
    next: u64,
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next(&mut self, max: usize, wait: Duration) -> Result<Vec<Envelope>, BusError> {
        let max = max.clamp(1, FETCH_MAX);
        let deadline = tokio::time::Instant::now() + wait;
        let mut durable = self.inner.log(self.domain).durable();
        loop {
            durable.borrow_and_update();
            // Retention may have dropped what this reader had not reached: go on from the
            // oldest kept.
            let (first, last, _) = self.inner.log(self.domain).extent();
            self.next = self.next.max(first);
            if self.next <= last {
                let (inner, domain, subject, from) = (
                    self.inner.clone(),
                    self.domain,
                    self.subject.clone(),
                    self.next,
                );
                let (records, next) = tokio::task::spawn_blocking(move || {
                    inner
                        .log(domain)
                        .read(from, max, |b| matches_city(b, subject.as_deref()))
                })
                .await
                .map_err(|e| BusError::Io(e.to_string()))??;
                self.next = next.max(self.next);
                if !records.is_empty() {
                    return Ok(records
                        .into_iter()
                        .map(|r| {
                            codec::decode(&r.bytes, r.seq, r.stored).unwrap_or_else(|_| {
                                codec::undecodable(&r.bytes, r.seq, r.stored, domain.as_str())
                            })
                        })
                        .collect());
                }
                if self.next <= last {
                    // Only other cities' events so far: read on.
                    continue;
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            tokio::select! {
                changed = durable.changed() => {
                    if changed.is_err() {
                        return Err(BusError::Io("the event log writer stopped".into()));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// When a domain's writes are fsync'd. Telemetry is a copy of what the live log made durable
/// before it was published (so a second fsync per group commit only doubled ingest's disk
/// flushes); it is synced every second and at each segment's end, and a process crash loses
/// none of it. Every other stream is synced before its publishers hear back.
fn sync_of(d: Domain) -> log::SyncPolicy {
    match d {
        Domain::Telemetry => log::SyncPolicy::Interval(Duration::from_secs(1)),
        _ => log::SyncPolicy::EveryCommit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_only_view_reads_beside_the_writer_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let bus = EmbeddedBus::open(dir.path(), BusConfig::default()).expect("open");
        // A second writer is refused: the log belongs to one process.
        assert!(EmbeddedBus::open(dir.path(), BusConfig::default()).is_err());
        let events: Vec<NewEvent> = (1..=5)
            .map(|n| crate::testsuite::booking(n, "bcn"))
            .collect();
        bus.publish(&events).await.expect("publish");
        let mut c = bus
            .consumer(ConsumerSpec::new("worker", Domain::Booking))
            .await
            .expect("consumer");
        let got = c.fetch(2, Duration::from_secs(1)).await.expect("fetch");
        for d in got {
            d.ack().await.expect("ack");
        }
        bus.flush();
        let view = EmbeddedBus::open_read_only(dir.path()).expect("read-only");
        let seen = view
            .read(Domain::Booking, None, StartAt::First, 100)
            .await
            .expect("read");
        assert_eq!(seen.len(), 5);
        assert_eq!(
            view.stream_info(Domain::Booking)
                .await
                .expect("info")
                .last_seq,
            5
        );
        assert_eq!(
            view.consumers(Domain::Booking).await.expect("list"),
            vec!["worker"]
        );
        let lag = view
            .consumer(ConsumerSpec::new("worker", Domain::Booking))
            .await
            .expect("consumer")
            .lag()
            .await
            .expect("lag");
        assert_eq!(lag, 3);
        assert!(view.publish(&events).await.is_err());
        assert!(
            view.reset_consumer(ConsumerSpec::new("worker", Domain::Booking), StartAt::First)
                .await
                .is_err()
        );
        // Nothing the view did changed the writer's cursor.
        drop(view);
        assert_eq!(c.lag().await.expect("lag"), 3);
    }
}
