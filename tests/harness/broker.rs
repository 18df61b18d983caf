//! Runs the real `warren serve` binary on 127.0.0.1 with ports it picks itself (port 0)
//! and a temporary data directory; reads the bound addresses from `--ports-file`; kills the
//! process on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running broker process.
pub struct Broker {
    child: Child,
    pub data_dir: PathBuf,
    pub ports: HashMap<String, String>,
    log: Arc<Mutex<Vec<String>>>,
    _temp: Option<tempfile::TempDir>,
}

/// How long a broker may take to start or stop.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

impl Broker {
    /// Starts `warren serve` with a fresh data directory and `extra` flags.
    pub fn start(extra: &[&str]) -> Broker {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut broker = Broker::start_in(&data_dir, extra);
        broker._temp = Some(temp);
        broker
    }

    /// Starts `warren serve` on an existing data directory (for restarts).
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Broker {
        Broker::start_limited(data_dir, extra, None)
    }

    /// [`Broker::start_in`], with the process's open-descriptor limit (`RLIMIT_NOFILE`, soft
    /// and hard) set to `descriptors_max` when given.
    pub fn start_limited(data_dir: &Path, extra: &[&str], descriptors_max: Option<u64>) -> Broker {
        let ports_file = data_dir.with_extension("ports");
        let _ = std::fs::remove_file(&ports_file);
        let mut command = Command::new(env!("CARGO_BIN_EXE_warren"));
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--ports-file")
            .arg(&ports_file)
            .args(["--amqp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("WARREN_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(max) = descriptors_max {
            let limit = libc::rlimit { rlim_cur: max, rlim_max: max };
            // SAFETY: runs in the forked child before exec, and calls only setrlimit, which is
            // async-signal-safe, on a limit value owned by the closure.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command.spawn().expect("spawn warren");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        let deadline = Instant::now() + STARTUP_DEADLINE;
        let ports = loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file) {
                if text.ends_with('\n') || text.is_empty() {
                    break parse_ports(&text);
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("warren exited at start with {status}: {:?}", log.lock().expect("log lock"));
            }
            assert!(Instant::now() < deadline, "warren did not start: {:?}", log.lock().expect("log lock"));
            std::thread::sleep(Duration::from_millis(20));
        };
        Broker { child, data_dir: data_dir.to_path_buf(), ports, log, _temp: None }
    }

    /// The address bound for `name` (`amqp` or `http`).
    pub fn addr(&self, name: &str) -> &str {
        self.ports
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} port in {:?}", self.ports))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stderr lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits until a stderr line contains `needle`.
    pub fn wait_for_log(&self, needle: &str, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if self.log_lines().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: plain FFI call with a pid of a child this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait(STARTUP_DEADLINE)
    }

    /// SIGKILLs the process and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < until, "warren did not stop: {:?}", self.log_lines());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_ports(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}
