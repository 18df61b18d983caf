//! A running queue as the broker holds it: the options it starts with, the counters its task
//! publishes, and the handle that talks to the task over its bounded command channel.
//!
//! Both queue kinds share this: [`QueueHandle::start`] spawns the classic task
//! ([`super::classic`]) or the stream task ([`super::stream`]) and every call becomes a
//! `Command`. No frames, sockets or exchanges.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::api::{ChannelId, ConsumerSpec, Delivery, QueueError};
use super::consumer_use::ConsumerUse;
use super::dead_letters::DeadLetters;
use super::stream::ConsumerLag;
use crate::limits::QUEUE_COMMANDS_MAX;
use crate::log::{now_ms, Log};

/// Counters a queue keeps up to date for others to read.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Consumers attached.
    pub consumers: AtomicU32,
    /// Offset of the next record the queue task will read from its log.
    pub cursor: AtomicU64,
    /// Ready messages the task has read but not handed out (read ahead, requeued, or
    /// ordered by priority).
    pub held: AtomicU64,
    /// Records in the log from before a restart that did not survive it (transient) and
    /// are not skipped yet: not ready.
    pub lost: AtomicU64,
    /// Delivered, not yet acknowledged.
    pub unacked: AtomicU64,
    /// Records lost to damaged batches in the log (never delivered: their bytes failed
    /// verification), summed over the queue's readers (each stream consumer meets the
    /// damage on its own).
    pub damaged: AtomicU64,
    /// Totals of the messages the queue handed out and had settled since it started.
    pub messages: QueueCounters,
    /// The log's next offset when the queue started: what was appended since is what was
    /// published to it ([`QueueHandle::published`]).
    pub appended_from: AtomicU64,
    /// Sizes of what a classic queue holds, and its head's timestamp.
    pub contents: QueueContents,
    /// When the queue last had work, in milliseconds since the epoch: a command, a
    /// delivery, an append (one it was not woken for is noted within a second; see
    /// `classic/watch.rs`), not its own timers.
    pub active_at_ms: AtomicI64,
    /// How much of the time its consumers could take its messages (classic queues).
    pub consumer_use: ConsumerUse,
}

/// What a classic queue holds, in bytes and in memory, as its task last published it (once
/// per turn, with plain stores). Sizes are of message bodies, as RabbitMQ's
/// `message_bytes*` count them.
#[derive(Debug)]
pub struct QueueContents {
    /// Body bytes of the ready messages below [`QueueContents::counted_to`]: those read
    /// ahead, requeued or indexed by priority (and, in a queue with `x-max-length-bytes`,
    /// the backlog it counted for the limit).
    pub ready_bytes: AtomicU64,
    /// Every ready message below this offset is counted in `ready_bytes`; the log's records
    /// from here to its end are not counted yet.
    pub counted_to: AtomicU64,
    /// Body bytes of the delivered, unacknowledged messages.
    pub unacked_bytes: AtomicU64,
    /// Messages read ahead of delivery, held in memory.
    pub read_ahead: AtomicU64,
    /// Body bytes of the `read_ahead` messages.
    pub read_ahead_bytes: AtomicU64,
    /// The `timestamp` property of the next message to deliver, when that message is read
    /// ahead and has one; [`QueueContents::NO_TIMESTAMP`] otherwise.
    pub head_timestamp: AtomicU64,
}

impl QueueContents {
    /// `head_timestamp` when there is none to show.
    pub const NO_TIMESTAMP: u64 = u64::MAX;
}

impl Default for QueueContents {
    fn default() -> QueueContents {
        QueueContents {
            ready_bytes: AtomicU64::new(0),
            counted_to: AtomicU64::new(0),
            unacked_bytes: AtomicU64::new(0),
            read_ahead: AtomicU64::new(0),
            read_ahead_bytes: AtomicU64::new(0),
            head_timestamp: AtomicU64::new(QueueContents::NO_TIMESTAMP),
        }
    }
}

/// Message totals of one queue since it started, as RabbitMQ's `message_stats` count them.
/// Only the queue's task writes them (a plain load and store, no locked add); readers see a
/// recent value.
#[derive(Debug, Default)]
pub struct QueueCounters {
    /// Deliveries to consumers that ack.
    pub deliver: AtomicU64,
    /// Deliveries to consumers with `no_ack`.
    pub deliver_no_ack: AtomicU64,
    /// `basic.get` answered with a message, to be acked.
    pub get: AtomicU64,
    /// `basic.get` answered with a message, with `no_ack`.
    pub get_no_ack: AtomicU64,
    /// `basic.get` answered `get-empty`.
    pub get_empty: AtomicU64,
    /// Deliveries and gets of messages delivered before.
    pub redeliver: AtomicU64,
    /// Acknowledgements of the queue's deliveries.
    pub ack: AtomicU64,
}

impl QueueCounters {
    /// Adds `n` to `counter`, one of this struct's fields, from the queue's task.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Counts one message handed out: delivered (`get` false) or got, to be acked or not.
    pub fn handed_out(&self, get: bool, needs_ack: bool, redelivered: bool) {
        let counter = match (get, needs_ack) {
            (false, true) => &self.deliver,
            (false, false) => &self.deliver_no_ack,
            (true, true) => &self.get,
            (true, false) => &self.get_no_ack,
        };
        QueueCounters::add(counter, 1);
        if redelivered {
            QueueCounters::add(&self.redeliver, 1);
        }
    }
}

/// What a queue's task is asked to do; each kind answers every command.
pub(super) enum Command {
    Consume(ConsumerSpec, oneshot::Sender<Result<(), QueueError>>),
    Cancel { channel: ChannelId, tag: Bytes, done: oneshot::Sender<bool> },
    Ack { channel: ChannelId, offsets: Vec<u64> },
    Reject { channel: ChannelId, offsets: Vec<u64>, requeue: bool },
    Get { channel: ChannelId, no_ack: bool, done: oneshot::Sender<Option<Delivery>> },
    Purge(oneshot::Sender<u64>),
    ChannelClosed { channel: ChannelId, done: Option<oneshot::Sender<()>> },
    Delete(oneshot::Sender<u64>),
    Lag(oneshot::Sender<Vec<ConsumerLag>>),
    Settings(QueueSettings),
}

/// The settings a running classic queue takes anew when its policy changes (the same
/// fields as in [`QueueOptions`]). A stream ignores them: its limits are its log's
/// retention.
pub struct QueueSettings {
    /// `x-message-ttl`: for messages enqueued from now on; those already in the queue
    /// keep the time to live they came with, as in RabbitMQ.
    pub message_ttl: Option<Duration>,
    /// `x-max-length` with drop-head; a lower limit drops the oldest messages at once.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes` (bodies) with drop-head.
    pub max_length_bytes: Option<u64>,
    /// `Some` to replace the dead-letter channel (`Some(None)`: no dead-lettering);
    /// `None` keeps the one the queue has.
    pub dead_letter: Option<Option<DeadLetters>>,
    /// The log's next offset when the settings were given ([`QueueHandle::update`] sets
    /// it): a new `message_ttl` applies from this offset on, so a message published after
    /// the change was answered takes it, whenever the queue's task gets to the settings.
    pub from_offset: u64,
}

/// How a queue behaves.
pub struct QueueOptions {
    /// The queue's name.
    pub name: Arc<str>,
    /// Its log.
    pub log: Log,
    /// Records below this offset come from before a restart: the non-persistent ones are
    /// skipped (they did not survive, as in RabbitMQ). 0 for a new queue.
    pub restart_offset: u64,
    /// Where to start reading after a restart (the persisted floor; clamped to
    /// `restart_offset` when a lost tail left it past the log's end).
    pub start_offset: u64,
    /// Persist the floor in the log's offset store (durable queues on disc).
    pub persist_floor: bool,
    /// `x-message-ttl`.
    pub message_ttl: Option<Duration>,
    /// `x-max-length` with drop-head.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes` (bodies) with drop-head.
    pub max_length_bytes: Option<u64>,
    /// `x-max-priority`: serve the highest priority first, FIFO within a priority.
    pub max_priority: Option<u8>,
    /// Where dead messages go, in order, when `x-dead-letter-exchange` is set.
    pub dead_letter: Option<DeadLetters>,
    /// A stream: consumers read at their own offsets; acks return credit, nothing is
    /// removed or requeued.
    pub stream: bool,
}

/// A handle on a running queue. Publishing goes to [`QueueHandle::log`] directly.
pub struct QueueHandle {
    name: Arc<str>,
    log: Log,
    commands: mpsc::Sender<Command>,
    stats: Arc<QueueStats>,
}

impl std::fmt::Debug for QueueHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueHandle").field("name", &self.name).finish()
    }
}

impl QueueHandle {
    /// Starts the queue's task on the current runtime.
    pub fn start(options: QueueOptions) -> Arc<QueueHandle> {
        let (commands, receiver) = mpsc::channel(QUEUE_COMMANDS_MAX);
        let stats = Arc::new(QueueStats::default());
        stats.appended_from.store(options.log.next_offset(), Ordering::Relaxed);
        stats.active_at_ms.store(now_ms(), Ordering::Relaxed);
        let handle = Arc::new(QueueHandle {
            name: Arc::clone(&options.name),
            log: options.log.clone(),
            commands,
            stats: Arc::clone(&stats),
        });
        if options.stream {
            super::stream::spawn(options, stats, receiver);
        } else {
            super::classic::spawn(options, stats, receiver);
        }
        handle
    }

    /// The queue's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The queue's log, to publish to.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Live counters.
    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }

    /// Ready messages, counting those appended but not yet seen by the queue task (it may
    /// also count expired or non-persistent messages not yet skipped).
    pub fn ready_count(&self) -> u64 {
        let cursor = self.stats.cursor.load(Ordering::Acquire);
        (self.log.next_offset().saturating_sub(cursor) + self.stats.held.load(Ordering::Acquire))
            .saturating_sub(self.stats.lost.load(Ordering::Acquire))
    }

    /// Messages appended to the queue's log since it started: published to it (or
    /// dead-lettered into it).
    pub fn published(&self) -> u64 {
        self.log.next_offset().saturating_sub(self.stats.appended_from.load(Ordering::Relaxed))
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, QueueError> {
        let gone = || QueueError::Deleted { queue: self.name.to_string() };
        let (done, answer) = oneshot::channel();
        self.commands.send(make(done)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }

    /// Adds a consumer.
    ///
    /// # Errors
    /// [`QueueError::ExclusiveUse`] when exclusivity forbids it.
    pub async fn consume(&self, spec: ConsumerSpec) -> Result<(), QueueError> {
        self.ask(|done| Command::Consume(spec, done)).await?
    }

    /// Removes a consumer; answers whether the queue now has no consumer left.
    ///
    /// # Errors
    /// [`QueueError::Deleted`].
    pub async fn cancel(&self, channel: ChannelId, tag: Bytes) -> Result<bool, QueueError> {
        self.ask(|done| Command::Cancel { channel, tag, done }).await
    }

    /// Acknowledges deliveries (by offset). Waits only while the queue's command channel is
    /// full, so that commands reach the queue in the order they were sent (a queue's task
    /// never waits for a connection: this cannot deadlock). A deleted queue ignores it.
    pub async fn ack(&self, channel: ChannelId, offsets: Vec<u64>) {
        let _ = self.commands.send(Command::Ack { channel, offsets }).await;
    }

    /// Rejects deliveries: requeued, or dead-lettered / dropped. Waits as [`Self::ack`] does.
    pub async fn reject(&self, channel: ChannelId, offsets: Vec<u64>, requeue: bool) {
        let _ = self.commands.send(Command::Reject { channel, offsets, requeue }).await;
    }

    /// `basic.get`: the next ready message, if any.
    ///
    /// # Errors
    /// [`QueueError::Deleted`].
    pub async fn get(&self, channel: ChannelId, no_ack: bool) -> Result<Option<Delivery>, QueueError> {
        self.ask(|done| Command::Get { channel, no_ack, done }).await
    }

    /// Drops every ready message; answers how many.
    ///
    /// # Errors
    /// [`QueueError::Deleted`].
    pub async fn purge(&self) -> Result<u64, QueueError> {
        self.ask(Command::Purge).await
    }

    /// Requeues every unacked delivery of `channel` and removes its consumers; resolves once
    /// the queue has done so.
    pub async fn channel_closed(&self, channel: ChannelId) {
        let (done, answer) = oneshot::channel();
        if self.commands.send(Command::ChannelClosed { channel, done: Some(done) }).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Requeues every unacked delivery of `channel` (`basic.recover`), keeping consumers.
    /// Waits as [`Self::ack`] does.
    pub async fn recover(&self, channel: ChannelId) {
        // Same as a close for the deliveries; consumers stay (see the classic task's
        // `requeue_channel`).
        let _ = self.commands.send(Command::Reject { channel, offsets: Vec::new(), requeue: true }).await;
    }

    /// Stream queues: every consumer's position and lag.
    ///
    /// # Errors
    /// [`QueueError::Deleted`].
    pub async fn lag(&self) -> Result<Vec<ConsumerLag>, QueueError> {
        self.ask(Command::Lag).await
    }

    /// Gives the queue new settings (its policy changed). Waits as [`Self::ack`] does; a
    /// deleted queue ignores them.
    pub async fn update(&self, mut settings: QueueSettings) {
        settings.from_offset = self.log.next_offset();
        let _ = self.commands.send(Command::Settings(settings)).await;
    }

    /// Stops the queue, cancelling its consumers; answers the ready count it had.
    ///
    /// # Errors
    /// [`QueueError::Deleted`] if it was already gone.
    pub async fn delete(&self) -> Result<u64, QueueError> {
        self.ask(Command::Delete).await
    }
}
