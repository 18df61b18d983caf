//! Methods of the `connection` class (class id 10): handshake, tuning,
//! virtual host selection, close, and RabbitMQ's `blocked`/`unblocked` and
//! `update-secret` extensions.

use bytes::Bytes;

use super::primitives::ShortStr;
use super::table::FieldTable;

amqp_method! {
    /// Server starts the handshake, announcing version, properties and SASL mechanisms.
    ConnectionStart = (10, 10, "connection.start") {
        /// Protocol major version (0).
        version_major: u8,
        /// Protocol minor version (9).
        version_minor: u8,
        /// Server properties (product, version, capabilities, ...).
        server_properties: FieldTable,
        /// Space-separated SASL mechanisms, e.g. `PLAIN AMQPLAIN`.
        mechanisms: Bytes,
        /// Space-separated message locales, e.g. `en_US`.
        locales: Bytes,
    }

    /// Client selects a SASL mechanism and sends its first response.
    ConnectionStartOk = (10, 11, "connection.start-ok") {
        /// Client properties (product, capabilities, connection_name, ...).
        client_properties: FieldTable,
        /// Selected SASL mechanism.
        mechanism: ShortStr,
        /// SASL response (for PLAIN: `\0user\0password`).
        response: Bytes,
        /// Selected locale.
        locale: ShortStr,
    }

    /// Server sends a SASL challenge.
    ConnectionSecure = (10, 20, "connection.secure") {
        /// Challenge data.
        challenge: Bytes,
    }

    /// Client answers a SASL challenge.
    ConnectionSecureOk = (10, 21, "connection.secure-ok") {
        /// Response data.
        response: Bytes,
    }

    /// Server proposes connection limits.
    ConnectionTune = (10, 30, "connection.tune") {
        /// Highest channel number the server allows (0 = no limit).
        channel_max: u16,
        /// Largest frame size the server accepts (0 = no limit).
        frame_max: u32,
        /// Desired heartbeat interval in seconds (0 = none).
        heartbeat: u16,
    }

    /// Client accepts connection limits.
    ConnectionTuneOk = (10, 31, "connection.tune-ok") {
        /// Negotiated highest channel number.
        channel_max: u16,
        /// Negotiated largest frame size.
        frame_max: u32,
        /// Negotiated heartbeat interval in seconds.
        heartbeat: u16,
    }

    /// Client opens a virtual host.
    ConnectionOpen = (10, 40, "connection.open") {
        /// Virtual host name.
        virtual_host: ShortStr,
        /// Reserved (formerly `capabilities`), empty.
        reserved_1: ShortStr,
        /// Reserved (formerly `insist`), false.
        reserved_2: bool,
    }

    /// Server confirms the virtual host is open.
    ConnectionOpenOk = (10, 41, "connection.open-ok") {
        /// Reserved (formerly `known-hosts`), empty.
        reserved_1: ShortStr,
    }

    /// Either peer closes the connection, possibly because of an error.
    ConnectionClose = (10, 50, "connection.close") {
        /// Reply code (200 for a normal close).
        reply_code: u16,
        /// Human-readable reason.
        reply_text: ShortStr,
        /// Class of the method that caused the close, or 0.
        class_id: u16,
        /// Method that caused the close, or 0.
        method_id: u16,
    }

    /// Confirms a `connection.close`.
    ConnectionCloseOk = (10, 51, "connection.close-ok") {}

    /// RabbitMQ extension: the server is blocking publishes (resource alarm).
    ConnectionBlocked = (10, 60, "connection.blocked") {
        /// Why the connection is blocked.
        reason: ShortStr,
    }

    /// RabbitMQ extension: the server is no longer blocking publishes.
    ConnectionUnblocked = (10, 61, "connection.unblocked") {}

    /// RabbitMQ extension: the client refreshes its credentials.
    ConnectionUpdateSecret = (10, 70, "connection.update-secret") {
        /// The new secret (e.g. an OAuth 2 token).
        new_secret: Bytes,
        /// Why the secret is being updated.
        reason: ShortStr,
    }

    /// RabbitMQ extension: the server accepted the new secret.
    ConnectionUpdateSecretOk = (10, 71, "connection.update-secret-ok") {}
}
