//! Read-ahead, shared by both queue kinds: a cursor into the queue's log and the records
//! read past it but not handed out yet. A classic queue has one for the whole queue; a
//! stream has one per consumer.
//!
//! Each refill reads up to [`READ_AHEAD_BYTES`] from the cursor, so reads from the log are
//! batched however slowly messages are handed out. It uses the log's public reading API
//! only; it knows no consumer, frame or socket. What happened on a refill (records skipped
//! by retention, a damaged batch) is returned for the caller to report in its own terms.

use std::collections::VecDeque;
use std::ops::Range;

use crate::limits::READ_AHEAD_BYTES;
use crate::log::{Error, ForgetMark, Log, Record};

/// A cursor into a log and the records read ahead of the reader.
///
/// Invariant: every buffered record's offset is below `cursor`, and they are in offset
/// order; `buffered_bytes` is the sum of their body lengths.
#[derive(Debug)]
pub(super) struct ReadAhead {
    /// Offset of the next record to read from the log (past `buffered`).
    cursor: u64,
    /// Read, not handed out yet.
    buffered: VecDeque<Record>,
    /// The body bytes of `buffered`.
    buffered_bytes: u64,
    /// How far this reader has handed back the log's pages it read past.
    forgotten: ForgetMark,
}

/// What one [`ReadAhead::refill`] did.
#[must_use]
#[derive(Debug)]
pub(super) struct Refill {
    /// Offsets retention removed before they were read; the cursor moved past them.
    pub(super) removed: Option<Range<u64>>,
    /// What the read itself gave.
    pub(super) read: Read,
}

/// The outcome of reading at the cursor.
#[derive(Debug)]
pub(super) enum Read {
    /// Records were read (possibly none, if the log had nothing committed to give).
    Records,
    /// The cursor is at the log's end: nothing to read yet.
    AtEnd,
    /// The read failed for a reason that is not damage (a segment that could not be
    /// mapped or opened: out of memory maps, descriptors or memory). Nothing is skipped:
    /// the cursor stays, and the read is tried again later.
    Failed {
        /// Why it could not be read.
        error: Error,
    },
    /// The batch at `offset` could not be read; the cursor stepped past it to `end`, where
    /// intact data resumes, so corrupt data is never delivered. Intact batches before it
    /// were read as usual.
    Unreadable {
        /// The first offset skipped.
        offset: u64,
        /// One past the last offset skipped: `end - offset` records were lost.
        end: u64,
        /// Why it could not be read.
        error: Error,
    },
}

impl ReadAhead {
    /// Nothing read yet; reading starts at `cursor`.
    pub(super) fn new(cursor: u64) -> ReadAhead {
        ReadAhead { cursor, buffered: VecDeque::new(), buffered_bytes: 0, forgotten: ForgetMark::default() }
    }

    /// Offset of the next record to read from the log.
    #[inline]
    pub(super) fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The lowest offset not handed out yet: the first buffered record's, or the cursor.
    #[inline]
    pub(super) fn position(&self) -> u64 {
        self.buffered.front().map_or(self.cursor, |r| r.offset)
    }

    /// Records read and not handed out.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.buffered.len()
    }

    /// The body bytes of the records read and not handed out.
    #[inline]
    pub(super) fn bytes(&self) -> u64 {
        self.buffered_bytes
    }

    /// Whether nothing read is left to hand out.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.buffered.is_empty()
    }

    /// The first buffered record.
    #[inline]
    pub(super) fn front(&self) -> Option<&Record> {
        self.buffered.front()
    }

    /// Takes the first buffered record (never reads the log).
    #[inline]
    pub(super) fn pop_front(&mut self) -> Option<Record> {
        let record = self.buffered.pop_front()?;
        self.buffered_bytes -= record.body.len() as u64;
        Some(record)
    }

    /// Puts back a record just taken with [`ReadAhead::pop_front`] (it could not be handed
    /// out).
    #[inline]
    pub(super) fn push_front(&mut self, record: Record) {
        debug_assert!(self.buffered.front().is_none_or(|next| record.offset < next.offset));
        self.buffered_bytes += record.body.len() as u64;
        self.buffered.push_front(record);
    }

    /// Drops the buffered records for which `keep` is false.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Record) -> bool) {
        let mut dropped = 0;
        self.buffered.retain(|record| {
            let kept = keep(record);
            if !kept {
                dropped += record.body.len() as u64;
            }
            kept
        });
        self.buffered_bytes -= dropped;
    }

    /// Buffered records, in offset order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Record> {
        self.buffered.iter()
    }

    /// Drops everything buffered and moves the cursor to `offset` (a purge).
    pub(super) fn skip_to(&mut self, offset: u64) {
        self.buffered.clear();
        self.buffered_bytes = 0;
        self.cursor = offset;
    }

    /// Reads up to [`READ_AHEAD_BYTES`] more from the cursor. A cursor below the log's first
    /// offset (retention removed what it had not read) first moves up to it.
    pub(super) fn refill(&mut self, log: &Log) -> Refill {
        let first = log.first_offset();
        let removed = (self.cursor < first).then(|| {
            let removed = self.cursor..first;
            self.cursor = first;
            removed
        });
        if self.cursor >= log.next_offset() {
            return Refill { removed, read: Read::AtEnd };
        }
        // Everything below the cursor has been read.
        log.forget_behind(self.cursor, &mut self.forgotten);
        let read = match log.read_records(self.cursor, READ_AHEAD_BYTES) {
            Ok(records) => {
                if let Some(last) = records.last() {
                    assert!(last.offset >= self.cursor, "the log reads forward from the cursor");
                    self.cursor = last.offset + 1;
                }
                self.extend(records);
                Read::Records
            }
            // Only damage is stepped over; a failure of the system is not the data's fault.
            Err(error @ Error::Io { .. }) => Read::Failed { error },
            Err(error) => self.salvage(log, error),
        };
        Refill { removed, read }
    }

    fn extend(&mut self, records: impl IntoIterator<Item = Record>) {
        for record in records {
            self.buffered_bytes += record.body.len() as u64;
            self.buffered.push_back(record);
        }
    }

    /// After a read failed somewhere in its window: reads again one batch at a time from
    /// the cursor, keeping every intact batch, and steps past exactly the damaged batch
    /// (to where [`Log::next_intact_offset`] finds intact data again). Only reads that
    /// failed come here, so the intact path does no extra work.
    #[cold]
    fn salvage(&mut self, log: &Log, mut error: Error) -> Read {
        let mut bytes_read = 0;
        while bytes_read < READ_AHEAD_BYTES && self.cursor < log.next_offset() {
            // At least one batch: the one holding the cursor.
            let batch = match log.read(self.cursor, 0) {
                Ok(batches) => batches.into_iter().next(),
                Err(error @ Error::Io { .. }) => return Read::Failed { error },
                Err(read_error) => {
                    error = read_error;
                    break;
                }
            };
            let Some(batch) = batch else { return Read::Records };
            match batch.records() {
                Ok(records) => {
                    bytes_read += batch.as_bytes().len();
                    let cursor = self.cursor;
                    self.extend(records.into_iter().filter(|r| r.offset >= cursor));
                    self.cursor = batch.header().next_offset().max(cursor + 1);
                }
                Err(source) => {
                    error = Error::CorruptBatch { base_offset: batch.header().base_offset, source };
                    break;
                }
            }
        }
        if bytes_read >= READ_AHEAD_BYTES || self.cursor >= log.next_offset() {
            return Read::Records;
        }
        let offset = self.cursor;
        let end = log.next_intact_offset(offset);
        assert!(end > offset, "the cursor moves past damage");
        self.cursor = end;
        Read::Unreadable { offset, end, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogOptions, RecordInput, Storage};

    async fn log_with(count: usize) -> Log {
        let log = Log::open(LogOptions::new(Storage::Memory)).await.expect("open");
        let records = (0..count).map(|i| RecordInput::body(format!("m{i}"))).collect();
        log.append(records).await.expect("append");
        log
    }

    #[tokio::test]
    async fn refill_reads_from_the_cursor_in_order() {
        let log = log_with(5).await;
        let mut read_ahead = ReadAhead::new(2);
        let refill = read_ahead.refill(&log);
        assert!(refill.removed.is_none());
        assert!(matches!(refill.read, Read::Records));
        assert_eq!(read_ahead.cursor(), 5);
        assert_eq!(read_ahead.position(), 2);
        let offsets: Vec<u64> = read_ahead.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [2, 3, 4]);
        assert_eq!(read_ahead.bytes(), 6, "the bodies m2, m3, m4");
        assert_eq!(read_ahead.pop_front().map(|r| r.offset), Some(2));
        assert_eq!(read_ahead.position(), 3);
        assert_eq!(read_ahead.len(), 2);
        assert_eq!(read_ahead.bytes(), 4);
        read_ahead.retain(|r| r.offset != 3);
        assert_eq!(read_ahead.bytes(), 2);
    }

    #[tokio::test]
    async fn refill_at_the_end_reads_nothing() {
        let log = log_with(3).await;
        let mut read_ahead = ReadAhead::new(3);
        assert!(matches!(read_ahead.refill(&log).read, Read::AtEnd));
        assert!(read_ahead.is_empty());
        assert_eq!(read_ahead.position(), 3);
    }

    #[tokio::test]
    async fn pushed_back_record_comes_out_first() {
        let log = log_with(2).await;
        let mut read_ahead = ReadAhead::new(0);
        let _ = read_ahead.refill(&log);
        let record = read_ahead.pop_front().expect("a record");
        read_ahead.push_front(record);
        assert_eq!(read_ahead.front().map(|r| r.offset), Some(0));
        assert_eq!(read_ahead.len(), 2);
    }

    #[tokio::test]
    async fn skip_to_drops_what_was_read() {
        let log = log_with(4).await;
        let mut read_ahead = ReadAhead::new(0);
        let _ = read_ahead.refill(&log);
        read_ahead.skip_to(log.next_offset());
        assert!(read_ahead.is_empty());
        assert_eq!(read_ahead.bytes(), 0);
        assert_eq!(read_ahead.position(), 4);
        assert!(matches!(read_ahead.refill(&log).read, Read::AtEnd));
    }

    /// A segment that cannot be mapped (here: its file is gone, as when the system is out
    /// of maps or descriptors) is not damage: nothing is skipped, and the cursor stays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_failed_read_skips_nothing() {
        use crate::log::storage::threaded::ThreadedIo;
        let temp = tempfile::tempdir().expect("temp dir");
        let storage = Storage::Disk {
            dir: temp.path().to_path_buf(),
            fsync: crate::log::FsyncPolicy::Never,
            io: std::sync::Arc::new(ThreadedIo),
        };
        let log = Log::open(LogOptions::new(storage)).await.expect("open");
        log.append((0..3).map(|i| RecordInput::body(format!("m{i}"))).collect()).await.expect("append");
        for entry in std::fs::read_dir(temp.path()).expect("list") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "seg") {
                std::fs::remove_file(path).expect("remove the segment file");
            }
        }
        let mut read_ahead = ReadAhead::new(0);
        assert!(matches!(read_ahead.refill(&log).read, Read::Failed { .. }));
        assert_eq!(read_ahead.cursor(), 0, "nothing skipped");
        assert!(read_ahead.is_empty());
    }
}
