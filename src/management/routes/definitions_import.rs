//! `POST /api/definitions[/{vhost}]`: imports a definitions document sent as JSON, or as
//! the `file` field of a form (RabbitMQ's UI; with a `redirect` field the answer is a 303
//! to it, as RabbitMQ's). 204 on success, 400 with a reason on bad input.
//!
//! Order and merge follow `apply_defs/3` in RabbitMQ's `rabbit_definitions.erl`: the access
//! parts first (users, vhosts, vhost limits, permissions, topic permissions, policies;
//! existing ones are updated), then queues, exchanges and bindings, declared in their
//! vhost's broker as `PUT` declares them. A queue or exchange that exists already is kept
//! as it is, whatever the document says of it, and names starting with `amq.` are skipped,
//! as RabbitMQ skips them. The access parts apply whole or not at all, and a document whose
//! objects name a vhost that neither exists nor is imported changes nothing; an error while
//! declaring leaves what was declared before it, as in RabbitMQ.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::MANAGEMENT_CONNECTION;
use crate::broker::access::definitions::{
    BindingDefinition, Definitions, ExchangeDefinition, QueueDefinition, VhostDefinitions,
};
use crate::broker::access::AccessError;
use crate::broker::node::NodeError;
use crate::broker::{Broker, Error as BrokerError, ExchangeDeclare, QueueDeclare};
use crate::management::form;
use crate::management::http::{Request, Response};
use crate::management::json::json_table;
use crate::management::{Api, ApiError};
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

/// The form field that carries the document.
const FILE_FIELD: &str = "file";
/// The form field naming where the UI wants to go afterwards.
const REDIRECT_FIELD: &str = "redirect";

/// A document as posted, and the form's redirect if any.
struct Upload {
    document: Vec<u8>,
    redirect: Option<String>,
}

fn upload(request: &Request) -> Result<Upload, ApiError> {
    let content_type = request.header("content-type").unwrap_or_default();
    if !form::is_form(content_type) {
        return Ok(Upload { document: request.body.clone(), redirect: None });
    }
    let fields =
        form::fields(content_type, &request.body).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let mut document = None;
    let mut redirect = None;
    for field in fields {
        match field.name.as_str() {
            FILE_FIELD => document = Some(field.value),
            REDIRECT_FIELD => redirect = Some(String::from_utf8_lossy(&field.value).into_owned()),
            _ => {}
        }
    }
    let document = document.ok_or_else(|| ApiError::BadRequest(format!("no '{FILE_FIELD}' field")))?;
    Ok(Upload { document, redirect })
}

/// The document as `T`: `failed_to_parse_json` (RabbitMQ's reason) when it is not JSON, the
/// field at fault when it is JSON of another shape.
fn parse<T: DeserializeOwned>(document: &[u8]) -> Result<T, ApiError> {
    let value: Value =
        serde_json::from_slice(document).map_err(|_| ApiError::BadRequest("failed_to_parse_json".into()))?;
    serde_json::from_value(value).map_err(|error| ApiError::BadRequest(error.to_string()))
}

fn answer(redirect: Option<String>) -> Response {
    match redirect {
        Some(location) => Response::empty(303).with_header("location", location),
        None => Response::empty(204),
    }
}

fn node_error(error: NodeError) -> ApiError {
    match error {
        NodeError::Access(error) => ApiError::BadRequest(error.to_string()),
        NodeError::Broker(error) => ApiError::from(error),
    }
}

/// The queues, exchanges and bindings of one vhost in a document.
#[derive(Default)]
struct Topology<'a> {
    queues: Vec<&'a QueueDefinition>,
    exchanges: Vec<&'a ExchangeDefinition>,
    bindings: Vec<&'a BindingDefinition>,
}

/// The whole-broker document's topology by vhost.
///
/// # Errors
/// 400 for an object that names no vhost.
fn topology_by_vhost(definitions: &Definitions) -> Result<BTreeMap<&str, Topology<'_>>, ApiError> {
    fn vhost_of<'a>(vhost: &'a Option<String>, what: &str, name: &str) -> Result<&'a str, ApiError> {
        vhost.as_deref().ok_or_else(|| ApiError::BadRequest(format!("{what} '{name}' names no vhost")))
    }
    let mut by_vhost: BTreeMap<&str, Topology<'_>> = BTreeMap::new();
    for queue in &definitions.queues {
        by_vhost.entry(vhost_of(&queue.vhost, "queue", &queue.name)?).or_default().queues.push(queue);
    }
    for exchange in &definitions.exchanges {
        let vhost = vhost_of(&exchange.vhost, "exchange", &exchange.name)?;
        by_vhost.entry(vhost).or_default().exchanges.push(exchange);
    }
    for binding in &definitions.bindings {
        let vhost = vhost_of(&binding.vhost, "binding from", &binding.source)?;
        by_vhost.entry(vhost).or_default().bindings.push(binding);
    }
    Ok(by_vhost)
}

/// `POST /api/definitions`.
pub async fn import_all(api: &Api, request: &Request) -> Result<Response, ApiError> {
    let upload = upload(request)?;
    let definitions: Definitions = parse(&upload.document)?;
    let by_vhost = topology_by_vhost(&definitions)?;
    api.node
        .change_access(|state| {
            state.import_definitions(&definitions)?;
            match by_vhost.keys().find(|vhost| state.vhost(vhost).is_none()) {
                Some(missing) => Err(AccessError::NoSuchVhost((*missing).to_owned())),
                None => Ok(()),
            }
        })
        .await
        .map_err(node_error)?;
    for (vhost, topology) in &by_vhost {
        let broker = api.node.vhost(vhost).ok_or(ApiError::NotFound)?;
        declare_topology(&broker, topology).await?;
    }
    tracing::info!(
        users = definitions.users.len(),
        vhosts = definitions.vhosts.len(),
        "definitions imported"
    );
    Ok(answer(upload.redirect))
}

/// `POST /api/definitions/{vhost}`: everything goes into `vhost`, whatever the document's
/// `vhost` keys say.
pub async fn import_vhost(api: &Api, request: &Request, vhost: &str) -> Result<Response, ApiError> {
    let broker = api.node.vhost(vhost).ok_or(ApiError::NotFound)?;
    let upload = upload(request)?;
    let mut definitions: VhostDefinitions = parse(&upload.document)?;
    // Policies and parameters keep their `vhost` key in an export; here they go into
    // `vhost` all the same, as RabbitMQ's per-vhost import puts them.
    definitions.policies.iter_mut().for_each(|policy| policy.vhost = None);
    definitions.parameters.iter_mut().for_each(|parameter| parameter.vhost = None);
    api.node
        .change_access(|state| state.import_vhost_definitions(vhost, &definitions))
        .await
        .map_err(node_error)?;
    let topology = Topology {
        queues: definitions.queues.iter().collect(),
        exchanges: definitions.exchanges.iter().collect(),
        bindings: definitions.bindings.iter().collect(),
    };
    declare_topology(&broker, &topology).await?;
    tracing::info!(vhost, "definitions imported");
    Ok(answer(upload.redirect))
}

/// A declaration the broker refused: 400 with its text, a missing queue or exchange too
/// (a binding to it), as RabbitMQ answers an import that cannot be applied.
fn refused(error: BrokerError) -> ApiError {
    let text = error.to_string();
    match ApiError::from(error) {
        ApiError::NotFound => ApiError::BadRequest(text),
        other => other,
    }
}

fn arguments(map: &Map<String, Value>, what: &str, name: &str) -> Result<FieldTable, ApiError> {
    json_table(&Value::Object(map.clone()))
        .ok_or_else(|| ApiError::BadRequest(format!("invalid arguments of {what} '{name}'")))
}

/// Declares the queues, then the exchanges, then the bindings of one vhost.
async fn declare_topology(broker: &Arc<Broker>, topology: &Topology<'_>) -> Result<(), ApiError> {
    for queue in &topology.queues {
        declare_queue(broker, queue).await?;
    }
    for exchange in &topology.exchanges {
        declare_exchange(broker, exchange).await?;
    }
    for binding in &topology.bindings {
        let to_queue = match binding.destination_type.as_str() {
            "queue" => true,
            "exchange" => false,
            other => return Err(ApiError::BadRequest(format!("unknown destination_type '{other}'"))),
        };
        broker
            .bind(
                binding.source.as_bytes(),
                binding.destination.as_bytes(),
                to_queue,
                binding.routing_key.as_bytes(),
                arguments(&binding.arguments, "binding from", &binding.source)?,
                MANAGEMENT_CONNECTION,
            )
            .await
            .map_err(refused)?;
    }
    Ok(())
}

async fn declare_queue(broker: &Broker, queue: &QueueDefinition) -> Result<(), ApiError> {
    if queue.name.starts_with("amq.") {
        tracing::warn!(vhost = %broker.vhost(), queue = %queue.name, "import skips a queue whose name starts with 'amq.'");
        return Ok(());
    }
    if broker.queue(queue.name.as_bytes()).is_some() {
        return Ok(());
    }
    let mut arguments = arguments(&queue.arguments, "queue", &queue.name)?;
    // `rabbitmqctl export_definitions` gives the type beside the arguments.
    if let (Some(kind), None) = (&queue.queue_type, arguments.get("x-queue-type")) {
        let kind = FieldValue::LongStr(Bytes::from(kind.clone()));
        arguments.0.push((ShortStr::from_static("x-queue-type"), kind));
    }
    let declare = QueueDeclare {
        name: Bytes::from(queue.name.clone()),
        durable: queue.durable,
        auto_delete: queue.auto_delete,
        arguments,
        connection: MANAGEMENT_CONNECTION,
        ..QueueDeclare::default()
    };
    broker.declare_queue(declare).await.map_err(refused)?;
    Ok(())
}

async fn declare_exchange(broker: &Broker, exchange: &ExchangeDefinition) -> Result<(), ApiError> {
    if exchange.name.is_empty() || exchange.name.starts_with("amq.") {
        tracing::warn!(vhost = %broker.vhost(), exchange = %exchange.name, "import skips the default exchange and names starting with 'amq.'");
        return Ok(());
    }
    if broker.exchange(exchange.name.as_bytes()).is_some() {
        return Ok(());
    }
    let declare = ExchangeDeclare {
        name: Bytes::from(exchange.name.clone()),
        kind: Bytes::from(exchange.exchange_type.clone()),
        passive: false,
        durable: exchange.durable,
        auto_delete: exchange.auto_delete,
        internal: exchange.internal,
        arguments: arguments(&exchange.arguments, "exchange", &exchange.name)?,
    };
    broker.declare_exchange(declare).await.map_err(refused)?;
    Ok(())
}
