//! The queue API both queue kinds share: what the broker and the AMQP gateway hand to a queue
//! (consumer specs, a channel's shared credit) and what they get back
//! (deliveries, consumer events, dead messages, errors).
//!
//! Plain values: no frames, sockets or exchanges, no log internals beyond the
//! stored [`Record`] a delivery carries.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::message::Message;
use super::stream::StreamAttach;
use crate::log::Record;

/// Identifies a channel across the whole broker.
pub type ChannelId = u64;

/// Why a message left its queue without being acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    /// Rejected or nacked without requeue.
    Rejected,
    /// Its time to live passed.
    Expired,
    /// Dropped from the head to respect a length limit.
    MaxLength,
}

impl DeathReason {
    /// The name RabbitMQ uses in `x-death`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLength => "maxlen",
        }
    }
}

/// A message that died in a queue, on its way (through the queue's
/// [`super::dead_letters::DeadLetters`]) to the queue's dead-letter exchange.
#[derive(Debug)]
pub struct DeadMessage {
    /// The message as it was stored.
    pub message: Message,
    /// Why it died.
    pub reason: DeathReason,
}

/// A channel's shared prefetch (`basic.qos` with `global`), counted across its consumers.
#[derive(Debug, Default)]
pub struct ChannelCredit {
    /// Most unacked deliveries for the channel; 0 means no limit.
    pub limit: AtomicU32,
    /// Unacked deliveries the channel holds now.
    pub unacked: AtomicU32,
}

impl ChannelCredit {
    /// Whether the channel's limit allows one more delivery now (takes nothing).
    #[inline]
    pub fn has_room(&self) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        limit == 0 || self.unacked.load(Ordering::Acquire) < limit
    }

    /// Takes one delivery's credit if the channel's limit allows it.
    #[inline]
    pub fn try_take(&self) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        if limit == 0 {
            self.unacked.fetch_add(1, Ordering::AcqRel);
            return true;
        }
        self.unacked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| (u < limit).then_some(u + 1))
            .is_ok()
    }

    /// Returns `n` deliveries' credit (on ack, reject or requeue).
    #[inline]
    pub fn give_back(&self, n: u32) {
        let _ = self.unacked.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(n)));
    }
}

/// A message handed to a consumer or to `basic.get`.
#[derive(Debug)]
pub struct Delivery {
    /// The channel the delivery is for.
    pub channel: ChannelId,
    /// The queue's name.
    pub queue: Arc<str>,
    /// The consumer's tag, or `None` for `basic.get`.
    pub consumer_tag: Option<Bytes>,
    /// The message's offset in the queue's log; the handle for ack and reject.
    pub offset: u64,
    /// Whether it was delivered before.
    pub redelivered: bool,
    /// Whether the receiver must acknowledge it.
    pub needs_ack: bool,
    /// A stream delivery: `offset` is the stream offset to show in `x-stream-offset`.
    pub stream: bool,
    /// The stored record: header fields read with [`super::message::MessageView`], body as
    /// stored.
    pub record: Record,
    /// Ready messages left in the queue (for `basic.get-ok`).
    pub message_count: u32,
}

/// What a consumer's sink receives.
#[derive(Debug)]
pub enum ConsumerEvent {
    /// A message.
    Deliver(Delivery),
    /// The queue cancelled the consumer (the queue was deleted).
    Cancelled {
        /// The consumer's channel.
        channel: ChannelId,
        /// The consumer's tag.
        consumer_tag: Bytes,
    },
}

/// A consumer as registered with a queue.
#[derive(Debug)]
pub struct ConsumerSpec {
    /// The channel it belongs to.
    pub channel: ChannelId,
    /// Its tag, unique within the channel.
    pub tag: Bytes,
    /// Where deliveries go.
    pub sink: mpsc::Sender<ConsumerEvent>,
    /// Most unacked deliveries for this consumer; 0 means no limit.
    pub prefetch: u32,
    /// The channel's shared prefetch.
    pub channel_credit: Arc<ChannelCredit>,
    /// Deliveries need no ack.
    pub no_ack: bool,
    /// Wants the queue to itself.
    pub exclusive: bool,
    /// Higher priorities are served first (`x-priority`).
    pub priority: i32,
    /// Where a stream consumer starts and under which name its offset is kept.
    pub stream: Option<StreamAttach>,
}

/// Errors a queue answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue has an exclusive consumer, or one was asked for while others exist.
    #[error("queue '{queue}' in exclusive use")]
    ExclusiveUse {
        /// The queue.
        queue: String,
    },
    /// The queue is gone.
    #[error("queue '{queue}' is deleted")]
    Deleted {
        /// The queue.
        queue: String,
    },
}
