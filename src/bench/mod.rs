//! BENCH: `warren bench`, a PerfTest-style load generator for any AMQP 0-9-1 broker, and
//! `warren bench suite`, the standard scenarios run side by side against several brokers.
//!
//! The client is deliberately minimal so that it is never what limits a measurement: it speaks
//! AMQP with Warren's pure codec ([`crate::wire::amqp`]) over plain tokio sockets, one task
//! per connection owning its socket, with batched writes and a read path that scans frames in
//! place without allocating. It knows nothing of the broker's internals and works against
//! RabbitMQ as well as Warren. From the rest of the crate it uses only the codec and the
//! bench's bounds in [`crate::limits`].
//!
//! Layout:
//! - [`options`]: the PerfTest flags and how they become queues, exchanges and actors.
//! - `uri`, `client`: the AMQP URI, the connection handshake and the in-place frame scanner.
//! - `actors`: producer and consumer tasks.
//! - `stats`: counters, hdrhistogram latencies, interval rows and the summary (text, JSON,
//!   CSV); `plot`: the SVG chart.
//! - `run`: one benchmark run from flags to report; [`suite`]: the standard suite.

mod actors;
mod client;
pub mod options;
mod plot;
mod run;
mod stats;
pub mod suite;
mod uri;

use clap::{Args, Subcommand};

pub use options::{rewrite_argv, RunOptions};
pub use run::Report;
pub use stats::{IntervalRow, LatencySummary, Summary, Totals};
pub use suite::SuiteArgs;

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The broker sent bytes that are not valid AMQP.
    #[error("malformed frame from the broker: {0}")]
    Decode(#[from] crate::wire::amqp::DecodeError),
    /// The broker closed a channel or the connection.
    #[error("broker closed the {scope}: {code} {text} (after {method})")]
    Closed {
        /// `channel` or `connection`.
        scope: &'static str,
        /// The reply code, e.g. 406.
        code: u16,
        /// The reply text.
        text: String,
        /// The method that caused it, as `class.method` ids.
        method: String,
    },
    /// The broker did something this client does not expect.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The flags do not describe a runnable benchmark.
    #[error("invalid options: {0}")]
    Usage(String),
    /// A step did not complete in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl Error {
    /// An [`Error::Io`] that says what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

/// `warren bench`: flags for one run, or the `suite` subcommand.
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true, disable_help_flag = true)]
pub struct BenchArgs {
    /// `suite`: the standard scenarios against one or more brokers.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// The flags of one run (PerfTest's names and meanings).
    #[command(flatten)]
    pub run: RunOptions,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// Subcommands of `warren bench`.
#[derive(Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Run the standard suite against each `--uri`, interleaved, and print one table.
    Suite(SuiteArgs),
}

/// Runs `warren bench` to completion on its own tokio runtime.
///
/// # Errors
/// Any failure of the run (connection refused, a broker error, a file that cannot be
/// written); a suite reports scenario failures in its table instead.
pub fn main(args: BenchArgs) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    runtime.block_on(async move {
        match args.command {
            Some(BenchCommand::Suite(suite)) => suite::run(&suite).await,
            None => run::run_cli(&args.run).await.map(|_| ()),
        }
    })
}
