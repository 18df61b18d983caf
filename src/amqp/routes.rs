//! A connection's memory of where its publishes went: (exchange, routing key) to the
//! queues they reached, valid while the broker's topology and the access model are
//! unchanged. A publisher that sends many messages with one key routes, and has its write
//! permission checked, once, not once per message. Messages with a `headers` property are
//! always routed afresh (headers exchanges look at them).
//!
//! The cache also counts each publish against the exchange it went to (publishes in,
//! queues reached out), in plain per-connection tallies that [`RouteCache::flush_counts`]
//! adds to the exchanges' shared counters once per batch of input: no shared atomic add
//! per message.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::amqp::reply::Reply;
use crate::broker::{Broker, ExchangeEntry, QueueEntry};
use crate::limits::ROUTES_PER_CONNECTION_MAX;
use crate::wire::amqp::ShortStr;

/// Queues a publish reaches, shared by the cache and the publishes using it.
pub type Route = Arc<[Arc<QueueEntry>]>;

/// Routes remembered by one connection.
#[derive(Default)]
pub struct RouteCache {
    /// The topology these routes were worked out in.
    topology: u64,
    /// The generation of the access model their permissions were checked in.
    access_generation: u64,
    /// Key: exchange length (one octet), exchange, routing key.
    routes: HashMap<Box<[u8]>, Cached, foldhash::fast::RandomState>,
    key: Vec<u8>,
    /// What was published into each exchange since the last flush.
    tallies: Tallies,
}

/// A remembered route and the tally of its exchange.
struct Cached {
    route: Route,
    /// Index in [`Tallies::slots`]; `None` when the exchange was gone by the time it was
    /// looked up (its publishes are not counted).
    tally: Option<usize>,
}

/// Per-exchange counts of one connection's publishes, not yet added to the exchanges'
/// counters.
///
/// Invariant: `dirty` holds each slot with counts exactly once; the others count 0.
#[derive(Default)]
struct Tallies {
    /// Exchange name to its slot.
    by_name: HashMap<Bytes, usize, foldhash::fast::RandomState>,
    slots: Vec<Tally>,
    dirty: Vec<usize>,
}

struct Tally {
    exchange: Arc<ExchangeEntry>,
    publish_in: u64,
    publish_out: u64,
}

impl Tallies {
    /// The slot of exchange `name` in `broker`, made on first use; `None` when there is no
    /// such exchange.
    fn slot(&mut self, broker: &Broker, name: &[u8]) -> Option<usize> {
        if let Some(&slot) = self.by_name.get(name) {
            return Some(slot);
        }
        let exchange = broker.exchange(name)?;
        let slot = self.slots.len();
        self.by_name.insert(exchange.name.clone(), slot);
        self.slots.push(Tally { exchange, publish_in: 0, publish_out: 0 });
        Some(slot)
    }

    /// Counts one publish into the exchange of `slot` that reached `queues` queues.
    #[inline]
    fn count(&mut self, slot: usize, queues: usize) {
        let Some(tally) = self.slots.get_mut(slot) else { return };
        if tally.publish_in == 0 {
            self.dirty.push(slot);
        }
        tally.publish_in += 1;
        tally.publish_out += queues as u64;
    }

    /// Adds the counts to the exchanges' counters and zeroes them.
    fn flush(&mut self) {
        for slot in self.dirty.drain(..) {
            if let Some(tally) = self.slots.get_mut(slot) {
                tally.exchange.counters.add(tally.publish_in, tally.publish_out);
                tally.publish_in = 0;
                tally.publish_out = 0;
            }
        }
    }

    /// Flushes, then forgets every exchange (their entries may be gone from the model).
    fn clear(&mut self) {
        self.flush();
        self.by_name.clear();
        self.slots.clear();
    }
}

impl RouteCache {
    /// The queues a publish to `exchange` with `routing_key` and no headers reaches, once
    /// `permit` (the publish's permission check, made only when the route is not
    /// remembered) allows it; the publish is counted against the exchange.
    /// `access_generation` is the access model's generation the caller checks against.
    ///
    /// # Errors
    /// The refusal of `permit`, or [`Broker::route`]'s; errors are not remembered.
    pub fn route(
        &mut self,
        broker: &Broker,
        exchange: &[u8],
        routing_key: &[u8],
        access_generation: u64,
        permit: impl FnOnce() -> Result<(), Reply>,
    ) -> Result<Route, Reply> {
        // Read before routing: a change racing with the lookup below makes the next call
        // see a newer number and route again.
        let topology = broker.topology();
        if topology != self.topology || access_generation != self.access_generation {
            self.start_over();
            self.topology = topology;
            self.access_generation = access_generation;
        }
        self.key.clear();
        self.key.push(exchange.len().min(ShortStr::MAX_LEN) as u8);
        self.key.extend_from_slice(exchange);
        self.key.extend_from_slice(routing_key);
        if let Some(cached) = self.routes.get(self.key.as_slice()) {
            if let Some(slot) = cached.tally {
                self.tallies.count(slot, cached.route.len());
            }
            return Ok(Arc::clone(&cached.route));
        }
        permit()?;
        let mut queues = Vec::new();
        broker.route(exchange, routing_key, None, &mut queues).map_err(|error| Reply::from(&error))?;
        let route: Route = queues.into();
        if self.routes.len() >= ROUTES_PER_CONNECTION_MAX
            || self.tallies.slots.len() >= ROUTES_PER_CONNECTION_MAX
        {
            self.start_over();
        }
        let tally = self.tallies.slot(broker, exchange);
        if let Some(slot) = tally {
            self.tallies.count(slot, route.len());
        }
        self.routes.insert(self.key.as_slice().into(), Cached { route: Arc::clone(&route), tally });
        Ok(route)
    }

    /// Counts a publish routed without the cache (one with headers) into `exchange`, which
    /// reached `queues` queues.
    pub fn count_uncached(&mut self, broker: &Broker, exchange: &[u8], queues: usize) {
        // The slots' exchanges are those of the cache's topology: another one (an exchange
        // deleted and declared again, say) starts both over.
        let topology = broker.topology();
        if topology != self.topology || self.tallies.slots.len() >= ROUTES_PER_CONNECTION_MAX {
            self.start_over();
            self.topology = topology;
        }
        if let Some(slot) = self.tallies.slot(broker, exchange) {
            self.tallies.count(slot, queues);
        }
    }

    /// Forgets every route and exchange slot, adding what was counted to the exchanges
    /// first. Routes hold slot indexes: they never outlive the slots.
    fn start_over(&mut self) {
        self.routes.clear();
        self.tallies.clear();
    }

    /// Adds the publishes counted since the last call to their exchanges' counters: once
    /// per batch of input.
    pub fn flush_counts(&mut self) {
        if !self.tallies.dirty.is_empty() {
            self.tallies.flush();
        }
    }
}
