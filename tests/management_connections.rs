//! The management API's connections, channels and consumers against the real broker, with
//! lapin clients connected: the `rabbitmq_http_client` crate lists and closes them (and
//! must parse every reply), a closed connection gets 320 and the reason, message counters
//! follow the traffic, a management user sees only their own connections, and the replies
//! have RabbitMQ 3.10.8's keys.

use lapin::options::{BasicPublishOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use rabbitmq_http_client::blocking_api::{Client, ClientBuilder};
use serde_json::{json, Value};

use crate::harness::broker::Broker;
use crate::harness::golden::assert_golden_keys;
use crate::harness::http::{guest, request, until, until_within};
use crate::harness::lapin_client::{consume, get, int, publish, publish_confirmation, table, within, Errors};

type Api = Client<String, String, String>;

/// Connection keys Warren does not measure: none.
const CONNECTION_OMITTED: &[&str] = &[];

/// Channel keys of RabbitMQ machinery Warren does not have: commands waiting for quorum
/// queues' Raft logs.
const CHANNEL_OMITTED: &[&str] = &["pending_raft_commands"];

fn client(broker: &Broker) -> Api {
    ClientBuilder::new()
        .with_endpoint(format!("http://{}/api", broker.addr("http")))
        .with_basic_auth_credentials("guest".to_owned(), "guest".to_owned())
        .build()
        .expect("client")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// A lapin connection as `user` with the client-provided name `name`.
async fn connect_named(broker: &Broker, user: &str, password: &str, name: &str) -> Connection {
    let url = format!("amqp://{user}:{password}@{}/%2F", broker.addr("amqp"));
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    within("connect", Connection::connect(&url, properties)).await.expect("connect")
}

/// A connection with a channel (prefetch 10) consuming from `queue`, after publishing and
/// receiving nothing; the consumer is kept alive by the returned connection.
async fn consuming(broker: &Broker, name: &str, queue: &str) -> (Connection, lapin::Consumer) {
    let connection = connect_named(broker, "guest", "guest", name).await;
    let channel = within("channel", connection.create_channel()).await.expect("channel");
    within("qos", channel.basic_qos(10, BasicQosOptions::default())).await.expect("qos");
    within("declare", channel.queue_declare(queue, QueueDeclareOptions::default(), FieldTable::default()))
        .await
        .expect("declare");
    let consumer = consume(&channel, queue, false).await;
    (connection, consumer)
}

/// Lists connections, channels and consumers with the Rust client, then closes the
/// connection through it: the client gets 320 and the reason.
#[test]
fn rust_client_lists_connections_channels_consumers_and_closes_one() {
    let broker = Broker::start(&["--storage", "memory"]);
    let api = client(&broker);
    let rt = runtime();
    let (connection, _consumer) = rt.block_on(consuming(&broker, "listed", "cq"));
    let mut errors = Errors::of_connection(&connection);
    let connections = api.list_connections().expect("connections");
    let listed = connections.first().expect("one connection");
    assert_eq!(
        (connections.len(), listed.username.as_str(), listed.protocol.as_str()),
        (1, "guest", "AMQP 0-9-1")
    );
    assert_eq!(listed.client_properties.connection_name, "listed");
    assert_eq!(listed.channel_count, 1);
    assert_eq!(api.get_connection_info(&listed.name).expect("connection").name, listed.name);
    assert_eq!(api.list_connections_in("/").expect("in vhost").len(), 1);
    let channels = api.list_channels().expect("channels");
    let channel = channels.first().expect("one channel");
    assert_eq!((channel.consumer_count, channel.prefetch_count), (1, 10));
    assert_eq!(channel.connection_details.name, listed.name);
    assert_eq!(api.get_channel_info(&channel.name).expect("channel").name, channel.name);
    assert_eq!(api.list_channels_on(&listed.name).expect("on connection").len(), 1);
    assert_eq!(api.list_channels_in("/").expect("in vhost").len(), 1);
    let consumers = api.list_consumers().expect("consumers");
    let consumer = consumers.first().expect("one consumer");
    assert_eq!(
        (consumer.queue.name.as_str(), consumer.manual_ack, consumer.prefetch_count),
        ("cq", true, 10)
    );
    assert_eq!(consumer.channel_details.as_ref().map(|c| c.name.clone()), Some(channel.name.clone()));
    assert_eq!(api.list_consumers_in("/").expect("in vhost").len(), 1);

    api.close_connection(&listed.name, Some("closed by a test"), false).expect("close");
    rt.block_on(async {
        assert_eq!(errors.next().await, "320 CONNECTION_FORCED - closed by a test");
    });
    until(broker.addr("http"), "/api/connections", |list| list == &json!([]));
    assert!(api.close_connection(&listed.name, None, false).is_err(), "404 once closed");
    assert!(api.list_channels().expect("channels").is_empty());
    assert!(api.list_consumers().expect("consumers").is_empty());
}

/// Without `X-Reason` the reason is RabbitMQ's default; a management user sees and closes
/// only their own connections, a monitoring user sees every one.
#[test]
fn closing_and_seeing_connections_follow_rabbitmqs_rules() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    let all = r#"{"configure":".*","write":".*","read":".*"}"#;
    for (user, tags) in [("man", "management"), ("mon", "monitoring")] {
        let body = json!({"password": "pw", "tags": tags}).to_string();
        assert_eq!(guest(&addr, "PUT", &format!("/api/users/{user}"), &body).status, 201);
        assert_eq!(guest(&addr, "PUT", &format!("/api/permissions/%2F/{user}"), all).status, 201);
    }
    let rt = runtime();
    let (guests, mine) = rt.block_on(async {
        (connect_named(&broker, "guest", "guest", "g").await, connect_named(&broker, "man", "pw", "m").await)
    });
    let mut errors = Errors::of_connection(&guests);
    let as_user = |user: &str, method: &str, path: &str| request(&addr, method, path, "", (user, "pw"), &[]);
    let every = until(&addr, "/api/connections", |list| list.as_array().is_some_and(|l| l.len() == 2));
    let name_of = |user: &str| {
        every
            .as_array()
            .and_then(|l| l.iter().find(|c| c["user"] == user))
            .and_then(|c| c["name"].as_str())
            .map(str::to_owned)
            .expect("listed")
    };
    let (guest_name, own_name) = (name_of("guest"), name_of("man"));
    let own = as_user("man", "GET", "/api/connections").json();
    assert_eq!(
        own.as_array().map(|l| l.iter().map(|c| c["user"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("man")])
    );
    assert_eq!(as_user("mon", "GET", "/api/connections").json().as_array().map(Vec::len), Some(2));
    assert_eq!(as_user("man", "GET", "/api/vhosts/%2F/connections").json().as_array().map(Vec::len), Some(1));
    assert_eq!(as_user("mon", "GET", "/api/channels").json(), json!([]));
    let path = |name: &str| format!("/api/connections/{}", name.replace(' ', "%20").replace('>', "%3E"));
    let refused = as_user("man", "GET", &path(&guest_name));
    assert_eq!(
        (refused.status, refused.json()["reason"].clone()),
        (401, json!("User not authorised to access object"))
    );
    assert_eq!(
        as_user("mon", "DELETE", &path(&guest_name)).status,
        401,
        "monitoring users close only their own"
    );
    assert_eq!(as_user("man", "DELETE", &path(&own_name)).status, 204);
    assert_eq!(guest(&addr, "DELETE", &path(&guest_name), "").status, 204);
    rt.block_on(async {
        assert_eq!(errors.next().await, "320 CONNECTION_FORCED - Closed via management plugin");
    });
    drop(mine);
    until(&addr, "/api/connections", |list| list == &json!([]));
    assert_eq!(guest(&addr, "DELETE", &path(&guest_name), "").status, 404, "closed already");
    assert_eq!(guest(&addr, "POST", "/api/connections", "").status, 405);
    assert_eq!(guest(&addr, "GET", "/api/channels/a/b", "").status, 404);
}

/// A channel's message statistics count what it published, was delivered and acked.
#[test]
fn channel_message_stats_follow_the_traffic() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    let rt = runtime();
    let _kept = rt.block_on(async {
        let connection = connect_named(&broker, "guest", "guest", "stats").await;
        let channel = within("channel", connection.create_channel()).await.expect("channel");
        within("declare", channel.queue_declare("sq", QueueDeclareOptions::default(), FieldTable::default()))
            .await
            .expect("declare");
        for body in [b"1", b"2", b"3"] {
            publish(&channel, "", "sq", body).await;
        }
        let mut consumer = consume(&channel, "sq", false).await;
        for _ in 0..3 {
            let delivery = crate::harness::lapin_client::next(&mut consumer).await;
            within("ack", delivery.ack(Default::default())).await.expect("ack");
        }
        (connection, channel, consumer)
    });
    let channels = until(&addr, "/api/channels", |list| list[0]["message_stats"]["ack"] == 3);
    let stats = &channels[0]["message_stats"];
    assert_eq!(
        (&stats["publish"], &stats["deliver"], &stats["deliver_get"]),
        (&json!(3), &json!(3), &json!(3)),
        "{stats}"
    );
    assert_eq!(
        (&stats["deliver_no_ack"], &stats["get"], &stats["redeliver"]),
        (&json!(0), &json!(0), &json!(0))
    );
    let connection = &guest(&addr, "GET", "/api/connections", "").json()[0];
    assert!(
        connection["recv_oct"].as_u64().is_some_and(|n| n > 0)
            && connection["send_cnt"].as_u64().is_some_and(|n| n > 0)
    );
}

/// The keys of each reply are those of RabbitMQ 3.10.8's for the same object, less what
/// Warren does not measure, plus `consumer_timeout` (which `rabbitmq_http_client` needs).
#[test]
fn replies_have_rabbitmqs_keys() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    let rt = runtime();
    let _kept = rt.block_on(async {
        let (connection, consumer) = consuming(&broker, "keys", "kq").await;
        let channel = within("channel", connection.create_channel()).await.expect("channel");
        let args = table(vec![("x-priority", int(1))]);
        within(
            "declare",
            channel.queue_declare("kq2", QueueDeclareOptions::default(), FieldTable::default()),
        )
        .await
        .expect("declare");
        let prioritised = within("consume", channel.basic_consume("kq2", "", Default::default(), args))
            .await
            .expect("consume");
        publish(&channel, "", "kq", b"x").await;
        (connection, consumer, channel, prioritised)
    });
    let connections = until(&addr, "/api/connections", |list| list[0]["channels"] == 2);
    assert_golden_keys("connections.json", &connections, CONNECTION_OMITTED, &[]);
    assert_golden_keys(
        "vhosts.vhost.connections.json",
        &guest(&addr, "GET", "/api/vhosts/%2F/connections", "").json(),
        CONNECTION_OMITTED,
        &[],
    );
    let name = connections[0]["name"].as_str().expect("name").replace(' ', "%20").replace('>', "%3E");
    assert_golden_keys(
        "connections.name.json",
        &guest(&addr, "GET", &format!("/api/connections/{name}"), "").json(),
        CONNECTION_OMITTED,
        &[],
    );
    // Both channels have counted something, and are idle (RabbitMQ's were, when captured).
    let channels = until(&addr, "/api/channels", |list| {
        list.as_array().is_some_and(|l| {
            l.iter().all(|c| c.get("message_stats").is_some() && c.get("idle_since").is_some())
        })
    });
    assert_golden_keys("channels.json", &channels, CHANNEL_OMITTED, &[]);
    assert_golden_keys(
        "vhosts.vhost.channels.json",
        &guest(&addr, "GET", "/api/vhosts/%2F/channels", "").json(),
        CHANNEL_OMITTED,
        &[],
    );
    assert_golden_keys(
        "connections.name.channels.json",
        &guest(&addr, "GET", &format!("/api/connections/{name}/channels"), "").json(),
        CHANNEL_OMITTED,
        &[],
    );
    let channel = channels[0]["name"].as_str().expect("name").replace(' ', "%20").replace('>', "%3E");
    let one = guest(&addr, "GET", &format!("/api/channels/{channel}"), "").json();
    assert_golden_keys("channels.name.json", &one, CHANNEL_OMITTED, &[]);
    let consumers = guest(&addr, "GET", "/api/consumers", "").json();
    assert_golden_keys("consumers.json", &consumers, &[], &["consumer_timeout"]);
    assert_golden_keys(
        "consumers.vhost.json",
        &guest(&addr, "GET", "/api/consumers/%2F", "").json(),
        &[],
        &["consumer_timeout"],
    );
    assert!(
        consumers.as_array().is_some_and(|l| l.iter().any(|c| c["arguments"] == json!({"x-priority": 1}))),
        "{consumers}"
    );
}

/// A transactional channel shows the publishes and acks it holds until the commit.
#[test]
fn a_transaction_shows_what_it_holds() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    let rt = runtime();
    let (connection, channel) = rt.block_on(async {
        let connection = connect_named(&broker, "guest", "guest", "tx").await;
        let channel = within("channel", connection.create_channel()).await.expect("channel");
        within(
            "declare",
            channel.queue_declare("txq", QueueDeclareOptions::default(), FieldTable::default()),
        )
        .await
        .expect("declare");
        within("tx.select", channel.tx_select()).await.expect("tx.select");
        publish(&channel, "", "txq", b"1").await;
        publish(&channel, "", "txq", b"2").await;
        (connection, channel)
    });
    let held = until(&addr, "/api/channels", |list| list[0]["messages_uncommitted"] == 2);
    assert_eq!((&held[0]["transactional"], &held[0]["acks_uncommitted"]), (&json!(true), &json!(0)));
    rt.block_on(async { within("tx.commit", channel.tx_commit()).await.expect("tx.commit") });
    until(&addr, "/api/channels", |list| list[0]["messages_uncommitted"] == 0);
    drop((channel, connection));
}

/// `GET /api/channels/{name}` and `/api/connections/{name}` paths of a listed name.
fn path_of(kind: &str, name: &Value) -> String {
    let name = name.as_str().expect("a name").replace(' ', "%20").replace('>', "%3E");
    format!("/api/{kind}/{name}")
}

/// Empty gets and unroutable publishes are counted (dropped or returned), each object
/// names the user who opened it, a channel shows `idle_since` only after a second without
/// work, and a single channel's per-queue and per-exchange lists are empty, as in
/// RabbitMQ's `basic` rates mode.
#[test]
fn empty_gets_unroutable_publishes_and_idleness_are_shown() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    let rt = runtime();
    let (kept, worked_at) = rt.block_on(async {
        let connection = connect_named(&broker, "guest", "guest", "counts").await;
        let channel = within("channel", connection.create_channel()).await.expect("channel");
        within("declare", channel.queue_declare("eq", QueueDeclareOptions::default(), FieldTable::default()))
            .await
            .expect("declare");
        assert!(get(&channel, "eq", false).await.is_none() && get(&channel, "eq", true).await.is_none());
        publish(&channel, "", "nowhere", b"dropped").await;
        let mandatory = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        publish_confirmation(&channel, "", "nowhere", mandatory, b"returned", Default::default()).await;
        // A round trip after the publishes: they have been handled.
        assert!(get(&channel, "eq", true).await.is_none());
        ((connection, channel), std::time::Instant::now())
    });
    let channels = until(&addr, "/api/channels", |list| list[0]["message_stats"]["get_empty"] == 3);
    let channel = &channels[0];
    let stats = &channel["message_stats"];
    let counted = |names: &[&str]| names.iter().map(|n| stats[*n].clone()).collect::<Vec<_>>();
    assert_eq!(
        counted(&["publish", "drop_unroutable", "return_unroutable", "confirm"]),
        [json!(2), json!(1), json!(1), json!(0)],
        "{stats}"
    );
    assert_eq!(
        counted(&["get", "get_no_ack", "deliver_get", "ack"]),
        [json!(0), json!(0), json!(0), json!(0)]
    );
    assert!(
        stats["get_empty_details"]["rate"].is_number()
            && stats["drop_unroutable_details"]["rate"].is_number()
    );
    assert_eq!(channel["user_who_performed_action"], "guest");
    let connection =
        guest(&addr, "GET", &path_of("connections", &channel["connection_details"]["name"]), "").json();
    assert_eq!(connection["user_who_performed_action"], "guest");
    assert!(
        connection["recv_oct_details"]["rate"].is_number()
            && connection["send_oct_details"]["rate"].is_number()
    );

    let one = guest(&addr, "GET", &path_of("channels", &channel["name"]), "").json();
    assert_eq!((&one["deliveries"], &one["publishes"]), (&json!([]), &json!([])));
    if worked_at.elapsed() < std::time::Duration::from_millis(900) {
        assert!(one.get("idle_since").is_none(), "a channel that just worked is not idle: {one}");
    }
    let idle = until(&addr, &path_of("channels", &channel["name"]), |c| c.get("idle_since").is_some());
    let since = idle["idle_since"].as_str().expect("a time");
    // RFC 3339 in UTC with milliseconds, as RabbitMQ 3.10.8 writes times.
    let (date, time) = since.split_once('T').expect("date and time");
    let date: Vec<u32> = date.split('-').map(|p| p.parse().expect("a number")).collect();
    let time = time.strip_suffix("+00:00").expect("UTC");
    let hms: Vec<f64> = time.split(':').map(|p| p.parse().expect("a number")).collect();
    assert!(date.len() == 3 && date[0] >= 2024 && hms.len() == 3 && hms[0] < 24.0, "{since}");
    drop(kept);
}

/// Traffic across two samples of the statistics gives a connection's byte rates and a
/// channel's message rates.
#[test]
fn rates_follow_the_traffic() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    let rt = runtime();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let publisher = rt.spawn({
        let url = format!("amqp://guest:guest@{}/%2F", broker.addr("amqp"));
        async move {
            let connection = within("connect", Connection::connect(&url, ConnectionProperties::default()))
                .await
                .expect("connect");
            let channel = within("channel", connection.create_channel()).await.expect("channel");
            within(
                "declare",
                channel.queue_declare("rq", QueueDeclareOptions::default(), FieldTable::default()),
            )
            .await
            .expect("declare");
            // Confirms make the broker send as well as receive.
            within("confirm.select", channel.confirm_select(Default::default()))
                .await
                .expect("confirm.select");
            tokio::pin!(stopped);
            loop {
                publish(&channel, "", "rq", b"tick").await;
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
                }
            }
            connection
        }
    });
    // Two samples are at most two sample intervals (5 s each) apart.
    let channels = until_within(&addr, "/api/channels", 12, |list| {
        list[0]["message_stats"]["publish_details"]["rate"].as_f64().is_some_and(|r| r > 0.0)
    });
    let connections = guest(&addr, "GET", "/api/connections", "").json();
    let _ = stop.send(());
    let connection = rt.block_on(publisher).expect("publisher");
    assert!(channels[0]["message_stats"]["publish"].as_u64().is_some_and(|n| n > 0));
    let rate = |key: &str| connections[0][key]["rate"].as_f64().unwrap_or_default();
    assert!(rate("recv_oct_details") > 0.0 && rate("send_oct_details") > 0.0, "{connections}");
    drop(connection);
}

/// A consumer that stops reading its socket leaves the node's write to it unfinished: the
/// bytes the socket has not accepted show as `send_pend`, and go back to 0 once it reads.
#[test]
fn a_client_that_does_not_read_has_bytes_pending() {
    use crate::harness::lapin_client::raw::RawConnection;
    use crate::harness::lapin_client::Server;

    /// More than loopback's socket buffers hold at both ends.
    const MESSAGES: usize = 96;
    const BODY_BYTES: usize = 256 * 1024;
    let server = Server::warren(Broker::start(&["--storage", "memory"]));
    let addr = server.warren.as_ref().expect("warren").addr("http").to_owned();
    let rt = runtime();
    let mut raw = rt.block_on(async {
        let (connection, channel) = server.open().await;
        within("declare", channel.queue_declare("pq", QueueDeclareOptions::default(), FieldTable::default()))
            .await
            .expect("declare");
        let body = vec![b'x'; BODY_BYTES];
        for _ in 0..MESSAGES {
            publish(&channel, "", "pq", &body).await;
        }
        within("close", connection.close(200, "bye")).await.expect("close");
        let mut raw = RawConnection::open(&server).await;
        // basic.consume of "pq", with no_ack: reserved short, queue, empty tag, bits, no
        // arguments.
        let mut args = vec![0, 0, 2];
        args.extend_from_slice(b"pq");
        args.push(0);
        args.push(0b0010);
        args.extend_from_slice(&0u32.to_be_bytes());
        raw.send(1, 60, 20, &args).await;
        raw
    });
    let pending = |list: &Value| {
        let each = list.as_array().into_iter().flatten().map(|c| c["send_pend"].as_u64());
        each.collect::<Option<Vec<u64>>>().and_then(|all| all.into_iter().max())
    };
    let stuck = until(&addr, "/api/connections", |list| pending(list).is_some_and(|n| n > 0));
    assert!(pending(&stuck).is_some_and(|n| n <= (MESSAGES * BODY_BYTES) as u64), "{stuck}");
    rt.block_on(async {
        let mut delivered = 0;
        while delivered < MESSAGES {
            let frame = raw.read_frame().await;
            if frame.kind == 1 && frame.method() == (60, 60) {
                delivered += 1;
            }
        }
    });
    until(&addr, "/api/connections", |list| pending(list) == Some(0));
    drop(raw);
}
