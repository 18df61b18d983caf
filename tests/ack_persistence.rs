//! lapin against Warren on disc (`--fsync always`) across SIGKILL: acks above an unacked
//! message survive the crash (only the unacked one comes back, marked redelivered), they
//! survive a second crash too, and a damaged `acked` file falls back to the floor
//! (everything from the unacked message on comes back; nothing is lost).

// A one-range list of ranges is meant: the acked file holds a list of ranges.
#![allow(clippy::single_range_in_vec_init)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lapin::options::{BasicAckOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::run;

const FLAGS: &[&str] = &["--storage", "disk", "--fsync", "always"];

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// How long the broker may take to write acks to disc: a few queue ticks.
const PERSIST_DEADLINE: Duration = Duration::from_secs(5);

fn start(dir: &Path) -> Server {
    Server::warren(Broker::start_in(dir, FLAGS))
}

/// The queue's `acked` file (see docs/log-format.md).
fn acked_file(dir: &Path, queue: &str) -> PathBuf {
    let hex: String = queue.bytes().map(|b| format!("{b:02x}")).collect();
    warren::broker::node::vhost_dir(dir, "/").join("queues").join(hex).join(warren::log::acked::ACKED_FILE)
}

/// Waits until the queue's `acked` file holds exactly `ranges`; false at the deadline (a
/// broker that does not persist acks then fails the checks after the restart).
fn wait_for_acked(dir: &Path, queue: &str, ranges: &[std::ops::Range<u64>]) -> bool {
    let until = Instant::now() + PERSIST_DEADLINE;
    while Instant::now() < until {
        let stored = std::fs::read(acked_file(dir, queue)).ok();
        if stored.as_deref().and_then(warren::log::acked::decode).is_some_and(|a| a.ranges == ranges) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Publishes `m0..m{count}` persistent, confirmed, to a new durable queue.
async fn fill(ch: &Channel, queue: &str, count: usize) {
    declare_with(ch, queue, DURABLE, FieldTable::default()).await;
    for i in 0..count {
        let persistent = BasicProperties::default().with_delivery_mode(2);
        publish_props(ch, "", queue, format!("m{i}").as_bytes(), persistent).await;
    }
}

/// Everything in the queue, as (body, redelivered), with no-ack gets.
async fn drain_flagged(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    let mut seen = Vec::new();
    while let Some(m) = get(ch, queue, true).await {
        seen.push((body(&m.delivery), m.delivery.redelivered));
    }
    seen
}

/// Consumes `count` messages and acks all but the first, one by one.
async fn ack_all_but_the_first(ch: &Channel, queue: &str, count: usize) {
    let mut consumer = consume(ch, queue, false).await;
    let first = next(&mut consumer).await;
    assert_eq!(body(&first), "m0");
    for i in 1..count {
        let d = next(&mut consumer).await;
        assert_eq!(body(&d), format!("m{i}"));
        d.acker.ack(BasicAckOptions::default()).await.expect("ack");
    }
}

#[test]
fn acks_above_an_unacked_message_survive_sigkill() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    let q = unique("acked");
    let total = 100;
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open_confirming().await;
        fill(&ch, &q, total).await;
        ack_all_but_the_first(&ch, &q, total).await;
        wait_for_acked(&dir, &q, &[1..total as u64]);
        server.warren.expect("a Warren").kill();
    });
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open_confirming().await;
        assert_eq!(count(&ch, &q).await, 1, "ready after the crash: the unacked message only");
        // m0 delivered again and left unacked; one more message acked: the acks from before
        // the first crash must be kept by the next write.
        let mut consumer = consume(&ch, &q, false).await;
        let again = next(&mut consumer).await;
        assert_eq!((body(&again), again.redelivered), ("m0".to_owned(), true));
        let persistent = BasicProperties::default().with_delivery_mode(2);
        publish_props(&ch, "", &q, b"late", persistent).await;
        let late = next(&mut consumer).await;
        assert_eq!(body(&late), "late");
        late.acker.ack(BasicAckOptions::default()).await.expect("ack");
        wait_for_acked(&dir, &q, &[1..total as u64 + 1]);
        server.warren.expect("a Warren").kill();
    });
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open().await;
        assert_eq!(
            drain_flagged(&ch, &q).await,
            vec![("m0".to_owned(), true)],
            "after two crashes only the unacked message comes back, marked redelivered"
        );
    });
}

#[test]
fn a_damaged_acked_file_falls_back_to_the_floor() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    let q = unique("acked-damaged");
    let total = 10;
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open_confirming().await;
        fill(&ch, &q, total).await;
        ack_all_but_the_first(&ch, &q, total).await;
        assert!(wait_for_acked(&dir, &q, &[1..total as u64]), "the acks reach the disc");
        server.warren.expect("a Warren").kill();
    });
    let path = acked_file(&dir, &q);
    let mut bytes = std::fs::read(&path).expect("the acked file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, bytes).expect("damage the acked file");
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open().await;
        let expected: Vec<(String, bool)> = (0..total).map(|i| (format!("m{i}"), true)).collect();
        assert_eq!(drain_flagged(&ch, &q).await, expected, "everything from the floor, redelivered");
    });
}

#[test]
fn acks_are_written_on_a_clean_stop_whatever_the_interval() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    let q = unique("acked-stop");
    let total = 20;
    // An interval far longer than the test: only the stop itself can write the acks.
    let flags = ["--storage", "disk", "--fsync", "interval", "--fsync-interval", "1h"];
    run(async {
        let server = Server::warren(Broker::start_in(&dir, &flags));
        let (_conn, ch) = server.open_confirming().await;
        fill(&ch, &q, total).await;
        let mut consumer = consume(&ch, &q, false).await;
        let deliveries: Vec<_> = {
            let mut all = Vec::new();
            for _ in 0..total {
                all.push(next(&mut consumer).await);
            }
            all
        };
        // The first write happens on the next tick; the interval then holds back the next.
        deliveries[1].acker.ack(BasicAckOptions::default()).await.expect("ack");
        assert!(wait_for_acked(&dir, &q, &[1..2]), "the first ack reaches the disc");
        for d in &deliveries[2..] {
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        }
        // The acks are settled once a later method on the channel has its answer.
        within("qos round trip", ch.basic_qos(0, Default::default())).await.expect("qos");
        let status = server.warren.expect("a Warren").terminate();
        assert!(status.success(), "warren exited with {status} on SIGTERM");
    });
    run(async {
        let server = Server::warren(Broker::start_in(&dir, &flags));
        let (_conn, ch) = server.open().await;
        assert_eq!(drain_flagged(&ch, &q).await, vec![("m0".to_owned(), true)]);
    });
}

#[test]
fn a_purge_after_a_restart_leaves_new_messages_counted() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    let q = unique("acked-purge");
    let total = 10;
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open_confirming().await;
        fill(&ch, &q, total).await;
        ack_all_but_the_first(&ch, &q, total).await;
        assert!(wait_for_acked(&dir, &q, &[1..total as u64]), "the acks reach the disc");
        server.warren.expect("a Warren").kill();
    });
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open_confirming().await;
        let purged = within("purge", ch.queue_purge(&q, Default::default())).await.expect("purge");
        assert_eq!(purged, 1, "only the unacked message was ready");
        let persistent = BasicProperties::default().with_delivery_mode(2);
        publish_props(&ch, "", &q, b"after", persistent).await;
        assert_eq!(count(&ch, &q).await, 1, "the message published after the purge");
        assert_eq!(drain_flagged(&ch, &q).await, vec![("after".to_owned(), false)]);
    });
}
