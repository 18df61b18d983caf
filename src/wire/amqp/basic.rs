//! Methods of the `basic` class (class id 60): QoS, consumers, publishing,
//! delivery, polling, acknowledgements and RabbitMQ's `nack`.
//!
//! `basic.publish`, `basic.return`, `basic.deliver` and `basic.get-ok` are
//! followed by a content header and body frames. Their string fields are
//! [`ShortStr`]s that decode as views of the received frame, so decoding a
//! publish does not allocate.

use super::primitives::ShortStr;
use super::table::FieldTable;

amqp_method! {
    /// Sets the prefetch window of the channel or of new consumers.
    BasicQos = (60, 10, "basic.qos") {
        /// Prefetch window in octets (0 = no limit).
        prefetch_size: u32,
        /// Prefetch window in messages (0 = no limit).
        prefetch_count: u16,
        /// RabbitMQ: apply to the whole channel rather than per consumer.
        global: bool,
    }

    /// Confirms a `basic.qos`.
    BasicQosOk = (60, 11, "basic.qos-ok") {}

    /// Starts a consumer on a queue.
    BasicConsume = (60, 20, "basic.consume") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Queue name.
        queue: ShortStr,
        /// Consumer tag; empty asks the server to generate one.
        consumer_tag: ShortStr,
        /// Do not deliver messages published on this connection.
        no_local: bool,
        /// Deliveries need no acknowledgement.
        no_ack: bool,
        /// Only this consumer may consume from the queue.
        exclusive: bool,
        /// Do not send `basic.consume-ok`.
        no_wait: bool,
        /// Consumer arguments (e.g. `x-priority`).
        arguments: FieldTable,
    }

    /// Confirms a `basic.consume`.
    BasicConsumeOk = (60, 21, "basic.consume-ok") {
        /// The consumer's tag.
        consumer_tag: ShortStr,
    }

    /// Cancels a consumer (sent by RabbitMQ to clients too, e.g. when the
    /// queue is deleted).
    BasicCancel = (60, 30, "basic.cancel") {
        /// The consumer's tag.
        consumer_tag: ShortStr,
        /// Do not send `basic.cancel-ok`.
        no_wait: bool,
    }

    /// Confirms a `basic.cancel`.
    BasicCancelOk = (60, 31, "basic.cancel-ok") {
        /// The cancelled consumer's tag.
        consumer_tag: ShortStr,
    }

    /// Publishes a message; a content header and body follow.
    BasicPublish = (60, 40, "basic.publish") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Exchange to publish to (empty = default exchange).
        exchange: ShortStr,
        /// Routing key.
        routing_key: ShortStr,
        /// Return the message if it cannot be routed to any queue.
        mandatory: bool,
        /// Return the message if it cannot be delivered at once (not
        /// supported by RabbitMQ).
        immediate: bool,
    }

    /// Returns an unroutable mandatory message; content follows.
    BasicReturn = (60, 50, "basic.return") {
        /// Reply code (e.g. 312 no-route).
        reply_code: u16,
        /// Human-readable reason.
        reply_text: ShortStr,
        /// Exchange the message was published to.
        exchange: ShortStr,
        /// Routing key it was published with.
        routing_key: ShortStr,
    }

    /// Delivers a message to a consumer; content follows.
    BasicDeliver = (60, 60, "basic.deliver") {
        /// Tag of the consumer the message is for.
        consumer_tag: ShortStr,
        /// Channel-scoped delivery tag used to acknowledge.
        delivery_tag: u64,
        /// The message was delivered before.
        redelivered: bool,
        /// Exchange the message was published to.
        exchange: ShortStr,
        /// Routing key it was published with.
        routing_key: ShortStr,
    }

    /// Fetches one message from a queue.
    BasicGet = (60, 70, "basic.get") {
        /// Reserved (formerly `ticket`), 0.
        reserved_1: u16,
        /// Queue name.
        queue: ShortStr,
        /// The message needs no acknowledgement.
        no_ack: bool,
    }

    /// Answers a `basic.get` with a message; content follows.
    BasicGetOk = (60, 71, "basic.get-ok") {
        /// Channel-scoped delivery tag used to acknowledge.
        delivery_tag: u64,
        /// The message was delivered before.
        redelivered: bool,
        /// Exchange the message was published to.
        exchange: ShortStr,
        /// Routing key it was published with.
        routing_key: ShortStr,
        /// Messages still ready in the queue.
        message_count: u32,
    }

    /// Answers a `basic.get` when the queue is empty.
    BasicGetEmpty = (60, 72, "basic.get-empty") {
        /// Reserved (formerly `cluster-id`), empty.
        reserved_1: ShortStr,
    }

    /// Acknowledges deliveries (from the client) or publishes (from the
    /// server in confirm mode).
    BasicAck = (60, 80, "basic.ack") {
        /// Delivery tag (or publish sequence number).
        delivery_tag: u64,
        /// Also acknowledge every earlier tag.
        multiple: bool,
    }

    /// Rejects one delivery.
    BasicReject = (60, 90, "basic.reject") {
        /// Delivery tag.
        delivery_tag: u64,
        /// Requeue instead of discarding/dead-lettering.
        requeue: bool,
    }

    /// Deprecated asynchronous form of `basic.recover`.
    BasicRecoverAsync = (60, 100, "basic.recover-async") {
        /// Requeue instead of redelivering to the same consumer.
        requeue: bool,
    }

    /// Redelivers all unacknowledged messages of the channel.
    BasicRecover = (60, 110, "basic.recover") {
        /// Requeue instead of redelivering to the same consumer.
        requeue: bool,
    }

    /// Confirms a `basic.recover`.
    BasicRecoverOk = (60, 111, "basic.recover-ok") {}

    /// RabbitMQ extension: negative acknowledgement of one or more deliveries
    /// (or, from the server in confirm mode, of publishes).
    BasicNack = (60, 120, "basic.nack") {
        /// Delivery tag (or publish sequence number).
        delivery_tag: u64,
        /// Also reject every earlier tag.
        multiple: bool,
        /// Requeue instead of discarding/dead-lettering.
        requeue: bool,
    }
}
