//! The management API's node-level answers against the real broker: churn counts after
//! known lapin traffic (connections, channels, queues), the overview's object totals and
//! listeners, the node's disc, process and web-context figures, the health checks, the
//! endpoints of features Warren has not (auth, feature flags, operator policies,
//! parameters), and a request without credentials.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};

use crate::harness::broker::Broker;
use crate::harness::golden::{assert_golden_keys, golden_keys};
use crate::harness::http::{guest, request};
use crate::harness::lapin_client::{channel, connect_url, within};

/// Node keys that are Erlang VM or RabbitMQ machinery Warren does not have, or figures it
/// does not measure (file I/O counts and times, a socket limit, the config file).
const NODE_OMITTED: &[&str] = &[
    "config_files",
    "io_read_avg_time",
    "io_read_avg_time_details",
    "io_read_bytes",
    "io_read_bytes_details",
    "io_read_count",
    "io_read_count_details",
    "io_reopen_count",
    "io_reopen_count_details",
    "io_seek_avg_time",
    "io_seek_avg_time_details",
    "io_seek_count",
    "io_seek_count_details",
    "io_sync_avg_time",
    "io_sync_avg_time_details",
    "io_sync_count",
    "io_sync_count_details",
    "io_write_avg_time",
    "io_write_avg_time_details",
    "io_write_bytes",
    "io_write_bytes_details",
    "io_write_count",
    "io_write_count_details",
    "mnesia_disk_tx_count",
    "mnesia_disk_tx_count_details",
    "mnesia_ram_tx_count",
    "mnesia_ram_tx_count_details",
    "msg_store_read_count",
    "msg_store_read_count_details",
    "msg_store_write_count",
    "msg_store_write_count_details",
    "context_switches",
    "context_switches_details",
    "gc_bytes_reclaimed",
    "gc_bytes_reclaimed_details",
    "gc_num",
    "gc_num_details",
    "metrics_gc_queue_length",
    "net_ticktime",
    "queue_index_read_count",
    "queue_index_read_count_details",
    "queue_index_write_count",
    "queue_index_write_count_details",
    "ra_open_file_metrics",
    "sockets_total",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// GET `path` as guest, 200 expected.
fn get(broker: &Broker, path: &str) -> Value {
    let reply = guest(broker.addr("http"), "GET", path, "");
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    reply.json()
}

/// The node's name, as the overview gives it.
fn node_name(broker: &Broker) -> String {
    get(broker, "/api/overview")["node"].as_str().expect("node").to_owned()
}

/// Polls `path` until `check` holds, for up to ten seconds; the last answer.
fn eventually(broker: &Broker, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = get(broker, path);
        if check(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "GET {path} never matched: {value}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Like [`assert_golden_keys`], but without the `_details` rates: which of them appear
/// depends on whether the sampler has taken two samples of the node yet.
fn assert_golden_keys_but_rates(file: &str, reply: &Value, omitted: &[&str], added: &[&str]) {
    let mut reply = reply.clone();
    if let Some(object) = reply.as_object_mut() {
        object.retain(|key, _| !key.ends_with("_details"));
    }
    let rates: Vec<String> = golden_keys(file)
        .into_iter()
        .filter(|key| key.ends_with("_details") && !omitted.contains(&key.as_str()))
        .collect();
    let omitted: Vec<&str> = omitted.iter().copied().chain(rates.iter().map(String::as_str)).collect();
    assert_golden_keys(file, &reply, &omitted, added);
}

fn churn_of(object: &Value) -> Vec<u64> {
    ["connection_created", "connection_closed", "channel_created", "channel_closed"]
        .iter()
        .chain(&["queue_declared", "queue_created", "queue_deleted"])
        .map(|name| object[*name].as_u64().unwrap_or_else(|| panic!("{name} in {object}")))
        .collect()
}

#[test]
fn churn_counts_follow_connections_channels_and_queues() {
    let broker = Broker::start(&["--storage", "memory"]);
    assert_eq!(churn_of(&get(&broker, "/api/overview")["churn_rates"]), [0; 7]);
    let url = format!("amqp://guest:guest@{}/%2F", broker.addr("amqp"));
    let rt = runtime();
    // lapin closes a channel when its handle is dropped: `a` is kept to the end.
    let (first, a, second) = rt.block_on(async {
        let first = connect_url(&url).await;
        let second = connect_url(&url).await;
        let a = channel(&first).await;
        let b = channel(&first).await;
        let c = channel(&second).await;
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        within("declare", a.queue_declare("churn-q1", durable, FieldTable::default())).await.expect("q1");
        within("again", a.queue_declare("churn-q1", durable, FieldTable::default())).await.expect("again");
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        within("passive", a.queue_declare("churn-q1", passive, FieldTable::default()))
            .await
            .expect("passive");
        let exclusive = QueueDeclareOptions { exclusive: true, ..QueueDeclareOptions::default() };
        within("exclusive", c.queue_declare("churn-q3", exclusive, FieldTable::default())).await.expect("q3");
        within("delete", a.queue_delete("churn-q1", QueueDeleteOptions::default())).await.expect("delete");
        within("close channel", b.close(200, "bye")).await.expect("close b");
        (first, a, second)
    });
    let created = guest(broker.addr("http"), "PUT", "/api/queues/%2F/churn-q2", r#"{"durable":true}"#);
    assert_eq!(created.status, 201);
    rt.block_on(async { within("close", second.close(200, "bye")).await.expect("close second") });

    // Connections 2 opened, 1 closed; channels 3 opened, 2 closed (one with its
    // connection); declarations: q1 twice (the passive one is not counted), q3, and q2
    // through the API; q1 deleted, q3 deleted with its exclusive owner.
    let expected = [2, 1, 3, 2, 4, 3, 2];
    let overview = eventually(&broker, "/api/overview", |o| churn_of(&o["churn_rates"]) == expected);
    assert_eq!(overview["object_totals"]["connections"], json!(1));
    assert_eq!(overview["object_totals"]["channels"], json!(1));
    let node = get(&broker, &format!("/api/nodes/{}", node_name(&broker)));
    assert_eq!(churn_of(&node), expected);
    assert_eq!(node["sockets_used"], json!(1), "one AMQP connection is open");
    drop((a, first));
}

#[test]
fn overview_and_node_report_listeners_disc_and_contexts() {
    let broker = Broker::start(&[]);
    let http_port: u16 = broker.addr("http").rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let overview = get(&broker, "/api/overview");
    assert_golden_keys_but_rates(
        "overview.json",
        &overview,
        &[
            "erlang_full_version",
            "erlang_version",
            "release_series_support_status",
            "sample_retention_policies",
        ],
        &[],
    );
    let listeners = overview["listeners"].as_array().expect("listeners");
    assert!(listeners.iter().all(|l| l["socket_opts"]["nodelay"] == json!(true)), "{listeners:?}");
    let http = listeners.iter().find(|l| l["protocol"] == "http").expect("an http listener");
    assert_eq!(http["socket_opts"]["port"], json!(http_port));
    assert_eq!(overview["contexts"][0]["port"], json!(http_port.to_string()));

    let name = node_name(&broker);
    let node = get(&broker, &format!("/api/nodes/{name}"));
    assert_golden_keys_but_rates("nodes.name.json", &node, NODE_OMITTED, &["being_drained"]);
    assert!(node["disk_free"].as_u64().expect("disk_free") > 0);
    assert_eq!(node["db_dir"], json!(broker.data_dir.display().to_string()));
    assert_eq!(node["mem_calculation_strategy"], json!("rss"));
    assert!(node["fd_used"].as_u64().expect("fd_used") > 0);
    assert_eq!(node["sockets_used"], json!(0));
    assert_eq!(node["contexts"][0]["port"], json!(http_port.to_string()));
    let types: Vec<&str> =
        node["exchange_types"].as_array().expect("types").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(types, ["direct", "fanout", "headers", "topic"]);
    assert_eq!(node["cluster_links"], json!([]));
    assert_eq!(get(&broker, "/api/nodes")[0]["name"], json!(name));
}

#[test]
fn health_checks_answer_as_rabbitmq_on_one_node_without_tls() {
    let broker = Broker::start(&["--storage", "memory"]);
    let check = |path: &str| {
        let reply = guest(broker.addr("http"), "GET", &format!("/api/health/checks/{path}"), "");
        (reply.status, reply.json())
    };
    assert_eq!(check("protocol-listener/amqp"), (200, json!({"status": "ok", "protocol": "amqp"})));
    assert_eq!(check("protocol-listener/amqp091"), (200, json!({"status": "ok", "protocol": "amqp"})));
    assert_eq!(
        check("protocol-listener/mqtt"),
        (
            503,
            json!({"status": "failed", "reason": "No active listener", "missing": "mqtt", "protocols": ["amqp", "http"]})
        )
    );
    assert_eq!(
        check("node-is-quorum-critical"),
        (200, json!({"status": "ok", "reason": "single node cluster"}))
    );
    assert_eq!(check("certificate-expiration/1/months"), (200, json!({"status": "ok"})));
    assert_eq!(
        check("certificate-expiration/1/fortnights"),
        (
            400,
            json!({"error": "bad_request",
                   "reason": "Time unit not recognised. Supported units: days, weeks, months, years."})
        )
    );
    assert_eq!(
        check("certificate-expiration/soon/days"),
        (400, json!({"error": "bad_request", "reason": "Invalid expiration value."}))
    );
}

#[test]
fn absent_features_answer_as_unused_and_vhost_limits_are_parameters() {
    let broker = Broker::start(&["--storage", "memory"]);
    assert_eq!(
        get(&broker, "/api/auth"),
        json!({"enable_uaa": false, "uaa_client_id": "", "uaa_location": ""})
    );
    for path in [
        "/api/feature-flags",
        "/api/operator-policies",
        "/api/operator-policies/%2F",
        "/api/global-parameters",
        "/api/extensions",
        "/api/parameters",
    ] {
        assert_eq!(get(&broker, path), json!([]), "{path}");
    }
    let addr = broker.addr("http");
    assert_eq!(guest(addr, "PUT", "/api/vhost-limits/%2F/max-queues", r#"{"value":7}"#).status, 204);
    let limits =
        json!({"vhost": "/", "component": "vhost-limits", "name": "limits", "value": {"max-queues": 7}});
    assert_eq!(get(&broker, "/api/parameters"), json!([limits]));
    assert_eq!(get(&broker, "/api/parameters/vhost-limits/%2F"), json!([limits]));
    assert_eq!(get(&broker, "/api/parameters/vhost-limits/%2F/limits"), limits);
    assert_eq!(get(&broker, "/api/parameters/federation-upstream"), json!([]));
    assert_eq!(guest(addr, "GET", "/api/parameters/vhost-limits/nowhere", "").status, 404);
    assert_eq!(guest(addr, "GET", "/api/operator-policies/nowhere", "").status, 404);
}

/// One GET without an `authorization` header: status, lower-cased head lines, body.
fn anonymous_get(addr: &str, path: &str) -> (u16, Vec<String>, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    (status, lines.map(str::to_ascii_lowercase).collect(), body.to_owned())
}

#[test]
fn no_credentials_get_only_the_challenge() {
    let broker = Broker::start(&["--storage", "memory"]);
    let (status, head, body) = anonymous_get(broker.addr("http"), "/api/overview");
    assert_eq!((status, body.as_str()), (401, ""));
    assert!(head.iter().any(|l| l == "www-authenticate: basic realm=\"rabbitmq management\""), "{head:?}");
    assert!(!head.iter().any(|l| l.starts_with("content-type")), "{head:?}");

    // A missing tag is refused with a body and without the challenge.
    let addr = broker.addr("http");
    assert_eq!(guest(addr, "PUT", "/api/users/plain", r#"{"password":"pw","tags":""}"#).status, 201);
    let refused = request(addr, "GET", "/api/overview", "", ("plain", "pw"), &[]);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json(), json!({"error": "not_authorised", "reason": "Not management user"}));
    assert!(!refused.headers.iter().any(|(k, _)| k == "www-authenticate"));
}
