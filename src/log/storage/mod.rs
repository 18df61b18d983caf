//! Where a segment's bytes go. [`FileIo`] is the narrow boundary between the log writer and
//! the system calls that put bytes on disc: the writer asks for a positioned write or a
//! `fdatasync` and awaits the answer, and never learns which backend served it.
//!
//! Backends: [`uring`] (tokio-uring on a dedicated thread), [`threaded`] (positioned writes
//! on tokio's blocking pool), and [`memory`], which keeps a segment's bytes in RAM and is
//! used by `--storage memory` without any file at all.
//!
//! Logs do not hold the backends' handles directly: each segment file is a [`files::LazyFile`]
//! under a bound on open files shared by the broker ([`files::BoundedIo`]), opened on its
//! first write or sync and closed again when other files are used more recently.

pub mod files;
pub mod memory;
pub mod threaded;
pub mod uring;

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::limits::SEGMENT_FILES_OPEN_PER_LOG;
use crate::log::maps::MapBudget;

/// The future of one I/O request.
pub type IoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// One open segment file as a backend serves it.
pub trait SegmentFile: Send + Sync + Debug {
    /// Writes all of `chunks`, one after the other, starting at byte `position`.
    fn write_all_at(&self, position: u64, chunks: Vec<Bytes>) -> IoFuture;
    /// `fdatasync`: the written bytes and the file length are durable when this completes.
    fn sync_data(&self) -> IoFuture;
}

/// A disc I/O backend.
pub trait FileIo: Send + Sync + Debug {
    /// Takes over an open file for writing through this backend.
    ///
    /// # Errors
    /// When the backend cannot register the file (for example a closed io_uring thread).
    fn adopt(&self, file: &Arc<std::fs::File>) -> io::Result<Arc<dyn SegmentFile>>;
    /// The backend's name for logs: `uring` or `threads`.
    fn name(&self) -> &'static str;
    /// The bound on open segment files shared by every log written through this backend, if
    /// it has one ([`files::BoundedIo`]). Without one, each segment file has a bound of its
    /// own: opened on first use, it stays open until its log lets go of it.
    fn open_files(&self) -> Option<Arc<files::OpenFiles>> {
        None
    }
    /// The bound on segment maps shared by every log written through this backend, if it has
    /// one ([`files::BoundedIo`]).
    fn maps(&self) -> Option<Arc<MapBudget>> {
        None
    }
}

/// The bound on maps of segment files written through `io`: the backend's, or none.
pub fn maps_of(io: &Arc<dyn FileIo>) -> Arc<MapBudget> {
    io.maps().unwrap_or_else(MapBudget::unbounded)
}

/// A log's handle on the existing segment file at `path`, written through `io` and opened
/// only when first written or synced. `durable`: the log syncs (its unsynced writes pin the
/// file open).
pub fn lazy_file(io: &Arc<dyn FileIo>, path: std::path::PathBuf, durable: bool) -> Arc<dyn SegmentFile> {
    let files = io.open_files().unwrap_or_else(|| files::OpenFiles::new(SEGMENT_FILES_OPEN_PER_LOG));
    Arc::new(files.register(path, Arc::clone(io), durable))
}

/// Which disc I/O backend to use (`--io-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IoBackendChoice {
    /// io_uring where it can be set up, else positioned writes on threads.
    #[default]
    Auto,
    /// io_uring or fail.
    Uring,
    /// Positioned writes on threads.
    Threads,
}

/// Starts the chosen backend. With [`IoBackendChoice::Auto`], a failure to set up io_uring
/// is logged once and the threaded backend is used instead.
///
/// # Errors
/// Only with [`IoBackendChoice::Uring`], when io_uring cannot be set up.
pub fn start(choice: IoBackendChoice) -> io::Result<Arc<dyn FileIo>> {
    match choice {
        IoBackendChoice::Threads => Ok(Arc::new(threaded::ThreadedIo)),
        IoBackendChoice::Uring => Ok(Arc::new(uring::UringIo::start()?)),
        IoBackendChoice::Auto => match uring::UringIo::start() {
            Ok(io) => Ok(Arc::new(io)),
            Err(error) => {
                tracing::warn!(%error, "io_uring is unavailable; using positioned writes on threads");
                Ok(Arc::new(threaded::ThreadedIo))
            }
        },
    }
}
