"""RabbitMQ tutorial 5, "Topics", as a self-checking program.

A topic exchange with the tutorial's bindings: Q1 binds "*.orange.*"; Q2 binds "*.*.rabbit"
and "lazy.#"; Q3 binds "#" (receives everything, like a fanout); Q4 binds "quick.orange.fox"
(no wildcard: behaves like a direct binding). Checks the exact set each queue receives for
the tutorial's keys and a few edge cases: "*" is exactly one word, "#" is zero or more
words, and a message matching two bindings of one queue is delivered to it once.
"""

from common import expect_equal, run, unique
from pika_util import END, collect_until_end, connect, delete_at_failure

BINDINGS = {
    "Q1": ["*.orange.*"],
    "Q2": ["*.*.rabbit", "lazy.#"],
    "Q3": ["#"],
    "Q4": ["quick.orange.fox"],
}

# (routing key, queues that must receive it)
CASES = [
    ("quick.orange.rabbit", {"Q1", "Q2", "Q3"}),
    ("lazy.orange.elephant", {"Q1", "Q2", "Q3"}),
    ("quick.orange.fox", {"Q1", "Q3", "Q4"}),
    ("lazy.brown.fox", {"Q2", "Q3"}),
    # Matches both of Q2's bindings, and still reaches Q2 only once.
    ("lazy.pink.rabbit", {"Q2", "Q3"}),
    ("quick.brown.fox", {"Q3"}),
    ("orange", {"Q3"}),
    ("quick.orange.male.rabbit", {"Q3"}),
    ("lazy.orange.male.rabbit", {"Q2", "Q3"}),
    # "#" matches zero words: "lazy" alone matches "lazy.#".
    ("lazy", {"Q2", "Q3"}),
    # "*" needs exactly one word, so two-word keys miss "*.orange.*".
    ("quick.orange", {"Q3"}),
    ("orange.fox", {"Q3"}),
    # Words are compared whole, not as prefixes.
    ("lazyish.orange.cat", {"Q1", "Q3"}),
    ("quick.orange.rabbits", {"Q1", "Q3"}),
]


def main(url):
    exchange = unique("topic_logs")
    delete_at_failure(url, exchanges=[exchange])
    publisher = connect(url)
    channel = publisher.channel()
    channel.exchange_declare(exchange=exchange, exchange_type="topic")

    consumer = connect(url)
    consumer_channel = consumer.channel()
    queues = {}
    for role, patterns in BINDINGS.items():
        name = consumer_channel.queue_declare(queue="", exclusive=True).method.queue
        for pattern in patterns + [END.decode()]:
            consumer_channel.queue_bind(exchange=exchange, queue=name, routing_key=pattern)
        queues[role] = name

    for key, _ in CASES:
        channel.basic_publish(exchange=exchange, routing_key=key, body=key.encode())
    channel.basic_publish(exchange=exchange, routing_key=END.decode(), body=END)

    for role, patterns in BINDINGS.items():
        expected = [key.encode() for key, receivers in CASES if role in receivers]
        got = collect_until_end(consumer_channel, queues[role])
        expect_equal(got, expected, f"keys delivered to {role} (bound to {patterns})")

    consumer.close()
    channel.exchange_delete(exchange=exchange)
    publisher.close()


if __name__ == "__main__":
    run("tutorial_topics", main)
