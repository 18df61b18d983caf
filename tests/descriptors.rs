//! The broker under a low open-descriptor limit: segment files are opened on demand behind a
//! bounded set shared by every log, so the number of durable queues is not limited by the
//! descriptor limit, and what was published to each of them comes back after a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::BasicProperties;

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::run;

/// The descriptor limit (soft and hard) the broker runs under.
const DESCRIPTORS_MAX: u64 = 1024;

/// Durable queues declared: about twice the limit.
const QUEUES: usize = 2000;

/// How many queues between two looks at the broker's descriptors.
const SAMPLE_EVERY: usize = 100;

/// The broker's open descriptors now.
fn descriptors_open(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn queue_name(i: usize) -> String {
    format!("many-{i:05}")
}

fn start(dir: &Path, flags: &[&str]) -> Server {
    let mut all = vec!["--storage", "disk"];
    all.extend_from_slice(flags);
    Server::warren(Broker::start_limited(dir, &all, Some(DESCRIPTORS_MAX)))
}

/// 2,000 durable queues, each with a persistent message confirmed, under a limit of 1,024
/// descriptors (default backend, default `fsync interval`, default bound on open files):
/// every declare and publish succeeds, the broker's descriptors stay under the limit all
/// along, and after a clean restart (which reopens every queue's log) every message is
/// there.
#[test]
fn thousands_of_durable_queues_under_a_low_descriptor_limit() {
    many_queues(&[]);
}

/// The same on the threaded backend under `fsync always`, with a bound of 16 open files:
/// files are closed and reopened all the time, and pinned only while a sync is due.
#[test]
fn thousands_of_durable_queues_through_a_small_bound_on_threads() {
    many_queues(&["--io-backend", "threads", "--fsync", "always", "--open-files-max", "16"]);
}

fn many_queues(flags: &[&str]) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    let server = start(&dir, flags);
    let pid = server.warren.as_ref().expect("a Warren").pid();
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let mut most_open = 0;
    run(async {
        let (_connection, channel) = server.open_confirming().await;
        for i in 0..QUEUES {
            let name = queue_name(i);
            declare_with(&channel, &name, durable, FieldTable::default()).await;
            publish_props(&channel, "", &name, name.as_bytes(), persistent.clone()).await;
            if i % SAMPLE_EVERY == 0 {
                most_open = most_open.max(descriptors_open(pid));
            }
        }
    });
    most_open = most_open.max(descriptors_open(pid));
    assert!(
        most_open < DESCRIPTORS_MAX as usize,
        "the broker held {most_open} descriptors under a limit of {DESCRIPTORS_MAX}"
    );
    let status = server.warren.expect("a Warren").terminate();
    assert!(status.success(), "the broker stopped cleanly: {status}");

    let server = start(&dir, flags);
    let pid = server.warren.as_ref().expect("a Warren").pid();
    run(async {
        let (_connection, channel) = server.open().await;
        let deadline = Instant::now() + Duration::from_secs(120);
        for i in 0..QUEUES {
            let name = queue_name(i);
            let message = get(&channel, &name, true).await;
            let got = message.map(|m| String::from_utf8_lossy(&m.delivery.data).into_owned());
            assert_eq!(got.as_deref(), Some(name.as_str()), "the message of {name} after the restart");
            assert!(Instant::now() < deadline, "getting every message took too long");
        }
    });
    let open = descriptors_open(pid);
    assert!(open < DESCRIPTORS_MAX as usize, "after the restart the broker holds {open} descriptors");
}
