//! amqplib (Node.js), unmodified, against the broker. Each test runs one script from
//! tools/clients/node; the script exits non-zero with a message when a check fails.

use crate::harness::clients::{amqp_url, run_node};

/// A confirm channel publishes 200 messages (one of 300 kB) and waits for every confirm; a
/// consumer with prefetch 10 and manual acks gets them all once, in order, with their
/// bodies and properties; the queue is empty afterwards.
#[test]
fn amqplib_confirm_channel_round_trip() {
    run_node(&amqp_url(), "confirm_round_trip.js");
}
