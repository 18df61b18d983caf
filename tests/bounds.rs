//! Bounds on what the broker keeps: state a channel, a consumer or a transaction would
//! otherwise grow without limit, and files of deleted queues that must not stay open.

use std::path::Path;
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
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
