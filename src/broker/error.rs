//! The broker's errors, carrying the facts RabbitMQ's reply texts need. `amqp::reply` maps
//! each to its reply code in one exhaustive match.

/// What the broker refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 404: the queue does not exist.
    #[error("no queue '{0}' in vhost '/'")]
    QueueNotFound(String),
    /// 404: the exchange does not exist.
    #[error("no exchange '{0}' in vhost '/'")]
    ExchangeNotFound(String),
    /// 406: a redeclare differs from the existing entity.
    #[error("inequivalent arg '{arg}' for {kind} '{name}' in vhost '/': received {received} but current is {current}")]
    Inequivalent {
        /// `queue` or `exchange`.
        kind: &'static str,
        /// The entity's name.
        name: String,
        /// The argument or property.
        arg: String,
        /// What the declare said, formatted as RabbitMQ does.
        received: String,
        /// What the entity has, formatted as RabbitMQ does.
        current: String,
    },
    /// 405: an exclusive queue of another connection, or a different exclusive flag.
    #[error("cannot obtain exclusive access to locked queue '{0}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.")]
    Locked(String),
    /// 403: the queue has an exclusive consumer, or one is asked for beside others.
    #[error("queue '{0}' in vhost '/' in exclusive use")]
    ExclusiveUse(String),
    /// 403: names starting `amq.` are the server's.
    #[error("{kind} name '{name}' contains reserved prefix 'amq.*'")]
    ReservedName {
        /// `queue` or `exchange`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// 403: internal exchanges take no publishes.
    #[error("cannot publish to internal exchange '{0}' in vhost '/'")]
    InternalExchange(String),
    /// 403: the default exchange cannot be bound, unbound or deleted.
    #[error("operation not permitted on the default exchange")]
    DefaultExchange,
    /// 403: built-in exchanges cannot be deleted.
    #[error("deletion of system exchange '{0}' in vhost '/' not allowed")]
    SystemExchange(String),
    /// 406: `queue.delete` with if-empty on a queue with messages.
    #[error("queue '{0}' in vhost '/' not empty")]
    NotEmpty(String),
    /// 406: `queue.delete` with if-unused on a queue with consumers.
    #[error("queue '{0}' in vhost '/' in use")]
    QueueInUse(String),
    /// 406: `exchange.delete` with if-unused on an exchange with bindings.
    #[error("exchange '{0}' in vhost '/' in use")]
    ExchangeInUse(String),
    /// 406: an argument of the wrong type or out of range.
    #[error("invalid arg '{arg}' for {kind} '{name}' in vhost '/': {reason}")]
    InvalidArg {
        /// `queue` or `exchange`.
        kind: &'static str,
        /// The entity.
        name: String,
        /// The argument.
        arg: String,
        /// RabbitMQ's description.
        reason: String,
    },
    /// 406: a property a queue type cannot have.
    #[error("invalid property '{property}' for queue '{name}' in vhost '/'")]
    InvalidProperty {
        /// The queue.
        name: String,
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
