//! `GET /api/definitions[/{vhost}]`: the durable topology as RabbitMQ exports it. Users,
//! permissions, policies and parameters come with the access store; until then those lists
//! are empty (Warren has none to export) and only the vhost `/` is listed.

use serde_json::{json, Value};

use crate::management::http::Response;
use crate::management::json::{exchange_json, queue_json, VHOST};
use crate::management::{Api, ApiError};

/// The version RabbitMQ's definitions carry; RabbitMQ checks it on import.
pub const RABBITMQ_VERSION: &str = "3.10.8";

/// The definitions document; `all_vhosts` adds the cluster-wide lists and the `vhost` keys.
pub fn all(api: &Api, all_vhosts: bool) -> Result<Response, ApiError> {
    let keep = |value: Value, keys: &[&str]| -> Value {
        let mut object = serde_json::Map::new();
        for key in keys {
            if let Some(v) = value.get(*key) {
                if *key != "vhost" || all_vhosts {
                    object.insert((*key).to_string(), v.clone());
                }
            }
        }
        Value::Object(object)
    };
    let broker = api.broker()?;
    let mut queues: Vec<Value> = broker
        .queues()
        .iter()
        .filter(|q| q.durable && q.exclusive_owner.is_none())
        .map(|q| {
            keep(
                queue_json(q, &api.node_info.name),
                &["name", "vhost", "durable", "auto_delete", "arguments"],
            )
        })
        .collect();
    queues.sort_by(|a, b| a.get("name").and_then(Value::as_str).cmp(&b.get("name").and_then(Value::as_str)));
    let mut exchanges: Vec<Value> = broker
        .exchanges()
        .iter()
        .filter(|x| x.durable && !x.name.is_empty() && !x.name.starts_with(b"amq."))
        .map(|x| {
            keep(
                exchange_json(x),
                &["name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"],
            )
        })
        .collect();
    exchanges
        .sort_by(|a, b| a.get("name").and_then(Value::as_str).cmp(&b.get("name").and_then(Value::as_str)));
    let bindings: Vec<Value> = super::bindings::durable_rows(api)
        .into_iter()
        .map(|b| keep(b, &["source", "vhost", "destination", "destination_type", "routing_key", "arguments"]))
        .collect();
    let mut document = json!({
        "rabbit_version": RABBITMQ_VERSION,
        "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "parameters": [],
        "policies": [],
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    });
    if all_vhosts {
        if let Some(object) = document.as_object_mut() {
            object.insert("users".into(), json!([]));
            object.insert("vhosts".into(), json!([{"name": VHOST}]));
            object.insert("permissions".into(), json!([]));
            object.insert("topic_permissions".into(), json!([]));
            object.insert("global_parameters".into(), json!([]));
        }
    }
    Ok(Response::json(200, &document))
}
