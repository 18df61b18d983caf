//! Dead-letter routing: where a queue's dead messages go. Each queue with a dead-letter
//! exchange has one task that takes its dead messages, in the order they died, from the
//! queue's bounded channel (`queue::dead_letters`), routes each through the broker to the
//! dead-letter exchange and appends it to the queues reached. One task per source queue and
//! appends submitted in order keep, in every target, the order the messages had in their
//! source.
//!
//! The task waits only for log writers (room in their queues, then the commit of what it
//! submitted) and takes the broker's model lock only while routing, never across an
//! `.await`. It never waits for a queue's task or a connection, which is what lets queue
//! tasks wait for room in their dead-letter channel without deadlocking, even when a queue
//! dead-letters into itself or two queues into each other.
//!
//! The message itself (its `x-death` history, dropped expiration, re-encoded content
//! header) is edited by `queue::death`; this file decodes no headers. No frames, no I/O
//! beyond handing records to queue logs.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::queues::QueueEntry;
use super::Broker;
use crate::limits::DEAD_LETTERS_BATCH_MAX;
use crate::log::RecordInput;
use crate::queue::{DeadMessage, DeathReason};

/// Where one queue's dead messages go.
#[derive(Debug)]
pub struct DeadLetterRoute {
    /// The broker, to route through.
    pub broker: Weak<Broker>,
    /// The queue the messages died in.
    pub queue: Arc<str>,
    /// `x-dead-letter-exchange`.
    pub exchange: Bytes,
    /// `x-dead-letter-routing-key`; else the message's own key.
    pub routing_key: Option<Bytes>,
}

/// Appends of one step, one per target queue: the target and its records, in order.
type Appends = Vec<(Arc<QueueEntry>, Vec<RecordInput>)>;

impl DeadLetterRoute {
    /// Starts the task that routes the dead messages `receiver` yields, in order, until the
    /// queue's end of the channel is dropped.
    pub fn spawn(self, mut receiver: mpsc::Receiver<DeadMessage>) {
        tokio::spawn(async move {
            let mut dead = Vec::with_capacity(DEAD_LETTERS_BATCH_MAX);
            let mut targets = Vec::new();
            while receiver.recv_many(&mut dead, DEAD_LETTERS_BATCH_MAX).await > 0 {
                let Some(broker) = self.broker.upgrade() else { return };
                let mut appends: Appends = Vec::new();
                for message in dead.drain(..) {
                    self.route(&broker, message, &mut targets, &mut appends);
                }
                drop(broker);
                append_in_order(appends).await;
            }
        });
    }

    /// Edits and routes one dead message, adding its record to the appends of every queue
    /// it reaches.
    fn route(
        &self,
        broker: &Broker,
        dead: DeadMessage,
        targets: &mut Vec<Arc<QueueEntry>>,
        appends: &mut Appends,
    ) {
        let DeadMessage { message, reason } = dead;
        let Some(dead) =
            message.dead_lettered(&self.queue, reason, self.exchange.clone(), self.routing_key.clone())
        else {
            return;
        };
        targets.clear();
        let routing_key = &dead.message.routing_key;
        if broker.route(&self.exchange, routing_key, Some(&dead.headers), targets).is_err() {
            return;
        }
        // An expired message dead-lettered back into its own queue would cycle forever.
        let queue = self.queue.as_bytes();
        targets.retain(|t| !(reason == DeathReason::Expired && t.name.as_ref() == queue));
        let record = dead.message.to_record();
        for target in targets.drain(..) {
            match appends.iter_mut().find(|(queue, _)| queue.id == target.id) {
                Some((_, records)) => records.push(record.clone()),
                None => appends.push((target, vec![record.clone()])),
            }
        }
    }
}

/// Submits each target's records (in order, and after every earlier step's, as a log's
/// appends are ordered by their submission), then waits until all are committed.
async fn append_in_order(appends: Appends) {
    let mut receipts = Vec::with_capacity(appends.len());
    for (target, records) in appends {
        match target.handle.log().submit(records).await {
            Ok(receipt) => receipts.push(receipt),
            Err(error) => tracing::warn!(%error, "dead-lettered messages lost"),
        }
    }
    for receipt in receipts {
        if let Err(error) = receipt.await {
            tracing::warn!(%error, "dead-lettered messages lost");
        }
    }
}
