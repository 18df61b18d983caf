//! Resource alarms: the broker's own (anonymous) resident memory and the free space of
//! the data directory's file system, checked twice a second, at once when a log writer
//! refuses a write that would cross the free-disc limit ([`DiskHeadroom`]), and at once
//! when the bytes in-memory logs hold cross their share of the memory limit
//! ([`MemoryBudget`]). Above the memory limit or below the free-disk limit, publishing
//! connections are blocked (`connection.blocked`) until the condition clears. File-backed
//! pages of segment maps are page cache, not the broker's memory, and are not counted.
//!
//! The share of the memory limit in-memory logs may fill is the limit less the rest of the
//! process's anonymous memory (connections, buffers, the allocator's overhead): resident
//! memory less the bytes they hold, as of the last check. Between checks a flood into
//! in-memory queues thus raises the alarm as soon as it reaches the limit, instead of
//! growing past it for up to a check interval.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Node;
use crate::limits::{
    ALARM_CHECK_INTERVAL_MS, MEMORY_ALARM_WAKE_BYTES_MIN, MEMORY_TRIM_RELEASED_BYTES_MIN,
    TOTAL_MEMORY_BYTES_FALLBACK,
};
use crate::log::headroom::DiskHeadroom;
use crate::log::memory_budget::MemoryBudget;

/// What the alarms watch.
#[derive(Debug, Clone)]
pub struct AlarmLimits {
    /// Anonymous resident memory above which publishers are blocked.
    pub memory_bytes_max: u64,
    /// The free-disc budget of the log writers, whose limit blocks publishers (disc
    /// storage with a limit above 0 only).
    pub disk_headroom: Option<Arc<DiskHeadroom>>,
    /// The bytes in-memory logs hold, whose crossing of their share of the memory limit
    /// wakes the alarm at once.
    pub memory_budget: Option<Arc<MemoryBudget>>,
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
    let mut held_peak_bytes = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = disk_lowered(limits.disk_headroom.as_deref()) => {}
            () = memory_crossed(limits.memory_budget.as_deref()) => {}
        }
        let Some(node) = node.upgrade() else { return };
        if let Some(budget) = &limits.memory_budget {
            trim_after_release(budget, &mut held_peak_bytes);
        }
        let memory_high = memory_high(&limits);
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

/// Whether anonymous resident memory is above the limit; sets the in-memory logs' share of
/// the limit for the next wake-up.
fn memory_high(limits: &AlarmLimits) -> bool {
    let mut resident = anonymous_rss_bytes();
    if resident > limits.memory_bytes_max {
        // Freed message buffers may sit in the allocator's free lists; hand whole free
        // pages back to the system before deciding.
        // SAFETY: malloc_trim only releases free memory of the allocator's own heaps.
        unsafe { libc::malloc_trim(0) };
        resident = anonymous_rss_bytes();
    }
    if let Some(budget) = &limits.memory_budget {
        let held = budget.held_bytes();
        let rest = resident.saturating_sub(held);
        let share = limits.memory_bytes_max.saturating_sub(rest);
        budget.wake_above(share.max(held.saturating_add(MEMORY_ALARM_WAKE_BYTES_MIN)));
    }
    resident > limits.memory_bytes_max
}

/// Hands the allocator's free pages back to the system once in-memory logs have let go of
/// [`MEMORY_TRIM_RELEASED_BYTES_MIN`], or of half of what they held, since the last time
/// (`held_peak_bytes`: the most they held since then; at least
/// [`MEMORY_ALARM_WAKE_BYTES_MIN`] either way). Their chunks are freed into the free lists
/// of the allocator's per-thread arenas, which keep them resident: without this a drained
/// backlog would stay in the broker's resident memory until the memory limit was reached.
fn trim_after_release(budget: &MemoryBudget, held_peak_bytes: &mut u64) {
    let held = budget.held_bytes();
    *held_peak_bytes = (*held_peak_bytes).max(held);
    let released = *held_peak_bytes - held;
    let worth_it = MEMORY_TRIM_RELEASED_BYTES_MIN.min(*held_peak_bytes / 2).max(MEMORY_ALARM_WAKE_BYTES_MIN);
    if released >= worth_it {
        // SAFETY: malloc_trim only releases free memory of the allocator's own heaps.
        unsafe { libc::malloc_trim(0) };
        *held_peak_bytes = held;
    }
}

/// Resolves when a disc writer refuses a write; never without a free-disc limit.
async fn disk_lowered(headroom: Option<&DiskHeadroom>) {
    match headroom {
        Some(headroom) => headroom.lowered().await,
        None => std::future::pending().await,
    }
}

/// Resolves when in-memory logs cross their share of the memory limit; never without a
/// budget.
async fn memory_crossed(budget: Option<&MemoryBudget>) {
    match budget {
        Some(budget) => budget.crossed().await,
        None => std::future::pending().await,
    }
}

/// Starts the alarm watcher for `broker`.
pub fn start(node: &Arc<Node>, limits: AlarmLimits) {
    tokio::spawn(watch(Arc::downgrade(node), limits));
}
