//! The `warren` binary: parses flags, sets up tracing to stderr and hands over to the
//! server. The only user of anyhow besides tests and tools.

use clap::{Parser, Subcommand};
use warren::config::{Config, ServeArgs};

#[derive(Parser)]
#[command(name = "warren", version, about = "An append-log streaming message broker that speaks AMQP 0-9-1")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

// Parsed once at start-up: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the broker (the default).
    Serve(ServeArgs),
    /// Load-test an AMQP 0-9-1 broker (PerfTest's flags), or run the standard suite.
    Bench(warren::bench::BenchArgs),
    /// rabbitmqctl's everyday commands, through the management HTTP API of Warren or RabbitMQ.
    Ctl(warren::ctl::CtlArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG").unwrap_or_else(|_| "info".into()),
        )
        .init();
    let argv = warren::bench::rewrite_argv(std::env::args_os());
    let is_ctl = argv.get(1).is_some_and(|arg| arg == "ctl");
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        // rabbitmqctl exits with 64 (EX_USAGE) on a bad command line; clap's own code is 2.
        Err(error) if is_ctl && error.use_stderr() => {
            let _ = error.print();
            std::process::exit(64)
        }
        Err(error) => error.exit(),
    };
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        Some(Command::Bench(args)) => return Ok(warren::bench::main(args)?),
        Some(Command::Ctl(args)) => std::process::exit(warren::ctl::main(args)),
        None => ServeArgs::default(),
    };
    let config = Config::load(&args)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.worker_threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        let server = warren::server::Server::start(config)?;
        server.run(warren::server::shutdown::signal()).await
    })
}
