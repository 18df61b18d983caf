//! A full disc, on a small tmpfs the test mounts (root on Linux, as in CI): with a
//! free-disc limit publishers are blocked before a write fails; without one (limit 0) the
//! writes that hit ENOSPC are nacked and the queue takes publishes again once space is
//! freed. Either way every confirmed message is consumed exactly once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::run;

/// Size of the file system the broker writes to.
const TMPFS_BYTES: u64 = 16 << 20;
/// A file taking space on it, deleted to free space.
const FILLER_BYTES: usize = 6 << 20;
/// Message bodies: large, so a publisher fills the disc faster than the alarm's timer.
const BODY_BYTES: usize = 128 << 10;
/// How long a confirm may take before the publisher counts itself blocked.
const BLOCKED_AFTER: Duration = Duration::from_secs(2);

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount() -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let size = format!("size={TMPFS_BYTES}");
        let output =
            Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(dir.path()).output();
        match output {
            Ok(output) if output.status.success() => Tmpfs { dir },
            Ok(output) => panic!(
                "cannot mount a tmpfs for the disc-full tests (they need root, as in CI; uid {}): {}",
                uid(),
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => panic!("cannot run mount for the disc-full tests: {error}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn uid() -> String {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// A confirm the publisher still waits for.
type Waiting = tokio::task::JoinHandle<lapin::Result<Confirmation>>;

/// What the publisher saw.
#[derive(Default, Debug)]
struct Outcomes {
    acked: Vec<u32>,
    nacked: Vec<u32>,
}

async fn publish(
    channel: &Channel,
    queue: &str,
    id: u32,
) -> lapin::Result<lapin::publisher_confirm::PublisherConfirm> {
    let mut body = id.to_be_bytes().to_vec();
    body.resize(BODY_BYTES, (id % 251) as u8);
    let properties = BasicProperties::default().with_delivery_mode(2);
    channel.basic_publish("", queue, BasicPublishOptions::default(), &body, properties).await
}

fn note(outcomes: &mut Outcomes, id: u32, confirmation: Confirmation) {
    match confirmation {
        Confirmation::Ack(_) => outcomes.acked.push(id),
        Confirmation::Nack(_) => outcomes.nacked.push(id),
        Confirmation::NotRequested => panic!("confirms are on"),
    }
}

/// Publishes one message at a time until the broker stops confirming (blocked) or has
/// nacked `nacks_max` messages. Returns the id of a publish still waiting, if blocked.
async fn fill(
    channel: &Channel,
    queue: &str,
    outcomes: &mut Outcomes,
    nacks_max: usize,
) -> Option<(u32, Waiting)> {
    let most = (TMPFS_BYTES as usize / BODY_BYTES * 2) as u32;
    for id in 0..most {
        // A blocked connection holds the publish itself back (lapin), not only its confirm.
        let (channel, queue_name) = (channel.clone(), queue.to_owned());
        let mut confirm = tokio::spawn(async move { publish(&channel, &queue_name, id).await?.await });
        match tokio::time::timeout(BLOCKED_AFTER, &mut confirm).await {
            Ok(confirmation) => note(outcomes, id, confirmation.expect("task").expect("confirm")),
            Err(_) => return Some((id, confirm)),
        }
        if outcomes.nacked.len() >= nacks_max {
            return None;
        }
    }
    panic!("{most} messages of {BODY_BYTES} bytes fit on a {TMPFS_BYTES}-byte file system: {outcomes:?}");
}

/// Takes every message of `queue` and checks that each acked id is there exactly once.
/// Returns how many were delivered.
async fn drain_and_check(channel: &Channel, queue: &str, outcomes: &Outcomes) -> usize {
    let mut seen: HashMap<u32, usize> = HashMap::new();
    let options = BasicGetOptions { no_ack: true };
    while let Some(message) = within("basic.get", channel.basic_get(queue, options)).await.expect("get") {
        let data = &message.delivery.data;
        assert_eq!(data.len(), BODY_BYTES, "a whole body");
        let id = u32::from_be_bytes(data[..4].try_into().expect("4 bytes"));
        *seen.entry(id).or_default() += 1;
    }
    for id in &outcomes.acked {
        assert_eq!(seen.get(id), Some(&1), "confirmed message {id} consumed exactly once: {outcomes:?}");
    }
    assert!(seen.values().all(|&n| n == 1), "no message twice: {seen:?}");
    seen.len()
}

fn start_broker(tmpfs: &Tmpfs, limit: &str) -> (PathBuf, Broker) {
    let filler = tmpfs.path().join("filler");
    std::fs::write(&filler, vec![7u8; FILLER_BYTES]).expect("write the filler");
    let data_dir = tmpfs.path().join("data");
    let flags = ["--storage", "disk", "--fsync", "always", "--disk-free-limit", limit];
    (filler, Broker::start_in(&data_dir, &flags))
}

async fn declare_durable(channel: &Channel, queue: &str) {
    let options = QueueDeclareOptions { durable: true, ..Default::default() };
    within("queue.declare", channel.queue_declare(queue, options, FieldTable::default()))
        .await
        .expect("declare");
}

/// After space is freed, `count` more publishes are all acked (within the deadline, which
/// covers the alarm clearing and the writer's retry). Returns how long the first took.
async fn publish_after_freeing(
    channel: &Channel,
    queue: &str,
    outcomes: &mut Outcomes,
    count: u32,
) -> Duration {
    let started = Instant::now();
    let mut first = None;
    for id in 10_000..10_000 + count {
        let confirm = within("publish", publish(channel, queue, id)).await.expect("publish");
        let confirmation = within("confirm after freeing space", confirm).await.expect("confirm");
        assert!(
            matches!(confirmation, Confirmation::Ack(_)),
            "message {id} acked once space is back: {outcomes:?}"
        );
        outcomes.acked.push(id);
        first.get_or_insert_with(|| started.elapsed());
    }
    first.unwrap_or_default()
}

/// With `--disk-free-limit 2MB` the publisher is blocked (`connection.blocked`, so its
/// confirms stop) before any write fails with ENOSPC; once the filler is deleted it is
/// unblocked, and everything confirmed is there once.
#[test]
fn publishers_are_blocked_at_the_free_disc_limit_before_a_write_fails() {
    let tmpfs = Tmpfs::mount();
    let (filler, broker) = start_broker(&tmpfs, "2000000");
    let server = Server::warren(broker);
    run(async {
        let (_connection, channel) = server.open_confirming().await;
        let queue = unique("disk-limit");
        declare_durable(&channel, &queue).await;
        let mut outcomes = Outcomes::default();
        let waiting = fill(&channel, &queue, &mut outcomes, usize::MAX).await;
        let broker = server.warren.as_ref().expect("warren");
        assert!(waiting.is_some(), "the publisher was blocked: {outcomes:?}\n{}", server.log_tail());
        assert!(broker.wait_for_log("low on disk space", DEADLINE), "{}", server.log_tail());
        assert!(
            !broker.log_lines().iter().any(|l| l.contains("os error 28")),
            "no write hit ENOSPC: {}",
            server.log_tail()
        );
        let freed_at = Instant::now();
        std::fs::remove_file(&filler).expect("free space");
        if let Some((id, confirm)) = waiting {
            let confirmation = within("the blocked confirm", confirm).await.expect("task").expect("confirm");
            note(&mut outcomes, id, confirmation);
        }
        let unblocked_after = freed_at.elapsed();
        publish_after_freeing(&channel, &queue, &mut outcomes, 8).await;
        let delivered = drain_and_check(&channel, &queue, &outcomes).await;
        let (acked, nacked) = (outcomes.acked.len(), outcomes.nacked.len());
        eprintln!(
            "disc limit: {acked} confirmed, {nacked} nacked, {delivered} delivered, blocked publish confirmed {unblocked_after:?} after freeing"
        );
    });
    drop(server);
    drop(tmpfs);
}

/// Without a limit (`--disk-free-limit 0`) writes fail with ENOSPC and are nacked; after
/// the filler is deleted the same queue confirms publishes again, without a restart.
#[test]
fn a_queue_takes_publishes_again_after_enospc_once_space_is_freed() {
    let tmpfs = Tmpfs::mount();
    let (filler, broker) = start_broker(&tmpfs, "0");
    let server = Server::warren(broker);
    run(async {
        let (_connection, channel) = server.open_confirming().await;
        let queue = unique("disk-full");
        declare_durable(&channel, &queue).await;
        let mut outcomes = Outcomes::default();
        let waiting = fill(&channel, &queue, &mut outcomes, 3).await;
        assert!(waiting.is_none(), "no alarm without a limit: {outcomes:?}");
        assert!(!outcomes.acked.is_empty() && outcomes.nacked.len() == 3, "{outcomes:?}");
        std::fs::remove_file(&filler).expect("free space");
        let recovered = publish_after_freeing(&channel, &queue, &mut outcomes, 16).await;
        let delivered = drain_and_check(&channel, &queue, &outcomes).await;
        let before = outcomes.acked.len() - 16;
        eprintln!("enospc: {before} confirmed before, 3 nacked, 16 after, {delivered} delivered, first ack {recovered:?} after freeing");
    });
    drop(server);
    drop(tmpfs);
}

/// Counts the messages in `queue` by taking them.
async fn count(channel: &Channel, queue: &str) -> usize {
    let options = BasicGetOptions { no_ack: true };
    let mut taken = 0;
    while within("basic.get", channel.basic_get(queue, options)).await.expect("get").is_some() {
        taken += 1;
    }
    taken
}

/// A transaction whose messages for two queues would take free space below the limit is
/// refused as a whole at `tx.commit` (541, connection closed): neither queue gets any of
/// them, where one queue used to keep its part. After space is freed the same commit goes
/// in whole.
#[test]
fn a_commit_that_does_not_fit_appends_nothing() {
    let tmpfs = Tmpfs::mount();
    let (filler, broker) = start_broker(&tmpfs, "2000000");
    let server = Server::warren(broker);
    // About 10 MiB free: 6 MiB for the first queue fit, 6 more for the second do not.
    // With the filler gone, 16 MiB less the 2 MB limit take all 12.
    let (messages, body) = (12, vec![5u8; 1 << 20]);
    let queues = [unique("tx-first"), unique("tx-second")];
    let commit = |connection: lapin::Connection| {
        let (queues, body) = (queues.clone(), body.clone());
        async move {
            let channel = channel(&connection).await;
            within("tx.select", channel.tx_select()).await.expect("tx.select");
            for queue in &queues {
                for _ in 0..messages / 2 {
                    let properties = BasicProperties::default().with_delivery_mode(2);
                    within(
                        "publish",
                        channel.basic_publish("", queue, BasicPublishOptions::default(), &body, properties),
                    )
                    .await
                    .expect("publish");
                }
            }
            within("tx.commit", channel.tx_commit()).await
        }
    };
    run(async {
        let (connection, channel) = server.open().await;
        for queue in &queues {
            declare_durable(&channel, queue).await;
        }
        let _ = channel.close(200, "bye").await;
        let refused = commit(connection).await.expect_err("the commit does not fit");
        assert!(
            refused.to_string().contains("541") || refused.to_string().contains("INTERNAL_ERROR"),
            "{refused}"
        );
        let (_connection, channel) = server.open().await;
        for queue in &queues {
            assert_eq!(count(&channel, queue).await, 0, "{queue} took part of a refused commit");
        }
        std::fs::remove_file(&filler).expect("free space");
        commit(server.connect().await).await.expect("the commit fits once space is freed");
        for queue in &queues {
            assert_eq!(count(&channel, queue).await, messages / 2, "{queue} has the whole commit");
        }
    });
    drop(server);
    drop(tmpfs);
}
