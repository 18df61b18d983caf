//! `--storage memory` against its memory limit, on a Warren these tests start (they read its
//! `/proc/PID/status`): a flood into a queue nobody consumes is blocked near the limit and
//! the broker still serves; a drained backlog leaves the broker's memory; queues whose
//! consumers keep up never hold their publishers back, whatever the segment size.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionStatus};
use tokio::task::JoinHandle;

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::rss::{PeakRss, Rss};
use crate::harness::run;

const MIB: u64 = 1024 * 1024;

/// A body numbered `id`, `bytes` long.
fn body(id: u64, bytes: usize) -> Vec<u8> {
    let mut body = format!("{id:016} ").into_bytes();
    body.resize(bytes, b'.');
    body
}

fn id_of(body: &[u8]) -> u64 {
    std::str::from_utf8(&body[..16]).expect("ascii").parse().expect("a numbered body")
}

fn memory_broker(limit_bytes: u64) -> Server {
    let limit = limit_bytes.to_string();
    Server::warren(Broker::start(&["--storage", "memory", "--memory-limit", &limit]))
}

/// Ids whose publishes the broker confirmed, filled by a task per publisher.
#[derive(Default)]
struct Confirmed {
    acked: Mutex<Vec<u64>>,
}

/// What one flooding publisher does, and where it notes what it saw.
struct Flood {
    queue: String,
    first_id: u64,
    bytes: usize,
    until: Instant,
    confirmed: Arc<Confirmed>,
    blocked_seen: Arc<AtomicBool>,
}

/// How long a publisher goes on trying once its connection is blocked.
const HELD_BACK: Duration = Duration::from_secs(1);

/// Resolves once the connection has been blocked for [`HELD_BACK`] on end.
async fn held_back(status: &ConnectionStatus) {
    let mut since: Option<Instant> = None;
    loop {
        match (status.blocked(), since) {
            (true, None) => since = Some(Instant::now()),
            (true, Some(start)) if start.elapsed() >= HELD_BACK => return,
            (false, _) => since = None,
            (true, Some(_)) => {}
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Publishes `bytes`-long bodies to `queue`, numbering them from `first_id`, until its
/// connection has been blocked for [`HELD_BACK`] (lapin holds a blocked connection's
/// publishes back) or until `until`. Confirms are awaited by a task of their own. Notes
/// whether the connection was blocked at the end. Returns the connection, still open: a
/// blocked connection is not read, so a close would wait.
async fn flood(connection: Connection, channel: Channel, plan: Flood) -> Connection {
    let Flood { queue, first_id, bytes, until, confirmed, blocked_seen } = plan;
    let (confirms, mut pending) = tokio::sync::mpsc::unbounded_channel::<(u64, PublisherConfirm)>();
    let collector = {
        let confirmed = Arc::clone(&confirmed);
        tokio::spawn(async move {
            while let Some((id, confirm)) = pending.recv().await {
                if let Ok(Confirmation::Ack(_)) = confirm.await {
                    confirmed.acked.lock().expect("lock").push(id);
                }
            }
        })
    };
    let mut id = first_id;
    while Instant::now() < until {
        let payload = body(id, bytes);
        let publish = channel.basic_publish(
            "",
            &queue,
            BasicPublishOptions::default(),
            &payload,
            BasicProperties::default(),
        );
        tokio::select! {
            confirm = publish => {
                let _ = confirms.send((id, confirm.expect("basic.publish")));
                id += 1;
            }
            () = held_back(connection.status()) => break,
            () = tokio::time::sleep_until(until.into()) => break,
        }
    }
    if connection.status().blocked() {
        blocked_seen.store(true, Ordering::Relaxed);
    }
    // Confirms still on their way are given a moment; the ones of held-back publishes
    // never come while the alarm holds.
    drop(confirms);
    let _ = tokio::time::timeout(Duration::from_millis(500), collector).await;
    connection
}

/// Consumes `queue` on a new connection, acking, until every id of `expected` came.
async fn drain_until(server: &Server, queue: &str, expected: &HashSet<u64>) -> usize {
    let (_connection, channel) = server.open().await;
    channel.basic_qos(1000, BasicQosOptions::default()).await.expect("basic.qos");
    let mut consumer = channel
        .basic_consume(queue, "", BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("basic.consume");
    let mut missing = expected.clone();
    let mut delivered = 0;
    while !missing.is_empty() {
        let delivery = tokio::time::timeout(Duration::from_secs(15), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("{} confirmed messages never delivered", missing.len()))
            .expect("a delivery")
            .expect("not an error");
        missing.remove(&id_of(&delivery.data));
        delivered += 1;
        if delivered % 100 == 0 || missing.is_empty() {
            delivery.acker.ack(BasicAckOptions { multiple: true }).await.expect("basic.ack");
        }
    }
    delivered
}

/// A flood from two publishers into a queue nobody consumes, with a 64 MiB limit: the
/// broker's anonymous memory stays within a quarter of the limit above it (the alarm is
/// woken by the write that reaches the limit, not by its next check), the publishers are
/// blocked, and a new connection still consumes every confirmed message.
#[test]
fn a_flood_into_memory_is_blocked_near_the_limit() {
    const LIMIT_BYTES: u64 = 64 * MIB;
    const BODY_BYTES: usize = 64 * 1024;
    let server = memory_broker(LIMIT_BYTES);
    let pid = server.warren.as_ref().expect("a Warren").pid();
    let queue = unique("flood");
    run(async {
        let (_connection, channel) = server.open().await;
        declare(&channel, &queue, FieldTable::default()).await;
        let watch = PeakRss::watch(pid);
        // Ends once both publishers are held back: the deadline is for a broker that never
        // blocks them.
        let until = Instant::now() + Duration::from_secs(20);
        let (confirmed, blocked_seen) = (Arc::new(Confirmed::default()), Arc::new(AtomicBool::new(false)));
        let mut publishers = Vec::new();
        for publisher in 0..2u64 {
            let (connection, channel) = server.open_confirming().await;
            let plan = Flood {
                queue: queue.clone(),
                first_id: publisher << 32,
                bytes: BODY_BYTES,
                until,
                confirmed: Arc::clone(&confirmed),
                blocked_seen: Arc::clone(&blocked_seen),
            };
            publishers.push(tokio::spawn(flood(connection, channel, plan)));
        }
        let mut kept_open = Vec::new();
        for publisher in publishers {
            kept_open.push(publisher.await.expect("publisher"));
        }
        let peak = watch.peak();
        drop(watch);
        let acked: HashSet<u64> = confirmed.acked.lock().expect("lock").iter().copied().collect();
        let confirmed_bytes = acked.len() as u64 * BODY_BYTES as u64;
        eprintln!(
            "flood: limit {} MiB, peak RssAnon {} MiB, {} confirmed ({} MiB), blocked {}",
            LIMIT_BYTES / MIB,
            peak.anon_kib / 1024,
            acked.len(),
            confirmed_bytes / MIB,
            blocked_seen.load(Ordering::Relaxed)
        );
        let broker = server.warren.as_ref().expect("a Warren");
        assert!(
            broker.wait_for_log("low on memory", QUIET),
            "the memory alarm was raised: {}",
            server.log_tail()
        );
        assert!(blocked_seen.load(Ordering::Relaxed), "the publishers got connection.blocked");
        assert!(
            peak.anon_kib * 1024 < LIMIT_BYTES + LIMIT_BYTES / 4,
            "RssAnon peaked at {} MiB with a limit of {} MiB",
            peak.anon_kib / 1024,
            LIMIT_BYTES / MIB
        );
        assert!(confirmed_bytes > LIMIT_BYTES / 4, "the queue took a good part of the limit first");
        let delivered = drain_until(&server, &queue, &acked).await;
        assert!(delivered >= acked.len());
        drop(kept_open);
    });
}

/// A backlog of 120 MB of 1 KiB messages in memory, consumed to the end with acks: within
/// 10 s the broker's anonymous memory is back under a third of its peak (the consumed
/// chunks leave RAM as the queue's floor passes them, not when their 256 MiB segment
/// would be deleted).
#[test]
fn memory_falls_after_a_backlog_is_drained() {
    const TOTAL: u64 = 120_000;
    const BODY_BYTES: usize = 1024;
    let server = memory_broker(4096 * MIB);
    let pid = server.warren.as_ref().expect("a Warren").pid();
    let queue = unique("drained");
    run(async {
        let (_connection, channel) = server.open_confirming().await;
        declare(&channel, &queue, FieldTable::default()).await;
        let started = Instant::now();
        let mut confirms = Vec::with_capacity(2000);
        for id in 0..TOTAL {
            let confirm = channel
                .basic_publish(
                    "",
                    &queue,
                    BasicPublishOptions::default(),
                    &body(id, BODY_BYTES),
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish");
            confirms.push(confirm);
            if confirms.len() == 2000 || id + 1 == TOTAL {
                for confirm in confirms.drain(..) {
                    assert!(!within("confirm", confirm).await.expect("confirm").is_nack(), "nacked");
                }
            }
        }
        let full = Rss::now(pid);
        let published_in = started.elapsed();
        let expected: HashSet<u64> = (0..TOTAL).collect();
        let delivered = drain_until(&server, &queue, &expected).await;
        assert_eq!(delivered as u64, TOTAL);
        let drained_in = started.elapsed() - published_in;
        let bound_kib = full.anon_kib / 3;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut now = Rss::now(pid);
        while now.anon_kib > bound_kib && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            now = Rss::now(pid);
        }
        eprintln!(
            "drain: published in {published_in:?}, drained in {drained_in:?}; RssAnon {} MiB full, {} MiB {:?} after the drain",
            full.anon_kib / 1024,
            now.anon_kib / 1024,
            started.elapsed() - published_in - drained_in
        );
        assert!(
            now.anon_kib <= bound_kib,
            "RssAnon {} MiB after draining a backlog that took it to {} MiB",
            now.anon_kib / 1024,
            full.anon_kib / 1024
        );
    });
}

/// The longest stretch a connection was blocked, sampled every 10 ms until `stop`.
fn watch_blocked(status: ConnectionStatus, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let (mut longest, mut since) = (Duration::ZERO, None::<Instant>);
        while !stop.load(Ordering::Relaxed) {
            match (status.blocked(), since) {
                (true, None) => since = Some(Instant::now()),
                (false, Some(start)) => {
                    longest = longest.max(start.elapsed());
                    since = None;
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        longest.max(since.map_or(Duration::ZERO, |start| start.elapsed()))
    })
}

/// Consumes `total` messages of `queue` on a channel of its own, acking each and checking
/// their order. Returns the channel and how many came before a 20 s silence.
async fn consume_in_order(connection: &Connection, queue: &str, total: u64) -> JoinHandle<(Channel, u64)> {
    let channel = channel(connection).await;
    channel.basic_qos(200, BasicQosOptions::default()).await.expect("basic.qos");
    let mut consumer = channel
        .basic_consume(queue, "", BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("basic.consume");
    tokio::spawn(async move {
        let mut seen = 0;
        while seen < total {
            let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(20), consumer.next()).await
            else {
                break;
            };
            let delivery = delivery.expect("not an error");
            assert_eq!(id_of(&delivery.data) % total, seen, "in order");
            seen += 1;
            delivery.acker.ack(BasicAckOptions::default()).await.expect("basic.ack");
        }
        (channel, seen)
    })
}

/// Publishes `each` messages of `bytes` to every queue of `queues`, one queue after the
/// other, and waits for their confirms every 100 rounds.
async fn publish_round_robin(channel: &Channel, queues: &[String], each: u64, bytes: usize) {
    let mut confirms = Vec::new();
    for index in 0..each {
        for (q, queue) in queues.iter().enumerate() {
            let payload = body(q as u64 * each + index, bytes);
            let publish = channel.basic_publish(
                "",
                queue,
                BasicPublishOptions::default(),
                &payload,
                BasicProperties::default(),
            );
            confirms.push(within("basic.publish", publish).await.expect("basic.publish"));
        }
        if (index + 1) % 100 == 0 || index + 1 == each {
            for confirm in confirms.drain(..) {
                assert!(!within("confirm", confirm).await.expect("confirm").is_nack(), "nacked");
            }
        }
    }
}

/// 20 queues, each with a consumer that keeps up, take 160 MB between them under a 64 MiB
/// limit (segments of the default 256 MiB): what is consumed leaves memory, so the
/// publisher is never blocked for more than about a second and every message is delivered.
#[test]
fn queues_whose_consumers_keep_up_do_not_block_publishers() {
    const QUEUES: u64 = 20;
    const EACH: u64 = 2000;
    const BODY_BYTES: usize = 4096;
    const LIMIT_BYTES: u64 = 64 * MIB;
    let server = memory_broker(LIMIT_BYTES);
    let pid = server.warren.as_ref().expect("a Warren").pid();
    let queues: Vec<String> = (0..QUEUES).map(|q| unique(&format!("kept-up-{q}"))).collect();
    run(async {
        let (consuming, setup) = server.open().await;
        let mut consumers = Vec::new();
        for queue in &queues {
            declare(&setup, queue, FieldTable::default()).await;
            consumers.push(consume_in_order(&consuming, queue, EACH).await);
        }
        let (publishing, channel) = server.open_confirming().await;
        let stop = Arc::new(AtomicBool::new(false));
        let blocked = watch_blocked(publishing.status().clone(), Arc::clone(&stop));
        let watch = PeakRss::watch(pid);
        let started = Instant::now();
        // Confirmed every 100 rounds: the publisher runs at most 8 MB ahead of the queues.
        publish_round_robin(&channel, &queues, EACH, BODY_BYTES).await;
        let published_in = started.elapsed();
        let mut total = 0;
        for consumer in consumers {
            let (_channel, seen) = consumer.await.expect("consumer");
            total += seen;
        }
        stop.store(true, Ordering::Relaxed);
        let longest_blocked = blocked.join().expect("watcher");
        let peak = watch.peak();
        eprintln!(
            "kept up: {} MB in {published_in:?}, peak RssAnon {} MiB, longest blocked {longest_blocked:?}",
            QUEUES * EACH * BODY_BYTES as u64 / 1_000_000,
            peak.anon_kib / 1024
        );
        assert_eq!(total, QUEUES * EACH, "every message delivered");
        assert!(
            longest_blocked < Duration::from_millis(1500),
            "the publisher was blocked for {longest_blocked:?} (peak RssAnon {} MiB)",
            peak.anon_kib / 1024
        );
        drop(publishing);
    });
}
