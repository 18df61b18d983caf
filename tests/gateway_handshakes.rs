//! The gateway's answers to methods that close, release or refresh something, as RabbitMQ
//! 3.10 gives them: unbinds of what is already gone, `connection.update-secret`, a client's
//! `channel.close` crossing the broker's, and `connection.close-ok` only once the
//! connection's channels and exclusive queues are released. Each test starts its own Warren
//! (`--storage memory`), or uses `WARREN_TEST_AMQP_URL` (RabbitMQ) when set.

use bytes::BytesMut;
use lapin::options::ExchangeUnbindOptions;
use lapin::types::FieldTable;
use warren::wire::amqp::{
    encode_body_frames, encode_header_frame, encode_method_frame, BasicConsume, BasicProperties,
    BasicPublish, ChannelClose, ChannelCloseOk, ContentHeader, Method, QueueDeclare, QueueDelete,
};

use crate::harness::clients::{amqp_url, run_python};
use crate::harness::lapin_client::*;
use crate::harness::raw_client::{short, RawClient, ANSWER_DEADLINE};
use crate::harness::run;

/// `exchange.unbind` of `destination` from `source` with `key`.
async fn exchange_unbind(
    channel: &lapin::Channel,
    destination: &str,
    source: &str,
    key: &str,
) -> lapin::Result<()> {
    let options = ExchangeUnbindOptions::default();
    within(
        "exchange.unbind",
        channel.exchange_unbind(destination, source, key, options, FieldTable::default()),
    )
    .await
}

/// `queue.unbind` of `queue` from `exchange` with `key`.
async fn queue_unbind(channel: &lapin::Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    within("queue.unbind", channel.queue_unbind(queue, exchange, key, FieldTable::default())).await
}

/// Unbinding a queue or exchange that is gone, from an exchange that is gone, or a binding
/// that was never made is answered unbind-ok, and the channel stays open.
#[test]
fn unbind_of_what_is_gone_is_unbind_ok() {
    run(async {
        let server = Server::start();
        let (_connection, ch) = server.open().await;
        let (queue, missing) = (unique("q"), unique("missing"));
        declare(&ch, &queue, FieldTable::default()).await;
        queue_unbind(&ch, &missing, "amq.direct", "k").await.expect("unbind of a missing queue");
        queue_unbind(&ch, &queue, &missing, "k").await.expect("unbind from a missing exchange");
        queue_unbind(&ch, &queue, "amq.direct", "never-bound").await.expect("unbind of no binding");
        queue_unbind(&ch, &missing, &missing, "k").await.expect("unbind with both ends missing");
        exchange_unbind(&ch, "amq.fanout", &missing, "k").await.expect("unbind from a missing source");
        exchange_unbind(&ch, &missing, "amq.fanout", "k").await.expect("unbind of a missing destination");
        exchange_unbind(&ch, "amq.fanout", "amq.topic", "k").await.expect("unbind of no e2e binding");
        // The channel is still open and serves the next method.
        assert_eq!(count(&ch, &queue).await, 0);
    });
}

/// What RabbitMQ still refuses of an unbind: the default exchange at either end (403), an
/// empty queue name on a channel that declared no queue (404), and an existing binding of
/// another connection's exclusive queue (405); the same exclusive queue with no such
/// binding, or from a missing exchange, is unbind-ok.
#[test]
fn unbind_still_refuses_the_default_exchange_and_a_locked_binding() {
    run(async {
        let server = Server::start();
        let (connection, ch) = server.open().await;
        let queue = unique("q");
        declare(&ch, &queue, FieldTable::default()).await;
        let refused = "403 ACCESS_REFUSED - operation not permitted on the default exchange";
        assert_eq!(expect_error("unbind from \"\"", queue_unbind(&ch, &queue, "", &queue)).await, refused);
        let ch = channel(&connection).await;
        assert_eq!(
            expect_error("e2e unbind, source \"\"", exchange_unbind(&ch, "amq.fanout", "", "k")).await,
            refused
        );
        let ch = channel(&connection).await;
        let to_default = exchange_unbind(&ch, "", "amq.fanout", "k");
        assert_eq!(expect_error("e2e unbind, destination \"\"", to_default).await, refused);

        // An empty queue name is the channel's last declared queue; with none declared, 404.
        let ch = channel(&connection).await;
        let none_declared = "404 NOT_FOUND - no previously declared queue";
        assert_eq!(
            expect_error("unbind of \"\"", queue_unbind(&ch, "", "amq.direct", "k")).await,
            none_declared
        );

        let (_owner, owner_ch) = server.open().await;
        let exclusive = unique("excl");
        let options = lapin::options::QueueDeclareOptions { exclusive: true, ..Default::default() };
        declare_with(&owner_ch, &exclusive, options, FieldTable::default()).await;
        within(
            "queue.bind",
            owner_ch.queue_bind(&exclusive, "amq.direct", "bound", Default::default(), FieldTable::default()),
        )
        .await
        .expect("queue.bind");
        let ch = channel(&connection).await;
        queue_unbind(&ch, &exclusive, "amq.direct", "not-bound").await.expect("unbind of no binding");
        queue_unbind(&ch, &exclusive, &unique("missing"), "bound")
            .await
            .expect("unbind from a missing exchange");
        let locked = format!(
            "405 RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{exclusive}' in vhost '/'. \
             It could be originally declared on another connection or the exclusive property value does not \
             match that of the original declaration."
        );
        assert_eq!(
            expect_error("unbind of a locked binding", queue_unbind(&ch, &exclusive, "amq.direct", "bound"))
                .await,
            locked
        );
    });
}

/// pika's `update_secret` with the right, a wrong and an empty password: each is answered
/// update-secret-ok (the internal backend refuses no new secret) and the connection keeps
/// working; see tools/clients/python/update_secret.py.
#[test]
fn update_secret_is_answered_update_secret_ok() {
    run_python(&amqp_url(), "update_secret.py");
}

/// A publish to a missing exchange and the client's own `channel.close`, sent together: the
/// broker's `channel.close 404` and then the `channel.close-ok` to the client's close; the
/// client's close-ok to the broker's close is taken silently, the channel number can be
/// opened again, and another channel of the connection works throughout.
#[test]
fn channel_close_crossing_the_brokers_is_settled_by_close_ok() {
    run(async {
        let server = Server::start();
        let mut client = RawClient::open(server.host()).await;
        client.open_channel(1).await;
        client.open_channel(2).await;
        let missing = unique("missing-x");
        let mut bytes = BytesMut::new();
        let publish =
            BasicPublish { exchange: short(&missing), routing_key: short("k"), ..Default::default() };
        encode_method_frame(&mut bytes, 1, &publish.into());
        encode_header_frame(&mut bytes, 1, &ContentHeader::new(60, 4, &BasicProperties::default()));
        encode_body_frames(&mut bytes, 1, b"body", client.frame_max);
        let close = ChannelClose { reply_code: 200, reply_text: short("bye"), class_id: 0, method_id: 0 };
        encode_method_frame(&mut bytes, 1, &close.into());
        client.send_bytes(&bytes).await;

        let brokers_close = client.expect_channel_close(1, ANSWER_DEADLINE).await;
        assert_eq!(
            (brokers_close.reply_code, brokers_close.reply_text.as_str().ok()),
            (404, Some(format!("NOT_FOUND - no exchange '{missing}' in vhost '/'").as_str()))
        );
        match client.expect_method(ANSWER_DEADLINE).await {
            (1, Method::ChannelCloseOk(_)) => {}
            other => panic!("expected channel.close-ok on channel 1, got {other:?}"),
        }
        client.send_method(1, ChannelCloseOk::default()).await;

        let queue = unique("q");
        client.declare_queue(2, &queue).await;
        client.open_channel(1).await;
        client.declare_queue(1, &queue).await;
        client.close().await;
    });
}

/// `queue.declare` of `name` with the flags given, on `channel`; the answer.
async fn declare_raw(
    client: &mut RawClient,
    channel: u16,
    name: &str,
    exclusive: bool,
    passive: bool,
) -> Method {
    let declare =
        QueueDeclare { queue: short(name), exclusive, passive, auto_delete: !passive, ..Default::default() };
    client.call(channel, declare).await
}

/// A connection that closes takes its exclusive queue and its auto-delete queue's only
/// consumer with it before its close-ok: another connection that acts the moment the
/// close-ok arrives never finds either. 200 rounds, so a close-ok sent ahead of the release
/// is caught.
#[test]
fn close_ok_comes_after_exclusive_queues_and_consumers_are_released() {
    run(async {
        let server = Server::start();
        let mut watcher = RawClient::open(server.host()).await;
        watcher.open_channel(1).await;
        let (exclusive, auto_delete) = (unique("excl"), unique("auto"));
        for round in 0..200 {
            let mut owner = RawClient::open(server.host()).await;
            owner.open_channel(1).await;
            match declare_raw(&mut owner, 1, &exclusive, true, false).await {
                Method::QueueDeclareOk(_) => {}
                other => panic!("round {round}: exclusive declare: {other:?}"),
            }
            match declare_raw(&mut owner, 1, &auto_delete, false, false).await {
                Method::QueueDeclareOk(_) => {}
                other => panic!("round {round}: auto-delete declare: {other:?}"),
            }
            let consume = BasicConsume { queue: short(&auto_delete), no_ack: true, ..Default::default() };
            match owner.call(1, consume).await {
                Method::BasicConsumeOk(_) => {}
                other => panic!("round {round}: basic.consume: {other:?}"),
            }
            owner.close().await;

            match declare_raw(&mut watcher, 1, &exclusive, true, false).await {
                Method::QueueDeclareOk(_) => {}
                other => panic!("round {round}: the old exclusive queue is still there: {other:?}"),
            }
            match watcher.call(1, QueueDelete { queue: short(&exclusive), ..Default::default() }).await {
                Method::QueueDeleteOk(_) => {}
                other => panic!("round {round}: queue.delete: {other:?}"),
            }
            match declare_raw(&mut watcher, 1, &auto_delete, false, true).await {
                Method::ChannelClose(close) if close.reply_code == 404 => {}
                other => panic!("round {round}: the auto-delete queue is still there: {other:?}"),
            }
            watcher.send_method(1, ChannelCloseOk::default()).await;
            watcher.open_channel(1).await;
        }
        watcher.close().await;
    });
}
