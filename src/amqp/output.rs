//! The frame writer of one connection: methods, content headers and bodies appended to the
//! connection's output buffer, with large bodies written from where they are stored (a
//! slice of a segment map or of the read buffer) rather than copied. Owns no socket:
//! `server::amqp_listener` takes what is queued here.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};

use crate::limits::INLINE_BODY_MAX;
use crate::wire::amqp::{
    encode_body_frames, encode_method_frame, encode_raw_header_frame, ContentHeader, FieldValue, FrameType,
    Method, ShortStr, FRAME_END, FRAME_OVERHEAD,
};

/// A connection's output, borrowed: bytes to send, after the chunks already cut off them.
pub(super) struct Output<'a> {
    /// Bytes to send after `chunks`.
    pub(super) bytes: &'a mut BytesMut,
    /// Frames already cut off `bytes`, interleaved with large bodies sent without a copy.
    pub(super) chunks: &'a mut Vec<Bytes>,
}

impl Output<'_> {
    /// Appends a method frame.
    pub(super) fn method(&mut self, channel: u16, method: &Method) {
        encode_method_frame(self.bytes, channel, method);
    }

    /// Appends a method with content: method, header and body frames.
    pub(super) fn content(
        &mut self,
        channel: u16,
        method: &Method,
        header: &ContentHeader,
        body: &Bytes,
        frame_max: u32,
    ) {
        encode_method_frame(self.bytes, channel, method);
        self.content_frames(channel, header.raw(), body, frame_max);
    }

    /// The header and body frames of a content whose method frame was just queued.
    pub(super) fn content_frames(&mut self, channel: u16, header: &[u8], body: &Bytes, frame_max: u32) {
        encode_raw_header_frame(self.bytes, channel, header);
        self.body_frames(channel, body, frame_max);
    }

    /// The header frame of a stream delivery: the stored header with `x-stream-offset` =
    /// `offset` added to its headers table, written straight into the output buffer.
    pub(super) fn stream_header_frame(&mut self, channel: u16, stored: &Bytes, offset: u64) {
        let key = ShortStr::from_static("x-stream-offset");
        let value = FieldValue::I64(offset as i64);
        let out = &mut *self.bytes;
        let start = out.len();
        out.put_u8(FrameType::Header as u8);
        out.put_u16(channel);
        out.put_u32(0);
        let payload_at = out.len();
        if ContentHeader::write_with_header_entry(stored, &key, &value, out) {
            let size = (out.len() - payload_at) as u32;
            if let Some(field) = out.get_mut(payload_at - 4..payload_at) {
                field.copy_from_slice(&size.to_be_bytes());
            }
            out.put_u8(FRAME_END);
            return;
        }
        out.truncate(start);
        // The general path: decode, insert, re-encode. A stored header was validated when it
        // was published, so this does not fail; if it did, the header goes out as stored.
        match ContentHeader::trusted(stored.clone()).and_then(|h| h.with_header_entry(&key, &value)) {
            Ok(header) => encode_raw_header_frame(out, channel, header.raw()),
            Err(error) => {
                tracing::error!(%error, "stored content header is damaged; delivered without x-stream-offset");
                encode_raw_header_frame(out, channel, stored);
            }
        }
    }

    /// The body frames of a content whose header frame was just queued.
    pub(super) fn body_frames(&mut self, channel: u16, body: &Bytes, frame_max: u32) {
        let piece_max = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
        if body.len() <= INLINE_BODY_MAX.min(piece_max) {
            // A small body costs less to copy than to reference: one frame, copied.
            encode_body_frames(self.bytes, channel, body, frame_max);
            return;
        }
        let mut at = 0;
        while at < body.len() {
            let end = (at + piece_max).min(body.len());
            self.bytes.put_u8(FrameType::Body as u8);
            self.bytes.put_u16(channel);
            self.bytes.put_u32((end - at) as u32);
            self.chunks.push(self.bytes.split().freeze());
            self.chunks.push(body.slice(at..end));
            self.bytes.put_u8(FRAME_END);
            at = end;
        }
    }
}

/// A short string of `bytes`, cut to [`ShortStr::MAX_LEN`] octets.
pub(super) fn short(bytes: &[u8]) -> ShortStr {
    let cut = bytes.get(..bytes.len().min(ShortStr::MAX_LEN)).unwrap_or_default();
    ShortStr::from_bytes(Bytes::copy_from_slice(cut)).unwrap_or_default()
}

/// A short string sharing `bytes` (no copy); stored names are at most
/// [`ShortStr::MAX_LEN`] octets, longer ones are cut as by [`short`].
pub(super) fn shared(bytes: &Bytes) -> ShortStr {
    ShortStr::from_bytes(bytes.clone()).unwrap_or_else(|_| short(bytes))
}

/// A short string of a reply or reason text cut to [`ShortStr::MAX_LEN`] octets; a text
/// whose cut would split a character is sent empty.
pub(super) fn short_text(text: &str) -> ShortStr {
    ShortStr::try_from(text.get(..text.len().min(ShortStr::MAX_LEN)).unwrap_or_default()).unwrap_or_default()
}
