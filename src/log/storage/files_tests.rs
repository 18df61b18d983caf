//! Unit tests of the bound on open segment files: which file closes first, pinning of
//! unsynced files, reopening, and operations in flight when a file is closed.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::{LazyFile, OpenFiles};
use crate::log::storage::threaded::ThreadedIo;
use crate::log::storage::{FileIo, IoFuture, SegmentFile};

/// Positioned writes on threads, whose writes (or syncs) each wait for a permit of the
/// gate first, and whose syncs fail while `fail_syncs` is set.
#[derive(Debug)]
struct GatedIo {
    writes: Option<Arc<Semaphore>>,
    syncs: Option<Arc<Semaphore>>,
    fail_syncs: bool,
}

#[derive(Debug)]
struct GatedFile {
    inner: Arc<dyn SegmentFile>,
    writes: Option<Arc<Semaphore>>,
    syncs: Option<Arc<Semaphore>>,
    fail_syncs: bool,
}

impl FileIo for GatedIo {
    fn adopt(&self, file: &Arc<std::fs::File>) -> std::io::Result<Arc<dyn SegmentFile>> {
        let (writes, syncs) = (self.writes.clone(), self.syncs.clone());
        Ok(Arc::new(GatedFile { inner: ThreadedIo.adopt(file)?, writes, syncs, fail_syncs: self.fail_syncs }))
    }

    fn name(&self) -> &'static str {
        "gated"
    }
}

async fn pass(gate: Option<Arc<Semaphore>>) {
    if let Some(gate) = gate {
        gate.acquire().await.expect("gate open").forget();
    }
}

impl SegmentFile for GatedFile {
    fn write_all_at(&self, position: u64, chunks: Vec<Bytes>) -> IoFuture {
        let (inner, gate) = (Arc::clone(&self.inner), self.writes.clone());
        Box::pin(async move {
            pass(gate).await;
            inner.write_all_at(position, chunks).await
        })
    }

    fn sync_data(&self) -> IoFuture {
        let (inner, gate, fail) = (Arc::clone(&self.inner), self.syncs.clone(), self.fail_syncs);
        Box::pin(async move {
            pass(gate).await;
            if fail {
                return Err(std::io::Error::other("fdatasync failed (injected)"));
            }
            inner.sync_data().await
        })
    }
}

fn threads() -> Arc<dyn FileIo> {
    Arc::new(ThreadedIo)
}

/// A registered, empty file `name` in `dir`.
fn file(files: &Arc<OpenFiles>, dir: &Path, name: &str, io: &Arc<dyn FileIo>, durable: bool) -> LazyFile {
    let path = dir.join(name);
    std::fs::write(&path, b"").expect("create");
    files.register(path, Arc::clone(io), durable)
}

fn is_open(files: &OpenFiles, file: &LazyFile) -> bool {
    files.lock().entries.get(&file.key).is_some_and(|e| e.handle.is_some())
}

async fn write(file: &LazyFile, position: u64, text: &'static str) {
    file.write_all_at(position, vec![Bytes::from_static(text.as_bytes())]).await.expect("write");
}

async fn settle(files: &OpenFiles, open: usize) {
    for _ in 0..500 {
        if files.open_count() == open {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("{} files open, {open} expected", files.open_count());
}

#[tokio::test]
async fn files_open_on_first_use_and_the_least_recently_used_closes_first() {
    let dir = tempfile::tempdir().expect("dir");
    let files = OpenFiles::new(2);
    let io = threads();
    let [a, b, c] = ["a", "b", "c"].map(|name| file(&files, dir.path(), name, &io, false));
    assert_eq!(files.open_count(), 0, "registering opens nothing");
    write(&a, 0, "a").await;
    write(&b, 0, "b").await;
    write(&a, 1, "a").await;
    write(&c, 0, "c").await;
    assert_eq!(files.open_count(), 2);
    assert!(is_open(&files, &a) && is_open(&files, &c) && !is_open(&files, &b), "b was used least recently");
    b.sync_data().await.expect("sync");
    assert!(is_open(&files, &b) && !is_open(&files, &a), "a sync is a use: a goes next");
    drop(b);
    assert_eq!(files.open_count(), 1, "a file its log lets go of is closed");
}

#[tokio::test]
async fn a_closed_file_is_reopened_without_losing_what_it_holds() {
    let dir = tempfile::tempdir().expect("dir");
    let files = OpenFiles::new(1);
    let io = threads();
    let [a, b] = ["a", "b"].map(|name| file(&files, dir.path(), name, &io, true));
    write(&a, 0, "hello").await;
    a.sync_data().await.expect("sync");
    write(&b, 0, "other").await;
    b.sync_data().await.expect("sync");
    assert!(!is_open(&files, &a), "a was clean and least recently used");
    a.sync_data().await.expect("sync of a closed clean file");
    assert!(!is_open(&files, &a), "a closed clean file needs no sync and is not reopened");
    write(&a, 5, " world").await;
    a.sync_data().await.expect("sync");
    assert_eq!(std::fs::read(dir.path().join("a")).expect("read"), b"hello world");
    assert_eq!(std::fs::read(dir.path().join("b")).expect("read"), b"other");
}

#[tokio::test]
async fn unsynced_files_stay_open_until_a_sync_covers_them() {
    let dir = tempfile::tempdir().expect("dir");
    let files = OpenFiles::new(1);
    let syncs = Arc::new(Semaphore::new(0));
    let io: Arc<dyn FileIo> =
        Arc::new(GatedIo { writes: None, syncs: Some(Arc::clone(&syncs)), fail_syncs: false });
    let [a, b] = ["a", "b"].map(|name| file(&files, dir.path(), name, &io, true));
    write(&a, 0, "a").await;
    write(&b, 0, "b").await;
    // Both pinned: over the bound, a's background sync is held at the gate.
    assert_eq!(files.open_count(), 2);
    assert!(is_open(&files, &a) && is_open(&files, &b));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(is_open(&files, &a), "a is not closed before a sync covers its write");
    syncs.add_permits(1);
    settle(&files, 1).await;
    assert!(!is_open(&files, &a) && is_open(&files, &b), "once synced, a is closed");
    // b is pinned too, but alone it is within the bound: no sync is started for it.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(syncs.available_permits(), 0);
    assert!(files.lock().entries.get(&b.key).is_some_and(super::Entry::is_pinned));
}

#[tokio::test]
async fn a_failed_background_sync_is_returned_by_the_next_sync() {
    let dir = tempfile::tempdir().expect("dir");
    let files = OpenFiles::new(1);
    let io: Arc<dyn FileIo> = Arc::new(GatedIo { writes: None, syncs: None, fail_syncs: true });
    let [a, b] = ["a", "b"].map(|name| file(&files, dir.path(), name, &io, true));
    write(&a, 0, "a").await;
    write(&b, 0, "b").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(is_open(&files, &a), "a failed sync leaves the file pinned");
    let error = a.sync_data().await.expect_err("the failure is kept");
    assert!(error.to_string().contains("injected"), "{error}");
}

#[tokio::test]
async fn with_fsync_never_unsynced_files_are_closed() {
    let dir = tempfile::tempdir().expect("dir");
    let files = OpenFiles::new(1);
    let io = threads();
    let [a, b] = ["a", "b"].map(|name| file(&files, dir.path(), name, &io, false));
    write(&a, 0, "a").await;
    write(&b, 0, "b").await;
    assert!(!is_open(&files, &a) && files.open_count() == 1);
    a.sync_data().await.expect("a closed file with unsynced writes is reopened to sync");
    assert!(is_open(&files, &a) && !is_open(&files, &b));
}

#[tokio::test]
async fn a_write_in_flight_outlives_the_closing_of_its_file() {
    let dir = tempfile::tempdir().expect("dir");
    let files = OpenFiles::new(1);
    let writes = Arc::new(Semaphore::new(0));
    let io: Arc<dyn FileIo> =
        Arc::new(GatedIo { writes: Some(Arc::clone(&writes)), syncs: None, fail_syncs: false });
    let [a, b] = ["a", "b"].map(|name| Arc::new(file(&files, dir.path(), name, &io, false)));
    let first = Arc::clone(&a);
    let in_flight = tokio::spawn(async move { write(&first, 0, "kept").await });
    while !is_open(&files, &a) {
        tokio::task::yield_now().await;
    }
    let other = Arc::clone(&b);
    let next = tokio::spawn(async move { write(&other, 0, "b").await });
    while is_open(&files, &a) {
        tokio::task::yield_now().await;
    }
    // a is closed as far as the bound goes, its write still held at the gate.
    writes.add_permits(2);
    in_flight.await.expect("write task");
    next.await.expect("write task");
    assert_eq!(std::fs::read(dir.path().join("a")).expect("read"), b"kept");
}
