//! Unit tests of releasing a log in memory below its floor: the chunks below the batch
//! holding the floor leave RAM at once, in sealed and active segments alike, and every read
//! at or above the floor still finds each record intact.

use bytes::Bytes;

use super::segment::Segment;
use super::{Error, Log, LogOptions, RecordInput, Storage};

const RECORDS: u64 = 2_000;

fn options() -> LogOptions {
    let mut options = LogOptions::new(Storage::Memory);
    options.segment_bytes_max = 16 * 1024;
    options.index_interval_bytes = 512;
    options
}

fn body(offset: u64) -> Bytes {
    Bytes::from(format!("record {offset:06} {}", "x".repeat((offset % 97) as usize)))
}

/// `RECORDS` records, in appends of `per_append` (each append is one batch or more).
async fn filled_log(per_append: u64) -> Log {
    let log = Log::open(options()).await.expect("open");
    let mut offset = 0;
    while offset < RECORDS {
        let records = (offset..(offset + per_append).min(RECORDS)).map(|o| RecordInput::body(body(o)));
        log.append(records.collect()).await.expect("append");
        offset += per_append;
    }
    log
}

fn segments(log: &Log) -> Vec<std::sync::Arc<Segment>> {
    log.shared.segments.read().expect("segments lock").clone()
}

/// Reads every record from `from` to the end and checks each one.
fn check_readable_from(log: &Log, from: u64) {
    let mut next = from;
    while next < log.next_offset() {
        let records = log.read_records(next, 4096).expect("read at or above the floor");
        assert!(!records.is_empty(), "records at {next}");
        for record in records {
            assert_eq!(record.offset, next, "dense offsets");
            assert_eq!(record.body, body(next), "record {next} intact");
            next += 1;
        }
    }
    assert_eq!(next, log.next_offset());
}

/// What the segments hold after a release at `floor`: nothing in segments wholly below it,
/// and in the one holding it exactly the batches from the one holding `floor` on.
fn check_held_only_from(log: &Log, floor: u64) {
    let segments = segments(log);
    let total_written: u64 = segments.iter().map(|s| s.extent().0).sum();
    for segment in &segments {
        let (committed, next) = segment.extent();
        if next <= floor && segment.base_offset < floor {
            assert_eq!(segment.held_bytes(), 0, "segment {} lies below the floor", segment.base_offset);
        } else if segment.base_offset <= floor {
            let held_from = segment.held_from();
            assert!(held_from > 0 && held_from < committed, "the holding segment dropped its front");
            let batch = segment.batch_at(held_from).expect("read").expect("a batch where it starts");
            let header = batch.header();
            assert!(header.base_offset <= floor && floor < header.next_offset(), "{header:?} holds {floor}");
        }
    }
    assert!(log.size_bytes() < total_written / 4, "{} of {total_written} B still held", log.size_bytes());
    assert!(log.bytes_after(0) <= log.size_bytes());
}

fn released_below_the_floor(per_append: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let log = filled_log(per_append).await;
        assert!(segments(&log).len() > 3, "several segments");
        let floor = RECORDS * 9 / 10 + 3;
        log.release_before(floor);
        check_held_only_from(&log, floor);
        assert_eq!(log.first_offset(), floor);
        check_readable_from(&log, floor);
        assert!(
            matches!(log.read(floor - 100, 4096), Err(Error::BeforeStart { first_offset, .. }) if first_offset == floor),
            "a read below the floor is refused"
        );
        assert!(log.read(0, 4096).is_err(), "a read of dropped bytes is refused");
    });
}

#[test]
fn a_memory_log_drops_one_record_batches_below_its_floor() {
    released_below_the_floor(1);
}

#[test]
fn a_memory_log_keeps_the_batch_holding_its_floor() {
    released_below_the_floor(10);
}

/// Everything consumed: the active segment drops all it holds, and records appended
/// afterwards are read from the floor on (the index entry below them points at dropped
/// bytes).
#[test]
fn a_memory_log_released_to_its_end_reads_what_comes_next() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let log = filled_log(1).await;
        log.release_before(RECORDS);
        assert_eq!(log.size_bytes(), 0);
        assert_eq!(log.read_records(RECORDS, 4096).expect("read at the end").len(), 0);
        for offset in RECORDS..RECORDS + 5 {
            log.append(vec![RecordInput::body(body(offset))]).await.expect("append");
        }
        check_readable_from(&log, RECORDS);
        log.release_before(RECORDS + 2);
        check_readable_from(&log, RECORDS + 2);
        assert!(log.size_bytes() > 0);
    });
}
