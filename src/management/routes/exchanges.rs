//! `/api/exchanges…`: list, show, declare (PUT), delete, publish and the exchange's
//! bindings as source and as destination. The default exchange is `amq.default` in paths
//! and `""` in bodies, as in RabbitMQ.

use bytes::Bytes;
use serde_json::Value;

use super::{body_bool, body_json, check_vhost, list, one, query_flag};
use crate::broker::ExchangeDeclare;
use crate::management::http::{Request, Response};
use crate::management::json::{exchange_json, json_table};
use crate::management::{Api, ApiError};

/// The default exchange's name in paths.
const DEFAULT_EXCHANGE_PATH_NAME: &str = "amq.default";

/// The exchange a path segment names.
pub fn exchange_name(segment: &str) -> &str {
    if segment == DEFAULT_EXCHANGE_PATH_NAME {
        ""
    } else {
        segment
    }
}

/// Routes `/api/exchanges/{rest}`.
pub async fn route(api: &Api, request: &Request, method: &str, rest: &[&str]) -> Result<Response, ApiError> {
    match (method, rest) {
        ("GET", []) => list_exchanges(api, request),
        ("GET", [vhost]) => {
            check_vhost(vhost)?;
            list_exchanges(api, request)
        }
        (_, [vhost, name, tail @ ..]) => {
            check_vhost(vhost)?;
            let name = exchange_name(name);
            match (method, tail) {
                ("GET", []) => show(api, request, name),
                ("PUT", []) => declare(api, request, name).await,
                ("DELETE", []) => delete(api, request, name).await,
                ("POST", ["publish"]) => super::messages::publish(api, request, name).await,
                ("GET", ["bindings", "source"]) => super::bindings::of_exchange(api, request, name, true),
                ("GET", ["bindings", "destination"]) => {
                    super::bindings::of_exchange(api, request, name, false)
                }
                (_, [] | ["publish"] | ["bindings", "source" | "destination"]) => {
                    Err(ApiError::MethodNotAllowed)
                }
                _ => Err(ApiError::NotFound),
            }
        }
        (_, [] | [_]) => Err(ApiError::MethodNotAllowed),
    }
}

fn list_exchanges(api: &Api, request: &Request) -> Result<Response, ApiError> {
    let items = api.broker()?.exchanges().iter().map(|exchange| exchange_json(exchange)).collect();
    list(request, items)
}

fn show(api: &Api, request: &Request, name: &str) -> Result<Response, ApiError> {
    let exchange = api.broker()?.exchange(name.as_bytes()).ok_or(ApiError::NotFound)?;
    Ok(one(request, &exchange_json(&exchange)))
}

/// PUT: 201 when created, 204 when an equivalent exchange exists, 400 otherwise.
async fn declare(api: &Api, request: &Request, name: &str) -> Result<Response, ApiError> {
    let body = body_json(request)?;
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("type missing".into()))?;
    let arguments = json_table(body.get("arguments").unwrap_or(&Value::Null))
        .ok_or_else(|| ApiError::BadRequest("arguments must be an object".to_string()))?;
    let existed = api.broker()?.exchange(name.as_bytes()).is_some();
    let declare = ExchangeDeclare {
        name: Bytes::copy_from_slice(name.as_bytes()),
        kind: Bytes::copy_from_slice(kind.as_bytes()),
        passive: false,
        durable: body_bool(&body, "durable", false)?,
        auto_delete: body_bool(&body, "auto_delete", false)?,
        internal: body_bool(&body, "internal", false)?,
        arguments,
    };
    api.broker()?.declare_exchange(declare).await?;
    Ok(Response::empty(if existed { 204 } else { 201 }))
}

/// DELETE with `if-unused`: 204, or 404 for a missing exchange.
async fn delete(api: &Api, request: &Request, name: &str) -> Result<Response, ApiError> {
    if api.broker()?.exchange(name.as_bytes()).is_none() {
        return Err(ApiError::NotFound);
    }
    api.broker()?.delete_exchange(name.as_bytes(), query_flag(request, "if-unused")).await?;
    Ok(Response::empty(204))
}
