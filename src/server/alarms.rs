//! Resource alarms: the broker's own (anonymous) resident memory and the free space of
//! the data directory's file system, checked twice a second, and at once when a log writer
//! refuses a write that would cross the free-disc limit ([`DiskHeadroom`]). Above the
//! memory limit or below the free-disk limit, publishing connections are blocked
//! (`connection.blocked`) until the condition clears. File-backed pages of segment maps are page cache, not the
//! broker's memory, and are not counted.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Node;
use crate::limits::{ALARM_CHECK_INTERVAL_MS, TOTAL_MEMORY_BYTES_FALLBACK};
use crate::log::headroom::DiskHeadroom;

/// What the alarms watch.
#[derive(Debug, Clone)]
pub struct AlarmLimits {
    /// Anonymous resident memory above which publishers are blocked.
    pub memory_bytes_max: u64,
    /// The free-disc budget of the log writers, whose limit blocks publishers (disc
    /// storage with a limit above 0 only).
    pub disk_headroom: Option<Arc<DiskHeadroom>>,
}

/// The process's anonymous resident memory in bytes.
pub fn anonymous_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Total RAM of the machine in bytes.
pub fn total_memory_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(TOTAL_MEMORY_BYTES_FALLBACK, |kib| kib * 1024)
}

/// Checks the limits until the broker is dropped, raising and clearing its alarm.
pub async fn watch(node: std::sync::Weak<Node>, limits: AlarmLimits) {
    let mut tick = tokio::time::interval(Duration::from_millis(ALARM_CHECK_INTERVAL_MS));
    let mut last: Option<&'static str> = None;
    loop {
        match &limits.disk_headroom {
            Some(headroom) => tokio::select! {
                _ = tick.tick() => {}
                () = headroom.lowered() => {}
            },
            None => {
                tick.tick().await;
            }
        }
        let Some(node) = node.upgrade() else { return };
        let mut memory_high = anonymous_rss_bytes() > limits.memory_bytes_max;
        if memory_high {
            // Freed message buffers may sit in the allocator's free lists; hand whole free
            // pages back to the system before deciding.
            // SAFETY: malloc_trim only releases free memory of the allocator's own heaps.
            unsafe { libc::malloc_trim(0) };
            memory_high = anonymous_rss_bytes() > limits.memory_bytes_max;
        }
        // A refresh also renews the writers' budget.
        let disk_low = limits.disk_headroom.as_ref().is_some_and(|headroom| {
            headroom.refresh();
            headroom.is_low()
        });
        let reason = match (memory_high, disk_low) {
            (true, _) => Some("low on memory"),
            (false, true) => Some("low on disk space"),
            _ => None,
        };
        if reason != last {
            match reason {
                Some(reason) => tracing::warn!(reason, "resource alarm: publishers are blocked"),
                None => tracing::info!("resource alarm cleared: publishers are unblocked"),
            }
            last = reason;
        }
        node.set_alarm(reason);
        drop(node);
    }
}

/// Starts the alarm watcher for `broker`.
pub fn start(node: &Arc<Node>, limits: AlarmLimits) {
    tokio::spawn(watch(Arc::downgrade(node), limits));
}
