//! `/api/queues…`: list, show, declare (PUT), delete, purge (`contents`), get and the
//! queue's bindings, in any vhost the user reaches (see `scope`).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{body_bool, body_json, list_named, one, query_flag, MANAGEMENT_CONNECTION};
use crate::broker::access::{Permission, Resource};
use crate::broker::{Broker, QueueDeclare};
use crate::management::http::{Request, Response};
use crate::management::json::{consumer_json, json_table};
use crate::management::scope::{InVhost, Refusal};
use crate::management::{Api, ApiError, Principal};

/// Routes `/api/queues/{rest}`.
pub async fn route(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    match (method, rest) {
        ("GET", []) => list_queues(api, request, &api.listed_vhosts(principal, None)?),
        ("GET", [vhost]) => list_queues(api, request, &api.listed_vhosts(principal, Some(vhost))?),
        (_, [vhost, name, tail @ ..]) => {
            let vhost = api.in_vhost(principal, vhost)?;
            match (method, tail) {
                ("GET", []) => show(api, &vhost, request, name).await,
                ("PUT", []) => declare(&vhost, request, name).await,
                ("DELETE", []) => delete(&vhost, request, name).await,
                ("DELETE", ["contents"]) => purge(&vhost, name).await,
                ("POST", ["get"]) => super::messages::get(api, &vhost, request, name).await,
                ("GET", ["bindings"]) => super::bindings::of_queue(&vhost.broker, request, name),
                (_, [] | ["contents"] | ["get"] | ["bindings"]) => Err(ApiError::MethodNotAllowed),
                _ => Err(ApiError::NotFound),
            }
        }
        (_, [] | [_]) => Err(ApiError::MethodNotAllowed),
    }
}

/// The queues of `vhosts`, built in one pass over the model's entries: counts come from
/// atomics.
fn list_queues(api: &Api, request: &Request, vhosts: &[Arc<Broker>]) -> Result<Response, ApiError> {
    let entries = vhosts
        .iter()
        .flat_map(|broker| {
            broker
                .queues()
                .into_iter()
                .map(move |queue| (broker.vhost().to_string(), queue.name_str(), (Arc::clone(broker), queue)))
        })
        .collect();
    list_named(request, entries, |(broker, queue)| api.queue_json(queue, broker.vhost()))
}

/// One queue, with its consumers as the node's connections list them. Its per-channel
/// `deliveries` and `incoming` statistics are RabbitMQ's `detailed` rates mode; in
/// `basic`, as Warren's, these lists are empty. A stream also shows each consumer's
/// committed offset and lag (`stream_consumers`, Warren's own key), asked of its task.
async fn show(api: &Api, vhost: &InVhost, request: &Request, name: &str) -> Result<Response, ApiError> {
    let queue = vhost.broker.queue(name.as_bytes()).ok_or(ApiError::NotFound)?;
    let mut value = api.queue_json(&queue, vhost.name());
    let lags = if queue.is_stream() { queue.handle.lag().await.ok() } else { None };
    if let Some(object) = value.as_object_mut() {
        object.insert("consumer_details".into(), Value::Array(consumer_details(api, vhost.name(), name)));
        object.insert("deliveries".into(), json!([]));
        object.insert("incoming".into(), json!([]));
        if let Some(lags) = lags {
            let consumers = lags
                .iter()
                .map(|lag| {
                    json!({
                        "consumer": lag.consumer,
                        "committed_offset": lag.committed_offset,
                        "lag_messages": lag.lag_messages,
                        "lag_bytes": lag.lag_bytes,
                        "oldest_unconsumed_age_ms": lag.oldest_unconsumed_age_ms,
                    })
                })
                .collect();
            object.insert("stream_consumers".into(), Value::Array(consumers));
        }
    }
    Ok(one(request, &value))
}

/// The consumers of queue `name` in `vhost`, from every open connection's channels.
fn consumer_details(api: &Api, vhost: &str, name: &str) -> Vec<Value> {
    let mut consumers = Vec::new();
    for connection in api.node.connections().iter().filter(|c| c.facts.vhost == vhost) {
        for channel in connection.channels() {
            for consumer in channel.consumers().iter().filter(|c| c.queue == name.as_bytes()) {
                consumers.push(consumer_json(&api.node_info.name, connection, &channel, consumer));
            }
        }
    }
    consumers
}

/// PUT: 201 when created, 204 when an equivalent queue exists, 400 when inequivalent.
/// Checked as `queue.declare`: configure on the queue; for a new queue with a
/// dead-letter exchange, read on the queue and write on that exchange; then the vhost's
/// queue limit.
async fn declare(vhost: &InVhost, request: &Request, name: &str) -> Result<Response, ApiError> {
    let body = body_json(request)?;
    let arguments = json_table(body.get("arguments").unwrap_or(&serde_json::Value::Null))
        .ok_or_else(|| ApiError::BadRequest("arguments must be an object".to_string()))?;
    vhost.permit(Resource::queue(name.as_bytes()), Permission::Configure, Refusal::Operation)?;
    let existed = vhost.broker.queue(name.as_bytes()).is_some();
    if !existed {
        if let Some(exchange) = arguments.get("x-dead-letter-exchange").and_then(|v| v.as_bytes()) {
            vhost.permit(Resource::queue(name.as_bytes()), Permission::Read, Refusal::Operation)?;
            vhost.permit(Resource::exchange(exchange), Permission::Write, Refusal::Operation)?;
        }
        vhost.check_new_queue(name.as_bytes())?;
    }
    let declare = QueueDeclare {
        server_named: false,
        name: Bytes::copy_from_slice(name.as_bytes()),
        passive: false,
        durable: body_bool(&body, "durable", false)?,
        exclusive: false,
        auto_delete: body_bool(&body, "auto_delete", false)?,
        arguments,
        connection: MANAGEMENT_CONNECTION,
    };
    vhost.broker.declare_queue(declare).await?;
    Ok(Response::empty(if existed { 204 } else { 201 }))
}

/// DELETE with `if-unused` / `if-empty`: 204, or 404 for a missing queue. Needs
/// configure on the queue.
async fn delete(vhost: &InVhost, request: &Request, name: &str) -> Result<Response, ApiError> {
    if vhost.broker.queue(name.as_bytes()).is_none() {
        return Err(ApiError::NotFound);
    }
    vhost.permit(Resource::queue(name.as_bytes()), Permission::Configure, Refusal::Operation)?;
    let if_unused = query_flag(request, "if-unused");
    let if_empty = query_flag(request, "if-empty");
    vhost.broker.delete_queue(name.as_bytes(), if_unused, if_empty, None).await?;
    Ok(Response::empty(204))
}

/// DELETE `…/contents`: drops the ready messages. Needs read on the queue.
async fn purge(vhost: &InVhost, name: &str) -> Result<Response, ApiError> {
    vhost.permit(Resource::queue(name.as_bytes()), Permission::Read, Refusal::Operation)?;
    vhost.broker.purge_queue(name.as_bytes(), MANAGEMENT_CONNECTION).await?;
    Ok(Response::empty(204))
}
