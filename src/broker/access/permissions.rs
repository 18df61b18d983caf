//! Permissions: per user and vhost, three regular expressions (configure, write, read)
//! matched against resource names; per user, vhost and topic exchange, two (write, read)
//! matched against routing keys. And the refusals, with RabbitMQ's texts.
//!
//! Matching is RabbitMQ's (`deps/rabbit/src/rabbit_auth_backend_internal.erl`, v3.10.8,
//! `check_resource_access/4` and `check_topic_access/4`): the expression is searched for
//! in the name, unanchored (`^$` matches only the empty name, `.*` every name), and an
//! empty expression means `^$`. No permission entry for the vhost refuses everything; no
//! topic permission for an exchange allows every routing key. In topic expressions
//! `{username}` and `{vhost}` are replaced by the user's and vhost's names before
//! matching (rabbitmq-website `docs/access-control.md`, "Topic Authorisation"); as both
//! are fixed per entry, the expanded expression is compiled once, when it is set.
//!
//! What each AMQP method needs, as `rabbit_channel.erl` (v3.10.8) checks it, for the
//! gateway that wires these checks in:
//!
//! | method | permission |
//! |---|---|
//! | `queue.declare` (not passive), `queue.delete` | configure on the queue |
//! | `queue.declare` with `x-dead-letter-exchange` | also read on the queue, write on the DLX |
//! | `exchange.declare` (not passive), `exchange.delete` | configure on the exchange |
//! | `exchange.declare` with `alternate-exchange` | also read on the exchange, write on the AE |
//! | `queue.bind`/`unbind`, `exchange.bind`/`unbind` | write on the destination, read on the source; topic read on the routing key if the source is a topic exchange |
//! | `basic.publish` | write on the exchange; topic write on the routing key if it is a topic exchange |
//! | `basic.consume`, `basic.get`, `queue.purge` | read on the queue |
//!
//! Expressions are compiled byte-wise without Unicode classes, as Erlang's `re` runs on
//! binaries: `.` is any byte but a newline, `\w` is ASCII. Rust's `regex` has no
//! look-around or back-references, which PCRE has; such expressions are refused.

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};

use crate::limits::{ACCESS_PATTERN_BYTES_MAX, ACCESS_REGEX_COMPILED_BYTES_MAX};

/// One of the three permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Create and delete resources, change their settings.
    Configure,
    /// Publish to an exchange, bind to a queue or exchange (as destination).
    Write,
    /// Consume from a queue, bind from an exchange (as source), purge.
    Read,
}

/// What kind of resource a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A queue.
    Queue,
    /// An exchange. The default exchange (`""`) is checked as `amq.default`, as
    /// RabbitMQ does (`rabbit_access_control:check_resource_access/4`).
    Exchange,
}

impl ResourceKind {
    /// The word RabbitMQ uses in texts.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Queue => "queue",
            ResourceKind::Exchange => "exchange",
        }
    }
}

/// A resource to check a permission on: a queue or an exchange of the vhost at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    /// Queue or exchange.
    pub kind: ResourceKind,
    /// The name as on the wire.
    pub name: &'a [u8],
}

impl<'a> Resource<'a> {
    /// The queue `name`.
    pub fn queue(name: &'a [u8]) -> Resource<'a> {
        Resource { kind: ResourceKind::Queue, name }
    }

    /// The exchange `name`.
    pub fn exchange(name: &'a [u8]) -> Resource<'a> {
        Resource { kind: ResourceKind::Exchange, name }
    }

    /// The name permissions are matched against: `amq.default` for the default exchange.
    pub fn checked_name(&self) -> &'a [u8] {
        match (self.kind, self.name.is_empty()) {
            (ResourceKind::Exchange, true) => b"amq.default",
            _ => self.name,
        }
    }
}

/// A regular expression as set, and compiled.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

/// A regular expression that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Longer than [`ACCESS_PATTERN_BYTES_MAX`].
    #[error("regular expression is {length} bytes long; at most {max} are accepted")]
    TooLong {
        /// Its length in bytes.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// Not a regular expression Warren can run.
    #[error("invalid regular expression '{source_text}': {reason}")]
    Invalid {
        /// The expression.
        source_text: String,
        /// What the parser said.
        reason: String,
    },
}

impl Pattern {
    /// Compiles `source`; an empty expression matches only the empty name.
    ///
    /// # Errors
    /// [`PatternError`] for an expression too long or not valid.
    pub fn permission(source: &str) -> Result<Pattern, PatternError> {
        let effective = if source.is_empty() { "^$" } else { source };
        Pattern::compiled(source, effective)
    }

    /// Compiles `source` as it is (policies: an empty pattern matches every name).
    ///
    /// # Errors
    /// [`PatternError`] for an expression too long or not valid.
    pub fn plain(source: &str) -> Result<Pattern, PatternError> {
        Pattern::compiled(source, source)
    }

    /// Keeps `source` as the expression shown, and compiles `effective`.
    fn compiled(source: &str, effective: &str) -> Result<Pattern, PatternError> {
        if effective.len() > ACCESS_PATTERN_BYTES_MAX {
            return Err(PatternError::TooLong { length: effective.len(), max: ACCESS_PATTERN_BYTES_MAX });
        }
        let regex = RegexBuilder::new(effective)
            .unicode(false)
            .size_limit(ACCESS_REGEX_COMPILED_BYTES_MAX)
            .build()
            .map_err(|error| PatternError::Invalid {
                source_text: source.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(Pattern { source: source.to_owned(), regex })
    }

    /// The expression as it was set.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the expression occurs in `name`.
    pub fn is_match(&self, name: &[u8]) -> bool {
        self.regex.is_match(name)
    }
}

/// A user's permissions in one vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPermissions {
    /// Which names the user may configure.
    pub configure: Pattern,
    /// Which names the user may write to.
    pub write: Pattern,
    /// Which names the user may read from.
    pub read: Pattern,
}

impl UserPermissions {
    /// Compiles the three expressions.
    ///
    /// # Errors
    /// [`PatternError`] for the first one that cannot be used.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<UserPermissions, PatternError> {
        Ok(UserPermissions {
            configure: Pattern::permission(configure)?,
            write: Pattern::permission(write)?,
            read: Pattern::permission(read)?,
        })
    }

    /// Whether `permission` on `resource` is granted. Allocates nothing.
    pub fn allows(&self, resource: Resource<'_>, permission: Permission) -> bool {
        let pattern = match permission {
            Permission::Configure => &self.configure,
            Permission::Write => &self.write,
            Permission::Read => &self.read,
        };
        pattern.is_match(resource.checked_name())
    }
}

/// A topic expression: the text as set, and its expansion compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    /// The expression as set, with its `{username}` and `{vhost}` variables.
    pub source: String,
    expanded: Pattern,
}

impl TopicPattern {
    /// Expands `{username}` and `{vhost}` in `source` and compiles the result.
    ///
    /// # Errors
    /// [`PatternError`] when the expansion is too long or not valid.
    pub fn new(source: &str, user: &str, vhost: &str) -> Result<TopicPattern, PatternError> {
        let expanded = source.replace("{username}", user).replace("{vhost}", vhost);
        let effective = if expanded.is_empty() { "^$".to_owned() } else { expanded };
        let expanded = Pattern::compiled(&effective, &effective)?;
        Ok(TopicPattern { source: source.to_owned(), expanded })
    }

    /// Whether the routing key is allowed. Allocates nothing.
    pub fn is_match(&self, routing_key: &[u8]) -> bool {
        self.expanded.is_match(routing_key)
    }
}

/// A user's topic permissions on one exchange of one vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPermission {
    /// The topic exchange these apply to.
    pub exchange: String,
    /// Routing keys the user may publish with.
    pub write: TopicPattern,
    /// Routing keys the user may bind (and consume) with.
    pub read: TopicPattern,
}

impl TopicPermission {
    /// Compiles both expressions for `user` in `vhost`.
    ///
    /// # Errors
    /// [`PatternError`] for the first one that cannot be used.
    pub fn new(
        user: &str,
        vhost: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> Result<TopicPermission, PatternError> {
        Ok(TopicPermission {
            exchange: exchange.to_owned(),
            write: TopicPattern::new(write, user, vhost)?,
            read: TopicPattern::new(read, user, vhost)?,
        })
    }

    /// Whether `permission` with `routing_key` is granted; configure is never asked of
    /// topics and is granted. Allocates nothing.
    pub fn allows(&self, routing_key: &[u8], permission: Permission) -> bool {
        match permission {
            Permission::Write => self.write.is_match(routing_key),
            Permission::Read => self.read.is_match(routing_key),
            Permission::Configure => true,
        }
    }
}

/// How the gateway answers a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    /// `403 ACCESS_REFUSED` (channel close).
    AccessRefused,
    /// `530 NOT_ALLOWED` (connection close).
    NotAllowed,
    /// `406 PRECONDITION_FAILED` (channel close).
    PreconditionFailed,
}

/// A refused operation, rendered with RabbitMQ's text (`Display`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefused {
    /// `access to queue 'q' in vhost 'v' refused for user 'u'` (`rabbit_access_control`).
    #[error("access to {} '{name}' in vhost '{vhost}' refused for user '{user}'", kind.as_str())]
    Resource {
        /// Queue or exchange.
        kind: ResourceKind,
        /// The name checked (`amq.default` for the default exchange).
        name: String,
        /// The vhost.
        vhost: String,
        /// The user.
        user: String,
    },
    /// `access to topic 'key' in exchange 'x' in vhost 'v' refused for user 'u'`.
    #[error("access to topic '{routing_key}' in exchange '{exchange}' in vhost '{vhost}' refused for user '{user}'")]
    Topic {
        /// The routing key.
        routing_key: String,
        /// The topic exchange.
        exchange: String,
        /// The vhost.
        vhost: String,
        /// The user.
        user: String,
    },
    /// `access to vhost 'v' refused for user 'u'`: no permissions there.
    #[error("access to vhost '{vhost}' refused for user '{user}'")]
    Vhost {
        /// The vhost.
        vhost: String,
        /// The user.
        user: String,
    },
    /// `vhost v not found` (`rabbit_reader.erl`, connection.open).
    #[error("vhost {vhost} not found")]
    VhostNotFound {
        /// The vhost asked for.
        vhost: String,
    },
    /// The vhost's `max-connections` is reached.
    #[error("access to vhost '{vhost}' refused for user '{user}': connection limit ({limit}) is reached")]
    VhostConnectionLimit {
        /// The vhost.
        vhost: String,
        /// The user.
        user: String,
        /// The limit.
        limit: u64,
    },
    /// The user's `max-connections` is reached.
    #[error("connection refused for user '{user}': user connection limit ({limit}) is reached")]
    UserConnectionLimit {
        /// The user.
        user: String,
        /// The limit.
        limit: u64,
    },
    /// The user's `max-channels` is reached.
    #[error(
        "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({limit})"
    )]
    UserChannelLimit {
        /// The user.
        user: String,
        /// The limit.
        limit: u64,
    },
    /// The vhost's `max-queues` is reached (`rabbit_channel.erl`,
    /// `check_vhost_queue_limit/2`).
    #[error("cannot declare queue '{queue}': queue limit in vhost '{vhost}' ({limit}) is reached")]
    VhostQueueLimit {
        /// The queue being declared.
        queue: String,
        /// The vhost.
        vhost: String,
        /// The limit.
        limit: u64,
    },
}

impl AccessRefused {
    /// The reply the gateway sends, as RabbitMQ does for each refusal.
    pub fn code(&self) -> RefusalCode {
        match self {
            AccessRefused::Resource { .. } | AccessRefused::Topic { .. } => RefusalCode::AccessRefused,
            AccessRefused::VhostQueueLimit { .. } => RefusalCode::PreconditionFailed,
            AccessRefused::Vhost { .. }
            | AccessRefused::VhostNotFound { .. }
            | AccessRefused::VhostConnectionLimit { .. }
            | AccessRefused::UserConnectionLimit { .. }
            | AccessRefused::UserChannelLimit { .. } => RefusalCode::NotAllowed,
        }
    }
}

#[cfg(test)]
#[path = "permissions_tests.rs"]
mod tests;
