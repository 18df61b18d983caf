//! Policies applied to queues and exchanges, set and cleared through the management API
//! (`PUT`/`DELETE /api/policies/{vhost}/{name}`) while lapin clients publish and read:
//! length limits on existing and new queues, argument against policy, TTL and
//! dead-lettering, alternate exchanges, a stream's age limit, priority between matching
//! policies, and policies after a restart.

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::{json, Value};

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::run;

/// `Basic guest:guest`.
const GUEST: &str = "Basic Z3Vlc3Q6Z3Vlc3Q=";

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// One management request as guest; answers the status.
fn http(broker: &Broker, method: &str, path: &str, body: &str) -> u16 {
    let addr = broker.addr("http");
    let mut stream = TcpStream::connect(addr).expect("connect to the management listener");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {GUEST}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body.as_bytes()).expect("write body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    answer.split(' ').nth(1).and_then(|status| status.parse().ok()).expect("a status")
}

/// Sets policy `name` on vhost `/`.
fn set_policy(server: &Server, name: &str, policy: &Value) {
    let broker = server.warren.as_ref().expect("a Warren");
    let status = http(broker, "PUT", &format!("/api/policies/%2F/{name}"), &policy.to_string());
    assert!(status == 201 || status == 204, "PUT policy {name}: {status}");
}

/// Clears policy `name` of vhost `/`.
fn clear_policy(server: &Server, name: &str) {
    let broker = server.warren.as_ref().expect("a Warren");
    assert_eq!(http(broker, "DELETE", &format!("/api/policies/%2F/{name}"), ""), 204);
}

/// Waits until `check` holds, within the deadline.
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `queue` has `expected` ready messages.
async fn count_becomes(channel: &Channel, queue: &str, expected: u32) {
    let what = format!("queue {queue} holds {expected}");
    eventually(&what, || async { count(channel, queue).await == expected }).await;
}

async fn publish_numbered(channel: &Channel, queue: &str, range: std::ops::Range<u32>) {
    for i in range {
        publish(channel, "", queue, format!("m{i}").as_bytes()).await;
    }
}

/// A fanout exchange `exchange` bound to a new queue `queue`.
async fn fanout_into(channel: &Channel, exchange: &str, queue: &str) {
    within(
        "exchange.declare",
        channel.exchange_declare(
            exchange,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.declare");
    declare(channel, queue, FieldTable::default()).await;
    within(
        "queue.bind",
        channel.queue_bind(queue, exchange, "", QueueBindOptions::default(), FieldTable::default()),
    )
    .await
    .expect("queue.bind");
}

fn long(value: i64) -> AMQPValue {
    AMQPValue::LongLongInt(value)
}

#[test]
fn a_max_length_policy_trims_existing_queues_limits_new_ones_and_lifts_when_cleared() {
    run(async {
        let server = Server::warren(Broker::start(&["--storage", "memory"]));
        let (_c, ch) = server.open_confirming().await;
        declare(&ch, "lim-old", FieldTable::default()).await;
        publish_numbered(&ch, "lim-old", 0..10).await;
        // Argument against policy: the lower limit wins either way.
        declare(&ch, "lim-arg-low", table(vec![("x-max-length", int(2))])).await;
        declare(&ch, "lim-arg-high", table(vec![("x-max-length", int(10))])).await;
        declare(&ch, "other", FieldTable::default()).await;

        set_policy(
            &server,
            "limit",
            &json!({"pattern": "^lim-", "definition": {"max-length": 3}, "apply-to": "queues"}),
        );
        count_becomes(&ch, "lim-old", 3).await;
        assert_eq!(drain(&ch, "lim-old").await, ["m7", "m8", "m9"], "the oldest were dropped");

        declare(&ch, "lim-new", FieldTable::default()).await;
        for queue in ["lim-new", "lim-arg-low", "lim-arg-high", "other"] {
            publish_numbered(&ch, queue, 0..6).await;
        }
        count_becomes(&ch, "lim-new", 3).await;
        count_becomes(&ch, "lim-arg-low", 2).await;
        count_becomes(&ch, "lim-arg-high", 3).await;
        assert_eq!(count(&ch, "other").await, 6, "the pattern does not match");

        clear_policy(&server, "limit");
        publish_numbered(&ch, "lim-new", 6..10).await;
        publish_numbered(&ch, "lim-arg-high", 6..10).await;
        count_becomes(&ch, "lim-new", 7).await;
        count_becomes(&ch, "lim-arg-high", 7).await;
        publish_numbered(&ch, "lim-arg-low", 6..10).await;
        count_becomes(&ch, "lim-arg-low", 2).await;
    });
}

#[test]
fn policy_ttl_and_dead_lettering_with_the_queue_argument_winning_the_exchange() {
    run(async {
        let server = Server::warren(Broker::start(&["--storage", "memory"]));
        let (_c, ch) = server.open_confirming().await;
        fanout_into(&ch, "dlx-policy", "dead-policy").await;
        fanout_into(&ch, "dlx-own", "dead-own").await;
        declare(&ch, "ttl-plain", FieldTable::default()).await;
        declare(&ch, "ttl-early", FieldTable::default()).await;
        declare(&ch, "ttl-own-dlx", table(vec![("x-dead-letter-exchange", s("dlx-own"))])).await;
        // Enqueued before the policy: it keeps the TTL it came with (none), as in RabbitMQ.
        publish(&ch, "", "ttl-early", b"before").await;

        let definition = json!({"message-ttl": 100, "dead-letter-exchange": "dlx-policy"});
        set_policy(&server, "ttl", &json!({"pattern": "^ttl-", "definition": definition}));
        publish(&ch, "", "ttl-plain", b"after").await;
        publish(&ch, "", "ttl-own-dlx", b"own").await;
        count_becomes(&ch, "dead-policy", 1).await;
        count_becomes(&ch, "dead-own", 1).await;
        assert_eq!(drain(&ch, "dead-policy").await, ["after"]);
        assert_eq!(drain(&ch, "dead-own").await, ["own"], "the queue's own x-dead-letter-exchange wins");
        tokio::time::sleep(QUIET).await;
        assert_eq!(drain(&ch, "ttl-early").await, ["before"], "a message enqueued before keeps no TTL");
        assert_eq!(count(&ch, "ttl-plain").await, 0);

        // A length limit that arrives later dead-letters the dropped heads (maxlen).
        declare(&ch, "cap-backlog", FieldTable::default()).await;
        publish_numbered(&ch, "cap-backlog", 0..4).await;
        let definition = json!({"max-length": 1, "dead-letter-exchange": "dlx-policy"});
        set_policy(&server, "cap", &json!({"pattern": "^cap-", "definition": definition}));
        count_becomes(&ch, "dead-policy", 3).await;
        let dead = get(&ch, "dead-policy", true).await.expect("a dead letter");
        let headers = dead.delivery.properties.headers().clone().unwrap_or_default();
        let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
            panic!("x-death: {headers:?}")
        };
        let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else { panic!("{deaths:?}") };
        assert_eq!(death.inner().get("reason"), Some(&s("maxlen")));
        assert_eq!(drain(&ch, "dead-policy").await, ["m1", "m2"]);
        assert_eq!(drain(&ch, "cap-backlog").await, ["m3"]);
    });
}

#[test]
fn an_alternate_exchange_from_a_policy_unless_the_exchange_has_its_own() {
    run(async {
        let server = Server::warren(Broker::start(&["--storage", "memory"]));
        let (_c, ch) = server.open_confirming().await;
        fanout_into(&ch, "ae-policy", "caught-policy").await;
        fanout_into(&ch, "ae-own", "caught-own").await;
        let direct = |name: &'static str, arguments: FieldTable| {
            let ch = ch.clone();
            async move {
                within(
                    "exchange.declare",
                    ch.exchange_declare(
                        name,
                        ExchangeKind::Direct,
                        ExchangeDeclareOptions::default(),
                        arguments,
                    ),
                )
                .await
                .expect("exchange.declare");
            }
        };
        direct("src-plain", FieldTable::default()).await;
        direct("src-own", table(vec![("alternate-exchange", s("ae-own"))])).await;
        publish(&ch, "src-plain", "nowhere", b"lost").await;

        let definition = json!({"alternate-exchange": "ae-policy"});
        set_policy(
            &server,
            "ae",
            &json!({"pattern": "^src-", "definition": definition, "apply-to": "exchanges"}),
        );
        publish(&ch, "src-plain", "nowhere", b"plain").await;
        publish(&ch, "src-own", "nowhere", b"own").await;
        count_becomes(&ch, "caught-policy", 1).await;
        assert_eq!(drain(&ch, "caught-policy").await, ["plain"]);
        assert_eq!(drain(&ch, "caught-own").await, ["own"], "the exchange's own argument wins");

        clear_policy(&server, "ae");
        publish(&ch, "src-plain", "nowhere", b"lost again").await;
        tokio::time::sleep(QUIET).await;
        assert_eq!(count(&ch, "caught-policy").await, 0);
    });
}

#[test]
fn the_highest_priority_of_two_matching_policies_applies() {
    run(async {
        let server = Server::warren(Broker::start(&["--storage", "memory"]));
        let (_c, ch) = server.open_confirming().await;
        declare(&ch, "prio-q", FieldTable::default()).await;
        publish_numbered(&ch, "prio-q", 0..10).await;
        set_policy(
            &server,
            "low",
            &json!({"pattern": "^prio-", "definition": {"max-length": 1}, "priority": 1}),
        );
        set_policy(
            &server,
            "high",
            &json!({"pattern": "^prio", "definition": {"max-length": 4}, "priority": 2}),
        );
        // An exchanges-only policy of higher priority does not apply to queues.
        let exchanges_only = json!({"pattern": "prio", "definition": {"max-length": 2}, "priority": 9, "apply-to": "exchanges"});
        set_policy(&server, "exchanges", &exchanges_only);
        // "low" applied alone first and left 1; "high" then raised the limit to 4.
        count_becomes(&ch, "prio-q", 1).await;
        publish_numbered(&ch, "prio-q", 10..20).await;
        count_becomes(&ch, "prio-q", 4).await;

        set_policy(
            &server,
            "low",
            &json!({"pattern": "^prio-", "definition": {"max-length": 1}, "priority": 3}),
        );
        count_becomes(&ch, "prio-q", 1).await;
        assert_eq!(drain(&ch, "prio-q").await, ["m19"]);
    });
}

#[test]
fn a_stream_takes_its_age_limit_from_a_policy() {
    run(async {
        let server = Server::warren(Broker::start(&["--storage", "disk"]));
        let (_c, ch) = server.open_confirming().await;
        let args =
            table(vec![("x-queue-type", s("stream")), ("x-stream-max-segment-size-bytes", long(4096))]);
        declare_with(&ch, "aged-stream", DURABLE, args).await;
        for _ in 0..100 {
            publish_props(&ch, "", "aged-stream", &[7u8; 300], BasicProperties::default()).await;
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        set_policy(&server, "age", &json!({"pattern": "^aged-", "definition": {"max-age": "1s"}}));
        let first_offset = || async {
            let (_c, channel) = server.open().await;
            within("basic.qos", channel.basic_qos(10, Default::default())).await.expect("qos");
            let args = table(vec![("x-stream-offset", s("first"))]);
            let mut consumer = consume_with(&channel, "aged-stream", Default::default(), args).await;
            let delivery = next(&mut consumer).await;
            let headers = delivery.properties.headers().clone().unwrap_or_default();
            match headers.inner().get("x-stream-offset") {
                Some(AMQPValue::LongLongInt(offset)) => *offset,
                other => panic!("x-stream-offset: {other:?}"),
            }
        };
        eventually("retention by the policy's age removed the oldest segments", || async {
            first_offset().await > 0
        })
        .await;
    });
}

#[test]
fn policies_apply_to_recovered_queues_after_a_restart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let persistent = BasicProperties::default().with_delivery_mode(2);
    run(async {
        let server = Server::warren(Broker::start_in(&data_dir, &["--storage", "disk"]));
        let (_c, ch) = server.open_confirming().await;
        declare_with(&ch, "kept", DURABLE, FieldTable::default()).await;
        for i in 0..5 {
            publish_props(&ch, "", "kept", format!("m{i}").as_bytes(), persistent.clone()).await;
        }
        set_policy(&server, "cap", &json!({"pattern": "^kept$", "definition": {"max-length": 2}}));
        count_becomes(&ch, "kept", 2).await;
        let status = server.warren.expect("a Warren").terminate();
        assert!(status.success(), "clean stop: {status}");
    });
    run(async {
        let server = Server::warren(Broker::start_in(&data_dir, &["--storage", "disk"]));
        let (_c, ch) = server.open_confirming().await;
        for i in 5..9 {
            publish_props(&ch, "", "kept", format!("m{i}").as_bytes(), persistent.clone()).await;
        }
        count_becomes(&ch, "kept", 2).await;
        assert_eq!(drain(&ch, "kept").await, ["m7", "m8"]);
    });
}

#[test]
fn byte_limits_reject_publish_and_expiry_from_policies() {
    run(async {
        let server = Server::warren(Broker::start(&["--storage", "memory"]));
        let (_c, ch) = server.open_confirming().await;
        // A byte limit set on running queues counts the backlog they hold already, requeued
        // messages and a priority queue's included.
        declare(&ch, "bytes-plain", FieldTable::default()).await;
        declare(&ch, "bytes-prio", table(vec![("x-max-priority", int(5))])).await;
        for queue in ["bytes-plain", "bytes-prio"] {
            for i in 0..10u8 {
                let properties = BasicProperties::default().with_priority(i % 3);
                publish_props(&ch, "", queue, &[b'0' + i; 100], properties).await;
            }
        }
        let held = get(&ch, "bytes-plain", false).await.expect("a message");
        within(
            "basic.reject",
            held.delivery.acker.reject(lapin::options::BasicRejectOptions { requeue: true }),
        )
        .await
        .expect("basic.reject");
        set_policy(&server, "bytes", &json!({"pattern": "^bytes-", "definition": {"max-length-bytes": 350}}));
        count_becomes(&ch, "bytes-plain", 3).await;
        count_becomes(&ch, "bytes-prio", 3).await;

        // reject-publish from a policy: publishes beyond the limit are nacked.
        declare(&ch, "full-queue", FieldTable::default()).await;
        let definition = json!({"max-length": 2, "overflow": "reject-publish"});
        set_policy(&server, "full", &json!({"pattern": "^full-", "definition": definition}));
        publish_numbered(&ch, "full-queue", 0..2).await;
        let refused = publish_confirmation(
            &ch,
            "",
            "full-queue",
            Default::default(),
            b"one too many",
            BasicProperties::default(),
        )
        .await;
        assert!(refused.is_nack(), "the third publish is nacked");
        assert_eq!(count(&ch, "full-queue").await, 2);

        // expires from a policy: an unused queue goes.
        declare(&ch, "short-lived", FieldTable::default()).await;
        set_policy(&server, "expiry", &json!({"pattern": "^short-", "definition": {"expires": 200}}));
        // Looked at through the management API: a passive declare would renew the lease.
        let broker = server.warren.as_ref().expect("a Warren");
        let gone = || async { http(broker, "GET", "/api/queues/%2F/short-lived", "") == 404 };
        eventually("the unused queue expired", gone).await;
    });
}
