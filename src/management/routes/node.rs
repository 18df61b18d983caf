//! Node-level endpoints: overview, whoami, cluster-name, nodes and aliveness-test; the
//! health checks are in `health`, the endpoints of features Warren has not (or has only
//! in part) in `misc`. Every figure is one Warren really measures; what it does not keep
//! (Erlang VM figures, sample histories) is left out.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::definitions::RABBITMQ_VERSION;
use super::{health, list, misc, one, MANAGEMENT_CONNECTION};
use crate::broker::access::{Permission, Resource};
use crate::broker::{Broker, QueueDeclare};
use crate::management::http::{Request, Response};
use crate::management::scope::{InVhost, Refusal};
use crate::management::{stats, system, Api, ApiError, Principal};

/// The queue the aliveness test declares, publishes to and gets from, as in RabbitMQ 3.10.
const ALIVENESS_QUEUE: &str = "aliveness-test";

/// The body of the aliveness test message.
const ALIVENESS_BODY: &[u8] = b"test_message";

/// Routes the node-level paths.
pub async fn route(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    if method != "GET" && method != "HEAD" {
        return Err(if rest.is_empty() { ApiError::NotFound } else { ApiError::MethodNotAllowed });
    }
    match rest {
        ["overview"] => Ok(one(request, &overview(api, &api.visible_vhosts(principal)))),
        ["whoami"] => Ok(Response::json(200, &json!({"name": principal.name, "tags": principal.tags}))),
        ["cluster-name"] => Ok(Response::json(200, &json!({"name": api.node_info.name}))),
        ["nodes"] => list(request, vec![node(api)]),
        ["nodes", name] if *name == api.node_info.name => Ok(one(request, &node(api))),
        ["aliveness-test", name] => aliveness(api, &api.in_vhost(principal, name)?).await,
        ["healthchecks" | "health", ..] => health::route(api, rest),
        _ => misc::route(api, principal, request, rest),
    }
}

/// Sums of ready and unacked messages and of consumers over the queues of `vhosts`, read
/// from the queues' atomics.
fn totals(vhosts: &[Arc<Broker>]) -> (u64, u64, u64, usize) {
    let queues: Vec<_> = vhosts.iter().flat_map(|broker| broker.queues()).collect();
    let (mut ready, mut unacked, mut consumers) = (0u64, 0u64, 0u64);
    for queue in &queues {
        ready += queue.handle.ready_count();
        unacked += queue.handle.stats().unacked.load(Ordering::Acquire);
        consumers += u64::from(queue.handle.stats().consumers.load(Ordering::Acquire));
    }
    (ready, unacked, consumers, queues.len())
}

/// The listeners. `socket_opts` holds the options Warren sets on the listener's sockets:
/// `nodelay` on every accepted socket, and for HTTP (as RabbitMQ shows its web listeners'
/// configuration) the address and port it was bound to.
fn listeners(api: &Api) -> Value {
    let (amqp, http) = (api.node_info.amqp, api.node_info.http);
    let entry = |protocol: &str, addr: std::net::SocketAddr, socket_opts: Value| {
        json!({"node": api.node_info.name, "protocol": protocol, "ip_address": addr.ip().to_string(),
               "port": addr.port(), "socket_opts": socket_opts})
    };
    json!([
        entry("amqp", amqp, json!({"nodelay": true})),
        entry("http", http, json!({"nodelay": true, "ip": http.ip().to_string(), "port": http.port()})),
    ])
}

/// The management listener, as a web context.
fn context(api: &Api) -> Value {
    let http = api.node_info.http;
    json!({"description": "RabbitMQ Management", "path": "/", "ip": http.ip().to_string(),
           "port": http.port().to_string()})
}

/// The exchange types Warren routes with.
fn exchange_types() -> Value {
    ["direct", "fanout", "headers", "topic"]
        .iter()
        .map(|t| json!({"name": t, "description": format!("AMQP {t} exchange, as per the AMQP specification"), "enabled": true}))
        .collect()
}

/// `totals` by name with their `<name>_details` rates from the node's samples. Until the
/// sampler has two samples of the node no rate is known and, as everywhere in the API, the
/// rate reads 0.0; after that a figure the sampler does not record gets no `_details`.
fn with_node_details(api: &Api, totals: &[(&'static str, u64)]) -> Map<String, Value> {
    let rates = api.rates.rates(stats::NODE_KEY);
    let mut object = Map::new();
    for &(name, total) in totals {
        object.insert(name.to_owned(), json!(total));
        let rate = match rates.get(name) {
            Some(rate) => *rate,
            None if rates.is_empty() => 0.0,
            None => continue,
        };
        object.insert(format!("{name}_details"), json!({"rate": rate}));
    }
    object
}

/// Open connections to `vhosts` and their open channels.
fn connection_totals(api: &Api, vhosts: &[Arc<Broker>]) -> (usize, usize) {
    let visible = |vhost: &str| vhosts.iter().any(|broker| &**broker.vhost() == vhost);
    let connections: Vec<_> =
        api.node.connections().into_iter().filter(|c| visible(&c.facts.vhost)).collect();
    let channels = connections.iter().map(|c| c.channels().len()).sum();
    (connections.len(), channels)
}

/// The overview; its totals count the vhosts the user sees, its churn the whole node.
fn overview(api: &Api, vhosts: &[Arc<Broker>]) -> Value {
    let (ready, unacked, consumers, queues) = totals(vhosts);
    let (connections, channels) = connection_totals(api, vhosts);
    let exchanges = vhosts.iter().map(|broker| broker.exchanges().len()).sum::<usize>();
    let mut value = json!({
        "management_version": RABBITMQ_VERSION,
        "rates_mode": "basic",
        "product_version": env!("CARGO_PKG_VERSION"),
        "product_name": "Warren",
        "rabbitmq_version": RABBITMQ_VERSION,
        "cluster_name": api.node_info.name,
        "node": api.node_info.name,
        "disable_stats": false,
        "enable_queue_totals": false,
        "statistics_db_event_queue": 0,
        "queue_totals": {"messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked},
        "object_totals": {"connections": connections, "channels": channels, "queues": queues,
                          "exchanges": exchanges, "consumers": consumers},
        "churn_rates": with_node_details(api, &api.node.churn().totals()),
        "listeners": listeners(api),
        "contexts": [with_node(context(api), &api.node_info.name)],
        "exchange_types": exchange_types(),
    });
    api.add_node_stats(&mut value);
    value
}

/// `object` with `node` added.
fn with_node(mut object: Value, node: &str) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.insert("node".to_owned(), json!(node));
    }
    object
}

/// The current resource alarm: (memory, disc).
pub(super) fn alarm_flags(api: &Api) -> (bool, bool) {
    let alarm = *api.node.alarm().borrow();
    (alarm.is_some_and(|r| r.contains("memory")), alarm.is_some_and(|r| r.contains("disk")))
}

/// The node. `mem_used` is the resident set (`mem_calculation_strategy: rss`); the
/// gauges and churn counts carry `_details` rates once the sampler records them.
fn node(api: &Api) -> Value {
    let (mem_alarm, disk_free_alarm) = alarm_flags(api);
    let processors = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let runtime = tokio::runtime::Handle::current().metrics();
    let mut value = json!({
        "name": api.node_info.name,
        "type": "disc",
        "running": true,
        "being_drained": false,
        "uptime": api.node_info.started.elapsed().as_millis() as u64,
        "run_queue": runtime.global_queue_depth(),
        "processors": processors,
        "os_pid": std::process::id().to_string(),
        "fd_total": system::descriptor_limit(),
        "proc_total": crate::limits::HTTP_REPORTED_PROCESS_LIMIT,
        "mem_limit": api.node_info.memory_limit_bytes,
        "mem_alarm": mem_alarm,
        "mem_calculation_strategy": "rss",
        "disk_free_limit": api.node_info.disk_free_limit_bytes,
        "disk_free_alarm": disk_free_alarm,
        "rates_mode": "none",
        "enabled_plugins": ["rabbitmq_management"],
        "partitions": [],
        "cluster_links": [],
        "applications": [{"name": "warren", "description": env!("CARGO_PKG_DESCRIPTION"),
                          "version": env!("CARGO_PKG_VERSION")}],
        "contexts": [context(api)],
        "exchange_types": exchange_types(),
        "auth_mechanisms": [{"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true}],
        // The binary traces to standard error and to no file.
        "log_files": ["<stderr>"],
    });
    if let Some(object) = value.as_object_mut() {
        object.extend(with_node_details(api, &system::node_gauges(&api.node)));
        object.extend(with_node_details(api, &api.node.churn().totals()));
        if let Some(dir) = api.node.data_dir() {
            object.insert("db_dir".to_owned(), json!(dir.display().to_string()));
        }
    }
    value
}

/// Declares `aliveness-test`, publishes a message to it through the default exchange and
/// gets it back, as RabbitMQ 3.10 does on a channel of the user: configure on the queue,
/// write on the default exchange, read on the queue.
async fn aliveness(api: &Api, vhost: &InVhost) -> Result<Response, ApiError> {
    let queue_name = Resource::queue(ALIVENESS_QUEUE.as_bytes());
    vhost.permit(queue_name, Permission::Configure, Refusal::Channel)?;
    vhost.permit(Resource::exchange(b""), Permission::Write, Refusal::Channel)?;
    vhost.permit(queue_name, Permission::Read, Refusal::Channel)?;
    let declare = QueueDeclare {
        name: Bytes::from_static(ALIVENESS_QUEUE.as_bytes()),
        connection: MANAGEMENT_CONNECTION,
        ..QueueDeclare::default()
    };
    vhost.broker.declare_queue(declare).await?;
    let queue = vhost.broker.queue(ALIVENESS_QUEUE.as_bytes()).ok_or(ApiError::NotFound)?;
    let message = crate::queue::message::Message {
        persistent: false,
        priority: 0,
        expires_at_ms: None,
        exchange: Bytes::new(),
        routing_key: Bytes::from_static(ALIVENESS_QUEUE.as_bytes()),
        content_header: crate::wire::amqp::ContentHeader::new(
            60,
            ALIVENESS_BODY.len() as u64,
            &Default::default(),
        )
        .raw()
        .clone(),
        body: Bytes::from_static(ALIVENESS_BODY),
    };
    queue
        .handle
        .log()
        .append(vec![message.to_record()])
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let channel = api.next_get_channel.fetch_sub(1, Ordering::Relaxed);
    let got = queue.handle.get(channel, true).await.map_err(|_| ApiError::NotFound)?;
    queue.handle.channel_closed(channel).await;
    Ok(match got {
        Some(_) => health::ok(json!({})),
        None => health::failed("aliveness-test queue returned no message", json!({})),
    })
}
