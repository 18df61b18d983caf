//! The log core after a failed write (a full disc): the failed group's appends fail, the
//! half-written bytes are cut back, and once writes succeed again the log goes on from the
//! last committed record, with nothing lost, duplicated or left over after a reopen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warren::log::storage::threaded::ThreadedIo;
use warren::log::storage::{FileIo, IoFuture, SegmentFile};
use warren::log::{Error, FsyncPolicy, Log, LogOptions, RecordInput, Storage};

use crate::harness::run;

/// Positioned writes on threads; while `fail` is set a write puts its first piece on disc
/// and then fails with ENOSPC, as a disc that fills up in the middle of a write does.
#[derive(Debug)]
struct FillingDisc {
    fail: Arc<AtomicBool>,
}

#[derive(Debug)]
struct FillingFile {
    inner: Arc<dyn SegmentFile>,
    fail: Arc<AtomicBool>,
}

impl FileIo for FillingDisc {
    fn adopt(&self, file: &Arc<std::fs::File>) -> std::io::Result<Arc<dyn SegmentFile>> {
        let inner = ThreadedIo.adopt(file)?;
        Ok(Arc::new(FillingFile { inner, fail: Arc::clone(&self.fail) }))
    }

    fn name(&self) -> &'static str {
        "filling-disc"
    }
}

impl SegmentFile for FillingFile {
    fn write_all_at(&self, position: u64, mut chunks: Vec<Bytes>) -> IoFuture {
        if !self.fail.load(Ordering::SeqCst) {
            return self.inner.write_all_at(position, chunks);
        }
        chunks.truncate(1);
        let partial = self.inner.write_all_at(position, chunks);
        Box::pin(async move {
            partial.await?;
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        })
    }

    fn sync_data(&self) -> IoFuture {
        self.inner.sync_data()
    }
}

fn record(i: u64) -> RecordInput {
    RecordInput { timestamp_ms: None, header: Bytes::new(), body: Bytes::from(format!("record-{i}")) }
}

fn bodies(log: &Log) -> Vec<Bytes> {
    let records = log.read_records(0, 1 << 20).expect("read");
    records.into_iter().map(|r| r.body).collect()
}

fn options(dir: &std::path::Path, fsync: FsyncPolicy, fail: &Arc<AtomicBool>) -> LogOptions {
    let io: Arc<dyn FileIo> = Arc::new(FillingDisc { fail: Arc::clone(fail) });
    LogOptions::new(Storage::Disk { dir: dir.to_path_buf(), fsync, io })
}

fn recovers_after_a_failed_write(fsync: FsyncPolicy) {
    let dir = tempfile::tempdir().expect("dir");
    let fail = Arc::new(AtomicBool::new(false));
    run(async {
        let log = Log::open(options(dir.path(), fsync, &fail)).await.expect("open");
        assert_eq!(log.append(vec![record(0)]).await.expect("append").first_offset, 0);
        fail.store(true, Ordering::SeqCst);
        let tasks: Vec<_> = (1..=16u64)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(vec![record(i), record(i + 100)]).await })
            })
            .collect();
        for task in tasks {
            let outcome = task.await.expect("task");
            assert!(matches!(outcome, Err(Error::Failed { .. })), "{outcome:?}");
        }
        assert_eq!(log.next_offset(), 1, "nothing of the failed groups became visible");
        fail.store(false, Ordering::SeqCst);
        let after = log.append(vec![record(200)]).await.expect("append after the disc has room");
        assert_eq!(after.first_offset, 1, "the log goes on from its last committed record");
        assert_eq!(bodies(&log), [Bytes::from("record-0"), Bytes::from("record-200")]);
        log.close().await.expect("close");
        let reopened = Log::open(options(dir.path(), fsync, &fail)).await.expect("reopen");
        assert_eq!(bodies(&reopened), [Bytes::from("record-0"), Bytes::from("record-200")]);
        assert_eq!(reopened.append(vec![record(300)]).await.expect("append").first_offset, 2);
    });
}

/// With the pipelined sync task (`fsync always`).
#[test]
fn a_failed_write_is_cut_back_and_retried_under_fsync_always() {
    recovers_after_a_failed_write(FsyncPolicy::Always);
}

/// With syncs on a timer.
#[test]
fn a_failed_write_is_cut_back_and_retried_under_fsync_interval() {
    recovers_after_a_failed_write(FsyncPolicy::Interval(Duration::from_millis(20)));
}
