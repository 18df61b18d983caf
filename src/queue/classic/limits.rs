//! What leaves a classic queue without being consumed: messages past their time to live
//! (`x-message-ttl` or their own expiration) and, with drop-head overflow, the oldest ones
//! beyond `x-max-length` / `x-max-length-bytes`; rejected ones too. Each goes, in the order
//! it died, to the queue's dead-letter channel when it has one (`queue::dead_letters`).
//! Routing it is the broker's business: this file only hands on the message and the
//! reason, and knows no exchanges or frames.

use super::Actor;
use crate::limits::READY_BYTES_SCAN_BYTES;
use crate::log::{now_ms, Record};
use crate::queue::api::DeathReason;
use crate::queue::message::{expires_at_ms, Message};

impl Actor {
    /// Whether `record` is past the queue's TTL or its own expiry.
    pub(super) fn expired(&self, record: &Record) -> bool {
        // Most messages have no expiry of their own and most queues no TTL: no clock read.
        let own = expires_at_ms(&record.header);
        if own.is_none() && !self.any_message_ttl() {
            return false;
        }
        let now = now_ms();
        if let Some(ttl) = self.message_ttl_at(record.offset) {
            if record.timestamp_ms.saturating_add(ttl.as_millis() as i64) <= now {
                return true;
            }
        }
        own.is_some_and(|at| at <= now)
    }

    /// Dead-letters the message at `offset`, read back from the log (when the queue has a
    /// dead-letter sink at all).
    pub(super) fn kill(&mut self, offset: u64, reason: DeathReason) {
        if self.options.dead_letter.is_none() {
            return;
        }
        if let Ok(records) = self.options.log.read_records(offset, 1) {
            if let Some(record) = records.into_iter().next().filter(|r| r.offset == offset) {
                self.kill_record(&record, reason);
            }
        }
    }

    /// Dead-letters `record` (when the queue has a dead-letter exchange), after every
    /// message dead-lettered before it.
    pub(super) fn kill_record(&mut self, record: &Record, reason: DeathReason) {
        if let (Some(out), Some(message)) = (&mut self.options.dead_letter, Message::from_record(record)) {
            out.push(message, reason);
        }
    }

    /// Waits until every message dead-lettered so far is in the queue's dead-letter channel
    /// (see `queue::dead_letters` for why this wait cannot deadlock). The task calls it
    /// before it takes its next command or looks at new appends.
    pub(super) async fn flush_dead_letters(&mut self) {
        if let Some(out) = self.options.dead_letter.as_mut().filter(|out| out.has_staged()) {
            out.flush().await;
        }
    }

    /// Drops expired messages at the head (queue TTL removes proactively) and, with a
    /// length limit, the oldest messages beyond it.
    pub(super) fn enforce_limits(&mut self) {
        if self.any_message_ttl() {
            // The head is what goes out next (requeued first, or the highest priority).
            let _ = self.expire_head();
        }
        if let Some(max) = self.options.max_length {
            while self.ready_count() > max {
                let Some(record) = self.pop_buffered() else { break };
                self.kill_record(&record, DeathReason::MaxLength);
            }
        }
        if let Some(max) = self.options.max_length_bytes {
            self.enforce_max_length_bytes(max);
        }
    }

    /// Drops the oldest ready messages while their bodies total more than `max` bytes.
    fn enforce_max_length_bytes(&mut self, max: u64) {
        // Everything appended since the last turn is counted first: in a priority queue by
        // indexing it, otherwise by a scan that keeps only the sizes.
        if self.prioritized.is_some() {
            self.fill_prioritized();
        } else {
            self.count_unread(usize::MAX);
        }
        while self.ready_bytes.total > max {
            let Some(record) = self.pop_buffered() else { break };
            self.kill_record(&record, DeathReason::MaxLength);
        }
    }

    /// Counts the records just read ahead that were not counted yet. Records lost in the
    /// restart are not ready; acked ones were dropped already.
    pub(super) fn count_read(&mut self) {
        let counted_to = self.ready_bytes.counted_to;
        let added: u64 = self
            .read_ahead
            .iter()
            .filter(|record| record.offset >= counted_to && !self.lost_in_restart(record))
            .map(|record| record.body.len() as u64)
            .sum();
        let cursor = self.read_ahead.cursor();
        self.ready_bytes.total += added;
        self.ready_bytes.counted_to = self.ready_bytes.counted_to.max(cursor);
    }

    /// Counts the body bytes of what was appended past what was counted, towards the log's
    /// end, in at most `steps_max` steps of [`READY_BYTES_SCAN_BYTES`] whose records are
    /// dropped at once: with no bound, after a restart, this is the whole backlog, read
    /// once. Skips what will not be delivered (transient and acked records from before the
    /// restart, damaged batches).
    pub(super) fn count_unread(&mut self, steps_max: usize) {
        let mut next = self.ready_bytes.counted_to.max(self.read_ahead.cursor());
        let log = self.options.log.clone();
        let end = log.next_offset();
        next = next.max(log.first_offset());
        let mut added = 0u64;
        let mut steps = 0;
        while next < end && steps < steps_max {
            steps += 1;
            // A step that meets damage is read again one batch at a time, so the intact
            // batches before it are counted; the damaged one is not (the read-ahead skips
            // and reports it when it gets there).
            let records = match log.read_records(next, READY_BYTES_SCAN_BYTES) {
                Ok(records) => records,
                Err(_) => match log.read_records(next, 0) {
                    Ok(records) => records,
                    Err(_) => {
                        next = log.next_intact_offset(next);
                        continue;
                    }
                },
            };
            let Some(last) = records.last().map(|r| r.offset) else { break };
            added += records
                .iter()
                .filter(|r| !self.lost_in_restart(r))
                .filter(|r| !(r.offset < self.options.restart_offset && self.acked.live.contains(r.offset)))
                .map(|r| r.body.len() as u64)
                .sum::<u64>();
            next = last + 1;
        }
        self.ready_bytes.total += added;
        self.ready_bytes.counted_to = self.ready_bytes.counted_to.max(next);
    }

    /// `record` left the ready messages (handed out, expired or dropped).
    #[inline]
    pub(super) fn left_ready(&mut self, record: &Record) {
        let bytes = &mut self.ready_bytes;
        debug_assert!(record.offset < bytes.counted_to, "only counted records are handed out");
        bytes.total = bytes.total.saturating_sub(record.body.len() as u64);
    }
}

/// The body bytes of a queue's ready messages (those waiting to be delivered, requeued ones
/// included: not the unacked ones), counted as the queue reads them and, in steps of
/// [`READY_BYTES_SCAN_BYTES`] once a second at most, as appends come that it was not woken
/// for; a queue with `x-max-length-bytes` counts the whole backlog it has not read yet, so
/// that enforcing the limit never needs the backlog in memory.
///
/// Invariant: every ready message below `counted_to` is counted in `total`, none at or
/// above it is, and every message handed out lies below it.
#[derive(Debug, Default)]
pub(super) struct ReadyBytes {
    pub(super) total: u64,
    pub(super) counted_to: u64,
}

impl ReadyBytes {
    /// Nothing counted yet; the queue reads from `cursor`.
    pub(super) fn new(cursor: u64) -> ReadyBytes {
        ReadyBytes { total: 0, counted_to: cursor }
    }
}
