//! AMQP 0-9-1 wire codec: pure conversions between bytes and typed frames.
//!
//! This module owns everything Warren needs to read and write the AMQP 0-9-1
//! wire format (with RabbitMQ's extensions): the protocol header, frames,
//! methods of the `connection`, `channel`, `exchange`, `queue`, `basic`,
//! `confirm` and `tx` classes, field tables and content headers.
//!
//! There is no I/O here. Decoding reads from a caller-owned [`BytesMut`]
//! read buffer and splits complete frames off it, so message bodies and the
//! string fields of hot-path methods are zero-copy [`Bytes`] slices of that
//! buffer. "Not enough bytes yet" is reported as `Ok(None)`, never as an
//! error. Encoding appends to a caller-owned [`BytesMut`].
//!
//! Decoding never panics on any input; malformed input yields a
//! [`DecodeError`] that says what was wrong.
//!
//! Typical read loop of a connection:
//!
//! ```
//! use bytes::BytesMut;
//! use warren::wire::amqp::{decode_frame, Frame};
//!
//! let mut read_buf = BytesMut::new();
//! // ... append bytes read from the socket to `read_buf` ...
//! while let Some(frame) = decode_frame(&mut read_buf, 131_072)? {
//!     match frame {
//!         Frame::Method { channel, method } => { let _ = (channel, method); }
//!         Frame::Header { channel, header } => { let _ = (channel, header); }
//!         Frame::Body { channel, payload } => { let _ = (channel, payload); }
//!         Frame::Heartbeat => {}
//!     }
//! }
//! # Ok::<(), warren::wire::amqp::DecodeError>(())
//! ```
//!
//! [`Bytes`]: bytes::Bytes
//! [`BytesMut`]: bytes::BytesMut
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod primitives;
#[macro_use]
mod macros;

#[cfg(test)]
mod arb;
mod basic;
mod channel;
mod confirm;
mod connection;
mod error;
mod exchange;
mod frame;
mod method;
mod properties;
mod queue;
mod table;
mod tx;

pub use basic::{
    BasicAck, BasicCancel, BasicCancelOk, BasicConsume, BasicConsumeOk, BasicDeliver, BasicGet,
    BasicGetEmpty, BasicGetOk, BasicNack, BasicPublish, BasicQos, BasicQosOk, BasicRecover,
    BasicRecoverAsync, BasicRecoverOk, BasicReject, BasicReturn,
};
pub use channel::{ChannelClose, ChannelCloseOk, ChannelFlow, ChannelFlowOk, ChannelOpen, ChannelOpenOk};
pub use confirm::{ConfirmSelect, ConfirmSelectOk};
pub use connection::{
    ConnectionBlocked, ConnectionClose, ConnectionCloseOk, ConnectionOpen, ConnectionOpenOk,
    ConnectionSecure, ConnectionSecureOk, ConnectionStart, ConnectionStartOk, ConnectionTune,
    ConnectionTuneOk, ConnectionUnblocked, ConnectionUpdateSecret, ConnectionUpdateSecretOk,
};
pub use error::{reply_code, DecodeError, ShortStrTooLong};
pub use exchange::{
    ExchangeBind, ExchangeBindOk, ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete, ExchangeDeleteOk,
    ExchangeUnbind, ExchangeUnbindOk,
};
pub use frame::{
    check_protocol_header, content_frames_len, decode_frame, decode_raw_frame, encode_body_frames,
    encode_content_frames, encode_deliver_frame, encode_header_frame, encode_heartbeat_frame,
    encode_method_frame, encode_raw_header_frame, peek_frame, Frame, FrameType, ProtocolHeader, RawFrame,
    FRAME_END, FRAME_HEADER_SIZE, FRAME_MIN_SIZE, FRAME_OVERHEAD, PROTOCOL_HEADER,
};
pub use method::{Method, KNOWN_CLASS_IDS};
pub use primitives::ShortStr;
pub use properties::{BasicProperties, ContentHeader, PublishProperties};
pub use queue::{
    QueueBind, QueueBindOk, QueueDeclare, QueueDeclareOk, QueueDelete, QueueDeleteOk, QueuePurge,
    QueuePurgeOk, QueueUnbind, QueueUnbindOk,
};
pub use table::{FieldTable, FieldValue, MAX_NESTING_DEPTH};
pub use tx::{TxCommit, TxCommitOk, TxRollback, TxRollbackOk, TxSelect, TxSelectOk};
