"""pika helpers shared by the pika scripts: connections with their own timeouts and a
bounded way to read what a queue delivers."""

import pika

from common import WAIT, CheckFailed, at_failure

# Sent after the messages under test, on a key bound to every queue of the test: a queue
# delivers one publisher's messages in order, so once a consumer sees the marker it has
# seen everything routed to it before the marker.
END = b"end-of-test"


def connect(url):
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = WAIT
    params.stack_timeout = 2 * WAIT
    params.blocked_connection_timeout = 2 * WAIT
    return pika.BlockingConnection(params)


def collect(channel, queue, count, auto_ack=True, timeout=WAIT):
    """Consumes from `queue` until `count` messages arrived (or `timeout` seconds pass with
    nothing new), cancels the consumer and returns [(method, properties, body)]."""
    got = []
    for method, properties, body in channel.consume(queue, auto_ack=auto_ack, inactivity_timeout=timeout):
        if method is None:
            break
        got.append((method, properties, body))
        if len(got) == count:
            break
    channel.cancel()
    return got


def collect_until_end(channel, queue, timeout=WAIT):
    """Consumes from `queue` up to the END marker and returns the bodies before it."""
    bodies = []
    for method, _properties, body in channel.consume(queue, auto_ack=True, inactivity_timeout=timeout):
        if method is None:
            channel.cancel()
            raise CheckFailed(f"queue {queue}: no end marker within {timeout} s; got {bodies!r} before it")
        if body == END:
            break
        bodies.append(body)
    channel.cancel()
    return bodies


def expect_channel_error(what, code, action):
    """Runs `action` and checks that the broker closes the channel with reply `code`."""
    try:
        action()
    except pika.exceptions.ChannelClosedByBroker as error:
        if error.reply_code != code:
            raise CheckFailed(f"{what}: expected channel close {code}, got {error.reply_code} {error.reply_text}")
        return
    raise CheckFailed(f"{what}: expected the broker to close the channel with {code}, but it did not")


def delete_at_failure(url, queues=(), exchanges=()):
    """If the script fails, deletes these named queues and exchanges on a new connection."""

    def cleanup():
        connection = connect(url)
        for queue in queues:
            connection.channel().queue_delete(queue=queue)
        for exchange in exchanges:
            connection.channel().exchange_delete(exchange=exchange)
        connection.close()

    at_failure(cleanup)
