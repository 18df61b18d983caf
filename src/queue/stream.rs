//! The stream queue: a log that consumers read at their own offsets. Nothing is ever
//! removed by consuming: acks and rejects only return credit (and advance a named
//! consumer's stored offset); retention alone removes old segments.
//!
//! A consumer attaches at an offset specification ([`StreamOffset`]). A consumer with a
//! name (`x-stream-consumer-name`, or a consumer tag the client chose) has its offset kept
//! in the log's offset store: the lowest offset it has not acknowledged, so a consumer that
//! went away with unacked messages gets them again. Without an explicit offset, a named
//! consumer resumes there.
//!
//! A graceful shutdown cancels first, then acks what it holds and closes: the acks of a
//! cancelled consumer's deliveries are still valid on its channel. So a cancelled named
//! consumer that holds deliveries is kept aside, fed nothing, until they are all settled
//! or its channel closes, and those acks move its stored offset.
//!
//! Credit and read-ahead are the shared ones (`super::credit`, `super::read_ahead`). Like
//! the whole queue layer it knows no frames, sockets or exchanges.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::api::{ChannelId, ConsumerEvent, ConsumerSpec, Delivery};
use super::credit::{wait_for_room, Consumer};
use super::handle::{Command, QueueCounters, QueueOptions, QueueStats};
use super::message::MessageView;
use super::read_ahead::{Read, ReadAhead};
use crate::limits::{CANCELLED_STREAM_CONSUMERS_MAX, QUEUE_TICK_MS, STREAM_REJECTED_OFFSETS_MAX};
use crate::log::{now_ms, Log};
use crate::seq_map::SeqMap;

/// Starts a stream's task on the current runtime.
pub(super) fn spawn(options: QueueOptions, stats: Arc<QueueStats>, commands: mpsc::Receiver<Command>) {
    tokio::spawn(StreamActor::new(options, stats).run(commands));
}

/// Where a stream consumer starts (`x-stream-offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOffset {
    /// The first offset the stream still holds.
    First,
    /// The start of the last batch written.
    Last,
    /// Only what is published from now on.
    Next,
    /// This offset, clamped into the stream.
    Offset(u64),
    /// The first message stored at or after this time (ms since the epoch).
    TimestampMs(i64),
    /// N messages before the end (a negative `x-stream-offset`; beyond RabbitMQ).
    FromEnd(u64),
}

/// How a stream consumer attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAttach {
    /// The explicit start, if the client gave one.
    pub offset: Option<StreamOffset>,
    /// The name its offset is kept under, if any.
    pub name: Option<String>,
}

/// One stream consumer's position and how far it trails the stream's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerLag {
    /// Its name, or its consumer tag.
    pub consumer: String,
    /// The lowest offset it has not acknowledged.
    pub committed_offset: u64,
    /// The stream's next offset minus `committed_offset`.
    pub lag_messages: u64,
    /// Stored bytes from `committed_offset` to the end (to an index interval).
    pub lag_bytes: u64,
    /// Age of the oldest message it has not acknowledged, in ms (0 when caught up).
    pub oldest_unconsumed_age_ms: u64,
}

struct StreamConsumer {
    /// Its spec and credit. Never `no_ack`; its unacked count is `in_flight.len()`.
    consumer: Consumer,
    name: Option<String>,
    /// The stream read ahead of this consumer.
    read_ahead: ReadAhead,
    /// Delivered, not yet acknowledged: holds credit.
    in_flight: SeqMap<()>,
    /// Nacked or rejected: the credit is back, but the offset is not acknowledged, so the
    /// stored offset stays at or below it. At most [`STREAM_REJECTED_OFFSETS_MAX`].
    rejected: BTreeSet<u64>,
    stored: Option<u64>,
}

impl StreamConsumer {
    /// The lowest offset not yet acknowledged.
    fn committed(&self) -> u64 {
        let next = self.read_ahead.position();
        let lowest_open = match (self.in_flight.first().map(|(offset, _)| offset), self.rejected.first()) {
            (Some(a), Some(&b)) => Some(a.min(b)),
            (a, b) => a.or(b.copied()),
        };
        lowest_open.map_or(next, |open| open.min(next))
    }

    /// Remembers a nacked or rejected offset, which holds the stored offset back. Past
    /// [`STREAM_REJECTED_OFFSETS_MAX`] the lowest is taken as settled, as RabbitMQ settles
    /// every rejected stream offset: a consumer rejecting everything it reads keeps a
    /// bounded set, and its stored offset moves on.
    fn reject(&mut self, offset: u64) {
        self.rejected.insert(offset);
        if self.rejected.len() > STREAM_REJECTED_OFFSETS_MAX {
            self.rejected.pop_first();
        }
        debug_assert!(self.rejected.len() <= STREAM_REJECTED_OFFSETS_MAX);
    }

    fn spec(&self) -> &ConsumerSpec {
        &self.consumer.spec
    }

    fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| String::from_utf8_lossy(&self.spec().tag).into_owned())
    }

    /// Hands this consumer records from its position while its credit allows.
    fn feed(&mut self, log: &Log, stream: &Arc<str>, stats: &QueueStats) {
        debug_assert_eq!(self.consumer.unacked() as usize, self.in_flight.len());
        while self.consumer.can_take() {
            if self.read_ahead.is_empty() {
                match self.refill(log, stream, stats) {
                    Read::Records => {}
                    // Tried again on the next turn (the tick, or the next event).
                    Read::AtEnd | Read::Failed { .. } => break,
                    // Skipped: read on from the next offset.
                    Read::Unreadable { .. } => continue,
                }
            }
            let Some(record) = self.read_ahead.pop_front() else { break };
            if MessageView::parse(&record.header).is_none() {
                continue;
            }
            if !self.consumer.take() {
                self.read_ahead.push_front(record);
                break;
            }
            let spec = &self.consumer.spec;
            let delivery = Delivery {
                channel: spec.channel,
                queue: Arc::clone(stream),
                consumer_tag: Some(spec.tag.clone()),
                offset: record.offset,
                redelivered: false,
                needs_ack: true,
                stream: true,
                record,
                message_count: 0,
            };
            let offset = delivery.offset;
            self.in_flight.insert(offset, ());
            if let Err(refused) = spec.sink.try_send(ConsumerEvent::Deliver(delivery)) {
                self.in_flight.remove(offset);
                self.consumer.refused();
                if let ConsumerEvent::Deliver(delivery) = refused.into_inner() {
                    self.read_ahead.push_front(delivery.record);
                }
                break;
            }
            stats.messages.handed_out(false, true, false);
        }
    }

    /// Reads ahead, reporting what retention removed unread and what could not be read.
    fn refill(&mut self, log: &Log, stream: &str, stats: &QueueStats) -> Read {
        let refill = self.read_ahead.refill(log);
        if let Some(removed) = refill.removed {
            tracing::warn!(
                stream = %stream,
                consumer = %self.label(),
                from = removed.start,
                to = removed.end,
                "retention removed messages this consumer had not read; it moves to the stream's first offset"
            );
        }
        if let Read::Failed { error } = &refill.read {
            tracing::warn!(stream = %stream, consumer = %self.label(), %error, "read failed; tried again later");
        }
        if let Read::Unreadable { offset, end, error } = &refill.read {
            let lost = end - offset;
            stats.damaged.fetch_add(lost, Ordering::Relaxed);
            tracing::error!(
                stream = %stream,
                consumer = %self.label(),
                first = offset,
                last = end - 1,
                lost,
                %error,
                "damaged batch skipped: messages lost"
            );
        }
        refill.read
    }

    /// An ack or reject for `offset`: whether it was in flight (its credit is then back).
    fn settle(&mut self, offset: u64) -> bool {
        let settled = self.in_flight.remove(offset).is_some();
        if settled {
            self.consumer.settled();
        }
        settled
    }
}

/// The task that owns a stream's consumers.
struct StreamActor {
    options: QueueOptions,
    stats: Arc<QueueStats>,
    consumers: Vec<StreamConsumer>,
    /// Cancelled named consumers still holding deliveries their channel may ack: fed
    /// nothing, kept until they hold nothing or their channel closes. Oldest first; at most
    /// [`CANCELLED_STREAM_CONSUMERS_MAX`].
    cancelled: Vec<StreamConsumer>,
}

impl StreamActor {
    /// A stream with no consumers yet.
    fn new(options: QueueOptions, stats: Arc<QueueStats>) -> StreamActor {
        StreamActor { options, stats, consumers: Vec::new(), cancelled: Vec::new() }
    }

    /// Serves commands and feeds consumers until the stream is deleted.
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(QUEUE_TICK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The tick stores named consumers' offsets; a stream none of whose offsets moved is
        // not woken by it.
        let mut tick_needed = true;
        loop {
            self.dispatch();
            self.publish_stats();
            let log = self.options.log.clone();
            let blocked_sink = self.consumers.iter().find_map(|c| c.consumer.blocked_sink());
            let waiting_at = self
                .consumers
                .iter()
                .filter(|c| c.read_ahead.is_empty() && c.consumer.can_take())
                .map(|c| c.read_ahead.cursor())
                .min();
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Delete(done)) => {
                        self.store_offsets();
                        for consumer in self.consumers.drain(..) {
                            let spec = consumer.consumer.spec;
                            let event = ConsumerEvent::Cancelled { channel: spec.channel, consumer_tag: spec.tag };
                            let _ = spec.sink.try_send(event);
                        }
                        let _ = done.send(0);
                        return;
                    }
                    Some(command) => {
                        self.handle(command);
                        tick_needed = true;
                    }
                },
                outcome = log.wait_for(waiting_at.unwrap_or(u64::MAX)), if waiting_at.is_some() => {
                    if outcome.is_err() {
                        return;
                    }
                    tick_needed = true;
                }
                _ = wait_for_room(blocked_sink.as_ref()), if blocked_sink.is_some() => tick_needed = true,
                _ = tick.tick(), if tick_needed || !self.consumers.is_empty() => {
                    self.store_offsets();
                    tick_needed = self.offsets_pending();
                }
            }
        }
    }

    fn publish_stats(&self) {
        // A stream's "ready" count is everything it holds.
        self.stats.cursor.store(self.options.log.first_offset(), Ordering::Release);
        self.stats.held.store(0, Ordering::Release);
        let in_flight: usize = self.consumers.iter().chain(&self.cancelled).map(|c| c.in_flight.len()).sum();
        self.stats.unacked.store(in_flight as u64, Ordering::Release);
        self.stats.consumers.store(self.consumers.len() as u32, Ordering::Release);
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Consume(spec, done) => {
                self.attach(spec);
                self.publish_stats();
                let _ = done.send(Ok(()));
            }
            Command::Cancel { channel, tag, done } => {
                self.cancel(|c| c.spec().channel == channel && c.spec().tag == tag);
                self.publish_stats();
                let _ = done.send(self.consumers.is_empty());
            }
            Command::Ack { channel, offsets } => {
                let mut acked = 0;
                for consumer in self.on_channel(channel) {
                    for offset in &offsets {
                        acked += u64::from(consumer.settle(*offset));
                        consumer.rejected.remove(offset);
                    }
                }
                QueueCounters::add(&self.stats.messages.ack, acked);
                self.retire_cancelled();
            }
            Command::Reject { channel, offsets, .. } => {
                // Credit comes back; nothing is requeued or removed.
                for consumer in self.on_channel(channel) {
                    for offset in &offsets {
                        if consumer.settle(*offset) {
                            consumer.reject(*offset);
                        }
                    }
                }
                self.retire_cancelled();
            }
            Command::Get { done, .. } => {
                let _ = done.send(None);
            }
            Command::Purge(done) => {
                let _ = done.send(0);
            }
            Command::ChannelClosed { channel, done } => {
                self.remove(|c| c.spec().channel == channel);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Lag(done) => {
                let lags = self.consumers.iter().map(|c| self.lag_of(c)).collect();
                let _ = done.send(lags);
            }
            // A stream's limits are its log's retention, which the broker sets on the log.
            Command::Delete(_) | Command::Settings(_) => {}
        }
    }

    /// Adds a consumer at the offset its spec asks for.
    fn attach(&mut self, spec: ConsumerSpec) {
        // Credit is counted per delivery in flight: every stream delivery needs an ack.
        assert!(!spec.no_ack, "the gateway refuses no_ack consumers on streams");
        let start = self.start_offset(&spec);
        let name = spec.stream.as_ref().and_then(|s| s.name.clone());
        let stored = name.as_deref().and_then(|n| self.options.log.offsets().get(n));
        tracing::debug!(stream = %self.options.name, consumer = ?name, start, "stream consumer attached");
        self.consumers.push(StreamConsumer {
            consumer: Consumer::new(spec),
            name,
            read_ahead: ReadAhead::new(start),
            in_flight: SeqMap::new(),
            rejected: BTreeSet::new(),
            stored,
        });
    }

    /// Removes consumers matching `doomed`, cancelled ones included, storing named ones'
    /// offsets first.
    fn remove(&mut self, doomed: impl Fn(&StreamConsumer) -> bool) {
        self.store_offsets();
        self.consumers.retain(|c| !doomed(c));
        self.cancelled.retain(|c| !doomed(c));
    }

    /// Cancels the consumer matching `doomed`, storing named ones' offsets first. A named
    /// one holding deliveries is set aside until they are settled or its channel closes;
    /// past [`CANCELLED_STREAM_CONSUMERS_MAX`] the oldest set aside is dropped (its offset
    /// was just stored).
    fn cancel(&mut self, doomed: impl Fn(&StreamConsumer) -> bool) {
        self.store_offsets();
        let Some(at) = self.consumers.iter().position(doomed) else { return };
        let consumer = self.consumers.remove(at);
        if consumer.name.is_none() || consumer.in_flight.is_empty() {
            return;
        }
        if self.cancelled.len() >= CANCELLED_STREAM_CONSUMERS_MAX {
            self.cancelled.remove(0);
        }
        self.cancelled.push(consumer);
    }

    /// Consumers on `channel`, cancelled ones holding deliveries included: where its acks
    /// and rejects settle.
    fn on_channel(&mut self, channel: ChannelId) -> impl Iterator<Item = &mut StreamConsumer> {
        self.consumers.iter_mut().chain(&mut self.cancelled).filter(move |c| c.spec().channel == channel)
    }

    /// Stores the offsets of cancelled consumers that hold nothing any more, and drops them.
    fn retire_cancelled(&mut self) {
        if self.cancelled.iter().any(|c| c.in_flight.is_empty()) {
            self.store_offsets();
            self.cancelled.retain(|c| !c.in_flight.is_empty());
        }
    }

    fn start_offset(&self, spec: &ConsumerSpec) -> u64 {
        let log = &self.options.log;
        let (first, next) = (log.first_offset(), log.next_offset());
        let attach = spec.stream.as_ref();
        let explicit = attach.and_then(|a| a.offset);
        let stored = attach.and_then(|a| a.name.as_deref()).and_then(|name| log.offsets().get(name));
        let offset = match (explicit, stored) {
            (None, Some(stored)) => stored,
            (None, None) | (Some(StreamOffset::Next), _) => next,
            (Some(StreamOffset::First), _) => first,
            (Some(StreamOffset::Last), _) => log.last_batch_offset(),
            (Some(StreamOffset::Offset(offset)), _) => offset,
            (Some(StreamOffset::TimestampMs(ms)), _) => log.offset_at_timestamp(ms).unwrap_or(next),
            (Some(StreamOffset::FromEnd(n)), _) => next.saturating_sub(n),
        };
        offset.clamp(first, next)
    }

    fn dispatch(&mut self) {
        for consumer in &mut self.consumers {
            consumer.feed(&self.options.log, &self.options.name, &self.stats);
        }
    }

    /// Writes named consumers' offsets that changed, cancelled ones' included.
    /// Whether a named consumer's offset moved past what is stored.
    fn offsets_pending(&self) -> bool {
        self.consumers
            .iter()
            .chain(&self.cancelled)
            .any(|c| c.name.is_some() && c.stored != Some(c.committed()))
    }

    fn store_offsets(&mut self) {
        let offsets = self.options.log.offsets();
        for consumer in self.consumers.iter_mut().chain(&mut self.cancelled) {
            let Some(name) = &consumer.name else { continue };
            let committed = consumer.committed();
            if consumer.stored != Some(committed) {
                match offsets.commit(name, committed) {
                    Ok(()) => consumer.stored = Some(committed),
                    Err(error) => {
                        tracing::error!(stream = %self.options.name, consumer = %name, %error, "cannot store offset")
                    }
                }
            }
        }
    }

    fn lag_of(&self, consumer: &StreamConsumer) -> ConsumerLag {
        let log = &self.options.log;
        let committed = consumer.committed();
        let oldest = log
            .read_records(committed.max(log.first_offset()), 1)
            .ok()
            .and_then(|records| records.into_iter().next())
            .map_or(0, |r| now_ms().saturating_sub(r.timestamp_ms).max(0) as u64);
        ConsumerLag {
            consumer: consumer.label(),
            committed_offset: committed,
            lag_messages: log.next_offset().saturating_sub(committed),
            lag_bytes: log.bytes_after(committed),
            oldest_unconsumed_age_ms: if committed >= log.next_offset() { 0 } else { oldest },
        }
    }
}
