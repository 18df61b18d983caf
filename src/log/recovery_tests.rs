//! Unit tests of recovery through a bounded window: the same scans, truncations and indexes
//! with windows down to one byte as with whole reads, on logs damaged in several ways.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{recover_windowed, scan, Source};
use crate::log::index::SparseIndex;
use crate::log::storage::threaded::ThreadedIo;
use crate::log::{FsyncPolicy, Log, LogOptions, RecordInput, Storage};

/// Windows smaller than a header, than most batches, than a segment, and the whole file.
const WINDOWS: [usize; 4] = [1, 64, 4096, usize::MAX];

fn options(dir: &Path) -> LogOptions {
    let io = Arc::new(ThreadedIo);
    let mut options =
        LogOptions::new(Storage::Disk { dir: dir.to_path_buf(), fsync: FsyncPolicy::Never, io });
    options.segment_bytes_max = 64 * 1024;
    options.index_interval_bytes = 256;
    options
}

/// A log of small batches, batches larger than the small windows, and one batch
/// larger than a segment, over several segments.
fn written_log(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let log = Log::open(options(dir)).await.expect("open");
        for i in 0..600u32 {
            let body = match i % 50 {
                7 => vec![b'l'; 20 * 1024],
                33 if i > 400 => vec![b'h'; 150 * 1024],
                _ => format!("record {i}").into_bytes(),
            };
            let record =
                RecordInput { timestamp_ms: Some(i64::from(i)), header: Bytes::new(), body: body.into() };
            log.append(vec![record]).await.expect("append");
        }
        log.close().await.expect("close");
    });
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = usize::try_from(at).expect("small").min(bytes.len() - 1);
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).expect("write");
}

fn cut(path: &Path, by: u64) {
    let length = std::fs::metadata(path).expect("size").len();
    let file = std::fs::OpenOptions::new().write(true).open(path).expect("open");
    file.set_len(length.saturating_sub(by)).expect("cut");
}

/// Damages a copy of the log in one of several ways: torn and corrupt tails, garbage
/// after the tail, damage in a sealed segment with and without its index.
fn damage(dir: &Path, variant: usize) {
    let files = segment_files(dir);
    let (tail, sealed) = files.split_last().expect("segments");
    let length = |p: &Path| std::fs::metadata(p).expect("size").len();
    match variant {
        0 => {}
        1 => cut(tail, 1),
        2 => cut(tail, length(tail) / 2),
        3 => cut(tail, length(tail) - 20),
        4 => flip(tail, length(tail) / 3),
        5 => flip(tail, 12),
        6 => {
            let mut file = std::fs::OpenOptions::new().append(true).open(tail).expect("open");
            let mut garbage = b"WRNB".to_vec();
            garbage.extend(std::iter::repeat_n(0xab, 200));
            std::io::Write::write_all(&mut file, &garbage).expect("append");
        }
        7 => {
            flip(&sealed[1], length(&sealed[1]) / 2);
            std::fs::remove_file(sealed[1].with_extension("idx")).expect("remove index");
        }
        8 => flip(&sealed[0], length(&sealed[0]) - 10),
        9 => {
            cut(&sealed[2], length(&sealed[2]) / 3);
            std::fs::remove_file(sealed[2].with_extension("idx")).expect("remove index");
        }
        _ => unreachable!("no such damage"),
    }
}

const VARIANTS: usize = 10;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
    }
}

/// Every segment file of every damaged log, scanned with and without verification:
/// the same batches, end, offsets, timestamps, damage and reason, and the same index,
/// whatever the window, down to one byte.
#[test]
fn a_small_window_scans_as_a_whole_read_does() {
    let pristine = tempfile::tempdir().expect("dir");
    written_log(pristine.path());
    assert!(segment_files(pristine.path()).len() >= 4, "the log spans several segments");
    for variant in 0..VARIANTS {
        let copy = tempfile::tempdir().expect("dir");
        copy_dir(pristine.path(), copy.path());
        damage(copy.path(), variant);
        for path in segment_files(copy.path()) {
            let file = std::fs::File::open(&path).expect("open");
            let length = file.metadata().expect("size").len();
            let base: u64 = path.file_stem().and_then(|s| s.to_str()?.parse().ok()).expect("base");
            for verify in [false, true] {
                let results: Vec<_> = WINDOWS
                    .iter()
                    .map(|&window| {
                        let mut index = SparseIndex::new(256);
                        let mut source = Source::new(&file, &path, length, window);
                        let found = scan(&mut source, 0, base, base, verify, &mut index).expect("scan");
                        (found, index.encode())
                    })
                    .collect();
                for (window, result) in WINDOWS.iter().zip(&results) {
                    assert_eq!(result, &results[3], "variant {variant}, {}, window {window}", path.display());
                }
            }
        }
    }
}

/// Recovery of each damaged log with a tiny window and with whole reads: the same
/// segments, committed state and index, the same files left on disc (truncated tail,
/// rebuilt indexes).
#[test]
fn recovery_with_a_tiny_window_matches_whole_reads() {
    let pristine = tempfile::tempdir().expect("dir");
    written_log(pristine.path());
    for variant in 0..VARIANTS {
        let outcomes: Vec<_> = [64, usize::MAX]
            .into_iter()
            .map(|window| {
                let copy = tempfile::tempdir().expect("dir");
                copy_dir(pristine.path(), copy.path());
                damage(copy.path(), variant);
                let recovered =
                    recover_windowed(copy.path(), &options(copy.path()), window).expect("recover");
                let states: Vec<String> =
                    recovered.segments.iter().map(|s| format!("{:?}", s.state())).collect();
                let active = (recovered.active.written_bytes, recovered.active.next_offset);
                let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(copy.path())
                    .expect("list")
                    .map(|e| e.expect("entry").path())
                    .map(|p| {
                        (
                            p.file_name().expect("name").to_string_lossy().into_owned(),
                            std::fs::read(&p).expect("read"),
                        )
                    })
                    .collect();
                files.sort();
                (states, active, recovered.last_timestamp_ms, files)
            })
            .collect();
        assert!(outcomes[0] == outcomes[1], "variant {variant}: recovery differs with a tiny window");
    }
}
