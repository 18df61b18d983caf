//! The bound on open segment files: one [`OpenFiles`] is shared by every disc log of the
//! broker, and a log's active file is opened on its first write or sync rather than when the
//! segment is made, and closed again, least recently used first, when more files than the
//! bound are open. The number of queues is then limited by disc space, not by the process's
//! descriptor limit.
//!
//! A log holds a [`LazyFile`], which is a [`SegmentFile`] like the backends' handles: the
//! writer and the sync task never learn whether the file is open. Each operation opens the
//! file if it has to (for writing, never truncating), through the log's own [`FileIo`]
//! backend, and holds its own reference to the backend's handle while it runs, so a file
//! closed while a write or `fdatasync` is in flight stays open until that operation ends:
//! closing only drops the cache's reference.
//!
//! Durability: when a log syncs (`fsync always` or `interval`), a file with writes that no
//! successful `fdatasync` covers yet is *pinned* and never closed to keep the bound. On Linux
//! a write-back error after the last close of a descriptor is not reported to one opened
//! later, so the log would never learn that a write it counted as durable was lost. Only the
//! clean files are closed to keep the bound; when the pinned files alone are over it, the
//! oldest of them are synced in the background ([`FILE_FLUSHES_MAX`] at a time) and closed
//! once clean, and a failed background sync is kept and returned by the file's next sync. So
//! the files open may exceed the bound by the pinned ones and by closed ones whose operation
//! is still in flight; with `fsync never` files are closed freely.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileIo, IoFuture, SegmentFile};
use crate::limits::FILE_FLUSHES_MAX;
use crate::log::maps::MapBudget;

type Handle = Arc<dyn SegmentFile>;

/// The broker-wide bound on open segment files, and the files registered under it.
#[derive(Debug)]
pub struct OpenFiles {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_key: u64,
    next_stamp: u64,
    entries: HashMap<u64, Entry>,
    /// Open files that may be closed, by last use (stamp → key): the front is closed first.
    idle: BTreeMap<u64, u64>,
    /// Open pinned files not being synced in the background, by last use.
    pinned: BTreeMap<u64, u64>,
    /// Entries holding a handle.
    open: usize,
    /// Background syncs in flight.
    flushing: usize,
}

#[derive(Debug)]
struct Entry {
    path: Arc<PathBuf>,
    io: Arc<dyn FileIo>,
    /// Whether the log syncs: unsynced writes then pin the file.
    durable: bool,
    handle: Option<Handle>,
    /// Last use; the key of this entry in `idle` or `pinned`.
    stamp: u64,
    /// Writes started, ended (successfully or not) and covered by a successful sync. One
    /// writer per file, which awaits each write: writes end in the order they begin.
    writes_begun: u64,
    writes_ended: u64,
    writes_synced: u64,
    flushing: bool,
    /// A failed background sync, returned by every later sync.
    failure: Option<(io::ErrorKind, String)>,
}

impl Entry {
    fn is_pinned(&self) -> bool {
        self.durable && self.writes_synced < self.writes_begun
    }
}

/// What to do outside the lock after the state changed: handles to drop (which closes
/// their descriptors once no operation holds them) and background syncs to start.
#[derive(Default)]
struct Rebalance {
    closed: Vec<Handle>,
    flushes: Vec<(u64, Handle, u64)>,
}

/// What an operation on a file is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Write,
    Sync,
}

impl OpenFiles {
    /// A bound of `capacity` open files.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn new(capacity: usize) -> Arc<OpenFiles> {
        assert!(capacity > 0, "a bound of no open files leaves nothing to write with");
        Arc::new(OpenFiles { capacity, state: Mutex::new(State::default()) })
    }

    /// The bound: how many files may be open, pinned ones and in-flight operations aside.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many registered files are open now.
    pub fn open_count(&self) -> usize {
        self.lock().open
    }

    /// Registers the existing file at `path`, written through `io`, without opening it.
    /// `durable`: the log syncs its writes (`fsync always` or `interval`).
    pub fn register(self: &Arc<Self>, path: PathBuf, io: Arc<dyn FileIo>, durable: bool) -> LazyFile {
        let mut state = self.lock();
        let key = state.next_key;
        state.next_key += 1;
        let entry = Entry {
            path: Arc::new(path),
            io,
            durable,
            handle: None,
            stamp: 0,
            writes_begun: 0,
            writes_ended: 0,
            writes_synced: 0,
            flushing: false,
            failure: None,
        };
        state.entries.insert(key, entry);
        LazyFile { files: Arc::clone(self), key }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("open files lock poisoned")
    }

    /// The open handle of `key` for one operation, opening the file if it is closed, and
    /// for a sync the number of writes it covers. `None` for a sync of a closed file whose
    /// writes are all synced: there is nothing to sync.
    fn acquire(self: &Arc<Self>, key: u64, usage: Use) -> io::Result<Option<(Handle, u64)>> {
        let (path, io) = {
            let mut state = self.lock();
            let entry = state.entries.get_mut(&key).ok_or_else(released)?;
            if usage == Use::Sync {
                if let Some((kind, reason)) = &entry.failure {
                    return Err(io::Error::new(*kind, reason.clone()));
                }
                if entry.handle.is_none() && entry.writes_synced >= entry.writes_ended {
                    return Ok(None);
                }
            }
            if let Some(handle) = entry.handle.clone() {
                return Ok(Some((handle, state.begin(key, usage))));
            }
            (Arc::clone(&entry.path), Arc::clone(&entry.io))
        };
        // Opened outside the lock: other logs' operations do not wait for this one's open.
        let file = std::fs::OpenOptions::new().write(true).open(&*path)?;
        let opened = io.adopt(&Arc::new(file))?;
        let (handle, covered, rebalance) = {
            let mut state = self.lock();
            let entry = state.entries.get_mut(&key).ok_or_else(released)?;
            // The writer and the sync task may both have opened it; the first one is kept.
            let handle = Arc::clone(entry.handle.get_or_insert_with(|| Arc::clone(&opened)));
            if Arc::ptr_eq(&handle, &opened) {
                state.open += 1;
            }
            let covered = state.begin(key, usage);
            (handle, covered, state.rebalance(self.capacity))
        };
        drop(opened);
        self.apply(rebalance);
        Ok(Some((handle, covered)))
    }

    /// A write of `key` ended (successfully or not: a failed write may have left bytes).
    fn write_ended(&self, key: u64) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(&key) {
            entry.writes_ended += 1;
            assert!(entry.writes_ended <= entry.writes_begun, "a write ended that never began");
        }
    }

    /// A sync of `key` that covers its first `covered` writes ended with `outcome`.
    fn sync_ended(self: &Arc<Self>, key: u64, covered: u64, outcome: &io::Result<()>, flush: bool) {
        let rebalance = {
            let mut state = self.lock();
            let Some(entry) = state.entries.get_mut(&key) else { return };
            match outcome {
                Ok(()) => entry.writes_synced = entry.writes_synced.max(covered),
                Err(error) if flush => entry.failure = Some((error.kind(), error.to_string())),
                Err(_) => {}
            }
            if flush {
                entry.flushing = false;
                state.flushing -= 1;
            }
            state.touch(key);
            state.rebalance(self.capacity)
        };
        self.apply(rebalance);
    }

    /// A background sync of `key` could not start: the file stays pinned.
    fn flush_abandoned(&self, key: u64) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(&key) {
            entry.flushing = false;
            state.flushing -= 1;
            state.touch(key);
        }
    }

    /// Forgets `key`: its log no longer writes the file. Closes it once in-flight operations
    /// end.
    fn forget(self: &Arc<Self>, key: u64) {
        let (handle, rebalance) = {
            let mut state = self.lock();
            let Some(entry) = state.entries.remove(&key) else { return };
            state.idle.remove(&entry.stamp);
            state.pinned.remove(&entry.stamp);
            if entry.handle.is_some() {
                state.open -= 1;
            }
            if entry.flushing {
                state.flushing -= 1;
            }
            (entry.handle, state.rebalance(self.capacity))
        };
        drop(handle);
        self.apply(rebalance);
    }

    /// Drops closed handles and starts background syncs, outside the lock.
    fn apply(self: &Arc<Self>, rebalance: Rebalance) {
        drop(rebalance.closed);
        for (key, handle, covered) in rebalance.flushes {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let files = Arc::clone(self);
                    runtime.spawn(async move {
                        let outcome = handle.sync_data().await;
                        files.sync_ended(key, covered, &outcome, true);
                    });
                }
                // Nothing can run a sync here (no runtime: the process is stopping): the
                // file stays pinned and open, and no other flush is tried from here.
                Err(_) => self.flush_abandoned(key),
            }
        }
    }
}

impl State {
    /// Notes the start of an operation on `key` (a use) and returns, for a sync, the writes
    /// it covers: those ended before it starts.
    fn begin(&mut self, key: u64, usage: Use) -> u64 {
        let entry = self.entries.get_mut(&key).expect("begin is called on a registered file");
        let covered = entry.writes_ended;
        if usage == Use::Write {
            assert_eq!(entry.writes_begun, entry.writes_ended, "one write at a time per file");
            entry.writes_begun += 1;
        }
        self.touch(key);
        covered
    }

    /// Marks `key` as just used and files it under idle or pinned.
    fn touch(&mut self, key: u64) {
        let Some(entry) = self.entries.get_mut(&key) else { return };
        self.idle.remove(&entry.stamp);
        self.pinned.remove(&entry.stamp);
        self.next_stamp += 1;
        entry.stamp = self.next_stamp;
        if entry.handle.is_none() {
            return;
        }
        if !entry.is_pinned() {
            self.idle.insert(entry.stamp, key);
        } else if !entry.flushing {
            self.pinned.insert(entry.stamp, key);
        }
    }

    /// Closes idle files, least recently used first, while more than `capacity` are open;
    /// if pinned files keep it over, picks the oldest of them to sync in the background.
    fn rebalance(&mut self, capacity: usize) -> Rebalance {
        let mut out = Rebalance::default();
        while self.open > capacity {
            let Some((_, key)) = self.idle.pop_first() else { break };
            let entry = self.entries.get_mut(&key).expect("idle files are registered");
            out.closed.extend(entry.handle.take());
            self.open -= 1;
        }
        while self.open > capacity + self.flushing && self.flushing < FILE_FLUSHES_MAX {
            let Some((_, key)) = self.pinned.pop_first() else { break };
            let entry = self.entries.get_mut(&key).expect("pinned files are registered");
            let handle = Arc::clone(entry.handle.as_ref().expect("pinned files are open"));
            entry.flushing = true;
            self.flushing += 1;
            out.flushes.push((key, handle, entry.writes_ended));
        }
        out
    }
}

fn released() -> io::Error {
    io::Error::other("the segment file was released by its log")
}

/// A log's handle on one segment file under an [`OpenFiles`] bound: no descriptor until the
/// first write or sync, reopened after the bound closed it. Dropping it releases the file.
#[derive(Debug)]
pub struct LazyFile {
    files: Arc<OpenFiles>,
    key: u64,
}

/// Ends a write's count even if its future is dropped before the write completes.
struct WriteEnd {
    files: Arc<OpenFiles>,
    key: u64,
}

impl Drop for WriteEnd {
    fn drop(&mut self) {
        self.files.write_ended(self.key);
    }
}

impl SegmentFile for LazyFile {
    fn write_all_at(&self, position: u64, chunks: Vec<bytes::Bytes>) -> IoFuture {
        let (files, key) = (Arc::clone(&self.files), self.key);
        Box::pin(async move {
            let (handle, _) = files.acquire(key, Use::Write)?.expect("a write always gets a handle");
            let _end = WriteEnd { files, key };
            handle.write_all_at(position, chunks).await
        })
    }

    fn sync_data(&self) -> IoFuture {
        let (files, key) = (Arc::clone(&self.files), self.key);
        Box::pin(async move {
            let Some((handle, covered)) = files.acquire(key, Use::Sync)? else { return Ok(()) };
            let outcome = handle.sync_data().await;
            files.sync_ended(key, covered, &outcome, false);
            outcome
        })
    }
}

impl Drop for LazyFile {
    fn drop(&mut self) {
        self.files.forget(self.key);
    }
}

/// A disc backend under a bound on open segment files: writes go to `backend`, and every
/// log written through it shares `files` ([`FileIo::open_files`]).
#[derive(Debug)]
pub struct BoundedIo {
    backend: Arc<dyn FileIo>,
    files: Arc<OpenFiles>,
    maps: Arc<MapBudget>,
}

impl BoundedIo {
    /// `backend` with at most `capacity` segment files open (pinned ones aside) and
    /// `maps_capacity` segment maps kept.
    pub fn new(backend: Arc<dyn FileIo>, capacity: usize, maps_capacity: usize) -> BoundedIo {
        BoundedIo { backend, files: OpenFiles::new(capacity), maps: MapBudget::new(maps_capacity) }
    }
}

impl FileIo for BoundedIo {
    fn adopt(&self, file: &Arc<std::fs::File>) -> io::Result<Handle> {
        self.backend.adopt(file)
    }

    fn name(&self) -> &'static str {
        self.backend.name()
    }

    fn open_files(&self) -> Option<Arc<OpenFiles>> {
        Some(Arc::clone(&self.files))
    }

    fn maps(&self) -> Option<Arc<MapBudget>> {
        Some(Arc::clone(&self.maps))
    }
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
