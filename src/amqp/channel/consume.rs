//! Consumers: `basic.qos`, `basic.consume` (with a stream's attach arguments and direct
//! reply-to's hidden queue) and `basic.cancel`, and the queues a channel has touched.

use std::sync::PoisonError;

use crate::broker::access::Permission;
use crate::broker::connections::ConsumerInfo;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use bytes::Bytes;

use super::publish::REPLY_TO;
use super::{Channel, Context};
use crate::amqp::output::short;
use crate::amqp::reply::{queue_error, ProtocolError, Reply, StreamRefusal};
use crate::broker::{self, generated_name, QueueEntry};
use crate::limits::TOUCHED_QUEUES_PRUNE_MIN;
use crate::log::now_ms;
use crate::queue::stream::{StreamAttach, StreamOffset};
use crate::queue::{ChannelCredit, ChannelId, ConsumerSpec};
use crate::wire::amqp::{
    BasicCancel, BasicCancelOk, BasicConsume, BasicConsumeOk, BasicQos, BasicQosOk, FieldValue,
};

/// A consumer of this channel.
pub(super) struct ConsumerEntry {
    /// The queue it consumes from.
    pub(super) queue: Arc<QueueEntry>,
}

/// A channel's consumers, prefetch, and the queues it has consumed or got from.
#[derive(Default)]
pub(super) struct Consumers {
    /// By consumer tag.
    entries: HashMap<Bytes, ConsumerEntry, foldhash::fast::RandomState>,
    /// Per-consumer prefetch given to consumers started from now on (0: none).
    prefetch: u16,
    /// The channel's shared prefetch (`basic.qos` with `global`).
    credit: Arc<ChannelCredit>,
    /// Queues this channel consumed or got from, by name: told when the channel closes.
    /// Held weakly, so that a deleted queue's log and files go with its last strong holder
    /// (its consumers and unacked deliveries hold it strongly while they need it). Entries
    /// whose queue is gone are pruned once the map reaches `touched_prune_at`, so it holds
    /// at most twice the live queues this channel touched, and never fewer than
    /// [`TOUCHED_QUEUES_PRUNE_MIN`] before a prune.
    touched: HashMap<Bytes, Weak<QueueEntry>, foldhash::fast::RandomState>,
    /// Size of `touched` at which its dead entries are pruned next.
    touched_prune_at: usize,
    /// The hidden queue behind direct reply-to, once a reply-to consumer exists.
    reply_to_queue: Option<Bytes>,
}

impl Consumers {
    /// The consumer tagged `tag`.
    pub(super) fn get(&self, tag: &[u8]) -> Option<&ConsumerEntry> {
        self.entries.get(tag)
    }

    /// Forgets the consumer tagged `tag`; whether there was one.
    pub(super) fn remove(&mut self, tag: &[u8]) -> bool {
        self.entries.remove(tag).is_some()
    }

    /// The channel's shared prefetch.
    pub(super) fn credit(&self) -> &ChannelCredit {
        &self.credit
    }

    /// The queues this channel consumed or got from.
    /// The queues this channel consumed or got from that still exist.
    pub(super) fn touched(&self) -> impl Iterator<Item = Arc<QueueEntry>> + '_ {
        self.touched.values().filter_map(Weak::upgrade)
    }

    /// The queue named `name` if this channel has touched it and it still exists.
    pub(super) fn touched_queue(&self, name: &[u8]) -> Option<Arc<QueueEntry>> {
        self.touched.get(name).and_then(Weak::upgrade)
    }

    /// Remembers that this channel consumes or gets from `queue`. Not on a per-message
    /// path: called by `basic.consume` and `basic.get`; the prune it may run is amortised
    /// over the inserts that doubled the map.
    pub(super) fn touch(&mut self, queue: &Arc<QueueEntry>) {
        self.touched.insert(queue.name.clone(), Arc::downgrade(queue));
        if self.touched.len() >= self.touched_prune_at.max(TOUCHED_QUEUES_PRUNE_MIN) {
            self.touched.retain(|_, queue| queue.strong_count() > 0);
            self.touched_prune_at = self.touched.len().saturating_mul(2);
        }
    }

    /// The hidden queue behind direct reply-to, if a reply-to consumer exists.
    pub(super) fn reply_to_queue(&self) -> Option<&Bytes> {
        self.reply_to_queue.as_ref()
    }

    /// Cancels every consumer of the closed channel `channel`; returns the queues left
    /// without consumers.
    pub(super) async fn cancel_all(&self, channel: ChannelId) -> Vec<Arc<QueueEntry>> {
        let mut emptied = Vec::new();
        for (tag, consumer) in &self.entries {
            if let Ok(true) = consumer.queue.handle.cancel(channel, tag.clone()).await {
                emptied.push(Arc::clone(&consumer.queue));
            }
        }
        emptied
    }
}

impl Channel {
    /// `basic.qos`: the prefetch of consumers started from now on, or (`global`) of the
    /// whole channel.
    pub(super) fn qos(&mut self, cx: &mut Context<'_>, qos: &BasicQos) -> Result<(), Reply> {
        if qos.prefetch_size != 0 {
            return Err(ProtocolError::PrefetchSize(qos.prefetch_size).into());
        }
        if qos.global {
            self.consumers.credit.limit.store(u32::from(qos.prefetch_count), Ordering::Release);
            self.stats.global_prefetch_count.store(u32::from(qos.prefetch_count), Ordering::Relaxed);
        } else {
            self.consumers.prefetch = qos.prefetch_count;
            self.stats.prefetch_count.store(u32::from(qos.prefetch_count), Ordering::Relaxed);
        }
        cx.out.method(self.number(), &BasicQosOk::default().into());
        Ok(())
    }

    /// `basic.consume`.
    pub(super) async fn consume(&mut self, cx: &mut Context<'_>, consume: BasicConsume) -> Result<(), Reply> {
        let mut queue_name = self.queue_name(consume.queue.as_bytes());
        if queue_name == REPLY_TO {
            queue_name = self.reply_to_queue(cx).await?;
        } else {
            cx.permit_queue(&queue_name, Permission::Read)?;
        }
        let queue = cx.broker.queue_for(&queue_name, cx.connection).map_err(|e| Reply::from(&e))?;
        let stream = if queue.is_stream() { Some(self.stream_attach(cx, &queue, &consume)?) } else { None };
        let tag = if consume.consumer_tag.is_empty() {
            Bytes::from(generated_name("amq.ctag-"))
        } else {
            consume.consumer_tag.to_bytes()
        };
        if self.consumers.entries.contains_key(&tag) {
            let tag = String::from_utf8_lossy(&tag).into_owned();
            return Err(ProtocolError::ConsumerTagReused(tag).into());
        }
        let priority = consume
            .arguments
            .get_i64("x-priority")
            .unwrap_or(0)
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        let spec = ConsumerSpec {
            channel: self.id,
            tag: tag.clone(),
            sink: cx.events.clone(),
            prefetch: u32::from(self.consumers.prefetch),
            channel_credit: Arc::clone(&self.consumers.credit),
            no_ack: consume.no_ack,
            exclusive: consume.exclusive,
            priority,
            stream,
        };
        self.consumers.touch(&queue);
        self.consumers.entries.insert(tag.clone(), ConsumerEntry { queue: Arc::clone(&queue) });
        queue.touch();
        // Deliveries reach this connection's event queue, which is served only after this
        // frame is handled: the consume-ok below still precedes every delivery on the wire.
        if let Err(error) = queue.handle.consume(spec).await {
            self.consumers.entries.remove(&tag);
            return Err(queue_error(&error, cx.broker.vhost()));
        }
        let listed = ConsumerInfo {
            tag: tag.clone(),
            queue: queue.name.clone(),
            ack_required: !consume.no_ack,
            exclusive: consume.exclusive,
            prefetch_count: u32::from(self.consumers.prefetch),
            arguments: consume.arguments.clone(),
        };
        self.stats.consumers.lock().unwrap_or_else(PoisonError::into_inner).insert(tag.clone(), listed);
        if !consume.no_wait {
            cx.out.method(self.number(), &BasicConsumeOk { consumer_tag: short(&tag) }.into());
        }
        Ok(())
    }

    /// Forgets the consumer tagged `tag` in the channel's listing.
    pub(super) fn unlist_consumer(&self, tag: &[u8]) {
        self.stats.consumers.lock().unwrap_or_else(PoisonError::into_inner).remove(tag);
    }

    /// Checks a consume on a stream as RabbitMQ does and reads its offset specification.
    fn stream_attach(
        &self,
        cx: &Context<'_>,
        queue: &QueueEntry,
        consume: &BasicConsume,
    ) -> Result<StreamAttach, Reply> {
        let name = || cx.broker.named(&queue.name);
        if consume.no_ack {
            return Err(StreamRefusal::AutoAck { queue: name() }.into());
        }
        if self.consumers.prefetch == 0 && self.consumers.credit.limit.load(Ordering::Acquire) == 0 {
            return Err(StreamRefusal::PrefetchUnset { queue: name() }.into());
        }
        let offset = match consume.arguments.get("x-stream-offset") {
            None => None,
            Some(value) => {
                Some(stream_offset(value).ok_or_else(|| StreamRefusal::InvalidOffset { queue: name() })?)
            }
        };
        let name = consume.arguments.get_str("x-stream-consumer-name").map(str::to_owned).or_else(|| {
            (!consume.consumer_tag.is_empty())
                .then(|| String::from_utf8_lossy(consume.consumer_tag.as_bytes()).into_owned())
        });
        Ok(StreamAttach { offset, name })
    }

    /// Creates the hidden queue behind this channel's direct reply-to consumer.
    async fn reply_to_queue(&mut self, cx: &mut Context<'_>) -> Result<Bytes, Reply> {
        if let Some(existing) = &self.consumers.reply_to_queue {
            return Ok(existing.clone());
        }
        let name = Bytes::from(generated_name("amq.rabbitmq.reply-to."));
        let request = broker::QueueDeclare {
            name: name.clone(),
            exclusive: true,
            auto_delete: true,
            connection: cx.connection,
            ..Default::default()
        };
        cx.broker.create_queue(&request, broker::QueueArgs::default()).await.map_err(|e| Reply::from(&e))?;
        self.consumers.reply_to_queue = Some(name.clone());
        Ok(name)
    }

    /// `basic.cancel`.
    pub(super) async fn cancel(&mut self, cx: &mut Context<'_>, cancel: BasicCancel) {
        let tag = cancel.consumer_tag.to_bytes();
        self.unlist_consumer(&tag);
        if let Some(entry) = self.consumers.entries.remove(&tag) {
            if let Ok(true) = entry.queue.handle.cancel(self.id, tag).await {
                cx.broker.consumers_gone(&entry.queue).await;
            }
        }
        if !cancel.no_wait {
            cx.out.method(self.number(), &BasicCancelOk { consumer_tag: cancel.consumer_tag }.into());
        }
    }
}

/// Reads `x-stream-offset`: `first`, `last`, `next`, an offset (negative: that many before
/// the end), an AMQP timestamp (seconds), or an interval such as `1h` or `30m` (that long
/// ago).
fn stream_offset(value: &FieldValue) -> Option<StreamOffset> {
    match value {
        FieldValue::Timestamp(seconds) => {
            Some(StreamOffset::TimestampMs(i64::try_from(*seconds).ok()?.saturating_mul(1000)))
        }
        FieldValue::LongStr(text) => match &**text {
            b"first" => Some(StreamOffset::First),
            b"last" => Some(StreamOffset::Last),
            b"next" => Some(StreamOffset::Next),
            other => {
                let interval = crate::broker::arguments::parse_max_age(std::str::from_utf8(other).ok()?)?;
                Some(StreamOffset::TimestampMs(now_ms().saturating_sub(interval.as_millis() as i64)))
            }
        },
        other => {
            let number = other.as_i64()?;
            Some(if number < 0 {
                StreamOffset::FromEnd(number.unsigned_abs())
            } else {
                StreamOffset::Offset(number as u64)
            })
        }
    }
}
