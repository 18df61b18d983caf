//! A classic queue's floor: the lowest offset it still needs. Everything below is released
//! to the log's retention, and durable queues on disc keep the floor (and the offset below
//! which everything was delivered once) in the log's offset store, so a restart resumes
//! there and marks those messages redelivered. Uses only the log's public API (release,
//! offset store, reads); knows no consumers, frames or sockets.

use super::Actor;
use crate::limits::TRANSIENT_SCAN_BYTES;
use crate::log::Log;
use crate::queue::message::MessageView;

/// Name under which a durable queue's floor is kept in its log's offset store.
pub const FLOOR_KEY: &str = "__queue_floor";
/// Name under which a durable queue keeps the offset below which everything has been
/// delivered at least once: after a restart those messages come with `redelivered=true`.
pub const DELIVERED_KEY: &str = "__queue_delivered";

impl Actor {
    /// The lowest offset still needed; everything below is released to retention.
    fn floor(&self) -> u64 {
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
    /// delivered mark when either moved.
    pub(super) fn persist_floor(&mut self) {
        let floor = self.floor();
        // Everything below the read position has been handed out (or dropped) at least once.
        let delivered = self.read_position().max(self.delivered_below);
        if floor == self.persisted_floor && delivered == self.persisted_delivered {
            return;
        }
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
}

/// Counts the records in `[from, to)` that are not persistent: after a restart they are
/// skipped, so they must not be counted as ready meanwhile.
pub(super) fn count_transient(log: &Log, from: u64, to: u64) -> u64 {
    let mut count = 0;
    let mut next = from.max(log.first_offset());
    while next < to {
        let Ok(records) = log.read_records(next, TRANSIENT_SCAN_BYTES) else { break };
        let Some(last) = records.last().map(|r| r.offset) else { break };
        count += records
            .iter()
            .filter(|r| r.offset < to && !MessageView::parse(&r.header).is_some_and(|m| m.persistent))
            .count() as u64;
        next = last + 1;
    }
    count
}
