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
//! its prefetch and its channel's shared prefetch. Deliveries go to the consumer's bounded
//! sink; a full sink (a slow socket) makes the queue skip that consumer until it drains.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::api::{ChannelId, ConsumerEvent, ConsumerSpec, DeathReason, Delivery, QueueError};
use super::handle::{Command, QueueOptions, QueueStats};
use super::message::{Message, MessageView};
use crate::limits::{QUEUE_TICK_MS, READ_AHEAD_BYTES, TRANSIENT_SCAN_BYTES};
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

struct ConsumerState {
    spec: ConsumerSpec,
    unacked: u32,
}

struct Unacked {
    channel: ChannelId,
    tag: Option<Bytes>,
}

struct Actor {
    options: QueueOptions,
    stats: Arc<QueueStats>,
    /// Offset of the next record to read from the log (past `buffered`).
    cursor: u64,
    buffered: VecDeque<Record>,
    /// Priority queues: every ready message read so far, highest priority first, then by
    /// offset; with whether it was delivered before.
    prioritized: BTreeMap<(Reverse<u8>, u64), (Record, bool)>,
    requeued: BTreeSet<u64>,
    unacked: SeqMap<Unacked>,
    consumers: Vec<ConsumerState>,
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
            cursor,
            buffered: VecDeque::new(),
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
            let cursor = self.cursor;
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
            Command::Reject { channel, offsets, requeue } => {
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
            Command::Get { channel, no_ack, done } => {
                let delivery = self.next_ready().map(|(record, redelivered)| {
                    let offset = record.offset;
                    if !no_ack {
                        self.unacked.insert(offset, Unacked { channel, tag: None });
                    }
                    let message_count = self.ready_count().min(u64::from(u32::MAX)) as u32;
                    self.delivery(channel, record, redelivered, None, !no_ack, message_count)
                });
                self.publish_stats();
                let _ = done.send(delivery.flatten());
            }
            Command::Purge(done) => {
                let ready = self.ready_count();
                self.buffered.clear();
                self.prioritized.clear();
                self.requeued.clear();
                self.cursor = self.options.log.next_offset();
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
        self.consumers.push(ConsumerState { spec, unacked: 0 });
        Ok(())
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
                consumer.unacked = consumer.unacked.saturating_sub(1);
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

    /// The lowest offset not yet handed out.
    fn read_position(&self) -> u64 {
        let mut position = self.buffered.front().map_or(self.cursor, |r| r.offset);
        if let Some(lowest) = self.prioritized.keys().map(|(_, offset)| *offset).min() {
            position = position.min(lowest);
        }
        position
    }

    fn held(&self) -> u64 {
        (self.buffered.len() + self.prioritized.len() + self.requeued.len()) as u64
    }

    fn ready_count(&self) -> u64 {
        (self.options.log.next_offset().saturating_sub(self.cursor) + self.held())
            .saturating_sub(self.transient_pending)
    }

    fn publish_stats(&self) {
        self.stats.cursor.store(self.cursor, Ordering::Release);
        self.stats.held.store(self.held(), Ordering::Release);
        self.stats.lost.store(self.transient_pending, Ordering::Release);
        self.stats.unacked.store(self.unacked.len() as u64, Ordering::Release);
        self.stats.consumers.store(self.consumers.len() as u32, Ordering::Release);
    }

    /// The sink of a consumer that could take a message but for its full sink, when there
    /// is something to deliver.
    fn blocked_sink(&self) -> Option<mpsc::Sender<ConsumerEvent>> {
        if self.held() == 0 && self.cursor >= self.options.log.next_offset() {
            return None;
        }
        self.consumers
            .iter()
            .find(|c| {
                c.spec.sink.capacity() == 0 && {
                    let spec = &c.spec;
                    spec.no_ack || spec.prefetch == 0 || c.unacked < spec.prefetch
                }
            })
            .map(|c| c.spec.sink.clone())
    }

    /// Whether some consumer could take a message now.
    fn has_room(&self) -> bool {
        self.consumers.iter().any(|c| self.can_take(c))
    }

    fn can_take(&self, consumer: &ConsumerState) -> bool {
        let spec = &consumer.spec;
        if spec.sink.capacity() == 0 {
            return false;
        }
        if spec.no_ack {
            return true;
        }
        let own_room = spec.prefetch == 0 || consumer.unacked < spec.prefetch;
        let limit = spec.channel_credit.limit.load(Ordering::Acquire);
        own_room && (limit == 0 || spec.channel_credit.unacked.load(Ordering::Acquire) < limit)
    }

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
            if self.buffered.is_empty() {
                self.refill();
            }
            let Some(record) = self.buffered.pop_front() else { break };
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

    fn pop_buffered(&mut self) -> Option<Record> {
        if self.options.max_priority.is_some() {
            self.fill_prioritized();
            return self.prioritized.pop_first().map(|(_, (record, _))| record);
        }
        if self.buffered.is_empty() {
            self.refill();
        }
        self.buffered.pop_front()
    }

    fn refill(&mut self) {
        let log = &self.options.log;
        if self.cursor < log.first_offset() {
            tracing::warn!(queue = %self.options.name, from = self.cursor, to = log.first_offset(), "messages removed by retention were skipped");
            self.cursor = log.first_offset();
        }
        if self.cursor >= log.next_offset() {
            return;
        }
        match log.read_records(self.cursor, READ_AHEAD_BYTES) {
            Ok(records) => {
                if let Some(last) = records.last() {
                    self.cursor = last.offset + 1;
                }
                self.buffered.extend(records);
            }
            Err(error) => {
                // A damaged batch is reported and skipped; corrupt data is never delivered.
                tracing::error!(queue = %self.options.name, offset = self.cursor, %error, "unreadable message skipped");
                self.cursor += 1;
            }
        }
    }

    fn expired(&self, record: &Record) -> bool {
        // Most messages have no expiry of their own and most queues no TTL: no clock read.
        let own = crate::queue::message::expires_at_ms(&record.header);
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
            // Byte limits need the size of every ready message: read them all.
            if self.options.max_priority.is_some() {
                self.fill_prioritized();
            } else {
                while self.cursor < self.options.log.next_offset() {
                    let before = self.cursor;
                    self.refill();
                    if self.cursor == before {
                        break;
                    }
                }
            }
            let mut total: u64 = self.buffered.iter().map(|r| r.body.len() as u64).sum::<u64>()
                + self.prioritized.values().map(|(r, _)| r.body.len() as u64).sum::<u64>();
            while total > max {
                let Some(record) = self.pop_buffered() else { break };
                total = total.saturating_sub(record.body.len() as u64);
                self.kill_record(&record, DeathReason::MaxLength);
            }
        }
    }

    fn peek_head(&mut self) -> Option<Record> {
        if self.buffered.is_empty() {
            self.refill();
        }
        self.buffered.front().cloned()
    }

    fn dispatch(&mut self) {
        while !self.consumers.is_empty() {
            let Some(index) = self.pick_consumer() else { return };
            let Some((record, redelivered)) = self.next_ready() else { return };
            let consumer = &mut self.consumers[index];
            let spec = &consumer.spec;
            let needs_ack = !spec.no_ack;
            if needs_ack && !spec.channel_credit.try_take() {
                self.requeued.insert(record.offset);
                return;
            }
            let tag = spec.tag.clone();
            let channel = spec.channel;
            if needs_ack {
                consumer.unacked += 1;
                self.unacked.insert(record.offset, Unacked { channel, tag: Some(tag.clone()) });
            }
            let offset = record.offset;
            let Some(delivery) = self.delivery(channel, record, redelivered, Some(tag), needs_ack, 0) else {
                continue;
            };
            if self.consumers[index].spec.sink.try_send(ConsumerEvent::Deliver(delivery)).is_err() {
                // The sink filled or closed since `can_take`: take the message back.
                if needs_ack {
                    self.consumers[index].spec.channel_credit.give_back(1);
                    self.settle(channel, offset);
                }
                self.requeued.insert(offset);
                return;
            }
        }
    }

    /// Round-robin among the consumers of the highest priority that have room.
    fn pick_consumer(&mut self) -> Option<usize> {
        let best = self.consumers.iter().filter(|c| self.can_take(c)).map(|c| c.spec.priority).max()?;
        let count = self.consumers.len();
        for step in 0..count {
            let index = (self.round_robin + step) % count;
            let consumer = &self.consumers[index];
            if consumer.spec.priority == best && self.can_take(consumer) {
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

    fn shut_down(&mut self) {
        for consumer in self.consumers.drain(..) {
            let event =
                ConsumerEvent::Cancelled { channel: consumer.spec.channel, consumer_tag: consumer.spec.tag };
            let _ = consumer.spec.sink.try_send(event);
        }
        self.persist_floor();
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

/// Resolves once `sink` has room again (the slot is released at once).
pub(super) async fn wait_for_room(sink: Option<&mpsc::Sender<ConsumerEvent>>) {
    if let Some(sink) = sink {
        let _ = sink.reserve().await;
    }
}
