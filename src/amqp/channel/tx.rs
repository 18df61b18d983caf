//! Transactions: a channel after `tx.select` holds its publishes and its acks, nacks and
//! rejects until `tx.commit` hands them to the queues, or `tx.rollback` forgets them.

use std::sync::Arc;

use super::{Channel, Context};
use crate::amqp::reply::{ProtocolError, Reply};
use crate::broker::QueueEntry;
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

/// A channel's transaction mode and what it holds until commit.
#[derive(Default)]
pub(super) struct Transaction {
    /// `tx.select` was received.
    enabled: bool,
    publishes: Vec<HeldPublish>,
    settlements: Vec<HeldSettlement>,
}

impl Transaction {
    /// Whether the channel is transactional.
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Holds a publish to `queues` until commit.
    pub(super) fn hold_publish(&mut self, queues: Vec<Arc<QueueEntry>>, record: RecordInput) {
        self.publishes.push(HeldPublish { queues, record });
    }

    /// Holds a settlement of `queue`'s deliveries at `offsets` until commit.
    pub(super) fn hold_settlement(
        &mut self,
        queue: Arc<QueueEntry>,
        offsets: Vec<u64>,
        requeue: Option<bool>,
    ) {
        self.settlements.push(HeldSettlement { queue, offsets, requeue });
    }
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
    /// `tx.select`.
    pub(super) fn tx_select(&mut self, cx: &mut Context<'_>) -> Result<(), Reply> {
        if self.confirms.enabled() {
            return Err(ProtocolError::ConfirmToTx.into());
        }
        self.tx.enabled = true;
        cx.out.method(self.number(), &TxSelectOk::default().into());
        Ok(())
    }

    /// `tx.commit`: the held publishes are appended (one by one, in order), then the held
    /// settlements reach their queues.
    pub(super) async fn tx_commit(&mut self, cx: &mut Context<'_>) -> Result<(), Reply> {
        if !self.tx.enabled {
            return Err(ProtocolError::NotTransactional.into());
        }
        let publishes = std::mem::take(&mut self.tx.publishes);
        let settlements = std::mem::take(&mut self.tx.settlements);
        for held in publishes {
            for queue in held.queues {
                if let Err(error) = queue.handle.log().append(vec![held.record.clone()]).await {
                    return Err(ProtocolError::CommitFailed(error.to_string()).into());
                }
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
        self.tx.publishes.clear();
        self.tx.settlements.clear();
        cx.out.method(self.number(), &TxRollbackOk::default().into());
        Ok(())
    }
}
