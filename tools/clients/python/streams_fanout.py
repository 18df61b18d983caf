"""Fan-out: one stream read by 100 consumers on 100 connections at once; each gets every
message, in order, exactly once."""

import threading
import time

from common import check, expect_equal, run, unique
from pika_util import connect, delete_at_failure

CONSUMERS = 100
MESSAGES = 300


def main(url):
    stream = unique("fanout")
    delete_at_failure(url, queues=[stream])
    connection = connect(url)
    channel = connection.channel()
    channel.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
    channel.confirm_delivery()
    bodies = [f"f-{i}".encode() for i in range(MESSAGES)]
    for body in bodies:
        channel.basic_publish(exchange="", routing_key=stream, body=body)

    results = [None] * CONSUMERS
    errors = []

    def consume(index):
        try:
            reader = connect(url)
            rchannel = reader.channel()
            rchannel.basic_qos(prefetch_count=100)
            got = []

            def on_message(ch, method, properties, body):
                got.append((properties.headers["x-stream-offset"], body))
                ch.basic_ack(method.delivery_tag, multiple=False)

            rchannel.basic_consume(stream, on_message, arguments={"x-stream-offset": "first"})
            deadline = time.monotonic() + 20
            while len(got) < MESSAGES and time.monotonic() < deadline:
                reader.process_data_events(time_limit=0.05)
            reader.close()
            results[index] = got
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(f"consumer {index}: {error!r}")

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(CONSUMERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(25)
    check(not errors, "; ".join(errors[:3]))
    expected = list(enumerate(bodies))
    for index, got in enumerate(results):
        check(got is not None, f"consumer {index} did not finish")
        expect_equal(got, expected, f"consumer {index}: every message in order, once")
    channel.queue_delete(stream)
    connection.close()


if __name__ == "__main__":
    run("streams_fanout", main, deadline=35)
