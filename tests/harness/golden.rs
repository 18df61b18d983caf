//! The key sets of RabbitMQ 3.10.8's replies (`tests/golden/rabbitmq-3.10.8/*.json`), to
//! compare with Warren's replies for the same object, top-level keys only.

use std::collections::BTreeSet;

use serde_json::Value;

/// Keys that are Erlang internals: Warren has no Erlang process to report on.
pub const ERLANG_INTERNALS: [&str; 3] = ["garbage_collection", "reductions", "reductions_details"];

/// The top-level keys of the golden reply `file` (for a list, the keys of its elements).
pub fn golden_keys(file: &str) -> BTreeSet<String> {
    let path = format!("{}/tests/golden/rabbitmq-3.10.8/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let golden: Value = serde_json::from_str(&text).expect("golden JSON");
    let paths = golden["keys"].as_array().expect("keys");
    paths
        .iter()
        .filter_map(Value::as_str)
        .filter(|path| *path != "[]")
        .map(|path| path.strip_prefix("[].").unwrap_or(path))
        .map(|path| path.split('.').next().unwrap_or(path).trim_end_matches("[]").to_owned())
        .collect()
}

/// The top-level keys of a reply: of the object, or of every element of a list.
pub fn reply_keys(reply: &Value) -> BTreeSet<String> {
    match reply {
        Value::Array(items) => items.iter().flat_map(reply_keys).collect(),
        Value::Object(object) => object.keys().cloned().collect(),
        other => panic!("not an object or a list: {other}"),
    }
}

/// Asserts that `reply` has the golden `file`'s keys, except the Erlang internals and the
/// keys `omitted` (what Warren does not measure), plus exactly the keys `added` (what
/// RabbitMQ's clients require beyond 3.10.8).
pub fn assert_golden_keys(file: &str, reply: &Value, omitted: &[&str], added: &[&str]) {
    let mut wanted = golden_keys(file);
    for key in ERLANG_INTERNALS.iter().chain(omitted) {
        assert!(wanted.remove(*key) || ERLANG_INTERNALS.contains(key), "{file} has no key {key}");
    }
    wanted.extend(added.iter().map(|key| (*key).to_owned()));
    let got = reply_keys(reply);
    assert_eq!(
        got,
        wanted,
        "{file}: keys differ\n  extra: {:?}\n  missing: {:?}",
        got.difference(&wanted).collect::<Vec<_>>(),
        wanted.difference(&got).collect::<Vec<_>>()
    );
}
