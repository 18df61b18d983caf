//! `warren bench` against a real Warren: counts add up (every publish is received, confirms
//! match publishes), the JSON report is well formed with the documented keys, PerfTest's
//! multi-letter flags parse, and a one-scenario suite prints its table.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::broker::Broker;

/// Longest any one bench invocation may take here.
const RUN_DEADLINE: Duration = Duration::from_secs(30);

fn uri(broker: &Broker) -> String {
    format!("amqp://guest:guest@{}/%2F", broker.addr("amqp"))
}

/// Runs `warren bench ARGS`, killing it past the deadline, and asserts it succeeded.
fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("bench")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warren bench");
    let until = Instant::now() + RUN_DEADLINE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "warren bench {args:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("json written");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn count(report: &serde_json::Value, key: &str) -> u64 {
    report["summary"]["total"][key].as_u64().unwrap_or_else(|| panic!("summary.total.{key} in {report}"))
}

#[test]
fn timed_run_receives_everything_and_writes_json_csv_svg() {
    let broker = Broker::start(&["--storage", "memory"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("run.json");
    let csv = dir.path().join("run.csv");
    let svg = dir.path().join("run.svg");
    let out = bench(&[
        "--uri",
        &uri(&broker),
        "-x",
        "1",
        "-y",
        "1",
        "-z",
        "2",
        "-s",
        "64",
        "--json",
        json.to_str().expect("utf8"),
        "--csv",
        csv.to_str().expect("utf8"),
        "--plot",
        svg.to_str().expect("utf8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sending rate avg"), "{stdout}");
    assert!(stdout.contains("min/median/75th/95th/99th/max consumer latency"), "{stdout}");
    let report = read_json(&json);
    let summary = &report["summary"];
    for key in ["sent_msgs_per_s", "received_msgs_per_s", "confirmed_msgs_per_s", "mb_per_s"] {
        assert!(summary[key].is_number(), "summary.{key} missing: {summary}");
    }
    for key in ["p50", "p75", "p95", "p99", "p999", "max"] {
        assert!(summary["latency_us"][key].is_u64(), "summary.latency_us.{key} missing: {summary}");
    }
    assert!(summary["sent_msgs_per_s"].as_f64().expect("number") > 0.0);
    let sent = count(&report, "sent");
    assert!(sent > 0);
    assert_eq!(count(&report, "received"), sent, "every published message is received");
    assert!(report["intervals"].as_array().is_some_and(|rows| !rows.is_empty()), "{report}");
    let csv = std::fs::read_to_string(&csv).expect("csv");
    assert!(csv.starts_with("kind,time_s,sent_msgs_per_s"), "{csv}");
    assert!(csv.lines().last().is_some_and(|l| l.starts_with("summary,")), "{csv}");
    let svg = std::fs::read_to_string(&svg).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{svg}");
}

#[test]
fn confirms_match_publishes() {
    let broker = Broker::start(&["--storage", "memory"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("confirm.json");
    bench(&[
        "--uri",
        &uri(&broker),
        "-x",
        "2",
        "-y",
        "1",
        "-u",
        "bench-confirm",
        "-f",
        "persistent",
        "-c",
        "100",
        "-q",
        "200",
        "-A",
        "20",
        "-z",
        "2",
        "--json",
        json.to_str().expect("utf8"),
    ]);
    let report = read_json(&json);
    let sent = count(&report, "sent");
    assert!(sent > 0);
    assert_eq!(count(&report, "confirmed"), sent, "{report}");
    assert_eq!(count(&report, "received"), sent, "{report}");
    assert!(report["summary"]["confirm_latency_us"]["count"].as_u64().unwrap_or(0) > 0, "{report}");
}

#[test]
fn bounded_counts_end_the_run() {
    let broker = Broker::start(&["--storage", "memory"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bounded.json");
    bench(&[
        "--uri",
        &uri(&broker),
        "-x",
        "2",
        "-y",
        "2",
        "-u",
        "bench-bounded",
        "-c",
        "50",
        "-C",
        "3000",
        "-D",
        "3000",
        "--json",
        json.to_str().expect("utf8"),
    ]);
    let report = read_json(&json);
    assert_eq!(count(&report, "sent"), 6000, "{report}");
    assert_eq!(count(&report, "confirmed"), 6000, "{report}");
    assert_eq!(count(&report, "received"), 6000, "{report}");
}

#[test]
fn perftest_stream_flags_parse_and_replay() {
    let broker = Broker::start(&["--storage", "memory"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("stream.json");
    bench(&[
        "-h",
        &uri(&broker),
        "-sq",
        "-u",
        "bench-stream",
        "-sco",
        "first",
        "-mlb",
        "100mb",
        "-q",
        "100",
        "-c",
        "100",
        "-C",
        "2000",
        "-D",
        "2000",
        "--json",
        json.to_str().expect("utf8"),
    ]);
    let report = read_json(&json);
    assert_eq!(count(&report, "confirmed"), 2000, "{report}");
    assert_eq!(count(&report, "received"), 2000, "{report}");
}

#[test]
fn suite_prints_a_table() {
    let broker = Broker::start(&["--storage", "memory"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let markdown = dir.path().join("suite.md");
    let target = format!("warren={}", uri(&broker));
    let pid = format!("warren={}", broker.pid());
    let out = bench(&[
        "suite",
        "--uri",
        &target,
        "--pid",
        &pid,
        "--time",
        "1",
        "--repeat",
        "1",
        "--scenario",
        "transient-16B",
        "--markdown",
        markdown.to_str().expect("utf8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| transient-16B | received (msg/s) |"), "{stdout}");
    let table = std::fs::read_to_string(&markdown).expect("markdown");
    assert!(table.contains("| scenario | figure | warren |"), "{table}");
    // The broker's resident memory was sampled during the run: a positive number of MiB.
    let rss = table
        .lines()
        .find_map(|l| l.strip_prefix("| transient-16B | broker peak RSS (MiB) | "))
        .unwrap_or_else(|| panic!("no RSS row: {table}"));
    let mib: f64 = rss.trim_end_matches(" |").replace(',', "").parse().expect("a number of MiB");
    assert!(mib > 0.5, "{table}");
    assert!(!table.contains("failed"), "{table}");
}
