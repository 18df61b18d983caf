//! Dead-lettering's edit of a stored message. A message that dies in a queue (rejected,
//! expired, dropped for length) is republished with RabbitMQ's `x-death` history and
//! `x-first-death-*` headers, and without its expiry. This file owns that edit, so every
//! gateway that dead-letters produces the same headers.
//!
//! It decodes and re-encodes the content header through the wire layer (`crate::wire`) and
//! knows nothing of exchanges, bindings or routing: the caller says where the dead message
//! is republished and routes it. It must not use `crate::broker` or `crate::amqp`.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::Bytes;

use super::api::DeathReason;
use super::message::Message;
use crate::log::now_ms;
use crate::wire::amqp::{ContentHeader, FieldTable, FieldValue, ShortStr};

/// One death of a message: what its `x-death` entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Death<'a> {
    /// The queue it died in.
    pub queue: &'a str,
    /// Why it died.
    pub reason: DeathReason,
    /// The exchange it had been published to.
    pub exchange: &'a [u8],
    /// The routing key it had been published with.
    pub routing_key: &'a [u8],
    /// Its `expiration` property, which dead-lettering removes.
    pub original_expiration: Option<&'a [u8]>,
    /// When it died, in seconds since the epoch.
    pub time_s: u64,
}

fn longstr(bytes: &[u8]) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(bytes))
}

fn key(name: &'static str) -> ShortStr {
    ShortStr::from_static(name)
}

impl Death<'_> {
    /// Records this death in `headers` as RabbitMQ does. `x-death` holds one entry per
    /// (queue, reason), most recent first: a repeated death counts its entry up, updates its
    /// time and moves it to the front. The `x-first-death-*` headers are set once, by the
    /// first death, and never changed after.
    pub fn record(&self, headers: &mut FieldTable) {
        let mut deaths: Vec<FieldValue> =
            headers.get("x-death").and_then(|v| v.as_array()).map(<[_]>::to_vec).unwrap_or_default();
        let reason = self.reason.as_str();
        let same = |entry: &FieldValue| {
            entry.as_table().is_some_and(|t| {
                t.get_str("queue") == Some(self.queue) && t.get_str("reason") == Some(reason)
            })
        };
        let entry = match deaths.iter().position(same) {
            Some(index) => {
                let mut table = deaths.remove(index).as_table().cloned().unwrap_or_default();
                let count = table.get_i64("count").unwrap_or(0) + 1;
                table.insert(key("count"), FieldValue::I64(count));
                table.insert(key("time"), FieldValue::Timestamp(self.time_s));
                table
            }
            None => self.first_entry(),
        };
        deaths.insert(0, FieldValue::Table(entry));
        headers.insert(key("x-death"), FieldValue::Array(deaths));
        if !headers.contains_key("x-first-death-reason") {
            headers.insert(key("x-first-death-reason"), longstr(reason.as_bytes()));
            headers.insert(key("x-first-death-queue"), longstr(self.queue.as_bytes()));
            headers.insert(key("x-first-death-exchange"), longstr(self.exchange));
        }
    }

    /// The `x-death` entry of a first death in this queue for this reason, in RabbitMQ's
    /// field order.
    fn first_entry(&self) -> FieldTable {
        let mut table: FieldTable = [
            (key("count"), FieldValue::I64(1)),
            (key("reason"), longstr(self.reason.as_str().as_bytes())),
            (key("queue"), longstr(self.queue.as_bytes())),
            (key("time"), FieldValue::Timestamp(self.time_s)),
            (key("exchange"), longstr(self.exchange)),
            (key("routing-keys"), FieldValue::Array(vec![longstr(self.routing_key)])),
        ]
        .into_iter()
        .collect();
        if let Some(expiration) = self.original_expiration {
            table.insert(key("original-expiration"), longstr(expiration));
        }
        table
    }
}

/// A message as dead-lettering republishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadMessage {
    /// The message to append to every queue it is routed to.
    pub message: Message,
    /// Its headers with the death recorded: what a headers exchange matches on.
    pub headers: FieldTable,
}

impl Message {
    /// This message, dead in `queue` for `reason`, as republished to `exchange` with
    /// `routing_key` (its own routing key when `None`). Its death is recorded in its headers
    /// (see [`Death::record`]); its `expiration` property and stored expiry are dropped, the
    /// former kept in `x-death` as `original-expiration`. Persistence, priority and body are
    /// unchanged.
    ///
    /// Returns `None` when its stored content header does not decode (nothing can be
    /// recorded in it, so the message is dropped).
    pub fn dead_lettered(
        self,
        queue: &str,
        reason: DeathReason,
        exchange: Bytes,
        routing_key: Option<Bytes>,
    ) -> Option<DeadMessage> {
        let header = ContentHeader::decode(self.content_header.clone()).ok()?;
        let mut properties = header.properties().ok()?;
        let mut headers = properties.headers.take().unwrap_or_default();
        let expiration = properties.expiration.take();
        let death = Death {
            queue,
            reason,
            exchange: &self.exchange,
            routing_key: &self.routing_key,
            original_expiration: expiration.as_ref().map(ShortStr::as_bytes),
            time_s: (now_ms() / 1000) as u64,
        };
        death.record(&mut headers);
        properties.headers = Some(headers);
        let content_header = header.with_properties(&properties).into_raw();
        let headers = properties.headers.take().unwrap_or_default();
        let routing_key = routing_key.unwrap_or(self.routing_key);
        let message = Message {
            persistent: self.persistent,
            priority: self.priority,
            expires_at_ms: None,
            exchange,
            routing_key,
            content_header,
            body: self.body,
        };
        Some(DeadMessage { message, headers })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::wire::amqp::BasicProperties;

    fn message(properties: &BasicProperties) -> Message {
        Message {
            persistent: true,
            priority: 3,
            expires_at_ms: Some(1234),
            exchange: Bytes::from_static(b"orders"),
            routing_key: Bytes::from_static(b"order.new"),
            content_header: ContentHeader::new(60, 5, properties).into_raw(),
            body: Bytes::from_static(b"hello"),
        }
    }

    fn death(queue: &'static str, reason: DeathReason, time_s: u64) -> Death<'static> {
        Death {
            queue,
            reason,
            exchange: b"orders",
            routing_key: b"order.new",
            original_expiration: None,
            time_s,
        }
    }

    fn keys(table: &FieldTable) -> Vec<&str> {
        table.iter().map(|(k, _)| k.as_str().unwrap()).collect()
    }

    #[test]
    fn first_death_writes_entry_and_first_death_headers() {
        let mut headers = FieldTable::default();
        death("q", DeathReason::Rejected, 100).record(&mut headers);
        assert_eq!(
            keys(&headers),
            ["x-death", "x-first-death-reason", "x-first-death-queue", "x-first-death-exchange"]
        );
        let deaths = headers.get("x-death").unwrap().as_array().unwrap();
        assert_eq!(deaths.len(), 1);
        let entry = deaths[0].as_table().unwrap();
        assert_eq!(keys(entry), ["count", "reason", "queue", "time", "exchange", "routing-keys"]);
        assert_eq!(entry.get_i64("count"), Some(1));
        assert_eq!(entry.get_str("reason"), Some("rejected"));
        assert_eq!(entry.get("time"), Some(&FieldValue::Timestamp(100)));
        assert_eq!(
            entry.get("routing-keys"),
            Some(&FieldValue::Array(vec![FieldValue::LongStr(Bytes::from_static(b"order.new"))]))
        );
        assert_eq!(headers.get_str("x-first-death-queue"), Some("q"));
    }

    #[test]
    fn repeated_death_counts_up_and_moves_to_front() {
        let mut headers = FieldTable::default();
        death("a", DeathReason::Expired, 1).record(&mut headers);
        death("b", DeathReason::Rejected, 2).record(&mut headers);
        death("a", DeathReason::Expired, 3).record(&mut headers);
        let deaths = headers.get("x-death").unwrap().as_array().unwrap();
        let queues: Vec<_> = deaths.iter().map(|d| d.as_table().unwrap().get_str("queue").unwrap()).collect();
        assert_eq!(queues, ["a", "b"]);
        let first = deaths[0].as_table().unwrap();
        assert_eq!(first.get_i64("count"), Some(2));
        assert_eq!(first.get("time"), Some(&FieldValue::Timestamp(3)));
        assert_eq!(headers.get_str("x-first-death-reason"), Some("expired"));
        assert_eq!(headers.get_str("x-first-death-queue"), Some("a"));
    }

    #[test]
    fn dead_lettered_drops_expiry_and_keeps_the_rest() {
        let properties = BasicProperties {
            expiration: Some(ShortStr::from_static("5000")),
            priority: Some(3),
            ..BasicProperties::default()
        };
        let dead = message(&properties)
            .dead_lettered("q", DeathReason::Expired, Bytes::from_static(b"dlx"), None)
            .unwrap();
        assert_eq!(dead.message.exchange, Bytes::from_static(b"dlx"));
        assert_eq!(dead.message.routing_key, Bytes::from_static(b"order.new"));
        assert_eq!(dead.message.expires_at_ms, None);
        assert!(dead.message.persistent);
        assert_eq!(dead.message.priority, 3);
        assert_eq!(dead.message.body, Bytes::from_static(b"hello"));
        let stored = ContentHeader::decode(dead.message.content_header.clone()).unwrap();
        assert_eq!(stored.body_size(), 5);
        let stored = stored.properties().unwrap();
        assert_eq!(stored.expiration, None);
        assert_eq!(stored.priority, Some(3));
        assert_eq!(stored.headers.as_ref(), Some(&dead.headers));
        let entry = dead.headers.get("x-death").unwrap().as_array().unwrap()[0].as_table().unwrap();
        assert_eq!(entry.get_str("original-expiration"), Some("5000"));
        assert_eq!(entry.get_str("exchange"), Some("orders"));
    }

    #[test]
    fn dead_lettered_takes_the_given_routing_key() {
        let dead = message(&BasicProperties::default())
            .dead_lettered("q", DeathReason::Rejected, Bytes::new(), Some(Bytes::from_static(b"dead")))
            .unwrap();
        assert_eq!(dead.message.routing_key, Bytes::from_static(b"dead"));
        let entry = dead.headers.get("x-death").unwrap().as_array().unwrap()[0].as_table().unwrap();
        assert!(!entry.contains_key("original-expiration"));
    }

    #[test]
    fn undecodable_header_gives_none() {
        let mut broken = message(&BasicProperties::default());
        broken.content_header = Bytes::from_static(b"\x00\x3c");
        assert_eq!(broken.dead_lettered("q", DeathReason::Rejected, Bytes::new(), None), None);
    }
}
