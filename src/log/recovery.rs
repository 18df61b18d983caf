//! Opening a disc log: find the segments, check the tail batch by batch (crc and layout)
//! and truncate a torn or corrupt end to the last valid batch, load or rebuild each sealed
//! segment's index, and check that offsets run on from one segment to the next.
//!
//! Files are read through a bounded window ([`RECOVERY_WINDOW_BYTES`]): a recovery holds
//! the window or one batch larger than it, never a whole segment.
//!
//! Recovery runs before the log is shared with any reader, so truncating here never pulls
//! bytes from under a memory map.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{Batch, BatchError, BatchHeader, BATCH_HEADER_BYTES};
use super::index::{IndexEntry, SparseIndex};
use super::maps::MapBudget;
use super::segment::{self, DiskData, Segment, SegmentData, SegmentState};
use super::writer::{new_segment, Active};
use super::{Error, LogOptions, Storage};
use crate::limits::RECOVERY_WINDOW_BYTES;

/// A log's segments as found, the last one ready to be written.
pub struct Recovered {
    /// Every segment, in offset order; the last is the active one.
    pub segments: Vec<Arc<Segment>>,
    /// The active segment.
    pub active: Active,
    /// The latest timestamp stored, so that new ones never go backwards.
    pub last_timestamp_ms: i64,
}

impl Recovered {
    /// A log with one empty segment at offset 0.
    pub fn empty(options: &LogOptions) -> Result<Recovered, Error> {
        let active = new_segment(options, 0)?;
        Ok(Recovered { segments: vec![Arc::clone(&active.segment)], active, last_timestamp_ms: i64::MIN })
    }
}

/// What a scan over a segment's bytes found.
#[cfg_attr(test, derive(Debug, PartialEq, Eq))]
struct Scan {
    end_position: u64,
    next_offset: u64,
    first_timestamp_ms: Option<i64>,
    last_timestamp_ms: Option<i64>,
    damage: Option<(u64, String)>,
}

/// A segment file read through a bounded window: recovery holds at most one window (or one
/// batch larger than it) of the file in memory at a time, never the whole segment.
struct Source<'a> {
    file: &'a std::fs::File,
    path: &'a Path,
    /// The file's length when recovery started.
    length: u64,
    /// Bytes read at once; at least a batch header.
    window_bytes: u64,
    /// The bytes last read and where in the file they start.
    window: Bytes,
    window_at: u64,
}

impl<'a> Source<'a> {
    fn new(file: &'a std::fs::File, path: &'a Path, length: u64, window_bytes: usize) -> Source<'a> {
        let window_bytes = (window_bytes as u64).max(BATCH_HEADER_BYTES as u64);
        Source { file, path, length, window_bytes, window: Bytes::new(), window_at: 0 }
    }

    /// The `count` bytes at `position`, which must lie inside the file: a slice of the
    /// window, which is moved to `position` when it does not hold them. A run longer than
    /// the window (one large batch) is read on its own and replaces it.
    fn bytes_at(&mut self, position: u64, count: u64) -> Result<Bytes, Error> {
        assert!(position + count <= self.length, "recovery reads inside the file");
        let window_end = self.window_at + self.window.len() as u64;
        if position < self.window_at || position + count > window_end {
            let to = if count > self.window_bytes {
                position + count
            } else {
                self.length.min(position.saturating_add(self.window_bytes))
            };
            // The old window is dropped before the next is read: one of them at a time.
            self.window = Bytes::new();
            self.window = read_range(self.file, self.path, position, to)?;
            self.window_at = position;
        }
        let from = (position - self.window_at) as usize;
        Ok(self.window.slice(from..from + count as usize))
    }
}

/// Walks the batches of `source` from `start_position` until the end of the file or the
/// first invalid batch. With `verify`, each batch's crc and records are checked; otherwise
/// only headers. Offsets must run on from `next_offset`; index entries are made relative to
/// the segment's `base`. A damaged batch is reported as it would be with the whole rest of
/// the file in hand: reading stops at the damage, and a batch claiming more bytes than the
/// file has left is incomplete without being read.
fn scan(
    source: &mut Source<'_>,
    start_position: u64,
    next_offset: u64,
    base: u64,
    verify: bool,
    index: &mut SparseIndex,
) -> Result<Scan, Error> {
    let mut out = Scan {
        end_position: start_position,
        next_offset,
        first_timestamp_ms: None,
        last_timestamp_ms: None,
        damage: None,
    };
    while out.end_position < source.length {
        let position = out.end_position;
        let rest = source.length - position;
        let head = source.bytes_at(position, rest.min(BATCH_HEADER_BYTES as u64))?;
        let batch = match BatchHeader::parse(&head) {
            Ok(header) if header.total_bytes() > rest => {
                Err(BatchError::Incomplete { need: header.total_bytes(), have: rest })
            }
            Ok(header) => Batch::split_from(&source.bytes_at(position, header.total_bytes())?),
            Err(error) => Err(error),
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                out.damage = Some((position, error.to_string()));
                break;
            }
        };
        let header = *batch.header();
        if header.base_offset != out.next_offset {
            let reason =
                format!("batch offset {} where {} was expected", header.base_offset, out.next_offset);
            out.damage = Some((position, reason));
            break;
        }
        if verify {
            if let Err(error) = batch.records() {
                out.damage = Some((position, error.to_string()));
                break;
            }
        }
        index.observe(
            IndexEntry {
                relative_offset: (header.base_offset - base) as u32,
                position: position as u32,
                timestamp_ms: header.first_timestamp_ms,
            },
            header.total_bytes(),
        );
        out.first_timestamp_ms.get_or_insert(header.first_timestamp_ms);
        out.last_timestamp_ms = Some(header.last_timestamp_ms);
        out.next_offset = header.next_offset();
        out.end_position += header.total_bytes();
    }
    Ok(out)
}

/// Recovers the log in `dir`, creating the directory and a first segment if needed.
pub fn recover(dir: &Path, options: &LogOptions) -> Result<Recovered, Error> {
    recover_windowed(dir, options, RECOVERY_WINDOW_BYTES)
}

/// [`recover`], reading segment files `window_bytes` at a time.
fn recover_windowed(dir: &Path, options: &LogOptions, window_bytes: usize) -> Result<Recovered, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::io("creating log directory", dir, source))?;
    let mut bases = Vec::new();
    let listing = std::fs::read_dir(dir).map_err(|source| Error::io("listing log directory", dir, source))?;
    for entry in listing {
        let entry = entry.map_err(|source| Error::io("listing log directory", dir, source))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else { continue };
        if stem.len() == 20 {
            if let Ok(base) = stem.parse::<u64>() {
                bases.push(base);
            }
        }
    }
    bases.sort_unstable();
    let Some((&tail_base, sealed_bases)) = bases.split_last() else {
        return Recovered::empty(options);
    };
    let mut segments = Vec::with_capacity(bases.len());
    let mut expected: Option<u64> = None;
    let mut last_timestamp_ms = i64::MIN;
    for &base in sealed_bases {
        check_continuity(expected, base)?;
        let (segment, scan) = open_sealed(dir, base, options, window_bytes)?;
        expected = Some(scan.next_offset);
        last_timestamp_ms = last_timestamp_ms.max(scan.last_timestamp_ms.unwrap_or(i64::MIN));
        segments.push(Arc::new(segment));
    }
    check_continuity(expected, tail_base)?;
    let (active, scan) = open_tail(dir, tail_base, options, window_bytes)?;
    last_timestamp_ms = last_timestamp_ms.max(scan.last_timestamp_ms.unwrap_or(i64::MIN));
    segments.push(Arc::clone(&active.segment));
    Ok(Recovered { segments, active, last_timestamp_ms })
}

fn check_continuity(expected: Option<u64>, base: u64) -> Result<(), Error> {
    match expected {
        Some(next) if base < next => Err(Error::Inconsistent {
            reason: format!("segment {base} overlaps the previous one, which ends at {next}"),
        }),
        Some(next) if base > next => {
            tracing::error!(missing_from = next, missing_to = base, "offsets are missing between segments");
            Ok(())
        }
        _ => Ok(()),
    }
}

fn read_range(file: &std::fs::File, path: &Path, from: u64, to: u64) -> Result<Bytes, Error> {
    let mut buf = vec![0u8; (to - from) as usize];
    file.read_exact_at(&mut buf, from).map_err(|source| Error::io("reading segment", path, source))?;
    Ok(Bytes::from(buf))
}

/// A sealed segment: its index is loaded (or rebuilt) and the batches after the last index
/// entry are checked, so that a cut or damaged end is found without reading the whole file.
fn open_sealed(
    dir: &Path,
    base: u64,
    options: &LogOptions,
    window_bytes: usize,
) -> Result<(Segment, Scan), Error> {
    let path = segment::path_of(dir, base, segment::DATA_EXTENSION);
    let file = std::fs::File::open(&path).map_err(|source| Error::io("opening segment", &path, source))?;
    let length = file.metadata().map_err(|source| Error::io("reading segment size", &path, source))?.len();
    let index_path = segment::path_of(dir, base, segment::INDEX_EXTENSION);
    let interval = options.index_interval_bytes;
    let loaded =
        std::fs::read(&index_path).ok().and_then(|b| SparseIndex::decode(&b, interval, length.max(1)));
    let (mut index, from, next, rebuilt) = match loaded.and_then(|ix| validated(ix, &file, &path, base)) {
        Some((ix, position, offset)) => (ix, position, offset, false),
        None => {
            tracing::warn!(segment = %path.display(), "segment index missing or damaged; rebuilding it");
            (SparseIndex::new(interval), 0, base, true)
        }
    };
    let mut scratch = SparseIndex::new(u32::MAX);
    let target = if rebuilt { &mut index } else { &mut scratch };
    let scan = scan(&mut Source::new(&file, &path, length, window_bytes), from, next, base, false, target)?;
    if let Some((position, reason)) = &scan.damage {
        tracing::error!(segment = %path.display(), position, reason, "sealed segment is damaged; records after this point are not served");
    }
    if rebuilt {
        let _ = super::offsets::write_atomically(&index_path, &index.encode());
    }
    let first_timestamp_ms = index.entries().first().map(|e| e.timestamp_ms).or(scan.first_timestamp_ms);
    let state = SegmentState {
        committed_bytes: scan.end_position,
        next_offset: scan.next_offset,
        last_timestamp_ms: scan.last_timestamp_ms,
        first_timestamp_ms,
        index,
    };
    let maps = match &options.storage {
        Storage::Disk { io, .. } => super::storage::maps_of(io),
        Storage::Memory => MapBudget::unbounded(),
    };
    let data = DiskData::new(path, maps, options.checksums);
    Ok((Segment::new(base, SegmentData::Disk(data), state), scan))
}

/// Checks that a loaded index's last entry points at a batch with the offset it claims and
/// returns the index with that batch's position and base offset, where checking resumes.
fn validated(
    index: SparseIndex,
    file: &std::fs::File,
    path: &Path,
    base: u64,
) -> Option<(SparseIndex, u64, u64)> {
    let last = *index.entries().last()?;
    let position = u64::from(last.position);
    let header_bytes = read_range(file, path, position, position + BATCH_HEADER_BYTES as u64).ok()?;
    let header = BatchHeader::parse(&header_bytes).ok()?;
    let offset = base + u64::from(last.relative_offset);
    (header.base_offset == offset).then_some((index, position, offset))
}

/// The tail segment: every batch is verified and a torn or corrupt end is cut off.
fn open_tail(
    dir: &Path,
    base: u64,
    options: &LogOptions,
    window_bytes: usize,
) -> Result<(Active, Scan), Error> {
    let Storage::Disk { io, .. } = &options.storage else {
        return Err(Error::Inconsistent { reason: "recovery of a memory log".into() });
    };
    let path = segment::path_of(dir, base, segment::DATA_EXTENSION);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| Error::io("opening segment", &path, source))?;
    let length = file.metadata().map_err(|source| Error::io("reading segment size", &path, source))?.len();
    let mut index = SparseIndex::new(options.index_interval_bytes);
    let scan = scan(&mut Source::new(&file, &path, length, window_bytes), 0, base, base, true, &mut index)?;
    if let Some((position, reason)) = &scan.damage {
        tracing::warn!(
            segment = %path.display(),
            position,
            dropped_bytes = length - position,
            reason,
            "truncating a torn or corrupt tail to its last valid batch"
        );
        file.set_len(*position).map_err(|source| Error::io("truncating segment", &path, source))?;
        file.sync_all().map_err(|source| Error::io("syncing segment", &path, source))?;
    }
    drop(file);
    let state = SegmentState {
        committed_bytes: scan.end_position,
        next_offset: scan.next_offset,
        last_timestamp_ms: scan.last_timestamp_ms,
        first_timestamp_ms: scan.first_timestamp_ms,
        index,
    };
    let durable = !matches!(options.fsync(), Some(super::FsyncPolicy::Never));
    let handle = super::storage::lazy_file(io, path.clone(), durable);
    let data = DiskData::new(path, super::storage::maps_of(io), options.checksums);
    let segment = Arc::new(Segment::new(base, SegmentData::Disk(data), state));
    let active = Active {
        segment,
        file: Some(handle),
        written_bytes: scan.end_position,
        next_offset: scan.next_offset,
        first_timestamp_ms: scan.first_timestamp_ms,
    };
    Ok((active, scan))
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
