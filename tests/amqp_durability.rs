//! lapin against Warren on disc (`--storage disk --fsync always`) across restarts: confirmed
//! persistent messages survive SIGKILL in order; durable exchanges, queues and bindings survive
//! a clean restart; transient messages and non-durable queues do not; unacked messages come
//! back. These always run on a Warren they start (never `WARREN_TEST_AMQP_URL`).

use std::path::{Path, PathBuf};

use lapin::options::{
    BasicAckOptions, ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::run;

const FLAGS: &[&str] = &["--storage", "disk", "--fsync", "always"];

/// A data directory that outlives the broker processes started on it.
fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    (temp, dir)
}

fn start(dir: &Path) -> Server {
    Server::warren(Broker::start_in(dir, FLAGS))
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

const PASSIVE: QueueDeclareOptions = QueueDeclareOptions {
    passive: true,
    durable: false,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// Stops the broker with SIGTERM and checks it exits cleanly.
fn terminate(server: Server) {
    let status = server.warren.expect("a Warren").terminate();
    assert!(status.success(), "warren exited with {status} on SIGTERM");
}

#[test]
fn confirmed_persistent_messages_survive_sigkill_in_order() {
    let (_temp, dir) = data_dir();
    let q = unique("durable");
    let total = 300;
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open_confirming().await;
        declare_with(&ch, &q, DURABLE, FieldTable::default()).await;
        for i in 0..total {
            publish_props(&ch, "", &q, format!("m{i}").as_bytes(), persistent()).await;
        }
        server.warren.expect("a Warren").kill();
    });
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open().await;
        assert_eq!(count(&ch, &q).await, total, "confirmed messages after SIGKILL");
        let mut consumer = consume(&ch, &q, false).await;
        for i in 0..total {
            let d = next(&mut consumer).await;
            assert_eq!(body(&d), format!("m{i}"), "message {i} after restart");
            assert_eq!(d.properties.delivery_mode(), &Some(2));
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        }
        nothing_delivered(&mut consumer).await;
    });
}

#[test]
fn durable_exchanges_queues_and_bindings_survive_a_clean_restart() {
    let (_temp, dir) = data_dir();
    let q = unique("dq");
    let x = unique("dx");
    let x2 = unique("dx2");
    let args = table(vec![("x-max-length", int(10))]);
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open().await;
        let durable_x = ExchangeDeclareOptions { durable: true, ..Default::default() };
        within(
            "exchange.declare",
            ch.exchange_declare(&x, ExchangeKind::Topic, durable_x, FieldTable::default()),
        )
        .await
        .expect("declare");
        within(
            "exchange.declare",
            ch.exchange_declare(&x2, ExchangeKind::Fanout, durable_x, FieldTable::default()),
        )
        .await
        .expect("declare");
        declare_with(&ch, &q, DURABLE, args.clone()).await;
        within("bind", ch.queue_bind(&q, &x, "a.*", QueueBindOptions::default(), FieldTable::default()))
            .await
            .expect("bind");
        within(
            "exchange.bind",
            ch.exchange_bind(&x, &x2, "", ExchangeBindOptions::default(), FieldTable::default()),
        )
        .await
        .expect("exchange.bind");
        terminate(server);
    });
    run(async {
        let server = start(&dir);
        let (conn, ch) = server.open_confirming().await;
        let passive_x = ExchangeDeclareOptions { passive: true, ..Default::default() };
        within("passive x", ch.exchange_declare(&x, ExchangeKind::Topic, passive_x, FieldTable::default()))
            .await
            .expect("durable exchange after restart");
        // Redeclaring with the same arguments works; different ones are refused: they were kept.
        declare_with(&ch, &q, DURABLE, args.clone()).await;
        let reply = expect_error(
            "redeclare with other args",
            ch.queue_declare(&q, DURABLE, table(vec![("x-max-length", int(11))])),
        )
        .await;
        assert_eq!(
            reply,
            format!(
                "406 PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': \
                 received '11' but current is '10'"
            )
        );
        let ch = channel(&conn).await;
        within("confirm.select", ch.confirm_select(Default::default())).await.expect("confirm.select");
        publish(&ch, &x, "a.b", b"via-binding").await;
        publish(&ch, &x, "b.b", b"not-routed").await;
        publish(&ch, &x2, "a.c", b"via-exchange-binding").await;
        assert_eq!(drain(&ch, &q).await, vec!["via-binding", "via-exchange-binding"]);
    });
}

#[test]
fn transient_messages_in_a_durable_queue_do_not_survive_a_restart() {
    let (_temp, dir) = data_dir();
    let q = unique("mixed");
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open_confirming().await;
        declare_with(&ch, &q, DURABLE, FieldTable::default()).await;
        publish_props(&ch, "", &q, b"p1", persistent()).await;
        publish_props(&ch, "", &q, b"t1", BasicProperties::default()).await;
        publish_props(&ch, "", &q, b"t2", BasicProperties::default().with_delivery_mode(1)).await;
        publish_props(&ch, "", &q, b"p2", persistent()).await;
        assert_eq!(count(&ch, &q).await, 4);
        terminate(server);
    });
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open().await;
        assert_eq!(count(&ch, &q).await, 2);
        assert_eq!(drain(&ch, &q).await, vec!["p1", "p2"]);
    });
}

#[test]
fn unacked_messages_are_redelivered_after_a_restart() {
    let (_temp, dir) = data_dir();
    let q = unique("unacked");
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open_confirming().await;
        declare_with(&ch, &q, DURABLE, FieldTable::default()).await;
        for i in 1..=4 {
            publish_props(&ch, "", &q, format!("m{i}").as_bytes(), persistent()).await;
        }
        let mut consumer = consume(&ch, &q, false).await;
        let first = next(&mut consumer).await;
        first.acker.ack(BasicAckOptions::default()).await.expect("ack m1");
        // m2..m4 delivered, never acked; wait for the ack to be settled through a round trip.
        assert_eq!(next_bodies(&mut consumer, 3).await, vec!["m2", "m3", "m4"]);
        within("qos round trip", ch.basic_qos(0, Default::default())).await.expect("qos");
        terminate(server);
    });
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open().await;
        let mut seen = Vec::new();
        while let Some(m) = get(&ch, &q, true).await {
            seen.push((body(&m.delivery), m.delivery.redelivered));
        }
        assert_eq!(
            seen,
            vec![("m2".to_owned(), true), ("m3".to_owned(), true), ("m4".to_owned(), true)],
            "the unacked messages, marked redelivered"
        );
    });
}

#[test]
fn non_durable_queue_and_exchange_are_gone_after_a_restart() {
    let (_temp, dir) = data_dir();
    let q = unique("transient");
    let x = unique("tx");
    let kept = unique("kept");
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open_confirming().await;
        declare(&ch, &q, FieldTable::default()).await;
        declare_with(&ch, &kept, DURABLE, FieldTable::default()).await;
        publish_props(&ch, "", &q, b"m", persistent()).await;
        within(
            "exchange.declare",
            ch.exchange_declare(&x, ExchangeKind::Direct, Default::default(), FieldTable::default()),
        )
        .await
        .expect("declare");
        terminate(server);
    });
    run(async {
        let server = start(&dir);
        let conn = server.connect().await;
        let ch = channel(&conn).await;
        assert_eq!(count(&ch, &kept).await, 0, "the durable queue is back");
        let reply =
            expect_error("passive declare", ch.queue_declare(&q, PASSIVE, FieldTable::default())).await;
        assert_eq!(reply, format!("404 NOT_FOUND - no queue '{q}' in vhost '/'"));
        let ch = channel(&conn).await;
        let passive_x = ExchangeDeclareOptions { passive: true, ..Default::default() };
        let reply = expect_error(
            "passive exchange",
            ch.exchange_declare(&x, ExchangeKind::Direct, passive_x, FieldTable::default()),
        )
        .await;
        assert_eq!(reply, format!("404 NOT_FOUND - no exchange '{x}' in vhost '/'"));
    });
}
