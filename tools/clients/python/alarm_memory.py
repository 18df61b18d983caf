"""Resource alarm, seen by pika: a publisher fills a queue until the broker's memory alarm
(set low by the test) sends connection.blocked; deleting the queue frees the memory and
the broker sends connection.unblocked; publishing works again afterwards."""

import time

import pika

from common import check, run, unique
from pika_util import connect


def connect_patient(url):
    # The publisher stays blocked while the other connection frees memory: no client-side
    # timeout on being blocked.
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.blocked_connection_timeout = None
    return pika.BlockingConnection(params)

MESSAGE = b"m" * 65536
PUBLISH_LIMIT_BYTES = 512 * 1024 * 1024
# Messages the publisher may send beyond what the queue holds.
AHEAD_MAX = 8


def main(url):
    queue = unique("alarm")
    publisher = connect_patient(url)
    events = []
    publisher.add_on_connection_blocked_callback(lambda conn, frame: events.append("blocked"))
    publisher.add_on_connection_unblocked_callback(lambda conn, frame: events.append("unblocked"))
    channel = publisher.channel()
    channel.queue_declare(queue=queue)
    # A connection that does not publish, which watches the queue fill.
    observer = connect(url)
    watching = observer.channel()
    published = 0
    started = time.monotonic()
    while "blocked" not in events:
        if time.monotonic() - started > 20:
            raise AssertionError(f"no connection.blocked after {published / 1e6:.0f} MB published in 20 s")
        check(published < PUBLISH_LIMIT_BYTES, "no connection.blocked after 512 MiB")
        channel.basic_publish(exchange="", routing_key=queue, body=MESSAGE)
        published += len(MESSAGE)
        publisher.process_data_events(time_limit=0)
        count = published // len(MESSAGE)
        if count % AHEAD_MAX == 0:
            # The broker stops reading a blocked publisher's socket, and pika's publish
            # waits for room in it without dispatching connection.blocked: keep the
            # publisher within a few messages of what the broker has taken, so that it hears
            # of the block before its socket fills.
            deadline = time.monotonic() + 2
            while "blocked" not in events and time.monotonic() < deadline:
                ready = watching.queue_declare(queue=queue, passive=True).method.message_count
                if ready >= count - AHEAD_MAX:
                    break
                publisher.process_data_events(time_limit=0.05)
    observer.close()
    # Another connection that does not publish is not blocked: it deletes the queue.
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
    run("alarm_memory", main, deadline=55)
