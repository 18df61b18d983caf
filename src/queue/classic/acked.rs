//! A durable classic queue's acknowledged offsets above its floor, as ranges, and when they
//! are persisted.
//!
//! The floor alone (`floor.rs`) cannot tell a restart that messages above the lowest
//! unacked one were acked: one requeued or slow message would bring every later acked one
//! back. So each ack is also recorded here, in a sorted run of disjoint ranges (an ack in
//! order extends the last range: no allocation, no system call), and on the queue's tick
//! the ranges above the floor are written to the log's `acked` file (see
//! `log::acked`) when they hold an ack not yet written, at most once per the log's fsync
//! interval. On restart the ranges read back are skipped as the queue reads past them, and
//! stay in the set so that the next write keeps them.
//!
//! Bounded by [`ACKED_RANGES_MAX`]: an ack that would need one range more is not recorded
//! (it comes back after a crash, as it did when only the floor was kept). Knows no
//! consumers, frames or sockets.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::limits::{ACKED_RANGES_MAX, QUEUE_TICK_MS};
use crate::log::FsyncPolicy;

/// Sorted, disjoint, non-adjacent, non-empty ranges of offsets, at most
/// [`ACKED_RANGES_MAX`] of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct RangeSet {
    ranges: Vec<Range<u64>>,
}

impl RangeSet {
    /// The set holding `ranges` (which [`crate::log::acked::decode`] checked), clipped to
    /// `[from, to)`.
    pub(super) fn clipped(ranges: &[Range<u64>], from: u64, to: u64) -> RangeSet {
        let mut set = RangeSet::default();
        for range in ranges.iter().take(ACKED_RANGES_MAX) {
            let clipped = range.start.max(from)..range.end.min(to);
            if clipped.is_empty() {
                continue;
            }
            match set.ranges.last_mut() {
                Some(last) if last.end >= clipped.start => last.end = last.end.max(clipped.end),
                _ => set.ranges.push(clipped),
            }
        }
        set
    }

    /// Adds `offset`; false when that needs a new range and the set is full.
    pub(super) fn insert(&mut self, offset: u64) -> bool {
        // Acks mostly come in order: the last range grows.
        match self.ranges.last_mut() {
            None => return self.push(offset),
            Some(last) if last.end == offset => {
                last.end += 1;
                return true;
            }
            Some(last) if last.end < offset => return self.push(offset),
            Some(_) => {}
        }
        let at = self.ranges.partition_point(|r| r.end < offset);
        let Some(next) = self.ranges.get(at).cloned() else {
            unreachable!("the last range ends after offset")
        };
        if next.contains(&offset) {
            return true;
        }
        if next.end == offset {
            // Right after `next`: grow it, and join the range after when it starts next.
            let after = self.ranges.get(at + 1).filter(|r| r.start == offset + 1).map(|r| r.end);
            if after.is_some() {
                self.ranges.remove(at + 1);
            }
            if let Some(range) = self.ranges.get_mut(at) {
                range.end = after.unwrap_or(offset + 1);
            }
            return true;
        }
        if next.start == offset + 1 {
            if let Some(range) = self.ranges.get_mut(at) {
                range.start = offset;
            }
            return true;
        }
        if self.ranges.len() >= ACKED_RANGES_MAX {
            return false;
        }
        self.ranges.insert(at, offset..offset + 1);
        true
    }

    fn push(&mut self, offset: u64) -> bool {
        if self.ranges.len() >= ACKED_RANGES_MAX {
            return false;
        }
        self.ranges.push(offset..offset + 1);
        true
    }

    /// Forgets everything below `floor`.
    pub(super) fn compact(&mut self, floor: u64) {
        let below = self.ranges.partition_point(|r| r.end <= floor);
        self.ranges.drain(..below);
        if let Some(first) = self.ranges.first_mut() {
            first.start = first.start.max(floor);
        }
    }

    /// Whether `offset` is in the set.
    pub(super) fn contains(&self, offset: u64) -> bool {
        let at = self.ranges.partition_point(|r| r.end <= offset);
        self.ranges.get(at).is_some_and(|r| r.start <= offset)
    }

    /// The offsets in the set inside `[from, to)`.
    pub(super) fn count_within(&self, from: u64, to: u64) -> u64 {
        self.ranges.iter().map(|r| r.end.min(to).saturating_sub(r.start.max(from))).sum()
    }

    /// One past the highest offset in the set, or 0.
    pub(super) fn end(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.end)
    }

    /// The ranges, in order.
    pub(super) fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }
}

/// What a durable queue knows of its acks and what of it is on disc.
#[derive(Debug, Default)]
pub(super) struct Acked {
    /// Every recorded ack above the floor (the floor as of the last tick).
    pub(super) live: RangeSet,
    /// What the `acked` file holds, compacted to the same floor.
    written: RangeSet,
    /// When the file was last written.
    written_at: Option<Instant>,
    /// Offsets below this (read back from the file at start) are skipped when read from the
    /// log; 0 once the queue has read past them all.
    pub(super) skip_below: u64,
    /// Acks not recorded because the set was full, since the last warning.
    pub(super) unrecorded: u64,
}

impl Acked {
    /// The state after a restart: `recovered` acked ranges, all below `skip_below`.
    pub(super) fn recovered(recovered: RangeSet) -> Acked {
        let skip_below = recovered.end();
        Acked { written: recovered.clone(), live: recovered, written_at: None, skip_below, unrecorded: 0 }
    }

    /// Compacts both sets to `floor` and says whether the file must be written now: some
    /// ack above the floor is not in it and, under `fsync interval`, the interval since the
    /// last write has passed.
    pub(super) fn due(&mut self, floor: u64, policy: Option<FsyncPolicy>, now: Instant) -> bool {
        self.live.compact(floor);
        self.written.compact(floor);
        if self.live == self.written {
            return false;
        }
        let period = match policy {
            Some(FsyncPolicy::Interval(interval)) => interval,
            _ => Duration::from_millis(QUEUE_TICK_MS),
        };
        self.written_at.is_none_or(|at| now.duration_since(at) >= period)
    }

    /// Whether some ack is not in the file yet (as last compacted by [`Acked::due`]).
    pub(super) fn unwritten(&self) -> bool {
        self.live != self.written
    }

    /// Makes the next [`Acked::due`] ignore the interval (a queue about to stop).
    pub(super) fn hurry(&mut self) {
        self.written_at = None;
    }

    /// Notes that the file now holds `live`, written at `now`.
    pub(super) fn written(&mut self, now: Instant) {
        self.written.clone_from(&self.live);
        self.written_at = Some(now);
    }
}

#[cfg(test)]
// A one-range list of ranges is meant: the sets here are lists of ranges.
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn set_of(offsets: &[u64]) -> RangeSet {
        let mut set = RangeSet::default();
        for &offset in offsets {
            assert!(set.insert(offset));
        }
        set
    }

    #[test]
    fn inserts_merge_into_ranges_in_any_order() {
        assert_eq!(set_of(&[0, 1, 2, 3]).ranges(), &[0..4]);
        assert_eq!(set_of(&[5, 1, 3, 2, 7]).ranges(), &[1..4, 5..6, 7..8]);
        assert_eq!(set_of(&[5, 1, 3, 2, 7, 4, 6]).ranges(), &[1..8]);
        assert_eq!(set_of(&[9, 7, 8, 8]).ranges(), &[7..10]);
        let set = set_of(&[4, 10, 6]);
        assert!(set.contains(4) && set.contains(6) && set.contains(10));
        assert!(!set.contains(3) && !set.contains(5) && !set.contains(11));
        assert_eq!(set.count_within(5, 11), 2);
        assert_eq!(set.end(), 11);
    }

    #[test]
    fn acks_in_order_grow_one_range_in_place() {
        let mut set = set_of(&[0]);
        let (buffer, capacity) = (set.ranges.as_ptr(), set.ranges.capacity());
        for offset in 1..100_000 {
            assert!(set.insert(offset));
        }
        assert_eq!(set.ranges(), &[0..100_000]);
        assert_eq!((set.ranges.as_ptr(), set.ranges.capacity()), (buffer, capacity), "no reallocation");
    }

    #[test]
    fn compaction_drops_what_the_floor_passed() {
        let mut set = set_of(&[1, 2, 3, 6, 7, 9]);
        set.compact(2);
        assert_eq!(set.ranges(), &[2..4, 6..8, 9..10]);
        set.compact(8);
        assert_eq!(set.ranges(), &[9..10]);
        set.compact(20);
        assert!(set.ranges().is_empty());
    }

    #[test]
    fn a_full_set_refuses_new_ranges_but_grows_old_ones() {
        let mut set = RangeSet::default();
        for i in 0..ACKED_RANGES_MAX as u64 {
            assert!(set.insert(i * 2));
        }
        assert!(!set.insert(ACKED_RANGES_MAX as u64 * 2 + 5), "a new range past the bound");
        assert!(set.insert(1), "joining two ranges");
        assert!(set.insert(ACKED_RANGES_MAX as u64 * 2 - 1), "growing the last range");
        assert_eq!(set.ranges().len(), ACKED_RANGES_MAX - 1);
    }

    #[test]
    fn clipping_keeps_only_the_window() {
        let set = RangeSet::clipped(&[0..3, 5..9, 12..20], 2, 14);
        assert_eq!(set.ranges(), &[2..3, 5..9, 12..14]);
    }

    #[test]
    fn written_only_when_an_unwritten_ack_is_above_the_floor() {
        let now = Instant::now();
        let mut acked = Acked::default();
        assert!(!acked.due(0, Some(FsyncPolicy::Always), now));
        acked.live.insert(3);
        assert!(acked.due(0, Some(FsyncPolicy::Always), now));
        acked.written(now);
        assert!(!acked.due(0, Some(FsyncPolicy::Always), now));
        // Acks in order that the floor passed need no write.
        acked.live.insert(0);
        assert!(!acked.due(4, Some(FsyncPolicy::Always), now));
        acked.live.insert(9);
        let interval = Some(FsyncPolicy::Interval(Duration::from_secs(1)));
        assert!(!acked.due(4, interval, now), "within the interval");
        assert!(acked.due(4, interval, now + Duration::from_secs(1)));
    }
}
