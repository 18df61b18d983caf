//! AMQP GATEWAY: the connection and channel state machines that turn frames (decoded by the
//! pure codec in [`crate::wire::amqp`]) into broker calls, and broker events into frames.
//! Every error sent to a client is worded in [`reply`].

pub mod channel;
pub mod connection;
pub mod deadlines;
mod output;
pub mod reply;
pub mod routes;
