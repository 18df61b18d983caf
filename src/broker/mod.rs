//! BROKER MODEL: the vhost `/` with its exchanges, bindings and queues; declaring,
//! deleting and routing. No sockets, no frames; queues' internals stay in `queue`.
//!
//! Locking: the model's tables sit behind a std `RwLock`, taken briefly (routing takes it
//! for reading on every publish; declares take it for writing) and never held across an
//! `.await`. Changes of definitions are serialised by an async mutex, held across the
//! opening of a queue's log, so that two declares of one queue never open its files twice.

pub mod arguments;
pub mod dead_letter;
pub mod definitions;
mod error;
pub mod exchange;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use arguments::{Overflow, QueueArgs};
pub use error::Error;
use exchange::{BindingTable, ExchangeKind};

use crate::log::{Log, LogOptions, Storage};
use crate::queue::classic::FLOOR_KEY;
use crate::queue::{DeadLetter, QueueHandle, QueueOptions};
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

/// Identifies a client connection.
pub type ConnectionId = u64;

/// Where a binding leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// A queue, by id.
    Queue(u64),
    /// An exchange, by id (exchange-to-exchange binding).
    Exchange(u64),
}

/// Bindings of one exchange.
pub type Bindings = BindingTable<Destination, ShortStr, FieldValue>;

/// An exchange.
#[derive(Debug)]
pub struct ExchangeEntry {
    /// Internal id, used in bindings.
    pub id: u64,
    /// Its name.
    pub name: Bytes,
    /// Its type.
    pub kind: ExchangeKind,
    /// Survives restarts.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Takes no publishes, only exchange-to-exchange traffic.
    pub internal: bool,
    /// Its arguments.
    pub arguments: FieldTable,
    /// `alternate-exchange`.
    pub alternate: Option<Bytes>,
    /// Its bindings, as source.
    pub bindings: RwLock<Bindings>,
}

/// A queue.
#[derive(Debug)]
pub struct QueueEntry {
    /// Internal id, used in bindings.
    pub id: u64,
    /// Its name.
    pub name: Bytes,
    /// Survives restarts.
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    pub exclusive_owner: Option<ConnectionId>,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Its arguments as declared.
    pub arguments: FieldTable,
    /// Its arguments parsed.
    pub args: QueueArgs,
    /// The running queue.
    pub handle: Arc<QueueHandle>,
    /// Last declare, get or consumer activity (for `x-expires`).
    pub last_used: Mutex<Instant>,
}

impl QueueEntry {
    /// The name as text.
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// Whether this is a stream queue.
    pub fn is_stream(&self) -> bool {
        self.args.queue_type == arguments::QueueType::Stream
    }

    /// Marks the queue as used now (renews its `x-expires` lease).
    pub fn touch(&self) {
        *self.last_used.lock().expect("queue lease lock poisoned") = Instant::now();
    }
}

/// How the broker stores queues.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Where durable queues' logs go (`None`: everything in memory).
    pub storage: Storage,
    /// Segment size of queue logs.
    pub segment_bytes: u64,
}

/// A `queue.declare`.
#[derive(Debug, Clone, Default)]
pub struct QueueDeclare {
    /// Name; empty asks for a server-named queue.
    pub name: Bytes,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives restarts.
    pub durable: bool,
    /// Owned by the declaring connection.
    pub exclusive: bool,
    /// Deleted with its last consumer.
    pub auto_delete: bool,
    /// `x-*` arguments.
    pub arguments: FieldTable,
    /// The declaring connection.
    pub connection: ConnectionId,
}

/// An `exchange.declare`.
#[derive(Debug, Clone, Default)]
pub struct ExchangeDeclare {
    /// Name.
    pub name: Bytes,
    /// Type name.
    pub kind: Bytes,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives restarts.
    pub durable: bool,
    /// Deleted with its last binding.
    pub auto_delete: bool,
    /// Takes no publishes.
    pub internal: bool,
    /// Arguments.
    pub arguments: FieldTable,
}

#[derive(Debug, Default)]
struct Model {
    exchanges: HashMap<Bytes, Arc<ExchangeEntry>>,
    exchange_names: HashMap<u64, Bytes>,
    queues: HashMap<Bytes, Arc<QueueEntry>>,
    queue_ids: HashMap<u64, Arc<QueueEntry>>,
}

/// The broker: one vhost, `/`.
pub struct Broker {
    options: BrokerOptions,
    model: RwLock<Model>,
    changes: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    /// Bumped after every change of exchanges, queues or bindings (see [`Broker::topology`]).
    topology: AtomicU64,
    myself: std::sync::Weak<Broker>,
    alarm: tokio::sync::watch::Sender<Option<&'static str>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

const BUILTIN_EXCHANGES: [(&str, ExchangeKind); 6] = [
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
    ("", ExchangeKind::Direct),
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Broker {
    /// A broker with the built-in exchanges, and (on disc) the durable definitions and
    /// queues found in the data directory.
    ///
    /// # Errors
    /// When stored definitions or queue logs cannot be read.
    pub async fn open(options: BrokerOptions) -> Result<Arc<Broker>, Error> {
        let broker = Arc::new_cyclic(|myself| Broker {
            options,
            model: RwLock::new(Model::default()),
            changes: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            topology: AtomicU64::new(0),
            myself: myself.clone(),
            alarm: tokio::sync::watch::channel(None).0,
        });
        for (name, kind) in BUILTIN_EXCHANGES {
            broker.insert_exchange(
                Bytes::from_static(name.as_bytes()),
                kind,
                true,
                false,
                false,
                FieldTable::default(),
            );
        }
        definitions::restore(&broker).await?;
        let sweeper = Arc::downgrade(&broker);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let Some(broker) = sweeper.upgrade() else { return };
                broker.expire_unused_queues().await;
            }
        });
        Ok(broker)
    }

    /// Raises (`Some(reason)`) or clears (`None`) the resource alarm that blocks publishers.
    pub fn set_alarm(&self, reason: Option<&'static str>) {
        self.alarm.send_if_modified(|current| {
            let changed = *current != reason;
            *current = reason;
            changed
        });
    }

    /// Follows the resource alarm: `Some(reason)` while publishers must be blocked.
    pub fn alarm(&self) -> tokio::sync::watch::Receiver<Option<&'static str>> {
        self.alarm.subscribe()
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

    fn insert_exchange(
        &self,
        name: Bytes,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Arc<ExchangeEntry> {
        let alternate =
            arguments.get("alternate-exchange").and_then(|v| v.as_bytes()).map(Bytes::copy_from_slice);
        let entry = Arc::new(ExchangeEntry {
            id: self.id(),
            name: name.clone(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            alternate,
            bindings: RwLock::new(BindingTable::new(kind)),
        });
        let mut model = self.model.write().expect("model lock poisoned");
        model.exchange_names.insert(entry.id, name.clone());
        model.exchanges.insert(name, Arc::clone(&entry));
        drop(model);
        self.topology_changed();
        entry
    }

    /// The queue called `name`.
    pub fn queue(&self, name: &[u8]) -> Option<Arc<QueueEntry>> {
        self.model.read().expect("model lock poisoned").queues.get(name).cloned()
    }

    /// The exchange called `name`.
    pub fn exchange(&self, name: &[u8]) -> Option<Arc<ExchangeEntry>> {
        self.model.read().expect("model lock poisoned").exchanges.get(name).cloned()
    }

    /// Every queue.
    pub fn queues(&self) -> Vec<Arc<QueueEntry>> {
        self.model.read().expect("model lock poisoned").queues.values().cloned().collect()
    }

    /// Every exchange.
    pub fn exchanges(&self) -> Vec<Arc<ExchangeEntry>> {
        self.model.read().expect("model lock poisoned").exchanges.values().cloned().collect()
    }

    /// The queue `name`, checked for use by `connection`.
    ///
    /// # Errors
    /// 404 if missing, 405 if it is another connection's exclusive queue.
    pub fn queue_for(&self, name: &[u8], connection: ConnectionId) -> Result<Arc<QueueEntry>, Error> {
        let queue = self.queue(name).ok_or_else(|| Error::QueueNotFound(text(name)))?;
        if queue.exclusive_owner.is_some_and(|owner| owner != connection) {
            return Err(Error::Locked(text(name)));
        }
        Ok(queue)
    }

    /// `queue.declare`; answers the name, ready count and consumer count.
    ///
    /// # Errors
    /// As RabbitMQ: 403, 404, 405, 406.
    pub async fn declare_queue(&self, request: QueueDeclare) -> Result<(Arc<QueueEntry>, u32, u32), Error> {
        let _changes = self.changes.lock().await;
        let mut request = request;
        if request.name.is_empty() && !request.passive {
            request.name = Bytes::from(generated_name("amq.gen-"));
        } else if request.name.starts_with(b"amq.") && !request.passive && self.queue(&request.name).is_none()
        {
            return Err(Error::ReservedName { kind: "queue", name: text(&request.name) });
        }
        if let Some(existing) = self.queue(&request.name) {
            check_queue_redeclare(&existing, &request)?;
            existing.touch();
            let stats = existing.handle.stats();
            let ready = existing.handle.ready_count().min(u64::from(u32::MAX)) as u32;
            return Ok((Arc::clone(&existing), ready, stats.consumers.load(Ordering::Acquire)));
        }
        if request.passive {
            return Err(Error::QueueNotFound(text(&request.name)));
        }
        let args = arguments::parse_queue_args(&text(&request.name), &request.arguments)?;
        if args.queue_type == arguments::QueueType::Stream {
            let property = if !request.durable {
                Some("non-durable")
            } else if request.exclusive {
                Some("exclusive-owner")
            } else if request.auto_delete {
                Some("auto-delete")
            } else {
                None
            };
            if let Some(property) = property {
                return Err(Error::InvalidProperty { name: text(&request.name), property });
            }
        }
        let entry = self.create_queue(&request, args).await?;
        if entry.durable {
            definitions::save(self)?;
        }
        Ok((entry, 0, 0))
    }

    /// Opens the queue's log and starts it (also used when restoring definitions).
    pub(crate) async fn create_queue(
        &self,
        request: &QueueDeclare,
        args: QueueArgs,
    ) -> Result<Arc<QueueEntry>, Error> {
        let stream = args.queue_type == arguments::QueueType::Stream;
        let storage = match (&self.options.storage, request.durable) {
            (Storage::Disk { dir, fsync, io }, true) => Storage::Disk {
                dir: dir.join("queues").join(hex(&request.name)),
                fsync: *fsync,
                io: Arc::clone(io),
            },
            _ => Storage::Memory,
        };
        let on_disk = matches!(storage, Storage::Disk { .. });
        let mut log_options = LogOptions::new(storage);
        log_options.segment_bytes_max = self.options.segment_bytes;
        if stream {
            if let Some(bytes) = args.stream_segment_bytes {
                log_options.segment_bytes_max =
                    bytes.clamp(crate::limits::SEGMENT_BYTES_MIN, crate::limits::SEGMENT_BYTES_MAX);
            }
            log_options.retention_bytes_max = args.max_length_bytes;
            log_options.retention_age_max = args.max_age;
            if args.max_age.is_some() {
                log_options.retention_check_interval = Duration::from_secs(1);
            }
            if args.compress {
                log_options.compression = crate::log::Compression::Zstd;
            }
        }
        let log = Log::open(log_options).await.map_err(|e| Error::Internal(e.to_string()))?;
        let restart_offset = log.next_offset();
        let start_offset = log.offsets().get(FLOOR_KEY).unwrap_or(0);
        let name: Arc<str> = Arc::from(text(&request.name));
        let dead_letter: Option<Arc<dyn DeadLetter>> = args.dead_letter_exchange.as_ref().map(|exchange| {
            Arc::new(dead_letter::DeadLetterSink {
                broker: self.myself.clone(),
                exchange: exchange.clone(),
                routing_key: args.dead_letter_routing_key.clone(),
            }) as Arc<dyn DeadLetter>
        });
        let handle = QueueHandle::start(QueueOptions {
            name,
            log,
            restart_offset,
            start_offset,
            persist_floor: on_disk,
            message_ttl: args.message_ttl,
            max_length: if args.overflow == Overflow::DropHead { args.max_length } else { None },
            max_length_bytes: if args.overflow == Overflow::DropHead { args.max_length_bytes } else { None },
            max_priority: args.max_priority,
            dead_letter,
            stream,
        });
        let entry = Arc::new(QueueEntry {
            id: self.id(),
            name: request.name.clone(),
            durable: request.durable,
            exclusive_owner: request.exclusive.then_some(request.connection),
            auto_delete: request.auto_delete,
            arguments: request.arguments.clone(),
            args,
            handle,
            last_used: Mutex::new(Instant::now()),
        });
        let mut model = self.model.write().expect("model lock poisoned");
        model.queue_ids.insert(entry.id, Arc::clone(&entry));
        model.queues.insert(entry.name.clone(), Arc::clone(&entry));
        drop(model);
        self.topology_changed();
        Ok(entry)
    }

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
                return Err(Error::Locked(text(name)));
            }
        }
        let stats = queue.handle.stats();
        if if_unused && stats.consumers.load(Ordering::Acquire) > 0 {
            return Err(Error::QueueInUse(text(name)));
        }
        if if_empty && queue.handle.ready_count() > 0 {
            return Err(Error::NotEmpty(text(name)));
        }
        Ok(self.remove_queue(&queue).await)
    }

    async fn remove_queue(&self, queue: &Arc<QueueEntry>) -> u32 {
        let doomed_exchanges = {
            let mut model = self.model.write().expect("model lock poisoned");
            model.queues.remove(&queue.name);
            model.queue_ids.remove(&queue.id);
            let mut doomed = Vec::new();
            for exchange in model.exchanges.values() {
                let mut bindings = exchange.bindings.write().expect("bindings lock poisoned");
                if bindings.unbind_destination(Destination::Queue(queue.id)) > 0
                    && exchange.auto_delete
                    && bindings.is_empty()
                {
                    doomed.push(exchange.name.clone());
                }
            }
            doomed
        };
        self.topology_changed();
        for name in doomed_exchanges {
            self.remove_exchange(&name);
        }
        let ready = queue.handle.delete().await.unwrap_or(0);
        // Publishers may still hold the entry (routes they remember, deliveries in flight):
        // the messages' memory goes now all the same.
        queue.handle.log().discard().await;
        if let Some(dir) = queue.handle.log().offsets().path_dir() {
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(queue = %queue.name_str(), %error, "could not remove the queue's files");
            }
        }
        if queue.durable {
            if let Err(error) = definitions::save(self) {
                tracing::error!(%error, "could not save definitions");
            }
        }
        ready.min(u64::from(u32::MAX)) as u32
    }

    /// `queue.purge`; answers the ready count removed.
    ///
    /// # Errors
    /// 404 / 405.
    pub async fn purge_queue(&self, name: &[u8], connection: ConnectionId) -> Result<u32, Error> {
        let queue = self.queue_for(name, connection)?;
        let purged = queue.handle.purge().await.map_err(|_| Error::QueueNotFound(text(name)))?;
        Ok(purged.min(u64::from(u32::MAX)) as u32)
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

    async fn expire_unused_queues(&self) {
        let expired: Vec<Arc<QueueEntry>> = self
            .queues()
            .into_iter()
            .filter(|q| {
                q.args.expires.is_some_and(|expires| {
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

    /// `exchange.declare`.
    ///
    /// # Errors
    /// 503 (connection) for an unknown type; 403 for reserved names; 404 passive; 406.
    pub async fn declare_exchange(&self, request: ExchangeDeclare) -> Result<(), Error> {
        let _changes = self.changes.lock().await;
        let kind_text = text(&request.kind);
        if let Some(existing) = self.exchange(&request.name) {
            if request.passive {
                return Ok(());
            }
            // Built-in `amq.*` exchanges may be redeclared when equivalent, as in RabbitMQ.
            if request.name.is_empty() {
                return Err(Error::DefaultExchange);
            }
            let kind =
                ExchangeKind::parse(&kind_text).ok_or(Error::UnknownExchangeType(kind_text.clone()))?;
            let inequivalent = |arg: &str, received: String, current: String| Error::Inequivalent {
                kind: "exchange",
                name: text(&request.name),
                arg: arg.to_owned(),
                received: format!("'{received}'"),
                current: format!("'{current}'"),
            };
            if kind != existing.kind {
                return Err(inequivalent("type", kind_text, existing.kind.as_str().to_owned()));
            }
            if request.durable != existing.durable {
                return Err(inequivalent(
                    "durable",
                    request.durable.to_string(),
                    existing.durable.to_string(),
                ));
            }
            if request.auto_delete != existing.auto_delete {
                let (received, current) = (request.auto_delete.to_string(), existing.auto_delete.to_string());
                return Err(inequivalent("auto_delete", received, current));
            }
            if request.internal != existing.internal {
                return Err(inequivalent(
                    "internal",
                    request.internal.to_string(),
                    existing.internal.to_string(),
                ));
            }
            return Ok(());
        }
        if request.passive {
            return Err(Error::ExchangeNotFound(text(&request.name)));
        }
        let kind = ExchangeKind::parse(&kind_text).ok_or(Error::UnknownExchangeType(kind_text))?;
        if request.name.starts_with(b"amq.") {
            return Err(Error::ReservedName { kind: "exchange", name: text(&request.name) });
        }
        let durable = request.durable;
        self.insert_exchange(
            request.name,
            kind,
            durable,
            request.auto_delete,
            request.internal,
            request.arguments,
        );
        if durable {
            definitions::save(self)?;
        }
        Ok(())
    }

    /// `exchange.delete`. A missing exchange is not an error.
    ///
    /// # Errors
    /// 403 for the default and built-in exchanges; 406 for if-unused with bindings.
    pub async fn delete_exchange(&self, name: &[u8], if_unused: bool) -> Result<(), Error> {
        let _changes = self.changes.lock().await;
        if name.is_empty() {
            return Err(Error::DefaultExchange);
        }
        if BUILTIN_EXCHANGES.iter().any(|(builtin, _)| builtin.as_bytes() == name) {
            return Err(Error::SystemExchange(text(name)));
        }
        let Some(exchange) = self.exchange(name) else { return Ok(()) };
        if if_unused && !exchange.bindings.read().expect("bindings lock poisoned").is_empty() {
            return Err(Error::ExchangeInUse(text(name)));
        }
        self.remove_exchange(name);
        if exchange.durable {
            definitions::save(self)?;
        }
        Ok(())
    }

    fn remove_exchange(&self, name: &[u8]) {
        let mut model = self.model.write().expect("model lock poisoned");
        if let Some(exchange) = model.exchanges.remove(name) {
            model.exchange_names.remove(&exchange.id);
            for other in model.exchanges.values() {
                other
                    .bindings
                    .write()
                    .expect("bindings lock poisoned")
                    .unbind_destination(Destination::Exchange(exchange.id));
            }
        }
        drop(model);
        self.topology_changed();
    }

    fn destination(
        &self,
        name: &[u8],
        is_queue: bool,
        connection: ConnectionId,
    ) -> Result<(Destination, bool), Error> {
        if is_queue {
            let queue = self.queue_for(name, connection)?;
            Ok((Destination::Queue(queue.id), queue.durable))
        } else {
            let exchange = self.exchange(name).ok_or_else(|| Error::ExchangeNotFound(text(name)))?;
            Ok((Destination::Exchange(exchange.id), exchange.durable))
        }
    }

    /// `queue.bind` (`is_queue`) or `exchange.bind`.
    ///
    /// # Errors
    /// 403 for the default exchange; 404 for a missing end; 405; 406 for bad headers args.
    pub async fn bind(
        &self,
        source: &[u8],
        destination: &[u8],
        is_queue: bool,
        routing_key: &[u8],
        arguments: FieldTable,
        connection: ConnectionId,
    ) -> Result<(), Error> {
        let _changes = self.changes.lock().await;
        if source.is_empty() || (!is_queue && destination.is_empty()) {
            return Err(Error::DefaultExchange);
        }
        let (target, target_durable) = self.destination(destination, is_queue, connection)?;
        let exchange = self.exchange(source).ok_or_else(|| Error::ExchangeNotFound(text(source)))?;
        exchange.kind.validate_binding(&arguments.0).map_err(|e| Error::InvalidArg {
            kind: "exchange",
            name: text(source),
            arg: "x-match".into(),
            reason: e.to_string(),
        })?;
        let added =
            exchange.bindings.write().expect("bindings lock poisoned").bind(routing_key, arguments.0, target);
        self.topology_changed();
        if added && exchange.durable && target_durable {
            definitions::save(self)?;
        }
        Ok(())
    }

    /// `queue.unbind` or `exchange.unbind`. Unbinding what is not bound is not an error.
    ///
    /// # Errors
    /// 403 for the default exchange; 404 for a missing end.
    pub async fn unbind(
        &self,
        source: &[u8],
        destination: &[u8],
        is_queue: bool,
        routing_key: &[u8],
        arguments: &FieldTable,
        connection: ConnectionId,
    ) -> Result<(), Error> {
        let _changes = self.changes.lock().await;
        if source.is_empty() {
            return Err(Error::DefaultExchange);
        }
        let (target, target_durable) = self.destination(destination, is_queue, connection)?;
        let exchange = self.exchange(source).ok_or_else(|| Error::ExchangeNotFound(text(source)))?;
        let (removed, now_empty) = {
            let mut bindings = exchange.bindings.write().expect("bindings lock poisoned");
            (bindings.unbind(routing_key, &arguments.0, target), bindings.is_empty())
        };
        self.topology_changed();
        if removed && exchange.auto_delete && now_empty {
            self.remove_exchange(source);
        }
        if removed && exchange.durable && target_durable {
            definitions::save(self)?;
        }
        Ok(())
    }

    /// The queues a message published to `exchange` with `routing_key` and `headers`
    /// reaches, each once, following exchange-to-exchange bindings and alternate exchanges.
    ///
    /// # Errors
    /// 404 for a missing exchange, 403 for an internal one.
    pub fn route(
        &self,
        exchange: &[u8],
        routing_key: &[u8],
        headers: Option<&FieldTable>,
        out: &mut Vec<Arc<QueueEntry>>,
    ) -> Result<(), Error> {
        let model = self.model.read().expect("model lock poisoned");
        if exchange.is_empty() {
            if let Some(queue) = model.queues.get(routing_key) {
                out.push(Arc::clone(queue));
            }
            return Ok(());
        }
        let start = model.exchanges.get(exchange).ok_or_else(|| Error::ExchangeNotFound(text(exchange)))?;
        if start.internal {
            return Err(Error::InternalExchange(text(exchange)));
        }
        let no_headers: &[(ShortStr, FieldValue)] = &[];
        let headers = headers.map_or(no_headers, |h| &h.0[..]);
        let mut visited = HashSet::new();
        let mut pending = vec![Arc::clone(start)];
        let mut destinations = Vec::new();
        let mut queue_ids = Vec::new();
        while let Some(current) = pending.pop() {
            if !visited.insert(current.id) {
                continue;
            }
            destinations.clear();
            current.bindings.read().expect("bindings lock poisoned").route(
                routing_key,
                headers,
                &mut destinations,
            );
            let before = queue_ids.len();
            for destination in &destinations {
                match destination {
                    Destination::Queue(id) => queue_ids.push(*id),
                    Destination::Exchange(id) => {
                        if let Some(next) = model.exchange_names.get(id).and_then(|n| model.exchanges.get(n))
                        {
                            pending.push(Arc::clone(next));
                        }
                    }
                }
            }
            let matched_any = queue_ids.len() > before
                || destinations.iter().any(|d| matches!(d, Destination::Exchange(_)));
            if !matched_any {
                if let Some(alternate) = current.alternate.as_ref().and_then(|n| model.exchanges.get(n)) {
                    pending.push(Arc::clone(alternate));
                }
            }
        }
        queue_ids.sort_unstable();
        queue_ids.dedup();
        out.extend(queue_ids.iter().filter_map(|id| model.queue_ids.get(id).cloned()));
        Ok(())
    }

    /// Stops every queue (their logs sync and close with them).
    pub async fn shutdown(&self) {
        for queue in self.queues() {
            let _ = queue.handle.delete().await;
            let _ = queue.handle.log().close().await;
        }
    }
}

fn check_queue_redeclare(existing: &QueueEntry, request: &QueueDeclare) -> Result<(), Error> {
    let name = text(&request.name);
    if existing.exclusive_owner.is_some_and(|owner| owner != request.connection) {
        return Err(Error::Locked(name));
    }
    if request.passive {
        return Ok(());
    }
    if existing.exclusive_owner.is_some() != request.exclusive {
        return Err(Error::Locked(name));
    }
    let inequivalent = |arg: &str, received: bool, current: bool| Error::Inequivalent {
        kind: "queue",
        name: name.clone(),
        arg: arg.to_owned(),
        received: format!("'{received}'"),
        current: format!("'{current}'"),
    };
    if existing.durable != request.durable {
        return Err(inequivalent("durable", request.durable, existing.durable));
    }
    if existing.auto_delete != request.auto_delete {
        return Err(inequivalent("auto_delete", request.auto_delete, existing.auto_delete));
    }
    arguments::check_queue_equivalence(&name, &existing.arguments, &request.arguments)
}

/// `prefix` followed by 22 random URL-safe characters, like RabbitMQ's `amq.gen-…`.
pub fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(prefix.len() + 22);
    out.push_str(prefix);
    let mut state = rand_seed();
    for _ in 0..22 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push(char::from(ALPHABET[(state % 64) as usize]));
    }
    out
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() | 1
}

/// A name as a file-system-safe directory name.
pub fn hex(name: &[u8]) -> String {
    name.iter().map(|b| format!("{b:02x}")).collect()
}

/// Headers-exchange matching on AMQP field values: integers of any width compare by value.
impl exchange::HeaderValue for FieldValue {
    fn is_void(&self) -> bool {
        matches!(self, FieldValue::Void)
    }

    fn as_integer(&self) -> Option<i128> {
        match self {
            FieldValue::Timestamp(t) => Some(i128::from(*t)),
            other => other.as_i64().map(i128::from),
        }
    }

    fn as_long_str(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(bytes) => Some(bytes),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_look_like_rabbitmq() {
        let a = generated_name("amq.gen-");
        let b = generated_name("amq.gen-");
        assert_eq!(a.len(), "amq.gen-".len() + 22);
        assert_ne!(a, b);
    }
}
