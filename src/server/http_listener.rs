//! The management HTTP listener: accepts connections (at most [`HTTP_CONNECTIONS_MAX`] at
//! once) and serves each with the management API on its own task until shutdown, when the
//! open connections are dropped (management requests hold no broker state worth waiting
//! for).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::limits::{ACCEPT_RETRY_DELAY_MS, HTTP_CONNECTIONS_MAX};
use crate::management::{http, Api};

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, api: Arc<Api>, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(HTTP_CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let api = Arc::clone(&api);
                    connections.spawn(async move {
                        let _permit = permit;
                        let _ = stream.set_nodelay(true);
                        http::serve_connection(stream, |request| {
                            let api = Arc::clone(&api);
                            async move { api.handle(request).await }
                        })
                        .await;
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "management accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_DELAY_MS)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.shutdown().await;
}
