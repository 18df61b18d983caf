//! The management API's queues and exchanges with lapin clients publishing and consuming:
//! exchanges count publishes in and messages routed out (through the route cache, headers
//! routing, exchange-to-exchange bindings, the default exchange and the API), a queue shows
//! its consumers, sizes, memory figures, consumer capacity, idle time and head timestamp,
//! a stream its members and readers, and `rabbitmq_http_client` parses them all.

use lapin::options::{BasicAckOptions, BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use rabbitmq_http_client::blocking_api::ClientBuilder;
use serde_json::{json, Value};

use crate::harness::broker::Broker;
use crate::harness::http::{guest, until};
use crate::harness::lapin_client::{
    consume, consume_with, declare, declare_with, next, publish, publish_props, s, table, within, Server,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// A connection to `broker` and a channel on it in confirm mode.
async fn open(broker: Broker) -> (Server, Connection, Channel) {
    let server = Server::warren(broker);
    let (connection, channel) = server.open_confirming().await;
    (server, connection, channel)
}

async fn exchange(channel: &Channel, name: &str, kind: ExchangeKind) {
    within(
        "exchange.declare",
        channel.exchange_declare(name, kind, ExchangeDeclareOptions::default(), FieldTable::default()),
    )
    .await
    .expect("exchange.declare");
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within("queue.bind", channel.queue_bind(queue, exchange, key, QueueBindOptions::default(), args))
        .await
        .expect("queue.bind");
}

fn with_header(value: &str) -> BasicProperties {
    BasicProperties::default().with_headers(table(vec![("h", s(value))]))
}

/// `message_stats` of exchange `name` in `/`, once `publish_in` reaches `publish_in`.
fn exchange_stats(addr: &str, name: &str, publish_in: u64) -> Value {
    let path = format!("/api/exchanges/%2F/{name}");
    until(addr, &path, |x| x["message_stats"]["publish_in"] == publish_in)["message_stats"].clone()
}

/// Publishes into an exchange count once each, whether routed or not; messages routed out
/// count once per queue reached, at the exchange published to (not at an exchange a
/// message passes through), as RabbitMQ counts them.
#[test]
fn exchanges_count_publishes_in_and_messages_routed_out() {
    let rt = runtime();
    let (server, _connection, channel) = rt.block_on(open(Broker::start(&["--storage", "memory"])));
    let addr = server.warren.as_ref().expect("warren").addr("http").to_owned();
    rt.block_on(async {
        for queue in ["q1", "q2", "q3"] {
            declare(&channel, queue, FieldTable::default()).await;
        }
        exchange(&channel, "x-direct", ExchangeKind::Direct).await;
        exchange(&channel, "x-topic", ExchangeKind::Topic).await;
        exchange(&channel, "x-headers", ExchangeKind::Headers).await;
        exchange(&channel, "x-idle", ExchangeKind::Fanout).await;
        bind(&channel, "q1", "x-direct", "k", FieldTable::default()).await;
        bind(&channel, "q2", "x-direct", "k", FieldTable::default()).await;
        bind(&channel, "q3", "x-topic", "t.#", FieldTable::default()).await;
        within(
            "exchange.bind",
            channel.exchange_bind("x-direct", "x-topic", "k", Default::default(), FieldTable::default()),
        )
        .await
        .expect("exchange.bind");
        bind(&channel, "q1", "x-headers", "", table(vec![("x-match", s("all")), ("h", s("v"))])).await;
        for _ in 0..10 {
            publish(&channel, "x-direct", "k", b"to two queues").await;
        }
        for _ in 0..3 {
            publish(&channel, "x-direct", "nowhere", b"unroutable").await;
        }
        for _ in 0..4 {
            publish(&channel, "x-topic", "k", b"through x-direct").await;
        }
        for _ in 0..2 {
            publish(&channel, "x-topic", "t.a", b"to q3").await;
        }
        for value in ["v", "v", "v", "v", "v", "other", "other"] {
            publish_props(&channel, "x-headers", "", b"headers", with_header(value)).await;
        }
        for _ in 0..3 {
            publish(&channel, "", "q1", b"default exchange").await;
        }
    });
    let api_publish =
        json!({"properties": {}, "routing_key": "k", "payload": "x", "payload_encoding": "string"});
    let published = guest(&addr, "POST", "/api/exchanges/%2F/x-direct/publish", &api_publish.to_string());
    assert_eq!(published.json(), json!({"routed": true}));

    let direct = exchange_stats(&addr, "x-direct", 14);
    assert_eq!(direct["publish_out"], 22, "2 queues for each of 11 routed publishes: {direct}");
    assert!(
        direct["publish_in_details"]["rate"].is_number() && direct["publish_out_details"]["rate"].is_number()
    );
    assert_eq!(exchange_stats(&addr, "x-topic", 6)["publish_out"], 10);
    assert_eq!(exchange_stats(&addr, "x-headers", 7)["publish_out"], 5);
    assert_eq!(exchange_stats(&addr, "amq.default", 3)["publish_out"], 3);

    let idle = guest(&addr, "GET", "/api/exchanges/%2F/x-idle", "").json();
    assert!(idle.get("message_stats").is_none(), "no traffic, no message_stats: {idle}");
    assert_eq!((&idle["incoming"], &idle["outgoing"]), (&json!([]), &json!([])));
    let listed = guest(&addr, "GET", "/api/exchanges/%2F", "").json();
    let listed_direct =
        listed.as_array().and_then(|l| l.iter().find(|x| x["name"] == "x-direct")).expect("listed");
    assert_eq!(listed_direct["message_stats"]["publish_in"], 14);
    assert!(listed_direct.get("incoming").is_none(), "per-channel lists are for one exchange only");

    let client = ClientBuilder::new()
        .with_endpoint(format!("http://{addr}/api"))
        .with_basic_auth_credentials("guest", "guest")
        .build()
        .expect("client");
    assert!(client.list_exchanges_in("/").expect("exchanges parse").iter().any(|x| x.name == "x-direct"));
}

/// An exchange deleted and declared again counts from zero, and a connection that
/// published to the old one counts its later publishes, cached routes or not, against the
/// new one.
#[test]
fn a_redeclared_exchange_counts_from_zero() {
    let rt = runtime();
    let (server, _connection, channel) = rt.block_on(open(Broker::start(&["--storage", "memory"])));
    let addr = server.warren.as_ref().expect("warren").addr("http").to_owned();
    rt.block_on(async {
        declare(&channel, "rq", FieldTable::default()).await;
        exchange(&channel, "rx", ExchangeKind::Direct).await;
        bind(&channel, "rq", "rx", "k", FieldTable::default()).await;
        publish(&channel, "rx", "k", b"old").await;
        publish(&channel, "rx", "k", b"old").await;
        publish_props(&channel, "rx", "k", b"old, with headers", with_header("v")).await;
    });
    assert_eq!(exchange_stats(&addr, "rx", 3)["publish_out"], 3);
    rt.block_on(async {
        within("exchange.delete", channel.exchange_delete("rx", Default::default())).await.expect("delete");
        exchange(&channel, "rx", ExchangeKind::Direct).await;
        bind(&channel, "rq", "rx", "k", FieldTable::default()).await;
        publish_props(&channel, "rx", "k", b"new, with headers", with_header("v")).await;
        for _ in 0..3 {
            publish(&channel, "rx", "k", b"new").await;
        }
    });
    assert_eq!(exchange_stats(&addr, "rx", 4)["publish_out"], 4);
}

/// `GET /api/queues/%2F/{name}`.
fn queue(addr: &str, name: &str) -> Value {
    guest(addr, "GET", &format!("/api/queues/%2F/{name}"), "").json()
}

/// A queue's figures named `names`, as a JSON object.
fn figures(queue: &Value, names: &[&str]) -> Value {
    Value::Object(names.iter().map(|name| ((*name).to_owned(), queue[*name].clone())).collect())
}

const SIZES: &[&str] = &[
    "message_bytes",
    "message_bytes_ready",
    "message_bytes_unacknowledged",
    "message_bytes_ram",
    "message_bytes_paged_out",
    "messages_ram",
    "messages_ready_ram",
    "messages_unacknowledged_ram",
    "messages_paged_out",
];

/// Publishes six persistent 100-byte messages to durable queue `name`, then consumes two
/// of them (prefetch 2) without acking; returns the consumer, kept alive.
async fn six_with_two_unacked(channel: &Channel, name: &str) -> lapin::Consumer {
    let durable = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
    declare_with(channel, name, durable, FieldTable::default()).await;
    let persistent = BasicProperties::default().with_delivery_mode(2);
    for _ in 0..6 {
        publish_props(channel, "", name, &[b'm'; 100], persistent.clone()).await;
    }
    within("qos", channel.basic_qos(2, BasicQosOptions::default())).await.expect("qos");
    consume(channel, name, false).await
}

/// With memory storage every message is in memory and none survives a restart; sizes are
/// the bodies', ready and unacknowledged. A queue with a byte limit sizes even the backlog
/// it has not read; another counts appends to its backlog within a second, and sizes them
/// at their size in the log (no smaller) until then.
#[test]
fn queue_sizes_with_memory_storage() {
    let rt = runtime();
    let (server, _connection, channel) = rt.block_on(open(Broker::start(&["--storage", "memory"])));
    let addr = server.warren.as_ref().expect("warren").addr("http").to_owned();
    let _consumer = rt.block_on(six_with_two_unacked(&channel, "sized"));
    let sized = until(&addr, "/api/queues/%2F/sized", |q| q["messages_unacknowledged"] == 2);
    let expected = json!({
        "message_bytes": 600, "message_bytes_ready": 400, "message_bytes_unacknowledged": 200,
        "message_bytes_ram": 600, "message_bytes_paged_out": 0,
        "messages_ram": 6, "messages_ready_ram": 4, "messages_unacknowledged_ram": 2, "messages_paged_out": 0,
    });
    assert_eq!(figures(&sized, SIZES), expected);
    assert_eq!(
        figures(&sized, &["messages_persistent", "message_bytes_persistent", "recoverable_slaves"]),
        json!({"messages_persistent": 0, "message_bytes_persistent": 0, "recoverable_slaves": null})
    );

    rt.block_on(async {
        declare(&channel, "limited", table(vec![("x-max-length-bytes", AMQPValue::LongInt(100_000))])).await;
        declare(&channel, "unread", FieldTable::default()).await;
        for _ in 0..5 {
            publish(&channel, "", "limited", &[b'l'; 100]).await;
            publish(&channel, "", "unread", &[b'u'; 100]).await;
        }
    });
    assert_eq!(queue(&addr, "limited")["message_bytes_ready"], 500);
    let unread = queue(&addr, "unread")["message_bytes_ready"].as_u64().expect("a size");
    assert!(unread >= 500, "bodies, with properties and framing where not counted yet: {unread}");
    until(&addr, "/api/queues/%2F/unread", |q| q["message_bytes_ready"] == 500);
}

/// On disc, the messages read ahead of delivery are the ones in memory, the rest are on
/// disc; a durable queue's persistent count is left out, a transient queue's is 0.
#[test]
fn queue_sizes_on_disc() {
    let rt = runtime();
    let (server, _connection, channel) = rt.block_on(open(Broker::start(&["--fsync", "never"])));
    let addr = server.warren.as_ref().expect("warren").addr("http").to_owned();
    let _consumer = rt.block_on(six_with_two_unacked(&channel, "on-disc"));
    let on_disc = until(&addr, "/api/queues/%2F/on-disc", |q| q["messages_unacknowledged"] == 2);
    let expected = json!({
        "message_bytes": 600, "message_bytes_ready": 400, "message_bytes_unacknowledged": 200,
        "message_bytes_ram": 400, "message_bytes_paged_out": 200,
        "messages_ram": 4, "messages_ready_ram": 4, "messages_unacknowledged_ram": 0, "messages_paged_out": 2,
    });
    assert_eq!(figures(&on_disc, SIZES), expected);
    assert!(
        on_disc.get("messages_persistent").is_none() && on_disc.get("message_bytes_persistent").is_none()
    );
    rt.block_on(declare(&channel, "transient", FieldTable::default()));
    assert_eq!(queue(&addr, "transient")["messages_persistent"], 0);
}

/// Consumer capacity is 0 without consumers, 1.0 while they can take messages, falls while
/// every consumer is held back by its prefetch with messages waiting, and recovers once
/// they can take again; `consumer_utilisation` is the same figure.
#[test]
fn consumer_capacity_follows_held_back_consumers() {
    let rt = runtime();
    let (server, _connection, channel) = rt.block_on(open(Broker::start(&["--storage", "memory"])));
    let addr = server.warren.as_ref().expect("warren").addr("http").to_owned();
    rt.block_on(declare(&channel, "cap", FieldTable::default()));
    let idle = queue(&addr, "cap");
    assert_eq!((&idle["consumer_capacity"], &idle["consumer_utilisation"]), (&json!(0.0), &json!(0.0)));
    let mut consumer = rt.block_on(async {
        within("qos", channel.basic_qos(1, BasicQosOptions::default())).await.expect("qos");
        let consumer = consume(&channel, "cap", false).await;
        for _ in 0..3 {
            publish(&channel, "", "cap", b"waits").await;
        }
        consumer
    });
    let held =
        until(&addr, "/api/queues/%2F/cap", |q| q["consumer_capacity"].as_f64().is_some_and(|c| c < 0.9));
    assert_eq!(held["consumer_utilisation"].as_f64().map(|u| u < 0.9), Some(true));
    rt.block_on(async {
        for _ in 0..3 {
            let delivery = next(&mut consumer).await;
            within("ack", delivery.ack(BasicAckOptions::default())).await.expect("ack");
        }
    });
    until(&addr, "/api/queues/%2F/cap", |q| q["consumer_capacity"].as_f64().is_some_and(|c| c > 0.9));
}

/// The head's `timestamp` property shows once the queue has read it; a queue that has had
/// no work for a second shows since when, in RabbitMQ 3.10's time format, and a later
/// publish moves that time.
#[test]
fn head_timestamp_and_idle_since() {
    let rt = runtime();
    let (server, _connection, channel) = rt.block_on(open(Broker::start(&["--storage", "memory"])));
    let addr = server.warren.as_ref().expect("warren").addr("http").to_owned();
    rt.block_on(declare(&channel, "stamped", FieldTable::default()));
    assert_eq!(queue(&addr, "stamped")["head_message_timestamp"], Value::Null);
    let stamped = BasicProperties::default().with_timestamp(1_600_000_000);
    rt.block_on(publish_props(&channel, "", "stamped", b"old news", stamped));
    rt.block_on(publish(&channel, "", "stamped", b"no stamp"));
    until(&addr, "/api/queues/%2F/stamped", |q| q["head_message_timestamp"] == 1_600_000_000_u64);

    let first =
        until(&addr, "/api/queues/%2F/stamped", |q| q["idle_since"].is_string())["idle_since"].clone();
    let text = first.as_str().expect("a string");
    let shape = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$").expect("regex");
    assert!(shape.is_match(text), "{text}");
    rt.block_on(publish(&channel, "", "stamped", b"wakes it"));
    until(&addr, "/api/queues/%2F/stamped", |q| q["idle_since"].is_string() && q["idle_since"] != first);
}

/// One queue lists its consumers as RabbitMQ does (a listing does not); its per-channel
/// lists are empty (RabbitMQ's `basic` rates mode).
#[test]
fn a_queue_shows_its_consumers() {
    let rt = runtime();
    let (server, _connection, channel) = rt.block_on(open(Broker::start(&["--storage", "memory"])));
    let addr = server.warren.as_ref().expect("warren").addr("http").to_owned();
    let _consumers = rt.block_on(async {
        declare(&channel, "watched", FieldTable::default()).await;
        declare(&channel, "elsewhere", FieldTable::default()).await;
        within("qos", channel.basic_qos(5, BasicQosOptions::default())).await.expect("qos");
        (consume(&channel, "watched", false).await, consume(&channel, "elsewhere", true).await)
    });
    let shown = until(&addr, "/api/queues/%2F/watched", |q| q["consumers"] == 1);
    let details = shown["consumer_details"].as_array().expect("consumer_details");
    assert_eq!(details.len(), 1, "{shown}");
    let consumer = &details[0];
    assert_eq!(consumer["queue"], json!({"name": "watched", "vhost": "/"}));
    assert_eq!(
        figures(
            consumer,
            &["ack_required", "prefetch_count", "exclusive", "active", "activity_status", "arguments"]
        ),
        json!({"ack_required": true, "prefetch_count": 5, "exclusive": false, "active": true,
               "activity_status": "up", "arguments": {}})
    );
    let channel_details = &consumer["channel_details"];
    assert_eq!((&channel_details["number"], &channel_details["user"]), (&json!(1), &json!("guest")));
    let connection_name = channel_details["connection_name"].as_str().expect("connection name");
    assert_eq!(channel_details["name"], format!("{connection_name} (1)"));
    assert!(consumer["consumer_tag"].as_str().is_some_and(|t| t.starts_with("amq.ctag-")));
    assert_eq!((&shown["deliveries"], &shown["incoming"]), (&json!([]), &json!([])));
    assert_eq!(shown["consumer_capacity"], 1.0);

    let listed = guest(&addr, "GET", "/api/queues/%2F", "").json();
    assert!(listed.as_array().expect("list").iter().all(|q| q.get("consumer_details").is_none()));
    let client = ClientBuilder::new()
        .with_endpoint(format!("http://{addr}/api"))
        .with_basic_auth_credentials("guest", "guest")
        .build()
        .expect("client");
    let info = client.get_queue_info("/", "watched").expect("queue info parses");
    assert_eq!((info.consumer_count, info.consumer_utilisation), (1, 1.0));
    assert!(client.list_queues_in("/").expect("queues parse").len() >= 2);
}

/// A stream lists the one node as its member, online, and its readers there.
#[test]
fn a_stream_shows_its_members_and_readers() {
    let rt = runtime();
    let (server, _connection, channel) = rt.block_on(open(Broker::start(&["--storage", "memory"])));
    let addr = server.warren.as_ref().expect("warren").addr("http").to_owned();
    let _consumer = rt.block_on(async {
        let durable = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
        declare_with(&channel, "st", durable, table(vec![("x-queue-type", s("stream"))])).await;
        within("qos", channel.basic_qos(10, BasicQosOptions::default())).await.expect("qos");
        consume(&channel, "st", false).await
    });
    let stream = until(&addr, "/api/queues/%2F/st", |q| q["consumers"] == 1);
    let node = stream["node"].clone();
    assert_eq!((&stream["members"], &stream["online"]), (&json!([node]), &json!([node])));
    assert_eq!(stream["readers"], json!({ node.as_str().expect("node"): 1 }));
    assert_eq!(stream["consumer_details"].as_array().map(Vec::len), Some(1));
    // Warren's own key: each stream consumer's committed offset and lag.
    let consumers = stream["stream_consumers"].as_array().expect("stream_consumers");
    assert_eq!(consumers.len(), 1);
    assert_eq!(consumers[0]["committed_offset"], 0);
    assert_eq!(consumers[0]["lag_messages"], 0);
}

/// A named stream consumer that read three of five messages and acked two shows its
/// committed offset and a lag of three messages.
#[test]
fn a_stream_consumer_shows_its_offset_and_lag() {
    let rt = runtime();
    let (server, _connection, channel) = rt.block_on(open(Broker::start(&["--storage", "memory"])));
    let addr = server.warren.as_ref().expect("warren").addr("http").to_owned();
    let _consumer = rt.block_on(async {
        let durable = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
        declare_with(&channel, "lagged", durable, table(vec![("x-queue-type", s("stream"))])).await;
        for i in 0..5u8 {
            publish(&channel, "", "lagged", &[i]).await;
        }
        within("qos", channel.basic_qos(3, BasicQosOptions::default())).await.expect("qos");
        let from_first = table(vec![("x-stream-offset", s("first"))]);
        let mut consumer =
            consume_with(&channel, "lagged", lapin::options::BasicConsumeOptions::default(), from_first)
                .await;
        let mut deliveries = Vec::new();
        for _ in 0..3 {
            deliveries.push(next(&mut consumer).await);
        }
        for delivery in deliveries.iter().take(2) {
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
        consumer
    });
    let stream = until(&addr, "/api/queues/%2F/lagged", |q| {
        q["stream_consumers"].get(0).is_some_and(|c| c["committed_offset"] == 2)
    });
    let consumer = &stream["stream_consumers"][0];
    assert_eq!((&consumer["committed_offset"], &consumer["lag_messages"]), (&json!(2), &json!(3)));
    assert!(consumer["lag_bytes"].as_u64().is_some_and(|b| b > 0));
}
