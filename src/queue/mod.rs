//! QUEUE: a log plus its consumers' state. Knows no frames, sockets or exchanges; uses only
//! the log core (`crate::log`), `crate::limits`, `crate::seq_map` and `crate::wire`.
//!
//! - [`api`]: what both queue kinds take and give (consumer specs, channel credit,
//!   deliveries, dead messages, errors); re-exported here.
//! - [`dead_letters`]: a queue's bounded, ordered channel for its dead messages.
//! - [`handle`]: [`QueueHandle`], [`QueueOptions`], [`QueueStats`]: starting a queue's task
//!   and talking to it; re-exported here.
//! - [`consumer_use`]: how much of the time a queue's consumers could take its messages.
//! - `credit` and `read_ahead`: the consumer credit (prefetch) and log read-ahead both kinds
//!   share.
//! - [`classic`]: the classic queue's task (ack tracker, requeue, TTL and length limits).
//! - [`stream`]: the stream queue's task (consumers at their own offsets).
//! - [`message`]: a message as a queue stores it in its log.
//! - [`death`]: a message's dead-lettering: `x-death` history and dropped expiry, edited in
//!   its stored content header, so that every gateway dead-letters alike.

pub mod api;
pub mod classic;
pub mod consumer_use;
mod credit;
pub mod dead_letters;
pub mod death;
pub mod handle;
pub mod message;
mod read_ahead;
pub mod stream;

pub use api::{
    ChannelCredit, ChannelId, ConsumerEvent, ConsumerSpec, DeadMessage, DeathReason, Delivery, QueueError,
};
pub use dead_letters::DeadLetters;
pub use handle::{QueueContents, QueueHandle, QueueOptions, QueueSettings, QueueStats};
pub use stream::{ConsumerLag, StreamAttach, StreamOffset};
