//! The batch: the unit in which records are written, checksummed, compressed and read.
//!
//! A batch is a fixed 48-byte little-endian header followed by its payload, the records.
//! `docs/log-format.md` specifies every byte. This file owns encoding ([`BatchBuilder`]) and
//! validating decoding ([`BatchHeader::parse`], [`Batch::records`]); it knows nothing of
//! segments, files or AMQP.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};

use crate::limits::{BATCH_BYTES_MAX, BATCH_RECORDS_RESERVE_BYTES_MAX, SHARED_BODY_MIN_BYTES};

/// The four bytes every batch starts with: `WRNB`.
pub const BATCH_MAGIC: [u8; 4] = *b"WRNB";
/// The batch format version this code writes and reads.
pub const BATCH_VERSION: u16 = 1;
/// Size of the fixed batch header in bytes.
pub const BATCH_HEADER_BYTES: usize = 48;
/// Size of the fixed part of each record (length, offset delta, timestamp delta, header length).
pub const RECORD_OVERHEAD_BYTES: usize = 16;

/// Byte position of the crc32 field; the crc covers everything after it.
const CRC_POSITION: usize = 6;
const CRC_COVERED_FROM: usize = 10;
const CODEC_MASK: u16 = 0b111;

/// How a batch's payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Records are stored as they are.
    #[default]
    None,
    /// The payload is one zstd frame holding the records.
    Zstd,
}

impl Compression {
    fn codec_bits(self) -> u16 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
        }
    }
}

/// What can be wrong with the bytes of a batch.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared payload needs: a torn write at a tail.
    #[error("batch incomplete: need {need} bytes, have {have}")]
    Incomplete {
        /// Bytes the batch needs.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// The first four bytes are not `WRNB`.
    #[error("bad batch magic {found:02x?}")]
    BadMagic {
        /// The bytes found instead.
        found: [u8; 4],
    },
    /// A version this code does not read.
    #[error("unsupported batch version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// The attributes name a codec this code does not know.
    #[error("unknown compression codec {codec}")]
    UnknownCodec {
        /// The codec bits found.
        codec: u16,
    },
    /// The stored crc32 does not match the bytes.
    #[error("batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// crc32 stored in the header.
        stored: u32,
        /// crc32 computed over the bytes read.
        computed: u32,
    },
    /// Header fields that contradict each other or the records.
    #[error("malformed batch: {reason}")]
    Malformed {
        /// What is inconsistent.
        reason: &'static str,
    },
    /// The payload length is over [`BATCH_BYTES_MAX`].
    #[error("batch of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// zstd could not decompress the payload.
    #[error("zstd payload could not be decompressed")]
    Decompress,
}

/// The fixed header of a batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// crc32 (IEEE) of every byte after the crc field to the end of the payload.
    pub crc: u32,
    /// How the payload is stored.
    pub compression: Compression,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Number of records; at least 1.
    pub record_count: u32,
    /// Timestamp of the first record, milliseconds since the Unix epoch.
    pub first_timestamp_ms: i64,
    /// Timestamp of the last record; never below `first_timestamp_ms`.
    pub last_timestamp_ms: i64,
    /// Bytes of payload stored after the header.
    pub payload_bytes: u32,
    /// Bytes of the records once decompressed (equal to `payload_bytes` when uncompressed).
    pub records_bytes: u32,
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

impl BatchHeader {
    /// Writes the header's 48 bytes (crc included) to the start of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`BATCH_HEADER_BYTES`].
    pub fn encode(&self, out: &mut [u8]) {
        let mut w = out.get_mut(..BATCH_HEADER_BYTES).expect("room for a batch header");
        w.put_slice(&BATCH_MAGIC);
        w.put_u16_le(BATCH_VERSION);
        w.put_u32_le(self.crc);
        w.put_u16_le(self.compression.codec_bits());
        w.put_u64_le(self.base_offset);
        w.put_u32_le(self.record_count);
        w.put_i64_le(self.first_timestamp_ms);
        w.put_i64_le(self.last_timestamp_ms);
        w.put_u32_le(self.payload_bytes);
        w.put_u32_le(self.records_bytes);
    }

    /// Total bytes of the batch: header plus payload.
    pub fn total_bytes(&self) -> u64 {
        BATCH_HEADER_BYTES as u64 + u64::from(self.payload_bytes)
    }

    /// Offset one past the last record of the batch.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count)
    }

    /// Decodes and checks the header at the start of `buf` without touching the payload
    /// (the crc is not verified here; [`Batch::verify`] does that).
    ///
    /// # Errors
    /// [`BatchError::Incomplete`] when `buf` is shorter than the header; the other variants
    /// when the header is not a valid version-1 header.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let have = buf.len() as u64;
        let incomplete = BatchError::Incomplete { need: BATCH_HEADER_BYTES as u64, have };
        let head = buf.get(..BATCH_HEADER_BYTES).ok_or(incomplete)?;
        let magic: [u8; 4] = head.get(..4).and_then(|m| m.try_into().ok()).unwrap_or_default();
        if magic != BATCH_MAGIC {
            return Err(BatchError::BadMagic { found: magic });
        }
        let field = |v: Option<u64>| v.ok_or(BatchError::Malformed { reason: "short header" });
        let version = field(u16_at(head, 4).map(u64::from))? as u16;
        if version != BATCH_VERSION {
            return Err(BatchError::UnsupportedVersion { version });
        }
        let attributes = field(u16_at(head, 10).map(u64::from))? as u16;
        if attributes & !CODEC_MASK != 0 {
            return Err(BatchError::Malformed { reason: "reserved attribute bits set" });
        }
        let compression = match attributes & CODEC_MASK {
            0 => Compression::None,
            1 => Compression::Zstd,
            codec => return Err(BatchError::UnknownCodec { codec }),
        };
        let header = BatchHeader {
            crc: field(u32_at(head, CRC_POSITION).map(u64::from))? as u32,
            compression,
            base_offset: field(u64_at(head, 12))?,
            record_count: field(u32_at(head, 20).map(u64::from))? as u32,
            first_timestamp_ms: field(u64_at(head, 24))? as i64,
            last_timestamp_ms: field(u64_at(head, 32))? as i64,
            payload_bytes: field(u32_at(head, 40).map(u64::from))? as u32,
            records_bytes: field(u32_at(head, 44).map(u64::from))? as u32,
        };
        header.check()?;
        Ok(header)
    }

    fn check(&self) -> Result<(), BatchError> {
        let malformed = |reason| Err(BatchError::Malformed { reason });
        if self.record_count == 0 {
            return malformed("record count is zero");
        }
        if self.last_timestamp_ms < self.first_timestamp_ms {
            return malformed("last timestamp before first");
        }
        if self.base_offset.checked_add(u64::from(self.record_count)).is_none() {
            return malformed("offsets overflow");
        }
        let largest = u64::from(self.payload_bytes.max(self.records_bytes));
        if largest > BATCH_BYTES_MAX {
            return Err(BatchError::TooLarge { size: largest, max: BATCH_BYTES_MAX });
        }
        if self.compression == Compression::None && self.payload_bytes != self.records_bytes {
            return malformed("uncompressed batch with differing lengths");
        }
        if (self.records_bytes as usize) < self.record_count as usize * RECORD_OVERHEAD_BYTES {
            return malformed("records length too small for the record count");
        }
        Ok(())
    }
}

/// One record read back from a batch. `header` and `body` share the batch's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's offset in its log.
    pub offset: u64,
    /// The record's timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Opaque bytes stored with the record (the AMQP layer keeps its content header here).
    pub header: Bytes,
    /// The record's body.
    pub body: Bytes,
}

/// A whole batch (header and payload) as stored, not yet verified.
#[derive(Debug, Clone)]
pub struct Batch {
    header: BatchHeader,
    bytes: Bytes,
    /// Never left this process's memory (an in-memory log's): no crc to check.
    in_memory: bool,
}

impl Batch {
    /// Takes the first batch out of `bytes` (which may hold more after it).
    ///
    /// # Errors
    /// As [`BatchHeader::parse`], and [`BatchError::Incomplete`] if the payload is cut.
    pub fn split_from(bytes: &Bytes) -> Result<Batch, BatchError> {
        let header = BatchHeader::parse(bytes)?;
        let total = header.total_bytes();
        if (bytes.len() as u64) < total {
            return Err(BatchError::Incomplete { need: total, have: bytes.len() as u64 });
        }
        Ok(Batch { header, bytes: bytes.slice(..total as usize), in_memory: false })
    }

    /// The same batch, known to be held in memory since this process wrote it: it has no
    /// crc ([`BatchBuilder::in_memory`]) and [`Batch::records`] checks none.
    pub fn in_memory(self) -> Batch {
        Batch { in_memory: true, ..self }
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes exactly as stored.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Checks the crc32 over the stored bytes.
    ///
    /// # Errors
    /// [`BatchError::CrcMismatch`] if the bytes are not what was written.
    pub fn verify(&self) -> Result<(), BatchError> {
        let covered = self.bytes.get(CRC_COVERED_FROM..).unwrap_or_default();
        let computed = crc32fast::hash(covered);
        if computed != self.header.crc {
            return Err(BatchError::CrcMismatch { stored: self.header.crc, computed });
        }
        Ok(())
    }

    /// Verifies the batch, decompresses it if needed (once) and returns its records.
    /// Record headers and bodies are slices of one buffer: no per-record copy.
    ///
    /// # Errors
    /// Any [`BatchError`] about the crc, the codec or the record layout.
    pub fn records(&self) -> Result<Vec<Record>, BatchError> {
        if !self.in_memory {
            self.verify()?;
        }
        let stored = self.bytes.slice(BATCH_HEADER_BYTES..);
        let payload = match self.header.compression {
            Compression::None => stored,
            Compression::Zstd => {
                let capacity = self.header.records_bytes as usize;
                let out = zstd::bulk::decompress(&stored, capacity).map_err(|_| BatchError::Decompress)?;
                if out.len() != capacity {
                    return Err(BatchError::Malformed { reason: "decompressed length" });
                }
                Bytes::from(out)
            }
        };
        decode_records(&self.header, &payload)
    }
}

fn decode_records(header: &BatchHeader, payload: &Bytes) -> Result<Vec<Record>, BatchError> {
    let malformed = |reason| BatchError::Malformed { reason };
    let mut records = Vec::with_capacity(header.record_count as usize);
    let mut at = 0usize;
    for index in 0..header.record_count {
        let length = u32_at(payload, at).ok_or(malformed("record length cut"))? as usize;
        let delta = u32_at(payload, at + 4).ok_or(malformed("record cut"))?;
        let ts_delta = u32_at(payload, at + 8).ok_or(malformed("record cut"))?;
        let header_len = u32_at(payload, at + 12).ok_or(malformed("record cut"))? as usize;
        if delta != index {
            return Err(malformed("offset deltas not contiguous"));
        }
        let end = at.checked_add(4 + length).ok_or(malformed("record length overflow"))?;
        let body_from = at + RECORD_OVERHEAD_BYTES + header_len;
        if length < RECORD_OVERHEAD_BYTES - 4 || body_from > end || end > payload.len() {
            return Err(malformed("record lengths out of bounds"));
        }
        let timestamp_ms = header
            .first_timestamp_ms
            .checked_add(i64::from(ts_delta))
            .filter(|t| *t <= header.last_timestamp_ms)
            .ok_or(malformed("record timestamp after the batch's last"))?;
        records.push(Record {
            offset: header.base_offset + u64::from(index),
            timestamp_ms,
            header: payload.slice(at + RECORD_OVERHEAD_BYTES..body_from),
            body: payload.slice(body_from..end),
        });
        at = end;
    }
    if at != payload.len() {
        return Err(malformed("bytes after the last record"));
    }
    Ok(records)
}

/// Builds one batch: records are appended in offset order, then [`BatchBuilder::finish`]
/// writes the header, compresses if asked and computes the crc.
///
/// A builder made with [`BatchBuilder::vectored`] keeps large bodies as the shared buffers
/// they arrived in, and [`BatchBuilder::finish_pieces`] gives the batch as pieces for one
/// vectored write: the bytes are the same as a contiguous batch's, without the copy.
#[derive(Debug)]
pub struct BatchBuilder {
    base_offset: u64,
    first_timestamp_ms: i64,
    last_timestamp_ms: i64,
    record_count: u32,
    records_bytes: usize,
    /// Contiguous: the header's place, then the records. Vectored: what follows `pieces`.
    records: BytesMut,
    /// Vectored only: the batch after its header, up to `records`.
    pieces: Vec<Bytes>,
    vectored: bool,
    /// Compute the crc (every batch that may reach a disc).
    checksum: bool,
}

impl BatchBuilder {
    /// Starts a batch whose first record gets `base_offset`. `capacity_bytes` is a hint.
    pub fn new(base_offset: u64, capacity_bytes: usize) -> BatchBuilder {
        let mut records = BytesMut::with_capacity(BATCH_HEADER_BYTES + capacity_bytes);
        records.put_bytes(0, BATCH_HEADER_BYTES);
        BatchBuilder {
            base_offset,
            first_timestamp_ms: 0,
            last_timestamp_ms: 0,
            record_count: 0,
            records_bytes: 0,
            records,
            pieces: Vec::new(),
            vectored: false,
            checksum: true,
        }
    }

    /// For an in-memory log: the batch will never leave this process's memory, so its crc
    /// field is left 0 and no checksum is computed (see [`Batch::in_memory`]).
    pub fn in_memory(self) -> BatchBuilder {
        self.without_checksum()
    }

    /// No crc: for a log whose batches are only ever read by this process, from memory or
    /// from files it wrote itself and removes before it stops or starts again (see
    /// [`Batch::in_memory`]).
    pub fn without_checksum(self) -> BatchBuilder {
        BatchBuilder { checksum: false, ..self }
    }

    /// Starts a batch for a vectored write: bodies of [`SHARED_BODY_MIN_BYTES`] or more
    /// pushed with [`BatchBuilder::push_shared`] are not copied.
    pub fn vectored(base_offset: u64, capacity_bytes: usize) -> BatchBuilder {
        BatchBuilder {
            records: BytesMut::with_capacity(capacity_bytes.min(BATCH_RECORDS_RESERVE_BYTES_MAX)),
            vectored: true,
            ..BatchBuilder::new(base_offset, 0)
        }
    }

    /// Number of records pushed so far.
    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// Bytes of records pushed so far (header excluded).
    pub fn records_bytes(&self) -> usize {
        self.records_bytes
    }

    /// The encoded size of a record with this header and body.
    pub fn record_bytes(header: &[u8], body: &[u8]) -> usize {
        RECORD_OVERHEAD_BYTES + header.len() + body.len()
    }

    /// Appends a record and returns its offset. Timestamps are clamped so that they never
    /// go backwards within the batch: the batch's index by time relies on that.
    ///
    /// # Panics
    /// If the record would make the batch larger than [`BATCH_BYTES_MAX`]; callers check
    /// sizes against that limit before pushing.
    pub fn push(&mut self, timestamp_ms: i64, header: &[u8], body: &[u8]) -> u64 {
        self.records.reserve(RECORD_OVERHEAD_BYTES + header.len() + body.len());
        let offset = self.push_prefix(timestamp_ms, header, body.len());
        self.records.put_slice(body);
        offset
    }

    /// As [`BatchBuilder::push`]; in a vectored batch a large `body` is kept, not copied.
    ///
    /// # Panics
    /// As [`BatchBuilder::push`].
    pub fn push_shared(&mut self, timestamp_ms: i64, header: &[u8], body: &Bytes) -> u64 {
        if !self.vectored || body.len() < SHARED_BODY_MIN_BYTES {
            return self.push(timestamp_ms, header, body);
        }
        let offset = self.push_prefix(timestamp_ms, header, body.len());
        self.pieces.push(self.records.split().freeze());
        self.pieces.push(body.clone());
        offset
    }

    /// Writes a record's length (counting a body of `body_len`), offset delta, timestamp
    /// delta and header; the caller adds the body.
    fn push_prefix(&mut self, timestamp_ms: i64, header: &[u8], body_len: usize) -> u64 {
        let size = RECORD_OVERHEAD_BYTES + header.len() + body_len;
        assert!((self.records_bytes + size) as u64 <= BATCH_BYTES_MAX, "record pushed past the batch limit");
        let timestamp_ms = if self.record_count == 0 {
            self.first_timestamp_ms = timestamp_ms;
            timestamp_ms
        } else {
            timestamp_ms.max(self.last_timestamp_ms)
        };
        self.last_timestamp_ms = timestamp_ms;
        let ts_delta = u32::try_from(timestamp_ms - self.first_timestamp_ms).unwrap_or(u32::MAX);
        // A batch is written within milliseconds; a delta beyond u32 (49 days) cannot occur
        // unless the caller passes wildly different timestamps, which we clamp instead.
        let timestamp_ms = self.first_timestamp_ms + i64::from(ts_delta);
        self.last_timestamp_ms = timestamp_ms;
        self.records.reserve(RECORD_OVERHEAD_BYTES + header.len());
        self.records.put_u32_le((size - 4) as u32);
        self.records.put_u32_le(self.record_count);
        self.records.put_u32_le(ts_delta);
        self.records.put_u32_le(header.len() as u32);
        self.records.put_slice(header);
        self.records_bytes += size;
        let offset = self.base_offset + u64::from(self.record_count);
        self.record_count += 1;
        offset
    }

    /// Last timestamp pushed (after clamping).
    pub fn last_timestamp_ms(&self) -> i64 {
        self.last_timestamp_ms
    }

    /// The batch's header fields for these records, with `crc` still 0.
    fn header(&self, compression: Compression, payload_bytes: usize) -> BatchHeader {
        BatchHeader {
            crc: 0,
            compression,
            base_offset: self.base_offset,
            record_count: self.record_count,
            first_timestamp_ms: self.first_timestamp_ms,
            last_timestamp_ms: self.last_timestamp_ms,
            payload_bytes: payload_bytes as u32,
            records_bytes: self.records_bytes as u32,
        }
    }

    /// Seals the batch: compresses the records if asked (keeping them uncompressed when
    /// zstd does not make them smaller), writes the header and the crc.
    ///
    /// # Panics
    /// If no record was pushed.
    // The buffer starts with the header's bytes by construction, so the fixed slices below
    // are in bounds.
    #[allow(clippy::indexing_slicing)]
    pub fn finish(mut self, compression: Compression) -> (BatchHeader, Bytes) {
        assert!(self.record_count > 0, "an empty batch is never written");
        let records = std::mem::take(&mut self.records);
        let mut buf = if self.vectored {
            let mut joined = BytesMut::with_capacity(BATCH_HEADER_BYTES + self.records_bytes);
            joined.put_bytes(0, BATCH_HEADER_BYTES);
            for piece in &self.pieces {
                joined.extend_from_slice(piece);
            }
            joined.extend_from_slice(&records);
            joined
        } else {
            records
        };
        let mut compression = compression;
        if compression == Compression::Zstd {
            let payload = buf.get(BATCH_HEADER_BYTES..).unwrap_or_default();
            match zstd::bulk::compress(payload, 1) {
                Ok(packed) if packed.len() < payload.len() => {
                    buf.truncate(BATCH_HEADER_BYTES);
                    buf.extend_from_slice(&packed);
                }
                _ => compression = Compression::None,
            }
        }
        let mut header = self.header(compression, buf.len() - BATCH_HEADER_BYTES);
        header.encode(&mut buf[..BATCH_HEADER_BYTES]);
        if self.checksum {
            header.crc = crc32fast::hash(&buf[CRC_COVERED_FROM..]);
            buf[CRC_POSITION..CRC_COVERED_FROM].copy_from_slice(&header.crc.to_le_bytes());
        }
        debug_assert_eq!(BatchHeader::parse(&buf), Ok(header));
        (header, buf.freeze())
    }

    /// Seals an uncompressed batch as pieces to write one after the other: the header, then
    /// the records' framing interleaved with the bodies kept by [`BatchBuilder::push_shared`].
    ///
    /// # Panics
    /// If no record was pushed.
    pub fn finish_pieces(mut self) -> (BatchHeader, Vec<Bytes>) {
        if !self.vectored {
            let (header, bytes) = self.finish(Compression::None);
            return (header, vec![bytes]);
        }
        assert!(self.record_count > 0, "an empty batch is never written");
        let mut pieces = Vec::with_capacity(self.pieces.len() + 2);
        pieces.push(Bytes::new());
        pieces.append(&mut self.pieces);
        if !self.records.is_empty() {
            pieces.push(self.records.split().freeze());
        }
        let mut header = self.header(Compression::None, self.records_bytes);
        let mut head = [0u8; BATCH_HEADER_BYTES];
        header.encode(&mut head);
        if self.checksum {
            let mut crc = crc32fast::Hasher::new();
            crc.update(head.get(CRC_COVERED_FROM..).unwrap_or_default());
            for piece in pieces.iter().skip(1) {
                crc.update(piece);
            }
            header.crc = crc.finalize();
            head.get_mut(CRC_POSITION..CRC_COVERED_FROM)
                .unwrap_or_default()
                .copy_from_slice(&header.crc.to_le_bytes());
        }
        if let Some(first) = pieces.first_mut() {
            *first = Bytes::copy_from_slice(&head);
        }
        (header, pieces)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(base: u64, records: &[(i64, Vec<u8>, Vec<u8>)], compression: Compression) -> Bytes {
        let mut b = BatchBuilder::new(base, 0);
        for (ts, h, body) in records {
            b.push(*ts, h, body);
        }
        b.finish(compression).1
    }

    proptest! {
        #[test]
        fn round_trip(base in 0u64..1 << 40,
                      records in proptest::collection::vec(
                          (0i64..1000, proptest::collection::vec(any::<u8>(), 0..20),
                           proptest::collection::vec(any::<u8>(), 0..300)), 1..20),
                      zstd in any::<bool>()) {
            let compression = if zstd { Compression::Zstd } else { Compression::None };
            let bytes = build(base, &records, compression);
            let batch = Batch::split_from(&bytes).unwrap();
            let read = batch.records().unwrap();
            prop_assert_eq!(read.len(), records.len());
            let mut last = i64::MIN;
            for (i, (r, (_, h, body))) in read.iter().zip(&records).enumerate() {
                prop_assert_eq!(r.offset, base + i as u64);
                prop_assert_eq!(&r.header[..], &h[..]);
                prop_assert_eq!(&r.body[..], &body[..]);
                prop_assert!(r.timestamp_ms >= last);
                last = r.timestamp_ms;
            }
        }

        /// A batch built for a vectored write is, piece by piece, the contiguous batch.
        #[test]
        fn vectored_pieces_equal_the_contiguous_batch(
            base in 0u64..1 << 40,
            records in proptest::collection::vec(
                (0i64..1000, proptest::collection::vec(any::<u8>(), 0..20),
                 prop_oneof![0usize..300, SHARED_BODY_MIN_BYTES - 1..SHARED_BODY_MIN_BYTES + 9000],
                 any::<u8>()), 1..12)) {
            let mut contiguous = BatchBuilder::new(base, 0);
            let mut vectored = BatchBuilder::vectored(base, 0);
            for (ts, h, len, fill) in &records {
                let body = Bytes::from(vec![*fill; *len]);
                contiguous.push(*ts, h, &body);
                vectored.push_shared(*ts, h, &body);
            }
            prop_assert_eq!(vectored.records_bytes(), contiguous.records_bytes());
            let (expected_header, expected) = contiguous.finish(Compression::None);
            let (header, pieces) = vectored.finish_pieces();
            prop_assert_eq!(header, expected_header);
            prop_assert_eq!(pieces.concat(), expected.to_vec());
        }

        #[test]
        fn cut_anywhere_is_incomplete(cut in 0usize..400) {
            let bytes = build(7, &[(1, vec![1, 2], vec![3; 300])], Compression::None);
            let cut = cut.min(bytes.len() - 1);
            let err = Batch::split_from(&bytes.slice(..cut)).unwrap_err();
            let is_incomplete = matches!(err, BatchError::Incomplete { .. });
            prop_assert!(is_incomplete);
        }

        #[test]
        fn any_flipped_byte_is_detected(at in 0usize..380, bit in 0u8..8) {
            let bytes = build(7, &[(1, vec![1, 2], vec![3; 300])], Compression::None);
            let at = at % bytes.len();
            let mut damaged = bytes.to_vec();
            damaged[at] ^= 1 << bit;
            let damaged = Bytes::from(damaged);
            let outcome = Batch::split_from(&damaged).and_then(|b| b.records().map(|_| ()));
            prop_assert!(outcome.is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let bytes = Bytes::from(bytes);
            let _ = Batch::split_from(&bytes).and_then(|b| b.records());
        }
    }

    #[test]
    fn in_memory_batches_carry_no_crc_and_read_without_one() {
        let mut b = BatchBuilder::new(5, 0).in_memory();
        b.push(1, b"h", b"body");
        let (header, bytes) = b.finish(Compression::None);
        assert_eq!(header.crc, 0);
        let batch = Batch::split_from(&bytes).unwrap();
        assert!(matches!(batch.records(), Err(BatchError::CrcMismatch { .. })));
        let records = batch.in_memory().records().unwrap();
        assert_eq!((records[0].offset, &records[0].body[..]), (5, &b"body"[..]));
    }

    #[test]
    fn vectored_batches_without_checksum_carry_no_crc() {
        let large = Bytes::from(vec![7u8; SHARED_BODY_MIN_BYTES]);
        for checked in [true, false] {
            let mut b = BatchBuilder::vectored(9, 0);
            if !checked {
                b = b.without_checksum();
            }
            b.push_shared(1, b"h", &large);
            b.push_shared(2, b"h", &Bytes::from_static(b"small"));
            let (header, pieces) = b.finish_pieces();
            assert_eq!(header.crc != 0, checked);
            let bytes = Bytes::from(pieces.concat());
            let batch = Batch::split_from(&bytes).unwrap();
            assert_eq!(batch.clone().records().is_ok(), checked, "a read checks the crc");
            let records = batch.in_memory().records().unwrap();
            assert_eq!((records[0].body.len(), &records[1].body[..]), (SHARED_BODY_MIN_BYTES, &b"small"[..]));
        }
    }

    /// Found by `tools/fuzz` (batch_decode): attribute bits above the codec were ignored,
    /// so a batch the format calls invalid was read as valid.
    #[test]
    fn reserved_attribute_bits_are_refused() {
        let bytes: [u8; 64] = [
            0x57, 0x52, 0x4e, 0x42, 0x01, 0x00, 0x0e, 0xe2, 0xdc, 0x59, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
            0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let reason = "reserved attribute bits set";
        assert_eq!(BatchHeader::parse(&bytes), Err(BatchError::Malformed { reason }));
        let mut cleared = bytes;
        cleared[11] = 0;
        let crc = crc32fast::hash(&cleared[CRC_COVERED_FROM..]);
        cleared[CRC_POSITION..CRC_COVERED_FROM].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Batch::split_from(&Bytes::copy_from_slice(&cleared)).unwrap().records().unwrap().len(), 1);
    }

    /// A first timestamp near `i64::MAX` plus a record's delta overflowed (a panic with
    /// overflow checks, a wrapped timestamp without); now it is a malformed batch.
    #[test]
    fn record_timestamp_overflow_is_malformed() {
        let bytes: [u8; 64] = [
            0x57, 0x52, 0x4e, 0x42, 0x01, 0x00, 0x33, 0x59, 0x82, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
            0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let batch = Batch::split_from(&Bytes::copy_from_slice(&bytes)).unwrap();
        let reason = "record timestamp after the batch's last";
        assert_eq!(batch.records(), Err(BatchError::Malformed { reason }));
    }

    #[test]
    fn zstd_shrinks_repetitive_records() {
        let records: Vec<_> = (0..100).map(|i| (i, vec![], vec![b'a'; 1000])).collect();
        let plain = build(0, &records, Compression::None);
        let packed = build(0, &records, Compression::Zstd);
        assert!(packed.len() * 10 < plain.len());
        let header = BatchHeader::parse(&packed).unwrap();
        assert_eq!(header.compression, Compression::Zstd);
        assert_eq!(Batch::split_from(&packed).unwrap().records().unwrap().len(), 100);
    }

    #[test]
    fn timestamps_never_go_backwards() {
        let bytes = build(0, &[(10, vec![], vec![]), (5, vec![], vec![])], Compression::None);
        let records = Batch::split_from(&bytes).unwrap().records().unwrap();
        assert_eq!(records[1].timestamp_ms, 10);
    }
}
