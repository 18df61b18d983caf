//! Warren: an append-log streaming message broker that speaks AMQP 0-9-1.
//!
//! The layers, from the top down; a module uses only layers below its own:
//!
//! ```text
//! main → server → gateways (amqp) → broker → queue → log
//!                 beneath all: wire, limits, seq_map
//! ```
//!
//! - [`server`]: runtime wiring, listeners, the per-connection socket drivers, resource
//!   alarms, signals and clean shutdown. The only layer that reads [`config`].
//! - [`amqp`]: the AMQP 0-9-1 gateway: connection and channel state machines that turn
//!   frames into broker calls and broker events into frames. No sockets. Gateways never use
//!   one another (the management API will be a gateway beside it).
//! - [`broker`]: vhost model: exchanges, bindings, queues, routing, dead-letter routing and
//!   durable definitions. No frames, no I/O besides the definitions file.
//! - [`queue`]: a log plus its consumers' state: classic queues' ack tracker and stream
//!   queues' offsets, consumer credit, and the stored message format.
//! - [`log`]: the log core. Segmented, checksummed, memory-mapped append logs with a single
//!   group-committing writer per log, io_uring or threaded disc writes, memory or disc
//!   storage, crash recovery, retention and consumer offsets. Knows nothing of AMQP.
//! - [`wire`]: pure protocol codecs (AMQP 0-9-1 in [`wire::amqp`]): bytes ↔ typed frames,
//!   field tables, content headers, reply codes. Uses nothing in the crate but [`limits`].
//! - [`limits`]: every resource bound, with its unit and reason.
//! - [`seq_map`]: the sorted deque that keeps unacknowledged deliveries.
//! - [`config`]: flags, TOML file and `WARREN_*` environment merged into one `Config`.
//! - [`bench`]: `warren bench`, a PerfTest-style load client of any AMQP broker, and the
//!   standard suite. Uses only [`wire`] and [`limits`].
//!
//! `tests/layering.rs` reads every `crate::` path in `src/` and fails on an edge that runs up
//! or sideways.

pub mod amqp;
pub mod bench;
pub mod broker;
pub mod config;
pub mod ctl;
pub mod limits;
pub mod log;
pub mod management;
pub mod queue;
pub mod seq_map;
pub mod server;
pub mod wire;
