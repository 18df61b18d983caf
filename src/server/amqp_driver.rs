//! The connection driver: one task per AMQP connection moving bytes between its socket and
//! its protocol state ([`Connection`]): frames in, frames out, deliveries from queues,
//! publish completions, heartbeats and close timeouts (kept by the pure [`Deadlines`]),
//! resource alarms, shutdown, and backpressure (a connection with too many publishes in
//! flight is not read until some complete).
//!
//! It owns the socket and the read buffer; the protocol itself is [`Connection`]'s.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::amqp_socket::{read_protocol_header, write_chunks, write_chunks_tracked};
use crate::amqp::connection::{Connection, Next, Phase, PublishDone};
use crate::amqp::deadlines::{Action, CloseReason, Deadlines};
use crate::amqp::reply::{self, ProtocolError, Reply};
use crate::broker::Node;
use crate::limits::{
    BUSY_READ_BUFFER_BYTES, BUSY_READ_BYTES_MIN, CLOSE_OK_TIMEOUT_MS, CONNECTION_TICK_INTERVAL_MS,
    DRAIN_BUFFER_BYTES, EVENTS_PER_TURN_MAX, FRAME_MAX_BYTES, OUTPUT_CAPACITY_BYTES_MIN,
    OUTPUT_QUIET_RESERVE_BYTES, OUTPUT_RESERVE_BYTES, PUBLISHES_IN_FLIGHT_MAX, READ_BUFFER_BYTES,
    READ_SPARE_BYTES_MIN, WRITE_BATCH_BYTES,
};
use crate::queue::ConsumerEvent;
use crate::wire::amqp::{decode_raw_frame, encode_heartbeat_frame, DecodeError, Frame, KNOWN_CLASS_IDS};

/// How long a close-ok sent by the server waits for the client to close its socket.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_millis(CLOSE_OK_TIMEOUT_MS);

/// Serves one accepted connection until it closes.
///
/// # Errors
/// When the socket fails; a client that goes away or breaks the protocol is not an error.
pub async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    node: Arc<Node>,
    id: u64,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    if !read_protocol_header(&mut stream, &mut buf).await? {
        return Ok(());
    }
    let local = stream.local_addr()?;
    let (mut connection, events) = Connection::new(id, node, peer, local);
    let (reader, mut writer) = stream.into_split();
    write_chunks(&mut writer, connection.take_output()).await?;
    let deadlines = Deadlines::new(Instant::now());
    let alarm = connection.node().alarm();
    let tick = tokio::time::interval(Duration::from_millis(CONNECTION_TICK_INTERVAL_MS));
    let driver = ConnectionDriver {
        id,
        peer,
        reader,
        writer,
        buf,
        busy: false,
        poisoned: false,
        connection,
        events,
        alarm,
        blocked_sent: false,
        shutdown,
        close_requests: None,
        deadlines,
        tick,
    };
    driver.run().await
}

/// One connection's socket, buffers, protocol state and the watchers it waits on.
struct ConnectionDriver {
    id: u64,
    peer: SocketAddr,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    /// Bytes read and not yet framed.
    buf: BytesMut,
    /// The last read filled at least [`BUSY_READ_BYTES_MIN`]: grow the buffer in large steps.
    busy: bool,
    /// After a frame error nothing more the peer sends can be framed: input is discarded
    /// until the close times out, as RabbitMQ does.
    poisoned: bool,
    connection: Connection,
    /// Deliveries and cancellations from the queues this connection consumes from.
    events: mpsc::Receiver<ConsumerEvent>,
    /// The broker's resource alarm (its reason while raised).
    alarm: watch::Receiver<Option<&'static str>>,
    /// Whether the client was last told it is blocked.
    blocked_sent: bool,
    shutdown: watch::Receiver<bool>,
    /// Requests to close the connection from outside (the management API), once it is
    /// open and listed.
    close_requests: Option<watch::Receiver<Option<String>>>,
    deadlines: Deadlines,
    tick: tokio::time::Interval,
}

/// The reason of the first request to close the connection; never resolves without one.
async fn close_requested(requests: &mut Option<watch::Receiver<Option<String>>>) -> String {
    if let Some(requests) = requests {
        loop {
            if let Some(reason) = requests.borrow_and_update().clone() {
                return reason;
            }
            if requests.changed().await.is_err() {
                break;
            }
        }
    }
    std::future::pending().await
}

/// How a connection goes on after one turn of its loop.
enum Turn {
    /// Keep serving.
    Continue,
    /// Stop serving: release the connection's resources and end with this outcome.
    Stop(io::Result<()>),
    /// A close-ok is queued: send it, release, and let the client close the socket first.
    CloseAfterPeer,
}

/// What the read buffer holds next.
enum Input {
    /// A frame for the general path.
    Frame(Frame),
    /// What the connection must do after a frame of publishing's fast path.
    Next(Next),
    /// No complete frame.
    Incomplete,
}

impl ConnectionDriver {
    /// Serves until the connection closes, then releases what it holds.
    async fn run(mut self) -> io::Result<()> {
        let outcome = loop {
            match self.turn().await {
                Turn::Continue => {}
                Turn::Stop(outcome) => break outcome,
                Turn::CloseAfterPeer => return self.close_after_peer().await,
            }
        };
        self.connection.release().await;
        outcome
    }

    /// Writes what is queued, then waits for the first of: input, consumer events, publish
    /// completions, the tick, an alarm change or shutdown.
    async fn turn(&mut self) -> Turn {
        let may_read = self.may_read();
        if may_read != self.deadlines.is_reading() {
            // Heartbeats are expected only while the socket is read.
            self.deadlines.reading_at(may_read, Instant::now());
        }
        // Everything queued goes out before waiting again; a client told it is blocked then
        // stops sending before its socket buffers fill, while this connection no longer reads.
        if self.connection.has_output() {
            if let Err(error) = self.write_output().await {
                return Turn::Stop(Err(error));
            }
        }
        self.reserve_read_buffer();
        if self.close_requests.is_none() {
            self.close_requests = self.connection.info().map(|info| info.close_requests());
        }
        let turn = tokio::select! {
            read = self.reader.read_buf(&mut self.buf), if may_read => self.on_read(read).await,
            Some(event) = self.events.recv() => self.on_events(event).await,
            Some(done) = self.connection.pending.next(), if !self.connection.pending.is_empty() => {
                self.on_publishes_done(done)
            }
            _ = self.tick.tick() => self.on_tick(),
            changed = self.alarm.changed() => Self::on_alarm_changed(changed),
            _ = self.shutdown.changed() => self.on_shutdown(),
            reason = close_requested(&mut self.close_requests) => self.on_close_requested(reason),
        };
        match turn {
            Turn::Continue => self.check_closing(),
            stop => stop,
        }
    }

    /// Whether the socket may be read this turn: not with too many publishes in flight, nor
    /// for a connection that publishes while a resource alarm is raised, as RabbitMQ does.
    /// A client that supports it is told when it becomes blocked or unblocked.
    #[inline]
    fn may_read(&mut self) -> bool {
        let alarm = *self.alarm.borrow();
        let alarmed = alarm.is_some() && self.connection.has_published;
        if alarmed != self.blocked_sent
            && self.connection.blocked_capable
            && self.connection.phase == Phase::Open
        {
            self.connection.set_blocked(alarmed.then_some(alarm.unwrap_or_default()));
            self.blocked_sent = alarmed;
        }
        if let Some(info) = self.connection.info() {
            info.blocked.store(alarmed, Ordering::Relaxed);
        }
        self.connection.pending.len() < PUBLISHES_IN_FLIGHT_MAX && !alarmed
    }

    /// Writes everything queued and keeps room in the output buffer for the next frames.
    async fn write_output(&mut self) -> io::Result<()> {
        let chunks = self.connection.take_output();
        let bytes: usize = chunks.iter().map(Bytes::len).sum();
        if let Some(info) = self.connection.info() {
            info.send_oct.fetch_add(bytes as u64, Ordering::Relaxed);
            info.send_cnt.fetch_add(1, Ordering::Relaxed);
        }
        let pending = self.connection.info().map(|info| &info.send_pend);
        write_chunks_tracked(&mut self.writer, chunks, pending).await?;
        if self.connection.out.capacity() < OUTPUT_CAPACITY_BYTES_MIN {
            let busy = bytes >= OUTPUT_RESERVE_BYTES / 4;
            self.connection.out.reserve(if busy { OUTPUT_RESERVE_BYTES } else { OUTPUT_QUIET_RESERVE_BYTES });
        }
        self.deadlines.wrote_at(Instant::now());
        Ok(())
    }

    /// Keeps room for the next read: small for a quiet connection, large for a busy one.
    #[inline]
    fn reserve_read_buffer(&mut self) {
        if self.buf.capacity() - self.buf.len() < READ_SPARE_BYTES_MIN {
            self.buf.reserve(if self.busy { BUSY_READ_BUFFER_BYTES } else { READ_BUFFER_BYTES });
        }
    }

    /// Input arrived: handle every complete frame.
    async fn on_read(&mut self, read: io::Result<usize>) -> Turn {
        match read {
            Ok(0) => return Turn::Stop(Ok(())),
            Ok(read) => {
                self.deadlines.read_at(Instant::now());
                self.connection.begin_batch();
                self.busy = read >= BUSY_READ_BYTES_MIN;
                if let Some(info) = self.connection.info() {
                    info.recv_oct.fetch_add(read as u64, Ordering::Relaxed);
                    info.recv_cnt.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => return Turn::Stop(Err(error)),
        }
        if self.poisoned {
            self.buf.clear();
        }
        self.handle_input().await
    }

    /// Handles every complete frame in the read buffer, then sends the publishes they
    /// staged to their queues.
    async fn handle_input(&mut self) -> Turn {
        let frame_max =
            if self.connection.phase == Phase::Open { self.connection.frame_max } else { FRAME_MAX_BYTES };
        loop {
            let next = match self.next_input(frame_max) {
                Ok(Input::Frame(frame)) => self.connection.handle_frame(frame).await,
                Ok(Input::Next(next)) => next,
                Ok(Input::Incomplete) => {
                    self.connection.flush_publishes().await;
                    return Turn::Continue;
                }
                // A frame of a class nobody knows is not AMQP: a plain TCP close.
                Err(DecodeError::UnknownMethod { class_id, .. }) if !KNOWN_CLASS_IDS.contains(&class_id) => {
                    return Turn::Stop(Ok(()));
                }
                Err(error) => {
                    self.poison(&error, frame_max);
                    return Turn::Continue;
                }
            };
            match next {
                Next::Continue => {}
                Next::Close => {
                    let _ = write_chunks(&mut self.writer, self.connection.take_output()).await;
                    return Turn::Stop(Ok(()));
                }
                Next::CloseAfterPeer => return Turn::CloseAfterPeer,
            }
        }
    }

    /// Decodes the read buffer up to the next frame that takes the general path. Publishing's
    /// frames are handled on the way without building a frame value or awaiting.
    #[inline]
    fn next_input(&mut self, frame_max: u32) -> Result<Input, DecodeError> {
        loop {
            let Some(raw) = decode_raw_frame(&mut self.buf, frame_max)? else {
                return Ok(Input::Incomplete);
            };
            match self.connection.publish_frame(raw)? {
                Ok(Next::Continue) => {}
                Ok(next) => return Ok(Input::Next(next)),
                Err(raw) => return raw.parse().map(Input::Frame),
            }
        }
    }

    /// A frame could not be decoded: the connection is closed with the error's reply code
    /// and, since nothing after it can be framed, all further input is discarded.
    fn poison(&mut self, error: &DecodeError, frame_max: u32) {
        let reply = reply::decode_error(error, &self.buf, frame_max);
        self.connection.close_with(&reply, 0, 0);
        self.buf.clear();
        self.poisoned = true;
    }

    /// Consumer events arrived: turn them into frames, at most [`EVENTS_PER_TURN_MAX`] and
    /// up to [`WRITE_BATCH_BYTES`] of output, before writing. Deliveries whose consumer is
    /// gone are requeued before any more input is read, so ahead of later commands.
    async fn on_events(&mut self, first: ConsumerEvent) -> Turn {
        self.connection.begin_batch();
        let mut undelivered = self.connection.consumer_event(first);
        for _ in 1..EVENTS_PER_TURN_MAX {
            if self.connection.out.len() >= WRITE_BATCH_BYTES {
                break;
            }
            match self.events.try_recv() {
                Ok(event) => undelivered |= self.connection.consumer_event(event),
                Err(_) => break,
            }
        }
        if undelivered {
            self.connection.requeue_undelivered().await;
        }
        Turn::Continue
    }

    /// Publishes completed in their queues' logs: confirm them, and any others already done.
    fn on_publishes_done(&mut self, first: PublishDone) -> Turn {
        self.connection.publish_done(first);
        while let Some(Some(done)) = futures::FutureExt::now_or_never(self.connection.pending.next()) {
            self.connection.publish_done(done);
        }
        Turn::Continue
    }

    /// The timer: keep the handshake, heartbeat and close-ok deadlines.
    fn on_tick(&mut self) -> Turn {
        let phase = self.connection.phase;
        match self.deadlines.check(Instant::now(), phase, self.connection.heartbeat_s) {
            Action::None => Turn::Continue,
            Action::SendHeartbeat => {
                encode_heartbeat_frame(&mut self.connection.out);
                Turn::Continue
            }
            Action::Close(reason) => {
                if reason == CloseReason::HeartbeatsMissed {
                    tracing::info!(connection = self.id, peer = %self.peer, "missed heartbeats from client, closing");
                }
                Turn::Stop(Ok(()))
            }
        }
    }

    /// The resource alarm changed; it is re-read at the start of the next turn. Its sender
    /// is gone only when the broker is.
    fn on_alarm_changed(changed: Result<(), watch::error::RecvError>) -> Turn {
        match changed {
            Ok(()) => Turn::Continue,
            Err(_) => Turn::Stop(Ok(())),
        }
    }

    /// The broker is shutting down: an open connection is closed with 320
    /// CONNECTION_FORCED and waits for its close-ok; any other is dropped.
    fn on_shutdown(&mut self) -> Turn {
        if self.connection.phase != Phase::Open {
            return Turn::Stop(Ok(()));
        }
        let reply = Reply::from(ProtocolError::BrokerShutdown);
        self.connection.close_with(&reply, 0, 0);
        Turn::Continue
    }

    /// The connection is asked to close from outside: it is closed with 320
    /// CONNECTION_FORCED and the reason given, and waits for its close-ok.
    fn on_close_requested(&mut self, reason: String) -> Turn {
        // One close: later requests change nothing.
        self.close_requests = Some(watch::channel(None).1);
        if self.connection.phase != Phase::Open {
            return Turn::Stop(Ok(()));
        }
        tracing::info!(connection = self.id, peer = %self.peer, reason, "closing the connection on request");
        let reply = Reply::from(ProtocolError::ClosedOnRequest(reason));
        self.connection.close_with(&reply, 0, 0);
        Turn::Continue
    }

    /// A closing connection waits only so long for its close-ok, counted from the turn it
    /// was first seen closing.
    #[inline]
    fn check_closing(&mut self) -> Turn {
        if self.connection.phase != Phase::Closing {
            return Turn::Continue;
        }
        let now = Instant::now();
        self.deadlines.closing_at(now);
        match self.deadlines.check(now, Phase::Closing, self.connection.heartbeat_s) {
            Action::Close(_) => Turn::Stop(Ok(())),
            Action::None | Action::SendHeartbeat => Turn::Continue,
        }
    }

    /// Releases what the connection holds, then sends the queued close-ok, then reads and
    /// drops input until the client closes its socket (so that it reads the close-ok before
    /// the end of stream) or the close-ok timeout passes. As in RabbitMQ, the close-ok comes
    /// only once the channels are closed and their queues told: a client that reconnects the
    /// moment it reads it finds no exclusive queue or consumer of this connection left.
    async fn close_after_peer(mut self) -> io::Result<()> {
        self.connection.release().await;
        let _ = write_chunks(&mut self.writer, self.connection.take_output()).await;
        let mut rest = [0u8; DRAIN_BUFFER_BYTES];
        let reader = &mut self.reader;
        let drain = async { while matches!(reader.read(&mut rest).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(CLOSE_OK_TIMEOUT, drain).await;
        Ok(())
    }
}
