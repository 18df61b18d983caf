//! AMQP GATEWAY: the pure wire codec ([`codec`]) and, above it, the connection and channel
//! state machines that turn frames into broker calls and broker events into frames. Every
//! error sent to a client is worded in [`reply`].

pub mod channel;
pub mod codec;
pub mod connection;
pub mod reply;
pub mod routes;
