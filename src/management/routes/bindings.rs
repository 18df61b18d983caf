//! `/api/bindings…` and the binding lists of one queue or exchange. The default exchange's
//! implicit bindings (every queue by its name) are listed first, as RabbitMQ does.

use std::collections::HashMap;

use serde_json::Value;

use super::exchanges::exchange_name;
use super::{body_json, check_vhost, list, MANAGEMENT_CONNECTION};
use crate::broker::{Destination, QueueEntry};
use crate::management::http::{percent_encode, Request, Response};
use crate::management::json::{binding_json, json_table, properties_key};
use crate::management::{Api, ApiError};
use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

/// One binding, with names resolved.
struct Row {
    source: String,
    destination: String,
    to_queue: bool,
    key: String,
    args: Vec<(ShortStr, FieldValue)>,
}

impl Row {
    fn json(&self) -> Value {
        binding_json(&self.source, &self.destination, self.to_queue, &self.key, &self.args)
    }
}

/// Every binding, the default exchange's first. Each exchange's table is read under its
/// own lock, briefly.
fn rows(api: &Api) -> Vec<Row> {
    let Ok(broker) = api.broker() else { return Vec::new() };
    let queues = broker.queues();
    let exchanges = broker.exchanges();
    let queue_names: HashMap<u64, &QueueEntry> = queues.iter().map(|q| (q.id, q.as_ref())).collect();
    let exchange_names: HashMap<u64, String> =
        exchanges.iter().map(|x| (x.id, String::from_utf8_lossy(&x.name).into_owned())).collect();
    let mut out: Vec<Row> = queues
        .iter()
        .map(|q| Row {
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

/// Routes `/api/bindings/{rest}`.
pub async fn route(api: &Api, request: &Request, method: &str, rest: &[&str]) -> Result<Response, ApiError> {
    match (method, rest) {
        ("GET", []) => list(request, rows(api).iter().map(Row::json).collect()),
        ("GET", [vhost]) => {
            check_vhost(vhost)?;
            list(request, rows(api).iter().map(Row::json).collect())
        }
        (_, [vhost, "e", source, kind @ ("q" | "e"), destination, tail @ ..]) => {
            check_vhost(vhost)?;
            let ends = Ends { source: exchange_name(source), destination, to_queue: *kind == "q" };
            if api.broker()?.exchange(ends.source.as_bytes()).is_none() || !ends.exists(api) {
                return Err(ApiError::NotFound);
            }
            match (method, tail) {
                ("GET", []) => list(request, ends.matching(api).iter().map(Row::json).collect()),
                ("POST", []) => ends.bind(api, request).await,
                ("GET", [props]) => ends.find(api, props).map(|row| Response::json(200, &row.json())),
                ("DELETE", [props]) => ends.unbind(api, props).await,
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
    fn exists(&self, api: &Api) -> bool {
        if self.to_queue {
            api.broker().is_ok_and(|broker| broker.queue(self.destination.as_bytes()).is_some())
        } else {
            api.broker()
                .is_ok_and(|broker| broker.exchange(exchange_name(self.destination).as_bytes()).is_some())
        }
    }

    fn matching(&self, api: &Api) -> Vec<Row> {
        let destination = exchange_name(self.destination);
        rows(api)
            .into_iter()
            .filter(|r| {
                r.source == self.source && r.destination == destination && r.to_queue == self.to_queue
            })
            .collect()
    }

    fn find(&self, api: &Api, props: &str) -> Result<Row, ApiError> {
        self.matching(api)
            .into_iter()
            .find(|r| properties_key(&r.key, &r.args) == props)
            .ok_or(ApiError::NotFound)
    }

    /// POST: 201 with the new binding's properties key in `Location`.
    async fn bind(&self, api: &Api, request: &Request) -> Result<Response, ApiError> {
        let body = body_json(request)?;
        let key = body.get("routing_key").and_then(Value::as_str).unwrap_or("");
        let arguments = json_table(body.get("arguments").unwrap_or(&Value::Null))
            .ok_or_else(|| ApiError::BadRequest("arguments must be an object".to_string()))?;
        let props = properties_key(key, &arguments.0);
        let destination = exchange_name(self.destination);
        api.broker()?
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

    /// DELETE `…/{props}`: 204, or 404 when no binding has that key.
    async fn unbind(&self, api: &Api, props: &str) -> Result<Response, ApiError> {
        let row = self.find(api, props)?;
        let arguments = FieldTable(row.args);
        let destination = exchange_name(self.destination);
        api.broker()?
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
pub fn of_queue(api: &Api, request: &Request, name: &str) -> Result<Response, ApiError> {
    if api.broker()?.queue(name.as_bytes()).is_none() {
        return Err(ApiError::NotFound);
    }
    let items = rows(api).iter().filter(|r| r.to_queue && r.destination == name).map(Row::json).collect();
    list(request, items)
}

/// `GET /api/exchanges/{v}/{x}/bindings/source` (`as_source`) or `…/destination`.
pub fn of_exchange(api: &Api, request: &Request, name: &str, as_source: bool) -> Result<Response, ApiError> {
    if api.broker()?.exchange(name.as_bytes()).is_none() {
        return Err(ApiError::NotFound);
    }
    let items = rows(api)
        .iter()
        .filter(|r| if as_source { r.source == name } else { !r.to_queue && r.destination == name })
        .map(Row::json)
        .collect();
    list(request, items)
}

/// The bindings a definitions export holds: between durable ends, not the default
/// exchange's implicit ones, and not to exclusive queues.
pub fn durable_rows(api: &Api) -> Vec<Value> {
    let durable_queue = |name: &str| {
        api.broker().is_ok_and(|broker| {
            broker.queue(name.as_bytes()).is_some_and(|q| q.durable && q.exclusive_owner.is_none())
        })
    };
    let durable_exchange = |name: &str| {
        api.broker().is_ok_and(|broker| broker.exchange(name.as_bytes()).is_some_and(|x| x.durable))
    };
    rows(api)
        .iter()
        .filter(|r| !r.source.is_empty() && durable_exchange(&r.source))
        .filter(|r| if r.to_queue { durable_queue(&r.destination) } else { durable_exchange(&r.destination) })
        .map(Row::json)
        .collect()
}
