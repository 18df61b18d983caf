//! The periodic status report: one log line with the broker's totals (with the messages lost
//! to damaged batches in the queues' logs since the start) and, for every stream
//! consumer, how far it trails its stream (messages, bytes, age of the oldest message it has
//! not acknowledged). Each line is also a `tracing` event that subscribers can collect.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::Node;

/// Reports every `period` until the broker is dropped.
pub async fn report(node: std::sync::Weak<Node>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else { return };
        report_once(&node).await;
    }
}

async fn report_once(node: &Arc<Node>) {
    let queues: Vec<_> = node.vhosts().iter().flat_map(|broker| broker.queues()).collect();
    let (mut ready, mut unacked, mut consumers, mut damaged) = (0u64, 0u64, 0u64, 0u64);
    for queue in &queues {
        let stats = queue.handle.stats();
        if !queue.is_stream() {
            ready += queue.handle.ready_count();
        }
        unacked += stats.unacked.load(Ordering::Acquire);
        consumers += u64::from(stats.consumers.load(Ordering::Acquire));
        damaged += stats.damaged.load(Ordering::Relaxed);
    }
    tracing::info!(queues = queues.len(), ready, unacked, consumers, damaged, "status");
    for queue in queues.iter().filter(|q| q.is_stream()) {
        let Ok(lags) = queue.handle.lag().await else { continue };
        let head = queue.handle.log().next_offset();
        for lag in lags {
            tracing::info!(
                target: "warren::stream_lag",
                stream = %queue.name_str(),
                consumer = %lag.consumer,
                head_offset = head,
                committed_offset = lag.committed_offset,
                lag_messages = lag.lag_messages,
                lag_bytes = lag.lag_bytes,
                oldest_unconsumed_age_ms = lag.oldest_unconsumed_age_ms,
                "stream consumer lag"
            );
        }
    }
}
