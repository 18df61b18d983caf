"""A publisher blocked by a resource alarm is not dropped for missed heartbeats: the broker
does not read a blocked connection, so it does not expect the client's heartbeats meanwhile
(RabbitMQ pauses its heartbeat monitor). With heartbeat=2, the publisher fills a queue until
the memory alarm (set low by the test) sends connection.blocked, then stays blocked for
three heartbeat intervals and must still be open. Deleting the queue from another connection
clears the alarm; the publisher gets connection.unblocked and publishes again with a
confirm, so reading resumed with a fresh deadline."""

import time

import pika

from common import check, run, unique
from pika_util import connect

HEARTBEAT_S = 2
BLOCKED_S = 3 * HEARTBEAT_S
MESSAGE = b"m" * 65536
PUBLISH_LIMIT_BYTES = 512 * 1024 * 1024


def connect_publisher(url):
    # No client-side timeout on being blocked: only the broker could end this connection.
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.heartbeat = HEARTBEAT_S
    params.blocked_connection_timeout = None
    return pika.BlockingConnection(params)


def fill_until_blocked(publisher, channel, queue, events):
    published = 0
    started = time.monotonic()
    while "blocked" not in events:
        check(time.monotonic() - started < 20, f"no connection.blocked after {published / 1e6:.0f} MB in 20 s")
        check(published < PUBLISH_LIMIT_BYTES, "no connection.blocked after 512 MiB")
        channel.basic_publish(exchange="", routing_key=queue, body=MESSAGE)
        published += len(MESSAGE)
        publisher.process_data_events(time_limit=0)


def main(url):
    queue = unique("alarm-heartbeat")
    publisher = connect_publisher(url)
    events = []
    publisher.add_on_connection_blocked_callback(lambda conn, frame: events.append("blocked"))
    publisher.add_on_connection_unblocked_callback(lambda conn, frame: events.append("unblocked"))
    channel = publisher.channel()
    channel.queue_declare(queue=queue)
    fill_until_blocked(publisher, channel, queue, events)
    blocked_at = time.monotonic()
    while time.monotonic() - blocked_at < BLOCKED_S:
        try:
            publisher.process_data_events(time_limit=0.2)
        except pika.exceptions.AMQPConnectionError as error:
            waited = time.monotonic() - blocked_at
            raise AssertionError(f"blocked publisher dropped after {waited:.1f} s (heartbeat {HEARTBEAT_S} s): {error!r}")
        check(publisher.is_open, "the blocked publisher's connection closed")
    check("unblocked" not in events, "the alarm cleared by itself: the test's memory limit is too high")
    other = connect(url)
    other.channel().queue_delete(queue=queue)
    other.close()
    deadline = time.monotonic() + 20
    while "unblocked" not in events:
        check(time.monotonic() < deadline, "no connection.unblocked within 20 s of freeing the memory")
        publisher.process_data_events(time_limit=0.2)
    channel.confirm_delivery()
    channel.queue_declare(queue=queue)
    channel.basic_publish(exchange="", routing_key=queue, body=b"after", mandatory=True)
    channel.queue_delete(queue=queue)
    publisher.close()


if __name__ == "__main__":
    run("alarm_heartbeat", main, deadline=55)
