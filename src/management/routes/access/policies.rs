//! `/api/policies`: policies per vhost, validated by the access model; a bad one is a 400
//! with RabbitMQ's text.

use serde_json::{json, Value};

use super::super::{body_json, list, one};
use super::{apply, has_tag, logs_into, NOT_AUTHORISED_OBJECT};
use crate::broker::access::Policy;
use crate::management::http::{Request, Response};
use crate::management::{Api, ApiError, Principal};

fn policy_json(policy: &Policy) -> Value {
    let mut value = policy.to_json();
    if let Some(object) = value.as_object_mut() {
        object.insert("vhost".into(), json!(policy.vhost));
        object.insert("name".into(), json!(policy.name));
    }
    value
}

pub(super) async fn policies(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let state = api.node.access().snapshot();
    let policymaker = has_tag(principal, "administrator") || has_tag(principal, "policymaker");
    if !policymaker {
        return Err(ApiError::MissingTag(NOT_AUTHORISED_OBJECT));
    }
    let allowed = |vhost: &str| has_tag(principal, "administrator") || logs_into(&state, principal, vhost);
    match (method, rest) {
        ("GET", []) => {
            let visible = state.all_policies().filter(|p| allowed(&p.vhost));
            list(request, visible.map(|p| policy_json(p)).collect())
        }
        (_, [vhost, ..]) if state.vhost(vhost).is_none() => Err(ApiError::NotFound),
        (_, [vhost, ..]) if !allowed(vhost) => Err(ApiError::MissingTag(NOT_AUTHORISED_OBJECT)),
        ("GET", [vhost]) => list(request, state.policies(vhost).iter().map(|p| policy_json(p)).collect()),
        ("GET", [vhost, name]) => {
            let policy = state.policies(vhost).iter().find(|p| p.name == *name).ok_or(ApiError::NotFound)?;
            Ok(one(request, &policy_json(policy)))
        }
        ("PUT", [vhost, name]) => {
            let body = body_json(request)?;
            let policy =
                Policy::from_json(vhost, name, &body).map_err(|e| ApiError::BadRequest(e.http_reason()))?;
            let created = !state.policies(vhost).iter().any(|p| p.name == *name);
            apply(api, created, |state| state.set_policy(policy)).await
        }
        ("DELETE", [vhost, name]) => {
            state.policies(vhost).iter().find(|p| p.name == *name).ok_or(ApiError::NotFound)?;
            apply(api, false, |state| state.clear_policy(vhost, name)).await
        }
        (_, [] | [_] | [_, _]) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}
