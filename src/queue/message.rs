//! A message as a queue stores it in its log: the record's header holds what delivery needs
//! besides the body (flags, expiry, priority, exchange, routing key and the content header's
//! wire bytes, kept as they arrived so delivery never re-encodes them); the body is the
//! record's body.
//!
//! Record header layout (little-endian): flags u8 (bit 0: persistent), priority u8,
//! expires-at i64 (ms since the epoch, 0 = never), exchange length u8 + bytes, routing key
//! length u8 + bytes, then the content header payload to the end.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};

use std::time::{Duration, Instant};

use crate::limits::{MESSAGE_ARENA_BYTES, MESSAGE_ARENA_BYTES_MIN, MESSAGE_ARENA_FAST_FILL_MS};
use crate::log::{Record, RecordInput};

const FLAG_PERSISTENT: u8 = 1;
const FIXED_BYTES: usize = 1 + 1 + 8;

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Survives a broker restart when its queue is durable and storage is on disc.
    pub persistent: bool,
    /// Priority 0-255 (used by priority queues).
    pub priority: u8,
    /// Absolute expiry, ms since the epoch, if any.
    pub expires_at_ms: Option<i64>,
    /// The exchange it was published to.
    pub exchange: Bytes,
    /// Its routing key.
    pub routing_key: Bytes,
    /// The content header frame payload, byte-exact.
    pub content_header: Bytes,
    /// The body.
    pub body: Bytes,
}

/// Where a publisher's record headers are written: many headers share one allocation, sized
/// to the publisher's pace. An arena filled within [`MESSAGE_ARENA_FAST_FILL_MS`] is followed
/// by one twice its size (up to [`MESSAGE_ARENA_BYTES`]), any other by one half its size
/// (down to [`MESSAGE_ARENA_BYTES_MIN`]): a fast publisher allocates seldom, and a thousand
/// slow ones do not each hold a large buffer they fill over minutes.
#[derive(Debug)]
pub struct RecordArena {
    buffer: BytesMut,
    next_bytes: usize,
    started: Instant,
}

impl Default for RecordArena {
    fn default() -> RecordArena {
        RecordArena { buffer: BytesMut::new(), next_bytes: MESSAGE_ARENA_BYTES_MIN, started: Instant::now() }
    }
}

impl RecordArena {
    /// The buffer, with room for `size` more bytes.
    fn room_for(&mut self, size: usize) -> &mut BytesMut {
        if self.buffer.capacity() - self.buffer.len() < size {
            let now = Instant::now();
            let fast = now.duration_since(self.started) < Duration::from_millis(MESSAGE_ARENA_FAST_FILL_MS);
            self.next_bytes = if fast {
                (self.next_bytes * 2).min(MESSAGE_ARENA_BYTES)
            } else {
                (self.next_bytes / 2).max(MESSAGE_ARENA_BYTES_MIN)
            };
            self.started = now;
            self.buffer = BytesMut::with_capacity(self.next_bytes.max(size));
        }
        &mut self.buffer
    }

    /// The size of the buffer in use, unless one header needed more.
    pub fn size(&self) -> usize {
        self.next_bytes
    }
}

impl Message {
    /// The log record holding this message.
    pub fn to_record(&self) -> RecordInput {
        self.to_record_in(&mut RecordArena::default())
    }

    /// As [`Message::to_record`], writing the record's header into `arena` and splitting it
    /// off: many records share one allocation.
    pub fn to_record_in(&self, arena: &mut RecordArena) -> RecordInput {
        let size = FIXED_BYTES + 2 + self.exchange.len() + self.routing_key.len() + self.content_header.len();
        let header = arena.room_for(size);
        header.put_u8(if self.persistent { FLAG_PERSISTENT } else { 0 });
        header.put_u8(self.priority);
        header.put_i64_le(self.expires_at_ms.unwrap_or(0));
        header.put_u8(self.exchange.len().min(255) as u8);
        header.put_slice(self.exchange.get(..self.exchange.len().min(255)).unwrap_or_default());
        header.put_u8(self.routing_key.len().min(255) as u8);
        header.put_slice(self.routing_key.get(..self.routing_key.len().min(255)).unwrap_or_default());
        header.put_slice(&self.content_header);
        RecordInput { timestamp_ms: None, header: header.split().freeze(), body: self.body.clone() }
    }

    /// The message stored in `record`, or `None` if the header is malformed. The exchange,
    /// routing key and content header are slices of the record: nothing is copied.
    pub fn from_record(record: &Record) -> Option<Message> {
        let header = &record.header;
        let view = MessageView::parse(header)?;
        Some(Message {
            persistent: view.persistent,
            priority: view.priority,
            expires_at_ms: view.expires_at_ms,
            exchange: header.slice_ref(view.exchange),
            routing_key: header.slice_ref(view.routing_key),
            content_header: header.slice_ref(view.content_header),
            body: record.body.clone(),
        })
    }
}

/// A stored message's header fields, borrowed from the record (delivery reads them without
/// taking shared handles on the record's bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<'a> {
    /// Survives a broker restart.
    pub persistent: bool,
    /// Priority.
    pub priority: u8,
    /// Absolute expiry, ms since the epoch, if any.
    pub expires_at_ms: Option<i64>,
    /// The exchange it was published to.
    pub exchange: &'a [u8],
    /// Its routing key.
    pub routing_key: &'a [u8],
    /// The content header frame payload.
    pub content_header: &'a [u8],
}

impl<'a> MessageView<'a> {
    /// Reads a record header, or `None` if it is malformed.
    pub fn parse(header: &'a [u8]) -> Option<MessageView<'a>> {
        let flags = *header.first()?;
        let priority = *header.get(1)?;
        let exchange_len = usize::from(*header.get(10)?);
        let exchange_end = 11 + exchange_len;
        let routing_len = usize::from(*header.get(exchange_end)?);
        let routing_start = exchange_end + 1;
        let routing_end = routing_start + routing_len;
        Some(MessageView {
            persistent: flags & FLAG_PERSISTENT != 0,
            priority,
            expires_at_ms: expires_at_ms(header),
            exchange: header.get(11..exchange_end)?,
            routing_key: header.get(routing_start..routing_end)?,
            content_header: header.get(routing_end..)?,
        })
    }
}

/// The absolute expiry stored in a record's header, read without decoding the rest.
pub fn expires_at_ms(header: &[u8]) -> Option<i64> {
    let expires = i64::from_le_bytes(header.get(2..10)?.try_into().ok()?);
    (expires != 0).then_some(expires)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn small_message() -> Message {
        Message {
            persistent: false,
            priority: 0,
            expires_at_ms: None,
            exchange: Bytes::from_static(b"x"),
            routing_key: Bytes::from_static(b"k"),
            content_header: Bytes::from_static(&[0; 40]),
            body: Bytes::from_static(b"body"),
        }
    }

    #[test]
    fn a_fast_publisher_gets_larger_header_arenas_and_a_slow_one_smaller() {
        let message = small_message();
        let mut arena = RecordArena::default();
        for _ in 0..10_000 {
            let record = message.to_record_in(&mut arena);
            assert_eq!(
                Message::from_record(&Record {
                    offset: 0,
                    timestamp_ms: 0,
                    header: record.header,
                    body: record.body
                }),
                Some(message.clone())
            );
        }
        assert_eq!(arena.size(), MESSAGE_ARENA_BYTES, "filled at once: the largest arena");
        for _ in 0..8 {
            // Fill the arena slowly.
            while arena.buffer.capacity() - arena.buffer.len() >= 60 {
                message.to_record_in(&mut arena);
            }
            std::thread::sleep(Duration::from_millis(MESSAGE_ARENA_FAST_FILL_MS + 5));
            message.to_record_in(&mut arena);
        }
        assert_eq!(arena.size(), MESSAGE_ARENA_BYTES_MIN, "filled slowly: the smallest arena");
    }

    #[test]
    fn round_trip() {
        let message = Message {
            persistent: true,
            priority: 7,
            expires_at_ms: Some(1234),
            exchange: Bytes::from_static(b"amq.topic"),
            routing_key: Bytes::from_static(b"a.b.c"),
            content_header: Bytes::from_static(b"\x00\x3c\x00\x00raw"),
            body: Bytes::from_static(b"hello"),
        };
        let input = message.to_record();
        let record = Record { offset: 0, timestamp_ms: 0, header: input.header, body: input.body };
        assert_eq!(expires_at_ms(&record.header), Some(1234));
        assert_eq!(Message::from_record(&record).unwrap(), message);
    }
}
