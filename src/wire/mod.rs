//! WIRE: pure protocol codecs, bytes ↔ typed frames. No sockets, no tokio, no broker: the
//! only crate module a codec may use is [`crate::limits`]. Each protocol has a folder of its
//! own, so that further gateways' codecs can sit beside AMQP's.

pub mod amqp;
