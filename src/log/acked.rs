//! Acknowledged ranges: the offsets above a reader's floor that it is done with, kept beside
//! the log's offset store so that a restart does not hand them out again.
//!
//! The log core gives them no meaning: a reader (a classic queue) states "every offset in
//! these ranges is settled", and this module stores and loads that statement. On disc it is
//! one file, `acked`, replaced atomically like the offsets file (write `acked.tmp`, sync it
//! unless the log's policy is `never`, rename it over `acked`, sync the directory). Layout
//! (little-endian): magic `WRNA`, version u16, floor u64, range count u32, then per range
//! start u64 and end u64 (end exclusive), last a crc32 of everything before it. Ranges are
//! sorted, non-empty, do not overlap and start at or above the floor. A file that breaks any
//! of this is damaged and reads as no ranges at all: the reader then falls back to its floor
//! and redelivers more, never less.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use bytes::BufMut;

use super::offsets::{seal, unseal};
use super::Error;
use crate::limits::ACKED_RANGES_MAX;

const MAGIC: [u8; 4] = *b"WRNA";
const VERSION: u16 = 1;
/// Bytes before the first range: magic, version, floor, count.
const HEADER_BYTES: usize = 4 + 2 + 8 + 4;
/// Bytes of one range: start and end.
const RANGE_BYTES: usize = 16;
/// Bytes of the trailing crc32.
const CRC_BYTES: usize = 4;
/// File name of the acknowledged ranges inside a log's directory.
pub const ACKED_FILE: &str = "acked";

/// The content of an `acked` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckedRanges {
    /// The reader's floor when the file was written: every range starts at or above it.
    pub floor: u64,
    /// Settled offsets, sorted, disjoint and non-empty.
    pub ranges: Vec<Range<u64>>,
}

/// Encodes `ranges` above `floor`.
///
/// # Panics
/// When the ranges are not sorted, disjoint, non-empty and at or above `floor`, or more than
/// [`ACKED_RANGES_MAX`]: the caller's bug.
pub fn encode(floor: u64, ranges: &[Range<u64>]) -> Vec<u8> {
    assert!(ranges.len() <= ACKED_RANGES_MAX, "{} ranges over the bound", ranges.len());
    assert!(well_formed(floor, ranges), "acked ranges out of order: {ranges:?} above {floor}");
    let mut out = Vec::with_capacity(HEADER_BYTES + ranges.len() * RANGE_BYTES + CRC_BYTES);
    out.put_slice(&MAGIC);
    out.put_u16_le(VERSION);
    out.put_u64_le(floor);
    out.put_u32_le(ranges.len() as u32);
    for range in ranges {
        out.put_u64_le(range.start);
        out.put_u64_le(range.end);
    }
    seal(&mut out);
    out
}

/// Decodes an `acked` file; `None` when it is damaged in any way.
pub fn decode(bytes: &[u8]) -> Option<AckedRanges> {
    let body = unseal(bytes)?;
    let mut rest = body.strip_prefix(&MAGIC)?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    if u16::from_le_bytes(take(2)?.try_into().ok()?) != VERSION {
        return None;
    }
    let floor = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let count = usize::try_from(u32::from_le_bytes(take(4)?.try_into().ok()?)).ok()?;
    if count > ACKED_RANGES_MAX || body.len() != HEADER_BYTES + count * RANGE_BYTES {
        return None;
    }
    let mut ranges = Vec::with_capacity(count);
    for _ in 0..count {
        let start = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let end = u64::from_le_bytes(take(8)?.try_into().ok()?);
        ranges.push(start..end);
    }
    well_formed(floor, &ranges).then_some(AckedRanges { floor, ranges })
}

/// Whether `ranges` are sorted, disjoint, non-empty and at or above `floor`.
pub fn well_formed(floor: u64, ranges: &[Range<u64>]) -> bool {
    let mut previous_end = floor;
    ranges.iter().all(|range| {
        let ok = range.start >= previous_end && range.start < range.end;
        previous_end = range.end;
        ok
    })
}

/// Reads the `acked` file in `dir`: no file or a damaged one gives no ranges (a damaged one
/// is reported).
///
/// # Errors
/// When the file exists but cannot be read.
pub fn load(dir: &Path) -> Result<AckedRanges, Error> {
    let path = dir.join(ACKED_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(decode(&bytes).unwrap_or_else(|| {
            tracing::warn!(path = %path.display(), "acknowledged ranges are damaged; redelivering from the floor");
            AckedRanges::default()
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AckedRanges::default()),
        Err(source) => Err(Error::io("reading acknowledged ranges", &path, source)),
    }
}

/// Replaces the `acked` file in `dir` with `ranges` above `floor`, syncing the file and the
/// directory when `sync`.
///
/// # Errors
/// [`Error::Io`] naming the step that failed; the old file is then left as it was.
pub fn store(dir: &Path, floor: u64, ranges: &[Range<u64>], sync: bool) -> Result<(), Error> {
    let path = dir.join(ACKED_FILE);
    let temporary = path.with_extension("tmp");
    let bytes = encode(floor, ranges);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        if sync {
            file.sync_data()?;
        }
        std::fs::rename(&temporary, &path)?;
        if sync {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    super::offsets::off_worker(write)
        .map_err(|source| Error::io("writing acknowledged ranges", &path, source))
}

#[cfg(test)]
// A one-range list of ranges is meant: the sets here are lists of ranges.
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), AckedRanges::default());
        let ranges = vec![3..5, 7..100, 100..101];
        store(dir.path(), 2, &ranges, true).unwrap();
        assert_eq!(load(dir.path()).unwrap(), AckedRanges { floor: 2, ranges: ranges.clone() });
        store(dir.path(), 9, &[], false).unwrap();
        assert_eq!(load(dir.path()).unwrap(), AckedRanges { floor: 9, ranges: Vec::new() });
    }

    #[test]
    fn any_damage_reads_as_no_ranges() {
        let bytes = encode(1, &[1..4, 6..8]);
        assert!(decode(&bytes).is_some());
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert_eq!(decode(&flipped), None, "a flipped bit at byte {at}");
        }
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at byte {cut}");
        }
    }

    #[test]
    fn ill_formed_ranges_are_refused_even_with_a_good_crc() {
        let forge = |floor: u64, ranges: &[Range<u64>]| {
            let mut out = Vec::new();
            out.put_slice(&MAGIC);
            out.put_u16_le(VERSION);
            out.put_u64_le(floor);
            out.put_u32_le(ranges.len() as u32);
            for range in ranges {
                out.put_u64_le(range.start);
                out.put_u64_le(range.end);
            }
            super::seal(&mut out);
            out
        };
        assert!(decode(&forge(0, &[0..2, 2..3])).is_some());
        assert_eq!(decode(&forge(5, &[4..6])), None, "below the floor");
        assert_eq!(decode(&forge(0, &[3..3])), None, "empty");
        assert_eq!(decode(&forge(0, &[5..9, 1..2])), None, "out of order");
        assert_eq!(decode(&forge(0, &[1..6, 5..9])), None, "overlapping");
    }
}
