//! A classic queue's floor: the lowest offset it still needs. Everything below is released
//! to the log's retention, and durable queues on disc keep the floor (and the offset below
//! which everything was delivered once) in the log's offset store, so a restart resumes
//! there and marks those messages redelivered. Acks above the floor are kept beside it
//! (`acked.rs`) and skipped after a restart. Uses only the log's public API (release,
//! offset store, reads); knows no consumers, frames or sockets.

use std::time::Instant;

use super::acked::{Acked, RangeSet};
use super::Actor;
use crate::limits::{ACKED_RANGES_MAX, TRANSIENT_SCAN_BYTES};
use crate::log::acked::AckedRanges;
use crate::log::{FsyncPolicy, Log};
use crate::queue::handle::QueueOptions;
use crate::queue::message::MessageView;

/// Name under which a durable queue's floor is kept in its log's offset store.
pub const FLOOR_KEY: &str = "__queue_floor";
/// Name under which a durable queue keeps the offset below which everything has been
/// delivered at least once: after a restart those messages come with `redelivered=true`.
pub const DELIVERED_KEY: &str = "__queue_delivered";

impl Actor {
    /// The lowest offset still needed; everything below is released to retention.
    pub(super) fn floor(&self) -> u64 {
        let mut floor = self.read_position();
        if let Some((first, _)) = self.unacked.first() {
            floor = floor.min(first);
        }
        if let Some(&first) = self.requeued.first() {
            floor = floor.min(first);
        }
        floor
    }

    /// Releases what is below the floor and, for durable queues, stores the floor and the
    /// delivered mark when either moved, and the acks above the floor when due.
    pub(super) fn persist_floor(&mut self) {
        let floor = self.floor();
        // Everything below the read position has been handed out (or dropped) at least once.
        let delivered = self.read_position().max(self.delivered_below);
        if floor != self.persisted_floor || delivered != self.persisted_delivered {
            self.store_floor(floor, delivered);
        }
        if self.options.persist_floor {
            self.persist_acked(floor);
        }
    }

    /// Whether a later [`Actor::persist_floor`] may still have something to do: the floor
    /// or the delivered mark moved since they were stored, or acks are not written yet.
    /// Checked after each tick only (it compares the ack sets).
    pub(super) fn persistence_pending(&self) -> bool {
        let delivered = self.read_position().max(self.delivered_below);
        self.floor() != self.persisted_floor
            || delivered != self.persisted_delivered
            || (self.options.persist_floor && self.acked.unwritten())
    }

    /// [`Actor::persist_floor`] for a queue about to stop: acks not yet written are written
    /// now, whatever the fsync interval.
    pub(super) fn persist_before_stop(&mut self) {
        self.acked.hurry();
        self.persist_floor();
    }

    fn store_floor(&mut self, floor: u64, delivered: u64) {
        self.options.log.release_before(floor);
        if self.options.persist_floor {
            let entries = [(FLOOR_KEY, floor), (DELIVERED_KEY, delivered)];
            if let Err(error) = self.options.log.offsets().commit_many(&entries) {
                tracing::error!(queue = %self.options.name, %error, "cannot persist the queue's position");
                return;
            }
        }
        self.persisted_floor = floor;
        self.persisted_delivered = delivered;
    }

    /// Records an ack of `offset`, to be persisted on a later tick (durable queues on disc).
    /// No allocation or system call unless the ack needs a new range.
    pub(super) fn record_ack(&mut self, offset: u64) {
        if !self.options.persist_floor || self.acked.live.insert(offset) {
            return;
        }
        // Full: ranges the floor has passed since the last tick may make room.
        let floor = self.floor();
        self.acked.live.compact(floor);
        if !self.acked.live.insert(offset) {
            self.acked.unrecorded += 1;
        }
    }

    /// Writes the acks above `floor` to the log's `acked` file when some are not in it yet
    /// (at most once per fsync interval), synced unless the log's policy is `never`.
    fn persist_acked(&mut self, floor: u64) {
        if self.acked.unrecorded > 0 {
            tracing::warn!(
                queue = %self.options.name,
                acks = self.acked.unrecorded,
                ranges_max = ACKED_RANGES_MAX,
                "acks scattered over too many ranges are not persisted: a crash would redeliver them"
            );
            self.acked.unrecorded = 0;
        }
        let policy = self.options.log.fsync();
        let now = Instant::now();
        if !self.acked.due(floor, policy, now) {
            return;
        }
        let sync = policy != Some(FsyncPolicy::Never);
        match self.options.log.offsets().commit_acked(floor, self.acked.live.ranges(), sync) {
            Ok(()) => self.acked.written(now),
            Err(error) => {
                tracing::error!(queue = %self.options.name, %error, "cannot persist the queue's acks")
            }
        }
    }

    /// A purge went past every record from before the restart: none is left to skip, so
    /// none may be counted off the ready messages any more.
    pub(super) fn forget_restart_skips(&mut self) {
        self.transient_pending = 0;
        self.acked.skip_below = 0;
    }

    /// Drops read-ahead records that were acked before a restart (they are not delivered
    /// again), until the queue has read past the last of them.
    pub(super) fn skip_acked(&mut self) {
        let before = self.read_ahead.len();
        let acked = &self.acked.live;
        self.read_ahead.retain(|record| !acked.contains(record.offset));
        let skipped = (before - self.read_ahead.len()) as u64;
        self.transient_pending = self.transient_pending.saturating_sub(skipped);
        if self.read_ahead.cursor() >= self.acked.skip_below {
            self.acked.skip_below = 0;
        }
    }
}

/// The floor (`start_offset`, read by the broker from [`FLOOR_KEY`]) and delivered mark a
/// durable queue stored before a restart, clamped to the
/// log's recovered end: a tail lost in a crash (a power loss under `fsync interval`) can
/// leave them past it, and the offsets there will be reused by new messages, which must
/// not be skipped. A clamp is logged and written back at once, so that a later crash
/// cannot resurrect the stale marks over the new messages.
pub(super) fn recover_marks(options: &QueueOptions) -> (u64, u64) {
    let end = options.restart_offset;
    let offsets = options.log.offsets();
    let floor = options.start_offset;
    let delivered = offsets.get(DELIVERED_KEY).unwrap_or(0);
    if floor <= end && delivered <= end {
        return (floor, delivered);
    }
    tracing::warn!(
        queue = %options.name,
        floor,
        delivered,
        log_end = end,
        "the queue's stored floor and delivered mark are past its log's recovered end (a lost tail): clamped to it"
    );
    let clamped = (floor.min(end), delivered.min(end));
    if options.persist_floor {
        let entries = [(FLOOR_KEY, clamped.0), (DELIVERED_KEY, clamped.1)];
        if let Err(error) = offsets.commit_many(&entries) {
            tracing::error!(queue = %options.name, %error, "cannot rewrite the queue's clamped position");
        }
    }
    clamped
}

/// The acks a durable queue persisted before a restart, from its read start `cursor` up to
/// the restart offset. Ranges at or past the restart offset name offsets the log no longer
/// holds (a tail lost in a crash, to be reused by new messages): they are dropped, and the
/// file rewritten at once so that a later crash cannot skip a new message.
pub(super) fn recover_acked(options: &QueueOptions, cursor: u64) -> Acked {
    if !options.persist_floor {
        return Acked::default();
    }
    let offsets = options.log.offsets();
    let stored = offsets.acked().unwrap_or_else(|error| {
        tracing::error!(queue = %options.name, %error, "cannot read the queue's acks; redelivering from the floor");
        AckedRanges::default()
    });
    let set = RangeSet::clipped(&stored.ranges, cursor, options.restart_offset);
    if stored.ranges.last().is_some_and(|r| r.end > options.restart_offset) {
        if let Err(error) = offsets.commit_acked(cursor, set.ranges(), true) {
            tracing::error!(queue = %options.name, %error, "cannot rewrite the queue's acks");
        }
    }
    Acked::recovered(set)
}

/// Counts the records in `[from, to)` that will not be delivered after a restart: those
/// acked before it and those not persistent (they did not survive it). They must not be
/// counted as ready meanwhile.
pub(super) fn count_skipped(log: &Log, from: u64, to: u64, acked: &Acked) -> u64 {
    let acked = &acked.live;
    let mut count = acked.count_within(from, to);
    let mut next = from.max(log.first_offset());
    while next < to {
        let Ok(records) = log.read_records(next, TRANSIENT_SCAN_BYTES) else { break };
        let Some(last) = records.last().map(|r| r.offset) else { break };
        count += records
            .iter()
            .filter(|r| r.offset < to && !acked.contains(r.offset))
            .filter(|r| !MessageView::parse(&r.header).is_some_and(|m| m.persistent))
            .count() as u64;
        next = last + 1;
    }
    count
}
