//! lapin against the broker: how a classic queue hands out its messages. Competing consumers
//! share a queue round-robin, message by message, whether they share a channel, a
//! connection or neither, and whatever their prefetch; and a message's own expiration
//! dead-letters it from the head of the queue on time with nobody reading. Each test starts
//! its own Warren (`--storage memory`), or uses `WARREN_TEST_AMQP_URL` (RabbitMQ) when set;
//! every expectation is RabbitMQ 3.10's behaviour.

use std::time::{Duration, Instant};

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer, ExchangeKind};

use crate::harness::lapin_client::*;
use crate::harness::run;

// ---------------------------------------------------------------------------------------------
// Round-robin between competing consumers
// ---------------------------------------------------------------------------------------------

/// Where the competing consumers live.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// All on one channel.
    OneChannel,
    /// One channel each, on one connection.
    ChannelEach,
    /// One connection each.
    ConnectionEach,
}

/// Whether the messages are in the queue before the consumers start, or published after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    ConsumeFirst,
    PublishFirst,
}

/// Messages each consumer gets.
const ROUNDS: usize = 4;

/// `n` consumers laid out as `layout`, each channel with `basic.qos(prefetch)` (none for
/// `None`). Connections and channels are returned so that they stay open.
async fn consumers(
    server: &Server,
    queue: &str,
    n: usize,
    layout: Layout,
    prefetch: Option<u16>,
) -> (Vec<Connection>, Vec<Channel>, Vec<Consumer>) {
    let (mut connections, mut channels, mut consumers) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let fresh_connection = i == 0 || matches!(layout, Layout::ConnectionEach);
        if fresh_connection {
            connections.push(server.connect().await);
        }
        if i == 0 || !matches!(layout, Layout::OneChannel) {
            let ch = channel(connections.last().expect("a connection")).await;
            if let Some(prefetch) = prefetch {
                within("basic.qos", ch.basic_qos(prefetch, BasicQosOptions { global: false }))
                    .await
                    .expect("basic.qos");
            }
            channels.push(ch);
        }
        consumers.push(consume(channels.last().expect("a channel"), queue, false).await);
    }
    (connections, channels, consumers)
}

/// Acknowledges `delivery`.
async fn ack(delivery: &Delivery) {
    within("basic.ack", delivery.acker.ack(BasicAckOptions::default())).await.expect("basic.ack");
}

/// The message numbers (1-based) consumer `i` (0-based) of `n` gets under round-robin.
fn expected_share(i: usize, n: usize) -> Vec<String> {
    (0..ROUNDS).map(|round| format!("m{}", 1 + i + round * n)).collect()
}

/// Checks that `n` consumers of one queue get messages 1..=ROUNDS*n round-robin: consumer
/// `i` gets `i, i+n, i+2n...` and nothing else.
///
/// With prefetch 1 each consumer holds one message at a time, and the acks go out one
/// consumer after the other, each waiting for that consumer's next message: RabbitMQ then
/// refills the one consumer with room, which keeps the order deterministic.
fn round_robin(n: usize, layout: Layout, prefetch: Option<u16>, order: Order) {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("rr");
        declare(&ch, &q, FieldTable::default()).await;
        let publish_all = || async {
            for m in 1..=ROUNDS * n {
                publish(&ch, "", &q, format!("m{m}").as_bytes()).await;
            }
        };
        if order == Order::PublishFirst {
            publish_all().await;
        }
        let (_connections, _channels, mut consumers) = consumers(&server, &q, n, layout, prefetch).await;
        if order == Order::ConsumeFirst {
            publish_all().await;
        }
        let mut got: Vec<Vec<String>> = vec![Vec::new(); n];
        if prefetch == Some(1) {
            let mut held = Vec::new();
            for consumer in &mut consumers {
                held.push(next(consumer).await);
            }
            for _round in 1..ROUNDS {
                for (i, consumer) in consumers.iter_mut().enumerate() {
                    ack(&held[i]).await;
                    got[i].push(body(&held[i]));
                    held[i] = next(consumer).await;
                }
            }
            for (i, delivery) in held.iter().enumerate() {
                got[i].push(body(delivery));
            }
        } else {
            for (i, consumer) in consumers.iter_mut().enumerate() {
                got[i] = next_bodies(consumer, ROUNDS).await;
            }
        }
        for consumer in &mut consumers {
            nothing_delivered(consumer).await;
        }
        for (i, share) in got.iter().enumerate() {
            assert_eq!(
                share,
                &expected_share(i, n),
                "consumer {i} of {n} ({layout:?}, prefetch {prefetch:?})"
            );
        }
    });
}

/// Declares one `#[test]` per (consumers, layout, prefetch, order).
macro_rules! round_robin_tests {
    ($($name:ident: $n:expr, $layout:ident, $prefetch:expr, $order:ident;)*) => {
        $(
            #[test]
            fn $name() {
                round_robin($n, Layout::$layout, $prefetch, Order::$order);
            }
        )*
    };
}

round_robin_tests! {
    one_consumer_no_qos: 1, OneChannel, None, ConsumeFirst;
    one_consumer_prefetch_1: 1, OneChannel, Some(1), ConsumeFirst;
    one_consumer_prefetch_1_published_first: 1, OneChannel, Some(1), PublishFirst;
    two_on_one_channel_no_qos: 2, OneChannel, None, ConsumeFirst;
    two_on_one_channel_prefetch_1: 2, OneChannel, Some(1), ConsumeFirst;
    two_on_one_channel_prefetch_10: 2, OneChannel, Some(10), ConsumeFirst;
    two_on_one_channel_prefetch_1_published_first: 2, OneChannel, Some(1), PublishFirst;
    two_on_two_channels_no_qos: 2, ChannelEach, None, ConsumeFirst;
    two_on_two_channels_prefetch_1: 2, ChannelEach, Some(1), ConsumeFirst;
    two_on_two_channels_prefetch_10: 2, ChannelEach, Some(10), ConsumeFirst;
    two_on_two_channels_prefetch_1_published_first: 2, ChannelEach, Some(1), PublishFirst;
    two_on_two_connections_no_qos: 2, ConnectionEach, None, ConsumeFirst;
    two_on_two_connections_prefetch_1_published_first: 2, ConnectionEach, Some(1), PublishFirst;
    three_on_one_channel_no_qos: 3, OneChannel, None, ConsumeFirst;
    three_on_one_channel_prefetch_1: 3, OneChannel, Some(1), ConsumeFirst;
    three_on_one_channel_prefetch_10: 3, OneChannel, Some(10), ConsumeFirst;
    three_on_one_channel_prefetch_1_published_first: 3, OneChannel, Some(1), PublishFirst;
    three_on_three_channels_no_qos: 3, ChannelEach, None, ConsumeFirst;
    three_on_three_channels_prefetch_1: 3, ChannelEach, Some(1), ConsumeFirst;
    three_on_three_channels_prefetch_10: 3, ChannelEach, Some(10), ConsumeFirst;
    three_on_three_channels_prefetch_1_published_first: 3, ChannelEach, Some(1), PublishFirst;
    three_on_three_connections_prefetch_10: 3, ConnectionEach, Some(10), ConsumeFirst;
}

/// Without `basic.qos` the first consumer takes every message already in the queue the
/// moment it starts: the second finds nothing left.
#[test]
fn published_first_without_qos_the_first_consumer_takes_all() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("rr-first");
        declare(&ch, &q, FieldTable::default()).await;
        for m in 1..=4 {
            publish(&ch, "", &q, format!("m{m}").as_bytes()).await;
        }
        let (_connections, _channels, mut consumers) =
            consumers(&server, &q, 2, Layout::OneChannel, None).await;
        assert_eq!(next_bodies(&mut consumers[0], 4).await, ["m1", "m2", "m3", "m4"]);
        nothing_delivered(&mut consumers[1]).await;
    });
}

/// A consumer that starts in the middle of a round is served after those whose turn was
/// still to come in it, and after the one served last.
#[test]
fn a_new_consumer_joins_at_the_end_of_the_round() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("rr-join");
        declare(&ch, &q, FieldTable::default()).await;
        let (_connections, channels, mut consumers) =
            consumers(&server, &q, 2, Layout::OneChannel, None).await;
        publish(&ch, "", &q, b"m1").await;
        assert_eq!(body(&next(&mut consumers[0]).await), "m1");
        consumers.push(consume(&channels[0], &q, false).await);
        for m in 2..=7 {
            publish(&ch, "", &q, format!("m{m}").as_bytes()).await;
        }
        assert_eq!(next_bodies(&mut consumers[0], 2).await, ["m3", "m6"]);
        assert_eq!(next_bodies(&mut consumers[1], 2).await, ["m2", "m5"]);
        assert_eq!(next_bodies(&mut consumers[2], 2).await, ["m4", "m7"]);
        for consumer in &mut consumers {
            nothing_delivered(consumer).await;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Per-message expiry at the head, with nobody reading
// ---------------------------------------------------------------------------------------------

async fn exchange(channel: &Channel, name: &str, kind: ExchangeKind) {
    within(
        "exchange.declare",
        channel.exchange_declare(name, kind, ExchangeDeclareOptions::default(), FieldTable::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("exchange.declare {name}: {e}"));
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, args: FieldTable) {
    within("queue.bind", channel.queue_bind(queue, exchange, "", QueueBindOptions::default(), args))
        .await
        .unwrap_or_else(|e| panic!("queue.bind {queue} to {exchange}: {e}"));
}

/// A source queue dead-lettering to a fanout exchange, and the queue bound to it:
/// `(source, dead-letter queue)`.
async fn source_and_dead_letter_queue(ch: &Channel) -> (String, String) {
    let dlx = unique("dlx");
    exchange(ch, &dlx, ExchangeKind::Fanout).await;
    let dead = unique("dead");
    declare(ch, &dead, FieldTable::default()).await;
    bind(ch, &dead, &dlx, FieldTable::default()).await;
    let src = unique("src");
    declare(ch, &src, table(vec![("x-dead-letter-exchange", s(&dlx))])).await;
    (src, dead)
}

/// Waits, with the deadline, until `queue` holds `n` ready messages (passive declares: they
/// read nothing).
async fn wait_for_count(ch: &Channel, queue: &str, n: u32) {
    within(&format!("{n} message(s) in {queue}"), async {
        while count(ch, queue).await != n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn header<'a>(properties: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    properties.headers().as_ref().and_then(|h| h.inner().get(key))
}

/// The `reason` of the first `x-death` entry.
fn death_reason(properties: &BasicProperties) -> String {
    let Some(AMQPValue::FieldArray(deaths)) = header(properties, "x-death") else {
        panic!("no x-death header: {properties:?}");
    };
    match deaths.as_slice().first() {
        Some(AMQPValue::FieldTable(death)) => match death.inner().get("reason") {
            Some(AMQPValue::LongString(reason)) => String::from_utf8_lossy(reason.as_bytes()).into_owned(),
            other => panic!("x-death reason: {other:?}"),
        },
        other => panic!("x-death entry: {other:?}"),
    }
}

/// A message with `expiration` in a queue nobody reads is dead-lettered once it expires,
/// and leaves the queue.
#[test]
fn own_expiration_dead_letters_with_nobody_reading() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let (src, dead) = source_and_dead_letter_queue(&ch).await;
        let published = Instant::now();
        let expiring = BasicProperties::default().with_expiration("1000".into());
        publish_props(&ch, "", &src, b"expiring", expiring).await;
        wait_for_count(&ch, &dead, 1).await;
        assert!(published.elapsed() >= Duration::from_millis(900), "dead-lettered before it expired");
        assert_eq!(count(&ch, &src).await, 0, "the expired message left its queue");
        let message = get(&ch, &dead, true).await.expect("the dead-lettered message");
        assert_eq!(body(&message.delivery), "expiring");
        assert_eq!(death_reason(&message.delivery.properties), "expired");
        assert!(message.delivery.properties.expiration().is_none());
    });
}

/// Only the head expires: an expired message behind a live one stays counted until it
/// reaches the head, and goes as soon as it does.
#[test]
fn expired_message_behind_a_live_head_waits_for_the_head() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let (src, dead) = source_and_dead_letter_queue(&ch).await;
        publish(&ch, "", &src, b"live").await;
        let expiring = BasicProperties::default().with_expiration("100".into());
        publish_props(&ch, "", &src, b"expiring", expiring).await;
        // Let the short TTL pass (waiting for time, not for the broker).
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(count(&ch, &src).await, 2, "an expired message behind a live head is still counted");
        assert_eq!(count(&ch, &dead).await, 0);
        let live = get(&ch, &src, true).await.expect("the live head");
        assert_eq!(body(&live.delivery), "live");
        wait_for_count(&ch, &dead, 1).await;
        assert_eq!(count(&ch, &src).await, 0);
    });
}

/// The RPC-timeout pattern: a request nobody answers in time expires from the request queue
/// and is dead-lettered through a headers exchange back to its caller's reply queue (and no
/// other caller's).
#[test]
fn expired_request_comes_back_through_a_headers_exchange() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let timeouts = unique("timeouts");
        exchange(&ch, &timeouts, ExchangeKind::Headers).await;
        let (mine, other) = (unique("reply-mine"), unique("reply-other"));
        for (queue, caller) in [(&mine, "me"), (&other, "someone-else")] {
            declare(&ch, queue, FieldTable::default()).await;
            bind(&ch, queue, &timeouts, table(vec![("x-match", s("all")), ("caller", s(caller))])).await;
        }
        let requests = unique("requests");
        declare(&ch, &requests, table(vec![("x-dead-letter-exchange", s(&timeouts))])).await;
        let request = BasicProperties::default()
            .with_expiration("1000".into())
            .with_correlation_id("call-1".into())
            .with_reply_to(mine.as_str().into())
            .with_headers(table(vec![("caller", s("me"))]));
        publish_props(&ch, "", &requests, b"request", request).await;
        let mut replies = consume(&ch, &mine, true).await;
        let timed_out = next(&mut replies).await;
        assert_eq!(body(&timed_out), "request");
        assert_eq!(timed_out.properties.correlation_id().as_ref().map(|c| c.as_str()), Some("call-1"));
        assert_eq!(death_reason(&timed_out.properties), "expired");
        assert_eq!(count(&ch, &requests).await, 0);
        assert_eq!(count(&ch, &other).await, 0);
    });
}

/// In a priority queue the head is the highest priority: a live high-priority message is
/// not dead-lettered for the queue TTL of an older low-priority one, which waits behind it.
#[test]
fn priority_queue_expires_its_head_only() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let dlx = unique("dlx");
        exchange(&ch, &dlx, ExchangeKind::Fanout).await;
        let dead = unique("dead");
        declare(&ch, &dead, FieldTable::default()).await;
        bind(&ch, &dead, &dlx, FieldTable::default()).await;
        let src = unique("src");
        let args = vec![
            ("x-dead-letter-exchange", s(&dlx)),
            ("x-max-priority", int(10)),
            ("x-message-ttl", int(1000)),
        ];
        declare(&ch, &src, table(args)).await;
        publish_props(&ch, "", &src, b"low", BasicProperties::default().with_priority(0)).await;
        // Let time pass between the two publishes (waiting for time, not for the broker).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let high_published = Instant::now();
        publish_props(&ch, "", &src, b"high", BasicProperties::default().with_priority(5)).await;
        wait_for_count(&ch, &dead, 2).await;
        assert!(
            high_published.elapsed() >= Duration::from_millis(900),
            "dead-lettered {:?} after the live high-priority head was published",
            high_published.elapsed()
        );
        let mut dead_lettered = drain(&ch, &dead).await;
        dead_lettered.sort();
        assert_eq!(dead_lettered, ["high", "low"]);
        assert_eq!(count(&ch, &src).await, 0);
    });
}
