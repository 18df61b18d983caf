//! Frames and the protocol header: splitting complete frames off a read
//! buffer, and writing method, content header, body and heartbeat frames.
//!
//! A frame is `type: u8, channel: u16, size: u32, payload[size], 0xCE`.
//! `frame_max` counts the whole frame (payload plus 8 octets of framing);
//! 0 means "no limit". Incomplete input is `Ok(None)`; frame size and type
//! are checked as soon as the 7-octet header is available, so an oversized
//! frame is rejected before it is buffered.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::DecodeError;
use super::method::Method;
use super::properties::ContentHeader;

/// The protocol header a 0-9-1 client sends first.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";
/// Octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;
/// Octets before the payload: type, channel, size.
pub const FRAME_HEADER_SIZE: usize = 7;
/// Octets of framing around a payload (header plus frame end).
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_SIZE + 1;
/// Smallest frame-max a peer may negotiate; usable before tuning.
pub const FRAME_MIN_SIZE: u32 = 4096;

/// Result of checking the protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolHeader {
    /// The buffer starts with [`PROTOCOL_HEADER`]; consume 8 octets.
    Match,
    /// The octets so far are a prefix of the header; read more.
    Incomplete,
    /// The peer sent something else. A server replies with
    /// [`PROTOCOL_HEADER`] and closes the connection.
    Mismatch {
        /// The first (up to) 8 octets received, zero-padded.
        received: [u8; 8],
        /// How many octets of `received` are real.
        len: usize,
    },
}

/// Checks whether `buf` starts with the AMQP 0-9-1 protocol header.
/// A mismatch is reported as soon as one octet differs.
pub fn check_protocol_header(buf: &[u8]) -> ProtocolHeader {
    let len = buf.len().min(PROTOCOL_HEADER.len());
    let head = buf.get(..len).unwrap_or_default();
    if head != PROTOCOL_HEADER.get(..len).unwrap_or_default() {
        let mut received = [0u8; 8];
        if let Some(dst) = received.get_mut(..len) {
            dst.copy_from_slice(head);
        }
        ProtocolHeader::Mismatch { received, len }
    } else if len < PROTOCOL_HEADER.len() {
        ProtocolHeader::Incomplete
    } else {
        ProtocolHeader::Match
    }
}

/// Frame type octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// A method frame (1).
    Method = 1,
    /// A content header frame (2).
    Header = 2,
    /// A content body frame (3).
    Body = 3,
    /// A heartbeat frame (8).
    Heartbeat = 8,
}

impl FrameType {
    /// Maps the type octet, or reports [`DecodeError::UnknownFrameType`].
    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        match v {
            1 => Ok(Self::Method),
            2 => Ok(Self::Header),
            3 => Ok(Self::Body),
            8 => Ok(Self::Heartbeat),
            other => Err(DecodeError::UnknownFrameType(other)),
        }
    }
}

/// A complete frame whose payload has not been interpreted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// Frame type.
    pub frame_type: FrameType,
    /// Channel number.
    pub channel: u16,
    /// Payload, a zero-copy view of the read buffer.
    pub payload: Bytes,
}

impl RawFrame {
    /// Interprets the payload according to the frame type.
    pub fn parse(self) -> Result<Frame, DecodeError> {
        let channel = self.channel;
        Ok(match self.frame_type {
            FrameType::Method => Frame::Method { channel, method: Method::decode(&self.payload)? },
            FrameType::Header => Frame::Header { channel, header: ContentHeader::decode(self.payload)? },
            FrameType::Body => Frame::Body { channel, payload: self.payload },
            FrameType::Heartbeat if channel == 0 => Frame::Heartbeat,
            FrameType::Heartbeat => return Err(DecodeError::HeartbeatOnChannel(channel)),
        })
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A method frame.
    Method {
        /// Channel number (0 for the `connection` class).
        channel: u16,
        /// The method.
        method: Method,
    },
    /// A content header frame.
    Header {
        /// Channel number.
        channel: u16,
        /// The header, keeping its raw payload.
        header: ContentHeader,
    },
    /// A content body frame.
    Body {
        /// Channel number.
        channel: u16,
        /// Body octets, a zero-copy view of the read buffer.
        payload: Bytes,
    },
    /// A heartbeat (always channel 0).
    Heartbeat,
}

impl Frame {
    /// The frame's channel number.
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. } | Frame::Header { channel, .. } | Frame::Body { channel, .. } => {
                *channel
            }
            Frame::Heartbeat => 0,
        }
    }

    /// Encoded size of the whole frame.
    pub fn encoded_len(&self) -> usize {
        FRAME_OVERHEAD
            + match self {
                Frame::Method { method, .. } => method.encoded_len(),
                Frame::Header { header, .. } => header.encoded_len(),
                Frame::Body { payload, .. } => payload.len(),
                Frame::Heartbeat => 0,
            }
    }

    /// Appends the frame to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            Frame::Method { channel, method } => encode_method_frame(buf, *channel, method),
            Frame::Header { channel, header } => encode_header_frame(buf, *channel, header),
            Frame::Body { channel, payload } => {
                put_frame(buf, FrameType::Body, *channel, payload);
            }
            Frame::Heartbeat => encode_heartbeat_frame(buf),
        }
    }
}

/// Checks the first frame in `buf` without consuming it. Returns its total
/// length (framing included) once it is complete, `Ok(None)` while more
/// octets are needed, or an error if the frame type, size or frame end is
/// invalid.
pub fn peek_frame(buf: &[u8], frame_max: u32) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..FRAME_HEADER_SIZE) else {
        // An unknown type is reported as early as possible.
        if let Some(&t) = buf.first() {
            FrameType::from_u8(t)?;
        }
        return Ok(None);
    };
    let [t, _, _, s0, s1, s2, s3] = <[u8; FRAME_HEADER_SIZE]>::try_from(header)
        .map_err(|_| DecodeError::Truncated { needed: FRAME_HEADER_SIZE, available: buf.len() })?;
    FrameType::from_u8(t)?;
    let size = u32::from_be_bytes([s0, s1, s2, s3]);
    let total = u64::from(size) + FRAME_OVERHEAD as u64;
    if frame_max != 0 && total > u64::from(frame_max) {
        return Err(DecodeError::FrameTooLarge { size: total, max: frame_max });
    }
    let total =
        usize::try_from(total).map_err(|_| DecodeError::FrameTooLarge { size: total, max: frame_max })?;
    match buf.get(total - 1) {
        None => Ok(None),
        Some(&FRAME_END) => Ok(Some(total)),
        Some(&found) => Err(DecodeError::BadFrameEnd { found }),
    }
}

/// Splits the first complete frame off `buf` without interpreting its
/// payload. The payload is a zero-copy view of `buf`'s allocation.
///
/// On `Ok(None)` and on errors `buf` is left untouched; after an error the
/// connection must be closed, since the stream cannot be resynchronised.
pub fn decode_raw_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<RawFrame>, DecodeError> {
    let Some(total) = peek_frame(buf, frame_max)? else {
        return Ok(None);
    };
    let frame_type = FrameType::from_u8(buf.first().copied().unwrap_or_default())?;
    let channel = u16::from_be_bytes([
        buf.get(1).copied().unwrap_or_default(),
        buf.get(2).copied().unwrap_or_default(),
    ]);
    // Framing is dropped from the split-off part before it is frozen: one shared handle on
    // the read buffer per frame, no copy.
    let mut frame = buf.split_to(total);
    bytes::Buf::advance(&mut frame, FRAME_HEADER_SIZE);
    frame.truncate(total - FRAME_OVERHEAD);
    Ok(Some(RawFrame { frame_type, channel, payload: frame.freeze() }))
}

/// Splits the first complete frame off `buf` and decodes it. Body payloads,
/// raw content headers and the string fields of methods are zero-copy views
/// of `buf`'s allocation.
///
/// Returns `Ok(None)` (leaving `buf` untouched) until a whole frame is
/// buffered. A frame whose payload is malformed is consumed before the
/// error is returned; the connection must then be closed.
pub fn decode_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, DecodeError> {
    match decode_raw_frame(buf, frame_max)? {
        Some(raw) => raw.parse().map(Some),
        None => Ok(None),
    }
}

fn put_frame(buf: &mut BytesMut, frame_type: FrameType, channel: u16, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    buf.reserve(payload.len() + FRAME_OVERHEAD);
    buf.put_u8(frame_type as u8);
    buf.put_u16(channel);
    buf.put_u32(len);
    buf.put_slice(payload.get(..len as usize).unwrap_or(payload));
    buf.put_u8(FRAME_END);
}

/// Appends a method frame.
pub fn encode_method_frame(buf: &mut BytesMut, channel: u16, method: &Method) {
    buf.put_u8(FrameType::Method as u8);
    buf.put_u16(channel);
    let size_at = buf.len();
    buf.put_u32(0);
    method.encode(buf);
    let size = u32::try_from(buf.len() - size_at - 4).unwrap_or(u32::MAX);
    if let Some(dst) = buf.get_mut(size_at..size_at + 4) {
        dst.copy_from_slice(&size.to_be_bytes());
    }
    buf.put_u8(FRAME_END);
}

/// Appends a content header frame carrying the header's raw payload
/// unchanged.
pub fn encode_header_frame(buf: &mut BytesMut, channel: u16, header: &ContentHeader) {
    put_frame(buf, FrameType::Header, channel, header.raw());
}

/// Appends a `basic.deliver` method frame written from borrowed fields: the same bytes as
/// [`encode_method_frame`] with a [`super::BasicDeliver`], without building one. Strings
/// longer than 255 octets are cut to 255.
pub fn encode_deliver_frame(
    buf: &mut BytesMut,
    channel: u16,
    consumer_tag: &[u8],
    delivery_tag: u64,
    redelivered: bool,
    exchange: &[u8],
    routing_key: &[u8],
) {
    fn short(s: &[u8]) -> &[u8] {
        s.get(..s.len().min(255)).unwrap_or_default()
    }
    let (consumer_tag, exchange, routing_key) = (short(consumer_tag), short(exchange), short(routing_key));
    let size = 4 + 1 + consumer_tag.len() + 8 + 1 + 1 + exchange.len() + 1 + routing_key.len();
    buf.reserve(size + FRAME_OVERHEAD);
    buf.put_u8(FrameType::Method as u8);
    buf.put_u16(channel);
    buf.put_u32(size as u32);
    buf.put_u16(60);
    buf.put_u16(60);
    buf.put_u8(consumer_tag.len() as u8);
    buf.put_slice(consumer_tag);
    buf.put_u64(delivery_tag);
    buf.put_u8(u8::from(redelivered));
    buf.put_u8(exchange.len() as u8);
    buf.put_slice(exchange);
    buf.put_u8(routing_key.len() as u8);
    buf.put_slice(routing_key);
    buf.put_u8(FRAME_END);
}

/// Appends a content header frame whose payload is `raw` (a header as received).
pub fn encode_raw_header_frame(buf: &mut BytesMut, channel: u16, raw: &[u8]) {
    put_frame(buf, FrameType::Header, channel, raw);
}

/// Largest body payload per frame for a negotiated `frame_max`
/// (0 = unlimited). Never 0, so splitting always makes progress.
fn body_chunk(frame_max: u32) -> usize {
    match frame_max {
        0 => u32::MAX as usize,
        max => (max as usize).saturating_sub(FRAME_OVERHEAD).max(1),
    }
}

/// Appends `body` as body frames of at most `frame_max - 8` payload octets
/// each. An empty body produces no frames.
pub fn encode_body_frames(buf: &mut BytesMut, channel: u16, body: &[u8], frame_max: u32) {
    for chunk in body.chunks(body_chunk(frame_max)) {
        put_frame(buf, FrameType::Body, channel, chunk);
    }
}

/// Appends a heartbeat frame.
pub fn encode_heartbeat_frame(buf: &mut BytesMut) {
    put_frame(buf, FrameType::Heartbeat, 0, &[]);
}

/// Appends a whole message: the method frame (`basic.publish`,
/// `basic.deliver`, `basic.get-ok` or `basic.return`), the content header
/// frame and the body frames split to fit `frame_max`.
///
/// The header is written as its raw bytes; its body size is the caller's
/// responsibility and should equal `body.len()`.
pub fn encode_content_frames(
    buf: &mut BytesMut,
    channel: u16,
    method: &Method,
    header: &ContentHeader,
    body: &[u8],
    frame_max: u32,
) {
    buf.reserve(content_frames_len(method, header, body.len(), frame_max));
    encode_method_frame(buf, channel, method);
    encode_header_frame(buf, channel, header);
    encode_body_frames(buf, channel, body, frame_max);
}

/// Octets [`encode_content_frames`] appends for a body of `body_len` octets.
pub fn content_frames_len(method: &Method, header: &ContentHeader, body_len: usize, frame_max: u32) -> usize {
    let body_frames = body_len.div_ceil(body_chunk(frame_max));
    2 * FRAME_OVERHEAD + method.encoded_len() + header.encoded_len() + body_frames * FRAME_OVERHEAD + body_len
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
