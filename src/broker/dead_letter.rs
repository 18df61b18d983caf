//! Dead-lettering: a message that dies in a queue (rejected, expired, dropped for length)
//! is republished to the queue's dead-letter exchange with RabbitMQ's `x-death` history
//! and without its `expiration`.

use std::sync::Weak;

use bytes::Bytes;

use super::Broker;
use crate::log::now_ms;
use crate::queue::message::Message;
use crate::queue::{DeadLetter, DeathReason};
use crate::wire::amqp::{ContentHeader, FieldTable, FieldValue, ShortStr};

/// Sends a queue's dead messages to its dead-letter exchange.
#[derive(Debug)]
pub struct DeadLetterSink {
    /// The broker, to route through.
    pub broker: Weak<Broker>,
    /// `x-dead-letter-exchange`.
    pub exchange: Bytes,
    /// `x-dead-letter-routing-key`; else the message's own key.
    pub routing_key: Option<Bytes>,
}

fn longstr(bytes: &[u8]) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(bytes))
}

fn key(name: &'static str) -> ShortStr {
    ShortStr::from_static(name)
}

/// Adds (or counts up) the `x-death` entry for `queue` and `reason`, most recent first,
/// and sets the `x-first-death-*` headers once.
pub fn add_death(
    headers: &mut FieldTable,
    queue: &str,
    reason: DeathReason,
    exchange: &[u8],
    routing_key: &[u8],
    original_expiration: Option<&[u8]>,
) {
    let mut deaths: Vec<FieldValue> =
        headers.get("x-death").and_then(|v| v.as_array()).map(<[_]>::to_vec).unwrap_or_default();
    let same = |entry: &FieldValue| {
        entry.as_table().is_some_and(|t| {
            t.get_str("queue") == Some(queue) && t.get_str("reason") == Some(reason.as_str())
        })
    };
    let now_s = (now_ms() / 1000) as u64;
    let entry = match deaths.iter().position(same) {
        Some(index) => {
            let mut table = deaths.remove(index).as_table().cloned().unwrap_or_default();
            let count = table.get_i64("count").unwrap_or(0) + 1;
            table.insert(key("count"), FieldValue::I64(count));
            table.insert(key("time"), FieldValue::Timestamp(now_s));
            table
        }
        None => {
            let mut table: FieldTable = [
                (key("count"), FieldValue::I64(1)),
                (key("reason"), longstr(reason.as_str().as_bytes())),
                (key("queue"), longstr(queue.as_bytes())),
                (key("time"), FieldValue::Timestamp(now_s)),
                (key("exchange"), longstr(exchange)),
                (key("routing-keys"), FieldValue::Array(vec![longstr(routing_key)])),
            ]
            .into_iter()
            .collect();
            if let Some(expiration) = original_expiration {
                table.insert(key("original-expiration"), longstr(expiration));
            }
            table
        }
    };
    deaths.insert(0, FieldValue::Table(entry));
    headers.insert(key("x-death"), FieldValue::Array(deaths));
    if !headers.contains_key("x-first-death-reason") {
        headers.insert(key("x-first-death-reason"), longstr(reason.as_str().as_bytes()));
        headers.insert(key("x-first-death-queue"), longstr(queue.as_bytes()));
        headers.insert(key("x-first-death-exchange"), longstr(exchange));
    }
}

impl DeadLetter for DeadLetterSink {
    fn dead_letter(&self, queue: &str, message: Message, reason: DeathReason) {
        let Some(broker) = self.broker.upgrade() else { return };
        let Ok(header) = ContentHeader::decode(message.content_header.clone()) else { return };
        let Ok(mut properties) = header.properties() else { return };
        let mut headers = properties.headers.take().unwrap_or_default();
        let expiration = properties.expiration.as_ref().map(|e| e.as_bytes().to_vec());
        add_death(
            &mut headers,
            queue,
            reason,
            &message.exchange,
            &message.routing_key,
            expiration.as_deref(),
        );
        properties.headers = Some(headers);
        properties.expiration = None;
        let header = header.with_properties(&properties);
        let routing_key = self.routing_key.clone().unwrap_or_else(|| message.routing_key.clone());
        let mut targets = Vec::new();
        if broker.route(&self.exchange, &routing_key, properties.headers.as_ref(), &mut targets).is_err() {
            return;
        }
        // An expired message dead-lettered back into its own queue would cycle forever.
        targets.retain(|t| !(reason == DeathReason::Expired && t.name.as_ref() == queue.as_bytes()));
        let dead = Message {
            persistent: message.persistent,
            priority: message.priority,
            expires_at_ms: None,
            exchange: self.exchange.clone(),
            routing_key,
            content_header: header.into_raw(),
            body: message.body,
        };
        let record = dead.to_record();
        for target in targets {
            let log = target.handle.log().clone();
            let record = record.clone();
            tokio::spawn(async move {
                if let Err(error) = log.append(vec![record]).await {
                    tracing::warn!(%error, "dead-lettered message lost");
                }
            });
        }
    }
}
