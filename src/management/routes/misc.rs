//! Endpoints of features Warren has not, or has in part, answered as RabbitMQ 3.10.8
//! answers them when the feature is unused: `auth` (no OAuth 2 / UAA login),
//! `extensions` (no UI plugins), `feature-flags` (no cluster upgrade flags),
//! `operator-policies` (none), `global-parameters` (none stored) and `parameters`, whose
//! only component in Warren is `vhost-limits`: RabbitMQ keeps a vhost's limits as the
//! runtime parameter `vhost-limits`/`limits`, and lists them here as Warren's definitions
//! export does.

use serde_json::{json, Value};

use super::list;
use crate::management::http::{Request, Response};
use crate::management::{Api, ApiError, Principal};

/// The runtime parameter component that holds a vhost's limits.
const VHOST_LIMITS_COMPONENT: &str = "vhost-limits";

/// The name of the `vhost-limits` parameter of a vhost.
const VHOST_LIMITS_NAME: &str = "limits";

/// Routes the paths above (GET only; the caller has checked the method).
///
/// # Errors
/// 404 for anything else, or for a vhost or object that does not exist.
pub fn route(
    api: &Api,
    principal: &Principal,
    request: &Request,
    rest: &[&str],
) -> Result<Response, ApiError> {
    match rest {
        ["auth"] => {
            Ok(Response::json(200, &json!({"enable_uaa": false, "uaa_client_id": "", "uaa_location": ""})))
        }
        ["extensions"] | ["feature-flags"] | ["global-parameters"] | ["operator-policies"] => {
            list(request, Vec::new())
        }
        ["operator-policies", vhost] => {
            known_vhost(api, principal, vhost)?;
            list(request, Vec::new())
        }
        ["parameters"] => list(request, parameters(api, principal, None, None)),
        ["parameters", component] => list(request, parameters(api, principal, Some(component), None)),
        ["parameters", component, vhost] => {
            known_vhost(api, principal, vhost)?;
            list(request, parameters(api, principal, Some(component), Some(vhost)))
        }
        ["parameters", component, vhost, name] => {
            known_vhost(api, principal, vhost)?;
            let found = parameters(api, principal, Some(component), Some(vhost))
                .into_iter()
                .find(|parameter| parameter.get("name").and_then(Value::as_str) == Some(*name));
            found.map(|parameter| Response::json(200, &parameter)).ok_or(ApiError::NotFound)
        }
        _ => Err(ApiError::NotFound),
    }
}

/// 404 unless `vhost` exists and the user sees it.
fn known_vhost(api: &Api, principal: &Principal, vhost: &str) -> Result<(), ApiError> {
    let visible = api.visible_vhosts(principal).iter().any(|broker| &**broker.vhost() == vhost);
    if visible {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// The runtime parameters of the vhosts the user sees, of `component` and in `vhost` when
/// given: each vhost with limits has one, `vhost-limits`/`limits`.
fn parameters(api: &Api, principal: &Principal, component: Option<&str>, vhost: Option<&str>) -> Vec<Value> {
    if component.is_some_and(|c| c != VHOST_LIMITS_COMPONENT) {
        return Vec::new();
    }
    let visible: Vec<String> =
        api.visible_vhosts(principal).iter().map(|broker| broker.vhost().to_string()).collect();
    let state = api.node.access().snapshot();
    state
        .vhosts()
        .filter(|v| !v.limits.is_empty() && visible.contains(&v.name))
        .filter(|v| vhost.is_none_or(|wanted| wanted == v.name))
        .map(|v| {
            json!({"vhost": v.name, "component": VHOST_LIMITS_COMPONENT, "name": VHOST_LIMITS_NAME,
                   "value": v.limits.to_json()})
        })
        .collect()
}
