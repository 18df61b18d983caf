//! What leaves a classic queue without being consumed: messages past their time to live
//! (`x-message-ttl` or their own expiration) and, with drop-head overflow, the oldest ones
//! beyond `x-max-length` / `x-max-length-bytes`; rejected ones too. Each goes, in the order
//! it died, to the queue's dead-letter channel when it has one (`queue::dead_letters`).
//! Routing it is the broker's business: this file only hands on the message and the
//! reason, and knows no exchanges or frames.

use super::Actor;
use crate::log::{now_ms, Record};
use crate::queue::api::DeathReason;
use crate::queue::message::{expires_at_ms, Message};

impl Actor {
    /// Whether `record` is past the queue's TTL or its own expiry.
    pub(super) fn expired(&self, record: &Record) -> bool {
        // Most messages have no expiry of their own and most queues no TTL: no clock read.
        let own = expires_at_ms(&record.header);
        if own.is_none() && self.options.message_ttl.is_none() {
            return false;
        }
        let now = now_ms();
        if let Some(ttl) = self.options.message_ttl {
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
        if self.options.message_ttl.is_some() {
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
        // Byte limits need the size of every ready message: read them all.
        if self.options.max_priority.is_some() {
            self.fill_prioritized();
        } else {
            while self.read_ahead.cursor() < self.options.log.next_offset() {
                let before = self.read_ahead.cursor();
                self.refill();
                if self.read_ahead.cursor() == before {
                    break;
                }
            }
        }
        let mut total: u64 = self.read_ahead.iter().map(|r| r.body.len() as u64).sum::<u64>()
            + self.prioritized.values().map(|(r, _)| r.body.len() as u64).sum::<u64>();
        while total > max {
            let Some(record) = self.pop_buffered() else { break };
            total = total.saturating_sub(record.body.len() as u64);
            self.kill_record(&record, DeathReason::MaxLength);
        }
    }
}
