//! Methods of the `channel` class (class id 20): open, flow control, close.

use bytes::Bytes;

use super::primitives::ShortStr;

amqp_method! {
    /// Client opens a channel.
    ChannelOpen = (20, 10, "channel.open") {
        /// Reserved (formerly `out-of-band`), empty.
        reserved_1: ShortStr,
    }

    /// Server confirms the channel is open.
    ChannelOpenOk = (20, 11, "channel.open-ok") {
        /// Reserved (formerly `channel-id`), empty.
        reserved_1: Bytes,
    }

    /// Asks the peer to pause (`false`) or resume (`true`) sending content.
    ChannelFlow = (20, 20, "channel.flow") {
        /// Whether content may flow.
        active: bool,
    }

    /// Confirms a `channel.flow`.
    ChannelFlowOk = (20, 21, "channel.flow-ok") {
        /// The flow state now in effect.
        active: bool,
    }

    /// Either peer closes the channel, possibly because of an error.
    ChannelClose = (20, 40, "channel.close") {
        /// Reply code (200 for a normal close).
        reply_code: u16,
        /// Human-readable reason.
        reply_text: ShortStr,
        /// Class of the method that caused the close, or 0.
        class_id: u16,
        /// Method that caused the close, or 0.
        method_id: u16,
    }

    /// Confirms a `channel.close`.
    ChannelCloseOk = (20, 41, "channel.close-ok") {}
}
