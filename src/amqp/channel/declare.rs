//! Topology methods: `exchange.declare`, `delete`, `bind`, `unbind` and `queue.declare`,
//! `bind`, `unbind`, `purge`, `delete`, handed to the broker and answered. A channel
//! remembers the last queue it declared: an empty queue name means that one.

use bytes::Bytes;

use super::{Channel, Context};
use crate::amqp::output::short;
use crate::amqp::reply::{ProtocolError, Reply, StreamRefusal};
use crate::broker;
use crate::broker::access::Permission;
use crate::broker::exchange::ExchangeKind;
use crate::wire::amqp::{
    ExchangeBind, ExchangeBindOk, ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete, ExchangeDeleteOk,
    ExchangeUnbind, ExchangeUnbindOk, FieldTable, QueueBind, QueueBindOk, QueueDeclare, QueueDeclareOk,
    QueueDelete, QueueDeleteOk, QueuePurge, QueuePurgeOk, QueueUnbind, QueueUnbindOk,
};

/// What a channel remembers of its declarations.
#[derive(Default)]
pub(super) struct Declared {
    /// The name of the last queue declared on the channel.
    last_queue: Option<Bytes>,
}

fn broker_error(error: broker::Error) -> Reply {
    Reply::from(&error)
}

/// `exchange.declare` on channel `number`.
pub(super) async fn exchange_declare(
    cx: &mut Context<'_>,
    number: u16,
    declare: ExchangeDeclare,
) -> Result<(), Reply> {
    let no_wait = declare.no_wait;
    let request = broker::ExchangeDeclare {
        name: declare.exchange.to_bytes(),
        kind: declare.kind.to_bytes(),
        passive: declare.passive,
        durable: declare.durable,
        auto_delete: declare.auto_delete,
        internal: declare.internal,
        arguments: declare.arguments,
    };
    let known_kind = ExchangeKind::parse(&String::from_utf8_lossy(&request.kind)).is_some();
    if !request.passive && known_kind && !request.name.is_empty() {
        cx.permit_exchange(&request.name, Permission::Configure)?;
        if cx.broker.exchange(&request.name).is_none() {
            if let Some(alternate) = request.arguments.get("alternate-exchange").and_then(|v| v.as_bytes()) {
                cx.permit_exchange(&request.name, Permission::Read)?;
                cx.permit_exchange(alternate, Permission::Write)?;
            }
        }
    }
    cx.broker.declare_exchange(request).await.map_err(broker_error)?;
    if !no_wait {
        cx.out.method(number, &ExchangeDeclareOk::default().into());
    }
    Ok(())
}

/// `exchange.delete` on channel `number`.
pub(super) async fn exchange_delete(
    cx: &mut Context<'_>,
    number: u16,
    delete: ExchangeDelete,
) -> Result<(), Reply> {
    if !delete.exchange.as_bytes().is_empty() {
        cx.permit_exchange(delete.exchange.as_bytes(), Permission::Configure)?;
    }
    cx.broker.delete_exchange(delete.exchange.as_bytes(), delete.if_unused).await.map_err(broker_error)?;
    if !delete.no_wait {
        cx.out.method(number, &ExchangeDeleteOk::default().into());
    }
    Ok(())
}

/// `exchange.bind` on channel `number`.
pub(super) async fn exchange_bind(
    cx: &mut Context<'_>,
    number: u16,
    bind: ExchangeBind,
) -> Result<(), Reply> {
    let (source, destination) = (bind.source.as_bytes(), bind.destination.as_bytes());
    if !source.is_empty() && !destination.is_empty() {
        cx.permit_binding(source, destination, false, bind.routing_key.as_bytes())?;
    }
    cx.broker
        .bind(source, destination, false, bind.routing_key.as_bytes(), bind.arguments, cx.connection)
        .await
        .map_err(broker_error)?;
    if !bind.no_wait {
        cx.out.method(number, &ExchangeBindOk::default().into());
    }
    Ok(())
}

/// `exchange.unbind` on channel `number`.
pub(super) async fn exchange_unbind(
    cx: &mut Context<'_>,
    number: u16,
    unbind: ExchangeUnbind,
) -> Result<(), Reply> {
    let (source, destination) = (unbind.source.as_bytes(), unbind.destination.as_bytes());
    if !source.is_empty() && !destination.is_empty() {
        cx.permit_binding(source, destination, false, unbind.routing_key.as_bytes())?;
    }
    cx.broker
        .unbind(source, destination, false, unbind.routing_key.as_bytes(), &unbind.arguments, cx.connection)
        .await
        .map_err(broker_error)?;
    if !unbind.no_wait {
        cx.out.method(number, &ExchangeUnbindOk::default().into());
    }
    Ok(())
}

/// The checks of a `queue.declare` that is not passive, in RabbitMQ's order: configure on
/// the queue; and when it does not exist yet, with a dead-letter exchange, read on the
/// queue and write on that exchange, then the vhost's queue limit.
fn permit_queue_declare(cx: &Context<'_>, name: &[u8], arguments: &FieldTable) -> Result<(), Reply> {
    cx.permit_queue(name, Permission::Configure)?;
    if cx.broker.queue(name).is_some() {
        return Ok(());
    }
    if let Some(exchange) = arguments.get("x-dead-letter-exchange").and_then(|v| v.as_bytes()) {
        cx.permit_queue(name, Permission::Read)?;
        cx.permit_exchange(exchange, Permission::Write)?;
    }
    cx.access.check_new_queue(cx.broker.vhost(), name, cx.broker.queue_count()).map_err(Reply::from)
}

impl Channel {
    /// An empty queue name means the channel's last declared queue.
    pub(super) fn queue_name(&self, name: &[u8]) -> Bytes {
        if name.is_empty() {
            if let Some(last) = &self.declared.last_queue {
                return last.clone();
            }
        }
        Bytes::copy_from_slice(name)
    }

    /// `queue.declare`.
    pub(super) async fn queue_declare(
        &mut self,
        cx: &mut Context<'_>,
        declare: QueueDeclare,
    ) -> Result<(), Reply> {
        let no_wait = declare.no_wait;
        let server_named = declare.queue.as_bytes().is_empty() && !declare.passive;
        let name = match declare.queue.as_bytes() {
            b"" if !declare.passive => Bytes::from(broker::generated_name("amq.gen-")),
            name => Bytes::copy_from_slice(name),
        };
        if !declare.passive {
            permit_queue_declare(cx, &name, &declare.arguments)?;
        }
        let request = broker::QueueDeclare {
            name,
            passive: declare.passive,
            durable: declare.durable,
            exclusive: declare.exclusive,
            auto_delete: declare.auto_delete,
            arguments: declare.arguments,
            connection: cx.connection,
            server_named,
        };
        let (queue, messages, consumers) = cx.broker.declare_queue(request).await.map_err(broker_error)?;
        self.declared.last_queue = Some(queue.name.clone());
        if !no_wait {
            let ok = QueueDeclareOk {
                queue: short(&queue.name),
                message_count: messages,
                consumer_count: consumers,
            };
            cx.out.method(self.number(), &ok.into());
        }
        Ok(())
    }

    /// `queue.bind`.
    pub(super) async fn queue_bind(&mut self, cx: &mut Context<'_>, bind: QueueBind) -> Result<(), Reply> {
        let queue = self.queue_name(bind.queue.as_bytes());
        if !bind.exchange.as_bytes().is_empty() {
            cx.permit_binding(bind.exchange.as_bytes(), &queue, true, bind.routing_key.as_bytes())?;
        }
        cx.broker
            .bind(
                bind.exchange.as_bytes(),
                &queue,
                true,
                bind.routing_key.as_bytes(),
                bind.arguments,
                cx.connection,
            )
            .await
            .map_err(broker_error)?;
        if !bind.no_wait {
            cx.out.method(self.number(), &QueueBindOk::default().into());
        }
        Ok(())
    }

    /// `queue.unbind`.
    pub(super) async fn queue_unbind(
        &mut self,
        cx: &mut Context<'_>,
        unbind: QueueUnbind,
    ) -> Result<(), Reply> {
        if unbind.queue.as_bytes().is_empty() && self.declared.last_queue.is_none() {
            // Checked before anything else, so it is refused even though unbinding what is
            // gone is not.
            return Err(ProtocolError::NoPreviouslyDeclaredQueue.into());
        }
        let queue = self.queue_name(unbind.queue.as_bytes());
        let (exchange, routing_key) = (unbind.exchange.as_bytes(), unbind.routing_key.as_bytes());
        if !exchange.is_empty() {
            cx.permit_binding(exchange, &queue, true, routing_key)?;
        }
        cx.broker
            .unbind(exchange, &queue, true, routing_key, &unbind.arguments, cx.connection)
            .await
            .map_err(broker_error)?;
        cx.out.method(self.number(), &QueueUnbindOk::default().into());
        Ok(())
    }

    /// `queue.purge`; streams cannot be purged.
    pub(super) async fn queue_purge(&mut self, cx: &mut Context<'_>, purge: QueuePurge) -> Result<(), Reply> {
        let queue = self.queue_name(purge.queue.as_bytes());
        cx.permit_queue(&queue, Permission::Read)?;
        if cx.broker.queue(&queue).is_some_and(|q| q.is_stream()) {
            let queue = cx.broker.named(&queue);
            return Err(StreamRefusal::Unsupported { method: "queue.purge", queue }.into());
        }
        let count = cx.broker.purge_queue(&queue, cx.connection).await.map_err(broker_error)?;
        if !purge.no_wait {
            cx.out.method(self.number(), &QueuePurgeOk { message_count: count }.into());
        }
        Ok(())
    }

    /// `queue.delete`.
    pub(super) async fn queue_delete(
        &mut self,
        cx: &mut Context<'_>,
        delete: QueueDelete,
    ) -> Result<(), Reply> {
        let queue = self.queue_name(delete.queue.as_bytes());
        cx.permit_queue(&queue, Permission::Configure)?;
        let count = cx
            .broker
            .delete_queue(&queue, delete.if_unused, delete.if_empty, Some(cx.connection))
            .await
            .map_err(broker_error)?;
        if !delete.no_wait {
            cx.out.method(self.number(), &QueueDeleteOk { message_count: count }.into());
        }
        Ok(())
    }
}
