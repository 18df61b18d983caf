"""connection.update-secret with pika's BlockingConnection.update_secret().

RabbitMQ 3.10 answers update-secret-ok after asking the user's auth backend to update its
state; the internal backend (where guest lives) keeps the user as it is and refuses nothing,
so a wrong secret is accepted as readily as the right one.

Checks, each on a fresh connection, for the right password, a wrong one and an empty one:
- update_secret returns (the broker answered connection.update-secret-ok, not a close);
- the connection keeps working afterwards: a channel opened before the update declares a
  queue, and a channel opened after it publishes to that queue and gets the message back;
- the connection then closes cleanly.
"""

from common import expect_equal, run, unique
from pika_util import connect


def update_and_use(url, secret):
    connection = connect(url)
    before = connection.channel()
    connection.update_secret(secret, "rotation")
    queue = unique("update-secret")
    before.queue_declare(queue=queue, exclusive=True)
    after = connection.channel()
    after.basic_publish(exchange="", routing_key=queue, body=b"after the update")
    method, _properties, body = None, None, None
    for method, _properties, body in before.consume(queue, auto_ack=True, inactivity_timeout=5):
        break
    expect_equal(body, b"after the update", f"message after update_secret({secret!r})")
    before.cancel()
    connection.close()


def main(url):
    for secret in ["guest", "not-the-password", ""]:
        update_and_use(url, secret)


if __name__ == "__main__":
    run("update_secret", main)
