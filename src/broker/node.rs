//! The node: every vhost's [`Broker`], the access model (users, vhosts, permissions,
//! policies), and what the vhosts share: the resource alarm, the data directory and the
//! count of open connections per vhost and per user that the limits are checked against.
//!
//! On disc each vhost keeps its queues and durable definitions in
//! `<data dir>/vhosts/<hex of its name>/`, and the access model is one file,
//! `<data dir>/access.json`, replaced atomically on every change. A data directory from
//! before vhosts (queues and definitions at its top) becomes vhost `/`'s at start.
//!
//! Changes of the access model go through [`Node::change_access`], which persists the new
//! state and then brings the running vhosts in line with it: a vhost added is opened, a
//! vhost removed is stopped and its data deleted, and each vhost gets its policies, which
//! it applies to its queues and exchanges (a vhost opens with them too).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use tokio::sync::watch;

use super::access::{AccessControl, AccessError, AccessRefused, AccessState};
use super::connections::{ConnectionFacts, ConnectionInfo, RetiredCounts};
use super::naming::hex;
use super::{Broker, BrokerOptions, Error};
use crate::log::headroom::DiskHeadroom;
use crate::log::memory_budget::MemoryBudget;
use crate::log::Storage;

/// The file of the access model in the data directory.
pub const ACCESS_FILE: &str = "access.json";
/// The folder of the vhosts' data in the data directory.
pub const VHOSTS_DIR: &str = "vhosts";

/// Counts of objects opened and closed since the node started, as RabbitMQ's
/// `churn_rates` report them. Each is bumped once per event with a relaxed `fetch_add`;
/// the events (a connection or channel opening or closing, a queue declared or deleted)
/// are rare next to messages, and nothing on the message path touches these.
#[derive(Debug, Default)]
pub struct Churn {
    /// Connections that completed `connection.open`.
    pub connection_created: AtomicU64,
    /// Of those, the ones that have closed (for any reason).
    pub connection_closed: AtomicU64,
    /// Channels opened with `channel.open`.
    pub channel_created: AtomicU64,
    /// Of those, the ones that have closed (by either side, or with their connection).
    pub channel_closed: AtomicU64,
    /// Successful non-passive `queue.declare`s (a redeclaration of an existing queue
    /// included), from AMQP clients and the management API.
    pub queue_declared: AtomicU64,
    /// Queues that a declaration created (queues recovered at start are not counted).
    pub queue_created: AtomicU64,
    /// Queues deleted (by a client, auto-delete, exclusivity or expiry).
    pub queue_deleted: AtomicU64,
}

impl Churn {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Each count by RabbitMQ's name, in the order of its `churn_rates`.
    pub fn totals(&self) -> Vec<(&'static str, u64)> {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        vec![
            ("connection_created", get(&self.connection_created)),
            ("connection_closed", get(&self.connection_closed)),
            ("channel_created", get(&self.channel_created)),
            ("channel_closed", get(&self.channel_closed)),
            ("queue_declared", get(&self.queue_declared)),
            ("queue_created", get(&self.queue_created)),
            ("queue_deleted", get(&self.queue_deleted)),
        ]
    }
}

/// What every vhost is opened with, and the first start's user.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Where queues' logs and definitions go: the data directory, or memory.
    pub storage: Storage,
    /// Segment size of queue logs.
    pub segment_bytes: u64,
    /// The free-disc budget every durable queue's writer takes its writes from.
    pub disk_headroom: Option<Arc<DiskHeadroom>>,
    /// The count of bytes every in-memory queue log holds, which the memory alarm watches.
    pub memory_budget: Option<Arc<MemoryBudget>>,
    /// The administrator made at the first start (no access model stored yet).
    pub default_user: String,
    /// Their password.
    pub default_pass: String,
}

/// Why a change through the node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The access model refused the change; nothing changed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A vhost could not be opened, or the model could not be stored.
    #[error(transparent)]
    Broker(#[from] Error),
}

/// Open connections per vhost and per user.
#[derive(Debug, Default)]
struct ConnectionCounts {
    per_vhost: HashMap<String, u64>,
    per_user: HashMap<String, u64>,
    open: std::collections::BTreeMap<super::ConnectionId, Arc<ConnectionInfo>>,
    /// Each vhost's counts of closed channels and connections.
    retired: HashMap<String, Arc<RetiredCounts>>,
}

impl ConnectionCounts {
    fn add(&mut self, user: &str, vhost: &str) {
        *self.per_vhost.entry(vhost.to_owned()).or_default() += 1;
        *self.per_user.entry(user.to_owned()).or_default() += 1;
    }

    fn remove(&mut self, user: &str, vhost: &str) {
        for (map, key) in [(&mut self.per_vhost, vhost), (&mut self.per_user, user)] {
            if let Some(count) = map.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

/// A connection's place in the node: its record in the list of connections and in the
/// counts per vhost and user, given back when it is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    node: Weak<Node>,
    info: Arc<ConnectionInfo>,
}

impl ConnectionSlot {
    /// The connection's record.
    pub fn info(&self) -> &Arc<ConnectionInfo> {
        &self.info
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(node) = self.node.upgrade() {
            let facts = &self.info.facts;
            let mut counts = node.connections.lock().unwrap_or_else(PoisonError::into_inner);
            counts.remove(&facts.user, &facts.vhost);
            counts.open.remove(&facts.id);
            Churn::bump(&node.churn.connection_closed);
        }
    }
}

/// The node.
pub struct Node {
    options: NodeOptions,
    access: AccessControl,
    vhosts: RwLock<HashMap<String, Arc<Broker>>>,
    /// Serialises changes of the access model and of the set of vhosts.
    changes: tokio::sync::Mutex<()>,
    alarm: Arc<watch::Sender<Option<&'static str>>>,
    connections: Mutex<ConnectionCounts>,
    churn: Arc<Churn>,
    myself: Weak<Node>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}

impl Node {
    /// The node with its stored access model (or, at the first start, vhost `/` and the
    /// default user as administrator) and every vhost opened.
    ///
    /// # Errors
    /// When the stored access model or a vhost's stored state cannot be read.
    pub async fn open(options: NodeOptions) -> Result<Arc<Node>, Error> {
        let access = match options.storage.dir() {
            Some(dir) => load_access(dir, &options)?,
            None => default_access(&options)?,
        };
        if let Some(dir) = options.storage.dir() {
            adopt_pre_vhost_layout(dir)?;
        }
        let node = Arc::new_cyclic(|myself| Node {
            options,
            access,
            vhosts: RwLock::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
            alarm: Arc::new(watch::channel(None).0),
            connections: Mutex::new(ConnectionCounts::default()),
            churn: Arc::default(),
            myself: myself.clone(),
        });
        node.reconcile_vhosts().await?;
        Ok(node)
    }

    /// What has opened and closed since the node started.
    pub fn churn(&self) -> &Churn {
        &self.churn
    }

    /// The data directory, when the node stores on disc.
    pub fn data_dir(&self) -> Option<&Path> {
        self.options.storage.dir()
    }

    /// The access model.
    pub fn access(&self) -> &AccessControl {
        &self.access
    }

    /// The running vhost `name`.
    pub fn vhost(&self, name: &str) -> Option<Arc<Broker>> {
        self.vhosts.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    /// Every running vhost, by name.
    pub fn vhosts(&self) -> Vec<Arc<Broker>> {
        let mut all: Vec<_> =
            self.vhosts.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        all.sort_by(|a, b| a.vhost().cmp(b.vhost()));
        all
    }

    /// Raises (`Some(reason)`) or clears (`None`) the resource alarm that blocks publishers
    /// in every vhost.
    pub fn set_alarm(&self, reason: Option<&'static str>) {
        self.alarm.send_if_modified(|current| {
            let changed = *current != reason;
            *current = reason;
            changed
        });
    }

    /// Follows the resource alarm: `Some(reason)` while publishers must be blocked.
    pub fn alarm(&self) -> watch::Receiver<Option<&'static str>> {
        self.alarm.subscribe()
    }

    /// Opens a connection (its user and vhost are in `facts`), checking in RabbitMQ's
    /// order the vhost's connection limit, the user's, and the user's access to the vhost.
    /// The slot lists and counts the connection until it is dropped.
    ///
    /// # Errors
    /// The refusal, with RabbitMQ's text.
    pub fn open_connection(
        &self,
        facts: ConnectionFacts,
    ) -> Result<(Arc<Broker>, ConnectionSlot), AccessRefused> {
        let (user, vhost) = (facts.user.as_str(), facts.vhost.as_str());
        let state = self.access.snapshot();
        let mut counts = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        let vhost_count = counts.per_vhost.get(vhost).copied().unwrap_or(0);
        let user_count = counts.per_user.get(user).copied().unwrap_or(0);
        state.check_new_connection(user, vhost, vhost_count, user_count)?;
        let broker =
            self.vhost(vhost).ok_or_else(|| AccessRefused::VhostNotFound { vhost: vhost.to_owned() })?;
        counts.add(user, vhost);
        let retired = Arc::clone(counts.retired.entry(vhost.to_owned()).or_default());
        let info = Arc::new(ConnectionInfo::new(facts, retired));
        counts.open.insert(info.facts.id, Arc::clone(&info));
        Churn::bump(&self.churn.connection_created);
        Ok((broker, ConnectionSlot { node: self.myself.clone(), info }))
    }

    /// Every open connection, in the order they opened.
    pub fn connections(&self) -> Vec<Arc<ConnectionInfo>> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner).open.values().cloned().collect()
    }

    /// The open connection called `name` (`peer -> local`).
    pub fn connection_named(&self, name: &str) -> Option<Arc<ConnectionInfo>> {
        self.connections().into_iter().find(|connection| connection.name() == name)
    }

    /// The counts of `vhost`'s closed channels and connections (zero when none has closed).
    pub fn retired_counts(&self, vhost: &str) -> Arc<RetiredCounts> {
        let mut counts = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(counts.retired.entry(vhost.to_owned()).or_default())
    }

    /// Channels `user` has open, over all their connections.
    pub fn channels_of(&self, user: &str) -> u64 {
        let connections = self.connections();
        connections.iter().filter(|c| c.facts.user == user).map(|c| c.channel_count() as u64).sum()
    }

    /// Open connections to `vhost`.
    pub fn connections_to(&self, vhost: &str) -> u64 {
        let counts = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        counts.per_vhost.get(vhost).copied().unwrap_or(0)
    }

    /// Applies `change` to the access model, stores the new model (on disc), opens the
    /// vhosts it added and stops (deleting their data) those it removed, and hands every
    /// vhost its policies. On an error from `change` nothing changes. Connections of users
    /// the change deleted are closed.
    ///
    /// # Errors
    /// [`NodeError::Access`] from `change`; [`NodeError::Broker`] when the model cannot be
    /// stored or a new vhost cannot be opened (the model is changed all the same).
    pub async fn change_access<T>(
        &self,
        change: impl FnOnce(&mut AccessState) -> Result<T, AccessError>,
    ) -> Result<T, NodeError> {
        let _changes = self.changes.lock().await;
        let result = self.access.update(change)?;
        if let Some(dir) = self.options.storage.dir() {
            store_access(dir, &self.access)?;
        }
        self.close_connections_of_deleted_users();
        self.reconcile_vhosts().await?;
        self.apply_policies().await;
        Ok(result)
    }

    /// Hands every running vhost its policies; a vhost whose policies did not change
    /// does nothing.
    async fn apply_policies(&self) {
        let state = self.access.snapshot();
        for broker in self.vhosts() {
            broker.set_policies(state.policies(broker.vhost()).to_vec()).await;
        }
    }

    /// As RabbitMQ (`rabbit_connection_tracking_handler`, `user_deleted`): the connections of
    /// a user who no longer exists are closed with 320 CONNECTION_FORCED.
    fn close_connections_of_deleted_users(&self) {
        let state = self.access.snapshot();
        for connection in self.connections().iter().filter(|c| state.user(&c.facts.user).is_none()) {
            connection.request_close(format!("user '{}' is deleted", connection.facts.user));
        }
    }

    /// Opens the vhosts of the access model that are not running, and stops and deletes
    /// the running ones it no longer has.
    async fn reconcile_vhosts(&self) -> Result<(), Error> {
        let wanted: Vec<String> = self.access.snapshot().vhosts().map(|v| v.name.clone()).collect();
        let running: Vec<String> =
            self.vhosts.read().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        for name in running.iter().filter(|name| !wanted.contains(name)) {
            let removed = self.vhosts.write().unwrap_or_else(PoisonError::into_inner).remove(name);
            if let Some(broker) = removed {
                // As RabbitMQ: the vhost's connections are closed with 320 CONNECTION_FORCED.
                for connection in self.connections().iter().filter(|c| &c.facts.vhost == name) {
                    connection.request_close(format!("vhost '{name}' is deleted"));
                }
                broker.shutdown().await;
                self.connections.lock().unwrap_or_else(PoisonError::into_inner).retired.remove(name);
                if let Some(dir) = self.vhost_dir(name) {
                    if let Err(error) = super::remove_dir_all(dir).await {
                        tracing::warn!(vhost = %name, %error, "could not remove the vhost's files");
                    }
                }
                tracing::info!(vhost = %name, "vhost deleted");
            }
        }
        for name in wanted.iter().filter(|name| !running.contains(name)) {
            let broker = Broker::open(self.broker_options(name)).await?;
            self.vhosts.write().unwrap_or_else(PoisonError::into_inner).insert(name.clone(), broker);
        }
        Ok(())
    }

    /// Where vhost `name` keeps its data, on disc.
    fn vhost_dir(&self, name: &str) -> Option<PathBuf> {
        self.options.storage.dir().map(|dir| vhost_dir(dir, name))
    }

    fn broker_options(&self, name: &str) -> BrokerOptions {
        let storage = match &self.options.storage {
            Storage::Memory => Storage::Memory,
            Storage::Disk { dir, fsync, io } => {
                Storage::Disk { dir: vhost_dir(dir, name), fsync: *fsync, io: Arc::clone(io) }
            }
        };
        BrokerOptions {
            storage,
            segment_bytes: self.options.segment_bytes,
            disk_headroom: self.options.disk_headroom.clone(),
            memory_budget: self.options.memory_budget.clone(),
            vhost: Arc::from(name),
            alarm: Arc::clone(&self.alarm),
            policies: self.access.snapshot().policies(name).to_vec(),
            churn: Arc::clone(&self.churn),
        }
    }

    /// Stops every vhost's queues (their logs sync and close with them).
    pub async fn shutdown(&self) {
        for broker in self.vhosts() {
            broker.shutdown().await;
        }
    }
}

/// The folder of vhost `name` under the data directory `root`.
pub fn vhost_dir(root: &Path, name: &str) -> PathBuf {
    root.join(VHOSTS_DIR).join(hex(name.as_bytes()))
}

fn default_access(options: &NodeOptions) -> Result<AccessControl, Error> {
    AccessControl::with_default_user(&options.default_user, &options.default_pass)
        .map_err(|error| Error::Internal(format!("the default user: {error}")))
}

/// The stored access model, or at the first start the default one (stored at once).
fn load_access(dir: &Path, options: &NodeOptions) -> Result<AccessControl, Error> {
    let path = dir.join(ACCESS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => AccessControl::from_bytes(&bytes)
            .map_err(|error| Error::Internal(format!("{}: {error}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let access = default_access(options)?;
            tracing::info!(user = %options.default_user, "first start: created vhost '/' and the default user");
            std::fs::create_dir_all(dir).map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
            store_access(dir, &access)?;
            Ok(access)
        }
        Err(error) => Err(Error::Internal(format!("{}: {error}", path.display()))),
    }
}

fn store_access(dir: &Path, access: &AccessControl) -> Result<(), Error> {
    let path = dir.join(ACCESS_FILE);
    crate::log::offsets::write_atomically(&path, &access.to_bytes())
        .map_err(|error| Error::Internal(error.to_string()))
}

/// Moves the queues and definitions of a data directory from before vhosts (at its top)
/// into vhost `/`'s folder, unless that folder exists already. They are gathered in a
/// temporary folder renamed into place last, so that a crash half-way is finished by the
/// next start.
fn adopt_pre_vhost_layout(dir: &Path) -> Result<(), Error> {
    let target = vhost_dir(dir, "/");
    let gathering = target.with_extension("adopting");
    let old = ["queues", "definitions", "definitions.journal", "definitions.journal.damaged"];
    if target.exists() || !(gathering.exists() || old.iter().any(|name| dir.join(name).exists())) {
        return Ok(());
    }
    let internal = |e: std::io::Error| Error::Internal(format!("moving the data of vhost '/': {e}"));
    std::fs::create_dir_all(&gathering).map_err(internal)?;
    for name in old {
        if dir.join(name).exists() {
            std::fs::rename(dir.join(name), gathering.join(name)).map_err(internal)?;
        }
    }
    std::fs::rename(&gathering, &target).map_err(internal)?;
    for synced in [dir, &dir.join(VHOSTS_DIR)] {
        crate::log::sync_dir(synced).map_err(|e| Error::Internal(e.to_string()))?;
    }
    tracing::info!(to = %target.display(), "moved the data directory's queues and definitions to vhost '/'");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::broker::QueueDeclare;
    use crate::log::storage::threaded::ThreadedIo;
    use crate::log::FsyncPolicy;

    fn options(dir: &Path) -> NodeOptions {
        NodeOptions {
            storage: Storage::Disk {
                dir: dir.to_path_buf(),
                fsync: FsyncPolicy::Never,
                io: Arc::new(ThreadedIo),
            },
            segment_bytes: 64 * 1024,
            disk_headroom: None,
            memory_budget: None,
            default_user: "admin".into(),
            default_pass: "pw".into(),
        }
    }

    fn durable(name: &str) -> QueueDeclare {
        QueueDeclare {
            name: Bytes::copy_from_slice(name.as_bytes()),
            durable: true,
            ..QueueDeclare::default()
        }
    }

    /// A vhost added through the access model is opened at once and again after a restart;
    /// deleting it stops it and removes its data; the model survives the restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn vhosts_follow_the_access_model_across_restarts() {
        let temp = tempfile::tempdir().unwrap();
        let node = Node::open(options(temp.path())).await.unwrap();
        assert!(node.access().snapshot().authenticate("admin", "pw").is_ok());
        node.change_access(|state| state.add_vhost("v1")).await.unwrap();
        let v1 = node.vhost("v1").unwrap();
        v1.declare_queue(durable("q")).await.unwrap();
        assert!(vhost_dir(temp.path(), "v1").join("queues").exists());
        node.shutdown().await;
        drop((v1, node));

        let node = Node::open(options(temp.path())).await.unwrap();
        assert!(node.vhost("v1").unwrap().queue(b"q").is_some(), "the vhost's queue is back");
        assert!(node.access().snapshot().authenticate("admin", "pw").is_ok());
        let refused = node.change_access(|state| state.add_vhost("v1")).await.unwrap_err();
        assert_eq!(refused, NodeError::Access(AccessError::VhostExists("v1".into())));
        node.change_access(|state| state.delete_vhost("v1")).await.unwrap();
        assert!(node.vhost("v1").is_none());
        assert!(!vhost_dir(temp.path(), "v1").exists(), "the vhost's data is gone");
    }

    /// A data directory from before vhosts becomes vhost `/`'s.
    #[test]
    fn a_pre_vhost_data_directory_moves_to_vhost_root() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(temp.path().join("queues").join("71")).unwrap();
        std::fs::write(temp.path().join("definitions"), b"d").unwrap();
        adopt_pre_vhost_layout(temp.path()).unwrap();
        let root = vhost_dir(temp.path(), "/");
        assert!(root.join("queues").join("71").exists() && root.join("definitions").exists());
        assert!(!temp.path().join("queues").exists() && !temp.path().join("definitions").exists());
        // A move cut short: some pieces gathered, the rest still at the top.
        let temp = tempfile::tempdir().unwrap();
        let gathering = vhost_dir(temp.path(), "/").with_extension("adopting");
        std::fs::create_dir_all(gathering.join("queues")).unwrap();
        std::fs::write(temp.path().join("definitions"), b"d").unwrap();
        adopt_pre_vhost_layout(temp.path()).unwrap();
        let root = vhost_dir(temp.path(), "/");
        assert!(root.join("queues").exists() && root.join("definitions").exists() && !gathering.exists());
    }
}
