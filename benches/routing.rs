//! Topic routing benchmarks: one routing key against 10, 1,000 and 100,000
//! topic bindings (random 2–5 word patterns over a 64-word vocabulary, with
//! some `*` and `#`), each to its own destination.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use warren::broker::exchange::{BindingTable, ExchangeKind, HeaderValue};

/// Benchmarks need no header values; this stands in for the codec's type.
#[derive(Debug, Clone, PartialEq)]
struct NoValue;

impl HeaderValue for NoValue {
    fn is_void(&self) -> bool {
        false
    }
    fn as_integer(&self) -> Option<i128> {
        None
    }
    fn as_long_str(&self) -> Option<&[u8]> {
        None
    }
}

/// Small deterministic xorshift generator, so runs are comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A random pattern: 2–5 words, each `#` (5%), `*` (15%) or `wN`.
fn pattern(rng: &mut Rng) -> String {
    let len = 2 + rng.below(4);
    (0..len)
        .map(|_| match rng.below(100) {
            0..=4 => "#".to_string(),
            5..=19 => "*".to_string(),
            _ => format!("w{}", rng.below(64)),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn topic_routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_route");
    for size in [10u32, 1_000, 100_000] {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut table: BindingTable<u32, Vec<u8>, NoValue> = BindingTable::new(ExchangeKind::Topic);
        for dest in 0..size {
            table.bind(pattern(&mut rng).as_bytes(), Vec::new(), dest);
        }
        let key = b"w1.w2.w3.w4";
        let mut out = Vec::new();
        table.route(key, &[], &mut out);
        println!("{size} bindings: key routes to {} destinations", out.len());
        group.bench_with_input(BenchmarkId::from_parameter(size), &table, |b, table| {
            b.iter(|| {
                out.clear();
                table.route(black_box(key), &[], &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

// criterion_group! generates an undocumented function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, topic_routing);
}
criterion_main!(group::benches);
