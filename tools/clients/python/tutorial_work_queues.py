"""RabbitMQ tutorial 2, "Work Queues", as a self-checking program.

A durable task queue receives persistent messages; two workers, each with prefetch_count=1
and manual acks, share them. Checks:
- every task is done exactly once, and every delivery is persistent (delivery_mode 2);
- fair dispatch: the worker stuck on the one slow task is given no more tasks while it
  holds an unacknowledged one, so the other worker does (nearly) all the rest;
- redeclaring the durable queue as non-durable is refused (406 PRECONDITION_FAILED);
- a task delivered to a worker that dies before acking is redelivered, flagged so.
"""

import threading
import time

import pika

from common import WAIT, CheckFailed, check, expect_equal, run, unique
from pika_util import collect, connect, delete_at_failure, expect_channel_error

SLOW_SECONDS = 1.5
FAST_SECONDS = 0.02
TASKS = 10


class Worker(threading.Thread):
    def __init__(self, url, queue, name):
        super().__init__(daemon=True)
        self.url = url
        self.queue = queue
        self.name = name
        self.done = []
        self.modes = []
        self.ready = threading.Event()
        self.error = None
        self.connection = None
        self.channel = None

    def on_message(self, ch, method, properties, body):
        self.modes.append(properties.delivery_mode)
        # As in the tutorial, each dot in the task is work; here "slow" marks the long one.
        time.sleep(SLOW_SECONDS if body.startswith(b"slow") else FAST_SECONDS)
        self.done.append(body)
        ch.basic_ack(delivery_tag=method.delivery_tag)

    def run(self):
        try:
            self.connection = connect(self.url)
            self.channel = self.connection.channel()
            self.channel.queue_declare(queue=self.queue, durable=True)
            self.channel.basic_qos(prefetch_count=1)
            self.channel.basic_consume(queue=self.queue, on_message_callback=self.on_message)
            self.ready.set()
            self.channel.start_consuming()
            self.connection.close()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            self.error = error
            self.ready.set()

    def stop(self):
        self.connection.add_callback_threadsafe(self.channel.stop_consuming)
        self.join(WAIT)
        check(not self.is_alive(), f"{self.name} did not stop")
        if self.error is not None:
            raise CheckFailed(f"{self.name} failed: {self.error!r}")


def fair_dispatch(url, queue):
    producer = connect(url)
    channel = producer.channel()
    channel.queue_declare(queue=queue, durable=True)

    workers = [Worker(url, queue, "worker-1"), Worker(url, queue, "worker-2")]
    for worker in workers:
        worker.start()
    for worker in workers:
        check(worker.ready.wait(WAIT), f"{worker.name} did not start consuming")
        if worker.error is not None:
            raise CheckFailed(f"{worker.name} failed to start: {worker.error!r}")

    tasks = [b"slow task ....."] + [f"task {i} .".encode() for i in range(1, TASKS)]
    persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    for task in tasks:
        channel.basic_publish(exchange="", routing_key=queue, body=task, properties=persistent)

    deadline = time.monotonic() + 3 * WAIT
    while sum(len(w.done) for w in workers) < len(tasks) and time.monotonic() < deadline:
        time.sleep(0.05)
    for worker in workers:
        worker.stop()

    done = [task for w in workers for task in w.done]
    expect_equal(sorted(done), sorted(tasks), "tasks done (each exactly once)")
    for worker in workers:
        check(worker.done, f"{worker.name} got no task: {[w.done for w in workers]}")
        check(
            all(mode == 2 for mode in worker.modes),
            f"{worker.name} saw delivery modes {worker.modes}, expected persistent (2)",
        )
    slow = next(w for w in workers if tasks[0] in w.done)
    other = next(w for w in workers if w is not slow)
    # Without prefetch_count=1, round-robin would give the slow worker half of the tasks.
    check(
        len(slow.done) <= 2,
        f"unfair dispatch: the worker busy with the slow task got {len(slow.done)} tasks "
        f"({slow.done}), the other {len(other.done)}",
    )

    # The queue is durable: declaring it non-durable now is an inequivalent declaration.
    other_channel = producer.channel()
    expect_channel_error(
        "redeclaring a durable queue as non-durable",
        406,
        lambda: other_channel.queue_declare(queue=queue, durable=False),
    )
    producer.close()


def redelivery_after_crash(url, queue):
    producer = connect(url)
    channel = producer.channel()
    persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    channel.basic_publish(exchange="", routing_key=queue, body=b"survives a crash", properties=persistent)

    doomed = connect(url)
    doomed_channel = doomed.channel()
    doomed_channel.basic_qos(prefetch_count=1)
    got = collect(doomed_channel, queue, 1, auto_ack=False)
    expect_equal([body for _, _, body in got], [b"survives a crash"], "first delivery")
    check(not got[0][0].redelivered, "the first delivery is not flagged redelivered")
    # The worker dies without acking: closing its connection returns the task to the queue.
    doomed.close()

    got = collect(channel, queue, 1, auto_ack=False)
    expect_equal([body for _, _, body in got], [b"survives a crash"], "delivery after the crash")
    method, properties, _ = got[0]
    check(method.redelivered, "the task given back by a dead worker is flagged redelivered")
    expect_equal(properties.delivery_mode, 2, "delivery mode after redelivery")
    channel.basic_ack(delivery_tag=method.delivery_tag)
    declared = channel.queue_declare(queue=queue, durable=True, passive=True)
    expect_equal(declared.method.message_count, 0, "messages left after the ack")
    channel.queue_delete(queue=queue)
    producer.close()


def main(url):
    queue = unique("task_queue")
    delete_at_failure(url, queues=[queue])
    fair_dispatch(url, queue)
    redelivery_after_crash(url, queue)


if __name__ == "__main__":
    run("tutorial_work_queues", main)
