//! The log core on every backend: appends and reads across segment rolls, group commit,
//! waiting at the tail, timestamp seeks, retention by size and by age, consumer offsets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warren::log::storage::threaded::ThreadedIo;
use warren::log::storage::{FileIo, IoFuture, SegmentFile};
use warren::log::{Compression, Error, FsyncPolicy, Log, LogOptions, RecordInput, Storage};

use crate::harness::{run, small_options, Backend};
use crate::{on_disk_backends, on_every_backend};

fn record(i: u64, size: usize) -> RecordInput {
    let mut body = format!("record-{i}-").into_bytes();
    body.resize(size.max(body.len()), (i % 251) as u8);
    RecordInput { timestamp_ms: None, header: Bytes::from(format!("h{i}")), body: Bytes::from(body) }
}

async fn read_all(log: &Log, from: u64) -> Vec<warren::log::Record> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.next_offset() {
        let records = log.read_records(next, 64 * 1024).expect("read");
        assert!(!records.is_empty(), "progress at {next}");
        next = records.last().expect("non-empty").offset + 1;
        out.extend(records);
    }
    out
}

fn append_read_across_rolls(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let log = Log::open(small_options(backend, dir.path(), FsyncPolicy::Always)).await.expect("open");
        for i in 0..200u64 {
            let ack = log.append(vec![record(i, 100)]).await.expect("append");
            assert_eq!((ack.first_offset, ack.last_offset), (i, i));
        }
        assert!(log.segment_count() > 3, "4 KiB segments roll");
        let records = read_all(&log, 0).await;
        assert_eq!(records.len(), 200);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as u64);
            assert_eq!(r.header, Bytes::from(format!("h{i}")));
            assert!(r.body.starts_with(format!("record-{i}-").as_bytes()));
        }
        // A read in the middle starts exactly at the offset asked for.
        let middle = log.read_records(123, 1).expect("read");
        assert_eq!(middle.first().expect("one").offset, 123);
        log.close().await.expect("close");
        assert!(matches!(log.append(vec![record(0, 1)]).await, Err(Error::Closed)));
    });
}

fn concurrent_appends_share_batches(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let log = Log::open(small_options(backend, dir.path(), FsyncPolicy::Always)).await.expect("open");
        let mut tasks = Vec::new();
        for producer in 0..64u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut offsets = Vec::new();
                for i in 0..20u64 {
                    let ack = log.append(vec![record(producer * 1000 + i, 40)]).await.expect("append");
                    // Acknowledged means committed: readers see the record already.
                    let read = log.read_records(ack.first_offset, 1).expect("read");
                    assert_eq!(read.first().map(|r| r.offset), Some(ack.first_offset));
                    offsets.push(ack.first_offset);
                }
                offsets
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            let offsets = task.await.expect("task");
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "one producer's appends keep their order");
            all.extend(offsets);
        }
        all.sort_unstable();
        assert_eq!(all, (0..64 * 20).collect::<Vec<_>>(), "dense offsets, no duplicates");
        assert_eq!(read_all(&log, 0).await.len(), 64 * 20);
    });
}

fn reader_waits_at_the_tail(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let log = Log::open(small_options(backend, dir.path(), FsyncPolicy::Never)).await.expect("open");
        let waiter = {
            let log = log.clone();
            tokio::spawn(async move {
                log.wait_for(0).await.expect("wakes");
                log.read_records(0, 1024).expect("read")
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "nothing to read yet");
        log.append(vec![record(0, 10)]).await.expect("append");
        let records =
            tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("in time").expect("task");
        assert_eq!(records.len(), 1);
        let closing = {
            let log = log.clone();
            tokio::spawn(async move { log.wait_for(5).await })
        };
        log.close().await.expect("close");
        let outcome =
            tokio::time::timeout(Duration::from_secs(5), closing).await.expect("in time").expect("task");
        assert!(matches!(outcome, Err(Error::Closed)));
    });
}

fn timestamp_seek(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let log = Log::open(small_options(backend, dir.path(), FsyncPolicy::Never)).await.expect("open");
        for i in 0..100u64 {
            let mut r = record(i, 60);
            r.timestamp_ms = Some(1_000 + (i as i64 / 10) * 100); // ten records per 100 ms step
            log.append(vec![r]).await.expect("append");
        }
        assert_eq!(log.offset_at_timestamp(0).expect("seek"), 0);
        assert_eq!(log.offset_at_timestamp(1_000).expect("seek"), 0);
        assert_eq!(log.offset_at_timestamp(1_001).expect("seek"), 10);
        assert_eq!(log.offset_at_timestamp(1_500).expect("seek"), 50);
        assert_eq!(log.offset_at_timestamp(1_900).expect("seek"), 90);
        assert_eq!(log.offset_at_timestamp(5_000).expect("seek"), 100);
        // A timestamp from the past is clamped: time never goes backwards in a log.
        let mut late = record(100, 1);
        late.timestamp_ms = Some(0);
        log.append(vec![late]).await.expect("append");
        let last = log.read_records(100, 10).expect("read");
        assert_eq!(last[0].timestamp_ms, 1_900);
    });
}

fn retention_by_size(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let mut options = small_options(backend, dir.path(), FsyncPolicy::Never);
        options.retention_bytes_max = Some(16 * 1024);
        let log = Log::open(options).await.expect("open");
        for i in 0..400u64 {
            log.append(vec![record(i, 200)]).await.expect("append");
        }
        assert!(log.size_bytes() <= 16 * 1024 + 4096 + 512, "size {}", log.size_bytes());
        let first = log.first_offset();
        assert!(first > 0);
        assert!(matches!(log.read(0, 10), Err(Error::BeforeStart { offset: 0, .. })));
        let records = read_all(&log, first).await;
        assert_eq!(records.first().expect("some").offset, first);
        assert_eq!(records.last().expect("some").offset, 399);
        if backend.is_disk() {
            let files = std::fs::read_dir(dir.path()).expect("list").count();
            assert!(files < 20, "deleted segments leave no files ({files})");
        }
    });
}

fn retention_by_age_on_an_idle_log(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let mut options = small_options(backend, dir.path(), FsyncPolicy::Never);
        options.retention_age_max = Some(Duration::from_millis(300));
        let log = Log::open(options).await.expect("open");
        for i in 0..100u64 {
            log.append(vec![record(i, 200)]).await.expect("append");
        }
        let segments = log.segment_count();
        assert!(segments > 2);
        // Nothing is appended any more: the retention timer alone must expire the segments.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while log.segment_count() > 1 {
            assert!(tokio::time::Instant::now() < deadline, "idle log never expired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(log.first_offset(), log.read_records(log.first_offset(), 1).expect("read")[0].offset);
    });
}

fn zstd_batches_round_trip(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let mut options = small_options(backend, dir.path(), FsyncPolicy::Never);
        options.compression = Compression::Zstd;
        options.segment_bytes_max = 1 << 20;
        let log = Log::open(options).await.expect("open");
        let records: Vec<RecordInput> = (0..500).map(|i| record(i, 300)).collect();
        log.append(records.clone()).await.expect("append");
        assert!(log.size_bytes() < 500 * 300 / 4, "compressed: {} bytes", log.size_bytes());
        let read = read_all(&log, 0).await;
        assert_eq!(read.len(), 500);
        for (r, w) in read.iter().zip(&records) {
            assert_eq!(r.body, w.body);
            assert_eq!(r.header, w.header);
        }
    });
}

fn large_records(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let log = Log::open(small_options(backend, dir.path(), FsyncPolicy::Never)).await.expect("open");
        let big = Bytes::from(vec![7u8; 3 << 20]);
        log.append(vec![RecordInput::body(big.clone()), record(1, 10)]).await.expect("append");
        let read = read_all(&log, 0).await;
        assert_eq!(read[0].body, big);
        assert_eq!(read.len(), 2);
    });
}

fn consumer_offsets_survive_reopen(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let log = Log::open(small_options(backend, dir.path(), FsyncPolicy::Always)).await.expect("open");
        log.offsets().commit("reader-a", 41).expect("commit");
        log.offsets().commit("reader-b", 7).expect("commit");
        assert_eq!(log.offsets().get("reader-a"), Some(41));
        log.close().await.expect("close");
        if !backend.is_disk() {
            return;
        }
        let again = Log::open(small_options(backend, dir.path(), FsyncPolicy::Always)).await.expect("reopen");
        assert_eq!(again.offsets().get("reader-b"), Some(7));
    });
}

fn reopen_continues_offsets_and_time(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let log =
            Log::open(small_options(backend, dir.path(), FsyncPolicy::Interval(Duration::from_millis(10))))
                .await
                .expect("open");
        for i in 0..120u64 {
            let mut r = record(i, 90);
            r.timestamp_ms = Some(5_000 + i as i64);
            log.append(vec![r]).await.expect("append");
        }
        log.close().await.expect("close");
        let log = Log::open(small_options(backend, dir.path(), FsyncPolicy::Always)).await.expect("reopen");
        assert_eq!(log.next_offset(), 120);
        let mut r = record(120, 10);
        r.timestamp_ms = Some(1);
        assert_eq!(log.append(vec![r]).await.expect("append").first_offset, 120);
        let all = read_all(&log, 0).await;
        assert_eq!(all.len(), 121);
        assert_eq!(all[120].timestamp_ms, 5_119, "time does not go backwards across a restart");
        assert_eq!(log.offset_at_timestamp(5_050).expect("seek"), 50);
    });
}

fn release_before_frees_whole_segments(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let log = Log::open(small_options(backend, dir.path(), FsyncPolicy::Never)).await.expect("open");
        for i in 0..200u64 {
            log.append(vec![record(i, 100)]).await.expect("append");
        }
        let before = log.segment_count();
        log.release_before(150);
        log.enforce_retention().await.expect("retention");
        let first = log.first_offset();
        assert!(first > 0 && first <= 150, "first offset {first}");
        assert!(log.segment_count() < before);
        assert_eq!(log.read_records(150, 1).expect("still there")[0].offset, 150);
        log.release_before(10); // the floor never moves back
        log.enforce_retention().await.expect("retention");
        assert_eq!(log.first_offset(), first);
    });
}

on_every_backend!(
    release_before_frees_whole_segments,
    append_read_across_rolls,
    concurrent_appends_share_batches,
    reader_waits_at_the_tail,
    timestamp_seek,
    retention_by_size,
    retention_by_age_on_an_idle_log,
    zstd_batches_round_trip,
    large_records,
    consumer_offsets_survive_reopen,
);

mod restarts {
    use super::*;
    on_disk_backends!(reopen_continues_offsets_and_time);
}

/// Positioned writes on threads, with an `fdatasync` that fails while `fail` is set.
#[derive(Debug)]
struct FailingSyncs {
    fail: Arc<AtomicBool>,
}

#[derive(Debug)]
struct FailingSyncFile {
    inner: Arc<dyn SegmentFile>,
    fail: Arc<AtomicBool>,
}

impl FileIo for FailingSyncs {
    fn adopt(&self, file: &Arc<std::fs::File>) -> std::io::Result<Arc<dyn SegmentFile>> {
        let inner = ThreadedIo.adopt(file)?;
        Ok(Arc::new(FailingSyncFile { inner, fail: Arc::clone(&self.fail) }))
    }

    fn name(&self) -> &'static str {
        "failing-syncs"
    }
}

impl SegmentFile for FailingSyncFile {
    fn write_all_at(&self, position: u64, chunks: Vec<Bytes>) -> IoFuture {
        self.inner.write_all_at(position, chunks)
    }

    fn sync_data(&self) -> IoFuture {
        if self.fail.load(Ordering::SeqCst) {
            Box::pin(async { Err(std::io::Error::other("fdatasync failed (injected)")) })
        } else {
            self.inner.sync_data()
        }
    }
}

/// Under `fsync always`, a failed `fdatasync` fails every append it would have covered,
/// leaves their records invisible, and fails every later append: the log cannot know
/// what reached the disc.
#[test]
fn a_failed_sync_fails_its_appends_and_every_later_one() {
    let dir = tempfile::tempdir().expect("dir");
    run(async {
        let fail = Arc::new(AtomicBool::new(false));
        let io: Arc<dyn FileIo> = Arc::new(FailingSyncs { fail: Arc::clone(&fail) });
        let storage = Storage::Disk { dir: dir.path().to_path_buf(), fsync: FsyncPolicy::Always, io };
        let log = Log::open(LogOptions::new(storage)).await.expect("open");
        assert_eq!(log.append(vec![record(0, 100)]).await.expect("append").first_offset, 0);
        fail.store(true, Ordering::SeqCst);
        // Concurrent appenders: groups reach the sync task while a sync is in flight.
        let tasks: Vec<_> = (1..=32u64)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(vec![record(i, 100)]).await })
            })
            .collect();
        for task in tasks {
            let outcome = task.await.expect("task");
            assert!(matches!(outcome, Err(Error::Failed { .. })), "{outcome:?}");
        }
        assert_eq!(log.next_offset(), 1, "nothing unsynced became visible");
        fail.store(false, Ordering::SeqCst);
        let later = log.append(vec![record(99, 10)]).await;
        assert!(matches!(later, Err(Error::Failed { .. })), "{later:?}");
        assert_eq!(read_all(&log, 0).await.len(), 1);
    });
}
