//! Feeds arbitrary bytes to the batch decoder, as recovery and readers see a segment:
//! batches back to back, each split off, checked and decoded into records.
//!
//! The first input octet is a set of flags: bit 0 rewrites each batch's crc32 before
//! decoding (so mutations get past the checksum and reach the record layout and zstd),
//! bit 1 reads the batches as an in-memory log's (no crc check). Whatever decodes must
//! keep the header's promises, and its records, pushed through the real encoder, must
//! decode to the same records.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use warren::limits::BATCH_BYTES_MAX;
use warren::log::batch::{BatchBuilder, BatchHeader, RECORD_OVERHEAD_BYTES};
use warren::log::{Batch, Compression, Record};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if flags & 1 != 0 {
        fix_crcs(&mut bytes);
    }
    let mut segment = Bytes::from(bytes);
    while !segment.is_empty() {
        let Ok(batch) = Batch::split_from(&segment) else { break };
        let header = *batch.header();
        check_header(&header, batch.as_bytes());
        let batch = if flags & 2 != 0 { batch.in_memory() } else { batch };
        if let Ok(records) = batch.records() {
            check_records(&header, &records, batch.as_bytes(), flags & 2 == 0);
        }
        segment = segment.slice(batch.as_bytes().len()..);
    }
});

/// Writes the right crc32 into every whole batch the bytes start with.
fn fix_crcs(bytes: &mut [u8]) {
    let mut at = 0;
    while let Some(Ok(header)) = bytes.get(at..).map(BatchHeader::parse) {
        let end = at + header.total_bytes() as usize;
        let Some(covered) = bytes.get(at + 10..end) else { return };
        let crc = crc32fast::hash(covered).to_le_bytes();
        bytes[at + 6..at + 10].copy_from_slice(&crc);
        at = end;
    }
}

fn check_header(header: &BatchHeader, bytes: &Bytes) {
    assert!(header.record_count >= 1);
    assert!(header.last_timestamp_ms >= header.first_timestamp_ms);
    assert!(header.base_offset.checked_add(u64::from(header.record_count)).is_some());
    assert!(u64::from(header.payload_bytes) <= BATCH_BYTES_MAX);
    assert!(u64::from(header.records_bytes) <= BATCH_BYTES_MAX);
    assert_eq!(bytes.len() as u64, header.total_bytes());
    assert_eq!(BatchHeader::parse(bytes).as_ref(), Ok(header));
}

fn check_records(header: &BatchHeader, records: &[Record], bytes: &Bytes, crc_checked: bool) {
    assert_eq!(records.len(), header.record_count as usize);
    let mut records_bytes = 0;
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.offset, header.base_offset + index as u64);
        assert!(record.timestamp_ms >= header.first_timestamp_ms);
        assert!(record.timestamp_ms <= header.last_timestamp_ms);
        records_bytes += RECORD_OVERHEAD_BYTES + record.header.len() + record.body.len();
    }
    assert_eq!(records_bytes, header.records_bytes as usize);

    // The encoder clamps timestamps so they never go backwards within a batch.
    let mut builder = BatchBuilder::new(header.base_offset, records_bytes);
    let mut expected = records.to_vec();
    let mut latest = i64::MIN;
    for record in &mut expected {
        builder.push(record.timestamp_ms, &record.header, &record.body);
        latest = latest.max(record.timestamp_ms);
        record.timestamp_ms = latest;
    }
    let (rebuilt_header, rebuilt) = builder.finish(header.compression);
    assert_eq!(rebuilt_header.base_offset, header.base_offset);
    assert_eq!(rebuilt_header.record_count, header.record_count);
    assert_eq!(rebuilt_header.records_bytes, header.records_bytes);
    let again = Batch::split_from(&rebuilt).expect("an encoded batch splits");
    assert_eq!(again.records().expect("an encoded batch decodes"), expected);

    // An uncompressed batch whose header says exactly what its records say is the
    // encoder's own output, byte for byte.
    let exact = crc_checked
        && header.compression == Compression::None
        && records.first().map(|r| r.timestamp_ms) == Some(header.first_timestamp_ms)
        && latest == header.last_timestamp_ms
        && expected == records;
    if exact {
        assert_eq!(&rebuilt[..], &bytes[..]);
    }
}
