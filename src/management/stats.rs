//! Message statistics as the management API shows them: totals read from the counters the
//! message path keeps (relaxed atomics, written by one task each), and rates computed from
//! samples. A sampler task reads every object's totals every [`RATE_SAMPLE_INTERVAL`] and
//! keeps the last two samples of each; a rate is the change between them over the time
//! between them, as RabbitMQ's `rates_mode: basic` reports it. Nothing here is on the
//! message path: the counters are read, never locked.
//!
//! Objects are named by a key string of their kind and identity (see the `*_key`
//! functions); an object that is gone is dropped from the samples at the next round.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError, Weak};
use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::broker::connections::{ChannelInfo, ConnectionInfo};
use crate::broker::{ExchangeEntry, Node, QueueEntry};
use crate::limits::RATE_SAMPLE_INTERVAL;

/// Named totals of one object.
pub type Totals = Vec<(&'static str, u64)>;

/// The last two samples of each object's totals.
#[derive(Debug, Default)]
pub struct Rates {
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Debug)]
struct Window {
    previous: Option<Sample>,
    latest: Sample,
}

#[derive(Debug)]
struct Sample {
    at: Instant,
    totals: Totals,
}

impl Rates {
    /// Records `totals` of the object `key` taken at `at`.
    pub fn record(&self, key: String, at: Instant, totals: Totals) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let sample = Sample { at, totals };
        match windows.get_mut(&key) {
            Some(window) => window.previous = Some(std::mem::replace(&mut window.latest, sample)),
            None => {
                windows.insert(key, Window { previous: None, latest: sample });
            }
        }
    }

    /// Forgets every object but those in `live`.
    pub fn retain(&self, live: &HashSet<String>) {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner).retain(|key, _| live.contains(key));
    }

    /// Per second, how much each total of `key` grew between its last two samples (0.0
    /// before there are two).
    pub fn rates(&self, key: &str) -> HashMap<&'static str, f64> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(Window { previous: Some(previous), latest }) = windows.get(key) else {
            return HashMap::new();
        };
        let seconds = latest.at.duration_since(previous.at).as_secs_f64();
        if seconds <= 0.0 {
            return HashMap::new();
        }
        latest
            .totals
            .iter()
            .filter_map(|&(name, now)| {
                let (_, before) = previous.totals.iter().find(|(n, _)| *n == name)?;
                // Gauges (message counts) may fall: their rate is negative then.
                let change = now as f64 - *before as f64;
                Some((name, change / seconds))
            })
            .collect()
    }

    /// `totals` as RabbitMQ shows them: each name with its count and `<name>_details` with
    /// its rate.
    pub fn with_details(&self, key: &str, totals: &[(&'static str, u64)]) -> Map<String, Value> {
        let rates = self.rates(key);
        let mut object = Map::new();
        for &(name, total) in totals {
            let rate = rates.get(name).copied().unwrap_or(0.0);
            object.insert(name.to_owned(), json!(total));
            object.insert(format!("{name}_details"), json!({"rate": rate}));
        }
        object
    }
}

/// The key of a queue.
pub fn queue_key(vhost: &str, name: &str) -> String {
    format!("queue\0{vhost}\0{name}")
}

/// The key of a connection.
pub fn connection_key(connection: &ConnectionInfo) -> String {
    format!("connection\0{}", connection.facts.id)
}

/// The key of a channel.
pub fn channel_key(connection: &ConnectionInfo, channel: &ChannelInfo) -> String {
    format!("channel\0{}\0{}", connection.facts.id, channel.number)
}

/// The key of a vhost.
pub fn vhost_key(vhost: &str) -> String {
    format!("vhost\0{vhost}")
}

/// The key of the node.
pub const NODE_KEY: &str = "node";

/// Adds a queue's `message_stats` and the rates of its message counts
/// (`messages_details`, ...) to its JSON object.
pub fn add_queue_stats(rates: &Rates, vhost: &str, queue: &QueueEntry, object: &mut Value) {
    let Some(object) = object.as_object_mut() else { return };
    let key = queue_key(vhost, &queue.name_str());
    let messages = rates.with_details(&key, &queue_message_totals(queue));
    object.insert("message_stats".to_owned(), Value::Object(messages));
    for (name, value) in rates.with_details(&key, &queue_message_counts(queue)) {
        if name.ends_with("_details") {
            object.insert(name, value);
        }
    }
}

/// A queue's `message_stats` totals.
pub fn queue_message_totals(queue: &QueueEntry) -> Totals {
    let counters = &queue.handle.stats().messages;
    let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let (deliver, deliver_no_ack) = (get(&counters.deliver), get(&counters.deliver_no_ack));
    let (got, got_no_ack) = (get(&counters.get), get(&counters.get_no_ack));
    vec![
        ("publish", queue.handle.published()),
        ("deliver", deliver),
        ("deliver_no_ack", deliver_no_ack),
        ("get", got),
        ("get_no_ack", got_no_ack),
        ("deliver_get", deliver + deliver_no_ack + got + got_no_ack),
        ("get_empty", get(&counters.get_empty)),
        ("redeliver", get(&counters.redeliver)),
        ("ack", get(&counters.ack)),
    ]
}

/// A queue's message counts, for their `*_details` rates.
pub fn queue_message_counts(queue: &QueueEntry) -> Totals {
    let ready = queue.handle.ready_count();
    let unacked = queue.handle.stats().unacked.load(Ordering::Acquire);
    vec![("messages", ready + unacked), ("messages_ready", ready), ("messages_unacknowledged", unacked)]
}

/// A channel's `message_stats` totals.
pub fn channel_message_totals(channel: &ChannelInfo) -> Totals {
    with_deliver_get(channel.messages.totals().to_vec())
}

/// A connection's byte counts.
pub fn connection_totals(connection: &ConnectionInfo) -> Totals {
    vec![
        ("recv_oct", connection.recv_oct.load(Ordering::Relaxed)),
        ("send_oct", connection.send_oct.load(Ordering::Relaxed)),
    ]
}

/// `deliver_get`, the sum of deliveries and gets, added to channel-style totals.
fn with_deliver_get(mut totals: Totals) -> Totals {
    let sum: u64 = totals
        .iter()
        .filter(|(name, _)| matches!(*name, "deliver" | "deliver_no_ack" | "get" | "get_no_ack"))
        .map(|(_, n)| n)
        .sum();
    totals.push(("deliver_get", sum));
    totals
}

/// Adds `part` to `sum`, name by name.
fn add_totals(sum: &mut Totals, part: &[(&'static str, u64)]) {
    for &(name, n) in part {
        match sum.iter_mut().find(|(s, _)| *s == name) {
            Some((_, total)) => *total += n,
            None => sum.push((name, n)),
        }
    }
}

/// A vhost's totals since the node started: its closed channels' and connections' counts,
/// its open ones', and its queues' message counts. The node's are the sum over vhosts.
pub fn vhost_totals(node: &Node, vhost: &str) -> (Totals, Totals) {
    let retired = node.retired_counts(vhost);
    let mut messages = retired.messages.totals().to_vec();
    let mut bytes = vec![
        ("recv_oct", retired.recv_oct.load(Ordering::Relaxed)),
        ("send_oct", retired.send_oct.load(Ordering::Relaxed)),
    ];
    for connection in node.connections().iter().filter(|c| c.facts.vhost == vhost) {
        add_totals(&mut bytes, &connection_totals(connection));
        for channel in connection.channels() {
            add_totals(&mut messages, &channel.messages.totals());
        }
    }
    let mut counts = vec![("messages", 0), ("messages_ready", 0), ("messages_unacknowledged", 0)];
    if let Some(broker) = node.vhost(vhost) {
        for queue in broker.queues() {
            add_totals(&mut counts, &queue_message_counts(&queue));
        }
    }
    add_totals(&mut counts, &bytes);
    (with_deliver_get(messages), counts)
}

/// The node's totals: every vhost's summed.
pub fn node_totals(node: &Node) -> (Totals, Totals) {
    let (mut messages, mut counts) = (Totals::new(), Totals::new());
    for broker in node.vhosts() {
        let (m, c) = vhost_totals(node, broker.vhost());
        add_totals(&mut messages, &m);
        add_totals(&mut counts, &c);
    }
    (messages, counts)
}

/// Samples every object of `node` into `rates` every [`RATE_SAMPLE_INTERVAL`], until the
/// node or the rates are dropped.
pub fn spawn_sampler(node: Weak<Node>, rates: Weak<Rates>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(RATE_SAMPLE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let (Some(node), Some(rates)) = (node.upgrade(), rates.upgrade()) else { return };
            sample(&node, &rates, Instant::now());
        }
    });
}

/// One round of samples.
pub fn sample(node: &Node, rates: &Rates, at: Instant) {
    let mut live = HashSet::new();
    let mut record = |key: String, totals: Totals| {
        live.insert(key.clone());
        rates.record(key, at, totals);
    };
    for broker in node.vhosts() {
        let vhost = broker.vhost();
        for queue in broker.queues() {
            let mut totals = queue_message_totals(&queue);
            totals.extend(queue_message_counts(&queue));
            record(queue_key(vhost, &queue.name_str()), totals);
        }
        for exchange in broker.exchanges() {
            record(exchange_key(vhost, &exchange.name), exchange_totals(&exchange));
        }
        let (mut totals, counts) = vhost_totals(node, vhost);
        totals.extend(counts);
        record(vhost_key(vhost), totals);
    }
    for connection in node.connections() {
        record(connection_key(&connection), connection_totals(&connection));
        for channel in connection.channels() {
            record(channel_key(&connection, &channel), channel_message_totals(&channel));
        }
    }
    let (mut totals, counts) = node_totals(node);
    totals.extend(counts);
    totals.extend(node.churn().totals());
    totals.extend(super::system::node_gauges(node));
    record(NODE_KEY.to_owned(), totals);
    rates.retain(&live);
}

/// The key of an exchange.
pub fn exchange_key(vhost: &str, name: &[u8]) -> String {
    format!("exchange\0{vhost}\0{}", String::from_utf8_lossy(name))
}

/// An exchange's `message_stats` totals.
pub fn exchange_totals(exchange: &ExchangeEntry) -> Totals {
    let (publish_in, publish_out) = exchange.counters.totals();
    vec![("publish_in", publish_in), ("publish_out", publish_out)]
}

/// Adds an exchange's `message_stats` (publishes in and out, with rates) to its JSON
/// object once it has had traffic, as RabbitMQ shows them.
pub fn add_exchange_stats(rates: &Rates, vhost: &str, exchange: &ExchangeEntry, object: &mut Value) {
    let totals = exchange_totals(exchange);
    let Some(object) = object.as_object_mut().filter(|_| totals.iter().any(|&(_, n)| n > 0)) else {
        return;
    };
    let message_stats = rates.with_details(&exchange_key(vhost, &exchange.name), &totals);
    object.insert("message_stats".to_owned(), Value::Object(message_stats));
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Rates;

    #[test]
    fn a_rate_is_the_change_between_the_last_two_samples() {
        let rates = Rates::default();
        let start = Instant::now();
        rates.record("q".into(), start, vec![("publish", 100), ("messages", 50)]);
        assert!(rates.rates("q").is_empty(), "one sample gives no rate");
        rates.record("q".into(), start + Duration::from_secs(5), vec![("publish", 600), ("messages", 40)]);
        let now = rates.rates("q");
        assert_eq!(now.get("publish"), Some(&100.0));
        assert_eq!(now.get("messages"), Some(&-2.0));
        let shown = serde_json::Value::Object(rates.with_details("q", &[("publish", 650)]));
        assert_eq!(shown.pointer("/publish"), Some(&serde_json::json!(650)));
        assert_eq!(shown.pointer("/publish_details/rate"), Some(&serde_json::json!(100.0)));
        rates.retain(&std::collections::HashSet::new());
        assert!(rates.rates("q").is_empty());
    }
}
