//! Methods of the `queue` class (class id 50): declare, bind, unbind,
//! purge, delete.

use super::primitives::ShortStr;
use super::table::FieldTable;

amqp_method! {
    /// Declares (creates or checks) a queue.
    QueueDeclare = (50, 10, "queue.declare") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Queue name; empty asks the server to generate one.
        queue: ShortStr,
        /// Only check that the queue exists.
        passive: bool,
        /// Survive broker restarts.
        durable: bool,
        /// Used only by this connection; deleted when it closes.
        exclusive: bool,
        /// Delete when the last consumer is cancelled.
        auto_delete: bool,
        /// Do not send `queue.declare-ok`.
        no_wait: bool,
        /// Extra arguments (`x-message-ttl`, `x-dead-letter-exchange`, ...).
        arguments: FieldTable,
    }

    /// Confirms a `queue.declare`.
    QueueDeclareOk = (50, 11, "queue.declare-ok") {
        /// The queue's name (generated if the client sent an empty one).
        queue: ShortStr,
        /// Messages ready in the queue.
        message_count: u32,
        /// Active consumers of the queue.
        consumer_count: u32,
    }

    /// Binds a queue to an exchange.
    QueueBind = (50, 20, "queue.bind") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Queue name.
        queue: ShortStr,
        /// Exchange name.
        exchange: ShortStr,
        /// Binding key.
        routing_key: ShortStr,
        /// Do not send `queue.bind-ok`.
        no_wait: bool,
        /// Binding arguments (e.g. for headers exchanges).
        arguments: FieldTable,
    }

    /// Confirms a `queue.bind`.
    QueueBindOk = (50, 21, "queue.bind-ok") {}

    /// Removes a queue binding (always synchronous: no `no-wait`).
    QueueUnbind = (50, 50, "queue.unbind") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Queue name.
        queue: ShortStr,
        /// Exchange name.
        exchange: ShortStr,
        /// Binding key.
        routing_key: ShortStr,
        /// Binding arguments.
        arguments: FieldTable,
    }

    /// Confirms a `queue.unbind`.
    QueueUnbindOk = (50, 51, "queue.unbind-ok") {}

    /// Removes all ready messages from a queue.
    QueuePurge = (50, 30, "queue.purge") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Queue name.
        queue: ShortStr,
        /// Do not send `queue.purge-ok`.
        no_wait: bool,
    }

    /// Confirms a `queue.purge`.
    QueuePurgeOk = (50, 31, "queue.purge-ok") {
        /// Number of messages purged.
        message_count: u32,
    }

    /// Deletes a queue.
    QueueDelete = (50, 40, "queue.delete") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Queue name.
        queue: ShortStr,
        /// Only delete if it has no consumers.
        if_unused: bool,
        /// Only delete if it has no messages.
        if_empty: bool,
        /// Do not send `queue.delete-ok`.
        no_wait: bool,
    }

    /// Confirms a `queue.delete`.
    QueueDeleteOk = (50, 41, "queue.delete-ok") {
        /// Number of messages deleted with the queue.
        message_count: u32,
    }
}
