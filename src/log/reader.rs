//! Reads: batches handed out as `Bytes` that borrow the segment's memory map or in-memory
//! chunk, never past a segment's committed end. This file holds the log's only `unsafe`.

use std::sync::{Arc, Weak};

use bytes::Bytes;

use super::batch::{Batch, Record};
use super::maps::MapLease;
use super::segment::{DiskData, Segment};
use super::Error;
use crate::limits::MAP_RESIDENT_STEP_BYTES;

/// One memory map of a segment file, counted in the broker's [`MapBudget`] while it lives.
///
/// [`MapBudget`]: super::maps::MapBudget
#[derive(Debug)]
pub struct SegmentMap {
    map: memmap2::Mmap,
    lease: MapLease,
}

impl SegmentMap {
    /// Hands back this process's pages of the map from `from` to `to`, both multiples of
    /// [`MAP_RESIDENT_STEP_BYTES`] (see [`super::Log::forget_behind`]). The file's pages stay
    /// in the page cache, and bytes still held from there read back the same from it.
    pub fn forget(&self, from: u64, to: u64) {
        let to = to.min(self.map.len() as u64);
        if to <= from || from % MAP_RESIDENT_STEP_BYTES != 0 {
            return;
        }
        let (offset, len) = (from as usize, (to - from) as usize);
        // SAFETY: the map is a read-only shared map of a file whose bytes below the
        // segment's committed end (which the map never passes) are never rewritten or cut
        // (see `map_of`). MADV_DONTNEED on such a map only drops this process's page-table
        // entries: a later access, through any `Bytes` still borrowing the range, faults the
        // same bytes back from the page cache, so no borrowed memory changes. The range lies
        // inside the map and starts on a multiple of the step, hence on a page boundary.
        let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
    }
}

/// Owns one memory map on behalf of the `Bytes` handed out from it.
struct MapOwner(Arc<SegmentMap>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

/// Bytes of a segment's map, and whether the map may be kept: `false` when it was made over
/// the bound on maps, so that the caller copies out what it needs and lets the map go.
pub struct Mapped {
    /// The committed bytes of the segment.
    pub bytes: Bytes,
    /// Whether `bytes` may be kept without holding a map over the bound.
    pub shared: bool,
}

/// A map of `disk`'s file covering at least `committed` bytes, made or grown on demand.
/// The segment keeps only a weak reference: a map lives exactly as long as some `Bytes`
/// taken from it, so pages of segments nobody reads are not kept mapped (nor counted in
/// the broker's resident memory).
///
/// At the bound on maps ([`super::maps`]) the map is made all the same but not kept in the
/// segment, and [`Mapped::shared`] is false.
///
/// # Errors
/// [`Error::Io`] when the file cannot be mapped.
pub fn map_of(disk: &DiskData, committed: u64) -> Result<Mapped, Error> {
    let current = |slot: &Weak<SegmentMap>| slot.upgrade().filter(|map| map.map.len() as u64 >= committed);
    let shared = |map| Mapped { bytes: Bytes::from_owner(MapOwner(map)), shared: true };
    if let Some(map) = current(&disk.map.read().expect("map lock poisoned")) {
        return Ok(shared(map));
    }
    let mut slot = disk.map.write().expect("map lock poisoned");
    if let Some(map) = current(&slot) {
        return Ok(shared(map));
    }
    let lease = disk.maps.lease();
    let length = usize::try_from(committed).expect("segment lengths fit in usize");
    let file =
        std::fs::File::open(&disk.path).map_err(|source| Error::io("opening segment", &disk.path, source))?;
    // SAFETY: the map covers `committed` bytes, which the writer has already written to the
    // file, so every mapped page lies inside the file. Bytes below a segment's committed end
    // are never rewritten: the writer only appends past it, recovery truncates a tail before
    // the segment is shared with any reader, and retention unlinks whole files, which leaves
    // the inode (and so the map) intact. Nothing else may write to the data directory.
    let map = unsafe { memmap2::MmapOptions::new().len(length).map(&file) }
        .map_err(|source| Error::io("mapping segment", &disk.path, source))?;
    let _ = map.advise(memmap2::Advice::Sequential);
    let map = Arc::new(SegmentMap { map, lease });
    if !map.lease.shared {
        return Ok(Mapped { bytes: Bytes::from_owner(MapOwner(map)), shared: false });
    }
    *slot = Arc::downgrade(&map);
    Ok(shared(map))
}

/// The batches holding `offset` and after, across segments, up to about `max_bytes` (at
/// least one batch when there is one). Batches are not yet crc-checked: [`Batch::records`]
/// does that, so a caller never decodes corrupt bytes.
///
/// # Errors
/// [`Error::Corrupt`] when a batch header inside the committed range is damaged, or when
/// offsets are missing between two segments.
pub fn read_batches(segments: &[Arc<Segment>], offset: u64, max_bytes: usize) -> Result<Vec<Batch>, Error> {
    let mut out = Vec::new();
    let mut bytes_read = 0usize;
    let mut want = offset;
    let start = segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1);
    for segment in segments.iter().skip(start) {
        if segment.base_offset > want {
            if out.is_empty() {
                return Err(Error::Missing { offset: want, next_available: segment.base_offset });
            }
            break;
        }
        let (committed, next_offset) = segment.extent();
        if want >= next_offset {
            continue;
        }
        // A memory segment may have dropped the bytes where the index entry points (below the
        // release floor): the first batch still held is where a read at or above it starts.
        let mut position = segment.indexed_position(want).max(segment.held_from());
        while position < committed {
            let Some(batch) = segment.batch_at(position)? else {
                // Dropped under this read (the floor passed it meanwhile): go on from what
                // is still held; a batch there that starts past `want` is reported missing.
                let held_from = segment.held_from();
                if held_from > position {
                    position = held_from;
                    continue;
                }
                break;
            };
            let header = *batch.header();
            position += header.total_bytes();
            if header.next_offset() <= want {
                continue;
            }
            if header.base_offset > want && out.is_empty() {
                return Err(Error::Missing { offset: want, next_available: header.base_offset });
            }
            want = header.next_offset();
            bytes_read += batch.as_bytes().len();
            out.push(batch);
            if bytes_read >= max_bytes {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Decodes (and verifies) `batches` into records, dropping those before `from_offset`.
///
/// # Errors
/// [`Error::Corrupt`] for a batch whose crc or layout is wrong.
pub fn records_of(batches: &[Batch], from_offset: u64) -> Result<Vec<Record>, Error> {
    let mut out = Vec::new();
    for batch in batches {
        let records = batch
            .records()
            .map_err(|source| Error::CorruptBatch { base_offset: batch.header().base_offset, source })?;
        out.extend(records.into_iter().filter(|r| r.offset >= from_offset));
    }
    Ok(out)
}
