//! Exchanges in the model: the built-in ones, `exchange.declare` with RabbitMQ's
//! equivalence checks, and `exchange.delete`. Routing through an exchange's bindings is in
//! `routing`, the binding tables in `exchange`. No frames, no I/O beyond saving durable
//! definitions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::exchange::{BindingTable, ExchangeKind};
use super::naming::text;
use super::policies::AppliedExchangePolicy;
use super::{definitions, Bindings, Broker, Destination, Error, Name};
use crate::wire::amqp::FieldTable;

/// An exchange.
#[derive(Debug)]
pub struct ExchangeEntry {
    /// Internal id, used in bindings.
    pub id: u64,
    /// Its name.
    pub name: Bytes,
    /// Its type.
    pub kind: ExchangeKind,
    /// Survives restarts.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Takes no publishes, only exchange-to-exchange traffic.
    pub internal: bool,
    /// Its arguments.
    pub arguments: FieldTable,
    /// Its policy and effective `alternate-exchange` (see [`ExchangeEntry::alternate`]).
    pub(super) applied: RwLock<AppliedExchangePolicy>,
    /// Its bindings, as source.
    pub bindings: RwLock<Bindings>,
    /// Its message counts since it was declared.
    pub counters: ExchangeCounters,
}

/// An exchange's message counts, as RabbitMQ's `message_stats` of an exchange count them:
/// publishes into it, and messages it routed to queues (one per queue reached, through
/// exchange-to-exchange bindings and alternate exchanges too). Publishers add what they
/// counted over a batch of publishes at once (see `amqp::routes`), not one atomic add per
/// message; readers see the totals of the batches added so far.
#[derive(Debug, Default)]
pub struct ExchangeCounters {
    /// Messages published into the exchange (routed or not).
    pub publish_in: AtomicU64,
    /// Messages routed from it to queues, one per queue.
    pub publish_out: AtomicU64,
}

impl ExchangeCounters {
    /// Adds `publish_in` publishes that reached `publish_out` queues in all.
    pub fn add(&self, publish_in: u64, publish_out: u64) {
        self.publish_in.fetch_add(publish_in, Ordering::Relaxed);
        if publish_out > 0 {
            self.publish_out.fetch_add(publish_out, Ordering::Relaxed);
        }
    }

    /// The totals as `(publish_in, publish_out)`.
    pub fn totals(&self) -> (u64, u64) {
        (self.publish_in.load(Ordering::Relaxed), self.publish_out.load(Ordering::Relaxed))
    }
}

/// An `exchange.declare`.
#[derive(Debug, Clone, Default)]
pub struct ExchangeDeclare {
    /// Name.
    pub name: Bytes,
    /// Type name.
    pub kind: Bytes,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives restarts.
    pub durable: bool,
    /// Deleted with its last binding.
    pub auto_delete: bool,
    /// Takes no publishes.
    pub internal: bool,
    /// Arguments.
    pub arguments: FieldTable,
}

/// The exchanges every vhost has; none can be deleted.
const BUILTIN_EXCHANGES: [(&str, ExchangeKind); 6] = [
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
    ("", ExchangeKind::Direct),
];

impl Broker {
    /// The exchange called `name`.
    pub fn exchange(&self, name: &[u8]) -> Option<Arc<ExchangeEntry>> {
        self.model.read().expect("model lock poisoned").exchanges.get(name).cloned()
    }

    /// Every exchange.
    pub fn exchanges(&self) -> Vec<Arc<ExchangeEntry>> {
        self.model.read().expect("model lock poisoned").exchanges.values().cloned().collect()
    }

    /// Adds the built-in exchanges (when the broker opens).
    pub(super) fn insert_builtin_exchanges(&self) {
        for (name, kind) in BUILTIN_EXCHANGES {
            self.insert_exchange(
                Bytes::from_static(name.as_bytes()),
                kind,
                true,
                false,
                false,
                FieldTable::default(),
            );
        }
    }

    /// Adds an exchange to the model, replacing any of that name.
    pub(super) fn insert_exchange(
        &self,
        name: Bytes,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Arc<ExchangeEntry> {
        let applied = RwLock::new(self.resolve_exchange_policy(&name, &arguments));
        let entry = Arc::new(ExchangeEntry {
            id: self.id(),
            name: name.clone(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            applied,
            bindings: RwLock::new(BindingTable::new(kind)),
            counters: ExchangeCounters::default(),
        });
        let mut model = self.model.write().expect("model lock poisoned");
        model.exchange_names.insert(entry.id, name.clone());
        model.exchanges.insert(name, Arc::clone(&entry));
        drop(model);
        self.topology_changed();
        entry
    }

    /// `exchange.declare`.
    ///
    /// # Errors
    /// 503 (connection) for an unknown type; 403 for reserved names; 404 passive; 406.
    pub async fn declare_exchange(&self, request: ExchangeDeclare) -> Result<(), Error> {
        let _changes = self.changes.lock().await;
        let kind_text = text(&request.kind);
        if let Some(existing) = self.exchange(&request.name) {
            if request.passive {
                return Ok(());
            }
            // Built-in `amq.*` exchanges may be redeclared when equivalent, as in RabbitMQ.
            if request.name.is_empty() {
                return Err(Error::DefaultExchange);
            }
            return check_exchange_redeclare(self.named(&request.name), &existing, &request, kind_text);
        }
        if request.passive {
            return Err(Error::ExchangeNotFound(self.named(&request.name)));
        }
        let kind = ExchangeKind::parse(&kind_text).ok_or(Error::UnknownExchangeType(kind_text))?;
        if request.name.starts_with(b"amq.") {
            return Err(Error::ReservedName { kind: "exchange", name: text(&request.name) });
        }
        let durable = request.durable;
        let name = request.name.clone();
        self.insert_exchange(
            request.name,
            kind,
            durable,
            request.auto_delete,
            request.internal,
            request.arguments,
        );
        if let Some(exchange) = self.exchange(&name).filter(|_| durable) {
            definitions::record(
                self,
                definitions::Change::ExchangeDeclared(definitions::exchange_definition(&exchange)),
            )?;
        }
        Ok(())
    }

    /// `exchange.delete`. A missing exchange is not an error.
    ///
    /// # Errors
    /// 403 for the default and built-in exchanges; 406 for if-unused with bindings.
    pub async fn delete_exchange(&self, name: &[u8], if_unused: bool) -> Result<(), Error> {
        let _changes = self.changes.lock().await;
        if name.is_empty() {
            return Err(Error::DefaultExchange);
        }
        if BUILTIN_EXCHANGES.iter().any(|(builtin, _)| builtin.as_bytes() == name) {
            return Err(Error::SystemExchange(self.named(name)));
        }
        let Some(exchange) = self.exchange(name) else { return Ok(()) };
        if if_unused && !exchange.bindings.read().expect("bindings lock poisoned").is_empty() {
            return Err(Error::ExchangeInUse(self.named(name)));
        }
        self.remove_exchange(name);
        if exchange.durable {
            definitions::record(self, definitions::Change::ExchangeDeleted(exchange.name.clone()))?;
        }
        Ok(())
    }

    /// Removes an exchange and every binding that leads to it.
    pub(super) fn remove_exchange(&self, name: &[u8]) {
        let mut model = self.model.write().expect("model lock poisoned");
        if let Some(exchange) = model.exchanges.remove(name) {
            model.exchange_names.remove(&exchange.id);
            for other in model.exchanges.values() {
                other
                    .bindings
                    .write()
                    .expect("bindings lock poisoned")
                    .unbind_destination(Destination::Exchange(exchange.id));
            }
        }
        drop(model);
        self.topology_changed();
    }
}

/// Checks a redeclare of `existing` (not passive, not the default exchange) as RabbitMQ
/// does: type, then durable, auto-delete and internal must match.
fn check_exchange_redeclare(
    name: Name,
    existing: &ExchangeEntry,
    request: &ExchangeDeclare,
    kind_text: String,
) -> Result<(), Error> {
    let kind = ExchangeKind::parse(&kind_text).ok_or(Error::UnknownExchangeType(kind_text.clone()))?;
    let inequivalent = |arg: &str, received: String, current: String| Error::Inequivalent {
        kind: "exchange",
        name: name.clone(),
        arg: arg.to_owned(),
        received: format!("'{received}'"),
        current: format!("'{current}'"),
    };
    if kind != existing.kind {
        return Err(inequivalent("type", kind_text, existing.kind.as_str().to_owned()));
    }
    let flags = [
        ("durable", request.durable, existing.durable),
        ("auto_delete", request.auto_delete, existing.auto_delete),
        ("internal", request.internal, existing.internal),
    ];
    for (arg, received, current) in flags {
        if received != current {
            return Err(inequivalent(arg, received.to_string(), current.to_string()));
        }
    }
    Ok(())
}
