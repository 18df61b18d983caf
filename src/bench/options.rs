//! The flags of one run, with RabbitMQ PerfTest's names and meanings, and the `Plan` they
//! describe: which exchange and queues to declare, what each producer channel publishes to
//! and what each consumer channel consumes from.

use std::ffi::OsString;
use std::path::PathBuf;

use bytes::Bytes;
use clap::Args;

use crate::wire::amqp::{FieldTable, FieldValue, ShortStr};

use super::Error;

/// PerfTest's multi-letter short flags, which clap cannot parse, and their long forms.
const MULTI_LETTER_FLAGS: &[(&str, &str)] = &[
    ("-sq", "--stream-queue"),
    ("-sco", "--stream-consumer-offset"),
    ("-mlb", "--max-length-bytes"),
    ("-ma", "--max-age"),
    ("-qa", "--queue-args"),
    ("-ad", "--auto-delete"),
    ("-qp", "--queue-pattern"),
    ("-qpf", "--queue-pattern-from"),
    ("-qpt", "--queue-pattern-to"),
];

/// Rewrites PerfTest's multi-letter short flags (`-sq`, `-sco first`, `-mlb=1gb`) into their
/// long forms when the command is `warren bench`, so that clap can parse them. Other
/// arguments pass through unchanged.
pub fn rewrite_argv(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).and_then(|a| a.to_str()) != Some("bench") {
        return args;
    }
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else { return arg };
            let (flag, value) = match text.split_once('=') {
                Some((f, v)) => (f, Some(v)),
                None => (text, None),
            };
            match MULTI_LETTER_FLAGS.iter().find(|(short, _)| *short == flag) {
                Some((_, long)) => match value {
                    Some(v) => OsString::from(format!("{long}={v}")),
                    None => OsString::from(*long),
                },
                None => arg,
            }
        })
        .collect()
}

/// The flags of one `warren bench` run. Counts and rates are per producer or per consumer,
/// as in PerfTest.
#[derive(Args, Debug, Clone)]
pub struct RunOptions {
    /// Broker URI, `amqp://user:pass@host:port/vhost` (`%2F` is `/`).
    #[arg(short = 'h', long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2F")]
    pub uri: String,
    /// Number of producers (one connection each).
    #[arg(short = 'x', long, default_value_t = 1)]
    pub producers: u32,
    /// Number of consumers (one connection each).
    #[arg(short = 'y', long, default_value_t = 1)]
    pub consumers: u32,
    /// Channels per producer connection.
    #[arg(short = 'X', long = "producer-channel-count", default_value_t = 1)]
    pub producer_channels: u16,
    /// Channels per consumer connection, each with one consumer.
    #[arg(short = 'Y', long = "consumer-channel-count", default_value_t = 1)]
    pub consumer_channels: u16,
    /// Message body size in bytes; the first 8 carry the send time.
    #[arg(short = 's', long, default_value_t = 12)]
    pub size: usize,
    /// Publishing rate limit per producer, messages per second (unlimited if absent or < 0).
    #[arg(short = 'r', long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Consuming rate limit per consumer, messages per second.
    #[arg(short = 'R', long = "consumer-rate", allow_negative_numbers = true)]
    pub consumer_rate: Option<f64>,
    /// Consume with automatic acknowledgement.
    #[arg(short = 'a', long)]
    pub autoack: bool,
    /// Acknowledge with `multiple` every N messages (0 or 1: each message).
    #[arg(short = 'A', long = "multi-ack-every", default_value_t = 0)]
    pub multi_ack_every: u32,
    /// Consumer prefetch count (0: unlimited).
    #[arg(short = 'q', long, default_value_t = 0)]
    pub qos: u16,
    /// Publisher confirms with at most this many unconfirmed messages per producer channel.
    #[arg(short = 'c', long, allow_negative_numbers = true)]
    pub confirm: Option<i64>,
    /// Message flag: `persistent` or `mandatory` (repeatable).
    #[arg(short = 'f', long = "flag")]
    pub flags: Vec<String>,
    /// Queue name (a server-named queue per consumer channel if absent).
    #[arg(short = 'u', long)]
    pub queue: Option<String>,
    /// Exchange name (`""` is the default exchange; `amq.*` are not declared).
    #[arg(short = 'e', long, default_value = "direct")]
    pub exchange: String,
    /// Exchange type.
    #[arg(short = 't', long = "type", default_value = "direct")]
    pub exchange_type: String,
    /// Routing key (a random one if absent).
    #[arg(short = 'k', long = "routing-key")]
    pub routing_key: Option<String>,
    /// Run time in seconds (unbounded if absent, then -C/-D end the run).
    #[arg(short = 'z', long)]
    pub time: Option<f64>,
    /// Messages each producer publishes, then stops (0: no limit).
    #[arg(short = 'C', long, default_value_t = 0)]
    pub pmessages: u64,
    /// Messages each consumer receives, then stops (0: no limit).
    #[arg(short = 'D', long, default_value_t = 0)]
    pub cmessages: u64,
    /// Reporting interval in seconds.
    #[arg(short = 'i', long, default_value_t = 1.0)]
    pub interval: f64,
    /// Queue arguments, `k=v,k2=v2` (integers become longs, `true`/`false` booleans).
    #[arg(long = "queue-args")]
    pub queue_args: Option<String>,
    /// Declare stream queues (`x-queue-type: stream`, durable).
    #[arg(long = "stream-queue")]
    pub stream_queue: bool,
    /// `x-stream-offset` of stream consumers: first, last, next, an offset, or a time
    /// interval such as `1h`.
    #[arg(long = "stream-consumer-offset")]
    pub stream_consumer_offset: Option<String>,
    /// `x-max-length-bytes` of the queue, e.g. `20gb` or `1000000`.
    #[arg(long = "max-length-bytes")]
    pub max_length_bytes: Option<String>,
    /// `x-max-age` of the queue: RabbitMQ's form (`1h`, `7D`) or ISO 8601 (`PT1H`).
    #[arg(long = "max-age")]
    pub max_age: Option<String>,
    /// Queue auto-delete (PerfTest's -ad; stream queues are never auto-delete).
    #[arg(long = "auto-delete", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_delete: bool,
    /// Queue name pattern with one `%d`, e.g. `perf-test-%d`, used with the two flags below.
    #[arg(long = "queue-pattern")]
    pub queue_pattern: Option<String>,
    /// First number of the queue pattern.
    #[arg(long = "queue-pattern-from", default_value_t = 1)]
    pub queue_pattern_from: u32,
    /// Last number of the queue pattern (inclusive).
    #[arg(long = "queue-pattern-to", default_value_t = 1)]
    pub queue_pattern_to: u32,
    /// Test id printed on every line.
    #[arg(long, default_value = "bench")]
    pub id: String,
    /// Write the interval rows and the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the interval rows and the summary as CSV to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Draw throughput and latency over time as SVG into this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// After the run, how long consumers may take to receive what is still in flight, seconds.
    #[arg(long = "drain-timeout", default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// Delete the declared named queues at the end (the suite does).
    #[arg(long = "delete-queues")]
    pub delete_queues: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        #[derive(clap::Parser)]
        #[command(disable_help_flag = true)]
        struct Wrapper {
            #[command(flatten)]
            run: RunOptions,
        }
        <Wrapper as clap::Parser>::try_parse_from(["bench"]).map(|w| w.run).expect("the defaults parse")
    }
}

/// Where one producer channel publishes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Exchange name.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
}

/// What one consumer channel consumes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A named queue declared during set-up.
    Named(String),
    /// Its own server-named exclusive queue bound with this routing key.
    Own {
        /// Binding key.
        routing_key: String,
    },
}

/// The resolved run: validated flags turned into names.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Exchange producers publish to and named queues are bound to (`""`: default).
    pub exchange: String,
    /// Exchange to declare (none for `""` and `amq.*`).
    pub declare_exchange: Option<(String, String)>,
    /// Named queues to declare, with their binding keys (none for the default exchange).
    pub queues: Vec<(String, Option<String>)>,
    /// Queue arguments.
    pub queue_args: FieldTable,
    /// Queue durability.
    pub durable: bool,
    /// Queue auto-delete.
    pub auto_delete: bool,
    /// Per producer, per channel: where to publish.
    pub targets: Vec<Vec<Target>>,
    /// Per consumer, per channel: where to consume.
    pub sources: Vec<Vec<Source>>,
    /// Consumer arguments (`x-stream-offset`).
    pub consume_args: FieldTable,
    /// Deliveries each publish leads to, if known (for draining).
    pub fanout: Option<u64>,
    /// Publish persistent messages.
    pub persistent: bool,
    /// Publish with `mandatory`.
    pub mandatory: bool,
}

/// How a plan's channels find their queues and routing keys.
struct Routing<'a> {
    /// The named queues; none when each consumer channel declares its own.
    names: &'a [String],
    /// The run's routing key (`-k`, or a random one).
    key: String,
    /// Producers publish to the default exchange, which routes by queue name.
    default_exchange: bool,
}

impl Routing<'_> {
    /// The key named queue `queue` is bound with and addressed by. With several named queues
    /// each is bound with its own name, so that producers can address them one by one (and a
    /// fanout exchange reaches them all anyway).
    fn key_of(&self, queue: &str) -> String {
        if self.names.len() > 1 || self.default_exchange {
            queue.to_owned()
        } else {
            self.key.clone()
        }
    }

    /// The named queue of the `n`th producer or consumer channel, round-robin; none when
    /// there are no named queues.
    fn queue(&self, n: usize) -> Option<&String> {
        self.names.get(n % self.names.len().max(1))
    }

    /// The named queues to declare, with their binding keys (none for the default exchange).
    fn queues(&self) -> Vec<(String, Option<String>)> {
        self.names.iter().map(|q| (q.clone(), (!self.default_exchange).then(|| self.key_of(q)))).collect()
    }
}

impl RunOptions {
    /// Checks the flags and resolves them into a plan.
    pub(crate) fn plan(&self) -> Result<Plan, Error> {
        self.check()?;
        let names = self.queue_names()?;
        let default_exchange = self.exchange.is_empty();
        if default_exchange && names.is_empty() && self.producers > 0 {
            return Err(Error::Usage("the default exchange needs -u or --queue-pattern".into()));
        }
        let routing = Routing {
            names: &names,
            key: self.routing_key.clone().unwrap_or_else(random_key),
            default_exchange,
        };
        let persistent = self.has_flag("persistent");
        Ok(Plan {
            exchange: self.exchange.clone(),
            declare_exchange: (!default_exchange && !self.exchange.starts_with("amq."))
                .then(|| (self.exchange.clone(), self.exchange_type.clone())),
            queues: routing.queues(),
            queue_args: self.queue_arguments()?,
            durable: persistent || self.stream_queue,
            auto_delete: self.auto_delete && !self.stream_queue,
            targets: self.targets(&routing),
            sources: self.sources(&routing),
            consume_args: self.consume_arguments(),
            fanout: self.fanout(names.len()),
            persistent,
            mandatory: self.has_flag("mandatory"),
        })
    }

    /// Refuses unknown `-f` flags, channel counts of zero and a non-positive interval.
    fn check(&self) -> Result<(), Error> {
        for flag in &self.flags {
            if !matches!(flag.to_ascii_lowercase().as_str(), "persistent" | "mandatory") {
                return Err(Error::Usage(format!("unknown -f flag {flag:?}: use persistent or mandatory")));
            }
        }
        if self.producer_channels == 0 || self.consumer_channels == 0 {
            return Err(Error::Usage("-X and -Y must be at least 1".into()));
        }
        if self.interval <= 0.0 {
            return Err(Error::Usage("-i must be positive".into()));
        }
        Ok(())
    }

    /// Whether `-f flag` was given, in any case.
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// The named queues: the `--queue-pattern` range, the `-u` queue, or none.
    fn queue_names(&self) -> Result<Vec<String>, Error> {
        match (&self.queue_pattern, &self.queue) {
            (Some(pattern), _) => {
                if !pattern.contains("%d") || self.queue_pattern_to < self.queue_pattern_from {
                    return Err(Error::Usage("--queue-pattern needs %d and from <= to".into()));
                }
                Ok((self.queue_pattern_from..=self.queue_pattern_to)
                    .map(|n| pattern.replace("%d", &n.to_string()))
                    .collect())
            }
            (None, Some(q)) => Ok(vec![q.clone()]),
            (None, None) => Ok(vec![]),
        }
    }

    /// Per producer, per channel: the named queues round-robin, or the run's routing key.
    fn targets(&self, routing: &Routing<'_>) -> Vec<Vec<Target>> {
        let mut channel = 0;
        (0..self.producers)
            .map(|_| {
                (0..self.producer_channels)
                    .map(|_| {
                        let queue = routing.queue(channel);
                        channel += 1;
                        Target {
                            exchange: self.exchange.clone(),
                            routing_key: queue.map_or_else(|| routing.key.clone(), |q| routing.key_of(q)),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Per consumer, per channel: the named queues round-robin, or a queue of its own.
    fn sources(&self, routing: &Routing<'_>) -> Vec<Vec<Source>> {
        let mut channel = 0;
        (0..self.consumers)
            .map(|_| {
                (0..self.consumer_channels)
                    .map(|_| {
                        let queue = routing.queue(channel);
                        channel += 1;
                        match queue {
                            Some(q) => Source::Named(q.clone()),
                            None => Source::Own { routing_key: routing.key.clone() },
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Deliveries each publish leads to, when the topology makes that known.
    fn fanout(&self, named_queues: usize) -> Option<u64> {
        let consumer_channels = u64::from(self.consumers) * u64::from(self.consumer_channels);
        if consumer_channels == 0 {
            return Some(0);
        }
        match (named_queues, self.exchange_type.as_str()) {
            (0, "direct" | "fanout") => Some(consumer_channels),
            (1, _) => Some(1),
            (n, "fanout") => Some(n as u64),
            (_, "direct") => Some(1),
            _ => None,
        }
    }

    fn queue_arguments(&self) -> Result<FieldTable, Error> {
        let mut t = FieldTable::new();
        let mut put = |k: &str, v: FieldValue| -> Result<(), Error> {
            let key = ShortStr::try_from(k.to_owned())
                .map_err(|_| Error::Usage(format!("argument name {k} too long")))?;
            t.insert(key, v);
            Ok(())
        };
        if self.stream_queue {
            put("x-queue-type", long_str("stream"))?;
        }
        if let Some(bytes) = &self.max_length_bytes {
            put("x-max-length-bytes", FieldValue::I64(parse_bytes(bytes)?))?;
        }
        if let Some(age) = &self.max_age {
            put("x-max-age", long_str(&rabbit_age(age)?))?;
        }
        for pair in self.queue_args.iter().flat_map(|a| a.split(',')).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("--queue-args: {pair:?} is not k=v")))?;
            let value = match (v.parse::<i64>(), v) {
                (Ok(n), _) => FieldValue::I64(n),
                (_, "true") => FieldValue::Bool(true),
                (_, "false") => FieldValue::Bool(false),
                _ => long_str(v),
            };
            put(k, value)?;
        }
        Ok(t)
    }

    fn consume_arguments(&self) -> FieldTable {
        let mut t = FieldTable::new();
        if let Some(offset) = &self.stream_consumer_offset {
            let value = match offset.parse::<i64>() {
                Ok(n) => FieldValue::I64(n),
                Err(_) => long_str(offset),
            };
            t.insert(ShortStr::from_static("x-stream-offset"), value);
        }
        t
    }
}

fn long_str(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::from(s.to_owned()))
}

fn random_key() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("warren-bench-{}-{nanos:x}", std::process::id())
}

/// `20gb`, `500mb`, `1000` → bytes (decimal units, as PerfTest).
fn parse_bytes(s: &str) -> Result<i64, Error> {
    let lower = s.trim().to_ascii_lowercase();
    let (digits, unit) = lower.split_at(lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len()));
    let n: i64 = digits.parse().map_err(|_| Error::Usage(format!("bad byte count {s:?}")))?;
    let mult = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        _ => return Err(Error::Usage(format!("bad byte unit in {s:?}"))),
    };
    n.checked_mul(mult).ok_or_else(|| Error::Usage(format!("{s:?} is too large")))
}

/// An ISO 8601 duration (`PT1H`, `P7D`) in whole seconds as RabbitMQ's `Ns`; other values
/// (`1h`, `7D`) pass through as RabbitMQ already understands them.
fn rabbit_age(s: &str) -> Result<String, Error> {
    let Some(rest) = s.strip_prefix('P').or_else(|| s.strip_prefix('p')) else { return Ok(s.to_owned()) };
    let mut seconds = 0u64;
    let mut number = String::new();
    let mut in_time = false;
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            'T' => in_time = true,
            d if d.is_ascii_digit() => number.push(d),
            unit => {
                let n: u64 = number.parse().map_err(|_| Error::Usage(format!("bad duration {s:?}")))?;
                number.clear();
                seconds += n * match (unit, in_time) {
                    ('D', false) => 86_400,
                    ('W', false) => 7 * 86_400,
                    ('H', true) => 3_600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return Err(Error::Usage(format!("unsupported duration {s:?}"))),
                };
            }
        }
    }
    Ok(format!("{seconds}s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_letter_flags_become_long_flags() {
        let argv = ["warren", "bench", "-sq", "-sco=first", "-s", "16", "-mlb", "1gb"].map(OsString::from);
        let out: Vec<String> =
            rewrite_argv(argv).into_iter().map(|a| a.into_string().expect("utf8")).collect();
        assert_eq!(
            out,
            [
                "warren",
                "bench",
                "--stream-queue",
                "--stream-consumer-offset=first",
                "-s",
                "16",
                "--max-length-bytes",
                "1gb"
            ]
        );
        let serve = ["warren", "serve", "-sq"].map(OsString::from);
        assert_eq!(rewrite_argv(serve.clone()), serve.to_vec());
    }

    #[test]
    fn sizes_and_ages() {
        assert_eq!(parse_bytes("20gb").ok(), Some(20_000_000_000));
        assert_eq!(parse_bytes("1234").ok(), Some(1234));
        assert_eq!(rabbit_age("PT1H").ok().as_deref(), Some("3600s"));
        assert_eq!(rabbit_age("7D").ok().as_deref(), Some("7D"));
    }

    #[test]
    fn a_queue_pattern_spreads_producers_and_consumers() {
        let o = RunOptions {
            queue_pattern: Some("q-%d".into()),
            queue_pattern_to: 3,
            producers: 2,
            consumers: 3,
            ..RunOptions::default()
        };
        let plan = o.plan().expect("valid");
        assert_eq!(plan.queues.len(), 3);
        assert_eq!(plan.targets[1][0].routing_key, "q-2");
        assert!(matches!(&plan.sources[2][0], Source::Named(q) if q == "q-3"));
        assert_eq!(plan.fanout, Some(1));
    }
}
