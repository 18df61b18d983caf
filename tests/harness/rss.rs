//! Resident memory of a broker process, read from `/proc/PID/status`: now, and the peak
//! while it runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A process's resident memory in KiB: anonymous, and anonymous plus file-backed (pages of
/// the log's segment files it keeps mapped).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    pub anon_kib: u64,
    pub anon_and_file_kib: u64,
}

impl Rss {
    pub fn of(pid: u32) -> Option<Rss> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            let rest = status.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        };
        let anon_kib = field("RssAnon")?;
        Some(Rss { anon_kib, anon_and_file_kib: anon_kib + field("RssFile")? })
    }

    pub fn now(pid: u32) -> Rss {
        Rss::of(pid).unwrap_or_else(|| panic!("no RssAnon and RssFile in /proc/{pid}/status"))
    }
}

/// The highest resident memory of a process while it runs, sampled every 20 ms.
pub struct PeakRss {
    anon_kib: Arc<AtomicU64>,
    anon_and_file_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    pub fn watch(pid: u32) -> PeakRss {
        let start = Rss::now(pid);
        let anon_kib = Arc::new(AtomicU64::new(start.anon_kib));
        let anon_and_file_kib = Arc::new(AtomicU64::new(start.anon_and_file_kib));
        let stop = Arc::new(AtomicBool::new(false));
        let (anon, both, done) = (Arc::clone(&anon_kib), Arc::clone(&anon_and_file_kib), Arc::clone(&stop));
        let sampler = std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = Rss::of(pid) {
                    anon.fetch_max(rss.anon_kib, Ordering::Relaxed);
                    both.fetch_max(rss.anon_and_file_kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        PeakRss { anon_kib, anon_and_file_kib, stop, sampler: Some(sampler) }
    }

    pub fn peak(&self) -> Rss {
        Rss {
            anon_kib: self.anon_kib.load(Ordering::Relaxed),
            anon_and_file_kib: self.anon_and_file_kib.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
    }
}
