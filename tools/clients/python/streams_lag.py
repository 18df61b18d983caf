"""Creates a lagging stream consumer and holds it for a while, so that the broker's status
line reports its lag: 50 messages, a consumer named `lagging` that acknowledged the first
10 (offsets 10-19 in flight), so its committed offset is 10 and it trails by 40."""

import time

from common import expect_equal, run, unique
from pika_util import connect


def main(url):
    stream = unique("lag")
    connection = connect(url)
    channel = connection.channel()
    channel.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
    channel.confirm_delivery()
    for i in range(50):
        channel.basic_publish(exchange="", routing_key=stream, body=b"x" * 100)
    reader = connect(url)
    rchannel = reader.channel()
    rchannel.basic_qos(prefetch_count=10)
    got = []

    def on_message(ch, method, properties, body):
        got.append(properties.headers["x-stream-offset"])
        if len(got) <= 10:
            ch.basic_ack(method.delivery_tag)

    rchannel.basic_consume(stream, on_message, arguments={"x-stream-offset": "first", "x-stream-consumer-name": "lagging"})
    hold_until = time.monotonic() + 2.5
    while time.monotonic() < hold_until:
        reader.process_data_events(time_limit=0.05)
    expect_equal(len(got), 20, "deliveries within the prefetch")
    reader.close()
    channel.queue_delete(stream)
    connection.close()


if __name__ == "__main__":
    run("streams_lag", main)
