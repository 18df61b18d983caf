//! Stream queues through lapin: each x-stream-offset specification with the offset header
//! on every delivery, the restrictions (prefetch, auto-ack, non-durable), and a
//! named consumer's stored offset across a reconnect (leaving unacked messages) and across a
//! broker restart, zstd round trips, and retention by size and by age.

use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Consumer};

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::run;

fn stream_args() -> FieldTable {
    table(vec![("x-queue-type", s("stream"))])
}

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

async fn fill(channel: &Channel, stream: &str, count: usize) {
    declare_with(channel, stream, DURABLE, stream_args()).await;
    for i in 0..count {
        publish_props(channel, "", stream, format!("s{i}").as_bytes(), BasicProperties::default()).await;
    }
}

async fn attach(channel: &Channel, stream: &str, tag: &str, args: FieldTable) -> Consumer {
    within("basic.qos", channel.basic_qos(10, BasicQosOptions::default())).await.expect("qos");
    within("basic.consume", channel.basic_consume(stream, tag, BasicConsumeOptions::default(), args))
        .await
        .expect("consume")
}

fn offset_of(delivery: &lapin::message::Delivery) -> i64 {
    let headers = delivery.properties.headers().as_ref().expect("headers");
    match headers.inner().get("x-stream-offset") {
        Some(AMQPValue::LongLongInt(offset)) => *offset,
        other => panic!("x-stream-offset header: {other:?}"),
    }
}

/// The offsets of the next `n` deliveries, each acked.
async fn offsets(consumer: &mut Consumer, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    for _ in 0..n {
        let delivery = next(consumer).await;
        out.push(offset_of(&delivery));
        delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");
    }
    out
}

#[test]
fn stream_offset_specifications() {
    run(async {
        let server = Server::warren(Broker::start(&["--storage", "disk", "--fsync", "always"]));
        let (_conn, ch) = server.open_confirming().await;
        let stream = unique("lapin-stream");
        fill(&ch, &stream, 20).await;
        let cases: Vec<(AMQPValue, Vec<i64>)> = vec![
            (s("first"), (0..5).collect()),
            (s("last"), vec![19]),
            (AMQPValue::LongLongInt(12), (12..15).collect()),
            (AMQPValue::LongLongInt(-3), (17..20).collect()),
            (s("1h"), (0..3).collect()),
            (AMQPValue::Timestamp(0), (0..2).collect()),
        ];
        for (spec, expected) in cases {
            let (_c, channel) = server.open().await;
            let mut consumer =
                attach(&channel, &stream, "", table(vec![("x-stream-offset", spec.clone())])).await;
            assert_eq!(offsets(&mut consumer, expected.len()).await, expected, "x-stream-offset {spec:?}");
        }
        // `next` and no argument see only what is published after they attach.
        for args in [table(vec![("x-stream-offset", s("next"))]), FieldTable::default()] {
            let (_c, channel) = server.open().await;
            let mut consumer = attach(&channel, &stream, "", args).await;
            nothing_delivered(&mut consumer).await;
            publish_props(&ch, "", &stream, b"later", BasicProperties::default()).await;
            let delivery = next(&mut consumer).await;
            assert_eq!(body(&delivery), "later");
        }
    });
}

#[test]
fn stream_restrictions_are_refused_as_rabbitmq_does() {
    run(async {
        let server = Server::warren(Broker::start(&["--storage", "disk", "--fsync", "never"]));
        let (_conn, ch) = server.open().await;
        let stream = unique("lapin-stream-rules");
        fill(&ch, &stream, 1).await;
        let (_c, channel) = server.open().await;
        let error = expect_error(
            "consume without prefetch",
            channel.basic_consume(&stream, "", BasicConsumeOptions::default(), FieldTable::default()),
        )
        .await;
        assert!(error.starts_with("406 PRECONDITION_FAILED - consumer prefetch count is not set"), "{error}");
        let (_c, channel) = server.open().await;
        let error = expect_error(
            "non-durable stream",
            channel.queue_declare(&unique("nd"), QueueDeclareOptions::default(), stream_args()),
        )
        .await;
        assert!(error.starts_with("406 PRECONDITION_FAILED - invalid property 'non-durable'"), "{error}");
        let (connection, channel) = server.open().await;
        let mut errors = Errors::of_connection(&connection);
        within("basic.qos", channel.basic_qos(1, BasicQosOptions::default())).await.expect("qos");
        let _ = channel
            .basic_consume(
                &stream,
                "",
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await;
        let error = errors.next().await;
        assert!(
            error.starts_with(
                "540 NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues"
            ),
            "{error}"
        );
    });
}

#[test]
fn named_stream_consumer_resumes_after_reconnect_and_restart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data = temp.path().join("data");
    let stream = unique("lapin-named");
    run(async {
        let server = Server::warren(Broker::start_in(&data, &["--storage", "disk", "--fsync", "always"]));
        let (_conn, ch) = server.open_confirming().await;
        fill(&ch, &stream, 30).await;
        let named =
            table(vec![("x-stream-offset", s("first")), ("x-stream-consumer-name", s("lapin-reader"))]);
        {
            let (connection, channel) = server.open().await;
            let mut consumer = attach(&channel, &stream, "", named).await;
            assert_eq!(offsets(&mut consumer, 8).await, (0..8).collect::<Vec<_>>());
            // Two more arrive and are never acked: the stored offset stays at 8.
            let _ = next(&mut consumer).await;
            let _ = next(&mut consumer).await;
            connection.close(200, "bye").await.expect("close");
        }
        let (_c, channel) = server.open().await;
        let mut consumer =
            attach(&channel, &stream, "", table(vec![("x-stream-consumer-name", s("lapin-reader"))])).await;
        assert_eq!(offsets(&mut consumer, 4).await, (8..12).collect::<Vec<_>>(), "resumes after a reconnect");
        // Closing the channel stores the consumer's offset before the close-ok comes back.
        // (The consumer is dropped only afterwards: dropping it first makes lapin send a
        // basic.cancel of its own that races with the close.)
        within("channel.close", channel.close(200, "done")).await.expect("close");
        drop(consumer);
        let broker = server.warren.expect("warren");
        assert!(broker.terminate().success());
    });
    run(async {
        let server = Server::warren(Broker::start_in(&data, &["--storage", "disk", "--fsync", "always"]));
        let (_c, channel) = server.open().await;
        let mut consumer =
            attach(&channel, &stream, "", table(vec![("x-stream-consumer-name", s("lapin-reader"))])).await;
        let resumed = offsets(&mut consumer, 1).await;
        assert_eq!(resumed, vec![12], "resumes at its stored offset after a restart");
    });
}

#[test]
fn stream_compression_and_retention_by_size_and_age() {
    run(async {
        let server = Server::warren(Broker::start(&["--storage", "disk", "--fsync", "never"]));
        let (_conn, ch) = server.open_confirming().await;
        let packed = unique("lapin-zstd");
        let args = table(vec![("x-queue-type", s("stream")), ("x-warren-compression", s("zstd"))]);
        declare_with(&ch, &packed, DURABLE, args).await;
        let bodies: Vec<String> =
            (0..200).map(|i| format!("{{\"reading\": {i}, \"unit\": \"C\"}}").repeat(8)).collect();
        for body in &bodies {
            publish_props(&ch, "", &packed, body.as_bytes(), BasicProperties::default()).await;
        }
        let (_c, channel) = server.open().await;
        let mut consumer = attach(&channel, &packed, "", table(vec![("x-stream-offset", s("first"))])).await;
        for expected in &bodies {
            let delivery = next(&mut consumer).await;
            assert_eq!(&body(&delivery), expected, "zstd round trip");
            delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");
        }

        let sized = unique("lapin-sized");
        let args = table(vec![
            ("x-queue-type", s("stream")),
            ("x-max-length-bytes", AMQPValue::LongLongInt(20_000)),
            ("x-stream-max-segment-size-bytes", AMQPValue::LongLongInt(4096)),
        ]);
        declare_with(&ch, &sized, DURABLE, args).await;
        for i in 0..200u8 {
            publish_props(&ch, "", &sized, &[i; 400], BasicProperties::default()).await;
        }
        let (_c, channel) = server.open().await;
        let mut consumer = attach(&channel, &sized, "", table(vec![("x-stream-offset", s("first"))])).await;
        let first = offsets(&mut consumer, 1).await[0];
        assert!(first > 0, "retention by size removed the oldest segments (first offset {first})");

        let aged = unique("lapin-aged");
        let args = table(vec![
            ("x-queue-type", s("stream")),
            ("x-max-age", s("1s")),
            ("x-stream-max-segment-size-bytes", AMQPValue::LongLongInt(4096)),
        ]);
        declare_with(&ch, &aged, DURABLE, args).await;
        for _ in 0..100 {
            publish_props(&ch, "", &aged, &[7u8; 300], BasicProperties::default()).await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (_c, channel) = server.open().await;
            let mut consumer =
                attach(&channel, &aged, "", table(vec![("x-stream-offset", s("first"))])).await;
            if offsets(&mut consumer, 1).await[0] > 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "retention by age removed nothing within 10 s");
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    });
}
