//! A priority queue's ready messages as offsets, not records: per priority level, the
//! offsets read from the log as runs of consecutive offsets (a run of messages of one
//! priority costs one range whatever its length), and the requeued offsets of that level
//! (delivered before, so redelivered). Bodies stay in the log; delivery reads each record
//! back by offset through a small window of records read at once ([`Window`]), so a backlog
//! larger than memory costs a few bytes per message.
//!
//! Order: the highest priority first, then the lowest offset within a priority (a requeued
//! message goes back to its place). Plain values owned by the queue's task; only the window
//! reads the log, through its public API.

use std::collections::{BTreeSet, VecDeque};
use std::ops::Range;

use bytes::BytesMut;

use crate::limits::PRIORITY_FETCH_BYTES;
use crate::log::{Log, Record};

/// A priority queue's ready messages: the index and the records last read back.
#[derive(Debug)]
pub(super) struct Prioritized {
    pub(super) index: PriorityIndex,
    pub(super) window: Window,
}

impl Prioritized {
    /// Nothing indexed yet, for priorities 0 to `max_priority`.
    pub(super) fn new(max_priority: u8) -> Prioritized {
        Prioritized { index: PriorityIndex::new(max_priority), window: Window::default() }
    }
}

/// The ready offsets of one priority level.
#[derive(Debug, Default)]
struct Level {
    /// Offsets read from the log, in order, as disjoint ranges of consecutive offsets.
    runs: VecDeque<Range<u64>>,
    /// Offsets handed out before and returned.
    requeued: BTreeSet<u64>,
}

impl Level {
    /// The lowest offset of the level and whether it was requeued.
    fn first(&self) -> Option<(u64, bool)> {
        let run = self.runs.front().map(|run| run.start);
        let requeued = self.requeued.first().copied();
        match (run, requeued) {
            (Some(run), Some(requeued)) if requeued < run => Some((requeued, true)),
            (Some(run), _) => Some((run, false)),
            (None, requeued) => requeued.map(|offset| (offset, true)),
        }
    }

    fn pop_first(&mut self) -> Option<(u64, bool)> {
        let (offset, requeued) = self.first()?;
        if requeued {
            self.requeued.remove(&offset);
        } else {
            let run = self.runs.front_mut().expect("first came from this run");
            run.start += 1;
            if run.is_empty() {
                self.runs.pop_front();
            }
        }
        Some((offset, requeued))
    }
}

/// The ready offsets of a priority queue, by priority then offset.
///
/// Invariant: `len` is the number of offsets held; an offset is held at most once; the
/// runs of a level are in increasing order and never empty.
#[derive(Debug, Default)]
pub(super) struct PriorityIndex {
    /// Indexed by priority (0 to the queue's maximum).
    levels: Vec<Level>,
    len: u64,
    /// The offset past the last one added with [`PriorityIndex::push`].
    pushed_end: u64,
}

impl PriorityIndex {
    /// An empty index for priorities 0 to `max_priority`.
    pub(super) fn new(max_priority: u8) -> PriorityIndex {
        let levels = (0..=max_priority).map(|_| Level::default()).collect();
        PriorityIndex { levels, len: 0, pushed_end: 0 }
    }

    /// Offsets held.
    #[inline]
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Adds `offset`, read from the log after every offset pushed before; a priority above
    /// the maximum counts as the maximum.
    pub(super) fn push(&mut self, priority: u8, offset: u64) {
        assert!(offset >= self.pushed_end, "the log is read forward: offsets {offset} < {}", self.pushed_end);
        self.pushed_end = offset + 1;
        let runs = &mut self.level(priority).runs;
        match runs.back_mut() {
            Some(run) if run.end == offset => run.end += 1,
            _ => runs.push_back(offset..offset + 1),
        }
        self.len += 1;
    }

    /// Puts back `offset`, handed out before: it comes out again in its place.
    pub(super) fn requeue(&mut self, priority: u8, offset: u64) {
        if self.level(priority).requeued.insert(offset) {
            self.len += 1;
        }
    }

    fn level(&mut self, priority: u8) -> &mut Level {
        let top = self.levels.len() - 1;
        &mut self.levels[usize::from(priority).min(top)]
    }

    /// The offset handed out next and whether it was requeued.
    pub(super) fn first(&self) -> Option<(u64, bool)> {
        self.levels.iter().rev().find_map(Level::first)
    }

    /// Takes the offset handed out next and whether it was requeued.
    pub(super) fn pop_first(&mut self) -> Option<(u64, bool)> {
        let popped = self.levels.iter_mut().rev().find_map(Level::pop_first)?;
        self.len -= 1;
        Some(popped)
    }

    /// The lowest offset held, whatever its priority.
    pub(super) fn lowest(&self) -> Option<u64> {
        self.levels
            .iter()
            .filter_map(|level| {
                let run = level.runs.front().map(|run| run.start);
                let requeued = level.requeued.first().copied();
                run.into_iter().chain(requeued).min()
            })
            .min()
    }

    /// Forgets every offset (a purge).
    pub(super) fn clear(&mut self) {
        for level in &mut self.levels {
            level.runs.clear();
            level.requeued.clear();
        }
        self.len = 0;
    }
}

/// Records read back from the log for delivery: those from one read of up to
/// [`PRIORITY_FETCH_BYTES`], so the messages of a run (or of alternating priorities close
/// together) are read once for many deliveries. Holds slices of the log's memory map.
///
/// The first record handed out from a read is a copy, the others slices: in priority
/// order consecutive deliveries can come from many segments (the last messages of a low
/// priority, scattered over the whole log, one per read), and a slice keeps its segment's
/// map, with every page read through it, resident for as long as the delivery is in
/// flight. A copy costs its own bytes, bounded by the consumers' prefetch; the messages of
/// a run (or of priorities alternating close together) are served from one read, so their
/// slices keep one or two maps at a time and cost no copy.
#[derive(Debug, Default)]
pub(super) struct Window {
    /// In offset order.
    records: Vec<Record>,
}

impl Window {
    /// The record at `offset`, from the window or read from the log (replacing the window).
    ///
    /// # Errors
    /// What the log's read gave; `Ok(None)` when the log no longer holds `offset`.
    pub(super) fn fetch(&mut self, log: &Log, offset: u64) -> Result<Option<Record>, crate::log::Error> {
        if let Some(record) = self.find(offset) {
            return Ok(Some(record.clone()));
        }
        // The records read before are dropped only after the read: a read in the same
        // segment reuses its map instead of mapping it again (and faulting its pages in).
        let before = std::mem::replace(&mut self.records, log.read_records(offset, PRIORITY_FETCH_BYTES)?);
        drop(before);
        Ok(self.find(offset).map(copied))
    }

    fn find(&self, offset: u64) -> Option<&Record> {
        let at = self.records.binary_search_by_key(&offset, |r| r.offset).ok()?;
        self.records.get(at)
    }

    /// Drops what was read (a purge).
    pub(super) fn clear(&mut self) {
        self.records.clear();
    }
}

/// `record` in memory of its own (one allocation for header and body), holding no map.
fn copied(record: &Record) -> Record {
    let mut bytes = BytesMut::with_capacity(record.header.len() + record.body.len());
    bytes.extend_from_slice(&record.header);
    bytes.extend_from_slice(&record.body);
    let header = bytes.split_to(record.header.len()).freeze();
    Record { offset: record.offset, timestamp_ms: record.timestamp_ms, header, body: bytes.freeze() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(index: &mut PriorityIndex) -> Vec<(u64, bool)> {
        std::iter::from_fn(|| index.pop_first()).collect()
    }

    #[test]
    fn highest_priority_first_then_fifo() {
        let mut index = PriorityIndex::new(3);
        for (offset, priority) in [(0, 1), (1, 3), (2, 1), (3, 0), (4, 3), (5, 3)] {
            index.push(priority, offset);
        }
        assert_eq!(index.len(), 6);
        assert_eq!(index.lowest(), Some(0));
        let order: Vec<u64> = drain(&mut index).into_iter().map(|(o, _)| o).collect();
        assert_eq!(order, [1, 4, 5, 0, 2, 3]);
        assert_eq!(index.len(), 0);
        assert_eq!(index.lowest(), None);
    }

    #[test]
    fn runs_collapse_into_one_range() {
        let mut index = PriorityIndex::new(9);
        for offset in 0..1000 {
            index.push(5, offset);
        }
        index.push(5, 2000);
        assert_eq!(index.levels[5].runs.len(), 2);
        assert_eq!(index.len(), 1001);
    }

    #[test]
    fn requeued_go_back_to_their_place() {
        let mut index = PriorityIndex::new(2);
        for offset in 0..4 {
            index.push(2, offset);
        }
        assert_eq!(index.pop_first(), Some((0, false)));
        assert_eq!(index.pop_first(), Some((1, false)));
        index.requeue(2, 1);
        index.requeue(0, 7);
        assert_eq!(drain(&mut index), [(1, true), (2, false), (3, false), (7, true)]);
    }

    #[test]
    fn priorities_above_the_maximum_count_as_it() {
        let mut index = PriorityIndex::new(1);
        index.push(0, 0);
        index.push(200, 1);
        index.push(1, 2);
        let order: Vec<u64> = drain(&mut index).into_iter().map(|(o, _)| o).collect();
        assert_eq!(order, [1, 2, 0]);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut index = PriorityIndex::new(1);
        index.push(1, 0);
        index.requeue(0, 5);
        index.clear();
        assert_eq!(index.len(), 0);
        assert_eq!(index.first(), None);
    }
}
