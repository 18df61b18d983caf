//! pika and kombu, unmodified, against the broker: the six RabbitMQ tutorials as
//! self-checking programs, RPC over direct reply-to, publisher confirms, and a kombu round
//! trip. Each test runs one script from tools/clients/python (see its docstring for exactly
//! what it checks); the script exits non-zero with a message when a check fails.

use crate::harness::clients::{amqp_url, run_python};

/// Tutorial 1: send to a named queue through the default exchange, consume it back.
#[test]
fn pika_tutorial_hello_world() {
    run_python(&amqp_url(), "tutorial_hello_world.py");
}

/// Tutorial 2: durable queue, persistent messages, prefetch_count=1, manual acks; two
/// workers share the tasks fairly; an unacked task is redelivered when its worker dies.
#[test]
fn pika_tutorial_work_queues() {
    run_python(&amqp_url(), "tutorial_work_queues.py");
}

/// Tutorial 3: fanout exchange; exclusive server-named queues; every subscriber gets every
/// message; an exclusive queue goes away with its connection.
#[test]
fn pika_tutorial_publish_subscribe() {
    run_python(&amqp_url(), "tutorial_publish_subscribe.py");
}

/// Tutorial 4: direct exchange keyed by severity; each consumer gets exactly its keys.
#[test]
fn pika_tutorial_routing() {
    run_python(&amqp_url(), "tutorial_routing.py");
}

/// Tutorial 5: topic exchange with "*.orange.*", "*.*.rabbit", "lazy.#", "#" and an exact
/// key; each queue gets exactly the matching set, once.
#[test]
fn pika_tutorial_topics() {
    run_python(&amqp_url(), "tutorial_topics.py");
}

/// Tutorial 6: RPC with a request queue, an exclusive callback queue, reply_to and
/// correlation_id; fib(n) answers are right.
#[test]
fn pika_tutorial_rpc() {
    run_python(&amqp_url(), "tutorial_rpc.py");
}

/// RPC over the amq.rabbitmq.reply-to pseudo-queue (direct reply-to).
#[test]
fn pika_rpc_direct_reply_to() {
    run_python(&amqp_url(), "rpc_direct_reply_to.py");
}

/// confirm_delivery: routable publishes are confirmed; a mandatory unroutable publish
/// raises UnroutableError (basic.return 312); a missing exchange closes the channel (404).
#[test]
fn pika_publisher_confirms_and_unroutable_mandatory() {
    run_python(&amqp_url(), "publisher_confirms.py");
}

/// kombu: Producer.publish with the JSON serializer, Consumer with an acking callback.
#[test]
fn kombu_json_round_trip() {
    run_python(&amqp_url(), "kombu_round_trip.py");
}

/// Memory alarm: above `--memory-limit` a publishing connection gets connection.blocked
/// (and is no longer read); once memory is freed it gets connection.unblocked.
#[test]
fn pika_connection_blocked_and_unblocked_by_memory_alarm() {
    let broker = crate::harness::clients::warren_with(&[
        "--storage",
        "memory",
        "--segment-bytes",
        "1048576",
        "--memory-limit",
        "40000000",
    ]);
    run_python(&broker, "alarm_memory.py");
}
