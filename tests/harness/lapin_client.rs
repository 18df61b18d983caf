//! The `lapin` AMQP 0-9-1 client against the broker: connecting, channels, declaring,
//! publishing and consuming with a deadline on every wait, and reading reply codes and texts
//! out of lapin's errors as `"404 NOT_FOUND - no queue 'q' in vhost '/'"`.
//!
//! [`Server::start`] starts a fresh Warren (`--storage memory`), or uses the broker named by
//! `WARREN_TEST_AMQP_URL` if that is set (that is how these tests are checked against
//! RabbitMQ). [`Server::warren`] always uses the Warren given (durability tests).
//!
//! A few things lapin cannot send (a `basic.qos` with `prefetch_size` ≠ 0) go through
//! [`raw`], a minimal hand-written AMQP client.

use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, Queue};
use tokio::sync::mpsc;

use crate::harness::broker::Broker;
use crate::harness::clients::URL_VAR;

/// How long any single wait may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How long to watch for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// The broker under test: its `host:port`, and the Warren process (if any) kept alive.
pub struct Server {
    host: String,
    vhost_path: String,
    external: bool,
    pub warren: Option<Broker>,
}

impl Server {
    /// `WARREN_TEST_AMQP_URL` if set, else a fresh Warren with `--storage memory`.
    pub fn start() -> Server {
        match std::env::var(URL_VAR) {
            Ok(url) if !url.trim().is_empty() => {
                let url = url.trim();
                let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
                let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
                let (host, vhost) = match rest.split_once('/') {
                    Some((h, v)) if !v.is_empty() => (h.to_owned(), v.to_owned()),
                    Some((h, _)) => (h.to_owned(), "%2F".to_owned()),
                    None => (rest.to_owned(), "%2F".to_owned()),
                };
                Server { host, vhost_path: vhost, external: true, warren: None }
            }
            _ => Server::warren(Broker::start(&["--storage", "memory"])),
        }
    }

    /// The given Warren process, whatever `WARREN_TEST_AMQP_URL` says.
    pub fn warren(broker: Broker) -> Server {
        Server {
            host: broker.addr("amqp").to_owned(),
            vhost_path: "%2F".into(),
            external: false,
            warren: Some(broker),
        }
    }

    /// Whether the broker is an external one (RabbitMQ) rather than a Warren this test started.
    pub fn is_external(&self) -> bool {
        self.external
    }

    /// `host:port` of the broker's AMQP listener (for the raw frame client).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `amqp://guest:guest@host:port/%2F`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/{}", self.host, self.vhost_path)
    }

    /// The URL with other credentials and vhost (`vhost` already percent-encoded).
    pub fn url_as(&self, user: &str, password: &str, vhost: &str) -> String {
        format!("amqp://{user}:{password}@{}/{vhost}", self.host)
    }

    /// A new connection as guest.
    pub async fn connect(&self) -> Connection {
        connect_url(&self.url()).await
    }

    /// A new connection and one channel on it.
    pub async fn open(&self) -> (Connection, Channel) {
        let connection = self.connect().await;
        let channel = channel(&connection).await;
        (connection, channel)
    }

    /// A new connection and one channel on it in confirm mode.
    pub async fn open_confirming(&self) -> (Connection, Channel) {
        let (connection, channel) = self.open().await;
        within("confirm.select", channel.confirm_select(ConfirmSelectOptions::default()))
            .await
            .expect("confirm.select");
        (connection, channel)
    }

    /// The last stderr lines of the Warren this test started (for failure messages).
    pub fn log_tail(&self) -> String {
        match &self.warren {
            None => "(external broker)".into(),
            Some(b) => {
                let lines = b.log_lines();
                lines[lines.len().saturating_sub(30)..].join("\n")
            }
        }
    }
}

/// Connects to `url` within the deadline, panicking on failure.
pub async fn connect_url(url: &str) -> Connection {
    within(&format!("connect to {url}"), try_connect(url))
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// Connects to `url` and returns lapin's result.
pub async fn try_connect(url: &str) -> lapin::Result<Connection> {
    Connection::connect(url, ConnectionProperties::default()).await
}

/// A new channel on `connection`.
pub async fn channel(connection: &Connection) -> Channel {
    within("channel.open", connection.create_channel()).await.expect("channel.open")
}

/// Awaits `future`, panicking with `what` if it takes longer than [`DEADLINE`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// `"CODE TEXT"` of a protocol error (channel or connection close), else a description.
pub fn reply_of(error: &lapin::Error) -> String {
    match error {
        lapin::Error::ProtocolError(e) => format!("{} {}", e.get_id(), e.get_message()),
        other => format!("(not a protocol error) {other:?}"),
    }
}

/// Awaits an operation that must fail; returns its `"CODE TEXT"`.
pub async fn expect_error<T: Debug>(what: &str, future: impl Future<Output = lapin::Result<T>>) -> String {
    match within(what, future).await {
        Ok(value) => panic!("{what}: expected an error, got Ok({value:?})"),
        Err(error) => reply_of(&error),
    }
}

/// Collects the errors lapin reports for a channel or connection (for closes that come
/// asynchronously, like after a publish).
pub struct Errors(mpsc::UnboundedReceiver<lapin::Error>);

impl Errors {
    /// Watches `channel`'s errors.
    pub fn of_channel(channel: &Channel) -> Errors {
        let (tx, rx) = mpsc::unbounded_channel();
        channel.on_error(move |e| {
            let _ = tx.send(e);
        });
        Errors(rx)
    }

    /// Watches `connection`'s errors.
    pub fn of_connection(connection: &Connection) -> Errors {
        let (tx, rx) = mpsc::unbounded_channel();
        connection.on_error(move |e| {
            let _ = tx.send(e);
        });
        Errors(rx)
    }

    /// The next error's `"CODE TEXT"`, within the deadline.
    pub async fn next(&mut self) -> String {
        let error = within("a channel/connection error", self.0.recv()).await.expect("error sender dropped");
        reply_of(&error)
    }
}

/// A name unique to this test run, starting with `prefix`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos:x}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A field table from pairs.
pub fn table(pairs: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(k.into(), v);
    }
    t
}

/// A long-string AMQP value.
pub fn s(text: &str) -> AMQPValue {
    AMQPValue::LongString(text.into())
}

/// A signed 32-bit AMQP value (`I`).
pub fn int(v: i32) -> AMQPValue {
    AMQPValue::LongInt(v)
}

/// Declares a queue with plain options (non-durable, non-exclusive, no auto-delete).
pub async fn declare(channel: &Channel, name: &str, args: FieldTable) -> Queue {
    declare_with(channel, name, QueueDeclareOptions::default(), args).await
}

/// Declares a queue, panicking on failure.
pub async fn declare_with(
    channel: &Channel,
    name: &str,
    options: QueueDeclareOptions,
    args: FieldTable,
) -> Queue {
    within("queue.declare", channel.queue_declare(name, options, args))
        .await
        .unwrap_or_else(|e| panic!("queue.declare {name}: {e}"))
}

/// The ready message count through a passive declare.
pub async fn count(channel: &Channel, queue: &str) -> u32 {
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    declare_with(channel, queue, options, FieldTable::default()).await.message_count()
}

/// The consumer count through a passive declare.
pub async fn consumers(channel: &Channel, queue: &str) -> u32 {
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    declare_with(channel, queue, options, FieldTable::default()).await.consumer_count()
}

/// Publishes and, if the channel is in confirm mode, waits for the confirm (which must be an
/// ack). Returns the confirmation.
pub async fn publish_props(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Confirmation {
    let confirm = within(
        "basic.publish",
        channel.basic_publish(exchange, routing_key, BasicPublishOptions::default(), body, properties),
    )
    .await
    .unwrap_or_else(|e| panic!("basic.publish to {exchange:?}/{routing_key:?}: {e}"));
    let confirmation = within("publisher confirm", confirm).await.expect("publisher confirm");
    assert!(!confirmation.is_nack(), "publish to {exchange:?}/{routing_key:?} was nacked");
    confirmation
}

/// [`publish_props`] with default properties.
pub async fn publish(channel: &Channel, exchange: &str, routing_key: &str, body: &[u8]) -> Confirmation {
    publish_props(channel, exchange, routing_key, body, BasicProperties::default()).await
}

/// Publishes a message and returns the raw confirmation (ack or nack) within the deadline.
pub async fn publish_confirmation(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    options: BasicPublishOptions,
    body: &[u8],
    properties: BasicProperties,
) -> Confirmation {
    let confirm =
        within("basic.publish", channel.basic_publish(exchange, routing_key, options, body, properties))
            .await
            .expect("basic.publish");
    within("publisher confirm", confirm).await.expect("publisher confirm")
}

/// Starts a consumer with a broker-generated tag.
pub async fn consume(channel: &Channel, queue: &str, no_ack: bool) -> Consumer {
    consume_with(
        channel,
        queue,
        BasicConsumeOptions { no_ack, ..BasicConsumeOptions::default() },
        FieldTable::default(),
    )
    .await
}

/// Starts a consumer with options and arguments.
pub async fn consume_with(
    channel: &Channel,
    queue: &str,
    options: BasicConsumeOptions,
    args: FieldTable,
) -> Consumer {
    within("basic.consume", channel.basic_consume(queue, "", options, args))
        .await
        .unwrap_or_else(|e| panic!("basic.consume {queue}: {e}"))
}

/// The next delivery, within the deadline.
pub async fn next(consumer: &mut Consumer) -> Delivery {
    match within("a delivery", consumer.next()).await {
        Some(Ok(delivery)) => delivery,
        Some(Err(e)) => panic!("consumer error: {e}"),
        None => panic!("consumer ended"),
    }
}

/// The bodies of the next `n` deliveries, as strings.
pub async fn next_bodies(consumer: &mut Consumer, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(body(&next(consumer).await));
    }
    out
}

/// Checks that nothing is delivered for [`QUIET`].
pub async fn nothing_delivered(consumer: &mut Consumer) {
    if let Ok(Some(item)) = tokio::time::timeout(QUIET, consumer.next()).await {
        match item {
            Ok(d) => panic!("unexpected delivery {:?} (tag {})", body(&d), d.delivery_tag),
            Err(e) => panic!("unexpected consumer error {e}"),
        }
    }
}

/// Whether the consumer's stream ends (server-side cancel) within the deadline.
pub async fn ends(consumer: &mut Consumer) -> bool {
    loop {
        match tokio::time::timeout(DEADLINE, consumer.next()).await {
            Err(_) => return false,
            Ok(None) => return true,
            Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// `basic.get` (with acks unless `no_ack`).
pub async fn get(channel: &Channel, queue: &str, no_ack: bool) -> Option<BasicGetMessage> {
    within("basic.get", channel.basic_get(queue, BasicGetOptions { no_ack }))
        .await
        .unwrap_or_else(|e| panic!("basic.get {queue}: {e}"))
}

/// The body of a delivery as a string.
pub fn body(delivery: &Delivery) -> String {
    String::from_utf8_lossy(&delivery.data).into_owned()
}

/// Drains a queue with no-ack `basic.get`s, returning the bodies.
pub async fn drain(channel: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = get(channel, queue, true).await {
        out.push(body(&m.delivery));
    }
    out
}

/// A minimal hand-written AMQP 0-9-1 client for the few frames lapin cannot send.
pub mod raw {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::{within, Server};

    /// An AMQP connection opened by hand.
    pub struct RawConnection {
        stream: TcpStream,
    }

    /// One frame: type, channel, payload.
    pub struct Frame {
        pub kind: u8,
        pub channel: u16,
        pub payload: Vec<u8>,
    }

    impl Frame {
        /// (class, method) of a method frame.
        pub fn method(&self) -> (u16, u16) {
            (
                u16::from_be_bytes([self.payload[0], self.payload[1]]),
                u16::from_be_bytes([self.payload[2], self.payload[3]]),
            )
        }
    }

    fn shortstr(out: &mut Vec<u8>, s: &str) {
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }

    fn longstr(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s);
    }

    fn method(class: u16, id: u16, args: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&class.to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(args);
        p
    }

    impl RawConnection {
        /// Connects as guest/guest to vhost `/`, with channel 1 open.
        pub async fn open(server: &Server) -> RawConnection {
            let mut stream =
                within("tcp connect", TcpStream::connect(&server.host)).await.expect("tcp connect");
            stream.write_all(b"AMQP\x00\x00\x09\x01").await.expect("write header");
            let mut c = RawConnection { stream };
            let start = c.read_frame().await;
            assert_eq!(start.method(), (10, 10), "connection.start");
            let mut args = Vec::new();
            args.extend_from_slice(&0u32.to_be_bytes()); // client-properties: empty table
            shortstr(&mut args, "PLAIN");
            longstr(&mut args, b"\x00guest\x00guest");
            shortstr(&mut args, "en_US");
            c.send_method(0, method(10, 11, &args)).await;
            let tune = c.read_frame().await;
            assert_eq!(tune.method(), (10, 30), "connection.tune");
            let mut args = Vec::new();
            args.extend_from_slice(&tune.payload[4..6]); // channel_max as proposed
            args.extend_from_slice(&tune.payload[6..10]); // frame_max as proposed
            args.extend_from_slice(&0u16.to_be_bytes()); // no heartbeats
            c.send_method(0, method(10, 31, &args)).await;
            let mut args = Vec::new();
            shortstr(&mut args, "/");
            shortstr(&mut args, "");
            args.push(0);
            c.send_method(0, method(10, 40, &args)).await;
            let open_ok = c.read_frame().await;
            assert_eq!(open_ok.method(), (10, 41), "connection.open-ok");
            c.send_method(1, method(20, 10, &[0])).await;
            let channel_open_ok = c.read_frame().await;
            assert_eq!(channel_open_ok.method(), (20, 11), "channel.open-ok");
            c
        }

        /// Sends a method frame with the given (class, method) and argument bytes.
        pub async fn send(&mut self, channel: u16, class: u16, id: u16, args: &[u8]) {
            self.send_method(channel, method(class, id, args)).await;
        }

        async fn send_method(&mut self, channel: u16, payload: Vec<u8>) {
            let mut frame = vec![1u8];
            frame.extend_from_slice(&channel.to_be_bytes());
            frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            frame.extend_from_slice(&payload);
            frame.push(0xCE);
            self.stream.write_all(&frame).await.expect("write frame");
        }

        /// Reads one frame within the deadline.
        pub async fn read_frame(&mut self) -> Frame {
            within("a frame", async {
                let mut header = [0u8; 7];
                self.stream.read_exact(&mut header).await.expect("read frame header");
                let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
                let mut payload = vec![0u8; size + 1];
                self.stream.read_exact(&mut payload).await.expect("read frame payload");
                assert_eq!(payload.pop(), Some(0xCE), "frame end");
                Frame { kind: header[0], channel: u16::from_be_bytes([header[1], header[2]]), payload }
            })
            .await
        }

        /// Reads frames until a connection.close or channel.close; returns
        /// `(channel, "CODE TEXT")`.
        pub async fn read_close(&mut self) -> (u16, String) {
            loop {
                let frame = self.read_frame().await;
                if frame.kind != 1 {
                    continue;
                }
                let m = frame.method();
                if m == (10, 50) || m == (20, 40) {
                    let p = &frame.payload[4..];
                    let code = u16::from_be_bytes([p[0], p[1]]);
                    let len = p[2] as usize;
                    let text = String::from_utf8_lossy(&p[3..3 + len]).into_owned();
                    return (frame.channel, format!("{code} {text}"));
                }
            }
        }
    }
}
