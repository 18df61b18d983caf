"""A named stream consumer's offset survives a broker restart. Run twice against the same
broker data: `before` publishes 50 messages to a durable stream and consumes the first
40 with the name `restart-reader`, acknowledging 30; `after` (once the broker has been
restarted) checks that every message is still there and that the named consumer resumes
at offset 30, the lowest one it had not acknowledged."""

import os
import sys
import time

from common import check, expect_equal, run
from pika_util import connect
from streams_offsets import read

STREAM = "warren-test.stream-restart"
NAME = "restart-reader"


def before(url):
    connection = connect(url)
    channel = connection.channel()
    channel.queue_declare(STREAM, durable=True, arguments={"x-queue-type": "stream"})
    channel.confirm_delivery()
    for i in range(50):
        channel.basic_publish(exchange="", routing_key=STREAM, body=f"r-{i}".encode())
    reader = connect(url)
    rchannel = reader.channel()
    rchannel.basic_qos(prefetch_count=10)
    got = []

    def on_message(ch, method, properties, body):
        got.append(properties.headers["x-stream-offset"])
        if len(got) <= 30:
            ch.basic_ack(method.delivery_tag)

    rchannel.basic_consume(STREAM, on_message, arguments={"x-stream-offset": "first", "x-stream-consumer-name": NAME})
    deadline = time.monotonic() + 5
    while len(got) < 40 and time.monotonic() < deadline:
        reader.process_data_events(time_limit=0.05)
    expect_equal(got[:40], list(range(40)), "first read")
    reader.close()
    connection.close()


def after(url):
    expect_equal([o for o, _ in read(url, STREAM, "first", 50)], list(range(50)), "every message after the restart")
    connection = connect(url)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    got = []
    channel.basic_consume(STREAM, lambda ch, m, p, b: got.append(p.headers["x-stream-offset"]), arguments={"x-stream-consumer-name": NAME})
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    check(got, "the named consumer gets a message")
    expect_equal(got[0], 30, "resumes at the lowest unacknowledged offset")
    connection.close()


if __name__ == "__main__":
    phase = os.environ.get("WARREN_STREAM_PHASE", "before")
    run(f"streams_restart ({phase})", before if phase == "before" else after)
