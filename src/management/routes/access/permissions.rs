//! `/api/permissions` and `/api/topic-permissions`: a user's permissions and topic
//! permissions in a vhost, the administrator's to read and change.

use serde_json::{json, Value};

use super::super::{body_json, list, one};
use super::{apply, required_str};
use crate::broker::access::permissions::TopicPermission;
use crate::broker::access::{AccessState, UserPermissions};
use crate::management::auth::{self, Access};
use crate::management::http::{Request, Response};
use crate::management::{Api, ApiError, Principal};

pub(super) fn permission_json(user: &str, vhost: &str, granted: &UserPermissions) -> Value {
    json!({
        "user": user,
        "vhost": vhost,
        "configure": granted.configure.as_str(),
        "write": granted.write.as_str(),
        "read": granted.read.as_str(),
    })
}

pub(super) fn topic_permission_json(user: &str, vhost: &str, granted: &TopicPermission) -> Value {
    json!({
        "user": user,
        "vhost": vhost,
        "exchange": granted.exchange,
        "write": granted.write.source,
        "read": granted.read.source,
    })
}

/// 400 `vhost_or_user_not_found`, as RabbitMQ answers a PUT naming either missing.
fn require_user_and_vhost(state: &AccessState, user: &str, vhost: &str) -> Result<(), ApiError> {
    if state.user(user).is_none() || state.vhost(vhost).is_none() {
        return Err(ApiError::BadRequest("vhost_or_user_not_found".into()));
    }
    Ok(())
}

pub(super) async fn permissions(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    auth::require(principal, Access::Administrator)?;
    let state = api.node.access().snapshot();
    match (method, rest) {
        ("GET", []) => list(
            request,
            state.all_permissions().into_iter().map(|(u, v, p)| permission_json(u, v, p)).collect(),
        ),
        ("GET", [vhost, user]) => {
            let granted = state.permissions(user, vhost).ok_or(ApiError::NotFound)?;
            Ok(one(request, &permission_json(user, vhost, granted)))
        }
        ("PUT", [vhost, user]) => {
            require_user_and_vhost(&state, user, vhost)?;
            let body = body_json(request)?;
            let (configure, write, read) = (
                required_str(&body, "configure")?,
                required_str(&body, "write")?,
                required_str(&body, "read")?,
            );
            let created = state.permissions(user, vhost).is_none();
            apply(api, created, |state| state.set_permissions(user, vhost, configure, write, read)).await
        }
        ("DELETE", [vhost, user]) => {
            state.permissions(user, vhost).ok_or(ApiError::NotFound)?;
            apply(api, false, |state| state.clear_permissions(user, vhost)).await
        }
        (_, [] | [_, _]) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

pub(super) async fn topic_permissions(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    auth::require(principal, Access::Administrator)?;
    let state = api.node.access().snapshot();
    let of = |user: &str, vhost: &str| -> Vec<Value> {
        state
            .all_topic_permissions()
            .into_iter()
            .filter(|(u, v, _)| *u == user && *v == vhost)
            .map(|(u, v, p)| topic_permission_json(u, v, p))
            .collect()
    };
    match (method, rest) {
        ("GET", []) => list(
            request,
            state
                .all_topic_permissions()
                .into_iter()
                .map(|(u, v, p)| topic_permission_json(u, v, p))
                .collect(),
        ),
        ("GET", [vhost, user]) => {
            let found = of(user, vhost);
            if found.is_empty() {
                return Err(ApiError::NotFound);
            }
            list(request, found)
        }
        ("PUT", [vhost, user]) => {
            require_user_and_vhost(&state, user, vhost)?;
            let body = body_json(request)?;
            let exchange = required_str(&body, "exchange")?;
            let (write, read) = (required_str(&body, "write")?, required_str(&body, "read")?);
            let created =
                !of(user, vhost).iter().any(|p| p.get("exchange").and_then(Value::as_str) == Some(exchange));
            apply(api, created, |state| state.set_topic_permissions(user, vhost, exchange, write, read)).await
        }
        ("DELETE", [vhost, user]) => {
            if of(user, vhost).is_empty() {
                return Err(ApiError::NotFound);
            }
            let exchange = request.param("exchange").filter(|e| !e.is_empty());
            apply(api, false, |state| state.clear_topic_permissions(user, vhost, exchange)).await
        }
        (_, [] | [_, _]) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}
