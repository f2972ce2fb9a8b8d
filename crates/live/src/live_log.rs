//! Durability of the live fleet state: a write-ahead log of applied telemetry with group commit,
//! plus periodic snapshots of the whole index.
//!
//! - Every report the fleet *applied* is appended to the current segment (`wal-NNNNNNNN.log`).
//!   One writer thread batches all waiting appends, writes them and fsyncs once; only then do the
//!   callers (HTTP handler, MQTT hook) answer, so an acknowledged report is on disk.
//! - A snapshot first rotates to a new segment, then the caller captures the index (so every
//!   report in the old segments is in the capture), then the snapshot is written to a temp file,
//!   fsynced and renamed (`snapshot-NNNNNNNN.bin`, where N is the first segment *not* covered),
//!   and only then are older segments and snapshots deleted.
//! - Recovery loads the newest valid snapshot and replays the segments from its number on
//!   through the normal ingest rules (replay is idempotent: older reports are stale no-ops).
//!   A torn record at the end of the last segment (a crash mid-write) ends the replay; it was
//!   never acknowledged.
//!
//! - Raw telemetry history is the log itself: it holds every valid report of a known vehicle
//!   (applied or stale: a late report is a real measurement, too old only to move the live
//!   state), and segments a snapshot covers are *moved* to the history directory instead of
//!   deleted, then pruned by age. One write and one fsync serve both purposes.
//!
//! Record: `len u32 | crc32 u32 | vehicle uuid 16 | 32-byte binary telemetry | n u8 | n × u16`.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Read, Write},
    path::{Path, PathBuf},
    thread,
};

use mobility_core::{TimestampMs, VehicleId};
use mobility_fleet::Telemetry;
use tokio::sync::{mpsc, oneshot};

use crate::ingest::{BINARY_RECORD_BYTES, decode_binary, encode_binary};

/// A segment is closed and a new one started beyond this size.
pub const SEGMENT_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Appends queued for the writer before callers wait.
const QUEUE_MAX: usize = 4_096;
/// Most appends one group commit takes.
const GROUP_MAX: usize = 1_024;
/// Largest record accepted when reading back (bounds memory on corrupt input).
const RECORD_BYTES_MAX: u32 = 16 + BINARY_RECORD_BYTES as u32 + 1 + 2 * 255;
const SNAPSHOT_MAGIC: &[u8; 8] = b"MOBSNAP1";

/// Told when an append is on disk (or why it is not).
type Done = oneshot::Sender<io::Result<()>>;

enum Command {
    /// Records to write; the sender (if any) hears once they are on disk.
    Append(Vec<u8>, Option<Done>),
    Rotate(oneshot::Sender<io::Result<u64>>),
    Snapshot(u64, Vec<u8>, oneshot::Sender<io::Result<()>>),
}

/// The write side of the live-state log.
#[derive(Debug)]
pub struct LiveLog {
    tx: mpsc::Sender<Command>,
    dir: PathBuf,
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Reports to apply, oldest first (the snapshot's, then the log's).
    pub reports: Vec<Telemetry>,
    /// Reports that came from the snapshot.
    pub from_snapshot: usize,
    /// Bytes of a torn record dropped from the end of the log.
    pub torn_bytes: u64,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Append(..) => "Append",
            Self::Rotate(_) => "Rotate",
            Self::Snapshot(..) => "Snapshot",
        })
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("wal-{n:08}.log"))
}

fn snapshot_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("snapshot-{n:08}.bin"))
}

fn numbered(dir: &Path, prefix: &str, suffix: &str) -> io::Result<Vec<u64>> {
    let mut out: Vec<u64> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix(prefix)?
                .strip_suffix(suffix)?
                .parse()
                .ok()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Encodes one report as a framed record appended to `out`.
pub(crate) fn encode_record(t: &Telemetry, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(16 + BINARY_RECORD_BYTES + 1 + 2 * t.error_codes.len());
    payload.extend_from_slice(t.vehicle_id.as_uuid().as_bytes());
    payload.extend_from_slice(&encode_binary(std::slice::from_ref(t)));
    let codes = &t.error_codes[..t.error_codes.len().min(255)];
    #[allow(clippy::cast_possible_truncation)]
    payload.push(codes.len() as u8);
    for c in codes {
        payload.extend_from_slice(&c.to_le_bytes());
    }
    #[allow(clippy::cast_possible_truncation)]
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Decodes framed records until the end or the first torn/corrupt one; returns the reports and
/// the number of bytes that were valid.
pub(crate) fn decode_records(bytes: &[u8]) -> (Vec<Telemetry>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        if len > RECORD_BYTES_MAX || bytes.len() - at - 8 < len as usize {
            break;
        }
        let payload = &bytes[at + 8..at + 8 + len as usize];
        if crc32fast::hash(payload) != crc || payload.len() < 16 + BINARY_RECORD_BYTES + 1 {
            break;
        }
        let Ok(uuid) = uuid_from(&payload[..16]) else {
            break;
        };
        let vehicle = VehicleId::from_uuid(uuid);
        let Some(Ok(mut t)) = decode_binary(vehicle, &payload[16..16 + BINARY_RECORD_BYTES]).pop()
        else {
            break;
        };
        let n = usize::from(payload[16 + BINARY_RECORD_BYTES]);
        let codes = &payload[16 + BINARY_RECORD_BYTES + 1..];
        if codes.len() != 2 * n {
            break;
        }
        t.error_codes = codes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        out.push(t);
        at += 8 + len as usize;
    }
    (out, at)
}

fn uuid_from(b: &[u8]) -> Result<uuid::Uuid, uuid::Error> {
    uuid::Uuid::from_slice(b)
}

fn writer_stopped() -> io::Error {
    io::Error::other("the live-state log writer has stopped")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

struct Writer {
    dir: PathBuf,
    segment: u64,
    file: BufWriter<File>,
    written: u64,
    /// Where covered segments go (`None`: they are deleted).
    history_dir: Option<PathBuf>,
}

impl Writer {
    fn open_segment(dir: &Path, n: u64) -> io::Result<(BufWriter<File>, u64)> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, n))?;
        let len = file.metadata()?.len();
        sync_dir(dir)?;
        Ok((BufWriter::with_capacity(1 << 20, file), len))
    }

    fn rotate(&mut self) -> io::Result<u64> {
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        self.segment += 1;
        let (file, len) = Self::open_segment(&self.dir, self.segment)?;
        self.file = file;
        self.written = len;
        Ok(self.segment)
    }

    fn commit(&mut self, group: &mut Vec<(Vec<u8>, Option<Done>)>) {
        let result = (|| {
            for (bytes, _) in group.iter() {
                self.file.write_all(bytes)?;
                self.written += bytes.len() as u64;
            }
            self.file.flush()?;
            self.file.get_ref().sync_data()
        })();
        let failed = result.as_ref().err().map(|e| (e.kind(), e.to_string()));
        let mut unheard = 0usize;
        for (_, done) in group.drain(..) {
            let r = match &failed {
                None => Ok(()),
                Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            };
            match done {
                Some(done) => {
                    let _ = done.send(r);
                }
                None => unheard += 1,
            }
        }
        // Nobody waits for queued appends, so their failure is reported here.
        if let Some((_, msg)) = &failed
            && unheard > 0
        {
            metrics::counter!("live_log_errors_total").increment(1);
            tracing::error!(error = %msg, appends = unheard, "cannot persist queued live state; reports are applied but not durable");
        }
        if failed.is_none()
            && self.written > SEGMENT_BYTES_MAX
            && let Err(e) = self.rotate()
        {
            tracing::error!(error = %e, "cannot start a new live-state log segment");
        }
    }

    fn snapshot(&mut self, first_uncovered: u64, body: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join("snapshot.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(SNAPSHOT_MAGIC)?;
            f.write_all(body)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, snapshot_path(&self.dir, first_uncovered))?;
        sync_dir(&self.dir)?;
        for n in numbered(&self.dir, "wal-", ".log")? {
            if n < first_uncovered {
                match &self.history_dir {
                    Some(h) => fs::rename(
                        segment_path(&self.dir, n),
                        h.join(format!("segment-{n:08}.log")),
                    )?,
                    None => fs::remove_file(segment_path(&self.dir, n))?,
                }
            }
        }
        for n in numbered(&self.dir, "snapshot-", ".bin")? {
            if n < first_uncovered {
                fs::remove_file(snapshot_path(&self.dir, n))?;
            }
        }
        Ok(())
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut group = Vec::with_capacity(GROUP_MAX);
        while let Some(cmd) = rx.blocking_recv() {
            let mut next = Some(cmd);
            // Gather everything already waiting into one group commit.
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append(bytes, done) => group.push((bytes, done)),
                    Command::Rotate(done) => {
                        self.commit(&mut group);
                        let _ = done.send(self.rotate());
                    }
                    Command::Snapshot(n, body, done) => {
                        self.commit(&mut group);
                        let _ = done.send(self.snapshot(n, &body));
                    }
                }
                if group.len() < GROUP_MAX {
                    next = rx.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit(&mut group);
            }
        }
        let _ = self.file.flush();
        let _ = self.file.get_ref().sync_data();
    }
}

impl LiveLog {
    /// Opens (creating) the log in `dir`, recovering what it holds. With `history_dir`, covered
    /// segments are archived there as raw telemetry history instead of being deleted.
    pub fn open(dir: &Path, history_dir: Option<&Path>) -> io::Result<(Self, Recovered)> {
        fs::create_dir_all(dir)?;
        if let Some(h) = history_dir {
            fs::create_dir_all(h)?;
        }
        let _ = fs::remove_file(dir.join("snapshot.tmp"));
        let mut recovered = Recovered::default();
        let snapshots = numbered(dir, "snapshot-", ".bin")?;
        let mut first_segment = 0;
        for &n in snapshots.iter().rev() {
            let mut bytes = Vec::new();
            File::open(snapshot_path(dir, n))?.read_to_end(&mut bytes)?;
            if bytes.starts_with(SNAPSHOT_MAGIC) {
                let (reports, valid) = decode_records(&bytes[SNAPSHOT_MAGIC.len()..]);
                if valid == bytes.len() - SNAPSHOT_MAGIC.len() {
                    recovered.from_snapshot = reports.len();
                    recovered.reports = reports;
                    first_segment = n;
                    break;
                }
            }
            tracing::warn!(snapshot = n, "ignoring an unreadable live-state snapshot");
        }
        let segments: Vec<u64> = numbered(dir, "wal-", ".log")?
            .into_iter()
            .filter(|n| *n >= first_segment)
            .collect();
        for (i, &n) in segments.iter().enumerate() {
            let path = segment_path(dir, n);
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let (reports, valid) = decode_records(&bytes);
            recovered.reports.extend(reports);
            if valid < bytes.len() {
                recovered.torn_bytes += (bytes.len() - valid) as u64;
                if i + 1 == segments.len() {
                    // Cut the torn tail so new records follow valid ones.
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(valid as u64)?;
                } else {
                    tracing::warn!(
                        segment = n,
                        "live-state log segment has a corrupt record; later segments still replay"
                    );
                }
            }
        }
        let segment = segments
            .last()
            .copied()
            .unwrap_or(first_segment)
            .max(first_segment);
        let (file, written) = Writer::open_segment(dir, segment)?;
        let writer = Writer {
            dir: dir.to_path_buf(),
            segment,
            file,
            written,
            history_dir: history_dir.map(Path::to_path_buf),
        };
        let (tx, rx) = mpsc::channel(QUEUE_MAX);
        thread::Builder::new()
            .name("live-log".into())
            .spawn(move || writer.run(rx))?;
        Ok((
            Self {
                tx,
                dir: dir.to_path_buf(),
            },
            recovered,
        ))
    }

    /// Appends reports (those applied, and late ones kept for history); returns once they are
    /// on disk.
    pub async fn append(&self, reports: &[&Telemetry]) -> io::Result<()> {
        if reports.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.enqueue(reports, Some(done)).await?;
        wait.await.map_err(|_| writer_stopped())?
    }

    /// Queues reports for the log and returns without waiting for the disk (it waits only
    /// while the writer's queue is full). A failed write is logged and counted by the writer.
    pub async fn append_queued(&self, reports: &[&Telemetry]) -> io::Result<()> {
        if reports.is_empty() {
            return Ok(());
        }
        self.enqueue(reports, None).await
    }

    async fn enqueue(&self, reports: &[&Telemetry], done: Option<Done>) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(reports.len() * 64);
        for t in reports {
            encode_record(t, &mut bytes);
        }
        self.tx
            .send(Command::Append(bytes, done))
            .await
            .map_err(|_| writer_stopped())
    }

    /// Takes a snapshot: rotates, waits for `settle` (what must be true of every report in the
    /// segments about to be covered before they may go: published, say; an error keeps them),
    /// asks `capture` for the current state, writes it durably and drops what it covers.
    pub async fn snapshot(
        &self,
        settle: impl Future<Output = io::Result<()>>,
        capture: impl FnOnce() -> Vec<Telemetry>,
    ) -> io::Result<usize> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Rotate(done))
            .await
            .map_err(|_| writer_stopped())?;
        let first_uncovered = wait.await.map_err(|_| writer_stopped())??;
        settle.await?;
        let state = capture();
        let mut body = Vec::with_capacity(state.len() * 64);
        for t in &state {
            encode_record(t, &mut body);
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Snapshot(first_uncovered, body, done))
            .await
            .map_err(|_| writer_stopped())?;
        wait.await.map_err(|_| writer_stopped())??;
        Ok(state.len())
    }

    /// Where the log lives.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Deletes archived history segments last written more than `max_age` before `now`; returns how
/// many.
pub fn prune_history(
    history_dir: &Path,
    max_age: std::time::Duration,
    now: std::time::SystemTime,
) -> io::Result<usize> {
    let cutoff = now.checked_sub(max_age).unwrap_or(std::time::UNIX_EPOCH);
    let mut removed = 0;
    for entry in fs::read_dir(history_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let archived = name
            .to_str()
            .is_some_and(|n| n.starts_with("segment-") && n.ends_with(".log"));
        if archived && entry.metadata()?.modified()? < cutoff {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Reads raw telemetry: the archived history segments, then the live log's, oldest first (for
/// tools and tests; the lakehouse will turn this into Parquet).
pub fn read_telemetry(live_dir: &Path, history_dir: &Path) -> io::Result<Vec<Telemetry>> {
    let mut out = Vec::new();
    for n in numbered(history_dir, "segment-", ".log").unwrap_or_default() {
        out.extend(decode_records(&fs::read(history_dir.join(format!("segment-{n:08}.log")))?).0);
    }
    for n in numbered(live_dir, "wal-", ".log")? {
        out.extend(decode_records(&fs::read(segment_path(live_dir, n))?).0);
    }
    Ok(out)
}

/// Reads the raw telemetry timestamped in `[from, to)`, in log order, calling `each` for every
/// report (so a large window is not held in memory twice). Segment files last written before
/// `from` minus the allowed clock skew cannot hold such reports and are not read.
pub fn scan_telemetry(
    live_dir: &Path,
    history_dir: Option<&Path>,
    from: TimestampMs,
    to: TimestampMs,
    mut each: impl FnMut(Telemetry),
) -> io::Result<()> {
    let earliest = u64::try_from(
        from.0
            .saturating_sub(mobility_fleet::telemetry::FUTURE_SKEW_MS_MAX)
            .max(0),
    )
    .unwrap_or_default();
    let cutoff = std::time::UNIX_EPOCH + std::time::Duration::from_millis(earliest);
    let mut files = Vec::new();
    if let Some(h) = history_dir {
        for n in numbered(h, "segment-", ".log").unwrap_or_default() {
            files.push(h.join(format!("segment-{n:08}.log")));
        }
    }
    for n in numbered(live_dir, "wal-", ".log").unwrap_or_default() {
        files.push(segment_path(live_dir, n));
    }
    for path in files {
        // A segment may be archived or pruned while we list: skip what is gone.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.modified().is_ok_and(|m| m < cutoff) {
            continue;
        }
        let Ok(bytes) = fs::read(&path) else { continue };
        for t in decode_records(&bytes).0 {
            if t.at >= from && t.at < to {
                each(t);
            }
        }
    }
    Ok(())
}

/// Replay applies reports with a clock far in the future: what was accepted once must not be
/// refused as "from the future" because the clock moved.
pub const REPLAY_NOW: TimestampMs = TimestampMs(i64::MAX / 4);

#[cfg(test)]
mod tests {
    use super::*;
    use mobility_core::{BatteryPct, LatLon};

    fn report(n: u128, at: i64) -> Telemetry {
        Telemetry {
            vehicle_id: VehicleId::from_uuid(uuid::Uuid::from_u128(n)),
            at: TimestampMs(at),
            position: LatLon::new(41.0 + (n as f64) * 1e-4, 2.0).unwrap(),
            battery: Some(BatteryPct::new(50).unwrap()),
            speed_m_s: None,
            heading_deg: Some(10.0),
            odometer_m: Some(7),
            locked: Some(true),
            error_codes: if n.is_multiple_of(2) {
                vec![1, 65535]
            } else {
                vec![]
            },
        }
    }

    #[tokio::test]
    async fn queued_appends_are_written_in_order_before_a_later_synced_one_returns() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = LiveLog::open(dir.path(), None).unwrap();
            // QoS 0: nobody waits for these...
            log.append_queued(&[&report(1, 10)]).await.unwrap();
            log.append_queued(&[&report(2, 11), &report(3, 12)])
                .await
                .unwrap();
            // ...but a synced append after them returns only once they are on disk too.
            log.append(&[&report(1, 13)]).await.unwrap();
            log.append_queued(&[]).await.unwrap();
        }
        let (_log, rec) = LiveLog::open(dir.path(), None).unwrap();
        assert_eq!(
            rec.reports,
            vec![report(1, 10), report(2, 11), report(3, 12), report(1, 13)]
        );
    }

    #[tokio::test]
    async fn appended_reports_come_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, rec) = LiveLog::open(dir.path(), None).unwrap();
            assert!(rec.reports.is_empty());
            log.append(&[&report(1, 10), &report(2, 11)]).await.unwrap();
            log.append(&[&report(1, 12)]).await.unwrap();
        }
        let (_log, rec) = LiveLog::open(dir.path(), None).unwrap();
        assert_eq!(
            rec.reports,
            vec![report(1, 10), report(2, 11), report(1, 12)]
        );
        assert_eq!(rec.torn_bytes, 0);
    }

    #[tokio::test]
    async fn a_snapshot_replaces_the_log_it_covers() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = LiveLog::open(dir.path(), None).unwrap();
            log.append(&[&report(1, 10), &report(1, 11), &report(2, 12)])
                .await
                .unwrap();
            let n = log
                .snapshot(async { Ok(()) }, || vec![report(1, 11), report(2, 12)])
                .await
                .unwrap();
            assert_eq!(n, 2);
            log.append(&[&report(3, 13)]).await.unwrap();
        }
        assert_eq!(numbered(dir.path(), "wal-", ".log").unwrap(), vec![1]);
        assert_eq!(numbered(dir.path(), "snapshot-", ".bin").unwrap(), vec![1]);
        let (_log, rec) = LiveLog::open(dir.path(), None).unwrap();
        assert_eq!(rec.from_snapshot, 2);
        assert_eq!(
            rec.reports,
            vec![report(1, 11), report(2, 12), report(3, 13)]
        );
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_writing_continues() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = LiveLog::open(dir.path(), None).unwrap();
            log.append(&[&report(1, 10), &report(2, 11)]).await.unwrap();
        }
        // A crash in the middle of writing a record leaves half of it.
        let path = segment_path(dir.path(), 0);
        let full = fs::read(&path).unwrap();
        let mut torn = full.clone();
        let mut extra = Vec::new();
        encode_record(&report(3, 12), &mut extra);
        torn.extend_from_slice(&extra[..extra.len() / 2]);
        fs::write(&path, &torn).unwrap();
        {
            let (log, rec) = LiveLog::open(dir.path(), None).unwrap();
            assert_eq!(rec.reports, vec![report(1, 10), report(2, 11)]);
            assert_eq!(rec.torn_bytes, (extra.len() / 2) as u64);
            assert_eq!(fs::read(&path).unwrap(), full, "torn bytes cut");
            log.append(&[&report(4, 13)]).await.unwrap();
        }
        let (_log, rec) = LiveLog::open(dir.path(), None).unwrap();
        assert_eq!(rec.reports.len(), 3);
        assert_eq!(rec.reports[2], report(4, 13));
    }

    #[tokio::test]
    async fn covered_segments_become_history_until_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let (live, history) = (dir.path().join("live"), dir.path().join("history"));
        let (log, _) = LiveLog::open(&live, Some(&history)).unwrap();
        log.append(&[&report(1, 10), &report(1, 5)]).await.unwrap(); // 5: a late report
        log.snapshot(async { Ok(()) }, || vec![report(1, 10)])
            .await
            .unwrap();
        log.append(&[&report(1, 11)]).await.unwrap();
        assert_eq!(numbered(&history, "segment-", ".log").unwrap(), vec![0]);
        let all = read_telemetry(&live, &history).unwrap();
        assert_eq!(all, vec![report(1, 10), report(1, 5), report(1, 11)]);
        assert_eq!(
            prune_history(
                &history,
                std::time::Duration::from_secs(3600),
                std::time::SystemTime::now()
            )
            .unwrap(),
            0
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            prune_history(
                &history,
                std::time::Duration::from_millis(10),
                std::time::SystemTime::now()
            )
            .unwrap(),
            1
        );
        assert_eq!(
            read_telemetry(&live, &history).unwrap(),
            vec![report(1, 11)]
        );
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let mut bytes = Vec::new();
        encode_record(&report(1, 10), &mut bytes);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let (reports, _) = decode_records(&b);
            assert!(reports.len() <= 1);
        }
        for cut in 0..bytes.len() {
            assert!(decode_records(&bytes[..cut]).0.is_empty());
        }
        assert!(decode_records(&[0xff; 64]).0.is_empty());
    }
}
