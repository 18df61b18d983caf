//! `/api/definitions[/{vhost}]`: the export (GET) and import (POST, in `definitions_import`)
//! of RabbitMQ's definitions document. The access parts (users, vhosts, permissions, topic
//! permissions, policies, vhost limits) come from the access model; queues, exchanges and
//! bindings from each vhost's broker.
//!
//! The export holds what RabbitMQ 3.10.8's does (`rabbit_mgmt_wm_definitions.erl`): every
//! queue but exclusive ones, every exchange but the default and the `amq.` ones, and every
//! binding from a named exchange, durable or not. Vhosts also carry their description,
//! tags and default queue type, as newer RabbitMQ exports do, so that they round-trip.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::bindings::rows;
use crate::broker::access::definitions::{
    BindingDefinition, Definitions, ExchangeDefinition, QueueDefinition, VhostDefinition, VhostDefinitions,
};
use crate::broker::access::AccessState;
use crate::broker::Broker;
use crate::management::http::{Request, Response};
use crate::management::json::{table_json, table_pairs_json};
use crate::management::{Api, ApiError};

/// The version RabbitMQ's definitions carry; RabbitMQ checks it on import.
pub const RABBITMQ_VERSION: &str = "3.10.8";

/// Routes `/api/definitions/{rest}` (administrators only, checked by the caller).
pub async fn route(api: &Api, request: &Request, method: &str, rest: &[&str]) -> Result<Response, ApiError> {
    match (method, rest) {
        ("GET" | "HEAD", []) => Ok(Response::json(200, &export_all(api))),
        ("GET" | "HEAD", [vhost]) => {
            let broker = api.node.vhost(vhost).ok_or(ApiError::NotFound)?;
            Ok(Response::json(200, &export_vhost(&broker, &api.node.access().snapshot())))
        }
        ("POST", []) => super::definitions_import::import_all(api, request).await,
        ("POST", [vhost]) => super::definitions_import::import_vhost(api, request, vhost).await,
        (_, [] | [_]) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

/// The queues, exchanges and bindings of one vhost as the export lists them; `vhost`
/// keys only when `named`.
struct Topology {
    queues: Vec<QueueDefinition>,
    exchanges: Vec<ExchangeDefinition>,
    bindings: Vec<BindingDefinition>,
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn topology(broker: &Broker, named: bool) -> Topology {
    let vhost = named.then(|| broker.vhost().to_string());
    let mut queues: Vec<_> = broker.queues().into_iter().filter(|q| q.exclusive_owner.is_none()).collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let exported_queue = |name: &str| queues.iter().any(|q| q.name.as_ref() == name.as_bytes());
    let mut exchanges: Vec<_> = broker
        .exchanges()
        .into_iter()
        .filter(|x| !x.name.is_empty() && !x.name.starts_with(b"amq."))
        .collect();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    let bindings = rows(broker)
        .into_iter()
        .filter(|row| !row.source.is_empty() && (!row.to_queue || exported_queue(&row.destination)))
        .map(|row| BindingDefinition {
            arguments: object(table_pairs_json(&row.args)),
            source: row.source,
            vhost: vhost.clone(),
            destination: row.destination,
            destination_type: if row.to_queue { "queue" } else { "exchange" }.to_owned(),
            routing_key: row.key,
        })
        .collect();
    Topology {
        queues: queues
            .iter()
            .map(|q| QueueDefinition {
                name: q.name_str(),
                vhost: vhost.clone(),
                queue_type: None,
                durable: q.durable,
                auto_delete: q.auto_delete,
                arguments: object(table_json(&q.arguments)),
            })
            .collect(),
        exchanges: exchanges
            .iter()
            .map(|x| ExchangeDefinition {
                name: String::from_utf8_lossy(&x.name).into_owned(),
                vhost: vhost.clone(),
                exchange_type: x.kind.as_str().to_owned(),
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: object(table_json(&x.arguments)),
            })
            .collect(),
        bindings,
    }
}

fn to_json<T: serde::Serialize>(document: &T) -> Value {
    serde_json::to_value(document).expect("definitions are plain data that always serialize")
}

/// The whole-broker document.
fn export_all(api: &Api) -> Value {
    let access = api.node.access().snapshot();
    let mut document = access.export_definitions();
    document.rabbit_version = Some(RABBITMQ_VERSION.to_owned());
    document.rabbitmq_version = Some(RABBITMQ_VERSION.to_owned());
    document.product_name = Some("Warren".to_owned());
    document.product_version = Some(env!("CARGO_PKG_VERSION").to_owned());
    document.vhosts = access
        .vhosts()
        .map(|vhost| VhostDefinition {
            name: vhost.name.clone(),
            description: Some(vhost.description.clone()),
            tags: Some(vhost.tags.clone()),
            default_queue_type: vhost.default_queue_type.clone(),
            ..VhostDefinition::default()
        })
        .collect();
    for broker in api.node.vhosts() {
        let Topology { queues, exchanges, bindings } = topology(&broker, true);
        document.queues.extend(queues);
        document.exchanges.extend(exchanges);
        document.bindings.extend(bindings);
    }
    to_json::<Definitions>(&document)
}

/// One vhost's document: no `vhost` keys on queues, exchanges and bindings.
fn export_vhost(broker: &Arc<Broker>, access: &AccessState) -> Value {
    let Topology { queues, exchanges, bindings } = topology(broker, false);
    let document = VhostDefinitions {
        rabbit_version: Some(RABBITMQ_VERSION.to_owned()),
        queues,
        exchanges,
        bindings,
        ..access.export_vhost_definitions(broker.vhost())
    };
    to_json(&document)
}
