//! `PUT` and `DELETE /api/policies/{vhost}/{name}`: setting and clearing one policy,
//! administrators only. A minimal route (no listing); the change goes through the node,
//! which applies it to the vhost's queues and exchanges.

use serde_json::Value;

use super::body_json;
use crate::broker::access::{AccessError, Policy};
use crate::broker::NodeError;
use crate::management::auth::{self, Access};
use crate::management::http::{Request, Response};
use crate::management::{Api, ApiError, Principal};

/// Routes `/api/policies/{vhost}/{name}`.
pub async fn route(
    api: &Api,
    principal: &Principal,
    request: &Request,
    vhost: &str,
    name: &str,
) -> Result<Response, ApiError> {
    auth::require(principal, Access::Administrator)?;
    match request.method.as_str() {
        "PUT" => put(api, request, vhost, name).await,
        "DELETE" => {
            api.node.change_access(|state| state.clear_policy(vhost, name)).await.map_err(refused)?;
            Ok(Response::empty(204))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// PUT: 201 when created, 204 when it replaced one of that name.
async fn put(api: &Api, request: &Request, vhost: &str, name: &str) -> Result<Response, ApiError> {
    if api.node.access().snapshot().vhost(vhost).is_none() {
        return Err(ApiError::NotFound);
    }
    let body: Value = body_json(request)?;
    let policy = Policy::from_json(vhost, name, &body).map_err(|e| ApiError::BadRequest(e.http_reason()))?;
    let existed = api.node.access().snapshot().policies(vhost).iter().any(|p| p.name == name);
    api.node.change_access(|state| state.set_policy(policy)).await.map_err(refused)?;
    Ok(Response::empty(if existed { 204 } else { 201 }))
}

fn refused(error: NodeError) -> ApiError {
    match error {
        NodeError::Access(AccessError::NoSuchVhost(_) | AccessError::NoSuchPolicy { .. }) => {
            ApiError::NotFound
        }
        NodeError::Access(other) => ApiError::BadRequest(other.to_string()),
        NodeError::Broker(other) => ApiError::Internal(other.to_string()),
    }
}
