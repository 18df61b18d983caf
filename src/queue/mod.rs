//! QUEUE: a log plus its consumers' state. Knows no frames, sockets or exchanges.

pub mod classic;
pub mod message;
pub mod stream;
