//! The AMQP listener: accepts connections and gives each its own task running the
//! connection driver ([`amqp_driver`](super::amqp_driver)), and at shutdown waits (at
//! most [`CONNECTIONS_CLOSE_TIMEOUT_MS`]) for those tasks to finish.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::amqp_driver::serve_connection;
use crate::broker::Node;
use crate::limits::{ACCEPT_RETRY_DELAY_MS, CONNECTIONS_CLOSE_TIMEOUT_MS};

/// Accepts connections until `shutdown` turns true, then waits for the connections' tasks
/// to finish (they close on the same signal), at most [`CONNECTIONS_CLOSE_TIMEOUT_MS`];
/// those still running then are aborted. The set of tasks holds only live connections:
/// finished ones are reaped as they end.
pub async fn serve(listener: TcpListener, node: Arc<Node>, shutdown: watch::Receiver<bool>) {
    let next_id = AtomicU64::new(1);
    let mut stop = shutdown.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let node = Arc::clone(&node);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        if let Err(error) = serve_connection(stream, peer, node, id, shutdown).await {
                            tracing::debug!(connection = id, %peer, %error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_DELAY_MS)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    let closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_millis(CONNECTIONS_CLOSE_TIMEOUT_MS), closed).await.is_err() {
        tracing::warn!(left = connections.len(), "connections still open at shutdown are dropped");
        connections.shutdown().await;
    }
}
