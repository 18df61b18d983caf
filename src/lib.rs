//! Warren: an append-log streaming message broker that speaks AMQP 0-9-1.
//!
//! The map, from the bottom up:
//! - [`limits`]: every resource bound, with its unit and reason.
//! - [`log`]: the log core. Segmented, checksummed, memory-mapped append logs with a single
//!   group-committing writer per log, io_uring or threaded disc writes, memory or disc
//!   storage, crash recovery, retention and consumer offsets. Knows nothing of AMQP.
//! - [`queue`]: a log plus consumer state: the classic queue's ack tracker.
//! - [`broker`]: exchanges, bindings, queues and routing.
//! - [`amqp`]: the AMQP 0-9-1 codec (pure) and the connection and channel state machines.
//! - [`config`]: flags, TOML file and `WARREN_*` environment merged into one `Config`.
//! - [`server`]: runtime wiring, listeners, signals and clean shutdown.
//! - [`bench`]: `warren bench`, a PerfTest-style load client of any AMQP broker (uses only the
//!   pure codec), and the standard suite.
//!
//! Dependencies point down only: `server → log`; `log` depends on nothing above it.

pub mod amqp;
pub mod bench;
pub mod broker;
pub mod config;
pub mod limits;
pub mod log;
pub mod queue;
pub mod seq_map;
pub mod server;
pub mod wire;
