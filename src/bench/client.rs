//! A minimal AMQP 0-9-1 client connection: the handshake (PLAIN, tune, open), synchronous
//! requests for set-up, and the primitives the actors' hot loops use: a buffered writer, a
//! reader that scans frames in place ([`scan_frames`]), and [`Conn::pump`], which moves bytes
//! both ways until something happens.
//!
//! One task owns each connection; nothing here is shared or locked.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::limits::{BENCH_CLOSE_WAIT_MS, BENCH_READ_CHUNK_BYTES, BENCH_RPC_TIMEOUT_MS};
use crate::wire::amqp::{
    encode_method_frame, peek_frame, reply_code, ChannelClose, ChannelCloseOk, ChannelOpen, ConnectionClose,
    ConnectionCloseOk, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, FieldTable, FieldValue,
    FrameType, Method, ShortStr, FRAME_HEADER_SIZE, FRAME_MIN_SIZE, PROTOCOL_HEADER,
};

use super::uri::AmqpUri;
use super::Error;

/// One AMQP connection and its buffers.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Received bytes not yet scanned.
    pub rbuf: BytesMut,
    /// Encoded frames not yet written.
    pub wbuf: BytesMut,
    /// Negotiated frame size limit (0 = none).
    pub frame_max: u32,
}

/// What [`Conn::pump`] stopped for.
pub(crate) enum Pumped {
    /// New bytes are in `rbuf`.
    Read,
    /// Some of `wbuf` was written.
    Wrote,
    /// The deadline passed.
    Timer,
    /// The stop signal changed.
    Signal,
}

impl Conn {
    /// Connects and performs the handshake up to `connection.open-ok`.
    ///
    /// # Errors
    /// Connection refused, authentication failure, or an unexpected reply.
    pub async fn connect(uri: &AmqpUri, name: &str) -> Result<Conn, Error> {
        let stream = TcpStream::connect(&uri.addr)
            .await
            .map_err(|e| Error::io(format!("connecting to {}", uri.addr), e))?;
        stream.set_nodelay(true).map_err(|e| Error::io("setting TCP_NODELAY", e))?;
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::with_capacity(BENCH_READ_CHUNK_BYTES),
            wbuf: BytesMut::with_capacity(BENCH_READ_CHUNK_BYTES),
            frame_max: FRAME_MIN_SIZE,
        };
        conn.wbuf.extend_from_slice(&PROTOCOL_HEADER);
        conn.flush().await?;
        match conn.next_method(0).await? {
            Method::ConnectionStart(_) => {}
            other => return Err(Error::Protocol(format!("expected connection.start, got {}", other.name()))),
        }
        let mut properties = FieldTable::new();
        properties.insert(
            ShortStr::from_static("product"),
            FieldValue::LongStr(Bytes::from_static(b"warren bench")),
        );
        properties.insert(
            ShortStr::from_static("connection_name"),
            FieldValue::LongStr(Bytes::from(name.to_owned())),
        );
        let response = format!("\0{}\0{}", uri.user, uri.password);
        conn.send(
            0,
            ConnectionStartOk {
                client_properties: properties,
                mechanism: ShortStr::from_static("PLAIN"),
                response: Bytes::from(response),
                locale: ShortStr::from_static("en_US"),
            },
        );
        conn.flush().await?;
        let tune = match conn.next_method(0).await? {
            Method::ConnectionTune(t) => t,
            other => return Err(Error::Protocol(format!("expected connection.tune, got {}", other.name()))),
        };
        conn.frame_max = tune.frame_max;
        // Heartbeats are switched off: the bench's connections are always busy or short.
        conn.send(
            0,
            ConnectionTuneOk { channel_max: tune.channel_max, frame_max: tune.frame_max, heartbeat: 0 },
        );
        let vhost =
            ShortStr::try_from(uri.vhost.as_str()).map_err(|_| Error::Usage("vhost name too long".into()))?;
        match conn.rpc(0, ConnectionOpen { virtual_host: vhost, ..Default::default() }).await? {
            Method::ConnectionOpenOk(_) => Ok(conn),
            other => Err(Error::Protocol(format!("expected connection.open-ok, got {}", other.name()))),
        }
    }

    /// Opens channel `channel`.
    ///
    /// # Errors
    /// As [`Conn::rpc`].
    pub async fn open_channel(&mut self, channel: u16) -> Result<(), Error> {
        self.rpc(channel, ChannelOpen::default()).await.map(|_| ())
    }

    /// Appends a method frame to the write buffer.
    pub fn send(&mut self, channel: u16, method: impl Into<Method>) {
        encode_method_frame(&mut self.wbuf, channel, &method.into());
    }

    /// Writes the whole write buffer.
    ///
    /// # Errors
    /// A socket error.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.stream.write_all(&self.wbuf).await.map_err(|e| Error::io("writing to the broker", e))?;
        self.wbuf.clear();
        Ok(())
    }

    /// Sends `method` on `channel` and returns the next method received on that channel.
    /// Content frames and other channels' frames that arrive meanwhile are dropped, which is
    /// only right during set-up.
    ///
    /// # Errors
    /// A socket error, a timeout, or the broker closing the channel or connection.
    pub async fn rpc(&mut self, channel: u16, method: impl Into<Method>) -> Result<Method, Error> {
        let method = method.into();
        let name = method.name();
        self.send(channel, method);
        self.flush().await?;
        tokio::time::timeout(Duration::from_millis(BENCH_RPC_TIMEOUT_MS), self.next_method(channel))
            .await
            .map_err(|_| Error::Timeout(format!("no reply to {name}")))?
    }

    /// Reads until a method arrives on `channel`, turning closes into errors.
    async fn next_method(&mut self, channel: u16) -> Result<Method, Error> {
        loop {
            while let Some(total) = peek_frame(&self.rbuf, 0)? {
                let frame = self.rbuf.split_to(total).freeze();
                let kind = frame.first().copied().unwrap_or_default();
                let on = u16::from_be_bytes([
                    frame.get(1).copied().unwrap_or(0),
                    frame.get(2).copied().unwrap_or(0),
                ]);
                if kind != FrameType::Method as u8 {
                    continue;
                }
                let method = Method::decode(&frame.slice(FRAME_HEADER_SIZE..total - 1))?;
                self.check_close(on, &method).await?;
                if on == channel {
                    return Ok(method);
                }
            }
            self.read_more().await?;
        }
    }

    /// Answers and reports a `channel.close` or `connection.close` from the broker.
    pub async fn check_close(&mut self, channel: u16, method: &Method) -> Result<(), Error> {
        let (scope, code, text, ids) = match method {
            Method::ChannelClose(c) => {
                self.send(channel, ChannelCloseOk {});
                ("channel", c.reply_code, &c.reply_text, (c.class_id, c.method_id))
            }
            Method::ConnectionClose(c) => {
                self.send(0, ConnectionCloseOk {});
                ("connection", c.reply_code, &c.reply_text, (c.class_id, c.method_id))
            }
            _ => return Ok(()),
        };
        let text = String::from_utf8_lossy(text.as_bytes()).into_owned();
        let _ = self.flush().await;
        Err(Error::Closed { scope, code, text, method: format!("{}.{}", ids.0, ids.1) })
    }

    async fn read_more(&mut self) -> Result<(), Error> {
        self.rbuf.reserve(BENCH_READ_CHUNK_BYTES);
        match self.stream.read_buf(&mut self.rbuf).await {
            Ok(0) => Err(Error::Protocol("the broker closed the socket".into())),
            Ok(_) => Ok(()),
            Err(e) => Err(Error::io("reading from the broker", e)),
        }
    }

    /// Moves bytes both ways until something happens: bytes were read, some of the write
    /// buffer was written, `deadline` passed, or `signal` changed.
    ///
    /// # Errors
    /// A socket error or the broker closing the socket.
    pub async fn pump(
        &mut self,
        deadline: Option<Instant>,
        signal: &mut tokio::sync::watch::Receiver<u8>,
    ) -> Result<Pumped, Error> {
        self.rbuf.reserve(BENCH_READ_CHUNK_BYTES);
        let (mut reader, mut writer) = self.stream.split();
        let has_deadline = deadline.is_some();
        let sleep = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now));
        tokio::select! {
            biased;
            read = reader.read_buf(&mut self.rbuf) => match read {
                Ok(0) => Err(Error::Protocol("the broker closed the socket".into())),
                Ok(_) => Ok(Pumped::Read),
                Err(e) => Err(Error::io("reading from the broker", e)),
            },
            wrote = writer.write(&self.wbuf), if !self.wbuf.is_empty() => {
                let n = wrote.map_err(|e| Error::io("writing to the broker", e))?;
                self.wbuf.advance(n);
                Ok(Pumped::Wrote)
            }
            _ = signal.changed() => Ok(Pumped::Signal),
            () = sleep, if has_deadline => Ok(Pumped::Timer),
        }
    }

    /// Closes the connection politely, waiting a little for `connection.close-ok`.
    pub async fn close(mut self) {
        self.send(
            0,
            ConnectionClose {
                reply_code: reply_code::REPLY_SUCCESS,
                reply_text: ShortStr::from_static("bye"),
                class_id: 0,
                method_id: 0,
            },
        );
        let wait = async {
            self.flush().await?;
            loop {
                if let Some(m) = self.next_method_any().await? {
                    if matches!(m, Method::ConnectionCloseOk(_) | Method::ConnectionClose(_)) {
                        return Ok::<(), Error>(());
                    }
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(BENCH_CLOSE_WAIT_MS), wait).await;
    }

    /// The next method on channel 0, skipping everything else (for closing).
    async fn next_method_any(&mut self) -> Result<Option<Method>, Error> {
        loop {
            if let Some(total) = peek_frame(&self.rbuf, 0)? {
                let frame = self.rbuf.split_to(total).freeze();
                if frame.first() == Some(&(FrameType::Method as u8)) && frame.get(1..3) == Some(&[0, 0]) {
                    return Ok(Method::decode(&frame.slice(FRAME_HEADER_SIZE..total - 1)).ok());
                }
                continue;
            }
            self.read_more().await?;
        }
    }
}

/// A channel close sent by the client.
pub(crate) fn channel_close() -> ChannelClose {
    ChannelClose {
        reply_code: reply_code::REPLY_SUCCESS,
        reply_text: ShortStr::from_static("bye"),
        class_id: 0,
        method_id: 0,
    }
}

/// One frame seen in place by [`scan_frames`].
pub(crate) struct RawView<'a> {
    /// Frame type octet.
    pub kind: u8,
    /// Channel number.
    pub channel: u16,
    /// The payload.
    pub payload: &'a [u8],
}

impl RawView<'_> {
    /// `(class id, method id)` of a method frame.
    pub fn method_ids(&self) -> (u16, u16) {
        let u = |at: usize| {
            u16::from_be_bytes([
                self.payload.get(at).copied().unwrap_or(0),
                self.payload.get(at + 1).copied().unwrap_or(0),
            ])
        };
        (u(0), u(2))
    }

    /// The big-endian u64 at `at` in the payload, if present.
    pub fn u64_at(&self, at: usize) -> Option<u64> {
        self.payload.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
    }

    /// Decodes the whole method (for the rare frames the hot loop does not parse itself).
    ///
    /// # Errors
    /// A malformed method.
    pub fn decode_method(&self) -> Result<Method, Error> {
        Ok(Method::decode(&Bytes::copy_from_slice(self.payload))?)
    }
}

/// Calls `each` for every complete frame at the start of `buf` and returns the number of
/// bytes consumed, without copying or allocating. Stops early if `each` returns an error.
///
/// # Errors
/// A malformed frame, or the first error `each` returns.
pub(crate) fn scan_frames(
    buf: &[u8],
    mut each: impl FnMut(RawView<'_>) -> Result<(), Error>,
) -> Result<usize, Error> {
    let mut at = 0;
    while let Some(rest) = buf.get(at..) {
        let Some(total) = peek_frame(rest, 0)? else { break };
        let frame =
            rest.get(..total).ok_or_else(|| Error::Protocol("frame shorter than announced".into()))?;
        let kind = frame.first().copied().unwrap_or_default();
        let channel =
            u16::from_be_bytes([frame.get(1).copied().unwrap_or(0), frame.get(2).copied().unwrap_or(0)]);
        let payload = frame.get(FRAME_HEADER_SIZE..total - 1).unwrap_or_default();
        at += total;
        each(RawView { kind, channel, payload })?;
    }
    Ok(at)
}
