"""RabbitMQ tutorial 1, "Hello World", as a self-checking program: one program sends a
message to a named queue through the default exchange, another consumes it."""

import pika

from common import WAIT, check, expect_equal, run, unique
from pika_util import connect, delete_at_failure


def send(url, queue, body):
    connection = connect(url)
    channel = connection.channel()
    channel.queue_declare(queue=queue)
    channel.basic_publish(exchange="", routing_key=queue, body=body)
    connection.close()


def receive(url, queue):
    connection = connect(url)
    channel = connection.channel()
    # Declaring again is harmless: the queue already exists with the same settings.
    declared = channel.queue_declare(queue=queue)
    expect_equal(declared.method.queue, queue, "declared queue name")
    received = []

    def on_message(ch, method, properties, body):
        received.append((method, body))
        ch.stop_consuming()

    channel.basic_consume(queue=queue, on_message_callback=on_message, auto_ack=True)
    connection.call_later(WAIT, channel.stop_consuming)
    channel.start_consuming()
    channel.queue_delete(queue=queue)
    connection.close()
    return received


def main(url):
    queue = unique("hello")
    delete_at_failure(url, queues=[queue])
    body = b"Hello World!"
    send(url, queue, body)
    received = receive(url, queue)
    check(received, "the receiver got no message")
    expect_equal(len(received), 1, "messages received")
    method, got = received[0]
    expect_equal(got, body, "body")
    expect_equal(method.routing_key, queue, "routing key")
    expect_equal(method.exchange, "", "exchange")
    check(not method.redelivered, "first delivery is not flagged redelivered")


if __name__ == "__main__":
    run("tutorial_hello_world", main)
