//! Policies: per vhost, a name, a pattern, what they apply to, a priority and a
//! definition of settings, validated and matched as RabbitMQ 3.10.8 does
//! (`deps/rabbit/src/rabbit_policy.erl` and `rabbit_policies.erl`).
//!
//! - `apply-to` is `queues`, `exchanges` or `all` (3.10 knows no other value;
//!   `classic_queues`, `quorum_queues` and `streams` came in 3.12).
//! - The definition keys Warren supports are RabbitMQ's: [`SUPPORTED_KEYS`]. Any other key
//!   is refused with RabbitMQ's text, `[{<<"foo">>,1}] are not recognised policy
//!   settings`, and only after the known keys validated (`validation0/2`).
//! - An object's policy is the matching policy of highest priority in its vhost
//!   (`match_all/2`): the pattern is searched for in the name, unanchored, `apply-to` fits,
//!   and every key of the definition is one the queue's type supports (a queue type's
//!   `unsupported_policies` make the whole policy skip it: `is_policy_applicable/2`).
//!   RabbitMQ leaves the choice among equal priorities to its table's order; Warren takes
//!   the policy whose name sorts first, so the choice is stable.
//!
//! How the chosen policy combines with a queue's own `x-` arguments is in `policy_merge`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use super::erlang_term;
use super::permissions::Pattern;

/// The definition keys Warren supports, each validated as RabbitMQ validates it.
pub const SUPPORTED_KEYS: [&str; 10] = [
    "alternate-exchange",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "expires",
    "max-age",
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "overflow",
    "stream-max-segment-size-bytes",
];

/// Largest `stream-max-segment-size-bytes` RabbitMQ accepts (`?MAX_STREAM_MAX_SEGMENT_SIZE`
/// in `rabbit.hrl`).
pub const STREAM_SEGMENT_BYTES_MAX: u64 = 3_000_000_000;

/// What a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplyTo {
    /// Queues (and streams).
    Queues,
    /// Exchanges.
    Exchanges,
    /// Both.
    All,
}

impl ApplyTo {
    /// RabbitMQ's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }

    /// The value named `text`.
    ///
    /// # Errors
    /// RabbitMQ's text for any other value.
    pub fn parse(text: &str) -> Result<ApplyTo, String> {
        match text {
            "queues" => Ok(ApplyTo::Queues),
            "exchanges" => Ok(ApplyTo::Exchanges),
            "all" => Ok(ApplyTo::All),
            other => {
                Err(format!("apply-to '{other}' unrecognised; should be 'queues', 'exchanges' or 'all'"))
            }
        }
    }
}

/// The type of a queue, which decides which policies can apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueKind {
    /// A classic queue.
    Classic,
    /// A quorum queue (RabbitMQ's; kept so that imported rules stay exact).
    Quorum,
    /// A stream.
    Stream,
}

impl QueueKind {
    /// The supported keys a policy must not have to apply to this kind of queue (the
    /// intersection of [`SUPPORTED_KEYS`] with the type's `unsupported_policies` in
    /// `rabbit_classic_queue.erl`, `rabbit_quorum_queue.erl`, `rabbit_stream_queue.erl`).
    pub fn unsupported_keys(self) -> &'static [&'static str] {
        match self {
            QueueKind::Classic | QueueKind::Quorum => &["max-age", "stream-max-segment-size-bytes"],
            QueueKind::Stream => &[
                "expires",
                "message-ttl",
                "dead-letter-exchange",
                "dead-letter-routing-key",
                "max-length",
                "overflow",
            ],
        }
    }
}

/// What a policy is being matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyTarget {
    /// An exchange.
    Exchange,
    /// A queue of this kind.
    Queue(QueueKind),
}

/// A policy that failed validation. `Display` gives RabbitMQ's text, as `rabbitmqctl` and
/// definitions import print it: `Validation failed` and a blank line, then each error on
/// its own line (`format_error/1` in `rabbit_runtime_parameters.erl`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Validation failed\n\n{}", .errors.iter().map(|error| format!("{error}\n")).collect::<String>())]
pub struct PolicyError {
    /// The errors, in RabbitMQ's order: definition, apply-to, pattern, priority.
    pub errors: Vec<String>,
}

impl PolicyError {
    /// The text as the HTTP API's 400 `reason` carries it: with `<`, `>` and `&` escaped
    /// as HTML entities (`rabbit_mgmt_wm_policy.erl` escapes the reason).
    pub fn http_reason(&self) -> String {
        escape_html_tags(&self.to_string())
    }
}

/// `<`, `>` and `&` as HTML entities, as RabbitMQ's `escape_html_tags/1`.
pub fn escape_html_tags(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A policy's priority: a JSON number as set (RabbitMQ accepts any number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priority(pub Number);

impl Priority {
    fn compare(&self, other: &Priority) -> Ordering {
        match (self.0.as_i64(), other.0.as_i64()) {
            (Some(left), Some(right)) => left.cmp(&right),
            _ => {
                let (left, right) =
                    (self.0.as_f64().unwrap_or_default(), other.0.as_f64().unwrap_or_default());
                left.partial_cmp(&right).unwrap_or(Ordering::Equal)
            }
        }
    }
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its vhost.
    pub vhost: String,
    /// Its name, unique in the vhost.
    pub name: String,
    /// Which names it applies to.
    pub pattern: Pattern,
    /// Which kinds of object it applies to.
    pub apply_to: ApplyTo,
    /// Higher wins.
    pub priority: Priority,
    /// The settings, keys in order (only [`SUPPORTED_KEYS`]).
    pub definition: BTreeMap<String, Value>,
}

impl Policy {
    /// A policy from its JSON value as the HTTP API and definitions carry it:
    /// `{"pattern": …, "definition": {…}, "priority": n, "apply-to": …}`. A missing
    /// priority is 0 and a missing `apply-to` is `all` (`rabbit_policy:set/7`).
    ///
    /// # Errors
    /// [`PolicyError`] with every error RabbitMQ would report.
    pub fn from_json(vhost: &str, name: &str, value: &Value) -> Result<Policy, PolicyError> {
        let field = |key: &str| value.get(key);
        let mut errors = Vec::new();
        let definition = validate_definition(field("definition")).map_err(|error| errors.push(error)).ok();
        let apply_to = match field("apply-to") {
            None => Some(ApplyTo::All),
            Some(Value::String(text)) => ApplyTo::parse(text).map_err(|error| errors.push(error)).ok(),
            Some(other) => {
                errors.push(format!(
                    "apply-to '{}' unrecognised; should be 'queues', 'exchanges' or 'all'",
                    plain(other)
                ));
                None
            }
        };
        let pattern = match field("pattern") {
            Some(Value::String(text)) => Pattern::plain(text)
                .map_err(|error| {
                    errors.push(format!("pattern should be regular expression but is invalid: {error}"))
                })
                .ok(),
            other => {
                let shown = other.map_or_else(|| "undefined".to_owned(), erlang_term::format);
                errors.push(format!("pattern should be a binary but was {shown}"));
                None
            }
        };
        let priority = match field("priority") {
            None => Some(Number::from(0)),
            Some(Value::Number(number)) => Some(number.clone()),
            Some(other) => {
                errors.push(format!(
                    "priority should be a number, actually was {}",
                    erlang_term::format(other)
                ));
                None
            }
        };
        match (definition, apply_to, pattern, priority) {
            (Some(definition), Some(apply_to), Some(pattern), Some(priority)) if errors.is_empty() => {
                Ok(Policy {
                    vhost: vhost.to_owned(),
                    name: name.to_owned(),
                    pattern,
                    apply_to,
                    priority: Priority(priority),
                    definition,
                })
            }
            _ => Err(PolicyError { errors }),
        }
    }

    /// The policy's value as the HTTP API and definitions carry it (see
    /// [`Policy::from_json`]).
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("pattern".into(), Value::from(self.pattern.as_str()));
        map.insert("apply-to".into(), Value::from(self.apply_to.as_str()));
        map.insert("definition".into(), Value::Object(self.definition.clone().into_iter().collect()));
        map.insert("priority".into(), Value::Number(self.priority.0.clone()));
        Value::Object(map)
    }

    /// Whether the policy applies to the object `name` of kind `target` in `vhost`.
    pub fn matches(&self, vhost: &str, name: &[u8], target: PolicyTarget) -> bool {
        let kind_fits = matches!(
            (target, self.apply_to),
            (_, ApplyTo::All)
                | (PolicyTarget::Exchange, ApplyTo::Exchanges)
                | (PolicyTarget::Queue(_), ApplyTo::Queues)
        );
        let applicable = match target {
            PolicyTarget::Exchange => true,
            PolicyTarget::Queue(kind) => {
                !kind.unsupported_keys().iter().any(|key| self.definition.contains_key(*key))
            }
        };
        kind_fits && applicable && self.vhost == vhost && self.pattern.is_match(name)
    }

    /// A setting of the definition.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.definition.get(key)
    }
}

/// The policy that applies to `name`: among those that match, the highest priority, and
/// among equal priorities the name that sorts first.
pub fn effective<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
    vhost: &str,
    name: &[u8],
    target: PolicyTarget,
) -> Option<&'a Policy> {
    policies
        .into_iter()
        .filter(|policy| policy.matches(vhost, name, target))
        .min_by(|left, right| right.priority.compare(&left.priority).then_with(|| left.name.cmp(&right.name)))
}

/// A value shown by `~s` (strings bare, anything else as `~p` would).
fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => erlang_term::format(other),
    }
}

/// Checks a definition as `rabbit_policy:validation/3` does: an object, not empty, each
/// known key valid (in key order, first error wins), then no unknown key.
fn validate_definition(definition: Option<&Value>) -> Result<BTreeMap<String, Value>, String> {
    let map = match definition {
        Some(Value::Object(map)) if map.is_empty() => return Err("no policy provided".into()),
        Some(Value::Object(map)) => map,
        None => return Err("no policy provided".into()),
        Some(other) => {
            return Err(format!("definition must be a dictionary: {}", erlang_term::format(other)))
        }
    };
    let sorted: BTreeMap<String, Value> =
        map.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
    for (key, value) in &sorted {
        if SUPPORTED_KEYS.contains(&key.as_str()) {
            validate_setting(key, value)?;
        }
    }
    let unknown: Vec<(&str, &Value)> = sorted
        .iter()
        .filter(|(key, _)| !SUPPORTED_KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    if !unknown.is_empty() {
        return Err(format!("{} are not recognised policy settings", erlang_term::format_pairs(unknown)));
    }
    Ok(sorted)
}

fn is_integer_at_least(value: &Value, min: i64) -> bool {
    match value {
        Value::Number(number) => number.as_i64().map_or(number.is_u64(), |number| number >= min),
        _ => false,
    }
}

/// One setting, with `validate_policy0/2`'s rule and text (`rabbit_policies.erl`).
fn validate_setting(key: &str, value: &Value) -> Result<(), String> {
    let (valid, what) = match key {
        "alternate-exchange" => (value.is_string(), "is not a valid alternate exchange name"),
        "dead-letter-exchange" => (value.is_string(), "is not a valid dead letter exchange name"),
        "dead-letter-routing-key" => (value.is_string(), "is not a valid dead letter routing key"),
        "message-ttl" => (is_integer_at_least(value, 0), "is not a valid message TTL"),
        "expires" => (is_integer_at_least(value, 1), "is not a valid queue expiry"),
        "max-length" => (is_integer_at_least(value, 0), "is not a valid maximum length"),
        "max-length-bytes" => (is_integer_at_least(value, 0), "is not a valid maximum length in bytes"),
        "overflow" => (
            matches!(value.as_str(), Some("drop-head" | "reject-publish" | "reject-publish-dlx")),
            "is not a valid overflow value",
        ),
        "max-age" => (value.as_str().and_then(max_age_ms).is_some(), "is not a valid max age"),
        "stream-max-segment-size-bytes" => (
            is_integer_at_least(value, 0)
                && value.as_u64().is_some_and(|bytes| bytes <= STREAM_SEGMENT_BYTES_MAX),
            "is not a valid segment size",
        ),
        _ => (true, ""),
    };
    if valid {
        Ok(())
    } else {
        Err(format!("{} {what}", erlang_term::format(value)))
    }
}

/// `max-age` in milliseconds: digits, more than zero, then one unit of `Y` (365 days),
/// `M` (30 days), `D`, `h`, `m` or `s` (`rabbit_amqqueue:check_max_age/1`).
pub fn max_age_ms(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().ok().filter(|number| *number > 0)?;
    let unit_ms: u64 = match unit {
        "Y" => 365 * 86_400_000,
        "M" => 30 * 86_400_000,
        "D" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1000,
        _ => return None,
    };
    number.checked_mul(unit_ms)
}

#[cfg(test)]
#[path = "policies_tests.rs"]
mod tests;
