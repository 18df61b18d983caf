//! The AMQP listener: accepts connections and gives each its own task running the
//! connection driver ([`amqp_driver`](super::amqp_driver)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::amqp_driver::serve_connection;
use crate::broker::Broker;
use crate::limits::ACCEPT_RETRY_DELAY_MS;

/// Accepts connections until `shutdown` turns true.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let next_id = AtomicU64::new(1);
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let broker = Arc::clone(&broker);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(error) = serve_connection(stream, peer, broker, id, shutdown).await {
                            tracing::debug!(connection = id, %peer, %error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_DELAY_MS)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}
