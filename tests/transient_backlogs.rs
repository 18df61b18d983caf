//! In disc storage every queue's backlog lives in its log's files, durable or not: a
//! non-durable queue's messages go to `transient/<queue id>` under the vhost's folder, never
//! synced, so the broker's anonymous memory does not grow with the backlog. Those files go
//! with the queue, and whatever a stopped broker left of them is removed when it starts.
//! These run on a Warren they start (they read its `/proc/PID/status` and its data folder).

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::rss::{PeakRss, Rss};
use crate::harness::run;

const BODY_BYTES: usize = 2048;
const CONFIRM_BATCH: usize = 2000;
const PREFETCH: u16 = 1000;
const ACK_EVERY: usize = 250;

/// The folder of the default vhost's transient logs (`vhosts/<hex of "/">/transient`).
fn transient_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("vhosts").join("2f").join("transient")
}

/// The logs in `dir` (one folder per queue) and the bytes of their segment files.
fn logs_in(dir: &Path) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return (0, 0) };
    let mut logs = 0;
    let mut bytes = 0;
    for entry in entries.map(|e| e.expect("dir entry")) {
        logs += 1;
        for file in std::fs::read_dir(entry.path()).expect("a log folder").map(|e| e.expect("dir entry")) {
            if file.path().extension().is_some_and(|e| e == "seg") {
                bytes += file.metadata().expect("metadata").len();
            }
        }
    }
    (logs, bytes)
}

fn body(index: usize) -> Vec<u8> {
    let mut body = format!("{index:08} ").into_bytes();
    body.resize(BODY_BYTES, b'.');
    body
}

fn index_of(body: &[u8]) -> usize {
    std::str::from_utf8(&body[..8]).expect("ascii").parse().expect("a numbered body")
}

/// Publishes `total` transient messages to `queue`, `CONFIRM_BATCH` at a time, each batch
/// confirmed.
async fn publish(channel: &Channel, queue: &str, total: usize) {
    publish_with(channel, queue, total, BasicProperties::default()).await;
}

async fn publish_with(channel: &Channel, queue: &str, total: usize, properties: BasicProperties) {
    let mut confirms = Vec::with_capacity(CONFIRM_BATCH);
    for index in 0..total {
        let confirm = channel
            .basic_publish("", queue, BasicPublishOptions::default(), &body(index), properties.clone())
            .await
            .expect("basic.publish");
        confirms.push(confirm);
        if confirms.len() == CONFIRM_BATCH || index + 1 == total {
            for confirm in confirms.drain(..) {
                assert!(!within("publisher confirm", confirm).await.expect("confirm").is_nack(), "nacked");
            }
        }
    }
}

/// Consumes `total` messages and checks they come in publishing order.
async fn consume_in_order(channel: &Channel, queue: &str, total: usize) {
    channel.basic_qos(PREFETCH, BasicQosOptions::default()).await.expect("basic.qos");
    let mut consumer = channel
        .basic_consume(queue, "", BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("basic.consume");
    for expected in 0..total {
        let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {expected} of {total} delivered"))
            .expect("a delivery")
            .expect("not an error");
        assert_eq!(index_of(&delivery.data), expected, "delivery order");
        if (expected + 1) % ACK_EVERY == 0 || expected + 1 == total {
            delivery.acker.ack(BasicAckOptions { multiple: true }).await.expect("basic.ack");
        }
    }
}

/// A backlog of 200 MB of transient messages in a non-durable queue is written to the
/// queue's files: the broker's anonymous memory grows by a small part of it while it is
/// published and while it is consumed, every message comes back in order, and deleting the
/// queue removes its files.
#[test]
fn a_transient_backlog_lives_in_the_queues_files_not_in_memory() {
    const TOTAL: usize = 100_000;
    let backlog_bytes = (TOTAL * BODY_BYTES) as u64;
    let server = Server::warren(Broker::start(&["--storage", "disk"]));
    let broker = server.warren.as_ref().expect("a Warren");
    let (pid, data_dir) = (broker.pid(), broker.data_dir.clone());
    let queue = unique("transient-backlog");
    run(async {
        let (_connection, channel) = server.open_confirming().await;
        declare(&channel, &queue, FieldTable::default()).await;
        let baseline = Rss::now(pid);
        let watch = PeakRss::watch(pid);
        publish(&channel, &queue, TOTAL).await;
        assert_eq!(count(&channel, &queue).await as usize, TOTAL);
        let (logs, bytes) = logs_in(&transient_dir(&data_dir));
        assert_eq!(logs, 1, "one transient log");
        assert!(
            bytes >= backlog_bytes,
            "{bytes} B in the queue's segment files for a backlog of {backlog_bytes} B"
        );
        let published = watch.peak();
        consume_in_order(&channel, &queue, TOTAL).await;
        let consumed = watch.peak();
        drop(watch);
        eprintln!(
            "backlog {backlog_bytes} B; start {baseline:?}, publishing {published:?}, consuming {consumed:?}"
        );
        let grown = consumed.anon_kib.saturating_sub(baseline.anon_kib) * 1024;
        assert!(
            grown < backlog_bytes / 8,
            "RssAnon grew by {grown} B for a transient backlog of {backlog_bytes} B: the backlog is in memory"
        );
        // Pages of the segment a consumer has read past are handed back as it goes: read
        // from start to end, the map would keep all of them resident.
        let mapped = consumed.anon_and_file_kib.saturating_sub(baseline.anon_and_file_kib) * 1024;
        assert!(
            mapped < backlog_bytes / 4,
            "RssAnon + RssFile grew by {mapped} B while a backlog of {backlog_bytes} B was consumed"
        );
        within("queue.delete", channel.queue_delete(&queue, QueueDeleteOptions::default()))
            .await
            .expect("queue.delete");
        assert_eq!(logs_in(&transient_dir(&data_dir)), (0, 0), "the deleted queue's files are gone");
    });
}

/// Non-durable and exclusive queues keep their logs under `transient/`, durable ones under
/// `queues/`; a broker that starts again removes the transient logs and keeps the durable
/// queue's messages.
#[test]
fn transient_logs_are_removed_when_the_broker_starts_again() {
    const EACH: usize = 500;
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let (durable, transient, exclusive) = (unique("kept"), unique("transient"), unique("exclusive"));
    let server = Server::warren(Broker::start_in(&data_dir, &["--storage", "disk"]));
    run(async {
        let (_connection, channel) = server.open_confirming().await;
        let durable_options = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
        declare_with(&channel, &durable, durable_options, FieldTable::default()).await;
        declare(&channel, &transient, FieldTable::default()).await;
        let exclusive_options =
            lapin::options::QueueDeclareOptions { durable: true, exclusive: true, ..Default::default() };
        declare_with(&channel, &exclusive, exclusive_options, FieldTable::default()).await;
        publish_with(&channel, &durable, EACH, BasicProperties::default().with_delivery_mode(2)).await;
        for queue in [&transient, &exclusive] {
            publish(&channel, queue, EACH).await;
        }
        let (logs, bytes) = logs_in(&transient_dir(&data_dir));
        assert_eq!(logs, 2, "the non-durable and the exclusive queue's logs");
        assert!(bytes >= (2 * EACH * BODY_BYTES) as u64, "{bytes} B in transient segment files");
    });
    let status = server.warren.expect("a Warren").terminate();
    assert!(status.success(), "warren exited with {status}");
    // The exclusive queue went with its connection as the broker closed it.
    assert_eq!(logs_in(&transient_dir(&data_dir)).0, 1, "a stopped broker leaves its transient logs");

    let server = Server::warren(Broker::start_in(&data_dir, &["--storage", "disk"]));
    run(async {
        let (_connection, channel) = server.open().await;
        assert_eq!(count(&channel, &durable).await as usize, EACH, "the durable queue's messages");
        assert_eq!(logs_in(&transient_dir(&data_dir)), (0, 0), "transient logs removed at start");
        for gone in [&transient, &exclusive] {
            let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
            let (_c, probe) = server.open().await;
            let error = within("passive declare", probe.queue_declare(gone, passive, FieldTable::default()))
                .await
                .expect_err("the queue did not outlive the broker");
            assert!(reply_of(&error).starts_with("404"), "{gone}: {error}");
        }
    });
}
