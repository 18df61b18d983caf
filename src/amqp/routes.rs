//! A connection's memory of where its publishes went: (exchange, routing key) to the
//! queues they reached, valid while the broker's topology and the access model are
//! unchanged. A publisher that sends many messages with one key routes, and has its write
//! permission checked, once, not once per message. Messages with a `headers` property are
//! always routed afresh (headers exchanges look at them).
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::Arc;

use crate::amqp::reply::Reply;
use crate::broker::{Broker, QueueEntry};
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
    routes: HashMap<Box<[u8]>, Route, foldhash::fast::RandomState>,
    key: Vec<u8>,
}

impl RouteCache {
    /// The queues a publish to `exchange` with `routing_key` and no headers reaches, once
    /// `permit` (the publish's permission check, made only when the route is not
    /// remembered) allows it. `access_generation` is the access model's generation the
    /// caller checks against.
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
            self.routes.clear();
            self.topology = topology;
            self.access_generation = access_generation;
        }
        self.key.clear();
        self.key.push(exchange.len().min(ShortStr::MAX_LEN) as u8);
        self.key.extend_from_slice(exchange);
        self.key.extend_from_slice(routing_key);
        if let Some(route) = self.routes.get(self.key.as_slice()) {
            return Ok(Arc::clone(route));
        }
        permit()?;
        let mut queues = Vec::new();
        broker.route(exchange, routing_key, None, &mut queues).map_err(|error| Reply::from(&error))?;
        let route: Route = queues.into();
        if self.routes.len() >= ROUTES_PER_CONNECTION_MAX {
            self.routes.clear();
        }
        self.routes.insert(self.key.as_slice().into(), Arc::clone(&route));
        Ok(route)
    }
}
