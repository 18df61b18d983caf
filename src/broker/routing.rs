//! Routing: which queues a message published to an exchange reaches, following
//! exchange-to-exchange bindings and alternate exchanges. This is the publish hot path (see
//! `benches/routing.rs`): it reads the model under its read lock, decodes no message
//! headers (it takes them decoded) and allocates only its own small work lists.

use std::collections::HashSet;
use std::sync::Arc;

use super::{exchange, Broker, Destination, Error, QueueEntry};
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

impl Broker {
    /// The queues a message published to `exchange` with `routing_key` and `headers`
    /// reaches, each once, following exchange-to-exchange bindings and alternate exchanges.
    ///
    /// # Errors
    /// 404 for a missing exchange, 403 for an internal one.
    pub fn route(
        &self,
        exchange: &[u8],
        routing_key: &[u8],
        headers: Option<&FieldTable>,
        out: &mut Vec<Arc<QueueEntry>>,
    ) -> Result<(), Error> {
        let model = self.model.read().expect("model lock poisoned");
        if exchange.is_empty() {
            if let Some(queue) = model.queues.get(routing_key) {
                out.push(Arc::clone(queue));
            }
            return Ok(());
        }
        let start =
            model.exchanges.get(exchange).ok_or_else(|| Error::ExchangeNotFound(self.named(exchange)))?;
        if start.internal {
            return Err(Error::InternalExchange(self.named(exchange)));
        }
        let no_headers: &[(ShortStr, FieldValue)] = &[];
        let headers = headers.map_or(no_headers, |h| &h.0[..]);
        let mut visited = HashSet::new();
        let mut pending = vec![Arc::clone(start)];
        let mut destinations = Vec::new();
        let mut queue_ids = Vec::new();
        while let Some(current) = pending.pop() {
            if !visited.insert(current.id) {
                continue;
            }
            destinations.clear();
            current.bindings.read().expect("bindings lock poisoned").route(
                routing_key,
                headers,
                &mut destinations,
            );
            let before = queue_ids.len();
            for destination in &destinations {
                match destination {
                    Destination::Queue(id) => queue_ids.push(*id),
                    Destination::Exchange(id) => {
                        if let Some(next) = model.exchange_names.get(id).and_then(|n| model.exchanges.get(n))
                        {
                            pending.push(Arc::clone(next));
                        }
                    }
                }
            }
            let matched_any = queue_ids.len() > before
                || destinations.iter().any(|d| matches!(d, Destination::Exchange(_)));
            if !matched_any {
                if let Some(alternate) = current.alternate().and_then(|n| model.exchanges.get(&n)) {
                    pending.push(Arc::clone(alternate));
                }
            }
        }
        queue_ids.sort_unstable();
        queue_ids.dedup();
        out.extend(queue_ids.iter().filter_map(|id| model.queue_ids.get(id).cloned()));
        Ok(())
    }
}

/// Headers-exchange matching on AMQP field values: integers of any width compare by value.
impl exchange::HeaderValue for FieldValue {
    fn is_void(&self) -> bool {
        matches!(self, FieldValue::Void)
    }

    fn as_integer(&self) -> Option<i128> {
        match self {
            FieldValue::Timestamp(t) => Some(i128::from(*t)),
            other => other.as_i64().map(i128::from),
        }
    }

    fn as_long_str(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(bytes) => Some(bytes),
            _ => None,
        }
    }
}
