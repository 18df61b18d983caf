"""Publisher confirms with pika's BlockingChannel.confirm_delivery().

Checks:
- a batch of routable messages is confirmed (basic_publish returns without raising);
- a mandatory publish that no binding routes raises UnroutableError, carrying the returned
  message (basic.return 312 NO_ROUTE, with its exchange, routing key and body);
- the same unroutable publish without mandatory is confirmed and dropped silently;
- a mandatory publish through the default exchange to a queue that doesn't exist is
  returned too;
- publishing to an exchange that doesn't exist closes the channel with 404 NOT_FOUND;
- exactly the routed messages, in order, are in the queue afterwards.
"""

import pika

from common import CheckFailed, check, expect_equal, run, unique
from pika_util import collect, connect, delete_at_failure, expect_channel_error

BATCH = 50


def expect_unroutable(what, action, exchange, routing_key, body):
    try:
        action()
    except pika.exceptions.UnroutableError as error:
        expect_equal(len(error.messages), 1, f"{what}: returned messages")
        returned = error.messages[0]
        expect_equal(returned.method.reply_code, 312, f"{what}: basic.return reply code")
        expect_equal(returned.method.exchange, exchange, f"{what}: basic.return exchange")
        expect_equal(returned.method.routing_key, routing_key, f"{what}: basic.return routing key")
        expect_equal(returned.body, body, f"{what}: returned body")
        return
    raise CheckFailed(f"{what}: expected UnroutableError, but the publish was confirmed")


def main(url):
    exchange = unique("confirms")
    queue = unique("confirmed")
    delete_at_failure(url, queues=[queue], exchanges=[exchange])
    connection = connect(url)
    channel = connection.channel()
    channel.exchange_declare(exchange=exchange, exchange_type="direct")
    channel.queue_declare(queue=queue)
    channel.queue_bind(exchange=exchange, queue=queue, routing_key="routed")
    channel.confirm_delivery()

    expected = []
    persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="text/plain")
    for i in range(BATCH):
        body = f"confirmed {i}".encode()
        channel.basic_publish(exchange, "routed", body, properties=persistent, mandatory=True)
        expected.append(body)

    expect_unroutable(
        "mandatory publish to an unbound key",
        lambda: channel.basic_publish(exchange, "nowhere", b"lost", mandatory=True),
        exchange,
        "nowhere",
        b"lost",
    )
    # Non-mandatory: confirmed (the broker has dealt with it) and dropped.
    channel.basic_publish(exchange, "nowhere", b"dropped quietly")
    # The channel is still usable after a return.
    channel.basic_publish(exchange, "routed", b"after the return", properties=persistent, mandatory=True)
    expected.append(b"after the return")

    missing_queue = unique("no-such-queue")
    expect_unroutable(
        "mandatory publish through the default exchange to a missing queue",
        lambda: channel.basic_publish("", missing_queue, b"to nobody", mandatory=True),
        "",
        missing_queue,
        b"to nobody",
    )

    doomed = connection.channel()
    doomed.confirm_delivery()
    expect_channel_error(
        "publishing to an exchange that doesn't exist",
        404,
        lambda: doomed.basic_publish(unique("no-such-exchange"), "routed", b"x"),
    )

    declared = channel.queue_declare(queue=queue, passive=True)
    expect_equal(declared.method.message_count, len(expected), "messages in the queue")
    got = collect(channel, queue, len(expected))
    expect_equal([body for _, _, body in got], expected, "bodies in the queue")
    for method, properties, _ in got:
        check(properties.delivery_mode == 2, f"delivery {method.delivery_tag} is persistent")
        expect_equal(properties.content_type, "text/plain", "content type")

    channel.queue_delete(queue=queue)
    channel.exchange_delete(exchange=exchange)
    connection.close()


if __name__ == "__main__":
    run("publisher_confirms", main)
