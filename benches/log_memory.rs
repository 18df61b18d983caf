//! Resident memory while a large disc log is written and read: a log of
//! `WARREN_BENCH_LOG_GIB` GiB (default 10) of 64 KiB records in `disk`/`never` mode is
//! filled, closed, reopened (timing recovery) and read end to end with crc verification,
//! sampling the process's resident memory. Maps are not pinned: anonymous memory (the
//! broker's own) must stay small; file-backed pages belong to the page cache.
//!
//! `cargo bench --bench log_memory`; `WARREN_BENCH_DIR` picks the file system.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use warren::log::storage::{self, IoBackendChoice};
use warren::log::{FsyncPolicy, Log, LogOptions, RecordInput, Storage};

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss() -> (u64, u64, u64) {
    (status_kib("VmRSS:") / 1024, status_kib("RssAnon:") / 1024, status_kib("RssFile:") / 1024)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // nothing to list for `cargo test --benches`
    }
    let gib: u64 = std::env::var("WARREN_BENCH_LOG_GIB").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let base = std::env::var_os("WARREN_BENCH_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    std::fs::create_dir_all(&base).expect("bench dir");
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let options = || {
        LogOptions::new(Storage::Disk {
            dir: dir.path().to_path_buf(),
            fsync: FsyncPolicy::Never,
            io: storage::start(IoBackendChoice::Auto).expect("io"),
        })
    };
    let record = RecordInput::body(Bytes::from(vec![0x5au8; 64 * 1024]));
    let records = gib * 1024 * 1024 / 64;
    runtime.block_on(async {
        let log = Log::open(options()).await.expect("open");
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let log = log.clone();
            let record = record.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..records / 16 / 16 {
                    log.append(vec![record.clone(); 16]).await.expect("append");
                }
            }));
        }
        for task in tasks {
            task.await.expect("appender");
        }
        let seconds = started.elapsed().as_secs_f64();
        let bytes = log.size_bytes();
        let (vm, anon, file) = rss();
        println!("fill: {:.2} GiB in {seconds:.1} s = {:.0} MB/s; rss {vm} MiB (anon {anon}, file {file})", bytes as f64 / (1u64 << 30) as f64, bytes as f64 / seconds / 1e6);
        log.close().await.expect("close");
        drop(log);
        let started = Instant::now();
        let log = Log::open(options()).await.expect("reopen");
        println!("reopen (recovery of {} segments): {:.0} ms", log.segment_count(), started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let (mut offset, mut read, mut anon_max, mut file_max) = (0u64, 0u64, 0u64, 0u64);
        while offset < log.next_offset() {
            let batch = log.read_records(offset, 4 << 20).expect("read");
            for r in &batch {
                read += r.body.len() as u64;
            }
            offset = batch.last().expect("progress").offset + 1;
            let (_, anon, file) = rss();
            anon_max = anon_max.max(anon);
            file_max = file_max.max(file);
        }
        let seconds = started.elapsed().as_secs_f64();
        let (vm, anon, file) = rss();
        println!("read: {:.2} GiB in {seconds:.1} s = {:.0} MB/s; peak anon {anon_max} MiB, peak file-backed {file_max} MiB; after: rss {vm} MiB (anon {anon}, file {file})", read as f64 / (1u64 << 30) as f64, read as f64 / seconds / 1e6);
    });
}
