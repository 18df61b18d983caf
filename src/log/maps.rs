//! The bound on segment memory maps. Each map is one entry in the process's memory-map
//! table, which the kernel limits (`vm.max_map_count`, 65,530 by default); past it every
//! `mmap` fails, and so do thread stacks and the allocator's own maps. A reader holds a
//! segment's map for as long as it keeps bytes of it, and a queue keeps the batches it read
//! ahead until they are delivered, so 100,000 queues each holding a message would hold
//! 100,000 maps.
//!
//! [`MapBudget`] counts the maps alive. Under its bound a read shares the segment's map
//! (zero copy). At the bound a read still maps the segment, copies out the one batch it
//! wants and unmaps at once ([`MapBudget::lease`] says which), so the count stays near the
//! bound and the cost falls only on reads made while it is reached.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::limits::{SEGMENT_MAPS_DEFAULT, SEGMENT_MAPS_MAP_COUNT_DIVISOR, SEGMENT_MAPS_MIN};

/// A count of live segment maps against a bound, shared by every disc log of the broker.
#[derive(Debug)]
pub struct MapBudget {
    capacity: usize,
    live: AtomicUsize,
}

/// One live map's place in its budget, given back when the map is dropped.
#[derive(Debug)]
pub struct MapLease {
    budget: Arc<MapBudget>,
    /// Whether the map may be kept and shared: false when it was made over the bound.
    pub shared: bool,
}

impl Drop for MapLease {
    fn drop(&mut self) {
        self.budget.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl MapBudget {
    /// A budget of `capacity` shared maps.
    pub fn new(capacity: usize) -> Arc<MapBudget> {
        Arc::new(MapBudget { capacity, live: AtomicUsize::new(0) })
    }

    /// The budget of logs whose backend has none of its own (tests, benches): no bound in
    /// practice.
    pub fn unbounded() -> Arc<MapBudget> {
        static UNBOUNDED: OnceLock<Arc<MapBudget>> = OnceLock::new();
        Arc::clone(UNBOUNDED.get_or_init(|| MapBudget::new(usize::MAX)))
    }

    /// Counts a map about to be made. It may be shared when the maps alive, this one
    /// included, stay within the bound.
    pub fn lease(self: &Arc<MapBudget>) -> MapLease {
        let live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        MapLease { budget: Arc::clone(self), shared: live <= self.capacity }
    }

    /// Maps alive now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// How many segment maps the logs may keep, given the kernel's limit on a process's maps
/// (`None`: unknown): a share of it ([`SEGMENT_MAPS_MAP_COUNT_DIVISOR`]), at least
/// [`SEGMENT_MAPS_MIN`]. The rest is left for thread stacks, the allocator and libraries.
pub fn segment_maps_max(map_count_max: Option<u64>) -> usize {
    let share = map_count_max.map_or(SEGMENT_MAPS_DEFAULT, |max| {
        usize::try_from(max / SEGMENT_MAPS_MAP_COUNT_DIVISOR).unwrap_or(usize::MAX)
    });
    share.max(SEGMENT_MAPS_MIN)
}

/// The kernel's limit on one process's memory maps, where Linux says it.
pub fn map_count_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::{segment_maps_max, MapBudget};
    use crate::limits::{SEGMENT_MAPS_DEFAULT, SEGMENT_MAPS_MIN};
    use crate::log::storage::files::BoundedIo;
    use crate::log::storage::threaded::ThreadedIo;
    use crate::log::storage::FileIo;
    use crate::log::{FsyncPolicy, Log, LogOptions, RecordInput, Storage};

    #[test]
    fn leases_past_the_bound_are_not_shared_and_every_lease_is_given_back() {
        let budget = MapBudget::new(2);
        let a = budget.lease();
        let b = budget.lease();
        let c = budget.lease();
        assert_eq!((a.shared, b.shared, c.shared), (true, true, false));
        assert_eq!(budget.live(), 3);
        drop(a);
        let d = budget.lease();
        assert!(!d.shared, "the over-bound lease still counts until dropped");
        drop((b, c, d));
        assert_eq!(budget.live(), 0);
        assert!(budget.lease().shared);
    }

    /// Logs of several segments read through a bound of two maps: every read beyond it is a
    /// copy, the maps alive never pass the bound while the reads are held, and every record
    /// comes back whole, before and after a restart.
    #[test]
    fn reads_past_the_bound_are_copies_and_hold_no_map() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io: Arc<dyn FileIo> = Arc::new(BoundedIo::new(Arc::new(ThreadedIo), 64, 2));
        let budget = io.maps().expect("a bounded backend has a map budget");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            for reopen in [false, true] {
                let mut logs = Vec::new();
                for log_number in 0..4 {
                    let storage = Storage::Disk {
                        dir: dir.path().join(format!("log-{log_number}")),
                        fsync: FsyncPolicy::Never,
                        io: Arc::clone(&io),
                    };
                    let mut options = LogOptions::new(storage);
                    options.segment_bytes_max = 4096;
                    let log = Log::open(options).await.expect("open");
                    if !reopen {
                        for i in 0..100u32 {
                            let body =
                                Bytes::from(format!("log {log_number} record {i} {}", "x".repeat(100)));
                            let record = RecordInput { timestamp_ms: None, header: Bytes::new(), body };
                            log.append(vec![record]).await.expect("append");
                        }
                    }
                    logs.push(log);
                }
                let mut held = Vec::new();
                for (log_number, log) in logs.iter().enumerate() {
                    let records = log.read_records(0, usize::MAX).expect("read");
                    assert_eq!(records.len(), 100);
                    for (i, record) in records.iter().enumerate() {
                        let want = format!("log {log_number} record {i} {}", "x".repeat(100));
                        assert_eq!(&record.body[..], want.as_bytes());
                    }
                    assert!(budget.live() <= budget.capacity(), "{} maps alive", budget.live());
                    held.push(records);
                }
                drop(held);
                for log in logs {
                    log.close().await.expect("close");
                }
                assert_eq!(budget.live(), 0);
            }
        });
    }

    #[test]
    fn the_bound_is_a_share_of_the_kernel_limit() {
        assert_eq!(segment_maps_max(Some(65_530)), 32_765);
        assert_eq!(segment_maps_max(Some(10)), SEGMENT_MAPS_MIN);
        assert_eq!(segment_maps_max(None), SEGMENT_MAPS_DEFAULT);
    }
}
