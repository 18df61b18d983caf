//! Log core benchmarks: append throughput by record size, storage mode and number of
//! concurrent appenders; single-appender latency under `fsync always`; sequential reads
//! from the maps; zstd on and off.
//!
//! Each appender appends calls of up to 64 KiB of records (at least one record per call),
//! as a producer connection with many messages in flight does; the writer coalesces what
//! the appenders have queued into batches. Run with `cargo bench --bench log`; set
//! `WARREN_BENCH_DIR` to put the disc logs on a particular file system (default: a
//! temporary directory under `./target`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use warren::log::storage::{self, IoBackendChoice};
use warren::log::{Compression, FsyncPolicy, Log, LogOptions, RecordInput, Storage};

const CALL_BYTES_MAX: usize = 64 * 1024;

#[derive(Clone, Copy)]
enum Mode {
    Memory,
    DiskNever,
    DiskAlways,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Memory => "memory",
            Mode::DiskNever => "disk-never",
            Mode::DiskAlways => "disk-always",
        }
    }
}

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("WARREN_BENCH_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    std::fs::create_dir_all(&base).expect("bench dir");
    tempfile::tempdir_in(base).expect("temp dir")
}

fn options(mode: Mode, dir: &std::path::Path, compression: Compression) -> LogOptions {
    let storage = match mode {
        Mode::Memory => Storage::Memory,
        Mode::DiskNever | Mode::DiskAlways => Storage::Disk {
            dir: dir.to_path_buf(),
            fsync: if matches!(mode, Mode::DiskAlways) { FsyncPolicy::Always } else { FsyncPolicy::Never },
            io: storage::start(IoBackendChoice::Auto).expect("io backend"),
        },
    };
    let mut options = LogOptions::new(storage);
    options.compression = compression;
    options.retention_bytes_max = Some(1 << 30);
    options
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn record(size: usize, compressible: bool) -> RecordInput {
    let body: Vec<u8> = if compressible {
        b"{\"sensor\":\"probe-17\",\"reading\":21.5,\"unit\":\"C\",\"ok\":true}\n"
            .iter()
            .copied()
            .cycle()
            .take(size)
            .collect()
    } else {
        (0..size).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1]).collect()
    };
    RecordInput { timestamp_ms: None, header: Bytes::new(), body: Bytes::from(body) }
}

/// Appends `total_bytes` of `size`-byte records from `appenders` tasks; returns the time.
async fn append_total(
    log: &Log,
    size: usize,
    appenders: usize,
    total_bytes: usize,
    compressible: bool,
) -> Duration {
    let per_appender = (total_bytes / size / appenders).max(1);
    let per_call = (CALL_BYTES_MAX / size).clamp(1, per_appender);
    let template = record(size, compressible);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(appenders);
    for _ in 0..appenders {
        let log = log.clone();
        let template = template.clone();
        tasks.push(tokio::spawn(async move {
            let mut left = per_appender;
            while left > 0 {
                let n = per_call.min(left);
                log.append(vec![template.clone(); n]).await.expect("append");
                left -= n;
            }
        }));
    }
    for task in tasks {
        task.await.expect("appender");
    }
    started.elapsed()
}

fn append_throughput(c: &mut Criterion) {
    let rt = runtime();
    for mode in [Mode::Memory, Mode::DiskNever, Mode::DiskAlways] {
        let mut group = c.benchmark_group(format!("append/{}", mode.name()));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for size in [16usize, 1024, 64 * 1024] {
            for appenders in [1usize, 16, 256] {
                let total = match mode {
                    Mode::DiskAlways => 4 << 20,
                    _ => 32 << 20,
                }
                .max(size * appenders);
                let dir = bench_dir();
                let log = rt.block_on(Log::open(options(mode, dir.path(), Compression::None))).expect("open");
                group.throughput(Throughput::Bytes(
                    (total / size / appenders).max(1) as u64 * (size * appenders) as u64,
                ));
                let id = BenchmarkId::new(format!("{size}B"), format!("{appenders}-appenders"));
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            let mut spent = Duration::ZERO;
                            for _ in 0..iters {
                                spent += append_total(&log, size, appenders, total, false).await;
                            }
                            spent
                        })
                    })
                });
                rt.block_on(log.close()).expect("close");
            }
        }
        group.finish();
    }
}

/// One appender, one 1 KiB record per append, `fsync always`: the time of one durable
/// append, to compare with the disc's own `fdatasync` latency.
fn always_latency(c: &mut Criterion) {
    let rt = runtime();
    let dir = bench_dir();
    let log = rt.block_on(Log::open(options(Mode::DiskAlways, dir.path(), Compression::None))).expect("open");
    let mut group = c.benchmark_group("append-latency/disk-always");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    let one = record(1024, false);
    group.bench_function("1KiB-1-appender", |b| {
        b.iter(|| rt.block_on(log.append(vec![one.clone()])).expect("append"));
    });
    group.finish();
    rt.block_on(log.close()).expect("close");
}

fn fill(rt: &tokio::runtime::Runtime, log: &Log, bytes: usize, compressible: bool) {
    rt.block_on(append_total(log, 1024, 4, bytes, compressible));
}

/// Reads the whole log from offset 0: raw batches (map slices), or records (crc verified,
/// decompressed if needed).
fn read_all(log: &Log, verify: bool) -> usize {
    let mut offset = log.first_offset();
    let mut bytes = 0;
    while offset < log.next_offset() {
        let batches = log.read(offset, 4 << 20).expect("read");
        for batch in &batches {
            bytes += batch.as_bytes().len();
            offset = batch.header().next_offset();
            if verify {
                let records = batch.records().expect("verified");
                std::hint::black_box(records);
            }
        }
    }
    bytes
}

fn sequential_read(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("read");
    group.sample_size(10).measurement_time(Duration::from_secs(4));
    let total = 256 << 20;
    for (mode, name) in [(Mode::DiskNever, "disk-map"), (Mode::Memory, "memory")] {
        let dir = bench_dir();
        let log = rt.block_on(Log::open(options(mode, dir.path(), Compression::None))).expect("open");
        fill(&rt, &log, total, false);
        let stored = read_all(&log, false);
        group.throughput(Throughput::Bytes(stored as u64));
        group.bench_function(format!("{name}/batches"), |b| b.iter(|| read_all(&log, false)));
        group.bench_function(format!("{name}/records-verified"), |b| b.iter(|| read_all(&log, true)));
        rt.block_on(log.close()).expect("close");
    }
    group.finish();
}

/// zstd against none on compressible 1 KiB records: append rate, read rate, stored size.
fn zstd(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("zstd");
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    let total = 32 << 20;
    for compression in [Compression::None, Compression::Zstd] {
        let name = if compression == Compression::Zstd { "zstd" } else { "none" };
        let dir = bench_dir();
        let log =
            Arc::new(rt.block_on(Log::open(options(Mode::Memory, dir.path(), compression))).expect("open"));
        group.throughput(Throughput::Bytes(total as u64));
        group.bench_function(format!("append-1KiB/{name}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        spent += append_total(&log, 1024, 16, total, true).await;
                    }
                    spent
                })
            })
        });
        let records = log.next_offset() - log.first_offset();
        eprintln!(
            "zstd/{name}: {} records stored in {} bytes ({:.1} bytes per 1 KiB record)",
            records,
            log.size_bytes(),
            log.size_bytes() as f64 / records as f64
        );
        // Read throughput counts the records' bytes as the consumer sees them.
        group.throughput(Throughput::Bytes(records * 1024));
        group.bench_function(format!("read-verified/{name}"), |b| b.iter(|| read_all(&log, true)));
        rt.block_on(log.close()).expect("close");
    }
    group.finish();
}

// criterion_group! generates an undocumented function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, append_throughput, always_latency, sequential_read, zstd);
}
criterion_main!(group::benches);
