//! Every error the gateway sends to a client becomes a `channel.close` or `connection.close`
//! here: broker errors, queue errors, frames that do not decode, and the gateway's own
//! protocol-state errors ([`ProtocolError`], the broker's shutdown among them), each in one
//! exhaustive match with no catch-all arm, so a new error cannot ship without a reply code
//! and text.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::broker::access::{AccessRefused, RefusalCode};
use crate::broker::{Error, Name};
use crate::limits::MESSAGE_BYTES_MAX;
use crate::queue::QueueError;
use crate::wire::amqp::{reply_code, DecodeError, FRAME_HEADER_SIZE, FRAME_OVERHEAD};

/// A close to send: the reply code, its text, and whether it closes the whole connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// AMQP reply code.
    pub code: u16,
    /// `NAME - details`, as RabbitMQ words it.
    pub text: String,
    /// `connection.close` rather than `channel.close`.
    pub connection: bool,
}

impl Reply {
    /// A channel-level close.
    pub fn channel(code: u16, details: impl std::fmt::Display) -> Reply {
        Reply { code, text: format!("{} - {details}", reply_code::name(code)), connection: false }
    }

    /// A connection-level close.
    pub fn connection(code: u16, details: impl std::fmt::Display) -> Reply {
        Reply { code, text: format!("{} - {details}", reply_code::name(code)), connection: true }
    }
}

impl From<&Error> for Reply {
    fn from(error: &Error) -> Reply {
        use reply_code::*;
        let code = match error {
            Error::QueueNotFound(_) | Error::ExchangeNotFound(_) => NOT_FOUND,
            Error::Locked(_) => RESOURCE_LOCKED,
            Error::ExclusiveUse(_)
            | Error::ReservedName { .. }
            | Error::InternalExchange(_)
            | Error::DefaultExchange
            | Error::SystemExchange(_) => ACCESS_REFUSED,
            Error::Inequivalent { .. }
            | Error::NotEmpty(_)
            | Error::QueueInUse(_)
            | Error::ExchangeInUse(_)
            | Error::InvalidArg { .. }
            | Error::InvalidProperty { .. }
            | Error::Overflow(_) => PRECONDITION_FAILED,
            Error::UnknownExchangeType(_) => return Reply::connection(COMMAND_INVALID, error),
            Error::Internal(_) => return Reply::connection(INTERNAL_ERROR, error),
        };
        Reply::channel(code, error)
    }
}

impl From<&AccessRefused> for Reply {
    fn from(refused: &AccessRefused) -> Reply {
        match refused.code() {
            RefusalCode::AccessRefused => Reply::channel(reply_code::ACCESS_REFUSED, refused),
            RefusalCode::PreconditionFailed => Reply::channel(reply_code::PRECONDITION_FAILED, refused),
            RefusalCode::NotAllowed => Reply::connection(reply_code::NOT_ALLOWED, refused),
        }
    }
}

impl From<AccessRefused> for Reply {
    fn from(refused: AccessRefused) -> Reply {
        Reply::from(&refused)
    }
}

/// The close for a queue's refusal; `vhost` is the queue's, for the text.
pub fn queue_error(error: &QueueError, vhost: &str) -> Reply {
    match error {
        QueueError::ExclusiveUse { queue } => Reply::channel(
            reply_code::ACCESS_REFUSED,
            format!("queue '{queue}' in vhost '{vhost}' in exclusive use"),
        ),
        QueueError::Deleted { queue } => {
            Reply::channel(reply_code::NOT_FOUND, format!("no queue '{queue}' in vhost '{vhost}'"))
        }
    }
}

/// `type T, all octets = <<...>>` as RabbitMQ prints the frame it could not take: the
/// frame's type and its payload octets (only those already received).
fn frame_octets(unread: &[u8], with_payload: bool) -> String {
    let kind = unread.first().copied().unwrap_or(0);
    // The payload size follows the type octet and the two octets of the channel number.
    let size_field = unread.get(3..FRAME_HEADER_SIZE);
    let size = size_field.and_then(|b| b.try_into().ok()).map_or(0, u32::from_be_bytes) as usize;
    let payload_at = FRAME_HEADER_SIZE;
    let payload =
        if with_payload { unread.get(payload_at..payload_at + size).unwrap_or_default() } else { &[] };
    let octets: Vec<String> = payload.iter().map(u8::to_string).collect();
    format!("type {kind}, all octets = <<{}>>", octets.join(","))
}

/// The connection close for a frame that could not be decoded, worded as RabbitMQ does.
/// `unread` is the read buffer, which still starts with the offending frame for framing
/// errors.
pub fn decode_error(error: &DecodeError, unread: &[u8], frame_max: u32) -> Reply {
    use reply_code::*;
    match error {
        DecodeError::BadFrameEnd { found } => Reply::connection(
            FRAME_ERROR,
            format!("{}: {{invalid_frame_end_marker,{found}}}", frame_octets(unread, true)),
        ),
        DecodeError::FrameTooLarge { size, .. } => Reply::connection(
            FRAME_ERROR,
            format!(
                "{}: {{frame_too_large,{},{}}}",
                frame_octets(unread, false),
                size.saturating_sub(FRAME_OVERHEAD as u64),
                frame_max.saturating_sub(FRAME_OVERHEAD as u32)
            ),
        ),
        DecodeError::UnknownFrameType(_) => {
            Reply::connection(FRAME_ERROR, format!("{}: unknown_frame", frame_octets(unread, false)))
        }
        DecodeError::HeartbeatOnChannel(channel) => {
            Reply::connection(UNEXPECTED_FRAME, format!("type 8, heartbeat on channel {channel}"))
        }
        DecodeError::Truncated { .. } => Reply::connection(FRAME_ERROR, "cannot decode <<>>"),
        DecodeError::UnknownMethod { class_id, method_id } => {
            Reply::connection(NOT_IMPLEMENTED, format!("unknown method {class_id}.{method_id}"))
        }
        DecodeError::TrailingMethodBytes { .. }
        | DecodeError::TrailingBytes { .. }
        | DecodeError::UnknownFieldType(_)
        | DecodeError::NestingTooDeep { .. }
        | DecodeError::UnknownPropertyFlags { .. } => {
            Reply::connection(error.reply_code(), format!("cannot decode frame: {error}"))
        }
    }
}

/// What the gateway itself refuses of a client: methods and frames out of place in the
/// connection's or channel's state, and arguments it does not support.
#[derive(Debug)]
pub enum ProtocolError {
    /// The credentials were refused (to a client that asked to be told).
    LoginRefused {
        /// The SASL mechanism used.
        mechanism: String,
    },
    /// A channel method arrived on channel 0.
    MethodOnChannelZero(&'static str),
    /// A content header or body frame arrived where a method frame was due.
    ExpectedMethodFrame,
    /// The first frame on a channel was not `channel.open`.
    ExpectedChannelOpen,
    /// `channel.open` on a channel already open.
    SecondChannelOpen,
    /// A method (named) arrived where a publish's content header was due.
    MethodInsteadOfContentHeader(&'static str),
    /// A body frame arrived where a publish's content header was due.
    ExpectedContentHeader,
    /// A content header arrived where a publish's body was due.
    ExpectedContentBody,
    /// A heartbeat frame arrived on a channel other than 0.
    HeartbeatOnChannel(u16),
    /// A content header declared a body larger than [`MESSAGE_BYTES_MAX`].
    MessageTooLarge {
        /// Declared body size in bytes.
        size: u64,
    },
    /// Body frames carried more bytes than the content header declared.
    BodyLargerThanDeclared {
        /// Bytes received.
        have: u64,
        /// Bytes declared.
        expected: u64,
    },
    /// A content header whose properties do not decode.
    UndecodableHeader(DecodeError),
    /// A publish's `user_id` property is not the authenticated user.
    UserIdMismatch {
        /// The `user_id` property.
        claimed: String,
        /// The authenticated user.
        user: String,
    },
    /// A publish replying to direct reply-to from a channel with no reply-to consumer.
    NoReplyConsumer,
    /// `channel.flow` with `active = false`.
    FlowInactive,
    /// `basic.qos` with a `prefetch_size`.
    PrefetchSize(u32),
    /// `basic.publish` with `immediate` set.
    Immediate,
    /// A stream refused a consume, get or purge.
    Stream(StreamRefusal),
    /// `basic.consume` with a consumer tag the channel already uses.
    ConsumerTagReused(String),
    /// An ack, nack or reject of a delivery tag the channel does not hold.
    UnknownDeliveryTag(u64),
    /// `confirm.select` on a transactional channel.
    TxToConfirm,
    /// `tx.select` on a channel in confirm mode.
    ConfirmToTx,
    /// `tx.commit` or `tx.rollback` on a channel that is not transactional.
    NotTransactional,
    /// A committed publish could not be appended.
    CommitFailed(String),
    /// A publish or settlement would make a transaction hold more than this many bytes
    /// ([`crate::limits::TX_HELD_BYTES_MAX`]).
    TransactionTooLarge(usize),
    /// A stored message's header does not parse.
    DamagedStoredHeader,
    /// An empty queue name (meaning the channel's last declared queue) on a channel that
    /// has declared none.
    NoPreviouslyDeclaredQueue,
    /// A method (named) that has no place on an open channel.
    UnexpectedMethod(&'static str),
    /// The broker is shutting down and closes every open connection.
    BrokerShutdown,
    /// An operator closed the connection (the management API), with this reason.
    ClosedOnRequest(String),
}

/// `queue 'name' in vhost 'v'`, as RabbitMQ names a queue in its reply texts.
fn in_vhost(queue: &Name) -> String {
    format!("queue '{}' in vhost '{}'", queue.name, queue.vhost)
}

/// What a stream queue refuses, as RabbitMQ refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRefusal {
    /// A method that stream queues do not support (named).
    Unsupported {
        /// The method's name, as `basic.get`.
        method: &'static str,
        /// The stream's name.
        queue: Name,
    },
    /// `basic.consume` with `no_ack`.
    AutoAck {
        /// The stream's name.
        queue: Name,
    },
    /// `basic.consume` from a channel without a prefetch count.
    PrefetchUnset {
        /// The stream's name.
        queue: Name,
    },
    /// `basic.consume` with an `x-stream-offset` that is not one.
    InvalidOffset {
        /// The stream's name.
        queue: Name,
    },
}

impl From<StreamRefusal> for Reply {
    fn from(refusal: StreamRefusal) -> Reply {
        use reply_code::*;
        match refusal {
            StreamRefusal::Unsupported { method, queue } => Reply::connection(
                NOT_IMPLEMENTED,
                format!("{method} not supported by stream queues {}", in_vhost(&queue)),
            ),
            StreamRefusal::AutoAck { queue } => Reply::connection(
                NOT_IMPLEMENTED,
                format!("automatic acknowledgement not supported by stream queues {}", in_vhost(&queue)),
            ),
            StreamRefusal::PrefetchUnset { queue } => Reply::channel(
                PRECONDITION_FAILED,
                format!("consumer prefetch count is not set for '{}'", in_vhost(&queue)),
            ),
            StreamRefusal::InvalidOffset { queue } => Reply::channel(
                PRECONDITION_FAILED,
                format!("invalid x-stream-offset for {}", in_vhost(&queue)),
            ),
        }
    }
}

/// A publish past a transaction's bound (RabbitMQ has none): the channel closes, and the
/// transaction with it.
fn tx_too_large(bytes_max: usize) -> Reply {
    let text =
        format!("transaction holds more than {bytes_max} bytes of publishes and acks; commit more often");
    Reply::channel(reply_code::PRECONDITION_FAILED, text)
}

impl From<ProtocolError> for Reply {
    fn from(error: ProtocolError) -> Reply {
        use {reply_code::*, Reply as R};
        match error {
            ProtocolError::LoginRefused { mechanism } => R::connection(
                ACCESS_REFUSED,
                format!("Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."),
            ),
            ProtocolError::MethodOnChannelZero(name) => {
                R::connection(COMMAND_INVALID, format!("unexpected {name} on channel 0"))
            }
            ProtocolError::ExpectedMethodFrame => {
                R::connection(UNEXPECTED_FRAME, "expected method frame, got non method frame instead")
            }
            ProtocolError::ExpectedChannelOpen => R::connection(CHANNEL_ERROR, "expected 'channel.open'"),
            ProtocolError::SecondChannelOpen => R::connection(CHANNEL_ERROR, "second 'channel.open' seen"),
            ProtocolError::MethodInsteadOfContentHeader(name) => R::connection(
                UNEXPECTED_FRAME,
                format!("expected content header for class 60, got non content header frame instead ({name})"),
            ),
            ProtocolError::ExpectedContentHeader => R::connection(
                UNEXPECTED_FRAME,
                "expected content header for class 60, got non content header frame instead",
            ),
            ProtocolError::ExpectedContentBody => {
                R::connection(UNEXPECTED_FRAME, "expected content body, got non content body frame instead")
            }
            ProtocolError::HeartbeatOnChannel(number) => {
                R::connection(UNEXPECTED_FRAME, format!("type 8, heartbeat on channel {number}"))
            }
            ProtocolError::MessageTooLarge { size } => R::channel(
                PRECONDITION_FAILED,
                format!("message size {size} is larger than configured max size {MESSAGE_BYTES_MAX}"),
            ),
            ProtocolError::BodyLargerThanDeclared { have, expected } => {
                R::connection(FRAME_ERROR, format!("content body larger than declared: {have} > {expected}"))
            }
            ProtocolError::UndecodableHeader(error) => {
                R::connection(error.reply_code(), format!("cannot decode content header: {error}"))
            }
            ProtocolError::UserIdMismatch { claimed, user } => R::channel(
                PRECONDITION_FAILED,
                format!("user_id property set to '{claimed}' but authenticated user was '{user}'"),
            ),
            ProtocolError::NoReplyConsumer => R::channel(PRECONDITION_FAILED, "fast reply consumer does not exist"),
            ProtocolError::FlowInactive => R::connection(NOT_IMPLEMENTED, "active=false"),
            ProtocolError::PrefetchSize(size) => R::connection(NOT_IMPLEMENTED, format!("prefetch_size!=0 ({size})")),
            ProtocolError::Immediate => R::connection(NOT_IMPLEMENTED, "immediate=true"),
            ProtocolError::Stream(refusal) => refusal.into(),
            ProtocolError::ConsumerTagReused(tag) => {
                R::connection(NOT_ALLOWED, format!("attempt to reuse consumer tag '{tag}'"))
            }
            ProtocolError::UnknownDeliveryTag(tag) => {
                R::channel(PRECONDITION_FAILED, format!("unknown delivery tag {tag}"))
            }
            ProtocolError::TxToConfirm => R::channel(PRECONDITION_FAILED, "cannot switch from tx to confirm mode"),
            ProtocolError::ConfirmToTx => R::channel(PRECONDITION_FAILED, "cannot switch from confirm to tx mode"),
            ProtocolError::NotTransactional => R::channel(PRECONDITION_FAILED, "channel is not transactional"),
            ProtocolError::CommitFailed(error) => R::connection(INTERNAL_ERROR, format!("commit failed: {error}")),
            ProtocolError::TransactionTooLarge(bytes_max) => tx_too_large(bytes_max),
            ProtocolError::DamagedStoredHeader => R::connection(INTERNAL_ERROR, "stored message header is damaged"),
            ProtocolError::NoPreviouslyDeclaredQueue => R::channel(NOT_FOUND, "no previously declared queue"),
            ProtocolError::BrokerShutdown => {
                R::connection(CONNECTION_FORCED, "broker forced connection closure with reason 'shutdown'")
            }
            ProtocolError::ClosedOnRequest(reason) => R::connection(CONNECTION_FORCED, reason),
            ProtocolError::UnexpectedMethod(name) => {
                R::connection(COMMAND_INVALID, format!("unexpected method {name} on a channel"))
            }
        }
    }
}
