//! Durable definitions: the durable exchanges, queues and bindings, saved on every change
//! to `<data dir>/definitions` and restored at start. The file is an AMQP field table
//! (the codec's own encoding) followed by a crc32, replaced atomically.

use bytes::{Bytes, BytesMut};

use super::{arguments, exchange::ExchangeKind, Broker, Destination, Error, QueueDeclare};
use crate::log::offsets::write_atomically;
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

const FILE: &str = "definitions";

fn entry(pairs: Vec<(&'static str, FieldValue)>) -> FieldValue {
    FieldValue::Table(pairs.into_iter().map(|(k, v)| (ShortStr::from_static(k), v)).collect())
}

fn bytes(value: &[u8]) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(value))
}

/// Writes the durable definitions (a no-op in memory mode).
///
/// # Errors
/// [`Error::Internal`] when the file cannot be written.
pub fn save(broker: &Broker) -> Result<(), Error> {
    let Some(dir) = broker.data_dir() else { return Ok(()) };
    let mut exchanges = Vec::new();
    let mut bindings = Vec::new();
    let queues: Vec<_> =
        broker.queues().into_iter().filter(|q| q.durable && q.exclusive_owner.is_none()).collect();
    let all_exchanges = broker.exchanges();
    let name_of_exchange = |id: u64| all_exchanges.iter().find(|e| e.id == id).map(|e| e.name.clone());
    for exchange in all_exchanges.iter().filter(|e| e.durable) {
        if !exchange.name.starts_with(b"amq.") && !exchange.name.is_empty() {
            exchanges.push(entry(vec![
                ("name", bytes(&exchange.name)),
                ("type", bytes(exchange.kind.as_str().as_bytes())),
                ("auto_delete", FieldValue::Bool(exchange.auto_delete)),
                ("internal", FieldValue::Bool(exchange.internal)),
                ("arguments", FieldValue::Table(exchange.arguments.clone())),
            ]));
        }
        for binding in exchange.bindings.read().expect("bindings lock poisoned").bindings() {
            let (destination, is_queue) = match binding.destination {
                Destination::Queue(id) => match queues.iter().find(|q| q.id == id) {
                    Some(queue) => (queue.name.clone(), true),
                    None => continue,
                },
                Destination::Exchange(id) => match name_of_exchange(id) {
                    Some(name) if all_exchanges.iter().any(|e| e.name == name && e.durable) => (name, false),
                    _ => continue,
                },
            };
            bindings.push(entry(vec![
                ("source", bytes(&exchange.name)),
                ("destination", bytes(&destination)),
                ("queue", FieldValue::Bool(is_queue)),
                ("routing_key", bytes(binding.key)),
                ("arguments", FieldValue::Table(binding.args.iter().cloned().collect())),
            ]));
        }
    }
    let queues = queues
        .iter()
        .map(|q| {
            entry(vec![
                ("name", bytes(&q.name)),
                ("auto_delete", FieldValue::Bool(q.auto_delete)),
                ("arguments", FieldValue::Table(q.arguments.clone())),
            ])
        })
        .collect();
    let document: FieldTable = [
        (ShortStr::from_static("exchanges"), FieldValue::Array(exchanges)),
        (ShortStr::from_static("queues"), FieldValue::Array(queues)),
        (ShortStr::from_static("bindings"), FieldValue::Array(bindings)),
    ]
    .into_iter()
    .collect();
    let buf = encode(&document);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Internal(e.to_string()))?;
    write_atomically(&dir.join(FILE), &buf).map_err(|e| Error::Internal(e.to_string()))
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

fn field<'a>(table: &'a FieldTable, key: &str) -> &'a [u8] {
    table.get(key).and_then(FieldValue::as_bytes).unwrap_or_default()
}

/// Recreates the saved durable exchanges, queues (with their logs) and bindings.
///
/// # Errors
/// When the file is damaged or a queue's log cannot be opened.
pub async fn restore(broker: &Broker) -> Result<(), Error> {
    let Some(dir) = broker.data_dir() else { return Ok(()) };
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Internal(e.to_string())),
    };
    let document = decode(&bytes)?;
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
        let args = arguments::parse_queue_args(&String::from_utf8_lossy(&request.name), &request.arguments)?;
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
