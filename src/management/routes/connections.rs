//! Open connections, their channels and consumers, as RabbitMQ 3.10.8's management API
//! shows them, read from the node's registry of connections (`broker::connections`).
//! Every figure is one the AMQP gateway really keeps, and rates are the management
//! sampler's (`stats`); what Warren does not measure (Erlang process figures, per-queue
//! and per-exchange channel statistics, Raft commands) is left out rather than invented.
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
use crate::broker::connections::{ChannelInfo, ConnectionInfo, ConsumerInfo};
use crate::management::auth::{self, Access};
use crate::management::http::{Request, Response};
use crate::management::json::{self, table_json};
use crate::management::stats::{self, Totals};
use crate::management::{Api, ApiError, Principal};

/// The reason a connection closed through the API gets when the request gives none
/// (RabbitMQ's, `rabbit_mgmt_wm_connection.erl`).
const DEFAULT_CLOSE_REASON: &str = "Closed via management plugin";

/// What `consumer_timeout` reports: Warren enforces no delivery acknowledgement timeout,
/// and RabbitMQ's clients (`rabbitmq_http_client`) need the field; 0 says "none".
const CONSUMER_TIMEOUT_NONE_MS: u64 = 0;

/// How long a channel goes without work before it shows `idle_since`: RabbitMQ's channel
/// process hibernates, and reports itself idle, after at least this long without a
/// message (`HIBERNATE_AFTER_MIN`, 1 s).
const CHANNEL_IDLE_AFTER_MS: i64 = 1_000;

/// A channel's `message_stats` names of its delivery group, shown together once any of
/// them has counted (RabbitMQ's per-channel queue statistics).
const DELIVERY_GROUP: &[&str] =
    &["deliver", "deliver_no_ack", "get", "get_no_ack", "deliver_get", "get_empty", "redeliver", "ack"];

/// A channel's `message_stats` names of its publish group, shown together once any of
/// them has counted (RabbitMQ's per-channel exchange statistics).
const PUBLISH_GROUP: &[&str] = &["publish", "confirm", "return_unroutable", "drop_unroutable"];

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
        "recv_cnt": connection.recv_cnt.load(Ordering::Relaxed),
        "send_cnt": connection.send_cnt.load(Ordering::Relaxed),
        "send_pend": connection.send_pend.load(Ordering::Relaxed),
        // The user who opened it, as RabbitMQ reports its connections.
        "user_who_performed_action": facts.user,
    });
    let given_name = client_properties.get("connection_name").filter(|n| n.is_string()).cloned();
    if let Some(object) = value.as_object_mut() {
        let bytes = stats::connection_totals(connection);
        object.extend(api.rates.with_details(&stats::connection_key(connection), &bytes));
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
        // The user who opened it, as RabbitMQ reports its channels.
        "user_who_performed_action": facts.user,
    });
    let Some(object) = value.as_object_mut() else { return value };
    let key = stats::channel_key(connection, channel);
    let message_stats = message_stats(api, &key, &stats::channel_message_totals(channel));
    if !message_stats.is_empty() {
        object.insert("message_stats".into(), Value::Object(message_stats));
    }
    let active_at_ms = channel.active_at_ms.load(Ordering::Relaxed);
    if crate::log::now_ms().saturating_sub(active_at_ms) >= CHANNEL_IDLE_AFTER_MS {
        object.insert("idle_since".into(), json!(json::rabbitmq_time(active_at_ms)));
    }
    value
}

/// A channel's message counters in RabbitMQ's groups, each with its rate: the delivery
/// group once anything was delivered, got (or asked for from an empty queue) or acked,
/// the publish group once anything was published.
fn message_stats(api: &Api, key: &str, totals: &Totals) -> Map<String, Value> {
    let mut shown = Totals::new();
    for group in [DELIVERY_GROUP, PUBLISH_GROUP] {
        let counts: Totals = totals.iter().filter(|(name, _)| group.contains(name)).copied().collect();
        if counts.iter().any(|&(_, n)| n > 0) {
            shown.extend(counts);
        }
    }
    api.rates.with_details(key, &shown)
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
        // Per-queue and per-exchange statistics of a channel are RabbitMQ's `detailed`
        // rates mode; in `basic`, as Warren's, these lists are empty.
        object.insert("deliveries".into(), json!([]));
        object.insert("publishes".into(), json!([]));
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

/// A consumer as `GET /api/consumers` lists it, with the `consumer_timeout` that
/// `rabbitmq_http_client` requires.
fn consumer_json(
    api: &Api,
    connection: &ConnectionInfo,
    channel: &ChannelInfo,
    consumer: &ConsumerInfo,
) -> Value {
    let mut value = json::consumer_json(&api.node_info.name, connection, channel, consumer);
    if let Some(object) = value.as_object_mut() {
        object.insert("consumer_timeout".into(), json!(CONSUMER_TIMEOUT_NONE_MS));
    }
    value
}
