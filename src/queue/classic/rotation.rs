//! A classic queue's consumers in the order it serves them: round-robin, message by message,
//! among the consumers of the highest priority that can take a message now, whatever their
//! prefetch and whether they share a channel or a connection (as RabbitMQ does).
//!
//! The consumers sit in a ring with a turn: the index of the one served next. Only a message
//! actually handed over moves the turn (to just past the consumer that got it), so a pass of
//! dispatch that finds nothing to deliver leaves it where it was. A new consumer joins at the
//! end of the round, just before the turn, as RabbitMQ puts it at the tail of its active
//! consumers. Plain values owned by the queue's task: picking is one scan of the ring, with no
//! allocation or lock.

use std::ops::{Deref, DerefMut};

use crate::queue::credit::Consumer;

/// The consumers of a classic queue and whose turn it is.
///
/// Invariant: `turn < consumers.len()`, or `turn == 0` when there are none.
#[derive(Debug, Default)]
pub(super) struct Rotation {
    consumers: Vec<Consumer>,
    turn: usize,
}

impl Rotation {
    /// Adds `consumer` at the end of the current round: every other consumer is served once
    /// more before it.
    pub(super) fn add(&mut self, consumer: Consumer) {
        let at = self.turn;
        self.consumers.insert(at, consumer);
        self.turn = (at + 1) % self.consumers.len();
        self.check();
    }

    /// Removes the consumers for which `gone` holds; the others keep their order and the
    /// turn stays with the same consumer (or the next one left, if that one went).
    pub(super) fn remove_where(&mut self, mut gone: impl FnMut(&Consumer) -> bool) {
        let mut index = 0;
        let mut turn = self.turn;
        self.consumers.retain(|consumer| {
            let keep = !gone(consumer);
            if !keep && index < self.turn {
                turn -= 1;
            }
            index += 1;
            keep
        });
        self.turn = if turn >= self.consumers.len() { 0 } else { turn };
        self.check();
    }

    /// Removes every consumer.
    pub(super) fn drain(&mut self) -> std::vec::Drain<'_, Consumer> {
        self.turn = 0;
        self.consumers.drain(..)
    }

    /// The consumer to serve next: the first from the turn on that can take a message, among
    /// those of the highest priority that can. Moves nothing (see [`Rotation::served`]).
    #[inline]
    pub(super) fn pick(&self) -> Option<usize> {
        let count = self.consumers.len();
        let mut chosen: Option<(usize, i32)> = None;
        for step in 0..count {
            let index = (self.turn + step) % count;
            let consumer = &self.consumers[index];
            let better = match chosen {
                None => true,
                Some((_, priority)) => consumer.spec.priority > priority,
            };
            if better && consumer.can_take() {
                chosen = Some((index, consumer.spec.priority));
            }
        }
        chosen.map(|(index, _)| index)
    }

    /// The consumer at `index` was handed a message: the turn passes to the next one.
    #[inline]
    pub(super) fn served(&mut self, index: usize) {
        assert!(index < self.consumers.len(), "served a consumer that is not in the ring");
        self.turn = (index + 1) % self.consumers.len();
    }

    fn check(&self) {
        assert!(self.turn < self.consumers.len() || self.turn == 0, "turn out of the ring");
    }
}

impl Deref for Rotation {
    type Target = [Consumer];

    fn deref(&self) -> &[Consumer] {
        &self.consumers
    }
}

impl DerefMut for Rotation {
    fn deref_mut(&mut self) -> &mut [Consumer] {
        &mut self.consumers
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::*;
    use crate::queue::api::{ChannelCredit, ConsumerEvent, ConsumerSpec};

    fn consumer(
        tag: &'static str,
        priority: i32,
        prefetch: u32,
    ) -> (Consumer, mpsc::Receiver<ConsumerEvent>) {
        let (sink, events) = mpsc::channel(8);
        let spec = ConsumerSpec {
            channel: 1,
            tag: Bytes::from_static(tag.as_bytes()),
            sink,
            prefetch,
            channel_credit: Arc::new(ChannelCredit::default()),
            no_ack: false,
            exclusive: false,
            priority,
            stream: None,
        };
        (Consumer::new(spec), events)
    }

    fn ring(tags: &[&'static str]) -> (Rotation, Vec<mpsc::Receiver<ConsumerEvent>>) {
        let mut rotation = Rotation::default();
        let mut sinks = Vec::new();
        for tag in tags {
            let (c, events) = consumer(tag, 0, 0);
            rotation.add(c);
            sinks.push(events);
        }
        (rotation, sinks)
    }

    /// Serves `n` messages; the tags in the order they were served.
    fn serve(rotation: &mut Rotation, n: usize) -> Vec<String> {
        let mut order = Vec::new();
        for _ in 0..n {
            let Some(index) = rotation.pick() else { break };
            assert!(rotation[index].take());
            order.push(String::from_utf8_lossy(&rotation[index].spec.tag).into_owned());
            rotation.served(index);
        }
        order
    }

    #[test]
    fn serves_in_the_order_consumers_came() {
        let (mut rotation, _sinks) = ring(&["a", "b", "c"]);
        assert_eq!(serve(&mut rotation, 7), ["a", "b", "c", "a", "b", "c", "a"]);
    }

    #[test]
    fn picking_without_serving_keeps_the_turn() {
        let (mut rotation, _sinks) = ring(&["a", "b"]);
        let first = rotation.pick().expect("a consumer with room");
        assert_eq!(&rotation[first].spec.tag[..], b"a");
        for _ in 0..5 {
            assert_eq!(rotation.pick(), Some(first));
        }
        assert_eq!(serve(&mut rotation, 4), ["a", "b", "a", "b"]);
    }

    #[test]
    fn a_new_consumer_waits_for_the_end_of_the_round() {
        let (mut rotation, mut sinks) = ring(&["a", "b"]);
        assert_eq!(serve(&mut rotation, 1), ["a"]);
        let (c, events) = consumer("c", 0, 0);
        rotation.add(c);
        sinks.push(events);
        assert_eq!(serve(&mut rotation, 6), ["b", "a", "c", "b", "a", "c"]);
    }

    #[test]
    fn removing_keeps_the_turn_with_the_same_consumer() {
        let (mut rotation, _sinks) = ring(&["a", "b", "c", "d"]);
        assert_eq!(serve(&mut rotation, 2), ["a", "b"]);
        rotation.remove_where(|c| &c.spec.tag[..] == b"a");
        assert_eq!(serve(&mut rotation, 3), ["c", "d", "b"]);
        rotation.remove_where(|c| &c.spec.tag[..] == b"c");
        assert_eq!(serve(&mut rotation, 2), ["d", "b"]);
        rotation.remove_where(|_| true);
        assert_eq!(rotation.pick(), None);
        let (c, _events) = consumer("a", 0, 0);
        rotation.add(c);
        assert_eq!(serve(&mut rotation, 2), ["a", "a"]);
    }

    #[test]
    fn skips_consumers_without_credit() {
        let mut rotation = Rotation::default();
        let (a, _a) = consumer("a", 0, 1);
        let (b, _b) = consumer("b", 0, 0);
        rotation.add(a);
        rotation.add(b);
        assert_eq!(serve(&mut rotation, 4), ["a", "b", "b", "b"]);
        let a = rotation.iter().position(|c| &c.spec.tag[..] == b"a").expect("a is in the ring");
        rotation[a].settled();
        assert_eq!(serve(&mut rotation, 2), ["a", "b"]);
    }

    #[test]
    fn the_highest_priority_with_credit_goes_first() {
        let mut rotation = Rotation::default();
        let (low, _l) = consumer("a", 1, 0);
        let (high, _h) = consumer("b", 5, 2);
        let (other_high, _o) = consumer("c", 5, 1);
        rotation.add(low);
        rotation.add(high);
        rotation.add(other_high);
        assert_eq!(serve(&mut rotation, 5), ["b", "c", "b", "a", "a"]);
    }
}
