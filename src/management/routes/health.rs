//! The health checks (`/api/healthchecks/node`, `/api/health/checks/…`): 200
//! `{"status":"ok",…}` or 503 `{"status":"failed","reason":…,…}`, as RabbitMQ 3.10.8
//! answers them on a single node. Warren has no quorum queues and no TLS listeners, so
//! the quorum-criticality and certificate checks pass as they do on such a RabbitMQ node.

use serde_json::{json, Value};

use super::node::alarm_flags;
use crate::management::http::Response;
use crate::management::{Api, ApiError};

/// The units `certificate-expiration/{within}/{unit}` takes.
const CERTIFICATE_EXPIRY_UNITS: &[&str] = &["days", "weeks", "months", "years"];

/// Routes `healthchecks/…` and `health/checks/…` (`rest` is the whole path).
///
/// # Errors
/// 404 for an unknown check or node, 400 for a malformed port or duration.
pub fn route(api: &Api, rest: &[&str]) -> Result<Response, ApiError> {
    match rest {
        ["healthchecks", "node"] => Ok(ok(json!({}))),
        ["healthchecks", "node", name] if *name == api.node_info.name => Ok(ok(json!({}))),
        ["health", "checks", "alarms" | "local-alarms"] => Ok(alarms(api)),
        ["health", "checks", "virtual-hosts"] => Ok(ok(json!({}))),
        ["health", "checks", "node-is-quorum-critical"] => Ok(ok(json!({"reason": "single node cluster"}))),
        ["health", "checks", "certificate-expiration", within, unit] => certificate_expiration(within, unit),
        ["health", "checks", "port-listener", port] => port_listener(api, port),
        ["health", "checks", "protocol-listener", protocol] => Ok(protocol_listener(protocol)),
        _ => Err(ApiError::NotFound),
    }
}

/// 200 `{"status":"ok"}` with `extra`'s keys.
pub(super) fn ok(mut extra: Value) -> Response {
    if let Some(object) = extra.as_object_mut() {
        object.insert("status".into(), json!("ok"));
    }
    Response::json(200, &extra)
}

/// 503 `{"status":"failed","reason":…}` with `extra`'s keys.
pub(super) fn failed(reason: &str, extra: Value) -> Response {
    let mut body = json!({"status": "failed", "reason": reason});
    if let (Some(object), Value::Object(more)) = (body.as_object_mut(), extra) {
        object.extend(more);
    }
    Response::json(503, &body)
}

fn alarms(api: &Api) -> Response {
    match alarm_flags(api) {
        (false, false) => ok(json!({})),
        (memory, _) => {
            let resource = if memory { "memory" } else { "disk" };
            failed(
                "resource alarm(s) in effect",
                json!({"alarms": [{"node": api.node_info.name, "resource": resource}]}),
            )
        }
    }
}

/// No listener of Warren uses TLS, so no certificate expires within any period; the
/// period is still checked, with RabbitMQ's texts (units in any case).
fn certificate_expiration(within: &str, unit: &str) -> Result<Response, ApiError> {
    if within.parse::<i64>().is_err() {
        return Err(ApiError::BadRequest("Invalid expiration value.".to_owned()));
    }
    if !CERTIFICATE_EXPIRY_UNITS.contains(&unit.to_ascii_lowercase().as_str()) {
        let reason = "Time unit not recognised. Supported units: days, weeks, months, years.";
        return Err(ApiError::BadRequest(reason.to_owned()));
    }
    Ok(ok(json!({})))
}

fn port_listener(api: &Api, port: &str) -> Result<Response, ApiError> {
    let port: u16 = port.parse().map_err(|_| ApiError::BadRequest(format!("invalid port {port}")))?;
    let ports = [api.node_info.amqp.port(), api.node_info.http.port()];
    Ok(if ports.contains(&port) {
        ok(json!({"port": port}))
    } else {
        failed("No active listener", json!({"missing": port, "ports": ports}))
    })
}

/// The protocols Warren listens for, by RabbitMQ's listener names.
const PROTOCOLS_SERVED: &[&str] = &["amqp", "http"];

/// A protocol name as RabbitMQ's listeners call it (`amqp091` and its spellings are `amqp`).
fn normalise_protocol(protocol: &str) -> String {
    let lower = protocol.to_ascii_lowercase();
    match lower.as_str() {
        "amqp091" | "amqp0.9.1" | "amqp0-9-1" | "amqp0_9_1" => "amqp".to_owned(),
        _ => lower,
    }
}

fn protocol_listener(protocol: &str) -> Response {
    let protocol = normalise_protocol(protocol);
    if PROTOCOLS_SERVED.contains(&protocol.as_str()) {
        ok(json!({"protocol": protocol}))
    } else {
        failed("No active listener", json!({"missing": protocol, "protocols": PROTOCOLS_SERVED}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_are_normalised() {
        assert_eq!(normalise_protocol("AMQP091"), "amqp");
        assert_eq!(normalise_protocol("amqp0-9-1"), "amqp");
        assert_eq!(normalise_protocol("mqtt"), "mqtt");
    }

    #[test]
    fn certificate_periods_are_checked() {
        assert_eq!(certificate_expiration("1", "months").map(|r| r.status), Ok(200));
        assert_eq!(certificate_expiration("2", "Weeks").map(|r| r.status), Ok(200));
        assert!(matches!(certificate_expiration("x", "months"), Err(ApiError::BadRequest(_))));
        assert!(matches!(certificate_expiration("1", "fortnights"), Err(ApiError::BadRequest(_))));
    }
}
