"""RPC with direct reply-to: the client consumes from the pseudo-queue
"amq.rabbitmq.reply-to" in no-ack mode and publishes its requests, on that same channel,
with reply_to "amq.rabbitmq.reply-to"; the broker replaces that reply_to with a name of the
form "amq.rabbitmq.reply-to.<opaque>" that routes (through the default exchange) straight
back to this channel's consumer, with no queue declared.

Checks that the server sees a rewritten reply_to, that every answer comes back with its
correlation_id, and that the answers are right.
"""

import threading
import time
import uuid

import pika

from common import WAIT, CheckFailed, check, expect_equal, run, unique
from pika_util import connect, delete_at_failure

REPLY_TO = "amq.rabbitmq.reply-to"
REQUESTS = [3, 5, 8, 13, 21]


def square(n):
    return n * n


class Server(threading.Thread):
    def __init__(self, url, queue):
        super().__init__(daemon=True)
        self.url = url
        self.queue = queue
        self.ready = threading.Event()
        self.error = None
        self.reply_tos = []

    def on_request(self, ch, method, properties, body):
        self.reply_tos.append(properties.reply_to)
        ch.basic_publish(
            exchange="",
            routing_key=properties.reply_to,
            properties=pika.BasicProperties(correlation_id=properties.correlation_id),
            body=str(square(int(body))).encode(),
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)

    def run(self):
        try:
            self.connection = connect(self.url)
            self.channel = self.connection.channel()
            self.channel.queue_declare(queue=self.queue, auto_delete=True)
            self.channel.basic_consume(queue=self.queue, on_message_callback=self.on_request)
            self.ready.set()
            self.channel.start_consuming()
            self.connection.close()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            self.error = error
            self.ready.set()

    def stop(self):
        self.connection.add_callback_threadsafe(self.channel.stop_consuming)
        self.join(WAIT)
        check(not self.is_alive(), "the RPC server did not stop")
        if self.error is not None:
            raise CheckFailed(f"the RPC server failed: {self.error!r}")


def main(url):
    request_queue = unique("rpc_direct")
    delete_at_failure(url, queues=[request_queue])
    server = Server(url, request_queue)
    server.start()
    check(server.ready.wait(WAIT), "the RPC server did not start")
    if server.error is not None:
        raise CheckFailed(f"the RPC server failed to start: {server.error!r}")

    connection = connect(url)
    channel = connection.channel()
    pending = {}
    answers = {}
    wrong = []

    def on_reply(ch, method, properties, body):
        n = pending.pop(properties.correlation_id, None)
        if n is None:
            wrong.append(properties.correlation_id)
        else:
            answers[n] = int(body)

    # Direct reply-to requires consuming in no-ack mode, before publishing.
    channel.basic_consume(queue=REPLY_TO, on_message_callback=on_reply, auto_ack=True)
    for n in REQUESTS:
        correlation_id = uuid.uuid4().hex
        pending[correlation_id] = n
        channel.basic_publish(
            exchange="",
            routing_key=request_queue,
            properties=pika.BasicProperties(reply_to=REPLY_TO, correlation_id=correlation_id),
            body=str(n).encode(),
        )
    deadline = time.monotonic() + 2 * WAIT
    while pending and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.1)

    check(not pending, f"no reply for {sorted(pending.values())} in time")
    expect_equal(wrong, [], "replies with an unknown correlation_id")
    expect_equal(answers, {n: square(n) for n in REQUESTS}, "answers")
    expect_equal(len(server.reply_tos), len(REQUESTS), "requests seen by the server")
    for reply_to in server.reply_tos:
        check(
            reply_to.startswith(REPLY_TO + ".") and len(reply_to) > len(REPLY_TO) + 1,
            f"the server saw reply_to {reply_to!r}, expected the broker to rewrite it to {REPLY_TO}.<id>",
        )
    connection.close()
    server.stop()


if __name__ == "__main__":
    run("rpc_direct_reply_to", main)
