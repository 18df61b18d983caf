//! Random sequences of appends, rolls, reopens, reads at random offsets and seeks by
//! timestamp, run against a real log and against a plain in-memory model; both must agree
//! at every step.

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use warren::log::{FsyncPolicy, Log, RecordInput};

use crate::harness::{run, small_options, Backend};

#[derive(Debug, Clone)]
enum Op {
    /// Append these records (timestamp step, body length) in one call.
    Append(Vec<(i64, usize)>),
    /// Append from several tasks at once; each appends one record.
    AppendConcurrently(u8),
    Roll,
    Reopen,
    /// Read from the offset at this fraction of the log, at most this many bytes.
    Read(f64, usize),
    /// Seek to the timestamp at this fraction of the time range.
    Seek(f64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0i64..3, 0usize..600), 1..12).prop_map(Op::Append),
        1 => (1u8..8).prop_map(Op::AppendConcurrently),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
        3 => (0.0f64..1.0, 1usize..3000).prop_map(|(f, m)| Op::Read(f, m)),
        2 => (0.0f64..1.1).prop_map(Op::Seek),
    ]
}

#[derive(Default)]
struct Model {
    /// (timestamp, body) per offset.
    records: Vec<(i64, Bytes)>,
    clock_ms: i64,
}

impl Model {
    fn push(&mut self, timestamp_ms: i64, body: Bytes) {
        let last = self.records.last().map_or(i64::MIN, |r| r.0);
        self.records.push((timestamp_ms.max(last), body));
    }

    fn body(&self, offset: usize, length: usize) -> Bytes {
        let mut bytes = format!("{offset}:").into_bytes();
        bytes.resize(bytes.len() + length, (offset % 256) as u8);
        Bytes::from(bytes)
    }
}

async fn check(backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("dir");
    let options = || small_options(backend, dir.path(), FsyncPolicy::Never);
    let mut log = Log::open(options()).await.expect("open");
    let mut model = Model { clock_ms: 1_000_000, ..Model::default() };
    for op in ops {
        match op {
            Op::Append(records) => {
                let mut inputs = Vec::new();
                for (step, length) in records {
                    model.clock_ms += step;
                    let body = model.body(model.records.len(), length);
                    inputs.push(RecordInput {
                        timestamp_ms: Some(model.clock_ms),
                        header: Bytes::new(),
                        body: body.clone(),
                    });
                    model.push(model.clock_ms, body);
                }
                let count = inputs.len() as u64;
                let ack = log.append(inputs).await.expect("append");
                prop_assert_eq!(ack.last_offset + 1, model.records.len() as u64);
                prop_assert_eq!(ack.last_offset - ack.first_offset + 1, count);
            }
            Op::AppendConcurrently(tasks) => {
                // Concurrent appenders: the order between them is the log's choice, so the
                // model learns it from the offsets the log hands back.
                let base = model.records.len();
                let mut handles = Vec::new();
                for t in 0..tasks {
                    let log = log.clone();
                    let body = Bytes::from(format!("concurrent-{base}-{t}"));
                    let ts = model.clock_ms;
                    handles.push(tokio::spawn(async move {
                        let input =
                            RecordInput { timestamp_ms: Some(ts), header: Bytes::new(), body: body.clone() };
                        (log.append(vec![input]).await.expect("append").first_offset, body)
                    }));
                }
                let mut got = Vec::new();
                for handle in handles {
                    got.push(handle.await.expect("task"));
                }
                got.sort();
                for (i, (offset, body)) in got.into_iter().enumerate() {
                    prop_assert_eq!(offset as usize, base + i);
                    model.push(model.clock_ms, body);
                }
            }
            Op::Roll => log.roll().await.expect("roll"),
            Op::Reopen => {
                if backend.is_disk() {
                    log.close().await.expect("close");
                    log = Log::open(options()).await.expect("reopen");
                }
            }
            Op::Read(fraction, max_bytes) => {
                let offset = (fraction * model.records.len() as f64) as u64;
                let records = log.read_records(offset, max_bytes).expect("read");
                if (offset as usize) < model.records.len() {
                    prop_assert!(!records.is_empty());
                }
                for (i, r) in records.iter().enumerate() {
                    let expected = &model.records[offset as usize + i];
                    prop_assert_eq!(r.offset, offset + i as u64);
                    prop_assert_eq!(r.timestamp_ms, expected.0);
                    prop_assert_eq!(&r.body, &expected.1);
                }
            }
            Op::Seek(fraction) => {
                let target = 1_000_000 + ((model.clock_ms - 1_000_000) as f64 * fraction) as i64;
                let expected =
                    model.records.iter().position(|r| r.0 >= target).unwrap_or(model.records.len());
                prop_assert_eq!(log.offset_at_timestamp(target).expect("seek"), expected as u64);
            }
        }
        prop_assert_eq!(log.next_offset(), model.records.len() as u64);
    }
    log.close().await.expect("close");
    Ok(())
}

fn model_test(backend: Backend) {
    let mut runner = TestRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    runner
        .run(&prop::collection::vec(op(), 1..40), |ops| run(check(backend, ops)))
        .unwrap_or_else(|failure| panic!("{backend:?}: {failure}"));
}

crate::on_every_backend!(model_test);
