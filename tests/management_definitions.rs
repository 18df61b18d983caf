//! Definitions import and export through the management API: RabbitMQ 3.10.8's export
//! (`tests/fixtures/rabbitmq-3.10.8-definitions.json`, passwords in its README) imported
//! whole, its users logging in over AMQP and its objects listed; JSON, multipart and
//! url-encoded uploads and rabbitmqadmin v1's `import`; the merge rules; an export imported
//! into a fresh broker exporting the same; the import surviving a restart; and the
//! export's keys checked against RabbitMQ 3.10.8's golden files.

use std::process::Command;

use serde_json::{json, Value};

use crate::harness::broker::Broker;
use crate::harness::http_api::{json as request, send};
use crate::harness::lapin_client::*;
use crate::harness::run;

const GUEST: (&str, &str) = ("guest", "guest");

fn fixture() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rabbitmq-3.10.8-definitions.json");
    std::fs::read_to_string(path).expect("the RabbitMQ 3.10.8 export")
}

fn import(broker: &Broker, document: &str) {
    let answer = request(broker.addr("http"), "POST", "/api/definitions", document, GUEST);
    assert_eq!(answer.status, 204, "{}", answer.body);
}

fn export(broker: &Broker) -> Value {
    request(broker.addr("http"), "GET", "/api/definitions", "", GUEST).json()
}

fn names(list: &Value, vhost: &str) -> Vec<String> {
    let items = list.as_array().expect("a list");
    let here = items.iter().filter(|item| item["vhost"] == vhost);
    here.map(|item| item["name"].as_str().expect("a name").to_owned()).collect()
}

/// Logs in over AMQP as `user` to `vhost` (percent-encoded) and opens a channel.
async fn logs_in(broker: &Broker, user: &str, password: &str, vhost: &str) -> bool {
    let url = format!("amqp://{user}:{password}@{}/{vhost}", broker.addr("amqp"));
    match within("connect", try_connect(&url)).await {
        Ok(connection) => {
            channel(&connection).await;
            true
        }
        Err(_) => false,
    }
}

/// The fixture's users log in with their passwords (SHA-256 and SHA-512 hashes); the
/// user without a password does not.
async fn fixture_users_log_in(broker: &Broker) {
    assert!(logs_in(broker, "admin", "admin-secret", "%2F").await);
    assert!(logs_in(broker, "manager", "manager-secret", "v1").await);
    assert!(logs_in(broker, "restricted", "restricted-secret", "v1").await);
    assert!(logs_in(broker, "hash512", "hash512-secret", "%2F").await);
    assert!(!logs_in(broker, "admin", "wrong", "%2F").await);
    assert!(!logs_in(broker, "manager", "manager-secret", "%2F").await, "manager has no permissions on /");
}

/// The fixture's durable objects, as `GET` lists and exports them.
fn fixture_objects_are_listed(broker: &Broker) {
    let addr = broker.addr("http");
    let queues = request(addr, "GET", "/api/queues", "", GUEST).json();
    for name in ["q-durable", "q-consumed", "s-stream"] {
        assert!(names(&queues, "/").contains(&name.to_owned()), "{name} in {queues}");
    }
    let mut in_v1 = names(&queues, "v1");
    in_v1.sort();
    assert_eq!(in_v1, ["other-q", "own-q", "pol-q"]);
    let q_durable = request(addr, "GET", "/api/queues/%2F/q-durable", "", GUEST).json();
    assert_eq!(
        q_durable["arguments"],
        json!({"x-max-length": 1000, "x-message-ttl": 3600000, "x-queue-type": "classic"})
    );
    let stream = request(addr, "GET", "/api/queues/%2F/s-stream", "", GUEST).json();
    assert_eq!(stream["type"], "stream");
    let internal = request(addr, "GET", "/api/exchanges/%2F/ex-internal", "", GUEST).json();
    assert_eq!((internal["type"].clone(), internal["internal"].clone()), (json!("topic"), json!(true)));
    let own_topic = request(addr, "GET", "/api/exchanges/v1/own-topic", "", GUEST).json();
    assert_eq!(own_topic["vhost"], "v1");
    let e2e = request(addr, "GET", "/api/bindings/%2F/e/ex-topic/e/ex-direct", "", GUEST).json();
    assert_eq!(e2e[0]["routing_key"], "e.#");
    let v1_bindings = request(addr, "GET", "/api/bindings/v1/e/own-topic/q/own-q", "", GUEST).json();
    assert_eq!(v1_bindings[0]["routing_key"], "allowed.#");
    let exported = export(broker);
    let policies = exported["policies"].as_array().expect("policies");
    let pol = policies.iter().find(|p| p["name"] == "pol-limits").expect("pol-limits");
    assert_eq!(pol["vhost"], "v1");
    assert_eq!(
        pol["definition"],
        json!({"max-length": 100, "message-ttl": 60000, "overflow": "reject-publish"})
    );
    assert!(exported["parameters"].as_array().expect("parameters").iter().any(|p| p["vhost"] == "v1"
        && p["component"] == "vhost-limits"
        && p["value"] == json!({"max-connections": 50, "max-queues": 100})));
    let topic = exported["topic_permissions"].as_array().expect("topic permissions");
    assert!(topic.iter().any(|t| t["user"] == "restricted" && t["exchange"] == "own-topic"));
    let users = exported["users"].as_array().expect("users");
    let hash512 = users.iter().find(|u| u["name"] == "hash512").expect("hash512");
    assert_eq!(hash512["hashing_algorithm"], "rabbit_password_hashing_sha512");
}

#[test]
fn a_rabbitmq_export_imports_and_its_users_log_in() {
    let broker = Broker::start(&[]);
    import(&broker, &fixture());
    run(fixture_users_log_in(&broker));
    fixture_objects_are_listed(&broker);
}

#[test]
fn imported_definitions_survive_a_restart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    let broker = Broker::start_in(&dir, &[]);
    import(&broker, &fixture());
    let before = export(&broker);
    assert!(broker.terminate().success());
    let broker = Broker::start_in(&dir, &[]);
    run(fixture_users_log_in(&broker));
    fixture_objects_are_listed(&broker);
    let after = export(&broker);
    for key in ["users", "vhosts", "permissions", "topic_permissions", "policies", "parameters"] {
        assert_eq!(after[key], before[key], "{key}");
    }
    let durable = |document: &Value, key: &str| -> Vec<Value> {
        let all = document[key].as_array().expect("a list").iter();
        all.filter(|item| item["durable"] == true).cloned().collect()
    };
    assert_eq!(durable(&after, "queues"), durable(&before, "queues"));
    assert_eq!(durable(&after, "exchanges"), durable(&before, "exchanges"));
}

/// Every list of a document sorted, so that two documents compare whatever their order.
fn sorted(mut document: Value) -> Value {
    if let Some(object) = document.as_object_mut() {
        for value in object.values_mut() {
            if let Some(list) = value.as_array_mut() {
                list.sort_by_key(|item| item.to_string());
            }
        }
    }
    document
}

#[test]
fn an_export_imported_into_a_fresh_broker_exports_the_same() {
    let source = Broker::start(&[]);
    import(&source, &fixture());
    let addr = source.addr("http");
    let vhost = r#"{"vhosts":[{"name":"described","description":"kept","tags":["a","b"],"default_queue_type":"classic"}]}"#;
    import(&source, vhost);
    assert_eq!(
        request(addr, "PUT", "/api/queues/described/dq", r#"{"durable":true}"#, GUEST).status,
        401,
        "no permissions there yet"
    );
    let exported = export(&source);
    let target = Broker::start(&[]);
    import(&target, &exported.to_string());
    let again = export(&target);
    assert_eq!(sorted(again.clone()), sorted(exported));
    let described =
        again["vhosts"].as_array().expect("vhosts").iter().find(|v| v["name"] == "described").cloned();
    assert_eq!(
        described.map(|v| (v["description"].clone(), v["tags"].clone())),
        Some((json!("kept"), json!(["a", "b"])))
    );
    run(fixture_users_log_in(&target));
}

#[test]
fn uploads_come_as_json_multipart_or_url_encoded_forms() {
    let broker = Broker::start(&[]);
    let addr = broker.addr("http");
    let boundary = "----warrenBoundary7MA4YWxk";
    let document = r#"{"vhosts":[{"name":"from-multipart"}],"queues":[{"name":"mq","vhost":"from-multipart","durable":true,"auto_delete":false,"arguments":{}}]}"#;
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"defs.json\"\r\nContent-Type: application/json\r\n\r\n{document}\r\n--{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let answer = send(addr, "POST", "/api/definitions", &content_type, multipart.as_bytes(), GUEST);
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert_eq!(request(addr, "GET", "/api/queues/from-multipart/mq", "", GUEST).json()["durable"], true);

    // The UI's form adds a `redirect` field, answered with a 303 to it.
    let document = r#"{"vhosts":[{"name":"from-ui"}]}"#;
    let with_redirect = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.json\"\r\n\r\n{document}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"redirect\"\r\n\r\n../../#/\r\n--{boundary}--\r\n"
    );
    let answer = send(addr, "POST", "/api/definitions", &content_type, with_redirect.as_bytes(), GUEST);
    assert_eq!((answer.status, answer.header("location")), (303, Some("../../#/")));
    assert_eq!(request(addr, "GET", "/api/vhosts/from-ui", "", GUEST).status, 200);

    let form = b"file=%7B%22vhosts%22%3A%5B%7B%22name%22%3A%22from-form%22%7D%5D%7D";
    let answer = send(addr, "POST", "/api/definitions", "application/x-www-form-urlencoded", form, GUEST);
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert_eq!(request(addr, "GET", "/api/vhosts/from-form", "", GUEST).status, 200);

    let answer = send(addr, "POST", "/api/definitions", &content_type, b"--nothing", GUEST);
    assert_eq!(answer.status, 400);
}

#[test]
fn imports_merge_and_bad_documents_change_nothing() {
    let broker = Broker::start(&[]);
    let addr = broker.addr("http");
    assert_eq!(
        request(
            addr,
            "PUT",
            "/api/queues/%2F/kept",
            r#"{"durable":true,"arguments":{"x-max-length":1}}"#,
            GUEST
        )
        .status,
        201
    );
    let conflicting = r#"{"queues":[{"name":"kept","vhost":"/","durable":false,"auto_delete":true,"arguments":{"x-max-length":9}},
        {"name":"amq.skipped","vhost":"/","durable":true,"arguments":{}}],
        "exchanges":[{"name":"amq.direct","vhost":"/","type":"fanout","durable":true},{"name":"new-x","vhost":"/","type":"fanout","durable":true}],
        "bindings":[{"source":"new-x","vhost":"/","destination":"kept","destination_type":"queue","routing_key":"","arguments":{}}]}"#;
    import(&broker, conflicting);
    import(&broker, conflicting);
    let kept = request(addr, "GET", "/api/queues/%2F/kept", "", GUEST).json();
    assert_eq!(
        (kept["durable"].clone(), kept["arguments"].clone()),
        (json!(true), json!({"x-max-length": 1}))
    );
    assert_eq!(request(addr, "GET", "/api/queues/%2F/amq.skipped", "", GUEST).status, 404);
    assert_eq!(request(addr, "GET", "/api/exchanges/%2F/amq.direct", "", GUEST).json()["type"], "direct");
    assert_eq!(
        request(addr, "GET", "/api/bindings/%2F/e/new-x/q/kept", "", GUEST).json().as_array().map(Vec::len),
        Some(1)
    );

    let malformed = request(addr, "POST", "/api/definitions", "{not json", GUEST);
    assert_eq!(
        (malformed.status, malformed.json()),
        (400, json!({"error": "bad_request", "reason": "failed_to_parse_json"}))
    );
    let elsewhere = r#"{"users":[{"name":"ghost","password_hash":"","tags":""}],
        "queues":[{"name":"q","vhost":"no-such-vhost","durable":true,"arguments":{}}]}"#;
    let answer = request(addr, "POST", "/api/definitions", elsewhere, GUEST);
    assert_eq!(answer.status, 400);
    assert!(answer.json()["reason"].as_str().is_some_and(|r| r.contains("no-such-vhost")), "{}", answer.body);
    let users = export(&broker)["users"].clone();
    assert!(!users.as_array().expect("users").iter().any(|u| u["name"] == "ghost"), "nothing imported");
    // A file from before 3.6 names no hashing algorithm: its hashes are MD5, as RabbitMQ
    // reads them; a later file without one gets SHA-256.
    let md5 = r#"{"rabbit_version":"3.5.7","users":[{"name":"old","password_hash":"kI3GCt9TnHHMJvNZAa9/UKtyhc4=","tags":"management"}]}"#;
    import(&broker, md5);
    let sha256 = r#"{"rabbit_version":"3.6.16","users":[{"name":"newer","password_hash":"kI3GCoxAZwzYaRlgeVCGXmHD/PP0OJlhjVRvGv4SO025mi0+","tags":["management"]}]}"#;
    import(&broker, sha256);
    for user in ["old", "newer"] {
        let whoami = request(addr, "GET", "/api/whoami", "", (user, "old-secret"));
        assert_eq!(whoami.json(), json!({"name": user, "tags": ["management"]}), "{user}");
    }
    let dangling = r#"{"bindings":[{"source":"new-x","vhost":"/","destination":"gone","destination_type":"queue","routing_key":"","arguments":{}}]}"#;
    let answer = request(addr, "POST", "/api/definitions", dangling, GUEST);
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.json()["reason"].as_str().is_some_and(|r| r.contains("gone")), "{}", answer.body);
    let bad_policy =
        r#"{"policies":[{"vhost":"/","name":"p","pattern":"^x","definition":{"max-length":"ten"}}]}"#;
    assert_eq!(request(addr, "POST", "/api/definitions", bad_policy, GUEST).status, 400);
    let monitor = r#"{"users":[{"name":"mon","password":"mon-pw","tags":"monitoring"}],"permissions":[{"user":"mon","vhost":"/","configure":"","write":"","read":".*"}]}"#;
    import(&broker, monitor);
    let refused = request(addr, "POST", "/api/definitions", "{}", ("mon", "mon-pw"));
    assert_eq!(
        (refused.status, refused.json()),
        (401, json!({"error": "not_authorised", "reason": "Not administrator user"}))
    );
}

#[test]
fn a_vhost_import_puts_everything_into_that_vhost() {
    let broker = Broker::start(&[]);
    let addr = broker.addr("http");
    import(
        &broker,
        r#"{"vhosts":[{"name":"v2"}],"permissions":[{"user":"guest","vhost":"v2","configure":".*","write":".*","read":".*"}]}"#,
    );
    let document = r#"{"queues":[{"name":"pv-q","vhost":"/","durable":true,"auto_delete":false,"arguments":{}}],
        "exchanges":[{"name":"pv-x","type":"topic","durable":true,"auto_delete":false,"internal":false,"arguments":{}}],
        "bindings":[{"source":"pv-x","destination":"pv-q","destination_type":"queue","routing_key":"a.*","arguments":{}}],
        "policies":[{"name":"pv-p","pattern":"^pv-","apply-to":"queues","definition":{"max-length":3},"priority":0}]}"#;
    let answer = request(addr, "POST", "/api/definitions/v2", document, GUEST);
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert_eq!(request(addr, "GET", "/api/queues/v2/pv-q", "", GUEST).status, 200);
    assert_eq!(request(addr, "GET", "/api/queues/%2F/pv-q", "", GUEST).status, 404);
    let exported = request(addr, "GET", "/api/definitions/v2", "", GUEST).json();
    assert_eq!(
        exported["queues"],
        json!([{"name": "pv-q", "durable": true, "auto_delete": false, "arguments": {}}])
    );
    assert_eq!(exported["bindings"][0]["routing_key"], "a.*");
    assert!(exported["bindings"][0].get("vhost").is_none());
    assert_eq!(exported["policies"][0]["vhost"], "v2");
    assert_eq!(request(addr, "POST", "/api/definitions/nowhere", document, GUEST).status, 404);

    // v2's export imported into v3 lands in v3, policies too.
    import(&broker, r#"{"vhosts":[{"name":"v3"}]}"#);
    let answer = request(addr, "POST", "/api/definitions/v3", &exported.to_string(), GUEST);
    assert_eq!(answer.status, 204, "{}", answer.body);
    let copied = request(addr, "GET", "/api/definitions/v3", "", GUEST).json();
    assert_eq!(copied["queues"], exported["queues"]);
    assert_eq!(copied["policies"][0]["vhost"], "v3");
    let v2 = request(addr, "GET", "/api/definitions/v2", "", GUEST).json();
    assert_eq!(v2["policies"].as_array().map(Vec::len), Some(1));
}

#[test]
fn rabbitmqadmin_v1_imports_lists_and_exports_per_vhost() {
    let admin = "/usr/bin/rabbitmqadmin";
    if !std::path::Path::new(admin).exists() {
        eprintln!("skipped: {admin} is not installed (tools/clients/install.sh installs it)");
        return;
    }
    let broker = Broker::start(&[]);
    let port = broker.addr("http").rsplit(':').next().expect("a port").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rabbitmq.json");
    std::fs::write(&file, fixture()).expect("write the fixture");
    let vhost_file = dir.path().join("v1.json");
    std::fs::write(
        &vhost_file,
        r#"{"queues":[{"name":"admin-q","durable":true,"auto_delete":false,"arguments":{}}]}"#,
    )
    .expect("write the vhost document");
    let rabbitmqadmin = |args: &[&str]| {
        let output = Command::new(admin)
            .args(["-H", "127.0.0.1", "-P", &port, "-u", "guest", "-p", "guest"])
            .args(args)
            .output()
            .expect("run rabbitmqadmin");
        assert!(
            output.status.success(),
            "rabbitmqadmin {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    rabbitmqadmin(&["import", file.to_str().expect("path")]);
    run(fixture_users_log_in(&broker));
    fixture_objects_are_listed(&broker);
    rabbitmqadmin(&["-V", "v1", "import", vhost_file.to_str().expect("path")]);
    assert_eq!(request(broker.addr("http"), "GET", "/api/queues/v1/admin-q", "", GUEST).status, 200);
    let in_v1 = rabbitmqadmin(&["-V", "v1", "list", "queues", "name"]);
    assert!(in_v1.contains("admin-q") && in_v1.contains("own-q") && !in_v1.contains("q-durable"), "{in_v1}");
    let everywhere = rabbitmqadmin(&["list", "queues", "vhost", "name"]);
    assert!(everywhere.contains("admin-q") && everywhere.contains("q-durable"), "{everywhere}");
    let exported = dir.path().join("v1-export.json");
    rabbitmqadmin(&["-V", "v1", "export", exported.to_str().expect("path")]);
    let exported: Value =
        serde_json::from_str(&std::fs::read_to_string(&exported).expect("export")).expect("JSON");
    let queues = exported["queues"].as_array().expect("queues");
    assert!(queues.iter().any(|q| q["name"] == "admin-q") && queues.iter().all(|q| q.get("vhost").is_none()));
}

/// Keys whose maps hold user data: the golden files list only their own path.
const USER_DATA_KEYS: [&str; 4] = ["arguments", "definition", "value", "limits"];

/// The key paths of `value` as `tests/golden/rabbitmq-3.10.8/README.md` writes them:
/// `a.b` nested, `a[]` a list, `a[].b` a key of its elements.
fn key_paths(value: &Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                if USER_DATA_KEYS.contains(&key.as_str()) {
                    out.insert(child_path);
                } else {
                    key_paths(child, &child_path, out);
                }
            }
        }
        Value::Array(items) => {
            let list_path = format!("{path}[]");
            out.insert(list_path.clone());
            for item in items {
                key_paths(item, &list_path, out);
            }
        }
        _ => {
            out.insert(path.to_owned());
        }
    }
}

/// The golden key paths of `file` that `document` lacks.
fn missing_golden_keys(file: &str, document: &Value) -> Vec<String> {
    let path = format!("{}/tests/golden/rabbitmq-3.10.8/{file}", env!("CARGO_MANIFEST_DIR"));
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("JSON");
    let mut ours = std::collections::BTreeSet::new();
    key_paths(document, "", &mut ours);
    let keys = golden["keys"].as_array().expect("keys").iter().filter_map(Value::as_str);
    keys.filter(|key| !ours.contains(*key)).map(str::to_owned).collect()
}

#[test]
fn exports_carry_every_key_of_rabbitmqs() {
    let broker = Broker::start(&[]);
    import(&broker, &fixture());
    // Warren keeps no cluster id, the only global parameter RabbitMQ 3.10.8 exports.
    let missing = missing_golden_keys("definitions.json", &export(&broker));
    assert_eq!(missing, ["global_parameters[].name", "global_parameters[].value"]);
    let v1 = request(broker.addr("http"), "GET", "/api/definitions/v1", "", GUEST).json();
    assert_eq!(missing_golden_keys("definitions.vhost.json", &v1), Vec::<String>::new());
}
