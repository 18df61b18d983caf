//! The bytes the broker's in-memory segments hold, as the memory alarm sees them. Every
//! log in memory of the broker shares one [`MemoryBudget`]: a write adds its bytes with one
//! atomic addition (no lock, no system call on the intact path), and dropping chunks
//! (below a release floor) or whole segments (retention, a deleted queue) takes theirs
//! back off.
//!
//! The alarm sets the mark above which it wants to hear about it: the share of the memory
//! limit left after the rest of the process's anonymous memory, recomputed at each of its
//! checks. The write that carries the held bytes across the mark wakes it at once, so a
//! flood of publishes is blocked within one write of the limit rather than up to a check
//! interval later. Only the crossing wakes it: writes above the mark cost nothing more.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// The count of bytes held by the broker's in-memory segments, and the alarm's mark.
#[derive(Debug)]
pub struct MemoryBudget {
    held_bytes: AtomicU64,
    /// Held bytes above which the alarm is woken (`u64::MAX` until it sets one).
    wake_above_bytes: AtomicU64,
    crossed: Notify,
}

impl Default for MemoryBudget {
    fn default() -> MemoryBudget {
        MemoryBudget::new()
    }
}

impl MemoryBudget {
    /// Nothing held, no mark.
    pub fn new() -> MemoryBudget {
        MemoryBudget {
            held_bytes: AtomicU64::new(0),
            wake_above_bytes: AtomicU64::new(u64::MAX),
            crossed: Notify::new(),
        }
    }

    /// Counts `bytes` newly held; wakes the alarm if they take the total across its mark.
    pub fn add(&self, bytes: u64) {
        let before = self.held_bytes.fetch_add(bytes, Ordering::AcqRel);
        let mark = self.wake_above_bytes.load(Ordering::Acquire);
        if before <= mark && before.saturating_add(bytes) > mark {
            self.crossed.notify_one();
        }
    }

    /// Counts `bytes` no longer held.
    ///
    /// # Panics
    /// If more bytes are let go than were held: each segment takes back only its own.
    pub fn remove(&self, bytes: u64) {
        let before = self.held_bytes.fetch_sub(bytes, Ordering::AcqRel);
        assert!(before >= bytes, "memory budget: {bytes} B let go of {before} B held");
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes.load(Ordering::Acquire)
    }

    /// Sets the mark: the next write that takes the held bytes from at or below `bytes` to
    /// above it wakes [`MemoryBudget::crossed`].
    pub fn wake_above(&self, bytes: u64) {
        self.wake_above_bytes.store(bytes, Ordering::Release);
    }

    /// Resolves when a write crosses the mark (the alarm waits on it besides its timer). A
    /// crossing while nobody waits is kept for the next wait.
    pub async fn crossed(&self) {
        self.crossed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn woken(budget: &MemoryBudget) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(1), budget.crossed()).await.is_ok()
        })
    }

    #[test]
    fn only_the_write_crossing_the_mark_wakes_the_alarm() {
        let budget = MemoryBudget::new();
        budget.add(1000);
        assert!(!woken(&budget), "no mark set");
        budget.wake_above(1500);
        budget.add(500);
        assert!(!woken(&budget), "at the mark, not above");
        budget.add(1);
        assert!(woken(&budget), "the crossing write");
        budget.add(1000);
        assert!(!woken(&budget), "already above");
        budget.remove(2000);
        assert_eq!(budget.held_bytes(), 501);
        budget.add(2000);
        assert!(woken(&budget), "crossed again after falling below");
    }
}
