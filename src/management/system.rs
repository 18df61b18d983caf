//! Process figures the nodes endpoint reports, read from `/proc` when asked (nothing is
//! sampled in the background). Zero when `/proc` cannot be read.

use std::path::Path;

use crate::broker::Node;

/// Open file descriptors of this process.
pub fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count() as u64)
}

/// The soft limit on open file descriptors.
pub fn descriptor_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of this process in bytes.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Free bytes on the file system holding `dir`.
pub fn free_disc_bytes(dir: &Path) -> Option<u64> {
    crate::log::headroom::free_bytes(dir)
}

/// Tasks alive on the runtime this is called from (Warren's counterpart of Erlang's
/// processes), 0 outside a runtime.
pub fn live_tasks() -> u64 {
    tokio::runtime::Handle::try_current().map_or(0, |runtime| runtime.metrics().num_alive_tasks() as u64)
}

/// The node's gauges that `GET /api/nodes` reports with `_details` rates, by RabbitMQ's
/// names: descriptors, resident memory, live tasks, open AMQP connections, and free disc
/// where the node stores on disc. Read when called; nothing is sampled here.
pub fn node_gauges(node: &Node) -> Vec<(&'static str, u64)> {
    let mut gauges = vec![
        ("fd_used", open_descriptors()),
        ("mem_used", resident_bytes()),
        ("proc_used", live_tasks()),
        ("sockets_used", node.connections().len() as u64),
    ];
    if let Some(free) = node.data_dir().and_then(free_disc_bytes) {
        gauges.push(("disk_free", free));
    }
    gauges
}
