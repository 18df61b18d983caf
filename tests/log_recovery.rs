//! Recovery from damaged files: real segment files are cut, flipped and deleted between a
//! close and a reopen. A torn or corrupt tail is truncated to its last valid batch; a
//! damaged or missing index is rebuilt; damage inside a sealed segment is reported to the
//! reader, never served, and stepped over to the next intact batch (by the damaged batch's
//! length, else the index).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use warren::log::{Error, FsyncPolicy, Log, RecordInput};

use crate::harness::{run, small_options, Backend};
use crate::on_disk_backends;

const RECORDS: u64 = 100;

fn body(i: u64) -> Bytes {
    Bytes::from(format!("{i:05}-{}", "x".repeat(90)))
}

/// Writes RECORDS one-record batches (so each append is one batch) and closes the log.
fn fill(backend: Backend, dir: &Path) {
    run(async {
        let log = Log::open(small_options(backend, dir, FsyncPolicy::Always)).await.expect("open");
        for i in 0..RECORDS {
            log.append(vec![RecordInput::body(body(i))]).await.expect("append");
        }
        log.close().await.expect("close");
    });
}

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    found.sort();
    found
}

/// Reopens and returns every record that can be read in order from offset 0 (stopping at
/// the first error), the error if any, and the next offset.
fn reopen_and_read(backend: Backend, dir: &Path) -> (Vec<(u64, Bytes)>, Option<Error>, u64) {
    run(async {
        let log = Log::open(small_options(backend, dir, FsyncPolicy::Always)).await.expect("reopen");
        let mut out = Vec::new();
        let mut next = 0;
        let mut error = None;
        while next < log.next_offset() {
            match log.read_records(next, 1024) {
                Ok(records) => {
                    next = records.last().expect("progress").offset + 1;
                    out.extend(records.into_iter().map(|r| (r.offset, r.body)));
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let next_offset = log.next_offset();
        // The log takes appends after recovery, at the recovered end.
        let ack = log.append(vec![RecordInput::body("after")]).await.expect("append after recovery");
        assert_eq!(ack.first_offset, next_offset);
        (out, error, next_offset)
    })
}

fn assert_prefix_intact(records: &[(u64, Bytes)]) {
    for (i, (offset, bytes)) in records.iter().enumerate() {
        assert_eq!(*offset, i as u64);
        assert_eq!(*bytes, body(i as u64));
    }
}

fn cut_tail(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    fill(backend, dir.path());
    let tail = files(dir.path(), "seg").pop().expect("tail");
    let length = std::fs::metadata(&tail).expect("meta").len();
    let file = std::fs::OpenOptions::new().write(true).open(&tail).expect("open");
    file.set_len(length - 30).expect("cut");
    let (records, error, next) = reopen_and_read(backend, dir.path());
    assert!(error.is_none(), "{error:?}");
    assert_eq!(next, RECORDS - 1, "exactly the torn batch is dropped");
    assert_eq!(records.len() as u64, RECORDS - 1);
    assert_prefix_intact(&records);
}

fn flipped_byte_in_tail(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    fill(backend, dir.path());
    let tail = files(dir.path(), "seg").pop().expect("tail");
    let mut bytes = std::fs::read(&tail).expect("read");
    let at = bytes.len() - 200; // inside the second-to-last batch (each is ~150 bytes)
    bytes[at] ^= 0x40;
    std::fs::write(&tail, &bytes).expect("write");
    let (records, error, next) = reopen_and_read(backend, dir.path());
    assert!(error.is_none(), "{error:?}");
    assert_eq!(next, RECORDS - 2, "the damaged batch and everything after it are dropped");
    assert_prefix_intact(&records);
}

fn garbage_after_tail(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    fill(backend, dir.path());
    let tail = files(dir.path(), "seg").pop().expect("tail");
    let mut bytes = std::fs::read(&tail).expect("read");
    bytes.extend_from_slice(&[0u8; 500]);
    std::fs::write(&tail, &bytes).expect("write");
    let (records, error, next) = reopen_and_read(backend, dir.path());
    assert!(error.is_none());
    assert_eq!(next, RECORDS);
    assert_prefix_intact(&records);
}

fn flipped_byte_in_sealed_segment_is_reported(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    fill(backend, dir.path());
    let segments = files(dir.path(), "seg");
    assert!(segments.len() >= 3);
    let sealed = &segments[1];
    let mut bytes = std::fs::read(sealed).expect("read");
    let at = bytes.len() / 2 + 60; // inside some record's body, not a header
    bytes[at] ^= 0x01;
    std::fs::write(sealed, &bytes).expect("write");
    let (records, error, next) = reopen_and_read(backend, dir.path());
    assert_eq!(next, RECORDS, "sealed segments are not truncated");
    assert!(matches!(error, Some(Error::CorruptBatch { .. })), "{error:?}");
    assert_prefix_intact(&records);
    assert!((records.len() as u64) < RECORDS);
    // Records after the damaged batch are still served when asked for directly.
    run(async {
        let log = Log::open(small_options(backend, dir.path(), FsyncPolicy::Always)).await.expect("reopen");
        let last = log.read_records(RECORDS - 1, 100).expect("the tail is fine");
        assert_eq!(last[0].body, body(RECORDS - 1));
    });
}

/// Byte positions of the batches of a segment file, from their length fields.
fn batch_positions(file: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut position = 0;
    while let Some(length) = file.get(position + 40..position + 44) {
        out.push(position);
        position += 48 + u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
    }
    out
}

/// Damage met when reading a sealed segment: a batch that fails its crc is stepped over by
/// its own length (intact data resumes at the next offset); a batch whose length field is
/// overwritten is stepped over to the next indexed batch that verifies.
fn damaged_batches_resync_at_the_next_intact_batch(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    fill(backend, dir.path());
    let segments = files(dir.path(), "seg");
    assert!(segments.len() >= 3);
    let sealed = &segments[1];
    let mut bytes = std::fs::read(sealed).expect("read");
    let positions = batch_positions(&bytes);
    assert!(positions.len() >= 8, "batches in a sealed segment: {}", positions.len());
    let base = |index: usize| {
        u64::from_le_bytes(bytes[positions[index] + 12..positions[index] + 20].try_into().expect("8"))
    };
    let (flipped, overwritten) = (base(1), base(4));
    bytes[positions[2] - 5] ^= 0x01; // in the last record's body of batch 1
    bytes[positions[4] + 40..positions[4] + 44].copy_from_slice(&0x00ff_0000u32.to_le_bytes());
    std::fs::write(sealed, &bytes).expect("write");
    run(async {
        let log = Log::open(small_options(backend, dir.path(), FsyncPolicy::Always)).await.expect("reopen");
        assert!(log.read_records(flipped, 0).is_err(), "the flipped batch is not served");
        assert_eq!(log.next_intact_offset(flipped), flipped + 1);
        assert!(log.read_records(overwritten, 0).is_err(), "the overwritten batch is not served");
        let resumed = log.next_intact_offset(overwritten);
        // The index has an entry every 256 bytes: a few one-record batches at most.
        assert!(resumed > overwritten && resumed <= overwritten + 4, "resumed at {resumed}");
        let records = log.read_records(resumed, 0).expect("intact after the damage");
        assert_eq!(records[0].offset, resumed);
        assert_eq!(records[0].body, body(resumed));
    });
}

fn missing_or_damaged_index_is_rebuilt(backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    fill(backend, dir.path());
    let indexes = files(dir.path(), "idx");
    assert!(indexes.len() >= 2, "sealed segments have index files");
    std::fs::remove_file(&indexes[0]).expect("remove");
    std::fs::write(&indexes[1], b"not an index at all").expect("damage");
    let (records, error, next) = reopen_and_read(backend, dir.path());
    assert!(error.is_none());
    assert_eq!(next, RECORDS);
    assert_prefix_intact(&records);
    assert!(indexes[0].exists(), "the missing index was written again");
    assert_eq!(std::fs::metadata(&indexes[1]).expect("meta").len() % 16, 0);
}

on_disk_backends!(
    cut_tail,
    flipped_byte_in_tail,
    garbage_after_tail,
    flipped_byte_in_sealed_segment_is_reported,
    damaged_batches_resync_at_the_next_intact_batch,
    missing_or_damaged_index_is_rebuilt,
);
