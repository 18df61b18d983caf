//! The broker's errors, carrying the facts RabbitMQ's reply texts need. `amqp::reply` maps
//! each to its reply code in one exhaustive match.

use std::sync::Arc;

/// A queue's or an exchange's name with its vhost, as reply texts name them
/// (`queue 'q' in vhost 'v'`). Displays as the name alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The name, with invalid UTF-8 replaced.
    pub name: Box<str>,
    /// The vhost it lives in.
    pub vhost: Arc<str>,
}

impl Name {
    /// `name` (bytes, invalid UTF-8 replaced) in `vhost`.
    pub fn new(name: &[u8], vhost: &Arc<str>) -> Name {
        Name { name: String::from_utf8_lossy(name).into(), vhost: Arc::clone(vhost) }
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// What the broker refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 404: the queue does not exist.
    #[error("no queue '{}' in vhost '{}'", .0.name, .0.vhost)]
    QueueNotFound(Name),
    /// 404: the exchange does not exist.
    #[error("no exchange '{}' in vhost '{}'", .0.name, .0.vhost)]
    ExchangeNotFound(Name),
    /// 406: a redeclare differs from the existing entity.
    #[error("inequivalent arg '{arg}' for {kind} '{}' in vhost '{}': received {received} but current is {current}", .name.name, .name.vhost)]
    Inequivalent {
        /// `queue` or `exchange`.
        kind: &'static str,
        /// The entity's name.
        name: Name,
        /// The argument or property.
        arg: String,
        /// What the declare said, formatted as RabbitMQ does.
        received: String,
        /// What the entity has, formatted as RabbitMQ does.
        current: String,
    },
    /// 405: an exclusive queue of another connection, or a different exclusive flag.
    #[error("cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.", .0.name, .0.vhost)]
    Locked(Name),
    /// 403: the queue has an exclusive consumer, or one is asked for beside others.
    #[error("queue '{}' in vhost '{}' in exclusive use", .0.name, .0.vhost)]
    ExclusiveUse(Name),
    /// 403: names starting `amq.` are the server's.
    #[error("{kind} name '{name}' contains reserved prefix 'amq.*'")]
    ReservedName {
        /// `queue` or `exchange`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// 403: internal exchanges take no publishes.
    #[error("cannot publish to internal exchange '{}' in vhost '{}'", .0.name, .0.vhost)]
    InternalExchange(Name),
    /// 403: the default exchange cannot be bound, unbound or deleted.
    #[error("operation not permitted on the default exchange")]
    DefaultExchange,
    /// 403: built-in exchanges cannot be deleted.
    #[error("deletion of system exchange '{}' in vhost '{}' not allowed", .0.name, .0.vhost)]
    SystemExchange(Name),
    /// 406: `queue.delete` with if-empty on a queue with messages.
    #[error("queue '{}' in vhost '{}' not empty", .0.name, .0.vhost)]
    NotEmpty(Name),
    /// 406: `queue.delete` with if-unused on a queue with consumers.
    #[error("queue '{}' in vhost '{}' in use", .0.name, .0.vhost)]
    QueueInUse(Name),
    /// 406: `exchange.delete` with if-unused on an exchange with bindings.
    #[error("exchange '{}' in vhost '{}' in use", .0.name, .0.vhost)]
    ExchangeInUse(Name),
    /// 406: an argument of the wrong type or out of range.
    #[error("invalid arg '{arg}' for {kind} '{}' in vhost '{}': {reason}", .name.name, .name.vhost)]
    InvalidArg {
        /// `queue` or `exchange`.
        kind: &'static str,
        /// The entity.
        name: Name,
        /// The argument.
        arg: String,
        /// RabbitMQ's description.
        reason: String,
    },
    /// 406: a property a queue type cannot have.
    #[error("invalid property '{property}' for queue '{}' in vhost '{}'", .name.name, .name.vhost)]
    InvalidProperty {
        /// The queue.
        name: Name,
        /// The property, e.g. `non-durable`.
        property: &'static str,
    },
    /// 503 (connection): an exchange type the broker does not know.
    #[error("unknown exchange type '{0}'")]
    UnknownExchangeType(String),
    /// 406: a message would overflow a queue with `x-overflow: reject-publish`.
    #[error("queue '{0}' is full")]
    Overflow(String),
    /// 541: the broker failed (storage error).
    #[error("internal error: {0}")]
    Internal(String),
}
