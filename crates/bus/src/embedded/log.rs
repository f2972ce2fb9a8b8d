//! One stream's log: numbered segments of checksummed records, written by one thread with
//! group commit, read by anyone up to the last fsync'd sequence.
//!
//! - Record: `len u32 | crc32 u32 | seq u64 | stored_ms i64 | id 16 | bytes`, where `len` counts
//!   what follows the crc and the crc covers it. Little-endian.
//! - Segment `seg-<first seq, 20 digits>.log`; a new one starts past the segment size. A sealed
//!   segment gets an index file beside it (`.idx`: its seq and time range and a sparse offset
//!   index), so opening the log reads only the last segment in full.
//! - Group commit: the writer drains every append waiting, writes them, fsyncs once, then
//!   answers them all and raises the durable sequence readers wait on.
//! - Retention drops whole sealed segments: the oldest while the stream is over its size, and
//!   those whose newest record is past the age.
//! - Recovery: a torn or corrupt tail of the last segment (a crash mid-write) is cut; it was
//!   never acknowledged.

use std::{
    collections::{HashMap, VecDeque},
    fs::{self, File, OpenOptions},
    io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::Arc,
    thread,
    time::Duration,
};

use mobility_core::TimestampMs;
use parking_lot::RwLock;
use tokio::sync::{oneshot, watch};

use crate::{BusError, DEDUP_WINDOW, Retention, wall_now};

/// Bytes of a record's header after `len` and `crc`.
const HEADER_BYTES: usize = 8 + 8 + 16;
/// Largest record read back (bounds memory on a corrupt length).
const RECORD_BYTES_MAX: u32 = (crate::EVENT_BYTES_MAX + HEADER_BYTES) as u32;
/// A sparse index entry every this many records.
const INDEX_EVERY: u64 = 256;
/// Appends queued for the writer before publishers wait.
const QUEUE_MAX: usize = 1_024;
/// Largest segment, bytes (smaller when the stream's size limit is small).
pub const SEGMENT_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// One record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    /// Sequence.
    pub seq: u64,
    /// When it was stored.
    pub stored: TimestampMs,
    /// The encoded event.
    pub bytes: Vec<u8>,
}

/// Events to append: their ids and their encodings back to back (one allocation a batch).
#[derive(Debug, Default)]
pub struct Pending {
    ids: Vec<uuid::Uuid>,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Pending {
    /// Adds one event, encoded by `encode` into the shared buffer.
    pub fn push<E>(
        &mut self,
        id: uuid::Uuid,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.bytes.len();
        if let Err(e) = encode(&mut self.bytes) {
            self.bytes.truncate(start);
            return Err(e);
        }
        self.ids.push(id);
        self.ends.push(self.bytes.len());
        Ok(())
    }

    /// Events held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&uuid::Uuid, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.ids
            .iter()
            .zip(starts.zip(self.ends.iter().copied()))
            .map(|(id, (a, b))| (id, &self.bytes[a..b]))
    }
}

#[derive(Debug, Clone)]
struct Segment {
    first_seq: u64,
    last_seq: u64,
    last_ms: i64,
    bytes: u64,
    path: PathBuf,
    /// (seq, offset) every [`INDEX_EVERY`] records, starting with the first.
    index: Vec<(u64, u64)>,
}

impl Segment {
    fn is_empty(&self) -> bool {
        self.last_seq < self.first_seq
    }
}

/// What readers may see.
#[derive(Debug, Default)]
struct Meta {
    segments: Vec<Segment>,
}

type Reply = oneshot::Sender<Result<Vec<(u64, bool)>, BusError>>;

/// The log of one stream.
#[derive(Debug)]
pub struct Log {
    meta: Arc<RwLock<Meta>>,
    /// `None` when opened read-only.
    tx: Option<std::sync::mpsc::SyncSender<(Pending, Reply)>>,
    durable: watch::Receiver<u64>,
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("seg-{first_seq:020}.log"))
}

fn index_path(seg: &Path) -> PathBuf {
    seg.with_extension("idx")
}

/// Reads records from `offset` on; stops at the end, a torn record or a corrupt one, and says
/// where the last good one ended.
fn scan(
    file: &mut impl Read,
    mut offset: u64,
    mut each: impl FnMut(u64, u64, i64, &[u8; 16], &[u8]) -> bool,
) -> u64 {
    let mut head = [0u8; 8];
    let mut body = Vec::new();
    loop {
        if file.read_exact(&mut head).is_err() {
            return offset;
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if (len as usize) < HEADER_BYTES || len > RECORD_BYTES_MAX {
            return offset;
        }
        body.resize(len as usize, 0);
        if file.read_exact(&mut body).is_err() || crc32fast::hash(&body) != crc {
            return offset;
        }
        let seq = u64::from_le_bytes(body[0..8].try_into().unwrap_or_default());
        let ms = i64::from_le_bytes(body[8..16].try_into().unwrap_or_default());
        let id: [u8; 16] = body[16..32].try_into().unwrap_or_default();
        let at = offset;
        offset += 8 + u64::from(len);
        if !each(at, seq, ms, &id, &body[HEADER_BYTES..]) {
            return offset;
        }
    }
}

fn encode_record(seq: u64, ms: i64, id: &uuid::Uuid, bytes: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(HEADER_BYTES + bytes.len()).unwrap_or(u32::MAX);
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ms.to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(bytes);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads a whole segment's metadata (and, for the dedup window, its recent ids).
fn scan_segment(
    path: &Path,
    first_seq: u64,
    recent_after_ms: i64,
    ids: &mut Vec<(uuid::Uuid, u64, i64)>,
) -> io::Result<(Segment, u64)> {
    let mut seg = Segment {
        first_seq,
        last_seq: first_seq.saturating_sub(1),
        last_ms: 0,
        bytes: 0,
        path: path.to_owned(),
        index: Vec::new(),
    };
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut n = 0u64;
    let end = scan(&mut r, 0, |off, seq, ms, id, _| {
        if n.is_multiple_of(INDEX_EVERY) {
            seg.index.push((seq, off));
        }
        n += 1;
        seg.last_seq = seq;
        seg.last_ms = ms;
        if ms >= recent_after_ms {
            ids.push((uuid::Uuid::from_bytes(*id), seq, ms));
        }
        true
    });
    seg.bytes = end;
    Ok((seg, end))
}

fn write_index(seg: &Segment) -> io::Result<()> {
    let mut out = Vec::with_capacity(40 + seg.index.len() * 16);
    out.extend_from_slice(b"MOBIDX01");
    for v in [seg.first_seq, seg.last_seq, seg.last_ms as u64, seg.bytes] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (s, o) in &seg.index {
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&o.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    let tmp = index_path(&seg.path).with_extension("idx.tmp");
    fs::write(&tmp, &out)?;
    fs::rename(tmp, index_path(&seg.path))
}

#[allow(clippy::cast_possible_wrap)]
fn read_index(path: &Path, first_seq: u64) -> Option<Segment> {
    let b = fs::read(index_path(path)).ok()?;
    if b.len() < 44 || &b[..8] != b"MOBIDX01" || (b.len() - 44) % 16 != 0 {
        return None;
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let u = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().unwrap_or_default());
    let seg = Segment {
        first_seq: u(8),
        last_seq: u(16),
        last_ms: u(24) as i64,
        bytes: u(32),
        path: path.to_owned(),
        index: (40..body.len())
            .step_by(16)
            .map(|i| (u(i), u(i + 8)))
            .collect(),
    };
    (seg.first_seq == first_seq && fs::metadata(path).ok()?.len() == seg.bytes).then_some(seg)
}

struct Writer {
    dir: PathBuf,
    meta: Arc<RwLock<Meta>>,
    file: BufWriter<File>,
    /// Sequence of the next record.
    next_seq: u64,
    durable: watch::Sender<u64>,
    retention: Retention,
    segment_bytes: u64,
    dedup: HashMap<uuid::Uuid, u64, foldhash::fast::RandomState>,
    dedup_order: VecDeque<(i64, uuid::Uuid)>,
    buf: Vec<u8>,
    records_in_segment: u64,
    sync: SyncPolicy,
    /// Written since the last fsync (for [`SyncPolicy::Interval`]).
    unsynced: bool,
    last_sync: std::time::Instant,
}

/// When a stream's writes are made durable (fsync'd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Before each group's publishers hear back: what they published survives a power loss.
    EveryCommit,
    /// At most this long after a write, and at each segment's end. A process crash loses
    /// nothing (the writes are in the page cache); a power loss may lose the last interval.
    /// For streams derived from another durable record (telemetry: the live log), whose second
    /// fsync per group commit would double ingest's disk flushes.
    Interval(Duration),
}

impl Writer {
    /// Makes what was written durable now.
    fn sync_now(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.file.get_ref().sync_data()?;
            self.unsynced = false;
        }
        self.last_sync = std::time::Instant::now();
        Ok(())
    }

    fn remember(&mut self, id: uuid::Uuid, seq: u64, ms: i64) {
        self.dedup.insert(id, seq);
        self.dedup_order.push_back((ms, id));
    }

    fn forget_old(&mut self, now_ms: i64) {
        let horizon = now_ms - i64::try_from(DEDUP_WINDOW.as_millis()).unwrap_or(i64::MAX);
        while let Some(&(ms, id)) = self.dedup_order.front() {
            if ms >= horizon {
                break;
            }
            self.dedup_order.pop_front();
            self.dedup.remove(&id);
        }
    }

    /// Writes one group and fsyncs it; answers each caller.
    fn commit(&mut self, group: Vec<(Pending, Reply)>) {
        let now = wall_now().0;
        self.forget_old(now);
        self.buf.clear();
        let mut answers = Vec::with_capacity(group.len());
        let mut index_adds = Vec::new();
        let (mut offset, last_before) = {
            let meta = self.meta.read();
            let seg = meta.segments.last();
            (seg.map_or(0, |s| s.bytes), seg.map_or(0, |s| s.last_seq))
        };
        let mut last_seq = last_before;
        for (events, reply) in group {
            let mut out = Vec::with_capacity(events.len());
            for (id, bytes) in events.iter() {
                if let Some(&seq) = self.dedup.get(id) {
                    out.push((seq, true));
                    continue;
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                if self.records_in_segment.is_multiple_of(INDEX_EVERY) {
                    index_adds.push((seq, offset + self.buf.len() as u64));
                }
                self.records_in_segment += 1;
                encode_record(seq, now, id, bytes, &mut self.buf);
                self.remember(*id, seq, now);
                last_seq = seq;
                out.push((seq, false));
            }
            answers.push((reply, out));
        }
        let written = (|| {
            if !self.buf.is_empty() {
                self.file.write_all(&self.buf)?;
                self.file.flush()?;
                self.unsynced = true;
                match self.sync {
                    SyncPolicy::EveryCommit => self.sync_now()?,
                    SyncPolicy::Interval(every) if self.last_sync.elapsed() >= every => {
                        self.sync_now()?;
                    }
                    SyncPolicy::Interval(_) => {}
                }
            }
            Ok::<_, io::Error>(())
        })();
        if let Err(e) = written {
            // Nothing of this group is acknowledged; the segment's tail is cut on reopen. A
            // writer that cannot write stops taking appends (the stream is then read-only).
            metrics::counter!("bus_log_errors_total").increment(1);
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot write the event log");
            for (reply, _) in answers {
                let _ = reply.send(Err(BusError::Io(e.to_string())));
            }
            self.next_seq = last_before + 1;
            return;
        }
        offset += self.buf.len() as u64;
        {
            let mut meta = self.meta.write();
            if let Some(seg) = meta.segments.last_mut() {
                seg.bytes = offset;
                if last_seq > last_before {
                    seg.last_seq = last_seq;
                    seg.last_ms = now;
                }
                seg.index.extend(index_adds);
            }
        }
        // Rotation and retention before the answers: a publisher that hears back sees the
        // stream as it now is.
        if offset >= self.segment_bytes
            && let Err(e) = self.rotate()
        {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot start a new event log segment");
        }
        self.apply_retention(now);
        self.durable.send_replace(self.next_seq - 1);
        for (reply, out) in answers {
            let _ = reply.send(Ok(out));
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        // The segment being sealed is durable before the next one starts.
        self.sync_now()?;
        let path = segment_path(&self.dir, self.next_seq);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        sync_dir(&self.dir)?;
        {
            let mut meta = self.meta.write();
            if let Some(done) = meta.segments.last() {
                write_index(done)?;
            }
            meta.segments.push(Segment {
                first_seq: self.next_seq,
                last_seq: self.next_seq - 1,
                last_ms: 0,
                bytes: 0,
                path,
                index: Vec::new(),
            });
        }
        self.file = BufWriter::with_capacity(1 << 20, file);
        self.records_in_segment = 0;
        Ok(())
    }

    /// Drops sealed segments past the stream's age or size.
    fn apply_retention(&mut self, now_ms: i64) {
        let age_ms = i64::try_from(self.retention.max_age.as_millis()).unwrap_or(i64::MAX);
        let mut dropped = Vec::new();
        // An active segment whose newest record expired is expired whole: seal it so it goes.
        let tail_expired = self
            .meta
            .read()
            .segments
            .last()
            .is_some_and(|s| !s.is_empty() && s.last_ms < now_ms.saturating_sub(age_ms));
        if tail_expired && let Err(e) = self.rotate() {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot start a new event log segment");
        }
        {
            let mut meta = self.meta.write();
            let mut total: u64 = meta.segments.iter().map(|s| s.bytes).sum();
            while meta.segments.len() > 1 {
                let oldest = &meta.segments[0];
                let too_old = !oldest.is_empty() && oldest.last_ms < now_ms.saturating_sub(age_ms);
                if !(too_old || total > self.retention.max_bytes) {
                    break;
                }
                total -= oldest.bytes;
                dropped.push(meta.segments.remove(0));
            }
        }
        for seg in dropped {
            let _ = fs::remove_file(index_path(&seg.path));
            if let Err(e) = fs::remove_file(&seg.path) {
                tracing::warn!(path = %seg.path.display(), error = %e, "cannot delete an expired event log segment");
            }
            metrics::counter!("bus_segments_expired_total").increment(1);
        }
    }

    fn run(mut self, rx: &std::sync::mpsc::Receiver<(Pending, Reply)>) {
        loop {
            // Wake at least once a second so age retention runs on a quiet stream too.
            let wait = match self.sync {
                SyncPolicy::Interval(every) if self.unsynced => every.min(Duration::from_secs(1)),
                _ => Duration::from_secs(1),
            };
            let first = match rx.recv_timeout(wait) {
                Ok(first) => first,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.sync_now() {
                        metrics::counter!("bus_log_errors_total").increment(1);
                        tracing::error!(dir = %self.dir.display(), error = %e, "cannot sync the event log");
                    }
                    self.apply_retention(wall_now().0);
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.sync_now();
                    return;
                }
            };
            let mut group = vec![first];
            let mut n = group[0].0.len();
            while n < crate::PUBLISH_BATCH_MAX {
                match rx.try_recv() {
                    Ok(next) => {
                        n += next.0.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The segments of a log directory (and the ids of its recent records). Writable: a torn tail
/// is cut and missing indexes are written; read-only: the files are only read.
#[allow(clippy::type_complexity)]
fn scan_dir(
    dir: &Path,
    writable: bool,
    now: i64,
) -> Result<(Vec<Segment>, Vec<(uuid::Uuid, u64, i64)>), BusError> {
    let mut firsts: Vec<u64> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_prefix("seg-")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !writable => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    firsts.sort_unstable();
    let recent_after = now - i64::try_from(DEDUP_WINDOW.as_millis()).unwrap_or(0);
    let mut ids = Vec::new();
    let mut segments = Vec::with_capacity(firsts.len());
    for (i, &first) in firsts.iter().enumerate() {
        let path = segment_path(dir, first);
        let last = i + 1 == firsts.len();
        let indexed = if last { None } else { read_index(&path, first) };
        let seg = match indexed {
            Some(seg) if seg.last_ms < recent_after || !writable => seg,
            _ => {
                let (seg, end) = scan_segment(&path, first, recent_after, &mut ids)?;
                let len = fs::metadata(&path)?.len();
                if writable && end < len {
                    tracing::warn!(path = %path.display(), cut = len - end, "cutting a torn tail off the event log");
                    OpenOptions::new().write(true).open(&path)?.set_len(end)?;
                }
                if writable && !last {
                    let _ = write_index(&seg);
                }
                seg
            }
        };
        segments.push(seg);
    }
    Ok((segments, ids))
}

impl Log {
    /// Opens a log for reading only (another process may be writing it): what is on disk now.
    pub fn open_read_only(dir: &Path) -> Result<Self, BusError> {
        let (segments, _) = scan_dir(dir, false, wall_now().0)?;
        let last = segments
            .last()
            .map_or(0, |s| s.last_seq.max(s.first_seq - 1));
        let (_, durable) = watch::channel(last);
        Ok(Self {
            meta: Arc::new(RwLock::new(Meta { segments })),
            tx: None,
            durable,
        })
    }

    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path, retention: Retention, sync: SyncPolicy) -> Result<Self, BusError> {
        fs::create_dir_all(dir)?;
        let now = wall_now().0;
        let (mut segments, mut ids) = scan_dir(dir, true, now)?;
        let next_seq = segments
            .last()
            .map_or(1, |s: &Segment| s.last_seq.max(s.first_seq - 1) + 1);
        let segment_bytes = (retention.max_bytes / 8).clamp(64 * 1024, SEGMENT_BYTES_MAX);
        if segments.is_empty() {
            let path = segment_path(dir, next_seq);
            File::create(&path)?;
            sync_dir(dir)?;
            segments.push(Segment {
                first_seq: next_seq,
                last_seq: next_seq - 1,
                last_ms: 0,
                bytes: 0,
                path,
                index: Vec::new(),
            });
        }
        let Some(tail) = segments.last().cloned() else {
            return Err(BusError::Io("no segment".into()));
        };
        let records_in_segment = tail.last_seq + 1 - tail.first_seq;
        let file = OpenOptions::new().append(true).open(&tail.path)?;
        let meta = Arc::new(RwLock::new(Meta { segments }));
        let (durable_tx, durable) = watch::channel(next_seq - 1);
        let mut writer = Writer {
            dir: dir.to_owned(),
            meta: meta.clone(),
            file: BufWriter::with_capacity(1 << 20, file),
            next_seq,
            durable: durable_tx,
            retention,
            segment_bytes,
            dedup: HashMap::default(),
            dedup_order: VecDeque::new(),
            buf: Vec::new(),
            records_in_segment,
            sync,
            unsynced: false,
            last_sync: std::time::Instant::now(),
        };
        ids.sort_by_key(|(_, seq, _)| *seq);
        for (id, seq, ms) in ids {
            writer.remember(id, seq, ms);
        }
        writer.apply_retention(now);
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_MAX);
        thread::Builder::new()
            .name(format!(
                "bus-{}",
                dir.file_name().and_then(|n| n.to_str()).unwrap_or("log")
            ))
            .spawn(move || writer.run(&rx))?;
        Ok(Self {
            meta,
            tx: Some(tx),
            durable,
        })
    }

    /// Appends events; answers (seq, duplicate) for each once they are on disk.
    pub async fn append(&self, events: Pending) -> Result<Vec<(u64, bool)>, BusError> {
        let (reply, rx) = oneshot::channel();
        let tx = self
            .tx
            .clone()
            .ok_or_else(|| BusError::Config("the event log is open read-only".into()))?;
        // The queue is bounded: a full queue blocks this publisher (back-pressure), not the
        // runtime's other tasks.
        match tx.try_send((events, reply)) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(item)) => {
                tokio::task::spawn_blocking(move || tx.send(item))
                    .await
                    .map_err(|e| BusError::Io(e.to_string()))?
                    .map_err(|_| BusError::Io("the event log writer stopped".into()))?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(BusError::Io("the event log writer stopped".into()));
            }
        }
        rx.await
            .map_err(|_| BusError::Io("the event log writer stopped".into()))?
    }

    /// The highest durable sequence, and a way to wait for it to change.
    #[must_use]
    pub fn durable(&self) -> watch::Receiver<u64> {
        self.durable.clone()
    }

    /// (first kept seq, last seq, bytes).
    #[must_use]
    pub fn extent(&self) -> (u64, u64, u64) {
        let meta = self.meta.read();
        let first = meta.segments.first().map_or(1, |s| s.first_seq);
        let last = *self.durable.borrow();
        (first, last, meta.segments.iter().map(|s| s.bytes).sum())
    }

    /// The first sequence stored at or after `t` (or the next to be written).
    pub fn seq_at_time(&self, t: TimestampMs) -> Result<u64, BusError> {
        let (seg, last) = {
            let meta = self.meta.read();
            let last = *self.durable.borrow();
            match meta
                .segments
                .iter()
                .find(|s| !s.is_empty() && s.last_ms >= t.0)
            {
                Some(s) => (s.clone(), last),
                None => return Ok(last + 1),
            }
        };
        let mut found = None;
        let mut r = BufReader::new(File::open(&seg.path)?);
        scan(&mut r, 0, |_, seq, ms, _, _| {
            if ms >= t.0 && seq <= last {
                found = Some(seq);
                return false;
            }
            true
        });
        Ok(found.unwrap_or(seg.last_seq + 1))
    }

    /// Up to `max` durable records from `from` on (in order), calling `keep` to filter without
    /// copying the rest. Returns the records and the sequence after the last one looked at.
    pub fn read(
        &self,
        from: u64,
        max: usize,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> Result<(Vec<Record>, u64), BusError> {
        let last = *self.durable.borrow();
        let mut out = Vec::new();
        let mut next = from.max(self.extent().0);
        while out.len() < max && next <= last {
            let seg = {
                let meta = self.meta.read();
                let i = meta.segments.partition_point(|s| s.first_seq <= next);
                match i.checked_sub(1).and_then(|i| meta.segments.get(i)) {
                    Some(s) if s.last_seq >= next => s.clone(),
                    _ => {
                        // A gap (expired segments): go on from the next segment.
                        match meta.segments.get(i) {
                            Some(s) => {
                                next = s.first_seq;
                                continue;
                            }
                            None => break,
                        }
                    }
                }
            };
            let start = seg.index.partition_point(|(s, _)| *s <= next);
            let offset = start.checked_sub(1).map_or(0, |i| seg.index[i].1);
            let mut f = match File::open(&seg.path) {
                Ok(f) => f,
                // Deleted by retention since: the next round finds the next segment.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            f.seek(SeekFrom::Start(offset))?;
            let mut r = BufReader::with_capacity(256 * 1024, f);
            let before = next;
            scan(&mut r, offset, |_, seq, ms, _, bytes| {
                if seq < next {
                    return true;
                }
                if seq > last || out.len() >= max {
                    return false;
                }
                next = seq + 1;
                if keep(bytes) {
                    out.push(Record {
                        seq,
                        stored: TimestampMs(ms),
                        bytes: bytes.to_vec(),
                    });
                }
                true
            });
            if next == before {
                // Nothing readable where the index pointed (should not happen): skip ahead
                // rather than spin.
                next = seg.last_seq + 1;
            }
        }
        Ok((out, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evs(ns: impl IntoIterator<Item = u128>) -> Pending {
        let mut p = Pending::default();
        for n in ns {
            p.push(uuid::Uuid::from_u128(n), |b| {
                b.extend_from_slice(format!("event {n}").as_bytes());
                Ok::<_, ()>(())
            })
            .expect("push");
        }
        p
    }

    fn small() -> Retention {
        Retention {
            max_age: Duration::from_secs(3600),
            max_bytes: 1 << 30,
        }
    }

    #[tokio::test]
    async fn appends_come_back_in_order_after_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let log = Log::open(dir.path(), small(), SyncPolicy::EveryCommit).expect("open");
            let r = log.append(evs(1..=1000)).await.expect("append");
            assert_eq!(r[0], (1, false));
            assert_eq!(r[999], (1000, false));
        }
        // Half a record at the end, as a crash mid-write leaves it.
        let seg = segment_path(dir.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&seg).expect("seg");
        f.write_all(&[40, 0, 0, 0, 1, 2]).expect("write");
        drop(f);
        let log = Log::open(dir.path(), small(), SyncPolicy::EveryCommit).expect("reopen");
        let (records, next) = log.read(990, 100, |_| true).expect("read");
        assert_eq!(records.len(), 11);
        assert_eq!(records[0].bytes, b"event 990");
        assert_eq!(next, 1001);
        // The same ids again are duplicates (within the window, across the reopen).
        let again = log.append(evs([5, 2000])).await.expect("append");
        assert_eq!(again, vec![(5, true), (1001, false)]);
    }

    #[tokio::test]
    async fn a_stream_synced_by_interval_is_readable_at_once_and_after_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let log = Log::open(
                dir.path(),
                small(),
                SyncPolicy::Interval(Duration::from_secs(3_600)),
            )
            .expect("open");
            log.append(evs(1..=100)).await.expect("append");
            // Written, not yet fsync'd: readers see it (it is in the page cache).
            let (records, _) = log.read(1, 1000, |_| true).expect("read");
            assert_eq!(records.len(), 100);
        }
        // Closing syncs what was left; reopening finds every record.
        let log = Log::open(dir.path(), small(), SyncPolicy::EveryCommit).expect("reopen");
        let (records, next) = log.read(1, 1000, |_| true).expect("read");
        assert_eq!(records.len(), 100);
        assert_eq!(next, 101);
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let mut state = 1u64;
        for _ in 0..2_000 {
            let mut bytes = Vec::new();
            for _ in 0..(state % 200) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                bytes.push((state >> 33) as u8);
            }
            let _ = scan(&mut bytes.as_slice(), 0, |_, _, _, _, _| true);
        }
    }
}
