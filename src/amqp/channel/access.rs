//! The channel's permission checks against the access model, made as RabbitMQ makes them
//! (`rabbit_channel.erl`; the table is in `broker::access::permissions`): configure to
//! declare and delete, write on a publish's exchange and on a binding's destination, read
//! on a binding's source and on a queue consumed, fetched or purged, and topic
//! permissions on the routing keys of topic exchanges. A refusal closes the channel with
//! `403 ACCESS_REFUSED` and RabbitMQ's text.

use super::Context;
use crate::amqp::reply::Reply;
use crate::broker::access::{AccessState, Permission, Resource};
use crate::broker::exchange::ExchangeKind;
use crate::broker::Broker;

/// What a check needs: the access model, the user and the vhost. Copied out of a
/// [`Context`] so that a check can run while other parts of it are borrowed.
#[derive(Clone, Copy)]
pub(super) struct Checker<'a> {
    access: &'a AccessState,
    user: &'a str,
    broker: &'a Broker,
}

impl<'a> Context<'a> {
    /// The checker of this channel's operations.
    pub(super) fn checker(&self) -> Checker<'a> {
        Checker { access: self.access, user: self.user, broker: self.broker }
    }

    /// `permission` on the queue `name`.
    pub(super) fn permit_queue(&self, name: &[u8], permission: Permission) -> Result<(), Reply> {
        self.checker().permit(Resource::queue(name), permission)
    }

    /// `permission` on the exchange `name`.
    pub(super) fn permit_exchange(&self, name: &[u8], permission: Permission) -> Result<(), Reply> {
        self.checker().permit(Resource::exchange(name), permission)
    }

    /// A publish to `exchange` with `routing_key`: write on the exchange, then topic write.
    pub(super) fn permit_publish(&self, exchange: &[u8], routing_key: &[u8]) -> Result<(), Reply> {
        self.checker().permit_publish(exchange, routing_key)
    }

    /// A binding from `source` to `destination` (a queue when `to_queue`): write on the
    /// destination, read on the source, then topic read on the routing key.
    pub(super) fn permit_binding(
        &self,
        source: &[u8],
        destination: &[u8],
        to_queue: bool,
        routing_key: &[u8],
    ) -> Result<(), Reply> {
        let target = if to_queue { Resource::queue(destination) } else { Resource::exchange(destination) };
        let checker = self.checker();
        checker.permit(target, Permission::Write)?;
        checker.permit(Resource::exchange(source), Permission::Read)?;
        checker.permit_topic(source, routing_key, Permission::Read)
    }
}

impl Checker<'_> {
    /// `permission` on `resource` in this vhost, for the logged-in user.
    pub(super) fn permit(&self, resource: Resource<'_>, permission: Permission) -> Result<(), Reply> {
        self.access.check(self.user, self.broker.vhost(), resource, permission).map_err(Reply::from)
    }

    /// `permission` on `routing_key` when `exchange` is a topic exchange of this vhost;
    /// other exchanges have no topic permissions.
    pub(super) fn permit_topic(
        &self,
        exchange: &[u8],
        routing_key: &[u8],
        permission: Permission,
    ) -> Result<(), Reply> {
        if self.broker.exchange(exchange).is_some_and(|found| found.kind == ExchangeKind::Topic) {
            self.access
                .check_topic(self.user, self.broker.vhost(), exchange, routing_key, permission)
                .map_err(Reply::from)?;
        }
        Ok(())
    }

    /// A publish to `exchange` with `routing_key`: write on the exchange, then topic write.
    pub(super) fn permit_publish(&self, exchange: &[u8], routing_key: &[u8]) -> Result<(), Reply> {
        self.permit(Resource::exchange(exchange), Permission::Write)?;
        self.permit_topic(exchange, routing_key, Permission::Write)
    }
}
