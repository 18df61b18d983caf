//! lapin against the broker, one AMQP 0-9-1 behaviour per test: exchanges of every type and
//! their bindings, queues and their arguments, publishing, consuming, acks, QoS, consumer
//! priorities, cancels, confirms, returns, transactions, properties, big bodies, TTLs,
//! length limits, dead-lettering, direct reply-to and channel.flow. Each test starts its own
//! Warren (`--storage memory`), or uses `WARREN_TEST_AMQP_URL` (RabbitMQ) when set; every
//! expectation is RabbitMQ 3.10's behaviour.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRecoverOptions, BasicRejectOptions, ChannelFlowOptions, ExchangeBindOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, DecimalValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

use crate::harness::lapin_client::*;
use crate::harness::run;

async fn exchange(channel: &Channel, name: &str, kind: ExchangeKind, args: FieldTable) {
    within("exchange.declare", channel.exchange_declare(name, kind, ExchangeDeclareOptions::default(), args))
        .await
        .unwrap_or_else(|e| panic!("exchange.declare {name}: {e}"));
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within("queue.bind", channel.queue_bind(queue, exchange, key, QueueBindOptions::default(), args))
        .await
        .unwrap_or_else(|e| panic!("queue.bind {queue} to {exchange} with {key:?}: {e}"));
}

/// A fresh queue (unique name) bound to `exchange` with `key`.
async fn bound_queue(channel: &Channel, exchange: &str, key: &str) -> String {
    let q = unique("q");
    declare(channel, &q, FieldTable::default()).await;
    bind(channel, &q, exchange, key, FieldTable::default()).await;
    q
}

/// Waits until a passive declare of `queue` gives 404 (each try on a fresh channel).
async fn wait_until_queue_gone(connection: &lapin::Connection, queue: &str) {
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    within(&format!("queue {queue} to go away"), async {
        loop {
            let ch = channel(connection).await;
            match ch.queue_declare(queue, passive, FieldTable::default()).await {
                Ok(_) => {
                    let _ = ch.close(200, "ok").await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    let reply = reply_of(&e);
                    assert!(
                        reply.starts_with("404 NOT_FOUND - no queue"),
                        "passive declare of {queue}: {reply}"
                    );
                    return;
                }
            }
        }
    })
    .await
}

/// Whether a passive declare of `queue` succeeds (on a throwaway channel).
async fn queue_exists(connection: &lapin::Connection, queue: &str) -> bool {
    let ch = channel(connection).await;
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let ok = within("passive declare", ch.queue_declare(queue, passive, FieldTable::default())).await.is_ok();
    if ok {
        let _ = ch.close(200, "ok").await;
    }
    ok
}

fn headers(pairs: Vec<(&str, AMQPValue)>) -> BasicProperties {
    BasicProperties::default().with_headers(table(pairs))
}

// ---------------------------------------------------------------------------------------------
// Exchanges

#[test]
fn exchange_declare_passive_and_delete() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let x = unique("x");
        exchange(&ch, &x, ExchangeKind::Direct, FieldTable::default()).await;
        // Redeclaring identically and declaring passively both succeed.
        exchange(&ch, &x, ExchangeKind::Direct, FieldTable::default()).await;
        let passive = ExchangeDeclareOptions { passive: true, ..ExchangeDeclareOptions::default() };
        within("passive", ch.exchange_declare(&x, ExchangeKind::Direct, passive, FieldTable::default()))
            .await
            .expect("passive declare of an existing exchange");
        within("delete", ch.exchange_delete(&x, ExchangeDeleteOptions::default()))
            .await
            .expect("exchange.delete");
        let reply = expect_error(
            "passive declare after delete",
            ch.exchange_declare(&x, ExchangeKind::Direct, passive, FieldTable::default()),
        )
        .await;
        assert_eq!(reply, format!("404 NOT_FOUND - no exchange '{x}' in vhost '/'"));
        // Deleting a missing exchange is fine (idempotent).
        let ch2 = channel(&conn).await;
        within("delete missing", ch2.exchange_delete(&x, ExchangeDeleteOptions::default()))
            .await
            .expect("exchange.delete of a missing exchange");
    });
}

#[test]
fn direct_exchange_routes_by_exact_key() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let x = unique("direct");
        exchange(&ch, &x, ExchangeKind::Direct, FieldTable::default()).await;
        let qa = bound_queue(&ch, &x, "a").await;
        let qb = bound_queue(&ch, &x, "b").await;
        bind(&ch, &qb, &x, "a2", FieldTable::default()).await;
        for key in ["a", "b", "a2", "c", "A", "a.b"] {
            publish(&ch, &x, key, key.as_bytes()).await;
        }
        assert_eq!(drain(&ch, &qa).await, vec!["a"]);
        assert_eq!(drain(&ch, &qb).await, vec!["b", "a2"]);
    });
}

#[test]
fn fanout_exchange_routes_to_every_bound_queue() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let x = unique("fanout");
        exchange(&ch, &x, ExchangeKind::Fanout, FieldTable::default()).await;
        let q1 = bound_queue(&ch, &x, "").await;
        let q2 = bound_queue(&ch, &x, "ignored").await;
        publish(&ch, &x, "any.key", b"m1").await;
        publish(&ch, &x, "", b"m2").await;
        assert_eq!(drain(&ch, &q1).await, vec!["m1", "m2"]);
        assert_eq!(drain(&ch, &q2).await, vec!["m1", "m2"]);
    });
}

#[test]
fn topic_exchange_star_and_hash() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let x = unique("topic");
        exchange(&ch, &x, ExchangeKind::Topic, FieldTable::default()).await;
        let q1 = bound_queue(&ch, &x, "*.orange.*").await;
        let q2 = bound_queue(&ch, &x, "*.*.rabbit").await;
        bind(&ch, &q2, &x, "lazy.#", FieldTable::default()).await;
        let q3 = bound_queue(&ch, &x, "#").await;
        let q4 = bound_queue(&ch, &x, "a.#.z").await;
        let keys = [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox",
            "lazy.brown.fox",
            "lazy.pink.rabbit",
            "quick.brown.fox",
            "orange",
            "quick.orange.male.rabbit",
            "lazy.orange.male.rabbit",
            "lazy",
            "a.z",
            "a.b.c.z",
            "a.b.c",
            "",
        ];
        for key in keys {
            publish(&ch, &x, key, key.as_bytes()).await;
        }
        assert_eq!(
            drain(&ch, &q1).await,
            vec!["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"]
        );
        // A message matching two bindings of the same queue arrives once.
        assert_eq!(
            drain(&ch, &q2).await,
            vec![
                "quick.orange.rabbit",
                "lazy.orange.elephant",
                "lazy.brown.fox",
                "lazy.pink.rabbit",
                "lazy.orange.male.rabbit",
                "lazy"
            ]
        );
        assert_eq!(drain(&ch, &q3).await, keys.to_vec());
        assert_eq!(drain(&ch, &q4).await, vec!["a.z", "a.b.c.z"]);
    });
}

#[test]
fn headers_exchange_x_match_all_and_any() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let x = unique("headers");
        exchange(&ch, &x, ExchangeKind::Headers, FieldTable::default()).await;
        let q_all = unique("all");
        let q_any = unique("any");
        declare(&ch, &q_all, FieldTable::default()).await;
        declare(&ch, &q_any, FieldTable::default()).await;
        let binding =
            |mode: &str| table(vec![("x-match", s(mode)), ("format", s("pdf")), ("type", s("report"))]);
        bind(&ch, &q_all, &x, "", binding("all")).await;
        bind(&ch, &q_any, &x, "", binding("any")).await;
        let cases: Vec<(&str, BasicProperties)> = vec![
            ("both", headers(vec![("format", s("pdf")), ("type", s("report")), ("extra", int(1))])),
            ("format-only", headers(vec![("format", s("pdf"))])),
            ("type-only", headers(vec![("type", s("report"))])),
            ("wrong-values", headers(vec![("format", s("zip")), ("type", s("log"))])),
            ("one-wrong", headers(vec![("format", s("zip")), ("type", s("report"))])),
            ("no-headers", BasicProperties::default()),
        ];
        for (name, props) in cases {
            publish_props(&ch, &x, "ignored", name.as_bytes(), props).await;
        }
        assert_eq!(drain(&ch, &q_all).await, vec!["both"]);
        assert_eq!(drain(&ch, &q_any).await, vec!["both", "format-only", "type-only", "one-wrong"]);
    });
}

#[test]
fn queue_unbind_stops_routing() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = bound_queue(&ch, "amq.direct", "k").await;
        publish(&ch, "amq.direct", "k", b"before").await;
        within("queue.unbind", ch.queue_unbind(&q, "amq.direct", "k", FieldTable::default()))
            .await
            .expect("queue.unbind");
        publish(&ch, "amq.direct", "k", b"after").await;
        assert_eq!(drain(&ch, &q).await, vec!["before"]);
    });
}

/// A connection that has published with a key before sees another connection's binding
/// changes and queue re-declarations at its next publish.
#[test]
fn routing_follows_changes_made_by_other_connections() {
    run(async {
        let server = Server::start();
        let (_publisher, p) = server.open_confirming().await;
        let (_admin, a) = server.open().await;
        let first = bound_queue(&a, "amq.direct", "k").await;
        let direct = unique("q");
        declare(&a, &direct, FieldTable::default()).await;
        publish(&p, "amq.direct", "k", b"one").await;
        publish(&p, "", &direct, b"one").await;

        within("queue.unbind", a.queue_unbind(&first, "amq.direct", "k", FieldTable::default()))
            .await
            .expect("queue.unbind");
        let second = bound_queue(&a, "amq.direct", "k").await;
        within("queue.delete", a.queue_delete(&direct, QueueDeleteOptions::default()))
            .await
            .expect("queue.delete");
        declare(&a, &direct, FieldTable::default()).await;
        publish(&p, "amq.direct", "k", b"two").await;
        publish(&p, "", &direct, b"two").await;

        assert_eq!(drain(&a, &first).await, vec!["one"]);
        assert_eq!(drain(&a, &second).await, vec!["two"]);
        assert_eq!(drain(&a, &direct).await, vec!["two"]);
    });
}

#[test]
fn exchange_to_exchange_binding_routes_and_unbinds() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let source = unique("src");
        let dest = unique("dst");
        exchange(&ch, &source, ExchangeKind::Topic, FieldTable::default()).await;
        exchange(&ch, &dest, ExchangeKind::Fanout, FieldTable::default()).await;
        let q = bound_queue(&ch, &dest, "").await;
        within(
            "exchange.bind",
            ch.exchange_bind(&dest, &source, "a.#", ExchangeBindOptions::default(), FieldTable::default()),
        )
        .await
        .expect("exchange.bind");
        publish(&ch, &source, "a.b", b"routed").await;
        publish(&ch, &source, "b.a", b"not-routed").await;
        within(
            "exchange.unbind",
            ch.exchange_unbind(
                &dest,
                &source,
                "a.#",
                ExchangeUnbindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.unbind");
        publish(&ch, &source, "a.b", b"after-unbind").await;
        let got = get(&ch, &q, true).await.expect("one message");
        assert_eq!(body(&got.delivery), "routed");
        // The delivery names the exchange it was published to, not the bound one.
        assert_eq!(got.delivery.exchange.as_str(), source);
        assert_eq!(got.delivery.routing_key.as_str(), "a.b");
        assert!(get(&ch, &q, true).await.is_none());
    });
}

#[test]
fn alternate_exchange_receives_unroutable_messages() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let ae = unique("ae");
        exchange(&ch, &ae, ExchangeKind::Fanout, FieldTable::default()).await;
        let q_ae = bound_queue(&ch, &ae, "").await;
        let x = unique("main");
        exchange(&ch, &x, ExchangeKind::Direct, table(vec![("alternate-exchange", s(&ae))])).await;
        let q_main = bound_queue(&ch, &x, "known").await;
        publish(&ch, &x, "known", b"routed").await;
        // Mandatory but routed through the alternate exchange: no basic.return.
        let confirmation = publish_confirmation(
            &ch,
            &x,
            "unknown",
            BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
            b"to-ae",
            BasicProperties::default(),
        )
        .await;
        assert!(confirmation.is_ack());
        assert!(
            confirmation.take_message().is_none(),
            "a message taken by the alternate exchange is not returned"
        );
        assert_eq!(drain(&ch, &q_main).await, vec!["routed"]);
        let got = get(&ch, &q_ae, true).await.expect("message in the alternate exchange's queue");
        assert_eq!(body(&got.delivery), "to-ae");
        assert_eq!(got.delivery.exchange.as_str(), x);
        assert_eq!(got.delivery.routing_key.as_str(), "unknown");
    });
}

// ---------------------------------------------------------------------------------------------
// Queues

#[test]
fn server_named_queue_is_amq_gen() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open().await;
        let q1 = declare_with(
            &ch,
            "",
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
        let q2 = declare_with(
            &ch,
            "",
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
        for q in [&q1, &q2] {
            let name = q.name().as_str();
            assert!(name.starts_with("amq.gen-"), "server-named queue {name:?}");
            assert_eq!(name.len(), "amq.gen-".len() + 22, "server-named queue {name:?}");
            assert_eq!(q.message_count(), 0);
            assert_eq!(q.consumer_count(), 0);
        }
        assert_ne!(q1.name(), q2.name());
        // The queue is usable by its name through the default exchange.
        publish(&ch, "", q1.name().as_str(), b"hello").await;
        let got = get(&ch, q1.name().as_str(), true).await.expect("message in the server-named queue");
        assert_eq!(body(&got.delivery), "hello");
    });
}

#[test]
fn passive_declare_returns_message_and_consumer_counts() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("counts");
        let declared = declare(&ch, &q, FieldTable::default()).await;
        assert_eq!((declared.message_count(), declared.consumer_count()), (0, 0));
        for i in 0..3 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        assert_eq!(count(&ch, &q).await, 3);
        // A plain redeclare reports the same counts.
        assert_eq!(declare(&ch, &q, FieldTable::default()).await.message_count(), 3);
        let ch2 = channel(&conn).await;
        within("qos", ch2.basic_qos(1, BasicQosOptions::default())).await.expect("qos");
        let mut consumer = consume(&ch2, &q, false).await;
        let _held = next(&mut consumer).await;
        // One message unacked, two ready; one consumer.
        let passive = declare_with(
            &ch,
            &q,
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
        assert_eq!((passive.message_count(), passive.consumer_count()), (2, 1));
    });
}

#[test]
fn client_connection_close_is_clean() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let q = unique("q");
        declare(&ch, &q, FieldTable::default()).await;
        // connection.close from the client gets close-ok, and lapin's close() succeeds: the
        // broker must not drop the socket in a way that makes the client see a broken connection.
        within("connection.close", conn.close(200, "bye")).await.expect("connection.close");
        assert!(!conn.status().connected());
        let (conn2, ch2) = server.open().await;
        assert!(queue_exists(&conn2, &q).await);
        within("channel.close", ch2.close(200, "bye")).await.expect("channel.close");
        within("connection.close", conn2.close(200, "bye")).await.expect("connection.close");
    });
}

#[test]
fn exclusive_queue_is_deleted_with_its_connection() {
    run(async {
        let server = Server::start();
        let (owner, ch) = server.open().await;
        let q = unique("excl");
        declare_with(
            &ch,
            &q,
            QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
        publish(&ch, "", &q, b"x").await;
        let other = server.connect().await;
        assert!(queue_exists(&owner, &q).await);
        // (Whether close() itself reports success is checked by client_connection_close_is_clean.)
        let _ = within("close owner", owner.close(200, "bye")).await;
        wait_until_queue_gone(&other, &q).await;
    });
}

#[test]
fn auto_delete_queue_goes_with_last_consumer() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let q = unique("autodel");
        declare_with(
            &ch,
            &q,
            QueueDeclareOptions { auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
        // Never consumed from: it stays.
        assert!(queue_exists(&conn, &q).await);
        let c1 = consume(&ch, &q, true).await;
        let c2 = consume(&ch, &q, true).await;
        within("cancel 1", ch.basic_cancel(c1.tag().as_str(), BasicCancelOptions::default()))
            .await
            .expect("cancel");
        assert!(queue_exists(&conn, &q).await, "the queue must stay while a consumer is left");
        assert_eq!(consumers(&ch, &q).await, 1);
        within("cancel 2", ch.basic_cancel(c2.tag().as_str(), BasicCancelOptions::default()))
            .await
            .expect("cancel");
        wait_until_queue_gone(&conn, &q).await;
    });
}

#[test]
fn durable_queue_redeclare_is_idempotent() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("durable");
        let args = table(vec![("x-max-length", int(100))]);
        let options = QueueDeclareOptions { durable: true, ..Default::default() };
        declare_with(&ch, &q, options, args.clone()).await;
        publish(&ch, "", &q, b"kept").await;
        let again = declare_with(&ch, &q, options, args).await;
        assert_eq!(again.message_count(), 1);
        // A passive declare ignores durable and arguments.
        assert_eq!(count(&ch, &q).await, 1);
        let ch2 = channel(&conn).await;
        let deleted =
            within("delete", ch2.queue_delete(&q, QueueDeleteOptions::default())).await.expect("delete");
        assert_eq!(deleted, 1);
    });
}

#[test]
fn queue_purge_returns_ready_count() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("purge");
        declare(&ch, &q, FieldTable::default()).await;
        for i in 0..4 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let getter = channel(&conn).await;
        let held = get(&getter, &q, false).await.expect("a message");
        assert_eq!(body(&held.delivery), "m0");
        // Only the 3 ready messages count; the unacked one isn't purged.
        let purged = within("purge", ch.queue_purge(&q, QueuePurgeOptions::default())).await.expect("purge");
        assert_eq!(purged, 3);
        assert_eq!(count(&ch, &q).await, 0);
        within(
            "reject",
            getter.basic_reject(held.delivery.delivery_tag, BasicRejectOptions { requeue: true }),
        )
        .await
        .expect("reject");
        let back = get(&ch, &q, true).await.expect("the requeued message survives the purge");
        assert_eq!(body(&back.delivery), "m0");
        assert!(back.delivery.redelivered);
        // Purging an empty queue returns 0.
        assert_eq!(
            within("purge", ch.queue_purge(&q, QueuePurgeOptions::default())).await.expect("purge"),
            0
        );
    });
}

#[test]
fn queue_delete_returns_ready_count() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("del");
        declare(&ch, &q, FieldTable::default()).await;
        for i in 0..3 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let deleted =
            within("delete", ch.queue_delete(&q, QueueDeleteOptions::default())).await.expect("delete");
        assert_eq!(deleted, 3);
        assert!(!queue_exists(&conn, &q).await);
        // Deleting a missing queue returns delete-ok with 0.
        let ch2 = channel(&conn).await;
        assert_eq!(
            within("delete missing", ch2.queue_delete(&q, QueueDeleteOptions::default())).await.expect("ok"),
            0
        );
    });
}

#[test]
fn queue_delete_if_unused_and_if_empty_succeed_when_true() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q1 = unique("unused");
        declare(&ch, &q1, FieldTable::default()).await;
        publish(&ch, "", &q1, b"m").await;
        let unused = QueueDeleteOptions { if_unused: true, ..Default::default() };
        assert_eq!(within("delete if_unused", ch.queue_delete(&q1, unused)).await.expect("delete"), 1);
        let q2 = unique("empty");
        declare(&ch, &q2, FieldTable::default()).await;
        let _consumer = consume(&ch, &q2, false).await;
        let empty = QueueDeleteOptions { if_empty: true, ..Default::default() };
        assert_eq!(within("delete if_empty", ch.queue_delete(&q2, empty)).await.expect("delete"), 0);
        assert!(!queue_exists(&conn, &q1).await);
        assert!(!queue_exists(&conn, &q2).await);
    });
}

// ---------------------------------------------------------------------------------------------
// Publish, consume, get, acks

#[test]
fn publish_and_consume_in_order() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open().await;
        let q = unique("order");
        declare(&ch, &q, FieldTable::default()).await;
        let mut consumer = consume(&ch, &q, false).await;
        assert!(consumer.tag().as_str().starts_with("amq.ctag-"), "consumer tag {:?}", consumer.tag());
        for i in 0..20 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        for i in 0..20u64 {
            let d = next(&mut consumer).await;
            assert_eq!(body(&d), format!("m{i}"));
            assert_eq!(d.delivery_tag, i + 1);
            assert_eq!(d.exchange.as_str(), "");
            assert_eq!(d.routing_key.as_str(), q);
            assert!(!d.redelivered);
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        }
        nothing_delivered(&mut consumer).await;
    });
}

#[test]
fn basic_get_and_get_empty() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("get");
        declare(&ch, &q, FieldTable::default()).await;
        assert!(get(&ch, &q, false).await.is_none(), "get-empty on an empty queue");
        for i in 0..3 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let first = get(&ch, &q, false).await.expect("m0");
        assert_eq!(body(&first.delivery), "m0");
        // get-ok's message_count is what is left after this one.
        assert_eq!(first.message_count, 2);
        assert_eq!(first.delivery.delivery_tag, 1);
        assert!(!first.delivery.redelivered);
        assert_eq!(first.delivery.routing_key.as_str(), q);
        ch.basic_ack(first.delivery.delivery_tag, BasicAckOptions::default()).await.expect("ack");
        let second = get(&ch, &q, true).await.expect("m1");
        assert_eq!((body(&second.delivery).as_str(), second.message_count), ("m1", 1));
        let third = get(&ch, &q, true).await.expect("m2");
        assert_eq!((body(&third.delivery).as_str(), third.message_count), ("m2", 0));
        assert!(get(&ch, &q, true).await.is_none());
    });
}

#[test]
fn ack_single_and_multiple() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("acks");
        declare(&ch, &q, FieldTable::default()).await;
        for i in 1..=5 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let consumer_ch = channel(&conn).await;
        let mut consumer = consume(&consumer_ch, &q, false).await;
        let tags: Vec<u64> = {
            let mut t = Vec::new();
            for _ in 0..5 {
                t.push(next(&mut consumer).await.delivery_tag);
            }
            t
        };
        assert_eq!(tags, vec![1, 2, 3, 4, 5]);
        consumer_ch.basic_ack(2, BasicAckOptions { multiple: false }).await.expect("ack 2");
        consumer_ch.basic_ack(4, BasicAckOptions { multiple: true }).await.expect("ack up to 4");
        // Closing the channel requeues only what is still unacked: m5.
        within("close", consumer_ch.close(200, "bye")).await.expect("close");
        let left = drain(&ch, &q).await;
        assert_eq!(left, vec!["m5"]);
    });
}

#[test]
fn nack_with_requeue_redelivers_in_original_order() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("nack");
        declare(&ch, &q, FieldTable::default()).await;
        for i in 1..=5 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let c_ch = channel(&conn).await;
        within("qos", c_ch.basic_qos(3, BasicQosOptions::default())).await.expect("qos");
        let mut consumer = consume(&c_ch, &q, false).await;
        assert_eq!(next_bodies(&mut consumer, 3).await, vec!["m1", "m2", "m3"]);
        // Nack m1..m3 (multiple) with requeue: they go back ahead of m4, m5.
        c_ch.basic_nack(3, BasicNackOptions { multiple: true, requeue: true }).await.expect("nack");
        let mut seen = Vec::new();
        for _ in 0..5 {
            let d = next(&mut consumer).await;
            seen.push((body(&d), d.redelivered));
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        }
        assert_eq!(
            seen,
            vec![
                ("m1".to_owned(), true),
                ("m2".to_owned(), true),
                ("m3".to_owned(), true),
                ("m4".to_owned(), false),
                ("m5".to_owned(), false)
            ]
        );
    });
}

#[test]
fn reject_with_requeue_keeps_position_and_marks_redelivered() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("reject");
        declare(&ch, &q, FieldTable::default()).await;
        for i in 1..=3 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let m1 = get(&ch, &q, false).await.expect("m1");
        let m2 = get(&ch, &q, false).await.expect("m2");
        // Reject m2 first, then m1: both go back to their original positions.
        ch.basic_reject(m2.delivery.delivery_tag, BasicRejectOptions { requeue: true })
            .await
            .expect("reject");
        ch.basic_reject(m1.delivery.delivery_tag, BasicRejectOptions { requeue: true })
            .await
            .expect("reject");
        let mut seen = Vec::new();
        while let Some(m) = get(&ch, &q, true).await {
            seen.push((body(&m.delivery), m.delivery.redelivered));
        }
        assert_eq!(seen, vec![("m1".to_owned(), true), ("m2".to_owned(), true), ("m3".to_owned(), false)]);
    });
}

#[test]
fn nack_and_reject_without_requeue_discard() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("discard");
        declare(&ch, &q, FieldTable::default()).await;
        for i in 1..=4 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let c_ch = channel(&conn).await;
        let mut consumer = consume(&c_ch, &q, false).await;
        let ds: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                v.push(next(&mut consumer).await);
            }
            v
        };
        c_ch.basic_reject(ds[0].delivery_tag, BasicRejectOptions { requeue: false }).await.expect("reject");
        c_ch.basic_nack(ds[2].delivery_tag, BasicNackOptions { multiple: true, requeue: false })
            .await
            .expect("nack");
        nothing_delivered(&mut consumer).await;
        // m4 is still unacked; closing the channel gives only it back.
        within("close", c_ch.close(200, "bye")).await.expect("close");
        assert_eq!(drain(&ch, &q).await, vec!["m4"]);
    });
}

#[test]
fn qos_prefetch_limits_each_consumer() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("qos");
        declare(&ch, &q, FieldTable::default()).await;
        for i in 1..=6 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let c_ch = channel(&conn).await;
        within("qos", c_ch.basic_qos(2, BasicQosOptions { global: false })).await.expect("qos");
        let mut consumer = consume(&c_ch, &q, false).await;
        let d1 = next(&mut consumer).await;
        let d2 = next(&mut consumer).await;
        assert_eq!((body(&d1).as_str(), body(&d2).as_str()), ("m1", "m2"));
        nothing_delivered(&mut consumer).await;
        d1.acker.ack(BasicAckOptions::default()).await.expect("ack");
        assert_eq!(body(&next(&mut consumer).await), "m3");
        nothing_delivered(&mut consumer).await;
        // A second consumer on the same channel has its own limit of 2.
        let mut second = consume(&c_ch, &q, false).await;
        assert_eq!(next_bodies(&mut second, 2).await, vec!["m4", "m5"]);
        nothing_delivered(&mut second).await;
        nothing_delivered(&mut consumer).await;
        assert_eq!(count(&ch, &q).await, 1);
    });
}

#[test]
fn qos_global_limits_the_whole_channel() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let qa = unique("ga");
        let qb = unique("gb");
        declare(&ch, &qa, FieldTable::default()).await;
        declare(&ch, &qb, FieldTable::default()).await;
        for i in 1..=4 {
            publish(&ch, "", &qa, format!("a{i}").as_bytes()).await;
            publish(&ch, "", &qb, format!("b{i}").as_bytes()).await;
        }
        let c_ch = channel(&conn).await;
        within("qos", c_ch.basic_qos(3, BasicQosOptions { global: true })).await.expect("qos global");
        let ca = consume(&c_ch, &qa, false).await;
        let cb = consume(&c_ch, &qb, false).await;
        let mut both = futures::stream::select(ca, cb);
        let mut got = Vec::new();
        for _ in 0..3 {
            match within("a delivery", both.next()).await {
                Some(Ok(d)) => got.push(d),
                other => panic!("consumer ended: {:?}", other.map(|r| r.map(|d| d.delivery_tag))),
            }
        }
        // Three unacked across both consumers: nothing more.
        if let Ok(Some(Ok(d))) = tokio::time::timeout(QUIET, both.next()).await {
            panic!("a 4th delivery ({}) beyond the global prefetch of 3", body(&d));
        }
        got[0].acker.ack(BasicAckOptions::default()).await.expect("ack");
        match within("a delivery after the ack", both.next()).await {
            Some(Ok(_)) => {}
            _ => panic!("no delivery after freeing a slot"),
        }
        if let Ok(Some(Ok(d))) = tokio::time::timeout(QUIET, both.next()).await {
            panic!("a delivery ({}) beyond the global prefetch of 3", body(&d));
        }
        assert_eq!(count(&ch, &qa).await + count(&ch, &qb).await, 4);
    });
}

#[test]
fn consumer_priority_gets_messages_first() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("prio");
        declare(&ch, &q, FieldTable::default()).await;
        let low_ch = channel(&conn).await;
        let high_ch = channel(&conn).await;
        within("qos", high_ch.basic_qos(2, BasicQosOptions::default())).await.expect("qos");
        let mut low =
            consume_with(&low_ch, &q, BasicConsumeOptions::default(), table(vec![("x-priority", int(1))]))
                .await;
        let mut high =
            consume_with(&high_ch, &q, BasicConsumeOptions::default(), table(vec![("x-priority", int(10))]))
                .await;
        for i in 1..=2 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        // The high-priority consumer takes everything while it has room.
        let h = next_bodies(&mut high, 2).await;
        assert_eq!(h, vec!["m1", "m2"]);
        nothing_delivered(&mut low).await;
        // Once it is full (prefetch 2), the low-priority consumer gets the rest.
        publish(&ch, "", &q, b"m3").await;
        assert_eq!(body(&next(&mut low).await), "m3");
        nothing_delivered(&mut high).await;
    });
}

#[test]
fn basic_cancel_from_client_stops_deliveries() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("cancel");
        declare(&ch, &q, FieldTable::default()).await;
        let mut consumer = consume(&ch, &q, false).await;
        publish(&ch, "", &q, b"before").await;
        let d = next(&mut consumer).await;
        d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        within("basic.cancel", ch.basic_cancel(consumer.tag().as_str(), BasicCancelOptions::default()))
            .await
            .expect("basic.cancel");
        assert_eq!(consumers(&ch, &q).await, 0);
        publish(&ch, "", &q, b"after").await;
        assert!(ends(&mut consumer).await, "the consumer stream ends after basic.cancel");
        assert_eq!(count(&ch, &q).await, 1);
    });
}

#[test]
fn queue_deletion_sends_consumer_cancel_notification() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("srvcancel");
        declare(&ch, &q, FieldTable::default()).await;
        let c_ch = channel(&conn).await;
        let mut consumer = consume(&c_ch, &q, false).await;
        let other = channel(&conn).await;
        within("delete", other.queue_delete(&q, QueueDeleteOptions::default())).await.expect("delete");
        assert!(ends(&mut consumer).await, "basic.cancel from the server ends the consumer");
        // The consumer's channel stays open and usable.
        let q2 = unique("after");
        declare(&c_ch, &q2, FieldTable::default()).await;
        assert!(c_ch.status().connected());
    });
}

#[test]
fn basic_recover_requeues_unacked_messages() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("recover");
        declare(&ch, &q, FieldTable::default()).await;
        for i in 1..=3 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let m1 = get(&ch, &q, false).await.expect("m1");
        let m2 = get(&ch, &q, false).await.expect("m2");
        assert!(!m1.delivery.redelivered && !m2.delivery.redelivered);
        within("basic.recover", ch.basic_recover(BasicRecoverOptions { requeue: true }))
            .await
            .expect("recover");
        let mut seen = Vec::new();
        while let Some(m) = get(&ch, &q, true).await {
            seen.push((body(&m.delivery), m.delivery.redelivered));
        }
        assert_eq!(seen, vec![("m1".to_owned(), true), ("m2".to_owned(), true), ("m3".to_owned(), false)]);
    });
}

// ---------------------------------------------------------------------------------------------
// Confirms, returns, transactions

#[test]
fn confirm_select_acks_every_publish() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("confirm");
        declare(&ch, &q, FieldTable::default()).await;
        let mut pending = Vec::new();
        for i in 0..50 {
            let confirm = within(
                "publish",
                ch.basic_publish(
                    "",
                    &q,
                    BasicPublishOptions::default(),
                    format!("m{i}").as_bytes(),
                    Default::default(),
                ),
            )
            .await
            .expect("publish");
            pending.push(confirm);
        }
        for confirm in pending {
            let c = within("confirm", confirm).await.expect("confirm");
            assert!(c.is_ack(), "confirm {c:?}");
        }
        // Unroutable, not mandatory: still acked, nothing returned.
        let c = publish(&ch, "amq.direct", "nowhere", b"lost").await;
        assert!(c.take_message().is_none());
        assert_eq!(count(&ch, &q).await, 50);
    });
}

#[test]
fn mandatory_unroutable_publish_is_returned_before_the_ack() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let props = BasicProperties::default().with_message_id("id-1".into());
        let confirmation = publish_confirmation(
            &ch,
            "amq.direct",
            &unique("nobody"),
            BasicPublishOptions { mandatory: true, ..Default::default() },
            b"returned body",
            props,
        )
        .await;
        assert!(confirmation.is_ack(), "an unroutable message is acked: {confirmation:?}");
        // lapin attaches a basic.return to the confirm only if it arrived before the ack.
        let returned = confirmation.take_message().expect("basic.return before basic.ack");
        assert_eq!(returned.reply_code, 312);
        assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
        assert_eq!(returned.delivery.exchange.as_str(), "amq.direct");
        assert_eq!(returned.delivery.data, b"returned body");
        assert_eq!(returned.delivery.properties.message_id().as_ref().map(|s| s.as_str()), Some("id-1"));
    });
}

#[test]
fn tx_commit_and_rollback_of_publishes() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let q = unique("txpub");
        declare(&ch, &q, FieldTable::default()).await;
        let tx = channel(&conn).await;
        within("tx.select", tx.tx_select()).await.expect("tx.select");
        publish(&tx, "", &q, b"t1").await;
        publish(&tx, "", &q, b"t2").await;
        assert_eq!(count(&ch, &q).await, 0, "uncommitted publishes are not in the queue");
        within("tx.commit", tx.tx_commit()).await.expect("tx.commit");
        assert_eq!(count(&ch, &q).await, 2);
        publish(&tx, "", &q, b"t3").await;
        within("tx.rollback", tx.tx_rollback()).await.expect("tx.rollback");
        within("tx.commit", tx.tx_commit()).await.expect("empty tx.commit");
        assert_eq!(drain(&ch, &q).await, vec!["t1", "t2"]);
    });
}

#[test]
fn tx_commit_and_rollback_of_acks() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("txack");
        declare(&ch, &q, FieldTable::default()).await;
        publish(&ch, "", &q, b"m1").await;
        publish(&ch, "", &q, b"m2").await;
        let tx = channel(&conn).await;
        within("tx.select", tx.tx_select()).await.expect("tx.select");
        let m1 = get(&tx, &q, false).await.expect("m1");
        tx.basic_ack(m1.delivery.delivery_tag, BasicAckOptions::default()).await.expect("ack");
        within("tx.rollback", tx.tx_rollback()).await.expect("rollback");
        // The rolled-back ack did nothing: m1 is still unacked, not requeued.
        let m2 = get(&tx, &q, false).await.expect("m2");
        assert_eq!(body(&m2.delivery), "m2");
        tx.basic_ack(m2.delivery.delivery_tag, BasicAckOptions::default()).await.expect("ack");
        within("tx.commit", tx.tx_commit()).await.expect("commit");
        // Closing the channel requeues m1 only (m2's ack was committed).
        within("close", tx.close(200, "bye")).await.expect("close");
        let left: Vec<_> = {
            let mut v = Vec::new();
            while let Some(m) = get(&ch, &q, true).await {
                v.push((body(&m.delivery), m.delivery.redelivered));
            }
            v
        };
        assert_eq!(left, vec![("m1".to_owned(), true)]);
    });
}

// ---------------------------------------------------------------------------------------------
// Message contents

#[test]
fn properties_and_header_tables_round_trip() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("props");
        declare(&ch, &q, FieldTable::default()).await;
        let mut inner = FieldTable::default();
        inner.insert("nested-int".into(), AMQPValue::LongInt(-7));
        inner.insert("nested-str".into(), s("deep"));
        let array: FieldArray = vec![
            AMQPValue::LongString("a".into()),
            AMQPValue::LongInt(2),
            AMQPValue::Boolean(false),
            AMQPValue::FieldTable(inner.clone()),
            AMQPValue::FieldArray(vec![AMQPValue::Double(0.5)].into()),
        ]
        .into();
        let headers = table(vec![
            ("bool-true", AMQPValue::Boolean(true)),
            ("bool-false", AMQPValue::Boolean(false)),
            ("i8", AMQPValue::ShortShortInt(-8)),
            ("u8", AMQPValue::ShortShortUInt(200)),
            ("i16", AMQPValue::ShortInt(-1600)),
            ("u16", AMQPValue::ShortUInt(60000)),
            ("i32", AMQPValue::LongInt(-2_000_000_000)),
            ("u32", AMQPValue::LongUInt(4_000_000_000)),
            ("i64", AMQPValue::LongLongInt(-9_000_000_000_000)),
            ("f32", AMQPValue::Float(1.5)),
            ("f64", AMQPValue::Double(-2.25e100)),
            ("decimal", AMQPValue::DecimalValue(DecimalValue { scale: 2, value: 12345 })),
            ("longstr", AMQPValue::LongString("héllo \u{0} wörld".into())),
            ("empty-str", AMQPValue::LongString("".into())),
            ("array", AMQPValue::FieldArray(array)),
            ("empty-array", AMQPValue::FieldArray(FieldArray::default())),
            ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
            ("table", AMQPValue::FieldTable(inner)),
            ("empty-table", AMQPValue::FieldTable(FieldTable::default())),
            ("bytes", AMQPValue::ByteArray(vec![0u8, 1, 2, 255, 254].into())),
            ("void", AMQPValue::Void),
        ]);
        let props = BasicProperties::default()
            .with_content_type("application/x-test".into())
            .with_content_encoding("gzip".into())
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_priority(5)
            .with_correlation_id("corr-1".into())
            .with_reply_to("reply-q".into())
            .with_expiration("600000".into())
            .with_message_id("msg-1".into())
            .with_timestamp(1_600_000_000)
            .with_type("kind-x".into())
            .with_user_id("guest".into())
            .with_app_id("app-y".into());
        let payload: Vec<u8> = (0..=255u8).collect();
        publish_props(&ch, "", &q, &payload, props.clone()).await;
        let mut consumer = consume(&ch, &q, true).await;
        let d = next(&mut consumer).await;
        assert_eq!(d.data, payload);
        assert_eq!(d.properties.headers(), props.headers(), "headers table");
        assert_eq!(d.properties, props, "all properties");
        // The same through basic.get.
        within("cancel", ch.basic_cancel(consumer.tag().as_str(), BasicCancelOptions::default()))
            .await
            .expect("cancel");
        publish_props(&ch, "", &q, b"", props.clone()).await;
        let got = get(&ch, &q, true).await.expect("message");
        assert_eq!(got.delivery.properties, props, "all properties through basic.get");
        assert!(got.delivery.data.is_empty());
    });
}

#[test]
fn empty_body_and_body_larger_than_frame_max_arrive_intact() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("big");
        declare(&ch, &q, FieldTable::default()).await;
        let big: Vec<u8> =
            (0..1024 * 1024 + 13).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        publish(&ch, "", &q, &big).await;
        publish(&ch, "", &q, b"").await;
        publish(&ch, "", &q, &big[..131_072 - 8]).await;
        let mut consumer = consume(&ch, &q, true).await;
        let d = next(&mut consumer).await;
        assert_eq!(d.data.len(), big.len());
        assert!(d.data == big, "1 MiB body differs");
        assert_eq!(next(&mut consumer).await.data, b"");
        assert!(next(&mut consumer).await.data == big[..131_072 - 8]);
        // And through basic.get.
        within("cancel", ch.basic_cancel(consumer.tag().as_str(), BasicCancelOptions::default()))
            .await
            .expect("cancel");
        publish(&ch, "", &q, &big).await;
        let got = get(&ch, &q, true).await.expect("big message");
        assert!(got.delivery.data == big, "1 MiB body through basic.get differs");
    });
}

// ---------------------------------------------------------------------------------------------
// TTL, limits, dead-lettering, expiry

#[test]
fn queue_message_ttl_removes_expired_messages() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("ttl");
        declare(&ch, &q, table(vec![("x-message-ttl", int(100))])).await;
        for i in 0..3 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        // A queue TTL removes messages proactively: the count drops to 0 by itself.
        within("the count to drop to 0", async {
            while count(&ch, &q).await != 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let c_ch = channel(&conn).await;
        let mut consumer = consume(&c_ch, &q, true).await;
        nothing_delivered(&mut consumer).await;
        assert!(get(&ch, &q, true).await.is_none());
    });
}

#[test]
fn per_message_expiration_is_not_delivered() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("expiration");
        declare(&ch, &q, FieldTable::default()).await;
        let expiring = |ms: &str| BasicProperties::default().with_expiration(ms.into());
        publish_props(&ch, "", &q, b"expires-0", expiring("0")).await;
        publish_props(&ch, "", &q, b"expires-20", expiring("20")).await;
        publish(&ch, "", &q, b"stays").await;
        publish_props(&ch, "", &q, b"expires-late", expiring("60000")).await;
        publish_props(&ch, "", &q, b"expires-30", expiring("30")).await;
        // Let the short TTLs pass (waiting for time, not for the broker).
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut consumer = consume(&ch, &q, true).await;
        let d = next(&mut consumer).await;
        assert_eq!(body(&d), "stays");
        let late = next(&mut consumer).await;
        assert_eq!(body(&late), "expires-late");
        assert_eq!(late.properties.expiration().as_ref().map(|s| s.as_str()), Some("60000"));
        nothing_delivered(&mut consumer).await;
    });
}

#[test]
fn max_length_drops_from_the_head() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("maxlen");
        declare(&ch, &q, table(vec![("x-max-length", int(3))])).await;
        for i in 1..=5 {
            let c = publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
            assert!(c.is_ack());
        }
        assert_eq!(drain(&ch, &q).await, vec!["m3", "m4", "m5"]);
        for i in 6..=9 {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        assert_eq!(count(&ch, &q).await, 3);
    });
}

#[test]
fn overflow_reject_publish_nacks_under_confirms() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("rejectpub");
        declare(&ch, &q, table(vec![("x-max-length", int(2)), ("x-overflow", s("reject-publish"))])).await;
        let mut results = Vec::new();
        for i in 1..=4 {
            let c = publish_confirmation(
                &ch,
                "",
                &q,
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                Default::default(),
            )
            .await;
            results.push(c.is_ack());
        }
        assert_eq!(results, vec![true, true, false, false]);
        assert_eq!(drain(&ch, &q).await, vec!["m1", "m2"]);
        // Room again: publishes are accepted.
        assert!(publish(&ch, "", &q, b"m5").await.is_ack());
        assert_eq!(drain(&ch, &q).await, vec!["m5"]);
    });
}

fn header<'a>(props: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref().and_then(|h| h.inner().get(key))
}

fn long_str(value: Option<&AMQPValue>) -> Option<String> {
    match value {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

#[test]
fn dead_letter_on_reject_with_x_death_header() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let dlx = unique("dlx");
        exchange(&ch, &dlx, ExchangeKind::Fanout, FieldTable::default()).await;
        let dead = bound_queue(&ch, &dlx, "").await;
        let src = unique("src");
        declare(&ch, &src, table(vec![("x-dead-letter-exchange", s(&dlx))])).await;
        let props = BasicProperties::default().with_message_id("orig".into());
        publish_props(&ch, "", &src, b"payload", props).await;
        let m = get(&ch, &src, false).await.expect("message");
        ch.basic_reject(m.delivery.delivery_tag, BasicRejectOptions { requeue: false })
            .await
            .expect("reject");
        let mut consumer = consume(&ch, &dead, true).await;
        let d = next(&mut consumer).await;
        assert_eq!(body(&d), "payload");
        assert_eq!(d.exchange.as_str(), dlx, "the dead-lettered delivery's exchange is the DLX");
        assert_eq!(d.routing_key.as_str(), src, "the routing key is the original one");
        assert_eq!(d.properties.message_id().as_ref().map(|s| s.as_str()), Some("orig"));
        let deaths = match header(&d.properties, "x-death") {
            Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
            other => panic!("x-death header: {other:?}"),
        };
        assert_eq!(deaths.len(), 1);
        let death = match &deaths[0] {
            AMQPValue::FieldTable(t) => t.inner().clone(),
            other => panic!("x-death entry: {other:?}"),
        };
        let mut keys: Vec<&str> = death.keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(keys, vec!["count", "exchange", "queue", "reason", "routing-keys", "time"]);
        assert_eq!(death.get("count"), Some(&AMQPValue::LongLongInt(1)));
        assert_eq!(long_str(death.get("reason")).as_deref(), Some("rejected"));
        assert_eq!(long_str(death.get("queue")).as_deref(), Some(src.as_str()));
        assert_eq!(long_str(death.get("exchange")).as_deref(), Some(""));
        assert_eq!(
            death.get("routing-keys"),
            Some(&AMQPValue::FieldArray(vec![AMQPValue::LongString(src.as_str().into())].into()))
        );
        assert!(matches!(death.get("time"), Some(AMQPValue::Timestamp(_))), "time: {:?}", death.get("time"));
        assert_eq!(long_str(header(&d.properties, "x-first-death-reason")).as_deref(), Some("rejected"));
        assert_eq!(long_str(header(&d.properties, "x-first-death-queue")).as_deref(), Some(src.as_str()));
        assert_eq!(long_str(header(&d.properties, "x-first-death-exchange")).as_deref(), Some(""));
    });
}

#[test]
fn dead_letter_routing_key_and_expired_reason() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let dlx = unique("dlx");
        exchange(&ch, &dlx, ExchangeKind::Direct, FieldTable::default()).await;
        let dead = bound_queue(&ch, &dlx, "dead-key").await;
        let src = unique("src");
        declare(
            &ch,
            &src,
            table(vec![
                ("x-dead-letter-exchange", s(&dlx)),
                ("x-dead-letter-routing-key", s("dead-key")),
                ("x-message-ttl", int(50)),
            ]),
        )
        .await;
        let src_x = unique("srcx");
        exchange(&ch, &src_x, ExchangeKind::Direct, FieldTable::default()).await;
        bind(&ch, &src, &src_x, "orig-key", FieldTable::default()).await;
        let props = BasicProperties::default().with_expiration("60000".into());
        publish_props(&ch, &src_x, "orig-key", b"expiring", props).await;
        let mut consumer = consume(&ch, &dead, true).await;
        let d = next(&mut consumer).await;
        assert_eq!(body(&d), "expiring");
        assert_eq!(d.exchange.as_str(), dlx);
        assert_eq!(d.routing_key.as_str(), "dead-key");
        assert!(d.properties.expiration().is_none(), "dead-lettering removes the expiration property");
        let death = match header(&d.properties, "x-death") {
            Some(AMQPValue::FieldArray(a)) => match &a.as_slice()[0] {
                AMQPValue::FieldTable(t) => t.inner().clone(),
                other => panic!("x-death entry: {other:?}"),
            },
            other => panic!("x-death header: {other:?}"),
        };
        assert_eq!(long_str(death.get("reason")).as_deref(), Some("expired"));
        assert_eq!(long_str(death.get("queue")).as_deref(), Some(src.as_str()));
        assert_eq!(long_str(death.get("exchange")).as_deref(), Some(src_x.as_str()));
        assert_eq!(
            death.get("routing-keys"),
            Some(&AMQPValue::FieldArray(vec![AMQPValue::LongString("orig-key".into())].into()))
        );
        assert_eq!(long_str(header(&d.properties, "x-first-death-reason")).as_deref(), Some("expired"));
        assert_eq!(long_str(header(&d.properties, "x-first-death-queue")).as_deref(), Some(src.as_str()));
        assert_eq!(
            long_str(header(&d.properties, "x-first-death-exchange")).as_deref(),
            Some(src_x.as_str())
        );
        // The message's own expiration moves into the x-death entry.
        assert_eq!(death.get("original-expiration"), Some(&AMQPValue::LongString("60000".into())));
    });
}

#[test]
fn queue_expires_deletes_an_unused_queue() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("expires");
        declare(&ch, &q, table(vec![("x-expires", int(300))])).await;
        assert!(queue_exists(&conn, &q).await);
        // Declares (even passive ones) renew the lease, publishes don't: watch with mandatory
        // publishes until one comes back unroutable.
        within(&format!("queue {q} to expire"), async {
            loop {
                let c = publish_confirmation(
                    &ch,
                    "",
                    &q,
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    b"probe",
                    BasicProperties::default(),
                )
                .await;
                if let Some(returned) = c.take_message() {
                    assert_eq!(returned.reply_code, 312);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(!queue_exists(&conn, &q).await);
    });
}

#[test]
fn direct_reply_to_rpc() {
    run(async {
        let server = Server::start();
        let (_server_conn, server_ch) = server.open().await;
        let requests = unique("rpc");
        declare(&server_ch, &requests, FieldTable::default()).await;
        let mut request_consumer = consume(&server_ch, &requests, false).await;

        let (_client_conn, client_ch) = server.open().await;
        let mut replies = consume(&client_ch, "amq.rabbitmq.reply-to", true).await;
        let props = BasicProperties::default()
            .with_reply_to("amq.rabbitmq.reply-to".into())
            .with_correlation_id("c-42".into());
        publish_props(&client_ch, "", &requests, b"ping", props).await;

        let request = next(&mut request_consumer).await;
        let reply_to = request.properties.reply_to().clone().expect("reply_to").to_string();
        assert!(reply_to.starts_with("amq.rabbitmq.reply-to."), "reply_to {reply_to:?}");
        assert_eq!(body(&request), "ping");
        let reply_props = BasicProperties::default().with_correlation_id("c-42".into());
        publish_props(&server_ch, "", &reply_to, b"pong", reply_props).await;
        request.acker.ack(BasicAckOptions::default()).await.expect("ack");

        let reply = next(&mut replies).await;
        assert_eq!(body(&reply), "pong");
        assert_eq!(reply.properties.correlation_id().as_ref().map(|s| s.as_str()), Some("c-42"));
        assert_eq!(reply.routing_key.as_str(), reply_to);
    });
}

#[test]
fn channel_flow_active_is_acknowledged() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let active = within("channel.flow", ch.channel_flow(ChannelFlowOptions { active: true }))
            .await
            .expect("channel.flow active=true");
        assert!(active, "flow-ok active");
        // The channel keeps working.
        let q = unique("flow");
        declare(&ch, &q, FieldTable::default()).await;
        publish(&ch, "", &q, b"m").await;
        assert_eq!(count(&ch, &q).await, 1);
    });
}

/// `x-max-priority`: the highest priority first, FIFO within a priority; priorities above
/// the maximum count as the maximum; messages without one count as 0.
#[test]
fn priority_queue_delivers_highest_first_fifo_within_a_priority() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("priority");
        declare(&ch, &q, table(vec![("x-max-priority", int(5))])).await;
        let sends: [(&str, Option<u8>); 7] = [
            ("a1", Some(1)),
            ("b5", Some(5)),
            ("c0", None),
            ("d5", Some(5)),
            ("e9", Some(9)),
            ("f1", Some(1)),
            ("g3", Some(3)),
        ];
        for (body, priority) in sends {
            let properties = match priority {
                Some(p) => BasicProperties::default().with_priority(p),
                None => BasicProperties::default(),
            };
            publish_props(&ch, "", &q, body.as_bytes(), properties).await;
        }
        // e9 is capped at 5 and so comes after the earlier 5s.
        assert_eq!(drain(&ch, &q).await, vec!["b5", "d5", "e9", "g3", "a1", "f1", "c0"]);
    });
}

/// `x-max-length-bytes` drops the oldest messages until the bodies fit.
#[test]
fn max_length_bytes_drops_from_the_head() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let q = unique("max-bytes");
        declare(&ch, &q, table(vec![("x-max-length-bytes", int(10))])).await;
        for body in ["m1__", "m2__", "m3__", "m4__", "m5__"] {
            publish(&ch, "", &q, body.as_bytes()).await;
        }
        assert_eq!(drain(&ch, &q).await, vec!["m4__", "m5__"]);
    });
}
