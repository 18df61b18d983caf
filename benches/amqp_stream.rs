//! Stream queue benchmarks end to end over AMQP, against the release `warren` binary on
//! 127.0.0.1: replay from `first` (msg/s and MB/s) for 16 B, 1 KiB and 64 KiB messages
//! (the 64 KiB case is a 1 GiB replay), and fan-out of one stream to 10 and 100 consumers
//! on as many connections (aggregate deliveries/s and the broker's resident memory).
//!
//! The client is a lean one written on Warren's own codec (no client library), so that it
//! does not limit the figures. Run with `cargo bench --bench amqp_stream`; set
//! `WARREN_BENCH_DIR` to choose the broker's file system and `WARREN_BENCH_QUICK=1` for
//! smaller runs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::wire::amqp::{
    decode_frame, encode_content_frames, encode_method_frame, BasicAck, BasicConsume, BasicProperties,
    BasicPublish, BasicQos, ChannelOpen, ConfirmSelect, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk,
    ContentHeader, FieldTable, FieldValue, Frame, Method, QueueDeclare, ShortStr, PROTOCOL_HEADER,
};

const FRAME_MAX: u32 = 131_072;

/// A minimal AMQP client: one connection, channel 1.
struct Client {
    stream: TcpStream,
    read: BytesMut,
    write: BytesMut,
}

impl Client {
    async fn connect(addr: &str) -> Client {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.write_all(&PROTOCOL_HEADER).await.expect("header");
        let mut client = Client {
            stream,
            read: BytesMut::with_capacity(1 << 20),
            write: BytesMut::with_capacity(1 << 20),
        };
        client.expect(|m| matches!(m, Method::ConnectionStart(_))).await;
        let start_ok = ConnectionStartOk {
            client_properties: FieldTable::default(),
            mechanism: ShortStr::from_static("PLAIN"),
            response: Bytes::from_static(b"\0guest\0guest"),
            locale: ShortStr::from_static("en_US"),
        };
        client.send(0, start_ok.into());
        client.flush().await;
        client.expect(|m| matches!(m, Method::ConnectionTune(_))).await;
        client.send(0, ConnectionTuneOk { channel_max: 2047, frame_max: FRAME_MAX, heartbeat: 0 }.into());
        client.send(
            0,
            ConnectionOpen { virtual_host: ShortStr::from_static("/"), ..Default::default() }.into(),
        );
        client.send(1, ChannelOpen::default().into());
        client.flush().await;
        client.expect(|m| matches!(m, Method::ChannelOpenOk(_))).await;
        client
    }

    fn send(&mut self, channel: u16, method: Method) {
        encode_method_frame(&mut self.write, channel, &method);
    }

    async fn flush(&mut self) {
        self.stream.write_all(&self.write).await.expect("write");
        self.write.clear();
    }

    async fn frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = decode_frame(&mut self.read, FRAME_MAX).expect("frame") {
                return frame;
            }
            if self.stream.read_buf(&mut self.read).await.expect("read") == 0 {
                panic!("broker closed the connection");
            }
        }
    }

    async fn expect(&mut self, wanted: impl Fn(&Method) -> bool) -> Method {
        loop {
            if let Frame::Method { method, .. } = self.frame().await {
                if wanted(&method) {
                    return method;
                }
                if matches!(method, Method::ChannelClose(_) | Method::ConnectionClose(_)) {
                    panic!("closed: {method:?}");
                }
            }
        }
    }

    async fn declare_stream(&mut self, name: &str) {
        let arguments: FieldTable =
            [(ShortStr::from_static("x-queue-type"), FieldValue::LongStr(Bytes::from_static(b"stream")))]
                .into_iter()
                .collect();
        let declare = QueueDeclare {
            queue: ShortStr::try_from(name).expect("name"),
            durable: true,
            arguments,
            ..Default::default()
        };
        self.send(1, declare.into());
        self.flush().await;
        self.expect(|m| matches!(m, Method::QueueDeclareOk(_))).await;
    }

    /// Publishes `count` messages of `size` bytes with confirms, `window` outstanding.
    async fn fill(&mut self, queue: &str, count: u64, size: usize) {
        self.send(1, ConfirmSelect::default().into());
        self.flush().await;
        self.expect(|m| matches!(m, Method::ConfirmSelectOk(_))).await;
        let body = vec![0x42u8; size];
        let header = ContentHeader::new(60, size as u64, &BasicProperties::default());
        let publish: Method =
            BasicPublish { routing_key: ShortStr::try_from(queue).expect("name"), ..Default::default() }
                .into();
        let window = 2000u64;
        let (mut sent, mut confirmed) = (0u64, 0u64);
        while confirmed < count {
            while sent < count && sent - confirmed < window {
                encode_content_frames(&mut self.write, 1, &publish, &header, &body, FRAME_MAX);
                sent += 1;
                if self.write.len() > 256 * 1024 {
                    break;
                }
            }
            self.flush().await;
            while let Some(frame) = decode_frame(&mut self.read, FRAME_MAX).expect("frame") {
                if let Frame::Method { method: Method::BasicAck(ack), .. } = frame {
                    confirmed = if ack.multiple { ack.delivery_tag } else { confirmed.max(ack.delivery_tag) };
                }
            }
            if confirmed < count && (sent - confirmed >= window || sent == count) {
                if let Method::BasicAck(ack) = self.expect(|m| matches!(m, Method::BasicAck(_))).await {
                    confirmed = confirmed.max(ack.delivery_tag);
                }
            }
        }
    }

    /// Consumes `count` messages from `first`; returns (messages, body bytes, seconds).
    async fn replay(&mut self, queue: &str, count: u64) -> (u64, u64, f64) {
        self.send(1, BasicQos { prefetch_count: 2000, ..Default::default() }.into());
        let arguments: FieldTable =
            [(ShortStr::from_static("x-stream-offset"), FieldValue::LongStr(Bytes::from_static(b"first")))]
                .into_iter()
                .collect();
        let consume =
            BasicConsume { queue: ShortStr::try_from(queue).expect("name"), arguments, ..Default::default() };
        self.send(1, consume.into());
        self.flush().await;
        self.expect(|m| matches!(m, Method::BasicConsumeOk(_))).await;
        let started = Instant::now();
        let (mut messages, mut bytes, mut last_tag, mut acked) = (0u64, 0u64, 0u64, 0u64);
        while messages < count {
            match self.frame().await {
                Frame::Method { method: Method::BasicDeliver(deliver), .. } => {
                    last_tag = deliver.delivery_tag
                }
                Frame::Header { header, .. } => {
                    bytes += header.body_size();
                    messages += 1;
                }
                _ => {}
            }
            if last_tag >= acked + 500 {
                self.send(1, BasicAck { delivery_tag: last_tag, multiple: true }.into());
                self.flush().await;
                acked = last_tag;
            }
        }
        (messages, bytes, started.elapsed().as_secs_f64())
    }
}

struct Warren {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Warren {
    fn start() -> Warren {
        let base =
            std::env::var_os("WARREN_BENCH_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
        std::fs::create_dir_all(&base).expect("bench dir");
        let dir = tempfile::tempdir_in(base).expect("temp dir");
        let ports = dir.path().join("ports");
        let child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["serve", "--storage", "disk", "--fsync", "never", "--amqp-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--ports-file")
            .arg(&ports)
            .stderr(Stdio::null())
            .spawn()
            .expect("start warren");
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            if let Some(addr) = std::fs::read_to_string(&ports)
                .ok()
                .and_then(|t| t.lines().find_map(|l| l.strip_prefix("amqp=").map(str::to_owned)))
            {
                break addr;
            }
            assert!(Instant::now() < deadline, "warren did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Warren { child, addr, _dir: dir }
    }

    fn rss_mib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                / 1024
        };
        (field("VmRSS:"), field("RssAnon:"))
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn replay_case(warren: &Warren, size: usize, count: u64) {
    let queue = format!("replay-{size}");
    let mut producer = Client::connect(&warren.addr).await;
    producer.declare_stream(&queue).await;
    let started = Instant::now();
    producer.fill(&queue, count, size).await;
    let fill_s = started.elapsed().as_secs_f64();
    let mut consumer = Client::connect(&warren.addr).await;
    let (messages, bytes, seconds) = consumer.replay(&queue, count).await;
    println!(
        "replay {size:>6} B x {count:>8}: {:>10.0} msg/s {:>8.1} MB/s  (fill with confirms: {:.0} msg/s)",
        messages as f64 / seconds,
        bytes as f64 / seconds / 1e6,
        count as f64 / fill_s
    );
}

async fn fanout_case(warren: &Warren, consumers: usize, count: u64) {
    let queue = format!("fanout-{consumers}");
    let mut producer = Client::connect(&warren.addr).await;
    producer.declare_stream(&queue).await;
    producer.fill(&queue, count, 1024).await;
    let mut clients = Vec::with_capacity(consumers);
    for _ in 0..consumers {
        clients.push(Client::connect(&warren.addr).await);
    }
    let (_, anon_before) = warren.rss_mib();
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let queue = queue.clone();
            tokio::spawn(async move { client.replay(&queue, count).await })
        })
        .collect();
    let mut peak = (0, 0);
    while !tasks.iter().all(|t| t.is_finished()) {
        let (rss, anon) = warren.rss_mib();
        peak = (peak.0.max(rss), peak.1.max(anon));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut delivered = 0;
    for task in tasks {
        delivered += task.await.expect("consumer").0;
    }
    println!(
        "fan-out {consumers:>3} consumers x {count} x 1 KiB: {:>10.0} deliveries/s aggregate; broker RSS peak {} MiB (anonymous {} MiB, {} MiB before)",
        delivered as f64 / seconds,
        peak.0,
        peak.1,
        anon_before
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let quick = std::env::var_os("WARREN_BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        // Each case on a fresh broker, so that one case's memory does not show in the next.
        replay_case(&Warren::start(), 16, 2_000_000 / scale).await;
        replay_case(&Warren::start(), 1024, 1_000_000 / scale).await;
        replay_case(&Warren::start(), 64 * 1024, (1 << 30) / (64 * 1024) / scale).await;
        fanout_case(&Warren::start(), 10, 100_000 / scale).await;
        fanout_case(&Warren::start(), 100, 20_000 / scale).await;
    });
}
