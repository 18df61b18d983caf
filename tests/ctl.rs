//! `warren ctl` against a real Warren: every command, run as the built binary against the
//! management API the broker publishes as `http=ADDR` in its ports file, with effects checked
//! through the API's answers (`--formatter json` listings) and over AMQP with lapin.
//! The first tests need no broker: local hashing, usage errors and an unreachable API. With
//! `WARREN_TEST_AMQP_URL` and `WARREN_TEST_HTTP_URL` set, the same tests run against that
//! broker instead (they pass against RabbitMQ 3.10.8 with its management plugin).

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::lapin_client::{
    channel, connect_url, consume, declare, publish, try_connect, unique, Server,
};

/// How long a listing may take to show a change (statistics may be sampled).
const SETTLE_DEADLINE: Duration = Duration::from_secs(10);

/// Runs `warren ctl ARGS` against `url` (the `WARREN_CTL_URL` variable), with `stdin` fed in.
fn ctl_with_input(url: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("ctl")
        .args(args)
        .env("WARREN_CTL_URL", url)
        .env_remove("WARREN_CTL_USER")
        .env_remove("WARREN_CTL_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warren ctl");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    child.wait_with_output().expect("warren ctl output")
}

fn ctl_run(url: &str, args: &[&str]) -> Output {
    ctl_with_input(url, args, b"")
}

/// Runs a command that must succeed; returns its stdout.
fn ctl(url: &str, args: &[&str]) -> String {
    let out = ctl_run(url, args);
    assert!(
        out.status.success(),
        "warren ctl {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A listing as JSON rows.
fn rows(url: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--formatter", "json"];
    all.extend_from_slice(args);
    match serde_json::from_str(&ctl(url, &all)).expect("JSON listing") {
        Value::Array(rows) => rows,
        other => panic!("not a JSON array: {other}"),
    }
}

/// Polls a listing until `wanted` holds for it, within [`SETTLE_DEADLINE`].
fn rows_until(url: &str, args: &[&str], wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let until = Instant::now() + SETTLE_DEADLINE;
    loop {
        let found = rows(url, args);
        if wanted(&found) {
            return found;
        }
        assert!(Instant::now() < until, "warren ctl {args:?} never showed what was wanted: {found:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn names(rows: &[Value], column: &str) -> Vec<String> {
    rows.iter().filter_map(|r| r.get(column).and_then(Value::as_str)).map(str::to_owned).collect()
}

/// The broker under test and its API's URL: a fresh Warren in memory, or, when
/// `WARREN_TEST_AMQP_URL` and `WARREN_TEST_HTTP_URL` are set, the broker they name (that is
/// how these tests are checked against RabbitMQ).
fn broker() -> (Server, String) {
    let server = Server::start();
    let url = match &server.warren {
        Some(warren) => format!("http://{}", warren.addr("http")),
        None => {
            std::env::var("WARREN_TEST_HTTP_URL").expect("WARREN_TEST_HTTP_URL beside WARREN_TEST_AMQP_URL")
        }
    };
    (server, url)
}

/// An address where nothing listens.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

#[test]
fn hash_password_prints_a_salted_sha256_hash() {
    let first = ctl(&closed_url(), &["hash_password", "secret"]);
    let second = ctl(&closed_url(), &["hash_password", "secret"]);
    assert_eq!(first.trim().len(), 48, "{first}");
    assert_ne!(first, second, "each hash has its own salt");
}

#[test]
fn usage_errors_exit_64_and_an_unreachable_api_exits_69() {
    let url = closed_url();
    assert_eq!(ctl_run(&url, &["no_such_command"]).status.code(), Some(64));
    assert_eq!(ctl_run(&url, &["list_queues", "bogus"]).status.code(), Some(64));
    assert_eq!(
        ctl_run(&url, &["set_policy", "--apply-to", "streams", "p", ".*", "{}"]).status.code(),
        Some(64)
    );
    let out = ctl_run(&url, &["list_queues"]);
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("unable to reach"), "{stderr}");
    assert_eq!(ctl_run(&url, &["await_startup", "--timeout", "1"]).status.code(), Some(75));
}

#[test]
fn await_startup_status_and_wrong_credentials() {
    let (_broker, url) = broker();
    ctl(&url, &["await_startup", "--timeout", "10"]);
    let status = ctl(&url, &["status"]);
    for section in ["Runtime", "Alarms", "Memory", "Free Disk Space", "Listeners"] {
        assert!(status.lines().any(|l| l == section), "no {section} in:\n{status}");
    }
    let json: Value =
        serde_json::from_str(&ctl(&url, &["--formatter", "json", "status"])).expect("JSON status");
    assert!(json.get("listeners").is_some_and(Value::is_array), "{json}");
    let refused = ctl_run(&url, &["--password", "wrong", "list_queues"]);
    assert_eq!(refused.status.code(), Some(77), "{}", String::from_utf8_lossy(&refused.stderr));
}

#[test]
fn users_vhosts_and_permissions() {
    let alice = unique("ctl-alice");
    let (server, url) = broker();
    let amqp = server.host().to_owned();
    ctl(&url, &["add_vhost", "ctl-v", "--description", "for ctl"]);
    ctl(&url, &["add_user", &alice, "pw1"]);
    assert_eq!(ctl_run(&url, &["add_user", &alice, "x"]).status.code(), Some(70));
    ctl(&url, &["set_user_tags", &alice, "monitoring", "management"]);
    ctl(&url, &["set_permissions", "-p", "ctl-v", &alice, "^$", ".*", ".*"]);
    let users = rows(&url, &["list_users"]);
    let listed = users.iter().find(|u| u["user"] == alice.as_str()).expect("alice listed");
    assert_eq!(listed["tags"], serde_json::json!(["monitoring", "management"]));
    assert!(names(&rows(&url, &["list_vhosts"]), "name").contains(&"ctl-v".to_owned()));
    let permissions = rows(&url, &["list_permissions", "-p", "ctl-v"]);
    let row = permissions.iter().find(|p| p["user"] == alice.as_str()).expect("permission listed");
    assert_eq!((&row["configure"], &row["write"], &row["read"]), (&"^$".into(), &".*".into(), &".*".into()));
    crate::harness::run(async {
        connect_url(&format!("amqp://{alice}:pw1@{amqp}/ctl-v")).await;
    });
    ctl(&url, &["change_password", &alice, "pw2"]);
    let users = rows(&url, &["list_users"]);
    let listed = users.iter().find(|u| u["user"] == alice.as_str()).expect("alice listed");
    assert_eq!(listed["tags"], serde_json::json!(["monitoring", "management"]), "tags kept");
    crate::harness::run(async {
        assert!(try_connect(&format!("amqp://{alice}:pw1@{amqp}/ctl-v")).await.is_err());
        connect_url(&format!("amqp://{alice}:pw2@{amqp}/ctl-v")).await;
    });
    ctl(&url, &["clear_permissions", "-p", "ctl-v", &alice]);
    assert!(rows(&url, &["list_permissions", "-p", "ctl-v"]).iter().all(|p| p["user"] != alice.as_str()));
    crate::harness::run(async {
        assert!(try_connect(&format!("amqp://{alice}:pw2@{amqp}/ctl-v")).await.is_err());
    });
    ctl(&url, &["delete_user", &alice]);
    assert_eq!(ctl_run(&url, &["delete_user", &alice]).status.code(), Some(67));
    ctl(&url, &["delete_vhost", "ctl-v"]);
    assert!(!names(&rows(&url, &["list_vhosts"]), "name").contains(&"ctl-v".to_owned()));
    assert_eq!(ctl_run(&url, &["delete_vhost", "ctl-v"]).status.code(), Some(65));
}

#[test]
fn policies_are_set_listed_and_cleared() {
    let (_broker, url) = broker();
    ctl(
        &url,
        &[
            "set_policy",
            "--priority",
            "2",
            "--apply-to",
            "queues",
            "ctl-limit",
            "^ctl",
            r#"{"max-length":5}"#,
        ],
    );
    let policies = rows(&url, &["list_policies"]);
    let policy = policies.iter().find(|p| p["name"] == "ctl-limit").expect("policy listed");
    assert_eq!(policy["pattern"], "^ctl");
    assert_eq!(policy["apply-to"], "queues");
    assert_eq!(policy["priority"], 2);
    assert_eq!(policy["definition"], serde_json::json!({"max-length": 5}));
    let table = ctl(&url, &["-q", "list_policies"]);
    assert!(table.contains("ctl-limit\t^ctl\tqueues\t{\"max-length\":5}\t2"), "{table}");
    assert_eq!(ctl_run(&url, &["set_policy", "bad", ".*", "not json"]).status.code(), Some(65));
    ctl(&url, &["clear_policy", "ctl-limit"]);
    assert!(rows(&url, &["list_policies"]).iter().all(|p| p["name"] != "ctl-limit"));
    assert_eq!(ctl_run(&url, &["clear_policy", "ctl-limit"]).status.code(), Some(65));
}

#[test]
fn queues_exchanges_and_bindings_are_listed_purged_and_deleted() {
    let (server, url) = broker();
    let queue = unique("ctl-q");
    crate::harness::run(async {
        let (_connection, channel) = server.open().await;
        declare(&channel, &queue, Default::default()).await;
        for body in [b"1", b"2", b"3"] {
            publish(&channel, "", &queue, body).await;
        }
    });
    let listed = rows_until(&url, &["list_queues", "name", "messages", "durable", "consumers"], |rows| {
        rows.iter().any(|r| r["name"] == queue.as_str() && r["messages"] == 3)
    });
    assert!(listed.iter().all(|r| r.as_object().is_some_and(|o| o.len() == 4)), "{listed:?}");
    let table = ctl(&url, &["list_queues"]);
    assert!(
        table.starts_with("Timeout: 60.0 seconds ...\nListing queues for vhost / ...\nname\tmessages\n"),
        "{table}"
    );
    assert!(names(&rows(&url, &["list_exchanges"]), "name").contains(&"amq.topic".to_owned()));
    let bindings = rows(&url, &["list_bindings"]);
    assert!(bindings
        .iter()
        .any(|b| b["destination_name"] == queue.as_str() && b["source_kind"] == "exchange"));
    ctl(&url, &["purge_queue", &queue]);
    rows_until(&url, &["list_queues", "name", "messages"], |rows| {
        rows.iter().any(|r| r["name"] == queue.as_str() && r["messages"] == 0)
    });
    assert_eq!(ctl_run(&url, &["purge_queue", "ctl-no-such-queue"]).status.code(), Some(65));
    ctl(&url, &["delete_queue", &queue]);
    assert!(!names(&rows(&url, &["list_queues"]), "name").contains(&queue));
}

#[test]
fn connections_channels_and_consumers_are_listed_and_closed() {
    let (server, url) = broker();
    crate::harness::run(async {
        let connection = server.connect().await;
        let channel = channel(&connection).await;
        declare(&channel, "ctl-consumed", Default::default()).await;
        let _consumer = consume(&channel, "ctl-consumed", false).await;
        let connections = rows_until(&url, &["list_connections", "name", "user", "state"], |r| !r.is_empty());
        assert_eq!(connections[0]["user"], "guest");
        rows_until(&url, &["list_channels"], |r| r.iter().any(|c| c["consumer_count"] == 1));
        let consumers = rows(&url, &["list_consumers"]);
        assert!(names(&consumers, "queue_name").contains(&"ctl-consumed".to_owned()), "{consumers:?}");
        let name = connections[0]["name"].as_str().expect("connection name").to_owned();
        ctl(&url, &["close_connection", &name, "closed by warren ctl"]);
        let until = Instant::now() + SETTLE_DEADLINE;
        while connection.status().connected() {
            assert!(Instant::now() < until, "the connection stayed open");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rows_until(&url, &["list_connections", "name"], |r| r.iter().all(|c| c["name"] != name.as_str()));
    });
}

#[test]
fn definitions_export_and_import() {
    let bob = unique("ctl-bob");
    let (_source, source_url) = broker();
    ctl(&source_url, &["add_vhost", "ctl-exported"]);
    ctl(&source_url, &["add_user", &bob, "pw"]);
    ctl(&source_url, &["set_policy", "ctl-p", "^x", r#"{"max-length":1}"#]);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("definitions.json");
    ctl(&source_url, &["export_definitions", file.to_str().expect("path")]);
    let exported: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("JSON");
    for key in ["users", "vhosts", "permissions", "policies", "queues", "exchanges", "bindings"] {
        assert!(exported.get(key).is_some(), "no {key} in {exported}");
    }
    let to_stdout: Value =
        serde_json::from_str(&ctl(&source_url, &["export_definitions", "-"])).expect("JSON");
    assert_eq!(to_stdout["vhosts"], exported["vhosts"]);
    let (_target, target_url) = broker();
    ctl(&target_url, &["import_definitions", file.to_str().expect("path")]);
    assert!(names(&rows(&target_url, &["list_vhosts"]), "name").contains(&"ctl-exported".to_owned()));
    assert!(names(&rows(&target_url, &["list_users"]), "user").contains(&bob));
    let piped =
        ctl_with_input(&target_url, &["import_definitions", "-"], br#"{"vhosts":[{"name":"ctl-piped"}]}"#);
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    assert!(names(&rows(&target_url, &["list_vhosts"]), "name").contains(&"ctl-piped".to_owned()));
    assert_eq!(ctl_with_input(&target_url, &["import_definitions", "-"], b"nope").status.code(), Some(65));
    ctl(&target_url, &["delete_user", &bob]);
}

#[test]
fn report_covers_every_section_on_a_broker_with_traffic() {
    let carol = unique("ctl-carol");
    let (server, url) = broker();
    ctl(&url, &["add_user", &carol, "pw"]);
    crate::harness::run(async {
        let connection = server.connect().await;
        let channel = channel(&connection).await;
        declare(&channel, "ctl-report-q", Default::default()).await;
        publish(&channel, "", "ctl-report-q", b"hello").await;
        let _consumer = consume(&channel, "ctl-report-q", false).await;
        rows_until(&url, &["list_consumers"], |r| !r.is_empty());
        let report = ctl(&url, &["report"]);
        for needle in [
            "Reporting server status of node",
            "Listeners",
            "Alarms",
            "Listing users ...",
            "Listing vhosts ...",
            "Listing connections ...",
            "Listing channels ...",
            "Listing permissions for vhost \"/\" ...",
            "Listing policies for vhost \"/\" ...",
            "Listing queues for vhost / ...",
            "Listing exchanges for vhost / ...",
            "Listing bindings for vhost /...",
            "Listing consumers in vhost / ...",
            "ctl-report-q",
            carol.as_str(),
        ] {
            assert!(report.contains(needle), "no {needle:?} in the report:\n{report}");
        }
        assert!(!report.contains("password_hash"), "the report shows no password hashes");
        let json: Value =
            serde_json::from_str(&ctl(&url, &["--formatter", "json", "report"])).expect("JSON report");
        assert!(json["vhosts_detail"]["/"]["queues"].as_array().is_some_and(|q| !q.is_empty()), "{json}");
        assert!(!json.to_string().contains("password_hash"));
        drop(connection);
    });
    ctl(&url, &["delete_user", &carol]);
}
