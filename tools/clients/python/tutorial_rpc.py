"""RabbitMQ tutorial 6, "RPC", as a self-checking program.

An RPC server consumes requests from a named request queue (prefetch_count=1, manual ack)
and answers fib(n) to each request's reply_to queue with the request's correlation_id. The
client declares an exclusive server-named callback queue, sends several requests at once,
each with its own correlation_id, and matches the answers to them. Checks that every answer
is right and carries the correlation_id of its request, and that a reply with a
correlation_id the client never used is ignored (as the tutorial's client does).
"""

import threading
import time
import uuid

import pika

from common import WAIT, CheckFailed, check, expect_equal, run, unique
from pika_util import connect, delete_at_failure

REQUESTS = [0, 1, 2, 10, 20, 30, 50, 90]


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class Server(threading.Thread):
    def __init__(self, url, queue):
        super().__init__(daemon=True)
        self.url = url
        self.queue = queue
        self.ready = threading.Event()
        self.error = None
        self.served = 0

    def on_request(self, ch, method, properties, body):
        n = int(body)
        ch.basic_publish(
            exchange="",
            routing_key=properties.reply_to,
            properties=pika.BasicProperties(correlation_id=properties.correlation_id),
            body=str(fib(n)).encode(),
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)
        self.served += 1

    def run(self):
        try:
            self.connection = connect(self.url)
            self.channel = self.connection.channel()
            self.channel.queue_declare(queue=self.queue)
            self.channel.basic_qos(prefetch_count=1)
            self.channel.basic_consume(queue=self.queue, on_message_callback=self.on_request)
            self.ready.set()
            self.channel.start_consuming()
            self.channel.queue_delete(queue=self.queue)
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


class FibonacciClient:
    def __init__(self, url, request_queue):
        self.request_queue = request_queue
        self.connection = connect(url)
        self.channel = self.connection.channel()
        declared = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = declared.method.queue
        check(self.callback_queue, "the callback queue has a server-chosen name")
        self.channel.basic_consume(queue=self.callback_queue, on_message_callback=self.on_response, auto_ack=True)
        self.pending = {}
        self.answers = {}
        self.strays = []

    def on_response(self, ch, method, properties, body):
        n = self.pending.pop(properties.correlation_id, None)
        if n is None:
            self.strays.append(properties.correlation_id)
            return
        self.answers[n] = int(body)

    def call_all(self, numbers):
        for n in numbers:
            correlation_id = str(uuid.uuid4())
            self.pending[correlation_id] = n
            self.channel.basic_publish(
                exchange="",
                routing_key=self.request_queue,
                properties=pika.BasicProperties(reply_to=self.callback_queue, correlation_id=correlation_id),
                body=str(n).encode(),
            )
        deadline = time.monotonic() + 2 * WAIT
        while self.pending and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.1)
        check(not self.pending, f"no answer for fib({sorted(self.pending.values())}) in time")
        return self.answers


def main(url):
    request_queue = unique("rpc_queue")
    delete_at_failure(url, queues=[request_queue])
    server = Server(url, request_queue)
    server.start()
    check(server.ready.wait(WAIT), "the RPC server did not start")
    if server.error is not None:
        raise CheckFailed(f"the RPC server failed to start: {server.error!r}")

    client = FibonacciClient(url, request_queue)
    # A reply nobody asked for, sent straight to the callback queue: the client drops it.
    client.channel.basic_publish(
        exchange="",
        routing_key=client.callback_queue,
        properties=pika.BasicProperties(correlation_id="not-a-request-of-ours"),
        body=b"-1",
    )
    answers = client.call_all(REQUESTS)
    expect_equal(answers, {n: fib(n) for n in REQUESTS}, "fib answers")
    expect_equal(client.strays, ["not-a-request-of-ours"], "replies without a matching correlation_id")
    # A second round on the same callback queue.
    answers = client.call_all([7, 12])
    expect_equal(answers, {**{n: fib(n) for n in REQUESTS}, 7: 13, 12: 144}, "second round of answers")
    client.connection.close()
    server.stop()
    expect_equal(server.served, len(REQUESTS) + 2, "requests served")


if __name__ == "__main__":
    run("tutorial_rpc", main)
