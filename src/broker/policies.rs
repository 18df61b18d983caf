//! Policies applied to the vhost's queues and exchanges, as RabbitMQ 3.10 applies them
//! (`rabbit_policy:update_matched_objects/3`): each queue and exchange follows the one
//! policy that matches it best (`access::policies::effective`), combined with its own
//! arguments (`access::policy_merge`). What results is resolved once, when the queue or
//! exchange is declared or recovered and whenever the vhost's policies change, and handed
//! to the running queue as settings: routing and publishing never look a policy up.
//!
//! When the policies change, every queue and exchange of the vhost is resolved again; those
//! whose policy or effective settings changed get them at once:
//!
//! - a classic queue's task gets its TTL, length limits and dead-letter channel
//!   (`queue::QueueSettings`), and a lower limit drops its oldest messages at once;
//! - a stream's log gets its retention (`max-length-bytes`, `max-age`); its segment size
//!   holds for segments made after the stream is opened again;
//! - a queue with an `expires` whose policy changed has its lease renewed, as RabbitMQ
//!   restarts its expiry timer;
//! - an exchange gets its alternate exchange, and cached routes are dropped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::access::{policies, policy_merge, Policy, PolicyTarget, QueueKind};
use super::arguments::{self, QueueArgs, QueueType};
use super::naming::text;
use super::{Broker, ExchangeEntry, QueueEntry};
use crate::limits::{RETENTION_CHECK_INTERVAL_MS_DEFAULT, STREAM_AGE_CHECK_INTERVAL_MS};
use crate::log::Retention;
use crate::queue::QueueSettings;
use crate::wire::amqp::FieldTable;

/// What a queue follows: its policy, if one applies, and the settings its arguments and
/// that policy give together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedQueuePolicy {
    /// The policy that applies (`None`: none matches).
    pub policy: Option<Arc<Policy>>,
    /// The queue's effective settings.
    pub args: QueueArgs,
}

/// What an exchange follows: its policy, if one applies, and its effective alternate
/// exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedExchangePolicy {
    /// The policy that applies (`None`: none matches).
    pub policy: Option<Arc<Policy>>,
    /// The exchange's `alternate-exchange` argument, or else its policy's.
    pub alternate: Option<Bytes>,
}

/// A stream's log retention for its effective settings.
pub(super) fn stream_retention(args: &QueueArgs) -> Retention {
    let check_ms = if args.max_age.is_some() {
        STREAM_AGE_CHECK_INTERVAL_MS
    } else {
        RETENTION_CHECK_INTERVAL_MS_DEFAULT
    };
    Retention {
        bytes_max: args.max_length_bytes,
        age_max: args.max_age,
        check_interval: Duration::from_millis(check_ms),
    }
}

/// The policy among `all` that applies to `name` as a `target`, shared.
fn choose(all: &[Arc<Policy>], vhost: &str, name: &[u8], target: PolicyTarget) -> Option<Arc<Policy>> {
    let chosen = policies::effective(all.iter().map(Arc::as_ref), vhost, name, target)?;
    all.iter().find(|policy| std::ptr::eq(policy.as_ref(), chosen)).cloned()
}

impl Broker {
    /// This vhost's policies.
    fn policy_list(&self) -> Arc<[Arc<Policy>]> {
        Arc::clone(&self.policies.read().expect("policies lock poisoned"))
    }

    /// The policy and effective settings of the queue `name`, declared with `arguments`
    /// (parsed: `declared`).
    pub(super) fn resolve_queue_policy(
        &self,
        name: &[u8],
        arguments: &FieldTable,
        declared: &QueueArgs,
    ) -> AppliedQueuePolicy {
        let kind = match declared.queue_type {
            QueueType::Classic => QueueKind::Classic,
            QueueType::Stream => QueueKind::Stream,
        };
        let Some(policy) = choose(&self.policy_list(), self.vhost(), name, PolicyTarget::Queue(kind)) else {
            return AppliedQueuePolicy { policy: None, args: declared.clone() };
        };
        let merged = policy_merge::queue_arguments(Some(&policy), kind, arguments);
        let args = arguments::parse_queue_settings(&self.named(name), &merged).unwrap_or_else(|error| {
            // Policy values are validated when the policy is set; the declared arguments
            // parsed. Nothing should fail here, and the queue keeps its own if it does.
            tracing::warn!(queue = %text(name), policy = %policy.name, %error, "policy not applied");
            declared.clone()
        });
        AppliedQueuePolicy { policy: Some(policy), args }
    }

    /// The policy and effective alternate exchange of the exchange `name`, declared with
    /// `arguments`.
    pub(super) fn resolve_exchange_policy(
        &self,
        name: &[u8],
        arguments: &FieldTable,
    ) -> AppliedExchangePolicy {
        let policy = choose(&self.policy_list(), self.vhost(), name, PolicyTarget::Exchange);
        let merged = policy_merge::exchange_arguments(policy.as_deref(), arguments);
        let alternate =
            merged.get("alternate-exchange").and_then(|value| value.as_bytes()).map(Bytes::copy_from_slice);
        AppliedExchangePolicy { policy, alternate }
    }

    /// Replaces this vhost's policies (`all`, by name) and applies them to every queue and
    /// exchange. Serialised with declares and deletes, so none is resolved against the
    /// policies being replaced.
    pub async fn set_policies(&self, all: Vec<Arc<Policy>>) {
        let _changes = self.changes.lock().await;
        {
            let mut current = self.policies.write().expect("policies lock poisoned");
            let unchanged = current.len() == all.len()
                && current.iter().zip(&all).all(|(old, new)| Arc::ptr_eq(old, new));
            if unchanged {
                return;
            }
            *current = all.into();
        }
        for queue in self.queues() {
            self.reapply_queue_policy(&queue).await;
        }
        let mut exchanges_changed = false;
        for exchange in self.exchanges() {
            let applied = self.resolve_exchange_policy(&exchange.name, &exchange.arguments);
            exchanges_changed |= exchange.set_applied(applied);
        }
        if exchanges_changed {
            self.topology_changed();
        }
    }

    /// Resolves `queue`'s policy again and hands what changed to the running queue.
    async fn reapply_queue_policy(&self, queue: &QueueEntry) {
        let applied = self.resolve_queue_policy(&queue.name, &queue.arguments, &queue.args);
        let Some(previous) = queue.set_applied(applied.clone()) else { return };
        let args = &applied.args;
        if queue.is_stream() {
            if stream_retention(&previous.args) != stream_retention(args) {
                if let Err(error) = queue.handle.log().set_retention(stream_retention(args)).await {
                    tracing::warn!(queue = %queue.name_str(), %error, "stream retention not applied");
                }
            }
        } else {
            let route = (&args.dead_letter_exchange, &args.dead_letter_routing_key);
            let dead_letter = (route
                != (&previous.args.dead_letter_exchange, &previous.args.dead_letter_routing_key))
                .then(|| self.dead_letter_route(&queue.name, args));
            queue.handle.update(self.queue_settings(args, dead_letter)).await;
        }
        if previous.policy != applied.policy && args.expires.is_some() {
            queue.touch();
        }
    }

    /// A classic queue's settings for its effective `args`: length limits go to the queue
    /// only with drop-head (reject-publish is checked where messages are published).
    pub(super) fn queue_settings(
        &self,
        args: &QueueArgs,
        dead_letter: Option<Option<crate::queue::DeadLetters>>,
    ) -> QueueSettings {
        let drop_head = args.overflow == arguments::Overflow::DropHead;
        QueueSettings {
            message_ttl: args.message_ttl,
            max_length: if drop_head { args.max_length } else { None },
            max_length_bytes: if drop_head { args.max_length_bytes } else { None },
            dead_letter,
            // Set when the settings are sent (`QueueHandle::update`).
            from_offset: 0,
        }
    }
}

impl QueueEntry {
    /// The policy the queue follows, if any: its name and definition are what the
    /// management API shows as `policy` and `effective_policy_definition` (Warren has no
    /// operator policies, so the effective definition is the policy's).
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.applied.read().expect("queue policy lock poisoned").policy.clone()
    }

    /// The queue's settings: its arguments combined with its policy.
    pub fn effective_args(&self) -> QueueArgs {
        self.applied.read().expect("queue policy lock poisoned").args.clone()
    }

    /// Stores `applied` and returns what it replaces, when that differs.
    fn set_applied(&self, applied: AppliedQueuePolicy) -> Option<AppliedQueuePolicy> {
        let mut current = self.applied.write().expect("queue policy lock poisoned");
        if *current == applied {
            return None;
        }
        self.set_publish_limits(&applied.args);
        Some(std::mem::replace(&mut *current, applied))
    }
}

impl ExchangeEntry {
    /// The policy the exchange follows, if any (see [`QueueEntry::policy`]).
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.applied.read().expect("exchange policy lock poisoned").policy.clone()
    }

    /// Where messages that match no binding go: the `alternate-exchange` argument, or else
    /// the policy's.
    pub fn alternate(&self) -> Option<Bytes> {
        self.applied.read().expect("exchange policy lock poisoned").alternate.clone()
    }

    /// Stores `applied`; answers whether the alternate exchange changed.
    fn set_applied(&self, applied: AppliedExchangePolicy) -> bool {
        let mut current = self.applied.write().expect("exchange policy lock poisoned");
        let alternate_changed = current.alternate != applied.alternate;
        *current = applied;
        alternate_changed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::broker::node::{Node, NodeOptions};
    use crate::broker::{ExchangeDeclare, QueueDeclare};
    use crate::log::Storage;
    use crate::wire::amqp::{FieldValue, ShortStr};

    async fn node() -> Arc<Node> {
        Node::open(NodeOptions {
            storage: Storage::Memory,
            segment_bytes: 64 * 1024,
            disk_headroom: None,
            memory_budget: None,
            default_user: "admin".into(),
            default_pass: "pw".into(),
        })
        .await
        .unwrap()
    }

    async fn set(node: &Node, name: &str, value: serde_json::Value) {
        let policy = Policy::from_json("/", name, &value).unwrap();
        node.change_access(|state| state.set_policy(policy)).await.unwrap();
    }

    fn queue(name: &str, arguments: &[(&'static str, FieldValue)]) -> QueueDeclare {
        QueueDeclare {
            name: Bytes::copy_from_slice(name.as_bytes()),
            arguments: arguments.iter().map(|(k, v)| (ShortStr::from_static(k), v.clone())).collect(),
            ..QueueDeclare::default()
        }
    }

    /// The applied policy and effective settings follow the policies as they are set,
    /// outranked and cleared; a queue's own arguments combine with them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queues_and_exchanges_follow_their_policy() {
        let node = node().await;
        let broker = node.vhost("/").unwrap();
        let (own, _, _) =
            broker.declare_queue(queue("q-own", &[("x-max-length", FieldValue::I32(2))])).await.unwrap();
        set(&node, "low", json!({"pattern": "^q-", "definition": {"max-length": 5, "expires": 1000}})).await;
        let (plain, _, _) = broker.declare_queue(queue("q-plain", &[])).await.unwrap();
        assert_eq!(plain.policy().unwrap().name, "low");
        assert_eq!(plain.effective_args().max_length, Some(5));
        assert_eq!(plain.expires(), Some(Duration::from_secs(1)));
        assert_eq!(plain.args.max_length, None, "the declared arguments stay as declared");
        assert_eq!(own.effective_args().max_length, Some(2), "the lower limit");

        set(&node, "high", json!({"pattern": "plain", "definition": {"message-ttl": 7}, "priority": 1}))
            .await;
        assert_eq!(plain.policy().unwrap().name, "high");
        assert_eq!(plain.policy().unwrap().definition.get("message-ttl"), Some(&json!(7)));
        assert_eq!(plain.effective_args().max_length, None, "one policy at a time");
        assert_eq!(own.policy().unwrap().name, "low");

        node.change_access(|state| state.clear_policy("/", "high")).await.unwrap();
        node.change_access(|state| state.clear_policy("/", "low")).await.unwrap();
        assert!(plain.policy().is_none() && own.policy().is_none());
        assert_eq!(own.effective_args(), own.args);

        let exchange = ExchangeDeclare {
            name: Bytes::from_static(b"x"),
            kind: Bytes::from_static(b"direct"),
            ..ExchangeDeclare::default()
        };
        broker.declare_exchange(exchange).await.unwrap();
        let topology = broker.topology();
        set(
            &node,
            "ae",
            json!({"pattern": "^x$", "definition": {"alternate-exchange": "ae"}, "apply-to": "exchanges"}),
        )
        .await;
        let x = broker.exchange(b"x").unwrap();
        assert_eq!(x.alternate().as_deref(), Some(&b"ae"[..]));
        assert_eq!(x.policy().unwrap().name, "ae");
        assert!(broker.topology() != topology, "cached routes are dropped");
        assert!(plain.policy().is_none(), "an exchanges policy applies to no queue");
    }
}
