//! Stream queues with pika against Warren on disc (`fsync always`): every offset
//! specification and RabbitMQ's restrictions, the features beyond RabbitMQ (negative
//! offsets, server-kept offsets, zstd, retention by size and age), named offsets across a
//! broker restart, and a 100-consumer fan-out.

use crate::harness::clients::{run_python, run_python_with, warren_in, warren_with, AmqpBroker};

const DISK: [&str; 4] = ["--storage", "disk", "--fsync", "always"];

/// first, last, next, an offset, a timestamp and an interval; the x-stream-offset header;
/// 406/540 for non-durable declares, consumers without prefetch, auto-ack, get and purge.
#[test]
fn stream_offsets_and_restrictions_as_rabbitmq() {
    run_python(&warren_with(&DISK), "streams_offsets.py");
}

/// Negative offsets, offsets past the end, named consumers resuming at the lowest
/// unacknowledged offset (after leaving with unacked messages), zstd round trips, and
/// retention by size and by age.
#[test]
fn stream_features_beyond_rabbitmq() {
    run_python(&warren_with(&DISK), "streams_beyond.py");
}

/// A named consumer's stored offset and the stream's messages survive a restart.
#[test]
fn stream_named_offset_survives_a_broker_restart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data = temp.path().join("data");
    let broker = warren_in(&data, &DISK);
    run_python_with(&broker, "streams_restart.py", &[("WARREN_STREAM_PHASE", "before")]);
    broker.stop();
    let broker = warren_in(&data, &DISK);
    run_python_with(&broker, "streams_restart.py", &[("WARREN_STREAM_PHASE", "after")]);
}

/// 100 consumers on 100 connections read one stream at once, each in order and complete.
#[test]
fn stream_fan_out_to_100_consumers() {
    run_python(&warren_with(&DISK), "streams_fanout.py");
}

/// The status line reports a stream consumer's lag: committed offset 10 of 50 (it acked
/// 10, holds 10 unacked), so 40 messages behind, with bytes and age.
#[test]
fn stream_consumer_lag_is_reported_in_the_status_line() {
    let broker: AmqpBroker =
        warren_with(&["--storage", "disk", "--fsync", "never", "--status-interval", "300ms"]);
    run_python(&broker, "streams_lag.py");
    let lines = broker.log_lines();
    let lag = lines
        .iter()
        .find(|l| {
            l.contains("stream consumer lag")
                && l.contains("consumer=lagging")
                && l.contains("lag_messages=40")
        })
        .unwrap_or_else(|| panic!("no lag line for the consumer in {lines:#?}"));
    assert!(lag.contains("committed_offset=10"), "{lag}");
    assert!(lag.contains("head_offset=50"), "{lag}");
    assert!(!lag.contains("lag_bytes=0 "), "{lag}");
}
