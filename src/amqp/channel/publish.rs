//! Publishing: a `basic.publish` and its content (header and body frames) assembled into a
//! [`Message`], checked, routed, and staged for its queues' logs; then the staged publishes
//! flushed (one append per queue per read) and settled. Confirms of these publishes are
//! counted in [`super::confirm`]; a transaction's publishes are held in [`super::tx`].

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{Channel, Context};
use crate::amqp::connection::{Connection, Next, PendingPublishes, Phase, PublishDone, Staged};
use crate::amqp::output::short;
use crate::amqp::reply::{ProtocolError, Reply};
use crate::amqp::routes::Route;
use crate::broker::QueueEntry;
use crate::limits::MESSAGE_BYTES_MAX;
use crate::log::now_ms;
use crate::queue::message::Message;
use crate::wire::amqp::{
    reply_code, BasicProperties, BasicPublish, BasicReturn, ContentHeader, DecodeError, FrameType, Method,
    PublishProperties, RawFrame, ShortStr,
};

/// The pseudo-queue of direct reply-to.
pub(super) const REPLY_TO: &[u8] = b"amq.rabbitmq.reply-to";

/// A publish whose content is still arriving.
struct Assembly {
    method: BasicPublish,
    header: Option<ContentHeader>,
    /// Body frames' payloads as received: slices of the read buffer, not copies.
    body: Vec<Bytes>,
    body_bytes: u64,
}

/// A channel's publish in progress, if any.
#[derive(Default)]
pub(super) struct Publishing {
    assembly: Option<Assembly>,
}

impl Publishing {
    /// Whether a `basic.publish` waits for its content header or body.
    pub(super) fn expecting_content(&self) -> bool {
        self.assembly.is_some()
    }

    /// Forgets the publish in progress (the channel is closing).
    pub(super) fn abandon(&mut self) {
        self.assembly = None;
    }

    fn start(&mut self, method: BasicPublish) {
        self.assembly = Some(Assembly { method, header: None, body: Vec::new(), body_bytes: 0 });
    }
}

impl Connection {
    /// The frames of publishing (`basic.publish`, then a content header and body frames)
    /// on an open channel, handled at once without building a [`crate::wire::amqp::Frame`].
    /// Any other frame is handed back for [`Connection::handle_frame`].
    ///
    /// # Errors
    /// A payload that does not decode; the connection must be closed as for any frame.
    pub fn publish_frame(&mut self, raw: RawFrame) -> Result<Result<Next, RawFrame>, DecodeError> {
        if self.phase != Phase::Open {
            return Ok(Err(raw));
        }
        let Some((channel, mut cx)) = self.split(raw.channel).filter(|(c, _)| !c.closing) else {
            return Ok(Err(raw));
        };
        let result = match (raw.frame_type, &channel.publishing.assembly) {
            (FrameType::Method, None) if raw.payload.get(..4) == Some(&[0, 60, 0, 40]) => {
                return match Method::decode(&raw.payload)? {
                    Method::BasicPublish(publish) if !publish.immediate => {
                        channel.publishing.start(publish);
                        Ok(Ok(Next::Continue))
                    }
                    _ => Ok(Err(raw)),
                };
            }
            (FrameType::Header, Some(Assembly { header: None, .. })) => {
                let header = ContentHeader::decode(raw.payload)?;
                channel.content_header(&mut cx, header)
            }
            (FrameType::Body, Some(Assembly { header: Some(_), .. })) => {
                channel.content_body(&mut cx, raw.payload)
            }
            _ => return Ok(Err(raw)),
        };
        Ok(Ok(match result {
            Ok(()) => Next::Continue,
            Err(reply) => channel.fail(&mut cx, &reply, 60, 40),
        }))
    }

    /// Hands the staged publishes to their queues' logs: one append per queue for all the
    /// publishes of one read. Their confirms follow the appends' commits. The read's
    /// publishes are added to their exchanges' counters.
    pub async fn flush_publishes(&mut self) {
        self.routes.flush_counts();
        flush(&mut self.staged, &mut self.pending).await;
    }

    /// Waits until every publish handed to the queues is committed (sending the confirms).
    pub async fn settle_publishes(&mut self) {
        use futures::StreamExt;
        while let Some(done) = self.pending.next().await {
            self.publish_done(done);
        }
    }
}

/// See [`Connection::flush_publishes`].
pub(super) async fn flush(staged: &mut Staged, pending: &mut PendingPublishes) {
    if staged.queues.is_empty() && staged.confirms.is_empty() {
        return;
    }
    let staged = std::mem::take(staged);
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
    pending.push(Box::pin(async move {
        let mut ok = ok;
        for receipt in receipts {
            ok &= receipt.await.is_ok();
        }
        PublishDone { confirms, ok }
    }));
}

impl Channel {
    /// `basic.publish` through the general path: its content follows.
    pub(super) fn start_publish(&mut self, publish: BasicPublish) -> Result<(), Reply> {
        if publish.immediate {
            // RabbitMQ 3.x refuses the immediate flag as a connection error.
            return Err(ProtocolError::Immediate.into());
        }
        self.publishing.start(publish);
        Ok(())
    }

    /// The content header of the publish in progress.
    pub(super) fn content_header(
        &mut self,
        cx: &mut Context<'_>,
        header: ContentHeader,
    ) -> Result<(), Reply> {
        let Some(assembly) = self.publishing.assembly.as_mut() else { return Ok(()) };
        if assembly.header.is_some() {
            return Err(ProtocolError::ExpectedContentBody.into());
        }
        let size = header.body_size();
        if size > MESSAGE_BYTES_MAX {
            self.publishing.abandon();
            return Err(ProtocolError::MessageTooLarge { size }.into());
        }
        assembly.header = Some(header);
        if size == 0 {
            return self.complete_publish(cx);
        }
        Ok(())
    }

    /// A body frame of the publish in progress.
    pub(super) fn content_body(&mut self, cx: &mut Context<'_>, payload: Bytes) -> Result<(), Reply> {
        let Some(assembly) = self.publishing.assembly.as_mut() else { return Ok(()) };
        let Some(header) = &assembly.header else {
            return Err(ProtocolError::ExpectedContentHeader.into());
        };
        let expected = header.body_size();
        assembly.body_bytes += payload.len() as u64;
        if !payload.is_empty() {
            assembly.body.push(payload);
        }
        let have = assembly.body_bytes;
        if have > expected {
            return Err(ProtocolError::BodyLargerThanDeclared { have, expected }.into());
        }
        if have == expected {
            return self.complete_publish(cx);
        }
        Ok(())
    }

    /// The publish's content is complete: check it, route it, and stage it for its queues
    /// (or hold it in the transaction).
    fn complete_publish(&mut self, cx: &mut Context<'_>) -> Result<(), Reply> {
        *cx.has_published = true;
        crate::broker::connections::MessageCounters::add(&self.stats.messages.publish, 1);
        let Some(Assembly { method, header: Some(header), body, .. }) = self.publishing.assembly.take()
        else {
            return Ok(());
        };
        let body = joined(body);
        let properties = header.publish_properties().map_err(undecodable)?;
        if let Some(user_id) = &properties.user_id {
            if user_id.as_bytes() != cx.user.as_bytes() && !cx.account.is_impersonator() {
                let claimed = String::from_utf8_lossy(user_id.as_bytes()).into_owned();
                return Err(ProtocolError::UserIdMismatch { claimed, user: cx.user.to_owned() }.into());
            }
        }
        let header = self.direct_reply_to(header, &properties)?;
        let queues = route(cx, &method, &properties)?;
        let confirm_seq = self.confirms.take_seq();
        if queues.is_empty() {
            if method.mandatory {
                crate::broker::connections::MessageCounters::add(&self.stats.messages.return_unroutable, 1);
                let returned = BasicReturn {
                    reply_code: reply_code::NO_ROUTE,
                    reply_text: ShortStr::from_static("NO_ROUTE"),
                    exchange: method.exchange.clone(),
                    routing_key: method.routing_key.clone(),
                };
                cx.out.content(self.number(), &returned.into(), &header, &body, cx.frame_max);
            } else {
                crate::broker::connections::MessageCounters::add(&self.stats.messages.drop_unroutable, 1);
            }
            if let Some(seq) = confirm_seq {
                // Nothing to wait for, but the ack must not overtake earlier publishes'.
                cx.staged.confirms.push((self.number(), seq));
            }
            return Ok(());
        }
        let message = message(method, header, body, &properties);
        self.stage(cx, &queues, &message, confirm_seq)
    }

    /// A publish whose `reply_to` is direct reply-to gets this channel's reply queue there.
    fn direct_reply_to(
        &self,
        header: ContentHeader,
        properties: &PublishProperties,
    ) -> Result<ContentHeader, Reply> {
        if properties.reply_to.as_ref().is_none_or(|r| r.as_bytes() != REPLY_TO) {
            return Ok(header);
        }
        let Some(own) = self.consumers.reply_to_queue() else {
            return Err(ProtocolError::NoReplyConsumer.into());
        };
        let mut rewritten: BasicProperties = header.properties().map_err(undecodable)?;
        rewritten.reply_to = Some(short(own));
        Ok(header.with_properties(&rewritten))
    }

    /// Stages a routed message for its queues, with its confirm, or holds it in the
    /// transaction. Queues that refuse publishes while full (x-overflow reject-publish) are
    /// left out, and the publish is nacked.
    ///
    /// # Errors
    /// When a transaction would hold more than its bound.
    fn stage(
        &mut self,
        cx: &mut Context<'_>,
        queues: &Route,
        message: &Message,
        confirm_seq: Option<u64>,
    ) -> Result<(), Reply> {
        let number = self.number();
        let full = |q: &QueueEntry| q.rejects_publish();
        let rejected = queues.iter().any(|q| full(q));
        let record = message.to_record_in(cx.record_arena);
        if self.tx.enabled() {
            let queues = queues.iter().filter(|q| !full(q)).cloned().collect();
            let held = self.tx.hold_publish(queues, record).map_err(Reply::from);
            self.show_uncommitted();
            return held;
        }
        if rejected {
            if let Some(seq) = confirm_seq {
                cx.pending
                    .push(Box::pin(async move { PublishDone { confirms: vec![(number, seq)], ok: false } }));
            }
        } else if let Some(seq) = confirm_seq {
            cx.staged.confirms.push((number, seq));
        }
        for queue in queues.iter().filter(|q| !rejected || !full(q)) {
            match cx.staged.queues.iter_mut().find(|(q, _)| q.id == queue.id) {
                Some((_, records)) => records.push(record.clone()),
                None => cx.staged.queues.push((Arc::clone(queue), vec![record.clone()])),
            }
        }
        Ok(())
    }
}

/// A body that arrived in one frame is kept as the slice of the read buffer it is; only a
/// body split across frames is joined (once).
fn joined(body: Vec<Bytes>) -> Bytes {
    match body.len() {
        0 => Bytes::new(),
        1 => body.into_iter().next().unwrap_or_default(),
        _ => {
            let mut joined = BytesMut::with_capacity(body.iter().map(Bytes::len).sum());
            for piece in &body {
                joined.extend_from_slice(piece);
            }
            joined.freeze()
        }
    }
}

/// Closes the connection over a content header whose properties do not decode.
fn undecodable(error: DecodeError) -> Reply {
    ProtocolError::UndecodableHeader(error).into()
}

/// The queues a publish reaches: from the route cache, unless its headers must be seen;
/// counted against its exchange either way.
fn route(
    cx: &mut Context<'_>,
    method: &BasicPublish,
    properties: &PublishProperties,
) -> Result<Route, Reply> {
    let (exchange, routing_key) = (method.exchange.as_bytes(), method.routing_key.as_bytes());
    match &properties.headers {
        None => {
            let checker = cx.checker();
            let permit = || checker.permit_publish(exchange, routing_key);
            cx.routes.route(cx.broker, exchange, routing_key, cx.access_generation, permit)
        }
        Some(headers) => {
            cx.permit_publish(exchange, routing_key)?;
            let mut queues = Vec::new();
            cx.broker
                .route(exchange, routing_key, Some(headers), &mut queues)
                .map_err(|error| Reply::from(&error))?;
            cx.routes.count_uncached(cx.broker, exchange, queues.len());
            Ok(queues.into())
        }
    }
}

/// The message a publish stores.
fn message(
    method: BasicPublish,
    header: ContentHeader,
    body: Bytes,
    properties: &PublishProperties,
) -> Message {
    let expires_at_ms = properties
        .expiration
        .as_ref()
        .and_then(|e| e.as_str().ok().and_then(|s| s.parse::<i64>().ok()))
        .map(|ttl| now_ms().saturating_add(ttl.max(0)));
    Message {
        persistent: properties.delivery_mode == Some(2),
        priority: properties.priority.unwrap_or(0),
        expires_at_ms,
        exchange: method.exchange.into_bytes(),
        routing_key: method.routing_key.into_bytes(),
        content_header: header.into_raw(),
        body,
    }
}
