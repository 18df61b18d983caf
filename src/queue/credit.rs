//! Delivery credit, shared by both queue kinds: a consumer may be handed a message only while
//! its sink has room, its own prefetch (`basic.qos` per consumer) is not used up and its
//! channel's shared prefetch ([`ChannelCredit`]) allows it.
//!
//! [`Consumer`] pairs a [`ConsumerSpec`] with the deliveries it holds unacked. It is a plain
//! value owned by the queue's task: every check is a few loads and compares, inlined into
//! dispatch, with no allocation or lock per message. It knows no log, frame or socket.

use tokio::sync::mpsc;

#[cfg(doc)]
use super::api::ChannelCredit;
use super::api::{ConsumerEvent, ConsumerSpec};

/// A consumer as a queue's task keeps it: its spec and its own unacked count.
///
/// Invariant: `unacked` counts the deliveries taken with [`Consumer::take`] and not yet
/// returned with [`Consumer::refused`] or [`Consumer::settled`]; it stays 0 for a consumer
/// with `no_ack`.
#[derive(Debug)]
pub(super) struct Consumer {
    /// What it asked for.
    pub(super) spec: ConsumerSpec,
    /// Delivered to it, not yet acknowledged or rejected.
    unacked: u32,
}

impl Consumer {
    /// A consumer holding nothing yet.
    pub(super) fn new(spec: ConsumerSpec) -> Consumer {
        Consumer { spec, unacked: 0 }
    }

    /// Deliveries it holds unacked.
    #[inline]
    pub(super) fn unacked(&self) -> u32 {
        self.unacked
    }

    /// Whether its own prefetch allows one more delivery (always, without acks).
    #[inline]
    fn within_prefetch(&self) -> bool {
        let spec = &self.spec;
        spec.no_ack || spec.prefetch == 0 || self.unacked < spec.prefetch
    }

    /// Whether it can be handed a message now: room in its sink, within its own prefetch
    /// and its channel's. A consumer without acks needs only sink room.
    #[inline]
    pub(super) fn can_take(&self) -> bool {
        let spec = &self.spec;
        if spec.sink.capacity() == 0 {
            return false;
        }
        if spec.no_ack {
            return true;
        }
        self.within_prefetch() && spec.channel_credit.has_room()
    }

    /// Whether only its full sink (a slow socket) keeps it from taking a message: the queue
    /// then waits for room in that sink rather than for the next tick.
    #[inline]
    pub(super) fn is_blocked(&self) -> bool {
        self.spec.sink.capacity() == 0 && self.within_prefetch()
    }

    /// Its sink, when only a full sink keeps it from taking a message.
    pub(super) fn blocked_sink(&self) -> Option<mpsc::Sender<ConsumerEvent>> {
        self.is_blocked().then(|| self.spec.sink.clone())
    }

    /// Takes the credit one delivery needs, from its channel and then its own count. Returns
    /// false, taking nothing, when the channel's shared prefetch is used up. Without acks
    /// there is nothing to take.
    #[inline]
    pub(super) fn take(&mut self) -> bool {
        if self.spec.no_ack {
            return true;
        }
        if !self.spec.channel_credit.try_take() {
            return false;
        }
        self.unacked += 1;
        true
    }

    /// Gives back what [`Consumer::take`] took for a delivery its sink refused: the
    /// delivery never left, so the channel's credit comes back too.
    #[inline]
    pub(super) fn refused(&mut self) {
        if self.spec.no_ack {
            return;
        }
        self.spec.channel_credit.give_back(1);
        self.unacked = self.unacked.saturating_sub(1);
    }

    /// One of its deliveries was acknowledged or rejected. Only its own count changes: the
    /// channel returns its shared credit itself when it sends the ack or reject.
    #[inline]
    pub(super) fn settled(&mut self) {
        self.unacked = self.unacked.saturating_sub(1);
    }
}

/// Resolves once `sink` has room again (the slot is released at once).
pub(super) async fn wait_for_room(sink: Option<&mpsc::Sender<ConsumerEvent>>) {
    if let Some(sink) = sink {
        let _ = sink.reserve().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::queue::api::ChannelCredit;

    fn consumer(
        prefetch: u32,
        no_ack: bool,
        channel: &Arc<ChannelCredit>,
        sink_slots: usize,
    ) -> (Consumer, mpsc::Receiver<ConsumerEvent>) {
        let (sink, events) = mpsc::channel(sink_slots);
        let spec = ConsumerSpec {
            channel: 1,
            tag: Bytes::from_static(b"ctag"),
            sink,
            prefetch,
            channel_credit: Arc::clone(channel),
            no_ack,
            exclusive: false,
            priority: 0,
            stream: None,
        };
        (Consumer::new(spec), events)
    }

    fn cancelled() -> ConsumerEvent {
        ConsumerEvent::Cancelled { channel: 1, consumer_tag: Bytes::new() }
    }

    #[test]
    fn own_prefetch_bounds_takes() {
        let channel = Arc::new(ChannelCredit::default());
        let (mut consumer, _events) = consumer(2, false, &channel, 8);
        assert!(consumer.can_take() && consumer.take());
        assert!(consumer.can_take() && consumer.take());
        assert!(!consumer.can_take());
        assert_eq!(consumer.unacked(), 2);
        assert_eq!(channel.unacked.load(Ordering::Acquire), 2);
        consumer.settled();
        assert!(consumer.can_take());
        assert_eq!(consumer.unacked(), 1);
    }

    #[test]
    fn prefetch_zero_means_no_limit() {
        let channel = Arc::new(ChannelCredit::default());
        let (mut consumer, _events) = consumer(0, false, &channel, 8);
        for _ in 0..1000 {
            assert!(consumer.can_take() && consumer.take());
        }
        assert_eq!(consumer.unacked(), 1000);
    }

    #[test]
    fn channel_prefetch_is_shared_between_consumers() {
        let channel = Arc::new(ChannelCredit::default());
        channel.limit.store(1, Ordering::Release);
        let (mut first, _a) = consumer(0, false, &channel, 8);
        let (mut second, _b) = consumer(0, false, &channel, 8);
        assert!(first.take());
        assert!(!second.can_take());
        assert!(!second.take(), "the channel's credit is used up");
        assert_eq!(second.unacked(), 0, "a refused take takes nothing");
        channel.give_back(1);
        assert!(second.can_take() && second.take());
    }

    #[test]
    fn refused_delivery_returns_both_credits() {
        let channel = Arc::new(ChannelCredit::default());
        channel.limit.store(1, Ordering::Release);
        let (mut consumer, _events) = consumer(1, false, &channel, 8);
        assert!(consumer.take());
        assert!(!consumer.can_take());
        consumer.refused();
        assert_eq!(consumer.unacked(), 0);
        assert_eq!(channel.unacked.load(Ordering::Acquire), 0);
        assert!(consumer.can_take());
    }

    #[test]
    fn settled_leaves_channel_credit_to_the_channel() {
        let channel = Arc::new(ChannelCredit::default());
        let (mut consumer, _events) = consumer(1, false, &channel, 8);
        assert!(consumer.take());
        consumer.settled();
        assert_eq!(consumer.unacked(), 0);
        assert_eq!(channel.unacked.load(Ordering::Acquire), 1);
    }

    #[test]
    fn no_ack_consumers_hold_no_credit() {
        let channel = Arc::new(ChannelCredit::default());
        channel.limit.store(1, Ordering::Release);
        channel.unacked.store(1, Ordering::Release);
        let (mut consumer, _events) = consumer(1, true, &channel, 8);
        for _ in 0..10 {
            assert!(consumer.can_take() && consumer.take());
        }
        consumer.refused();
        assert_eq!(consumer.unacked(), 0);
        assert_eq!(channel.unacked.load(Ordering::Acquire), 1);
    }

    #[test]
    fn full_sink_blocks_only_a_consumer_with_room() {
        let channel = Arc::new(ChannelCredit::default());
        let (mut consumer, _events) = consumer(1, false, &channel, 1);
        consumer.spec.sink.try_send(cancelled()).expect("one slot");
        assert!(!consumer.can_take());
        assert!(consumer.is_blocked());
        assert!(consumer.blocked_sink().is_some());
        assert!(consumer.take());
        assert!(!consumer.is_blocked(), "prefetch is used up: room in the sink would not help");
        assert!(consumer.blocked_sink().is_none());
    }

    #[test]
    fn blocked_ignores_the_channel_limit() {
        let channel = Arc::new(ChannelCredit::default());
        channel.limit.store(1, Ordering::Release);
        channel.unacked.store(1, Ordering::Release);
        let (consumer, _events) = consumer(0, false, &channel, 1);
        consumer.spec.sink.try_send(cancelled()).expect("one slot");
        assert!(consumer.is_blocked());
    }
}
