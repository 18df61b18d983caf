//! The single writer of a log. It owns the right to append: appends from every producer
//! arrive on one bounded queue, and whatever has queued while the previous write was in
//! flight is coalesced into one batch and one write (group commit). With `fsync always` on
//! disc the written group goes to the log's sync task ([`super::syncer`]), which makes it
//! durable with one `fdatasync` (shared with the groups written meanwhile) while the writer
//! writes the next; only after it do readers see the records and appenders get their
//! offsets.
//!
//! The writer also rolls segments (by size and age), applies retention (on roll and on a
//! timer) and, with `fsync interval`, syncs on a timer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::batch::{BatchBuilder, BatchHeader};
use super::index::{IndexEntry, SparseIndex};
use super::segment::{self, DiskData, Segment, SegmentData, SegmentState};
use super::storage::memory::MemorySegment;
use super::storage::SegmentFile;
use super::syncer::SyncQueue;
use super::{now_ms, AppendAck, Error, FsyncPolicy, LogOptions, RecordInput, Shared};
use crate::limits::{BATCH_BYTES_TARGET, BATCH_RECORDS_MAX, SEGMENT_RECORDS_MAX, SYNC_TIMER_IDLE_MS};

/// What the writer is asked to do.
pub enum Command {
    /// Append records; answer with their offsets once committed.
    Append(AppendRequest),
    /// Seal the active segment now (if it holds anything).
    Roll(oneshot::Sender<Result<(), Error>>),
    /// Apply retention now.
    Retention(oneshot::Sender<Result<(), Error>>),
    /// Replace the retention limits, then apply them.
    SetRetention(Retention, oneshot::Sender<Result<(), Error>>),
    /// Make everything written durable now.
    Sync(oneshot::Sender<Result<(), Error>>),
    /// Sync, write the active index, stop.
    Close(oneshot::Sender<Result<(), Error>>),
}

/// A log's retention limits (see [`LogOptions`]), as a running log can change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// [`LogOptions::retention_bytes_max`].
    pub bytes_max: Option<u64>,
    /// [`LogOptions::retention_age_max`].
    pub age_max: Option<Duration>,
    /// [`LogOptions::retention_check_interval`].
    pub check_interval: Duration,
}

/// Records to append and where to send their offsets.
pub struct AppendRequest {
    /// The records, in order.
    pub records: Vec<RecordInput>,
    /// Answered with the offsets of the first and last record.
    pub done: oneshot::Sender<Result<AppendAck, Error>>,
    /// The records' share of the log's append credit, given back when the request has
    /// been written (or refused).
    pub _credit: tokio::sync::OwnedSemaphorePermit,
}

/// The active segment as the writer sees it.
pub struct Active {
    /// The shared segment.
    pub segment: Arc<Segment>,
    /// The handle on the data file (disc mode): opened on the first write or sync, and
    /// closed and reopened as the broker's bound on open files requires.
    pub file: Option<Arc<dyn SegmentFile>>,
    /// Bytes written, which may be ahead of what is committed.
    pub written_bytes: u64,
    /// Offset the next record will get.
    pub next_offset: u64,
    /// Timestamp of the first record written to this segment.
    pub first_timestamp_ms: Option<i64>,
}

/// A written batch not yet visible to readers.
pub struct Pending {
    segment: Arc<Segment>,
    header: BatchHeader,
    position: u64,
}

/// The writer task's state.
pub struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) options: LogOptions,
    pub(super) active: Active,
    pub(super) last_timestamp_ms: i64,
    pending: Vec<Pending>,
    unsynced: bool,
    /// Set by a failed `fdatasync`: the log cannot know what reached the disc and takes no
    /// more appends.
    failed: Option<String>,
    /// Offset after the last batch written whole (what a failed group falls back to).
    written_next_offset: u64,
    /// After a failed write: the length the active file is cut back to before the next.
    cut_to_bytes: Option<u64>,
    /// With `fsync always` on disc: syncs and commits written groups while the next is
    /// written.
    syncs: Option<SyncQueue>,
}

/// Where an appender's offsets go once its records are committed.
pub type Answer = (oneshot::Sender<Result<AppendAck, Error>>, AppendAck);

impl Writer {
    /// A writer continuing `active`, the last segment of `shared`.
    pub fn new(shared: Arc<Shared>, options: LogOptions, active: Active, last_timestamp_ms: i64) -> Writer {
        let pipelined = matches!(options.fsync(), Some(FsyncPolicy::Always));
        let syncs = pipelined.then(|| SyncQueue::start(Arc::clone(&shared)));
        let written_next_offset = active.next_offset;
        Writer {
            shared,
            options,
            active,
            last_timestamp_ms,
            pending: Vec::new(),
            unsynced: false,
            failed: None,
            written_next_offset,
            cut_to_bytes: None,
            syncs,
        }
    }

    /// Serves commands until the log is closed or every handle is dropped.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut retention = tokio::time::interval(self.options.retention_check_interval);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sync_period = match self.options.fsync() {
            Some(FsyncPolicy::Interval(period)) => period,
            _ => Duration::from_millis(SYNC_TIMER_IDLE_MS),
        };
        let mut sync_timer = tokio::time::interval(sync_period);
        sync_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut carried: Option<Command> = None;
        loop {
            let command = match carried.take() {
                Some(command) => command,
                None => tokio::select! {
                    command = commands.recv() => match command {
                        Some(command) => command,
                        None => break,
                    },
                    _ = retention.tick() => {
                        let outcome = self.enforce_retention();
                        self.note_failure(outcome);
                        continue;
                    }
                    _ = sync_timer.tick(), if self.unsynced => {
                        let outcome = self.sync().await;
                        self.note_failure(outcome);
                        continue;
                    }
                },
            };
            match command {
                Command::Append(first) => {
                    let mut group = vec![first];
                    let mut bytes = 0usize;
                    while bytes < BATCH_BYTES_TARGET && group.len() < BATCH_RECORDS_MAX {
                        match commands.try_recv() {
                            Ok(Command::Append(next)) => {
                                bytes += next.records.iter().map(RecordInput::encoded_bytes).sum::<usize>();
                                group.push(next);
                            }
                            Ok(other) => {
                                carried = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.append_group(group).await;
                }
                Command::Roll(done) => {
                    let outcome = self.roll().await;
                    let _ = done.send(outcome);
                }
                Command::Retention(done) => {
                    let _ = done.send(self.enforce_retention());
                }
                Command::SetRetention(limits, done) => {
                    let _ = done.send(self.set_retention(limits, &mut retention));
                }
                Command::Sync(done) => {
                    let _ = done.send(self.sync().await);
                }
                Command::Close(done) => {
                    let _ = done.send(self.shutdown().await);
                    return;
                }
            }
        }
        let _ = self.shutdown().await;
    }

    fn note_failure(&mut self, outcome: Result<(), Error>) {
        if let Err(error) = outcome {
            tracing::error!(%error, "log writer failed; the log accepts no more appends");
            self.failed.get_or_insert_with(|| error.to_string());
        }
    }

    async fn append_group(&mut self, group: Vec<AppendRequest>) {
        if let Some(reason) = self.syncs.as_ref().and_then(SyncQueue::failure) {
            self.failed.get_or_insert_with(|| reason.to_owned());
        }
        let refusal = match &self.failed {
            Some(reason) => Err(reason.clone()),
            None => self.repair(),
        };
        if let Err(reason) = refusal {
            for request in group {
                let _ = request.done.send(Err(Error::Failed { reason: reason.clone() }));
            }
            return;
        }
        let mut answers = Vec::with_capacity(group.len());
        let outcome = self.write_group(group, &mut answers).await;
        let outcome = match outcome {
            Err(error) if !is_sync_failure(&error) => {
                tracing::warn!(%error, "log write failed; its appends fail and the log retries");
                self.undo_group();
                for (done, _) in answers {
                    let _ = done.send(Err(Error::Failed { reason: error.to_string() }));
                }
                return;
            }
            outcome => outcome,
        };
        if let (Ok(()), Some(syncs), Some(file)) = (&outcome, &self.syncs, &self.active.file) {
            // Everything written so far is the sync task's to cover from here on.
            self.unsynced = false;
            let batches = std::mem::take(&mut self.pending);
            syncs.hand_over(Arc::clone(file), Arc::clone(&self.active.segment), batches, answers).await;
            return;
        }
        let outcome = match outcome {
            Ok(()) => self.commit_pending().await,
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {
                for (done, ack) in answers {
                    let _ = done.send(Ok(ack));
                }
            }
            Err(error) => {
                let reason = error.to_string();
                self.note_failure(Err(error));
                for (done, _) in answers {
                    let _ = done.send(Err(Error::Failed { reason: reason.clone() }));
                }
            }
        }
    }

    async fn write_group(
        &mut self,
        group: Vec<AppendRequest>,
        answers: &mut Vec<(oneshot::Sender<Result<AppendAck, Error>>, AppendAck)>,
    ) -> Result<(), Error> {
        let mut builder: Option<BatchBuilder> = None;
        // On disc, uncompressed batches are written as pieces: large bodies go to the file
        // from the buffers they arrived in. In memory a batch is one buffer (reads slice it).
        let in_memory = matches!(self.active.segment.data, SegmentData::Memory(_));
        let vectored = !in_memory && self.options.compression == super::batch::Compression::None;
        let checked = !in_memory && self.options.checksums;
        // Builders are sized for what the group still holds: no regrowth while filling.
        let mut left: usize =
            group.iter().flat_map(|r| r.records.iter()).map(RecordInput::encoded_bytes).sum();
        let now = now_ms();
        for request in group {
            let first_offset = self.active.next_offset;
            for record in &request.records {
                let size = record.encoded_bytes();
                if let Some(full) = builder.take_if(|b| b.records_bytes() + size > BATCH_BYTES_TARGET) {
                    self.write_batch(full).await?;
                }
                let next = self.active.next_offset;
                let batch = builder.get_or_insert_with(|| {
                    let capacity = left.clamp(size, BATCH_BYTES_TARGET.max(size));
                    let builder = if vectored {
                        BatchBuilder::vectored(next, capacity)
                    } else {
                        BatchBuilder::new(next, capacity)
                    };
                    if checked {
                        builder
                    } else {
                        builder.without_checksum()
                    }
                });
                left = left.saturating_sub(size);
                let timestamp_ms = record.timestamp_ms.unwrap_or(now).max(self.last_timestamp_ms);
                batch.push_shared(timestamp_ms, &record.header, &record.body);
                self.last_timestamp_ms = batch.last_timestamp_ms();
                self.active.next_offset += 1;
            }
            let last_offset = self.active.next_offset.saturating_sub(1).max(first_offset);
            answers.push((request.done, AppendAck { first_offset, last_offset }));
        }
        if let Some(last) = builder {
            self.write_batch(last).await?;
        }
        Ok(())
    }

    /// Seals the builder into a batch and writes it to the active segment, rolling first
    /// if the segment is full or old.
    async fn write_batch(&mut self, builder: BatchBuilder) -> Result<(), Error> {
        let (header, pieces) = match self.options.compression {
            super::batch::Compression::None => builder.finish_pieces(),
            compression => {
                let (header, bytes) = builder.finish(compression);
                (header, vec![bytes])
            }
        };
        if self.should_roll(header.first_timestamp_ms, header.base_offset) {
            self.roll().await?;
        }
        let position = self.active.written_bytes;
        let length = header.total_bytes();
        if let Some(headroom) = &self.options.disk_headroom {
            headroom.reserve(length).map_err(|below| Error::DiskFull {
                free_bytes: below.free_bytes,
                free_bytes_min: below.free_bytes_min,
            })?;
        }
        self.write_bytes(position, pieces).await?;
        self.active.written_bytes += length;
        self.written_next_offset = header.next_offset();
        self.active.first_timestamp_ms.get_or_insert(header.first_timestamp_ms);
        self.pending.push(Pending { segment: Arc::clone(&self.active.segment), header, position });
        Ok(())
    }

    async fn write_bytes(&mut self, position: u64, pieces: Vec<Bytes>) -> Result<(), Error> {
        match (&self.active.segment.data, &self.active.file) {
            (SegmentData::Memory(memory), _) => memory.write_at(position, pieces),
            (SegmentData::Disk(disk), Some(file)) => {
                file.write_all_at(position, pieces)
                    .await
                    .map_err(|source| Error::io("writing segment", &disk.path, source))?;
                self.unsynced = true;
            }
            (SegmentData::Disk(disk), None) => {
                return Err(Error::Inconsistent { reason: format!("no writer for {}", disk.path.display()) })
            }
        }
        Ok(())
    }

    /// Forgets the batches of a failed group: the writer falls back to the end of the last
    /// batch written whole before the group (batches sealed into an earlier segment by a
    /// roll were committed by it), and the file is cut back there before the next write.
    /// Nothing past that end was committed, so readers never saw it.
    fn undo_group(&mut self) {
        let (bytes, next_offset) = match self.pending.first() {
            Some(first) => (first.position, first.header.base_offset),
            None => (self.active.written_bytes, self.written_next_offset),
        };
        assert!(bytes >= self.active.segment.extent().0, "a failed group reaches below the committed end");
        self.pending.clear();
        self.active.written_bytes = bytes;
        self.active.next_offset = next_offset;
        self.written_next_offset = next_offset;
        if bytes == 0 {
            self.active.first_timestamp_ms = None;
        }
        self.cut_to_bytes = self.active.file.is_some().then_some(bytes);
    }

    /// After a failed write, before the next: cuts the active file back to the end of what
    /// was written whole. Each append after a failure is one retry, so retries never
    /// outnumber appends; until the cut succeeds, appends fail. Never called otherwise:
    /// the intact path makes no system call here.
    fn repair(&mut self) -> Result<(), String> {
        let (Some(bytes), Some(path)) = (self.cut_to_bytes, self.active.segment.path()) else {
            return Ok(());
        };
        let cut = std::fs::OpenOptions::new().write(true).open(path).and_then(|file| file.set_len(bytes));
        if let Err(source) = cut {
            return Err(Error::io("cutting back a failed write", path, source).to_string());
        }
        self.cut_to_bytes = None;
        Ok(())
    }

    /// Whether a batch stamped `timestamp_ms` starting at `base_offset` goes to a new
    /// segment. Also rolls before a segment's offsets pass [`SEGMENT_RECORDS_MAX`] (only
    /// compressed batches of tiny records can get there), so that relative offsets fit the
    /// index's `u32`.
    fn should_roll(&self, timestamp_ms: i64, base_offset: u64) -> bool {
        if self.active.written_bytes == 0 {
            return false;
        }
        let by_count = base_offset - self.active.segment.base_offset >= SEGMENT_RECORDS_MAX;
        let by_size = self.active.written_bytes >= self.options.segment_bytes_max || by_count;
        let by_age = match (self.options.segment_age_max, self.active.first_timestamp_ms) {
            (Some(age), Some(first)) => timestamp_ms.saturating_sub(first) >= age.as_millis() as i64,
            _ => false,
        };
        by_size || by_age
    }

    /// Makes pending batches durable (per the fsync policy) and visible.
    async fn commit_pending(&mut self) -> Result<(), Error> {
        if matches!(self.options.fsync(), Some(FsyncPolicy::Always)) && self.unsynced {
            self.sync_active().await?;
        }
        commit(&self.shared, self.pending.drain(..));
        Ok(())
    }

    async fn sync_active(&mut self) -> Result<(), Error> {
        if let (SegmentData::Disk(disk), Some(file)) = (&self.active.segment.data, &self.active.file) {
            file.sync_data().await.map_err(|source| Error::io("syncing segment", &disk.path, source))?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Makes everything written durable and every group handed to the sync task committed.
    async fn sync(&mut self) -> Result<(), Error> {
        if let Some(syncs) = &self.syncs {
            syncs.drain().await;
            if let Some(reason) = syncs.failure() {
                return Err(Error::Failed { reason: reason.to_owned() });
            }
        }
        if self.unsynced {
            self.sync_active().await?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the next offset.
    async fn roll(&mut self) -> Result<(), Error> {
        if self.active.written_bytes == 0 {
            return Ok(());
        }
        if !matches!(self.options.fsync(), Some(FsyncPolicy::Never)) {
            self.sync().await?;
        }
        // What is written to the sealed segment becomes visible before it is sealed.
        self.commit_pending().await?;
        let sealed = Arc::clone(&self.active.segment);
        if let Some(dir) = self.options.storage.dir() {
            let index = sealed.with_state(|s| s.index.encode());
            let path = segment::path_of(dir, sealed.base_offset, segment::INDEX_EXTENSION);
            super::offsets::write_atomically(&path, &index)?;
        }
        let base_offset = sealed.extent().1;
        // Records of a batch being written may already hold offsets past the sealed end.
        let next_offset = self.active.next_offset;
        // Creating the file and syncing the directory: off the runtime's worker.
        self.active = super::offsets::off_worker(|| new_segment(&self.options, base_offset))?;
        self.active.next_offset = next_offset;
        self.shared.segments.write().expect("segments lock poisoned").push(Arc::clone(&self.active.segment));
        self.enforce_retention()
    }

    /// Takes new retention limits (restarting the `timer` of its checks when their interval
    /// changed) and applies them.
    fn set_retention(&mut self, limits: Retention, timer: &mut tokio::time::Interval) -> Result<(), Error> {
        if limits.check_interval.is_zero() {
            return Err(Error::Config { reason: "retention check must be > 0".into() });
        }
        if limits.check_interval != self.options.retention_check_interval {
            *timer = tokio::time::interval(limits.check_interval);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        self.options.retention_bytes_max = limits.bytes_max;
        self.options.retention_age_max = limits.age_max;
        self.options.retention_check_interval = limits.check_interval;
        self.enforce_retention()
    }

    /// Deletes whole sealed segments, oldest first, while the log is over its byte limit,
    /// the oldest segment's last record is older than the age limit, or every record of the
    /// oldest segment is below the release floor (a queue no longer needs them).
    fn enforce_retention(&mut self) -> Result<(), Error> {
        let (bytes_max, age_max) = (self.options.retention_bytes_max, self.options.retention_age_max);
        let release_floor = self.shared.release_floor.load(Ordering::Acquire);
        if bytes_max.is_none() && age_max.is_none() && release_floor == 0 {
            return Ok(());
        }
        let now = now_ms();
        let mut removed = Vec::new();
        {
            let mut segments = self.shared.segments.write().expect("segments lock poisoned");
            let mut total: u64 = segments.iter().map(|s| s.extent().0).sum();
            while segments.len() > 1 {
                let Some(oldest) = segments.first() else { break };
                let (bytes, _) = oldest.extent();
                let last_ms = oldest.with_state(|s| s.last_timestamp_ms);
                let over_bytes = bytes_max.is_some_and(|max| total > max);
                let too_old = match (age_max, last_ms) {
                    (Some(age), Some(last)) => now.saturating_sub(last) > age.as_millis() as i64,
                    _ => false,
                };
                let released = oldest.extent().1 <= release_floor;
                if !(over_bytes || too_old || released) {
                    break;
                }
                total -= bytes;
                removed.push(segments.remove(0));
            }
            if let Some(first) = segments.first() {
                self.shared.first_offset.store(first.base_offset, Ordering::Release);
            }
        }
        // File system work, off the runtime's worker (the writer waits for it all the same).
        super::offsets::off_worker(|| {
            for segment in removed {
                tracing::debug!(base_offset = segment.base_offset, "retention removed a segment");
                if let Some(path) = segment.path() {
                    let index = path.with_extension(segment::INDEX_EXTENSION);
                    std::fs::remove_file(path)
                        .map_err(|source| Error::io("removing segment", path, source))?;
                    let _ = std::fs::remove_file(index);
                }
            }
            Ok(())
        })
    }

    async fn shutdown(&mut self) -> Result<(), Error> {
        self.shared.closed.store(true, Ordering::Release);
        let outcome = if self.failed.is_none() { self.sync().await } else { Ok(()) };
        self.shared.next_offset.send_modify(|_| {});
        outcome
    }
}

/// Whether `error` came from a failed `fdatasync`: after one the log cannot know what
/// reached the disc, so it fails every later append. Other write errors (a full disc, a
/// refused write) are undone and retried.
fn is_sync_failure(error: &Error) -> bool {
    matches!(error, Error::Failed { .. } | Error::Io { action: "syncing segment" | "syncing directory", .. })
}

/// Makes written batches visible to readers, in order, and publishes the log's new end.
pub fn commit(shared: &Shared, batches: impl IntoIterator<Item = Pending>) {
    let mut next_offset = None;
    for pending in batches {
        let header = pending.header;
        pending.segment.commit(|state| {
            let entry = IndexEntry {
                // Fits: a segment rolls before its offsets pass SEGMENT_RECORDS_MAX, and
                // positions stay below SEGMENT_BYTES_MAX + BATCH_BYTES_MAX (limits.rs).
                relative_offset: u32::try_from(header.base_offset - pending.segment.base_offset)
                    .expect("a segment rolls before its relative offsets pass u32"),
                position: u32::try_from(pending.position).expect("segment positions fit in u32"),
                timestamp_ms: header.first_timestamp_ms,
            };
            state.index.observe(entry, header.total_bytes());
            state.committed_bytes = pending.position + header.total_bytes();
            state.next_offset = header.next_offset();
            state.first_timestamp_ms.get_or_insert(header.first_timestamp_ms);
            state.last_timestamp_ms = Some(header.last_timestamp_ms);
        });
        next_offset = Some(header.next_offset());
    }
    if let Some(next) = next_offset {
        shared.next_offset.send_replace(next);
    }
}

/// A new, empty active segment starting at `base_offset`.
pub fn new_segment(options: &LogOptions, base_offset: u64) -> Result<Active, Error> {
    let state = SegmentState {
        committed_bytes: 0,
        next_offset: base_offset,
        last_timestamp_ms: None,
        first_timestamp_ms: None,
        index: SparseIndex::new(options.index_interval_bytes),
    };
    let (data, file) = match &options.storage {
        super::Storage::Disk { dir, io, .. } => {
            let path = segment::path_of(dir, base_offset, segment::DATA_EXTENSION);
            // Created here, closed at once: the writer's handle opens it on the first write.
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|source| Error::io("creating segment", &path, source))?;
            let durable = !matches!(options.fsync(), Some(FsyncPolicy::Never));
            if durable {
                super::sync_dir(dir)?;
            }
            let handle = super::storage::lazy_file(io, path.clone(), durable);
            let data = DiskData::new(path, super::storage::maps_of(io), options.checksums);
            (SegmentData::Disk(data), Some(handle))
        }
        super::Storage::Memory => {
            (SegmentData::Memory(MemorySegment::new(options.memory_budget.clone())), None)
        }
    };
    let segment = Arc::new(Segment::new(base_offset, data, state));
    Ok(Active { segment, file, written_bytes: 0, next_offset: base_offset, first_timestamp_ms: None })
}
