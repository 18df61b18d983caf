//! SERVER: the only place that wires I/O together: the disc backend, the data directory,
//! signals and clean shutdown.

pub mod alarms;
pub mod amqp_driver;
pub mod amqp_listener;
mod amqp_socket;
pub mod descriptors;
pub mod http_listener;
pub mod shutdown;
pub mod status;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::{Node, NodeOptions};
use crate::config::{Config, StorageMode};
use crate::limits::MEMORY_LIMIT_TENTHS_OF_RAM;
use crate::log::headroom::DiskHeadroom;
use crate::log::maps;
use crate::log::memory_budget::MemoryBudget;
use crate::log::storage::files::BoundedIo;
use crate::log::storage::{self, FileIo};
use crate::log::Storage;
use crate::management::{Api, NodeInfo};

/// What a running broker holds.
pub struct Server {
    config: Config,
    io: Option<Arc<dyn FileIo>>,
}

impl Server {
    /// Prepares the data directory and the disc backend.
    ///
    /// # Errors
    /// When the data directory cannot be created or the chosen backend cannot start.
    pub fn start(config: Config) -> anyhow::Result<Server> {
        let descriptors_max = descriptors::raise_limit();
        let segment_files_max =
            config.open_files_max.unwrap_or_else(|| descriptors::segment_files_max(descriptors_max));
        tracing::info!(
            descriptors_max,
            segment_files_max,
            "open file descriptors the broker may use, and segment files it keeps open at most"
        );
        let map_count_max = maps::map_count_max();
        let segment_maps_max = maps::segment_maps_max(map_count_max);
        tracing::info!(
            map_count_max,
            segment_maps_max,
            "memory maps the kernel allows the broker, and segment maps it keeps at most"
        );
        let io = match config.storage {
            StorageMode::Memory => {
                fix_mmap_threshold();
                None
            }
            StorageMode::Disk => {
                std::fs::create_dir_all(&config.data_dir)
                    .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
                let backend = storage::start(config.io_backend).context("starting the disc I/O backend")?;
                let io: Arc<dyn FileIo> =
                    Arc::new(BoundedIo::new(backend, segment_files_max, segment_maps_max));
                tracing::info!(backend = io.name(), data_dir = %config.data_dir.display(), fsync = ?config.fsync, "disc storage ready");
                Some(io)
            }
        };
        Ok(Server { config, io })
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The disc backend, when storage is on disc.
    pub fn io(&self) -> Option<&Arc<dyn FileIo>> {
        self.io.as_ref()
    }

    /// Serves until `shutdown` resolves, then stops cleanly: connections are closed with
    /// 320 CONNECTION_FORCED and every queue's log is synced and closed.
    ///
    /// # Errors
    /// When a listener cannot be bound or the broker's stored state cannot be read.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let storage = match &self.io {
            None => Storage::Memory,
            Some(io) => Storage::Disk {
                dir: self.config.data_dir.clone(),
                fsync: self.config.fsync,
                io: Arc::clone(io),
            },
        };
        // A limit of 0 turns the free-disc check off.
        let disk_headroom = (self.io.is_some() && self.config.disk_free_limit_bytes > 0).then(|| {
            Arc::new(DiskHeadroom::new(self.config.data_dir.clone(), self.config.disk_free_limit_bytes))
        });
        // Counts what in-memory logs hold, so the memory alarm hears of a flood at once.
        let memory_budget = Arc::new(MemoryBudget::new());
        let options = NodeOptions {
            storage,
            segment_bytes: self.config.segment_bytes,
            disk_headroom: disk_headroom.clone(),
            memory_budget: Some(Arc::clone(&memory_budget)),
            default_user: self.config.default_user.clone(),
            default_pass: self.config.default_pass.clone(),
        };
        let node = Node::open(options).await.context("opening the broker's stored state")?;
        let memory_limit_bytes = self
            .config
            .memory_limit_bytes
            .unwrap_or_else(|| alarms::total_memory_bytes() / 10 * MEMORY_LIMIT_TENTHS_OF_RAM);
        let limits = alarms::AlarmLimits {
            memory_bytes_max: memory_limit_bytes,
            disk_headroom,
            memory_budget: Some(memory_budget),
        };
        alarms::start(&node, limits);
        let amqp = TcpListener::bind(self.config.amqp_listen)
            .await
            .with_context(|| format!("binding the AMQP listener on {}", self.config.amqp_listen))?;
        let amqp_addr = amqp.local_addr()?;
        let http = TcpListener::bind(self.config.http_listen).await.with_context(|| {
            format!("binding the management HTTP listener on {}", self.config.http_listen)
        })?;
        let http_addr = http.local_addr()?;
        if let Some(path) = &self.config.ports_file {
            write_ports_file(path, &[("amqp", amqp_addr), ("http", http_addr)])
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        tracing::info!(storage = ?self.config.storage, amqp = %amqp_addr, http = %http_addr, workers, "warren is running");
        tokio::spawn(status::report(Arc::downgrade(&node), self.config.status_interval));
        let (stop, stopped) = watch::channel(false);
        let info = NodeInfo {
            name: node_name(),
            amqp: amqp_addr,
            http: http_addr,
            started: Instant::now(),
            memory_limit_bytes,
            disk_free_limit_bytes: self.config.disk_free_limit_bytes,
            data_dir: self.io.is_some().then(|| self.config.data_dir.clone()),
        };
        let api = Arc::new(Api::new(Arc::clone(&node), info));
        let management = tokio::spawn(http_listener::serve(http, api, stopped.clone()));
        let listener = tokio::spawn(amqp_listener::serve(amqp, Arc::clone(&node), stopped));
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
        let _ = management.await;
        // The listener returns once its connections have sent their close and released what
        // they held (or the time for it ran out): only then are the logs closed.
        let _ = listener.await;
        node.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Writes `name=address` lines to `path` atomically, so that a reader never sees half.
fn write_ports_file(path: &std::path::Path, bound: &[(&str, std::net::SocketAddr)]) -> std::io::Result<()> {
    let text: String = bound.iter().map(|(name, addr)| format!("{name}={addr}\n")).collect();
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

/// The node name the management API reports: `warren@<host name>`, like RabbitMQ's
/// `rabbit@<host>`.
fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!("warren@{}", if host.is_empty() { "localhost" } else { host })
}

/// In memory storage, the messages' batches are the broker's largest allocations and live
/// until their queue's floor passes them. glibc raises its mmap threshold each time a large
/// block is freed, after which such blocks come from its heaps, where the holes they leave
/// are not given back in time: under a flood held at `--memory-limit` 256 MiB, the
/// anonymous memory peaked at 347 MiB. A fixed threshold keeps blocks of
/// [`MALLOC_MMAP_THRESHOLD_BYTES`] or more in maps of their own, returned when freed (264
/// MiB in the same flood). Disc storage keeps the dynamic threshold: its large blocks are
/// short-lived buffers, which the heaps serve without a system call.
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let threshold =
            libc::c_int::try_from(crate::limits::MALLOC_MMAP_THRESHOLD_BYTES).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes glibc's allocator settings, under the allocator's own
        // locks; no memory is touched.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) };
    }
}
