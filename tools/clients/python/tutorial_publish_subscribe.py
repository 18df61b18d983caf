"""RabbitMQ tutorial 3, "Publish/Subscribe", as a self-checking program.

A fanout exchange of logs; three subscribers each declare an exclusive, server-named queue
and bind it. Checks:
- a message published while no queue is bound goes nowhere;
- every subscriber gets every message, in publishing order, whatever the routing key;
- server-named queues get distinct, non-empty names;
- an exclusive queue is deleted when its connection closes.
"""

import pika

from common import check, expect_equal, run, unique
from pika_util import END, collect_until_end, connect, delete_at_failure, expect_channel_error

SUBSCRIBERS = 3


def main(url):
    exchange = unique("logs")
    delete_at_failure(url, exchanges=[exchange])
    publisher = connect(url)
    channel = publisher.channel()
    channel.exchange_declare(exchange=exchange, exchange_type="fanout")
    # Nobody listens yet: this one is dropped.
    channel.basic_publish(exchange=exchange, routing_key="", body=b"before anyone listened")

    subscribers = []
    for _ in range(SUBSCRIBERS):
        connection = connect(url)
        sub_channel = connection.channel()
        declared = sub_channel.queue_declare(queue="", exclusive=True)
        name = declared.method.queue
        check(name, "a server-named queue has a name")
        sub_channel.queue_bind(exchange=exchange, queue=name)
        subscribers.append((connection, sub_channel, name))
    names = [name for _, _, name in subscribers]
    expect_equal(len(set(names)), SUBSCRIBERS, f"distinct server-named queues in {names}")

    logs = [f"log line {i}".encode() for i in range(5)]
    for i, line in enumerate(logs):
        # A fanout exchange ignores the routing key.
        channel.basic_publish(exchange=exchange, routing_key=f"ignored.{i}", body=line)
    channel.basic_publish(exchange=exchange, routing_key="", body=END)

    for connection, sub_channel, name in subscribers:
        expect_equal(collect_until_end(sub_channel, name), logs, f"messages seen by subscriber {name}")

    # Closing a subscriber's connection deletes its exclusive queue.
    connection, _, name = subscribers.pop()
    connection.close()
    probe = publisher.channel()
    expect_channel_error(
        "a passive declare of an exclusive queue whose connection closed",
        404,
        lambda: probe.queue_declare(queue=name, passive=True),
    )

    for connection, _, _ in subscribers:
        connection.close()
    channel.exchange_delete(exchange=exchange)
    publisher.close()


if __name__ == "__main__":
    run("tutorial_publish_subscribe", main)
