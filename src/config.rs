//! Configuration: command-line flags, `WARREN_*` environment variables and a TOML file
//! (`--config`), merged into one validated [`Config`]. A flag beats its environment
//! variable, which beats the file, which beats the default. Nothing else reads the
//! environment. `docs/configuration.md` lists every setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::limits::{
    DISK_FREE_LIMIT_BYTES_DEFAULT, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
    WORKER_THREADS_MAX,
};
use crate::log::storage::IoBackendChoice;
use crate::log::FsyncPolicy;

/// Where queues keep their logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageMode {
    /// Everything in RAM; nothing survives a restart.
    Memory,
    /// Segments in files under the data directory.
    Disk,
}

/// The `--fsync` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// Every append waits for `fdatasync` (shared by concurrent appends).
    Always,
    /// `fdatasync` in the background every `--fsync-interval`.
    Interval,
    /// Leave write-back to the operating system.
    Never,
}

/// The flags of `warren serve`; each also reads a `WARREN_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "WARREN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./warren-data].
    #[arg(long, env = "WARREN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where logs live [default: disk].
    #[arg(long, env = "WARREN_STORAGE", value_enum)]
    pub storage: Option<StorageMode>,
    /// When disc writes are synced [default: interval].
    #[arg(long, env = "WARREN_FSYNC", value_enum)]
    pub fsync: Option<FsyncMode>,
    /// Period of `--fsync interval`, e.g. `200ms`, `1s` [default: 200ms].
    #[arg(long, env = "WARREN_FSYNC_INTERVAL")]
    pub fsync_interval: Option<String>,
    /// Disc I/O backend [default: auto].
    #[arg(long, env = "WARREN_IO_BACKEND", value_enum)]
    pub io_backend: Option<IoBackendChoice>,
    /// Segment size in bytes, or with a unit (`64MiB`) [default: 268435456].
    #[arg(long, env = "WARREN_SEGMENT_BYTES", value_parser = parse_bytes_arg)]
    pub segment_bytes: Option<u64>,
    /// AMQP listener address [default: 127.0.0.1:5672].
    #[arg(long, env = "WARREN_AMQP_LISTEN")]
    pub amqp_listen: Option<SocketAddr>,
    /// Management HTTP listener address [default: 127.0.0.1:15672].
    #[arg(long, env = "WARREN_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Write the bound addresses, as `name=address` lines, to this file once listening.
    #[arg(long, env = "WARREN_PORTS_FILE")]
    pub ports_file: Option<PathBuf>,
    /// Period of the status log line (totals and stream consumer lag) [default: 30s].
    #[arg(long, env = "WARREN_STATUS_INTERVAL")]
    pub status_interval: Option<String>,
    /// Block publishers above this much broker memory, in bytes or with a unit (`256MiB`,
    /// `2GB`) [default: 40% of RAM].
    #[arg(long, env = "WARREN_MEMORY_LIMIT", value_parser = parse_bytes_arg)]
    pub memory_limit: Option<u64>,
    /// Block publishers below this much free disc space, in bytes or with a unit (`50MB`)
    /// [default: 50000000].
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT", value_parser = parse_bytes_arg)]
    pub disk_free_limit: Option<u64>,
    /// Threads that run connections and queues [default: one per CPU]. One thread has the
    /// lowest latency at low rates and the least throughput.
    #[arg(long, env = "WARREN_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Segment files kept open at once, all queues together [default: half the open-file
    /// limit, at least 64]. Files with unsynced writes may exceed it.
    #[arg(long, env = "WARREN_OPEN_FILES_MAX")]
    pub open_files_max: Option<usize>,
    /// The administrator created at the first start, with vhost `/` [default: guest]. Like
    /// RabbitMQ's, a user named `guest` may log in from loopback only.
    #[arg(long, env = "WARREN_DEFAULT_USER")]
    pub default_user: Option<String>,
    /// The first start's administrator's password [default: guest].
    #[arg(long, env = "WARREN_DEFAULT_PASS", hide_env_values = true)]
    pub default_pass: Option<String>,
}

/// The TOML file's shape: the same settings, all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    data_dir: Option<PathBuf>,
    storage: Option<StorageMode>,
    fsync: Option<FsyncMode>,
    fsync_interval: Option<String>,
    io_backend: Option<IoBackendChoice>,
    segment_bytes: Option<ByteCount>,
    amqp_listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    ports_file: Option<PathBuf>,
    memory_limit: Option<ByteCount>,
    disk_free_limit: Option<ByteCount>,
    status_interval: Option<String>,
    worker_threads: Option<usize>,
    open_files_max: Option<usize>,
    default_user: Option<String>,
    default_pass: Option<String>,
}

/// The validated configuration of a broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Memory or disc.
    pub storage: StorageMode,
    /// The durability policy of disc logs.
    pub fsync: FsyncPolicy,
    /// Disc I/O backend.
    pub io_backend: IoBackendChoice,
    /// Segment size in bytes.
    pub segment_bytes: u64,
    /// AMQP listener.
    pub amqp_listen: SocketAddr,
    /// Management HTTP listener.
    pub http_listen: SocketAddr,
    /// Where to write the bound addresses.
    pub ports_file: Option<PathBuf>,
    /// Memory alarm threshold (`None`: 40% of RAM).
    pub memory_limit_bytes: Option<u64>,
    /// Free-disk alarm threshold.
    pub disk_free_limit_bytes: u64,
    /// Period of the status log line.
    pub status_interval: Duration,
    /// Runtime worker threads (`None`: one per CPU).
    pub worker_threads: Option<usize>,
    /// Segment files kept open at once (`None`: a share of the open-file limit).
    pub open_files_max: Option<usize>,
    /// The administrator created at the first start.
    pub default_user: String,
    /// Their password.
    pub default_pass: String,
}

/// A setting that does not parse or is out of range.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("invalid configuration file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A value is out of range or malformed.
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// Why.
        reason: String,
    },
}

impl Config {
    /// Merges flags (and their environment variables) over the file over the defaults.
    ///
    /// # Errors
    /// An unreadable file or an invalid value.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let fsync = args.fsync.or(file.fsync).unwrap_or(FsyncMode::Interval);
        let interval_text =
            args.fsync_interval.clone().or(file.fsync_interval).unwrap_or_else(|| "200ms".into());
        let interval =
            parse_duration(&interval_text).filter(|d| !d.is_zero()).ok_or_else(|| ConfigError::Invalid {
                setting: "fsync-interval",
                reason: format!("'{interval_text}' is not a period like 200ms or 1s"),
            })?;
        let status_text =
            args.status_interval.clone().or(file.status_interval).unwrap_or_else(|| "30s".into());
        let status_interval =
            parse_duration(&status_text).filter(|d| !d.is_zero()).ok_or_else(|| ConfigError::Invalid {
                setting: "status-interval",
                reason: format!("'{status_text}' is not a period like 30s"),
            })?;
        let segment_bytes = match (args.segment_bytes, &file.segment_bytes) {
            (Some(bytes), _) => bytes,
            (None, Some(count)) => count.bytes("segment-bytes")?,
            (None, None) => SEGMENT_BYTES_DEFAULT,
        };
        let memory_limit_bytes = match (args.memory_limit, &file.memory_limit) {
            (Some(bytes), _) => Some(bytes),
            (None, Some(count)) => Some(count.bytes("memory-limit")?),
            (None, None) => None,
        };
        let disk_free_limit_bytes = match (args.disk_free_limit, &file.disk_free_limit) {
            (Some(bytes), _) => bytes,
            (None, Some(count)) => count.bytes("disk-free-limit")?,
            (None, None) => DISK_FREE_LIMIT_BYTES_DEFAULT,
        };
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&segment_bytes) {
            return Err(ConfigError::Invalid {
                setting: "segment-bytes",
                reason: format!("{segment_bytes} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}"),
            });
        }
        let worker_threads = args.worker_threads.or(file.worker_threads);
        if let Some(threads) = worker_threads.filter(|n| !(1..=WORKER_THREADS_MAX).contains(n)) {
            return Err(ConfigError::Invalid {
                setting: "worker-threads",
                reason: format!("{threads} is outside 1..={WORKER_THREADS_MAX}"),
            });
        }
        let open_files_max = args.open_files_max.or(file.open_files_max);
        if open_files_max == Some(0) {
            return Err(ConfigError::Invalid {
                setting: "open-files-max",
                reason: "at least one segment file must be allowed open".into(),
            });
        }
        Ok(Config {
            data_dir: args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("warren-data")),
            storage: args.storage.or(file.storage).unwrap_or(StorageMode::Disk),
            fsync: match fsync {
                FsyncMode::Always => FsyncPolicy::Always,
                FsyncMode::Interval => FsyncPolicy::Interval(interval),
                FsyncMode::Never => FsyncPolicy::Never,
            },
            io_backend: args.io_backend.or(file.io_backend).unwrap_or_default(),
            segment_bytes,
            amqp_listen: args.amqp_listen.or(file.amqp_listen).unwrap_or(([127, 0, 0, 1], 5672).into()),
            http_listen: args.http_listen.or(file.http_listen).unwrap_or(([127, 0, 0, 1], 15672).into()),
            ports_file: args.ports_file.clone().or(file.ports_file),
            memory_limit_bytes,
            disk_free_limit_bytes,
            status_interval,
            worker_threads,
            open_files_max,
            default_user: args.default_user.clone().or(file.default_user).unwrap_or_else(|| "guest".into()),
            default_pass: args.default_pass.clone().or(file.default_pass).unwrap_or_else(|| "guest".into()),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })
}

/// A size in the TOML file: a number of bytes, or a string with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ByteCount {
    Bytes(u64),
    Text(String),
}

impl ByteCount {
    fn bytes(&self, setting: &'static str) -> Result<u64, ConfigError> {
        match self {
            ByteCount::Bytes(bytes) => Ok(*bytes),
            ByteCount::Text(text) => parse_bytes(text).ok_or_else(|| ConfigError::Invalid {
                setting,
                reason: format!("'{text}' is not a size like 268435456, 256MiB or 2GB"),
            }),
        }
    }
}

/// Parses a size as RabbitMQ reads its memory and disc limits: a number of bytes, or a
/// number with a unit, `kB`, `MB`, `GB`, `TB` for powers of 1000 and `k`/`KiB`, `M`/`MiB`,
/// `G`/`GiB`, `T`/`TiB` for powers of 1024.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "k" | "K" | "KiB" | "kiB" | "Ki" => 1 << 10,
        "M" | "MiB" | "Mi" => 1 << 20,
        "G" | "GiB" | "Gi" => 1 << 30,
        "T" | "TiB" | "Ti" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(scale)
}

fn parse_bytes_arg(text: &str) -> Result<u64, String> {
    parse_bytes(text).ok_or_else(|| format!("'{text}' is not a size like 268435456, 256MiB or 2GB"))
}

/// Parses `250ms`, `2s`, `5m`, `1h` or `3d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(number.checked_mul(millis)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_rabbitmq_units() {
        assert_eq!(parse_bytes("268435456"), Some(268_435_456));
        assert_eq!(parse_bytes("256MiB"), Some(256 << 20));
        assert_eq!(parse_bytes("256M"), Some(256 << 20));
        assert_eq!(parse_bytes("50MB"), Some(50_000_000));
        assert_eq!(parse_bytes("2GB"), Some(2_000_000_000));
        assert_eq!(parse_bytes("1GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("8 kB"), Some(8_000));
        assert_eq!(parse_bytes("1.5GB"), None);
        assert_eq!(parse_bytes("MiB"), None);
        assert_eq!(parse_bytes("99999999999TB"), None);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("warren.toml");
        std::fs::write(
            &path,
            "memory-limit = \"256MiB\"\ndisk-free-limit = 1000\nsegment-bytes = \"1MiB\"\n",
        )
        .expect("write");
        let args = ServeArgs { config: Some(path.clone()), ..ServeArgs::default() };
        let config = Config::load(&args).expect("config");
        assert_eq!(config.memory_limit_bytes, Some(256 << 20));
        assert_eq!(config.disk_free_limit_bytes, 1000);
        assert_eq!(config.segment_bytes, 1 << 20);
        std::fs::write(&path, "memory-limit = \"lots\"\n").expect("write");
        assert!(Config::load(&args).is_err());
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("warren.toml");
        std::fs::write(&path, "storage = \"memory\"\nfsync = \"always\"\nsegment-bytes = 8192\n")
            .expect("write");
        let args = ServeArgs { config: Some(path), fsync: Some(FsyncMode::Never), ..ServeArgs::default() };
        let config = Config::load(&args).expect("valid");
        assert_eq!(config.storage, StorageMode::Memory);
        assert_eq!(config.fsync, FsyncPolicy::Never);
        assert_eq!(config.segment_bytes, 8192);
        assert_eq!(config.data_dir, PathBuf::from("warren-data"));
        assert_eq!(config.amqp_listen, "127.0.0.1:5672".parse().expect("address"));
    }

    #[test]
    fn bad_values_are_refused() {
        let args = ServeArgs { segment_bytes: Some(10), ..ServeArgs::default() };
        assert!(Config::load(&args).is_err());
        let args = ServeArgs { fsync_interval: Some("soon".into()), ..ServeArgs::default() };
        assert!(Config::load(&args).is_err());
        let args = ServeArgs { worker_threads: Some(0), ..ServeArgs::default() };
        assert!(Config::load(&args).is_err());
        let args = ServeArgs { worker_threads: Some(1), ..ServeArgs::default() };
        assert_eq!(Config::load(&args).expect("valid").worker_threads, Some(1));
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
    }
}
