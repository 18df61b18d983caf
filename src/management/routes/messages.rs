//! `POST /api/exchanges/{v}/{x}/publish` and `POST /api/queues/{v}/{q}/get`: messages in
//! and out through the HTTP API, as RabbitMQ's management plugin does them (for tests and
//! operators, not for throughput). Publishing appends to the routed queues' logs as the
//! AMQP gateway does; getting asks the queue's task as `basic.get` does. Both are checked
//! as a channel of the user checks them: write (and topic write) on the exchange, read on
//! the queue.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::body_json;
use crate::broker::access::{Permission, Resource};
use crate::broker::QueueEntry;
use crate::limits::HTTP_GET_COUNT_MAX;
use crate::management::base64::{base64_decode, base64_encode};
use crate::management::http::{Request, Response};
use crate::management::json::{field_value_json, json_table};
use crate::management::scope::{InVhost, Refusal};
use crate::management::{Api, ApiError};
use crate::queue::message::Message;
use crate::wire::amqp::{BasicProperties, ContentHeader, ShortStr};

/// The AMQP class id of `basic`, whose content headers messages carry.
const BASIC_CLASS_ID: u16 = 60;

/// Publishes one message; answers `{"routed": bool}`.
pub async fn publish(vhost: &InVhost, request: &Request, exchange: &str) -> Result<Response, ApiError> {
    let body = body_json(request)?;
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let routing_key =
        text("routing_key").ok_or_else(|| ApiError::BadRequest("routing_key missing".into()))?;
    let payload = text("payload").ok_or_else(|| ApiError::BadRequest("payload missing".into()))?;
    let payload = match text("payload_encoding").unwrap_or("string") {
        "string" => Bytes::copy_from_slice(payload.as_bytes()),
        "base64" => Bytes::from(
            base64_decode(payload).ok_or_else(|| ApiError::BadRequest("payload is not base64".into()))?,
        ),
        other => {
            return Err(ApiError::BadRequest(format!("payload_encoding '{other}' is not string or base64")))
        }
    };
    let properties = properties_from_json(body.get("properties").unwrap_or(&Value::Null))?;
    vhost.permit(Resource::exchange(exchange.as_bytes()), Permission::Write, Refusal::Channel)?;
    if vhost.broker.exchange(exchange.as_bytes()).is_none() {
        // RabbitMQ's channel closes with 404, which the API reports as a bad request.
        return Err(ApiError::BadRequest(format!(
            "404 NOT_FOUND - no exchange '{exchange}' in vhost '{}'",
            vhost.name()
        )));
    }
    vhost.permit_topic(exchange.as_bytes(), routing_key.as_bytes(), Permission::Write, Refusal::Channel)?;
    let mut queues = Vec::new();
    vhost.broker.route(
        exchange.as_bytes(),
        routing_key.as_bytes(),
        properties.headers.as_ref(),
        &mut queues,
    )?;
    let expires_at_ms = properties
        .expiration
        .as_ref()
        .and_then(|e| e.as_str().ok().and_then(|s| s.parse::<i64>().ok()))
        .map(|ttl| now_ms().saturating_add(ttl.max(0)));
    let message = Message {
        persistent: properties.delivery_mode == Some(2),
        priority: properties.priority.unwrap_or(0),
        expires_at_ms,
        exchange: Bytes::copy_from_slice(exchange.as_bytes()),
        routing_key: Bytes::copy_from_slice(routing_key.as_bytes()),
        content_header: ContentHeader::new(BASIC_CLASS_ID, payload.len() as u64, &properties).raw().clone(),
        body: payload,
    };
    if let Some(entry) = vhost.broker.exchange(exchange.as_bytes()) {
        entry.counters.add(1, queues.len() as u64);
    }
    let mut routed = false;
    for queue in queues.iter().filter(|q| !QueueEntry::rejects_publish(q)) {
        queue
            .handle
            .log()
            .append(vec![message.to_record()])
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        routed = true;
    }
    Ok(Response::json(200, &json!({ "routed": routed })))
}

/// Gets up to `count` messages; answers their list (`[]` for an empty queue).
pub async fn get(api: &Api, vhost: &InVhost, request: &Request, name: &str) -> Result<Response, ApiError> {
    let body = body_json(request)?;
    vhost.permit(Resource::queue(name.as_bytes()), Permission::Read, Refusal::Channel)?;
    let queue = vhost.broker.queue(name.as_bytes()).ok_or_else(|| {
        ApiError::NotFoundOnChannel(format!("NOT_FOUND - no queue '{name}' in vhost '{}'", vhost.name()))
    })?;
    let count = body.get("count").and_then(as_u64).unwrap_or(1).min(HTTP_GET_COUNT_MAX);
    let ackmode = body.get("ackmode").and_then(Value::as_str).unwrap_or("ack_requeue_true");
    let (no_ack, requeue) = match ackmode {
        "ack_requeue_false" => (true, false),
        "ack_requeue_true" | "reject_requeue_true" => (false, true),
        "reject_requeue_false" => (false, false),
        other => return Err(ApiError::BadRequest(format!("Unsupported ackmode {other}"))),
    };
    let base64_only = body.get("encoding").and_then(Value::as_str) == Some("base64");
    let truncate = body.get("truncate").and_then(as_u64).map(|t| t as usize);
    let channel = api.next_get_channel.fetch_sub(1, Ordering::Relaxed);
    let mut items = Vec::new();
    let mut offsets = Vec::new();
    for _ in 0..count {
        let delivery = queue.handle.get(channel, no_ack).await.map_err(|_| ApiError::NotFound)?;
        let Some(delivery) = delivery else { break };
        if delivery.needs_ack {
            offsets.push(delivery.offset);
        }
        let Some(message) = Message::from_record(&delivery.record) else { continue };
        items.push(message_json(
            &message,
            delivery.redelivered,
            delivery.message_count,
            base64_only,
            truncate,
        ));
    }
    if !offsets.is_empty() {
        queue.handle.reject(channel, offsets, requeue).await;
    }
    queue.handle.channel_closed(channel).await;
    queue.touch();
    Ok(Response::json(200, &Value::Array(items)))
}

fn as_u64(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// One got message as RabbitMQ shows it.
fn message_json(
    message: &Message,
    redelivered: bool,
    left: u32,
    base64_only: bool,
    truncate: Option<usize>,
) -> Value {
    let body = &message.body;
    let shown = body.get(..truncate.unwrap_or(body.len()).min(body.len())).unwrap_or_default();
    let (payload, encoding) = match std::str::from_utf8(shown) {
        Ok(text) if !base64_only => (text.to_string(), "string"),
        _ => (base64_encode(shown), "base64"),
    };
    let properties = ContentHeader::decode(message.content_header.clone())
        .ok()
        .and_then(|header| header.properties().ok())
        .map_or_else(|| json!({}), |p| properties_json(&p));
    json!({
        "payload_bytes": body.len(),
        "redelivered": redelivered,
        "exchange": String::from_utf8_lossy(&message.exchange),
        "routing_key": String::from_utf8_lossy(&message.routing_key),
        "message_count": left,
        "properties": properties,
        "payload": payload,
        "payload_encoding": encoding,
    })
}

/// Message properties as RabbitMQ's JSON (only those present).
fn properties_json(p: &BasicProperties) -> Value {
    let mut out = Map::new();
    let text = |s: &ShortStr| Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned());
    let strings = [
        ("content_type", &p.content_type),
        ("content_encoding", &p.content_encoding),
        ("correlation_id", &p.correlation_id),
        ("reply_to", &p.reply_to),
        ("expiration", &p.expiration),
        ("message_id", &p.message_id),
        ("type", &p.message_type),
        ("user_id", &p.user_id),
        ("app_id", &p.app_id),
        ("cluster_id", &p.cluster_id),
    ];
    for (key, value) in strings {
        if let Some(value) = value {
            out.insert(key.to_string(), text(value));
        }
    }
    if let Some(headers) = &p.headers {
        let object = headers
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k.as_bytes()).into_owned(), field_value_json(v)));
        out.insert("headers".to_string(), Value::Object(object.collect()));
    }
    if let Some(mode) = p.delivery_mode {
        out.insert("delivery_mode".to_string(), json!(mode));
    }
    if let Some(priority) = p.priority {
        out.insert("priority".to_string(), json!(priority));
    }
    if let Some(timestamp) = p.timestamp {
        out.insert("timestamp".to_string(), json!(timestamp));
    }
    Value::Object(out)
}

/// Message properties from RabbitMQ's JSON.
fn properties_from_json(value: &Value) -> Result<BasicProperties, ApiError> {
    let bad = |key: &str| ApiError::BadRequest(format!("invalid property {key}"));
    let short = |key: &str| -> Result<Option<ShortStr>, ApiError> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                ShortStr::from_bytes(Bytes::from(s.clone())).map(Some).map_err(|_| bad(key))
            }
            Some(other) => {
                ShortStr::from_bytes(Bytes::from(other.to_string())).map(Some).map_err(|_| bad(key))
            }
        }
    };
    let small = |key: &str| -> Result<Option<u8>, ApiError> {
        value.get(key).and_then(as_u64).map(|n| u8::try_from(n).map_err(|_| bad(key))).transpose()
    };
    let headers = match value.get("headers") {
        None | Some(Value::Null) => None,
        Some(h) => Some(json_table(h).ok_or_else(|| bad("headers"))?),
    };
    Ok(BasicProperties {
        content_type: short("content_type")?,
        content_encoding: short("content_encoding")?,
        headers,
        delivery_mode: small("delivery_mode")?,
        priority: small("priority")?,
        correlation_id: short("correlation_id")?,
        reply_to: short("reply_to")?,
        expiration: short("expiration")?,
        message_id: short("message_id")?,
        timestamp: value.get("timestamp").and_then(as_u64),
        message_type: short("type")?,
        user_id: short("user_id")?,
        app_id: short("app_id")?,
        cluster_id: None,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip() {
        let value = json!({"delivery_mode": 2, "headers": {"h": "v"}, "content_type": "text/plain"});
        let properties = properties_from_json(&value).expect("properties");
        assert_eq!(properties_json(&properties), value);
    }
}
