//! One benchmark run: declare the topology, connect consumers then producers, start the
//! clock, report every interval, stop, drain what is in flight, and summarise.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::limits::{
    BENCH_ACTOR_STOP_TIMEOUT_MS, BENCH_CONNECT_PARALLELISM_MAX, BENCH_DRAIN_IDLE_MS, BENCH_TICK_MS,
};
use crate::wire::amqp::{ExchangeDeclare, Method, QueueDelete, ShortStr};

use super::actors::{phase, queue_bind, queue_declare, Consumer, ConsumerSpec, Producer, ProducerSpec};
use super::client::Conn;
use super::options::{Plan, RunOptions, Source, Target};
use super::stats::{
    interval_line, summary_text, to_csv, to_json, Collector, IntervalRow, Stats, Summary, Totals,
};
use super::uri::AmqpUri;
use super::{plot, Error};

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Rates, latencies and counts.
    pub summary: Summary,
    /// One row per reporting interval.
    pub rows: Vec<IntervalRow>,
}

/// `warren bench` without a subcommand: run, print, write the requested files.
pub(crate) async fn run_cli(opts: &RunOptions) -> Result<Report, Error> {
    let report = execute(opts, true).await?;
    let confirms = opts.confirm.is_some_and(|c| c >= 0);
    print!("{}", summary_text(&report.summary, confirms));
    let write = |path: &std::path::Path, text: String| {
        std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    };
    if let Some(path) = &opts.json {
        write(path, to_json(&report.summary, &report.rows))?;
    }
    if let Some(path) = &opts.csv {
        write(path, to_csv(&report.summary, &report.rows))?;
    }
    if let Some(path) = &opts.plot {
        write(path, plot::svg(&report.summary, &report.rows))?;
    }
    Ok(report)
}

/// A spawned actor.
struct Actor {
    producer: bool,
    /// Taken once the task has finished and its result was read.
    handle: Option<JoinHandle<Result<(), Error>>>,
}

impl Actor {
    fn finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

/// Runs the benchmark `opts` describes. With `verbose`, prints a line per interval (and a
/// progress line on a terminal).
///
/// # Errors
/// A set-up failure (connection, declaration refused) or an actor failing mid-run.
pub(crate) async fn execute(opts: &RunOptions, verbose: bool) -> Result<Report, Error> {
    let uri = AmqpUri::parse(&opts.uri)?;
    let plan = opts.plan()?;
    let mut setup = Conn::connect(&uri, &format!("{}-setup", opts.id)).await?;
    setup.open_channel(1).await?;
    declare(&mut setup, &plan).await?;

    let stats = Stats::new(plan.targets.len() + plan.sources.len());
    let (phase_tx, phase_rx) = watch::channel(phase::SETUP);
    // Consumers first, so that nothing published is lost to a missing binding.
    let consumers = connect_consumers(&uri, opts, &plan).await?;
    let producers = connect_producers(&uri, opts, &plan).await?;
    let mut actors = spawn(consumers, producers, &stats, &phase_rx);
    let result = drive(opts, &plan, &stats, &phase_tx, &mut actors, verbose).await;
    let _ = phase_tx.send(phase::EXIT);
    let stopped = stop(actors).await;
    if opts.delete_queues {
        delete_queues(&mut setup, &plan).await;
    }
    setup.close().await;
    // An error of the run itself comes first; an actor's error at the end comes second.
    let report = result?;
    stopped.map(|()| report)
}

/// What consumer `index` does, from the flags and the plan.
fn consumer_spec(opts: &RunOptions, plan: &Plan, index: usize, sources: &[Source]) -> ConsumerSpec {
    ConsumerSpec {
        name: format!("{}-consumer-{index}", opts.id),
        sources: sources.to_vec(),
        exchange: opts.exchange.clone(),
        autoack: opts.autoack,
        ack_every: if opts.qos > 0 {
            opts.multi_ack_every.min(u32::from(opts.qos))
        } else {
            opts.multi_ack_every
        },
        qos: opts.qos,
        rate: opts.consumer_rate.filter(|r| *r > 0.0),
        cmessages: opts.cmessages,
        consume_args: plan.consume_args.clone(),
    }
}

/// What producer `index` does, from the flags and the plan.
fn producer_spec(opts: &RunOptions, plan: &Plan, index: usize, targets: &[Target]) -> ProducerSpec {
    ProducerSpec {
        name: format!("{}-producer-{index}", opts.id),
        targets: targets.to_vec(),
        body_bytes: opts.size,
        rate: opts.rate.filter(|r| *r > 0.0),
        confirm_window: opts.confirm.and_then(|c| u64::try_from(c).ok()).map(|c| c.max(1)),
        pmessages: opts.pmessages,
        persistent: plan.persistent,
        mandatory: plan.mandatory,
    }
}

/// Connects every consumer and registers its consumers, at most
/// [`BENCH_CONNECT_PARALLELISM_MAX`] at a time.
async fn connect_consumers(uri: &AmqpUri, opts: &RunOptions, plan: &Plan) -> Result<Vec<Consumer>, Error> {
    let connects = plan
        .sources
        .iter()
        .enumerate()
        .map(|(i, sources)| Consumer::connect(uri, consumer_spec(opts, plan, i, sources)));
    futures::stream::iter(connects).buffered(BENCH_CONNECT_PARALLELISM_MAX).try_collect().await
}

/// Connects every producer and opens its channels, at most
/// [`BENCH_CONNECT_PARALLELISM_MAX`] at a time.
async fn connect_producers(uri: &AmqpUri, opts: &RunOptions, plan: &Plan) -> Result<Vec<Producer>, Error> {
    let connects = plan
        .targets
        .iter()
        .enumerate()
        .map(|(i, targets)| Producer::connect(uri, producer_spec(opts, plan, i, targets)));
    futures::stream::iter(connects).buffered(BENCH_CONNECT_PARALLELISM_MAX).try_collect().await
}

/// Starts a task per actor: consumers take the first shards, producers the ones after.
fn spawn(
    consumers: Vec<Consumer>,
    producers: Vec<Producer>,
    stats: &Stats,
    phase_rx: &watch::Receiver<u8>,
) -> Vec<Actor> {
    let mut actors = Vec::with_capacity(consumers.len() + producers.len());
    for (i, c) in consumers.into_iter().enumerate() {
        let handle = tokio::spawn(c.run(stats.shard(i), stats.clock, phase_rx.clone()));
        actors.push(Actor { producer: false, handle: Some(handle) });
    }
    let offset = actors.len();
    for (i, p) in producers.into_iter().enumerate() {
        let handle = tokio::spawn(p.run(stats.shard(offset + i), stats.clock, phase_rx.clone()));
        actors.push(Actor { producer: true, handle: Some(handle) });
    }
    actors
}

/// Waits for every actor told to exit, each for at most [`BENCH_ACTOR_STOP_TIMEOUT_MS`];
/// returns the first error among them.
async fn stop(actors: Vec<Actor>) -> Result<(), Error> {
    let mut first_error = None;
    for handle in actors.into_iter().filter_map(|a| a.handle) {
        match tokio::time::timeout(Duration::from_millis(BENCH_ACTOR_STOP_TIMEOUT_MS), handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                first_error.get_or_insert(e);
            }
            Ok(Err(join)) => {
                first_error.get_or_insert(Error::Protocol(format!("an actor panicked: {join}")));
            }
            Err(_) => {
                first_error.get_or_insert(Error::Timeout("an actor did not stop".into()));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Deletes the named queues of the plan, ignoring failures (`--delete-queues`).
async fn delete_queues(setup: &mut Conn, plan: &Plan) {
    for (queue, _) in &plan.queues {
        let delete = QueueDelete {
            queue: ShortStr::try_from(queue.as_str()).unwrap_or_default(),
            ..Default::default()
        };
        let _ = setup.rpc(1, delete).await;
    }
}

/// Declares the exchange, the named queues and their bindings on the set-up connection.
async fn declare(setup: &mut Conn, plan: &Plan) -> Result<(), Error> {
    if let Some((name, kind)) = &plan.declare_exchange {
        let declare = ExchangeDeclare {
            exchange: ShortStr::try_from(name.as_str())
                .map_err(|_| Error::Usage("exchange name too long".into()))?,
            kind: ShortStr::try_from(kind.as_str())
                .map_err(|_| Error::Usage("exchange type too long".into()))?,
            ..Default::default()
        };
        setup.rpc(1, declare).await?;
    }
    for (queue, key) in &plan.queues {
        let declare = queue_declare(queue, plan.durable, plan.auto_delete, plan.queue_args.clone())?;
        match setup.rpc(1, declare).await? {
            Method::QueueDeclareOk(_) => {}
            other => return Err(Error::Protocol(format!("expected queue.declare-ok, got {}", other.name()))),
        }
        if let Some(key) = key.as_ref().filter(|_| !plan.exchange.is_empty()) {
            setup.rpc(1, queue_bind(queue, &plan.exchange, key)?).await?;
        }
    }
    Ok(())
}

/// The clock: reports intervals, decides when the window ends, stops, drains.
async fn drive(
    opts: &RunOptions,
    plan: &Plan,
    stats: &Arc<Stats>,
    phase_tx: &watch::Sender<u8>,
    actors: &mut [Actor],
    verbose: bool,
) -> Result<Report, Error> {
    let tty = verbose && std::io::stdout().is_terminal();
    let interval = Duration::from_secs_f64(opts.interval);
    let tick = Duration::from_millis(BENCH_TICK_MS);
    let time_limit = opts.time.filter(|t| *t > 0.0).map(Duration::from_secs_f64);
    let producers_bounded = opts.pmessages > 0;
    let consumers_bounded = opts.cmessages > 0;
    let consuming = !plan.sources.is_empty();
    let expected = |t: &Totals| plan.fanout.map(|f| t.sent.saturating_sub(t.returned) * f);
    let mut collector = Collector::new(Arc::clone(stats));
    let _ = phase_tx.send(phase::GO);
    let start = Instant::now();
    let mut next_row = start + interval;
    let mut idle_since = (Instant::now(), 0u64);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let window_end = loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_row.min(Instant::now() + tick)) => {}
            _ = &mut ctrl_c => break Instant::now(),
        }
        check_failures(actors).await?;
        let now = Instant::now();
        if now >= next_row {
            let row = collector.sample((now - start).as_secs_f64());
            if verbose {
                print_row(opts, row, tty);
            }
            next_row += interval;
        } else if tty {
            print_progress((now - start).as_secs_f64(), &stats.totals());
        }
        let producers_done = actors.iter().filter(|a| a.producer).all(Actor::finished);
        let consumers_done = actors.iter().filter(|a| !a.producer).all(Actor::finished);
        if time_limit.is_some_and(|limit| now - start >= limit) || (producers_done && consumers_done) {
            break now;
        }
        if time_limit.is_none() && producers_bounded && producers_done && !consumers_bounded {
            let t = stats.totals();
            if t.received != idle_since.1 {
                idle_since = (now, t.received);
            }
            if expected(&t).is_some_and(|e| t.received >= e)
                || now - idle_since.0 >= Duration::from_millis(BENCH_DRAIN_IDLE_MS)
            {
                break now;
            }
        }
    };
    let window = stats.totals();
    let duration_s = (window_end - start).as_secs_f64();
    if (window_end - start).as_secs_f64() - collector.rows.last().map_or(0.0, |r| r.time_s)
        > opts.interval * 0.1
    {
        let row = collector.sample(duration_s);
        if verbose {
            print_row(opts, row, tty);
        }
    }
    clear_progress(tty);
    let _ = phase_tx.send(phase::STOP);
    drain(opts, stats, actors, consuming, &expected).await?;
    let mut summary = collector.summary(&opts.id, opts.size, duration_s, window, consuming);
    summary.expected_deliveries = expected(&summary.total);
    Ok(Report { summary, rows: std::mem::take(&mut collector.rows) })
}

/// After the window: waits for producers to settle their confirms and for consumers to
/// receive what is in flight (all expected deliveries, or nothing new for a while).
async fn drain(
    opts: &RunOptions,
    stats: &Stats,
    actors: &mut [Actor],
    consuming: bool,
    expected: &dyn Fn(&Totals) -> Option<u64>,
) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs_f64(opts.drain_timeout.max(0.0));
    let mut idle_since = (Instant::now(), u64::MAX);
    loop {
        tokio::time::sleep(Duration::from_millis(BENCH_TICK_MS)).await;
        check_failures(actors).await?;
        let now = Instant::now();
        let t = stats.totals();
        let producers_done = actors.iter().filter(|a| a.producer).all(Actor::finished);
        let consumers_done = actors.iter().filter(|a| !a.producer).all(Actor::finished);
        if t.received != idle_since.1 {
            idle_since = (now, t.received);
        }
        let received_all = !consuming
            || consumers_done
            || expected(&t).is_some_and(|e| t.received >= e)
            || now - idle_since.0 >= Duration::from_millis(BENCH_DRAIN_IDLE_MS);
        if (producers_done && received_all) || now >= deadline {
            return Ok(());
        }
    }
}

/// Returns the first error of a finished actor.
async fn check_failures(actors: &mut [Actor]) -> Result<(), Error> {
    for actor in actors.iter_mut() {
        if let Some(handle) = actor.handle.take_if(|h| h.is_finished()) {
            match handle.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(join) => return Err(Error::Protocol(format!("an actor panicked: {join}"))),
            }
        }
    }
    Ok(())
}

/// Prints an interval row in PerfTest's shape, in place of the progress line if there is one.
fn print_row(opts: &RunOptions, row: &IntervalRow, tty: bool) {
    clear_progress(tty);
    println!("{}", interval_line(&opts.id, row, opts.confirm.is_some_and(|c| c >= 0)));
}

/// Rewrites the progress line shown on a terminal between interval rows.
fn print_progress(elapsed_s: f64, totals: &Totals) {
    print!("\r{elapsed_s:.1} s: sent {} received {} ", totals.sent, totals.received);
    let _ = std::io::stdout().flush();
}

/// Erases the progress line, if one is shown.
fn clear_progress(tty: bool) {
    if tty {
        print!("\r\x1b[2K");
        let _ = std::io::stdout().flush();
    }
}
