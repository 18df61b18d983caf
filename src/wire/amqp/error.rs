//! Error types of the codec and the AMQP reply codes they map to.
//!
//! Only decoding can fail on input. "Not enough bytes yet" is not an error:
//! the frame decoders report it as `Ok(None)`.

/// AMQP 0-9-1 reply codes (the `constant` elements of the spec) that the
/// connection and channel layers send in `connection.close` / `channel.close`.
pub mod reply_code {
    /// Normal completion.
    pub const REPLY_SUCCESS: u16 = 200;
    /// The message body is too large to be accepted.
    pub const CONTENT_TOO_LARGE: u16 = 311;
    /// A mandatory message could not be routed to any queue.
    pub const NO_ROUTE: u16 = 312;
    /// A mandatory/immediate message could not be delivered (no consumers).
    pub const NO_CONSUMERS: u16 = 313;
    /// The server closed the connection by operator intervention.
    pub const CONNECTION_FORCED: u16 = 320;
    /// The client tried to open an invalid virtual host path.
    pub const INVALID_PATH: u16 = 402;
    /// Access to a resource was refused.
    pub const ACCESS_REFUSED: u16 = 403;
    /// A named resource does not exist.
    pub const NOT_FOUND: u16 = 404;
    /// A resource is locked (e.g. an exclusive queue of another connection).
    pub const RESOURCE_LOCKED: u16 = 405;
    /// A precondition of the method failed.
    pub const PRECONDITION_FAILED: u16 = 406;
    /// A malformed frame was received.
    pub const FRAME_ERROR: u16 = 501;
    /// A frame contained illegal field values.
    pub const SYNTAX_ERROR: u16 = 502;
    /// An invalid sequence of frames or methods was received.
    pub const COMMAND_INVALID: u16 = 503;
    /// A channel was used improperly (e.g. not open).
    pub const CHANNEL_ERROR: u16 = 504;
    /// A frame type was received that was not expected at this point.
    pub const UNEXPECTED_FRAME: u16 = 505;
    /// The server ran out of a resource.
    pub const RESOURCE_ERROR: u16 = 506;
    /// The operation is not allowed.
    pub const NOT_ALLOWED: u16 = 530;
    /// The requested functionality is not implemented.
    pub const NOT_IMPLEMENTED: u16 = 540;
    /// An internal error occurred.
    pub const INTERNAL_ERROR: u16 = 541;

    /// The reply code's name as the spec spells it (`"NOT_FOUND"`), `"OK"` for
    /// [`REPLY_SUCCESS`], and `"INTERNAL_ERROR"` for any code the spec does not name.
    pub fn name(code: u16) -> &'static str {
        match code {
            REPLY_SUCCESS => "OK",
            CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
            NO_ROUTE => "NO_ROUTE",
            NO_CONSUMERS => "NO_CONSUMERS",
            CONNECTION_FORCED => "CONNECTION_FORCED",
            INVALID_PATH => "INVALID_PATH",
            ACCESS_REFUSED => "ACCESS_REFUSED",
            NOT_FOUND => "NOT_FOUND",
            RESOURCE_LOCKED => "RESOURCE_LOCKED",
            PRECONDITION_FAILED => "PRECONDITION_FAILED",
            FRAME_ERROR => "FRAME_ERROR",
            SYNTAX_ERROR => "SYNTAX_ERROR",
            COMMAND_INVALID => "COMMAND_INVALID",
            CHANNEL_ERROR => "CHANNEL_ERROR",
            UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
            RESOURCE_ERROR => "RESOURCE_ERROR",
            NOT_ALLOWED => "NOT_ALLOWED",
            NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
            _ => "INTERNAL_ERROR",
        }
    }
}

/// A protocol violation found while decoding received bytes.
///
/// Every variant carries the facts needed to log the problem or to build a
/// `connection.close` (see [`DecodeError::reply_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The octet after a frame's payload was not the frame-end octet `0xCE`.
    #[error("bad frame end octet {found:#04x}, expected 0xce")]
    BadFrameEnd {
        /// The octet found where `0xCE` was expected.
        found: u8,
    },
    /// The frame (payload plus 8 octets of framing) is larger than `frame_max`.
    #[error("frame of {size} octets exceeds frame-max {max}")]
    FrameTooLarge {
        /// Total frame size in octets (header, payload and frame end).
        size: u64,
        /// The negotiated frame-max.
        max: u32,
    },
    /// The frame type octet is not 1, 2, 3 or 8.
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// A heartbeat frame arrived on a channel other than 0.
    #[error("heartbeat frame on channel {0}, must be channel 0")]
    HeartbeatOnChannel(u16),
    /// A structure inside a complete frame ended before its declared end.
    #[error("truncated field: needed {needed} octets, {available} available")]
    Truncated {
        /// Octets the field needed.
        needed: usize,
        /// Octets left in the enclosing structure.
        available: usize,
    },
    /// The class id / method id pair of a method frame is not known.
    #[error("unknown method {class_id}.{method_id}")]
    UnknownMethod {
        /// Class id read from the frame.
        class_id: u16,
        /// Method id read from the frame.
        method_id: u16,
    },
    /// A method frame had bytes left after its last argument.
    #[error("{extra} trailing octets after arguments of method {class_id}.{method_id}")]
    TrailingMethodBytes {
        /// Class id of the method.
        class_id: u16,
        /// Method id of the method.
        method_id: u16,
        /// Number of unread octets.
        extra: usize,
    },
    /// A content header or field table had bytes left after its end.
    #[error("{extra} trailing octets after content header or field table")]
    TrailingBytes {
        /// Number of unread octets.
        extra: usize,
    },
    /// A field table or array contained an unknown field value type tag.
    #[error("unknown field value type {0:#04x}")]
    UnknownFieldType(u8),
    /// Field tables/arrays were nested deeper than the codec accepts.
    #[error("field tables nested deeper than {max} levels")]
    NestingTooDeep {
        /// The maximum accepted nesting depth.
        max: usize,
    },
    /// A content header set property flags that the `basic` class does not define.
    #[error("unknown content header property flags {flags:#06x}")]
    UnknownPropertyFlags {
        /// The offending 16-bit flag word (continuation bit included).
        flags: u16,
    },
}

impl DecodeError {
    /// The AMQP reply code a server should close the connection with.
    ///
    /// Framing problems map to `frame-error` (501), malformed method or
    /// header contents to `syntax-error` (502), unknown methods to
    /// `not-implemented` (540).
    pub fn reply_code(&self) -> u16 {
        match self {
            Self::BadFrameEnd { .. }
            | Self::FrameTooLarge { .. }
            | Self::UnknownFrameType(_)
            | Self::HeartbeatOnChannel(_) => reply_code::FRAME_ERROR,
            Self::UnknownMethod { .. } => reply_code::NOT_IMPLEMENTED,
            Self::Truncated { .. }
            | Self::TrailingMethodBytes { .. }
            | Self::TrailingBytes { .. }
            | Self::UnknownFieldType(_)
            | Self::NestingTooDeep { .. }
            | Self::UnknownPropertyFlags { .. } => reply_code::SYNTAX_ERROR,
        }
    }
}

/// A short string (at most 255 octets) was built from a longer value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("short string of {len} octets exceeds 255")]
pub struct ShortStrTooLong {
    /// Length of the rejected value in octets.
    pub len: usize,
}
