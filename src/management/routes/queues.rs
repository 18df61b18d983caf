//! `/api/queues…`: list, show, declare (PUT), delete, purge (`contents`), get and the
//! queue's bindings.

use bytes::Bytes;

use super::{body_bool, body_json, check_vhost, list, one, query_flag, MANAGEMENT_CONNECTION};
use crate::broker::QueueDeclare;
use crate::management::http::{Request, Response};
use crate::management::json::json_table;
use crate::management::{Api, ApiError};

/// Routes `/api/queues/{rest}`.
pub async fn route(api: &Api, request: &Request, method: &str, rest: &[&str]) -> Result<Response, ApiError> {
    match (method, rest) {
        ("GET", []) => list_queues(api, request),
        ("GET", [vhost]) => {
            check_vhost(vhost)?;
            list_queues(api, request)
        }
        (_, [vhost, name, tail @ ..]) => {
            check_vhost(vhost)?;
            match (method, tail) {
                ("GET", []) => show(api, request, name),
                ("PUT", []) => declare(api, request, name).await,
                ("DELETE", []) => delete(api, request, name).await,
                ("DELETE", ["contents"]) => purge(api, name).await,
                ("POST", ["get"]) => super::messages::get(api, request, name).await,
                ("GET", ["bindings"]) => super::bindings::of_queue(api, request, name),
                (_, [] | ["contents"] | ["get"] | ["bindings"]) => Err(ApiError::MethodNotAllowed),
                _ => Err(ApiError::NotFound),
            }
        }
        (_, [] | [_]) => Err(ApiError::MethodNotAllowed),
    }
}

/// Every queue, built in one pass over the model's entries: counts come from atomics.
fn list_queues(api: &Api, request: &Request) -> Result<Response, ApiError> {
    let items = api.broker()?.queues().iter().map(|queue| api.queue_json(queue)).collect();
    list(request, items)
}

fn show(api: &Api, request: &Request, name: &str) -> Result<Response, ApiError> {
    let queue = api.broker()?.queue(name.as_bytes()).ok_or(ApiError::NotFound)?;
    Ok(one(request, &api.queue_json(&queue)))
}

/// PUT: 201 when created, 204 when an equivalent queue exists, 400 when inequivalent.
async fn declare(api: &Api, request: &Request, name: &str) -> Result<Response, ApiError> {
    let body = body_json(request)?;
    let arguments = json_table(body.get("arguments").unwrap_or(&serde_json::Value::Null))
        .ok_or_else(|| ApiError::BadRequest("arguments must be an object".to_string()))?;
    let existed = api.broker()?.queue(name.as_bytes()).is_some();
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
    api.broker()?.declare_queue(declare).await?;
    Ok(Response::empty(if existed { 204 } else { 201 }))
}

/// DELETE with `if-unused` / `if-empty`: 204, or 404 for a missing queue.
async fn delete(api: &Api, request: &Request, name: &str) -> Result<Response, ApiError> {
    if api.broker()?.queue(name.as_bytes()).is_none() {
        return Err(ApiError::NotFound);
    }
    let if_unused = query_flag(request, "if-unused");
    let if_empty = query_flag(request, "if-empty");
    api.broker()?.delete_queue(name.as_bytes(), if_unused, if_empty, None).await?;
    Ok(Response::empty(204))
}

/// DELETE `…/contents`: drops the ready messages.
async fn purge(api: &Api, name: &str) -> Result<Response, ApiError> {
    api.broker()?.purge_queue(name.as_bytes(), MANAGEMENT_CONNECTION).await?;
    Ok(Response::empty(204))
}
