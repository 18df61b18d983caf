//! Graceful shutdowns by unmodified clients: a named stream consumer that cancels, acks
//! what it holds and closes (lapin), and a publisher blocked by a resource alarm that must
//! outlive its heartbeat interval (pika).

use std::path::Path;

use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Consumer};

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::run;

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

fn start_on_disc(data: &Path) -> Server {
    Server::warren(Broker::start_in(data, &["--storage", "disk", "--fsync", "always"]))
}

async fn attach_named(
    channel: &Channel,
    stream: &str,
    tag: &str,
    prefetch: u16,
    args: FieldTable,
) -> Consumer {
    within("basic.qos", channel.basic_qos(prefetch, BasicQosOptions::default())).await.expect("qos");
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

/// A named stream consumer (prefetch 5) takes 3 messages, sends `basic.cancel`, then acks
/// all 3 (one `multiple` ack) and closes. The acks of a cancelled consumer's delivery tags
/// settle and move its stored offset: after a broker restart, a consumer with the same name
/// and no offset resumes at offset 3, not at the offset it held when it cancelled.
#[test]
fn named_stream_consumer_acks_after_cancel_move_its_stored_offset() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data = temp.path().join("data");
    let stream = unique("graceful-stream");
    let name = table(vec![("x-stream-consumer-name", s("graceful-reader"))]);
    run(async {
        let server = start_on_disc(&data);
        let (_conn, ch) = server.open_confirming().await;
        declare_with(&ch, &stream, DURABLE, table(vec![("x-queue-type", s("stream"))])).await;
        for i in 0..10 {
            publish_props(&ch, "", &stream, format!("s{i}").as_bytes(), BasicProperties::default()).await;
        }
        let (connection, channel) = server.open().await;
        let mut args = name.clone();
        args.insert("x-stream-offset".into(), s("first"));
        let mut consumer = attach_named(&channel, &stream, "graceful", 5, args).await;
        let mut held = Vec::new();
        for expected in 0..3 {
            let delivery = next(&mut consumer).await;
            assert_eq!(offset_of(&delivery), expected);
            held.push(delivery);
        }
        within("basic.cancel", channel.basic_cancel("graceful", BasicCancelOptions::default()))
            .await
            .expect("cancel");
        let last = held.pop().expect("three deliveries");
        within("basic.ack", last.acker.ack(BasicAckOptions { multiple: true })).await.expect("ack");
        within("channel.close", channel.close(200, "done")).await.expect("close");
        within("connection.close", connection.close(200, "bye")).await.expect("close");
        drop(consumer);
        assert!(server.warren.expect("warren").terminate().success());
    });
    run(async {
        let server = start_on_disc(&data);
        let (_c, channel) = server.open().await;
        let mut consumer = attach_named(&channel, &stream, "", 5, name).await;
        let delivery = next(&mut consumer).await;
        assert_eq!(offset_of(&delivery), 3, "resumes after the last message acked after the cancel");
    });
}

/// pika, heartbeat 2 s: a publisher blocked by the memory alarm (`connection.blocked`) is
/// not read, and must not be dropped for missing heartbeats while blocked: it stays open
/// for three heartbeat intervals, then is unblocked and publishes with a confirm.
#[test]
fn blocked_publisher_outlives_its_heartbeat_interval() {
    let broker = crate::harness::clients::warren_with(&[
        "--storage",
        "memory",
        "--segment-bytes",
        "1048576",
        "--memory-limit",
        "40000000",
    ]);
    crate::harness::clients::run_python(&broker, "alarm_heartbeat.py");
}
