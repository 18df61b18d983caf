//! Crash safety under `disk` + `fsync always`: a child process (this test binary, re-run
//! with an environment variable) appends from several tasks and reports every completed
//! append on stdout; the parent SIGKILLs it at a random moment, reopens the log and checks
//! that every reported append is there byte-exact, offsets are dense with no duplicate, and
//! nothing corrupt is served. Repeated 24 times on the same directory, alternating the
//! io_uring and threaded backends.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use warren::log::{FsyncPolicy, Log, RecordInput};

use crate::harness::{run, small_options, Backend};

const CHILD_DIR: &str = "WARREN_CRASH_CHILD_DIR";
const CHILD_BACKEND: &str = "WARREN_CRASH_CHILD_BACKEND";
const CHILD_ROUND: &str = "WARREN_CRASH_CHILD_ROUND";
const ROUNDS: u32 = 24;
const APPENDERS: u32 = 8;

fn body(round: u32, task: u32, seq: u64) -> Bytes {
    let mut text = format!("r{round}-t{task}-s{seq}|").into_bytes();
    let padding = (seq as usize * 37 + task as usize * 11) % 700;
    text.extend(std::iter::repeat_n(b'a' + (seq % 26) as u8, padding));
    Bytes::from(text)
}

/// 64 KiB segments: they still roll many times per round, without leaving tens of
/// thousands of files after 24 rounds.
fn crash_options(backend: Backend, dir: &std::path::Path) -> warren::log::LogOptions {
    let mut options = small_options(backend, dir, FsyncPolicy::Always);
    options.segment_bytes_max = 64 * 1024;
    options
}

fn backend_for(round: u32) -> Backend {
    if round % 2 == 0 {
        Backend::Uring
    } else {
        Backend::Threads
    }
}

/// The child: appends until killed (or for at most 60 s if the parent vanished).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let round: u32 = std::env::var(CHILD_ROUND).expect("round").parse().expect("round number");
    let backend = match std::env::var(CHILD_BACKEND).as_deref() {
        Ok("uring") => Backend::Uring,
        _ => Backend::Threads,
    };
    run(async move {
        let log = Log::open(crash_options(backend, dir.as_ref())).await.expect("open");
        println!("\nready");
        let mut tasks = Vec::new();
        for task in 0..APPENDERS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let mut seq = 0u64;
                while started.elapsed() < Duration::from_secs(60) {
                    let count = 1 + seq % 3;
                    let records: Vec<RecordInput> =
                        (0..count).map(|k| RecordInput::body(body(round, task, seq + k))).collect();
                    let ack = log.append(records).await.expect("append");
                    let mut out = std::io::stdout().lock();
                    for k in 0..count {
                        writeln!(out, "ok {} {task} {}", ack.first_offset + k, seq + k).expect("report");
                    }
                    out.flush().expect("flush");
                    seq += count;
                }
            }));
        }
        for task in tasks {
            task.await.expect("appender");
        }
    });
}

#[test]
fn sigkill_never_loses_a_completed_append() {
    let dir = tempfile::tempdir().expect("dir");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_cafe);
    let mut confirmed: Vec<(u64, Bytes)> = Vec::new();
    for round in 0..ROUNDS {
        let backend = backend_for(round);
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["log_crash::crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .env(CHILD_BACKEND, if backend == Backend::Uring { "uring" } else { "threads" })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let kill_after = Duration::from_millis(rng.gen_range(30..400));
        let (lines_tx, lines_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the child to be ready, then let it append for a random while.
        loop {
            let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(60)) else {
                panic!("round {round}: child never became ready: {:?}", child.wait());
            };
            if line.ends_with("ready") {
                break;
            }
        }
        std::thread::sleep(kill_after);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let mut reported = 0;
        while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(5)) {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() != 4 || fields[0] != "ok" {
                continue; // libtest's own output
            }
            let offset: u64 = fields[1].parse().expect("offset");
            let task: u32 = fields[2].parse().expect("task");
            let seq: u64 = fields[3].parse().expect("seq");
            confirmed.push((offset, body(round, task, seq)));
            reported += 1;
        }
        assert!(reported > 0, "round {round}: the child completed no append before the kill");
        verify(backend, dir.path(), &confirmed, round);
    }
}

fn verify(backend: Backend, dir: &std::path::Path, confirmed: &[(u64, Bytes)], round: u32) {
    run(async {
        let log = Log::open(crash_options(backend, dir)).await.expect("reopen after crash");
        let mut stored = Vec::new();
        let mut next = 0;
        while next < log.next_offset() {
            let records = log
                .read_records(next, 1 << 20)
                .unwrap_or_else(|e| panic!("round {round}: corrupt read: {e}"));
            for record in records {
                assert_eq!(record.offset, next, "round {round}: dense offsets");
                stored.push(record.body);
                next += 1;
            }
        }
        for (offset, expected) in confirmed {
            let got = stored.get(*offset as usize);
            assert_eq!(got, Some(expected), "round {round}: confirmed offset {offset} lost or changed");
        }
        let mut unique: Vec<&Bytes> = stored.iter().collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), stored.len(), "round {round}: a record is stored twice");
        log.close().await.expect("close");
    });
}
