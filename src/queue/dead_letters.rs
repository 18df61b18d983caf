//! A queue's way out for dead messages: one bounded, ordered channel per queue, whose other
//! end the broker drains (routing each message to the dead-letter exchange and appending it
//! to the queues reached, in the order received). Messages that die together (a nack of
//! several, a batch past its TTL, the head dropped for a length limit) therefore reach every
//! dead-letter queue in the order they had in their source, as in RabbitMQ.
//!
//! The queue's task kills messages in plain (not async) code, so a dead message first goes
//! to [`DeadLetters::push`], which hands it on at once when the channel has room and else
//! stages it behind the others; the task empties the stage with [`DeadLetters::flush`],
//! which waits for room, before it takes its next command or looks at new appends.
//!
//! Why waiting here cannot deadlock: the channel's receiver (the broker's drain task) waits
//! only for log writers (submitting appends and their commit), and a log writer waits only
//! for its storage; none of them ever waits for a queue task or a connection. So a queue
//! that dead-letters into itself, or two queues that dead-letter into each other, only ever
//! wait on their logs' writers, never on each other's tasks.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use super::api::{DeadMessage, DeathReason};
use super::message::Message;
use crate::limits::DEAD_LETTERS_QUEUED_MAX;

/// The sending end of a queue's dead-letter channel, with the messages staged behind it.
#[derive(Debug)]
pub struct DeadLetters {
    sender: mpsc::Sender<DeadMessage>,
    /// Dead messages not yet in the channel, oldest first. It holds at most what one turn
    /// of the queue's task kills (one command's rejects, the expired or over-limit head),
    /// and every message in it has left the queue: the queue's messages move here, they are
    /// not copied, so the stage and the queue together never hold more than the queue held.
    /// Emptied (by [`DeadLetters::flush`]) before the task takes any new input.
    staged: VecDeque<DeadMessage>,
}

impl DeadLetters {
    /// A queue's dead-letter channel (bounded by [`DEAD_LETTERS_QUEUED_MAX`]): the end the
    /// queue sends on, and the receiver that must be drained in order.
    pub fn channel() -> (DeadLetters, mpsc::Receiver<DeadMessage>) {
        let (sender, receiver) = mpsc::channel(DEAD_LETTERS_QUEUED_MAX);
        (DeadLetters { sender, staged: VecDeque::new() }, receiver)
    }

    /// Takes a message that died, after every message taken before it.
    pub fn push(&mut self, message: Message, reason: DeathReason) {
        let dead = DeadMessage { message, reason };
        if !self.staged.is_empty() {
            self.staged.push_back(dead);
            return;
        }
        match self.sender.try_send(dead) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(dead)) => self.staged.push_back(dead),
            // The broker is gone (shutting down): nothing routes dead messages any more.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Whether messages wait in the stage for room in the channel.
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// Hands every staged message to the channel, in order, waiting for room.
    pub async fn flush(&mut self) {
        while let Some(dead) = self.staged.pop_front() {
            if self.sender.send(dead).await.is_err() {
                self.staged.clear();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::limits::DEAD_LETTERS_QUEUED_MAX;

    fn message(n: u8) -> Message {
        Message {
            persistent: false,
            priority: 0,
            expires_at_ms: None,
            exchange: Bytes::new(),
            routing_key: Bytes::new(),
            content_header: Bytes::new(),
            body: Bytes::from(vec![n]),
        }
    }

    #[tokio::test]
    async fn a_full_channel_stages_and_flush_keeps_the_order() {
        let (mut out, mut receiver) = DeadLetters::channel();
        let total = DEAD_LETTERS_QUEUED_MAX + 10;
        for n in 0..total {
            out.push(message((n % 251) as u8), DeathReason::Rejected);
        }
        assert!(out.has_staged());
        let drain = tokio::spawn(async move {
            let mut bodies = Vec::new();
            while let Some(dead) = receiver.recv().await {
                bodies.push(dead.message.body[0]);
            }
            bodies
        });
        out.flush().await;
        assert!(!out.has_staged());
        drop(out);
        let bodies = drain.await.expect("drain");
        let expected: Vec<u8> = (0..total).map(|n| (n % 251) as u8).collect();
        assert_eq!(bodies, expected);
    }
}
