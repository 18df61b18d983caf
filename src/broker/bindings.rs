//! Bindings in the model: `queue.bind`, `exchange.bind` and their unbinds, with the
//! checks RabbitMQ makes. The per-exchange tables they edit are in `exchange`; routing
//! through them is in `routing`. No frames, no I/O beyond saving durable definitions.

use super::exchange::BindingTable;
use super::{definitions, Broker, ConnectionId, Error};
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

/// Where a binding leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// A queue, by id.
    Queue(u64),
    /// An exchange, by id (exchange-to-exchange binding).
    Exchange(u64),
}

/// Bindings of one exchange.
pub type Bindings = BindingTable<Destination, ShortStr, FieldValue>;

impl Broker {
    /// The destination called `name` (a queue when `is_queue`, else an exchange) and
    /// whether it is durable.
    fn destination(
        &self,
        name: &[u8],
        is_queue: bool,
        connection: ConnectionId,
    ) -> Result<(Destination, bool), Error> {
        if is_queue {
            let queue = self.queue_for(name, connection)?;
            Ok((Destination::Queue(queue.id), queue.durable))
        } else {
            let exchange = self.exchange(name).ok_or_else(|| Error::ExchangeNotFound(self.named(name)))?;
            Ok((Destination::Exchange(exchange.id), exchange.durable))
        }
    }

    /// Whether bindings to this (durable) destination are saved: not to an exclusive
    /// queue, which does not outlive its connection.
    fn saves_bindings_to(&self, destination: &[u8], is_queue: bool) -> bool {
        !is_queue || self.queue(destination).is_some_and(|q| q.exclusive_owner.is_none())
    }

    /// `queue.bind` (`is_queue`) or `exchange.bind`.
    ///
    /// # Errors
    /// 403 for the default exchange; 404 for a missing end; 405; 406 for bad headers args.
    pub async fn bind(
        &self,
        source: &[u8],
        destination: &[u8],
        is_queue: bool,
        routing_key: &[u8],
        arguments: FieldTable,
        connection: ConnectionId,
    ) -> Result<(), Error> {
        let _changes = self.changes.lock().await;
        if source.is_empty() || (!is_queue && destination.is_empty()) {
            return Err(Error::DefaultExchange);
        }
        let (target, target_durable) = self.destination(destination, is_queue, connection)?;
        let exchange = self.exchange(source).ok_or_else(|| Error::ExchangeNotFound(self.named(source)))?;
        exchange.kind.validate_binding(&arguments.0).map_err(|e| Error::InvalidArg {
            kind: "exchange",
            name: self.named(source),
            arg: "x-match".into(),
            reason: e.to_string(),
        })?;
        let definition =
            definitions::binding_definition(source, destination, is_queue, routing_key, arguments.clone());
        let added =
            exchange.bindings.write().expect("bindings lock poisoned").bind(routing_key, arguments.0, target);
        self.topology_changed();
        if added && exchange.durable && target_durable && self.saves_bindings_to(destination, is_queue) {
            definitions::record(self, definitions::Change::Bound(definition))?;
        }
        Ok(())
    }

    /// `queue.unbind` or `exchange.unbind`. As in RabbitMQ 3.10, unbinding what is not
    /// there is not an error: a missing source, destination or binding is answered with
    /// unbind-ok. Only an existing binding to another connection's exclusive queue is
    /// refused (the exclusive check runs only when there is something to remove).
    ///
    /// # Errors
    /// 403 for the default exchange at either end; 405 for another connection's exclusive
    /// queue.
    pub async fn unbind(
        &self,
        source: &[u8],
        destination: &[u8],
        is_queue: bool,
        routing_key: &[u8],
        arguments: &FieldTable,
        connection: ConnectionId,
    ) -> Result<(), Error> {
        let _changes = self.changes.lock().await;
        if source.is_empty() || (!is_queue && destination.is_empty()) {
            return Err(Error::DefaultExchange);
        }
        let Some(exchange) = self.exchange(source) else { return Ok(()) };
        let (target, target_durable) = if is_queue {
            let Some(queue) = self.queue(destination) else { return Ok(()) };
            let target = Destination::Queue(queue.id);
            if queue.exclusive_owner.is_some_and(|owner| owner != connection) {
                let bindings = exchange.bindings.read().expect("bindings lock poisoned");
                if bindings.contains(routing_key, &arguments.0, target) {
                    return Err(Error::Locked(self.named(destination)));
                }
                return Ok(());
            }
            (target, queue.durable)
        } else {
            let Some(other) = self.exchange(destination) else { return Ok(()) };
            (Destination::Exchange(other.id), other.durable)
        };
        let (removed, now_empty) = {
            let mut bindings = exchange.bindings.write().expect("bindings lock poisoned");
            (bindings.unbind(routing_key, &arguments.0, target), bindings.is_empty())
        };
        self.topology_changed();
        let auto_deleted = removed && exchange.auto_delete && now_empty;
        if auto_deleted {
            self.remove_exchange(source);
        }
        if removed && exchange.durable && target_durable && self.saves_bindings_to(destination, is_queue) {
            let definition = definitions::binding_definition(
                source,
                destination,
                is_queue,
                routing_key,
                arguments.clone(),
            );
            definitions::record(self, definitions::Change::Unbound(definition))?;
        }
        if auto_deleted && exchange.durable {
            definitions::record(self, definitions::Change::ExchangeDeleted(exchange.name.clone()))?;
        }
        Ok(())
    }
}
