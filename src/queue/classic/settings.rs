//! New settings for a running classic queue (its policy changed), applied as RabbitMQ's
//! queue process applies them (`rabbit_amqqueue_process:process_args_policy/1`):
//!
//! - A length limit applies at once: with drop-head, the oldest messages beyond it are
//!   dropped or dead-lettered on the task's next turn (`limits.rs`).
//! - `x-message-ttl` applies to messages enqueued from now on. Those already in the queue
//!   keep the time to live they were enqueued with (RabbitMQ fixes a message's expiry when
//!   it is enqueued), so the queue remembers, by offset, the TTLs that came before.
//! - A new dead-letter channel replaces the old one once everything dead-lettered before
//!   the change is in the old one.
//!
//! Knows no frames, exchanges or policies: only the values the broker resolved.

use std::time::Duration;

use super::Actor;
use crate::limits::QUEUE_EARLIER_TTLS_MAX;
use crate::queue::handle::QueueSettings;

impl Actor {
    /// Takes `settings` in place of the queue's own. The caller has flushed the dead letters
    /// staged so far.
    pub(super) fn apply_settings(&mut self, settings: QueueSettings) {
        if settings.message_ttl != self.options.message_ttl {
            self.earlier_ttls.push_back((settings.from_offset, self.options.message_ttl));
            if self.earlier_ttls.len() > QUEUE_EARLIER_TTLS_MAX {
                self.earlier_ttls.pop_front();
            }
            self.options.message_ttl = settings.message_ttl;
            self.forget_earlier_ttls();
        }
        self.options.max_length = settings.max_length;
        // The ready messages read so far are counted whatever the limits: a byte limit set
        // now counts the rest of the backlog on the next turn (`limits.rs`).
        self.options.max_length_bytes = settings.max_length_bytes;
        if let Some(dead_letter) = settings.dead_letter {
            debug_assert!(self.options.dead_letter.as_ref().is_none_or(|out| !out.has_staged()));
            self.options.dead_letter = dead_letter;
        }
    }

    /// The queue TTL of the message at `offset`: the one it was enqueued under.
    #[inline]
    pub(super) fn message_ttl_at(&self, offset: u64) -> Option<Duration> {
        self.earlier_ttls
            .iter()
            .find(|(below, _)| offset < *below)
            .map_or(self.options.message_ttl, |(_, ttl)| *ttl)
    }

    /// Whether some message may have a queue TTL (the current one or an earlier one).
    #[inline]
    pub(super) fn any_message_ttl(&self) -> bool {
        self.options.message_ttl.is_some() || !self.earlier_ttls.is_empty()
    }

    /// Forgets the earlier TTLs of messages that are all below the floor (done with).
    pub(super) fn forget_earlier_ttls(&mut self) {
        if self.earlier_ttls.is_empty() {
            return;
        }
        let floor = self.floor();
        while self.earlier_ttls.front().is_some_and(|(below, _)| *below <= floor) {
            self.earlier_ttls.pop_front();
        }
    }
}
