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
    let queue_dir = dir.join("queues").join(hex(queue));
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
    let length = std::fs::metadata(&tail).expect("meta").len();
    assert!(length > 600, "tail segment too short to cut: {length}");
    std::fs::OpenOptions::new().write(true).open(&tail).expect("open").set_len(length - 600).expect("cut");
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
