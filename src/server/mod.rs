//! SERVER: the only place that wires I/O together: the disc backend, the data directory,
//! signals and clean shutdown.

pub mod shutdown;

use std::sync::Arc;

use anyhow::Context;

use crate::config::{Config, StorageMode};
use crate::log::storage::{self, FileIo};

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
        let io = match config.storage {
            StorageMode::Memory => None,
            StorageMode::Disk => {
                std::fs::create_dir_all(&config.data_dir)
                    .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
                let io = storage::start(config.io_backend).context("starting the disc I/O backend")?;
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

    /// Serves until `shutdown` resolves, then stops cleanly.
    ///
    /// # Errors
    /// When a listener fails.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        if let Some(path) = &self.config.ports_file {
            write_ports_file(path, &[]).with_context(|| format!("writing {}", path.display()))?;
        }
        tracing::info!(storage = ?self.config.storage, "warren is running");
        shutdown.await;
        tracing::info!("shutting down");
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
