//! The AMQP listener: accepts connections and, per connection, moves bytes between the
//! socket and the protocol state ([`Connection`]): frames in, frames out, deliveries from
//! queues, publish completions, heartbeats, and backpressure (a connection with too many
//! publishes in flight is not read until some complete).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::amqp::connection::{Connection, Next, Phase};
use crate::amqp::reply::{self, Reply};
use crate::broker::Broker;
use crate::limits::{
    ACCEPT_RETRY_DELAY_MS, BUSY_READ_BUFFER_BYTES, BUSY_READ_BYTES_MIN, CLOSE_OK_TIMEOUT_MS,
    CONNECTION_TICK_INTERVAL_MS, DRAIN_BUFFER_BYTES, EVENTS_PER_TURN_MAX, FRAME_MAX_BYTES,
    HANDSHAKE_TIMEOUT_MS, IOVECS_MAX, OUTPUT_CAPACITY_BYTES_MIN, OUTPUT_RESERVE_BYTES,
    PUBLISHES_IN_FLIGHT_MAX, READ_BUFFER_BYTES, READ_SPARE_BYTES_MIN, WRITE_BATCH_BYTES,
};
use crate::wire::amqp::{
    check_protocol_header, decode_raw_frame, encode_heartbeat_frame, reply_code, DecodeError, ProtocolHeader,
    KNOWN_CLASS_IDS, PROTOCOL_HEADER,
};

/// Time a client has to send the protocol header and finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
/// How long a `connection.close` waits for its close-ok.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_millis(CLOSE_OK_TIMEOUT_MS);

/// Accepts connections until `shutdown` turns true.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let next_id = AtomicU64::new(1);
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let broker = Arc::clone(&broker);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(error) = serve_connection(stream, peer, broker, id, shutdown).await {
                            tracing::debug!(connection = id, %peer, %error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_DELAY_MS)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

async fn read_protocol_header(stream: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<bool> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        match check_protocol_header(buf) {
            ProtocolHeader::Match => {
                let _ = buf.split_to(PROTOCOL_HEADER.len());
                return Ok(true);
            }
            ProtocolHeader::Mismatch { .. } => {
                stream.write_all(&PROTOCOL_HEADER).await?;
                return Ok(false);
            }
            ProtocolHeader::Incomplete => {}
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
            Ok(Ok(0)) | Err(_) => return Ok(false),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    id: u64,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut busy = false;
    if !read_protocol_header(&mut stream, &mut buf).await? {
        return Ok(());
    }
    let (mut connection, mut events) = Connection::new(id, broker, peer.ip().is_loopback());
    let (mut reader, mut writer) = stream.into_split();
    write_chunks(&mut writer, connection.take_output()).await?;
    let started = Instant::now();
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    let mut closing_since: Option<Instant> = None;
    // After a frame error nothing more the peer sends can be framed: input is discarded
    // until the close times out, as RabbitMQ does.
    let mut poisoned = false;
    let mut alarm = connection.broker().alarm();
    let mut blocked_sent = false;
    let mut tick = tokio::time::interval(Duration::from_millis(CONNECTION_TICK_INTERVAL_MS));
    let mut outcome = Ok(());
    'serve: loop {
        // A resource alarm stops reading from connections that publish, as RabbitMQ does.
        let alarmed = alarm.borrow().is_some() && connection.has_published;
        let may_read = connection.pending.len() < PUBLISHES_IN_FLIGHT_MAX && !alarmed;
        if alarmed != blocked_sent && connection.blocked_capable && connection.phase == Phase::Open {
            let reason = alarm.borrow().unwrap_or_default();
            connection.set_blocked(alarmed.then_some(reason));
            blocked_sent = alarmed;
        }
        // Everything queued goes out before waiting again; a client told it is blocked then
        // stops sending before its socket buffers fill, while this connection no longer reads.
        if connection.has_output() {
            if let Err(error) = write_chunks(&mut writer, connection.take_output()).await {
                outcome = Err(error);
                break 'serve;
            }
            if connection.out.capacity() < OUTPUT_CAPACITY_BYTES_MIN {
                connection.out.reserve(OUTPUT_RESERVE_BYTES);
            }
            last_write = Instant::now();
        }
        if buf.capacity() - buf.len() < READ_SPARE_BYTES_MIN {
            buf.reserve(if busy { BUSY_READ_BUFFER_BYTES } else { READ_BUFFER_BYTES });
        }
        tokio::select! {
            read = reader.read_buf(&mut buf), if may_read => {
                match read {
                    Ok(0) => break 'serve,
                    Ok(read) => {
                        last_read = Instant::now();
                        busy = read >= BUSY_READ_BYTES_MIN;
                    }
                    Err(error) => { outcome = Err(error); break 'serve; }
                }
                if poisoned {
                    buf.clear();
                }
                let frame_max = if connection.phase == Phase::Open { connection.frame_max } else { FRAME_MAX_BYTES };
                loop {
                    // Publishing's frames are handled without building a frame value or
                    // awaiting; every other frame takes the general path.
                    let decoded = match decode_raw_frame(&mut buf, frame_max) {
                        Ok(Some(raw)) => match connection.publish_frame(raw) {
                            Ok(Ok(Next::Continue)) => continue,
                            Ok(Ok(next)) => Ok(Some(Err(next))),
                            Ok(Err(raw)) => raw.parse().map(|frame| Some(Ok(frame))),
                            Err(error) => Err(error),
                        },
                        Ok(None) => Ok(None),
                        Err(error) => Err(error),
                    };
                    match decoded {
                        Ok(Some(frame)) => {
                            let next = match frame {
                                Ok(frame) => connection.handle_frame(frame).await,
                                Err(next) => next,
                            };
                            match next {
                                Next::Continue => {}
                                Next::Close => {
                                    let _ = write_chunks(&mut writer, connection.take_output()).await;
                                    break 'serve;
                                }
                                Next::CloseAfterPeer => {
                                    let _ = write_chunks(&mut writer, connection.take_output()).await;
                                    connection.release().await;
                                    let mut rest = [0u8; DRAIN_BUFFER_BYTES];
                                    let wait = tokio::time::timeout(CLOSE_OK_TIMEOUT, async {
                                        while matches!(reader.read(&mut rest).await, Ok(n) if n > 0) {}
                                    });
                                    let _ = wait.await;
                                    return Ok(());
                                }
                            }
                        }
                        Ok(None) => {
                            connection.flush_publishes().await;
                            break;
                        }
                        Err(DecodeError::UnknownMethod { class_id, .. }) if !KNOWN_CLASS_IDS.contains(&class_id) => {
                            break 'serve;
                        }
                        Err(error) => {
                            let reply = reply::decode_error(&error, &buf, frame_max);
                            connection.close_with(&reply, 0, 0);
                            buf.clear();
                            poisoned = true;
                            break;
                        }
                    }
                }
            }
            Some(event) = events.recv() => {
                connection.consumer_event(event);
                for _ in 1..EVENTS_PER_TURN_MAX {
                    if connection.out.len() >= WRITE_BATCH_BYTES {
                        break;
                    }
                    match events.try_recv() {
                        Ok(event) => connection.consumer_event(event),
                        Err(_) => break,
                    }
                }
            }
            Some(done) = connection.pending.next(), if !connection.pending.is_empty() => {
                connection.publish_done(done);
                while let Some(Some(done)) = connection.pending.next().now_or_never_ready() {
                    connection.publish_done(done);
                }
            }
            _ = tick.tick() => {
                if connection.phase != Phase::Open && connection.phase != Phase::Closing && started.elapsed() > HANDSHAKE_TIMEOUT {
                    break 'serve;
                }
                let heartbeat = Duration::from_secs(u64::from(connection.heartbeat_s));
                if connection.phase == Phase::Open && !heartbeat.is_zero() {
                    if last_read.elapsed() > heartbeat * 2 {
                        tracing::info!(connection = id, %peer, "missed heartbeats from client, closing");
                        break 'serve;
                    }
                    if last_write.elapsed() >= heartbeat / 2 {
                        encode_heartbeat_frame(&mut connection.out);
                    }
                }
            }
            changed = alarm.changed() => {
                if changed.is_err() {
                    break 'serve;
                }
            }
            _ = shutdown.changed() => {
                if connection.phase == Phase::Open {
                    connection.close_with(&Reply::connection(reply_code::CONNECTION_FORCED, "broker shutdown"), 0, 0);
                } else {
                    break 'serve;
                }
            }
        }
        if connection.phase == Phase::Closing {
            let since = *closing_since.get_or_insert_with(Instant::now);
            if since.elapsed() > CLOSE_OK_TIMEOUT {
                break 'serve;
            }
        }
    }
    connection.release().await;
    outcome
}

/// Writes `chunks` in order with vectored writes, resuming after partial writes.
async fn write_chunks(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    mut chunks: Vec<Bytes>,
) -> std::io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<std::io::IoSlice<'_>> =
            chunks[first..].iter().take(IOVECS_MAX).map(|c| std::io::IoSlice::new(c)).collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let length = chunks[first].len();
            if written >= length {
                written -= length;
                first += 1;
            } else {
                chunks[first].advance(written);
                written = 0;
            }
        }
    }
    Ok(())
}

/// Polls a stream once without waiting.
trait NowOrNever {
    type Item;
    fn now_or_never_ready(self) -> Option<Self::Item>;
}

impl<F: std::future::Future> NowOrNever for F {
    type Item = F::Output;
    fn now_or_never_ready(self) -> Option<F::Output> {
        futures::FutureExt::now_or_never(self)
    }
}
