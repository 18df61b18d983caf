//! Deliveries: messages queues push to this connection's consumers, `basic.get`, and
//! cancellations of consumers by their queue. Each delivery is tagged (see [`super::ack`])
//! and written as deliver (or get-ok), content header and body frames.

use std::sync::atomic::Ordering;

use crate::broker::access::Permission;
use crate::broker::connections::MessageCounters;
use std::sync::Arc;

use super::ack::Unacked;
use super::{channel_number, Channel, Context};
use crate::amqp::connection::Connection;
use crate::amqp::output::{shared, short, Output};
use crate::amqp::reply::{queue_error, ProtocolError, Reply, StreamRefusal};
use crate::queue::message::{Message, MessageView};
use crate::queue::{ConsumerEvent, Delivery};
use crate::wire::amqp::{encode_deliver_frame, encode_method_frame, BasicCancel, BasicGetEmpty, BasicGetOk};

impl Connection {
    /// Writes a queue's delivery (or consumer cancellation) to the client. Answers whether
    /// the delivery could not be written (its consumer is gone) and waits to be requeued by
    /// [`Connection::requeue_undelivered`].
    pub fn consumer_event(&mut self, event: ConsumerEvent) -> bool {
        match event {
            ConsumerEvent::Deliver(delivery) => self.deliver(&delivery),
            ConsumerEvent::Cancelled { channel, consumer_tag } => {
                let number = channel_number(channel);
                let Some(entry) = self.channels.get_mut(&number).filter(|c| c.id == channel && !c.closing)
                else {
                    return false;
                };
                entry.unlist_consumer(&consumer_tag);
                if entry.consumers.remove(&consumer_tag) {
                    let cancel = BasicCancel { consumer_tag: short(&consumer_tag), no_wait: true };
                    encode_method_frame(&mut self.out, number, &cancel.into());
                }
                false
            }
        }
    }

    /// Requeues the deliveries [`Connection::consumer_event`] could not write, waiting for
    /// room in their queues' command channels (queues never wait for a connection). Called
    /// before the connection reads more input, so they reach their queues ahead of any
    /// later command.
    pub async fn requeue_undelivered(&mut self) {
        for channel in self.channels.values_mut() {
            for (queue, offset) in channel.deliveries.undelivered.drain(..) {
                queue.handle.reject(channel.id, vec![offset], true).await;
            }
        }
    }

    fn deliver(&mut self, delivery: &Delivery) -> bool {
        let number = channel_number(delivery.channel);
        // Deliveries for a channel that has closed are requeued by the queue itself when it
        // learns of the close.
        let Some(channel) = self.channels.get_mut(&number).filter(|c| c.id == delivery.channel && !c.closing)
        else {
            return false;
        };
        channel.stats.mark_active(self.batch_at_ms);
        let mut out = Output { bytes: &mut self.out, chunks: &mut self.out_chunks };
        channel.deliver(&mut out, delivery, self.frame_max)
    }
}

impl Channel {
    /// Counts a delivery (or a get) for the management API.
    fn count_delivery(&self, needs_ack: bool, redelivered: bool, get: bool) {
        let counters = &self.stats.messages;
        let counter = match (get, needs_ack) {
            (false, true) => &counters.deliver,
            (false, false) => &counters.deliver_no_ack,
            (true, true) => &counters.get,
            (true, false) => &counters.get_no_ack,
        };
        MessageCounters::add(counter, 1);
        if redelivered {
            MessageCounters::add(&counters.redeliver, 1);
        }
        self.stats.unacknowledged.store(self.deliveries.unacked.len() as u64, Ordering::Relaxed);
    }

    /// Writes a consumer's delivery, tagged. Answers whether it could not (its consumer is
    /// gone) and waits in `undelivered` to be requeued.
    fn deliver(&mut self, out: &mut Output<'_>, delivery: &Delivery, frame_max: u32) -> bool {
        let number = self.number();
        let Some(tag) = delivery.consumer_tag.as_ref() else { return false };
        let Some(consumer) = self.consumers.get(tag) else {
            let Some(queue) = self.consumers.touched_queue(delivery.queue.as_bytes()) else { return false };
            self.deliveries.undelivered.push((queue, delivery.offset));
            return true;
        };
        let Some(view) = MessageView::parse(&delivery.record.header) else {
            tracing::error!(queue = %delivery.queue, offset = delivery.offset, "stored message header is damaged");
            return false;
        };
        let unacked = delivery.needs_ack.then(|| Unacked {
            queue: Arc::clone(&consumer.queue),
            offset: delivery.offset,
            counted: true,
        });
        let delivery_tag = self.deliveries.tag(unacked);
        self.count_delivery(delivery.needs_ack, delivery.redelivered, false);
        encode_deliver_frame(
            out.bytes,
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
            out.stream_header_frame(number, &stored, delivery.offset);
            out.body_frames(number, &delivery.record.body, frame_max);
        } else {
            out.content_frames(number, view.content_header, &delivery.record.body, frame_max);
        }
        false
    }

    /// `basic.get`.
    pub(super) async fn get(&mut self, cx: &mut Context<'_>, name: &[u8], no_ack: bool) -> Result<(), Reply> {
        let number = self.number();
        let queue_name = self.queue_name(name);
        cx.permit_queue(&queue_name, Permission::Read)?;
        let queue = cx.broker.queue_for(&queue_name, cx.connection).map_err(|e| Reply::from(&e))?;
        if queue.is_stream() {
            let queue = cx.broker.named(&queue.name);
            return Err(StreamRefusal::Unsupported { method: "basic.get", queue }.into());
        }
        queue.touch();
        self.consumers.touch(&queue);
        let delivery =
            queue.handle.get(self.id, no_ack).await.map_err(|e| queue_error(&e, cx.broker.vhost()))?;
        let Some(delivery) = delivery else {
            MessageCounters::add(&self.stats.messages.get_empty, 1);
            cx.out.method(number, &BasicGetEmpty::default().into());
            return Ok(());
        };
        let unacked = (!no_ack).then(|| Unacked { queue, offset: delivery.offset, counted: false });
        let delivery_tag = self.deliveries.tag(unacked);
        self.count_delivery(!no_ack, delivery.redelivered, true);
        let Some(message) = Message::from_record(&delivery.record) else {
            return Err(ProtocolError::DamagedStoredHeader.into());
        };
        let get_ok = BasicGetOk {
            delivery_tag,
            redelivered: delivery.redelivered,
            exchange: shared(&message.exchange),
            routing_key: shared(&message.routing_key),
            message_count: delivery.message_count,
        };
        cx.out.method(number, &get_ok.into());
        cx.out.content_frames(number, &message.content_header, &message.body, cx.frame_max);
        Ok(())
    }
}
