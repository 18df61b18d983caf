//! The journal of definition changes, `<data dir>/definitions.journal`: each durable
//! declare, delete, bind or unbind appends one record (with its own crc32) and syncs it,
//! so a change costs the same however many definitions exist. The snapshot
//! (`definitions`, see `definitions.rs`) holds everything up to the journal's start;
//! when the journal grows past [`DEFINITIONS_JOURNAL_RECORDS_MIN`] records and past the
//! snapshot's size, the broker writes a new snapshot and starts an empty journal
//! (compaction), so replay stays linear and the journal bounded. Format in
//! `docs/log-format.md`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

use super::Error;
use crate::limits::DEFINITIONS_JOURNAL_RECORDS_MIN;
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "definitions.journal";
/// Where a damaged journal is kept (for inspection) before the next compaction.
pub const DAMAGED_FILE: &str = "definitions.journal.damaged";
const MAGIC: &[u8; 4] = b"WRND";
const VERSION: u16 = 1;
/// Magic, version and generation.
const HEADER_BYTES: usize = 4 + 2 + 8;
/// Payload length and crc32 before each record's payload.
const RECORD_HEADER_BYTES: usize = 4 + 4;

/// One change of durable definitions. Definitions are the tables the snapshot lists
/// (`definitions.rs` builds them), so replay can rebuild the snapshot's lists.
#[derive(Debug, Clone)]
pub enum Change {
    /// A durable exchange was declared.
    ExchangeDeclared(FieldTable),
    /// A durable exchange was deleted, with every binding from or to it.
    ExchangeDeleted(Bytes),
    /// A durable queue was declared.
    QueueDeclared(FieldTable),
    /// A durable queue was deleted, with every binding to it.
    QueueDeleted(Bytes),
    /// A durable binding was added.
    Bound(FieldTable),
    /// A durable binding was removed.
    Unbound(FieldTable),
}

impl Change {
    fn op(&self) -> &'static str {
        match self {
            Change::ExchangeDeclared(_) => "exchange.declare",
            Change::ExchangeDeleted(_) => "exchange.delete",
            Change::QueueDeclared(_) => "queue.declare",
            Change::QueueDeleted(_) => "queue.delete",
            Change::Bound(_) => "bind",
            Change::Unbound(_) => "unbind",
        }
    }

    /// The record payload: an AMQP field table `{op, definition | name}`.
    fn encode(&self) -> BytesMut {
        let value = match self {
            Change::ExchangeDeleted(name) | Change::QueueDeleted(name) => FieldValue::LongStr(name.clone()),
            Change::ExchangeDeclared(t)
            | Change::QueueDeclared(t)
            | Change::Bound(t)
            | Change::Unbound(t) => FieldValue::Table(t.clone()),
        };
        let key = if matches!(self, Change::ExchangeDeleted(_) | Change::QueueDeleted(_)) {
            "name"
        } else {
            "definition"
        };
        let table = FieldTable(vec![
            (ShortStr::from_static("op"), FieldValue::LongStr(Bytes::from_static(self.op().as_bytes()))),
            (ShortStr::from_static(key), value),
        ]);
        let mut payload = BytesMut::new();
        table.encode(&mut payload);
        payload
    }

    fn decode(payload: &[u8]) -> Option<Change> {
        let table = FieldTable::decode(&Bytes::copy_from_slice(payload)).ok()?;
        let op = table.get("op").and_then(FieldValue::as_bytes)?;
        let name = || table.get("name").and_then(FieldValue::as_bytes).map(Bytes::copy_from_slice);
        let definition = || table.get("definition").and_then(FieldValue::as_table).cloned();
        Some(match op {
            b"exchange.declare" => Change::ExchangeDeclared(definition()?),
            b"exchange.delete" => Change::ExchangeDeleted(name()?),
            b"queue.declare" => Change::QueueDeclared(definition()?),
            b"queue.delete" => Change::QueueDeleted(name()?),
            b"bind" => Change::Bound(definition()?),
            b"unbind" => Change::Unbound(definition()?),
            _ => return None,
        })
    }
}

/// One framed record: payload length, crc32 of the payload, payload.
fn frame(change: &Change) -> Vec<u8> {
    let payload = change.encode();
    let length = u32::try_from(payload.len()).expect("a definition is far below 4 GiB");
    let mut record = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    record.extend_from_slice(&length.to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

/// The header of a journal that follows the snapshot of `generation`.
pub fn header(generation: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&generation.to_le_bytes());
    bytes
}

/// The open journal and what compaction needs to know. One per broker; changes of
/// definitions are already serialised by the broker, so the lock is never contended.
#[derive(Debug, Default)]
pub struct Journal {
    state: Mutex<JournalState>,
}

#[derive(Debug, Default)]
struct JournalState {
    /// Open for appending; `None` before the first snapshot and after a failed append
    /// (the next change then writes a snapshot, which starts a fresh journal).
    file: Option<File>,
    generation: u64,
    records: u64,
    snapshot_entries: u64,
}

impl Journal {
    /// The generation of the snapshot the journal follows.
    pub fn generation(&self) -> u64 {
        self.state.lock().expect("journal lock poisoned").generation
    }

    /// Sets the generation read from the snapshot at start.
    pub fn set_generation(&self, generation: u64) {
        self.state.lock().expect("journal lock poisoned").generation = generation;
    }

    /// Whether the next change should be a snapshot rather than a record.
    pub fn wants_snapshot(&self) -> bool {
        let state = self.state.lock().expect("journal lock poisoned");
        state.file.is_none() || state.records >= DEFINITIONS_JOURNAL_RECORDS_MIN.max(state.snapshot_entries)
    }

    /// Appends `change` and syncs it.
    ///
    /// # Errors
    /// [`Error::Internal`] when the write or sync fails; the journal is then closed, so
    /// the next change writes a snapshot instead of appending after a partial record.
    pub fn append(&self, dir: &Path, change: &Change) -> Result<(), Error> {
        let mut state = self.state.lock().expect("journal lock poisoned");
        let file = state.file.as_mut().expect("wants_snapshot was checked");
        let record = frame(change);
        let written =
            crate::log::offsets::off_worker(|| file.write_all(&record).and_then(|()| file.sync_data()));
        if let Err(error) = written {
            state.file = None;
            return Err(Error::Internal(format!("{}: {error}", dir.join(JOURNAL_FILE).display())));
        }
        state.records += 1;
        Ok(())
    }

    /// Starts an empty journal after a snapshot of `generation` with `entries` entries
    /// (the snapshot is already durable).
    ///
    /// # Errors
    /// [`Error::Internal`] when the journal cannot be created.
    pub fn restart(&self, dir: &Path, generation: u64, entries: u64) -> Result<(), Error> {
        let mut state = self.state.lock().expect("journal lock poisoned");
        state.file = None;
        let path = dir.join(JOURNAL_FILE);
        let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("{}: {e}", path.display()));
        crate::log::offsets::write_atomically(&path, &header(generation)).map_err(|e| internal(&e))?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| internal(&e))?;
        *state = JournalState { file: Some(file), generation, records: 0, snapshot_entries: entries };
        Ok(())
    }
}

/// Reads the journal in `dir` that follows the snapshot of `generation` and applies its
/// changes to `definitions`. A missing journal, or one of another generation (left by a
/// crash between a snapshot and the journal's restart: the snapshot holds its changes),
/// adds nothing. An incomplete last record (a torn write) is ignored with a warning; a
/// damaged record stops the replay there with an error logged, and the journal is kept
/// as [`DAMAGED_FILE`].
///
/// # Errors
/// [`Error::Internal`] when the journal exists but cannot be read.
pub fn replay(dir: &Path, generation: u64, definitions: &mut Definitions) -> Result<(), Error> {
    let path = dir.join(JOURNAL_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Internal(format!("{}: {e}", path.display()))),
    };
    match apply_records(&bytes, generation, definitions) {
        Replay::Complete { records } => tracing::debug!(records, "definitions journal replayed"),
        Replay::Stale { found } => {
            tracing::info!(found, generation, "definitions journal older than the snapshot: ignored")
        }
        Replay::Torn { records, at } => {
            tracing::warn!(records, at, "definitions journal ends in an incomplete record: ignored");
        }
        Replay::Damaged { records, at } => {
            tracing::error!(records, at, path = %path.display(), "definitions journal damaged: replay stopped there");
            if let Err(error) = std::fs::copy(&path, dir.join(DAMAGED_FILE)) {
                tracing::error!(%error, "could not keep a copy of the damaged definitions journal");
            }
        }
    }
    Ok(())
}

/// How a replay ended: `records` were applied; `at` is a byte position in the journal.
#[derive(Debug, PartialEq, Eq)]
pub enum Replay {
    /// Every record was applied.
    Complete {
        /// Records applied.
        records: u64,
    },
    /// The journal follows another snapshot (of generation `found`); nothing was applied.
    Stale {
        /// The journal's generation.
        found: u64,
    },
    /// The last record (at `at`) is incomplete; the records before it were applied.
    Torn {
        /// Records applied.
        records: u64,
        /// Where the incomplete record starts.
        at: usize,
    },
    /// The header or the record at `at` is damaged; the records before it were applied.
    Damaged {
        /// Records applied.
        records: u64,
        /// Where the damaged record starts.
        at: usize,
    },
}

/// Applies the records of the journal `bytes` to `definitions`.
pub fn apply_records(bytes: &[u8], generation: u64, definitions: &mut Definitions) -> Replay {
    let Some(header) = bytes.get(..HEADER_BYTES) else { return Replay::Torn { records: 0, at: 0 } };
    let (magic, rest) = header.split_at(4);
    let (version, found) = rest.split_at(2);
    if magic != MAGIC || version != VERSION.to_le_bytes() {
        return Replay::Damaged { records: 0, at: 0 };
    }
    let found = u64::from_le_bytes(found.try_into().expect("8 bytes"));
    if found != generation {
        return Replay::Stale { found };
    }
    let (mut at, mut records) = (HEADER_BYTES, 0);
    while at < bytes.len() {
        let Some(record_header) = bytes.get(at..at + RECORD_HEADER_BYTES) else {
            return Replay::Torn { records, at };
        };
        let (length, crc) = record_header.split_at(4);
        let length = u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
        let end = at + RECORD_HEADER_BYTES + length;
        let Some(payload) = bytes.get(at + RECORD_HEADER_BYTES..end) else {
            return Replay::Torn { records, at };
        };
        if crc32fast::hash(payload).to_le_bytes() != crc {
            return Replay::Damaged { records, at };
        }
        let Some(change) = Change::decode(payload) else { return Replay::Damaged { records, at } };
        definitions.apply(change);
        records += 1;
        at = end;
    }
    Replay::Complete { records }
}

/// Definitions in the order they were made, keyed so that a later change finds them.
#[derive(Debug, Default)]
struct Ordered {
    next: u64,
    by_key: HashMap<Vec<u8>, u64>,
    entries: BTreeMap<u64, (Vec<u8>, FieldTable)>,
}

impl Ordered {
    fn insert(&mut self, key: Vec<u8>, table: FieldTable) {
        self.remove(&key);
        self.next += 1;
        self.by_key.insert(key.clone(), self.next);
        self.entries.insert(self.next, (key, table));
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(sequence) = self.by_key.remove(key) {
            self.entries.remove(&sequence);
        }
    }

    fn remove_where(&mut self, doomed: impl Fn(&FieldTable) -> bool) {
        let keys: Vec<_> = self.entries.values().filter(|(_, t)| doomed(t)).map(|(k, _)| k.clone()).collect();
        for key in keys {
            self.remove(&key);
        }
    }

    fn into_array(self) -> FieldValue {
        FieldValue::Array(self.entries.into_values().map(|(_, table)| FieldValue::Table(table)).collect())
    }
}

/// The durable definitions being rebuilt at start: the snapshot's lists, then the
/// journal's changes applied in order.
#[derive(Debug, Default)]
pub struct Definitions {
    exchanges: Ordered,
    queues: Ordered,
    bindings: Ordered,
}

fn bytes_of<'a>(table: &'a FieldTable, key: &str) -> &'a [u8] {
    table.get(key).and_then(FieldValue::as_bytes).unwrap_or_default()
}

/// A binding's identity: its encoding with the arguments sorted by name.
fn binding_key(table: &FieldTable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    table.encode(&mut buf);
    buf.to_vec()
}

impl Definitions {
    /// The lists of a snapshot document (`exchanges`, `queues`, `bindings`).
    pub fn from_document(document: &FieldTable) -> Definitions {
        let mut definitions = Definitions::default();
        let list = |key: &str| {
            document.get(key).and_then(FieldValue::as_array).map(<[_]>::to_vec).unwrap_or_default()
        };
        let tables =
            |key: &str| list(key).into_iter().filter_map(|v| v.as_table().cloned()).collect::<Vec<_>>();
        for table in tables("exchanges") {
            definitions.apply(Change::ExchangeDeclared(table));
        }
        for table in tables("queues") {
            definitions.apply(Change::QueueDeclared(table));
        }
        for table in tables("bindings") {
            definitions.apply(Change::Bound(table));
        }
        definitions
    }

    /// Applies one change, as the broker made it.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::ExchangeDeclared(table) => {
                self.exchanges.insert(bytes_of(&table, "name").to_vec(), table)
            }
            Change::QueueDeclared(table) => self.queues.insert(bytes_of(&table, "name").to_vec(), table),
            Change::Bound(table) => self.bindings.insert(binding_key(&table), table),
            Change::Unbound(table) => self.bindings.remove(&binding_key(&table)),
            Change::ExchangeDeleted(name) => {
                self.exchanges.remove(&name);
                self.bindings.remove_where(|b| {
                    bytes_of(b, "source") == name.as_ref()
                        || (bytes_of(b, "destination") == name.as_ref() && b.get_bool("queue") == Some(false))
                });
            }
            Change::QueueDeleted(name) => {
                self.queues.remove(&name);
                self.bindings.remove_where(|b| {
                    bytes_of(b, "destination") == name.as_ref() && b.get_bool("queue") != Some(false)
                });
            }
        }
    }

    /// The snapshot document for these definitions (without a generation).
    pub fn into_document(self) -> FieldTable {
        FieldTable(vec![
            (ShortStr::from_static("exchanges"), self.exchanges.into_array()),
            (ShortStr::from_static("queues"), self.queues.into_array()),
            (ShortStr::from_static("bindings"), self.bindings.into_array()),
        ])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn queue(name: &str) -> Change {
        Change::QueueDeclared(FieldTable(vec![(
            ShortStr::from_static("name"),
            FieldValue::LongStr(Bytes::copy_from_slice(name.as_bytes())),
        )]))
    }

    fn journal(generation: u64, changes: &[Change]) -> Vec<u8> {
        let mut bytes = header(generation);
        for change in changes {
            bytes.extend_from_slice(&frame(change));
        }
        bytes
    }

    fn queue_names(definitions: Definitions) -> Vec<Vec<u8>> {
        let document = definitions.into_document();
        let queues = document.get("queues").and_then(FieldValue::as_array).unwrap().to_vec();
        queues.iter().map(|q| bytes_of(q.as_table().unwrap(), "name").to_vec()).collect()
    }

    #[test]
    fn records_replay_in_order_and_deletes_take_bindings_along() {
        let bound = |destination: &str| {
            Change::Bound(FieldTable(vec![
                (ShortStr::from_static("source"), FieldValue::LongStr(Bytes::from_static(b"x"))),
                (
                    ShortStr::from_static("destination"),
                    FieldValue::LongStr(Bytes::copy_from_slice(destination.as_bytes())),
                ),
                (ShortStr::from_static("queue"), FieldValue::Bool(true)),
            ]))
        };
        let changes =
            [queue("a"), queue("b"), bound("a"), bound("b"), Change::QueueDeleted(Bytes::from_static(b"a"))];
        let mut definitions = Definitions::default();
        assert_eq!(
            apply_records(&journal(3, &changes), 3, &mut definitions),
            Replay::Complete { records: 5 }
        );
        let document = definitions.into_document();
        assert_eq!(document.get("bindings").and_then(FieldValue::as_array).unwrap().len(), 1);
        assert_eq!(document.get("queues").and_then(FieldValue::as_array).unwrap().len(), 1);
    }

    #[test]
    fn a_journal_of_another_generation_adds_nothing() {
        let mut definitions = Definitions::default();
        assert_eq!(
            apply_records(&journal(2, &[queue("a")]), 3, &mut definitions),
            Replay::Stale { found: 2 }
        );
        assert!(queue_names(definitions).is_empty());
    }

    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail() {
        let whole = journal(1, &[queue("a"), queue("b")]);
        let second = journal(1, &[queue("a")]).len();
        for cut in second + 1..whole.len() {
            let mut definitions = Definitions::default();
            let replay = apply_records(&whole[..cut], 1, &mut definitions);
            assert_eq!(replay, Replay::Torn { records: 1, at: second }, "cut at {cut}");
            assert_eq!(queue_names(definitions), vec![b"a".to_vec()]);
        }
    }

    #[test]
    fn a_damaged_record_stops_the_replay_there() {
        let mut bytes = journal(1, &[queue("a"), queue("b"), queue("c")]);
        let second = journal(1, &[queue("a")]).len();
        bytes[second + RECORD_HEADER_BYTES + 2] ^= 0xff;
        let mut definitions = Definitions::default();
        assert_eq!(apply_records(&bytes, 1, &mut definitions), Replay::Damaged { records: 1, at: second });
        assert_eq!(queue_names(definitions), vec![b"a".to_vec()]);
    }
}
