//! Third-party AMQP 0-9-1 clients (pika, kombu, amqplib, amqp-tools) run as child processes
//! against a broker: Warren by default, or any broker named by `WARREN_TEST_AMQP_URL`
//! (that is how the client scripts are checked against RabbitMQ).
//!
//! The clients are installed by `tools/clients/install.sh`, which `tools/test` runs before
//! `cargo test`: a Python venv at `.venv` (pika, kombu), `tools/clients/node/node_modules`
//! (amqplib) and Debian's amqp-tools.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::harness::broker::Broker;

/// The environment variable naming an already running broker to test instead of Warren.
pub const URL_VAR: &str = "WARREN_TEST_AMQP_URL";

/// How long one client run may take before it is killed. The scripts stop themselves after
/// 20 s; this is the backstop.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

/// A broker for client tests: its AMQP URL, and the Warren process behind it (if this test
/// started one), kept alive as long as this guard lives.
pub struct AmqpBroker {
    url: String,
    warren: Option<Broker>,
}

impl AmqpBroker {
    /// The AMQP URL, like `amqp://guest:guest@127.0.0.1:45123/%2F`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every stderr line of the Warren process so far (empty for an external broker).
    pub fn log_lines(&self) -> Vec<String> {
        self.warren.as_ref().map(Broker::log_lines).unwrap_or_default()
    }

    /// The last stderr lines of the Warren process, if this test started one.
    fn log_tail(&self) -> String {
        match &self.warren {
            None => format!("(external broker from {URL_VAR})"),
            Some(broker) => {
                let lines = broker.log_lines();
                let start = lines.len().saturating_sub(40);
                format!("warren's last log lines:\n{}", lines[start..].join("\n"))
            }
        }
    }
}

/// The broker to run clients against: `WARREN_TEST_AMQP_URL` if set, else a fresh Warren
/// (`--storage memory`) reached as guest/guest on the default vhost.
pub fn amqp_url() -> AmqpBroker {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => AmqpBroker { url: url.trim().to_owned(), warren: None },
        _ => {
            let broker = Broker::start(&["--storage", "memory"]);
            let url = format!("amqp://guest:guest@{}/%2F", broker.addr("amqp"));
            AmqpBroker { url, warren: Some(broker) }
        }
    }
}

/// A fresh Warren started with `flags` (always Warren: the flags are Warren's own).
pub fn warren_with(flags: &[&str]) -> AmqpBroker {
    let broker = Broker::start(flags);
    let url = format!("amqp://guest:guest@{}/%2F", broker.addr("amqp"));
    AmqpBroker { url, warren: Some(broker) }
}

/// Warren started on an existing data directory with `flags` (for restarts).
pub fn warren_in(data_dir: &Path, flags: &[&str]) -> AmqpBroker {
    let broker = Broker::start_in(data_dir, flags);
    let url = format!("amqp://guest:guest@{}/%2F", broker.addr("amqp"));
    AmqpBroker { url, warren: Some(broker) }
}

impl AmqpBroker {
    /// Stops the Warren behind this guard with SIGTERM and checks it exits cleanly.
    pub fn stop(self) {
        if let Some(broker) = self.warren {
            let status = broker.terminate();
            assert!(status.success(), "warren exited with {status}");
        }
    }
}

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `tools/clients`.
pub fn clients_dir() -> PathBuf {
    root().join("tools").join("clients")
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is missing ({}): run tools/clients/install.sh (tools/test runs it before cargo test)",
        path.display()
    );
}

/// What a client printed and how it exited.
pub struct ClientOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` with `stdin` as its standard input, killing it after `deadline`; panics
/// if it cannot be started or does not finish in time.
pub fn run_client(command: &mut Command, stdin: &[u8], deadline: Duration) -> ClientOutput {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // A client that exits without reading its input is not an error here.
        let _ = input.write_all(&stdin);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let stdout = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = out.read_to_end(&mut text);
        text
    });
    let stderr = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = err.read_to_end(&mut text);
        text
    });
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for client") {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            panic!(
                "{shown} did not finish within {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout.join().unwrap_or_default()),
                String::from_utf8_lossy(&stderr.join().unwrap_or_default()),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    ClientOutput {
        status,
        stdout: String::from_utf8_lossy(&stdout.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned(),
    }
}

/// Panics, showing everything useful, unless `output` is a successful exit.
pub fn assert_success(broker: &AmqpBroker, what: &str, output: &ClientOutput) {
    assert!(
        output.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}\n{}",
        output.status,
        output.stdout,
        output.stderr,
        broker.log_tail()
    );
}

/// Runs `tools/clients/python/<script>` with the venv's interpreter and the broker's URL;
/// panics unless it exits 0. Returns its output.
pub fn run_python(broker: &AmqpBroker, script: &str) -> ClientOutput {
    run_python_with(broker, script, &[])
}

/// Like [`run_python`], with extra environment variables for the script.
pub fn run_python_with(broker: &AmqpBroker, script: &str, env: &[(&str, &str)]) -> ClientOutput {
    let python = root().join(".venv").join("bin").join("python");
    require(&python, "the client venv");
    let path = clients_dir().join("python").join(script);
    require(&path, "the script");
    let output = run_client(
        Command::new(&python)
            .arg(&path)
            .arg(broker.url())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(env.iter().copied()),
        b"",
        CLIENT_DEADLINE,
    );
    assert_success(broker, script, &output);
    output
}

/// Runs `tools/clients/node/<script>` with `node` and the broker's URL; panics unless it
/// exits 0. Returns its output.
pub fn run_node(broker: &AmqpBroker, script: &str) -> ClientOutput {
    let dir = clients_dir().join("node");
    require(&dir.join("node_modules").join("amqplib"), "amqplib");
    let path = dir.join(script);
    require(&path, "the script");
    let output =
        run_client(Command::new("node").arg(&path).arg(broker.url()).current_dir(&dir), b"", CLIENT_DEADLINE);
    assert_success(broker, script, &output);
    output
}

/// Runs one amqp-tools program (`amqp-publish`, `amqp-consume`, ...) with `--url` and `args`,
/// feeding it `stdin`; does not check the exit status. Returns its output.
pub fn run_amqp_tool(broker: &AmqpBroker, tool: &str, args: &[&str], stdin: &[u8]) -> ClientOutput {
    run_client(Command::new(tool).arg(format!("--url={}", broker.url())).args(args), stdin, CLIENT_DEADLINE)
}

/// A name no other test or run uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("warren-test.{prefix}.{}.{nanos}.{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
