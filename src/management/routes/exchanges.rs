//! `/api/exchanges…`: list, show, declare (PUT), delete, publish and the exchange's
//! bindings as source and as destination, in any vhost the user reaches (see `scope`). The
//! default exchange is `amq.default` in paths and `""` in bodies, as in RabbitMQ.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{body_bool, body_json, list, one, query_flag};
use crate::broker::access::{Permission, Resource};
use crate::broker::{Broker, ExchangeDeclare, ExchangeEntry};
use crate::management::http::{Request, Response};
use crate::management::json::{exchange_json, json_table};
use crate::management::scope::{InVhost, Refusal};
use crate::management::{stats, Api, ApiError, Principal};

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
pub async fn route(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    match (method, rest) {
        ("GET", []) => list_exchanges(api, request, &api.listed_vhosts(principal, None)?),
        ("GET", [vhost]) => list_exchanges(api, request, &api.listed_vhosts(principal, Some(vhost))?),
        (_, [vhost, name, tail @ ..]) => {
            let vhost = api.in_vhost(principal, vhost)?;
            let name = exchange_name(name);
            match (method, tail) {
                ("GET", []) => show(api, &vhost, request, name),
                ("PUT", []) => declare(&vhost, request, name).await,
                ("DELETE", []) => delete(&vhost, request, name).await,
                ("POST", ["publish"]) => super::messages::publish(&vhost, request, name).await,
                ("GET", ["bindings", "source"]) => {
                    super::bindings::of_exchange(&vhost.broker, request, name, true)
                }
                ("GET", ["bindings", "destination"]) => {
                    super::bindings::of_exchange(&vhost.broker, request, name, false)
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

/// The exchanges of `vhosts`.
fn list_exchanges(api: &Api, request: &Request, vhosts: &[Arc<Broker>]) -> Result<Response, ApiError> {
    let items = vhosts
        .iter()
        .flat_map(|broker| {
            broker.exchanges().into_iter().map(move |exchange| with_stats(api, &exchange, broker.vhost()))
        })
        .collect();
    list(request, items)
}

/// An exchange's JSON with its message statistics.
fn with_stats(api: &Api, exchange: &ExchangeEntry, vhost: &str) -> Value {
    let mut value = exchange_json(exchange, vhost);
    stats::add_exchange_stats(&api.rates, vhost, exchange, &mut value);
    value
}

/// One exchange. Its `incoming` (per channel) and `outgoing` (per queue) statistics are
/// RabbitMQ's `detailed` rates mode; in `basic`, as Warren's, these lists are empty.
fn show(api: &Api, vhost: &InVhost, request: &Request, name: &str) -> Result<Response, ApiError> {
    let exchange = vhost.broker.exchange(name.as_bytes()).ok_or(ApiError::NotFound)?;
    let mut value = with_stats(api, &exchange, vhost.name());
    if let Some(object) = value.as_object_mut() {
        object.insert("incoming".into(), json!([]));
        object.insert("outgoing".into(), json!([]));
    }
    Ok(one(request, &value))
}

/// PUT: 201 when created, 204 when an equivalent exchange exists, 400 otherwise. Needs
/// configure on the exchange.
async fn declare(vhost: &InVhost, request: &Request, name: &str) -> Result<Response, ApiError> {
    let body = body_json(request)?;
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("type missing".into()))?;
    let arguments = json_table(body.get("arguments").unwrap_or(&Value::Null))
        .ok_or_else(|| ApiError::BadRequest("arguments must be an object".to_string()))?;
    vhost.permit(Resource::exchange(name.as_bytes()), Permission::Configure, Refusal::Operation)?;
    let existed = vhost.broker.exchange(name.as_bytes()).is_some();
    let declare = ExchangeDeclare {
        name: Bytes::copy_from_slice(name.as_bytes()),
        kind: Bytes::copy_from_slice(kind.as_bytes()),
        passive: false,
        durable: body_bool(&body, "durable", false)?,
        auto_delete: body_bool(&body, "auto_delete", false)?,
        internal: body_bool(&body, "internal", false)?,
        arguments,
    };
    vhost.broker.declare_exchange(declare).await?;
    Ok(Response::empty(if existed { 204 } else { 201 }))
}

/// DELETE with `if-unused`: 204, or 404 for a missing exchange. Needs configure on the
/// exchange.
async fn delete(vhost: &InVhost, request: &Request, name: &str) -> Result<Response, ApiError> {
    if vhost.broker.exchange(name.as_bytes()).is_none() {
        return Err(ApiError::NotFound);
    }
    vhost.permit(Resource::exchange(name.as_bytes()), Permission::Configure, Refusal::Operation)?;
    vhost.broker.delete_exchange(name.as_bytes(), query_flag(request, "if-unused")).await?;
    Ok(Response::empty(204))
}
