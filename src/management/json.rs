//! JSON shapes of RabbitMQ 3.10's management API for Warren's model: field tables both
//! ways, queues, exchanges, consumers, bindings and their `properties_key`, times. Pure
//! functions: they read atomics and model entries, never wait on a queue's task.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::http::percent_encode;
use crate::broker::connections::{ChannelInfo, ConnectionInfo, ConsumerInfo};
use crate::broker::{ExchangeEntry, QueueEntry};
use crate::log::now_ms;
use crate::queue::QueueContents;
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

/// How long a queue goes without work before it shows `idle_since`: RabbitMQ's queue
/// process hibernates, and reports itself idle, after at least this long without a
/// message or command (`HIBERNATE_AFTER_MIN`, 1 s).
const QUEUE_IDLE_AFTER_MS: i64 = 1_000;

/// A field value as JSON, as RabbitMQ shows arguments and headers.
pub fn field_value_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Bool(b) => json!(b),
        FieldValue::I8(n) => json!(n),
        FieldValue::U8(n) => json!(n),
        FieldValue::I16(n) => json!(n),
        FieldValue::U16(n) => json!(n),
        FieldValue::I32(n) => json!(n),
        FieldValue::U32(n) => json!(n),
        FieldValue::I64(n) => json!(n),
        FieldValue::F32(n) => json!(n),
        FieldValue::F64(n) => json!(n),
        FieldValue::Decimal { scale, value } => json!(f64::from(*value) / 10f64.powi(i32::from(*scale))),
        FieldValue::LongStr(b) | FieldValue::ByteArray(b) => json!(String::from_utf8_lossy(b)),
        FieldValue::Array(items) => Value::Array(items.iter().map(field_value_json).collect()),
        FieldValue::Timestamp(t) => json!(t),
        FieldValue::Table(table) => table_json(table),
        FieldValue::Void => Value::Null,
    }
}

/// A field table as a JSON object.
pub fn table_json(table: &FieldTable) -> Value {
    table_pairs_json(&table.0)
}

/// Field table entries as a JSON object.
pub fn table_pairs_json(pairs: &[(ShortStr, FieldValue)]) -> Value {
    let object: Map<String, Value> = pairs
        .iter()
        .map(|(key, value)| (String::from_utf8_lossy(key.as_bytes()).into_owned(), field_value_json(value)))
        .collect();
    Value::Object(object)
}

/// A JSON value as a field value, as RabbitMQ reads arguments: integers as 64-bit signed,
/// other numbers as doubles, strings as long strings, objects as tables.
pub fn json_field_value(value: &Value) -> Option<FieldValue> {
    Some(match value {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64()?),
        },
        Value::String(s) => FieldValue::LongStr(Bytes::from(s.clone())),
        Value::Array(items) => FieldValue::Array(items.iter().map(json_field_value).collect::<Option<_>>()?),
        Value::Object(_) => FieldValue::Table(json_table(value)?),
    })
}

/// A JSON object (or null / absent) as a field table; `None` when not an object or a key
/// is too long.
pub fn json_table(value: &Value) -> Option<FieldTable> {
    match value {
        Value::Null => Some(FieldTable::default()),
        Value::Object(object) => object
            .iter()
            .map(|(key, value)| {
                let key = ShortStr::from_bytes(Bytes::from(key.clone())).ok()?;
                Some((key, json_field_value(value)?))
            })
            .collect::<Option<Vec<_>>>()
            .map(FieldTable),
        _ => None,
    }
}

/// A queue of `vhost` as `GET /api/queues` lists it. Counts are read from the queue's
/// atomics; a classic queue adds its sizes and consumer figures
/// ([`add_classic_queue_figures`]), a stream its members and readers.
pub fn queue_json(queue: &QueueEntry, vhost: &str, node: &str) -> Value {
    let stats = queue.handle.stats();
    let ready = queue.handle.ready_count();
    let unacked = stats.unacked.load(Ordering::Acquire);
    let consumers = stats.consumers.load(Ordering::Acquire);
    let policy = queue.policy();
    let mut value = json!({
        "name": queue.name_str(),
        "vhost": vhost,
        "type": if queue.is_stream() { "stream" } else { "classic" },
        "durable": queue.durable,
        "auto_delete": queue.auto_delete,
        "exclusive": queue.exclusive_owner.is_some(),
        "arguments": table_json(&queue.arguments),
        "node": node,
        "state": "running",
        "consumers": consumers,
        "policy": policy.as_ref().map(|p| p.name.as_str()),
        "operator_policy": null,
        // Warren has no operator policies: what applies is the policy's definition.
        "effective_policy_definition": policy.as_ref().map_or_else(|| json!({}), |p| json!(p.definition)),
        "exclusive_consumer_tag": null,
        "single_active_consumer_tag": null,
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
    });
    if let Some(object) = value.as_object_mut() {
        if queue.is_stream() {
            // One node holds every stream, and each consumer reads it there.
            object.insert("members".into(), json!([node]));
            object.insert("online".into(), json!([node]));
            object.insert("readers".into(), json!({ node: consumers }));
        } else {
            add_classic_queue_figures(queue, ready, unacked, object);
        }
    }
    value
}

/// A classic queue's consumer capacity, idle time, head timestamp and sizes, as RabbitMQ's
/// classic queues report them.
///
/// Sizes are of message bodies, as RabbitMQ counts them. The queue counts each
/// unacknowledged message's body, each ready one's as it reads it from its log, and the
/// appends to a backlog it holds in steps of at most a MiB a second (a queue with
/// `x-max-length-bytes` counts its whole backlog at once). Messages appended but not
/// counted yet (a backlog growing faster than that, or left from before a restart) count
/// at their size in the log, properties and framing included. On disc, the messages read
/// ahead of delivery are the ones in memory (`*_ram`) and the rest are on disc
/// (`*_paged_out`); with memory storage every message is in memory. Persistent counts are
/// 0 in a non-durable queue or with memory storage (nothing there survives a restart); for
/// a durable queue on disc they would need every message's header, backlog included, so
/// they are left out.
fn add_classic_queue_figures(queue: &QueueEntry, ready: u64, unacked: u64, object: &mut Map<String, Value>) {
    let stats = queue.handle.stats();
    let contents = &stats.contents;
    let log = queue.handle.log();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let capacity =
        if stats.consumers.load(Ordering::Acquire) == 0 { 0.0 } else { stats.consumer_use.capacity() };
    object.insert("consumer_capacity".into(), json!(capacity));
    object.insert("consumer_utilisation".into(), json!(capacity));
    let active_at_ms = stats.active_at_ms.load(Ordering::Relaxed);
    if now_ms().saturating_sub(active_at_ms) >= QUEUE_IDLE_AFTER_MS {
        object.insert("idle_since".into(), json!(rabbitmq_time(active_at_ms)));
    }
    let head_timestamp = load(&contents.head_timestamp);
    object.insert(
        "head_message_timestamp".into(),
        if head_timestamp == QueueContents::NO_TIMESTAMP { Value::Null } else { json!(head_timestamp) },
    );
    // A classic queue is never mirrored.
    object.insert("recoverable_slaves".into(), Value::Null);

    let counted_to = load(&contents.counted_to);
    let unread_bytes = if counted_to < log.next_offset() { log.bytes_after(counted_to) } else { 0 };
    let ready_bytes = load(&contents.ready_bytes) + unread_bytes;
    let unacked_bytes = load(&contents.unacked_bytes);
    let bytes = ready_bytes + unacked_bytes;
    let in_memory = log.fsync().is_none();
    let (ready_ram, unacked_ram, bytes_ram) = if in_memory {
        (ready, unacked, bytes)
    } else {
        (load(&contents.read_ahead).min(ready), 0, load(&contents.read_ahead_bytes).min(bytes))
    };
    let figures = [
        ("message_bytes", bytes),
        ("message_bytes_ready", ready_bytes),
        ("message_bytes_unacknowledged", unacked_bytes),
        ("message_bytes_ram", bytes_ram),
        ("message_bytes_paged_out", bytes - bytes_ram),
        ("messages_ram", ready_ram + unacked_ram),
        ("messages_ready_ram", ready_ram),
        ("messages_unacknowledged_ram", unacked_ram),
        ("messages_paged_out", (ready + unacked).saturating_sub(ready_ram + unacked_ram)),
    ];
    object.extend(figures.into_iter().map(|(name, n)| (name.to_owned(), json!(n))));
    if !queue.durable || in_memory {
        object.insert("messages_persistent".into(), json!(0));
        object.insert("message_bytes_persistent".into(), json!(0));
    }
}

/// A consumer as RabbitMQ's `consumer_details` show it (a queue's, a channel's): its
/// queue, channel and settings. Warren has no single active consumer, so every consumer
/// is active.
pub fn consumer_json(
    node: &str,
    connection: &ConnectionInfo,
    channel: &ChannelInfo,
    consumer: &ConsumerInfo,
) -> Value {
    let facts = &connection.facts;
    json!({
        "consumer_tag": String::from_utf8_lossy(&consumer.tag),
        "queue": {"name": String::from_utf8_lossy(&consumer.queue), "vhost": facts.vhost},
        "channel_details": {
            "name": format!("{} ({})", connection.name(), channel.number),
            "number": channel.number,
            "connection_name": connection.name(),
            "node": node,
            "peer_host": facts.peer.ip().to_string(),
            "peer_port": facts.peer.port(),
            "user": facts.user,
        },
        "ack_required": consumer.ack_required,
        "prefetch_count": consumer.prefetch_count,
        "exclusive": consumer.exclusive,
        "arguments": table_json(&consumer.arguments),
        "active": true,
        "activity_status": "up",
    })
}

/// A time in milliseconds since the epoch as RabbitMQ 3.10's management API writes it
/// (`rabbit_mgmt_format:now_to_str/1`, `calendar:system_time_to_rfc3339/2` in
/// milliseconds): RFC 3339 in UTC, `YYYY-MM-DDTHH:MM:SS.mmm+00:00`.
pub fn rabbitmq_time(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_date(days);
    let (hour, minute, second) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    let millis = ms.rem_euclid(1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}+00:00")
}

/// The proleptic Gregorian date `days` after 1970-01-01, counted in 400-year eras of
/// 146,097 days whose years start on 1 March (so that the leap day ends a year).
fn civil_date(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// An exchange of `vhost` as `GET /api/exchanges` lists it.
pub fn exchange_json(exchange: &ExchangeEntry, vhost: &str) -> Value {
    let mut value = json!({
        "name": String::from_utf8_lossy(&exchange.name),
        "vhost": vhost,
        "type": exchange.kind.as_str(),
        "durable": exchange.durable,
        "auto_delete": exchange.auto_delete,
        "internal": exchange.internal,
        "arguments": table_json(&exchange.arguments),
        "user_who_performed_action": "",
    });
    // RabbitMQ shows `policy` only on exchanges a policy applies to.
    if let (Some(policy), Some(object)) = (exchange.policy(), value.as_object_mut()) {
        object.insert("policy".to_owned(), json!(policy.name));
    }
    value
}

/// The `properties_key` of a binding: the routing key percent-encoded, `~` for an empty key
/// without arguments, and with arguments the key, `~` and a hash of the arguments (a crc32
/// of their encoding, sorted by name; RabbitMQ's hash is of an Erlang term and differs, so
/// clients must take the key from a listing, as they do).
pub fn properties_key(routing_key: &str, arguments: &[(ShortStr, FieldValue)]) -> String {
    if arguments.is_empty() {
        return if routing_key.is_empty() { "~".to_string() } else { percent_encode(routing_key) };
    }
    let mut sorted = arguments.to_vec();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut encoded = bytes::BytesMut::new();
    FieldTable(sorted).encode(&mut encoded);
    format!("{}~{:08x}", percent_encode(routing_key), crc32fast::hash(&encoded))
}

/// One binding's JSON.
pub fn binding_json(
    vhost: &str,
    source: &str,
    destination: &str,
    to_queue: bool,
    key: &str,
    args: &[(ShortStr, FieldValue)],
) -> Value {
    json!({
        "source": source,
        "vhost": vhost,
        "destination": destination,
        "destination_type": if to_queue { "queue" } else { "exchange" },
        "routing_key": key,
        "arguments": table_pairs_json(args),
        "properties_key": properties_key(key, args),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_keys() {
        assert_eq!(properties_key("", &[]), "~");
        assert_eq!(properties_key("a.#", &[]), "a.%23");
        let args = vec![
            (ShortStr::from_static("x"), FieldValue::I64(1)),
            (ShortStr::from_static("a"), FieldValue::Bool(true)),
        ];
        let mut reversed = args.clone();
        reversed.reverse();
        let key = properties_key("k", &args);
        assert!(key.starts_with("k~"));
        assert_eq!(key, properties_key("k", &reversed), "argument order does not matter");
    }

    #[test]
    fn times_are_written_as_rabbitmq_3_10_writes_them() {
        assert_eq!(rabbitmq_time(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(rabbitmq_time(951_782_400_000), "2000-02-29T00:00:00.000+00:00");
        assert_eq!(rabbitmq_time(1_733_650_000_123), "2024-12-08T09:26:40.123+00:00");
        assert_eq!(rabbitmq_time(4_107_542_399_999), "2100-02-28T23:59:59.999+00:00");
    }

    #[test]
    fn tables_round_trip() {
        let value = json!({"x-max-length": 10, "x-queue-type": "classic", "nested": {"f": 1.5}});
        let table = json_table(&value).expect("table");
        assert_eq!(table_json(&table), value);
        assert!(json_table(&json!([1])).is_none());
    }
}
