//! Resource alarms: the broker's own (anonymous) resident memory and the free space of
//! the data directory's file system, checked twice a second. Above the memory limit or
//! below the free-disk limit, publishing connections are blocked (`connection.blocked`)
//! until the condition clears. File-backed pages of segment maps are page cache, not the
//! broker's memory, and are not counted.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::limits::{ALARM_CHECK_INTERVAL_MS, TOTAL_MEMORY_BYTES_FALLBACK};

/// What the alarms watch.
#[derive(Debug, Clone)]
pub struct AlarmLimits {
    /// Anonymous resident memory above which publishers are blocked.
    pub memory_bytes_max: u64,
    /// Free bytes below which publishers are blocked (disc storage only).
    pub disk_free_bytes_min: Option<(PathBuf, u64)>,
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

/// Free bytes available to unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `stats` points to writable memory
    // of the right type; statvfs fills it completely when it returns 0.
    let outcome = unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) };
    if outcome != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised `stats`.
    let stats = unsafe { stats.assume_init() };
    // The field types differ between targets; on this one they are already u64.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(stats.f_bavail) * u64::from(stats.f_frsize);
    Some(free)
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
pub async fn watch(broker: std::sync::Weak<Broker>, limits: AlarmLimits) {
    let mut tick = tokio::time::interval(Duration::from_millis(ALARM_CHECK_INTERVAL_MS));
    let mut last: Option<&'static str> = None;
    loop {
        tick.tick().await;
        let Some(broker) = broker.upgrade() else { return };
        let mut memory_high = anonymous_rss_bytes() > limits.memory_bytes_max;
        if memory_high {
            // Freed message buffers may sit in the allocator's free lists; hand whole free
            // pages back to the system before deciding.
            // SAFETY: malloc_trim only releases free memory of the allocator's own heaps.
            unsafe { libc::malloc_trim(0) };
            memory_high = anonymous_rss_bytes() > limits.memory_bytes_max;
        }
        let disk_low = limits
            .disk_free_bytes_min
            .as_ref()
            .is_some_and(|(path, min)| free_bytes(path).is_some_and(|free| free < *min));
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
        broker.set_alarm(reason);
        drop(broker);
    }
}

/// Starts the alarm watcher for `broker`.
pub fn start(broker: &Arc<Broker>, limits: AlarmLimits) {
    tokio::spawn(watch(Arc::downgrade(broker), limits));
}
