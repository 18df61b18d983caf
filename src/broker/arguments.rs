//! Queue and exchange arguments: parsing `x-*` arguments into typed settings, and the
//! equivalence check of a redeclare, with RabbitMQ's wording for both.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Duration;

use bytes::Bytes;

use super::{Error, Name};
use crate::limits::QUEUE_PRIORITY_MAX;
use crate::wire::amqp::{FieldTable, FieldValue};

/// What `x-overflow` asks for when a length limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest messages.
    #[default]
    DropHead,
    /// Refuse new messages (nacked under confirms).
    RejectPublish,
}

/// The kind of queue (`x-queue-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// A classic queue: log plus ack tracker.
    #[default]
    Classic,
    /// A stream: a log read at consumers' own offsets.
    Stream,
}

/// A queue's settings from its arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueArgs {
    /// `x-message-ttl`.
    pub message_ttl: Option<Duration>,
    /// `x-expires`: delete after this long unused.
    pub expires: Option<Duration>,
    /// `x-max-length`.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub overflow: Overflow,
    /// `x-dead-letter-exchange`.
    pub dead_letter_exchange: Option<Bytes>,
    /// `x-dead-letter-routing-key`.
    pub dead_letter_routing_key: Option<Bytes>,
    /// `x-max-priority`.
    pub max_priority: Option<u8>,
    /// `x-queue-type`.
    pub queue_type: QueueType,
    /// `x-max-age` (streams): segments older than this are removed.
    pub max_age: Option<Duration>,
    /// `x-stream-max-segment-size-bytes` (streams).
    pub stream_segment_bytes: Option<u64>,
    /// `x-warren-compression: zstd` (streams): store batches compressed.
    pub compress: bool,
}

/// The arguments compared when a queue is declared again.
const QUEUE_EQUIVALENCE: [&str; 9] = [
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-type",
];

/// RabbitMQ's name for a field value's type.
pub fn type_name(value: &FieldValue) -> &'static str {
    match value {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal { .. } => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::ByteArray(_) => "binary",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
    }
}

/// A value as RabbitMQ prints it inside quotes.
pub fn display_value(value: &FieldValue) -> String {
    match value {
        FieldValue::LongStr(bytes) | FieldValue::ByteArray(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::F32(f) => f.to_string(),
        FieldValue::F64(f) => f.to_string(),
        other => other.as_i64().map_or_else(|| format!("{other:?}"), |i| i.to_string()),
    }
}

fn same_value(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn invalid(name: &Name, arg: &str, reason: String) -> Error {
    Error::InvalidArg { kind: "queue", name: name.clone(), arg: arg.to_owned(), reason }
}

fn non_negative(name: &Name, arg: &str, value: &FieldValue) -> Result<u64, Error> {
    let Some(number) = value.as_i64() else {
        return Err(invalid(name, arg, format!("{{unacceptable_type,{}}}", type_name(value))));
    };
    u64::try_from(number).map_err(|_| invalid(name, arg, format!("{{value_negative,{number}}}")))
}

fn string(name: &Name, arg: &str, value: &FieldValue) -> Result<Bytes, Error> {
    match value {
        FieldValue::LongStr(bytes) => Ok(bytes.clone()),
        other => Err(invalid(name, arg, format!("{{unacceptable_type,{}}}", type_name(other)))),
    }
}

/// Parses and validates a queue's arguments. Unknown arguments are kept but ignored, as
/// RabbitMQ does.
///
/// # Errors
/// [`Error::InvalidArg`] with RabbitMQ's reason for a wrong type or value.
pub fn parse_queue_args(name: &Name, args: &FieldTable) -> Result<QueueArgs, Error> {
    let out = parse_queue_settings(name, args)?;
    if out.dead_letter_routing_key.is_some() && out.dead_letter_exchange.is_none() {
        return Err(invalid(name, "x-dead-letter-routing-key", "Key x-dead-letter-exchange not set".into()));
    }
    Ok(out)
}

/// Parses each argument of a queue on its own, without the checks across arguments that
/// a declare makes: what a queue's arguments merged with its policy's give (a policy may
/// set `dead-letter-routing-key` alone, which then has no effect, as in RabbitMQ).
///
/// # Errors
/// [`Error::InvalidArg`] with RabbitMQ's reason for a wrong type or value.
pub fn parse_queue_settings(name: &Name, args: &FieldTable) -> Result<QueueArgs, Error> {
    let mut out = QueueArgs::default();
    for (key, value) in args.iter() {
        let key = key.as_str().unwrap_or_default();
        match key {
            "x-message-ttl" => out.message_ttl = Some(Duration::from_millis(non_negative(name, key, value)?)),
            "x-expires" => {
                let ms = non_negative(name, key, value)?;
                if ms == 0 {
                    return Err(invalid(name, key, "{value_zero,0}".into()));
                }
                out.expires = Some(Duration::from_millis(ms));
            }
            "x-max-length" => out.max_length = Some(non_negative(name, key, value)?),
            "x-max-length-bytes" => out.max_length_bytes = Some(non_negative(name, key, value)?),
            "x-max-priority" => {
                if value.as_i64().is_none() {
                    return Err(invalid(
                        name,
                        key,
                        format!("\"expected integer, got {}\"", type_name(value)),
                    ));
                }
                let priority = non_negative(name, key, value)?;
                out.max_priority = Some(priority.min(u64::from(QUEUE_PRIORITY_MAX)) as u8);
            }
            "x-dead-letter-exchange" => out.dead_letter_exchange = Some(string(name, key, value)?),
            "x-dead-letter-routing-key" => out.dead_letter_routing_key = Some(string(name, key, value)?),
            "x-overflow" => {
                out.overflow = match &string(name, key, value)?[..] {
                    b"drop-head" => Overflow::DropHead,
                    b"reject-publish" | b"reject-publish-dlx" => Overflow::RejectPublish,
                    other => {
                        let text = String::from_utf8_lossy(other);
                        return Err(invalid(name, key, format!("{{unknown_overflow_value,<<\"{text}\">>}}")));
                    }
                }
            }
            "x-queue-type" => {
                out.queue_type = match &string(name, key, value)?[..] {
                    b"classic" => QueueType::Classic,
                    b"stream" => QueueType::Stream,
                    other => {
                        let text = String::from_utf8_lossy(other);
                        return Err(invalid(name, key, format!("\"unsupported queue type '{text}'\"")));
                    }
                }
            }
            "x-max-age" => {
                let text = String::from_utf8_lossy(&string(name, key, value)?).into_owned();
                out.max_age = Some(
                    parse_max_age(&text)
                        .ok_or_else(|| invalid(name, key, format!("invalid max age '{text}'")))?,
                );
            }
            "x-stream-max-segment-size-bytes" => {
                out.stream_segment_bytes = Some(non_negative(name, key, value)?)
            }
            "x-warren-compression" => {
                out.compress = match &string(name, key, value)?[..] {
                    b"zstd" => true,
                    b"none" => false,
                    other => {
                        let text = String::from_utf8_lossy(other);
                        return Err(invalid(
                            name,
                            key,
                            format!("unsupported compression '{text}' (zstd or none)"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Parses `x-max-age`: a number and a unit, `Y`, `M` (30 days), `D`, `h`, `m` or `s`.
pub fn parse_max_age(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "Y" => 365 * 86_400,
        "M" => 30 * 86_400,
        "D" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(seconds)?))
}

/// Checks a redeclare's arguments against the queue's, as RabbitMQ does.
///
/// # Errors
/// [`Error::Inequivalent`] naming the first argument that differs.
pub fn check_queue_equivalence(
    name: &Name,
    current: &FieldTable,
    received: &FieldTable,
) -> Result<(), Error> {
    for arg in QUEUE_EQUIVALENCE {
        let (old, new) = (current.get(arg), received.get(arg));
        let describe = |v: Option<&FieldValue>| match v {
            None => "none".to_owned(),
            Some(v) => format!("the value '{}' of type '{}'", display_value(v), type_name(v)),
        };
        let differs = match (old, new) {
            (Some(a), Some(b)) => !same_value(a, b),
            (None, None) => false,
            _ => true,
        };
        if differs {
            let (received, current) = match (new, old) {
                (Some(n), Some(o)) => (format!("'{}'", display_value(n)), format!("'{}'", display_value(o))),
                _ => (describe(new), describe(old)),
            };
            return Err(Error::Inequivalent {
                kind: "queue",
                name: name.clone(),
                arg: arg.to_owned(),
                received,
                current,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::amqp::ShortStr;

    fn name(queue: &str) -> Name {
        Name::new(queue.as_bytes(), &std::sync::Arc::from("/"))
    }

    fn table(pairs: &[(&'static str, FieldValue)]) -> FieldTable {
        pairs.iter().map(|(k, v)| (ShortStr::from_static(k), v.clone())).collect()
    }

    #[test]
    fn parses_and_refuses_like_rabbitmq() {
        let args = table(&[("x-message-ttl", FieldValue::I32(1000)), ("x-max-length", FieldValue::I64(5))]);
        let parsed = parse_queue_args(&name("q"), &args).unwrap();
        assert_eq!(parsed.message_ttl, Some(Duration::from_secs(1)));
        assert_eq!(parsed.max_length, Some(5));
        let bad = table(&[("x-max-priority", FieldValue::LongStr(Bytes::from_static(b"abc")))]);
        let error = parse_queue_args(&name("q"), &bad).unwrap_err().to_string();
        assert!(error.contains("invalid arg 'x-max-priority' for queue 'q'"), "{error}");
        let negative = table(&[("x-message-ttl", FieldValue::I32(-5))]);
        assert!(parse_queue_args(&name("q"), &negative)
            .unwrap_err()
            .to_string()
            .ends_with("{value_negative,-5}"));
    }

    #[test]
    fn equivalence_texts() {
        let current = table(&[("x-message-ttl", FieldValue::I32(1000))]);
        let received = table(&[("x-message-ttl", FieldValue::I64(2000))]);
        assert_eq!(
            check_queue_equivalence(&name("Q"), &current, &received).unwrap_err().to_string(),
            "inequivalent arg 'x-message-ttl' for queue 'Q' in vhost '/': received '2000' but current is '1000'"
        );
        assert_eq!(
            check_queue_equivalence(&name("Q"), &current, &FieldTable::default()).unwrap_err().to_string(),
            "inequivalent arg 'x-message-ttl' for queue 'Q' in vhost '/': received none but current is the value '1000' of type 'signedint'"
        );
        let same = table(&[("x-message-ttl", FieldValue::I64(1000))]);
        assert!(check_queue_equivalence(&name("Q"), &current, &same).is_ok());
    }
}
