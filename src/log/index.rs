//! The sparse index of one segment: entries mapping a batch's base offset and first
//! timestamp to its byte position, one entry every few KiB, so that a read at any offset
//! or time costs one binary search and one short forward scan.
//!
//! On disc, `<base offset>.idx` holds the entries as 16-byte little-endian records:
//! relative offset (u32), position (u32), first timestamp in ms (i64). It is written when a
//! segment is sealed; a missing or damaged file is rebuilt from the segment's data.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::BufMut;

/// Bytes of one index entry on disc.
pub const INDEX_ENTRY_BYTES: usize = 16;

/// One index entry: the batch starting at `position` has base offset
/// `segment base + relative_offset` and first timestamp `timestamp_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment.
    pub position: u32,
    /// First timestamp of the batch, ms since the Unix epoch.
    pub timestamp_ms: i64,
}

/// The entries of one segment, in increasing offset, position and timestamp order.
#[derive(Debug, Clone, Default)]
pub struct SparseIndex {
    entries: Vec<IndexEntry>,
    interval_bytes: u32,
    bytes_since_entry: u64,
}

impl SparseIndex {
    /// An empty index adding an entry whenever `interval_bytes` have been written since the
    /// last one.
    pub fn new(interval_bytes: u32) -> SparseIndex {
        SparseIndex { entries: Vec::new(), interval_bytes, bytes_since_entry: u64::MAX }
    }

    /// Records that a batch of `batch_bytes` was written at `entry`'s position, adding the
    /// entry if the interval has passed (the first batch is always indexed).
    ///
    /// # Panics
    /// If the entry does not come after the last one: the writer appends in order.
    pub fn observe(&mut self, entry: IndexEntry, batch_bytes: u64) {
        if self.bytes_since_entry >= u64::from(self.interval_bytes) {
            if let Some(last) = self.entries.last() {
                assert!(entry.relative_offset > last.relative_offset);
                assert!(entry.position > last.position);
                assert!(entry.timestamp_ms >= last.timestamp_ms);
            }
            self.entries.push(entry);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry = self.bytes_since_entry.saturating_add(batch_bytes);
    }

    /// The entries.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The last entry whose offset is at or below `relative_offset`, else the first entry.
    pub fn at_or_below_offset(&self, relative_offset: u32) -> Option<IndexEntry> {
        let after = self.entries.partition_point(|e| e.relative_offset <= relative_offset);
        self.entries.get(after.saturating_sub(1)).copied()
    }

    /// The last entry whose first timestamp is strictly below `timestamp_ms`, else the first
    /// entry: the batch holding the first record at or after that time starts at or after it.
    pub fn before_timestamp(&self, timestamp_ms: i64) -> Option<IndexEntry> {
        let after = self.entries.partition_point(|e| e.timestamp_ms < timestamp_ms);
        self.entries.get(after.saturating_sub(1)).copied()
    }

    /// The on-disc form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * INDEX_ENTRY_BYTES);
        for e in &self.entries {
            out.put_u32_le(e.relative_offset);
            out.put_u32_le(e.position);
            out.put_i64_le(e.timestamp_ms);
        }
        out
    }

    /// Reads an index file's bytes, refusing anything not strictly ordered, not starting at
    /// position 0 or pointing past `segment_bytes`.
    pub fn decode(bytes: &[u8], interval_bytes: u32, segment_bytes: u64) -> Option<SparseIndex> {
        if bytes.len() % INDEX_ENTRY_BYTES != 0 || bytes.is_empty() {
            return None;
        }
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / INDEX_ENTRY_BYTES);
        for chunk in bytes.chunks_exact(INDEX_ENTRY_BYTES) {
            let entry = IndexEntry {
                relative_offset: u32::from_le_bytes(chunk.get(0..4)?.try_into().ok()?),
                position: u32::from_le_bytes(chunk.get(4..8)?.try_into().ok()?),
                timestamp_ms: i64::from_le_bytes(chunk.get(8..16)?.try_into().ok()?),
            };
            let ordered = match entries.last() {
                None => entry.position == 0 && entry.relative_offset == 0,
                Some(last) => {
                    entry.relative_offset > last.relative_offset
                        && entry.position > last.position
                        && entry.timestamp_ms >= last.timestamp_ms
                }
            };
            if !ordered || u64::from(entry.position) >= segment_bytes {
                return None;
            }
            entries.push(entry);
        }
        Some(SparseIndex { entries, interval_bytes, bytes_since_entry: 0 })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn entry(relative_offset: u32, position: u32, timestamp_ms: i64) -> IndexEntry {
        IndexEntry { relative_offset, position, timestamp_ms }
    }

    #[test]
    fn sparse_entries_and_lookups() {
        let mut index = SparseIndex::new(100);
        for i in 0..10u32 {
            index.observe(entry(i * 5, i * 60, i64::from(i) * 10), 60);
        }
        // 60-byte batches, interval 100: every second batch is indexed.
        assert_eq!(index.entries().len(), 5);
        assert_eq!(index.at_or_below_offset(0).unwrap().position, 0);
        assert_eq!(index.at_or_below_offset(14).unwrap().relative_offset, 10);
        assert_eq!(index.at_or_below_offset(1000).unwrap().relative_offset, 40);
        assert_eq!(index.before_timestamp(0).unwrap().position, 0);
        assert_eq!(index.before_timestamp(21).unwrap().timestamp_ms, 20);
        assert_eq!(index.before_timestamp(20).unwrap().timestamp_ms, 0);
    }

    #[test]
    fn decode_refuses_damage() {
        let mut index = SparseIndex::new(1);
        index.observe(entry(0, 0, 1), 10);
        index.observe(entry(3, 10, 2), 10);
        let bytes = index.encode();
        assert_eq!(SparseIndex::decode(&bytes, 1, 20).unwrap().entries(), index.entries());
        assert!(SparseIndex::decode(&bytes, 1, 10).is_none());
        assert!(SparseIndex::decode(&bytes[..20], 1, 20).is_none());
        let mut swapped = bytes.clone();
        swapped[4] = 0xff;
        assert!(SparseIndex::decode(&swapped, 1, 1 << 20).is_none());
    }
}
