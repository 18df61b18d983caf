//! QUEUE: a log plus its consumers' state. Knows no frames, sockets or exchanges.

pub mod classic;
pub mod death;
pub mod message;
pub mod stream;
