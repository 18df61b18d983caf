//! Expiry at the head of a classic queue: a message past its own `expiration` or the queue's
//! `x-message-ttl` is dead-lettered once it is at the head (the next to be handed out),
//! whether or not anyone reads, as RabbitMQ does. Expired messages behind a live head stay,
//! and stay counted, until they reach it (a consumer or `basic.get` skips them on the way).
//!
//! The queue's task looks at its head on every tick (`QUEUE_TICK_MS`) and, when the head
//! expires before the next tick, sleeps until exactly then: no polling faster than the tick,
//! and no timer at all while the head does not expire soon. The queue's own TTL is also
//! applied on every turn of the task, in `limits.rs`. Knows no frames or exchanges.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::Actor;
use crate::log::{now_ms, Record};
use crate::queue::api::DeathReason;
use crate::queue::message::expires_at_ms;

impl Actor {
    /// When `record` expires, in ms since the epoch: the sooner of its own expiration and
    /// the queue's TTL; `None` when neither applies.
    fn expiry_ms(&self, record: &Record) -> Option<i64> {
        let own = expires_at_ms(&record.header);
        let by_queue = self.message_ttl_at(record.offset).map(|ttl| {
            let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            record.timestamp_ms.saturating_add(ttl_ms)
        });
        match (own, by_queue) {
            (Some(own), Some(by_queue)) => Some(own.min(by_queue)),
            (own, by_queue) => own.or(by_queue),
        }
    }

    /// Dead-letters the expired messages at the head, up to the first live one; returns
    /// when that one expires (ms since the epoch), if it does.
    pub(super) fn expire_head(&mut self) -> Option<i64> {
        let mut now = None;
        loop {
            let head = self.peek_ready()?;
            let at = self.expiry_ms(&head)?;
            if at > *now.get_or_insert_with(now_ms) {
                return Some(at);
            }
            self.pop_peeked(&head);
            self.kill_record(&head, DeathReason::Expired);
        }
    }

    /// Applies [`Actor::expire_head`] and sets `timer` to the moment the head left expires,
    /// however far (an idle queue is not ticked: the timer is what wakes it). Returns
    /// whether it set `timer`.
    pub(super) fn arm_head_expiry(&mut self, timer: Pin<&mut Sleep>) -> bool {
        let Some(at) = self.expire_head() else { return false };
        let wait_ms = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
        timer.reset(Instant::now() + Duration::from_millis(wait_ms));
        true
    }
}
