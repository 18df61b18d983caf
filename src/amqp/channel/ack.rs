//! Acknowledgements: the delivery tags a channel hands out, the deliveries the client has
//! not settled yet, and `basic.ack`, `basic.nack`, `basic.reject` and `basic.recover`.
//! Delivery tags increase per channel in the order deliveries are written.

use std::sync::atomic::Ordering;

use crate::broker::connections::MessageCounters;
use std::sync::Arc;

use super::tx::settle_in_queue;
use super::{Channel, Context};
use crate::amqp::reply::{ProtocolError, Reply};
use crate::broker::QueueEntry;
use crate::seq_map::SeqMap;
use crate::wire::amqp::BasicRecoverOk;

/// A delivery the client has not acknowledged yet.
pub(super) struct Unacked {
    /// The queue it came from.
    pub(super) queue: Arc<QueueEntry>,
    /// Its offset in the queue's log.
    pub(super) offset: u64,
    /// Counted against the channel's shared prefetch (consumer deliveries, not gets).
    pub(super) counted: bool,
}

/// A channel's delivery tags and unacked deliveries.
pub(super) struct Deliveries {
    /// The tag of the next delivery.
    next_tag: u64,
    pub(super) unacked: SeqMap<Unacked>,
    /// Deliveries that reached the channel after their consumer was cancelled, not written:
    /// requeued (`Connection::requeue_undelivered`) before the connection reads its next
    /// input, so that they reach their queue before any later command of the channel. At
    /// most one turn's consumer events.
    pub(super) undelivered: Vec<(Arc<QueueEntry>, u64)>,
}

impl Default for Deliveries {
    fn default() -> Deliveries {
        Deliveries { next_tag: 1, unacked: SeqMap::new(), undelivered: Vec::new() }
    }
}

impl Deliveries {
    /// Tags a delivery; one that needs an ack is remembered as `unacked`.
    pub(super) fn tag(&mut self, unacked: Option<Unacked>) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        if let Some(unacked) = unacked {
            self.unacked.insert(tag, unacked);
        }
        tag
    }
}

impl Channel {
    /// ack (`requeue` None), reject or nack (`requeue` Some) of `delivery_tag`, or with
    /// `multiple` of every unacked delivery up to it (all of them for tag 0).
    pub(super) async fn settle(
        &mut self,
        delivery_tag: u64,
        multiple: bool,
        requeue: Option<bool>,
    ) -> Result<(), Reply> {
        let unacked = &mut self.deliveries.unacked;
        let settled: Vec<(u64, Unacked)> = if multiple {
            let upto = if delivery_tag == 0 { u64::MAX } else { delivery_tag };
            if delivery_tag != 0 && !unacked.contains_key(delivery_tag) {
                return Err(ProtocolError::UnknownDeliveryTag(delivery_tag).into());
            }
            unacked.remove_through(upto)
        } else {
            match unacked.remove(delivery_tag) {
                Some(unacked) => vec![(delivery_tag, unacked)],
                None => return Err(ProtocolError::UnknownDeliveryTag(delivery_tag).into()),
            }
        };
        let counted = settled.iter().filter(|(_, u)| u.counted).count() as u32;
        self.consumers.credit().give_back(counted);
        if requeue.is_none() {
            MessageCounters::add(&self.stats.messages.ack, settled.len() as u64);
        }
        self.stats.unacknowledged.store(self.deliveries.unacked.len() as u64, Ordering::Relaxed);
        // A channel's deliveries come from few queues: a short list beats hashing names.
        let mut by_queue: Vec<(Arc<QueueEntry>, Vec<u64>)> = Vec::new();
        for (_, unacked) in settled {
            match by_queue.iter_mut().find(|(queue, _)| queue.id == unacked.queue.id) {
                Some((_, offsets)) => offsets.push(unacked.offset),
                None => by_queue.push((unacked.queue, vec![unacked.offset])),
            }
        }
        for (queue, offsets) in by_queue {
            if self.tx.enabled() {
                self.tx.hold_settlement(queue, offsets, requeue)?;
                self.show_uncommitted();
            } else {
                settle_in_queue(&queue, self.id, offsets, requeue).await;
            }
        }
        Ok(())
    }

    /// `basic.recover` (answered with recover-ok when `reply`) and `basic.recover-async`:
    /// every unacked delivery goes back to its queue for redelivery.
    pub(super) async fn recover(&mut self, cx: &mut Context<'_>, reply: bool) {
        let unacked = std::mem::take(&mut self.deliveries.unacked);
        let counted = unacked.values().filter(|u| u.counted).count() as u32;
        self.consumers.credit().give_back(counted);
        for queue in self.consumers.touched() {
            queue.handle.recover(self.id).await;
        }
        if reply {
            cx.out.method(self.number(), &BasicRecoverOk::default().into());
        }
    }
}
