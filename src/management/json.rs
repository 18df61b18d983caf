//! JSON shapes of RabbitMQ 3.10's management API for Warren's model: field tables both
//! ways, queues, exchanges, bindings and their `properties_key`. Pure functions: they read
//! atomics and model entries, never wait on a queue's task.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::http::percent_encode;
use crate::broker::{ExchangeEntry, QueueEntry};
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

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
/// atomics.
pub fn queue_json(queue: &QueueEntry, vhost: &str, node: &str) -> Value {
    let stats = queue.handle.stats();
    let ready = queue.handle.ready_count();
    let unacked = stats.unacked.load(Ordering::Acquire);
    let consumers = stats.consumers.load(Ordering::Acquire);
    let policy = queue.policy();
    json!({
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
    })
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
    fn tables_round_trip() {
        let value = json!({"x-max-length": 10, "x-queue-type": "classic", "nested": {"f": 1.5}});
        let table = json_table(&value).expect("table");
        assert_eq!(table_json(&table), value);
        assert!(json_table(&json!([1])).is_none());
    }
}
