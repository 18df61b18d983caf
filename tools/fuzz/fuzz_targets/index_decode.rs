//! Feeds arbitrary bytes to the sparse index decoder and checks its lookups.
//!
//! Input: interval bytes (u32), segment bytes (u64), a probe offset (u32) and a probe
//! timestamp (i64), all little-endian, then the index file's bytes. The decoder must
//! accept exactly the files `docs/log-format.md` calls valid; an accepted file must
//! re-encode to the same bytes, rebuild the same through `observe`, and answer lookups as
//! a linear scan does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren::log::index::{IndexEntry, SparseIndex, INDEX_ENTRY_BYTES};

fuzz_target!(|data: &[u8]| {
    let Some((params, file)) = data.split_at_checked(24) else { return };
    let interval_bytes = u32::from_le_bytes(params[0..4].try_into().unwrap());
    let segment_bytes = u64::from_le_bytes(params[4..12].try_into().unwrap());
    let probe_offset = u32::from_le_bytes(params[12..16].try_into().unwrap());
    let probe_timestamp_ms = i64::from_le_bytes(params[16..24].try_into().unwrap());

    let decoded = SparseIndex::decode(file, interval_bytes, segment_bytes);
    assert_eq!(decoded.is_some(), valid(file, segment_bytes));
    let Some(index) = decoded else { return };
    assert_eq!(index.encode(), file);

    let mut rebuilt = SparseIndex::new(0);
    for entry in index.entries() {
        rebuilt.observe(*entry, 1);
    }
    assert_eq!(rebuilt.entries(), index.entries());

    for offset in [probe_offset, 0, u32::MAX] {
        let expected = index.entries().iter().rev().find(|e| e.relative_offset <= offset);
        let found = index.at_or_below_offset(offset);
        assert_eq!(found.as_ref(), expected.or(index.entries().first()));
    }
    for timestamp_ms in [probe_timestamp_ms, i64::MIN, i64::MAX] {
        let expected = index.entries().iter().rev().find(|e| e.timestamp_ms < timestamp_ms);
        let found = index.before_timestamp(timestamp_ms);
        assert_eq!(found.as_ref(), expected.or(index.entries().first()));
    }
});

/// The format's rule, written independently of the decoder: whole entries, at least one,
/// the first at offset 0 and position 0, then strictly increasing offsets and positions,
/// non-decreasing timestamps, every position inside the segment.
fn valid(file: &[u8], segment_bytes: u64) -> bool {
    if file.is_empty() || file.len() % INDEX_ENTRY_BYTES != 0 {
        return false;
    }
    let entries: Vec<IndexEntry> = file
        .chunks_exact(INDEX_ENTRY_BYTES)
        .map(|c| IndexEntry {
            relative_offset: u32::from_le_bytes(c[0..4].try_into().unwrap()),
            position: u32::from_le_bytes(c[4..8].try_into().unwrap()),
            timestamp_ms: i64::from_le_bytes(c[8..16].try_into().unwrap()),
        })
        .collect();
    entries[0].relative_offset == 0
        && entries[0].position == 0
        && entries.iter().all(|e| u64::from(e.position) < segment_bytes)
        && entries.windows(2).all(|w| {
            w[1].relative_offset > w[0].relative_offset
                && w[1].position > w[0].position
                && w[1].timestamp_ms >= w[0].timestamp_ms
        })
}
