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
//! This file holds the task's state, its loop, its commands and dispatch. The order in which
//! ready messages come out is in `classic/ready.rs`, the order in which consumers are served
//! in `classic/rotation.rs`, expiry at the head in `classic/expiry.rs`, TTL and length limits
//! in `classic/limits.rs`, the persisted floor and delivered marks in `classic/floor.rs`, the
//! persisted acks above the floor in `classic/acked.rs`, new settings taken while running
//! (a policy changed) in `classic/settings.rs`, when the task waits at its log's tail and
//! how it notes appends it is not woken for in `classic/watch.rs`.
//! Like the whole queue layer it knows no frames, sockets or exchanges.

mod acked;
mod expiry;
mod floor;
mod limits;
mod priority;
mod ready;
mod rotation;
mod settings;
mod watch;

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

pub use self::floor::{DELIVERED_KEY, FLOOR_KEY};
use self::limits::ReadyBytes;
use self::priority::Prioritized;
use self::rotation::Rotation;
use self::watch::AppendWatch;
use super::api::{ChannelId, ConsumerEvent, ConsumerSpec, DeathReason, Delivery, QueueError};
use super::credit::{wait_for_room, Consumer};
use super::handle::{Command, QueueContents, QueueCounters, QueueOptions, QueueStats};
use super::message::MessageView;
use super::read_ahead::ReadAhead;
use crate::limits::QUEUE_TICK_MS;
use crate::log::{now_ms, Record};
use crate::seq_map::SeqMap;
use crate::wire::amqp::ContentHeader;

/// Starts a classic queue's task on the current runtime.
pub(super) fn spawn(options: QueueOptions, stats: Arc<QueueStats>, commands: mpsc::Receiver<Command>) {
    let mut actor = Actor::new(options, stats);
    actor.publish_stats();
    tokio::spawn(actor.run(commands));
}

/// Who holds an unacked delivery.
struct Unacked {
    channel: ChannelId,
    /// The consumer's tag, or `None` for `basic.get`.
    tag: Option<Bytes>,
    /// Where the message goes back if it is requeued.
    place: Place,
}

/// Where a message handed out goes back if it is requeued: its priority and body length.
#[derive(Debug, Clone, Copy)]
struct Place {
    priority: u8,
    body_bytes: u64,
}

impl Place {
    /// Where `record` goes back; its header is parsed for the priority only in a priority
    /// queue (`prioritized`), so other queues do no extra work per delivery.
    fn of(record: &Record, prioritized: bool) -> Place {
        let priority =
            if prioritized { MessageView::parse(&record.header).map_or(0, |m| m.priority) } else { 0 };
        Place { priority, body_bytes: record.body.len() as u64 }
    }
}

struct Actor {
    options: QueueOptions,
    stats: Arc<QueueStats>,
    /// The log read ahead of dispatch, from the read position on.
    read_ahead: ReadAhead,
    /// Priority queues: the ready messages read so far, as offsets by priority.
    prioritized: Option<Prioritized>,
    /// The body bytes of the ready messages counted so far: those read (and, with
    /// `x-max-length-bytes`, the whole backlog).
    ready_bytes: ReadyBytes,
    requeued: BTreeSet<u64>,
    unacked: SeqMap<Unacked>,
    /// The body bytes of `unacked`.
    unacked_bytes: u64,
    /// The offset of the read-ahead record whose `timestamp` property was last published
    /// as the head's (`u64::MAX`: none yet).
    head_timestamp_of: u64,
    consumers: Rotation,
    persisted_floor: u64,
    /// Everything below this offset was delivered before (kept across restarts).
    delivered_below: u64,
    persisted_delivered: u64,
    /// Acks above the floor, persisted on the tick (durable queues on disc).
    acked: acked::Acked,
    /// Records from before a restart not yet skipped that will not be delivered (transient
    /// ones, which did not survive it, and acked ones): not counted as ready.
    transient_pending: u64,
    /// A read of the log failed (not damage): the queue waits for the tick to try again
    /// rather than waking at once.
    read_failed: bool,
    /// The queue TTLs of messages enqueued before the TTL changed: each applies below its
    /// offset (and at or above the entry before it); `options.message_ttl` above the last.
    /// At most [`crate::limits::QUEUE_EARLIER_TTLS_MAX`], in offset order.
    earlier_ttls: VecDeque<(u64, Option<Duration>)>,
}

impl Actor {
    fn new(options: QueueOptions, stats: Arc<QueueStats>) -> Actor {
        let (floor, delivered_below) = floor::recover_marks(&options);
        let cursor = floor.max(options.log.first_offset());
        let acked = floor::recover_acked(&options, cursor);
        let transient_pending = floor::count_skipped(&options.log, cursor, options.restart_offset, &acked);
        let prioritized = options.max_priority.map(Prioritized::new);
        let ready_bytes = ReadyBytes::new(cursor);
        Actor {
            options,
            stats,
            read_ahead: ReadAhead::new(cursor),
            prioritized,
            ready_bytes,
            requeued: BTreeSet::new(),
            unacked: SeqMap::new(),
            unacked_bytes: 0,
            head_timestamp_of: u64::MAX,
            consumers: Rotation::default(),
            persisted_floor: cursor,
            delivered_below,
            persisted_delivered: delivered_below,
            acked,
            transient_pending,
            read_failed: false,
            earlier_ttls: VecDeque::new(),
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(QUEUE_TICK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Wakes the task when the message at the head expires before the next tick.
        let head_expiry = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(head_expiry);
        let mut head_expiry_set = false;
        // The tick persists the floor and acks; without consumers it runs only while
        // something may be left to persist, so an idle queue is never woken (100,000 idle
        // queues cost no CPU).
        let mut tick_needed = true;
        // Whether the turn had work besides the tick (for `active_at_ms`).
        let mut worked = true;
        // Notes the appends the task is not woken for (`watch.rs`).
        let mut appends = AppendWatch::new();
        loop {
            self.enforce_limits();
            worked |= self.dispatch() > 0;
            if std::mem::take(&mut worked) {
                self.stats.active_at_ms.store(now_ms(), Ordering::Relaxed);
            }
            self.publish_stats();
            self.flush_dead_letters().await;
            let log = self.options.log.clone();
            let blocked_sink = self.blocked_sink();
            let (wait_at, watch) = self.wait_at(&appends);
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Delete(done)) => {
                        let ready = self.ready_count();
                        self.shut_down();
                        let _ = done.send(ready);
                        return;
                    }
                    Some(Command::Settings(settings)) => {
                        // Dead letters staged before the change go where they were bound.
                        self.flush_dead_letters().await;
                        self.apply_settings(settings);
                        tick_needed = true;
                    }
                    Some(command) => {
                        self.handle(command);
                        tick_needed = true;
                        worked = true;
                    }
                },
                outcome = log.wait_for(wait_at.unwrap_or(u64::MAX)), if wait_at.is_some() => {
                    if outcome.is_err() {
                        return;
                    }
                    worked = true;
                    if watch {
                        appends.noted(self.note_appends());
                    } else {
                        head_expiry_set = self.arm_head_expiry(head_expiry.as_mut());
                        tick_needed = true;
                    }
                }
                () = appends.cooled(), if appends.cooling() => worked |= appends.look_again(&mut self),
                // A consumer whose sink was full is served again as soon as its connection
                // has drained some deliveries, not at the next tick.
                _ = wait_for_room(blocked_sink.as_ref()), if blocked_sink.is_some() => tick_needed = true,
                () = &mut head_expiry, if head_expiry_set => {
                    head_expiry_set = self.arm_head_expiry(head_expiry.as_mut());
                    tick_needed = true;
                }
                // With consumers the tick always runs: credit given back elsewhere (a shared
                // channel prefetch) reaches this queue with no event of its own.
                _ = tick.tick(), if tick_needed || self.read_failed || !self.consumers.is_empty() => {
                    self.read_failed = false;
                    self.persist_floor();
                    self.forget_earlier_ttls();
                    head_expiry_set = self.arm_head_expiry(head_expiry.as_mut());
                    tick_needed = self.persistence_pending();
                }
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
                self.consumers.remove_where(|c| c.spec.channel == channel && c.spec.tag == tag);
                self.publish_stats();
                let _ = done.send(self.consumers.is_empty());
            }
            Command::Ack { channel, offsets } => {
                for offset in offsets {
                    if self.settle(channel, offset).is_some() {
                        self.record_ack(offset);
                        QueueCounters::add(&self.stats.messages.ack, 1);
                    }
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
                if let Some(prioritized) = &mut self.prioritized {
                    prioritized.index.clear();
                    prioritized.window.clear();
                }
                self.ready_bytes = ReadyBytes::new(self.read_ahead.cursor());
                self.requeued.clear();
                self.forget_restart_skips();
                // Counts are current before the answer (a declare that follows sees them).
                self.publish_stats();
                let _ = done.send(ready);
            }
            Command::ChannelClosed { channel, done } => {
                self.consumers.remove_where(|c| c.spec.channel == channel);
                self.requeue_channel(channel);
                self.publish_stats();
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Lag(done) => {
                let _ = done.send(Vec::new());
            }
            Command::Delete(_) | Command::Settings(_) => unreachable!("handled in run"),
        }
    }

    fn add_consumer(&mut self, spec: ConsumerSpec) -> Result<(), QueueError> {
        let exclusive_held = self.consumers.iter().any(|c| c.spec.exclusive);
        if exclusive_held || (spec.exclusive && !self.consumers.is_empty()) {
            return Err(QueueError::ExclusiveUse { queue: self.options.name.to_string() });
        }
        self.consumers.add(Consumer::new(spec));
        Ok(())
    }

    /// `basic.reject` / `basic.nack` (and, with no offsets and `requeue`, `basic.recover`).
    fn reject(&mut self, channel: ChannelId, offsets: Vec<u64>, requeue: bool) {
        if offsets.is_empty() && requeue {
            self.requeue_channel(channel);
        }
        for offset in offsets {
            if let Some(entry) = self.settle(channel, offset) {
                if requeue {
                    self.requeue(offset, entry.place);
                } else {
                    self.kill(offset, DeathReason::Rejected);
                }
            }
        }
    }

    /// `basic.get`: the next ready message, tracked as unacked unless `no_ack`.
    fn get(&mut self, channel: ChannelId, no_ack: bool) -> Option<Delivery> {
        let Some((record, redelivered)) = self.next_ready() else {
            QueueCounters::add(&self.stats.messages.get_empty, 1);
            return None;
        };
        self.stats.messages.handed_out(true, !no_ack, redelivered);
        if !no_ack {
            let place = Place::of(&record, self.prioritized.is_some());
            self.unacked_bytes += place.body_bytes;
            self.unacked.insert(record.offset, Unacked { channel, tag: None, place });
        }
        let message_count = self.ready_count().min(u64::from(u32::MAX)) as u32;
        self.delivery(channel, record, redelivered, None, !no_ack, message_count)
    }

    /// Removes an unacked delivery and returns it, when it was one of `channel`'s.
    fn settle(&mut self, channel: ChannelId, offset: u64) -> Option<Unacked> {
        match self.unacked.get(offset) {
            Some(entry) if entry.channel == channel => {}
            _ => return None,
        }
        let entry = self.unacked.remove(offset)?;
        self.unacked_bytes -= entry.place.body_bytes;
        if let Some(tag) = &entry.tag {
            if let Some(consumer) =
                self.consumers.iter_mut().find(|c| c.spec.channel == channel && c.spec.tag == tag)
            {
                consumer.settled();
            }
        }
        Some(entry)
    }

    /// Puts a message handed out before back among the ready ones, in its place.
    fn requeue(&mut self, offset: u64, place: Place) {
        match &mut self.prioritized {
            Some(prioritized) => prioritized.index.requeue(place.priority, offset),
            None => {
                self.requeued.insert(offset);
            }
        }
        self.ready_bytes.total += place.body_bytes;
    }

    fn requeue_channel(&mut self, channel: ChannelId) {
        let offsets: Vec<u64> =
            self.unacked.iter().filter(|(_, u)| u.channel == channel).map(|(offset, _)| offset).collect();
        for offset in offsets {
            if let Some(entry) = self.settle(channel, offset) {
                self.requeue(offset, entry.place);
            }
        }
    }

    fn publish_stats(&mut self) {
        self.stats.cursor.store(self.read_ahead.cursor(), Ordering::Release);
        self.stats.held.store(self.held(), Ordering::Release);
        self.stats.lost.store(self.transient_pending, Ordering::Release);
        self.stats.unacked.store(self.unacked.len() as u64, Ordering::Release);
        self.stats.consumers.store(self.consumers.len() as u32, Ordering::Release);
        self.publish_contents();
    }

    /// The sizes of what the queue holds, and its head's timestamp (see [`QueueContents`]).
    fn publish_contents(&mut self) {
        if self.held() == 0 && self.ready_bytes.counted_to <= self.read_ahead.cursor() {
            // Nothing counted is left: a count that drifted (a requeued or indexed record
            // that could not be read back) starts again from 0.
            self.ready_bytes.total = 0;
        }
        let contents = &self.stats.contents;
        contents.ready_bytes.store(self.ready_bytes.total, Ordering::Relaxed);
        contents.counted_to.store(self.ready_bytes.counted_to, Ordering::Relaxed);
        contents.unacked_bytes.store(self.unacked_bytes, Ordering::Relaxed);
        contents.read_ahead.store(self.read_ahead.len() as u64, Ordering::Relaxed);
        contents.read_ahead_bytes.store(self.read_ahead.bytes(), Ordering::Relaxed);
        // The next message out is the first requeued one, or the highest priority: in
        // memory only when it is the read-ahead's first.
        let head = self.read_ahead.front().filter(|_| self.requeued.is_empty() && self.prioritized.is_none());
        let head_offset = head.map_or(u64::MAX, |record| record.offset);
        if head_offset != self.head_timestamp_of {
            self.head_timestamp_of = head_offset;
            let timestamp = head.and_then(head_timestamp).unwrap_or(QueueContents::NO_TIMESTAMP);
            contents.head_timestamp.store(timestamp, Ordering::Relaxed);
        }
    }

    /// The sink of a consumer that could take a message but for its full sink, when there
    /// is something to deliver.
    fn blocked_sink(&self) -> Option<mpsc::Sender<ConsumerEvent>> {
        if self.held() == 0 && self.read_ahead.cursor() >= self.options.log.next_offset() {
            return None;
        }
        self.consumers.iter().find_map(Consumer::blocked_sink)
    }

    /// Hands ready messages to the consumers that can take them; returns how many. Records
    /// in [`QueueStats::consumer_use`] whether the consumers could take what there was: the
    /// queue is inactive while it has messages and every consumer is held back.
    fn dispatch(&mut self) -> u64 {
        let mut handed_out = 0;
        while !self.consumers.is_empty() {
            // The turn moves only once a message is handed over: a pass that finds nothing
            // to deliver must not skip anyone.
            let Some(index) = self.consumers.pick() else {
                if self.held() > 0 || self.read_ahead.cursor() < self.options.log.next_offset() {
                    self.stats.consumer_use.set_active(false);
                }
                return handed_out;
            };
            self.stats.consumer_use.set_active(true);
            let Some((record, redelivered)) = self.next_ready() else { return handed_out };
            let consumer = &mut self.consumers[index];
            let place = Place::of(&record, self.prioritized.is_some());
            if !consumer.take() {
                self.requeue(record.offset, place);
                self.stats.consumer_use.set_active(false);
                return handed_out;
            }
            let needs_ack = !consumer.spec.no_ack;
            let tag = consumer.spec.tag.clone();
            let channel = consumer.spec.channel;
            if needs_ack {
                self.unacked_bytes += place.body_bytes;
                self.unacked.insert(record.offset, Unacked { channel, tag: Some(tag.clone()), place });
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
                    self.unacked_bytes -= place.body_bytes;
                }
                self.requeue(offset, place);
                self.stats.consumer_use.set_active(false);
                return handed_out;
            }
            self.stats.messages.handed_out(false, needs_ack, redelivered);
            self.consumers.served(index);
            handed_out += 1;
        }
        handed_out
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
        for consumer in self.consumers.drain() {
            let event =
                ConsumerEvent::Cancelled { channel: consumer.spec.channel, consumer_tag: consumer.spec.tag };
            let _ = consumer.spec.sink.try_send(event);
        }
        self.persist_before_stop();
    }
}

/// The `timestamp` property of a stored message, read from its content header alone.
fn head_timestamp(record: &Record) -> Option<u64> {
    let view = MessageView::parse(&record.header)?;
    ContentHeader::trusted(record.header.slice_ref(view.content_header)).ok()?.timestamp()
}
