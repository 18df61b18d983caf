//! The free-disc limit as the log writers see it. Every disc writer of the broker shares
//! one [`DiskHeadroom`]: a budget of bytes they may write before free space is looked up
//! again. A writer takes a batch's bytes from the budget with one atomic subtraction (no
//! system call on the intact path); only when the budget runs out does it look at the file
//! system (`statvfs`), and if the batch would take free space below the limit it refuses
//! the batch (its appenders get an error, nothing is written) and raises the low flag,
//! which the resource alarm turns into `connection.blocked` at once. The flag holds until
//! the refused batch would fit.
//!
//! A lookup grants half the spare room above the limit: writes already in flight when the
//! lookup ran are not in its figure, and halving keeps them from crossing the limit. Near
//! the limit lookups come closer together (each grants half of what is left), so filling a
//! disc costs a few dozen of them.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tokio::sync::Notify;

/// The shared free-disc budget of the writers whose files live under one directory.
#[derive(Debug)]
pub struct DiskHeadroom {
    path: PathBuf,
    free_bytes_min: u64,
    /// Bytes writers may still write before free space is looked up again.
    budget_bytes: AtomicI64,
    /// Free space under which the alarm holds: the limit, raised by a refused write to the
    /// limit plus that write's bytes.
    low_below_bytes: AtomicU64,
    low: AtomicBool,
    lowered: Notify,
}

/// A write refused because it would take free space below the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BelowLimit {
    /// Free bytes when last looked up.
    pub free_bytes: u64,
    /// The limit.
    pub free_bytes_min: u64,
}

impl DiskHeadroom {
    /// A budget for files under `path`, keeping at least `free_bytes_min` free. The budget
    /// starts empty: the first write looks free space up.
    pub fn new(path: PathBuf, free_bytes_min: u64) -> DiskHeadroom {
        DiskHeadroom {
            path,
            free_bytes_min,
            budget_bytes: AtomicI64::new(0),
            low_below_bytes: AtomicU64::new(free_bytes_min),
            low: AtomicBool::new(false),
            lowered: Notify::new(),
        }
    }

    /// Takes `bytes` from the budget before they are written.
    ///
    /// # Errors
    /// [`BelowLimit`] when writing them would leave less than the limit free; the low flag
    /// is then raised and the alarm woken.
    pub fn reserve(&self, bytes: u64) -> Result<(), BelowLimit> {
        let signed = i64::try_from(bytes).unwrap_or(i64::MAX);
        if self.budget_bytes.fetch_sub(signed, Ordering::AcqRel) >= signed {
            return Ok(());
        }
        // Out of budget: look again. The budget may go below zero here, so that near the
        // limit every write looks free space up.
        let free_bytes = self.refresh();
        if free_bytes.saturating_sub(self.free_bytes_min) >= bytes {
            self.budget_bytes.fetch_sub(signed, Ordering::AcqRel);
            return Ok(());
        }
        // The alarm holds until this write would fit, not merely until the limit is met:
        // else it would clear, and the next write be refused, twice a second.
        self.low_below_bytes.fetch_max(self.free_bytes_min.saturating_add(bytes), Ordering::AcqRel);
        self.low.store(true, Ordering::Release);
        self.lowered.notify_one();
        Err(BelowLimit { free_bytes, free_bytes_min: self.free_bytes_min })
    }

    /// Whether `bytes` could be written now without taking free space below the limit,
    /// taking nothing from the budget: for a caller about to make several appends that
    /// must all go in or none (a transaction's commit). Looks free space up unless the
    /// budget covers them.
    pub fn has_room(&self, bytes: u64) -> bool {
        let signed = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.budget_bytes.load(Ordering::Acquire) >= signed
            || free_bytes(&self.path).unwrap_or(0).saturating_sub(self.free_bytes_min) >= bytes
    }

    /// Looks free space up, grants half the room above the limit, and sets the low flag
    /// from it. Returns the free bytes (0 when the lookup fails, which refuses writes).
    pub fn refresh(&self) -> u64 {
        let free_bytes = free_bytes(&self.path).unwrap_or(0);
        let spare = free_bytes.saturating_sub(self.free_bytes_min) / 2;
        self.budget_bytes.store(i64::try_from(spare).unwrap_or(i64::MAX), Ordering::Release);
        let low_below = self.low_below_bytes.load(Ordering::Acquire);
        let low = free_bytes < low_below;
        if !low {
            self.low_below_bytes.store(self.free_bytes_min, Ordering::Release);
        }
        self.low.store(low, Ordering::Release);
        free_bytes
    }

    /// Whether free space was below the limit when last looked up or a write was refused.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Acquire)
    }

    /// Resolves when a writer refuses a write (the alarm waits on it besides its timer).
    pub async fn lowered(&self) {
        self.lowered.notified().await;
    }

    /// The limit in bytes.
    pub fn free_bytes_min(&self) -> u64 {
        self.free_bytes_min
    }
}

/// Free bytes available to unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_past_the_limit_is_refused_and_raises_the_flag() {
        let dir = tempfile::tempdir().expect("dir");
        let free = free_bytes(dir.path()).expect("statvfs");
        let headroom = DiskHeadroom::new(dir.path().to_path_buf(), free.saturating_sub(1 << 20));
        assert!(headroom.reserve(4096).is_ok());
        assert!(!headroom.is_low());
        let refused = headroom.reserve(1 << 30).expect_err("past the limit");
        assert_eq!(refused.free_bytes_min, free.saturating_sub(1 << 20));
        assert!(headroom.is_low());
    }

    #[test]
    fn a_limit_above_the_free_space_refuses_everything() {
        let dir = tempfile::tempdir().expect("dir");
        let headroom = DiskHeadroom::new(dir.path().to_path_buf(), u64::MAX);
        assert!(headroom.reserve(1).is_err());
        assert!(headroom.is_low());
    }
}
