"""RabbitMQ tutorial 4, "Routing", as a self-checking program.

A direct exchange of logs keyed by severity. One consumer binds only "error" (it writes
errors to disc in the tutorial); another binds "info", "warning" and "error" (it prints
everything); a third binds "warning" only. Checks that each gets exactly the messages
whose key it bound, in order, that a key bound by several queues reaches all of them, and
that a key nobody bound ("debug") reaches nobody.
"""

from common import expect_equal, run, unique
from pika_util import END, collect_until_end, connect, delete_at_failure

BINDINGS = {
    "errors-to-disc": ["error"],
    "everything-to-screen": ["info", "warning", "error"],
    "warnings-only": ["warning"],
}


def main(url):
    exchange = unique("direct_logs")
    delete_at_failure(url, exchanges=[exchange])
    publisher = connect(url)
    channel = publisher.channel()
    channel.exchange_declare(exchange=exchange, exchange_type="direct")

    consumer = connect(url)
    consumer_channel = consumer.channel()
    queues = {}
    for role, severities in BINDINGS.items():
        name = consumer_channel.queue_declare(queue="", exclusive=True).method.queue
        for severity in severities + [END.decode()]:
            consumer_channel.queue_bind(exchange=exchange, queue=name, routing_key=severity)
        queues[role] = name

    sent = [
        ("info", b"info: service started"),
        ("error", b"error: disc full"),
        ("debug", b"debug: cache miss"),
        ("warning", b"warning: slow request"),
        ("info", b"info: request served"),
        ("error", b"error: connection refused"),
        ("critical", b"critical: nobody listens to this"),
        ("warning", b"warning: retrying"),
    ]
    for severity, body in sent:
        channel.basic_publish(exchange=exchange, routing_key=severity, body=body)
    channel.basic_publish(exchange=exchange, routing_key=END.decode(), body=END)

    for role, severities in BINDINGS.items():
        expected = [body for severity, body in sent if severity in severities]
        got = collect_until_end(consumer_channel, queues[role])
        expect_equal(got, expected, f"messages for {role} (bound to {severities})")

    consumer.close()
    channel.exchange_delete(exchange=exchange)
    publisher.close()


if __name__ == "__main__":
    run("tutorial_routing", main)
