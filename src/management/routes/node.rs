//! Node-level endpoints: overview, whoami, extensions, cluster-name, nodes,
//! aliveness-test and the health checks. Every figure is one Warren really measures;
//! rates and message statistics it does not keep yet are left out.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::definitions::RABBITMQ_VERSION;
use super::{list, one, MANAGEMENT_CONNECTION};
use crate::broker::access::{Permission, Resource};
use crate::broker::{Broker, QueueDeclare};
use crate::management::http::{Request, Response};
use crate::management::scope::{InVhost, Refusal};
use crate::management::{Api, ApiError, Principal};

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
        ["extensions"] => Ok(Response::json(200, &json!([]))),
        ["cluster-name"] => Ok(Response::json(200, &json!({"name": api.node_info.name}))),
        ["nodes"] => list(request, vec![node(api)]),
        ["nodes", name] if *name == api.node_info.name => Ok(one(request, &node(api))),
        ["aliveness-test", name] => aliveness(api, &api.in_vhost(principal, name)?).await,
        ["healthchecks", "node"] => Ok(health_ok(json!({}))),
        ["healthchecks", "node", name] if *name == api.node_info.name => Ok(health_ok(json!({}))),
        ["health", "checks", "alarms" | "local-alarms"] => Ok(alarms(api)),
        ["health", "checks", "virtual-hosts"] => Ok(health_ok(json!({}))),
        ["health", "checks", "port-listener", port] => port_listener(api, port),
        ["health", "checks", "protocol-listener", protocols] => Ok(protocol_listener(protocols)),
        _ => Err(ApiError::NotFound),
    }
}

fn health_ok(mut extra: Value) -> Response {
    if let Some(object) = extra.as_object_mut() {
        object.insert("status".into(), json!("ok"));
    }
    Response::json(200, &extra)
}

fn health_failed(reason: &str, extra: Value) -> Response {
    let mut body = json!({"status": "failed", "reason": reason});
    if let (Some(object), Value::Object(more)) = (body.as_object_mut(), extra) {
        object.extend(more);
    }
    Response::json(503, &body)
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

fn listeners(api: &Api) -> Value {
    let entry = |protocol: &str, addr: std::net::SocketAddr| json!({"node": api.node_info.name, "protocol": protocol, "ip_address": addr.ip().to_string(), "port": addr.port(), "socket_opts": {}});
    json!([entry("amqp", api.node_info.amqp), entry("http", api.node_info.http)])
}

/// The overview; its totals count the vhosts the user sees.
fn overview(api: &Api, vhosts: &[Arc<Broker>]) -> Value {
    let (ready, unacked, consumers, queues) = totals(vhosts);
    let exchange_types: Vec<Value> = ["direct", "fanout", "headers", "topic"]
        .iter()
        .map(|t| json!({"name": t, "description": format!("AMQP {t} exchange, as per the AMQP specification"), "enabled": true}))
        .collect();
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
        "object_totals": {"queues": queues, "exchanges": vhosts.iter().map(|broker| broker.exchanges().len()).sum::<usize>(), "consumers": consumers},
        "listeners": listeners(api),
        "contexts": [{"node": api.node_info.name, "description": "RabbitMQ Management", "path": "/",
                      "ip": api.node_info.http.ip().to_string(), "port": api.node_info.http.port().to_string()}],
        "exchange_types": exchange_types,
    });
    api.add_node_stats(&mut value);
    value
}

/// The current resource alarm: (memory, disc).
fn alarm_flags(api: &Api) -> (bool, bool) {
    let alarm = *api.node.alarm().borrow();
    (alarm.is_some_and(|r| r.contains("memory")), alarm.is_some_and(|r| r.contains("disk")))
}

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
        "fd_used": super::super::system::open_descriptors(),
        "fd_total": super::super::system::descriptor_limit(),
        "sockets_used": 0,
        "proc_used": runtime.num_alive_tasks(),
        "proc_total": crate::limits::HTTP_REPORTED_PROCESS_LIMIT,
        "mem_used": super::super::system::resident_bytes(),
        "mem_limit": api.node_info.memory_limit_bytes,
        "mem_alarm": mem_alarm,
        "disk_free_limit": api.node_info.disk_free_limit_bytes,
        "disk_free_alarm": disk_free_alarm,
        "rates_mode": "none",
        "enabled_plugins": ["rabbitmq_management"],
        "partitions": [],
        "applications": [],
        "contexts": [],
        "exchange_types": [],
        "auth_mechanisms": [{"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true}],
    });
    if let (Some(dir), Some(object)) = (&api.node_info.data_dir, value.as_object_mut()) {
        if let Some(free) = super::super::system::free_disc_bytes(dir) {
            object.insert("disk_free".into(), json!(free));
        }
    }
    value
}

fn alarms(api: &Api) -> Response {
    match alarm_flags(api) {
        (false, false) => health_ok(json!({})),
        (memory, _) => {
            let resource = if memory { "memory" } else { "disk" };
            health_failed(
                "resource alarm(s) in effect",
                json!({"alarms": [{"node": api.node_info.name, "resource": resource}]}),
            )
        }
    }
}

fn port_listener(api: &Api, port: &str) -> Result<Response, ApiError> {
    let port: u16 = port.parse().map_err(|_| ApiError::BadRequest(format!("invalid port {port}")))?;
    let ports = [api.node_info.amqp.port(), api.node_info.http.port()];
    Ok(if ports.contains(&port) {
        health_ok(json!({"port": port}))
    } else {
        health_failed("No active listener", json!({"missing": port, "ports": ports}))
    })
}

fn protocol_listener(protocols: &str) -> Response {
    let served = ["amqp", "http"];
    let normalise = |p: &str| match p {
        "amqp091" | "amqp0.9.1" | "amqp0-9-1" => "amqp".to_string(),
        other => other.to_string(),
    };
    let missing: Vec<String> =
        protocols.split(',').map(normalise).filter(|p| !served.contains(&p.as_str())).collect();
    if missing.is_empty() {
        health_ok(json!({"protocols": protocols.split(',').collect::<Vec<_>>()}))
    } else {
        health_failed("No active listener", json!({"missing": missing, "protocols": served}))
    }
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
        Some(_) => health_ok(json!({})),
        None => health_failed("aliveness-test queue returned no message", json!({})),
    })
}
