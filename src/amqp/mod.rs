//! AMQP GATEWAY: the pure wire codec ([`codec`]) and, above it, the connection and channel
//! state machines that turn frames into broker calls and broker events into frames.

pub mod codec;
