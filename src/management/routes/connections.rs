//! Open connections, their channels and consumers, as RabbitMQ 3.10.8's management API
//! shows them, read from the node's registry of connections (`broker::connections`).
//! Every figure is one the AMQP gateway really keeps; what Warren does not measure
//! (rates, Erlang process figures, per-queue and per-exchange channel statistics, the
//! send queue, idle times) is left out rather than invented.
//!
//! Who sees what follows `rabbit_mgmt_util:is_authorized_user/3`: monitoring users and
//! administrators see every connection and channel, other management users their own;
//! administrators may close any connection, others only their own. Consumers are listed
//! per vhost the user can see.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::access::{require_visible_vhost, sees_vhost, NOT_AUTHORISED_OBJECT};
use super::{list, one};
use crate::broker::connections::{ChannelInfo, ConnectionInfo, ConsumerInfo, MessageCounters};
use crate::management::auth::{self, Access};
use crate::management::http::{Request, Response};
use crate::management::json::table_json;
use crate::management::{Api, ApiError, Principal};

/// The reason a connection closed through the API gets when the request gives none
/// (RabbitMQ's, `rabbit_mgmt_wm_connection.erl`).
const DEFAULT_CLOSE_REASON: &str = "Closed via management plugin";

/// What `consumer_timeout` reports: Warren enforces no delivery acknowledgement timeout,
/// and RabbitMQ's clients (`rabbitmq_http_client`) need the field; 0 says "none".
const CONSUMER_TIMEOUT_NONE_MS: u64 = 0;

/// Routes the connection, channel and consumer paths; `None` when `parts` is not one of
/// them.
pub async fn route(
    api: &Api,
    principal: &Principal,
    request: &Request,
    parts: &[&str],
) -> Option<Result<Response, ApiError>> {
    let method = request.method.as_str();
    let answer = match (method, parts) {
        ("GET", ["connections"]) => connections_of(api, principal, request, None),
        ("GET", ["connections", name]) => {
            find_connection(api, principal, name).map(|c| one(request, &connection_json(api, &c)))
        }
        ("DELETE", ["connections", name]) => close(api, principal, request, name),
        ("GET", ["connections", name, "channels"]) => find_connection(api, principal, name).and_then(|c| {
            list(request, c.channels().iter().map(|channel| channel_json(api, &c, channel)).collect())
        }),
        ("GET", ["channels"]) => channels_of(api, principal, request, None),
        ("GET", ["channels", name]) => show_channel(api, principal, request, name),
        ("GET", ["consumers"]) => consumers_of(api, principal, request, None),
        ("GET", ["consumers", vhost]) => require_visible_vhost(api, principal, vhost)
            .and_then(|()| consumers_of(api, principal, request, Some(vhost))),
        (_, ["connections" | "channels" | "consumers"] | ["connections" | "channels" | "consumers", _])
        | (_, ["connections", _, "channels"]) => Err(ApiError::MethodNotAllowed),
        (_, ["connections" | "channels" | "consumers", ..]) => Err(ApiError::NotFound),
        _ => return None,
    };
    Some(answer)
}

/// Whether `principal` may see `connection`.
fn sees(principal: &Principal, connection: &ConnectionInfo) -> bool {
    auth::require(principal, Access::Monitoring).is_ok() || connection.facts.user == principal.name
}

/// The connections `principal` may see, of `vhost` when given.
fn visible(api: &Api, principal: &Principal, vhost: Option<&str>) -> Vec<Arc<ConnectionInfo>> {
    let mut all = api.node.connections();
    all.retain(|c| sees(principal, c) && vhost.is_none_or(|v| c.facts.vhost == v));
    all
}

/// The connection `name`: 404 when none is open, 401 when `principal` may not see it.
fn find_connection(api: &Api, principal: &Principal, name: &str) -> Result<Arc<ConnectionInfo>, ApiError> {
    let connection = api.node.connection_named(name).ok_or(ApiError::NotFound)?;
    if sees(principal, &connection) {
        Ok(connection)
    } else {
        Err(ApiError::MissingTag(NOT_AUTHORISED_OBJECT))
    }
}

/// `GET /api/connections` and `/api/vhosts/{vhost}/connections`.
pub(super) fn connections_of(
    api: &Api,
    principal: &Principal,
    request: &Request,
    vhost: Option<&str>,
) -> Result<Response, ApiError> {
    list(request, visible(api, principal, vhost).iter().map(|c| connection_json(api, c)).collect())
}

/// `GET /api/channels` and `/api/vhosts/{vhost}/channels`.
pub(super) fn channels_of(
    api: &Api,
    principal: &Principal,
    request: &Request,
    vhost: Option<&str>,
) -> Result<Response, ApiError> {
    let items = visible(api, principal, vhost)
        .iter()
        .flat_map(|c| c.channels().into_iter().map(move |channel| channel_json(api, c, &channel)))
        .collect();
    list(request, items)
}

/// `DELETE /api/connections/{name}`: the connection closes with `320 CONNECTION_FORCED`
/// and the `X-Reason` header's text.
fn close(api: &Api, principal: &Principal, request: &Request, name: &str) -> Result<Response, ApiError> {
    let connection = api.node.connection_named(name).ok_or(ApiError::NotFound)?;
    let allowed =
        auth::require(principal, Access::Administrator).is_ok() || connection.facts.user == principal.name;
    if !allowed {
        return Err(ApiError::MissingTag(NOT_AUTHORISED_OBJECT));
    }
    let reason = request.header("x-reason").filter(|r| !r.is_empty()).unwrap_or(DEFAULT_CLOSE_REASON);
    connection.request_close(reason.to_owned());
    Ok(Response::empty(204))
}

/// A connection as `GET /api/connections` lists it.
fn connection_json(api: &Api, connection: &ConnectionInfo) -> Value {
    let facts = &connection.facts;
    let state = if connection.blocked.load(Ordering::Relaxed) { "blocked" } else { "running" };
    let client_properties = table_json(&facts.client_properties);
    let mut value = json!({
        "name": connection.name(),
        "node": api.node_info.name,
        "type": "network",
        "protocol": "AMQP 0-9-1",
        "state": state,
        "user": facts.user,
        "vhost": facts.vhost,
        "auth_mechanism": facts.auth_mechanism,
        "host": facts.local.ip().to_string(),
        "port": facts.local.port(),
        "peer_host": facts.peer.ip().to_string(),
        "peer_port": facts.peer.port(),
        "ssl": false,
        "ssl_protocol": null,
        "ssl_key_exchange": null,
        "ssl_cipher": null,
        "ssl_hash": null,
        "peer_cert_subject": null,
        "peer_cert_issuer": null,
        "peer_cert_validity": null,
        "frame_max": facts.frame_max,
        "channel_max": facts.channel_max,
        "timeout": facts.heartbeat_s,
        "connected_at": facts.connected_at_ms,
        "channels": connection.channel_count(),
        "recv_oct": connection.recv_oct.load(Ordering::Relaxed),
        "recv_cnt": connection.recv_cnt.load(Ordering::Relaxed),
        "send_oct": connection.send_oct.load(Ordering::Relaxed),
        "send_cnt": connection.send_cnt.load(Ordering::Relaxed),
    });
    let given_name = client_properties.get("connection_name").filter(|n| n.is_string()).cloned();
    if let Some(object) = value.as_object_mut() {
        object.insert("client_properties".into(), client_properties);
        if let Some(given_name) = given_name {
            object.insert("user_provided_name".into(), given_name);
        }
    }
    value
}

/// `peer -> local (number)`, as RabbitMQ names a channel.
fn channel_name(connection: &ConnectionInfo, channel: &ChannelInfo) -> String {
    format!("{} ({})", connection.name(), channel.number)
}

/// A channel as `GET /api/channels` lists it.
fn channel_json(api: &Api, connection: &ConnectionInfo, channel: &ChannelInfo) -> Value {
    let facts = &connection.facts;
    let mut value = json!({
        "name": channel_name(connection, channel),
        "number": channel.number,
        "node": api.node_info.name,
        "user": facts.user,
        "vhost": facts.vhost,
        "state": "running",
        "connection_details": {
            "name": connection.name(),
            "peer_host": facts.peer.ip().to_string(),
            "peer_port": facts.peer.port(),
        },
        "confirm": channel.confirm.load(Ordering::Relaxed),
        "transactional": channel.transactional.load(Ordering::Relaxed),
        "prefetch_count": channel.prefetch_count.load(Ordering::Relaxed),
        "global_prefetch_count": channel.global_prefetch_count.load(Ordering::Relaxed),
        "consumer_count": channel.consumers().len(),
        "messages_unacknowledged": channel.unacknowledged.load(Ordering::Relaxed),
        "messages_unconfirmed": channel.unconfirmed.load(Ordering::Relaxed),
        "messages_uncommitted": channel.messages_uncommitted.load(Ordering::Relaxed),
        "acks_uncommitted": channel.acks_uncommitted.load(Ordering::Relaxed),
    });
    let stats = message_stats(&channel.messages);
    if let (Some(object), false) = (value.as_object_mut(), stats.is_empty()) {
        object.insert("message_stats".into(), Value::Object(stats));
    }
    value
}

/// A channel's message counters in RabbitMQ's groups: the delivery group
/// (`deliver`, `get`, `ack`…) once anything was delivered, got or acked, the publish group
/// (`publish`, `confirm`, `return_unroutable`) once anything was published. Warren does
/// not count empty gets nor dropped unroutable messages, so those keys are absent.
fn message_stats(counters: &MessageCounters) -> Map<String, Value> {
    let read = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let mut stats = Map::new();
    let (deliver, deliver_no_ack) = (read(&counters.deliver), read(&counters.deliver_no_ack));
    let (get, get_no_ack) = (read(&counters.get), read(&counters.get_no_ack));
    let delivery = [
        ("deliver", deliver),
        ("deliver_no_ack", deliver_no_ack),
        ("get", get),
        ("get_no_ack", get_no_ack),
        ("deliver_get", deliver + deliver_no_ack + get + get_no_ack),
        ("redeliver", read(&counters.redeliver)),
        ("ack", read(&counters.ack)),
    ];
    let publish = [
        ("publish", read(&counters.publish)),
        ("confirm", read(&counters.confirm)),
        ("return_unroutable", read(&counters.return_unroutable)),
    ];
    for group in [&delivery[..], &publish[..]] {
        if group.iter().any(|(_, n)| *n > 0) {
            stats.extend(group.iter().map(|(key, n)| ((*key).to_owned(), json!(n))));
        }
    }
    stats
}

/// `GET /api/channels/{name}`: the channel with its consumers.
fn show_channel(
    api: &Api,
    principal: &Principal,
    request: &Request,
    name: &str,
) -> Result<Response, ApiError> {
    let found = api.node.connections().into_iter().find_map(|connection| {
        let channel = connection.channels().into_iter().find(|c| channel_name(&connection, c) == name)?;
        Some((connection, channel))
    });
    let (connection, channel) = found.ok_or(ApiError::NotFound)?;
    if !sees(principal, &connection) {
        return Err(ApiError::MissingTag(NOT_AUTHORISED_OBJECT));
    }
    let mut value = channel_json(api, &connection, &channel);
    let consumers: Vec<Value> = channel
        .consumers()
        .iter()
        .map(|consumer| consumer_json(api, &connection, &channel, consumer))
        .collect();
    if let Some(object) = value.as_object_mut() {
        object.insert("consumer_details".into(), Value::Array(consumers));
    }
    Ok(one(request, &value))
}

/// `GET /api/consumers[/{vhost}]`: consumers in the vhosts `principal` can see.
fn consumers_of(
    api: &Api,
    principal: &Principal,
    request: &Request,
    vhost: Option<&str>,
) -> Result<Response, ApiError> {
    let state = api.node.access().snapshot();
    let mut items = Vec::new();
    for connection in api.node.connections() {
        let facts = &connection.facts;
        if vhost.is_some_and(|v| facts.vhost != v) || !sees_vhost(&state, principal, &facts.vhost) {
            continue;
        }
        for channel in connection.channels() {
            for consumer in channel.consumers() {
                items.push(consumer_json(api, &connection, &channel, &consumer));
            }
        }
    }
    list(request, items)
}

/// A consumer as `GET /api/consumers` lists it. Warren has no single active consumer,
/// so every consumer is active.
fn consumer_json(
    api: &Api,
    connection: &ConnectionInfo,
    channel: &ChannelInfo,
    consumer: &ConsumerInfo,
) -> Value {
    let facts = &connection.facts;
    json!({
        "consumer_tag": String::from_utf8_lossy(&consumer.tag),
        "queue": {"name": String::from_utf8_lossy(&consumer.queue), "vhost": facts.vhost},
        "channel_details": {
            "name": channel_name(connection, channel),
            "number": channel.number,
            "connection_name": connection.name(),
            "node": api.node_info.name,
            "peer_host": facts.peer.ip().to_string(),
            "peer_port": facts.peer.port(),
            "user": facts.user,
        },
        "ack_required": consumer.ack_required,
        "prefetch_count": consumer.prefetch_count,
        "exclusive": consumer.exclusive,
        "arguments": table_json(&consumer.arguments),
        "active": true,
        "activity_status": "up",
        "consumer_timeout": CONSUMER_TIMEOUT_NONE_MS,
    })
}
