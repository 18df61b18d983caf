//! MANAGEMENT GATEWAY: RabbitMQ 3.10's management HTTP API over the broker model, so that
//! rabbitmqadmin, the `rabbitmq_http_client` crate, Terraform, Datadog and curl scripts work
//! unchanged. Requests come in through a small HTTP/1.1 server (`http`), are authenticated
//! with HTTP Basic against an [`Authenticator`], and routed (`routes`) to handlers that read
//! the model under its lock only briefly and read queue counters from atomics (`json`), so
//! that the API never slows the message path. List conventions (columns, sort, pagination)
//! are in `conventions`. Uses `broker`, `queue`, `wire` and `limits`; never `amqp`.
//!
//! Every vhost of the node is served; `scope` decides which of them a user reaches and
//! checks the user's permissions there.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

mod auth;
mod base64;
pub mod conventions;
mod error;
mod form;
pub mod http;
pub mod json;
mod routes;
mod scope;
pub mod stats;
mod system;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use crate::broker::Node;

pub use error::ApiError;
pub use http::{Request, Response};

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name.
    pub name: String,
    /// RabbitMQ user tags (`administrator`, `monitoring`, `policymaker`, `management`).
    pub tags: Vec<String>,
}

/// Checks a user name and password; the management API asks it on every request.
pub trait Authenticator: Send + Sync {
    /// The user, when `password` is theirs.
    fn authenticate(&self, user: &str, password: &str) -> Option<Principal>;
}

/// The node's users, as the access model has them.
struct NodeUsers(Arc<Node>);

impl Authenticator for NodeUsers {
    fn authenticate(&self, user: &str, password: &str) -> Option<Principal> {
        let account = self.0.access().snapshot().authenticate(user, password).ok()?;
        let tags = account.tag_names().into_iter().map(str::to_owned).collect();
        Some(Principal { name: account.name.clone(), tags })
    }
}

/// Facts about the node the API reports.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node name, `warren@<host>`.
    pub name: String,
    /// The bound AMQP listener.
    pub amqp: SocketAddr,
    /// The bound HTTP listener.
    pub http: SocketAddr,
    /// When the broker started.
    pub started: Instant,
    /// Anonymous resident memory above which publishers are blocked, in bytes.
    pub memory_limit_bytes: u64,
    /// Free disc below which publishers are blocked, in bytes (0: not checked).
    pub disk_free_limit_bytes: u64,
    /// The data directory (for the free-disc figure), when on disc.
    pub data_dir: Option<std::path::PathBuf>,
}

/// The management API: everything a request handler needs.
pub struct Api {
    node: Arc<Node>,
    authenticator: Arc<dyn Authenticator>,
    node_info: NodeInfo,
    /// Queue channel ids for `POST …/get`, counting down from the top of the id space so
    /// that they never meet the AMQP gateway's.
    next_get_channel: AtomicU64,
    /// Samples of every object's totals, for rates.
    rates: Arc<stats::Rates>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("node", &self.node_info).finish_non_exhaustive()
    }
}

impl Api {
    /// An API over `node`; users log in against its access model. Starts the task that
    /// samples message totals for rates, which ends when the API is dropped.
    pub fn new(node: Arc<Node>, info: NodeInfo) -> Api {
        let authenticator = Arc::new(NodeUsers(Arc::clone(&node)));
        let rates = Arc::new(stats::Rates::default());
        stats::spawn_sampler(Arc::downgrade(&node), Arc::downgrade(&rates));
        Api { node, authenticator, node_info: info, next_get_channel: AtomicU64::new(u64::MAX), rates }
    }

    /// A queue's JSON with its message statistics and rates.
    fn queue_json(&self, queue: &crate::broker::QueueEntry, vhost: &str) -> serde_json::Value {
        let mut value = json::queue_json(queue, vhost, &self.node_info.name);
        stats::add_queue_stats(&self.rates, vhost, queue, &mut value);
        value
    }

    /// Adds the node's `message_stats` and the rates of its queue totals to the overview.
    fn add_node_stats(&self, overview: &mut serde_json::Value) {
        let (messages, counts) = stats::node_totals(&self.node);
        let Some(object) = overview.as_object_mut() else { return };
        let message_stats = self.rates.with_details(stats::NODE_KEY, &messages);
        object.insert("message_stats".to_owned(), serde_json::Value::Object(message_stats));
        let counts = self.rates.with_details(stats::NODE_KEY, &counts);
        if let Some(serde_json::Value::Object(queue_totals)) = object.get_mut("queue_totals") {
            for (name, value) in counts {
                if name.starts_with("messages") && name.ends_with("_details") {
                    queue_totals.insert(name, value);
                }
            }
        }
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Response {
        match self.answer(&request).await {
            Ok(response) => response,
            Err(error) => error.response(),
        }
    }

    async fn answer(&self, request: &Request) -> Result<Response, ApiError> {
        let Some(rest) = request.path.strip_prefix("/api/") else {
            return Err(ApiError::NotFound);
        };
        let segments: Vec<String> =
            rest.split('/').filter(|s| !s.is_empty()).map(|s| http::percent_decode(s, false)).collect();
        let principal = auth::authenticate(self.authenticator.as_ref(), request.header("authorization"))?;
        routes::route(self, &principal, request, &segments).await
    }
}
