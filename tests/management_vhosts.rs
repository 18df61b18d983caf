//! The management API across vhosts: the same names kept apart in each vhost, lists over
//! all vhosts or one, a missing vhost answered 404, and a non-administrator who sees and
//! acts only where their permissions allow, refused with RabbitMQ 3.10.8's 401 bodies
//! (`tests/golden/rabbitmq-3.10.8/errors.json`).
//!
//! The access model is written into the data directory before the broker starts, through
//! the same library type the broker stores it with.

use std::path::Path;

use serde_json::{json, Value};
use warren::broker::access::{AccessControl, Tag, VhostLimits};
use warren::broker::node::ACCESS_FILE;

use crate::harness::broker::Broker;
use crate::harness::http_api::json as request;
use crate::harness::lapin_client::*;
use crate::harness::run;

const GUEST: (&str, &str) = ("guest", "guest");
const ALICE: (&str, &str) = ("alice", "alice-pw");
const MONITOR: (&str, &str) = ("mon", "mon-pw");

/// guest (administrator, every permission on `/` and `v1`); alice (`management`), who may
/// configure, write and read only names starting `own-` in `v1`; mon (`monitoring`), with
/// read permission on `/` only; and vhost `lim`, which takes one queue.
fn start(dir: &Path) -> Broker {
    let access = AccessControl::with_default_user("guest", "guest").expect("default");
    access
        .update(|state| {
            state.add_vhost("v1")?;
            state.set_permissions("guest", "v1", ".*", ".*", ".*")?;
            state.add_user("alice", Some("alice-pw"), vec![Tag::Management])?;
            state.set_permissions("alice", "v1", "^own-.*", "^own-.*", "^own-.*")?;
            state.add_user("mon", Some("mon-pw"), vec![Tag::Monitoring])?;
            state.set_permissions("mon", "/", "^$", "^$", ".*")?;
            state.add_vhost("lim")?;
            state.set_vhost_limits("lim", VhostLimits { max_connections: None, max_queues: Some(1) })?;
            state.set_permissions("guest", "lim", ".*", ".*", ".*")
        })
        .expect("access model");
    std::fs::create_dir_all(dir).expect("data dir");
    std::fs::write(dir.join(ACCESS_FILE), access.to_bytes()).expect("write the access model");
    Broker::start_in(dir, &["--storage", "disk"])
}

/// The `(vhost, name)` pairs of a list.
fn placed(list: &Value) -> Vec<(String, String)> {
    let items = list.as_array().expect("a list");
    let text = |item: &Value, key: &str| item[key].as_str().expect("a string").to_owned();
    items.iter().map(|item| (text(item, "vhost"), text(item, "name"))).collect()
}

fn pair(vhost: &str, name: &str) -> (String, String) {
    (vhost.to_owned(), name.to_owned())
}

#[test]
fn the_same_queue_name_in_two_vhosts_is_kept_apart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let broker = start(temp.path());
    let addr = broker.addr("http");
    let declare_root = r#"{"durable":true,"arguments":{}}"#;
    let declare_v1 = r#"{"durable":true,"arguments":{"x-max-length":5}}"#;
    assert_eq!(request(addr, "PUT", "/api/queues/%2F/twin", declare_root, GUEST).status, 201);
    assert_eq!(request(addr, "PUT", "/api/queues/v1/twin", declare_v1, GUEST).status, 201);
    assert_eq!(request(addr, "PUT", "/api/exchanges/v1/x-twin", r#"{"type":"fanout"}"#, GUEST).status, 201);
    let bound = request(addr, "POST", "/api/bindings/v1/e/x-twin/q/twin", r#"{"routing_key":"k"}"#, GUEST);
    assert_eq!(bound.status, 201);
    let publish = r#"{"properties":{},"routing_key":"k","payload":"in v1","payload_encoding":"string"}"#;
    let routed = request(addr, "POST", "/api/exchanges/v1/x-twin/publish", publish, GUEST);
    assert_eq!(routed.json(), json!({"routed": true}));

    let root = request(addr, "GET", "/api/queues/%2F/twin", "", GUEST).json();
    let v1 = request(addr, "GET", "/api/queues/v1/twin", "", GUEST).json();
    assert_eq!((root["vhost"].clone(), root["arguments"].clone()), (json!("/"), json!({})));
    assert_eq!((v1["vhost"].clone(), v1["arguments"].clone()), (json!("v1"), json!({"x-max-length": 5})));
    assert_eq!((root["messages"].clone(), v1["messages"].clone()), (json!(0), json!(1)));

    let all = placed(&request(addr, "GET", "/api/queues", "", GUEST).json());
    assert!(all.contains(&pair("/", "twin")) && all.contains(&pair("v1", "twin")), "{all:?}");
    assert_eq!(placed(&request(addr, "GET", "/api/queues/v1", "", GUEST).json()), vec![pair("v1", "twin")]);
    let exchanges = placed(&request(addr, "GET", "/api/exchanges/v1", "", GUEST).json());
    assert!(exchanges.contains(&pair("v1", "x-twin")) && exchanges.iter().all(|(v, _)| v == "v1"));
    assert!(
        !placed(&request(addr, "GET", "/api/exchanges/%2F", "", GUEST).json()).contains(&pair("/", "x-twin"))
    );
    let bindings = request(addr, "GET", "/api/bindings", "", GUEST).json();
    let from_twin: Vec<&Value> =
        bindings.as_array().expect("list").iter().filter(|b| b["source"] == "x-twin").collect();
    assert_eq!(from_twin.len(), 1);
    assert_eq!(from_twin.first().map(|b| b["vhost"].clone()), Some(json!("v1")));
    let sources = request(addr, "GET", "/api/exchanges/v1/x-twin/bindings/source", "", GUEST).json();
    assert_eq!(sources.as_array().map(Vec::len), Some(1));

    // The message is in v1's queue, for the API's get (which requeues it before it
    // answers) and then for AMQP.
    let got = request(
        addr,
        "POST",
        "/api/queues/v1/twin/get",
        r#"{"count":5,"ackmode":"ack_requeue_true","encoding":"auto"}"#,
        GUEST,
    );
    assert_eq!(got.json()[0]["payload"], "in v1");
    let url = format!("amqp://guest:guest@{}/v1", broker.addr("amqp"));
    run(async {
        let connection = connect_url(&url).await;
        let got = get(&channel(&connection).await, "twin", true).await.expect("a message in v1's twin");
        assert_eq!(got.delivery.data, b"in v1");
    });
    assert_eq!(
        request(
            addr,
            "POST",
            "/api/queues/%2F/twin/get",
            r#"{"count":5,"ackmode":"ack_requeue_false"}"#,
            GUEST
        )
        .json(),
        json!([])
    );

    assert_eq!(request(addr, "GET", "/api/aliveness-test/v1", "", GUEST).json(), json!({"status": "ok"}));
    let overview = request(addr, "GET", "/api/overview?columns=object_totals.queues", "", GUEST).json();
    assert_eq!(overview, json!({"object_totals": {"queues": 3}}), "twin twice and v1's aliveness-test");
    assert_eq!(request(addr, "DELETE", "/api/queues/v1/twin", "", GUEST).status, 204);
    assert_eq!(request(addr, "GET", "/api/queues/%2F/twin", "", GUEST).status, 200, "/'s twin stays");
    let definitions = request(addr, "GET", "/api/definitions", "", GUEST).json();
    assert!(definitions["exchanges"]
        .as_array()
        .expect("list")
        .iter()
        .any(|x| x["name"] == "x-twin" && x["vhost"] == "v1"));
    assert!(definitions["queues"]
        .as_array()
        .expect("list")
        .iter()
        .any(|q| q["name"] == "twin" && q["vhost"] == "/"));
}

#[test]
fn a_missing_vhost_is_not_found() {
    let temp = tempfile::tempdir().expect("temp dir");
    let broker = start(temp.path());
    let addr = broker.addr("http");
    let not_found = json!({"error": "Object Not Found", "reason": "Not Found"});
    for (method, path) in [
        ("GET", "/api/queues/nowhere"),
        ("GET", "/api/exchanges/nowhere"),
        ("GET", "/api/bindings/nowhere"),
        ("GET", "/api/queues/nowhere/q"),
        ("PUT", "/api/queues/nowhere/q"),
        ("PUT", "/api/exchanges/nowhere/x"),
        ("GET", "/api/definitions/nowhere"),
        ("GET", "/api/aliveness-test/nowhere"),
        ("GET", "/api/vhosts/nowhere"),
    ] {
        let answer = request(addr, method, path, "{}", GUEST);
        assert_eq!((answer.status, answer.json()), (404, not_found.clone()), "{method} {path}");
    }
    // A user without permissions anywhere gets 404 too, not 401.
    assert_eq!(request(addr, "GET", "/api/queues/nowhere", "", ALICE).status, 404);
}

/// As `errors.json`'s `publish_unknown_exchange` and `get_unknown_queue`, in another vhost.
#[test]
fn publish_and_get_name_the_vhost_of_a_missing_object() {
    let temp = tempfile::tempdir().expect("temp dir");
    let broker = start(temp.path());
    let addr = broker.addr("http");
    let publish = r#"{"properties":{},"routing_key":"","payload":"x","payload_encoding":"string"}"#;
    let answer = request(addr, "POST", "/api/exchanges/v1/no-such-exchange/publish", publish, GUEST);
    assert_eq!(
        (answer.status, answer.json()),
        (
            400,
            json!({"error": "bad_request", "reason": "404 NOT_FOUND - no exchange 'no-such-exchange' in vhost 'v1'"})
        )
    );
    let get = r#"{"count":1,"ackmode":"ack_requeue_true","encoding":"auto"}"#;
    let answer = request(addr, "POST", "/api/queues/v1/no-such-queue/get", get, GUEST);
    assert_eq!(
        (answer.status, answer.json()),
        (404, json!({"error": "not_found", "reason": "NOT_FOUND - no queue 'no-such-queue' in vhost 'v1'"}))
    );
}

#[test]
fn a_management_user_sees_and_acts_only_where_permitted() {
    let temp = tempfile::tempdir().expect("temp dir");
    let broker = start(temp.path());
    let addr = broker.addr("http");
    for (vhost, name) in [("%2F", "root-q"), ("v1", "own-q"), ("v1", "other-q")] {
        assert_eq!(request(addr, "PUT", &format!("/api/queues/{vhost}/{name}"), "{}", GUEST).status, 201);
    }
    let seen = placed(&request(addr, "GET", "/api/queues", "", ALICE).json());
    assert_eq!(seen, vec![pair("v1", "other-q"), pair("v1", "own-q")], "alice sees v1 only");
    assert!(placed(&request(addr, "GET", "/api/exchanges", "", ALICE).json()).iter().all(|(v, _)| v == "v1"));
    let bindings = request(addr, "GET", "/api/bindings", "", ALICE).json();
    assert!(bindings.as_array().expect("list").iter().all(|b| b["vhost"] == "v1"));
    let vhost_refused =
        json!({"error": "not_authorised", "reason": "User not authorised to access virtual host"});
    for path in ["/api/queues/%2F", "/api/queues/%2F/root-q", "/api/exchanges/%2F", "/api/aliveness-test/%2F"]
    {
        let answer = request(addr, "GET", path, "", ALICE);
        assert_eq!((answer.status, answer.json()), (401, vhost_refused.clone()), "{path}");
    }
    let answer = request(addr, "PUT", "/api/queues/%2F/own-x", "{}", ALICE);
    assert_eq!((answer.status, answer.json()), (401, vhost_refused));
    let overview = request(addr, "GET", "/api/overview?columns=object_totals.queues", "", ALICE).json();
    assert_eq!(overview, json!({"object_totals": {"queues": 2}}), "v1's queues only");

    // Object operations check configure, write and read as queue.declare and the like do.
    let access_refused = json!({"error": "not_authorised", "reason": "Access refused."});
    for (method, path, body) in [
        ("PUT", "/api/queues/v1/theirs", "{}"),
        ("DELETE", "/api/queues/v1/other-q", ""),
        ("DELETE", "/api/queues/v1/other-q/contents", ""),
        ("PUT", "/api/exchanges/v1/theirs-x", r#"{"type":"direct"}"#),
        ("POST", "/api/bindings/v1/e/amq.direct/q/own-q", r#"{"routing_key":"k"}"#),
    ] {
        let answer = request(addr, method, path, body, ALICE);
        assert_eq!((answer.status, answer.json()), (401, access_refused.clone()), "{method} {path}");
    }
    assert_eq!(request(addr, "PUT", "/api/queues/v1/own-new", "{}", ALICE).status, 201);
    assert_eq!(request(addr, "PUT", "/api/exchanges/v1/own-x", r#"{"type":"direct"}"#, ALICE).status, 201);
    assert_eq!(
        request(addr, "POST", "/api/bindings/v1/e/own-x/q/own-new", r#"{"routing_key":"k"}"#, ALICE).status,
        201
    );
    let publish = r#"{"properties":{},"routing_key":"k","payload":"mine","payload_encoding":"string"}"#;
    let published = request(addr, "POST", "/api/exchanges/v1/own-x/publish", publish, ALICE);
    assert_eq!(published.json(), json!({"routed": true}));
    let refused = request(addr, "POST", "/api/exchanges/v1/amq.default/publish", publish, ALICE);
    assert_eq!(
        (refused.status, refused.json()),
        (
            401,
            json!({"error": "not_authorised", "reason": "ACCESS_REFUSED - access to exchange 'amq.default' in vhost 'v1' refused for user 'alice'"})
        )
    );
    let get = r#"{"count":1,"ackmode":"ack_requeue_false","encoding":"auto"}"#;
    assert_eq!(request(addr, "POST", "/api/queues/v1/own-new/get", get, ALICE).json()[0]["payload"], "mine");
    let refused = request(addr, "POST", "/api/queues/v1/other-q/get", get, ALICE);
    assert_eq!(
        (refused.status, refused.json()),
        (
            401,
            json!({"error": "not_authorised", "reason": "ACCESS_REFUSED - access to queue 'other-q' in vhost 'v1' refused for user 'alice'"})
        )
    );

    // A monitoring user lists every vhost, though it has permissions in `/` only.
    let seen = placed(&request(addr, "GET", "/api/queues", "", MONITOR).json());
    assert!(seen.contains(&pair("/", "root-q")) && seen.contains(&pair("v1", "own-q")), "{seen:?}");
    assert_eq!(request(addr, "GET", "/api/queues/v1", "", MONITOR).status, 200);
    let answer = request(addr, "DELETE", "/api/queues/%2F/root-q", "", MONITOR);
    assert_eq!((answer.status, answer.json()), (401, access_refused));
}

/// As `errors.json`'s `vhost_max_queues_exceeded`.
#[test]
fn a_put_past_the_vhost_queue_limit_is_refused() {
    let temp = tempfile::tempdir().expect("temp dir");
    let broker = start(temp.path());
    let addr = broker.addr("http");
    assert_eq!(request(addr, "PUT", "/api/queues/lim/first", "{}", GUEST).status, 201);
    assert_eq!(request(addr, "PUT", "/api/queues/lim/first", "{}", GUEST).status, 204, "an existing queue");
    let answer = request(addr, "PUT", "/api/queues/lim/over-limit", "{}", GUEST);
    assert_eq!(
        (answer.status, answer.json()),
        (
            400,
            json!({"error": "bad_request", "reason": "cannot declare queue 'over-limit': queue limit in vhost 'lim' (1) is reached"})
        )
    );
}
