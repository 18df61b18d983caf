//! lapin: what a channel sends a queue is applied in the order sent, and messages a queue
//! dead-letters together reach the dead-letter queue in the order they had in the source:
//! nack and reject (single and multiple), `x-message-ttl` expiry, `x-max-length` drop-head,
//! and a stream of acks and rejects fast enough to fill a queue's command channel. Queues
//! dead-lettering into themselves or into each other, more at once than a dead-letter
//! channel holds, must not hang. Each test starts its own Warren (`--storage memory`), or
//! uses `WARREN_TEST_AMQP_URL` (RabbitMQ).

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    BasicRejectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

use crate::harness::lapin_client::*;
use crate::harness::run;

/// A source queue dead-lettering (through the default exchange) into a fresh dead-letter
/// queue, with the extra `args`; returns (source, dead-letter queue).
async fn source_and_dlq(channel: &Channel, extra: Vec<(&str, lapin::types::AMQPValue)>) -> (String, String) {
    let dlq = unique("dlq");
    declare(channel, &dlq, FieldTable::default()).await;
    let src = unique("src");
    let mut args = vec![("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s(&dlq))];
    args.extend(extra);
    declare(channel, &src, table(args)).await;
    (src, dlq)
}

/// Publishes `n0`..`n{count-1}` to `queue` and waits for every confirm (the channel is in
/// confirm mode); the publishes are all sent before the first confirm is awaited.
async fn publish_numbered(channel: &Channel, queue: &str, count: usize) {
    let mut confirms = Vec::with_capacity(count);
    for i in 0..count {
        let body = format!("n{i}");
        let confirm = within(
            "basic.publish",
            channel.basic_publish(
                "",
                queue,
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            ),
        )
        .await
        .expect("basic.publish");
        confirms.push(confirm);
    }
    for confirm in confirms {
        within("publish confirm", confirm).await.expect("confirm");
    }
}

fn numbered(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|i| format!("n{i}")).collect()
}

/// Waits until `queue` holds `count` ready messages, then drains it.
async fn drain_when(channel: &Channel, queue: &str, count: u32) -> Vec<String> {
    within(&format!("{count} messages in {queue}"), async {
        while crate::harness::lapin_client::count(channel, queue).await < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    drain(channel, queue).await
}

#[test]
fn nack_multiple_of_gets_dead_letters_in_source_order() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let (src, dlq) = source_and_dlq(&ch, Vec::new()).await;
        publish_numbered(&ch, &src, 3).await;
        let mut last = 0;
        for _ in 0..3 {
            last = get(&ch, &src, false).await.expect("message").delivery.delivery_tag;
        }
        ch.basic_nack(last, BasicNackOptions { multiple: true, requeue: false }).await.expect("nack");
        assert_eq!(drain_when(&ch, &dlq, 3).await, numbered(0..3));
    });
}

#[test]
fn nack_multiple_of_many_dead_letters_in_source_order() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let (src, dlq) = source_and_dlq(&ch, Vec::new()).await;
        publish_numbered(&ch, &src, 50).await;
        let mut consumer = consume(&ch, &src, false).await;
        let mut last = 0;
        for _ in 0..50 {
            last = next(&mut consumer).await.delivery_tag;
        }
        ch.basic_nack(last, BasicNackOptions { multiple: true, requeue: false }).await.expect("nack");
        assert_eq!(drain_when(&ch, &dlq, 50).await, numbered(0..50));
    });
}

#[test]
fn rejects_one_by_one_dead_letter_in_source_order() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let (src, dlq) = source_and_dlq(&ch, Vec::new()).await;
        publish_numbered(&ch, &src, 20).await;
        let mut tags = Vec::new();
        for _ in 0..20 {
            tags.push(get(&ch, &src, false).await.expect("message").delivery.delivery_tag);
        }
        for tag in tags {
            ch.basic_reject(tag, BasicRejectOptions { requeue: false }).await.expect("reject");
        }
        assert_eq!(drain_when(&ch, &dlq, 20).await, numbered(0..20));
    });
}

#[test]
fn ttl_expiry_of_a_batch_dead_letters_in_source_order() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let (src, dlq) = source_and_dlq(&ch, vec![("x-message-ttl", int(200))]).await;
        publish_numbered(&ch, &src, 20).await;
        assert_eq!(drain_when(&ch, &dlq, 20).await, numbered(0..20));
    });
}

#[test]
fn max_length_drop_head_dead_letters_in_source_order() {
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let (src, dlq) = source_and_dlq(&ch, vec![("x-max-length", int(2))]).await;
        publish_numbered(&ch, &src, 40).await;
        assert_eq!(drain_when(&ch, &dlq, 38).await, numbered(0..38));
        assert_eq!(drain(&ch, &src).await, numbered(38..40));
    });
}

/// Thousands of acks, rejects and nacks, one per delivery and sent back to back, outrun
/// the queue's task and fill its command channel: still the queue applies them in order,
/// so the dead-lettered ones arrive in order and nothing is left unacked.
#[test]
fn interleaved_acks_and_rejects_are_applied_in_order() {
    const MESSAGES: usize = 6000;
    run(async {
        let server = Server::start();
        let (_conn, ch) = server.open_confirming().await;
        let (src, dlq) = source_and_dlq(&ch, Vec::new()).await;
        publish_numbered(&ch, &src, MESSAGES).await;
        let worker = channel(&_conn).await;
        let mut consumer = within(
            "basic.consume",
            worker.basic_consume(&src, "stress", BasicConsumeOptions::default(), FieldTable::default()),
        )
        .await
        .expect("basic.consume");
        let mut dead = Vec::new();
        for i in 0..MESSAGES {
            let delivery =
                within("delivery", consumer.next()).await.expect("consumer ended").expect("delivery");
            assert_eq!(body(&delivery), format!("n{i}"));
            let tag = delivery.delivery_tag;
            match i % 3 {
                0 => worker.basic_ack(tag, BasicAckOptions::default()).await.expect("ack"),
                1 => worker.basic_reject(tag, BasicRejectOptions { requeue: false }).await.expect("reject"),
                _ => worker
                    .basic_nack(tag, BasicNackOptions { multiple: false, requeue: false })
                    .await
                    .expect("nack"),
            }
            if i % 3 != 0 {
                dead.push(format!("n{i}"));
            }
        }
        let expected = dead.len() as u32;
        assert_eq!(drain_when(&ch, &dlq, expected).await, dead);
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let state = within("queue.declare", ch.queue_declare(&src, passive, FieldTable::default()))
            .await
            .expect("passive declare");
        assert_eq!(state.message_count(), 0, "every message was settled");
        within("channel.close", worker.close(200, "bye")).await.expect("close");
        // Nothing was left unacked to requeue on close.
        assert_eq!(drain(&ch, &src).await, Vec::<String>::new());
    });
}

/// Consumes `count` deliveries from `queue` on `channel` and nacks them all at once
/// (multiple, no requeue); returns their bodies.
async fn take_and_nack_all(channel: &Channel, queue: &str, tag: &str, count: usize) -> Vec<String> {
    let mut consumer = within(
        "basic.consume",
        channel.basic_consume(queue, tag, BasicConsumeOptions::default(), FieldTable::default()),
    )
    .await
    .expect("basic.consume");
    let mut bodies = Vec::with_capacity(count);
    let mut last = 0;
    for _ in 0..count {
        let delivery = within("delivery", consumer.next()).await.expect("consumer ended").expect("delivery");
        bodies.push(body(&delivery));
        last = delivery.delivery_tag;
    }
    within("basic.cancel", channel.basic_cancel(tag, BasicCancelOptions::default()))
        .await
        .expect("basic.cancel");
    channel.basic_nack(last, BasicNackOptions { multiple: true, requeue: false }).await.expect("nack");
    bodies
}

/// A queue that dead-letters into itself, more dead messages at once than its dead-letter
/// channel holds: they come back to its tail, in order, and nothing hangs.
#[test]
fn a_queue_dead_lettering_into_itself_keeps_order_and_does_not_hang() {
    const MESSAGES: usize = 3000;
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("self");
        declare(
            &ch,
            &q,
            table(vec![("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s(&q))]),
        )
        .await;
        publish_numbered(&ch, &q, MESSAGES).await;
        let worker = channel(&conn).await;
        assert_eq!(take_and_nack_all(&worker, &q, "first", MESSAGES).await, numbered(0..MESSAGES));
        assert_eq!(drain_when(&ch, &q, MESSAGES as u32).await, numbered(0..MESSAGES));
    });
}

/// Two queues dead-lettering into each other, both nacking more than a dead-letter channel
/// holds at the same time: each receives the other's messages in order, and nothing hangs.
#[test]
fn two_queues_dead_lettering_into_each_other_do_not_deadlock() {
    const MESSAGES: usize = 3000;
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let (a, b) = (unique("a"), unique("b"));
        declare(
            &ch,
            &a,
            table(vec![("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s(&b))]),
        )
        .await;
        declare(
            &ch,
            &b,
            table(vec![("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s(&a))]),
        )
        .await;
        publish_numbered(&ch, &a, MESSAGES).await;
        publish_numbered(&ch, &b, MESSAGES).await;
        let (worker_a, worker_b) = (channel(&conn).await, channel(&conn).await);
        let (from_a, from_b) = tokio::join!(
            take_and_nack_all(&worker_a, &a, "ca", MESSAGES),
            take_and_nack_all(&worker_b, &b, "cb", MESSAGES),
        );
        assert_eq!(from_a, numbered(0..MESSAGES));
        assert_eq!(from_b, numbered(0..MESSAGES));
        assert_eq!(drain_when(&ch, &a, MESSAGES as u32).await, numbered(0..MESSAGES));
        assert_eq!(drain_when(&ch, &b, MESSAGES as u32).await, numbered(0..MESSAGES));
    });
}

/// A consumer cancelled while deliveries are on their way to its connection: those not
/// written to the client go back to the queue (in order, ahead of later commands), so the
/// client's deliveries and what the queue still holds make up every message.
#[test]
fn deliveries_after_a_cancel_are_requeued_in_order() {
    const MESSAGES: usize = 5000;
    run(async {
        let server = Server::start();
        let (conn, ch) = server.open_confirming().await;
        let q = unique("cancelled");
        declare(&ch, &q, FieldTable::default()).await;
        publish_numbered(&ch, &q, MESSAGES).await;
        let worker = channel(&conn).await;
        let mut consumer = within(
            "basic.consume",
            worker.basic_consume(&q, "early", BasicConsumeOptions::default(), FieldTable::default()),
        )
        .await
        .expect("basic.consume");
        within("basic.cancel", worker.basic_cancel("early", BasicCancelOptions::default()))
            .await
            .expect("basic.cancel");
        let mut received = Vec::new();
        let mut last = 0;
        while let Some(delivery) = within("deliveries until the stream ends", consumer.next()).await {
            let delivery = delivery.expect("delivery");
            received.push(body(&delivery));
            last = delivery.delivery_tag;
        }
        if last > 0 {
            worker.basic_ack(last, BasicAckOptions { multiple: true }).await.expect("ack");
        }
        assert_eq!(received, numbered(0..received.len()));
        let rest = drain_when(&ch, &q, (MESSAGES - received.len()) as u32).await;
        assert_eq!(rest, numbered(received.len()..MESSAGES));
    });
}
