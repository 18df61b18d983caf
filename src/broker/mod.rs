//! BROKER MODEL: the vhost `/` with its exchanges, bindings and queues; declaring,
//! deleting and routing. No sockets, no frames; queues' internals stay in `queue`, and
//! stored messages are edited there too (dead-lettering's headers: `queue::death`).
//!
//! This file owns the [`Broker`] itself: its tables, the topology counter, the resource
//! alarm, start and shutdown. Each concern has its own file: `queues` (declare, purge),
//! `queue_deletion` (delete, exclusive, auto-delete, `x-expires`), `exchanges` (declare,
//! delete), `bindings` (bind, unbind), `routing` (exchange + bindings → queues), `naming`
//! (server-generated and on-disc names), `dead_letter` (the task that republishes dead
//! messages), `definitions` (durable definitions on disc), `arguments` (`x-*` arguments),
//! `policies` (the vhost's policies applied to its queues and exchanges) and `exchange`
//! (the per-type binding tables).
//!
//! Locking: the model's tables sit behind a std `RwLock`, taken briefly (routing takes it
//! for reading on every publish; declares take it for writing) and never held across an
//! `.await`. Changes of definitions are serialised by an async mutex, held across the
//! opening of a queue's log, so that two declares of one queue never open its files twice.

pub mod access;
pub mod arguments;
mod bindings;
pub mod connections;
pub mod dead_letter;
pub mod definitions;
pub mod definitions_journal;
mod error;
pub mod exchange;
mod exchanges;
mod naming;
pub mod node;
mod policies;
mod queue_deletion;
mod queues;
mod routing;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

pub use arguments::{Overflow, QueueArgs};
pub use bindings::{Bindings, Destination};
pub use error::{Error, Name};
pub use exchanges::{ExchangeCounters, ExchangeDeclare, ExchangeEntry};
pub use naming::{generated_name, hex};
pub use node::{Churn, ConnectionSlot, Node, NodeError, NodeOptions};
pub use policies::{AppliedExchangePolicy, AppliedQueuePolicy};
pub use queues::{QueueDeclare, QueueEntry};

use crate::log::Storage;

/// The folder of a vhost's data directory holding the logs of queues that do not outlive
/// the broker (non-durable or exclusive): emptied whenever the vhost opens.
pub(crate) const TRANSIENT_DIR: &str = "transient";

/// Removes `dir` and everything in it, on the blocking pool (many files); a folder that is
/// not there is no error. The error's text otherwise.
pub(crate) async fn remove_dir_all(dir: PathBuf) -> Result<(), String> {
    let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    })
    .await;
    match removed {
        Ok(outcome) => outcome.map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// Identifies a client connection.
pub type ConnectionId = u64;

/// How the broker stores queues.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Where durable queues' logs go (`None`: everything in memory).
    pub storage: Storage,
    /// Segment size of queue logs.
    pub segment_bytes: u64,
    /// The free-disc budget every disc queue's writer takes its writes from.
    pub disk_headroom: Option<Arc<crate::log::headroom::DiskHeadroom>>,
    /// The count of bytes every in-memory queue log holds, which the memory alarm watches.
    pub memory_budget: Option<Arc<crate::log::memory_budget::MemoryBudget>>,
    /// The vhost this broker is (its name in reply texts).
    pub vhost: Arc<str>,
    /// The node's resource alarm, shared by every vhost: `Some(reason)` while publishers
    /// must be blocked.
    pub alarm: Arc<tokio::sync::watch::Sender<Option<&'static str>>>,
    /// The vhost's policies when it opens, by name (later ones come through
    /// [`Broker::set_policies`]).
    pub policies: Vec<Arc<access::Policy>>,
    /// The node's churn counts, which declaring and deleting queues bump.
    pub churn: Arc<Churn>,
}

#[derive(Debug, Default)]
struct Model {
    exchanges: HashMap<Bytes, Arc<ExchangeEntry>>,
    exchange_names: HashMap<u64, Bytes>,
    queues: HashMap<Bytes, Arc<QueueEntry>>,
    queue_ids: HashMap<u64, Arc<QueueEntry>>,
}

/// One vhost: its exchanges, queues and bindings, and their durable definitions.
pub struct Broker {
    options: BrokerOptions,
    model: RwLock<Model>,
    /// The vhost's policies, by name; read when a queue or exchange is declared, recovered
    /// or resolved again (`policies`), never per message.
    policies: RwLock<Arc<[Arc<access::Policy>]>>,
    changes: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    /// Bumped after every change of exchanges, queues or bindings (see [`Broker::topology`]).
    topology: AtomicU64,
    myself: std::sync::Weak<Broker>,
    definitions_journal: definitions_journal::Journal,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker with the built-in exchanges, and (on disc) the durable definitions and
    /// queues found in the data directory.
    ///
    /// # Errors
    /// When stored definitions or queue logs cannot be read.
    pub async fn open(options: BrokerOptions) -> Result<Arc<Broker>, Error> {
        let mut options = options;
        let policies = std::mem::take(&mut options.policies);
        let broker = Arc::new_cyclic(|myself| Broker {
            options,
            model: RwLock::new(Model::default()),
            policies: RwLock::new(policies.into()),
            changes: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            topology: AtomicU64::new(0),
            myself: myself.clone(),
            definitions_journal: definitions_journal::Journal::default(),
        });
        broker.insert_builtin_exchanges();
        broker.remove_transient_logs().await;
        definitions::restore(&broker).await?;
        queue_deletion::spawn_expiry_sweeper(&broker);
        Ok(broker)
    }

    /// The node's churn counts, for the events a vhost sees (channels opening and closing
    /// are reported by the AMQP gateway through here).
    pub fn churn(&self) -> &Churn {
        &self.options.churn
    }

    /// Follows the node's resource alarm: `Some(reason)` while publishers must be blocked.
    pub fn alarm(&self) -> tokio::sync::watch::Receiver<Option<&'static str>> {
        self.options.alarm.subscribe()
    }

    /// The vhost this broker is.
    pub fn vhost(&self) -> &Arc<str> {
        &self.options.vhost
    }

    /// `name` in this vhost, for reply texts.
    pub fn named(&self, name: &[u8]) -> Name {
        Name::new(name, &self.options.vhost)
    }

    /// The journal of durable definition changes (see [`definitions::record`]).
    pub(crate) fn definitions_journal(&self) -> &definitions_journal::Journal {
        &self.definitions_journal
    }

    /// Where durable definitions live, when on disc.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.options.storage.dir().map(PathBuf::from)
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A number that changes whenever exchanges, queues or bindings change: a route worked
    /// out (without headers) while it had one value holds until it has another. Read it
    /// before routing.
    pub fn topology(&self) -> u64 {
        self.topology.load(Ordering::Acquire)
    }

    /// Records a change of exchanges, queues or bindings; called after the change.
    pub(crate) fn topology_changed(&self) {
        self.topology.fetch_add(1, Ordering::AcqRel);
    }

    /// Removes what the logs of queues that did not outlive the last run left behind.
    async fn remove_transient_logs(&self) {
        let Some(dir) = self.options.storage.dir().map(|dir| dir.join(TRANSIENT_DIR)) else { return };
        let shown = dir.display().to_string();
        if let Err(error) = remove_dir_all(dir).await {
            tracing::warn!(dir = %shown, %error, "could not remove the logs of transient queues");
        }
    }

    /// Stops every queue (their logs sync and close with them).
    pub async fn shutdown(&self) {
        for queue in self.queues() {
            let _ = queue.handle.delete().await;
            let _ = queue.handle.log().close().await;
        }
    }
}
