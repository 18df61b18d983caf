//! One segment: a run of batches starting at a base offset, stored in one data file (or in
//! RAM), with its sparse index. The writer owns the right to append; readers share the
//! segment through an `Arc` and see only what the writer has committed.
//!
//! File names are the base offset in 20 decimal digits: `00000000000000001234.seg` holds the
//! data, `00000000000000001234.idx` the index of a sealed segment.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::batch::{Batch, BatchError};
use super::index::SparseIndex;
use super::maps::MapBudget;
use super::reader;
use super::storage::memory::MemorySegment;
use super::Error;

/// The extension of segment data files.
pub const DATA_EXTENSION: &str = "seg";
/// The extension of segment index files.
pub const INDEX_EXTENSION: &str = "idx";

/// The file name stem of the segment starting at `base_offset`.
pub fn file_stem(base_offset: u64) -> String {
    format!("{base_offset:020}")
}

/// The path of a segment's data or index file.
pub fn path_of(dir: &Path, base_offset: u64, extension: &str) -> PathBuf {
    dir.join(format!("{}.{extension}", file_stem(base_offset)))
}

/// Where a segment's bytes live.
#[derive(Debug)]
pub enum SegmentData {
    /// In RAM (`--storage memory`).
    Memory(MemorySegment),
    /// In a file, read through a memory map made on first read.
    Disk(DiskData),
}

/// A segment stored in a file. No descriptor is kept open for reading: the file is opened
/// to be mapped and closed again, so a log of thousands of segments holds at most the active
/// segment's descriptor (the writer's), and that one only while the broker's bound on open
/// segment files keeps it open (`storage::files`).
#[derive(Debug)]
pub struct DiskData {
    /// The data file's path.
    pub path: PathBuf,
    /// The newest map of the file while some reader holds bytes of it.
    pub map: RwLock<std::sync::Weak<reader::SegmentMap>>,
    /// The broker's bound on live maps, which this file's maps count in.
    pub maps: Arc<MapBudget>,
    /// Whether its batches carry a crc to check ([`super::LogOptions::checksums`]).
    pub checked: bool,
}

impl DiskData {
    /// The file at `path`, mapped under `maps` when read, its batches checked or not.
    pub fn new(path: PathBuf, maps: Arc<MapBudget>, checked: bool) -> DiskData {
        DiskData { path, map: RwLock::default(), maps, checked }
    }
}

/// What readers may see of a segment. Updated by the writer when bytes are committed.
#[derive(Debug, Clone)]
pub struct SegmentState {
    /// Bytes readers may read: never past what is written (and, with `fsync always`, synced).
    pub committed_bytes: u64,
    /// Offset one past the last committed record.
    pub next_offset: u64,
    /// Timestamp of the last committed record, if any.
    pub last_timestamp_ms: Option<i64>,
    /// Timestamp of the first committed record, if any.
    pub first_timestamp_ms: Option<i64>,
    /// The index of the committed batches.
    pub index: SparseIndex,
}

/// One segment, shared by the writer and the readers.
#[derive(Debug)]
pub struct Segment {
    /// Offset of the first record this segment holds or will hold.
    pub base_offset: u64,
    /// Where the bytes are.
    pub data: SegmentData,
    state: RwLock<SegmentState>,
}

impl Segment {
    /// A segment with the given data and committed state.
    pub fn new(base_offset: u64, data: SegmentData, state: SegmentState) -> Segment {
        assert!(state.next_offset >= base_offset);
        Segment { base_offset, data, state: RwLock::new(state) }
    }

    /// A copy of what readers may see now.
    pub fn state(&self) -> SegmentState {
        self.state.read().expect("segment state lock poisoned").clone()
    }

    /// Committed bytes and next offset, without copying the index.
    pub fn extent(&self) -> (u64, u64) {
        let state = self.state.read().expect("segment state lock poisoned");
        (state.committed_bytes, state.next_offset)
    }

    /// Runs `f` on the committed state under the lock (for index lookups without a copy).
    pub fn with_state<T>(&self, f: impl FnOnce(&SegmentState) -> T) -> T {
        f(&self.state.read().expect("segment state lock poisoned"))
    }

    /// Makes more bytes visible to readers.
    ///
    /// # Panics
    /// If the committed end or the next offset would go backwards.
    pub fn commit(&self, update: impl FnOnce(&mut SegmentState)) {
        let mut state = self.state.write().expect("segment state lock poisoned");
        let (bytes, next) = (state.committed_bytes, state.next_offset);
        update(&mut state);
        assert!(state.committed_bytes >= bytes && state.next_offset >= next);
    }

    /// The committed bytes from `position` on, as far as the storage hands them out in one
    /// piece (for memory segments, to the end of the chunk holding `position`), and whether
    /// they may be kept (false: they hold a map made over the bound on maps).
    fn bytes_from(&self, position: u64) -> Result<Option<(Bytes, bool)>, Error> {
        let (committed, _) = self.extent();
        if position >= committed {
            return Ok(None);
        }
        match &self.data {
            SegmentData::Memory(memory) => Ok(memory.bytes_from(position, committed).map(|b| (b, true))),
            SegmentData::Disk(disk) => {
                let mapped = reader::map_of(disk, committed)?;
                Ok(Some((mapped.bytes.slice(position as usize..committed as usize), mapped.shared)))
            }
        }
    }

    /// The batch starting at `position`, checked for a sane header but not yet verified.
    /// Its bytes borrow the segment's map, or are a copy when the bound on maps is reached.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the bytes there are not a whole batch; [`Error::Io`] when the
    /// segment file cannot be mapped.
    pub fn batch_at(&self, position: u64) -> Result<Option<Batch>, Error> {
        let Some((bytes, shared)) = self.bytes_from(position)? else { return Ok(None) };
        let mut batch = Batch::split_from(&bytes).map_err(|source| self.corrupt(position, source))?;
        if !shared {
            let copy = Bytes::copy_from_slice(batch.as_bytes());
            batch = Batch::split_from(&copy).map_err(|source| self.corrupt(position, source))?;
        }
        Ok(Some(match &self.data {
            SegmentData::Disk(disk) if disk.checked => batch,
            SegmentData::Memory(_) | SegmentData::Disk(_) => batch.in_memory(),
        }))
    }

    /// Where a read of `offset` starts: the position of the sparse index's entry at or below
    /// it (0 when there is none, or when `offset` is not past the segment's base).
    pub fn indexed_position(&self, offset: u64) -> u64 {
        if offset <= self.base_offset {
            return 0;
        }
        let relative = u32::try_from(offset - self.base_offset).unwrap_or(u32::MAX);
        self.with_state(|s| s.index.at_or_below_offset(relative).map_or(0, |e| u64::from(e.position)))
    }

    /// Position of the first byte the segment still holds: bytes below it were dropped
    /// ([`Segment::release_below_offset`]; memory segments only, 0 for disc segments). Always
    /// the start of a batch.
    pub fn held_from(&self) -> u64 {
        match &self.data {
            SegmentData::Memory(memory) => memory.start(),
            SegmentData::Disk(_) => 0,
        }
    }

    /// For a memory segment: drops the chunks that lie wholly below the batch holding
    /// `offset` (every chunk when all committed records are below it), so that a queue's
    /// consumed messages leave RAM as its floor passes them, not when the whole segment is
    /// deleted. Reads at `offset` or after are unaffected: they start from an index entry
    /// at or after the dropped bytes ([`Segment::held_from`] clamps them). Returns the bytes
    /// dropped; nothing for disc segments (their pages are the page cache's).
    pub fn release_below_offset(&self, offset: u64) -> u64 {
        let SegmentData::Memory(memory) = &self.data else { return 0 };
        let (committed, _) = self.extent();
        // From the index entry, step over the batches that end below `offset` (a few KiB
        // at most: the index interval): only their headers are looked at.
        let mut position = self.indexed_position(offset).max(memory.start());
        while position < committed {
            match self.batch_at(position) {
                Ok(Some(batch)) if batch.header().next_offset() <= offset => {
                    position += batch.header().total_bytes();
                }
                _ => break,
            }
        }
        memory.release_below(position.min(committed))
    }

    /// Bytes held: committed bytes less those dropped from the front.
    pub fn held_bytes(&self) -> u64 {
        self.extent().0.saturating_sub(self.held_from())
    }

    /// Hands back the pages of the segment's current map from `from` to `to`
    /// ([`reader::SegmentMap::forget`]); nothing for memory segments.
    pub fn forget_pages(&self, from: u64, to: u64) {
        if let SegmentData::Disk(disk) = &self.data {
            let map = disk.map.read().expect("map lock poisoned").upgrade();
            if let Some(map) = map {
                map.forget(from, to);
            }
        }
    }

    /// An error naming this segment and a position in it.
    pub fn corrupt(&self, position: u64, source: BatchError) -> Error {
        Error::Corrupt { segment_base_offset: self.base_offset, position, source }
    }

    /// The data file's path, for disc segments.
    pub fn path(&self) -> Option<&Path> {
        match &self.data {
            SegmentData::Memory(_) => None,
            SegmentData::Disk(disk) => Some(&disk.path),
        }
    }
}
