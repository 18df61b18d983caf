//! One AMQP connection: the handshake (start, tune, open), the channel table, and the
//! dispatch of frames to channels. Frames come in through [`Connection::handle_frame`];
//! everything to send is appended to [`Connection::out`]. The connection owns no socket and
//! no timer: `server::amqp_listener` moves bytes and drives heartbeats.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::channel::Channel;
use super::output::{short_text, Output};
use super::reply::{ProtocolError, Reply};
use crate::broker::access::{AccessState, User};
use crate::broker::connections::{ConnectionFacts, ConnectionInfo};
use crate::broker::{Broker, ConnectionId, ConnectionSlot, Node};
use crate::limits::{
    CHANNEL_MAX, CONSUMER_EVENTS_MAX, FRAME_MAX_BYTES, FRAME_MIN_BYTES, HEARTBEAT_S, OUTPUT_BYTES_INITIAL,
};
use crate::queue::ConsumerEvent;
use crate::wire::amqp::{
    encode_method_frame, ChannelOpenOk, ConnectionClose, ConnectionCloseOk, ConnectionOpenOk,
    ConnectionStart, ConnectionStartOk, ConnectionTune, ConnectionTuneOk, ConnectionUpdateSecret,
    ConnectionUpdateSecretOk, FieldTable, FieldValue, Frame, Method, ShortStr,
};

/// Where the handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `connection.start` sent.
    AwaitStartOk,
    /// `connection.tune` sent.
    AwaitTuneOk,
    /// Waiting for `connection.open`.
    AwaitOpen,
    /// Serving channels.
    Open,
    /// `connection.close` sent; waiting for close-ok.
    Closing,
}

/// What the driver must do after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep serving.
    Continue,
    /// Flush `out`, then close the socket.
    Close,
    /// Flush `out` (a close-ok to the client's close), then let the client close the
    /// socket first, as RabbitMQ does, so it reads the close-ok before the end of stream.
    CloseAfterPeer,
}

/// Publishes that completed (or failed) in the queues' logs.
#[derive(Debug)]
pub struct PublishDone {
    /// (channel number, publish sequence number) of those in confirm mode.
    pub confirms: Vec<(u16, u64)>,
    /// Whether every queue took every message.
    pub ok: bool,
}

/// Publishes routed but not yet handed to the queues' logs: everything that arrived in
/// one read of the socket is appended with one request per queue.
#[derive(Default)]
pub struct Staged {
    /// Records per queue, in arrival order.
    pub queues: Vec<(Arc<crate::broker::QueueEntry>, Vec<crate::log::RecordInput>)>,
    /// Confirms waiting on these appends.
    pub confirms: Vec<(u16, u64)>,
}

/// Futures of publishes in flight.
pub type PendingPublishes = FuturesUnordered<Pin<Box<dyn Future<Output = PublishDone> + Send>>>;

/// One client connection's protocol state.
pub struct Connection {
    /// The connection's broker-wide id.
    pub id: ConnectionId,
    node: Arc<Node>,
    /// The vhost, once `connection.open` named one the user may use.
    pub(super) broker: Option<Arc<Broker>>,
    /// The connection's place in the node's per-vhost and per-user counts, once open.
    slot: Option<ConnectionSlot>,
    /// The access model as last read, and its generation then: permissions are checked
    /// against it, and it is read again when the model has changed.
    pub(super) access: Arc<AccessState>,
    pub(super) access_generation: u64,
    /// The logged-in user, as the access model had it when last read.
    pub(super) account: Option<Arc<User>>,
    peer: SocketAddr,
    local: SocketAddr,
    /// What the client said of itself in `connection.start-ok`.
    client_properties: FieldTable,
    /// The SASL mechanism it logged in with.
    mechanism: String,
    /// Handshake phase.
    pub phase: Phase,
    /// Negotiated frame_max.
    pub frame_max: u32,
    /// Negotiated channel_max.
    pub channel_max: u16,
    /// Negotiated heartbeat, seconds (0 = none).
    pub heartbeat_s: u16,
    authentication_failure_close: bool,
    /// The client understands `connection.blocked`.
    pub blocked_capable: bool,
    /// The connection has published: a resource alarm blocks it.
    pub has_published: bool,
    pub(super) user: String,
    pub(super) channels: HashMap<u16, Channel, foldhash::fast::RandomState>,
    /// Where publishes' record headers are written (see [`crate::queue::message::Message::to_record_in`]).
    pub(super) record_arena: crate::queue::message::RecordArena,
    /// Where recent publishes were routed.
    pub(super) routes: super::routes::RouteCache,
    /// Bytes to send, after [`Connection::out_chunks`].
    pub out: BytesMut,
    /// Chunks to send before `out`: frames already cut off `out`, interleaved with large
    /// message bodies that are written from where they are stored (vectored, no copy).
    pub out_chunks: Vec<Bytes>,
    /// Where queues deliver to this connection's consumers.
    pub(super) events: mpsc::Sender<ConsumerEvent>,
    /// Publishes in flight.
    pub pending: PendingPublishes,
    /// Publishes routed, not yet appended.
    pub(super) staged: Staged,
    /// When the batch being handled (a read, or a batch of deliveries) began, in
    /// milliseconds since the epoch: the time channels record as their last work.
    pub(super) batch_at_ms: i64,
}

/// Queues a `connection.close` in `out` and enters [`Phase::Closing`].
pub(super) fn close_connection(
    out: &mut BytesMut,
    phase: &mut Phase,
    reply: &Reply,
    class_id: u16,
    method_id: u16,
) -> Next {
    let close =
        ConnectionClose { reply_code: reply.code, reply_text: short_text(&reply.text), class_id, method_id };
    encode_method_frame(out, 0, &close.into());
    *phase = Phase::Closing;
    Next::Continue
}

fn server_properties() -> FieldTable {
    let capability = |name: &'static str| (ShortStr::from_static(name), FieldValue::Bool(true));
    let capabilities: FieldTable = [
        capability("publisher_confirms"),
        capability("exchange_exchange_bindings"),
        capability("basic.nack"),
        capability("consumer_cancel_notify"),
        capability("connection.blocked"),
        capability("consumer_priorities"),
        capability("authentication_failure_close"),
        capability("per_consumer_qos"),
        capability("direct_reply_to"),
    ]
    .into_iter()
    .collect();
    let text = |s: &'static str| FieldValue::LongStr(Bytes::from_static(s.as_bytes()));
    [
        (ShortStr::from_static("capabilities"), FieldValue::Table(capabilities)),
        (ShortStr::from_static("product"), text("Warren")),
        (ShortStr::from_static("version"), text(env!("CARGO_PKG_VERSION"))),
        (ShortStr::from_static("platform"), text("Rust")),
        (ShortStr::from_static("cluster_name"), text("warren")),
        (ShortStr::from_static("information"), text("An append-log streaming broker speaking AMQP 0-9-1")),
    ]
    .into_iter()
    .collect()
}

impl Connection {
    /// A connection that has received a valid protocol header; `connection.start` is queued
    /// in `out`. Returns the receiver of its consumers' deliveries.
    pub fn new(
        id: ConnectionId,
        node: Arc<Node>,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> (Connection, mpsc::Receiver<ConsumerEvent>) {
        let (events, receiver) = mpsc::channel(CONSUMER_EVENTS_MAX);
        let access_generation = node.access().generation();
        let access = node.access().snapshot();
        let mut connection = Connection {
            id,
            node,
            broker: None,
            slot: None,
            access,
            access_generation,
            account: None,
            peer,
            local,
            client_properties: FieldTable::default(),
            mechanism: String::new(),
            phase: Phase::AwaitStartOk,
            frame_max: FRAME_MAX_BYTES,
            channel_max: CHANNEL_MAX,
            heartbeat_s: 0,
            authentication_failure_close: false,
            blocked_capable: false,
            has_published: false,
            user: String::new(),
            channels: HashMap::default(),
            routes: super::routes::RouteCache::default(),
            record_arena: crate::queue::message::RecordArena::default(),
            out: BytesMut::with_capacity(OUTPUT_BYTES_INITIAL),
            out_chunks: Vec::new(),
            events,
            pending: FuturesUnordered::new(),
            staged: Staged::default(),
            batch_at_ms: 0,
        };
        let start = ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: Bytes::from_static(b"AMQPLAIN PLAIN"),
            locales: Bytes::from_static(b"en_US"),
        };
        connection.send(0, &start.into());
        (connection, receiver)
    }

    /// The node this connection belongs to.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The vhost this connection opened, once open.
    pub fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.as_ref()
    }

    /// The facts of this connection as it opens `vhost`.
    fn facts(&self, vhost: String) -> ConnectionFacts {
        ConnectionFacts {
            id: self.id,
            peer: self.peer,
            local: self.local,
            user: self.user.clone(),
            vhost,
            auth_mechanism: self.mechanism.clone(),
            client_properties: self.client_properties.clone(),
            frame_max: self.frame_max,
            channel_max: self.channel_max,
            heartbeat_s: self.heartbeat_s,
            connected_at_ms: crate::log::now_ms(),
        }
    }

    /// A batch of input or deliveries begins: the channels it touches record its time as
    /// their last work, and the frames it holds are checked against the access model as it
    /// is now. One clock read and one atomic load per batch, none per frame.
    pub fn begin_batch(&mut self) {
        self.batch_at_ms = crate::log::now_ms();
        self.refresh_access();
    }

    /// The connection's record in the node, once open.
    pub fn info(&self) -> Option<&Arc<ConnectionInfo>> {
        self.slot.as_ref().map(ConnectionSlot::info)
    }

    /// Reads the access model again if it changed since it was last read (one atomic load
    /// when it has not), and the user's entry with it.
    pub(super) fn refresh_access(&mut self) {
        let generation = self.node.access().generation();
        if generation != self.access_generation {
            self.access = self.node.access().snapshot();
            self.access_generation = generation;
            if let Some(account) = &self.account {
                self.account = self.access.user(&account.name).cloned();
            }
        }
    }

    /// Sends `connection.blocked` with `reason`, or `connection.unblocked` for `None`.
    pub fn set_blocked(&mut self, reason: Option<&str>) {
        let method: Method = match reason {
            Some(reason) => crate::wire::amqp::ConnectionBlocked { reason: short_text(reason) }.into(),
            None => crate::wire::amqp::ConnectionUnblocked::default().into(),
        };
        self.send(0, &method);
    }

    /// The connection's output, borrowed for one frame writer.
    pub(super) fn output(&mut self) -> Output<'_> {
        Output { bytes: &mut self.out, chunks: &mut self.out_chunks }
    }

    /// Takes everything queued for sending, in order.
    pub fn take_output(&mut self) -> Vec<Bytes> {
        let mut chunks = std::mem::take(&mut self.out_chunks);
        if !self.out.is_empty() {
            chunks.push(self.out.split().freeze());
        }
        chunks
    }

    /// Whether anything waits to be sent.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.out_chunks.is_empty()
    }

    /// Appends a method frame to `out`.
    pub fn send(&mut self, channel: u16, method: &Method) {
        encode_method_frame(&mut self.out, channel, method);
    }

    /// Queues a `connection.close` and enters [`Phase::Closing`].
    pub fn close_with(&mut self, reply: &Reply, class_id: u16, method_id: u16) -> Next {
        close_connection(&mut self.out, &mut self.phase, reply, class_id, method_id)
    }

    /// Handles one frame.
    pub async fn handle_frame(&mut self, frame: Frame) -> Next {
        match self.phase {
            Phase::AwaitStartOk => match frame {
                Frame::Method { channel: 0, method: Method::ConnectionStartOk(start_ok) } => {
                    self.start_ok(start_ok)
                }
                _ => Next::Close,
            },
            Phase::AwaitTuneOk => match frame {
                Frame::Method { channel: 0, method: Method::ConnectionTuneOk(tune_ok) } => {
                    self.tune_ok(tune_ok)
                }
                _ => Next::Close,
            },
            Phase::AwaitOpen => match frame {
                Frame::Method { channel: 0, method: Method::ConnectionOpen(open) } => {
                    let vhost = String::from_utf8_lossy(open.virtual_host.as_bytes()).into_owned();
                    match self.node.open_connection(self.facts(vhost.clone())) {
                        Ok((broker, slot)) => {
                            self.broker = Some(broker);
                            self.slot = Some(slot);
                            self.phase = Phase::Open;
                            self.send(0, &ConnectionOpenOk::default().into());
                            Next::Continue
                        }
                        Err(refused) => {
                            tracing::warn!(connection = self.id, user = self.user, vhost, %refused, "connection.open refused");
                            self.close_with(&Reply::from(&refused), 10, 40)
                        }
                    }
                }
                Frame::Heartbeat => Next::Continue,
                _ => Next::Close,
            },
            Phase::Closing => match frame {
                Frame::Method { channel: 0, method: Method::ConnectionCloseOk(_) } => Next::Close,
                Frame::Method { channel: 0, method: Method::ConnectionClose(_) } => {
                    self.send(0, &ConnectionCloseOk::default().into());
                    Next::Close
                }
                _ => Next::Continue,
            },
            Phase::Open => self.handle_open(frame).await,
        }
    }

    fn start_ok(&mut self, start_ok: ConnectionStartOk) -> Next {
        let capability = |name| {
            start_ok
                .client_properties
                .get_table("capabilities")
                .and_then(|c| c.get_bool(name))
                .unwrap_or(false)
        };
        self.authentication_failure_close = capability("authentication_failure_close");
        self.blocked_capable = capability("connection.blocked");
        let mechanism = start_ok.mechanism.as_bytes().to_vec();
        let credentials = match &mechanism[..] {
            b"PLAIN" => plain_credentials(&start_ok.response),
            b"AMQPLAIN" => amqplain_credentials(&start_ok.response),
            _ => None,
        };
        let Some((user, password)) = credentials else { return Next::Close };
        self.refresh_access();
        // As RabbitMQ's default `loopback_users`: `guest` logs in from loopback only.
        let loopback = self.peer.ip().is_loopback();
        let account = self.access.authenticate(&user, &password).ok().filter(|_| user != "guest" || loopback);
        let Some(account) = account else {
            tracing::warn!(connection = self.id, peer = %self.peer, user, "login refused");
            if !self.authentication_failure_close {
                return Next::Close;
            }
            let mechanism = String::from_utf8_lossy(&mechanism).into_owned();
            return self.close_with(&ProtocolError::LoginRefused { mechanism }.into(), 0, 0);
        };
        self.account = Some(account);
        self.user = user;
        self.mechanism = String::from_utf8_lossy(&mechanism).into_owned();
        self.client_properties = start_ok.client_properties;
        self.phase = Phase::AwaitTuneOk;
        let tune =
            ConnectionTune { channel_max: CHANNEL_MAX, frame_max: FRAME_MAX_BYTES, heartbeat: HEARTBEAT_S };
        self.send(0, &tune.into());
        Next::Continue
    }

    fn tune_ok(&mut self, tune_ok: ConnectionTuneOk) -> Next {
        if tune_ok.channel_max == 0 || tune_ok.channel_max > CHANNEL_MAX {
            tracing::warn!(
                connection = self.id,
                channel_max = tune_ok.channel_max,
                "negotiated channel_max is higher than the maximum allowed value ({CHANNEL_MAX})"
            );
            return Next::Close;
        }
        let frame_max = if tune_ok.frame_max == 0 { FRAME_MAX_BYTES } else { tune_ok.frame_max };
        if !(FRAME_MIN_BYTES..=FRAME_MAX_BYTES).contains(&frame_max) {
            return Next::Close;
        }
        self.channel_max = tune_ok.channel_max;
        self.frame_max = frame_max;
        self.heartbeat_s = tune_ok.heartbeat;
        self.phase = Phase::AwaitOpen;
        Next::Continue
    }

    async fn handle_open(&mut self, frame: Frame) -> Next {
        let channel = frame.channel();
        if channel == 0 {
            return match frame {
                Frame::Heartbeat => Next::Continue,
                Frame::Method { method: Method::ConnectionClose(_), .. } => {
                    self.send(0, &ConnectionCloseOk::default().into());
                    Next::CloseAfterPeer
                }
                Frame::Method { method: Method::ConnectionCloseOk(_), .. } => Next::Close,
                Frame::Method { method: Method::ConnectionUpdateSecret(update), .. } => {
                    self.update_secret(&update)
                }
                Frame::Method { method, .. } => {
                    let reply = ProtocolError::MethodOnChannelZero(method.name()).into();
                    self.close_with(&reply, method.class_id(), method.method_id())
                }
                _ => self.close_with(&ProtocolError::ExpectedMethodFrame.into(), 0, 0),
            };
        }
        if channel > self.channel_max {
            // RabbitMQ gives no answer at all to a channel above channel_max.
            return Next::Continue;
        }
        self.channel_frame(channel, frame).await
    }

    /// `connection.update-secret`: the user's backend takes the new secret, and the answer
    /// is update-secret-ok. Warren's users live in the internal backend, which (as RabbitMQ's
    /// `rabbit_auth_backend_internal:update_state/2`) keeps the user as authenticated and
    /// refuses no secret: RabbitMQ 3.10 answers update-secret-ok to guest for the right
    /// password, a wrong one and an empty one alike, and the connection goes on.
    fn update_secret(&mut self, update: &ConnectionUpdateSecret) -> Next {
        let reason = String::from_utf8_lossy(update.reason.as_bytes());
        tracing::info!(connection = self.id, user = self.user, %reason, "user updated secret");
        self.send(0, &ConnectionUpdateSecretOk::default().into());
        Next::Continue
    }

    /// A frame for a channel that is not open: only `channel.open` is welcome.
    pub(super) fn unopened_channel_frame(&mut self, channel: u16, frame: Frame) -> Next {
        match frame {
            Frame::Method { method: Method::ChannelOpen(_), .. } => {
                // The user's channel limit counts their channels on every connection.
                self.refresh_access();
                if self.access.user(&self.user).and_then(|user| user.limits.channels_max()).is_some() {
                    let open = self.node.channels_of(&self.user);
                    if let Err(refused) = self.access.check_new_channel(&self.user, open) {
                        let method = Method::ChannelOpen(Default::default());
                        return self.close_with(
                            &Reply::from(&refused),
                            method.class_id(),
                            method.method_id(),
                        );
                    }
                }
                let channel_id = (self.id << 16) | u64::from(channel);
                let stats = self.info().map_or_else(Default::default, |info| info.open_channel(channel));
                self.channels.insert(channel, Channel::new(channel_id, stats));
                if let Some(broker) = &self.broker {
                    crate::broker::Churn::bump(&broker.churn().channel_created);
                }
                self.send(channel, &ChannelOpenOk::default().into());
                Next::Continue
            }
            Frame::Method { method, .. } => {
                let reply = ProtocolError::ExpectedChannelOpen.into();
                self.close_with(&reply, method.class_id(), method.method_id())
            }
            _ => self.close_with(&ProtocolError::ExpectedMethodFrame.into(), 0, 0),
        }
    }

    /// Closes every channel (requeueing their unacked deliveries) and drops the exclusive
    /// queues: the connection is gone.
    pub async fn release(&mut self) {
        // Publishes already received are kept: they reach their queues even though the
        // connection is going away.
        self.flush_publishes().await;
        let numbers: Vec<u16> = self.channels.keys().copied().collect();
        for number in numbers {
            if let Some(channel) = self.channels.remove(&number) {
                self.release_channel(channel).await;
            }
        }
        if let Some(broker) = &self.broker {
            broker.connection_closed(self.id).await;
        }
        self.slot = None;
    }
}

fn plain_credentials(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|b| *b == 0);
    let _authorization_identity = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let password = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    parts.next().is_none().then_some((user, password))
}

fn amqplain_credentials(response: &[u8]) -> Option<(String, String)> {
    // AMQPLAIN sends a field table without its length prefix.
    let mut framed = BytesMut::with_capacity(response.len() + 4);
    framed.extend_from_slice(&u32::try_from(response.len()).ok()?.to_be_bytes());
    framed.extend_from_slice(response);
    let table = FieldTable::decode(&framed.freeze()).ok()?;
    let field = |key| {
        table
            .get(key)
            .and_then(FieldValue::as_bytes)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned)
    };
    Some((field("LOGIN")?, field("PASSWORD")?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn credentials() {
        assert_eq!(plain_credentials(b"\0guest\0guest"), Some(("guest".into(), "guest".into())));
        assert_eq!(plain_credentials(b"guest"), None);
        let mut table = BytesMut::new();
        let t: FieldTable = [
            (ShortStr::from_static("LOGIN"), FieldValue::LongStr(Bytes::from_static(b"guest"))),
            (ShortStr::from_static("PASSWORD"), FieldValue::LongStr(Bytes::from_static(b"pw"))),
        ]
        .into_iter()
        .collect();
        t.encode(&mut table);
        assert_eq!(amqplain_credentials(&table[4..]), Some(("guest".into(), "pw".into())));
    }
}
