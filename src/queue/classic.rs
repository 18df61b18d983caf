//! The classic queue: a log plus an ack tracker, owned by one task.
//!
//! Publishers append to the queue's log directly (the log's writer orders them); the
//! queue's task learns of new messages by waiting at the log's tail. The task owns all
//! consumer state: the read position (the first offset never handed out), the requeued set
//! (returned messages, delivered again first and in offset order), and the unacked map.
//! Everything below the lowest of these is done with, and whole segments below it are
//! released to the log's retention.
//!
//! Consumers are served round-robin within the highest priority that has room, each within
//! its prefetch and its channel's shared prefetch (`super::credit`). Deliveries go to the
//! consumer's bounded sink; a full sink (a slow socket) makes the queue skip that consumer
//! until it drains.
//!
//! Like the whole queue layer it knows no frames, sockets or exchanges.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::api::{ChannelId, ConsumerEvent, ConsumerSpec, DeathReason, Delivery, QueueError};
use super::credit::{wait_for_room, Consumer};
use super::handle::{Command, QueueOptions, QueueStats};
use super::message::{expires_at_ms, Message, MessageView};
use super::read_ahead::{Read, ReadAhead};
use crate::limits::{QUEUE_TICK_MS, TRANSIENT_SCAN_BYTES};
use crate::log::{now_ms, Log, Record};
use crate::seq_map::SeqMap;

/// Name under which a durable queue's floor is kept in its log's offset store.
pub const FLOOR_KEY: &str = "__queue_floor";
/// Name under which a durable queue keeps the offset below which everything has been
/// delivered at least once: after a restart those messages come with `redelivered=true`.
pub const DELIVERED_KEY: &str = "__queue_delivered";

/// Starts a classic queue's task on the current runtime.
pub(super) fn spawn(options: QueueOptions, stats: Arc<QueueStats>, commands: mpsc::Receiver<Command>) {
    let actor = Actor::new(options, stats);
    actor.publish_stats();
    tokio::spawn(actor.run(commands));
}

/// Who holds an unacked delivery.
struct Unacked {
    channel: ChannelId,
    /// The consumer's tag, or `None` for `basic.get`.
    tag: Option<Bytes>,
}

struct Actor {
    options: QueueOptions,
    stats: Arc<QueueStats>,
    /// The log read ahead of dispatch, from the read position on.
    read_ahead: ReadAhead,
    /// Priority queues: every ready message read so far, highest priority first, then by
    /// offset; with whether it was delivered before.
    prioritized: BTreeMap<(Reverse<u8>, u64), (Record, bool)>,
    requeued: BTreeSet<u64>,
    unacked: SeqMap<Unacked>,
    consumers: Vec<Consumer>,
    round_robin: usize,
    persisted_floor: u64,
    /// Everything below this offset was delivered before (kept across restarts).
    delivered_below: u64,
    persisted_delivered: u64,
    /// Records from before a restart not yet skipped that did not survive it (transient):
    /// not counted as ready.
    transient_pending: u64,
}

impl Actor {
    fn new(options: QueueOptions, stats: Arc<QueueStats>) -> Actor {
        let cursor = options.start_offset.max(options.log.first_offset());
        let delivered_below =
            options.log.offsets().get(DELIVERED_KEY).unwrap_or(0).min(options.restart_offset);
        let transient_pending = count_transient(&options.log, cursor, options.restart_offset);
        Actor {
            options,
            stats,
            read_ahead: ReadAhead::new(cursor),
            prioritized: BTreeMap::new(),
            requeued: BTreeSet::new(),
            unacked: SeqMap::new(),
            consumers: Vec::new(),
            round_robin: 0,
            persisted_floor: cursor,
            delivered_below,
            persisted_delivered: delivered_below,
            transient_pending,
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(QUEUE_TICK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.enforce_limits();
            self.dispatch();
            self.publish_stats();
            let log = self.options.log.clone();
            // Wait at the log's tail only when nothing read is left to hand out; otherwise
            // dispatch has already done all it can and a command or the tick comes next.
            let cursor = self.read_ahead.cursor();
            let blocked_sink = self.blocked_sink();
            // Queues with length limits also wake on every append, to drop the head at once.
            let limited = self.options.max_length.is_some() || self.options.max_length_bytes.is_some();
            let wait_at = if self.held() == 0 && self.has_room() {
                Some(cursor)
            } else if limited {
                Some(log.next_offset())
            } else {
                None
            };
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Delete(done)) => {
                        let ready = self.ready_count();
                        self.shut_down();
                        let _ = done.send(ready);
                        return;
                    }
                    Some(command) => self.handle(command),
                },
                outcome = log.wait_for(wait_at.unwrap_or(u64::MAX)), if wait_at.is_some() => {
                    if outcome.is_err() {
                        return;
                    }
                }
                // A consumer whose sink was full is served again as soon as its connection
                // has drained some deliveries, not at the next tick.
                _ = wait_for_room(blocked_sink.as_ref()), if blocked_sink.is_some() => {}
                _ = tick.tick() => self.persist_floor(),
            }
        }
    }

    fn handle(&mut self, command: Command) {
        // Appends may have landed since the last turn: limits apply before any answer.
        self.enforce_limits();
        match command {
            Command::Consume(spec, done) => {
                let outcome = self.add_consumer(spec);
                // Counts are current before the answer, so a declare that follows sees them.
                self.publish_stats();
                let _ = done.send(outcome);
            }
            Command::Cancel { channel, tag, done } => {
                self.consumers.retain(|c| !(c.spec.channel == channel && c.spec.tag == tag));
                self.publish_stats();
                let _ = done.send(self.consumers.is_empty());
            }
            Command::Ack { channel, offsets } => {
                for offset in offsets {
                    self.settle(channel, offset);
                }
            }
            Command::Reject { channel, offsets, requeue } => self.reject(channel, offsets, requeue),
            Command::Get { channel, no_ack, done } => {
                let delivery = self.get(channel, no_ack);
                self.publish_stats();
                let _ = done.send(delivery);
            }
            Command::Purge(done) => {
                let ready = self.ready_count();
                self.read_ahead.skip_to(self.options.log.next_offset());
                self.prioritized.clear();
                self.requeued.clear();
                // Counts are current before the answer (a declare that follows sees them).
                self.publish_stats();
                let _ = done.send(ready);
            }
            Command::ChannelClosed { channel, done } => {
                self.consumers.retain(|c| c.spec.channel != channel);
                self.requeue_channel(channel);
                self.publish_stats();
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Lag(done) => {
                let _ = done.send(Vec::new());
            }
            Command::Delete(_) => unreachable!("handled in run"),
        }
    }

    fn add_consumer(&mut self, spec: ConsumerSpec) -> Result<(), QueueError> {
        let exclusive_held = self.consumers.iter().any(|c| c.spec.exclusive);
        if exclusive_held || (spec.exclusive && !self.consumers.is_empty()) {
            return Err(QueueError::ExclusiveUse { queue: self.options.name.to_string() });
        }
        self.consumers.push(Consumer::new(spec));
        Ok(())
    }

    /// `basic.reject` / `basic.nack` (and, with no offsets and `requeue`, `basic.recover`).
    fn reject(&mut self, channel: ChannelId, offsets: Vec<u64>, requeue: bool) {
        if offsets.is_empty() && requeue {
            self.requeue_channel(channel);
        }
        for offset in offsets {
            if self.settle(channel, offset) {
                if requeue {
                    self.requeued.insert(offset);
                } else {
                    self.kill(offset, DeathReason::Rejected);
                }
            }
        }
    }

    /// `basic.get`: the next ready message, tracked as unacked unless `no_ack`.
    fn get(&mut self, channel: ChannelId, no_ack: bool) -> Option<Delivery> {
        let (record, redelivered) = self.next_ready()?;
        if !no_ack {
            self.unacked.insert(record.offset, Unacked { channel, tag: None });
        }
        let message_count = self.ready_count().min(u64::from(u32::MAX)) as u32;
        self.delivery(channel, record, redelivered, None, !no_ack, message_count)
    }

    /// Removes an unacked delivery; returns whether it was one of `channel`'s.
    fn settle(&mut self, channel: ChannelId, offset: u64) -> bool {
        match self.unacked.get(offset) {
            Some(entry) if entry.channel == channel => {}
            _ => return false,
        }
        let Some(entry) = self.unacked.remove(offset) else { return false };
        if let Some(tag) = entry.tag {
            if let Some(consumer) =
                self.consumers.iter_mut().find(|c| c.spec.channel == channel && c.spec.tag == tag)
            {
                consumer.settled();
            }
        }
        true
    }

    fn requeue_channel(&mut self, channel: ChannelId) {
        let offsets: Vec<u64> =
            self.unacked.iter().filter(|(_, u)| u.channel == channel).map(|(offset, _)| offset).collect();
        for offset in offsets {
            self.settle(channel, offset);
            self.requeued.insert(offset);
        }
    }

    fn publish_stats(&self) {
        self.stats.cursor.store(self.read_ahead.cursor(), Ordering::Release);
        self.stats.held.store(self.held(), Ordering::Release);
        self.stats.lost.store(self.transient_pending, Ordering::Release);
        self.stats.unacked.store(self.unacked.len() as u64, Ordering::Release);
        self.stats.consumers.store(self.consumers.len() as u32, Ordering::Release);
    }

    /// The sink of a consumer that could take a message but for its full sink, when there
    /// is something to deliver.
    fn blocked_sink(&self) -> Option<mpsc::Sender<ConsumerEvent>> {
        if self.held() == 0 && self.read_ahead.cursor() >= self.options.log.next_offset() {
            return None;
        }
        self.consumers.iter().find_map(Consumer::blocked_sink)
    }

    /// Whether some consumer could take a message now.
    fn has_room(&self) -> bool {
        self.consumers.iter().any(Consumer::can_take)
    }

    fn dispatch(&mut self) {
        while !self.consumers.is_empty() {
            let Some(index) = self.pick_consumer() else { return };
            let Some((record, redelivered)) = self.next_ready() else { return };
            let consumer = &mut self.consumers[index];
            if !consumer.take() {
                self.requeued.insert(record.offset);
                return;
            }
            let needs_ack = !consumer.spec.no_ack;
            let tag = consumer.spec.tag.clone();
            let channel = consumer.spec.channel;
            if needs_ack {
                self.unacked.insert(record.offset, Unacked { channel, tag: Some(tag.clone()) });
            }
            let offset = record.offset;
            let Some(delivery) = self.delivery(channel, record, redelivered, Some(tag), needs_ack, 0) else {
                continue;
            };
            if self.consumers[index].spec.sink.try_send(ConsumerEvent::Deliver(delivery)).is_err() {
                // The sink filled or closed since `can_take`: take the message back.
                if needs_ack {
                    self.consumers[index].refused();
                    self.unacked.remove(offset);
                }
                self.requeued.insert(offset);
                return;
            }
        }
    }

    /// Round-robin among the consumers of the highest priority that have room.
    fn pick_consumer(&mut self) -> Option<usize> {
        let best = self.consumers.iter().filter(|c| c.can_take()).map(|c| c.spec.priority).max()?;
        let count = self.consumers.len();
        for step in 0..count {
            let index = (self.round_robin + step) % count;
            let consumer = &self.consumers[index];
            if consumer.spec.priority == best && consumer.can_take() {
                self.round_robin = (index + 1) % count;
                return Some(index);
            }
        }
        None
    }

    fn delivery(
        &self,
        channel: ChannelId,
        record: Record,
        redelivered: bool,
        consumer_tag: Option<Bytes>,
        needs_ack: bool,
        message_count: u32,
    ) -> Option<Delivery> {
        let offset = record.offset;
        MessageView::parse(&record.header)?;
        Some(Delivery {
            channel,
            queue: Arc::clone(&self.options.name),
            consumer_tag,
            offset,
            redelivered,
            needs_ack,
            stream: false,
            record,
            message_count,
        })
    }

    fn shut_down(&mut self) {
        for consumer in self.consumers.drain(..) {
            let event =
                ConsumerEvent::Cancelled { channel: consumer.spec.channel, consumer_tag: consumer.spec.tag };
            let _ = consumer.spec.sink.try_send(event);
        }
        self.persist_floor();
    }
}

impl Actor {
    /// The next ready record: requeued ones first (redelivered), then the log in order.
    /// Skips records that did not survive a restart and expired ones.
    fn next_ready(&mut self) -> Option<(Record, bool)> {
        if self.options.max_priority.is_some() {
            return self.next_by_priority();
        }
        loop {
            if let Some(offset) = self.requeued.pop_first() {
                match self.options.log.read_records(offset, 1) {
                    Ok(records) => match records.into_iter().next() {
                        Some(record) if record.offset == offset => {
                            if self.expired(&record) {
                                self.kill_record(&record, DeathReason::Expired);
                                continue;
                            }
                            return Some((record, true));
                        }
                        _ => continue,
                    },
                    Err(error) => {
                        tracing::error!(queue = %self.options.name, offset, %error, "requeued message unreadable");
                        continue;
                    }
                }
            }
            let record = self.pop_buffered()?;
            if self.lost_in_restart(&record) {
                self.transient_pending = self.transient_pending.saturating_sub(1);
                continue;
            }
            if self.expired(&record) {
                self.kill_record(&record, DeathReason::Expired);
                continue;
            }
            let redelivered = record.offset < self.delivered_below;
            return Some((record, redelivered));
        }
    }

    /// Reads one requeued message back from the log.
    fn read_one(&self, offset: u64) -> Option<Record> {
        match self.options.log.read_records(offset, 1) {
            Ok(records) => records.into_iter().next().filter(|r| r.offset == offset),
            Err(error) => {
                tracing::error!(queue = %self.options.name, offset, %error, "requeued message unreadable");
                None
            }
        }
    }

    /// Whether a record from before a restart was transient (and so did not survive it).
    fn lost_in_restart(&self, record: &Record) -> bool {
        record.offset < self.options.restart_offset
            && !MessageView::parse(&record.header).is_some_and(|m| m.persistent)
    }

    /// Moves everything ready (the log up to its end, and requeued messages) into the
    /// priority order.
    fn fill_prioritized(&mut self) {
        let max = self.options.max_priority.unwrap_or(0);
        let priority =
            |record: &Record| MessageView::parse(&record.header).map_or(0, |m| m.priority.min(max));
        while let Some(offset) = self.requeued.pop_first() {
            if let Some(record) = self.read_one(offset) {
                self.prioritized.insert((Reverse(priority(&record)), offset), (record, true));
            }
        }
        loop {
            if self.read_ahead.is_empty() {
                self.refill();
            }
            let Some(record) = self.read_ahead.pop_front() else { break };
            if self.lost_in_restart(&record) {
                self.transient_pending = self.transient_pending.saturating_sub(1);
            } else {
                let redelivered = record.offset < self.delivered_below;
                self.prioritized.insert((Reverse(priority(&record)), record.offset), (record, redelivered));
            }
        }
    }

    fn next_by_priority(&mut self) -> Option<(Record, bool)> {
        self.fill_prioritized();
        while let Some((_, (record, redelivered))) = self.prioritized.pop_first() {
            if self.expired(&record) {
                self.kill_record(&record, DeathReason::Expired);
                continue;
            }
            return Some((record, redelivered));
        }
        None
    }

    /// The next record read (in priority order in a priority queue), reading more of the
    /// log when nothing read is left. Requeued messages are not considered.
    fn pop_buffered(&mut self) -> Option<Record> {
        if self.options.max_priority.is_some() {
            self.fill_prioritized();
            return self.prioritized.pop_first().map(|(_, (record, _))| record);
        }
        if self.read_ahead.is_empty() {
            self.refill();
        }
        self.read_ahead.pop_front()
    }

    /// The first record of the log not handed out, reading more when nothing read is left.
    fn peek_head(&mut self) -> Option<Record> {
        if self.read_ahead.is_empty() {
            self.refill();
        }
        self.read_ahead.front().cloned()
    }

    /// Reads ahead from the log, reporting what retention removed unread and what could
    /// not be read.
    fn refill(&mut self) {
        let refill = self.read_ahead.refill(&self.options.log);
        if let Some(removed) = refill.removed {
            tracing::warn!(queue = %self.options.name, from = removed.start, to = removed.end, "messages removed by retention were skipped");
        }
        if let Read::Unreadable { offset, error } = refill.read {
            // A damaged batch is reported and skipped; corrupt data is never delivered.
            tracing::error!(queue = %self.options.name, offset, %error, "unreadable message skipped");
        }
    }

    /// The lowest offset not yet handed out.
    fn read_position(&self) -> u64 {
        let mut position = self.read_ahead.position();
        if let Some(lowest) = self.prioritized.keys().map(|(_, offset)| *offset).min() {
            position = position.min(lowest);
        }
        position
    }

    /// Ready messages read from the log but not handed out: read ahead, requeued, or
    /// ordered by priority.
    fn held(&self) -> u64 {
        (self.read_ahead.len() + self.prioritized.len() + self.requeued.len()) as u64
    }

    /// Ready messages, including those appended but not read yet, less the transient ones
    /// from before a restart not skipped yet.
    fn ready_count(&self) -> u64 {
        (self.options.log.next_offset().saturating_sub(self.read_ahead.cursor()) + self.held())
            .saturating_sub(self.transient_pending)
    }
}

impl Actor {
    /// Whether `record` is past the queue's TTL or its own expiry.
    fn expired(&self, record: &Record) -> bool {
        // Most messages have no expiry of their own and most queues no TTL: no clock read.
        let own = expires_at_ms(&record.header);
        if own.is_none() && self.options.message_ttl.is_none() {
            return false;
        }
        let now = now_ms();
        if let Some(ttl) = self.options.message_ttl {
            if record.timestamp_ms.saturating_add(ttl.as_millis() as i64) <= now {
                return true;
            }
        }
        own.is_some_and(|at| at <= now)
    }

    /// Dead-letters the message at `offset`, read back from the log (when the queue has a
    /// dead-letter sink at all).
    fn kill(&mut self, offset: u64, reason: DeathReason) {
        if self.options.dead_letter.is_none() {
            return;
        }
        if let Ok(records) = self.options.log.read_records(offset, 1) {
            if let Some(record) = records.into_iter().next().filter(|r| r.offset == offset) {
                self.kill_record(&record, reason);
            }
        }
    }

    /// Dead-letters `record` (when the queue has a dead-letter sink).
    fn kill_record(&self, record: &Record, reason: DeathReason) {
        if let (Some(sink), Some(message)) = (&self.options.dead_letter, Message::from_record(record)) {
            sink.dead_letter(&self.options.name, message, reason);
        }
    }

    /// Drops expired messages at the head (queue TTL removes proactively) and, with a
    /// length limit, the oldest messages beyond it.
    fn enforce_limits(&mut self) {
        if self.options.message_ttl.is_some() {
            while let Some(record) = self.peek_head() {
                if !self.expired(&record) {
                    break;
                }
                let _ = self.pop_buffered();
                self.kill_record(&record, DeathReason::Expired);
            }
        }
        if let Some(max) = self.options.max_length {
            while self.ready_count() > max {
                let Some(record) = self.pop_buffered() else { break };
                self.kill_record(&record, DeathReason::MaxLength);
            }
        }
        if let Some(max) = self.options.max_length_bytes {
            self.enforce_max_length_bytes(max);
        }
    }

    /// Drops the oldest ready messages while their bodies total more than `max` bytes.
    fn enforce_max_length_bytes(&mut self, max: u64) {
        // Byte limits need the size of every ready message: read them all.
        if self.options.max_priority.is_some() {
            self.fill_prioritized();
        } else {
            while self.read_ahead.cursor() < self.options.log.next_offset() {
                let before = self.read_ahead.cursor();
                self.refill();
                if self.read_ahead.cursor() == before {
                    break;
                }
            }
        }
        let mut total: u64 = self.read_ahead.iter().map(|r| r.body.len() as u64).sum::<u64>()
            + self.prioritized.values().map(|(r, _)| r.body.len() as u64).sum::<u64>();
        while total > max {
            let Some(record) = self.pop_buffered() else { break };
            total = total.saturating_sub(record.body.len() as u64);
            self.kill_record(&record, DeathReason::MaxLength);
        }
    }
}

impl Actor {
    /// The lowest offset still needed; everything below is released to retention.
    fn floor(&self) -> u64 {
        let mut floor = self.read_position();
        if let Some((first, _)) = self.unacked.first() {
            floor = floor.min(first);
        }
        if let Some(&first) = self.requeued.first() {
            floor = floor.min(first);
        }
        floor
    }

    /// Releases what is below the floor and, for durable queues, stores the floor and the
    /// delivered mark when either moved.
    fn persist_floor(&mut self) {
        let floor = self.floor();
        // Everything below the read position has been handed out (or dropped) at least once.
        let delivered = self.read_position().max(self.delivered_below);
        if floor == self.persisted_floor && delivered == self.persisted_delivered {
            return;
        }
        self.options.log.release_before(floor);
        if self.options.persist_floor {
            let entries = [(FLOOR_KEY, floor), (DELIVERED_KEY, delivered)];
            if let Err(error) = self.options.log.offsets().commit_many(&entries) {
                tracing::error!(queue = %self.options.name, %error, "cannot persist the queue's position");
                return;
            }
        }
        self.persisted_floor = floor;
        self.persisted_delivered = delivered;
    }
}

/// Counts the records in `[from, to)` that are not persistent: after a restart they are
/// skipped, so they must not be counted as ready meanwhile.
fn count_transient(log: &Log, from: u64, to: u64) -> u64 {
    let mut count = 0;
    let mut next = from.max(log.first_offset());
    while next < to {
        let Ok(records) = log.read_records(next, TRANSIENT_SCAN_BYTES) else { break };
        let Some(last) = records.last().map(|r| r.offset) else { break };
        count += records
            .iter()
            .filter(|r| r.offset < to && !MessageView::parse(&r.header).is_some_and(|m| m.persistent))
            .count() as u64;
        next = last + 1;
    }
    count
}
