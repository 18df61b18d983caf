//! lapin against the broker: every channel and connection error of RabbitMQ 3.10 that lapin
//! can observe, with its exact reply code and text, and the isolation of a channel error from
//! the other channels and connections. Each test starts its own Warren (`--storage memory`),
//! or uses `WARREN_TEST_AMQP_URL` (RabbitMQ) when set.

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ChannelFlowOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

use crate::harness::lapin_client::raw::RawConnection;
use crate::harness::lapin_client::*;
use crate::harness::run;

const PASSIVE: QueueDeclareOptions = QueueDeclareOptions {
    passive: true,
    durable: false,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// A queue.declare that must fail; returns its reply.
async fn declare_error(ch: &Channel, name: &str, options: QueueDeclareOptions, args: FieldTable) -> String {
    expect_error(&format!("queue.declare {name}"), ch.queue_declare(name, options, args)).await
}

/// Publishes (no confirms) and returns the channel error that follows.
async fn publish_error(ch: &Channel, exchange: &str, key: &str, props: BasicProperties) -> String {
    let mut errors = Errors::of_channel(ch);
    within("publish", ch.basic_publish(exchange, key, BasicPublishOptions::default(), b"x", props))
        .await
        .expect("publish is sent");
    errors.next().await
}

/// Checks that `conn` still works: a fresh channel can declare, publish and get.
async fn still_works(conn: &Connection) {
    let ch = channel(conn).await;
    within("confirm.select", ch.confirm_select(Default::default())).await.expect("confirm.select");
    let q = unique("alive");
    declare(&ch, &q, FieldTable::default()).await;
    publish(&ch, "", &q, b"alive").await;
    let got = get(&ch, &q, true).await.expect("message");
    assert_eq!(body(&got.delivery), "alive");
}

#[test]
fn missing_queue_is_404_for_declare_get_consume_bind_purge() {
    run(async {
        let server = Server::start();
        let conn = server.connect().await;
        let q = unique("missing");
        let expected = format!("404 NOT_FOUND - no queue '{q}' in vhost '/'");
        let ch = channel(&conn).await;
        assert_eq!(declare_error(&ch, &q, PASSIVE, FieldTable::default()).await, expected);
        let ch = channel(&conn).await;
        assert_eq!(expect_error("basic.get", ch.basic_get(&q, BasicGetOptions::default())).await, expected);
        let ch = channel(&conn).await;
        assert_eq!(
            expect_error(
                "basic.consume",
                ch.basic_consume(&q, "", BasicConsumeOptions::default(), FieldTable::default())
            )
            .await,
            expected
        );
        let ch = channel(&conn).await;
        assert_eq!(
            expect_error(
                "queue.bind",
                ch.queue_bind(&q, "amq.direct", "k", QueueBindOptions::default(), FieldTable::default())
            )
            .await,
            expected
        );
        let ch = channel(&conn).await;
        assert_eq!(expect_error("queue.purge", ch.queue_purge(&q, Default::default())).await, expected);
        still_works(&conn).await;
    });
}

#[test]
fn missing_exchange_is_404_for_declare_and_bind() {
    run(async {
        let server = Server::start();
        let conn = server.connect().await;
        let x = unique("nox");
        let expected = format!("404 NOT_FOUND - no exchange '{x}' in vhost '/'");
        let ch = channel(&conn).await;
        let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
        assert_eq!(
            expect_error(
                "exchange.declare",
                ch.exchange_declare(&x, ExchangeKind::Direct, passive, FieldTable::default())
            )
            .await,
            expected
        );
        let ch = channel(&conn).await;
        let q = unique("q");
        declare(&ch, &q, FieldTable::default()).await;
        assert_eq!(
            expect_error(
                "queue.bind",
                ch.queue_bind(&q, &x, "k", QueueBindOptions::default(), FieldTable::default())
            )
            .await,
            expected
        );
        let ch = channel(&conn).await;
        assert_eq!(
            expect_error(
                "exchange.bind",
                ch.exchange_bind("amq.fanout", &x, "k", Default::default(), FieldTable::default())
            )
            .await,
            expected
        );
    });
}

#[test]
fn publish_to_missing_exchange_is_404() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let x = unique("nox");
        let reply = publish_error(&ch, &x, "k", BasicProperties::default()).await;
        assert_eq!(reply, format!("404 NOT_FOUND - no exchange '{x}' in vhost '/'"));
        // In confirm mode the pending confirm fails with the same error.
        let ch = channel(&conn).await;
        within("confirm.select", ch.confirm_select(Default::default())).await.expect("confirm.select");
        let confirm = within(
            "publish",
            ch.basic_publish(&x, "k", BasicPublishOptions::default(), b"x", Default::default()),
        )
        .await
        .expect("publish is sent");
        let reply = expect_error("confirm", confirm).await;
        assert_eq!(reply, format!("404 NOT_FOUND - no exchange '{x}' in vhost '/'"));
        still_works(&conn).await;
    });
}

#[test]
fn inequivalent_arg_with_a_different_value_is_406() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let q = unique("ttl");
        declare(&ch, &q, table(vec![("x-message-ttl", int(1000))])).await;
        let reply =
            declare_error(&ch, &q, Default::default(), table(vec![("x-message-ttl", int(2000))])).await;
        assert_eq!(
            reply,
            format!(
                "406 PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': \
                 received '2000' but current is '1000'"
            )
        );
        // The queue is unchanged.
        let ch = channel(&conn).await;
        declare(&ch, &q, table(vec![("x-message-ttl", int(1000))])).await;
    });
}

#[test]
fn inequivalent_arg_when_missing_is_406() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open().await;
        let q = unique("ttl");
        declare(&ch, &q, table(vec![("x-message-ttl", int(1000))])).await;
        let reply = declare_error(&ch, &q, Default::default(), FieldTable::default()).await;
        assert_eq!(
            reply,
            format!(
                "406 PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': \
                 received none but current is the value '1000' of type 'signedint'"
            )
        );
    });
}

#[test]
fn inequivalent_durable_is_406() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open().await;
        let q = unique("durable");
        declare_with(
            &ch,
            &q,
            QueueDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
        let reply = declare_error(&ch, &q, Default::default(), FieldTable::default()).await;
        assert_eq!(
            reply,
            format!(
                "406 PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': \
                 received 'false' but current is 'true'"
            )
        );
        // Clean up (RabbitMQ keeps durable queues).
        let ch = channel(&_conn).await;
        let _ = ch.queue_delete(&q, Default::default()).await;
    });
}

#[test]
fn inequivalent_exchange_type_is_406() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open().await;
        let x = unique("x");
        within(
            "declare",
            ch.exchange_declare(&x, ExchangeKind::Direct, Default::default(), FieldTable::default()),
        )
        .await
        .expect("declare");
        let reply = expect_error(
            "redeclare",
            ch.exchange_declare(&x, ExchangeKind::Fanout, Default::default(), FieldTable::default()),
        )
        .await;
        assert_eq!(
            reply,
            format!(
                "406 PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost '/': \
                 received 'fanout' but current is 'direct'"
            )
        );
    });
}

#[test]
fn passive_declare_ignores_durable_and_arguments() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open().await;
        let q = unique("passive");
        declare(&ch, &q, table(vec![("x-message-ttl", int(1000))])).await;
        let options =
            QueueDeclareOptions { passive: true, durable: true, exclusive: false, ..Default::default() };
        within("passive", ch.queue_declare(&q, options, table(vec![("x-message-ttl", int(5))])))
            .await
            .expect("a passive declare ignores durable and arguments");
        let x = unique("x");
        within(
            "declare",
            ch.exchange_declare(&x, ExchangeKind::Topic, Default::default(), FieldTable::default()),
        )
        .await
        .expect("declare");
        let passive = ExchangeDeclareOptions { passive: true, durable: true, ..Default::default() };
        within("passive", ch.exchange_declare(&x, ExchangeKind::Fanout, passive, FieldTable::default()))
            .await
            .expect("a passive exchange declare ignores type and durable");
    });
}

#[test]
fn exclusive_queue_is_locked_from_another_connection() {
    run(async {
        let server = Server::start();
        let (owner, owner_ch) = server.open().await;
        let q = unique("locked");
        let exclusive = QueueDeclareOptions { exclusive: true, ..Default::default() };
        declare_with(&owner_ch, &q, exclusive, FieldTable::default()).await;
        let expected = format!(
            "405 RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. It could be \
             originally declared on another connection or the exclusive property value does not match that of \
             the original declaration."
        );
        let other = server.connect().await;
        let ch = channel(&other).await;
        assert_eq!(declare_error(&ch, &q, PASSIVE, FieldTable::default()).await, expected, "passive declare");
        let ch = channel(&other).await;
        assert_eq!(declare_error(&ch, &q, exclusive, FieldTable::default()).await, expected, "redeclare");
        let ch = channel(&other).await;
        assert_eq!(
            expect_error("consume", ch.basic_consume(&q, "", Default::default(), FieldTable::default()))
                .await,
            expected,
            "basic.consume"
        );
        let ch = channel(&other).await;
        assert_eq!(expect_error("get", ch.basic_get(&q, Default::default())).await, expected, "basic.get");
        // Same connection, exclusive flag different: 405 too, not 406.
        let ch = channel(&owner).await;
        assert_eq!(
            declare_error(&ch, &q, Default::default(), FieldTable::default()).await,
            expected,
            "redeclare non-exclusive on the owning connection"
        );
        // The owner still uses it.
        let ch = channel(&owner).await;
        declare_with(&ch, &q, exclusive, FieldTable::default()).await;
    });
}

#[test]
fn exclusive_consumer_in_use_is_403() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let q = unique("exclc");
        declare(&ch, &q, FieldTable::default()).await;
        let _exclusive = consume_with(
            &ch,
            &q,
            BasicConsumeOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
        let expected = format!("403 ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use");
        let ch2 = channel(&conn).await;
        assert_eq!(
            expect_error("consume", ch2.basic_consume(&q, "", Default::default(), FieldTable::default()))
                .await,
            expected
        );
        // An exclusive consume on a queue that has a consumer: the same refusal.
        let q2 = unique("exclc2");
        let ch3 = channel(&conn).await;
        declare(&ch3, &q2, FieldTable::default()).await;
        let _plain = consume(&ch3, &q2, false).await;
        let ch4 = channel(&conn).await;
        assert_eq!(
            expect_error(
                "exclusive consume",
                ch4.basic_consume(
                    &q2,
                    "",
                    BasicConsumeOptions { exclusive: true, ..Default::default() },
                    FieldTable::default()
                )
            )
            .await,
            format!("403 ACCESS_REFUSED - queue '{q2}' in vhost '/' in exclusive use")
        );
    });
}

#[test]
fn reserved_amq_prefix_is_403_for_queues_and_exchanges() {
    run(async {
        let server = Server::start();
        let conn = server.connect().await;
        let ch = channel(&conn).await;
        assert_eq!(
            declare_error(&ch, "amq.foo", Default::default(), FieldTable::default()).await,
            "403 ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'"
        );
        let ch = channel(&conn).await;
        assert_eq!(
            expect_error(
                "exchange.declare",
                ch.exchange_declare(
                    "amq.foo",
                    ExchangeKind::Direct,
                    Default::default(),
                    FieldTable::default()
                )
            )
            .await,
            "403 ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'"
        );
        // Redeclaring an existing amq.* exchange identically is allowed.
        let ch = channel(&conn).await;
        within(
            "declare amq.direct",
            ch.exchange_declare(
                "amq.direct",
                ExchangeKind::Direct,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            ),
        )
        .await
        .expect("redeclare amq.direct");
    });
}

#[test]
fn publish_to_internal_exchange_is_403() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let x = unique("internal");
        within(
            "declare internal",
            ch.exchange_declare(
                &x,
                ExchangeKind::Fanout,
                ExchangeDeclareOptions { internal: true, ..Default::default() },
                FieldTable::default(),
            ),
        )
        .await
        .expect("declare internal exchange");
        let reply = publish_error(&ch, &x, "", BasicProperties::default()).await;
        assert_eq!(
            reply,
            format!("403 ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '/'")
        );
        still_works(&conn).await;
    });
}

#[test]
fn default_exchange_operations_are_403() {
    run(async {
        let server = Server::start();
        let conn = server.connect().await;
        let expected = "403 ACCESS_REFUSED - operation not permitted on the default exchange";
        let ch = channel(&conn).await;
        assert_eq!(expect_error("delete \"\"", ch.exchange_delete("", Default::default())).await, expected);
        let ch = channel(&conn).await;
        let q = unique("q");
        declare(&ch, &q, FieldTable::default()).await;
        assert_eq!(
            expect_error(
                "bind to \"\"",
                ch.queue_bind(&q, "", "k", Default::default(), FieldTable::default())
            )
            .await,
            expected
        );
        let ch = channel(&conn).await;
        assert_eq!(
            expect_error("unbind from \"\"", ch.queue_unbind(&q, "", &q, FieldTable::default())).await,
            expected
        );
    });
}

#[test]
fn system_exchange_deletion_is_403() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open().await;
        assert_eq!(
            expect_error("delete amq.direct", ch.exchange_delete("amq.direct", Default::default())).await,
            "403 ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
        );
    });
}

#[test]
fn user_id_mismatch_is_406() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let q = unique("uid");
        declare(&ch, &q, FieldTable::default()).await;
        let reply = publish_error(&ch, "", &q, BasicProperties::default().with_user_id("bob".into())).await;
        assert_eq!(
            reply,
            "406 PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'"
        );
        let ch = channel(&conn).await;
        assert_eq!(count(&ch, &q).await, 0);
    });
}

#[test]
fn unknown_delivery_tag_is_406() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let mut errors = Errors::of_channel(&ch);
        within("ack", ch.basic_ack(999, BasicAckOptions::default())).await.expect("ack is sent");
        assert_eq!(errors.next().await, "406 PRECONDITION_FAILED - unknown delivery tag 999");
        // A second ack of the same tag fails the same way.
        let ch = channel(&conn).await;
        let q = unique("q");
        declare(&ch, &q, FieldTable::default()).await;
        publish(&ch, "", &q, b"m").await;
        let m = within("get", async {
            loop {
                if let Some(m) = get(&ch, &q, false).await {
                    return m;
                }
            }
        })
        .await;
        let tag = m.delivery.delivery_tag;
        let mut errors = Errors::of_channel(&ch);
        ch.basic_ack(tag, BasicAckOptions::default()).await.expect("ack");
        ch.basic_ack(tag, BasicAckOptions::default()).await.expect("second ack is sent");
        assert_eq!(errors.next().await, format!("406 PRECONDITION_FAILED - unknown delivery tag {tag}"));
    });
}

#[test]
fn queue_delete_if_empty_and_if_unused_are_406() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("q");
        declare(&ch, &q, FieldTable::default()).await;
        publish(&ch, "", &q, b"m").await;
        let ch2 = channel(&conn).await;
        assert_eq!(
            expect_error(
                "delete if_empty",
                ch2.queue_delete(&q, QueueDeleteOptions { if_empty: true, ..Default::default() })
            )
            .await,
            format!("406 PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty")
        );
        let _consumer = consume(&ch, &q, false).await;
        let ch3 = channel(&conn).await;
        assert_eq!(
            expect_error(
                "delete if_unused",
                ch3.queue_delete(&q, QueueDeleteOptions { if_unused: true, ..Default::default() })
            )
            .await,
            format!("406 PRECONDITION_FAILED - queue '{q}' in vhost '/' in use")
        );
        // Still there.
        let ch4 = channel(&conn).await;
        assert_eq!(consumers(&ch4, &q).await, 1);
    });
}

#[test]
fn exchange_delete_if_unused_is_406() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let x = unique("x");
        within(
            "declare",
            ch.exchange_declare(&x, ExchangeKind::Fanout, Default::default(), FieldTable::default()),
        )
        .await
        .expect("declare");
        let q = unique("q");
        declare(&ch, &q, FieldTable::default()).await;
        within("bind", ch.queue_bind(&q, &x, "", Default::default(), FieldTable::default()))
            .await
            .expect("bind");
        assert_eq!(
            expect_error(
                "delete if_unused",
                ch.exchange_delete(&x, ExchangeDeleteOptions { if_unused: true, nowait: false })
            )
            .await,
            format!("406 PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use")
        );
        let ch = channel(&conn).await;
        within("delete", ch.exchange_delete(&x, Default::default())).await.expect("plain delete");
    });
}

#[test]
fn invalid_queue_arguments_are_406() {
    run(async {
        let server = Server::start();
        let conn = server.connect().await;
        let cases: Vec<(&str, AMQPValue, &str)> = vec![
            ("x-max-priority", s("abc"), "\"expected integer, got longstr\""),
            ("x-message-ttl", int(-5), "{value_negative,-5}"),
            ("x-queue-type", s("nope"), "\"unsupported queue type 'nope'\""),
        ];
        for (arg, value, expected) in cases {
            let ch = channel(&conn).await;
            let q = unique("badarg");
            let reply = declare_error(&ch, &q, Default::default(), table(vec![(arg, value)])).await;
            let prefix =
                format!("406 PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/': ");
            let detail = reply.strip_prefix(&prefix).unwrap_or_else(|| panic!("{arg}: {reply}"));
            assert_eq!(detail, expected, "{arg}: {reply}");
        }
    });
}

#[test]
fn unknown_exchange_type_closes_the_connection_503() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let x = unique("x");
        // A type name that is nothing anywhere (RabbitMQ says "invalid exchange type" instead
        // for a name that happens to be an existing Erlang atom, like 'x').
        let kind = "no-such-exchange-type-zq";
        let reply = expect_error(
            "declare",
            ch.exchange_declare(
                &x,
                ExchangeKind::Custom(kind.into()),
                Default::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_eq!(reply, format!("503 COMMAND_INVALID - unknown exchange type '{kind}'"));
        within("connection to close", async {
            while conn.status().connected() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        // Another connection is unaffected.
        still_works(&server.connect().await).await;
    });
}

#[test]
fn qos_prefetch_size_closes_the_connection_540() {
    run(async {
        let server = Server::start();
        let mut raw = RawConnection::open(&server).await;
        // basic.qos: prefetch_size=100, prefetch_count=0, global=false.
        let mut args = 100u32.to_be_bytes().to_vec();
        args.extend_from_slice(&0u16.to_be_bytes());
        args.push(0);
        raw.send(1, 60, 10, &args).await;
        assert_eq!(raw.read_close().await, (0, "540 NOT_IMPLEMENTED - prefetch_size!=0 (100)".to_owned()));
    });
}

#[test]
fn channel_flow_inactive_is_not_implemented() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open().await;
        let reply = expect_error("channel.flow", ch.channel_flow(ChannelFlowOptions { active: false })).await;
        assert_eq!(reply, "540 NOT_IMPLEMENTED - active=false");
    });
}

#[test]
fn publish_with_immediate_is_540_not_implemented() {
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open().await;
        let mut errors = Errors::of_connection(&conn);
        let options = BasicPublishOptions { immediate: true, ..BasicPublishOptions::default() };
        let _ = within("publish", ch.basic_publish("", "k", options, b"x", Default::default())).await;
        assert_eq!(errors.next().await, "540 NOT_IMPLEMENTED - immediate=true");
    });
}

#[test]
fn wrong_password_is_403_login_refused() {
    run(async {
        let server = Server::start();
        let expected =
            "403 ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see \
                        the broker logfile.";
        for (user, password) in [("guest", "wrong"), ("nobody", "guest")] {
            let result = within("connect", try_connect(&server.url_as(user, password, "%2F"))).await;
            match result {
                Ok(_) => panic!("login as {user}/{password} was accepted"),
                Err(e) => assert_eq!(reply_of(&e), expected, "{user}/{password}"),
            }
        }
    });
}

#[test]
fn unknown_vhost_is_530() {
    run(async {
        let server = Server::start();
        let result = within("connect", try_connect(&server.url_as("guest", "guest", "nope"))).await;
        match result {
            Ok(_) => panic!("vhost 'nope' was accepted"),
            Err(e) => assert_eq!(reply_of(&e), "530 NOT_ALLOWED - vhost nope not found"),
        }
    });
}

#[test]
fn channel_error_does_not_affect_other_channels_or_connections() {
    run(async {
        let server = Server::start();
        let (conn, ch1) = server.open_confirming().await;
        let ch2 = channel(&conn).await;
        within("confirm.select", ch2.confirm_select(Default::default())).await.expect("confirm.select");
        let other = server.connect().await;
        let other_ch = channel(&other).await;
        let q = unique("shared");
        declare(&ch2, &q, FieldTable::default()).await;
        let mut consumer = consume(&other_ch, &q, false).await;
        // A channel error on ch1.
        let missing = unique("missing");
        assert_eq!(
            declare_error(&ch1, &missing, PASSIVE, FieldTable::default()).await,
            format!("404 NOT_FOUND - no queue '{missing}' in vhost '/'")
        );
        assert!(!ch1.status().connected());
        // ch2 and the other connection keep working, and the consumer keeps its deliveries.
        publish(&ch2, "", &q, b"after-error").await;
        let d = next(&mut consumer).await;
        assert_eq!(body(&d), "after-error");
        d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        assert!(conn.status().connected());
        still_works(&conn).await;
        still_works(&other).await;
        // Another channel error, this time on the other connection, leaves the first alone.
        let bad = channel(&other).await;
        let _ = publish_error(&bad, &unique("nox"), "k", BasicProperties::default()).await;
        publish(&ch2, "", &q, b"again").await;
        assert_eq!(body(&next(&mut consumer).await), "again");
    });
}
