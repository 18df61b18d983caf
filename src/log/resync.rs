//! Where intact data resumes after a damaged batch in a segment: the batch right after
//! it when the damaged batch's length still leads to one that verifies, else the next
//! indexed batch past the damage that verifies, else the next segment. Used only after a
//! read failed, so it may verify every batch it steps over; the intact read path never
//! comes here.

use std::sync::Arc;

use super::batch::BatchHeader;
use super::segment::Segment;

/// The base offset of the first intact batch past the damage met when reading at
/// `offset` (at least `offset + 1`, at most the next segment's base offset or `log_end`).
pub fn next_intact_offset(segments: &[Arc<Segment>], offset: u64, log_end: u64) -> u64 {
    let found = segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1);
    let Some(segment) = segments.get(found) else { return log_end.max(offset + 1) };
    let next_segment = segments.get(found + 1).map_or(log_end, |s| s.base_offset).max(offset + 1);
    let (committed, _) = segment.extent();
    // A copy of the index: this is the cold path, and the lock must not be held while the
    // batches are verified.
    let entries = segment.with_state(|s| s.index.entries().to_vec());
    let start = segment.indexed_position(offset);
    let mut position = start;
    let damaged = loop {
        if position >= committed {
            return next_segment;
        }
        // Earlier batches are stepped over by their lengths, as the reader does (an earlier
        // damaged batch whose length still parses is not the one met at `offset`).
        let Some(header) = segment.batch_at(position).ok().flatten().map(|b| *b.header()) else {
            break position;
        };
        if header.next_offset() <= offset {
            position += header.total_bytes();
            continue;
        }
        if intact(segment, position).is_some() {
            // The batch holding `offset` is intact: step one offset, as a reader would.
            return offset + 1;
        }
        break position;
    };
    let after_damaged = segment.batch_at(damaged).ok().flatten().map(|b| damaged + b.header().total_bytes());
    let candidates = after_damaged
        .into_iter()
        .chain(entries.iter().map(|e| u64::from(e.position)).filter(|&p| p > damaged));
    for candidate in candidates {
        if candidate >= committed {
            continue;
        }
        if let Some(header) = intact(segment, candidate) {
            if header.base_offset > offset && header.base_offset <= next_segment {
                return header.base_offset;
            }
        }
    }
    next_segment
}

/// The header of the batch at `position` if it parses and its crc holds.
fn intact(segment: &Segment, position: u64) -> Option<BatchHeader> {
    let batch = segment.batch_at(position).ok()??;
    batch.verify().ok()?;
    Some(*batch.header())
}
