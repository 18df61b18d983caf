//! `warren bench suite`: the standard scenarios, run against each broker in turn (brokers
//! interleaved within each repetition of each scenario), reduced to medians and printed as one
//! table with the ratios between brokers.
//!
//! A scenario that fails on a broker (for example a queue type it does not support) is
//! reported as unsupported for that broker and the suite goes on.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use crate::limits::BENCH_RSS_SAMPLE_INTERVAL_MS;

use super::options::RunOptions;
use super::run::{execute, Report};
use super::stats::Summary;
use super::Error;

/// Flags of `warren bench suite`.
#[derive(Args, Debug, Clone)]
pub struct SuiteArgs {
    /// A broker to measure, `amqp://...` or `label=amqp://...` (repeat for each broker).
    #[arg(long = "uri", required = true)]
    pub uris: Vec<String>,
    /// Seconds per scenario run.
    #[arg(long, default_value_t = 20.0)]
    pub time: f64,
    /// Runs per scenario and broker; the table shows medians.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// Also write the table as Markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Only these scenarios (repeatable); all nine if absent.
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,
    /// `label=PID`: sample that broker's resident memory (Linux /proc) during each scenario
    /// and report its peak (repeat for each broker on this machine).
    #[arg(long = "pid")]
    pub pids: Vec<String>,
}

/// One figure a scenario reports.
struct Metric {
    label: &'static str,
    unit: &'static str,
    get: fn(&Summary) -> f64,
}

/// A standard scenario: its flags and the figures it reports.
struct Scenario {
    name: &'static str,
    about: &'static str,
    metrics: &'static [Metric],
}

const RECEIVED: Metric = Metric { label: "received", unit: "msg/s", get: |s| s.received_msgs_per_s };
const CONFIRMED: Metric = Metric { label: "confirmed", unit: "msg/s", get: |s| s.confirmed_msgs_per_s };
const MB: Metric = Metric { label: "received", unit: "MB/s", get: |s| s.received_mb_per_s };
const P50: Metric = Metric { label: "latency p50", unit: "ms", get: |s| s.latency_us.p50 as f64 / 1e3 };
const P99: Metric = Metric { label: "latency p99", unit: "ms", get: |s| s.latency_us.p99 as f64 / 1e3 };
const P999: Metric = Metric { label: "latency p99.9", unit: "ms", get: |s| s.latency_us.p999 as f64 / 1e3 };
const DELIVERED: Metric = Metric {
    label: "delivered",
    unit: "%",
    get: |s| match s.expected_deliveries {
        Some(e) if e > 0 => 100.0 * s.total.received as f64 / e as f64,
        _ => 100.0,
    },
};

/// The standard suite, in order.
const SCENARIOS: &[Scenario] = &[
    Scenario { name: "transient-16B", about: "1 producer, 1 consumer, 16 B, auto-ack", metrics: &[RECEIVED] },
    Scenario { name: "transient-1K", about: "1 producer, 1 consumer, 1 KiB, auto-ack", metrics: &[RECEIVED] },
    Scenario {
        name: "durable-confirm-1K",
        about: "durable queue, persistent, confirms (window 1000), manual ack (multiple every 100), prefetch 1000",
        metrics: &[RECEIVED, CONFIRMED],
    },
    Scenario { name: "stream-publish-1K", about: "stream queue, 1 producer, confirms (window 1000), 1 KiB", metrics: &[CONFIRMED] },
    Scenario {
        name: "stream-replay-1K",
        about: "replays the stream of stream-publish-1K from first, prefetch 1000",
        metrics: &[RECEIVED],
    },
    Scenario { name: "bulk-64K", about: "1 producer, 1 consumer, 64 KiB, auto-ack", metrics: &[MB] },
    Scenario { name: "fanout-10", about: "fanout exchange to 10 queues, 1 consumer each, 1 KiB", metrics: &[RECEIVED] },
    Scenario { name: "latency-5k", about: "1 KiB at a fixed 5,000 msg/s, auto-ack", metrics: &[P50, P99, P999] },
    Scenario {
        name: "connections-1000",
        about: "500 producer + 500 consumer connections on 500 queues, 20 msg/s per producer (10 msg/s per connection)",
        metrics: &[RECEIVED, DELIVERED],
    },
];

/// A broker under test.
struct Broker {
    label: String,
    uri: String,
    /// Its process, when it runs on this machine and was named with `--pid`.
    pid: Option<u32>,
}

/// Resident memory of process `pid` in MiB (Linux), if it can be read.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Samples the resident memory of `pid` every [`BENCH_RSS_SAMPLE_INTERVAL_MS`] until `stop`
/// fires; the peak in MiB.
async fn peak_rss(pid: u32, mut stop: tokio::sync::oneshot::Receiver<()>) -> Option<f64> {
    let mut peak = rss_mib(pid);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(BENCH_RSS_SAMPLE_INTERVAL_MS));
    loop {
        tokio::select! {
            _ = &mut stop => return peak,
            _ = tick.tick() => {
                if let Some(now) = rss_mib(pid) {
                    peak = Some(peak.map_or(now, |p| p.max(now)));
                }
            }
        }
    }
}

fn brokers(uris: &[String], pids: &[String]) -> Result<Vec<Broker>, Error> {
    let mut brokers: Vec<Broker> = uris
        .iter()
        .map(|u| match u.split_once('=').filter(|(label, _)| !label.contains("://")) {
            Some((label, uri)) => Broker { label: label.to_owned(), uri: uri.to_owned(), pid: None },
            None => {
                let host = u.split("://").nth(1).unwrap_or(u);
                let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
                Broker { label: host.split('/').next().unwrap_or(host).to_owned(), uri: u.clone(), pid: None }
            }
        })
        .collect();
    for spec in pids {
        let bad = || Error::Usage(format!("--pid {spec:?}: expected label=PID of a broker named with --uri"));
        let (label, pid) = spec.split_once('=').ok_or_else(bad)?;
        let pid: u32 = pid.parse().map_err(|_| bad())?;
        let broker = brokers.iter_mut().find(|b| b.label == label).ok_or_else(bad)?;
        broker.pid = Some(pid);
    }
    Ok(brokers)
}

/// The flags of one run of `scenario` (repetition `rep`, on broker number `b`).
fn options(scenario: &str, uri: &str, time: f64, tag: &str, stream_messages: u64) -> RunOptions {
    let mut o = RunOptions {
        uri: uri.to_owned(),
        id: format!("{scenario}-{tag}"),
        time: Some(time),
        exchange: String::new(),
        queue: Some(format!("warren-bench-{scenario}-{tag}")),
        size: 1024,
        autoack: true,
        delete_queues: true,
        auto_delete: false,
        drain_timeout: 5.0,
        ..RunOptions::default()
    };
    match scenario {
        "transient-16B" => o.size = 16,
        "durable-confirm-1K" => {
            o.flags = vec!["persistent".into()];
            o.confirm = Some(1000);
            o.autoack = false;
            o.qos = 1000;
            o.multi_ack_every = 100;
        }
        "stream-publish-1K" | "stream-replay-1K" => {
            o.stream_queue = true;
            o.queue = Some(format!("warren-bench-stream-{tag}"));
            o.max_length_bytes = Some("4gb".into());
            if scenario == "stream-publish-1K" {
                o.consumers = 0;
                o.confirm = Some(1000);
                o.delete_queues = false;
            } else {
                o.producers = 0;
                o.autoack = false;
                o.qos = 1000;
                o.multi_ack_every = 100;
                o.stream_consumer_offset = Some("first".into());
                o.cmessages = stream_messages.max(1);
            }
        }
        "bulk-64K" => o.size = 65_536,
        "fanout-10" => {
            o.exchange = "warren-bench-fanout".into();
            o.exchange_type = "fanout".into();
            o.queue = None;
            o.queue_pattern = Some(format!("warren-bench-fanout-{tag}-%d"));
            o.queue_pattern_to = 10;
            o.consumers = 10;
        }
        "latency-5k" => o.rate = Some(5000.0),
        "connections-1000" => {
            o.queue = None;
            o.queue_pattern = Some(format!("warren-bench-conn-{tag}-%d"));
            o.queue_pattern_to = 500;
            o.producers = 500;
            o.consumers = 500;
            o.rate = Some(20.0);
            o.size = 64;
        }
        _ => {}
    }
    o
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 })
}

/// Runs the suite and prints (and optionally writes) the table.
///
/// # Errors
/// Unknown scenario names, or the Markdown file cannot be written. Failed runs are reported
/// in the table.
pub(crate) async fn run(args: &SuiteArgs) -> Result<(), Error> {
    let brokers = brokers(&args.uris, &args.pids)?;
    let selected = select(&args.scenarios)?;
    let run_tag = std::process::id();
    let mut measured = Measurements::default();
    for scenario in &selected {
        for rep in 0..args.repeat.max(1) {
            for (b, broker) in brokers.iter().enumerate() {
                measured.run_turn(Turn { scenario, b, broker, rep }, args, run_tag).await;
            }
        }
    }
    let table = table(&selected, &brokers, &measured.results, &measured.rss, args);
    println!("\n{table}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &table).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

/// The scenarios named with `--scenario` (comma-separated or repeated), or all of them.
fn select(names_given: &[String]) -> Result<Vec<&'static Scenario>, Error> {
    if names_given.is_empty() {
        return Ok(SCENARIOS.iter().collect());
    }
    names_given
        .iter()
        .flat_map(|s| s.split(','))
        .map(|name| {
            SCENARIOS
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| Error::Usage(format!("unknown scenario {name:?}; known: {}", names())))
        })
        .collect()
}

/// One run of the suite: a scenario on a broker, in one repetition.
#[derive(Clone, Copy)]
struct Turn<'a> {
    scenario: &'static Scenario,
    /// The broker's position among the `--uri`s.
    b: usize,
    broker: &'a Broker,
    /// The repetition, from 0.
    rep: u32,
}

/// What the suite has measured so far.
#[derive(Default)]
struct Measurements {
    /// (scenario, broker) → summaries, or the first error.
    results: HashMap<(&'static str, usize), Result<Vec<Summary>, String>>,
    /// (broker, repetition) → messages confirmed into the stream by stream-publish-1K.
    streams: HashMap<(usize, u32), u64>,
    /// (scenario, broker) → peak resident memory of each run, MiB.
    rss: HashMap<(&'static str, usize), Vec<f64>>,
}

impl Measurements {
    /// Runs `turn`, unless its scenario already failed on that broker or needs a stream that
    /// was not published, prints its figures and records them.
    async fn run_turn(&mut self, turn: Turn<'_>, args: &SuiteArgs, run_tag: u32) {
        let Turn { scenario, b, broker, rep } = turn;
        let slot = self.results.entry((scenario.name, b)).or_insert_with(|| Ok(Vec::new()));
        if slot.is_err() {
            return;
        }
        let tag = format!("{run_tag}-{b}-{rep}");
        let stream_messages = self.streams.get(&(b, rep)).copied();
        if scenario.name == "stream-replay-1K" && stream_messages.is_none() {
            *slot = Err("needs a successful stream-publish-1K run".into());
            return;
        }
        let opts = options(scenario.name, &broker.uri, args.time, &tag, stream_messages.unwrap_or(0));
        eprint!("{} on {} (run {}/{}): ", scenario.name, broker.label, rep + 1, args.repeat.max(1));
        let (outcome, peak_rss_mib) = measure(&opts, broker.pid).await;
        match outcome {
            Ok(report) => {
                let s = report.summary;
                eprintln!("{}", figures(scenario, &s));
                if let Some(peak) = peak_rss_mib {
                    self.rss.entry((scenario.name, b)).or_default().push(peak);
                }
                if scenario.name == "stream-publish-1K" {
                    self.streams.insert((b, rep), s.total.confirmed);
                }
                if let Ok(v) = slot {
                    v.push(s);
                }
            }
            Err(e) => {
                eprintln!("failed: {e}");
                *slot = Err(unsupported(&e));
            }
        }
    }
}

/// Runs `opts` once and, when `pid` is given, samples that process's resident memory
/// meanwhile; the outcome and the peak in MiB.
async fn measure(opts: &RunOptions, pid: Option<u32>) -> (Result<Report, Error>, Option<f64>) {
    let sampler = pid.map(|pid| {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        (stop, tokio::spawn(peak_rss(pid, stopped)))
    });
    let outcome = execute(opts, false).await;
    let mut peak = None;
    if let Some((stop, sampler)) = sampler {
        let _ = stop.send(());
        peak = sampler.await.ok().flatten();
    }
    (outcome, peak)
}

/// The figures `scenario` reports, as `value unit` pairs.
fn figures(scenario: &Scenario, summary: &Summary) -> String {
    let figures: Vec<String> =
        scenario.metrics.iter().map(|m| format!("{} {}", fmt((m.get)(summary)), m.unit)).collect();
    figures.join(", ")
}

fn names() -> String {
    SCENARIOS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

fn unsupported(e: &Error) -> String {
    match e {
        Error::Closed { code, text, .. } => format!("unsupported ({code} {text})"),
        other => format!("failed ({other})"),
    }
}

fn fmt(v: f64) -> String {
    match v {
        v if v >= 100.0 => {
            let n = v.round() as u64;
            let s = n.to_string();
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
        v if v >= 10.0 => format!("{v:.1}"),
        v => format!("{v:.2}"),
    }
}

/// Ends a table row with the ratio of the first broker's median to each other one's.
fn ratio_cells(out: &mut String, medians: &[Option<f64>]) {
    let base = medians.first().copied().flatten();
    for m in medians.iter().skip(1) {
        let cell = match (base, m) {
            (Some(a), Some(b)) if *b > 0.0 => format!("{:.2}x", a / b),
            _ => "—".to_owned(),
        };
        let _ = write!(out, " {cell} |");
    }
    out.push('\n');
}

/// The Markdown table: one row per scenario figure, a column per broker, then the ratio of
/// the first broker to each other one.
fn table(
    scenarios: &[&Scenario],
    brokers: &[Broker],
    results: &HashMap<(&str, usize), Result<Vec<Summary>, String>>,
    rss: &HashMap<(&str, usize), Vec<f64>>,
    args: &SuiteArgs,
) -> String {
    let mut out = format!(
        "`warren bench suite` — medians of {} run(s) of {} s per scenario and broker, brokers interleaved.\n\n| scenario | figure |",
        args.repeat.max(1),
        args.time
    );
    for b in brokers {
        let _ = write!(out, " {} |", b.label);
    }
    let first = brokers.first().map_or("", |b| b.label.as_str());
    for b in brokers.iter().skip(1) {
        let _ = write!(out, " {first} / {} |", b.label);
    }
    out.push_str("\n|---|---|");
    for _ in 0..(2 * brokers.len()).saturating_sub(1) {
        out.push_str("---:|");
    }
    out.push('\n');
    for scenario in scenarios {
        for metric in scenario.metrics {
            let _ = write!(out, "| {} | {} ({}) |", scenario.name, metric.label, metric.unit);
            let mut medians = Vec::new();
            for b in 0..brokers.len() {
                let cell = match results.get(&(scenario.name, b)) {
                    Some(Ok(runs)) => {
                        let mut values: Vec<f64> = runs.iter().map(metric.get).collect();
                        let m = median(&mut values);
                        medians.push(m);
                        m.map_or_else(|| "—".to_owned(), fmt)
                    }
                    Some(Err(e)) => {
                        medians.push(None);
                        e.clone()
                    }
                    None => {
                        medians.push(None);
                        "—".to_owned()
                    }
                };
                let _ = write!(out, " {cell} |");
            }
            ratio_cells(&mut out, &medians);
        }
        if (0..brokers.len()).any(|b| rss.contains_key(&(scenario.name, b))) {
            let _ = write!(out, "| {} | broker peak RSS (MiB) |", scenario.name);
            let mut medians = Vec::new();
            for b in 0..brokers.len() {
                let m = rss.get(&(scenario.name, b)).and_then(|v| median(&mut v.clone()));
                medians.push(m);
                let _ = write!(out, " {} |", m.map_or_else(|| "—".to_owned(), fmt));
            }
            ratio_cells(&mut out, &medians);
        }
    }
    out.push_str("\nScenarios:\n");
    for s in scenarios {
        let _ = writeln!(out, "- {}: {}.", s.name, s.about);
    }
    let _ = write!(
        out,
        "\ndurable-confirm-1K is meant for Warren in `--storage disk --fsync always`, which the suite cannot check. \
         Latency is end to end (publish to delivery) on one machine; MB are 10^6 bytes of bodies. \
         Peak RSS (for brokers named with `--pid`) is the largest resident memory sampled every \
         {BENCH_RSS_SAMPLE_INTERVAL_MS} ms during a run.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_valid_options() {
        for s in SCENARIOS {
            let o = options(s.name, "amqp://localhost", 1.0, "t", 10);
            assert!(o.plan().is_ok(), "{}", s.name);
        }
        assert_eq!(SCENARIOS.len(), 9);
    }

    #[test]
    fn labels_and_medians() {
        let b =
            brokers(&["warren=amqp://h:1/%2F".into(), "amqp://u:p@h:2/%2F".into()], &["warren=42".into()])
                .unwrap();
        assert_eq!((b[0].label.as_str(), b[1].label.as_str()), ("warren", "h:2"));
        assert_eq!((b[0].pid, b[1].pid), (Some(42), None));
        assert!(brokers(&["a=amqp://h:1/%2F".into()], &["b=1".into()]).is_err());
        assert!(rss_mib(std::process::id()).is_some_and(|mib| mib > 0.0));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(fmt(1_234_567.0), "1,234,567");
    }
}
