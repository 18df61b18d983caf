//! LOG CORE: the append-only log every queue stands on. It knows nothing of AMQP, queues,
//! consumers or sockets.
//!
//! A [`Log`] is an ordered list of segments ([`segment`]), each a run of checksummed
//! batches ([`batch`]) with a sparse index ([`index`]). One writer task per log
//! ([`writer`]) coalesces appends into batches (group commit) and writes them through a
//! [`storage::FileIo`] backend (io_uring or threads) or keeps them in RAM; under `fsync
//! always` a sync task ([`syncer`]) syncs one group while the writer writes the next. Readers
//! ([`reader`]) get batches as `Bytes` borrowing the segment maps, never past the
//! committed end, and can await new records at the tail. On open, [`recovery`] checks the
//! tail and truncates a torn or corrupt end. [`offsets`] stores named consumers' offsets and,
//! beside them, [`acked`] a reader's acknowledged ranges above its floor.
//!
//! Invariants: offsets are dense and strictly increasing; a batch never spans two
//! segments; timestamps never go backwards; committed ≤ written for every segment.

pub mod acked;
pub mod batch;
pub mod headroom;
pub mod index;
pub mod maps;
pub mod memory_budget;
pub mod offsets;
pub mod reader;
mod recovery;
#[cfg(test)]
mod release_tests;
mod resync;
pub mod segment;
pub mod storage;
mod syncer;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

pub use batch::{Batch, BatchError, Compression, Record};
pub use offsets::OffsetStore;
use segment::Segment;
use storage::FileIo;
pub use writer::Retention;

use crate::limits::{
    BATCH_BYTES_MAX, INDEX_INTERVAL_BYTES_DEFAULT, LOG_APPEND_QUEUE_BYTES_MAX, LOG_APPEND_QUEUE_MAX,
    MAP_RESIDENT_LAG_STEPS, MAP_RESIDENT_STEP_BYTES, RETENTION_CHECK_INTERVAL_MS_DEFAULT,
    SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};

/// Everything that can go wrong in the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the log was doing.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// Stored bytes are not a valid batch where one must be.
    #[error("corrupt data in segment {segment_base_offset} at byte {position}: {source}")]
    Corrupt {
        /// Base offset of the segment.
        segment_base_offset: u64,
        /// Byte position in the segment.
        position: u64,
        /// What is wrong.
        source: BatchError,
    },
    /// A batch failed verification when read.
    #[error("corrupt batch at offset {base_offset}: {source}")]
    CorruptBatch {
        /// The batch's base offset.
        base_offset: u64,
        /// What is wrong.
        source: BatchError,
    },
    /// The offset was removed by retention (or never existed).
    #[error("offset {offset} is before the log's first offset {first_offset}")]
    BeforeStart {
        /// The offset asked for.
        offset: u64,
        /// The first offset the log holds.
        first_offset: u64,
    },
    /// Offsets are missing inside the log (a damaged sealed segment was cut short).
    #[error("offsets {offset}..{next_available} are missing")]
    Missing {
        /// The first missing offset.
        offset: u64,
        /// The next offset the log holds.
        next_available: u64,
    },
    /// One record is larger than a batch may be.
    #[error("record of {bytes} bytes exceeds the maximum of {max}")]
    RecordTooLarge {
        /// The record's encoded size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The log is closed.
    #[error("log is closed")]
    Closed,
    /// A write failed: the appends of its group fail, and after a failed `fdatasync` every
    /// later one too, until the log is reopened.
    #[error("log writer failed: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
    /// The write would take the disc's free space below the limit; nothing was written.
    #[error("free disc space {free_bytes} bytes is below the limit of {free_bytes_min}")]
    DiskFull {
        /// Free bytes when last looked up.
        free_bytes: u64,
        /// The limit (`--disk-free-limit`).
        free_bytes_min: u64,
    },
    /// The files on disc contradict each other.
    #[error("inconsistent log: {reason}")]
    Inconsistent {
        /// What contradicts what.
        reason: String,
    },
    /// Options out of range.
    #[error("invalid log option: {reason}")]
    Config {
        /// Which option and why.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Io`].
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io { action, path: path.to_path_buf(), source }
    }
}

/// When disc writes are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every append completes only after the batch holding it is `fdatasync`ed; appends
    /// queued meanwhile share the next one.
    Always,
    /// A background `fdatasync` at this period while there are unsynced bytes.
    Interval(Duration),
    /// Never sync; the operating system writes back when it likes.
    Never,
}

/// Where a log keeps its segments.
#[derive(Debug, Clone)]
pub enum Storage {
    /// In RAM: no file is touched and nothing survives a restart.
    Memory,
    /// In a directory of its own.
    Disk {
        /// The log's directory.
        dir: PathBuf,
        /// Durability policy.
        fsync: FsyncPolicy,
        /// The I/O backend.
        io: Arc<dyn FileIo>,
    },
}

impl Storage {
    /// The log's directory, for disc logs.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Storage::Memory => None,
            Storage::Disk { dir, .. } => Some(dir),
        }
    }
}

/// How one log behaves.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Where segments live.
    pub storage: Storage,
    /// A segment is sealed once it holds this many bytes.
    pub segment_bytes_max: u64,
    /// A segment is sealed once its first record is this old (checked on append).
    pub segment_age_max: Option<Duration>,
    /// Oldest sealed segments are deleted while the log holds more bytes than this.
    pub retention_bytes_max: Option<u64>,
    /// Sealed segments whose last record is older than this are deleted.
    pub retention_age_max: Option<Duration>,
    /// How often retention runs besides on every roll.
    pub retention_check_interval: Duration,
    /// Distance between sparse index entries.
    pub index_interval_bytes: u32,
    /// How new batches are stored.
    pub compression: Compression,
    /// The free-disc budget shared by the broker's writers (disc only; `None`: no limit).
    pub disk_headroom: Option<Arc<headroom::DiskHeadroom>>,
    /// Whether batches on disc carry a crc32 that every read checks. Off only for a log
    /// whose files are never read after its process stops (a transient queue's, removed
    /// whenever the broker starts): what it reads back is what it wrote within the same
    /// run, as with a log in memory, which never has one.
    pub checksums: bool,
    /// The count of bytes held by the broker's in-memory segments, which the memory alarm
    /// watches (memory only; `None`: not counted).
    pub memory_budget: Option<Arc<memory_budget::MemoryBudget>>,
}

impl LogOptions {
    /// Defaults for the given storage: 256 MiB segments, no retention, no compression.
    pub fn new(storage: Storage) -> LogOptions {
        LogOptions {
            storage,
            segment_bytes_max: SEGMENT_BYTES_DEFAULT,
            segment_age_max: None,
            retention_bytes_max: None,
            retention_age_max: None,
            retention_check_interval: Duration::from_millis(RETENTION_CHECK_INTERVAL_MS_DEFAULT),
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            compression: Compression::None,
            disk_headroom: None,
            checksums: true,
            memory_budget: None,
        }
    }

    /// The fsync policy, for disc logs.
    pub fn fsync(&self) -> Option<FsyncPolicy> {
        match &self.storage {
            Storage::Memory => None,
            Storage::Disk { fsync, .. } => Some(*fsync),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let range = SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX;
        if !range.contains(&self.segment_bytes_max) {
            return Err(Error::Config {
                reason: format!("segment size {} outside {range:?}", self.segment_bytes_max),
            });
        }
        if self.index_interval_bytes == 0 || self.retention_check_interval.is_zero() {
            return Err(Error::Config { reason: "index interval and retention check must be > 0".into() });
        }
        Ok(())
    }
}

/// One record to append.
#[derive(Debug, Clone, Default)]
pub struct RecordInput {
    /// Timestamp to store, ms since the Unix epoch; `None` means now. Clamped so that the
    /// log's timestamps never go backwards.
    pub timestamp_ms: Option<i64>,
    /// Opaque bytes stored beside the body.
    pub header: Bytes,
    /// The body.
    pub body: Bytes,
}

impl RecordInput {
    /// A record with a body only, stamped now.
    pub fn body(body: impl Into<Bytes>) -> RecordInput {
        RecordInput { timestamp_ms: None, header: Bytes::new(), body: body.into() }
    }

    /// Its size inside a batch.
    pub fn encoded_bytes(&self) -> usize {
        batch::BatchBuilder::record_bytes(&self.header, &self.body)
    }
}

/// The offsets an append got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    /// Offset of the first record appended.
    pub first_offset: u64,
    /// Offset of the last record appended.
    pub last_offset: u64,
}

/// Resolves to an append's offsets once the records are committed.
#[derive(Debug)]
pub struct AppendReceipt {
    answer: oneshot::Receiver<Result<AppendAck, Error>>,
}

impl std::future::Future for AppendReceipt {
    type Output = Result<AppendAck, Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.answer).poll(cx).map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

/// What the writer and readers share.
#[derive(Debug)]
pub struct Shared {
    segments: RwLock<Vec<Arc<Segment>>>,
    next_offset: watch::Sender<u64>,
    first_offset: AtomicU64,
    release_floor: AtomicU64,
    closed: AtomicBool,
    offsets: OffsetStore,
    fsync: Option<FsyncPolicy>,
    disk_headroom: Option<Arc<headroom::DiskHeadroom>>,
    /// Bytes of appends the writer may have queued and not yet written
    /// ([`LOG_APPEND_QUEUE_BYTES_MAX`]): appenders wait for it.
    append_credit: Arc<Semaphore>,
}

/// Where a reader got to in handing back pages it passed ([`Log::forget_behind`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForgetMark {
    segment_base: Option<u64>,
    position: u64,
}

/// A handle on one log. Cloning it is cheap; the writer stops when the log is closed or the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub struct Log {
    shared: Arc<Shared>,
    commands: mpsc::Sender<writer::Command>,
}

impl Log {
    /// Opens the log (recovering a disc log's files) and starts its writer on the current
    /// tokio runtime.
    ///
    /// # Errors
    /// Invalid options, unreadable files, or files that contradict each other.
    pub async fn open(options: LogOptions) -> Result<Log, Error> {
        options.validate()?;
        let recovered = match options.storage.dir() {
            Some(dir) => {
                let (dir, opts) = (dir.to_path_buf(), options.clone());
                tokio::task::spawn_blocking(move || recovery::recover(&dir, &opts))
                    .await
                    .map_err(|e| Error::Inconsistent { reason: format!("recovery task: {e}") })??
            }
            None => recovery::Recovered::empty(&options)?,
        };
        let offsets = match options.storage.dir() {
            Some(dir) => OffsetStore::open(dir)?,
            None => OffsetStore::in_memory(),
        };
        let first_offset = recovered.segments.first().map_or(0, |s| s.base_offset);
        let (next_offset, _) = watch::channel(recovered.active.next_offset);
        let shared = Arc::new(Shared {
            segments: RwLock::new(recovered.segments),
            next_offset,
            first_offset: AtomicU64::new(first_offset),
            release_floor: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            offsets,
            fsync: options.fsync(),
            disk_headroom: options.disk_headroom.clone(),
            append_credit: Arc::new(Semaphore::new(LOG_APPEND_QUEUE_BYTES_MAX as usize)),
        });
        let (commands, receiver) = mpsc::channel(LOG_APPEND_QUEUE_MAX);
        let writer =
            writer::Writer::new(Arc::clone(&shared), options, recovered.active, recovered.last_timestamp_ms);
        tokio::spawn(writer.run(receiver));
        Ok(Log { shared, commands })
    }

    /// Whether an append of `bytes` would be taken now: the log is open and, on disc, the
    /// free-disc limit leaves room for them. An append can still fail later (an I/O
    /// error); this lets a caller about to append to several logs refuse the whole group
    /// before any of it is made.
    pub fn would_take(&self, bytes: u64) -> bool {
        !self.shared.closed.load(Ordering::Acquire)
            && self.shared.disk_headroom.as_ref().is_none_or(|headroom| headroom.has_room(bytes))
    }

    /// Appends `records` in order and returns their offsets once they are committed (with
    /// `fsync always`, once they are on disc).
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`], [`Error::Closed`], or [`Error::Failed`] after a write error.
    pub async fn append(&self, records: Vec<RecordInput>) -> Result<AppendAck, Error> {
        if records.is_empty() {
            let next = self.next_offset();
            return Ok(AppendAck { first_offset: next, last_offset: next.saturating_sub(1) });
        }
        self.submit(records).await?.await
    }

    /// Queues `records` for appending, in the order of calls, and returns the receipt that
    /// resolves once they are committed. Waits only while the writer is behind: while the
    /// appends queued and not yet written hold [`LOG_APPEND_QUEUE_BYTES_MAX`] bytes (an
    /// append larger than that waits for the queue to empty), or [`LOG_APPEND_QUEUE_MAX`]
    /// appends. This is how a busy log slows its producers down: a connection waiting here
    /// reads nothing more from its socket.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`] or [`Error::Closed`].
    pub async fn submit(&self, records: Vec<RecordInput>) -> Result<AppendReceipt, Error> {
        let max = BATCH_BYTES_MAX - batch::BATCH_HEADER_BYTES as u64;
        if let Some(big) = records.iter().find(|r| r.encoded_bytes() as u64 > max) {
            return Err(Error::RecordTooLarge { bytes: big.encoded_bytes() as u64, max });
        }
        let bytes = records.iter().map(RecordInput::encoded_bytes).sum::<usize>();
        let share = u32::try_from(bytes).unwrap_or(u32::MAX).min(LOG_APPEND_QUEUE_BYTES_MAX);
        let credit = Arc::clone(&self.shared.append_credit)
            .acquire_many_owned(share)
            .await
            .map_err(|_| Error::Closed)?;
        let (done, answer) = oneshot::channel();
        let request = writer::AppendRequest { records, done, _credit: credit };
        self.commands.send(writer::Command::Append(request)).await.map_err(|_| Error::Closed)?;
        Ok(AppendReceipt { answer })
    }

    /// The batches holding `offset` and after, up to about `max_bytes` (at least one batch
    /// if any record at or after `offset` is committed). The first batch may start before
    /// `offset`. Verification happens in [`Batch::records`].
    ///
    /// # Errors
    /// [`Error::BeforeStart`] if retention removed `offset`; [`Error::Corrupt`] for damage.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<Batch>, Error> {
        let first_offset = self.first_offset();
        if offset < first_offset {
            return Err(Error::BeforeStart { offset, first_offset });
        }
        if offset >= self.next_offset() {
            return Ok(Vec::new());
        }
        let segments = self.shared.segments.read().expect("segments lock poisoned");
        reader::read_batches(&segments, offset, max_bytes).map_err(|error| match error {
            Error::Missing { offset, .. } if offset < self.first_offset() => {
                Error::BeforeStart { offset, first_offset: self.first_offset() }
            }
            other => other,
        })
    }

    /// For a reader that has read everything below `offset` and reads on in order: hands
    /// back the pages of the segment map it has passed since its last call, in steps of
    /// [`MAP_RESIDENT_STEP_BYTES`] (`mark` is where it got to; start with the default). A
    /// segment read from start to end would otherwise keep every page its readers touched
    /// in the broker's resident memory for as long as its map lives. Each reader hands back
    /// only what it passed, so readers at different places in one segment (a stream's
    /// consumers, a queue's statistics) do not take pages from under each other for good:
    /// one that touches a page another handed back hands it back again as it passes it.
    pub fn forget_behind(&self, offset: u64, mark: &mut ForgetMark) {
        let segments = self.shared.segments.read().expect("segments lock poisoned");
        let index = segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1);
        let Some(segment) = segments.get(index) else { return };
        let position = segment.indexed_position(offset);
        // Records read but still on their way to a client (read ahead, queued for a
        // consumer, in a connection's output) lie just below `position`: what they would
        // fault back in after being handed back would stay resident.
        let to = (position / MAP_RESIDENT_STEP_BYTES).saturating_sub(MAP_RESIDENT_LAG_STEPS)
            * MAP_RESIDENT_STEP_BYTES;
        let from = if mark.segment_base == Some(segment.base_offset) { mark.position } else { 0 };
        if to > from {
            segment.forget_pages(from, to);
            *mark = ForgetMark { segment_base: Some(segment.base_offset), position: to };
        }
    }

    /// Like [`Log::read`], decoded and verified into records starting exactly at `offset`.
    ///
    /// # Errors
    /// As [`Log::read`], and [`Error::CorruptBatch`] for a batch that fails its crc.
    pub fn read_records(&self, offset: u64, max_bytes: usize) -> Result<Vec<Record>, Error> {
        reader::records_of(&self.read(offset, max_bytes)?, offset)
    }

    /// Where intact data resumes after damage met reading at `offset`: the base offset of
    /// the first batch past the damaged one that verifies (found from the damaged batch's
    /// length, else the sparse index, else the next segment), at least `offset + 1`. For
    /// readers that met an error; it verifies every batch it steps over.
    pub fn next_intact_offset(&self, offset: u64) -> u64 {
        let log_end = self.next_offset();
        let segments = self.shared.segments.read().expect("segments lock poisoned");
        resync::next_intact_offset(&segments, offset, log_end)
    }

    /// Waits until a record at `offset` or later is committed.
    ///
    /// # Errors
    /// [`Error::Closed`] when the log closes first.
    pub async fn wait_for(&self, offset: u64) -> Result<(), Error> {
        let mut next = self.shared.next_offset.subscribe();
        let shared = &self.shared;
        next.wait_for(|next| *next > offset || shared.closed.load(Ordering::Acquire))
            .await
            .map_err(|_| Error::Closed)?;
        if *next.borrow() > offset {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    /// The first offset the log still holds. A log in memory holds nothing below its
    /// release floor ([`Log::release_before`]): the chunks there are dropped as the floor
    /// passes them.
    pub fn first_offset(&self) -> u64 {
        let first = self.shared.first_offset.load(Ordering::Acquire);
        if self.shared.fsync.is_some() {
            return first;
        }
        let floor = self.shared.release_floor.load(Ordering::Acquire).min(self.next_offset());
        first.max(floor)
    }

    /// The offset the next appended record will get, i.e. one past the last committed one.
    pub fn next_offset(&self) -> u64 {
        *self.shared.next_offset.borrow()
    }

    /// The offset of the first record stamped at or after `timestamp_ms`, or
    /// [`Log::next_offset`] if there is none yet.
    ///
    /// # Errors
    /// As [`Log::read`].
    pub fn offset_at_timestamp(&self, timestamp_ms: i64) -> Result<u64, Error> {
        let segments: Vec<Arc<Segment>> =
            self.shared.segments.read().expect("segments lock poisoned").clone();
        for segment in &segments {
            // Looked up under the state lock: no copy of the segment's index per seek.
            let start = segment.with_state(|state| {
                if state.last_timestamp_ms.is_none_or(|last| last < timestamp_ms) {
                    return None;
                }
                let position =
                    state.index.before_timestamp(timestamp_ms).map_or(0, |e| u64::from(e.position));
                Some((position, state.committed_bytes))
            });
            let Some((mut position, committed)) = start else { continue };
            while position < committed {
                let Some(batch) = segment.batch_at(position)? else { break };
                position += batch.header().total_bytes();
                if batch.header().last_timestamp_ms < timestamp_ms {
                    continue;
                }
                let records = reader::records_of(std::slice::from_ref(&batch), 0)?;
                if let Some(record) = records.iter().find(|r| r.timestamp_ms >= timestamp_ms) {
                    return Ok(record.offset);
                }
            }
        }
        Ok(self.next_offset())
    }

    /// The base offset of the last committed batch (RabbitMQ's `last` for streams), or
    /// [`Log::next_offset`] for an empty log.
    pub fn last_batch_offset(&self) -> u64 {
        let segments: Vec<Arc<Segment>> =
            self.shared.segments.read().expect("segments lock poisoned").clone();
        for segment in segments.iter().rev() {
            let (committed, start) = segment.with_state(|s| {
                (s.committed_bytes, s.index.entries().last().map_or(0, |e| u64::from(e.position)))
            });
            let (mut position, mut last) = (start, None);
            while position < committed {
                match segment.batch_at(position) {
                    Ok(Some(batch)) => {
                        last = Some(batch.header().base_offset);
                        position += batch.header().total_bytes();
                    }
                    _ => break,
                }
            }
            if let Some(last) = last {
                return last;
            }
        }
        self.next_offset()
    }

    /// About how many stored bytes lie at and after `offset` (exact to a sparse index
    /// interval). Bytes a memory log dropped below its release floor are not counted.
    pub fn bytes_after(&self, offset: u64) -> u64 {
        let segments = self.shared.segments.read().expect("segments lock poisoned");
        let mut total = 0;
        for segment in segments.iter() {
            let (committed, next) = segment.extent();
            if next <= offset {
                continue;
            }
            let from = segment.indexed_position(offset);
            total += committed.saturating_sub(from.max(segment.held_from()));
        }
        total
    }

    /// Declares that no reader needs records below `offset` any more: sealed segments whose
    /// records all lie below it are deleted at the next retention pass (on roll, on the
    /// retention timer, or [`Log::enforce_retention`]), and a log in memory drops at once
    /// the chunks of its segments that lie wholly below the batch holding `offset`
    /// ([`Segment::release_below_offset`]), after which it reads as starting at `offset`
    /// ([`Log::first_offset`]). The floor never moves back.
    pub fn release_before(&self, offset: u64) {
        let previous = self.shared.release_floor.fetch_max(offset, Ordering::AcqRel);
        if offset <= previous {
            return;
        }
        let oldest_released = {
            let segments = self.shared.segments.read().expect("segments lock poisoned");
            if self.shared.fsync.is_none() {
                release_memory_below(&segments, offset);
            }
            segments.len() > 1 && segments.first().is_some_and(|s| s.extent().1 <= offset)
        };
        if oldest_released {
            // Free the space now rather than at the next retention tick; if the writer's
            // queue is full, the tick will do it.
            let (done, _) = oneshot::channel();
            let _ = self.commands.try_send(writer::Command::Retention(done));
        }
    }

    /// Bytes held in all segments (for a log in memory, not those dropped below its release
    /// floor).
    pub fn size_bytes(&self) -> u64 {
        let segments = self.shared.segments.read().expect("segments lock poisoned");
        segments.iter().map(|s| s.held_bytes()).sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.shared.segments.read().expect("segments lock poisoned").len()
    }

    /// The log's fsync policy; `None` for a log in memory.
    pub fn fsync(&self) -> Option<FsyncPolicy> {
        self.shared.fsync
    }

    /// The named consumers' offsets of this log.
    pub fn offsets(&self) -> &OffsetStore {
        &self.shared.offsets
    }

    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), Error>>) -> writer::Command,
    ) -> Result<(), Error> {
        let (done, answer) = oneshot::channel();
        self.commands.send(make(done)).await.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Seals the active segment now, if it holds anything.
    ///
    /// # Errors
    /// I/O errors while sealing.
    pub async fn roll(&self) -> Result<(), Error> {
        self.ask(writer::Command::Roll).await
    }

    /// Applies retention now (it also runs on a timer and on every roll).
    ///
    /// # Errors
    /// I/O errors while deleting.
    pub async fn enforce_retention(&self) -> Result<(), Error> {
        self.ask(writer::Command::Retention).await
    }

    /// Replaces the log's retention limits and applies them at once (a stream's policy
    /// changed).
    ///
    /// # Errors
    /// [`Error::Config`] for a zero check interval; I/O errors while deleting.
    pub async fn set_retention(&self, limits: writer::Retention) -> Result<(), Error> {
        self.ask(|done| writer::Command::SetRetention(limits, done)).await
    }

    /// Makes everything written so far durable.
    ///
    /// # Errors
    /// I/O errors while syncing.
    pub async fn sync(&self) -> Result<(), Error> {
        self.ask(writer::Command::Sync).await
    }

    /// Syncs and stops the writer. Appends after this fail with [`Error::Closed`]; reads of
    /// committed records keep working.
    ///
    /// # Errors
    /// I/O errors of the final sync.
    pub async fn close(&self) -> Result<(), Error> {
        match self.ask(writer::Command::Close).await {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }

    /// Stops the writer and lets go of every segment: the log's memory (and maps) are freed
    /// as soon as running reads finish, however many handles on the log remain. For a log
    /// that is being deleted; afterwards it reads as empty and takes no appends.
    pub async fn discard(&self) {
        let _ = self.close().await;
        drop(std::mem::take(&mut *self.shared.segments.write().expect("segments lock poisoned")));
    }
}

/// Drops the in-memory chunks below `offset` of the segment holding it and of the segments
/// before it, newest first, stopping at a segment already emptied by an earlier release (the
/// ones before it were emptied then too): a release costs the segments it frees, not the
/// log's length.
fn release_memory_below(segments: &[Arc<Segment>], offset: u64) {
    let holding = segments.partition_point(|s| s.base_offset <= offset);
    for (index, segment) in segments.iter().enumerate().take(holding).rev() {
        let sealed_and_empty = index + 1 < holding && segment.held_bytes() == 0;
        if sealed_and_empty {
            break;
        }
        segment.release_below_offset(offset);
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Makes a directory's entries (new, renamed and removed files) durable.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::io("syncing directory", dir, source))
}
