//! The management HTTP API against the real broker: the `rabbitmq_http_client` crate (the
//! Rust client rabbitmqadmin v2 uses), raw HTTP for status codes, error bodies and list
//! conventions, and Debian's rabbitmqadmin v1.

use std::process::Command;

use rabbitmq_http_client::blocking_api::{Client, ClientBuilder};
use rabbitmq_http_client::commons::ExchangeType;
use rabbitmq_http_client::requests::{ExchangeParams, QueueParams};
use serde_json::{json, Value};

use crate::harness::broker::Broker;

/// `Basic guest:guest`.
const GUEST: &str = "Basic Z3Vlc3Q6Z3Vlc3Q=";

/// One request over a fresh connection: (status, lower-cased headers, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    auth: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let reply = crate::harness::http::send(addr, method, path, body, auth, &[]);
    (reply.status, reply.headers, reply.body)
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn client(broker: &Broker) -> Client<String, &'static str, &'static str> {
    ClientBuilder::new()
        .with_endpoint(format!("http://{}/api", broker.addr("http")))
        .with_basic_auth_credentials("guest", "guest")
        .build()
        .expect("client")
}

#[test]
fn rust_client_declares_lists_publishes_gets_purges_and_deletes() {
    let broker = Broker::start(&[]);
    let client = client(&broker);
    let overview = client.overview().expect("overview");
    assert_eq!(overview.node, format!("warren@{}", overview.node.trim_start_matches("warren@")));
    let nodes = client.list_nodes().expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(client.current_user().expect("whoami").name, "guest");

    client.declare_queue("/", &QueueParams::new_durable_classic_queue("rq", None)).expect("declare queue");
    let params = ExchangeParams::new("rx", ExchangeType::Topic, true, false, None);
    client.declare_exchange("/", &params).expect("declare exchange");
    client.bind_queue("/", "rq", "rx", Some("a.#"), None).expect("bind");
    assert!(client.list_queues().expect("queues").iter().any(|q| q.name == "rq" && q.durable));
    assert!(client.list_exchanges().expect("exchanges").iter().any(|x| x.name == "rx"));
    let bindings = client.list_bindings().expect("bindings");
    assert!(bindings.iter().any(|b| b.source == "rx" && b.destination == "rq" && b.routing_key == "a.#"));

    let routed = client.publish_message("/", "rx", "a.b", "hello", Default::default()).expect("publish");
    assert!(routed.routed);
    let got = client.get_messages("/", "rq", 1, "ack_requeue_true").expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(got.first().map(|m| m.payload.as_str()), Some("hello"));
    client.purge_queue("/", "rq").expect("purge");
    assert_eq!(client.get_queue_info("/", "rq").expect("queue").message_count, 0);
    client.delete_queue("/", "rq", false).expect("delete");
    assert!(client.get_queue_info("/", "rq").is_err(), "deleted queue is gone");
}

#[test]
fn status_codes_and_error_bodies_are_rabbitmqs() {
    let broker = Broker::start(&[]);
    let addr = broker.addr("http");
    let challenge = |headers: &[(String, String)]| {
        headers.iter().any(|(k, v)| k == "www-authenticate" && v == "Basic realm=\"RabbitMQ Management\"")
    };
    let (status, headers, body) = http(addr, "GET", "/api/overview", "", None);
    assert_eq!((status, body.as_str()), (401, ""), "no credentials: only the challenge");
    assert!(challenge(&headers));
    let (status, headers, body) = http(addr, "GET", "/api/overview", "", Some("Basic Z3Vlc3Q6eA=="));
    assert_eq!(status, 401);
    assert_eq!(json_of(&body), json!({"error": "not_authorized", "reason": "Login failed"}));
    assert!(challenge(&headers));

    let (status, _, body) = http(addr, "GET", "/api/queues/%2F/missing", "", Some(GUEST));
    assert_eq!(status, 404);
    assert_eq!(json_of(&body), json!({"error": "Object Not Found", "reason": "Not Found"}));
    assert_eq!(http(addr, "GET", "/api/queues/other", "", Some(GUEST)).0, 404, "only vhost / exists");

    let declare = r#"{"durable":true,"auto_delete":false,"arguments":{"x-max-length":10}}"#;
    assert_eq!(http(addr, "PUT", "/api/queues/%2F/q1", declare, Some(GUEST)).0, 201);
    assert_eq!(http(addr, "PUT", "/api/queues/%2F/q1", declare, Some(GUEST)).0, 204);
    let (status, _, body) = http(addr, "PUT", "/api/queues/%2F/q1", r#"{"durable":false}"#, Some(GUEST));
    assert_eq!(status, 400);
    assert_eq!(
        json_of(&body),
        json!({"error": "bad_request", "reason": "inequivalent arg 'durable' for queue 'q1' in vhost '/': received 'false' but current is 'true'"})
    );

    assert_eq!(
        http(addr, "PUT", "/api/exchanges/%2F/x1", r#"{"type":"topic","durable":true}"#, Some(GUEST)).0,
        201
    );
    let (status, headers, _) =
        http(addr, "POST", "/api/bindings/%2F/e/x1/q/q1", r#"{"routing_key":"a.#"}"#, Some(GUEST));
    assert_eq!(status, 201);
    assert!(headers.iter().any(|(k, v)| k == "location" && v == "q1/a.%2523"), "{headers:?}");
    let (status, _, body) = http(addr, "GET", "/api/bindings/%2F/e/x1/q/q1/a.%2523", "", Some(GUEST));
    assert_eq!(status, 200);
    assert_eq!(json_of(&body)["properties_key"], "a.%23");
    assert_eq!(http(addr, "DELETE", "/api/bindings/%2F/e/x1/q/q1/a.%2523", "", Some(GUEST)).0, 204);
    assert_eq!(http(addr, "DELETE", "/api/bindings/%2F/e/x1/q/q1/a.%2523", "", Some(GUEST)).0, 404);
    assert_eq!(http(addr, "DELETE", "/api/queues/%2F/q1/contents", "", Some(GUEST)).0, 204);
    assert_eq!(http(addr, "DELETE", "/api/exchanges/%2F/x1", "", Some(GUEST)).0, 204);
    assert_eq!(http(addr, "DELETE", "/api/queues/%2F/q1", "", Some(GUEST)).0, 204);
    assert_eq!(http(addr, "DELETE", "/api/queues/%2F/q1", "", Some(GUEST)).0, 404);

    let (status, _, body) = http(addr, "GET", "/api/health/checks/port-listener/1", "", Some(GUEST));
    assert_eq!(status, 503);
    assert_eq!(json_of(&body)["reason"], "No active listener");
    assert_eq!(http(addr, "GET", "/api/aliveness-test/%2F", "", Some(GUEST)).0, 200);
}

#[test]
fn lists_take_pagination_columns_and_sort() {
    let broker = Broker::start(&[]);
    let addr = broker.addr("http");
    for name in ["qa", "qb", "qc"] {
        assert_eq!(http(addr, "PUT", &format!("/api/queues/%2F/{name}"), "{}", Some(GUEST)).0, 201);
    }
    let (_, _, body) =
        http(addr, "GET", "/api/queues?page=2&page_size=2&pagination=true&columns=name", "", Some(GUEST));
    assert_eq!(
        json_of(&body),
        json!({"filtered_count": 3, "item_count": 1, "page": 2, "page_count": 2, "page_size": 2,
               "total_count": 3, "items": [{"name": "qc"}]})
    );
    let (_, _, body) =
        http(addr, "GET", "/api/queues/%2F?sort=name&sort_reverse=true&columns=name,vhost", "", Some(GUEST));
    assert_eq!(
        json_of(&body),
        json!([{"name": "qc", "vhost": "/"}, {"name": "qb", "vhost": "/"}, {"name": "qa", "vhost": "/"}])
    );
    let (status, _, body) = http(addr, "GET", "/api/queues?page=9&pagination=true", "", Some(GUEST));
    assert_eq!(status, 400);
    assert_eq!(json_of(&body), json!({"error": "bad_request", "reason": "Page out of range"}));
    let (_, _, body) =
        http(addr, "GET", "/api/overview?columns=rabbitmq_version,object_totals.queues", "", Some(GUEST));
    assert_eq!(json_of(&body), json!({"rabbitmq_version": "3.10.8", "object_totals": {"queues": 3}}));
}

/// Debian's rabbitmqadmin v1 against `broker` (None when it is not installed): runs it with
/// `args`, asserts success and answers its output.
fn rabbitmqadmin(broker: &Broker) -> Option<impl Fn(&[&str]) -> String> {
    let admin = "/usr/bin/rabbitmqadmin";
    if !std::path::Path::new(admin).exists() {
        eprintln!("skipped: {admin} is not installed (tools/clients/install.sh installs it)");
        return None;
    }
    let port = broker.addr("http").rsplit(':').next().expect("a port").to_string();
    Some(move |args: &[&str]| -> String {
        let output = Command::new(admin)
            .args(["-H", "127.0.0.1", "-P", &port, "-u", "guest", "-p", "guest"])
            .args(args)
            .output()
            .expect("run rabbitmqadmin");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "rabbitmqadmin {args:?}: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    })
}

#[test]
fn rabbitmqadmin_v1_lists_declares_publishes_gets_deletes_and_exports() {
    let broker = Broker::start(&[]);
    let Some(run) = rabbitmqadmin(&broker) else { return };
    run(&["declare", "queue", "name=adminq", "durable=true"]);
    assert!(run(&["list", "queues"]).contains("adminq"));
    run(&["publish", "routing_key=adminq", "payload=from-admin"]);
    assert!(run(&["get", "queue=adminq", "ackmode=ack_requeue_false"]).contains("from-admin"));
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("definitions.json");
    run(&["export", file.to_str().expect("utf-8 path")]);
    let exported = json_of(&std::fs::read_to_string(&file).expect("exported file"));
    assert!(exported["queues"].as_array().expect("queues").iter().any(|q| q["name"] == "adminq"));
    run(&["delete", "queue", "name=adminq"]);
    assert!(!run(&["list", "queues"]).contains("adminq"));
}

/// rabbitmqadmin v1 declares, lists and deletes exchanges and bindings, purges, lists a pika
/// consumer's connection, channel and consumer, and closes its connection.
#[test]
fn rabbitmqadmin_v1_manages_exchanges_bindings_and_connections() {
    let broker = Broker::start(&[]);
    let Some(run) = rabbitmqadmin(&broker) else { return };
    // Exchanges and bindings, declared, listed and deleted.
    run(&["declare", "exchange", "name=adminx", "type=topic"]);
    run(&["declare", "queue", "name=adminq2"]);
    run(&["declare", "binding", "source=adminx", "destination=adminq2", "routing_key=a.#"]);
    assert!(run(&["list", "exchanges"]).contains("adminx"));
    assert!(run(&["list", "bindings"]).contains("a.#"));
    run(&["publish", "exchange=adminx", "routing_key=a.b", "payload=routed"]);
    run(&["purge", "queue", "name=adminq2"]);
    assert!(run(&["get", "queue=adminq2"]).contains("No items"));
    run(&[
        "delete",
        "binding",
        "source=adminx",
        "destination=adminq2",
        "destination_type=queue",
        "properties_key=a.%23",
    ]);
    assert!(!run(&["list", "bindings"]).contains("a.#"));
    run(&["delete", "exchange", "name=adminx"]);
    assert!(!run(&["list", "exchanges"]).contains("adminx"));

    // Connections, channels and consumers of a pika consumer, listed; its connection closed.
    let python = crate::harness::clients::root().join(".venv").join("bin").join("python");
    let amqp_port = broker.addr("amqp").rsplit(':').next().expect("a port").to_string();
    let script = format!(
        r#"
import pika
params = pika.ConnectionParameters("127.0.0.1", {amqp_port}, client_properties={{"connection_name": "admin-test"}})
connection = pika.BlockingConnection(params)
connection.channel().basic_consume("adminq2", lambda *a: None)
print("ready", flush=True)
try:
    while True:
        connection.process_data_events(time_limit=0.2)
except pika.exceptions.ConnectionClosedByBroker as closed:
    print("closed", closed.reply_code, closed.reply_text, flush=True)
"#
    );
    let mut consumer = Command::new(&python)
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run a pika consumer");
    let mut out = std::io::BufReader::new(consumer.stdout.take().expect("its output"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("ready");
    assert_eq!(line.trim(), "ready");
    let connections = run(&["-f", "tsv", "-q", "list", "connections", "name"]);
    let name = connections.lines().next().expect("one connection").trim().to_string();
    assert!(run(&["list", "channels"]).contains(&name));
    assert!(run(&["-f", "raw_json", "list", "consumers"]).contains("\"adminq2\""));
    run(&["close", "connection", &format!("name={name}")]);
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).expect("closed");
    assert_eq!(line.trim(), "closed 320 CONNECTION_FORCED - Closed via management plugin");
    assert!(consumer.wait().expect("exit").success());
    run(&["delete", "queue", "name=adminq2"]);
}

/// Message statistics after known traffic over AMQP: the queue's, the channel's closed into
/// its vhost's, and the node's totals; then a rate from two samples (the API samples every
/// 5 s).
#[test]
fn message_stats_count_known_traffic_and_rates_follow() {
    use crate::harness::lapin_client::{self, Server};
    use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;

    let server = Server::warren(Broker::start(&[]));
    let addr = server.warren.as_ref().expect("a warren").addr("http").to_owned();
    let stats_of = |path: &str| json_of(&http(&addr, "GET", path, "", Some(GUEST)).2);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (connection, channel) = server.open_confirming().await;
        channel
            .queue_declare("ms", QueueDeclareOptions::default(), FieldTable::default())
            .await
            .expect("declare");
        for i in 0..10u8 {
            lapin_client::publish(&channel, "", "ms", &[i]).await;
        }
        for _ in 0..3 {
            let got =
                channel.basic_get("ms", BasicGetOptions::default()).await.expect("get").expect("a message");
            got.delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
        channel.basic_get("ms", BasicGetOptions { no_ack: true }).await.expect("get").expect("a message");
        connection.close(200, "done").await.expect("close");
    });
    let expected = [("publish", 10), ("get", 3), ("get_no_ack", 1), ("deliver_get", 4), ("ack", 3)];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let queue = loop {
        let queue = stats_of("/api/queues/%2F/ms");
        // Acks reach the queue's task just after the channel answered them.
        if queue["message_stats"]["ack"] == 3 || std::time::Instant::now() > deadline {
            break queue;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for (name, count) in expected {
        assert_eq!(queue["message_stats"][name], count, "queue {name}: {queue}");
    }
    assert_eq!(queue["message_stats"]["get_empty"], 0);
    assert_eq!(queue["messages"], 6);
    assert!(queue["message_stats"]["publish_details"]["rate"].is_number());
    assert!(queue["messages_details"]["rate"].is_number());

    // The channel is closed: its counts live on in the node's totals, confirms included.
    let overview = stats_of("/api/overview");
    assert_eq!(overview["rates_mode"], "basic");
    for (name, count) in [("publish", 10), ("confirm", 10), ("get", 3), ("get_no_ack", 1), ("ack", 3)] {
        assert_eq!(overview["message_stats"][name], count, "overview {name}: {}", overview["message_stats"]);
    }
    assert_eq!(overview["queue_totals"]["messages"], 6);

    // A rate: more messages between two samples give a positive publish rate.
    runtime.block_on(async {
        let (connection, channel) = server.open_confirming().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            lapin_client::publish(&channel, "", "ms", b"more").await;
            let rate = stats_of("/api/queues/%2F/ms")["message_stats"]["publish_details"]["rate"].as_f64();
            if rate.is_some_and(|r| r > 0.0) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no publish rate after two samples");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        connection.close(200, "done").await.expect("close");
    });
}
