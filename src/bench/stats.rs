//! Measurement: per-actor counters and latency histograms ([`Shard`]), the clock that stamps
//! bodies, interval rows, the summary, and their text, JSON and CSV forms.
//!
//! Actors bump relaxed atomics and record latencies into a mutex-guarded hdrhistogram once per
//! read batch; the reporter drains them every interval. Actors share a bounded number of
//! shards ([`BENCH_SHARDS_MAX`]), which keeps memory flat with thousands of connections.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::limits::{BENCH_LATENCY_US_MAX, BENCH_SHARDS_MAX};

/// Wall-clock nanoseconds read through the monotonic clock, so that stamps taken in one process
/// are consistent, and stamps from an earlier run (a replayed stream) still mean something.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
    base_wall_ns: u64,
}

impl Clock {
    /// A clock anchored at the current wall-clock time.
    pub fn new() -> Self {
        let base_wall_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self { base: Instant::now(), base_wall_ns }
    }

    /// Nanoseconds since the Unix epoch.
    pub fn now_ns(&self) -> u64 {
        self.base_wall_ns + self.base.elapsed().as_nanos() as u64
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, BENCH_LATENCY_US_MAX, 3).expect("constant bounds are valid")
}

/// Counters and histograms shared by a few actors.
pub(crate) struct Shard {
    /// Messages published.
    pub sent: AtomicU64,
    /// Publishes the broker confirmed.
    pub confirmed: AtomicU64,
    /// Publishes the broker nacked.
    pub nacked: AtomicU64,
    /// Mandatory publishes the broker returned as unroutable.
    pub returned: AtomicU64,
    /// Deliveries received.
    pub received: AtomicU64,
    consumer_latency: Mutex<Histogram<u64>>,
    confirm_latency: Mutex<Histogram<u64>>,
}

impl Shard {
    fn new() -> Self {
        Self {
            sent: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            received: AtomicU64::new(0),
            consumer_latency: Mutex::new(histogram()),
            confirm_latency: Mutex::new(histogram()),
        }
    }

    /// Records consumer latencies (ns) of one read batch.
    pub fn record_consumer_ns(&self, latencies_ns: &[u64]) {
        if !latencies_ns.is_empty() {
            let mut h = lock(&self.consumer_latency);
            for ns in latencies_ns {
                h.saturating_record((ns / 1_000).max(1));
            }
        }
    }

    /// Records `count` confirms that each took `ns`.
    pub fn record_confirm_ns(&self, ns: u64, count: u64) {
        let _ = lock(&self.confirm_latency).record_n((ns / 1_000).clamp(1, BENCH_LATENCY_US_MAX), count);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Message counts, cumulative.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Messages published.
    pub sent: u64,
    /// Publishes the broker confirmed.
    pub confirmed: u64,
    /// Publishes the broker nacked.
    pub nacked: u64,
    /// Mandatory publishes the broker returned as unroutable.
    pub returned: u64,
    /// Deliveries received.
    pub received: u64,
}

/// All shards of a run and its clock.
pub(crate) struct Stats {
    shards: Vec<Arc<Shard>>,
    /// The clock producers stamp bodies with and consumers read them against.
    pub clock: Clock,
}

impl Stats {
    /// Shards for `actors` actors: one each, at most [`BENCH_SHARDS_MAX`].
    pub fn new(actors: usize) -> Arc<Self> {
        let n = actors.clamp(1, BENCH_SHARDS_MAX);
        Arc::new(Self { shards: (0..n).map(|_| Arc::new(Shard::new())).collect(), clock: Clock::new() })
    }

    /// The shard actor `i` reports into.
    pub fn shard(&self, i: usize) -> Arc<Shard> {
        Arc::clone(self.shards.get(i % self.shards.len()).expect("at least one shard"))
    }

    /// The counts summed over every shard.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.shards {
            t.sent += s.sent.load(Relaxed);
            t.confirmed += s.confirmed.load(Relaxed);
            t.nacked += s.nacked.load(Relaxed);
            t.returned += s.returned.load(Relaxed);
            t.received += s.received.load(Relaxed);
        }
        t
    }

    /// Moves every shard's latencies into the two given histograms and resets the shards.
    fn drain_latencies(&self, consumer: &mut Histogram<u64>, confirm: &mut Histogram<u64>) {
        for s in &self.shards {
            let mut h = lock(&s.consumer_latency);
            let _ = consumer.add(&*h);
            h.reset();
            drop(h);
            let mut h = lock(&s.confirm_latency);
            let _ = confirm.add(&*h);
            h.reset();
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 75th percentile.
    pub p75: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let q = |p: f64| h.value_at_quantile(p);
        Self {
            count: h.len(),
            min: h.min(),
            p50: q(0.5),
            p75: q(0.75),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max(),
        }
    }
}

/// One reporting interval.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalRow {
    /// Seconds since the producers started, at the end of the interval.
    pub time_s: f64,
    /// Messages published per second.
    pub sent_msgs_per_s: f64,
    /// Publishes confirmed per second.
    pub confirmed_msgs_per_s: f64,
    /// Messages returned (mandatory, unroutable) per second.
    pub returned_msgs_per_s: f64,
    /// Publishes nacked per second.
    pub nacked_msgs_per_s: f64,
    /// Deliveries received per second.
    pub received_msgs_per_s: f64,
    /// Consumer (end-to-end) latency in the interval.
    pub latency_us: LatencySummary,
    /// Confirm latency in the interval.
    pub confirm_latency_us: LatencySummary,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The `--id`.
    pub id: String,
    /// Length of the measured window in seconds (the run time, or until every actor finished).
    pub duration_s: f64,
    /// Body size in bytes.
    pub body_bytes: usize,
    /// Average publishing rate over the window.
    pub sent_msgs_per_s: f64,
    /// Average receiving rate over the window (deliveries, so fanout counts each queue).
    pub received_msgs_per_s: f64,
    /// Average confirm rate over the window.
    pub confirmed_msgs_per_s: f64,
    /// Body megabytes (10^6) per second received, or sent when nothing consumes.
    pub mb_per_s: f64,
    /// Body megabytes per second sent.
    pub sent_mb_per_s: f64,
    /// Body megabytes per second received.
    pub received_mb_per_s: f64,
    /// Consumer latency over the whole run.
    pub latency_us: LatencySummary,
    /// Confirm latency over the whole run.
    pub confirm_latency_us: LatencySummary,
    /// Counts in the window.
    pub window: Totals,
    /// Counts including what was received while draining after the window.
    pub total: Totals,
    /// Deliveries expected from the publishes, when the topology makes that known.
    pub expected_deliveries: Option<u64>,
}

/// Turns shard counters into interval rows and the summary.
pub(crate) struct Collector {
    stats: Arc<Stats>,
    prev: Totals,
    prev_s: f64,
    consumer_total: Histogram<u64>,
    confirm_total: Histogram<u64>,
    /// The rows sampled so far.
    pub rows: Vec<IntervalRow>,
}

impl Collector {
    /// A collector of `stats`, starting from zero.
    pub fn new(stats: Arc<Stats>) -> Self {
        Self {
            stats,
            prev: Totals::default(),
            prev_s: 0.0,
            consumer_total: histogram(),
            confirm_total: histogram(),
            rows: Vec::new(),
        }
    }

    /// Closes the interval ending at `time_s` and returns its row.
    pub fn sample(&mut self, time_s: f64) -> &IntervalRow {
        let now = self.stats.totals();
        let mut consumer = histogram();
        let mut confirm = histogram();
        self.stats.drain_latencies(&mut consumer, &mut confirm);
        let _ = self.consumer_total.add(&consumer);
        let _ = self.confirm_total.add(&confirm);
        let dt = (time_s - self.prev_s).max(1e-9);
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
        let row = IntervalRow {
            time_s,
            sent_msgs_per_s: rate(now.sent, self.prev.sent),
            confirmed_msgs_per_s: rate(now.confirmed, self.prev.confirmed),
            returned_msgs_per_s: rate(now.returned, self.prev.returned),
            nacked_msgs_per_s: rate(now.nacked, self.prev.nacked),
            received_msgs_per_s: rate(now.received, self.prev.received),
            latency_us: LatencySummary::of(&consumer),
            confirm_latency_us: LatencySummary::of(&confirm),
        };
        self.prev = now;
        self.prev_s = time_s;
        self.rows.push(row);
        self.rows.last().expect("just pushed")
    }

    /// The summary: rates over `window` (counts at the window's end), latencies and totals
    /// over everything recorded.
    pub fn summary(
        &mut self,
        id: &str,
        body_bytes: usize,
        duration_s: f64,
        window: Totals,
        consuming: bool,
    ) -> Summary {
        let mut consumer = histogram();
        let mut confirm = histogram();
        self.stats.drain_latencies(&mut consumer, &mut confirm);
        let _ = self.consumer_total.add(&consumer);
        let _ = self.confirm_total.add(&confirm);
        let d = duration_s.max(1e-9);
        let mb = |msgs_per_s: f64| msgs_per_s * body_bytes as f64 / 1e6;
        let sent = window.sent as f64 / d;
        let received = window.received as f64 / d;
        Summary {
            id: id.to_owned(),
            duration_s,
            body_bytes,
            sent_msgs_per_s: sent,
            received_msgs_per_s: received,
            confirmed_msgs_per_s: window.confirmed as f64 / d,
            mb_per_s: if consuming { mb(received) } else { mb(sent) },
            sent_mb_per_s: mb(sent),
            received_mb_per_s: mb(received),
            latency_us: LatencySummary::of(&self.consumer_total),
            confirm_latency_us: LatencySummary::of(&self.confirm_total),
            window,
            total: self.stats.totals(),
            expected_deliveries: None,
        }
    }
}

/// One interval in PerfTest's shape.
pub(crate) fn interval_line(id: &str, row: &IntervalRow, confirms: bool) -> String {
    let l = &row.latency_us;
    let mut s = format!("id: {id}, time: {:.3} s, sent: {:.0} msg/s", row.time_s, row.sent_msgs_per_s);
    if confirms {
        let _ = write!(
            s,
            ", confirmed: {:.0} msg/s, nacked: {:.0} msg/s",
            row.confirmed_msgs_per_s, row.nacked_msgs_per_s
        );
    }
    let _ = write!(
        s,
        ", returned: {:.0} msg/s, received: {:.0} msg/s, min/median/75th/95th/99th/max consumer latency: {}/{}/{}/{}/{}/{} µs",
        row.returned_msgs_per_s, row.received_msgs_per_s, l.min, l.p50, l.p75, l.p95, l.p99, l.max
    );
    if confirms {
        let c = &row.confirm_latency_us;
        let _ = write!(s, ", confirm latency median/99th: {}/{} µs", c.p50, c.p99);
    }
    s
}

/// The end-of-run lines.
pub(crate) fn summary_text(s: &Summary, confirms: bool) -> String {
    let id = &s.id;
    let l = &s.latency_us;
    let mut out = format!(
        "id: {id}, sending rate avg: {:.0} msg/s\nid: {id}, receiving rate avg: {:.0} msg/s\n",
        s.sent_msgs_per_s, s.received_msgs_per_s
    );
    if confirms {
        let _ = writeln!(out, "id: {id}, confirmed rate avg: {:.0} msg/s", s.confirmed_msgs_per_s);
    }
    let _ = writeln!(
        out,
        "id: {id}, throughput: {:.2} MB/s (sent {:.2} MB/s, received {:.2} MB/s, {} B bodies)",
        s.mb_per_s, s.sent_mb_per_s, s.received_mb_per_s, s.body_bytes
    );
    let _ = writeln!(
        out,
        "id: {id}, consumer latency p50/p75/p95/p99/p99.9/max: {}/{}/{}/{}/{}/{} µs ({} samples)",
        l.p50, l.p75, l.p95, l.p99, l.p999, l.max, l.count
    );
    if confirms {
        let c = &s.confirm_latency_us;
        let _ = writeln!(
            out,
            "id: {id}, confirm latency p50/p75/p95/p99/p99.9/max: {}/{}/{}/{}/{}/{} µs",
            c.p50, c.p75, c.p95, c.p99, c.p999, c.max
        );
    }
    let t = &s.total;
    let _ = write!(
        out,
        "id: {id}, totals over {:.3} s (after draining): sent {}, confirmed {}, nacked {}, returned {}, received {}",
        s.duration_s, t.sent, t.confirmed, t.nacked, t.returned, t.received
    );
    if let Some(e) = s.expected_deliveries {
        let _ = write!(out, " of {e} expected");
    }
    out.push('\n');
    out
}

/// The report as JSON: `{"summary": {...}, "intervals": [...]}`.
pub(crate) fn to_json(summary: &Summary, rows: &[IntervalRow]) -> String {
    let value = serde_json::json!({ "summary": summary, "intervals": rows });
    serde_json::to_string_pretty(&value).expect("plain numbers and strings serialize")
}

/// The report as CSV: one row per interval, then a `summary` row with the same columns.
pub(crate) fn to_csv(summary: &Summary, rows: &[IntervalRow]) -> String {
    let mut out = String::from(
        "kind,time_s,sent_msgs_per_s,confirmed_msgs_per_s,returned_msgs_per_s,nacked_msgs_per_s,received_msgs_per_s,\
         latency_us_min,latency_us_p50,latency_us_p75,latency_us_p95,latency_us_p99,latency_us_p999,latency_us_max,\
         confirm_latency_us_p50,confirm_latency_us_p99,mb_per_s\n",
    );
    let line = |out: &mut String,
                kind: &str,
                t: f64,
                r: [f64; 5],
                l: &LatencySummary,
                c: &LatencySummary,
                mb: f64| {
        let _ = writeln!(
            out,
            "{kind},{t:.3},{:.1},{:.1},{:.1},{:.1},{:.1},{},{},{},{},{},{},{},{},{},{mb:.3}",
            r[0], r[1], r[2], r[3], r[4], l.min, l.p50, l.p75, l.p95, l.p99, l.p999, l.max, c.p50, c.p99
        );
    };
    for row in rows {
        let rates = [
            row.sent_msgs_per_s,
            row.confirmed_msgs_per_s,
            row.returned_msgs_per_s,
            row.nacked_msgs_per_s,
            row.received_msgs_per_s,
        ];
        let mb = row.received_msgs_per_s * summary.body_bytes as f64 / 1e6;
        line(&mut out, "interval", row.time_s, rates, &row.latency_us, &row.confirm_latency_us, mb);
    }
    let d = summary.duration_s.max(1e-9);
    let rates = [
        summary.sent_msgs_per_s,
        summary.confirmed_msgs_per_s,
        summary.window.returned as f64 / d,
        summary.window.nacked as f64 / d,
        summary.received_msgs_per_s,
    ];
    line(
        &mut out,
        "summary",
        summary.duration_s,
        rates,
        &summary.latency_us,
        &summary.confirm_latency_us,
        summary.mb_per_s,
    );
    out
}
