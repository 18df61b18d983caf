//! The access model over HTTP: users, vhosts, permissions, topic permissions, vhost and
//! user limits, and policies, as RabbitMQ 3.10.8's management API serves them. Reads take
//! one snapshot of the access model; changes go through `Node::change_access`, which
//! stores the model and opens or stops vhosts. Users and vhosts are here; permissions,
//! limits and policies are in the submodules of the same names.
//!
//! Who may do what follows `rabbit_mgmt_util.erl` (3.10.8): users, permissions, topic
//! permissions and user limits are the administrator's; vhosts are listed to every
//! management user (all of them to monitoring users, else those the user has permissions
//! in) and changed by administrators; policies and vhost limits are changed by
//! administrators, and by policymakers in vhosts they have permissions in.

mod limits;
mod permissions;
mod policies;

use serde_json::{json, Value};

use super::{body_json, list, one};
use crate::broker::access::users::{parse_tags, tags_from_list};
use crate::broker::access::vhosts::parse_vhost_tags;
use crate::broker::access::{AccessError, AccessState, HashingAlgorithm, PasswordHash, User, Vhost};
use crate::broker::node::NodeError;
use crate::management::auth::{self, Access};
use crate::management::http::{Request, Response};
use crate::management::stats::{self, Totals};
use crate::management::{Api, ApiError, Principal};

/// RabbitMQ's reason when a user may not reach a vhost's objects.
const NOT_AUTHORISED_VHOST: &str = "User not authorised to access virtual host";

/// RabbitMQ's reason when a user may not reach an object (policies, others' connections).
pub(super) const NOT_AUTHORISED_OBJECT: &str = "User not authorised to access object";

/// Routes the access model's paths; `None` when `parts` is not one of them.
pub async fn route(
    api: &Api,
    principal: &Principal,
    request: &Request,
    parts: &[&str],
) -> Option<Result<Response, ApiError>> {
    let method = request.method.as_str();
    let answer = match parts {
        ["users", rest @ ..] => users(api, principal, request, method, rest).await,
        ["vhosts", rest @ ..] => vhosts(api, principal, request, method, rest).await,
        ["permissions", rest @ ..] => permissions::permissions(api, principal, request, method, rest).await,
        ["topic-permissions", rest @ ..] => {
            permissions::topic_permissions(api, principal, request, method, rest).await
        }
        ["vhost-limits", rest @ ..] => limits::vhost_limits(api, principal, request, method, rest).await,
        ["user-limits", rest @ ..] => limits::user_limits(api, principal, request, method, rest).await,
        ["policies", rest @ ..] => policies::policies(api, principal, request, method, rest).await,
        _ => return None,
    };
    Some(answer)
}

fn has_tag(principal: &Principal, tag: &str) -> bool {
    principal.tags.iter().any(|t| t == tag)
}

/// Whether `principal` has permissions in `vhost` (RabbitMQ's "login vhosts").
fn logs_into(state: &AccessState, principal: &Principal, vhost: &str) -> bool {
    state.permissions(&principal.name, vhost).is_some()
}

/// Whether `principal` sees the objects of `vhost`: monitoring users and administrators
/// see every vhost, other users the vhosts they have permissions in.
pub(super) fn sees_vhost(state: &AccessState, principal: &Principal, vhost: &str) -> bool {
    auth::require(principal, Access::Monitoring).is_ok() || logs_into(state, principal, vhost)
}

/// 404 when `vhost` does not exist, 401 when `principal` may not see it.
pub(super) fn require_visible_vhost(api: &Api, principal: &Principal, vhost: &str) -> Result<(), ApiError> {
    let state = api.node.access().snapshot();
    if state.vhost(vhost).is_none() {
        return Err(ApiError::NotFound);
    }
    if sees_vhost(&state, principal, vhost) {
        Ok(())
    } else {
        Err(ApiError::MissingTag(NOT_AUTHORISED_VHOST))
    }
}

/// Administrators, and policymakers with permissions in `vhost`.
fn require_policymaker(api: &Api, principal: &Principal, vhost: &str) -> Result<(), ApiError> {
    let state = api.node.access().snapshot();
    let allowed = has_tag(principal, "administrator")
        || (has_tag(principal, "policymaker") && logs_into(&state, principal, vhost));
    if allowed {
        Ok(())
    } else {
        Err(ApiError::MissingTag(NOT_AUTHORISED_OBJECT))
    }
}

/// An access change's failure as RabbitMQ answers it.
fn change_error(error: NodeError) -> ApiError {
    match error {
        NodeError::Access(AccessError::NoSuchUser(_) | AccessError::NoSuchVhost(_)) => ApiError::NotFound,
        NodeError::Access(AccessError::NoSuchPolicy { .. }) => ApiError::NotFound,
        NodeError::Access(AccessError::Policy(error)) => ApiError::BadRequest(error.http_reason()),
        NodeError::Access(other) => ApiError::BadRequest(other.to_string()),
        NodeError::Broker(error) => ApiError::Internal(error.to_string()),
    }
}

/// Applies `change`; 201 when `created`, else 204.
async fn apply(
    api: &Api,
    created: bool,
    change: impl FnOnce(&mut AccessState) -> Result<(), AccessError>,
) -> Result<Response, ApiError> {
    api.node.change_access(change).await.map_err(change_error)?;
    Ok(Response::empty(if created { 201 } else { 204 }))
}

/// A string field of a request body, `None` when absent.
///
/// # Errors
/// 400 when present and not a string.
fn body_str<'a>(body: &'a Value, key: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::BadRequest(format!("{key} must be a string"))),
    }
}

/// A mandatory string field, with RabbitMQ's reason when it is missing.
fn required_str<'a>(body: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    body_str(body, key)?.ok_or_else(|| ApiError::BadRequest(format!("{key} not found")))
}

/// Tags given as a list or as a comma-separated text.
fn body_tags(body: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![text.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::BadRequest(format!("{key} must be strings"))),
        Some(_) => Err(ApiError::BadRequest(format!("{key} must be a list or a string"))),
    }
}

// ---- users -------------------------------------------------------------------------

async fn users(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    auth::require(principal, Access::Administrator)?;
    let state = api.node.access().snapshot();
    match (method, rest) {
        ("GET", []) => list(request, state.users().map(|user| user_json(user)).collect()),
        ("GET", ["without-permissions"]) => {
            let granted: std::collections::HashSet<&str> =
                state.all_permissions().into_iter().map(|(user, _, _)| user).collect();
            let alone = state.users().filter(|user| !granted.contains(user.name.as_str()));
            list(request, alone.map(|user| user_json(user)).collect())
        }
        ("POST", ["bulk-delete"]) => bulk_delete_users(api, request).await,
        ("GET", [name]) => Ok(one(request, &user_json(state.user(name).ok_or(ApiError::NotFound)?))),
        ("PUT", [name]) => put_user(api, request, name).await,
        ("DELETE", [name]) => {
            state.user(name).ok_or(ApiError::NotFound)?;
            apply(api, false, |state| state.delete_user(name)).await
        }
        ("GET", [name, "permissions"]) => {
            state.user(name).ok_or(ApiError::NotFound)?;
            let of_user = state.all_permissions().into_iter().filter(|(user, _, _)| user == name);
            list(
                request,
                of_user.map(|(user, vhost, p)| permissions::permission_json(user, vhost, p)).collect(),
            )
        }
        ("GET", [name, "topic-permissions"]) => {
            state.user(name).ok_or(ApiError::NotFound)?;
            let of_user = state.all_topic_permissions().into_iter().filter(|(user, _, _)| user == name);
            list(
                request,
                of_user.map(|(user, vhost, p)| permissions::topic_permission_json(user, vhost, p)).collect(),
            )
        }
        (_, [] | [_] | [_, "permissions" | "topic-permissions"]) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

fn user_json(user: &User) -> Value {
    json!({
        "name": user.name,
        "password_hash": user.password.to_base64(),
        "hashing_algorithm": user.password.algorithm().name(),
        "tags": user.tag_names(),
        "limits": user.limits.to_json(),
    })
}

/// PUT: `password` (hashed here), or `password_hash` with `hashing_algorithm`, or
/// neither (a user who cannot log in with a password); `tags` as a list or a
/// comma-separated text. An existing user keeps their limits.
async fn put_user(api: &Api, request: &Request, name: &str) -> Result<Response, ApiError> {
    let body = body_json(request)?;
    let bad = |error: crate::broker::access::password::PasswordError| ApiError::BadRequest(error.to_string());
    let algorithm = match body_str(&body, "hashing_algorithm")? {
        Some(text) => HashingAlgorithm::from_name(text).map_err(bad)?,
        None => HashingAlgorithm::DEFAULT,
    };
    let password = match (body_str(&body, "password")?, body_str(&body, "password_hash")?) {
        (Some(password), _) => PasswordHash::new(HashingAlgorithm::DEFAULT, password).map_err(bad)?,
        (None, Some(hash)) => PasswordHash::from_base64(algorithm, hash).map_err(bad)?,
        (None, None) => PasswordHash::none(algorithm),
    };
    let tags = match body.get("tags") {
        Some(Value::String(text)) => parse_tags(text),
        _ => tags_from_list(body_tags(&body, "tags")?.iter().map(String::as_str)),
    };
    let existing = api.node.access().snapshot().user(name).cloned();
    let limits = existing.as_ref().map(|user| user.limits.clone()).unwrap_or_default();
    let user = User { name: name.to_owned(), password, tags, limits };
    apply(api, existing.is_none(), |state| state.put_user(user)).await
}

/// `POST /api/users/bulk-delete` with `{"users": [...]}`; unknown names are skipped.
async fn bulk_delete_users(api: &Api, request: &Request) -> Result<Response, ApiError> {
    let body = body_json(request)?;
    let names = body_tags(&body, "users")?;
    apply(api, false, |state| {
        for name in &names {
            match state.delete_user(name) {
                Ok(()) | Err(AccessError::NoSuchUser(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(())
    })
    .await
}

// ---- vhosts ------------------------------------------------------------------------

async fn vhosts(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let state = api.node.access().snapshot();
    match (method, rest) {
        ("GET", []) => {
            let visible = state.vhosts().filter(|vhost| sees_vhost(&state, principal, &vhost.name));
            list(request, visible.map(|vhost| vhost_json(api, vhost)).collect())
        }
        ("GET", [name]) => {
            require_visible_vhost(api, principal, name)?;
            Ok(one(request, &vhost_json(api, state.vhost(name).ok_or(ApiError::NotFound)?)))
        }
        ("PUT", [name]) => {
            auth::require(principal, Access::Administrator)?;
            put_vhost(api, request, name).await
        }
        ("DELETE", [name]) => {
            auth::require(principal, Access::Administrator)?;
            state.vhost(name).ok_or(ApiError::NotFound)?;
            apply(api, false, |state| state.delete_vhost(name)).await
        }
        ("GET", [name, "permissions"]) => {
            auth::require(principal, Access::Administrator)?;
            state.vhost(name).ok_or(ApiError::NotFound)?;
            let of_vhost = state.all_permissions().into_iter().filter(|(_, vhost, _)| vhost == name);
            list(
                request,
                of_vhost.map(|(user, vhost, p)| permissions::permission_json(user, vhost, p)).collect(),
            )
        }
        ("GET", [name, "topic-permissions"]) => {
            auth::require(principal, Access::Administrator)?;
            state.vhost(name).ok_or(ApiError::NotFound)?;
            let of_vhost = state.all_topic_permissions().into_iter().filter(|(_, vhost, _)| vhost == name);
            list(
                request,
                of_vhost.map(|(user, vhost, p)| permissions::topic_permission_json(user, vhost, p)).collect(),
            )
        }
        ("GET", [name, "connections"]) => {
            require_visible_vhost(api, principal, name)?;
            super::connections::connections_of(api, principal, request, Some(name))
        }
        ("GET", [name, "channels"]) => {
            require_visible_vhost(api, principal, name)?;
            super::connections::channels_of(api, principal, request, Some(name))
        }
        (_, [] | [_] | [_, "permissions" | "topic-permissions" | "connections" | "channels"]) => {
            Err(ApiError::MethodNotAllowed)
        }
        _ => Err(ApiError::NotFound),
    }
}

/// A vhost, with its queues' message counts, and, once it has had traffic, its channels'
/// message statistics and its connections' byte counts (those of closed ones included),
/// each with its rate (`stats::vhost_totals`).
fn vhost_json(api: &Api, vhost: &Vhost) -> Value {
    let mut value = json!({
        "name": vhost.name,
        "description": vhost.description,
        "tags": vhost.tags,
        "metadata": {"description": vhost.description, "tags": vhost.tags},
        "default_queue_type": vhost.default_queue_type.as_deref().unwrap_or("classic"),
        "tracing": vhost.tracing,
        "cluster_state": {api.node_info.name.clone(): "running"},
    });
    if let (Some(_), Some(object)) = (api.node.vhost(&vhost.name), value.as_object_mut()) {
        let key = stats::vhost_key(&vhost.name);
        let (messages, counts) = stats::vhost_totals(&api.node, &vhost.name);
        // As in RabbitMQ, message statistics appear once a channel of the vhost has
        // counted something, byte counts once a connection has opened in it.
        if messages.iter().any(|&(_, n)| n > 0) {
            object.insert("message_stats".into(), Value::Object(api.rates.with_details(&key, &messages)));
        }
        let (bytes, queued): (Totals, Totals) =
            counts.into_iter().partition(|(name, _)| matches!(*name, "recv_oct" | "send_oct"));
        object.extend(api.rates.with_details(&key, &queued));
        if bytes.iter().any(|&(_, n)| n > 0) {
            object.extend(api.rates.with_details(&key, &bytes));
        }
    }
    value
}

/// PUT: `description`, `tags` (list or comma-separated), `default_queue_type`, `tracing`.
/// An existing vhost keeps its limits.
async fn put_vhost(api: &Api, request: &Request, name: &str) -> Result<Response, ApiError> {
    let body = body_json(request)?;
    let existing = api.node.access().snapshot().vhost(name).cloned();
    let mut vhost = Vhost::new(name);
    vhost.description = body_str(&body, "description")?.unwrap_or_default().to_owned();
    vhost.tags = match body.get("tags") {
        Some(Value::String(text)) => parse_vhost_tags(text),
        _ => body_tags(&body, "tags")?,
    };
    vhost.default_queue_type = body_str(&body, "default_queue_type")?.map(str::to_owned);
    vhost.tracing = super::body_bool(&body, "tracing", false)?;
    vhost.limits = existing.as_ref().map(|v| v.limits.clone()).unwrap_or_default();
    apply(api, existing.is_none(), |state| state.put_vhost(vhost)).await
}
