//! Backlogs larger than the broker should hold in memory, on disc: a priority queue keeps
//! offsets by priority (not records) and an `x-max-length-bytes` queue keeps a running total
//! of its ready bytes (not the records), so the broker's resident memory grows by a small
//! fraction of the backlog while delivery order and head drops stay exact. Memory is
//! anonymous plus file-backed: records read from disc are slices of mapped segments, so a
//! queue holding its backlog pins the mapped pages rather than anonymous memory.
//! These always run on a Warren they start (they read its `/proc/PID/status`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::rss::{PeakRss, Rss};
use crate::harness::run;

/// Small segments (4 MiB): the log rolls many times under the backlog, and a segment a
/// reader keeps mapped holds few pages. `--fsync never` keeps the publishing part short.
const FLAGS: &[&str] = &["--storage", "disk", "--fsync", "never", "--segment-bytes", "4194304"];
const BODY_BYTES: usize = 2048;
/// Publishes in flight before waiting for their confirms.
const CONFIRM_BATCH: usize = 2000;
/// Deliveries in flight: what a consumer holds is bounded by its prefetch, not by the
/// backlog.
const PREFETCH: u16 = 1000;
const ACK_EVERY: usize = 250;

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    (temp, dir)
}

fn start(dir: &Path) -> Server {
    Server::warren(Broker::start_in(dir, FLAGS))
}

/// Asserts that neither the anonymous memory nor the anonymous and file-backed memory
/// together (records kept as slices of mapped segments pin their pages) grew by a quarter
/// of the backlog.
fn assert_bounded(what: &str, baseline: Rss, peak: Rss, backlog_bytes: usize) {
    eprintln!("{what}: backlog {backlog_bytes} B; at the start {baseline:?}, peak {peak:?}");
    let bound_bytes = backlog_bytes as u64 / 4;
    let anon_bytes = peak.anon_kib.saturating_sub(baseline.anon_kib) * 1024;
    assert!(
        anon_bytes < bound_bytes,
        "{what}: RssAnon grew by {anon_bytes} B for a backlog of {backlog_bytes} B"
    );
    // Mapped file pages stay resident as long as the kernel leaves them, which depends on
    // what else the machine does (tests run in parallel): half the backlog is the bound
    // here. Holding the backlog mapped, as queues did, costs more than all of it.
    let both_bytes = peak.anon_and_file_kib.saturating_sub(baseline.anon_and_file_kib) * 1024;
    assert!(
        both_bytes < backlog_bytes as u64 / 2,
        "{what}: RssAnon + RssFile grew by {both_bytes} B for a backlog of {backlog_bytes} B"
    );
}

/// The body of message `index`: its number and priority, padded to [`BODY_BYTES`].
fn message_body(index: usize, priority: u8) -> Vec<u8> {
    let mut body = format!("{index:08} {priority:03} ").into_bytes();
    body.resize(BODY_BYTES, b'.');
    body
}

fn parse_body(body: &[u8]) -> (usize, u8) {
    let text = std::str::from_utf8(body.get(..12).expect("a numbered body")).expect("ascii");
    (text[..8].parse().expect("index"), text[9..12].parse().expect("priority"))
}

/// Publishes persistent messages `from..priorities.len()`, each with its priority (`None`:
/// no priority property), `CONFIRM_BATCH` at a time, each batch confirmed.
async fn publish_from(channel: &Channel, queue: &str, priorities: &[Option<u8>], from: usize) {
    let mut confirms = Vec::with_capacity(CONFIRM_BATCH);
    for (index, priority) in priorities.iter().enumerate().skip(from) {
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(priority) = priority {
            properties = properties.with_priority(*priority);
        }
        let body = message_body(index, priority.unwrap_or(0));
        let confirm = channel
            .basic_publish("", queue, BasicPublishOptions::default(), &body, properties)
            .await
            .expect("basic.publish");
        confirms.push(confirm);
        if confirms.len() == CONFIRM_BATCH || index + 1 == priorities.len() {
            for confirm in confirms.drain(..) {
                let confirmation = within("publisher confirm", confirm).await.expect("confirm");
                assert!(!confirmation.is_nack(), "publish was nacked");
            }
        }
    }
}

/// Consumes `total` messages with a prefetch of [`PREFETCH`], acking every
/// [`ACK_EVERY`] with `multiple`; their (index, priority), in delivery order.
async fn consume_all(channel: &Channel, queue: &str, total: usize) -> Vec<(usize, u8)> {
    channel.basic_qos(PREFETCH, BasicQosOptions::default()).await.expect("basic.qos");
    let mut consumer = channel
        .basic_consume(queue, "", BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("basic.consume");
    let mut seen = Vec::with_capacity(total);
    while seen.len() < total {
        let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {total} delivered", seen.len()))
            .expect("a delivery")
            .expect("not an error");
        assert!(!delivery.redelivered, "never delivered before");
        seen.push(parse_body(&delivery.data));
        if seen.len() % ACK_EVERY == 0 || seen.len() == total {
            delivery.acker.ack(BasicAckOptions { multiple: true }).await.expect("basic.ack");
        }
    }
    seen
}

/// Waits until the queue's ready count is `expected` (the count a passive declare reads can
/// trail the queue's task dropping its head).
async fn settled_count(channel: &Channel, queue: &str, expected: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ready = count(channel, queue).await as usize;
        if ready == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{ready} ready in {queue}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn arguments(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert((*key).into(), value.clone());
    }
    table
}

/// Priorities in runs (a thousand of one, then the next) for the first half, then
/// alternating between two, with a few without a priority property.
fn mixed_priorities(total: usize) -> Vec<Option<u8>> {
    (0..total)
        .map(|i| match i {
            i if i < total / 2 => Some(((i / 1000) % 11) as u8),
            i if i % 97 == 0 => None,
            i if i % 2 == 0 => Some(9),
            _ => Some(2),
        })
        .collect()
}

fn priority_backlog(restart: bool) {
    const TOTAL: usize = 100_000;
    let (_temp, dir) = data_dir();
    let queue = unique("priority-backlog");
    let priorities = mixed_priorities(TOTAL);
    let backlog_bytes = TOTAL * BODY_BYTES;
    run(async {
        let mut server = start(&dir);
        let mut pid = server.warren.as_ref().expect("a Warren").pid();
        let baseline = Rss::now(pid);
        let mut watch = PeakRss::watch(pid);
        let (connection, channel) = server.open_confirming().await;
        let args = arguments(&[("x-max-priority", AMQPValue::ShortShortInt(10))]);
        declare_with(&channel, &queue, DURABLE, args).await;
        publish_from(&channel, &queue, &priorities, 0).await;
        assert_eq!(count(&channel, &queue).await as usize, TOTAL);
        let (mut baseline, mut channel, mut _connection) = (baseline, channel, connection);
        if restart {
            assert_bounded("priority queue, publishing", baseline, watch.peak(), backlog_bytes);
            drop(watch);
            let status = server.warren.take().expect("a Warren").terminate();
            assert!(status.success(), "warren exited with {status}");
            server = start(&dir);
            pid = server.warren.as_ref().expect("a Warren").pid();
            baseline = Rss::now(pid);
            watch = PeakRss::watch(pid);
            (_connection, channel) = server.open().await;
            assert_eq!(count(&channel, &queue).await as usize, TOTAL, "after the restart");
        }
        let order = consume_all(&channel, &queue, TOTAL).await;
        assert_bounded("priority queue, consuming", baseline, watch.peak(), backlog_bytes);
        let mut expected: Vec<(usize, u8)> =
            priorities.iter().enumerate().map(|(i, p)| (i, p.unwrap_or(0))).collect();
        expected.sort_by_key(|&(index, priority)| (std::cmp::Reverse(priority), index));
        assert!(order == expected, "delivery order differs from priority then FIFO");
        assert_eq!(count(&channel, &queue).await, 0);
    });
}

#[test]
fn priority_backlog_is_delivered_in_order_with_bounded_memory() {
    priority_backlog(false);
}

#[test]
fn priority_backlog_survives_a_restart_with_bounded_memory() {
    priority_backlog(true);
}

/// An `x-max-length-bytes` queue as large as its backlog: publishing past it drops exactly
/// the oldest messages, before and after a restart, while memory stays bounded.
#[test]
fn max_length_bytes_drops_exactly_from_the_head_with_bounded_memory() {
    const KEPT: usize = 80_000;
    const FIRST: usize = 85_000;
    const AFTER_RESTART: usize = 5_000;
    let limit_bytes = KEPT * BODY_BYTES;
    let (_temp, dir) = data_dir();
    let queue = unique("bytes-backlog");
    let limit = AMQPValue::LongLongInt(limit_bytes as i64);
    let args = arguments(&[
        ("x-max-length-bytes", limit),
        ("x-overflow", AMQPValue::LongString(LongString::from("drop-head"))),
    ]);
    run(async {
        let server = start(&dir);
        let pid = server.warren.as_ref().expect("a Warren").pid();
        let baseline = Rss::now(pid);
        let watch = PeakRss::watch(pid);
        let (_connection, channel) = server.open_confirming().await;
        declare_with(&channel, &queue, DURABLE, args.clone()).await;
        publish_from(&channel, &queue, &vec![None; FIRST], 0).await;
        settled_count(&channel, &queue, KEPT).await;
        assert_bounded("byte-limited queue, publishing", baseline, watch.peak(), limit_bytes);
        drop(watch);
        let status = server.warren.expect("a Warren").terminate();
        assert!(status.success(), "warren exited with {status}");
    });
    run(async {
        let server = start(&dir);
        let pid = server.warren.as_ref().expect("a Warren").pid();
        let baseline = Rss::now(pid);
        let watch = PeakRss::watch(pid);
        let (_connection, channel) = server.open_confirming().await;
        assert_eq!(count(&channel, &queue).await as usize, KEPT, "after the restart");
        // Numbered on from the first run's messages.
        let more: Vec<Option<u8>> = vec![None; FIRST + AFTER_RESTART];
        publish_from(&channel, &queue, &more, FIRST).await;
        settled_count(&channel, &queue, KEPT).await;
        let order = consume_all(&channel, &queue, KEPT).await;
        assert_bounded("byte-limited queue, after a restart", baseline, watch.peak(), limit_bytes);
        let survivors: Vec<usize> = order.into_iter().map(|(index, _)| index).collect();
        let newest: Vec<usize> = (FIRST + AFTER_RESTART - KEPT..FIRST + AFTER_RESTART).collect();
        assert!(survivors == newest, "the survivors are not exactly the newest {KEPT} messages");
    });
}
