"""kombu (py-amqp transport) round trip: a Producer publishes JSON payloads to a direct
Exchange, declaring the bound Queue on the way; a Consumer with a callback that acks reads
them back. Checks payloads, order, the content type, headers and delivery info, and that
the acked messages are gone (the queue reports none and basic.get finds none).
"""

import socket

from kombu import Connection, Consumer, Exchange, Producer, Queue

from common import WAIT, CheckFailed, at_failure, check, expect_equal, run, unique

PAYLOADS = [
    {"n": 0, "text": "hello"},
    {"n": 1, "text": "unicode: żółw 🐢", "nested": {"list": [1, 2.5, None, True]}},
    {"n": 2, "text": "x" * 10000},
    {"n": 3, "text": ""},
]


def drain(connection, received, count):
    while len(received) < count:
        try:
            connection.drain_events(timeout=WAIT)
        except socket.timeout:
            raise CheckFailed(f"only {len(received)} of {count} messages arrived within {WAIT} s") from None


def main(url):
    exchange = Exchange(unique("kombu-exchange"), type="direct", durable=False)
    queue = Queue(unique("kombu-queue"), exchange=exchange, routing_key="tasks", durable=False)

    def cleanup():
        with Connection(url, connect_timeout=WAIT) as connection:
            queue(connection.channel()).delete()
            exchange(connection.channel()).delete()

    at_failure(cleanup)

    with Connection(url, connect_timeout=WAIT, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel())
        for i, payload in enumerate(PAYLOADS):
            producer.publish(
                payload,
                exchange=exchange,
                routing_key="tasks",
                serializer="json",
                headers={"sequence": i},
                declare=[queue],
                retry=False,
            )

    received = []

    def on_message(body, message):
        received.append((body, message.content_type, message.headers, message.delivery_info))
        message.ack()

    with Connection(url, connect_timeout=WAIT) as connection:
        channel = connection.channel()
        with Consumer(channel, queues=[queue], callbacks=[on_message], accept=["json"]):
            drain(connection, received, len(PAYLOADS))
        expect_equal([body for body, _, _, _ in received], PAYLOADS, "payloads")
        for i, (_, content_type, headers, delivery_info) in enumerate(received):
            expect_equal(content_type, "application/json", f"content type of message {i}")
            expect_equal(headers.get("sequence"), i, f"header of message {i}")
            expect_equal(delivery_info.get("routing_key"), "tasks", f"routing key of message {i}")
            expect_equal(delivery_info.get("exchange"), exchange.name, f"exchange of message {i}")

        # Everything was acked: the queue is empty now.
        bound = queue(channel)
        name, message_count, _ = bound.queue_declare(passive=True)
        expect_equal(name, queue.name, "queue name")
        expect_equal(message_count, 0, "messages left in the queue")
        check(bound.get() is None, "basic.get on the drained queue returns nothing")

        bound.delete()
        exchange(channel).delete()


if __name__ == "__main__":
    run("kombu_round_trip", main)
