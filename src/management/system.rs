//! Process figures the nodes endpoint reports, read from `/proc` when asked (nothing is
//! sampled in the background). Zero when `/proc` cannot be read.

use std::path::Path;

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
