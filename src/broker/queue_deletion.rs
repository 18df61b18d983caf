//! How queues go: `queue.delete`, the exclusive queues of a closed connection, an
//! auto-delete queue's last consumer leaving, and `x-expires` (a task sweeps for queues
//! unused past their lease). Removing a queue takes its bindings, auto-delete exchanges
//! left without bindings, its messages and its files with it. No frames; the queue's own
//! state is stopped through its handle.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{definitions, Broker, ConnectionId, Destination, Error, QueueEntry};
use crate::limits::QUEUE_EXPIRY_SWEEP_INTERVAL_MS;

impl Broker {
    /// `queue.delete`; answers the ready count. A missing queue is not an error.
    ///
    /// # Errors
    /// 405 for another connection's exclusive queue; 406 for if-unused / if-empty.
    pub async fn delete_queue(
        &self,
        name: &[u8],
        if_unused: bool,
        if_empty: bool,
        connection: Option<ConnectionId>,
    ) -> Result<u32, Error> {
        let _changes = self.changes.lock().await;
        let Some(queue) = self.queue(name) else { return Ok(0) };
        if let (Some(owner), Some(connection)) = (queue.exclusive_owner, connection) {
            if owner != connection {
                return Err(Error::Locked(self.named(name)));
            }
        }
        let stats = queue.handle.stats();
        if if_unused && stats.consumers.load(Ordering::Acquire) > 0 {
            return Err(Error::QueueInUse(self.named(name)));
        }
        if if_empty && queue.handle.ready_count() > 0 {
            return Err(Error::NotEmpty(self.named(name)));
        }
        Ok(self.remove_queue(&queue).await)
    }

    /// Removes a queue from the model with its bindings (and auto-delete exchanges left
    /// without bindings), stops it and discards its messages and files; answers how many
    /// messages were ready.
    async fn remove_queue(&self, queue: &Arc<QueueEntry>) -> u32 {
        let doomed_exchanges = {
            let mut model = self.model.write().expect("model lock poisoned");
            if model.queues.remove(&queue.name).is_some() {
                super::Churn::bump(&self.options.churn.queue_deleted);
            }
            model.queue_ids.remove(&queue.id);
            let mut doomed = Vec::new();
            for exchange in model.exchanges.values() {
                let mut bindings = exchange.bindings.write().expect("bindings lock poisoned");
                if bindings.unbind_destination(Destination::Queue(queue.id)) > 0
                    && exchange.auto_delete
                    && bindings.is_empty()
                {
                    doomed.push((exchange.name.clone(), exchange.durable));
                }
            }
            doomed
        };
        self.topology_changed();
        let mut doomed_durable = Vec::new();
        for (name, durable) in doomed_exchanges {
            self.remove_exchange(&name);
            if durable {
                doomed_durable.push(name);
            }
        }
        let ready = queue.handle.delete().await.unwrap_or(0);
        // Publishers may still hold the entry (routes they remember, deliveries in flight):
        // the messages' memory goes now all the same.
        queue.handle.log().discard().await;
        if let Some(dir) = queue.handle.log().offsets().path_dir() {
            // Awaited so that the files are gone (and the definitions saved) before the
            // delete is answered.
            if let Err(error) = super::remove_dir_all(dir.to_path_buf()).await {
                tracing::warn!(queue = %queue.name_str(), %error, "could not remove the queue's files");
            }
        }
        if queue.durable && queue.exclusive_owner.is_none() {
            // One journal record, whatever the number of definitions: replaying it removes
            // the bindings to the queue as well.
            let mut changes = vec![definitions::Change::QueueDeleted(queue.name.clone())];
            changes.extend(doomed_durable.into_iter().map(definitions::Change::ExchangeDeleted));
            for change in changes {
                if let Err(error) = definitions::record(self, change) {
                    tracing::error!(%error, "could not record the queue's deletion in the definitions");
                }
            }
        }
        ready.min(u64::from(u32::MAX)) as u32
    }

    /// Called when a consumer left a queue that now has none: deletes auto-delete queues.
    pub async fn consumers_gone(&self, queue: &Arc<QueueEntry>) {
        if queue.auto_delete {
            let _changes = self.changes.lock().await;
            if self.queue(&queue.name).is_some_and(|q| Arc::ptr_eq(&q, queue)) {
                self.remove_queue(queue).await;
            }
        }
    }

    /// Deletes the exclusive queues of a closed connection.
    pub async fn connection_closed(&self, connection: ConnectionId) {
        let owned: Vec<Arc<QueueEntry>> =
            self.queues().into_iter().filter(|q| q.exclusive_owner == Some(connection)).collect();
        if owned.is_empty() {
            return;
        }
        let _changes = self.changes.lock().await;
        for queue in owned {
            self.remove_queue(&queue).await;
        }
    }

    /// Deletes the queues without consumers whose `x-expires` lease has run out.
    async fn expire_unused_queues(&self) {
        let expired: Vec<Arc<QueueEntry>> = self
            .queues()
            .into_iter()
            .filter(|q| {
                q.expires().is_some_and(|expires| {
                    q.handle.stats().consumers.load(Ordering::Acquire) == 0
                        && q.last_used.lock().expect("queue lease lock poisoned").elapsed() >= expires
                })
            })
            .collect();
        if expired.is_empty() {
            return;
        }
        let _changes = self.changes.lock().await;
        for queue in expired {
            tracing::debug!(queue = %queue.name_str(), "queue expired (x-expires)");
            self.remove_queue(&queue).await;
        }
    }
}

/// Starts the task that deletes queues past their `x-expires`; it ends with the broker.
pub(super) fn spawn_expiry_sweeper(broker: &Arc<Broker>) {
    let sweeper = Arc::downgrade(broker);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(QUEUE_EXPIRY_SWEEP_INTERVAL_MS));
        loop {
            tick.tick().await;
            let Some(broker) = sweeper.upgrade() else { return };
            broker.expire_unused_queues().await;
        }
    });
}
