//! Test helpers: storage backends to run log tests on, small log options that make rolls,
//! index entries and retention happen every time, and a runtime per test.

#![allow(dead_code)]

pub mod broker;
pub mod clients;
pub mod golden;
pub mod http;
pub mod http_api;
pub mod lapin_client;
pub mod raw_client;
pub mod rss;

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use warren::log::storage::{threaded::ThreadedIo, uring::UringIo, FileIo};
use warren::log::{FsyncPolicy, LogOptions, Storage};

/// Where a test's log lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `--storage memory`.
    Memory,
    /// Disc through io_uring.
    Uring,
    /// Disc through positioned writes on threads.
    Threads,
}

impl Backend {
    pub fn is_disk(self) -> bool {
        self != Backend::Memory
    }

    pub fn io(self) -> Option<Arc<dyn FileIo>> {
        static URING: OnceLock<Arc<dyn FileIo>> = OnceLock::new();
        match self {
            Backend::Memory => None,
            Backend::Threads => Some(Arc::new(ThreadedIo)),
            Backend::Uring => Some(Arc::clone(URING.get_or_init(|| {
                Arc::new(UringIo::start().expect("io_uring must work on the test machines"))
            }))),
        }
    }
}

/// Small segments (4 KiB) and a dense index (256 B) so that rolls and index lookups happen
/// in every test.
pub fn small_options(backend: Backend, dir: &Path, fsync: FsyncPolicy) -> LogOptions {
    let storage = match backend.io() {
        None => Storage::Memory,
        Some(io) => Storage::Disk { dir: dir.to_path_buf(), fsync, io },
    };
    let mut options = LogOptions::new(storage);
    options.segment_bytes_max = 4096;
    options.index_interval_bytes = 256;
    options.retention_check_interval = Duration::from_millis(50);
    options
}

/// Runs a future to completion on a fresh multi-threaded runtime.
pub fn run<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Declares `#[test]`s running each named `fn(Backend)` on memory, io_uring and threads.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[test] fn $name() { super::$name($crate::harness::Backend::Memory) } )* }
        mod uring { $( #[test] fn $name() { super::$name($crate::harness::Backend::Uring) } )* }
        mod threads { $( #[test] fn $name() { super::$name($crate::harness::Backend::Threads) } )* }
    };
}

/// Declares `#[test]`s running each named `fn(Backend)` on the two disc backends.
#[macro_export]
macro_rules! on_disk_backends {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name($crate::harness::Backend::Uring) } )* }
        mod threads { $( #[test] fn $name() { super::$name($crate::harness::Backend::Threads) } )* }
    };
}
