//! How a policy combines with an object's own arguments: the arguments a queue or
//! exchange effectively has, as RabbitMQ 3.10.8 resolves each setting when both a policy
//! and an `x-` argument give it (`rabbit_queue_type_util:args_policy_lookup/3` and its
//! resolvers). A setting given by only one side is taken from that side.
//!
//! | key | classic queue | quorum queue | stream |
//! |---|---|---|---|
//! | `max-length` | lower | lower | (policy not applicable) |
//! | `max-length-bytes` | lower | lower | policy |
//! | `message-ttl` | lower | lower | (policy not applicable) |
//! | `expires` | lower | policy | (policy not applicable) |
//! | `overflow` | argument | policy | (policy not applicable) |
//! | `dead-letter-exchange` | argument | argument | (policy not applicable) |
//! | `dead-letter-routing-key` | argument | argument | (policy not applicable) |
//! | `max-age` | (policy not applicable) | (policy not applicable) | policy |
//! | `stream-max-segment-size-bytes` | (policy not applicable) | (policy not applicable) | policy |
//! | `alternate-exchange` (exchanges) | argument | | |
//!
//! Sources: classic, `process_args_policy/1` in `rabbit_amqqueue_process.erl`
//! (`res_min`, `res_arg`); quorum, `rabbit_quorum_queue.erl` (`min/2`,
//! `policyHasPrecedence/2`, `queueArgHasPrecedence/2`); stream, `rabbit_stream_queue.erl`
//! (`policy_precedence/2`); exchanges, `rabbit_policy:get_arg/3` (the exchange's
//! `alternate-exchange` argument first). rabbitmq-website `docs/parameters.md` ("Policies"
//! and "Operator Policies") and `docs/dlx.md` say the same for the documented keys.
//!
//! The result is an argument table to be parsed like a declare's (`arguments::
//! parse_queue_args`), so a policy's values meet the same checks as clients' arguments.

use bytes::Bytes;
use serde_json::Value;

use super::policies::{Policy, QueueKind};
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

/// How a setting is resolved when both sides give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolve {
    /// The lower of the two numbers.
    Lower,
    /// The queue's argument.
    Argument,
    /// The policy's value.
    Policy,
}

/// The settings a queue type reads from its policy, and how each resolves.
/// Each entry: the policy key, the argument's name, and the rule.
fn queue_rules(kind: QueueKind) -> &'static [(&'static str, &'static str, Resolve)] {
    match kind {
        QueueKind::Classic => &[
            ("expires", "x-expires", Resolve::Lower),
            ("dead-letter-exchange", "x-dead-letter-exchange", Resolve::Argument),
            ("dead-letter-routing-key", "x-dead-letter-routing-key", Resolve::Argument),
            ("message-ttl", "x-message-ttl", Resolve::Lower),
            ("max-length", "x-max-length", Resolve::Lower),
            ("max-length-bytes", "x-max-length-bytes", Resolve::Lower),
            ("overflow", "x-overflow", Resolve::Argument),
        ],
        QueueKind::Quorum => &[
            ("max-length", "x-max-length", Resolve::Lower),
            ("overflow", "x-overflow", Resolve::Policy),
            ("max-length-bytes", "x-max-length-bytes", Resolve::Lower),
            ("expires", "x-expires", Resolve::Policy),
            ("message-ttl", "x-message-ttl", Resolve::Lower),
            ("dead-letter-exchange", "x-dead-letter-exchange", Resolve::Argument),
            ("dead-letter-routing-key", "x-dead-letter-routing-key", Resolve::Argument),
        ],
        QueueKind::Stream => &[
            ("max-length-bytes", "x-max-length-bytes", Resolve::Policy),
            ("max-age", "x-max-age", Resolve::Policy),
            ("stream-max-segment-size-bytes", "x-stream-max-segment-size-bytes", Resolve::Policy),
        ],
    }
}

/// A policy value as an argument: numbers as signed 64-bit (what RabbitMQ's
/// `to_amqp_table` makes of JSON integers), strings as long strings.
fn field_value(value: &Value) -> Option<FieldValue> {
    match value {
        Value::Number(number) => {
            number.as_i64().or_else(|| number.as_u64().map(|_| i64::MAX)).map(FieldValue::I64)
        }
        Value::String(text) => Some(FieldValue::LongStr(Bytes::copy_from_slice(text.as_bytes()))),
        _ => None,
    }
}

/// The arguments a queue of `kind` effectively has, given its `policy` (already chosen
/// by [`super::policies::effective`], so applicable to it) and its own `arguments`.
pub fn queue_arguments(policy: Option<&Policy>, kind: QueueKind, arguments: &FieldTable) -> FieldTable {
    let mut merged = arguments.clone();
    let Some(policy) = policy else {
        return merged;
    };
    for (key, argument_name, resolve) in queue_rules(kind) {
        let Some(policy_value) = policy.get(key).and_then(field_value) else {
            continue;
        };
        let chosen = match (arguments.get(argument_name), resolve) {
            (None, _) | (Some(_), Resolve::Policy) => policy_value,
            (Some(argument), Resolve::Argument) => argument.clone(),
            (Some(argument), Resolve::Lower) => match (argument.as_i64(), policy_value.as_i64()) {
                (Some(mine), Some(theirs)) if theirs < mine => policy_value,
                // A non-numeric argument is kept, for the declare's checks to refuse.
                _ => argument.clone(),
            },
        };
        merged.insert(ShortStr::from_static(argument_name), chosen);
    }
    merged
}

/// The arguments an exchange effectively has: its `alternate-exchange` argument, or else
/// its policy's.
pub fn exchange_arguments(policy: Option<&Policy>, arguments: &FieldTable) -> FieldTable {
    let mut merged = arguments.clone();
    if arguments.contains_key("alternate-exchange") {
        return merged;
    }
    if let Some(value) = policy.and_then(|policy| policy.get("alternate-exchange")).and_then(field_value) {
        merged.insert(ShortStr::from_static("alternate-exchange"), value);
    }
    merged
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(definition: Value) -> Policy {
        Policy::from_json("/", "p", &json!({"pattern": ".*", "definition": definition}))
            .expect("valid policy")
    }

    fn table(pairs: &[(&'static str, FieldValue)]) -> FieldTable {
        pairs.iter().map(|(key, value)| (ShortStr::from_static(key), value.clone())).collect()
    }

    fn text(value: &str) -> FieldValue {
        FieldValue::LongStr(Bytes::copy_from_slice(value.as_bytes()))
    }

    #[test]
    fn classic_queues_take_the_lower_limit_and_their_own_dead_lettering() {
        let p = policy(json!({"max-length": 10, "message-ttl": 5000, "expires": 60000,
            "dead-letter-exchange": "pdlx", "overflow": "reject-publish", "max-length-bytes": 100}));
        let args = table(&[
            ("x-max-length", FieldValue::I32(20)),
            ("x-message-ttl", FieldValue::I64(1000)),
            ("x-dead-letter-exchange", text("qdlx")),
            ("x-overflow", text("drop-head")),
        ]);
        let merged = queue_arguments(Some(&p), QueueKind::Classic, &args);
        assert_eq!(merged.get_i64("x-max-length"), Some(10), "policy lower");
        assert_eq!(merged.get_i64("x-message-ttl"), Some(1000), "argument lower");
        assert_eq!(merged.get_i64("x-expires"), Some(60000), "only the policy gives it");
        assert_eq!(merged.get_i64("x-max-length-bytes"), Some(100));
        assert_eq!(merged.get_str("x-dead-letter-exchange"), Some("qdlx"), "argument wins");
        assert_eq!(merged.get_str("x-overflow"), Some("drop-head"), "argument wins");
    }

    #[test]
    fn quorum_queues_take_the_policy_for_overflow_and_expires() {
        let p = policy(json!({"overflow": "reject-publish", "expires": 1000, "max-length": 7}));
        let args = table(&[
            ("x-overflow", text("drop-head")),
            ("x-expires", FieldValue::I64(5)),
            ("x-max-length", FieldValue::I64(3)),
        ]);
        let merged = queue_arguments(Some(&p), QueueKind::Quorum, &args);
        assert_eq!(merged.get_str("x-overflow"), Some("reject-publish"));
        assert_eq!(merged.get_i64("x-expires"), Some(1000));
        assert_eq!(merged.get_i64("x-max-length"), Some(3));
    }

    #[test]
    fn streams_take_the_policy_for_retention() {
        let p =
            policy(json!({"max-age": "7D", "max-length-bytes": 1000, "stream-max-segment-size-bytes": 500}));
        let args = table(&[("x-max-age", text("1h")), ("x-max-length-bytes", FieldValue::I64(10))]);
        let merged = queue_arguments(Some(&p), QueueKind::Stream, &args);
        assert_eq!(merged.get_str("x-max-age"), Some("7D"));
        assert_eq!(merged.get_i64("x-max-length-bytes"), Some(1000));
        assert_eq!(merged.get_i64("x-stream-max-segment-size-bytes"), Some(500));
    }

    #[test]
    fn keys_a_queue_type_ignores_are_not_added() {
        let p = policy(json!({"alternate-exchange": "ae", "max-length": 1}));
        let merged = queue_arguments(Some(&p), QueueKind::Classic, &FieldTable::default());
        assert!(!merged.contains_key("x-alternate-exchange"));
        assert_eq!(merged.get_i64("x-max-length"), Some(1));
        assert_eq!(queue_arguments(None, QueueKind::Classic, &FieldTable::default()), FieldTable::default());
    }

    #[test]
    fn a_non_numeric_argument_is_kept_for_the_declare_to_refuse() {
        let p = policy(json!({"max-length": 1}));
        let args = table(&[("x-max-length", text("ten"))]);
        assert_eq!(queue_arguments(Some(&p), QueueKind::Classic, &args).get_str("x-max-length"), Some("ten"));
    }

    #[test]
    fn an_exchange_argument_wins_over_the_policy() {
        let p = policy(json!({"alternate-exchange": "from-policy"}));
        let merged = exchange_arguments(Some(&p), &FieldTable::default());
        assert_eq!(merged.get_str("alternate-exchange"), Some("from-policy"));
        let own = table(&[("alternate-exchange", text("own"))]);
        assert_eq!(exchange_arguments(Some(&p), &own).get_str("alternate-exchange"), Some("own"));
    }
}
