//! The management API's routes: the path (already split and percent-decoded) and method
//! pick a handler. Handlers live by object kind: `node` (overview, nodes, whoami), `health`
//! (health checks), `misc` (auth, feature flags, parameters and other endpoints of features
//! Warren has not or has in part), `access` (users, vhosts, permissions, limits, policies), `connections`
//! (connections, channels, consumers), `queues`, `exchanges`, `bindings`, `definitions`.

mod access;
mod bindings;
mod connections;
mod definitions;
mod definitions_import;
mod exchanges;
mod health;
mod messages;
mod misc;
mod node;
mod queues;

use serde_json::Value;

use super::auth::{self, Access};
use super::conventions::{pick_columns, ListQuery};
use super::http::{Request, Response};
use super::{Api, ApiError, Principal};
use crate::broker::ConnectionId;

/// The connection id management requests act as (AMQP connections count from 1), so that
/// they never own an exclusive queue.
pub const MANAGEMENT_CONNECTION: ConnectionId = 0;

/// Answers the request for `segments` (the path after `/api/`).
pub async fn route(
    api: &Api,
    principal: &Principal,
    request: &Request,
    segments: &[String],
) -> Result<Response, ApiError> {
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method.as_str();
    let access = match parts.as_slice() {
        ["nodes", ..] => Access::Monitoring,
        ["definitions", ..] => Access::Administrator,
        _ => Access::Management,
    };
    auth::require(principal, access)?;
    match parts.as_slice() {
        ["queues", rest @ ..] => queues::route(api, principal, request, method, rest).await,
        ["exchanges", rest @ ..] => exchanges::route(api, principal, request, method, rest).await,
        ["bindings", rest @ ..] => bindings::route(api, principal, request, method, rest).await,
        ["definitions", rest @ ..] => definitions::route(api, request, method, rest).await,
        rest => {
            if let Some(answer) = access::route(api, principal, request, rest).await {
                return answer;
            }
            if let Some(answer) = connections::route(api, principal, request, rest).await {
                return answer;
            }
            node::route(api, principal, request, method, rest).await
        }
    }
}

/// A list answered with the request's conventions (filter, sort, page, columns).
fn list(request: &Request, items: Vec<Value>) -> Result<Response, ApiError> {
    let query = ListQuery::parse(|key| request.param(key).map(str::to_string))
        .map_err(|e| ApiError::BadRequest(e.0))?;
    let value = query.apply(items).map_err(|e| ApiError::BadRequest(e.0))?;
    Ok(Response::json(200, &value))
}

/// A list of objects named `(vhost, name)`, whose JSON `build` makes only for the
/// objects the answer holds when the request allows ([`ListQuery::apply_named`]).
fn list_named<T>(
    request: &Request,
    entries: Vec<(String, String, T)>,
    build: impl Fn(&T) -> Value,
) -> Result<Response, ApiError> {
    let query = ListQuery::parse(|key| request.param(key).map(str::to_string))
        .map_err(|e| ApiError::BadRequest(e.0))?;
    let value = query.apply_named(entries, build).map_err(|e| ApiError::BadRequest(e.0))?;
    Ok(Response::json(200, &value))
}

/// One object, with `columns` applied when asked.
fn one(request: &Request, item: &Value) -> Response {
    match request.param("columns").filter(|c| !c.is_empty()) {
        Some(columns) => Response::json(200, &pick_columns(item, columns)),
        None => Response::json(200, item),
    }
}

/// The request body as JSON (an empty body is `{}`).
///
/// # Errors
/// 400 when it is not JSON.
fn body_json(request: &Request) -> Result<Value, ApiError> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(&request.body).map_err(|_| ApiError::BadRequest("not_json".to_string()))
}

/// A boolean field of a request body, `default` when absent; RabbitMQ also takes the
/// strings `"true"` and `"false"`.
fn body_bool(body: &Value, key: &str, default: bool) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(_) => Err(ApiError::BadRequest(format!("{key} must be a boolean"))),
    }
}

/// A query flag such as `if-unused=true`.
fn query_flag(request: &Request, key: &str) -> bool {
    request.param(key).is_some_and(|v| v == "true")
}
