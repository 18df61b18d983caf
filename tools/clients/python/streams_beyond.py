"""Stream features beyond RabbitMQ, through pika: negative offsets, offsets past the end
clamped to it, server-kept offsets for named consumers (the lowest unacknowledged offset,
so a consumer that left with unacked messages gets them again), zstd-compressed streams,
retention by size and by age, and 64 KiB and 16 MiB messages byte-exact."""

import os
import time

from common import check, expect_equal, run, unique
from pika_util import connect, delete_at_failure
from streams_offsets import read


def declare(channel, queue, **arguments):
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "stream", **arguments})


def publish(channel, queue, bodies):
    for body in bodies:
        channel.basic_publish(exchange="", routing_key=queue, body=body)


def consume_and_leave(url, queue, name_argument, tag, ack_count, prefetch=10):
    """Reads from the start, acks the first `ack_count`, leaves with the rest unacked."""
    connection = connect(url)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    got = []

    def on_message(ch, method, properties, body):
        got.append(properties.headers["x-stream-offset"])
        if len(got) <= ack_count:
            ch.basic_ack(method.delivery_tag)

    arguments = {"x-stream-offset": "first"}
    if name_argument:
        arguments["x-stream-consumer-name"] = name_argument
    channel.basic_consume(queue, on_message, arguments=arguments, consumer_tag=tag)
    deadline = time.monotonic() + 5
    while len(got) < ack_count + prefetch and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    # Leave with unacked messages in flight, as a consumer that crashed would.
    connection.close()
    return got


def resume(url, queue, name_argument, tag):
    connection = connect(url)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    got = []
    arguments = {"x-stream-consumer-name": name_argument} if name_argument else {}
    channel.basic_consume(queue, lambda ch, m, p, b: got.append(p.headers["x-stream-offset"]), arguments=arguments, consumer_tag=tag)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    connection.close()
    return got


def main(url):
    queue = unique("stream-beyond")
    sized = unique("stream-sized")
    aged = unique("stream-aged")
    packed = unique("stream-zstd")
    delete_at_failure(url, queues=[queue, sized, aged, packed])
    connection = connect(url)
    channel = connection.channel()
    channel.confirm_delivery()
    declare(channel, queue)
    bodies = [f"m-{i}".encode() for i in range(100)]
    publish(channel, queue, bodies)

    expect_equal(read(url, queue, -10, 10), [(90 + i, bodies[90 + i]) for i in range(10)], "negative offset")
    expect_equal(read(url, queue, 10_000, 1, timeout=0.5), [], "past the end: only new messages")

    for name, tag in (("reader-by-name", ""), (None, "reader-by-tag")):
        seen = consume_and_leave(url, queue, name, tag, ack_count=30)
        expect_equal(seen[:40], list(range(40)), f"{name or tag}: first read")
        time.sleep(0.2)
        expect_equal(resume(url, queue, name, tag), [30], f"{name or tag}: resumes at the lowest unacked offset")

    declare(channel, packed, **{"x-warren-compression": "zstd"})
    texts = [f'{{"sensor": "probe-{i % 7}", "reading": {i * 0.5}, "ok": true}}'.encode() * 4 for i in range(300)]
    publish(channel, packed, texts)
    expect_equal([b for _, b in read(url, packed, "first", 300)], texts, "zstd stream round trip")

    declare(channel, sized, **{"x-max-length-bytes": 20000, "x-stream-max-segment-size-bytes": 4096})
    publish(channel, sized, [bytes([i % 256]) * 400 for i in range(200)])
    first = read(url, sized, "first", 1)
    check(first and first[0][0] > 0, f"retention by size removed old segments: first is {first}")
    tail = read(url, sized, "first", 400)
    expect_equal(tail[-1][0], 199, "the newest message is kept")
    check(len(tail) * 400 <= 20000 + 2 * 4096, f"{len(tail)} messages kept under a 20000-byte limit")

    declare(channel, aged, **{"x-max-age": "1s", "x-stream-max-segment-size-bytes": 4096})
    publish(channel, aged, [b"a" * 300 for _ in range(100)])
    deadline = time.monotonic() + 8
    while True:
        first = read(url, aged, "first", 1)
        if first and first[0][0] > 0:
            break
        check(time.monotonic() < deadline, f"retention by age removed nothing within 8 s: first is {first}")
        time.sleep(0.5)

    big = unique("stream-big")
    declare(channel, big)
    blobs = [os.urandom(64 * 1024), os.urandom(16 * 1024 * 1024), os.urandom(64 * 1024)]
    publish(channel, big, blobs)
    got = read(url, big, "first", 3, timeout=15)
    expect_equal([len(b) for _, b in got], [len(b) for b in blobs], "64 KiB and 16 MiB message sizes")
    check([b for _, b in got] == blobs, "64 KiB and 16 MiB messages arrive byte-exact")

    for name in (queue, sized, aged, packed, big):
        channel.queue_delete(name)
    connection.close()


if __name__ == "__main__":
    run("streams_beyond", main, deadline=35)
