//! `/api/bindings…` and the binding lists of one queue or exchange, in any vhost the user
//! reaches (see `scope`). The default exchange's implicit bindings (every queue by its
//! name) are listed first, as RabbitMQ does.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::exchanges::exchange_name;
use super::{body_json, list, MANAGEMENT_CONNECTION};
use crate::broker::{Broker, Destination, QueueEntry};
use crate::management::http::{percent_encode, Request, Response};
use crate::management::json::{binding_json, json_table, properties_key};
use crate::management::scope::InVhost;
use crate::management::{Api, ApiError, Principal};
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

/// One binding, with names resolved.
pub struct Row {
    vhost: Arc<str>,
    /// The source exchange (`""`: the default exchange).
    pub source: String,
    /// The destination queue or exchange.
    pub destination: String,
    /// Whether the destination is a queue.
    pub to_queue: bool,
    /// The routing key.
    pub key: String,
    /// The binding's arguments.
    pub args: Vec<(ShortStr, FieldValue)>,
}

impl Row {
    /// The binding as the API lists it.
    pub fn json(&self) -> Value {
        binding_json(&self.vhost, &self.source, &self.destination, self.to_queue, &self.key, &self.args)
    }
}

/// Every binding of one vhost, the default exchange's first. Each exchange's table is
/// read under its own lock, briefly.
pub fn rows(broker: &Broker) -> Vec<Row> {
    let vhost = Arc::clone(broker.vhost());
    let queues = broker.queues();
    let exchanges = broker.exchanges();
    let queue_names: HashMap<u64, &QueueEntry> = queues.iter().map(|q| (q.id, q.as_ref())).collect();
    let exchange_names: HashMap<u64, String> =
        exchanges.iter().map(|x| (x.id, String::from_utf8_lossy(&x.name).into_owned())).collect();
    let mut out: Vec<Row> = queues
        .iter()
        .map(|q| Row {
            vhost: Arc::clone(&vhost),
            source: String::new(),
            destination: q.name_str(),
            to_queue: true,
            key: q.name_str(),
            args: Vec::new(),
        })
        .collect();
    out.sort_by(|a, b| a.destination.cmp(&b.destination));
    let mut sources: Vec<_> = exchanges.iter().filter(|x| !x.name.is_empty()).collect();
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    for exchange in sources {
        let source = String::from_utf8_lossy(&exchange.name).into_owned();
        let table = exchange.bindings.read().expect("binding table lock poisoned");
        for binding in table.bindings() {
            let (destination, to_queue) = match binding.destination {
                Destination::Queue(id) => (queue_names.get(&id).map(|q| q.name_str()), true),
                Destination::Exchange(id) => (exchange_names.get(&id).cloned(), false),
            };
            let Some(destination) = destination else { continue };
            out.push(Row {
                vhost: Arc::clone(&vhost),
                source: source.clone(),
                destination,
                to_queue,
                key: String::from_utf8_lossy(binding.key).into_owned(),
                args: binding.args.to_vec(),
            });
        }
    }
    out
}

/// The bindings of `vhosts` as a list.
fn list_bindings(request: &Request, vhosts: &[Arc<Broker>]) -> Result<Response, ApiError> {
    list(request, vhosts.iter().flat_map(|broker| rows(broker)).map(|row| row.json()).collect())
}

/// Routes `/api/bindings/{rest}`.
pub async fn route(
    api: &Api,
    principal: &Principal,
    request: &Request,
    method: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    match (method, rest) {
        ("GET", []) => list_bindings(request, &api.listed_vhosts(principal, None)?),
        ("GET", [vhost]) => list_bindings(request, &api.listed_vhosts(principal, Some(vhost))?),
        (_, [vhost, "e", source, kind @ ("q" | "e"), destination, tail @ ..]) => {
            let vhost = api.in_vhost(principal, vhost)?;
            let ends = Ends { source: exchange_name(source), destination, to_queue: *kind == "q" };
            if vhost.broker.exchange(ends.source.as_bytes()).is_none() || !ends.exists(&vhost.broker) {
                return Err(ApiError::NotFound);
            }
            match (method, tail) {
                ("GET", []) => list(request, ends.matching(&vhost.broker).iter().map(Row::json).collect()),
                ("POST", []) => ends.bind(&vhost, request).await,
                ("GET", [props]) => {
                    ends.find(&vhost.broker, props).map(|row| Response::json(200, &row.json()))
                }
                ("DELETE", [props]) => ends.unbind(&vhost, props).await,
                (_, [] | [_]) => Err(ApiError::MethodNotAllowed),
                _ => Err(ApiError::NotFound),
            }
        }
        _ => Err(ApiError::NotFound),
    }
}

/// The two ends of the bindings a path names.
struct Ends<'a> {
    source: &'a str,
    destination: &'a str,
    to_queue: bool,
}

impl Ends<'_> {
    fn exists(&self, broker: &Broker) -> bool {
        if self.to_queue {
            broker.queue(self.destination.as_bytes()).is_some()
        } else {
            broker.exchange(exchange_name(self.destination).as_bytes()).is_some()
        }
    }

    fn matching(&self, broker: &Broker) -> Vec<Row> {
        let destination = exchange_name(self.destination);
        rows(broker)
            .into_iter()
            .filter(|r| {
                r.source == self.source && r.destination == destination && r.to_queue == self.to_queue
            })
            .collect()
    }

    fn find(&self, broker: &Broker, props: &str) -> Result<Row, ApiError> {
        self.matching(broker)
            .into_iter()
            .find(|r| properties_key(&r.key, &r.args) == props)
            .ok_or(ApiError::NotFound)
    }

    /// POST: 201 with the new binding's properties key in `Location`. Checked as
    /// `queue.bind` is.
    async fn bind(&self, vhost: &InVhost, request: &Request) -> Result<Response, ApiError> {
        let body = body_json(request)?;
        let key = body.get("routing_key").and_then(Value::as_str).unwrap_or("");
        let arguments = json_table(body.get("arguments").unwrap_or(&Value::Null))
            .ok_or_else(|| ApiError::BadRequest("arguments must be an object".to_string()))?;
        let props = properties_key(key, &arguments.0);
        let destination = exchange_name(self.destination);
        vhost.permit_binding(
            self.source.as_bytes(),
            destination.as_bytes(),
            self.to_queue,
            key.as_bytes(),
        )?;
        vhost
            .broker
            .bind(
                self.source.as_bytes(),
                destination.as_bytes(),
                self.to_queue,
                key.as_bytes(),
                arguments,
                MANAGEMENT_CONNECTION,
            )
            .await?;
        let location = format!("{}/{}", percent_encode(self.destination), percent_encode(&props));
        Ok(Response::empty(201).with_header("location", location))
    }

    /// DELETE `…/{props}`: 204, or 404 when no binding has that key. Checked as
    /// `queue.unbind` is.
    async fn unbind(&self, vhost: &InVhost, props: &str) -> Result<Response, ApiError> {
        let row = self.find(&vhost.broker, props)?;
        let destination = exchange_name(self.destination);
        vhost.permit_binding(
            self.source.as_bytes(),
            destination.as_bytes(),
            self.to_queue,
            row.key.as_bytes(),
        )?;
        let arguments = FieldTable(row.args);
        vhost
            .broker
            .unbind(
                self.source.as_bytes(),
                destination.as_bytes(),
                self.to_queue,
                row.key.as_bytes(),
                &arguments,
                MANAGEMENT_CONNECTION,
            )
            .await?;
        Ok(Response::empty(204))
    }
}

/// `GET /api/queues/{v}/{q}/bindings`.
pub fn of_queue(broker: &Broker, request: &Request, name: &str) -> Result<Response, ApiError> {
    if broker.queue(name.as_bytes()).is_none() {
        return Err(ApiError::NotFound);
    }
    let items = rows(broker).iter().filter(|r| r.to_queue && r.destination == name).map(Row::json).collect();
    list(request, items)
}

/// `GET /api/exchanges/{v}/{x}/bindings/source` (`as_source`) or `…/destination`.
pub fn of_exchange(
    broker: &Broker,
    request: &Request,
    name: &str,
    as_source: bool,
) -> Result<Response, ApiError> {
    if broker.exchange(name.as_bytes()).is_none() {
        return Err(ApiError::NotFound);
    }
    let items = rows(broker)
        .iter()
        .filter(|r| if as_source { r.source == name } else { !r.to_queue && r.destination == name })
        .map(Row::json)
        .collect();
    list(request, items)
}
