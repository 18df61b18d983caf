//! Malformed and hostile input on the AMQP port, answered exactly as RabbitMQ 3.10 answers it
//! (the codes and texts are listed under "Connections" in docs/amqp-compat.md), while a
//! bystander on its own connection keeps publishing and getting, before, during and after,
//! and never notices anything.
//!
//! Every test runs under a deadline. Sleeps appear only to show that something does *not*
//! happen (at most 300 ms).

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use tokio::time::Instant;

use warren::wire::amqp::{
    encode_method_frame, BasicProperties, ChannelOpen, ConnectionOpen, ConnectionStartOk, ContentHeader,
    Method, QueueDeclare, PROTOCOL_HEADER,
};

use crate::harness::broker::Broker;
use crate::harness::raw_client::{
    method_frame, raw_frame, short, start_ok, Bystander, Options, RawClient, ANSWER_DEADLINE,
};
use crate::harness::run;

fn start_broker() -> (Broker, String) {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("amqp").to_owned();
    (broker, addr)
}

/// Runs `test` on a fresh runtime and fails it if it takes longer than `deadline`.
fn within<F: Future>(deadline: Duration, test: F) -> F::Output {
    run(async move {
        match tokio::time::timeout(deadline, test).await {
            Ok(output) => output,
            Err(_) => panic!("test did not finish within {deadline:?}"),
        }
    })
}

/// A connection after the handshake with channel 1 open.
async fn open_with_channel(addr: &str) -> RawClient {
    let mut client = RawClient::open(addr).await;
    client.open_channel(1).await;
    client
}

/// One publish/get round on a fresh queue of `client`'s channel 1: the connection works.
async fn still_works(client: &mut RawClient, queue: &str) {
    client.declare_queue(1, queue).await;
    client.confirm_select(1).await;
    client.publish(1, queue, b"still here").await;
    client.expect_confirm(1, 1).await;
    assert_eq!(client.get(1, queue).await.as_deref(), Some(&b"still here"[..]));
}

// 1 ------------------------------------------------------------------------------------------

#[test]
fn garbage_instead_of_the_protocol_header_gets_the_0_9_1_header_and_a_close() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-garbage-header").await;
        let garbage: [(&str, &[u8]); 4] = [
            ("HTTP request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            ("AMQP 0-10 header", b"AMQP\x01\x01\x00\x0a"),
            ("AMQP 1.0 header", b"AMQP\x00\x01\x00\x00"),
            ("eight zero octets", &[0u8; 8]),
        ];
        for (what, bytes) in garbage {
            let mut client = RawClient::connect(&addr).await;
            client.send_bytes(bytes).await;
            // "The socket closes at once": well within 2 s.
            let (received, _reset) = client.read_until_closed(Duration::from_secs(2)).await;
            assert_eq!(&received[..], &PROTOCOL_HEADER[..], "answer to {what}");
            bystander.advance(1).await;
        }
        bystander.finish().await;
    });
}

// 2 ------------------------------------------------------------------------------------------

#[test]
fn bad_frame_end_is_a_501_frame_error() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-frame-end").await;
        let mut client = RawClient::open(&addr).await;
        // channel.open on channel 1 (payload <<0,20,0,10,0>>) ending in 0x00 instead of 0xCE.
        let mut frame = method_frame(1, &ChannelOpen::default().into());
        *frame.last_mut().expect("frame end") = 0;
        client.send_bytes(&frame).await;
        let close = client.expect_connection_close(ANSWER_DEADLINE).await;
        bystander.advance(1).await;
        let text = close.reply_text.as_str().expect("utf-8").to_owned();
        assert_eq!(close.reply_code, 501, "reply code; text {text:?}");
        assert!(text.starts_with("FRAME_ERROR"), "text {text:?}");
        assert_eq!(text, "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}");
        client.finish_close().await;
        bystander.finish().await;
    });
}

// 3 ------------------------------------------------------------------------------------------

#[test]
fn oversized_frame_is_a_501_frame_error() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-oversize").await;

        // The largest allowed frame (131072 octets, payload 131064) is not an error: a
        // publish with one full-size body frame is accepted and comes back.
        let mut client = open_with_channel(&addr).await;
        assert_eq!(client.frame_max, 131_072);
        let body = vec![b'x'; 131_064];
        client.declare_queue(1, "largest-frame").await;
        client.confirm_select(1).await;
        client.publish(1, "largest-frame", &body).await;
        client.expect_confirm(1, 1).await;
        assert_eq!(client.get(1, "largest-frame").await.map(|b| b.len()), Some(body.len()));
        bystander.advance(1).await;

        // A method frame header announcing a 200005-octet payload: rejected on its header
        // alone, before any payload arrives.
        let mut header = vec![1u8, 0, 1];
        header.extend_from_slice(&200_005u32.to_be_bytes());
        client.send_bytes(&header).await;
        let close = client.expect_connection_close(ANSWER_DEADLINE).await;
        bystander.advance(1).await;
        let text = close.reply_text.as_str().expect("utf-8").to_owned();
        assert_eq!(close.reply_code, 501, "reply code; text {text:?}");
        assert!(text.starts_with("FRAME_ERROR"), "text {text:?}");
        assert!(text.ends_with("{frame_too_large,200005,131064}"), "text {text:?}");
        client.finish_close().await;
        bystander.finish().await;
    });
}

/// A client that sends the whole oversized frame gets one `connection.close` and nothing
/// more: RabbitMQ sends the close, ignores all further input, and drops the socket ~3 s later
/// (the spec: after sending close, discard everything but close and close-ok).
#[test]
fn oversized_frame_sent_whole_gets_one_close_only() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-oversize-whole").await;
        let mut client = open_with_channel(&addr).await;
        let mut frame = vec![1u8, 0, 1];
        frame.extend_from_slice(&200_005u32.to_be_bytes());
        frame.extend_from_slice(&vec![7u8; 200_005]);
        frame.push(0xCE);
        // The broker may close before it has read everything: a failed write is fine.
        let _ = client.try_send_bytes(&frame).await;
        let close = client.expect_connection_close(ANSWER_DEADLINE).await;
        assert_eq!(close.reply_code, 501, "{close:?}");
        bystander.advance(1).await;
        client.finish_close().await;
        bystander.finish().await;
    });
}

// 4 ------------------------------------------------------------------------------------------

#[test]
fn method_on_an_unopened_channel_is_a_504() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-unopened").await;
        let mut client = RawClient::open(&addr).await;
        client.send_method(1, QueueDeclare { queue: short("q"), ..Default::default() }).await;
        client.expect_connection_close_exact(504, "CHANNEL_ERROR - expected 'channel.open'").await;
        bystander.finish().await;
    });
}

// 5 ------------------------------------------------------------------------------------------

#[test]
fn second_channel_open_is_a_504() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-second-open").await;
        let mut client = open_with_channel(&addr).await;
        client.send_method(1, ChannelOpen::default()).await;
        client.expect_connection_close_exact(504, "CHANNEL_ERROR - second 'channel.open' seen").await;
        bystander.finish().await;
    });
}

// 6 ------------------------------------------------------------------------------------------

#[test]
fn content_without_a_method_is_a_505() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-content").await;
        let text = "UNEXPECTED_FRAME - expected method frame, got non method frame instead";

        let mut client = open_with_channel(&addr).await;
        let header = ContentHeader::new(60, 5, &BasicProperties::default());
        client.send_bytes(&raw_frame(2, 1, header.raw(), 0xCE)).await;
        client.expect_connection_close_exact(505, text).await;
        bystander.advance(1).await;

        let mut client = open_with_channel(&addr).await;
        client.send_bytes(&raw_frame(3, 1, b"hello", 0xCE)).await;
        client.expect_connection_close_exact(505, text).await;
        bystander.finish().await;
    });
}

// 7 ------------------------------------------------------------------------------------------

#[test]
fn unknown_class_is_a_plain_tcp_close_and_unknown_method_a_connection_close() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-unknown").await;

        // Class 99 does not exist: no connection.close, just a closed socket.
        let mut client = open_with_channel(&addr).await;
        client.send_bytes(&raw_frame(1, 1, &[0, 99, 0, 10], 0xCE)).await;
        client.expect_tcp_close(ANSWER_DEADLINE).await;
        bystander.advance(1).await;

        // Method 999 of the basic class does not exist: a connection.close with a 5xx code.
        let mut client = open_with_channel(&addr).await;
        client.send_bytes(&raw_frame(1, 1, &[0, 60, 0x03, 0xe7], 0xCE)).await;
        let close = client.expect_connection_close(ANSWER_DEADLINE).await;
        assert!((500..600).contains(&close.reply_code), "{close:?}");
        client.finish_close().await;
        bystander.finish().await;
    });
}

// 8 ------------------------------------------------------------------------------------------

#[test]
fn heartbeat_on_a_channel_other_than_0_is_a_505() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-heartbeat-channel").await;
        let mut client = open_with_channel(&addr).await;
        client.send_bytes(&raw_frame(8, 1, &[], 0xCE)).await;
        let close = client.expect_connection_close(ANSWER_DEADLINE).await;
        bystander.advance(1).await;
        let text = close.reply_text.as_str().expect("utf-8").to_owned();
        assert_eq!(close.reply_code, 505, "reply code; text {text:?}");
        assert!(text.starts_with("UNEXPECTED_FRAME - type 8, "), "text {text:?}");
        client.finish_close().await;
        bystander.finish().await;
    });
}

// 9 ------------------------------------------------------------------------------------------

#[test]
fn truncated_frame_then_silence_is_dropped_by_heartbeat_timeout() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-truncated").await;
        let options = Options { heartbeat: 1, ..Options::default() };
        let mut client = RawClient::open_with(&addr, &options).await;
        client.open_channel(1).await;
        let frame = method_frame(1, &QueueDeclare { queue: short("never"), ..Default::default() }.into());
        client.send_bytes(&frame[..frame.len() - 6]).await;
        let sent = Instant::now();
        let before = bystander.rounds();
        client.expect_tcp_close(Duration::from_secs(4)).await;
        let elapsed = sent.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1000),
            "dropped after {elapsed:?}, before a heartbeat was missed"
        );
        // The broker kept sending heartbeats every 0.5 s until it gave up.
        assert!(
            client.heartbeats_seen >= 2,
            "{} heartbeats from the broker in {elapsed:?}",
            client.heartbeats_seen
        );
        assert!(bystander.rounds() > before, "the bystander made no progress while the client was silent");
        bystander.finish().await;
    });
}

// 10 -----------------------------------------------------------------------------------------

#[test]
fn partial_protocol_header_waits_for_the_handshake_timeout() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(15), async move {
        let bystander = Bystander::start(&addr, "bystander-partial-header").await;
        let mut client = RawClient::connect(&addr).await;
        let connected = Instant::now();
        client.send_bytes(b"AMQP\x00").await;
        let before = bystander.rounds();
        let (received, _reset) = client.read_until_closed(Duration::from_secs(13)).await;
        let elapsed = connected.elapsed();
        assert!(received.is_empty(), "the broker sent {received:?}");
        assert!(
            elapsed >= Duration::from_secs(9),
            "closed after {elapsed:?}, before the 10 s handshake timeout"
        );
        assert!(bystander.rounds() > before, "the bystander made no progress meanwhile");
        bystander.finish().await;
    });
}

// 11 -----------------------------------------------------------------------------------------

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/<pid>/fd").count()
}

/// How a storm connection gives up.
async fn abandon_handshake(addr: String, i: usize) -> Result<(), String> {
    let mut client = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| format!("connection {i}: connect timed out"))?
        .map_err(|e| format!("connection {i}: connect: {e}"))?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    match i % 5 {
        // No bytes at all.
        0 => {}
        // The protocol header, then gone without reading connection.start.
        1 => client.write_all(&PROTOCOL_HEADER).await.map_err(|e| format!("connection {i}: {e}"))?,
        // Header, read connection.start, half a start-ok; 3 leaves with a reset.
        2 | 3 => {
            client.write_all(&PROTOCOL_HEADER).await.map_err(|e| format!("connection {i}: {e}"))?;
            let mut start = [0u8; 7];
            tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut start))
                .await
                .map_err(|_| format!("connection {i}: no connection.start within 10 s"))?
                .map_err(|e| format!("connection {i}: reading connection.start: {e}"))?;
            let mut frame = BytesMut::new();
            encode_method_frame(&mut frame, 0, &Method::from(start_ok(&Options::default())));
            let half = frame.len() / 2;
            client.write_all(&frame[..half]).await.map_err(|e| format!("connection {i}: {e}"))?;
            if i % 5 == 3 {
                client.set_zero_linger().map_err(|e| format!("connection {i}: {e}"))?;
            }
        }
        // Three octets of the header, then a reset.
        _ => {
            client.write_all(b"AMQ").await.map_err(|e| format!("connection {i}: {e}"))?;
            client.set_zero_linger().map_err(|e| format!("connection {i}: {e}"))?;
        }
    }
    drop(client);
    Ok(())
}

#[test]
fn ten_thousand_abandoned_handshakes_leak_nothing() {
    const CONNECTIONS: usize = 10_000;
    const CONCURRENCY: usize = 200;
    let (broker, addr) = start_broker();
    let pid = broker.pid();
    within(Duration::from_secs(60), async move {
        let bystander = Bystander::start(&addr, "bystander-storm").await;
        let baseline = open_fds(pid);
        let started = Instant::now();
        let before = bystander.rounds();
        let failures: Vec<String> = futures::stream::iter(0..CONNECTIONS)
            .map(|i| abandon_handshake(addr.clone(), i))
            .buffer_unordered(CONCURRENCY)
            .filter_map(|r| async move { r.err() })
            .collect()
            .await;
        let storm = started.elapsed();
        let during = bystander.rounds() - before;
        assert!(
            failures.is_empty(),
            "{} of {CONNECTIONS} failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        assert!(during > 0, "the bystander made no progress during a {storm:?} storm");
        eprintln!("{CONNECTIONS} abandoned handshakes in {storm:?}; bystander rounds meanwhile: {during}");

        // A new connection works afterwards.
        let mut client = open_with_channel(&addr).await;
        still_works(&mut client, "after-storm").await;
        client.close().await;

        // The broker's descriptors return to about the baseline.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = open_fds(pid);
            if now <= baseline + 5 {
                break;
            }
            assert!(Instant::now() < deadline, "broker holds {now} descriptors, {baseline} before the storm");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bystander.finish().await;
    });
}

// Also in "Bad input": an unknown frame type and a method frame too short for its arguments.

#[test]
fn unknown_frame_type_and_truncated_method_are_501_frame_errors() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-frame-type").await;

        let mut client = open_with_channel(&addr).await;
        client.send_bytes(&raw_frame(9, 1, b"abc", 0xCE)).await;
        let close = client.expect_connection_close(ANSWER_DEADLINE).await;
        let text = close.reply_text.as_str().expect("utf-8").to_owned();
        assert_eq!(close.reply_code, 501, "reply code; text {text:?}");
        assert!(text.starts_with("FRAME_ERROR - "), "text {text:?}");
        client.finish_close().await;
        bystander.advance(1).await;

        // channel.open (20.10) without its shortstr argument.
        let mut client = RawClient::open(&addr).await;
        client.send_bytes(&raw_frame(1, 1, &[0, 20, 0, 10], 0xCE)).await;
        client.expect_connection_close_exact(501, "FRAME_ERROR - cannot decode <<>>").await;
        bystander.advance(1).await;

        assert!(text.ends_with("unknown_frame"), "unknown frame type: text {text:?}");
        bystander.finish().await;
    });
}

// 12 -----------------------------------------------------------------------------------------

#[test]
fn channel_open_above_channel_max_gets_no_answer() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-channel-max").await;
        let mut client = RawClient::open(&addr).await;
        assert_eq!(client.channel_max, 2047);
        client.send_method(2048, ChannelOpen::default()).await;
        client.expect_silence(Duration::from_millis(300)).await;
        client.open_channel(1).await;
        still_works(&mut client, "channel-max").await;
        client.open_channel(2047).await;
        client.close().await;
        bystander.finish().await;
    });
}

// 13 -----------------------------------------------------------------------------------------

#[test]
fn tune_ok_with_channel_max_0_is_refused_with_a_plain_close() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-channel-max-0").await;
        let options = Options { channel_max: Some(0), ..Options::default() };
        let mut client = RawClient::connect(&addr).await;
        client.send_protocol_header().await;
        client.expect_start().await;
        client.send_start_ok(&options).await;
        client.expect_tune_and_reply(&options).await;
        // A client sends connection.open right after tune-ok; it must get no open-ok. The
        // broker may have closed already, so a failed write is fine.
        let open = method_frame(0, &ConnectionOpen { virtual_host: short("/"), ..Default::default() }.into());
        let _ = client.try_send_bytes(&open).await;
        // RabbitMQ closes after about 3 s.
        client.expect_tcp_close(Duration::from_secs(5)).await;
        bystander.finish().await;
    });
}

// 14 -----------------------------------------------------------------------------------------

#[test]
fn wrong_password_and_unknown_vhost_are_refused() {
    let (_broker, addr) = start_broker();
    within(Duration::from_secs(30), async move {
        let bystander = Bystander::start(&addr, "bystander-auth").await;

        // Wrong password, with the authentication_failure_close capability.
        let options = Options { password: "wrong".into(), ..Options::default() };
        let mut client = RawClient::connect(&addr).await;
        client.send_protocol_header().await;
        client.expect_start().await;
        client.send_start_ok(&options).await;
        client
            .expect_connection_close_exact(
                403,
                "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.",
            )
            .await;
        bystander.advance(1).await;

        // Unknown user, same answer.
        let options = Options { user: "nobody".into(), ..Options::default() };
        let mut client = RawClient::connect(&addr).await;
        client.send_protocol_header().await;
        client.expect_start().await;
        client.send_start_ok(&options).await;
        client
            .expect_connection_close_exact(
                403,
                "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.",
            )
            .await;

        // Without the capability: the socket closes (RabbitMQ waits ~3 s), no frame.
        let options =
            Options { password: "wrong".into(), authentication_failure_close: false, ..Options::default() };
        let mut client = RawClient::connect(&addr).await;
        client.send_protocol_header().await;
        client.expect_start().await;
        client.send_start_ok(&options).await;
        client.expect_tcp_close(Duration::from_secs(5)).await;
        bystander.advance(1).await;

        // A malformed PLAIN response: a plain TCP close.
        let mut client = RawClient::connect(&addr).await;
        client.send_protocol_header().await;
        client.expect_start().await;
        let bad = ConnectionStartOk {
            response: bytes::Bytes::from_static(b"guest"),
            ..start_ok(&Options::default())
        };
        client.send_method(0, bad).await;
        client.expect_tcp_close(Duration::from_secs(5)).await;

        // Unknown vhost.
        let options = Options { vhost: "nope".into(), ..Options::default() };
        let mut client = RawClient::connect(&addr).await;
        client.send_protocol_header().await;
        client.expect_start().await;
        client.send_start_ok(&options).await;
        client.expect_tune_and_reply(&options).await;
        client.send_open("nope").await;
        client.expect_connection_close_exact(530, "NOT_ALLOWED - vhost nope not found").await;
        bystander.finish().await;
    });
}
