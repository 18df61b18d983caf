//! Every error that reaches a client becomes a `channel.close` or `connection.close` here,
//! in one exhaustive match: a new error cannot ship without a reply code.

use crate::broker::Error;
use crate::queue::QueueError;
use crate::wire::amqp::{reply_code, DecodeError};

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

impl From<&QueueError> for Reply {
    fn from(error: &QueueError) -> Reply {
        match error {
            QueueError::ExclusiveUse { .. } => Reply::channel(reply_code::ACCESS_REFUSED, error),
            QueueError::Deleted { queue } => {
                Reply::channel(reply_code::NOT_FOUND, format!("no queue '{queue}' in vhost '/'"))
            }
        }
    }
}

/// `type T, all octets = <<...>>` as RabbitMQ prints the frame it could not take: the
/// frame's type and its payload octets (only those already received).
fn frame_octets(unread: &[u8], with_payload: bool) -> String {
    let kind = unread.first().copied().unwrap_or(0);
    let size = unread.get(3..7).and_then(|b| b.try_into().ok()).map_or(0, u32::from_be_bytes) as usize;
    let payload = if with_payload { unread.get(7..7 + size).unwrap_or_default() } else { &[] };
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
                size.saturating_sub(8),
                frame_max.saturating_sub(8)
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
        other => Reply::connection(other.reply_code(), format!("cannot decode frame: {other}")),
    }
}
