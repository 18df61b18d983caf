//! Methods of the `exchange` class (class id 40): declare, delete, and
//! RabbitMQ's exchange-to-exchange `bind`/`unbind`.

use super::primitives::ShortStr;
use super::table::FieldTable;

amqp_method! {
    /// Declares (creates or checks) an exchange.
    ExchangeDeclare = (40, 10, "exchange.declare") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Exchange name.
        exchange: ShortStr,
        /// Exchange type, e.g. `direct`, `topic`, `fanout`, `headers`.
        kind: ShortStr,
        /// Only check that the exchange exists.
        passive: bool,
        /// Survive broker restarts.
        durable: bool,
        /// Delete when the last binding is removed.
        auto_delete: bool,
        /// Clients may not publish to it directly.
        internal: bool,
        /// Do not send `exchange.declare-ok`.
        no_wait: bool,
        /// Extra arguments (e.g. `alternate-exchange`).
        arguments: FieldTable,
    }

    /// Confirms an `exchange.declare`.
    ExchangeDeclareOk = (40, 11, "exchange.declare-ok") {}

    /// Deletes an exchange.
    ExchangeDelete = (40, 20, "exchange.delete") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Exchange name.
        exchange: ShortStr,
        /// Only delete if it has no bindings.
        if_unused: bool,
        /// Do not send `exchange.delete-ok`.
        no_wait: bool,
    }

    /// Confirms an `exchange.delete`.
    ExchangeDeleteOk = (40, 21, "exchange.delete-ok") {}

    /// Binds exchange `destination` to exchange `source`.
    ExchangeBind = (40, 30, "exchange.bind") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Exchange that receives the routed messages.
        destination: ShortStr,
        /// Exchange the messages are routed from.
        source: ShortStr,
        /// Binding key.
        routing_key: ShortStr,
        /// Do not send `exchange.bind-ok`.
        no_wait: bool,
        /// Binding arguments.
        arguments: FieldTable,
    }

    /// Confirms an `exchange.bind`.
    ExchangeBindOk = (40, 31, "exchange.bind-ok") {}

    /// Removes an exchange-to-exchange binding.
    ExchangeUnbind = (40, 40, "exchange.unbind") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Exchange that received the routed messages.
        destination: ShortStr,
        /// Exchange the messages were routed from.
        source: ShortStr,
        /// Binding key.
        routing_key: ShortStr,
        /// Do not send `exchange.unbind-ok`.
        no_wait: bool,
        /// Binding arguments.
        arguments: FieldTable,
    }

    /// Confirms an `exchange.unbind` (method id 51 in RabbitMQ's spec).
    ExchangeUnbindOk = (40, 51, "exchange.unbind-ok") {}
}
