//! Socket I/O of an AMQP connection that needs no protocol state: reading the protocol
//! header before a [`Connection`](crate::amqp::connection::Connection) exists, and writing
//! queued output with vectored writes.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use crate::limits::{HANDSHAKE_TIMEOUT_MS, IOVECS_MAX};
use crate::wire::amqp::{check_protocol_header, ProtocolHeader, PROTOCOL_HEADER};

/// Time a client has to send the protocol header.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);

/// Reads the protocol header into `buf` and consumes it. Returns false when the connection
/// is to be closed: the client sent another protocol's header (answered with ours, as the
/// spec asks), closed its socket, or was too slow.
pub(super) async fn read_protocol_header(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<bool> {
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

/// Writes `chunks` in order with vectored writes of at most [`IOVECS_MAX`] buffers,
/// resuming after partial writes.
pub(super) async fn write_chunks(writer: &mut OwnedWriteHalf, chunks: Vec<Bytes>) -> io::Result<()> {
    write_chunks_tracked(writer, chunks, None).await
}

/// [`write_chunks`], keeping in `pending` the bytes the socket has not yet accepted (one
/// relaxed store per write call; 0 once everything is written).
pub(super) async fn write_chunks_tracked(
    writer: &mut OwnedWriteHalf,
    mut chunks: Vec<Bytes>,
    pending: Option<&AtomicU64>,
) -> io::Result<()> {
    let mut remaining: usize = chunks.iter().map(Bytes::len).sum();
    let track = |remaining: usize| {
        if let Some(pending) = pending {
            pending.store(remaining as u64, Ordering::Relaxed);
        }
    };
    track(remaining);
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<io::IoSlice<'_>> =
            chunks[first..].iter().take(IOVECS_MAX).map(|c| io::IoSlice::new(c)).collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        remaining = remaining.saturating_sub(written);
        track(remaining);
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
    debug_assert_eq!(remaining, 0, "every byte is written");
    Ok(())
}
