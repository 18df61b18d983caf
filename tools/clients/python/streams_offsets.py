"""Stream queues through pika, as RabbitMQ has them: every x-stream-offset specification
(first, last, next, an offset, a timestamp, an interval), the
x-stream-offset header on each delivery, and RabbitMQ's answers to the stream
restrictions (non-durable declare, consume without prefetch, auto-ack consume,
basic.get, queue.purge)."""

import datetime
import time

import pika

from common import check, expect_equal, run, unique
from pika_util import connect, delete_at_failure


def publish(channel, queue, bodies):
    for body in bodies:
        channel.basic_publish(exchange="", routing_key=queue, body=body)


def read(url, queue, offset, count, timeout=3.0):
    """Consumes up to `count` messages from `offset` (None: no argument) and returns
    [(x-stream-offset, body)]. The prefetch is exactly `count` and nothing is acked, so
    that no message is left in pika's buffer at the close (pika would nack it, which
    RabbitMQ 3.10 refuses on streams)."""
    connection = connect(url)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=max(count, 1))
    arguments = {} if offset is None else {"x-stream-offset": offset}
    got = []

    def on_message(ch, method, properties, body):
        got.append(((properties.headers or {}).get("x-stream-offset"), body))

    channel.basic_consume(queue, on_message, arguments=arguments)
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    connection.close()
    return got[:count]


def expect_closed(url, action, code, text_start):
    connection = connect(url)
    channel = connection.channel()
    try:
        action(channel)
    except (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker) as closed:
        expect_equal(closed.reply_code, code, "reply code")
        check(closed.reply_text.startswith(text_start), f"reply text {closed.reply_text!r} starts with {text_start!r}")
        return
    finally:
        if connection.is_open:
            connection.close()
    raise AssertionError(f"expected {code} {text_start}")


def main(url):
    queue = unique("stream")
    delete_at_failure(url, queues=[queue])
    connection = connect(url)
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "stream"})
    channel.confirm_delivery()
    early = [f"early-{i}".encode() for i in range(50)]
    publish(channel, queue, early)
    # Everything so far is stamped before the next whole second; what follows after it.
    time.sleep(1.1 - (time.time() % 1.0))
    boundary = int(time.time())
    late = [f"late-{i}".encode() for i in range(50)]
    publish(channel, queue, late)
    everything = early + late

    got = read(url, queue, "first", 100)
    expect_equal([b for _, b in got], everything, "first: every message in order")
    expect_equal([o for o, _ in got], list(range(100)), "x-stream-offset headers")
    expect_equal(read(url, queue, "last", 1), [(99, late[-1])], "last: the last batch")
    expect_equal(read(url, queue, 70, 5), [(70 + i, everything[70 + i]) for i in range(5)], "an offset")
    ts = read_timestamp(url, queue, boundary)
    expect_equal(ts[0], (50, late[0]), "timestamp: first message at or after it")
    expect_equal(read(url, queue, "1h", 1), [(0, early[0])], "interval: everything within the hour")
    # next and an offset past the end only see what comes after they attach.
    for spec in ("next", None):
        reader = connect(url)
        rchannel = reader.channel()
        rchannel.basic_qos(prefetch_count=10)
        got = []
        arguments = {} if spec is None else {"x-stream-offset": spec}
        rchannel.basic_consume(queue, lambda ch, m, p, b: (got.append(((p.headers or {})["x-stream-offset"], b)), ch.basic_ack(m.delivery_tag)), arguments=arguments)
        reader.process_data_events(time_limit=0.3)
        check(got == [], f"{spec}: nothing old is delivered, got {got[:3]}")
        body = f"new-{spec}".encode()
        channel.basic_publish(exchange="", routing_key=queue, body=body)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            reader.process_data_events(time_limit=0.1)
        check(got and got[0][1] == body, f"{spec}: the new message arrives, got {got}")
        reader.close()

    expect_closed(url, lambda ch: ch.queue_declare(unique("nd"), durable=False, arguments={"x-queue-type": "stream"}),
                  406, "PRECONDITION_FAILED - invalid property 'non-durable'")
    expect_closed(url, lambda ch: (ch.basic_consume(queue, lambda *a: None), ch.connection.process_data_events(1)),
                  406, "PRECONDITION_FAILED - consumer prefetch count is not set")
    expect_closed(url, lambda ch: (ch.basic_qos(prefetch_count=1), ch.basic_consume(queue, lambda *a: None, auto_ack=True)),
                  540, "NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues")
    expect_closed(url, lambda ch: ch.basic_get(queue), 540, "NOT_IMPLEMENTED - basic.get not supported by stream queues")
    expect_closed(url, lambda ch: ch.queue_purge(queue), 540, "NOT_IMPLEMENTED - queue.purge not supported by stream queues")
    connection.channel().queue_delete(queue)
    connection.close()


def read_timestamp(url, queue, seconds):
    """Consumes one message from a timestamp offset (an AMQP 'T' field)."""
    stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc).replace(tzinfo=None)
    got = read(url, queue, stamp, 1)
    check(got, "timestamp: a message arrives")
    return got


if __name__ == "__main__":
    run("streams_offsets", main)
