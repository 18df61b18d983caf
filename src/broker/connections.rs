//! What the node knows of its client connections, for the management API and the limits:
//! each open connection's facts (peer, user, vhost, negotiated parameters, client
//! properties), its byte and frame counters, its channels with their counters, and their
//! consumers. The gateway that serves a connection registers it at `connection.open` and
//! updates the counters with relaxed atomic adds; readers take a lock only to list.
//!
//! A connection can be asked to close from outside (`DELETE /api/connections/{name}`):
//! [`ConnectionInfo::request_close`] wakes its driver, which closes it with
//! `320 CONNECTION_FORCED` and the reason given.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::watch;

use super::ConnectionId;
use crate::wire::amqp::FieldTable;

/// Counters of one channel's message traffic, in messages.
#[derive(Debug, Default)]
pub struct MessageCounters {
    /// Messages published.
    pub publish: AtomicU64,
    /// Publishes confirmed (`basic.ack` sent in confirm mode).
    pub confirm: AtomicU64,
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
    /// Deliveries and gets that were redeliveries.
    pub redeliver: AtomicU64,
    /// Messages acknowledged by the client.
    pub ack: AtomicU64,
    /// Mandatory publishes returned unroutable.
    pub return_unroutable: AtomicU64,
    /// Publishes that reached no queue and were not mandatory, so were dropped.
    pub drop_unroutable: AtomicU64,
}

impl MessageCounters {
    /// Adds `n` to `counter` (a field of this struct). Only the channel's own connection
    /// writes its counters, so a plain load and store suffice (no locked read-modify-write
    /// on the message path); readers see a recent value.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// The counters as `(name, total)`, with RabbitMQ's `message_stats` names.
    pub fn totals(&self) -> [(&'static str, u64); 11] {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        [
            ("publish", get(&self.publish)),
            ("confirm", get(&self.confirm)),
            ("deliver", get(&self.deliver)),
            ("deliver_no_ack", get(&self.deliver_no_ack)),
            ("get", get(&self.get)),
            ("get_no_ack", get(&self.get_no_ack)),
            ("get_empty", get(&self.get_empty)),
            ("redeliver", get(&self.redeliver)),
            ("ack", get(&self.ack)),
            ("return_unroutable", get(&self.return_unroutable)),
            ("drop_unroutable", get(&self.drop_unroutable)),
        ]
    }

    /// Adds `other`'s counts to these, which several threads may do at once.
    pub fn absorb(&self, other: &MessageCounters) {
        let pairs = [
            (&self.publish, &other.publish),
            (&self.confirm, &other.confirm),
            (&self.deliver, &other.deliver),
            (&self.deliver_no_ack, &other.deliver_no_ack),
            (&self.get, &other.get),
            (&self.get_no_ack, &other.get_no_ack),
            (&self.get_empty, &other.get_empty),
            (&self.redeliver, &other.redeliver),
            (&self.ack, &other.ack),
            (&self.return_unroutable, &other.return_unroutable),
            (&self.drop_unroutable, &other.drop_unroutable),
        ];
        for (total, part) in pairs {
            total.fetch_add(part.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// A vhost's message counts of channels that have closed, and bytes of connections that
/// have closed: with the open ones', its totals since the node started.
#[derive(Debug, Default)]
pub struct RetiredCounts {
    /// Message counters of closed channels.
    pub messages: MessageCounters,
    /// Bytes received by closed connections.
    pub recv_oct: AtomicU64,
    /// Bytes sent by closed connections.
    pub send_oct: AtomicU64,
}

/// One consumer, as listed.
#[derive(Debug, Clone)]
pub struct ConsumerInfo {
    /// The consumer tag.
    pub tag: Bytes,
    /// The queue consumed from.
    pub queue: Bytes,
    /// The client acknowledges deliveries.
    pub ack_required: bool,
    /// An exclusive consumer.
    pub exclusive: bool,
    /// The channel's prefetch when it started.
    pub prefetch_count: u32,
    /// Its `basic.consume` arguments.
    pub arguments: FieldTable,
}

/// One open channel: its settings and counters, kept up to date by its connection.
#[derive(Debug, Default)]
pub struct ChannelInfo {
    /// The channel number.
    pub number: u16,
    /// In confirm mode.
    pub confirm: AtomicBool,
    /// In transaction mode.
    pub transactional: AtomicBool,
    /// `basic.qos` prefetch per consumer.
    pub prefetch_count: AtomicU32,
    /// `basic.qos` prefetch for the whole channel.
    pub global_prefetch_count: AtomicU32,
    /// Deliveries not yet acknowledged.
    pub unacknowledged: AtomicU64,
    /// Publishes not yet confirmed.
    pub unconfirmed: AtomicU64,
    /// Publishes held by an open transaction (`tx.select`), not yet committed.
    pub messages_uncommitted: AtomicU64,
    /// Acks, nacks and rejects (in messages) held by an open transaction.
    pub acks_uncommitted: AtomicU64,
    /// Message counters.
    pub messages: MessageCounters,
    /// When it last had work (a frame from the client or a delivery), in milliseconds
    /// since the epoch; its connection stores it at most once per read or delivery batch
    /// (see [`ChannelInfo::mark_active`]).
    pub active_at_ms: AtomicI64,
    /// Its consumers, by tag.
    pub consumers: Mutex<BTreeMap<Bytes, ConsumerInfo>>,
    /// Where its counts go when it closes: its vhost's totals.
    retired: Option<Arc<RetiredCounts>>,
}

impl Drop for ChannelInfo {
    fn drop(&mut self) {
        if let Some(retired) = &self.retired {
            retired.messages.absorb(&self.messages);
        }
    }
}

impl ChannelInfo {
    /// Channel `number` with nothing counted yet, whose counts join `retired` when it is
    /// dropped.
    pub fn new(number: u16, retired: Option<Arc<RetiredCounts>>) -> ChannelInfo {
        ChannelInfo {
            number,
            confirm: AtomicBool::new(false),
            transactional: AtomicBool::new(false),
            prefetch_count: AtomicU32::new(0),
            global_prefetch_count: AtomicU32::new(0),
            unacknowledged: AtomicU64::new(0),
            unconfirmed: AtomicU64::new(0),
            messages_uncommitted: AtomicU64::new(0),
            acks_uncommitted: AtomicU64::new(0),
            messages: MessageCounters::default(),
            active_at_ms: AtomicI64::new(crate::log::now_ms()),
            consumers: Mutex::new(BTreeMap::new()),
            retired,
        }
    }

    /// Records work at `at_ms`, the time of the batch being handled (read once per batch
    /// by the connection, not per frame). Only the channel's own connection writes it, and
    /// it stores only when the batch's time differs from the last one stored, so frames of
    /// one batch cost a relaxed load each.
    #[inline]
    pub fn mark_active(&self, at_ms: i64) {
        if self.active_at_ms.load(Ordering::Relaxed) != at_ms {
            self.active_at_ms.store(at_ms, Ordering::Relaxed);
        }
    }

    /// Every consumer of the channel.
    pub fn consumers(&self) -> Vec<ConsumerInfo> {
        self.consumers.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }
}

/// The facts of a connection fixed at `connection.open`.
#[derive(Debug, Clone)]
pub struct ConnectionFacts {
    /// The node's id for it.
    pub id: ConnectionId,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener's address it reached.
    pub local: SocketAddr,
    /// The logged-in user.
    pub user: String,
    /// The vhost it opened.
    pub vhost: String,
    /// The SASL mechanism of the login.
    pub auth_mechanism: String,
    /// What the client said of itself in `connection.start-ok`.
    pub client_properties: FieldTable,
    /// Negotiated frame_max.
    pub frame_max: u32,
    /// Negotiated channel_max.
    pub channel_max: u16,
    /// Negotiated heartbeat, seconds.
    pub heartbeat_s: u16,
    /// When it opened, milliseconds since the epoch.
    pub connected_at_ms: i64,
}

/// One open connection.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// What is fixed.
    pub facts: ConnectionFacts,
    /// Bytes received.
    pub recv_oct: AtomicU64,
    /// Bytes sent.
    pub send_oct: AtomicU64,
    /// Reads from the socket.
    pub recv_cnt: AtomicU64,
    /// Writes to the socket.
    pub send_cnt: AtomicU64,
    /// Bytes of the write under way that the socket has not accepted yet (RabbitMQ's
    /// `send_pend`): above 0 only while a client reads slower than the node sends.
    pub send_pend: AtomicU64,
    /// Blocked by a resource alarm (it published while one is raised).
    pub blocked: AtomicBool,
    /// Its vhost's totals, which its channels' and its own counts join when they close.
    retired: Arc<RetiredCounts>,
    channels: Mutex<BTreeMap<u16, Arc<ChannelInfo>>>,
    close: watch::Sender<Option<String>>,
}

impl ConnectionInfo {
    /// A connection with the given facts and nothing counted yet, whose counts join
    /// `retired` when it closes.
    pub fn new(facts: ConnectionFacts, retired: Arc<RetiredCounts>) -> ConnectionInfo {
        ConnectionInfo {
            facts,
            retired,
            recv_oct: AtomicU64::new(0),
            send_oct: AtomicU64::new(0),
            recv_cnt: AtomicU64::new(0),
            send_cnt: AtomicU64::new(0),
            send_pend: AtomicU64::new(0),
            blocked: AtomicBool::new(false),
            channels: Mutex::new(BTreeMap::new()),
            close: watch::channel(None).0,
        }
    }

    /// `peer -> local`, as RabbitMQ names a connection.
    pub fn name(&self) -> String {
        format!("{} -> {}", self.facts.peer, self.facts.local)
    }

    /// Registers channel `number` and returns its record.
    pub fn open_channel(&self, number: u16) -> Arc<ChannelInfo> {
        let channel = Arc::new(ChannelInfo::new(number, Some(Arc::clone(&self.retired))));
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).insert(number, Arc::clone(&channel));
        channel
    }

    /// Forgets channel `number`.
    pub fn close_channel(&self, number: u16) {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).remove(&number);
    }

    /// Every open channel, by number.
    pub fn channels(&self) -> Vec<Arc<ChannelInfo>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// How many channels are open.
    pub fn channel_count(&self) -> usize {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Asks the connection's driver to close it with `320 CONNECTION_FORCED - reason`.
    pub fn request_close(&self, reason: String) {
        self.close.send_replace(Some(reason));
    }

    /// Message counts of its open channels, with those of its vhost's closed channels and
    /// connections: the vhost's totals are the retired counts plus every open connection's.
    pub fn retired(&self) -> &Arc<RetiredCounts> {
        &self.retired
    }

    /// Follows close requests (for the connection's driver).
    pub fn close_requests(&self) -> watch::Receiver<Option<String>> {
        self.close.subscribe()
    }
}

impl Drop for ConnectionInfo {
    fn drop(&mut self) {
        self.retired.recv_oct.fetch_add(self.recv_oct.load(Ordering::Relaxed), Ordering::Relaxed);
        self.retired.send_oct.fetch_add(self.send_oct.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}
