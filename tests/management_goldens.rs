//! Every management endpoint answers with RabbitMQ 3.10.8's keys, status codes and error
//! bodies. The tool that captured the goldens from RabbitMQ (`tools/capture-rabbitmq-api.py`,
//! pika and raw HTTP) runs unchanged against Warren: it creates the same vhosts, users,
//! permissions, limits, policies, queues, exchanges, bindings and traffic through the API and
//! AMQP, and writes Warren's answers in the same form. They are compared with the files in
//! `tests/golden/rabbitmq-3.10.8/`: every endpoint's keys and status, the error cases'
//! status and body, and the AMQP reply code and text of each row of the access table.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::broker::Broker;
use crate::harness::clients::root;

/// Keys RabbitMQ 3.10.8 sends that Warren leaves out, with why: Erlang internals and
/// RabbitMQ machinery Warren does not have. An entry names a key (matched against every
/// component of a key path, so its sub-keys go with it), a key prefix (`io_*`), or a whole
/// key path (`=a[].b`).
const OMITTED: &[(&str, &str)] = &[
    ("garbage_collection", "an Erlang process's garbage collector settings"),
    ("reductions", "an Erlang process's reductions"),
    ("reductions_details", "an Erlang process's reductions"),
    ("memory", "an Erlang process's memory; the node's is mem_used"),
    ("backing_queue_status", "the classic queue's backing queue internals"),
    ("mnesia_*", "mnesia, RabbitMQ's metadata store"),
    ("msg_store_*", "RabbitMQ's message store"),
    ("io_*", "RabbitMQ's file handle cache statistics"),
    ("queue_index_read_count", "the classic queue index"),
    ("queue_index_read_count_details", "the classic queue index"),
    ("queue_index_write_count", "the classic queue index"),
    ("queue_index_write_count_details", "the classic queue index"),
    ("disk_reads", "message store reads"),
    ("disk_reads_details", "message store reads"),
    ("disk_writes", "message store writes"),
    ("disk_writes_details", "message store writes"),
    ("erlang_version", "Erlang/OTP"),
    ("erlang_full_version", "Erlang/OTP"),
    ("context_switches", "the Erlang VM"),
    ("context_switches_details", "the Erlang VM"),
    ("gc_num", "the Erlang VM"),
    ("gc_num_details", "the Erlang VM"),
    ("gc_bytes_reclaimed", "the Erlang VM"),
    ("gc_bytes_reclaimed_details", "the Erlang VM"),
    ("net_ticktime", "Erlang distribution"),
    ("metrics_gc_queue_length", "the statistics database's garbage collector"),
    ("sample_retention_policies", "the statistics database's retention; Warren keeps two samples"),
    ("avg", "sample histories (lengths_age, msg_rates_age): Warren keeps two samples"),
    ("avg_rate", "sample histories: Warren keeps two samples"),
    ("samples", "sample histories: Warren keeps two samples"),
    ("ra_open_file_metrics", "Raft (quorum queues)"),
    ("pending_raft_commands", "Raft (quorum queues)"),
    ("release_series_support_status", "RabbitMQ's release policy"),
    ("cowboy_opts", "Cowboy, RabbitMQ's HTTP server"),
    ("ssl_opts", "no TLS listener"),
    ("backlog", "the listen backlog is tokio's, not set by Warren"),
    ("linger", "Warren sets no linger"),
    ("exit_on_close", "an Erlang socket option"),
    ("=listeners[].socket_opts[]", "RabbitMQ's clustering listener"),
    ("sockets_total", "RabbitMQ's file handle cache socket cap; Warren has none"),
    ("config_files", "not reported yet"),
    ("=[].javascript", "extensions: Warren has no UI plugin"),
    ("=[].desc", "feature flags: RabbitMQ's cluster upgrade flags"),
    ("=[].doc_url", "feature flags"),
    ("=[].provided_by", "feature flags"),
    ("=[].stability", "feature flags"),
    ("global_parameters", "internal_cluster_id: Warren is not a cluster"),
    ("messages_persistent", "a durable queue on disc would have to read every queued message's header"),
    ("message_bytes_persistent", "a durable queue on disc would have to read every queued message's header"),
];

/// Golden files whose list elements are objects Warren truthfully has none of, so that
/// only their status is compared.
const EMPTY_LISTS: &[&str] = &["feature-flags", "global-parameters", "extensions"];

fn golden_dir() -> std::path::PathBuf {
    root().join("tests").join("golden").join("rabbitmq-3.10.8")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn keys(record: &Value) -> BTreeSet<String> {
    let list = record.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
    list.iter().filter_map(Value::as_str).map(str::to_owned).collect()
}

/// Whether a key path is one Warren leaves out ([`OMITTED`]).
fn omitted(stem: &str, path: &str) -> bool {
    if EMPTY_LISTS.contains(&stem) && path.starts_with("[]") {
        return true;
    }
    OMITTED.iter().any(|(key, _)| {
        if let Some(whole) = key.strip_prefix('=') {
            path == whole
        } else if let Some(prefix) = key.strip_suffix('*') {
            path.split(['.', '[', ']']).any(|part| part.starts_with(prefix))
        } else {
            path.split(['.', '[', ']']).any(|part| part == *key)
        }
    })
}

/// Runs the capture tool against `broker`, writing its key sets to `golden_out`.
fn capture(broker: &Broker, golden_out: &Path, definitions: &Path) {
    let python = root().join(".venv").join("bin").join("python");
    assert!(python.exists(), "the client venv is missing: run tools/clients/install.sh");
    let amqp_port = broker.addr("amqp").rsplit(':').next().expect("a port").to_owned();
    let http_port = broker.addr("http").rsplit(':').next().expect("a port").to_owned();
    let client = rabbitmq_http_client::blocking_api::ClientBuilder::new()
        .with_endpoint(format!("http://{}/api", broker.addr("http")))
        .with_basic_auth_credentials("guest", "guest")
        .build()
        .expect("client");
    let node = client.overview().expect("overview").node;
    let mut child = Command::new(&python)
        .arg(root().join("tools").join("capture-rabbitmq-api.py"))
        .args(["--amqp-port", &amqp_port, "--http-port", &http_port, "--node", &node])
        .arg("--golden")
        .arg(golden_out)
        .arg("--definitions")
        .arg(definitions)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the capture tool");
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the capture tool did not finish in 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().expect("output");
    assert!(
        output.status.success(),
        "the capture tool failed against Warren:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        broker.log_lines().join("\n")
    );
}

#[test]
fn every_endpoint_has_rabbitmqs_keys_statuses_and_error_bodies() {
    let broker = Broker::start(&["--storage", "disk"]);
    let out = tempfile::tempdir().expect("temp dir");
    let golden_out = out.path().join("golden");
    capture(&broker, &golden_out, &out.path().join("definitions.json"));
    let mut problems = Vec::new();
    let mut compared = 0;
    for entry in std::fs::read_dir(golden_dir()).expect("golden dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let stem = name.trim_end_matches(".json");
        if !name.ends_with(".json") || matches!(stem, "errors" | "amqp-access") {
            continue;
        }
        let theirs = read_json(&path);
        let ours = read_json(&golden_out.join(&name));
        if theirs.get("status") != ours.get("status") {
            problems
                .push(format!("{stem}: status {} where RabbitMQ has {}", ours["status"], theirs["status"]));
        }
        let ours_keys = keys(&ours);
        let missing: Vec<_> =
            keys(&theirs).into_iter().filter(|k| !omitted(stem, k) && !ours_keys.contains(k)).collect();
        if !missing.is_empty() {
            problems.push(format!("{stem}: missing {missing:?}"));
        }
        compared += 1;
    }
    assert!(compared > 70, "only {compared} golden files compared");

    let theirs = read_json(&golden_dir().join("errors.json"));
    let ours = read_json(&golden_out.join("errors.json"));
    for (case, expected) in theirs.as_object().expect("cases") {
        let got = &ours[case];
        for field in ["status", "body"] {
            if got[field] != expected[field] {
                problems.push(format!(
                    "error case {case}: {field} {} where RabbitMQ has {}",
                    got[field], expected[field]
                ));
            }
        }
    }
    // Every row of the access table, with pika: the reply code and text of each refusal
    // (and that allowed operations are allowed) for a user with partial permissions.
    let theirs = read_json(&golden_dir().join("amqp-access.json"));
    let ours = read_json(&golden_out.join("amqp-access.json"));
    for (case, expected) in theirs.as_object().expect("cases") {
        let got = &ours[case];
        if got["code"] != expected["code"] || got["text"] != expected["text"] {
            problems.push(format!(
                "AMQP access case {case}: {} {} where RabbitMQ has {} {}",
                got["code"], got["text"], expected["code"], expected["text"]
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences from RabbitMQ 3.10.8:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
