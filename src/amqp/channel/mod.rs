//! Channels: one open AMQP channel's state, composed of one small struct per concern, and
//! the dispatch of its frames and methods to the concern that handles them:
//! - `publish`: `basic.publish` with its content header and body frames, routing, staging;
//! - `confirm`: publisher confirms (sequence numbers, acks and nacks);
//! - `tx`: transactions (publishes and settlements held until commit);
//! - `consume`: consumers, `basic.qos`, stream attach and direct reply-to;
//! - `deliver`: deliveries from queues, `basic.get` and consumer cancellations;
//! - `ack`: delivery tags, unacked deliveries, ack/nack/reject/recover;
//! - `declare`: the `exchange` and `queue` class methods.
//!
//! A frame's channel is looked up once, by `Connection::split`, which hands the handler
//! the `&mut Channel` together with a `Context` borrowing the rest of the connection (its
//! output, broker, route cache, staged publishes): handlers never look a channel up by
//! number. The one second lookup is for the four methods that first wait for every
//! channel's publishes to commit (which needs the whole channel table). Delivery tags
//! increase per channel in the order deliveries are written.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

mod access;
mod ack;
mod confirm;
mod consume;
mod declare;
mod deliver;
mod publish;
mod tx;

use std::sync::Arc;

use tokio::sync::mpsc;

use super::connection::{close_connection, Connection, Next, PendingPublishes, Phase, Staged};
use super::output::{short_text, Output};
use super::reply::{ProtocolError, Reply};
use super::routes::RouteCache;
use crate::broker::access::{AccessState, User};
use crate::broker::connections::ChannelInfo;
use crate::broker::{Broker, ConnectionId};
use crate::queue::{ChannelId, ConsumerEvent};
use crate::wire::amqp::{ChannelClose, ChannelCloseOk, ChannelFlowOk, Frame, Method};

use ack::Deliveries;
use confirm::Confirms;
use consume::Consumers;
use declare::Declared;
use publish::Publishing;
use tx::Transaction;

/// One open channel.
pub struct Channel {
    id: ChannelId,
    /// `channel.close` sent; only close and close-ok are served.
    closing: bool,
    publishing: Publishing,
    confirms: Confirms,
    tx: Transaction,
    consumers: Consumers,
    deliveries: Deliveries,
    declared: Declared,
    /// The channel's settings and counters as the management API lists them.
    stats: Arc<ChannelInfo>,
}

/// The connection's state a channel's handlers work with, borrowed beside the channel
/// itself (split borrows of [`Connection`]'s fields: no copy, no allocation).
pub(super) struct Context<'a> {
    connection: ConnectionId,
    broker: &'a Arc<Broker>,
    user: &'a str,
    /// The logged-in user's entry (tags), as the access model had it.
    account: &'a User,
    /// The access model the channel's operations are checked against.
    access: &'a AccessState,
    /// Its generation (routes remembered under another were checked against another).
    access_generation: u64,
    frame_max: u32,
    phase: &'a mut Phase,
    has_published: &'a mut bool,
    out: Output<'a>,
    routes: &'a mut RouteCache,
    record_arena: &'a mut crate::queue::message::RecordArena,
    staged: &'a mut Staged,
    pending: &'a mut PendingPublishes,
    events: &'a mpsc::Sender<ConsumerEvent>,
}

/// Methods that look at a queue's contents, and so wait for earlier publishes to commit.
fn reads_queue_contents(method: &Method) -> bool {
    matches!(
        method,
        Method::BasicGet(_) | Method::QueueDeclare(_) | Method::QueuePurge(_) | Method::QueueDelete(_)
    )
}

/// The channel number of a broker-wide channel id (its low 16 bits).
fn channel_number(id: ChannelId) -> u16 {
    (id & 0xFFFF) as u16
}

impl Channel {
    /// A new open channel; `id` carries the channel number in its low 16 bits, and
    /// `stats` is its record in the connection's.
    pub fn new(id: ChannelId, stats: Arc<ChannelInfo>) -> Channel {
        Channel {
            stats,
            id,
            closing: false,
            publishing: Publishing::default(),
            confirms: Confirms::default(),
            tx: Transaction::default(),
            consumers: Consumers::default(),
            deliveries: Deliveries::default(),
            declared: Declared::default(),
        }
    }

    /// The channel's number on the wire.
    fn number(&self) -> u16 {
        channel_number(self.id)
    }

    /// Sends the close `reply` asks for: `channel.close` (after which the channel serves
    /// only close and close-ok), or `connection.close`.
    fn fail(&mut self, cx: &mut Context<'_>, reply: &Reply, class_id: u16, method_id: u16) -> Next {
        if reply.connection {
            return close_connection(cx.out.bytes, cx.phase, reply, class_id, method_id);
        }
        let close =
            ChannelClose { reply_code: reply.code, reply_text: short_text(&reply.text), class_id, method_id };
        cx.out.method(self.number(), &close.into());
        self.closing = true;
        self.publishing.abandon();
        Next::Continue
    }

    /// Handles a method of an open channel; `channel.close` is the connection's (it drops
    /// the channel).
    async fn method(&mut self, cx: &mut Context<'_>, method: Method) -> Result<(), Reply> {
        let number = self.number();
        match method {
            Method::ChannelOpen(_) => return Err(ProtocolError::SecondChannelOpen.into()),
            Method::ChannelClose(_) | Method::ChannelCloseOk(_) => {}
            Method::ChannelFlow(flow) => {
                // RabbitMQ 3.x does not stop deliveries on request: active=false is refused.
                if !flow.active {
                    return Err(ProtocolError::FlowInactive.into());
                }
                cx.out.method(number, &ChannelFlowOk { active: true }.into());
            }
            Method::ExchangeDeclare(declare) => declare::exchange_declare(cx, number, declare).await?,
            Method::ExchangeDelete(delete) => declare::exchange_delete(cx, number, delete).await?,
            Method::ExchangeBind(bind) => declare::exchange_bind(cx, number, bind).await?,
            Method::ExchangeUnbind(unbind) => declare::exchange_unbind(cx, number, unbind).await?,
            Method::QueueDeclare(declare) => self.queue_declare(cx, declare).await?,
            Method::QueueBind(bind) => self.queue_bind(cx, bind).await?,
            Method::QueueUnbind(unbind) => self.queue_unbind(cx, unbind).await?,
            Method::QueuePurge(purge) => self.queue_purge(cx, purge).await?,
            Method::QueueDelete(delete) => self.queue_delete(cx, delete).await?,
            Method::BasicQos(qos) => self.qos(cx, &qos)?,
            Method::BasicConsume(consume) => self.consume(cx, consume).await?,
            Method::BasicCancel(cancel) => self.cancel(cx, cancel).await,
            Method::BasicPublish(publish) => self.start_publish(publish)?,
            Method::BasicGet(get) => self.get(cx, get.queue.as_bytes(), get.no_ack).await?,
            Method::BasicAck(ack) => self.settle(ack.delivery_tag, ack.multiple, None).await?,
            Method::BasicReject(reject) => {
                self.settle(reject.delivery_tag, false, Some(reject.requeue)).await?;
            }
            Method::BasicNack(nack) => {
                self.settle(nack.delivery_tag, nack.multiple, Some(nack.requeue)).await?
            }
            Method::BasicRecover(_) => self.recover(cx, true).await,
            Method::BasicRecoverAsync(_) => self.recover(cx, false).await,
            Method::ConfirmSelect(select) => self.confirm_select(cx, select.nowait)?,
            Method::TxSelect(_) => self.tx_select(cx)?,
            Method::TxCommit(_) => self.tx_commit(cx).await?,
            Method::TxRollback(_) => self.tx_rollback(cx)?,
            other => return Err(ProtocolError::UnexpectedMethod(other.name()).into()),
        }
        Ok(())
    }
}

impl Connection {
    /// The open channel `number` and, beside it, the rest of the connection its handlers
    /// work with. The one lookup of the channel table a frame costs.
    pub(super) fn split(&mut self, number: u16) -> Option<(&mut Channel, Context<'_>)> {
        let channel = self.channels.get_mut(&number)?;
        channel.stats.mark_active(self.batch_at_ms);
        let cx = Context {
            connection: self.id,
            broker: self.broker.as_ref()?,
            user: &self.user,
            account: self.account.as_deref()?,
            access: &self.access,
            access_generation: self.access_generation,
            frame_max: self.frame_max,
            phase: &mut self.phase,
            has_published: &mut self.has_published,
            out: Output { bytes: &mut self.out, chunks: &mut self.out_chunks },
            routes: &mut self.routes,
            record_arena: &mut self.record_arena,
            staged: &mut self.staged,
            pending: &mut self.pending,
            events: &self.events,
        };
        Some((channel, cx))
    }

    /// Handles a frame for channel `number`, open or not.
    pub(super) async fn channel_frame(&mut self, number: u16, frame: Frame) -> Next {
        let Some((channel, mut cx)) = self.split(number) else {
            return self.unopened_channel_frame(number, frame);
        };
        if channel.closing {
            return self.closing_frame(number, frame).await;
        }
        let expecting_content = channel.publishing.expecting_content();
        let (result, class_id, method_id) = match frame {
            Frame::Method { method, .. } if expecting_content => {
                let error = ProtocolError::MethodInsteadOfContentHeader(method.name());
                (Err(error.into()), method.class_id(), method.method_id())
            }
            Frame::Method { method, .. } => {
                // Methods other than publishes see every earlier publish of the connection
                // already handed to its queues (a get or delete must count them).
                if !matches!(method, Method::BasicPublish(_)) {
                    publish::flush(cx.staged, cx.pending).await;
                }
                if reads_queue_contents(&method) {
                    return self.settled_method(number, method).await;
                }
                if let Method::ChannelClose(_) = method {
                    cx.out.method(number, &ChannelCloseOk::default().into());
                    self.drop_channel(number).await;
                    return Next::Continue;
                }
                let (class_id, method_id) = (method.class_id(), method.method_id());
                (channel.method(&mut cx, method).await, class_id, method_id)
            }
            Frame::Header { header, .. } if expecting_content => {
                (channel.content_header(&mut cx, header), 60, 40)
            }
            Frame::Body { payload, .. } if expecting_content => {
                (channel.content_body(&mut cx, payload), 60, 40)
            }
            Frame::Heartbeat => (Err(ProtocolError::HeartbeatOnChannel(number).into()), 0, 0),
            _ => (Err(ProtocolError::ExpectedMethodFrame.into()), 0, 0),
        };
        match result {
            Ok(()) => Next::Continue,
            Err(reply) => channel.fail(&mut cx, &reply, class_id, method_id),
        }
    }

    /// A frame for a channel that has sent `channel.close`: only close and close-ok count.
    /// The channel stays known until the client's close-ok, which is taken silently, as
    /// RabbitMQ does: a client `channel.close` that crossed the broker's is answered with
    /// close-ok and leaves the channel closing, so the client's close-ok to the broker's
    /// close that follows finds it.
    async fn closing_frame(&mut self, number: u16, frame: Frame) -> Next {
        match frame {
            Frame::Method { method: Method::ChannelCloseOk(_), .. } => self.drop_channel(number).await,
            Frame::Method { method: Method::ChannelClose(_), .. } => {
                self.output().method(number, &ChannelCloseOk::default().into());
            }
            _ => {}
        }
        Next::Continue
    }

    /// A method that looks at a queue's contents: it sees every earlier publish of the
    /// connection committed, as a client of one channel expects. Settling confirms every
    /// channel's publishes, so the channel is looked up again once that is done.
    async fn settled_method(&mut self, number: u16, method: Method) -> Next {
        self.settle_publishes().await;
        let Some((channel, mut cx)) = self.split(number) else { return Next::Continue };
        let (class_id, method_id) = (method.class_id(), method.method_id());
        match channel.method(&mut cx, method).await {
            Ok(()) => Next::Continue,
            Err(reply) => channel.fail(&mut cx, &reply, class_id, method_id),
        }
    }

    async fn drop_channel(&mut self, number: u16) {
        if let Some(channel) = self.channels.remove(&number) {
            self.release_channel(channel).await;
        }
        if let Some(info) = self.info() {
            info.close_channel(number);
        }
    }

    /// Requeues a closed channel's unacked deliveries and removes its consumers.
    pub(super) async fn release_channel(&mut self, channel: Channel) {
        if let Some(broker) = &self.broker {
            crate::broker::Churn::bump(&broker.churn().channel_closed);
        }
        let emptied = channel.consumers.cancel_all(channel.id).await;
        for queue in channel.consumers.touched() {
            queue.handle.channel_closed(channel.id).await;
        }
        if let Some(broker) = &self.broker {
            for queue in emptied {
                broker.consumers_gone(&queue).await;
            }
        }
    }
}
