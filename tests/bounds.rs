//! Bounds on what the broker keeps and how long it waits: state a channel or a consumer
//! would otherwise grow without limit, files of deleted queues that must not stay open, and
//! shutdown waiting (with a bound) for connections to close.

use std::path::Path;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicQosOptions, BasicRejectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Consumer};
use warren::limits::STREAM_REJECTED_OFFSETS_MAX;

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::raw_client::{RawClient, ANSWER_DEADLINE};
use crate::harness::run;

/// How long the broker may take to close a deleted queue's files.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// The broker's open file descriptors on files under `dir` that were deleted.
fn deleted_files_open(pid: u32, dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let dir = dir.to_string_lossy().into_owned();
    entries
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with(&dir) && target.ends_with("(deleted)"))
        .collect()
}

/// A channel that got from queues and deleted them keeps none of their files open: the
/// queues it touched are not held past their deletion.
#[test]
fn deleted_queues_touched_by_a_channel_close_their_files() {
    let server = Server::warren(Broker::start(&["--storage", "disk"]));
    let broker = server.warren.as_ref().expect("a Warren");
    let (pid, dir) = (broker.pid(), broker.data_dir.clone());
    run(async {
        let (_connection, channel) = server.open_confirming().await;
        for i in 0..8 {
            let queue = unique(&format!("touched-{i}-"));
            declare(&channel, &queue, FieldTable::default()).await;
            publish(&channel, "", &queue, b"m").await;
            let got = channel.basic_get(&queue, BasicGetOptions { no_ack: true }).await.expect("get");
            assert!(got.is_some(), "the message is there");
            channel.queue_delete(&queue, QueueDeleteOptions::default()).await.expect("delete");
        }
        let until = Instant::now() + CLOSE_DEADLINE;
        let mut open = deleted_files_open(pid, &dir);
        while !open.is_empty() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
            open = deleted_files_open(pid, &dir);
        }
        assert!(open.is_empty(), "files of deleted queues still open: {open:?}");
        // The channel still works, and closing it tells only live queues.
        channel.close(200, "bye").await.expect("close");
    });
}

/// Attaches the stream consumer named `name`, from `first` or (`resume`) its stored offset.
async fn attach_named(channel: &Channel, stream: &str, name: &str, resume: bool) -> Consumer {
    within("basic.qos", channel.basic_qos(100, BasicQosOptions::default())).await.expect("qos");
    let mut args = vec![("x-stream-consumer-name", s(name))];
    if !resume {
        args.push(("x-stream-offset", s("first")));
    }
    let args = table(args);
    within("basic.consume", channel.basic_consume(stream, "", BasicConsumeOptions::default(), args))
        .await
        .expect("consume")
}

fn stream_offset(delivery: &lapin::message::Delivery) -> i64 {
    match delivery.properties.headers().as_ref().and_then(|h| h.inner().get("x-stream-offset").cloned()) {
        Some(AMQPValue::LongLongInt(offset)) => offset,
        other => panic!("x-stream-offset header: {other:?}"),
    }
}

/// A named stream consumer that rejects everything keeps a bounded set of rejected
/// offsets: past the bound the lowest count as settled (as RabbitMQ settles every rejected
/// stream offset), so its stored offset moves on instead of staying at its first reject.
#[test]
fn stream_rejects_past_the_bound_count_as_settled() {
    let server = Server::start();
    let stream = unique("rejects-");
    let extra = 10;
    let count = STREAM_REJECTED_OFFSETS_MAX + extra;
    run(async {
        let (_connection, channel) = server.open_confirming().await;
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        declare_with(&channel, &stream, durable, table(vec![("x-queue-type", s("stream"))])).await;
        for i in 0..count {
            let body = format!("r{i}");
            publish_props(&channel, "", &stream, body.as_bytes(), BasicProperties::default()).await;
        }
        let (_c, reader) = server.open().await;
        let mut consumer = attach_named(&reader, &stream, "rejecter", false).await;
        for expected in 0..count {
            let delivery = next(&mut consumer).await;
            assert_eq!(stream_offset(&delivery), expected as i64);
            delivery.acker.reject(BasicRejectOptions { requeue: false }).await.expect("reject");
        }
        within("channel.close", reader.close(200, "done")).await.expect("close");
        drop(consumer);
        let (_c2, again) = server.open().await;
        let mut consumer = attach_named(&again, &stream, "rejecter", true).await;
        let resumed = stream_offset(&next(&mut consumer).await);
        assert_eq!(resumed, extra as i64, "the oldest rejects were settled past the bound");
    });
}

/// Shutdown waits for connections to finish closing: a client slow to answer the broker's
/// connection.close (320) keeps its socket open until it sends close-ok, rather than
/// having the broker exit under it after a fixed pause.
#[test]
fn shutdown_waits_for_a_slow_close_ok() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("amqp").to_owned();
    let pid = broker.pid();
    run(async {
        let mut client = RawClient::open(&addr).await;
        // SAFETY: a plain signal to the broker this test started and still owns.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let close = client.expect_connection_close(ANSWER_DEADLINE).await;
        assert_eq!(close.reply_code, 320, "{close:?}");
        // Less than the broker's close-ok wait: the socket must stay open meanwhile.
        client.expect_silence(Duration::from_millis(1000)).await;
        client.finish_close().await;
    });
    assert!(broker.terminate().success(), "the broker stops cleanly");
}
