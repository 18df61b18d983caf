//! A small raw-TCP AMQP 0-9-1 client for tests that must put exact bytes on the wire:
//! protocol headers, handshake steps one by one, arbitrary (malformed) frames, and reads of
//! single frames with a deadline. Frames are encoded and decoded with Warren's own pure codec
//! (`warren::wire::amqp`); nothing here trusts the broker to behave.
//!
//! Every read takes a deadline; a read never waits forever.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use warren::wire::amqp::{
    decode_frame, encode_body_frames, encode_header_frame, encode_heartbeat_frame, encode_method_frame,
    BasicAck, BasicGet, BasicProperties, BasicPublish, ChannelClose, ChannelOpen, ConfirmSelect,
    ConnectionClose, ConnectionCloseOk, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, ContentHeader,
    DecodeError, FieldTable, FieldValue, Frame, Method, QueueDeclare, ShortStr, PROTOCOL_HEADER,
};

/// The default deadline for one expected answer.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// Largest frame the client accepts from the broker (RabbitMQ's default frame_max).
const CLIENT_FRAME_MAX: u32 = 131_072;

/// Why [`RawClient::read_frame`] returned no frame.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the socket (EOF or reset); `leftover` holds undecodable trailing bytes.
    Closed { reset: bool, leftover: Bytes },
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// The broker sent bytes the codec rejects.
    Decode(DecodeError),
    /// Any other socket error.
    Io(std::io::Error),
}

/// Handshake parameters.
#[derive(Debug, Clone)]
pub struct Options {
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// Heartbeat sent in tune-ok (seconds; 0 = none).
    pub heartbeat: u16,
    /// channel_max sent in tune-ok; `None` echoes the broker's proposal.
    pub channel_max: Option<u16>,
    /// frame_max sent in tune-ok; `None` echoes the broker's proposal.
    pub frame_max: Option<u32>,
    /// Whether the client announces the `authentication_failure_close` capability.
    pub authentication_failure_close: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            user: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            heartbeat: 0,
            channel_max: None,
            frame_max: None,
            authentication_failure_close: true,
        }
    }
}

/// Builds a [`ShortStr`] from test text.
pub fn short(text: &str) -> ShortStr {
    ShortStr::try_from(text).expect("short string of at most 255 octets")
}

/// One raw connection.
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    /// frame_max negotiated in tune-ok (what the broker enforces after the handshake).
    pub frame_max: u32,
    /// channel_max negotiated in tune-ok.
    pub channel_max: u16,
    /// Heartbeat frames received so far.
    pub heartbeats_seen: usize,
}

impl RawClient {
    /// Opens a TCP connection and sends nothing.
    pub async fn connect(addr: &str) -> RawClient {
        let stream = tokio::time::timeout(ANSWER_DEADLINE, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connect to {addr} timed out"))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            frame_max: CLIENT_FRAME_MAX,
            channel_max: 0,
            heartbeats_seen: 0,
        }
    }

    /// Connects and completes the whole handshake as guest on `/`, with the default
    /// options; panics if any step fails.
    pub async fn open(addr: &str) -> RawClient {
        RawClient::open_with(addr, &Options::default()).await
    }

    /// Connects and completes the handshake with `options`; panics if any step fails.
    pub async fn open_with(addr: &str, options: &Options) -> RawClient {
        let mut client = RawClient::connect(addr).await;
        client.send_protocol_header().await;
        client.expect_start().await;
        client.send_start_ok(options).await;
        client.expect_tune_and_reply(options).await;
        client.send_open(&options.vhost).await;
        match client.expect_method(ANSWER_DEADLINE).await {
            (0, Method::ConnectionOpenOk(_)) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
        client
    }

    /// The underlying socket (for socket options such as linger).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes raw bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.try_send_bytes(bytes).await.unwrap_or_else(|e| panic!("write {} octets: {e}", bytes.len()));
    }

    /// Writes raw bytes, reporting socket errors (the broker may have closed already).
    pub async fn try_send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        tokio::time::timeout(ANSWER_DEADLINE, self.stream.write_all(bytes))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
    }

    /// Sends `AMQP\0\0\x09\x01`.
    pub async fn send_protocol_header(&mut self) {
        self.send_bytes(&PROTOCOL_HEADER).await;
    }

    /// Sends one method frame.
    pub async fn send_method(&mut self, channel: u16, method: impl Into<Method>) {
        let bytes = method_frame(channel, &method.into());
        self.send_bytes(&bytes).await;
    }

    /// Sends a heartbeat frame on channel 0.
    pub async fn send_heartbeat(&mut self) {
        let mut buf = BytesMut::new();
        encode_heartbeat_frame(&mut buf);
        self.send_bytes(&buf).await;
    }

    /// Reads `connection.start` and checks it offers PLAIN.
    pub async fn expect_start(&mut self) {
        match self.expect_method(ANSWER_DEADLINE).await {
            (0, Method::ConnectionStart(start)) => {
                assert_eq!((start.version_major, start.version_minor), (0, 9));
                let mechanisms = String::from_utf8_lossy(&start.mechanisms).into_owned();
                assert!(mechanisms.split(' ').any(|m| m == "PLAIN"), "mechanisms {mechanisms:?}");
            }
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    /// Sends `connection.start-ok` with PLAIN credentials and client capabilities.
    pub async fn send_start_ok(&mut self, options: &Options) {
        let start_ok = start_ok(options);
        self.send_method(0, start_ok).await;
    }

    /// Reads `connection.tune`, sends `connection.tune-ok` per `options`; returns the
    /// broker's proposal `(channel_max, frame_max, heartbeat)`.
    pub async fn expect_tune_and_reply(&mut self, options: &Options) -> (u16, u32, u16) {
        let tune = match self.expect_method(ANSWER_DEADLINE).await {
            (0, Method::ConnectionTune(tune)) => tune,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        let channel_max = options.channel_max.unwrap_or(tune.channel_max);
        let frame_max = options.frame_max.unwrap_or(tune.frame_max);
        self.channel_max = channel_max;
        self.frame_max = if frame_max == 0 { CLIENT_FRAME_MAX } else { frame_max };
        let tune_ok = ConnectionTuneOk { channel_max, frame_max, heartbeat: options.heartbeat };
        self.send_method(0, tune_ok).await;
        (tune.channel_max, tune.frame_max, tune.heartbeat)
    }

    /// Sends `connection.open` for `vhost`.
    pub async fn send_open(&mut self, vhost: &str) {
        self.send_method(0, ConnectionOpen { virtual_host: short(vhost), ..Default::default() }).await;
    }

    /// Opens channel `channel` and waits for open-ok.
    pub async fn open_channel(&mut self, channel: u16) {
        self.send_method(channel, ChannelOpen::default()).await;
        match self.expect_method(ANSWER_DEADLINE).await {
            (c, Method::ChannelOpenOk(_)) if c == channel => {}
            other => panic!("expected channel.open-ok on {channel}, got {other:?}"),
        }
    }

    /// Reads the next frame, waiting at most `deadline`.
    pub async fn read_frame(&mut self, deadline: Duration) -> Result<Frame, ReadError> {
        self.read_frame_until(Instant::now() + deadline).await
    }

    /// Reads the next frame, waiting until `until` at the latest.
    pub async fn read_frame_until(&mut self, until: Instant) -> Result<Frame, ReadError> {
        loop {
            match decode_frame(&mut self.buf, CLIENT_FRAME_MAX) {
                Ok(Some(frame)) => {
                    if frame == Frame::Heartbeat {
                        self.heartbeats_seen += 1;
                    }
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(error) => return Err(ReadError::Decode(error)),
            }
            match self.read_more_until(until).await {
                Ok(()) => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// Reads whatever bytes arrive until the socket closes (or `deadline` passes, which
    /// panics). Returns the bytes and whether the close was a reset.
    pub async fn read_until_closed(&mut self, deadline: Duration) -> (Bytes, bool) {
        let until = Instant::now() + deadline;
        loop {
            match self.read_more_until(until).await {
                Ok(()) => {}
                Err(ReadError::Closed { reset, leftover }) => return (leftover, reset),
                Err(ReadError::Timeout) => panic!(
                    "socket still open after {deadline:?}; received {:?}",
                    Bytes::copy_from_slice(&self.buf)
                ),
                Err(other) => panic!("read failed: {other:?}"),
            }
        }
    }

    async fn read_more_until(&mut self, until: Instant) -> Result<(), ReadError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(64 * 1024);
        }
        match tokio::time::timeout_at(until, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(ReadError::Timeout),
            Ok(Ok(0)) => Err(ReadError::Closed { reset: false, leftover: self.buf.split().freeze() }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if is_reset(&e) => {
                Err(ReadError::Closed { reset: true, leftover: self.buf.split().freeze() })
            }
            Ok(Err(e)) => Err(ReadError::Io(e)),
        }
    }

    /// Reads the next method frame, skipping heartbeats; panics on anything else.
    pub async fn expect_method(&mut self, deadline: Duration) -> (u16, Method) {
        let until = Instant::now() + deadline;
        loop {
            match self.read_frame_until(until).await {
                Ok(Frame::Heartbeat) => continue,
                Ok(Frame::Method { channel, method }) => return (channel, method),
                Ok(other) => panic!("expected a method frame, got {other:?}"),
                Err(error) => panic!("expected a method frame within {deadline:?}, got {error:?}"),
            }
        }
    }

    /// Reads the next content frame (header or body), skipping heartbeats.
    pub async fn expect_content_frame(&mut self, deadline: Duration) -> Frame {
        let until = Instant::now() + deadline;
        loop {
            match self.read_frame_until(until).await {
                Ok(Frame::Heartbeat) => continue,
                Ok(frame @ (Frame::Header { .. } | Frame::Body { .. })) => return frame,
                Ok(other) => panic!("expected a content frame, got {other:?}"),
                Err(error) => panic!("expected a content frame within {deadline:?}, got {error:?}"),
            }
        }
    }

    /// Expects a `connection.close` (heartbeats skipped) and returns it without answering.
    pub async fn expect_connection_close(&mut self, deadline: Duration) -> ConnectionClose {
        match self.expect_method(deadline).await {
            (0, Method::ConnectionClose(close)) => close,
            other => panic!("expected connection.close, got {other:?}"),
        }
    }

    /// Expects `connection.close` with exactly `code` and `text`, answers close-ok, and
    /// expects the broker to close the socket.
    pub async fn expect_connection_close_exact(&mut self, code: u16, text: &str) -> ConnectionClose {
        let close = self.expect_connection_close(ANSWER_DEADLINE).await;
        assert_eq!(
            (close.reply_code, close.reply_text.as_str().unwrap_or("<non-utf8>")),
            (code, text),
            "connection.close code and text"
        );
        self.finish_close().await;
        close
    }

    /// Sends close-ok after a broker's `connection.close` and waits for the socket to close,
    /// with no frame but heartbeats in between. RabbitMQ keeps the socket up to ~3 s after
    /// the close-ok of a 501; 5 s is allowed.
    pub async fn finish_close(&mut self) {
        // The broker may already have closed: a failed write is fine.
        let _ = self.try_send_bytes(&method_frame(0, &ConnectionCloseOk::default().into())).await;
        self.expect_tcp_close(Duration::from_secs(5)).await;
    }

    /// Expects `channel.close` on `channel`.
    pub async fn expect_channel_close(&mut self, channel: u16, deadline: Duration) -> ChannelClose {
        match self.expect_method(deadline).await {
            (c, Method::ChannelClose(close)) if c == channel => close,
            other => panic!("expected channel.close on {channel}, got {other:?}"),
        }
    }

    /// Expects the socket to close within `deadline` with no frame but heartbeats before
    /// it; returns whether it was a reset.
    pub async fn expect_tcp_close(&mut self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        loop {
            match self.read_frame_until(until).await {
                Ok(Frame::Heartbeat) => continue,
                Ok(frame) => panic!("expected a plain TCP close, got frame {frame:?}"),
                Err(ReadError::Closed { reset, leftover }) => {
                    assert!(leftover.is_empty(), "partial frame before close: {leftover:?}");
                    return reset;
                }
                Err(ReadError::Timeout) => panic!("socket still open after {deadline:?}"),
                Err(other) => panic!("expected a plain TCP close, got {other:?}"),
            }
        }
    }

    /// Asserts nothing but heartbeats arrives for `period` and the socket stays open.
    pub async fn expect_silence(&mut self, period: Duration) {
        let until = Instant::now() + period;
        loop {
            match self.read_frame_until(until).await {
                Ok(Frame::Heartbeat) => continue,
                Err(ReadError::Timeout) => return,
                Ok(frame) => panic!("expected no answer for {period:?}, got {frame:?}"),
                Err(other) => panic!("expected no answer for {period:?}, got {other:?}"),
            }
        }
    }

    /// Sends `method` on `channel` and expects `answer` to match on the same channel.
    pub async fn call(&mut self, channel: u16, method: impl Into<Method>) -> Method {
        self.send_method(channel, method).await;
        match self.expect_method(ANSWER_DEADLINE).await {
            (c, answer) if c == channel => answer,
            (c, answer) => panic!("answer on channel {c} instead of {channel}: {answer:?}"),
        }
    }

    /// Declares a non-durable queue named `name` on `channel`.
    pub async fn declare_queue(&mut self, channel: u16, name: &str) {
        let declare = QueueDeclare { queue: short(name), ..Default::default() };
        match self.call(channel, declare).await {
            Method::QueueDeclareOk(ok) => assert_eq!(ok.queue.as_str().ok(), Some(name)),
            other => panic!("expected queue.declare-ok, got {other:?}"),
        }
    }

    /// Puts `channel` in confirm mode.
    pub async fn confirm_select(&mut self, channel: u16) {
        match self.call(channel, ConfirmSelect { nowait: false }).await {
            Method::ConfirmSelectOk(_) => {}
            other => panic!("expected confirm.select-ok, got {other:?}"),
        }
    }

    /// Publishes `body` to the default exchange with routing key `queue` (no wait).
    pub async fn publish(&mut self, channel: u16, queue: &str, body: &[u8]) {
        let publish = BasicPublish { exchange: short(""), routing_key: short(queue), ..Default::default() };
        let mut buf = BytesMut::new();
        encode_method_frame(&mut buf, channel, &publish.into());
        let header = ContentHeader::new(60, body.len() as u64, &BasicProperties::default());
        encode_header_frame(&mut buf, channel, &header);
        encode_body_frames(&mut buf, channel, body, self.frame_max);
        self.send_bytes(&buf).await;
    }

    /// Expects `basic.ack` for publish `seq` on `channel`.
    pub async fn expect_confirm(&mut self, channel: u16, seq: u64) {
        match self.expect_method(ANSWER_DEADLINE).await {
            (c, Method::BasicAck(BasicAck { delivery_tag, .. })) if c == channel && delivery_tag >= seq => {}
            other => panic!("expected basic.ack {seq} on {channel}, got {other:?}"),
        }
    }

    /// `basic.get` (no-ack) from `queue`; returns the body, or `None` on get-empty.
    pub async fn get(&mut self, channel: u16, queue: &str) -> Option<Vec<u8>> {
        match self.call(channel, BasicGet { queue: short(queue), no_ack: true, ..Default::default() }).await {
            Method::BasicGetEmpty(_) => None,
            Method::BasicGetOk(_) => {
                let size = match self.expect_content_frame(ANSWER_DEADLINE).await {
                    Frame::Header { channel: c, header } if c == channel => header.body_size(),
                    other => panic!("expected a content header on {channel}, got {other:?}"),
                };
                let mut body = Vec::new();
                while (body.len() as u64) < size {
                    match self.expect_content_frame(ANSWER_DEADLINE).await {
                        Frame::Body { channel: c, payload } if c == channel => {
                            body.extend_from_slice(&payload)
                        }
                        other => panic!("expected a body frame on {channel}, got {other:?}"),
                    }
                }
                Some(body)
            }
            other => panic!("expected basic.get-ok or get-empty, got {other:?}"),
        }
    }

    /// Closes the connection politely and waits for close-ok.
    pub async fn close(mut self) {
        let close = ConnectionClose { reply_code: 200, reply_text: short("bye"), class_id: 0, method_id: 0 };
        self.send_method(0, close).await;
        loop {
            match self.read_frame(ANSWER_DEADLINE).await {
                Ok(Frame::Method { channel: 0, method: Method::ConnectionCloseOk(_) }) => return,
                Ok(_) => continue,
                Err(error) => panic!("expected connection.close-ok, got {error:?}"),
            }
        }
    }
}

/// One encoded method frame.
pub fn method_frame(channel: u16, method: &Method) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_method_frame(&mut buf, channel, method);
    buf
}

/// A raw frame with any type, channel, payload and frame-end octet.
pub fn raw_frame(frame_type: u8, channel: u16, payload: &[u8], frame_end: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(frame_type);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&u32::try_from(payload.len()).expect("payload fits u32").to_be_bytes());
    out.extend_from_slice(payload);
    out.push(frame_end);
    out
}

/// The `connection.start-ok` the raw client sends.
pub fn start_ok(options: &Options) -> ConnectionStartOk {
    let capability = |name: &str, on: bool| (short(name), FieldValue::Bool(on));
    let capabilities: FieldTable = [
        capability("authentication_failure_close", options.authentication_failure_close),
        capability("basic.nack", true),
        capability("connection.blocked", true),
        capability("consumer_cancel_notify", true),
        capability("publisher_confirms", true),
    ]
    .into_iter()
    .collect();
    let client_properties: FieldTable = [
        (short("product"), FieldValue::LongStr(Bytes::from_static(b"warren raw test client"))),
        (short("capabilities"), FieldValue::Table(capabilities)),
    ]
    .into_iter()
    .collect();
    let mut response = vec![0u8];
    response.extend_from_slice(options.user.as_bytes());
    response.push(0);
    response.extend_from_slice(options.password.as_bytes());
    ConnectionStartOk {
        client_properties,
        mechanism: short("PLAIN"),
        response: Bytes::from(response),
        locale: short("en_US"),
    }
}

fn is_reset(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

/// A well-behaved client working beside a misbehaving one: on its own connection it keeps
/// publishing (with confirms) to its own queue and getting each message back, checking every
/// body, until [`Bystander::finish`].
pub struct Bystander {
    rounds: tokio::sync::watch::Receiver<u64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Bystander {
    /// Connects, declares `queue`, and starts the publish/get loop as a task.
    pub async fn start(addr: &str, queue: &str) -> Bystander {
        let mut client = RawClient::open(addr).await;
        client.open_channel(1).await;
        client.declare_queue(1, queue).await;
        client.confirm_select(1).await;
        let (tx, rounds) = tokio::sync::watch::channel(0u64);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        let queue = queue.to_owned();
        let task = tokio::spawn(async move {
            let mut seq = 0u64;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                seq += 1;
                let body = format!("{queue} message {seq}").into_bytes();
                client.publish(1, &queue, &body).await;
                client.expect_confirm(1, seq).await;
                let got = client.get(1, &queue).await;
                assert_eq!(
                    got.as_deref().map(String::from_utf8_lossy),
                    Some(String::from_utf8_lossy(&body)),
                    "bystander round {seq}"
                );
                tx.send_replace(seq);
            }
            client.close().await;
            seq
        });
        let bystander = Bystander { rounds, stop, task };
        bystander.advance(1).await;
        bystander
    }

    /// Rounds completed so far.
    pub fn rounds(&self) -> u64 {
        *self.rounds.borrow()
    }

    /// Waits (at most 5 s) until `n` more rounds have completed.
    pub async fn advance(&self, n: u64) {
        let mut rounds = self.rounds.clone();
        let target = *rounds.borrow() + n;
        let waited = tokio::time::timeout(ANSWER_DEADLINE, rounds.wait_for(|r| *r >= target)).await;
        match waited {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => panic!("bystander stopped (it failed: see its panic) before round {target}"),
            Err(_) => panic!("bystander stuck: {} rounds, wanted {target} within 5 s", self.rounds()),
        }
    }

    /// Stops the loop, closes the connection politely, and returns the rounds done; panics if
    /// the bystander saw anything wrong.
    pub async fn finish(self) -> u64 {
        self.advance(1).await;
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match tokio::time::timeout(ANSWER_DEADLINE * 2, self.task).await {
            Ok(Ok(rounds)) => rounds,
            Ok(Err(error)) => std::panic::resume_unwind(error.into_panic()),
            Err(_) => panic!("bystander did not stop within 10 s"),
        }
    }
}
