//! Channels: content assembly of publishes, routing them into queue logs, publisher
//! confirms, transactions, consumers with prefetch, delivery tags and acknowledgements.
//! Delivery tags increase per channel in the order deliveries are written.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::connection::{Connection, Next, PublishDone};
use super::reply::Reply;
use super::routes::Route;
use crate::broker::{self, generated_name, Overflow, QueueEntry};
use crate::log::{now_ms, RecordInput};
use crate::queue::message::{Message, MessageView};
use crate::queue::stream::{StreamAttach, StreamOffset};
use crate::queue::{ChannelCredit, ChannelId, ConsumerEvent, ConsumerSpec, Delivery};
use crate::seq_map::SeqMap;
use crate::wire::amqp::{
    encode_deliver_frame, encode_method_frame, reply_code, BasicAck, BasicCancel, BasicCancelOk,
    BasicConsumeOk, BasicGetEmpty, BasicGetOk, BasicNack, BasicPublish, BasicQosOk, BasicRecoverOk,
    BasicReturn, ChannelClose, ChannelCloseOk, ChannelFlowOk, ConfirmSelectOk, ContentHeader, DecodeError,
    ExchangeBindOk, ExchangeDeclareOk, ExchangeDeleteOk, ExchangeUnbindOk, FieldValue, Frame, FrameType,
    Method, QueueBindOk, QueueDeclareOk, QueueDeleteOk, QueuePurgeOk, QueueUnbindOk, RawFrame, ShortStr,
    TxCommitOk, TxRollbackOk, TxSelectOk,
};

/// The pseudo-queue of direct reply-to.
const REPLY_TO: &[u8] = b"amq.rabbitmq.reply-to";

/// A publish whose content is still arriving.
struct Assembly {
    method: BasicPublish,
    header: Option<ContentHeader>,
    /// Body frames' payloads as received: slices of the read buffer, not copies.
    body: Vec<Bytes>,
    body_bytes: u64,
}

/// A delivery the client has not acknowledged yet.
struct Unacked {
    queue: Arc<QueueEntry>,
    offset: u64,
    /// Counted against the channel's shared prefetch (consumer deliveries, not gets).
    counted: bool,
}

/// A consumer of this channel.
struct ConsumerEntry {
    queue: Arc<QueueEntry>,
}

/// A publish held back by a transaction.
struct HeldPublish {
    queues: Vec<Arc<QueueEntry>>,
    record: RecordInput,
}

/// One open channel.
pub struct Channel {
    id: ChannelId,
    closing: bool,
    assembly: Option<Assembly>,
    confirm: bool,
    confirm_next: u64,
    /// Publish sequence numbers not yet confirmed.
    unconfirmed: std::collections::BTreeSet<u64>,
    /// Nacked sequence numbers not yet covered by a `multiple` ack.
    nacked: std::collections::BTreeSet<u64>,
    /// Every publish up to this one has been acked or nacked.
    acked_through: u64,
    transactional: bool,
    held_publishes: Vec<HeldPublish>,
    held_settlements: Vec<(Arc<QueueEntry>, Vec<u64>, Option<bool>)>,
    next_delivery_tag: u64,
    unacked: SeqMap<Unacked>,
    consumers: HashMap<Bytes, ConsumerEntry, foldhash::fast::RandomState>,
    consumer_prefetch: u16,
    credit: Arc<ChannelCredit>,
    touched: HashMap<Bytes, Arc<QueueEntry>, foldhash::fast::RandomState>,
    last_queue: Option<Bytes>,
    reply_to_queue: Option<Bytes>,
}

impl Channel {
    /// A new open channel.
    pub fn new(id: ChannelId) -> Channel {
        Channel {
            id,
            closing: false,
            assembly: None,
            confirm: false,
            confirm_next: 1,
            unconfirmed: std::collections::BTreeSet::new(),
            nacked: std::collections::BTreeSet::new(),
            acked_through: 0,
            transactional: false,
            held_publishes: Vec::new(),
            held_settlements: Vec::new(),
            next_delivery_tag: 1,
            unacked: SeqMap::new(),
            consumers: HashMap::default(),
            consumer_prefetch: 0,
            credit: Arc::new(ChannelCredit::default()),
            touched: HashMap::default(),
            last_queue: None,
            reply_to_queue: None,
        }
    }

    fn take_tag(&mut self) -> u64 {
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        tag
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A short string sharing `bytes` (no copy); stored names are at most 255 bytes.
fn shared(bytes: &Bytes) -> ShortStr {
    ShortStr::from_bytes(bytes.clone()).unwrap_or_else(|_| short(bytes))
}

fn short(bytes: &[u8]) -> ShortStr {
    ShortStr::from_bytes(Bytes::copy_from_slice(bytes.get(..bytes.len().min(255)).unwrap_or_default()))
        .unwrap_or_default()
}

impl Connection {
    fn channel(&mut self, number: u16) -> Option<&mut Channel> {
        self.channels.get_mut(&number)
    }

    /// Sends `channel.close` for a channel error and stops serving the channel's methods.
    fn channel_error(&mut self, number: u16, reply: &Reply, class_id: u16, method_id: u16) -> Next {
        if reply.connection {
            return self.close_with(reply, class_id, method_id);
        }
        let text = reply.text.get(..reply.text.len().min(255)).unwrap_or_default();
        let close = ChannelClose {
            reply_code: reply.code,
            reply_text: ShortStr::try_from(text).unwrap_or_default(),
            class_id,
            method_id,
        };
        encode_method_frame(&mut self.out, number, &close.into());
        if let Some(channel) = self.channel(number) {
            channel.closing = true;
            channel.assembly = None;
        }
        Next::Continue
    }

    /// Handles a frame for an open channel.
    pub(super) async fn channel_frame(&mut self, number: u16, frame: Frame) -> Next {
        let closing = self.channel(number).is_some_and(|c| c.closing);
        if closing {
            match frame {
                Frame::Method { method: Method::ChannelCloseOk(_), .. } => self.drop_channel(number).await,
                Frame::Method { method: Method::ChannelClose(_), .. } => {
                    encode_method_frame(&mut self.out, number, &ChannelCloseOk::default().into());
                    self.drop_channel(number).await;
                }
                _ => {}
            }
            return Next::Continue;
        }
        let expecting_content = self.channel(number).is_some_and(|c| c.assembly.is_some());
        match frame {
            Frame::Method { method, .. } if expecting_content => {
                let reply = Reply::connection(
                    reply_code::UNEXPECTED_FRAME,
                    format!(
                        "expected content header for class 60, got non content header frame instead ({})",
                        method.name()
                    ),
                );
                self.close_with(&reply, method.class_id(), method.method_id())
            }
            Frame::Method { method, .. } => {
                // Methods other than publishes see every earlier publish of the connection
                // already handed to its queues (a get or delete must count them).
                if !matches!(method, Method::BasicPublish(_)) {
                    self.flush_publishes().await;
                }
                // Methods that look at a queue's contents see every earlier publish of the
                // connection committed, as a client of one channel expects.
                if matches!(
                    method,
                    Method::BasicGet(_)
                        | Method::QueueDeclare(_)
                        | Method::QueuePurge(_)
                        | Method::QueueDelete(_)
                ) {
                    self.settle_publishes().await;
                }
                self.channel_method(number, method).await
            }
            Frame::Header { header, .. } if expecting_content => self.content_header(number, header),
            Frame::Body { payload, .. } if expecting_content => self.content_body(number, payload),
            Frame::Heartbeat => {
                let reply = Reply::connection(
                    reply_code::UNEXPECTED_FRAME,
                    format!("type 8, heartbeat on channel {number}"),
                );
                self.close_with(&reply, 0, 0)
            }
            _ => {
                let reply = Reply::connection(
                    reply_code::UNEXPECTED_FRAME,
                    "expected method frame, got non method frame instead",
                );
                self.close_with(&reply, 0, 0)
            }
        }
    }

    /// The frames of publishing (`basic.publish`, then a content header and body frames)
    /// on an open channel, handled at once without building a [`Frame`]. Any other frame is
    /// handed back for [`Connection::handle_frame`].
    ///
    /// # Errors
    /// A payload that does not decode; the connection must be closed as for any frame.
    pub fn publish_frame(&mut self, raw: RawFrame) -> Result<Result<Next, RawFrame>, DecodeError> {
        if self.phase != super::connection::Phase::Open {
            return Ok(Err(raw));
        }
        let number = raw.channel;
        let Some(channel) = self.channels.get_mut(&number).filter(|c| !c.closing) else {
            return Ok(Err(raw));
        };
        match (raw.frame_type, &channel.assembly) {
            (FrameType::Method, None) if raw.payload.get(..4) == Some(&[0, 60, 0, 40]) => {
                match Method::decode(&raw.payload)? {
                    Method::BasicPublish(publish) if !publish.immediate => {
                        channel.assembly =
                            Some(Assembly { method: publish, header: None, body: Vec::new(), body_bytes: 0 });
                        Ok(Ok(Next::Continue))
                    }
                    _ => Ok(Err(raw)),
                }
            }
            (FrameType::Header, Some(Assembly { header: None, .. })) => {
                let header = ContentHeader::decode(raw.payload)?;
                Ok(Ok(self.content_header(number, header)))
            }
            (FrameType::Body, Some(Assembly { header: Some(_), .. })) => {
                Ok(Ok(self.content_body(number, raw.payload)))
            }
            _ => Ok(Err(raw)),
        }
    }

    fn content_header(&mut self, number: u16, header: ContentHeader) -> Next {
        let Some(channel) = self.channel(number) else { return Next::Continue };
        let Some(assembly) = channel.assembly.as_mut() else { return Next::Continue };
        if assembly.header.is_some() {
            let reply = Reply::connection(
                reply_code::UNEXPECTED_FRAME,
                "expected content body, got non content body frame instead",
            );
            return self.close_with(&reply, 60, 40);
        }
        let size = header.body_size();
        if size > crate::limits::MESSAGE_BYTES_MAX {
            let reply = Reply::channel(
                reply_code::PRECONDITION_FAILED,
                format!(
                    "message size {size} is larger than configured max size {}",
                    crate::limits::MESSAGE_BYTES_MAX
                ),
            );
            channel.assembly = None;
            return self.channel_error(number, &reply, 60, 40);
        }
        assembly.header = Some(header);
        if size == 0 {
            return self.complete_publish(number);
        }
        Next::Continue
    }

    fn content_body(&mut self, number: u16, payload: Bytes) -> Next {
        let Some(channel) = self.channel(number) else { return Next::Continue };
        let Some(assembly) = channel.assembly.as_mut() else { return Next::Continue };
        let Some(header) = &assembly.header else {
            let reply = Reply::connection(
                reply_code::UNEXPECTED_FRAME,
                "expected content header for class 60, got non content header frame instead",
            );
            return self.close_with(&reply, 60, 40);
        };
        let expected = header.body_size();
        assembly.body_bytes += payload.len() as u64;
        if !payload.is_empty() {
            assembly.body.push(payload);
        }
        let have = assembly.body_bytes;
        if have > expected {
            let reply = Reply::connection(
                reply_code::FRAME_ERROR,
                format!("content body larger than declared: {have} > {expected}"),
            );
            return self.close_with(&reply, 60, 40);
        }
        if have == expected {
            return self.complete_publish(number);
        }
        Next::Continue
    }

    fn complete_publish(&mut self, number: u16) -> Next {
        self.has_published = true;
        let Some(channel) = self.channel(number) else { return Next::Continue };
        let Some(Assembly { method, header: Some(header), body, .. }) = channel.assembly.take() else {
            return Next::Continue;
        };
        // A body that arrived in one frame is kept as the slice of the read buffer it is;
        // only a body split across frames is joined (once).
        let body = match body.len() {
            0 => Bytes::new(),
            1 => body.into_iter().next().unwrap_or_default(),
            _ => {
                let mut joined = BytesMut::with_capacity(body.iter().map(Bytes::len).sum());
                for piece in &body {
                    joined.extend_from_slice(piece);
                }
                joined.freeze()
            }
        };
        let properties = match header.publish_properties() {
            Ok(properties) => properties,
            Err(error) => return self.undecodable_header(&error),
        };
        if let Some(user_id) = &properties.user_id {
            if user_id.as_bytes() != self.user.as_bytes() {
                let reply = Reply::channel(
                    reply_code::PRECONDITION_FAILED,
                    format!(
                        "user_id property set to '{}' but authenticated user was '{}'",
                        text(user_id.as_bytes()),
                        self.user
                    ),
                );
                return self.channel_error(number, &reply, 60, 40);
            }
        }
        let mut header = header;
        if properties.reply_to.as_ref().is_some_and(|r| r.as_bytes() == REPLY_TO) {
            let Some(own) = self.channel(number).and_then(|c| c.reply_to_queue.clone()) else {
                let reply =
                    Reply::channel(reply_code::PRECONDITION_FAILED, "fast reply consumer does not exist");
                return self.channel_error(number, &reply, 60, 40);
            };
            let mut rewritten = match header.properties() {
                Ok(all) => all,
                Err(error) => return self.undecodable_header(&error),
            };
            rewritten.reply_to = Some(short(&own));
            header = header.with_properties(&rewritten);
        }
        let exchange = method.exchange.as_bytes();
        let routed = match &properties.headers {
            None => self.routes.route(&self.broker, exchange, method.routing_key.as_bytes()),
            Some(headers) => {
                let mut queues = Vec::new();
                self.broker
                    .route(exchange, method.routing_key.as_bytes(), Some(headers), &mut queues)
                    .map(|()| queues.into())
            }
        };
        let queues: Route = match routed {
            Ok(queues) => queues,
            Err(error) => return self.channel_error(number, &Reply::from(&error), 60, 40),
        };
        let channel = self.channels.get_mut(&number).expect("channel exists");
        let confirm_seq = channel.confirm.then(|| {
            let seq = channel.confirm_next;
            channel.confirm_next += 1;
            channel.unconfirmed.insert(seq);
            seq
        });
        if queues.is_empty() {
            if method.mandatory {
                let returned = BasicReturn {
                    reply_code: reply_code::NO_ROUTE,
                    reply_text: ShortStr::from_static("NO_ROUTE"),
                    exchange: method.exchange.clone(),
                    routing_key: method.routing_key.clone(),
                };
                self.send_content(number, &returned.into(), &header, &body, self.frame_max);
            }
            if let Some(seq) = confirm_seq {
                // Nothing to wait for, but the ack must not overtake earlier publishes'.
                self.staged.confirms.push((number, seq));
            }
            return Next::Continue;
        }
        let expires_at_ms = properties
            .expiration
            .as_ref()
            .and_then(|e| e.as_str().ok().and_then(|s| s.parse::<i64>().ok()))
            .map(|ttl| now_ms().saturating_add(ttl.max(0)));
        let message = Message {
            persistent: properties.delivery_mode == Some(2),
            priority: properties.priority.unwrap_or(0),
            expires_at_ms,
            exchange: method.exchange.into_bytes(),
            routing_key: method.routing_key.into_bytes(),
            content_header: header.into_raw(),
            body,
        };
        // Queues that refuse publishes while full (x-overflow reject-publish) are left out,
        // and the publish is nacked.
        let full = |q: &QueueEntry| {
            q.args.overflow == Overflow::RejectPublish
                && q.args.max_length.is_some_and(|max| q.handle.ready_count() >= max)
        };
        let rejected = queues.iter().any(|q| full(q));
        let record = message.to_record_in(&mut self.record_arena);
        if channel.transactional {
            let queues = queues.iter().filter(|q| !full(q)).cloned().collect();
            channel.held_publishes.push(HeldPublish { queues, record });
            return Next::Continue;
        }
        if rejected {
            if let Some(seq) = confirm_seq {
                self.pending
                    .push(Box::pin(async move { PublishDone { confirms: vec![(number, seq)], ok: false } }));
            }
        } else if let Some(seq) = confirm_seq {
            self.staged.confirms.push((number, seq));
        }
        for queue in queues.iter().filter(|q| !rejected || !full(q)) {
            match self.staged.queues.iter_mut().find(|(q, _)| q.id == queue.id) {
                Some((_, records)) => records.push(record.clone()),
                None => self.staged.queues.push((Arc::clone(queue), vec![record.clone()])),
            }
        }
        Next::Continue
    }

    /// Closes the connection over a content header whose properties do not decode.
    fn undecodable_header(&mut self, error: &DecodeError) -> Next {
        let reply = Reply::connection(error.reply_code(), format!("cannot decode content header: {error}"));
        self.close_with(&reply, 60, 40)
    }

    /// Hands the staged publishes to their queues' logs: one append per queue for all the
    /// publishes of one read. Their confirms follow the appends' commits.
    pub async fn flush_publishes(&mut self) {
        if self.staged.queues.is_empty() && self.staged.confirms.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut self.staged);
        let mut receipts = Vec::with_capacity(staged.queues.len());
        let mut ok = true;
        for (queue, records) in staged.queues {
            match queue.handle.log().submit(records).await {
                Ok(receipt) => receipts.push(receipt),
                Err(error) => {
                    tracing::error!(queue = %queue.name_str(), %error, "publish failed");
                    ok = false;
                }
            }
        }
        let confirms = staged.confirms;
        self.pending.push(Box::pin(async move {
            let mut ok = ok;
            for receipt in receipts {
                ok &= receipt.await.is_ok();
            }
            PublishDone { confirms, ok }
        }));
    }

    /// Waits until every publish handed to the queues is committed (sending the confirms).
    pub async fn settle_publishes(&mut self) {
        use futures::StreamExt;
        while let Some(done) = self.pending.next().await {
            self.publish_done(done);
        }
    }

    /// Sends the confirms of completed publishes: nacks one by one at once, acks as one
    /// `multiple` ack up to the lowest publish still pending on the channel.
    pub fn publish_done(&mut self, done: PublishDone) {
        let mut touched: Vec<u16> = Vec::new();
        for (number, seq) in done.confirms {
            let Some(channel) = self.channels.get_mut(&number).filter(|c| !c.closing) else { continue };
            channel.unconfirmed.remove(&seq);
            if !done.ok {
                channel.nacked.insert(seq);
                let nack = BasicNack { delivery_tag: seq, multiple: false, requeue: false };
                encode_method_frame(&mut self.out, number, &nack.into());
            }
            if !touched.contains(&number) {
                touched.push(number);
            }
        }
        for number in touched {
            let Some(channel) = self.channels.get_mut(&number) else { continue };
            let through = channel.unconfirmed.first().map_or(channel.confirm_next, |low| *low) - 1;
            if through <= channel.acked_through {
                continue;
            }
            let nacked: Vec<u64> =
                channel.nacked.range(channel.acked_through + 1..=through).copied().collect();
            if nacked.is_empty() {
                let ack = BasicAck { delivery_tag: through, multiple: true };
                encode_method_frame(&mut self.out, number, &ack.into());
            } else {
                for seq in (channel.acked_through + 1)..=through {
                    if !channel.nacked.remove(&seq) {
                        let ack = BasicAck { delivery_tag: seq, multiple: false };
                        encode_method_frame(&mut self.out, number, &ack.into());
                    }
                }
            }
            channel.acked_through = through;
        }
    }

    /// Writes a queue's delivery (or consumer cancellation) to the client.
    pub fn consumer_event(&mut self, event: ConsumerEvent) {
        match event {
            ConsumerEvent::Deliver(delivery) => self.deliver(delivery),
            ConsumerEvent::Cancelled { channel, consumer_tag } => {
                let number = (channel & 0xFFFF) as u16;
                let Some(entry) = self.channels.get_mut(&number).filter(|c| c.id == channel && !c.closing)
                else {
                    return;
                };
                if entry.consumers.remove(&consumer_tag).is_some() {
                    let cancel = BasicCancel { consumer_tag: short(&consumer_tag), no_wait: true };
                    encode_method_frame(&mut self.out, number, &cancel.into());
                }
            }
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        let number = (delivery.channel & 0xFFFF) as u16;
        let frame_max = self.frame_max;
        // Deliveries for a channel that has closed are requeued by the queue itself when it
        // learns of the close.
        let Some(channel) = self.channels.get_mut(&number).filter(|c| c.id == delivery.channel && !c.closing)
        else {
            return;
        };
        let Some(tag) = delivery.consumer_tag.as_ref() else { return };
        let Some(consumer) = channel.consumers.get(tag) else {
            if let Some(queue) = channel.touched.get(delivery.queue.as_bytes()) {
                queue.handle.reject(channel.id, vec![delivery.offset], true);
            }
            return;
        };
        let Some(view) = MessageView::parse(&delivery.record.header) else {
            tracing::error!(queue = %delivery.queue, offset = delivery.offset, "stored message header is damaged");
            return;
        };
        let queue = delivery.needs_ack.then(|| Arc::clone(&consumer.queue));
        let delivery_tag = channel.take_tag();
        if let Some(queue) = queue {
            channel.unacked.insert(delivery_tag, Unacked { queue, offset: delivery.offset, counted: true });
        }
        encode_deliver_frame(
            &mut self.out,
            number,
            tag,
            delivery_tag,
            delivery.redelivered,
            view.exchange,
            view.routing_key,
        );
        if delivery.stream {
            // Stream deliveries carry their offset, spliced into the stored header's bytes.
            let stored = delivery.record.header.slice_ref(view.content_header);
            self.send_stream_header_frame(number, &stored, delivery.offset);
            self.send_body_frames(number, &delivery.record.body, frame_max);
        } else {
            self.send_content_frames(number, view.content_header, &delivery.record.body, frame_max);
        }
    }

    async fn drop_channel(&mut self, number: u16) {
        if let Some(channel) = self.channels.remove(&number) {
            self.release_channel(channel).await;
        }
    }

    /// Requeues a closed channel's unacked deliveries and removes its consumers.
    pub(super) async fn release_channel(&mut self, channel: Channel) {
        let mut emptied = Vec::new();
        for (tag, consumer) in &channel.consumers {
            if let Ok(true) = consumer.queue.handle.cancel(channel.id, tag.clone()).await {
                emptied.push(Arc::clone(&consumer.queue));
            }
        }
        for queue in channel.touched.values() {
            queue.handle.channel_closed(channel.id).await;
        }
        for queue in emptied {
            self.broker.consumers_gone(&queue).await;
        }
    }

    async fn channel_method(&mut self, number: u16, method: Method) -> Next {
        let (class_id, method_id) = (method.class_id(), method.method_id());
        match self.channel_method_inner(number, method).await {
            Ok(next) => next,
            Err(reply) => self.channel_error(number, &reply, class_id, method_id),
        }
    }

    async fn channel_method_inner(&mut self, number: u16, method: Method) -> Result<Next, Reply> {
        let connection = self.id;
        let broker = Arc::clone(&self.broker);
        let broker_error = |e: broker::Error| Reply::from(&e);
        match method {
            Method::ChannelOpen(_) => {
                return Err(Reply::connection(reply_code::CHANNEL_ERROR, "second 'channel.open' seen"));
            }
            Method::ChannelClose(_) => {
                encode_method_frame(&mut self.out, number, &ChannelCloseOk::default().into());
                self.drop_channel(number).await;
            }
            Method::ChannelCloseOk(_) => {}
            Method::ChannelFlow(flow) => {
                // RabbitMQ 3.x does not stop deliveries on request: active=false is refused.
                if !flow.active {
                    return Err(Reply::connection(reply_code::NOT_IMPLEMENTED, "active=false"));
                }
                self.send(number, &ChannelFlowOk { active: true }.into());
            }
            Method::ExchangeDeclare(declare) => {
                let no_wait = declare.no_wait;
                broker
                    .declare_exchange(broker::ExchangeDeclare {
                        name: declare.exchange.to_bytes(),
                        kind: declare.kind.to_bytes(),
                        passive: declare.passive,
                        durable: declare.durable,
                        auto_delete: declare.auto_delete,
                        internal: declare.internal,
                        arguments: declare.arguments,
                    })
                    .await
                    .map_err(broker_error)?;
                if !no_wait {
                    self.send(number, &ExchangeDeclareOk::default().into());
                }
            }
            Method::ExchangeDelete(delete) => {
                broker
                    .delete_exchange(delete.exchange.as_bytes(), delete.if_unused)
                    .await
                    .map_err(broker_error)?;
                if !delete.no_wait {
                    self.send(number, &ExchangeDeleteOk::default().into());
                }
            }
            Method::ExchangeBind(bind) => {
                let (source, destination) = (bind.source.as_bytes(), bind.destination.as_bytes());
                broker
                    .bind(source, destination, false, bind.routing_key.as_bytes(), bind.arguments, connection)
                    .await
                    .map_err(broker_error)?;
                if !bind.no_wait {
                    self.send(number, &ExchangeBindOk::default().into());
                }
            }
            Method::ExchangeUnbind(unbind) => {
                let (source, destination) = (unbind.source.as_bytes(), unbind.destination.as_bytes());
                broker
                    .unbind(
                        source,
                        destination,
                        false,
                        unbind.routing_key.as_bytes(),
                        &unbind.arguments,
                        connection,
                    )
                    .await
                    .map_err(broker_error)?;
                if !unbind.no_wait {
                    self.send(number, &ExchangeUnbindOk::default().into());
                }
            }
            Method::QueueDeclare(declare) => {
                let no_wait = declare.no_wait;
                let (queue, messages, consumers) = broker
                    .declare_queue(broker::QueueDeclare {
                        name: declare.queue.to_bytes(),
                        passive: declare.passive,
                        durable: declare.durable,
                        exclusive: declare.exclusive,
                        auto_delete: declare.auto_delete,
                        arguments: declare.arguments,
                        connection,
                    })
                    .await
                    .map_err(broker_error)?;
                if let Some(channel) = self.channel(number) {
                    channel.last_queue = Some(queue.name.clone());
                }
                if !no_wait {
                    let ok = QueueDeclareOk {
                        queue: short(&queue.name),
                        message_count: messages,
                        consumer_count: consumers,
                    };
                    self.send(number, &ok.into());
                }
            }
            Method::QueueBind(bind) => {
                let queue = self.queue_name(number, bind.queue.as_bytes());
                broker
                    .bind(
                        bind.exchange.as_bytes(),
                        &queue,
                        true,
                        bind.routing_key.as_bytes(),
                        bind.arguments,
                        connection,
                    )
                    .await
                    .map_err(broker_error)?;
                if !bind.no_wait {
                    self.send(number, &QueueBindOk::default().into());
                }
            }
            Method::QueueUnbind(unbind) => {
                let queue = self.queue_name(number, unbind.queue.as_bytes());
                broker
                    .unbind(
                        unbind.exchange.as_bytes(),
                        &queue,
                        true,
                        unbind.routing_key.as_bytes(),
                        &unbind.arguments,
                        connection,
                    )
                    .await
                    .map_err(broker_error)?;
                self.send(number, &QueueUnbindOk::default().into());
            }
            Method::QueuePurge(purge) => {
                let queue = self.queue_name(number, purge.queue.as_bytes());
                if broker.queue(&queue).is_some_and(|q| q.is_stream()) {
                    return Err(Reply::connection(
                        reply_code::NOT_IMPLEMENTED,
                        format!(
                            "queue.purge not supported by stream queues queue '{}' in vhost '/'",
                            text(&queue)
                        ),
                    ));
                }
                let count = broker.purge_queue(&queue, connection).await.map_err(broker_error)?;
                if !purge.no_wait {
                    self.send(number, &QueuePurgeOk { message_count: count }.into());
                }
            }
            Method::QueueDelete(delete) => {
                let queue = self.queue_name(number, delete.queue.as_bytes());
                let count = broker
                    .delete_queue(&queue, delete.if_unused, delete.if_empty, Some(connection))
                    .await
                    .map_err(broker_error)?;
                if !delete.no_wait {
                    self.send(number, &QueueDeleteOk { message_count: count }.into());
                }
            }
            Method::BasicQos(qos) => {
                if qos.prefetch_size != 0 {
                    return Err(Reply::connection(
                        reply_code::NOT_IMPLEMENTED,
                        format!("prefetch_size!=0 ({})", qos.prefetch_size),
                    ));
                }
                if let Some(channel) = self.channel(number) {
                    if qos.global {
                        channel.credit.limit.store(u32::from(qos.prefetch_count), Ordering::Release);
                    } else {
                        channel.consumer_prefetch = qos.prefetch_count;
                    }
                }
                self.send(number, &BasicQosOk::default().into());
            }
            Method::BasicConsume(consume) => self.consume(number, consume).await?,
            Method::BasicCancel(cancel) => {
                let tag = cancel.consumer_tag.to_bytes();
                let removed = self.channel(number).and_then(|c| c.consumers.remove(&tag).map(|e| (c.id, e)));
                if let Some((channel_id, entry)) = removed {
                    if let Ok(true) = entry.queue.handle.cancel(channel_id, tag).await {
                        broker.consumers_gone(&entry.queue).await;
                    }
                }
                if !cancel.no_wait {
                    self.send(number, &BasicCancelOk { consumer_tag: cancel.consumer_tag }.into());
                }
            }
            Method::BasicPublish(publish) if publish.immediate => {
                // RabbitMQ 3.x refuses the immediate flag as a connection error.
                return Err(Reply::connection(reply_code::NOT_IMPLEMENTED, "immediate=true"));
            }
            Method::BasicPublish(publish) => {
                if let Some(channel) = self.channel(number) {
                    channel.assembly =
                        Some(Assembly { method: publish, header: None, body: Vec::new(), body_bytes: 0 });
                }
            }
            Method::BasicGet(get) => self.get(number, get.queue.as_bytes(), get.no_ack).await?,
            Method::BasicAck(ack) => self.settle(number, ack.delivery_tag, ack.multiple, None)?,
            Method::BasicReject(reject) => {
                self.settle(number, reject.delivery_tag, false, Some(reject.requeue))?
            }
            Method::BasicNack(nack) => {
                self.settle(number, nack.delivery_tag, nack.multiple, Some(nack.requeue))?
            }
            Method::BasicRecover(_) | Method::BasicRecoverAsync(_) => {
                let recover_ok = matches!(method, Method::BasicRecover(_));
                if let Some(channel) = self.channel(number) {
                    let unacked = std::mem::take(&mut channel.unacked);
                    let counted = unacked.values().filter(|u| u.counted).count() as u32;
                    channel.credit.give_back(counted);
                    for queue in channel.touched.values() {
                        queue.handle.recover(channel.id);
                    }
                }
                if recover_ok {
                    self.send(number, &BasicRecoverOk::default().into());
                }
            }
            Method::ConfirmSelect(select) => {
                let channel = self.channel(number).expect("open channel");
                if channel.transactional {
                    return Err(Reply::channel(
                        reply_code::PRECONDITION_FAILED,
                        "cannot switch from tx to confirm mode",
                    ));
                }
                channel.confirm = true;
                if !select.nowait {
                    self.send(number, &ConfirmSelectOk::default().into());
                }
            }
            Method::TxSelect(_) => {
                let channel = self.channel(number).expect("open channel");
                if channel.confirm {
                    return Err(Reply::channel(
                        reply_code::PRECONDITION_FAILED,
                        "cannot switch from confirm to tx mode",
                    ));
                }
                channel.transactional = true;
                self.send(number, &TxSelectOk::default().into());
            }
            Method::TxCommit(_) => self.commit(number).await?,
            Method::TxRollback(_) => {
                let channel = self.channel(number).expect("open channel");
                if !channel.transactional {
                    return Err(Reply::channel(
                        reply_code::PRECONDITION_FAILED,
                        "channel is not transactional",
                    ));
                }
                channel.held_publishes.clear();
                channel.held_settlements.clear();
                self.send(number, &TxRollbackOk::default().into());
            }
            other => {
                return Err(Reply::connection(
                    reply_code::COMMAND_INVALID,
                    format!("unexpected method {} on a channel", other.name()),
                ));
            }
        }
        Ok(Next::Continue)
    }

    /// An empty queue name means the channel's last declared queue.
    fn queue_name(&mut self, number: u16, name: &[u8]) -> Bytes {
        if name.is_empty() {
            if let Some(last) = self.channel(number).and_then(|c| c.last_queue.clone()) {
                return last;
            }
        }
        Bytes::copy_from_slice(name)
    }

    async fn consume(&mut self, number: u16, consume: crate::wire::amqp::BasicConsume) -> Result<(), Reply> {
        let connection = self.id;
        let broker = Arc::clone(&self.broker);
        let mut queue_name = self.queue_name(number, consume.queue.as_bytes());
        if queue_name == REPLY_TO {
            queue_name = self.reply_to_queue(number).await?;
        }
        let queue = broker.queue_for(&queue_name, connection).map_err(|e| Reply::from(&e))?;
        let stream =
            if queue.is_stream() { Some(self.stream_attach(number, &queue, &consume)?) } else { None };
        let events = self.events.clone();
        let channel = self.channel(number).expect("open channel");
        let tag = if consume.consumer_tag.is_empty() {
            Bytes::from(generated_name("amq.ctag-"))
        } else {
            consume.consumer_tag.to_bytes()
        };
        if channel.consumers.contains_key(&tag) {
            return Err(Reply::connection(
                reply_code::NOT_ALLOWED,
                format!("attempt to reuse consumer tag '{}'", text(&tag)),
            ));
        }
        let priority = consume
            .arguments
            .get_i64("x-priority")
            .unwrap_or(0)
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        let spec = ConsumerSpec {
            channel: channel.id,
            tag: tag.clone(),
            sink: events,
            prefetch: u32::from(channel.consumer_prefetch),
            channel_credit: Arc::clone(&channel.credit),
            no_ack: consume.no_ack,
            exclusive: consume.exclusive,
            priority,
            stream,
        };
        channel.touched.insert(queue.name.clone(), Arc::clone(&queue));
        channel.consumers.insert(tag.clone(), ConsumerEntry { queue: Arc::clone(&queue) });
        queue.touch();
        // Deliveries reach this connection's event queue, which is served only after this
        // frame is handled: the consume-ok below still precedes every delivery on the wire.
        if let Err(error) = queue.handle.consume(spec).await {
            if let Some(channel) = self.channel(number) {
                channel.consumers.remove(&tag);
            }
            return Err(Reply::from(&error));
        }
        if !consume.no_wait {
            self.send(number, &BasicConsumeOk { consumer_tag: short(&tag) }.into());
        }
        Ok(())
    }

    /// Checks a consume on a stream as RabbitMQ does and reads its offset specification.
    fn stream_attach(
        &mut self,
        number: u16,
        queue: &QueueEntry,
        consume: &crate::wire::amqp::BasicConsume,
    ) -> Result<StreamAttach, Reply> {
        let described = format!("queue '{}' in vhost '/'", queue.name_str());
        if consume.no_ack {
            return Err(Reply::connection(
                reply_code::NOT_IMPLEMENTED,
                format!("automatic acknowledgement not supported by stream queues {described}"),
            ));
        }
        let channel = self.channel(number).expect("open channel");
        if channel.consumer_prefetch == 0 && channel.credit.limit.load(Ordering::Acquire) == 0 {
            return Err(Reply::channel(
                reply_code::PRECONDITION_FAILED,
                format!("consumer prefetch count is not set for '{described}'"),
            ));
        }
        let offset = match consume.arguments.get("x-stream-offset") {
            None => None,
            Some(value) => Some(stream_offset(value).ok_or_else(|| {
                Reply::channel(
                    reply_code::PRECONDITION_FAILED,
                    format!("invalid x-stream-offset for {described}"),
                )
            })?),
        };
        let name =
            consume.arguments.get_str("x-stream-consumer-name").map(str::to_owned).or_else(|| {
                (!consume.consumer_tag.is_empty()).then(|| text(consume.consumer_tag.as_bytes()))
            });
        Ok(StreamAttach { offset, name })
    }

    /// Creates the hidden queue behind this channel's direct reply-to consumer.
    async fn reply_to_queue(&mut self, number: u16) -> Result<Bytes, Reply> {
        if let Some(existing) = self.channel(number).and_then(|c| c.reply_to_queue.clone()) {
            return Ok(existing);
        }
        let name = Bytes::from(generated_name("amq.rabbitmq.reply-to."));
        let request = broker::QueueDeclare {
            name: name.clone(),
            exclusive: true,
            auto_delete: true,
            connection: self.id,
            ..Default::default()
        };
        self.broker
            .create_queue(&request, broker::QueueArgs::default())
            .await
            .map_err(|e| Reply::from(&e))?;
        if let Some(channel) = self.channel(number) {
            channel.reply_to_queue = Some(name.clone());
        }
        Ok(name)
    }

    async fn get(&mut self, number: u16, name: &[u8], no_ack: bool) -> Result<(), Reply> {
        let queue_name = self.queue_name(number, name);
        let queue = self.broker.queue_for(&queue_name, self.id).map_err(|e| Reply::from(&e))?;
        if queue.is_stream() {
            return Err(Reply::connection(
                reply_code::NOT_IMPLEMENTED,
                format!("basic.get not supported by stream queues queue '{}' in vhost '/'", queue.name_str()),
            ));
        }
        queue.touch();
        let channel = self.channels.get_mut(&number).expect("open channel");
        channel.touched.insert(queue.name.clone(), Arc::clone(&queue));
        let delivery = queue.handle.get(channel.id, no_ack).await.map_err(|e| Reply::from(&e))?;
        let Some(delivery) = delivery else {
            self.send(number, &BasicGetEmpty::default().into());
            return Ok(());
        };
        let channel = self.channels.get_mut(&number).expect("open channel");
        let delivery_tag = channel.take_tag();
        if !no_ack {
            channel.unacked.insert(delivery_tag, Unacked { queue, offset: delivery.offset, counted: false });
        }
        let Some(message) = Message::from_record(&delivery.record) else {
            return Err(Reply::connection(reply_code::INTERNAL_ERROR, "stored message header is damaged"));
        };
        let get_ok = BasicGetOk {
            delivery_tag,
            redelivered: delivery.redelivered,
            exchange: shared(&message.exchange),
            routing_key: shared(&message.routing_key),
            message_count: delivery.message_count,
        };
        self.send(number, &get_ok.into());
        self.send_content_frames(number, &message.content_header, &message.body, self.frame_max);
        Ok(())
    }

    /// ack (`requeue` None), reject or nack (`requeue` Some).
    fn settle(
        &mut self,
        number: u16,
        delivery_tag: u64,
        multiple: bool,
        requeue: Option<bool>,
    ) -> Result<(), Reply> {
        let channel = self.channels.get_mut(&number).expect("open channel");
        let settled: Vec<(u64, Unacked)> = if multiple {
            let upto = if delivery_tag == 0 { u64::MAX } else { delivery_tag };
            if delivery_tag != 0 && !channel.unacked.contains_key(delivery_tag) {
                return Err(Reply::channel(
                    reply_code::PRECONDITION_FAILED,
                    format!("unknown delivery tag {delivery_tag}"),
                ));
            }
            channel.unacked.remove_through(upto)
        } else {
            match channel.unacked.remove(delivery_tag) {
                Some(unacked) => vec![(delivery_tag, unacked)],
                None => {
                    return Err(Reply::channel(
                        reply_code::PRECONDITION_FAILED,
                        format!("unknown delivery tag {delivery_tag}"),
                    ));
                }
            }
        };
        let counted = settled.iter().filter(|(_, u)| u.counted).count() as u32;
        channel.credit.give_back(counted);
        // A channel's deliveries come from few queues: a short list beats hashing names.
        let mut by_queue: Vec<(Arc<QueueEntry>, Vec<u64>)> = Vec::new();
        for (_, unacked) in settled {
            match by_queue.iter_mut().find(|(queue, _)| queue.id == unacked.queue.id) {
                Some((_, offsets)) => offsets.push(unacked.offset),
                None => by_queue.push((unacked.queue, vec![unacked.offset])),
            }
        }
        for (queue, offsets) in by_queue {
            if channel.transactional {
                channel.held_settlements.push((queue, offsets, requeue));
                continue;
            }
            match requeue {
                None => queue.handle.ack(channel.id, offsets),
                Some(requeue) => queue.handle.reject(channel.id, offsets, requeue),
            }
        }
        Ok(())
    }

    async fn commit(&mut self, number: u16) -> Result<(), Reply> {
        let channel = self.channels.get_mut(&number).expect("open channel");
        if !channel.transactional {
            return Err(Reply::channel(reply_code::PRECONDITION_FAILED, "channel is not transactional"));
        }
        let publishes = std::mem::take(&mut channel.held_publishes);
        let settlements = std::mem::take(&mut channel.held_settlements);
        let channel_id = channel.id;
        for held in publishes {
            for queue in held.queues {
                if let Err(error) = queue.handle.log().append(vec![held.record.clone()]).await {
                    return Err(Reply::connection(
                        reply_code::INTERNAL_ERROR,
                        format!("commit failed: {error}"),
                    ));
                }
            }
        }
        for (queue, offsets, requeue) in settlements {
            match requeue {
                None => queue.handle.ack(channel_id, offsets),
                Some(requeue) => queue.handle.reject(channel_id, offsets, requeue),
            }
        }
        self.send(number, &TxCommitOk::default().into());
        Ok(())
    }
}

/// Reads `x-stream-offset`: `first`, `last`, `next`, an offset (negative: that many before
/// the end), an AMQP timestamp (seconds), or an interval such as `1h` or `30m` (that long
/// ago).
fn stream_offset(value: &FieldValue) -> Option<StreamOffset> {
    match value {
        FieldValue::Timestamp(seconds) => {
            Some(StreamOffset::TimestampMs(i64::try_from(*seconds).ok()?.saturating_mul(1000)))
        }
        FieldValue::LongStr(text) => match &text[..] {
            b"first" => Some(StreamOffset::First),
            b"last" => Some(StreamOffset::Last),
            b"next" => Some(StreamOffset::Next),
            other => {
                let interval = crate::broker::arguments::parse_max_age(std::str::from_utf8(other).ok()?)?;
                Some(StreamOffset::TimestampMs(now_ms().saturating_sub(interval.as_millis() as i64)))
            }
        },
        other => {
            let number = other.as_i64()?;
            Some(if number < 0 {
                StreamOffset::FromEnd(number.unsigned_abs())
            } else {
                StreamOffset::Offset(number as u64)
            })
        }
    }
}
