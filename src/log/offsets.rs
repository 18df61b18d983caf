//! Consumer offsets: a small store of (consumer name → committed offset) per log.
//!
//! On disc it is one file, `offsets`, replaced atomically on every change (write a temporary
//! file, `fdatasync` it, rename it over the old one, sync the directory), so that a crash
//! leaves either the old or the new content. Layout (little-endian): magic `WRNO`, version
//! u16, entry count u32, then per entry: name length u16, name bytes (UTF-8), offset u64;
//! last, a crc32 of everything before it. In memory mode the map lives only in RAM.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::BufMut;

use super::acked::{self, AckedRanges};
use super::Error;
use crate::limits::{CONSUMER_NAMES_PER_LOG_MAX, CONSUMER_NAME_BYTES_MAX};

const MAGIC: [u8; 4] = *b"WRNO";
const VERSION: u16 = 1;
/// File name of the store inside a log's directory.
pub const OFFSETS_FILE: &str = "offsets";

/// The committed offsets of one log's named consumers.
#[derive(Debug)]
pub struct OffsetStore {
    path: Option<PathBuf>,
    // Std mutexes, never held across an await. `offsets` is held only to read or update the
    // small map, so readers never wait for a disc; `writes` is held across a file write
    // (inside `off_worker`) so that writes happen one at a time and the last one written
    // holds the newest map.
    offsets: Mutex<BTreeMap<String, u64>>,
    writes: Mutex<()>,
}

impl OffsetStore {
    /// A store that lives in RAM only.
    pub fn in_memory() -> OffsetStore {
        OffsetStore { path: None, offsets: Mutex::new(BTreeMap::new()), writes: Mutex::new(()) }
    }

    /// Opens (or starts) the store in `dir`. A damaged file is reported and ignored: named
    /// consumers then start where their attach specification says.
    ///
    /// # Errors
    /// When the file exists but cannot be read.
    pub fn open(dir: &Path) -> Result<OffsetStore, Error> {
        let path = dir.join(OFFSETS_FILE);
        let offsets = match std::fs::read(&path) {
            Ok(bytes) => decode(&bytes).unwrap_or_else(|| {
                tracing::warn!(path = %path.display(), "consumer offset store is damaged; starting empty");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(Error::io("reading consumer offsets", &path, source)),
        };
        Ok(OffsetStore { path: Some(path), offsets: Mutex::new(offsets), writes: Mutex::new(()) })
    }

    /// The directory of the log this store belongs to (disc logs only).
    pub fn path_dir(&self) -> Option<PathBuf> {
        self.path.as_deref().and_then(Path::parent).map(Path::to_path_buf)
    }

    /// The committed offset of `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.offsets.lock().expect("offset store lock poisoned").get(name).copied()
    }

    /// Every name and its offset.
    pub fn all(&self) -> Vec<(String, u64)> {
        let offsets = self.offsets.lock().expect("offset store lock poisoned");
        offsets.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Stores `offset` for `name`; durable on return in disc mode.
    ///
    /// # Errors
    /// [`Error::Config`] for a name over 255 bytes or too many names; [`Error::Io`] when the
    /// file cannot be written.
    pub fn commit(&self, name: &str, offset: u64) -> Result<(), Error> {
        self.commit_many(&[(name, offset)])
    }

    /// Stores several offsets with one durable write.
    ///
    /// # Errors
    /// As [`OffsetStore::commit`].
    pub fn commit_many(&self, entries: &[(&str, u64)]) -> Result<(), Error> {
        if entries.iter().any(|(name, _)| name.len() > CONSUMER_NAME_BYTES_MAX) {
            return Err(Error::Config {
                reason: format!("consumer name over {CONSUMER_NAME_BYTES_MAX} bytes"),
            });
        }
        self.update(|offsets| {
            if entries.iter().all(|(name, offset)| offsets.get(*name) == Some(offset)) {
                return Ok(false);
            }
            let added = entries.iter().filter(|(name, _)| !offsets.contains_key(*name)).count();
            if offsets.len() + added > CONSUMER_NAMES_PER_LOG_MAX {
                return Err(Error::Config { reason: "too many named consumers for one log".into() });
            }
            for (name, offset) in entries {
                offsets.insert((*name).to_owned(), *offset);
            }
            Ok(true)
        })
    }

    /// Applies `change` to the map (it answers whether it changed anything) and, on disc,
    /// writes the new map; a failed write puts the old map back. Readers of the map never
    /// wait for the disc: only other updates do, and they wait off the runtime's workers.
    fn update(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, u64>) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return change(&mut self.offsets.lock().expect("offset store lock poisoned")).map(|_| ());
        };
        off_worker(|| {
            let _writing = self.writes.lock().expect("offset store write lock poisoned");
            let (before, bytes) = {
                let mut offsets = self.offsets.lock().expect("offset store lock poisoned");
                let before = offsets.clone();
                if !change(&mut offsets)? {
                    return Ok(());
                }
                (before, encode(&offsets))
            };
            write_atomically(path, &bytes).inspect_err(|_| {
                // Every update holds `writes`: nothing changed the map since `before`.
                *self.offsets.lock().expect("offset store lock poisoned") = before;
            })
        })
    }

    /// The acknowledged ranges stored beside the offsets (see [`super::acked`]); none in
    /// memory mode, when there is no file, or when it is damaged.
    ///
    /// # Errors
    /// When the file exists but cannot be read.
    pub fn acked(&self) -> Result<AckedRanges, Error> {
        match self.path.as_deref().and_then(Path::parent) {
            Some(dir) => acked::load(dir),
            None => Ok(AckedRanges::default()),
        }
    }

    /// Replaces the acknowledged ranges with `ranges` above `floor`; durable on return when
    /// `sync` (in memory mode, nothing is kept).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written; the old one then stays.
    ///
    /// # Panics
    /// When the ranges are not well formed (see [`acked::encode`]).
    pub fn commit_acked(&self, floor: u64, ranges: &[Range<u64>], sync: bool) -> Result<(), Error> {
        match self.path.as_deref().and_then(Path::parent) {
            Some(dir) => acked::store(dir, floor, ranges, sync),
            None => Ok(()),
        }
    }

    /// Forgets `name`.
    ///
    /// # Errors
    /// When the file cannot be rewritten.
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        self.update(|offsets| Ok(offsets.remove(name).is_some()))
    }
}

/// Encodes an offsets file (layout in `docs/log-format.md`): magic, version, entries in
/// name order, crc32. Names must be at most `u16::MAX` bytes (their length is a u16);
/// [`OffsetStore::commit`] refuses longer ones before they reach here.
pub fn encode(offsets: &BTreeMap<String, u64>) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_slice(&MAGIC);
    out.put_u16_le(VERSION);
    out.put_u32_le(offsets.len() as u32);
    for (name, offset) in offsets {
        out.put_u16_le(name.len() as u16);
        out.put_slice(name.as_bytes());
        out.put_u64_le(*offset);
    }
    seal(&mut out);
    out
}

/// Appends the crc32 of everything in `out` to it: the trailer of every small file the log
/// core keeps (offsets, acked ranges) and of the definitions file.
pub fn seal(out: &mut Vec<u8>) {
    let crc = crc32fast::hash(out);
    out.put_u32_le(crc);
}

/// The bytes before a trailing crc32, when the crc matches them; `None` otherwise.
pub fn unseal(bytes: &[u8]) -> Option<&[u8]> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    (crc32fast::hash(body).to_le_bytes().as_slice() == crc).then_some(body)
}

/// Decodes an offsets file; `None` when its crc, magic, version or layout is wrong. Bytes
/// after the last entry (before the crc) are ignored, and a name that appears twice keeps
/// its last offset.
pub fn decode(bytes: &[u8]) -> Option<BTreeMap<String, u64>> {
    let mut rest = unseal(bytes)?.strip_prefix(&MAGIC)?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    if u16::from_le_bytes(take(2)?.try_into().ok()?) != VERSION {
        return None;
    }
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let mut offsets = BTreeMap::new();
    for _ in 0..count {
        let length = u16::from_le_bytes(take(2)?.try_into().ok()?);
        let name = std::str::from_utf8(take(usize::from(length))?).ok()?.to_owned();
        let offset = u64::from_le_bytes(take(8)?.try_into().ok()?);
        offsets.insert(name, offset);
    }
    Some(offsets)
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file.
///
/// # Errors
/// [`Error::Io`] naming the step that failed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let temporary = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(&temporary, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    off_worker(write).map_err(|source| Error::io("writing atomically", path, source))
}

/// Runs blocking file work (write, fsync, rename, directory fsync) without stalling the
/// other tasks of the runtime's worker thread: on a multi-thread runtime through
/// `block_in_place`, which hands the worker's other tasks to another thread while this one
/// blocks; elsewhere (a current-thread runtime, a blocking-pool thread, no runtime)
/// directly. The work still runs before the caller goes on, so the order of writes, and
/// which file is written last, stay the caller's.
pub fn off_worker<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
        store.commit("alpha", 10).unwrap();
        store.commit("beta", 3).unwrap();
        store.commit("alpha", 12).unwrap();
        store.remove("beta").unwrap();
        let again = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(again.all(), vec![("alpha".to_owned(), 12)]);
        let path = dir.path().join(OFFSETS_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(OffsetStore::open(dir.path()).unwrap().get("alpha"), None);
    }

    /// `commit_many` keeps the bound on names that `commit` keeps: past it nothing of the
    /// batch is stored.
    #[test]
    fn commit_many_refuses_names_past_the_bound() {
        let store = OffsetStore::in_memory();
        let names: Vec<String> = (0..CONSUMER_NAMES_PER_LOG_MAX).map(|i| format!("c{i}")).collect();
        let entries: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        store.commit_many(&entries).unwrap();
        assert!(store.commit_many(&[("c0", 2), ("one-too-many", 1)]).is_err());
        assert_eq!(store.get("c0"), Some(1), "a refused batch changes nothing");
        assert_eq!(store.get("one-too-many"), None);
        store.commit_many(&[("c0", 2)]).unwrap();
        assert_eq!(store.all().len(), CONSUMER_NAMES_PER_LOG_MAX);
    }

    /// Blocking file work lets the worker's other tasks run: with one worker thread, a task
    /// spawned while another is blocked in `off_worker` still runs (it could not if the work
    /// blocked the worker).
    #[test]
    fn off_worker_leaves_the_worker_to_other_tasks() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let seen = runtime.block_on(async {
            let (started, blocking) = tokio::sync::oneshot::channel();
            let waiting = Arc::clone(&flag);
            let blocked = tokio::spawn(async move {
                off_worker(move || {
                    let _ = started.send(());
                    let until = Instant::now() + Duration::from_secs(5);
                    while !waiting.load(Ordering::Acquire) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    waiting.load(Ordering::Acquire)
                })
            });
            blocking.await.unwrap();
            let setter = Arc::clone(&flag);
            tokio::spawn(async move { setter.store(true, Ordering::Release) });
            blocked.await.unwrap()
        });
        assert!(seen, "the other task ran while the work blocked");
    }
}
