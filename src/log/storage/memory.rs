//! Segment bytes kept in RAM for `--storage memory`: each write is kept as the `Bytes` it
//! arrived in, so a reader gets a slice of it without a copy and nothing touches a file.
//!
//! Chunks that no reader needs any more (wholly below the log's release floor) are dropped
//! from the front of the segment at once ([`MemorySegment::release_below`]), not when the
//! whole segment is deleted: a queue whose consumers keep up holds in RAM only what it has
//! not yet had acknowledged, whatever the segment size. A reader still holding `Bytes` of a
//! dropped chunk keeps that chunk alive until it lets go.
//!
//! The bytes a segment holds are counted in the broker's [`MemoryBudget`], which the memory
//! alarm watches: added on write, taken off when chunks are dropped and when the segment
//! itself goes (retention, a deleted queue).

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::log::memory_budget::MemoryBudget;

/// The written chunks of one in-memory segment, in position order. A chunk always holds
/// whole batches: the writer writes nothing else.
#[derive(Debug, Default)]
pub struct MemorySegment {
    chunks: RwLock<Chunks>,
    budget: Option<Arc<MemoryBudget>>,
}

/// The chunks still held, and where they start and end.
#[derive(Debug, Default)]
struct Chunks {
    /// `(position, bytes)`, contiguous: each starts where the one before ends.
    kept: VecDeque<(u64, Bytes)>,
    /// Position of the first byte still held: every byte below it was dropped.
    start: u64,
    /// Position where the next write goes.
    end: u64,
}

impl MemorySegment {
    /// An empty segment whose bytes count in `budget`, if given.
    pub fn new(budget: Option<Arc<MemoryBudget>>) -> MemorySegment {
        MemorySegment { chunks: RwLock::default(), budget }
    }

    /// Keeps `chunks` as written at `position`.
    ///
    /// # Panics
    /// If `position` is not where the previous write ended: the writer only appends.
    pub fn write_at(&self, position: u64, chunks: Vec<Bytes>) {
        let mut kept = self.chunks.write().expect("memory segment lock poisoned");
        assert_eq!(position, kept.end, "memory segments are written in order");
        for chunk in chunks {
            let length = chunk.len() as u64;
            let at = kept.end;
            kept.kept.push_back((at, chunk));
            kept.end += length;
        }
        if let Some(budget) = &self.budget {
            budget.add(kept.end - position);
        }
    }

    /// The bytes from `position` to the end of the chunk holding it, limited to `end`.
    /// `None` past the end, and below [`MemorySegment::start`]: dropped bytes are never
    /// read back, not even as another chunk's.
    pub fn bytes_from(&self, position: u64, end: u64) -> Option<Bytes> {
        let kept = self.chunks.read().expect("memory segment lock poisoned");
        if position < kept.start {
            return None;
        }
        let after = kept.kept.partition_point(|(at, _)| *at <= position);
        let (at, chunk) = kept.kept.get(after.checked_sub(1)?)?;
        let from = usize::try_from(position - at).ok()?;
        let to = usize::try_from(end.saturating_sub(*at)).ok()?.min(chunk.len());
        (from < to).then(|| chunk.slice(from..to))
    }

    /// Drops the chunks that end at or before `position` (all of them when `position` is
    /// past the end). Returns the bytes dropped. The caller guarantees that no read will
    /// start below `position` any more.
    pub fn release_below(&self, position: u64) -> u64 {
        let mut kept = self.chunks.write().expect("memory segment lock poisoned");
        let before = kept.start;
        while let Some((at, chunk)) = kept.kept.front() {
            let chunk_end = at + chunk.len() as u64;
            if chunk_end > position {
                break;
            }
            kept.start = chunk_end;
            kept.kept.pop_front();
        }
        assert!(kept.start <= kept.end, "a segment never drops past what was written");
        let dropped = kept.start - before;
        if let (Some(budget), true) = (&self.budget, dropped > 0) {
            budget.remove(dropped);
        }
        dropped
    }

    /// Position of the first byte still held (0 until something is dropped; the end of what
    /// was written once everything is).
    pub fn start(&self) -> u64 {
        self.chunks.read().expect("memory segment lock poisoned").start
    }

    /// Bytes still held.
    pub fn held_bytes(&self) -> u64 {
        let kept = self.chunks.read().expect("memory segment lock poisoned");
        kept.end - kept.start
    }
}

impl Drop for MemorySegment {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.remove(self.held_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_of(lengths: &[usize]) -> MemorySegment {
        let segment = MemorySegment::default();
        let mut position = 0;
        for (index, &length) in lengths.iter().enumerate() {
            segment.write_at(position, vec![Bytes::from(vec![index as u8; length])]);
            position += length as u64;
        }
        segment
    }

    #[test]
    fn only_chunks_ending_at_or_before_the_position_are_dropped() {
        let segment = segment_of(&[10, 10, 10]);
        assert_eq!(segment.release_below(15), 10, "the chunk holding 15 stays");
        assert_eq!(segment.start(), 10);
        assert_eq!(segment.held_bytes(), 20);
        assert_eq!(segment.release_below(20), 10);
        assert_eq!(segment.release_below(20), 0, "dropping twice drops nothing more");
        assert_eq!(segment.bytes_from(20, 30).as_deref(), Some(&[2u8; 10][..]));
        assert_eq!(segment.release_below(u64::MAX), 10);
        assert_eq!((segment.start(), segment.held_bytes()), (30, 0));
    }

    #[test]
    fn reads_below_the_dropped_bytes_find_nothing_and_writes_go_on() {
        let segment = segment_of(&[10, 10]);
        segment.release_below(10);
        assert_eq!(segment.bytes_from(0, 20), None);
        assert_eq!(segment.bytes_from(9, 20), None);
        assert_eq!(segment.bytes_from(12, 20).as_deref(), Some(&[1u8; 8][..]));
        segment.release_below(20);
        assert_eq!(segment.bytes_from(15, 20), None);
        segment.write_at(20, vec![Bytes::from_static(b"abc")]);
        assert_eq!(segment.bytes_from(20, 23).as_deref(), Some(&b"abc"[..]));
        assert_eq!(segment.held_bytes(), 3);
    }

    #[test]
    fn the_budget_counts_what_segments_hold_until_they_go() {
        let budget = Arc::new(MemoryBudget::new());
        let segment = MemorySegment::new(Some(Arc::clone(&budget)));
        segment.write_at(0, vec![Bytes::from(vec![1u8; 100]), Bytes::from(vec![2u8; 50])]);
        segment.write_at(150, vec![Bytes::from(vec![3u8; 30])]);
        assert_eq!(budget.held_bytes(), 180);
        segment.release_below(150);
        assert_eq!(budget.held_bytes(), 30);
        let other = MemorySegment::new(Some(Arc::clone(&budget)));
        other.write_at(0, vec![Bytes::from(vec![4u8; 10])]);
        drop(segment);
        assert_eq!(budget.held_bytes(), 10);
        drop(other);
        assert_eq!(budget.held_bytes(), 0);
    }
}
