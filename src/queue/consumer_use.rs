//! How much of the time a queue's consumers could take its messages: RabbitMQ's
//! `consumer_capacity` (and its older name, `consumer_utilisation`), computed as its queue
//! process computes it (`rabbit_queue_consumers:capacity/1`).
//!
//! The queue is *active* while some consumer can take a message, and turns *inactive* when
//! it has a message to hand out but every consumer is held back by its prefetch, its
//! channel's or a full socket; it turns active again once one can take. The capacity is a
//! moving average of the fraction of time spent active, with a half-life of one second,
//! starting at 1.0. Only the queue's task writes the state, and only when it flips (a
//! clock read and a few stores then, nothing per message otherwise); readers compute the
//! average up to now from it. Knows no frames, sockets or exchanges.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// RabbitMQ's `?USE_AVG_HALF_LIFE`: the moving average halves its weight on the past every
/// second, in microseconds.
const USE_AVERAGE_HALF_LIFE_US: f64 = 1_000_000.0;

/// A queue's consumer use: active or not since when, and the average before that.
///
/// Invariant: the average is in `0.0..=1.0`. While inactive, `active_us` is how long the
/// active period before `since_us` lasted (RabbitMQ folds it into the average only when the
/// queue turns active again).
#[derive(Debug)]
pub struct ConsumerUse {
    /// The origin of the microsecond times below.
    epoch: Instant,
    active: AtomicBool,
    /// When the current period began, µs after `epoch`.
    since_us: AtomicU64,
    /// While inactive: how long the active period before this one lasted, µs.
    active_us: AtomicU64,
    /// The average as of `since_us`, as `f64` bits.
    average_bits: AtomicU64,
}

impl Default for ConsumerUse {
    fn default() -> ConsumerUse {
        ConsumerUse {
            epoch: Instant::now(),
            active: AtomicBool::new(true),
            since_us: AtomicU64::new(0),
            active_us: AtomicU64::new(0),
            average_bits: AtomicU64::new(1.0f64.to_bits()),
        }
    }
}

impl ConsumerUse {
    /// Records whether the consumers can take a message now. From the queue's task only;
    /// does nothing (not even a clock read) unless the state flips.
    #[inline]
    pub fn set_active(&self, active: bool) {
        if self.active.load(Ordering::Relaxed) != active {
            self.flip(active, self.now_us());
        }
    }

    #[cold]
    fn flip(&self, active: bool, now_us: u64) {
        let since = self.since_us.load(Ordering::Relaxed);
        if active {
            let was_active = self.active_us.load(Ordering::Relaxed);
            let average = use_average(was_active, now_us.saturating_sub(since), self.average());
            self.average_bits.store(average.to_bits(), Ordering::Relaxed);
        } else {
            self.active_us.store(now_us.saturating_sub(since), Ordering::Relaxed);
        }
        self.since_us.store(now_us, Ordering::Relaxed);
        self.active.store(active, Ordering::Release);
    }

    /// The capacity now: 1.0 when the consumers could always take messages, towards 0.0
    /// the longer they were all held back.
    pub fn capacity(&self) -> f64 {
        self.capacity_at(self.now_us())
    }

    fn capacity_at(&self, now_us: u64) -> f64 {
        let active = self.active.load(Ordering::Acquire);
        let elapsed = now_us.saturating_sub(self.since_us.load(Ordering::Relaxed));
        let capacity = if active {
            use_average(elapsed, 0, self.average())
        } else {
            use_average(self.active_us.load(Ordering::Relaxed), elapsed, self.average())
        };
        capacity.clamp(0.0, 1.0)
    }

    fn average(&self) -> f64 {
        f64::from_bits(self.average_bits.load(Ordering::Relaxed))
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// RabbitMQ's `use_avg/3`: `average` moved towards the fraction of `active + inactive` spent
/// active, weighted by how long that was.
fn use_average(active_us: u64, inactive_us: u64, average: f64) -> f64 {
    let total = active_us.saturating_add(inactive_us);
    if total == 0 {
        return average;
    }
    let total = total as f64;
    let weight = (total * 0.5f64.ln() / USE_AVERAGE_HALF_LIFE_US).exp();
    (active_us as f64 / total) * (1.0 - weight) + average * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND_US: u64 = 1_000_000;

    #[test]
    fn starts_at_one_and_stays_there_while_active() {
        let usage = ConsumerUse::default();
        assert_eq!(usage.capacity_at(0), 1.0);
        assert_eq!(usage.capacity_at(10 * SECOND_US), 1.0);
    }

    #[test]
    fn falls_while_inactive_and_recovers_when_active() {
        let usage = ConsumerUse::default();
        usage.flip(false, SECOND_US);
        // A second held back after a second active: two seconds, half of them active, two
        // half-lives (a quarter of the weight left on the past average of 1.0).
        let after_one = usage.capacity_at(2 * SECOND_US);
        assert!((after_one - 0.625).abs() < 1e-9, "{after_one}");
        let after_long = usage.capacity_at(30 * SECOND_US);
        assert!(after_long < 0.05, "{after_long}");
        usage.flip(true, 30 * SECOND_US);
        assert!((usage.capacity_at(30 * SECOND_US) - after_long).abs() < 1e-9);
        assert!(usage.capacity_at(60 * SECOND_US) > 0.99);
    }

    #[test]
    fn only_a_flip_changes_the_state() {
        let usage = ConsumerUse::default();
        usage.set_active(true);
        assert_eq!(usage.since_us.load(Ordering::Relaxed), 0, "no flip, no clock read");
        usage.set_active(false);
        assert!(!usage.active.load(Ordering::Relaxed));
        assert!(usage.capacity() <= 1.0);
    }
}
