//! Writes the seed inputs of the fuzz targets in `tools/fuzz`: a few valid files made by
//! the real encoders, each prefixed as its target expects (a flags octet of 0, or the
//! index target's parameters). Run from the repository root:
//! `cargo run --example fuzz_seeds`; it replaces `tools/fuzz/seeds/`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use bytes::Bytes;
use warren::broker::definitions;
use warren::log::batch::BatchBuilder;
use warren::log::index::{IndexEntry, SparseIndex};
use warren::log::{acked, offsets, Compression};
use warren::wire::amqp::{FieldTable, FieldValue, ShortStr};

fn write(target: &str, name: &str, prefix: &[u8], file: &[u8]) -> Result<()> {
    let dir = Path::new("tools/fuzz/seeds").join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), [prefix, file].concat())?;
    Ok(())
}

fn batch(base_offset: u64, count: u64, body_bytes: usize, compression: Compression) -> Bytes {
    let mut builder = BatchBuilder::new(base_offset, 0);
    for i in 0..count {
        let body = vec![b'a' + (i % 3) as u8; body_bytes];
        builder.push(1_700_000_000_000 + i as i64, b"hdr", &body);
    }
    builder.finish(compression).1
}

fn batches() -> Result<()> {
    write("batch_decode", "one-record", &[0], &batch(0, 1, 5, Compression::None))?;
    write("batch_decode", "three-records", &[0], &batch(7, 3, 0, Compression::None))?;
    write("batch_decode", "zstd", &[0], &batch(42, 4, 64, Compression::Zstd))?;
    let segment = [batch(0, 2, 3, Compression::None), batch(2, 3, 40, Compression::Zstd)].concat();
    write("batch_decode", "segment", &[0], &segment)?;
    let mut in_memory = BatchBuilder::new(9, 0).in_memory();
    in_memory.push(5, b"", b"body");
    write("batch_decode", "in-memory", &[2], &in_memory.finish(Compression::None).1)
}

fn index() -> Result<()> {
    let mut index = SparseIndex::new(0);
    for (i, position) in [0u32, 4096, 9000].into_iter().enumerate() {
        let entry = IndexEntry { relative_offset: i as u32 * 10, position, timestamp_ms: 1_000 + i as i64 };
        index.observe(entry, 1);
    }
    let mut params = Vec::new();
    params.extend_from_slice(&4096u32.to_le_bytes());
    params.extend_from_slice(&16_384u64.to_le_bytes());
    params.extend_from_slice(&15u32.to_le_bytes());
    params.extend_from_slice(&1_001i64.to_le_bytes());
    write("index_decode", "three-entries", &params, &index.encode())
}

fn stores() -> Result<()> {
    let empty = BTreeMap::new();
    write("offsets_decode", "empty", &[0], &offsets::encode(&empty))?;
    let named = BTreeMap::from([("__queue_floor".to_owned(), 12), ("reader".to_owned(), 40)]);
    write("offsets_decode", "two-names", &[0], &offsets::encode(&named))?;
    write("acked_decode", "empty", &[0], &acked::encode(3, &[]))?;
    write("acked_decode", "three-ranges", &[0], &acked::encode(10, &[10..12, 15..16, 20..40]))
}

fn definitions() -> Result<()> {
    let text = |s: &str| FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()));
    let table = |pairs: Vec<(&'static str, FieldValue)>| {
        FieldValue::Table(pairs.into_iter().map(|(k, v)| (ShortStr::from_static(k), v)).collect())
    };
    let queue_args: FieldTable =
        [(ShortStr::from_static("x-queue-type"), text("stream"))].into_iter().collect();
    let document: FieldTable = [
        (
            ShortStr::from_static("exchanges"),
            FieldValue::Array(vec![table(vec![
                ("name", text("orders")),
                ("type", text("topic")),
                ("auto_delete", FieldValue::Bool(false)),
                ("internal", FieldValue::Bool(false)),
                ("arguments", FieldValue::Table(FieldTable::new())),
            ])]),
        ),
        (
            ShortStr::from_static("queues"),
            FieldValue::Array(vec![table(vec![
                ("name", text("audit")),
                ("auto_delete", FieldValue::Bool(false)),
                ("arguments", FieldValue::Table(queue_args)),
            ])]),
        ),
        (
            ShortStr::from_static("bindings"),
            FieldValue::Array(vec![table(vec![
                ("source", text("orders")),
                ("destination", text("audit")),
                ("queue", FieldValue::Bool(true)),
                ("routing_key", text("order.*")),
                ("arguments", FieldValue::Table(FieldTable::new())),
            ])]),
        ),
    ]
    .into_iter()
    .collect();
    write("definitions_decode", "one-of-each", &[0], &definitions::encode(&document))
}

fn main() -> Result<()> {
    let _ = std::fs::remove_dir_all("tools/fuzz/seeds");
    batches()?;
    index()?;
    stores()?;
    definitions()
}
