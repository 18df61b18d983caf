//! The stream queue: a log that consumers read at their own offsets. Nothing is ever
//! removed by consuming: acks and rejects only return credit (and advance a named
//! consumer's stored offset); retention alone removes old segments.
//!
//! A consumer attaches at an offset specification ([`StreamOffset`]). A consumer with a
//! name (`x-stream-consumer-name`, or a consumer tag the client chose) has its offset kept
//! in the log's offset store: the lowest offset it has not acknowledged, so a consumer that
//! went away with unacked messages gets them again. Without an explicit offset, a named
//! consumer resumes there.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::api::{ConsumerEvent, ConsumerSpec, Delivery};
use super::handle::{Command, QueueOptions, QueueStats};
use super::message::MessageView;
use crate::limits::{QUEUE_TICK_MS, READ_AHEAD_BYTES};
use crate::log::{now_ms, Record};
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
    spec: ConsumerSpec,
    name: Option<String>,
    /// Next offset to read from the log (past `buffered`).
    cursor: u64,
    buffered: VecDeque<Record>,
    /// Delivered, not yet acknowledged: holds credit.
    in_flight: SeqMap<()>,
    /// Nacked or rejected: the credit is back, but the offset is not acknowledged, so the
    /// stored offset stays at or below it.
    rejected: BTreeSet<u64>,
    stored: Option<u64>,
}

impl StreamConsumer {
    /// The lowest offset not yet acknowledged.
    fn committed(&self) -> u64 {
        let next = self.buffered.front().map_or(self.cursor, |r| r.offset);
        let lowest_open = match (self.in_flight.first().map(|(offset, _)| offset), self.rejected.first()) {
            (Some(a), Some(&b)) => Some(a.min(b)),
            (a, b) => a.or(b.copied()),
        };
        lowest_open.map_or(next, |open| open.min(next))
    }

    fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| String::from_utf8_lossy(&self.spec.tag).into_owned())
    }

    fn has_room(&self) -> bool {
        let spec = &self.spec;
        if spec.sink.capacity() == 0 {
            return false;
        }
        let limit = spec.channel_credit.limit.load(Ordering::Acquire);
        (spec.prefetch == 0 || (self.in_flight.len() as u32) < spec.prefetch)
            && (limit == 0 || spec.channel_credit.unacked.load(Ordering::Acquire) < limit)
    }
}

/// The task that owns a stream's consumers.
struct StreamActor {
    options: QueueOptions,
    stats: Arc<QueueStats>,
    consumers: Vec<StreamConsumer>,
}

impl StreamActor {
    /// A stream with no consumers yet.
    fn new(options: QueueOptions, stats: Arc<QueueStats>) -> StreamActor {
        StreamActor { options, stats, consumers: Vec::new() }
    }

    /// Serves commands and feeds consumers until the stream is deleted.
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(QUEUE_TICK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.dispatch();
            self.publish_stats();
            let log = self.options.log.clone();
            let blocked_sink = self
                .consumers
                .iter()
                .find(|c| {
                    c.spec.sink.capacity() == 0
                        && (c.spec.prefetch == 0 || (c.in_flight.len() as u32) < c.spec.prefetch)
                })
                .map(|c| c.spec.sink.clone());
            let waiting_at = self
                .consumers
                .iter()
                .filter(|c| c.buffered.is_empty() && c.has_room())
                .map(|c| c.cursor)
                .min();
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Delete(done)) => {
                        self.store_offsets();
                        for consumer in self.consumers.drain(..) {
                            let event = ConsumerEvent::Cancelled { channel: consumer.spec.channel, consumer_tag: consumer.spec.tag };
                            let _ = consumer.spec.sink.try_send(event);
                        }
                        let _ = done.send(0);
                        return;
                    }
                    Some(command) => self.handle(command),
                },
                outcome = log.wait_for(waiting_at.unwrap_or(u64::MAX)), if waiting_at.is_some() => {
                    if outcome.is_err() {
                        return;
                    }
                }
                _ = super::classic::wait_for_room(blocked_sink.as_ref()), if blocked_sink.is_some() => {}
                _ = tick.tick() => self.store_offsets(),
            }
        }
    }

    fn publish_stats(&self) {
        // A stream's "ready" count is everything it holds.
        self.stats.cursor.store(self.options.log.first_offset(), Ordering::Release);
        self.stats.held.store(0, Ordering::Release);
        let in_flight: usize = self.consumers.iter().map(|c| c.in_flight.len()).sum();
        self.stats.unacked.store(in_flight as u64, Ordering::Release);
        self.stats.consumers.store(self.consumers.len() as u32, Ordering::Release);
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Consume(spec, done) => {
                let start = self.start_offset(&spec);
                let name = spec.stream.as_ref().and_then(|s| s.name.clone());
                let stored = name.as_deref().and_then(|n| self.options.log.offsets().get(n));
                tracing::debug!(stream = %self.options.name, consumer = ?name, start, "stream consumer attached");
                self.consumers.push(StreamConsumer {
                    spec,
                    name,
                    cursor: start,
                    buffered: VecDeque::new(),
                    in_flight: SeqMap::new(),
                    rejected: BTreeSet::new(),
                    stored,
                });
                self.publish_stats();
                let _ = done.send(Ok(()));
            }
            Command::Cancel { channel, tag, done } => {
                self.remove(|c| c.spec.channel == channel && c.spec.tag == tag);
                self.publish_stats();
                let _ = done.send(self.consumers.is_empty());
            }
            Command::Ack { channel, offsets } => {
                for consumer in self.consumers.iter_mut().filter(|c| c.spec.channel == channel) {
                    for offset in &offsets {
                        consumer.in_flight.remove(*offset);
                        consumer.rejected.remove(offset);
                    }
                }
            }
            Command::Reject { channel, offsets, .. } => {
                // Credit comes back; nothing is requeued or removed.
                for consumer in self.consumers.iter_mut().filter(|c| c.spec.channel == channel) {
                    for offset in &offsets {
                        if consumer.in_flight.remove(*offset).is_some() {
                            consumer.rejected.insert(*offset);
                        }
                    }
                }
            }
            Command::Get { done, .. } => {
                let _ = done.send(None);
            }
            Command::Purge(done) => {
                let _ = done.send(0);
            }
            Command::ChannelClosed { channel, done } => {
                self.remove(|c| c.spec.channel == channel);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Lag(done) => {
                let lags = self.consumers.iter().map(|c| self.lag_of(c)).collect();
                let _ = done.send(lags);
            }
            Command::Delete(_) => {}
        }
    }

    /// Removes consumers matching `doomed`, storing named ones' offsets first.
    fn remove(&mut self, doomed: impl Fn(&StreamConsumer) -> bool) {
        self.store_offsets();
        self.consumers.retain(|c| !doomed(c));
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
        let log = self.options.log.clone();
        let name = Arc::clone(&self.options.name);
        for consumer in &mut self.consumers {
            while consumer.has_room() {
                if consumer.buffered.is_empty() {
                    if consumer.cursor < log.first_offset() {
                        tracing::warn!(
                            stream = %name,
                            consumer = %consumer.label(),
                            from = consumer.cursor,
                            to = log.first_offset(),
                            "retention removed messages this consumer had not read; it moves to the stream's first offset"
                        );
                        consumer.cursor = log.first_offset();
                    }
                    if consumer.cursor >= log.next_offset() {
                        break;
                    }
                    match log.read_records(consumer.cursor, READ_AHEAD_BYTES) {
                        Ok(records) => {
                            if let Some(last) = records.last() {
                                consumer.cursor = last.offset + 1;
                            }
                            consumer.buffered.extend(records);
                        }
                        Err(error) => {
                            tracing::error!(stream = %name, offset = consumer.cursor, %error, "unreadable stream message skipped");
                            consumer.cursor += 1;
                            continue;
                        }
                    }
                }
                let Some(record) = consumer.buffered.pop_front() else { break };
                if MessageView::parse(&record.header).is_none() {
                    continue;
                }
                if !consumer.spec.channel_credit.try_take() {
                    consumer.buffered.push_front(record);
                    break;
                }
                let delivery = Delivery {
                    channel: consumer.spec.channel,
                    queue: Arc::clone(&name),
                    consumer_tag: Some(consumer.spec.tag.clone()),
                    offset: record.offset,
                    redelivered: false,
                    needs_ack: true,
                    stream: true,
                    record,
                    message_count: 0,
                };
                let offset = delivery.offset;
                consumer.in_flight.insert(offset, ());
                if let Err(refused) = consumer.spec.sink.try_send(ConsumerEvent::Deliver(delivery)) {
                    consumer.in_flight.remove(offset);
                    consumer.spec.channel_credit.give_back(1);
                    if let ConsumerEvent::Deliver(delivery) = refused.into_inner() {
                        consumer.buffered.push_front(delivery.record);
                    }
                    break;
                }
            }
        }
    }

    /// Writes named consumers' offsets that changed.
    fn store_offsets(&mut self) {
        let offsets = self.options.log.offsets();
        for consumer in &mut self.consumers {
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
