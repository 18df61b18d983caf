"""Fills a private RabbitMQ 3.10.8 node with objects and traffic, then records its management API
shapes and its AMQP access refusals. Started by tools/capture-rabbitmq-api, which owns the node;
see that file for what is written where.

Golden endpoint files hold no values that vary between runs: only the endpoint pattern, the
method, the status and the sorted set of JSON key paths of the reply. A key path names nested
keys with dots (`message_stats.publish_details.rate`); a list is marked `[]` and the keys of its
elements follow it (`listeners[].port`; a top-level list is `[]` and `[].name`). Keys of every
element of a list are merged. Maps whose keys are user data (queue arguments, client
properties, policy definitions, message headers, limit and parameter values) are recorded as
the map's own path only, so the key sets do not depend on what the objects were declared with.
A map key equal to the node name is written `{node}`.
"""

import argparse
import ast
import base64
import hashlib
import http.client as httpclient
import json
import os
import re
import sys
import time
import urllib.parse

import pika

NODE = "warrenoracle@localhost"
VHOST_DEFAULT = "/"
VHOST_OTHER = "v1"

# Users and their passwords; the fixture README lists the same. `nopass` has no password.
USERS = {
    "admin": ("admin-secret", "administrator"),
    "monitor": ("monitor-secret", "monitoring"),
    "manager": ("manager-secret", "management"),
    "policy": ("policy-secret", "policymaker"),
    "impersonator": ("impersonator-secret", "impersonator"),
    "restricted": ("restricted-secret", ""),
}
SHA512_USER = ("hash512", "hash512-secret")  # created from a precomputed SHA-512 hash
NOPASS_USER = "nopass"

# Last path components of maps whose keys are user data, not schema.
DATA_MAPS = {
    "arguments",
    "client_properties",
    "definition",
    "effective_policy_definition",
    "headers",
    "value",
    "limits",
}

args = None


def quote(component):
    return urllib.parse.quote(component, safe="")


class Reply:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw

    def json(self):
        return json.loads(self.raw) if self.raw else None

    def body(self):
        """The body as JSON when it parses, else as text."""
        if not self.raw:
            return None
        try:
            return json.loads(self.raw)
        except ValueError:
            return self.raw.decode("utf-8", "replace")


def http(method, path, body=None, user="guest", password="guest", raw_body=None):
    """One request to /api{path}; path components must already be quoted."""
    connection = httpclient.HTTPConnection("127.0.0.1", args.http_port, timeout=60)
    headers = {}
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
    if raw_body is not None:
        data = raw_body
    if data is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, "/api" + path, data, headers)
    response = connection.getresponse()
    raw = response.read()
    reply_headers = {k.lower(): v for k, v in response.getheaders()}
    connection.close()
    return Reply(response.status, reply_headers, raw)


def must(reply, *statuses, what=""):
    if reply.status not in statuses:
        sys.exit(f"capture-rabbitmq-api: {what}: HTTP {reply.status} {reply.raw[:300]!r}")
    return reply


def put(path, body, user="guest", password="guest"):
    return must(http("PUT", path, body, user, password), 201, 204, what=f"PUT {path}")


def key_paths(value, prefix, out):
    if isinstance(value, dict):
        if prefix:
            out.add(prefix)
        if prefix.rsplit(".", 1)[-1].removesuffix("[]") in DATA_MAPS:
            return
        for key, child in value.items():
            key = "{node}" if key == args.node else key
            key_paths(child, f"{prefix}.{key}" if prefix else key, out)
    elif isinstance(value, list):
        out.add(prefix + "[]")
        for child in value:
            if isinstance(child, (dict, list)):
                key_paths(child, prefix + "[]", out)
    elif prefix:
        out.add(prefix)


def keys_of(value):
    out = set()
    key_paths(value, "", out)
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# Objects and traffic

def sha512_hash(password, salt=b"\x01\x02\x03\x04"):
    """RabbitMQ's password_hash: base64(salt ++ H(salt ++ utf8(password))), 4-byte salt."""
    return base64.b64encode(salt + hashlib.sha512(salt + password.encode()).digest()).decode()


def amqp_parameters(vhost, user="guest", password="guest", name=None):
    properties = {"connection_name": name} if name else None
    return pika.ConnectionParameters(
        "127.0.0.1",
        args.amqp_port,
        vhost,
        pika.PlainCredentials(user, password),
        heartbeat=0,
        client_properties=properties,
        connection_attempts=1,
    )


def create_objects():
    v1 = quote(VHOST_OTHER)
    root = quote(VHOST_DEFAULT)
    put(f"/vhosts/{v1}", {"description": "second vhost", "tags": "team-a,billing",
                          "default_queue_type": "classic"})
    for name, (password, tags) in USERS.items():
        put(f"/users/{name}", {"password": password, "tags": tags})
    put(f"/users/{NOPASS_USER}", {"password_hash": "", "tags": ""})
    put(f"/users/{SHA512_USER[0]}", {"password_hash": sha512_hash(SHA512_USER[1]),
                                     "hashing_algorithm": "rabbit_password_hashing_sha512",
                                     "tags": "management"})
    full = {"configure": ".*", "write": ".*", "read": ".*"}
    for vhost in (root, v1):
        put(f"/permissions/{vhost}/guest", full)
        put(f"/permissions/{vhost}/admin", full)
    put(f"/permissions/{root}/monitor", {"configure": "^$", "write": "^$", "read": ".*"})
    put(f"/permissions/{v1}/manager", full)
    put(f"/permissions/{v1}/policy", full)
    put(f"/permissions/{root}/{SHA512_USER[0]}", full)
    put(f"/permissions/{root}/impersonator", full)
    put(f"/permissions/{root}/{NOPASS_USER}", {"configure": "^$", "write": "^$", "read": "^$"})
    own = "^own-.*"
    put(f"/permissions/{v1}/restricted", {"configure": own, "write": own, "read": own})
    put(f"/topic-permissions/{v1}/restricted",
        {"exchange": "own-topic", "write": "^allowed\\..*", "read": "^allowed\\..*"})
    put(f"/topic-permissions/{root}/admin",
        {"exchange": "amq.topic", "write": "^{username}\\..*", "read": ".*"})
    put(f"/vhost-limits/{v1}/max-connections", {"value": 50})
    put(f"/vhost-limits/{v1}/max-queues", {"value": 100})
    put("/user-limits/manager/max-connections", {"value": 10})
    put("/user-limits/manager/max-channels", {"value": 20})
    put(f"/policies/{v1}/pol-limits", {
        "pattern": "^pol-", "apply-to": "queues", "priority": 1,
        "definition": {"max-length": 100, "message-ttl": 60000, "overflow": "reject-publish"}})
    put(f"/policies/{root}/ae", {
        "pattern": "^ex-ae$", "apply-to": "exchanges", "priority": 0,
        "definition": {"alternate-exchange": "ex-fanout"}})

    for name, body in {
        "q-durable": {"durable": True, "auto_delete": False, "arguments": {
            "x-queue-type": "classic", "x-max-length": 1000, "x-message-ttl": 3600000}},
        "q-transient": {"durable": False, "auto_delete": False, "arguments": {}},
        "q-consumed": {"durable": True, "auto_delete": False, "arguments": {}},
        "s-stream": {"durable": True, "auto_delete": False, "arguments": {
            "x-queue-type": "stream", "x-max-length-bytes": 100000000}},
    }.items():
        put(f"/queues/{root}/{name}", body)
    for name in ("pol-q", "own-q", "other-q"):
        put(f"/queues/{v1}/{name}", {"durable": True, "auto_delete": False, "arguments": {}})

    for name, body in {
        "ex-direct": {"type": "direct", "durable": True},
        "ex-fanout": {"type": "fanout", "durable": True},
        "ex-topic": {"type": "topic", "durable": True},
        "ex-headers": {"type": "headers", "durable": True},
        "ex-ae": {"type": "direct", "durable": True},
        "ex-internal": {"type": "topic", "durable": True, "internal": True},
        "ex-transient": {"type": "direct", "durable": False, "auto_delete": True},
        "ex-args": {"type": "direct", "durable": True,
                    "arguments": {"alternate-exchange": "ex-fanout"}},
    }.items():
        put(f"/exchanges/{root}/{name}", body)
    for name, kind in (("own-topic", "topic"), ("own-x", "direct"), ("other-x", "direct")):
        put(f"/exchanges/{v1}/{name}", {"type": kind, "durable": True})

    bind = lambda vhost, source, kind, destination, body: must(  # noqa: E731
        http("POST", f"/bindings/{vhost}/e/{source}/{kind}/{destination}", body), 201,
        what=f"bind {source} {destination}")
    bind(root, "ex-direct", "q", "q-durable", {"routing_key": "rk.a"})
    bind(root, "ex-topic", "q", "q-durable", {"routing_key": "a.#"})
    bind(root, "ex-fanout", "q", "q-transient", {})
    bind(root, "ex-headers", "q", "q-transient",
         {"routing_key": "", "arguments": {"x-match": "all", "h": "v"}})
    bind(root, "ex-topic", "e", "ex-direct", {"routing_key": "e.#"})
    bind(root, "ex-direct", "q", "q-consumed", {"routing_key": "work"})
    bind(root, "ex-direct", "q", "s-stream", {"routing_key": "stream"})
    bind(v1, "own-x", "q", "own-q", {"routing_key": "own"})
    bind(v1, "own-topic", "q", "own-q", {"routing_key": "allowed.#"})


def traffic():
    """Publishes and fetches over AMQP and HTTP; returns the consumer connection, left open."""
    connection = pika.BlockingConnection(amqp_parameters(VHOST_DEFAULT, name="capture-publisher"))
    channel = connection.channel()
    channel.confirm_delivery()
    persistent = pika.BasicProperties(delivery_mode=2, content_type="text/plain",
                                      headers={"h": "v"})
    for i in range(5):
        channel.basic_publish("ex-direct", "rk.a", f"direct {i}".encode(), persistent)
    channel.basic_publish("ex-topic", "a.b", b"topic", persistent)
    channel.basic_publish("ex-topic", "e.x", b"exchange to exchange", persistent)
    channel.basic_publish("ex-fanout", "", b"fanout", persistent)
    channel.basic_publish("ex-headers", "", b"headers", pika.BasicProperties(headers={"h": "v"}))
    for i in range(10):
        channel.basic_publish("ex-direct", "work", f"work {i}".encode(), persistent)
    for i in range(3):
        channel.basic_publish("ex-direct", "stream", f"stream {i}".encode(), persistent)
    try:
        channel.basic_publish("ex-direct", "nowhere", b"unroutable", mandatory=True)
    except pika.exceptions.UnroutableError:
        pass
    method, _, _ = channel.basic_get("q-durable")
    channel.basic_ack(method.delivery_tag)
    method, _, _ = channel.basic_get("q-durable")
    channel.basic_nack(method.delivery_tag, requeue=True)
    method, _, _ = channel.basic_get("q-durable")
    channel.basic_ack(method.delivery_tag)
    connection.close()

    root = quote(VHOST_DEFAULT)
    must(http("POST", f"/exchanges/{root}/ex-direct/publish", {
        "properties": {"delivery_mode": 2, "headers": {"h": "v"}, "content_type": "text/plain"},
        "routing_key": "rk.a", "payload": "over http", "payload_encoding": "string"}), 200,
        what="publish")

    consumer = pika.BlockingConnection(amqp_parameters(VHOST_DEFAULT, name="capture-consumer"))
    channel = consumer.channel()
    channel.basic_qos(prefetch_count=10)
    channel.basic_consume("q-consumed", lambda *a: None, auto_ack=False)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        consumer.process_data_events(time_limit=0.2)
    return consumer


# ---------------------------------------------------------------------------------------------
# Endpoint captures

def endpoints(connection_name, channel_name):
    root = quote(VHOST_DEFAULT)
    v1 = quote(VHOST_OTHER)
    conn = quote(connection_name)
    chan = quote(channel_name)
    ages = "lengths_age=60&lengths_incr=5&msg_rates_age=60&msg_rates_incr=5"
    page = "page=1&page_size=2&name=&use_regex=false&pagination=true"
    # (file stem, method, pattern, concrete path, body, what the reply describes)
    G = "GET"
    return [
        ("overview", G, "/api/overview", "/overview", None, ""),
        ("overview.ages", G, f"/api/overview?{ages}", f"/overview?{ages}", None,
         "with sample ages: *_details gain avg, avg_rate, samples"),
        ("nodes", G, "/api/nodes", "/nodes", None, ""),
        ("nodes.name", G, "/api/nodes/{node}", f"/nodes/{quote(args.node)}", None, ""),
        ("whoami", G, "/api/whoami", "/whoami", None, "guest"),
        ("extensions", G, "/api/extensions", "/extensions", None, ""),
        ("cluster-name", G, "/api/cluster-name", "/cluster-name", None, ""),
        ("auth", G, "/api/auth", "/auth", None, ""),
        ("feature-flags", G, "/api/feature-flags", "/feature-flags", None, ""),
        ("vhosts", G, "/api/vhosts", "/vhosts", None, "/ and v1 (description, tags)"),
        ("vhosts.vhost", G, "/api/vhosts/{vhost}", f"/vhosts/{v1}", None,
         "v1 with description and tags"),
        ("vhosts.vhost.permissions", G, "/api/vhosts/{vhost}/permissions",
         f"/vhosts/{v1}/permissions", None, ""),
        ("vhosts.vhost.topic-permissions", G, "/api/vhosts/{vhost}/topic-permissions",
         f"/vhosts/{v1}/topic-permissions", None, ""),
        ("vhosts.vhost.connections", G, "/api/vhosts/{vhost}/connections",
         f"/vhosts/{root}/connections", None, "one open connection"),
        ("vhosts.vhost.channels", G, "/api/vhosts/{vhost}/channels",
         f"/vhosts/{root}/channels", None, "one open channel"),
        ("users", G, "/api/users", "/users", None, "every tag, a user without password"),
        ("users.user", G, "/api/users/{user}", "/users/admin", None, "administrator"),
        ("users.user.nopass", G, "/api/users/{user}", f"/users/{NOPASS_USER}", None,
         "user without a password"),
        ("users.user.permissions", G, "/api/users/{user}/permissions",
         "/users/restricted/permissions", None, ""),
        ("users.user.topic-permissions", G, "/api/users/{user}/topic-permissions",
         "/users/restricted/topic-permissions", None, ""),
        ("users.without-permissions", G, "/api/users/without-permissions",
         "/users/without-permissions", None, ""),
        ("permissions", G, "/api/permissions", "/permissions", None, ""),
        ("permissions.vhost.user", G, "/api/permissions/{vhost}/{user}",
         f"/permissions/{v1}/restricted", None, ""),
        ("topic-permissions", G, "/api/topic-permissions", "/topic-permissions", None, ""),
        ("topic-permissions.vhost.user", G, "/api/topic-permissions/{vhost}/{user}",
         f"/topic-permissions/{v1}/restricted", None, ""),
        ("vhost-limits", G, "/api/vhost-limits", "/vhost-limits", None, ""),
        ("vhost-limits.vhost", G, "/api/vhost-limits/{vhost}", f"/vhost-limits/{v1}", None, ""),
        ("user-limits", G, "/api/user-limits", "/user-limits", None, ""),
        ("user-limits.user", G, "/api/user-limits/{user}", "/user-limits/manager", None, ""),
        ("queues", G, "/api/queues", "/queues", None, "classic and stream queues, with traffic"),
        ("queues.paginated", G, f"/api/queues?{page}", f"/queues?{page}", None, ""),
        ("queues.vhost", G, "/api/queues/{vhost}", f"/queues/{root}", None, ""),
        ("queues.vhost.name", G, "/api/queues/{vhost}/{name}", f"/queues/{root}/q-durable",
         None, "classic durable queue with arguments, published to and fetched from"),
        ("queues.vhost.name.ages", G, f"/api/queues/{{vhost}}/{{name}}?{ages}",
         f"/queues/{root}/q-durable?{ages}", None, "as queues.vhost.name, with sample ages"),
        ("queues.vhost.name.consumed", G, "/api/queues/{vhost}/{name}",
         f"/queues/{root}/q-consumed", None, "classic queue with one consumer, unacked"),
        ("queues.vhost.name.transient", G, "/api/queues/{vhost}/{name}",
         f"/queues/{root}/q-transient", None, "non-durable classic queue"),
        ("queues.vhost.name.stream", G, "/api/queues/{vhost}/{name}",
         f"/queues/{root}/s-stream", None, "stream queue"),
        ("queues.vhost.name.policy", G, "/api/queues/{vhost}/{name}",
         f"/queues/{v1}/pol-q", None, "classic queue a policy applies to"),
        ("queues.vhost.name.bindings", G, "/api/queues/{vhost}/{name}/bindings",
         f"/queues/{root}/q-durable/bindings", None, ""),
        ("exchanges", G, "/api/exchanges", "/exchanges", None, "every type"),
        ("exchanges.vhost", G, "/api/exchanges/{vhost}", f"/exchanges/{root}", None, ""),
        ("exchanges.vhost.name", G, "/api/exchanges/{vhost}/{name}",
         f"/exchanges/{root}/ex-direct", None, "direct exchange with traffic"),
        ("exchanges.vhost.name.topic", G, "/api/exchanges/{vhost}/{name}",
         f"/exchanges/{root}/ex-topic", None, "topic exchange bound to an exchange"),
        ("exchanges.vhost.name.idle", G, "/api/exchanges/{vhost}/{name}",
         f"/exchanges/{root}/ex-internal", None, "internal exchange, no traffic"),
        ("exchanges.vhost.name.bindings.source", G,
         "/api/exchanges/{vhost}/{name}/bindings/source",
         f"/exchanges/{root}/ex-direct/bindings/source", None, ""),
        ("exchanges.vhost.name.bindings.destination", G,
         "/api/exchanges/{vhost}/{name}/bindings/destination",
         f"/exchanges/{root}/ex-direct/bindings/destination", None, ""),
        ("bindings", G, "/api/bindings", "/bindings", None, ""),
        ("bindings.vhost", G, "/api/bindings/{vhost}", f"/bindings/{root}", None, ""),
        ("bindings.vhost.e.exchange.q.queue", G, "/api/bindings/{vhost}/e/{exchange}/q/{queue}",
         f"/bindings/{root}/e/ex-direct/q/q-durable", None, ""),
        ("bindings.vhost.e.exchange.q.queue.props", G,
         "/api/bindings/{vhost}/e/{exchange}/q/{queue}/{props}",
         f"/bindings/{root}/e/ex-direct/q/q-durable/rk.a", None, ""),
        ("bindings.vhost.e.exchange.q.queue.props.arguments", G,
         "/api/bindings/{vhost}/e/{exchange}/q/{queue}",
         f"/bindings/{root}/e/ex-headers/q/q-transient", None, "binding with arguments"),
        ("bindings.vhost.e.exchange.e.exchange", G,
         "/api/bindings/{vhost}/e/{exchange}/e/{exchange}",
         f"/bindings/{root}/e/ex-topic/e/ex-direct", None, ""),
        ("connections", G, "/api/connections", "/connections", None, "pika consumer"),
        ("connections.name", G, "/api/connections/{name}", f"/connections/{conn}", None, ""),
        ("connections.name.channels", G, "/api/connections/{name}/channels",
         f"/connections/{conn}/channels", None, ""),
        ("channels", G, "/api/channels", "/channels", None, "consumer channel, prefetch 10"),
        ("channels.name", G, "/api/channels/{name}", f"/channels/{chan}", None, ""),
        ("consumers", G, "/api/consumers", "/consumers", None, ""),
        ("consumers.vhost", G, "/api/consumers/{vhost}", f"/consumers/{root}", None, ""),
        ("policies", G, "/api/policies", "/policies", None, ""),
        ("policies.vhost", G, "/api/policies/{vhost}", f"/policies/{v1}", None, ""),
        ("policies.vhost.name", G, "/api/policies/{vhost}/{name}",
         f"/policies/{v1}/pol-limits", None, ""),
        ("operator-policies", G, "/api/operator-policies", "/operator-policies", None, ""),
        ("parameters", G, "/api/parameters", "/parameters", None, ""),
        ("global-parameters", G, "/api/global-parameters", "/global-parameters", None, ""),
        ("definitions", G, "/api/definitions", "/definitions", None, ""),
        ("definitions.vhost", G, "/api/definitions/{vhost}", f"/definitions/{v1}", None, ""),
        ("aliveness-test.vhost", G, "/api/aliveness-test/{vhost}", f"/aliveness-test/{root}",
         None, ""),
        ("healthchecks.node", G, "/api/healthchecks/node", "/healthchecks/node", None, ""),
        ("health.checks.alarms", G, "/api/health/checks/alarms", "/health/checks/alarms",
         None, ""),
        ("health.checks.local-alarms", G, "/api/health/checks/local-alarms",
         "/health/checks/local-alarms", None, ""),
        ("health.checks.virtual-hosts", G, "/api/health/checks/virtual-hosts",
         "/health/checks/virtual-hosts", None, ""),
        ("health.checks.node-is-quorum-critical", G, "/api/health/checks/node-is-quorum-critical",
         "/health/checks/node-is-quorum-critical", None, ""),
        ("health.checks.port-listener.port", G, "/api/health/checks/port-listener/{port}",
         f"/health/checks/port-listener/{args.amqp_port}", None, "the AMQP port"),
        ("health.checks.port-listener.port.failed", G, "/api/health/checks/port-listener/{port}",
         "/health/checks/port-listener/9999", None, "a port nothing listens on"),
        ("health.checks.protocol-listener.protocol", G,
         "/api/health/checks/protocol-listener/{protocol}",
         "/health/checks/protocol-listener/amqp", None, "amqp"),
        ("health.checks.protocol-listener.protocol.failed", G,
         "/api/health/checks/protocol-listener/{protocol}",
         "/health/checks/protocol-listener/mqtt", None, "a protocol with no listener"),
        ("health.checks.certificate-expiration", G,
         "/api/health/checks/certificate-expiration/{within}/{unit}",
         "/health/checks/certificate-expiration/1/months", None, "no TLS listener"),
        ("auth.hash_password", G, "/api/auth/hash_password/{password}",
         "/auth/hash_password/secret", None, ""),
        ("queues.vhost.name.get", "POST", "/api/queues/{vhost}/{name}/get",
         f"/queues/{root}/q-durable/get",
         {"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000},
         "two messages with delivery_mode, headers and content_type"),
        ("queues.vhost.name.get.empty", "POST", "/api/queues/{vhost}/{name}/get",
         f"/queues/{v1}/own-q/get",
         {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}, "empty queue"),
        ("exchanges.vhost.name.publish", "POST", "/api/exchanges/{vhost}/{name}/publish",
         f"/exchanges/{root}/ex-direct/publish",
         {"properties": {}, "routing_key": "rk.a", "payload": "x", "payload_encoding": "string"},
         "routed"),
        ("exchanges.vhost.name.publish.unroutable", "POST",
         "/api/exchanges/{vhost}/{name}/publish", f"/exchanges/{root}/ex-direct/publish",
         {"properties": {}, "routing_key": "nowhere", "payload": "x",
          "payload_encoding": "string"}, "not routed"),
    ]


def capture_endpoints(consumer_name):
    connections = must(http("GET", "/connections"), 200, what="connections").json()
    connection_name = next(c["name"] for c in connections
                           if c["client_properties"].get("connection_name") == consumer_name)
    channels = must(http("GET", "/channels"), 200, what="channels").json()
    channel_name = next(c["name"] for c in channels
                        if c["connection_details"]["name"] == connection_name)
    golden = {}
    for stem, method, pattern, path, body, what in endpoints(connection_name, channel_name):
        reply = http(method, path, body)
        record = {"endpoint": pattern, "method": method, "status": reply.status}
        if what:
            record["object"] = what
        if body is not None:
            record["request"] = body
        record["keys"] = keys_of(reply.body()) if reply.raw else []
        golden[stem] = record
        print(f"{reply.status} {method} {pattern}", file=sys.stderr)
    return golden


# ---------------------------------------------------------------------------------------------
# Status codes and error bodies

def capture_errors():
    root = quote(VHOST_DEFAULT)
    v1 = quote(VHOST_OTHER)
    cases = {}

    def case(name, method, path, body=None, user="guest", password="guest", raw_body=None,
             note=None, record_body=True):
        reply = http(method, path, body, user, password, raw_body)
        record = {"method": method, "path": "/api" + path}
        if user is not None and user != "guest":
            record["user"] = user
        if body is not None and record_body:
            record["request"] = body
        if raw_body is not None:
            record["request_raw"] = raw_body.decode()
        if note:
            record["note"] = note
        record["status"] = reply.status
        record["headers"] = {k: reply.headers[k] for k in
                             ("content-type", "location", "www-authenticate")
                             if k in reply.headers}
        record["body"] = reply.body()
        cases[name] = record
        print(f"{reply.status} {name}", file=sys.stderr)
        return reply

    case("bad_password", "GET", "/overview", user="admin", password="wrong")
    case("no_credentials", "GET", "/overview", user=None)
    case("unknown_user", "GET", "/overview", user="nobody", password="x")
    case("user_without_password", "GET", "/overview", user=NOPASS_USER, password="")
    case("no_tags_user", "GET", "/overview", user="restricted",
         password=USERS["restricted"][0])
    case("monitoring_user_on_admin_endpoint", "GET", "/users", user="monitor",
         password=USERS["monitor"][0])
    case("monitoring_user_on_definitions", "GET", "/definitions", user="monitor",
         password=USERS["monitor"][0])
    case("management_user_on_monitoring_endpoint", "GET", "/nodes", user="manager",
         password=USERS["manager"][0])
    case("policymaker_on_admin_endpoint", "GET", "/users", user="policy",
         password=USERS["policy"][0])
    case("management_user_on_vhost_without_permission", "GET", f"/queues/{root}",
         user="manager", password=USERS["manager"][0])
    case("sha512_user_login", "GET", "/whoami", user=SHA512_USER[0], password=SHA512_USER[1])
    case("unknown_queue", "GET", f"/queues/{root}/no-such-queue")
    case("unknown_exchange", "GET", f"/exchanges/{root}/no-such-exchange")
    case("unknown_vhost", "GET", "/vhosts/no-such-vhost")
    case("unknown_vhost_in_queue_list", "GET", "/queues/no-such-vhost")
    case("unknown_user_object", "GET", "/users/no-such-user")
    case("unknown_route", "GET", "/no-such-endpoint")
    case("inequivalent_redeclare", "PUT", f"/queues/{root}/q-durable",
         {"durable": False, "auto_delete": False, "arguments": {}})
    case("inequivalent_exchange_redeclare", "PUT", f"/exchanges/{root}/ex-direct",
         {"type": "fanout", "durable": True})
    case("malformed_json", "PUT", f"/queues/{root}/q-bad", raw_body=b"{not json")
    queue = {"durable": True, "auto_delete": False, "arguments": {}}
    case("queue_put_create", "PUT", f"/queues/{root}/q-scratch", queue)
    case("queue_put_identical", "PUT", f"/queues/{root}/q-scratch", queue)
    exchange = {"type": "direct", "durable": True, "auto_delete": False, "internal": False,
                "arguments": {}}
    case("exchange_put_create", "PUT", f"/exchanges/{root}/ex-scratch", exchange)
    case("exchange_put_identical", "PUT", f"/exchanges/{root}/ex-scratch", exchange)
    case("exchange_put_reserved_name", "PUT", f"/exchanges/{root}/amq.scratch", exchange)
    case("binding_post_create", "POST", f"/bindings/{root}/e/ex-scratch/q/q-scratch",
         {"routing_key": "a.#", "arguments": {}})
    case("binding_post_empty_key", "POST", f"/bindings/{root}/e/ex-scratch/q/q-scratch", {})
    case("binding_delete", "DELETE", f"/bindings/{root}/e/ex-scratch/q/q-scratch/a.%2523")
    case("binding_delete_unknown", "DELETE",
         f"/bindings/{root}/e/ex-scratch/q/q-scratch/no-such-key")
    case("queue_purge", "DELETE", f"/queues/{root}/q-scratch/contents")
    case("queue_delete", "DELETE", f"/queues/{root}/q-scratch")
    case("queue_delete_unknown", "DELETE", f"/queues/{root}/q-scratch")
    case("exchange_delete", "DELETE", f"/exchanges/{root}/ex-scratch")
    case("publish_unknown_exchange", "POST", f"/exchanges/{root}/no-such-exchange/publish",
         {"properties": {}, "routing_key": "", "payload": "x", "payload_encoding": "string"})
    case("get_unknown_queue", "POST", f"/queues/{root}/no-such-queue/get",
         {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    vhost = {"description": "scratch", "tags": ""}
    case("vhost_put_create", "PUT", "/vhosts/scratch", vhost)
    case("vhost_put_identical", "PUT", "/vhosts/scratch", vhost)
    case("vhost_delete", "DELETE", "/vhosts/scratch")
    user = {"password": "scratch-secret", "tags": "management"}
    case("user_put_create", "PUT", "/users/scratch", user)
    case("user_put_again", "PUT", "/users/scratch", user)
    case("user_put_no_password_field", "PUT", "/users/scratch2", {"tags": ""})
    permission = {"configure": ".*", "write": ".*", "read": ".*"}
    case("permission_put_create", "PUT", f"/permissions/{root}/scratch", permission)
    case("permission_put_identical", "PUT", f"/permissions/{root}/scratch", permission)
    case("permission_put_unknown_vhost", "PUT", "/permissions/no-such-vhost/scratch", permission)
    case("permission_delete", "DELETE", f"/permissions/{root}/scratch")
    case("user_delete", "DELETE", "/users/scratch")
    policy = {"pattern": "^scratch", "apply-to": "queues", "priority": 0,
              "definition": {"max-length": 10}}
    case("policy_put_create", "PUT", f"/policies/{root}/scratch", policy)
    case("policy_put_identical", "PUT", f"/policies/{root}/scratch", policy)
    case("policy_delete", "DELETE", f"/policies/{root}/scratch")
    case("policy_unknown_key", "PUT", f"/policies/{root}/bad",
         {"pattern": "^x", "apply-to": "queues", "definition": {"no-such-key": 1}})
    case("policy_bad_value", "PUT", f"/policies/{root}/bad",
         {"pattern": "^x", "apply-to": "queues", "definition": {"max-length": "ten"}})
    case("vhost_limit_put", "PUT", "/vhost-limits/scratch-missing/max-queues", {"value": 1})
    queues_in_v1 = len(must(http("GET", f"/queues/{v1}"), 200, what="v1 queues").json())
    put(f"/vhost-limits/{v1}/max-queues", {"value": queues_in_v1})
    case("vhost_max_queues_exceeded", "PUT", f"/queues/{v1}/over-limit", queue,
         note=f"v1 has max-queues {queues_in_v1} and {queues_in_v1} queues")
    put(f"/vhost-limits/{v1}/max-queues", {"value": 100})
    case("vhost_limit_delete", "DELETE", f"/vhost-limits/{v1}/max-connections")
    put(f"/vhost-limits/{v1}/max-connections", {"value": 50})
    definitions = must(http("GET", "/definitions"), 200, what="definitions").json()
    case("definitions_post", "POST", "/definitions", definitions, record_body=False,
         note="body: the export of this node, posted back")
    vhost_definitions = must(http("GET", f"/definitions/{v1}"), 200, what="definitions").json()
    case("definitions_vhost_post", "POST", f"/definitions/{v1}", vhost_definitions,
         record_body=False, note="body: the export of v1, posted back")
    case("definitions_post_malformed", "POST", "/definitions", raw_body=b"{not json")
    return cases


# ---------------------------------------------------------------------------------------------
# AMQP refusals

class Refused(Exception):
    pass


def reply_of(error):
    """(code, text) of a broker close carried by a pika exception."""
    if isinstance(error, (pika.exceptions.ChannelClosedByBroker,
                          pika.exceptions.ConnectionClosedByBroker)):
        return error.reply_code, error.reply_text
    # Refusals during connection.open come wrapped as "ConnectionClosedByBroker: (530) '...'".
    for inner in getattr(error, "args", ()):
        if isinstance(inner, Exception):
            try:
                return reply_of(inner)
            except Refused:
                continue
        match = re.search(r"ConnectionClosedByBroker: \((\d+)\) (.*)$", str(inner), re.S)
        if match:
            return int(match.group(1)), ast.literal_eval(match.group(2))
    raise Refused(f"no broker reply in {error!r}")


def capture_amqp_access():
    cases = {}
    password = USERS["restricted"][0]
    v1 = quote(VHOST_OTHER)

    def connect(vhost=VHOST_OTHER, user="restricted", secret=password):
        return pika.BlockingConnection(amqp_parameters(vhost, user, secret))

    def on_channel(name, action, connection=None, note=None):
        own = connection is None
        connection = connection or connect()
        try:
            channel = connection.channel()
            action(channel)
            # A refused publish only shows on the next synchronous method.
            channel.queue_declare("own-q", passive=True)
            result = {"code": 0, "text": "(allowed)"}
        except pika.exceptions.AMQPError as error:
            code, text = reply_of(error)
            result = {"code": code, "text": text}
        if note:
            result["note"] = note
        cases[name] = result
        print(f"{result['code']} {name}: {result['text']}", file=sys.stderr)
        if own and connection.is_open:
            connection.close()

    def on_connect(name, note=None, **kwargs):
        try:
            connect(**kwargs).close()
            result = {"code": 0, "text": "(allowed)"}
        except pika.exceptions.AMQPError as error:
            code, text = reply_of(error)
            result = {"code": code, "text": text}
        if note:
            result["note"] = note
        cases[name] = result
        print(f"{result['code']} {name}: {result['text']}", file=sys.stderr)

    on_channel("queue_declare_refused", lambda c: c.queue_declare("other-new", durable=True))
    on_channel("queue_declare_passive_other", lambda c: c.queue_declare("other-q", passive=True),
               note="passive declare of an existing queue the user has no configure right on")
    on_channel("exchange_declare_refused", lambda c: c.exchange_declare("other-new-x", "direct"))
    on_channel("queue_delete_refused", lambda c: c.queue_delete("other-q"))
    on_channel("exchange_delete_refused", lambda c: c.exchange_delete("other-x"))
    on_channel("queue_bind_read_on_source_refused",
               lambda c: c.queue_bind("own-q", "other-x", "k"),
               note="destination own-q writable, source other-x not readable")
    on_channel("queue_bind_write_on_destination_refused",
               lambda c: c.queue_bind("other-q", "own-x", "k"),
               note="source own-x readable, destination other-q not writable")
    on_channel("queue_unbind_refused", lambda c: c.queue_unbind("other-q", "own-x", "k"))
    on_channel("exchange_bind_refused", lambda c: c.exchange_bind("other-x", "own-x", "k"),
               note="exchange.bind destination other-x, source own-x")
    on_channel("publish_write_refused", lambda c: c.basic_publish("other-x", "k", b"x"))
    on_channel("publish_default_exchange_refused", lambda c: c.basic_publish("", "other-q", b"x"),
               note="default exchange, routing key other-q")
    on_channel("consume_read_refused", lambda c: c.basic_consume("other-q", lambda *a: None))
    on_channel("get_read_refused", lambda c: c.basic_get("other-q"))
    on_channel("purge_read_refused", lambda c: c.queue_purge("other-q"))
    on_channel("topic_write_refused",
               lambda c: c.basic_publish("own-topic", "denied.key", b"x"),
               note="topic permission on own-topic: write ^allowed\\..*")
    on_channel("topic_write_allowed",
               lambda c: c.basic_publish("own-topic", "allowed.key", b"x"))
    on_channel("topic_read_refused_on_bind",
               lambda c: c.queue_bind("own-q", "own-topic", "denied.#"),
               note="topic permission on own-topic: read ^allowed\\..*")
    on_channel("user_id_mismatch",
               lambda c: c.basic_publish("own-x", "own", b"x",
                                         pika.BasicProperties(user_id="someone-else")))
    guest = connect(VHOST_OTHER, "guest", "guest")
    on_channel("reserved_exchange_name_declare",
               lambda c: c.exchange_declare("amq.scratch", "direct"), connection=guest,
               note="guest (full permissions) declares an amq.* name")
    if guest.is_open:
        guest.close()

    on_connect("vhost_access_refused", vhost=VHOST_DEFAULT,
               note="restricted has no permissions in /")
    on_connect("vhost_not_found", vhost="no-such-vhost")
    on_connect("login_refused_bad_password", secret="wrong")
    on_connect("login_refused_no_password", user=NOPASS_USER, secret="",
               note="user created without a password")

    queues_in_v1 = len(must(http("GET", f"/queues/{v1}"), 200, what="v1 queues").json())
    put(f"/vhost-limits/{v1}/max-queues", {"value": queues_in_v1})
    on_channel("vhost_max_queues_exceeded", lambda c: c.queue_declare("own-over-limit"),
               note=f"v1 max-queues {queues_in_v1} reached")
    put(f"/vhost-limits/{v1}/max-queues", {"value": 100})

    held = connect()
    put(f"/vhost-limits/{v1}/max-connections", {"value": 1})
    on_connect("vhost_max_connections_exceeded", note="v1 max-connections 1, one open")
    put(f"/vhost-limits/{v1}/max-connections", {"value": 50})
    put("/user-limits/restricted/max-connections", {"value": 1})
    on_connect("user_max_connections_exceeded", note="user max-connections 1, one open")
    must(http("DELETE", "/user-limits/restricted/max-connections"), 204, what="user limit")
    put("/user-limits/restricted/max-channels", {"value": 1})
    held.channel()
    on_channel("user_max_channels_exceeded", lambda c: None, connection=held,
               note="user max-channels 1, one channel open on the connection")
    must(http("DELETE", "/user-limits/restricted/max-channels"), 204, what="user limit")
    if held.is_open:
        held.close()
    return cases


# ---------------------------------------------------------------------------------------------

def write_json(path, value):
    with open(path, "w", encoding="utf-8") as out:
        json.dump(value, out, indent=2, ensure_ascii=False)
        out.write("\n")


def main():
    global args
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--golden", required=True)
    parser.add_argument("--definitions", required=True)
    parser.add_argument("--node", default=NODE,
                        help="the node's name (another broker's, when its keys are checked)")
    args = parser.parse_args()

    create_objects()
    consumer = traffic()
    # Statistics are emitted every second (collect_statistics_interval); let two rounds pass.
    time.sleep(3)
    golden = capture_endpoints("capture-consumer")
    definitions = must(http("GET", "/definitions"), 200, what="definitions").json()
    consumer.close()
    errors = capture_errors()
    access = capture_amqp_access()

    os.makedirs(args.golden, exist_ok=True)
    for name in os.listdir(args.golden):
        if name.endswith(".json"):
            os.remove(os.path.join(args.golden, name))
    for stem, record in golden.items():
        write_json(os.path.join(args.golden, stem + ".json"), record)
    write_json(os.path.join(args.golden, "errors.json"), errors)
    write_json(os.path.join(args.golden, "amqp-access.json"), access)
    os.makedirs(os.path.dirname(args.definitions), exist_ok=True)
    write_json(args.definitions, definitions)
    print(f"wrote {len(golden) + 2} files under {args.golden} and {args.definitions}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
