//! Transactions: a channel after `tx.select` holds its publishes and its acks, nacks and
//! rejects until `tx.commit` hands them to the queues, or `tx.rollback` forgets them.
//!
//! What a transaction holds is bounded by [`TX_HELD_BYTES_MAX`] (RabbitMQ has no such
//! limit): a publish, ack, nack or reject that would pass it closes the channel with 406
//! PRECONDITION_FAILED, which discards the transaction. Settlements count too: a held ack
//! gives its prefetch credit back at once, so a consumer acking without committing would
//! otherwise hold more and more of them.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Channel, Context};
use crate::amqp::reply::{ProtocolError, Reply};
use crate::broker::QueueEntry;
use crate::limits::TX_HELD_BYTES_MAX;
use crate::log::RecordInput;
use crate::queue::ChannelId;
use crate::wire::amqp::{TxCommitOk, TxRollbackOk, TxSelectOk};

/// A publish held back by a transaction.
struct HeldPublish {
    queues: Vec<Arc<QueueEntry>>,
    record: RecordInput,
}

/// Settlements of one queue's deliveries held back by a transaction: ack (`requeue`
/// None), or reject/nack (`requeue` Some).
struct HeldSettlement {
    queue: Arc<QueueEntry>,
    offsets: Vec<u64>,
    requeue: Option<bool>,
}

impl HeldPublish {
    /// What it holds, in bytes: the record and its bookkeeping.
    fn held_bytes(&self) -> usize {
        self.record.header.len()
            + self.record.body.len()
            + std::mem::size_of::<Self>()
            + self.queues.len() * std::mem::size_of::<Arc<QueueEntry>>()
    }
}

impl HeldSettlement {
    /// What it holds, in bytes: the offsets and their bookkeeping.
    fn held_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.offsets.len() * std::mem::size_of::<u64>()
    }
}

/// A channel's transaction mode and what it holds until commit.
#[derive(Default)]
pub(super) struct Transaction {
    /// `tx.select` was received.
    enabled: bool,
    publishes: Vec<HeldPublish>,
    /// What `publishes` and `settlements` hold, in bytes: records, offsets and their
    /// bookkeeping. At most [`TX_HELD_BYTES_MAX`].
    held_bytes: usize,
    settlements: Vec<HeldSettlement>,
    /// The messages `settlements` settle.
    held_settled: u64,
}

impl Transaction {
    /// Whether the channel is transactional.
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Holds a publish to `queues` until commit.
    ///
    /// # Errors
    /// [`ProtocolError::TransactionTooLarge`] when the transaction would hold more than
    /// [`TX_HELD_BYTES_MAX`]; nothing is held then.
    pub(super) fn hold_publish(
        &mut self,
        queues: Vec<Arc<QueueEntry>>,
        record: RecordInput,
    ) -> Result<(), ProtocolError> {
        let held = HeldPublish { queues, record };
        self.count(held.held_bytes())?;
        self.publishes.push(held);
        Ok(())
    }

    /// Counts `bytes` more held, if the bound allows.
    fn count(&mut self, bytes: usize) -> Result<(), ProtocolError> {
        let held = self.held_bytes.saturating_add(bytes);
        if held > TX_HELD_BYTES_MAX {
            return Err(ProtocolError::TransactionTooLarge(TX_HELD_BYTES_MAX));
        }
        self.held_bytes = held;
        Ok(())
    }

    /// Forgets the held publishes, handing them to the caller.
    fn take_publishes(&mut self) -> Vec<HeldPublish> {
        let bytes: usize = self.publishes.iter().map(HeldPublish::held_bytes).sum();
        self.held_bytes -= bytes;
        std::mem::take(&mut self.publishes)
    }

    /// Forgets the held settlements, handing them to the caller.
    fn take_settlements(&mut self) -> Vec<HeldSettlement> {
        let bytes: usize = self.settlements.iter().map(HeldSettlement::held_bytes).sum();
        self.held_bytes -= bytes;
        self.held_settled = 0;
        std::mem::take(&mut self.settlements)
    }

    /// Holds a settlement of `queue`'s deliveries at `offsets` until commit.
    ///
    /// # Errors
    /// As [`Transaction::hold_publish`].
    pub(super) fn hold_settlement(
        &mut self,
        queue: Arc<QueueEntry>,
        offsets: Vec<u64>,
        requeue: Option<bool>,
    ) -> Result<(), ProtocolError> {
        let held = HeldSettlement { queue, offsets, requeue };
        self.count(held.held_bytes())?;
        self.held_settled += held.offsets.len() as u64;
        self.settlements.push(held);
        Ok(())
    }
}

/// The held publishes as one list of records per queue, queues in the order they were
/// first published to, records in publish order.
fn per_queue(publishes: Vec<HeldPublish>) -> Vec<(Arc<QueueEntry>, Vec<RecordInput>)> {
    let mut parts: Vec<(Arc<QueueEntry>, Vec<RecordInput>)> = Vec::new();
    let mut index_of: HashMap<u64, usize> = HashMap::new();
    for held in publishes {
        for queue in held.queues {
            let index = *index_of.entry(queue.id).or_insert_with(|| {
                parts.push((Arc::clone(&queue), Vec::new()));
                parts.len() - 1
            });
            if let Some((_, records)) = parts.get_mut(index) {
                records.push(held.record.clone());
            }
        }
    }
    parts
}

/// Acks (`requeue` None) or rejects `offsets` of `queue`'s deliveries to `channel`.
/// Waits while the queue's command channel is full, so settlements reach it in order.
pub(super) async fn settle_in_queue(
    queue: &QueueEntry,
    channel: ChannelId,
    offsets: Vec<u64>,
    requeue: Option<bool>,
) {
    match requeue {
        None => queue.handle.ack(channel, offsets).await,
        Some(requeue) => queue.handle.reject(channel, offsets, requeue).await,
    }
}

impl Channel {
    /// Shows what the transaction holds in the channel's listing (two relaxed stores).
    pub(super) fn show_uncommitted(&self) {
        let held = u64::try_from(self.tx.publishes.len()).unwrap_or(u64::MAX);
        self.stats.messages_uncommitted.store(held, std::sync::atomic::Ordering::Relaxed);
        self.stats.acks_uncommitted.store(self.tx.held_settled, std::sync::atomic::Ordering::Relaxed);
    }

    /// `tx.select`.
    pub(super) fn tx_select(&mut self, cx: &mut Context<'_>) -> Result<(), Reply> {
        if self.confirms.enabled() {
            return Err(ProtocolError::ConfirmToTx.into());
        }
        self.tx.enabled = true;
        self.stats.transactional.store(true, std::sync::atomic::Ordering::Relaxed);
        cx.out.method(self.number(), &TxSelectOk::default().into());
        Ok(())
    }

    /// `tx.commit`: the held publishes are appended, each queue's in one append (in the
    /// order they were published), then the held settlements reach their queues.
    ///
    /// All or nothing where it can be known beforehand: every target log is asked first
    /// whether it would take its part (it is open, and the free-disc limit leaves room for
    /// the whole commit), and if one would not, nothing is appended. One queue's part is
    /// one append, which its log writes whole or not at all. What cannot be known
    /// beforehand is an I/O error in one log after another log took its part: the parts
    /// appended stay, the rest and the held settlements are dropped, and the connection
    /// closes with 541 INTERNAL_ERROR, as it does when nothing was appended. Nothing
    /// acknowledged is lost: the deliveries whose acks were dropped are still unacked in
    /// their queues and are requeued as the channel closes.
    pub(super) async fn tx_commit(&mut self, cx: &mut Context<'_>) -> Result<(), Reply> {
        if !self.tx.enabled {
            return Err(ProtocolError::NotTransactional.into());
        }
        let parts = per_queue(self.tx.take_publishes());
        let settlements = self.tx.take_settlements();
        self.show_uncommitted();
        let total: u64 =
            parts.iter().flat_map(|(_, records)| records).map(|r| r.encoded_bytes() as u64).sum();
        if let Some((queue, _)) = parts.iter().find(|(queue, _)| !queue.handle.log().would_take(total)) {
            let reason = format!("queue '{}' cannot take the transaction's messages now", queue.name_str());
            return Err(ProtocolError::CommitFailed(reason).into());
        }
        for (queue, records) in parts {
            if let Err(error) = queue.handle.log().append(records).await {
                return Err(ProtocolError::CommitFailed(error.to_string()).into());
            }
        }
        for held in settlements {
            settle_in_queue(&held.queue, self.id, held.offsets, held.requeue).await;
        }
        cx.out.method(self.number(), &TxCommitOk::default().into());
        Ok(())
    }

    /// `tx.rollback`: what the transaction held is forgotten.
    pub(super) fn tx_rollback(&mut self, cx: &mut Context<'_>) -> Result<(), Reply> {
        if !self.tx.enabled {
            return Err(ProtocolError::NotTransactional.into());
        }
        self.tx.take_publishes();
        self.tx.take_settlements();
        self.show_uncommitted();
        cx.out.method(self.number(), &TxRollbackOk::default().into());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::limits::MESSAGE_BYTES_MAX;

    /// A transaction takes the largest messages up to its bound, refuses the one past it,
    /// and takes publishes again once committed or rolled back.
    #[test]
    fn held_publishes_are_bounded_by_bytes() {
        let body = Bytes::from(vec![0u8; MESSAGE_BYTES_MAX as usize]);
        let mut tx = Transaction::default();
        let mut held = 0;
        let refused = loop {
            match tx.hold_publish(Vec::new(), RecordInput::body(body.clone())) {
                Ok(()) => held += 1,
                Err(error) => break error,
            }
            assert!(held <= TX_HELD_BYTES_MAX / body.len(), "the bound holds");
        };
        assert!(matches!(refused, ProtocolError::TransactionTooLarge(_)));
        assert!(held >= 1, "a transaction holds at least one message of the largest size");
        assert_eq!(tx.publishes.len(), held, "nothing of the refused publish is held");
        assert!(tx.held_bytes <= TX_HELD_BYTES_MAX);
        tx.take_publishes();
        assert_eq!(tx.held_bytes, 0);
        tx.hold_publish(Vec::new(), RecordInput::body(body)).expect("room again after a commit");
    }
}
