//! lapin against Warren on disc when a queue's segment files were damaged while the broker
//! was down: a tail cut after every message was acked must not swallow later publishes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lapin::options::{BasicAckOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::run;

const FLAGS: &[&str] = &["--storage", "disk", "--fsync", "always", "--segment-bytes", "4096"];

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn hex(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The queue's segment files, oldest first.
fn segments(dir: &Path, queue: &str) -> Vec<PathBuf> {
    let queue_dir = warren::broker::node::vhost_dir(dir, "/").join("queues").join(hex(queue));
    let mut found: Vec<PathBuf> = std::fs::read_dir(&queue_dir)
        .unwrap_or_else(|e| panic!("list {queue_dir:?}: {e}"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    found.sort();
    found
}

/// Publishes `total` persistent messages with confirms, then consumes and acks them all.
async fn publish_and_ack_all(server: &Server, queue: &str, total: usize, prefix: &str) {
    let (_conn, ch) = server.open_confirming().await;
    declare_with(&ch, queue, DURABLE, FieldTable::default()).await;
    for i in 0..total {
        publish_props(&ch, "", queue, format!("{prefix}{i}").as_bytes(), persistent()).await;
    }
    let mut consumer = consume(&ch, queue, false).await;
    for i in 0..total {
        let d = next(&mut consumer).await;
        assert_eq!(String::from_utf8_lossy(&d.data), format!("{prefix}{i}"));
        d.acker.ack(BasicAckOptions::default()).await.expect("ack");
    }
    // A round trip settles the acks before the broker stops.
    within("qos round trip", ch.basic_qos(0, Default::default())).await.expect("qos");
}

/// Every body delivered until none comes for a while, acking each.
async fn drain(consumer: &mut lapin::Consumer) -> Vec<String> {
    use futures::StreamExt;
    let mut seen = Vec::new();
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(2), consumer.next()).await {
        seen.push(String::from_utf8_lossy(&d.data).into_owned());
        d.acker.ack(BasicAckOptions::default()).await.expect("ack");
    }
    seen
}

#[test]
fn publishes_after_an_acked_tail_is_cut_are_all_delivered() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    let q = unique("cut-acked");
    run(async {
        let server = Server::warren(Broker::start_in(&dir, FLAGS));
        publish_and_ack_all(&server, &q, 100, "old").await;
        let status = server.warren.expect("a Warren").terminate();
        assert!(status.success(), "warren exited with {status}");
    });
    // What a power loss under `--fsync interval` can leave: the tail's last batches gone.
    let tail = segments(&dir, &q).pop().expect("a tail segment");
    // Where the last roll fell decides how long the tail is: cut up to 600 bytes of it,
    // leaving at least one byte (a torn batch header, which recovery truncates).
    let length = std::fs::metadata(&tail).expect("meta").len();
    assert!(length > 1, "tail segment too short to cut: {length}");
    let cut = 600.min(length - 1);
    std::fs::OpenOptions::new().write(true).open(&tail).expect("open").set_len(length - cut).expect("cut");
    run(async {
        let server = Server::warren(Broker::start_in(&dir, FLAGS));
        let (_conn, ch) = server.open_confirming().await;
        declare_with(&ch, &q, DURABLE, FieldTable::default()).await;
        for i in 0..100 {
            publish_props(&ch, "", &q, format!("new{i}").as_bytes(), persistent()).await;
        }
        let mut consumer = consume(&ch, &q, false).await;
        let seen = drain(&mut consumer).await;
        let expected: Vec<String> = (0..100).map(|i| format!("new{i}")).collect();
        assert_eq!(seen.len(), 100, "confirmed publishes delivered after the cut: {seen:?}");
        assert_eq!(seen, expected, "every confirmed publish after the cut, in order");
        let log = server.log_tail();
        assert!(log.contains("clamp"), "the clamp is logged: {log}");
    });
}

/// A body that carries its own sequence number and checksum, padded to about 100 bytes.
fn checked_body(i: usize) -> String {
    let text = format!("{i:06}-{}", "y".repeat(80));
    let sum: u32 = text.bytes().map(u32::from).sum();
    format!("{text}-{sum:08}")
}

/// Whether `body` is intact (its checksum matches).
fn body_is_intact(body: &str) -> bool {
    let Some((text, sum)) = body.rsplit_once('-') else { return false };
    sum.parse::<u32>().is_ok_and(|sum| sum == text.bytes().map(u32::from).sum::<u32>())
}

/// Batches of a segment file: (position, record count, total bytes).
fn batches(file: &[u8]) -> Vec<(usize, u64, usize)> {
    let mut out = Vec::new();
    let mut position = 0;
    while position + 48 <= file.len() {
        let field =
            |at: usize| u32::from_le_bytes(file[position + at..position + at + 4].try_into().expect("4"));
        let total = 48 + field(40) as usize;
        out.push((position, u64::from(field(20)), total));
        position += total;
    }
    out
}

/// Flips bits in the payloads of three batches of the queue's second segment (sealed) and
/// overwrites the length field of its last batch. Returns how many records those batches
/// held.
fn damage_sealed_segment(dir: &Path, queue: &str) -> u64 {
    let files = segments(dir, queue);
    assert!(files.len() >= 4, "need sealed segments: {files:?}");
    let path = &files[1];
    let mut file = std::fs::read(path).expect("read segment");
    let found = batches(&file);
    assert!(found.len() >= 8, "batches in a sealed segment: {}", found.len());
    let mut lost = 0;
    for &index in &[1, 3, 5] {
        let (position, count, total) = found[index];
        file[position + total - 10] ^= 0x5a;
        lost += count;
    }
    let (position, count, _) = *found.last().expect("a last batch");
    file[position + 40..position + 44].copy_from_slice(&0x00ff_0000u32.to_le_bytes());
    lost += count;
    std::fs::write(path, &file).expect("write segment");
    lost
}

/// Publishes `total` checked bodies with confirms to a durable queue declared with `args`.
async fn fill_checked(server: &Server, queue: &str, total: usize, args: FieldTable) {
    let (_conn, ch) = server.open_confirming().await;
    declare_with(&ch, queue, DURABLE, args).await;
    for i in 0..total {
        publish_props(&ch, "", queue, checked_body(i).as_bytes(), persistent()).await;
    }
}

/// Damages a sealed segment of a filled queue while the broker is down, restarts and
/// consumes everything: every record of every intact batch comes out, and nothing corrupt.
fn damaged_batches_cost_only_their_records(
    args: FieldTable,
    consume_args: FieldTable,
    damage: fn(&Path, &str) -> u64,
) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    let q = unique("flipped");
    let total = 300;
    run(async {
        let server = Server::warren(Broker::start_in(&dir, FLAGS));
        fill_checked(&server, &q, total, args.clone()).await;
        let status = server.warren.expect("a Warren").terminate();
        assert!(status.success(), "warren exited with {status}");
    });
    let lost = damage(&dir, &q);
    run(async {
        let server = Server::warren(Broker::start_in(&dir, FLAGS));
        let (_conn, ch) = server.open().await;
        declare_with(&ch, &q, DURABLE, args).await;
        within("basic.qos", ch.basic_qos(50, Default::default())).await.expect("qos");
        let consumer = within(
            "basic.consume",
            ch.basic_consume(&q, "", lapin::options::BasicConsumeOptions::default(), consume_args),
        )
        .await
        .expect("consume");
        let mut consumer = consumer;
        let seen = drain(&mut consumer).await;
        let corrupt: Vec<&String> = seen.iter().filter(|b| !body_is_intact(b)).collect();
        assert!(corrupt.is_empty(), "corrupt bodies delivered: {corrupt:?}");
        assert_eq!(
            seen.len() as u64,
            total as u64 - lost,
            "delivered of {total} after damaging batches holding {lost} records; log: {}",
            server.log_tail()
        );
        let log = server.log_tail();
        assert!(log.contains("lost"), "the loss is logged: {log}");
    });
}

#[test]
fn classic_queue_skips_exactly_the_damaged_batches() {
    damaged_batches_cost_only_their_records(
        FieldTable::default(),
        FieldTable::default(),
        damage_sealed_segment,
    );
}

#[test]
fn stream_skips_exactly_the_damaged_batches() {
    damaged_batches_cost_only_their_records(
        table(vec![("x-queue-type", s("stream"))]),
        table(vec![("x-stream-offset", s("first"))]),
        damage_sealed_segment,
    );
}

/// Overwrites the length field of a batch in the middle of the queue's third segment
/// (sealed): the batches after it cannot be found by length, and reading resumes at the
/// next indexed batch, here the next segment's first (4 KiB segments hold one index entry).
/// Returns how many records the damaged batch and the rest of its segment held.
fn overwrite_a_length_mid_segment(dir: &Path, queue: &str) -> u64 {
    let files = segments(dir, queue);
    assert!(files.len() >= 4, "need sealed segments: {files:?}");
    let path = &files[2];
    let mut file = std::fs::read(path).expect("read segment");
    let found = batches(&file);
    assert!(found.len() >= 8, "batches in a sealed segment: {}", found.len());
    let damaged = found.len() / 2;
    let (position, _, _) = found[damaged];
    file[position + 40..position + 44].copy_from_slice(&0x00ff_0000u32.to_le_bytes());
    std::fs::write(path, &file).expect("write segment");
    found[damaged..].iter().map(|&(_, count, _)| count).sum()
}

#[test]
fn classic_queue_resumes_at_the_next_indexed_batch_after_a_damaged_length() {
    damaged_batches_cost_only_their_records(
        FieldTable::default(),
        FieldTable::default(),
        overwrite_a_length_mid_segment,
    );
}

#[test]
fn stream_resumes_at_the_next_indexed_batch_after_a_damaged_length() {
    damaged_batches_cost_only_their_records(
        table(vec![("x-queue-type", s("stream"))]),
        table(vec![("x-stream-offset", s("first"))]),
        overwrite_a_length_mid_segment,
    );
}
