//! Durable definitions: the durable exchanges, queues and bindings, saved on every change
//! to `<data dir>/definitions` and restored at start. The file is an AMQP field table
//! (the codec's own encoding) followed by a crc32, replaced atomically.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

pub use super::definitions_journal::Change;
use super::definitions_journal::{self, Definitions};
use super::{
    arguments, exchange::ExchangeKind, Broker, Destination, Error, ExchangeEntry, QueueDeclare, QueueEntry,
};
use crate::log::offsets::write_atomically;
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

const FILE: &str = "definitions";
/// The snapshot format written today (see `docs/log-format.md`); version 1 had neither
/// `version` nor `generation` and no journal.
const SNAPSHOT_VERSION: i64 = 2;

fn table(pairs: Vec<(&'static str, FieldValue)>) -> FieldTable {
    pairs.into_iter().map(|(k, v)| (ShortStr::from_static(k), v)).collect()
}

fn bytes(value: &[u8]) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(value))
}

/// The definition of a durable exchange, as the snapshot and the journal store it.
pub fn exchange_definition(exchange: &ExchangeEntry) -> FieldTable {
    table(vec![
        ("name", bytes(&exchange.name)),
        ("type", bytes(exchange.kind.as_str().as_bytes())),
        ("auto_delete", FieldValue::Bool(exchange.auto_delete)),
        ("internal", FieldValue::Bool(exchange.internal)),
        ("arguments", FieldValue::Table(exchange.arguments.clone())),
    ])
}

/// The definition of a durable queue, as the snapshot and the journal store it.
pub fn queue_definition(queue: &QueueEntry) -> FieldTable {
    table(vec![
        ("name", bytes(&queue.name)),
        ("auto_delete", FieldValue::Bool(queue.auto_delete)),
        ("arguments", FieldValue::Table(queue.arguments.clone())),
    ])
}

/// The definition of a durable binding. Its arguments are sorted by name, so that the
/// same binding always has the same encoding (the journal finds it by its encoding).
pub fn binding_definition(
    source: &[u8],
    destination: &[u8],
    is_queue: bool,
    routing_key: &[u8],
    mut arguments: FieldTable,
) -> FieldTable {
    arguments.0.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    table(vec![
        ("source", bytes(source)),
        ("destination", bytes(destination)),
        ("queue", FieldValue::Bool(is_queue)),
        ("routing_key", bytes(routing_key)),
        ("arguments", FieldValue::Table(arguments)),
    ])
}

/// Records one change of durable definitions (a no-op in memory mode): appends it to the
/// journal and syncs it, or writes a whole snapshot when the journal is due for
/// compaction. `broker` must already show the change.
///
/// # Errors
/// [`Error::Internal`] when the journal or snapshot cannot be written.
pub fn record(broker: &Broker, change: Change) -> Result<(), Error> {
    let Some(dir) = broker.data_dir() else { return Ok(()) };
    if broker.definitions_journal().wants_snapshot() {
        return save(broker);
    }
    broker.definitions_journal().append(&dir, &change)
}

/// Writes a snapshot of all durable definitions and starts an empty journal after it (a
/// no-op in memory mode). Costs time in proportion to the definitions: changes go through
/// [`record`], which calls this only when the journal is due for compaction.
///
/// # Errors
/// [`Error::Internal`] when the file cannot be written.
pub fn save(broker: &Broker) -> Result<(), Error> {
    let Some(dir) = broker.data_dir() else { return Ok(()) };
    let generation = broker.definitions_journal().generation() + 1;
    let (mut document, entries) = snapshot(broker);
    document.0.push((ShortStr::from_static("version"), FieldValue::I64(SNAPSHOT_VERSION)));
    document.0.push((ShortStr::from_static("generation"), FieldValue::I64(generation as i64)));
    let buf = encode(&document);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Internal(e.to_string()))?;
    write_atomically(&dir.join(FILE), &buf).map_err(|e| Error::Internal(e.to_string()))?;
    broker.definitions_journal().restart(&dir, generation, entries)
}

/// The durable definitions as a snapshot document, and how many entries it lists.
fn snapshot(broker: &Broker) -> (FieldTable, u64) {
    let queues: HashMap<u64, Arc<QueueEntry>> = broker
        .queues()
        .into_iter()
        .filter(|q| q.durable && q.exclusive_owner.is_none())
        .map(|q| (q.id, q))
        .collect();
    let all_exchanges = broker.exchanges();
    let durable_exchanges: HashMap<u64, &Bytes> =
        all_exchanges.iter().filter(|e| e.durable).map(|e| (e.id, &e.name)).collect();
    let mut exchanges = Vec::new();
    let mut bindings = Vec::new();
    for exchange in all_exchanges.iter().filter(|e| e.durable) {
        if !exchange.name.starts_with(b"amq.") && !exchange.name.is_empty() {
            exchanges.push(FieldValue::Table(exchange_definition(exchange)));
        }
        for binding in exchange.bindings.read().expect("bindings lock poisoned").bindings() {
            let (destination, is_queue) = match binding.destination {
                Destination::Queue(id) => match queues.get(&id) {
                    Some(queue) => (&queue.name, true),
                    None => continue,
                },
                Destination::Exchange(id) => match durable_exchanges.get(&id) {
                    Some(name) => (*name, false),
                    None => continue,
                },
            };
            let arguments = binding.args.iter().cloned().collect();
            bindings.push(FieldValue::Table(binding_definition(
                &exchange.name,
                destination,
                is_queue,
                binding.key,
                arguments,
            )));
        }
    }
    let mut queues: Vec<_> = queues.into_values().collect();
    queues.sort_by_key(|q| q.id);
    let queues: Vec<_> = queues.iter().map(|q| FieldValue::Table(queue_definition(q))).collect();
    let entries = (exchanges.len() + queues.len() + bindings.len()) as u64;
    let document = table(vec![
        ("exchanges", FieldValue::Array(exchanges)),
        ("queues", FieldValue::Array(queues)),
        ("bindings", FieldValue::Array(bindings)),
    ]);
    (document, entries)
}

fn field<'a>(table: &'a FieldTable, key: &str) -> &'a [u8] {
    table.get(key).and_then(FieldValue::as_bytes).unwrap_or_default()
}

/// Recreates the saved durable exchanges, queues (with their logs) and bindings: the
/// snapshot (either version), then the journal's changes after it. Then writes a fresh
/// snapshot, so the broker starts with an empty journal.
///
/// # Errors
/// When the snapshot is damaged, the journal cannot be read or a queue's log cannot be
/// opened. (A damaged journal record is logged and ends the replay; it is not an error.)
pub async fn restore(broker: &Broker) -> Result<(), Error> {
    let Some(dir) = broker.data_dir() else { return Ok(()) };
    let document = read_snapshot(&dir)?.unwrap_or_default();
    let generation = document.get_i64("generation").and_then(|g| u64::try_from(g).ok()).unwrap_or(0);
    let mut definitions = Definitions::from_document(&document);
    definitions_journal::replay(&dir, generation, &mut definitions)?;
    create(broker, &definitions.into_document()).await?;
    broker.definitions_journal().set_generation(generation);
    save(broker)
}

/// The snapshot document, or `None` when there is none.
fn read_snapshot(dir: &std::path::Path) -> Result<Option<FieldTable>, Error> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Internal(e.to_string())),
    };
    decode(&bytes).map(Some)
}

/// The bytes of a definitions file holding `document`: the field table, then its crc32.
pub fn encode(document: &FieldTable) -> BytesMut {
    let mut buf = BytesMut::new();
    document.encode(&mut buf);
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// Reads the bytes of a definitions file back into its field table.
///
/// # Errors
/// [`Error::Internal`] when the crc does not match or the table does not decode.
pub fn decode(bytes: &[u8]) -> Result<FieldTable, Error> {
    let damaged = || Error::Internal("definitions file is damaged".into());
    let (body, crc) =
        bytes.split_at_checked(bytes.len().checked_sub(4).ok_or_else(damaged)?).ok_or_else(damaged)?;
    if crc32fast::hash(body).to_le_bytes().as_slice() != crc {
        return Err(damaged());
    }
    FieldTable::decode(&Bytes::copy_from_slice(body)).map_err(|_| damaged())
}

/// Creates the exchanges, queues and bindings a snapshot document lists.
async fn create(broker: &Broker, document: &FieldTable) -> Result<(), Error> {
    let list =
        |key: &str| document.get(key).and_then(FieldValue::as_array).map(<[_]>::to_vec).unwrap_or_default();
    for value in list("exchanges") {
        let Some(table) = value.as_table() else { continue };
        let Some(kind) = ExchangeKind::parse(&String::from_utf8_lossy(field(table, "type"))) else {
            continue;
        };
        broker.insert_exchange(
            Bytes::copy_from_slice(field(table, "name")),
            kind,
            true,
            table.get_bool("auto_delete").unwrap_or(false),
            table.get_bool("internal").unwrap_or(false),
            table.get_table("arguments").cloned().unwrap_or_default(),
        );
    }
    for value in list("queues") {
        let Some(table) = value.as_table() else { continue };
        let request = QueueDeclare {
            name: Bytes::copy_from_slice(field(table, "name")),
            durable: true,
            auto_delete: table.get_bool("auto_delete").unwrap_or(false),
            arguments: table.get_table("arguments").cloned().unwrap_or_default(),
            ..QueueDeclare::default()
        };
        let args = arguments::parse_queue_args(&broker.named(&request.name), &request.arguments)?;
        broker.create_queue(&request, args).await?;
    }
    for value in list("bindings") {
        let Some(table) = value.as_table() else { continue };
        let Some(source) = broker.exchange(field(table, "source")) else { continue };
        let destination = field(table, "destination");
        let target = if table.get_bool("queue").unwrap_or(true) {
            broker.queue(destination).map(|q| Destination::Queue(q.id))
        } else {
            broker.exchange(destination).map(|e| Destination::Exchange(e.id))
        };
        let Some(target) = target else { continue };
        let arguments = table.get_table("arguments").cloned().unwrap_or_default();
        source.bindings.write().expect("bindings lock poisoned").bind(
            field(table, "routing_key"),
            arguments.0,
            target,
        );
        broker.topology_changed();
    }
    Ok(())
}
