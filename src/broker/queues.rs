//! Queues in the model: lookups, `queue.declare` with RabbitMQ's checks, opening a queue's
//! log and starting it, and `queue.purge`. How queues go is in `queue_deletion`. The
//! running queue is `queue::classic`'s; this file knows no frames and no log internals
//! beyond the options it opens a log with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::arguments::{self, Overflow, QueueArgs};
use super::naming::{generated_name, hex, text};
use super::policies::{stream_retention, AppliedQueuePolicy};
use super::{dead_letter, definitions, Broker, Churn, ConnectionId, Error, Name, TRANSIENT_DIR};
use crate::log::{FsyncPolicy, Log, LogOptions, Storage};
use crate::queue::classic::FLOOR_KEY;
use crate::queue::{DeadLetters, QueueHandle, QueueOptions};
use crate::wire::amqp::FieldTable;

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
    /// Its arguments parsed, as declared (what a policy adds is in
    /// [`QueueEntry::effective_args`]).
    pub args: QueueArgs,
    /// Its policy and effective settings (see `policies`); read when they are resolved
    /// again, never per message.
    pub(super) applied: RwLock<AppliedQueuePolicy>,
    /// With reject-publish overflow and a length limit: the ready count at which
    /// publishes are refused; `u64::MAX` otherwise. Read on every publish.
    reject_publish_at: AtomicU64,
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

    /// Whether publishes to the queue are refused now (reject-publish overflow, full).
    #[inline]
    pub fn rejects_publish(&self) -> bool {
        let at = self.reject_publish_at.load(Ordering::Acquire);
        at != u64::MAX && self.handle.ready_count() >= at
    }

    /// Sets the limit [`QueueEntry::rejects_publish`] checks from effective settings.
    pub(super) fn set_publish_limits(&self, args: &QueueArgs) {
        let at = match (args.overflow, args.max_length) {
            (Overflow::RejectPublish, Some(max)) => max.min(u64::MAX - 1),
            _ => u64::MAX,
        };
        self.reject_publish_at.store(at, Ordering::Release);
    }

    /// How long the queue may stay unused before it is deleted (`x-expires`, or its
    /// policy's `expires`).
    pub fn expires(&self) -> Option<Duration> {
        self.applied.read().expect("queue policy lock poisoned").args.expires
    }

    /// Marks the queue as used now (renews its `x-expires` lease).
    pub fn touch(&self) {
        *self.last_used.lock().expect("queue lease lock poisoned") = Instant::now();
    }
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
    /// The name was made by the server (`amq.gen-…`, for a client that sent none), so
    /// it may have the reserved prefix.
    pub server_named: bool,
}

impl Broker {
    /// The queue called `name`.
    pub fn queue(&self, name: &[u8]) -> Option<Arc<QueueEntry>> {
        self.model.read().expect("model lock poisoned").queues.get(name).cloned()
    }

    /// Every queue.
    pub fn queues(&self) -> Vec<Arc<QueueEntry>> {
        self.model.read().expect("model lock poisoned").queues.values().cloned().collect()
    }

    /// How many queues there are.
    pub fn queue_count(&self) -> u64 {
        self.model.read().expect("model lock poisoned").queues.len() as u64
    }

    /// The queue `name`, checked for use by `connection`.
    ///
    /// # Errors
    /// 404 if missing, 405 if it is another connection's exclusive queue.
    pub fn queue_for(&self, name: &[u8], connection: ConnectionId) -> Result<Arc<QueueEntry>, Error> {
        let queue = self.queue(name).ok_or_else(|| Error::QueueNotFound(self.named(name)))?;
        if queue.exclusive_owner.is_some_and(|owner| owner != connection) {
            return Err(Error::Locked(self.named(name)));
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
        } else if request.name.starts_with(b"amq.")
            && !request.passive
            && !request.server_named
            && self.queue(&request.name).is_none()
        {
            return Err(Error::ReservedName { kind: "queue", name: text(&request.name) });
        }
        if let Some(existing) = self.queue(&request.name) {
            check_queue_redeclare(self.named(&request.name), &existing, &request)?;
            if !request.passive {
                Churn::bump(&self.options.churn.queue_declared);
            }
            existing.touch();
            let stats = existing.handle.stats();
            let ready = existing.handle.ready_count().min(u64::from(u32::MAX)) as u32;
            return Ok((Arc::clone(&existing), ready, stats.consumers.load(Ordering::Acquire)));
        }
        if request.passive {
            return Err(Error::QueueNotFound(self.named(&request.name)));
        }
        let args = arguments::parse_queue_args(&self.named(&request.name), &request.arguments)?;
        if args.queue_type == arguments::QueueType::Stream {
            check_stream_properties(&self.named(&request.name), &request)?;
        }
        let entry = self.create_queue(&request, args).await?;
        Churn::bump(&self.options.churn.queue_declared);
        Churn::bump(&self.options.churn.queue_created);
        if entry.durable && entry.exclusive_owner.is_none() {
            definitions::record(
                self,
                definitions::Change::QueueDeclared(definitions::queue_definition(&entry)),
            )?;
        }
        Ok((entry, 0, 0))
    }

    /// Opens the queue's log and starts it (also used when restoring definitions), with
    /// its arguments (parsed: `args`) combined with the vhost's policies.
    pub(crate) async fn create_queue(
        &self,
        request: &QueueDeclare,
        args: QueueArgs,
    ) -> Result<Arc<QueueEntry>, Error> {
        let applied = self.resolve_queue_policy(&request.name, &request.arguments, &args);
        let effective = &applied.args;
        let id = self.id();
        let log_options = self.queue_log_options(request, effective, id);
        let persisted = outlives_broker(request) && log_options.storage.dir().is_some();
        let log = Log::open(log_options).await.map_err(|e| Error::Internal(e.to_string()))?;
        let restart_offset = log.next_offset();
        let start_offset = log.offsets().get(FLOOR_KEY).unwrap_or(0);
        let settings = self.queue_settings(effective, None);
        let handle = QueueHandle::start(QueueOptions {
            name: Arc::from(text(&request.name)),
            log,
            restart_offset,
            start_offset,
            persist_floor: persisted,
            message_ttl: settings.message_ttl,
            max_length: settings.max_length,
            max_length_bytes: settings.max_length_bytes,
            max_priority: effective.max_priority,
            dead_letter: self.dead_letter_route(&request.name, effective),
            stream: effective.queue_type == arguments::QueueType::Stream,
        });
        let entry = Arc::new(QueueEntry {
            id,
            name: request.name.clone(),
            durable: request.durable,
            exclusive_owner: request.exclusive.then_some(request.connection),
            auto_delete: request.auto_delete,
            arguments: request.arguments.clone(),
            args,
            reject_publish_at: AtomicU64::new(u64::MAX),
            applied: RwLock::new(applied),
            handle,
            last_used: Mutex::new(Instant::now()),
        });
        entry.set_publish_limits(&entry.effective_args());
        let mut model = self.model.write().expect("model lock poisoned");
        model.queue_ids.insert(entry.id, Arc::clone(&entry));
        model.queues.insert(entry.name.clone(), Arc::clone(&entry));
        drop(model);
        self.topology_changed();
        Ok(entry)
    }

    /// How the queue's log is opened; a stream's own segment size, retention and compression.
    /// When the broker stores on disc every queue's log is on disc, so that backlogs live in
    /// files (the page cache), not in the broker's memory: a durable queue's under
    /// `queues/<hex of name>` with the broker's fsync policy; any other queue's (non-durable
    /// or exclusive, which do not outlive the broker) under `transient/<queue id>`, never
    /// synced, and removed when the queue is deleted or the vhost opens again.
    fn queue_log_options(&self, request: &QueueDeclare, args: &QueueArgs, id: u64) -> LogOptions {
        let storage = match &self.options.storage {
            Storage::Disk { dir, fsync, io } if outlives_broker(request) => Storage::Disk {
                dir: dir.join("queues").join(hex(&request.name)),
                fsync: *fsync,
                io: Arc::clone(io),
            },
            Storage::Disk { dir, io, .. } => Storage::Disk {
                dir: dir.join(TRANSIENT_DIR).join(id.to_string()),
                fsync: FsyncPolicy::Never,
                io: Arc::clone(io),
            },
            Storage::Memory => Storage::Memory,
        };
        let on_disk = matches!(storage, Storage::Disk { .. });
        let mut log_options = LogOptions::new(storage);
        // A transient queue's files are removed before anything could read them again.
        log_options.checksums = outlives_broker(request);
        log_options.segment_bytes_max = self.options.segment_bytes;
        log_options.disk_headroom = self.options.disk_headroom.clone().filter(|_| on_disk);
        log_options.memory_budget = self.options.memory_budget.clone().filter(|_| !on_disk);
        if args.queue_type == arguments::QueueType::Stream {
            if let Some(bytes) = args.stream_segment_bytes {
                log_options.segment_bytes_max =
                    bytes.clamp(crate::limits::SEGMENT_BYTES_MIN, crate::limits::SEGMENT_BYTES_MAX);
            }
            let retention = stream_retention(args);
            log_options.retention_bytes_max = retention.bytes_max;
            log_options.retention_age_max = retention.age_max;
            log_options.retention_check_interval = retention.check_interval;
            if args.compress {
                log_options.compression = crate::log::Compression::Zstd;
            }
        }
        log_options
    }

    /// The dead-letter channel of a queue with `x-dead-letter-exchange`, its routing task
    /// started.
    pub(super) fn dead_letter_route(&self, name: &[u8], args: &QueueArgs) -> Option<DeadLetters> {
        let exchange = args.dead_letter_exchange.as_ref()?;
        let (out, receiver) = DeadLetters::channel();
        let route = dead_letter::DeadLetterRoute {
            broker: self.myself.clone(),
            queue: Arc::from(text(name)),
            exchange: exchange.clone(),
            routing_key: args.dead_letter_routing_key.clone(),
        };
        route.spawn(receiver);
        Some(out)
    }

    /// `queue.purge`; answers the ready count removed.
    ///
    /// # Errors
    /// 404 / 405.
    pub async fn purge_queue(&self, name: &[u8], connection: ConnectionId) -> Result<u32, Error> {
        let queue = self.queue_for(name, connection)?;
        let purged = queue.handle.purge().await.map_err(|_| Error::QueueNotFound(self.named(name)))?;
        Ok(purged.min(u64::from(u32::MAX)) as u32)
    }
}

/// Whether a queue so declared survives a restart: durable and not exclusive.
fn outlives_broker(request: &QueueDeclare) -> bool {
    request.durable && !request.exclusive
}

/// Refuses the properties a stream cannot have, as RabbitMQ does.
fn check_stream_properties(name: &Name, request: &QueueDeclare) -> Result<(), Error> {
    let property = if !request.durable {
        Some("non-durable")
    } else if request.exclusive {
        Some("exclusive-owner")
    } else if request.auto_delete {
        Some("auto-delete")
    } else {
        None
    };
    match property {
        Some(property) => Err(Error::InvalidProperty { name: name.clone(), property }),
        None => Ok(()),
    }
}

/// Checks a redeclare of `existing` as RabbitMQ does: exclusivity first, then durable,
/// auto-delete and the arguments.
fn check_queue_redeclare(name: Name, existing: &QueueEntry, request: &QueueDeclare) -> Result<(), Error> {
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
