//! `/api/vhost-limits` and `/api/user-limits`: limits are read and changed one key at a
//! time (`PUT …/{name}` with `{"value": n}`), validated by the access model with
//! RabbitMQ's texts.

use serde_json::{json, Value};

use super::super::{body_json, list};
use super::{apply, require_policymaker, require_visible_vhost, sees_vhost};
use crate::broker::access::{User, UserLimits, Vhost, VhostLimits};
use crate::management::auth::{self, Access};
use crate::management::http::{Request, Response};
use crate::management::{Api, ApiError, Principal};

/// RabbitMQ's 404 body for a limit of a missing vhost (`errors.json`, `vhost_limit_put`).
fn vhost_missing() -> Response {
    Response::json(404, &json!({"error": "not_found", "reason": "vhost_not_found"}))
}

/// The `value` of a limit PUT's `{"value": n}`.
fn limit_value(request: &Request) -> Result<Value, ApiError> {
    let body = body_json(request)?;
    body.get("value").cloned().ok_or_else(|| ApiError::BadRequest("value not found".into()))
}

/// `limits` with the key `name` set to `value` (`None`: removed), through JSON so that
/// the model's validation and RabbitMQ's texts apply.
fn with_limit(limits: Value, name: &str, value: Option<Value>) -> Value {
    let mut limits = limits;
    if let Some(object) = limits.as_object_mut() {
        match value {
            Some(value) => object.insert(name.to_owned(), value),
            None => object.remove(name),
        };
    }
    limits
}

pub(super) async fn vhost_limits(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let state = api.node.access().snapshot();
    let entry = |vhost: &Vhost| json!({"vhost": vhost.name, "value": vhost.limits.to_json()});
    match (method, rest) {
        ("GET", []) => {
            let set = state
                .vhosts()
                .filter(|vhost| !vhost.limits.is_empty() && sees_vhost(&state, principal, &vhost.name));
            list(request, set.map(|vhost| entry(vhost)).collect())
        }
        ("GET", [name]) => {
            require_visible_vhost(api, principal, name)?;
            let vhost = state.vhost(name).ok_or(ApiError::NotFound)?;
            let items = if vhost.limits.is_empty() { Vec::new() } else { vec![entry(vhost)] };
            list(request, items)
        }
        ("PUT" | "DELETE", [name, limit]) => {
            require_policymaker(api, principal, name)?;
            let Some(vhost) = state.vhost(name) else {
                return Ok(vhost_missing());
            };
            let value = if method == "PUT" { Some(limit_value(request)?) } else { None };
            let limits = VhostLimits::from_json(&with_limit(vhost.limits.to_json(), limit, value))
                .map_err(ApiError::BadRequest)?;
            apply(api, false, |state| state.set_vhost_limits(name, limits)).await
        }
        (_, [] | [_] | [_, _]) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

pub(super) async fn user_limits(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    auth::require(principal, Access::Administrator)?;
    let state = api.node.access().snapshot();
    let entry = |user: &User| json!({"user": user.name, "value": user.limits.to_json()});
    let is_set = |user: &User| user.limits != UserLimits::default();
    match (method, rest) {
        ("GET", []) => list(request, state.users().filter(|u| is_set(u)).map(|u| entry(u)).collect()),
        ("GET", [name]) => {
            let user = state.user(name).ok_or(ApiError::NotFound)?;
            list(request, if is_set(user) { vec![entry(user)] } else { Vec::new() })
        }
        ("PUT" | "DELETE", [name, limit]) => {
            let user = state.user(name).ok_or(ApiError::NotFound)?;
            let value = if method == "PUT" { Some(limit_value(request)?) } else { None };
            let limits = UserLimits::from_json(&with_limit(user.limits.to_json(), limit, value))
                .map_err(ApiError::BadRequest)?;
            apply(api, false, |state| state.set_user_limits(name, limits)).await
        }
        (_, [] | [_] | [_, _]) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}
