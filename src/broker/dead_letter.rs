//! The dead-letter sink: where a queue's dead messages go. It routes each through the
//! broker to the queue's dead-letter exchange and appends it to the queues reached.
//!
//! The message itself (its `x-death` history, dropped expiration, re-encoded content
//! header) is edited by `queue::death`; this file decodes no headers. No frames, no I/O
//! beyond handing records to queue logs.

use std::sync::Weak;

use bytes::Bytes;

use super::Broker;
use crate::queue::message::Message;
use crate::queue::{DeadLetter, DeathReason};

/// Sends a queue's dead messages to its dead-letter exchange.
#[derive(Debug)]
pub struct DeadLetterSink {
    /// The broker, to route through.
    pub broker: Weak<Broker>,
    /// `x-dead-letter-exchange`.
    pub exchange: Bytes,
    /// `x-dead-letter-routing-key`; else the message's own key.
    pub routing_key: Option<Bytes>,
}

impl DeadLetter for DeadLetterSink {
    fn dead_letter(&self, queue: &str, message: Message, reason: DeathReason) {
        let Some(broker) = self.broker.upgrade() else { return };
        let Some(dead) =
            message.dead_lettered(queue, reason, self.exchange.clone(), self.routing_key.clone())
        else {
            return;
        };
        let mut targets = Vec::new();
        let routing_key = &dead.message.routing_key;
        if broker.route(&self.exchange, routing_key, Some(&dead.headers), &mut targets).is_err() {
            return;
        }
        // An expired message dead-lettered back into its own queue would cycle forever.
        targets.retain(|t| !(reason == DeathReason::Expired && t.name.as_ref() == queue.as_bytes()));
        let record = dead.message.to_record();
        for target in targets {
            let log = target.handle.log().clone();
            let record = record.clone();
            tokio::spawn(async move {
                if let Err(error) = log.append(vec![record]).await {
                    tracing::warn!(%error, "dead-lettered message lost");
                }
            });
        }
    }
}
