//! Producer and consumer tasks. Each owns one connection with one or more channels; set-up
//! happens before the clock starts, then the task loops on [`Conn::pump`].
//!
//! Producers encode each channel's message once into a template and copy it per publish,
//! writing the send time (wall-clock ns, big-endian) into the first 8 body bytes; they fill
//! the write buffer up to [`BENCH_WRITE_BATCH_BYTES`] at a time, within the rate limit and the
//! confirm window. Consumers scan received frames in place and acknowledge into the write
//! buffer, so one read of many deliveries costs one write of acks.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::limits::{BENCH_CONFIRM_POLL_MS, BENCH_CONFIRM_WAIT_MS, BENCH_WRITE_BATCH_BYTES};
use crate::wire::amqp::{
    encode_content_frames, encode_method_frame, BasicAck, BasicConsume, BasicProperties, BasicPublish,
    BasicQos, ConfirmSelect, ContentHeader, FieldTable, FrameType, Method, QueueBind, QueueDeclare, ShortStr,
};

use super::client::{channel_close, scan_frames, Conn, Pumped, RawView};
use super::options::{Source, Target};
use super::stats::{Clock, Shard};
use super::uri::AmqpUri;
use super::Error;

/// Run phases, broadcast through a watch channel.
pub(crate) mod phase {
    /// Set-up: connections open, nothing published.
    pub const SETUP: u8 = 0;
    /// Publishing and consuming.
    pub const GO: u8 = 1;
    /// Producers stop publishing and wait for their confirms; consumers keep draining.
    pub const STOP: u8 = 2;
    /// Everyone closes.
    pub const EXIT: u8 = 3;
}

fn short(s: &str) -> Result<ShortStr, Error> {
    ShortStr::try_from(s.to_owned()).map_err(|_| Error::Usage(format!("name {s:?} is longer than 255 bytes")))
}

/// Sequence numbers of one confirm-mode channel: what is published, settled, and when.
#[derive(Default)]
struct Confirms {
    /// Every sequence number up to this one is settled.
    watermark: u64,
    /// The last sequence number published.
    published: u64,
    /// Settled sequence numbers above the watermark (acks without `multiple`, out of order).
    singles: BTreeSet<u64>,
    /// Unsettled publishes as `(first seq, last seq, send time ns)`, one per write batch.
    runs: VecDeque<(u64, u64, u64)>,
}

impl Confirms {
    fn outstanding(&self) -> u64 {
        self.published - self.watermark - self.singles.len() as u64
    }

    fn published(&mut self, ts_ns: u64) {
        self.published += 1;
        match self.runs.back_mut() {
            Some(run) if run.2 == ts_ns && run.1 + 1 == self.published => run.1 = self.published,
            _ => self.runs.push_back((self.published, self.published, ts_ns)),
        }
    }

    /// Settles `tag` (and everything before it if `multiple`); returns how many were newly
    /// settled. Latency is recorded as the watermark passes each publish.
    fn settle(&mut self, tag: u64, multiple: bool, now_ns: u64, shard: &Shard) -> u64 {
        if tag <= self.watermark || tag > self.published {
            return 0;
        }
        if multiple {
            let above = self.singles.split_off(&(tag + 1));
            let below = std::mem::replace(&mut self.singles, above).len() as u64;
            let count = tag - self.watermark - below;
            self.advance(tag, now_ns, shard);
            return count;
        }
        if !self.singles.insert(tag) {
            return 0;
        }
        let mut to = self.watermark;
        while self.singles.remove(&(to + 1)) {
            to += 1;
        }
        if to > self.watermark {
            self.advance(to, now_ns, shard);
        }
        1
    }

    fn advance(&mut self, to: u64, now_ns: u64, shard: &Shard) {
        while let Some(run) = self.runs.front_mut() {
            if run.0 > to {
                break;
            }
            let end = run.1.min(to);
            shard.record_confirm_ns(now_ns.saturating_sub(run.2), end - run.0 + 1);
            if run.1 <= to {
                self.runs.pop_front();
            } else {
                run.0 = to + 1;
            }
        }
        self.watermark = to;
    }
}

/// One producer channel: its message template and confirm state.
struct ProducerChannel {
    number: u16,
    template: Vec<u8>,
    /// Where the 8-byte timestamp goes in the template, if the body is large enough.
    stamp_at: Option<usize>,
    confirms: Confirms,
}

/// What a producer does.
pub(crate) struct ProducerSpec {
    /// Connection name shown by the broker.
    pub name: String,
    /// Where each channel publishes, one entry per channel.
    pub targets: Vec<Target>,
    /// Message body size in bytes.
    pub body_bytes: usize,
    /// Publishing rate limit in messages per second; none for no limit.
    pub rate: Option<f64>,
    /// Most unconfirmed publishes per channel, in confirm mode; none without confirms.
    pub confirm_window: Option<u64>,
    /// Messages to publish before stopping (0: no limit).
    pub pmessages: u64,
    /// Publish persistent messages (delivery mode 2).
    pub persistent: bool,
    /// Publish with `mandatory`.
    pub mandatory: bool,
}

/// A connected producer, ready to go.
pub(crate) struct Producer {
    conn: Conn,
    channels: Vec<ProducerChannel>,
    spec: ProducerSpec,
    next_channel: usize,
    sent: u64,
}

impl Producer {
    /// Connects, opens the channels and selects confirm mode.
    pub async fn connect(uri: &AmqpUri, spec: ProducerSpec) -> Result<Self, Error> {
        let mut conn = Conn::connect(uri, &spec.name).await?;
        let mut channels = Vec::with_capacity(spec.targets.len());
        for (i, target) in spec.targets.iter().enumerate() {
            let number = u16::try_from(i + 1).map_err(|_| Error::Usage("too many channels".into()))?;
            conn.open_channel(number).await?;
            if spec.confirm_window.is_some() {
                conn.rpc(number, ConfirmSelect { nowait: false }).await?;
            }
            let (template, stamp_at) = template(&conn, number, target, &spec)?;
            channels.push(ProducerChannel { number, template, stamp_at, confirms: Confirms::default() });
        }
        Ok(Self { conn, channels, spec, next_channel: 0, sent: 0 })
    }

    fn outstanding(&self) -> u64 {
        self.channels.iter().map(|c| c.confirms.outstanding()).sum()
    }

    /// Publishes until told to stop (or its message count is reached), then waits for its
    /// confirms and closes.
    pub async fn run(
        mut self,
        shard: Arc<Shard>,
        clock: Clock,
        mut phase: watch::Receiver<u8>,
    ) -> Result<(), Error> {
        let start = Instant::now();
        let mut stop_at: Option<Instant> = None;
        let mut rare = Vec::new();
        loop {
            let current = *phase.borrow_and_update();
            if current >= phase::EXIT {
                break;
            }
            let limit_reached = self.spec.pmessages > 0 && self.sent >= self.spec.pmessages;
            let stopping = current >= phase::STOP || limit_reached;
            if stopping {
                let since = *stop_at.get_or_insert_with(Instant::now);
                if self.conn.wbuf.is_empty()
                    && (self.outstanding() == 0
                        || since.elapsed() > Duration::from_millis(BENCH_CONFIRM_WAIT_MS))
                {
                    break;
                }
            } else {
                let n = self.fill(start, &clock);
                shard.sent.fetch_add(n, Relaxed);
            }
            let deadline = match (stopping, self.spec.rate) {
                (true, _) => Some(Instant::now() + Duration::from_millis(BENCH_CONFIRM_POLL_MS)),
                (false, Some(rate)) if self.conn.wbuf.is_empty() => {
                    Some(start + Duration::from_secs_f64(self.sent as f64 / rate))
                }
                _ => None,
            };
            if let Pumped::Read = self.conn.pump(deadline, &mut phase).await? {
                self.on_read(&shard, &clock, &mut rare)?;
                for (channel, method) in rare.drain(..) {
                    self.conn.check_close(channel, &method).await?;
                }
            }
        }
        for c in &self.channels {
            self.conn.send(c.number, channel_close());
        }
        self.conn.close().await;
        Ok(())
    }

    /// Appends publishes to the write buffer; returns how many.
    fn fill(&mut self, start: Instant, clock: &Clock) -> u64 {
        let mut budget = match self.spec.rate {
            Some(rate) => ((rate * start.elapsed().as_secs_f64()) as u64 + 1).saturating_sub(self.sent),
            None => u64::MAX,
        };
        if self.spec.pmessages > 0 {
            budget = budget.min(self.spec.pmessages - self.sent);
        }
        let ts = clock.now_ns();
        let window = self.spec.confirm_window;
        let count = self.channels.len();
        let mut stalled = 0;
        let mut n = 0;
        while budget > 0 && self.conn.wbuf.len() < BENCH_WRITE_BATCH_BYTES && stalled < count {
            let i = self.next_channel;
            self.next_channel = (i + 1) % count;
            let Some(ch) = self.channels.get_mut(i) else { break };
            if window.is_some_and(|w| ch.confirms.outstanding() >= w) {
                stalled += 1;
                continue;
            }
            stalled = 0;
            let at = self.conn.wbuf.len();
            self.conn.wbuf.extend_from_slice(&ch.template);
            if let Some(stamp) = ch.stamp_at.and_then(|s| self.conn.wbuf.get_mut(at + s..at + s + 8)) {
                stamp.copy_from_slice(&ts.to_be_bytes());
            }
            if window.is_some() {
                ch.confirms.published(ts);
            }
            budget -= 1;
            n += 1;
        }
        self.sent += n;
        n
    }

    /// Handles confirms and returns in the read buffer.
    fn on_read(&mut self, shard: &Shard, clock: &Clock, rare: &mut Vec<(u16, Method)>) -> Result<(), Error> {
        let now = clock.now_ns();
        let channels = &mut self.channels;
        let (mut confirmed, mut nacked, mut returned) = (0, 0, 0);
        let used = scan_frames(&self.conn.rbuf, |f: RawView<'_>| {
            if f.kind != FrameType::Method as u8 {
                return Ok(());
            }
            match f.method_ids() {
                (60, id @ (80 | 120)) => {
                    let tag = f.u64_at(4).unwrap_or(0);
                    let multiple = f.payload.get(12).is_some_and(|b| b & 1 == 1);
                    if let Some(ch) = channels.get_mut(usize::from(f.channel).wrapping_sub(1)) {
                        let n = ch.confirms.settle(tag, multiple, now, shard);
                        if id == 80 {
                            confirmed += n;
                        } else {
                            nacked += n;
                        }
                    }
                }
                (60, 50) => returned += 1,
                _ => rare.push((f.channel, f.decode_method()?)),
            }
            Ok(())
        })?;
        bytes::Buf::advance(&mut self.conn.rbuf, used);
        shard.confirmed.fetch_add(confirmed, Relaxed);
        shard.nacked.fetch_add(nacked, Relaxed);
        shard.returned.fetch_add(returned, Relaxed);
        Ok(())
    }
}

/// Encodes one whole publish (method, header, body frames) and finds the timestamp's place.
fn template(
    conn: &Conn,
    channel: u16,
    target: &Target,
    spec: &ProducerSpec,
) -> Result<(Vec<u8>, Option<usize>), Error> {
    let publish = Method::BasicPublish(BasicPublish {
        reserved_1: 0,
        exchange: short(&target.exchange)?,
        routing_key: short(&target.routing_key)?,
        mandatory: spec.mandatory,
        immediate: false,
    });
    let properties =
        BasicProperties { delivery_mode: Some(if spec.persistent { 2 } else { 1 }), ..Default::default() };
    let header = ContentHeader::new(60, spec.body_bytes as u64, &properties);
    let mut buf = BytesMut::new();
    encode_method_frame(&mut buf, channel, &publish);
    let method_len = buf.len();
    buf.clear();
    let body = vec![0u8; spec.body_bytes];
    encode_content_frames(&mut buf, channel, &publish, &header, &body, conn.frame_max);
    let body_at = method_len + crate::wire::amqp::FRAME_OVERHEAD + header.encoded_len() + 7;
    let stamp_at = (spec.body_bytes >= 8).then_some(body_at);
    Ok((buf.to_vec(), stamp_at))
}

/// What a consumer does.
pub(crate) struct ConsumerSpec {
    /// Connection name shown by the broker.
    pub name: String,
    /// What each channel consumes from, one entry per channel.
    pub sources: Vec<Source>,
    /// Exchange its own queues are bound to (`""`: they are not bound).
    pub exchange: String,
    /// Consume with automatic acknowledgement.
    pub autoack: bool,
    /// Acknowledge every this many deliveries, with `multiple` when above 1.
    pub ack_every: u32,
    /// Prefetch count per channel (0: no `basic.qos`).
    pub qos: u16,
    /// Consuming rate limit in messages per second; none for no limit.
    pub rate: Option<f64>,
    /// Deliveries to receive before stopping (0: no limit).
    pub cmessages: u64,
    /// Arguments of `basic.consume` (`x-stream-offset`).
    pub consume_args: FieldTable,
}

/// Per-channel delivery assembly state of a consumer.
#[derive(Default, Clone, Copy)]
struct Delivery {
    tag: u64,
    body_left: u64,
    first_body: bool,
    unacked: u32,
    last_tag: u64,
}

/// A connected consumer whose consumers are registered.
pub(crate) struct Consumer {
    conn: Conn,
    channels: Vec<Delivery>,
    spec: ConsumerSpec,
    received: u64,
}

impl Consumer {
    /// Connects, opens channels, sets QoS, declares its own queues if it has any, and
    /// starts consuming.
    pub async fn connect(uri: &AmqpUri, spec: ConsumerSpec) -> Result<Self, Error> {
        let mut conn = Conn::connect(uri, &spec.name).await?;
        for (i, source) in spec.sources.iter().enumerate() {
            let number = u16::try_from(i + 1).map_err(|_| Error::Usage("too many channels".into()))?;
            conn.open_channel(number).await?;
            if spec.qos > 0 {
                conn.rpc(number, BasicQos { prefetch_size: 0, prefetch_count: spec.qos, global: false })
                    .await?;
            }
            let queue = match source {
                Source::Named(q) => short(q)?,
                Source::Own { routing_key } => {
                    let declare = QueueDeclare { exclusive: true, auto_delete: true, ..Default::default() };
                    let Method::QueueDeclareOk(ok) = conn.rpc(number, declare).await? else {
                        return Err(Error::Protocol("expected queue.declare-ok".into()));
                    };
                    if !spec.exchange.is_empty() {
                        let bind = QueueBind {
                            queue: ok.queue.clone(),
                            exchange: short(&spec.exchange)?,
                            routing_key: short(routing_key)?,
                            ..Default::default()
                        };
                        conn.rpc(number, bind).await?;
                    }
                    ok.queue
                }
            };
            let consume = BasicConsume {
                queue,
                no_ack: spec.autoack,
                arguments: spec.consume_args.clone(),
                ..Default::default()
            };
            match conn.rpc(number, consume).await? {
                Method::BasicConsumeOk(_) => {}
                other => {
                    return Err(Error::Protocol(format!("expected basic.consume-ok, got {}", other.name())))
                }
            }
        }
        let channels = vec![Delivery::default(); spec.sources.len()];
        Ok(Self { conn, channels, spec, received: 0 })
    }

    /// Consumes until its message count is reached or it is told to exit.
    pub async fn run(
        mut self,
        shard: Arc<Shard>,
        clock: Clock,
        mut phase: watch::Receiver<u8>,
    ) -> Result<(), Error> {
        let start = Instant::now();
        let mut latencies = Vec::with_capacity(4096);
        let mut rare = Vec::new();
        loop {
            if *phase.borrow_and_update() >= phase::EXIT || self.done() {
                break;
            }
            if let Some(rate) = self.spec.rate {
                let allowed_at = start + Duration::from_secs_f64(self.received as f64 / rate);
                if allowed_at > Instant::now() {
                    self.conn.flush().await?;
                    tokio::time::sleep_until(allowed_at).await;
                }
            }
            if let Pumped::Read = self.conn.pump(None, &mut phase).await? {
                let n = self.on_read(&clock, &mut latencies, &mut rare)?;
                shard.received.fetch_add(n, Relaxed);
                shard.record_consumer_ns(&latencies);
                latencies.clear();
                for (channel, method) in rare.drain(..) {
                    if let Method::BasicCancel(_) = method {
                        return Err(Error::Protocol("the broker cancelled a consumer".into()));
                    }
                    self.conn.check_close(channel, &method).await?;
                }
            }
        }
        self.ack_remaining();
        for (i, _) in self.channels.iter().enumerate() {
            self.conn.send(u16::try_from(i + 1).unwrap_or(u16::MAX), channel_close());
        }
        self.conn.close().await;
        Ok(())
    }

    fn done(&self) -> bool {
        self.spec.cmessages > 0 && self.received >= self.spec.cmessages
    }

    fn ack_remaining(&mut self) {
        if self.spec.autoack {
            return;
        }
        for (i, d) in self.channels.iter_mut().enumerate() {
            if d.unacked > 0 {
                let channel = u16::try_from(i + 1).unwrap_or(u16::MAX);
                let ack = Method::BasicAck(BasicAck { delivery_tag: d.last_tag, multiple: true });
                encode_method_frame(&mut self.conn.wbuf, channel, &ack);
                d.unacked = 0;
            }
        }
    }

    /// Counts deliveries in the read buffer, stamps latencies and queues acks.
    fn on_read(
        &mut self,
        clock: &Clock,
        latencies: &mut Vec<u64>,
        rare: &mut Vec<(u16, Method)>,
    ) -> Result<u64, Error> {
        let now = clock.now_ns();
        let limit = if self.spec.cmessages > 0 { self.spec.cmessages } else { u64::MAX };
        let ack_every = self.spec.ack_every.max(1);
        let autoack = self.spec.autoack;
        let mut received = self.received;
        let channels = &mut self.channels;
        let wbuf = &mut self.conn.wbuf;
        let used = scan_frames(&self.conn.rbuf, |f: RawView<'_>| {
            let Some(d) = channels.get_mut(usize::from(f.channel).wrapping_sub(1)) else {
                if f.kind == FrameType::Method as u8 {
                    rare.push((f.channel, f.decode_method()?));
                }
                return Ok(());
            };
            let complete = match f.kind {
                k if k == FrameType::Method as u8 => {
                    if f.method_ids() == (60, 60) {
                        let tag_len = usize::from(f.payload.get(4).copied().unwrap_or(0));
                        d.tag = f.u64_at(5 + tag_len).unwrap_or(0);
                        d.first_body = true;
                    } else {
                        rare.push((f.channel, f.decode_method()?));
                    }
                    false
                }
                k if k == FrameType::Header as u8 => {
                    d.body_left = f.u64_at(4).unwrap_or(0);
                    d.body_left == 0
                }
                k if k == FrameType::Body as u8 => {
                    if d.first_body {
                        d.first_body = false;
                        if let Some(ts) = f.u64_at(0).filter(|&ts| ts > 0 && ts <= now) {
                            latencies.push(now - ts);
                        }
                    }
                    d.body_left = d.body_left.saturating_sub(f.payload.len() as u64);
                    d.body_left == 0
                }
                _ => false,
            };
            if complete && received < limit {
                received += 1;
                if !autoack {
                    d.unacked += 1;
                    d.last_tag = d.tag;
                    if d.unacked >= ack_every {
                        let multiple = ack_every > 1;
                        let ack = Method::BasicAck(BasicAck { delivery_tag: d.tag, multiple });
                        encode_method_frame(wbuf, f.channel, &ack);
                        d.unacked = 0;
                    }
                }
            }
            Ok(())
        })?;
        bytes::Buf::advance(&mut self.conn.rbuf, used);
        let n = received - self.received;
        self.received = received;
        Ok(n)
    }
}

/// Declares `queue` on `conn`'s channel 1 (set-up connection).
pub(crate) fn queue_declare(
    queue: &str,
    durable: bool,
    auto_delete: bool,
    arguments: FieldTable,
) -> Result<QueueDeclare, Error> {
    Ok(QueueDeclare { queue: short(queue)?, durable, auto_delete, arguments, ..Default::default() })
}

/// Binds `queue` to `exchange` with `key`.
pub(crate) fn queue_bind(queue: &str, exchange: &str, key: &str) -> Result<QueueBind, Error> {
    Ok(QueueBind {
        queue: short(queue)?,
        exchange: short(exchange)?,
        routing_key: short(key)?,
        ..Default::default()
    })
}
