//! CTL: `warren ctl`, rabbitmqctl's everyday commands as a client of the management HTTP
//! API. It works against any broker serving RabbitMQ 3.10's API, Warren or RabbitMQ.
//!
//! Like `bench` it is a client: from the rest of the crate it uses only [`crate::limits`].
//! It speaks HTTP/1.1 over a std `TcpStream` itself (`http`), since the API is plain HTTP.
//!
//! Layout:
//! - [`http`]: the blocking client and percent-encoding.
//! - [`columns`]: each `list_*` command's endpoint, default columns and column mapping.
//! - [`format`]: tab-separated tables and `--formatter json`.
//! - `commands`: every command, as requests and their answers.
//! - `report`: `status` and `report`.
//! - [`password`]: `hash_password`, computed locally.
//!
//! Exit codes follow rabbitmqctl's (sysexits): 64 usage, 65 data error (the API refused the
//! request), 67 no such user, 69 the broker cannot be reached, 70 an internal error or an
//! object that already exists, 74 a local file error, 75 a wait that timed out, 77 the
//! API refused the credentials.

pub mod columns;
mod commands;
pub mod format;
pub mod http;
pub mod password;
mod report;

use clap::{Args, Subcommand};

use crate::limits;

/// Errors of one `warren ctl` command, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// No connection to the API, or it broke midway.
    #[error("unable to reach the management API at {url}: {source}")]
    Unreachable {
        /// The API's URL.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// The answer was not HTTP or not the JSON expected.
    #[error("{0}")]
    Protocol(String),
    /// The API answered 4xx or 5xx.
    #[error("{reason}")]
    Api {
        /// The status code.
        status: u16,
        /// The API's `reason`, or the status when it gave none.
        reason: String,
    },
    /// The named user does not exist.
    #[error("User \"{0}\" does not exist")]
    NoUser(String),
    /// The object to add exists already.
    #[error("{0}")]
    Exists(String),
    /// Input that is not what the command needs (e.g. a definition that is not JSON).
    #[error("{0}")]
    Data(String),
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// `await_startup` gave up.
    #[error("{0}")]
    Timeout(String),
}

impl Error {
    /// The process exit code, as rabbitmqctl's for the same case.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 64,
            Error::Data(_) => 65,
            Error::Api { status: 401 | 403, .. } => 77,
            Error::Api { status, .. } if *status < 500 => 65,
            Error::Api { .. } | Error::Protocol(_) | Error::Exists(_) => 70,
            Error::NoUser(_) => 67,
            Error::Unreachable { .. } => 69,
            Error::Io { .. } => 74,
            Error::Timeout(_) => 75,
        }
    }
}

/// `warren ctl`'s options (each also from a `WARREN_CTL_*` variable) and command.
#[derive(Args, Debug, Clone)]
pub struct CtlArgs {
    /// The management API's base URL.
    #[arg(long, env = "WARREN_CTL_URL", default_value = "http://127.0.0.1:15672", global = true)]
    pub url: String,
    /// The user to authenticate as (HTTP Basic).
    #[arg(long, env = "WARREN_CTL_USER", default_value = "guest", global = true)]
    pub user: String,
    /// That user's password.
    #[arg(long, env = "WARREN_CTL_PASSWORD", default_value = "guest", hide_env_values = true, global = true)]
    pub password: String,
    /// The virtual host, for the commands that act on one.
    #[arg(short = 'p', long, default_value = "/", global = true)]
    pub vhost: String,
    /// `json` for JSON output; the default is a tab-separated table.
    #[arg(long, value_parser = ["table", "json"], default_value = "table", global = true)]
    pub formatter: String,
    /// Print only results: no informational lines, no table headers.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// Print tables without their header line.
    #[arg(long, global = true)]
    pub no_table_headers: bool,
    /// Seconds to wait for each request, and for `await_startup` in all.
    #[arg(short = 't', long, default_value_t = limits::CTL_TIMEOUT_SECONDS_DEFAULT, global = true)]
    pub timeout: u64,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands, named as rabbitmqctl names them.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
#[command(rename_all = "snake_case")]
pub enum Command {
    /// The node's version, uptime, alarms, memory, disc, descriptors, totals and listeners.
    Status,
    /// Everything for a bug report: status, then every object, vhost by vhost.
    Report,
    /// Queues of a vhost: `name messages` unless columns are named.
    ListQueues {
        /// Columns to print, by rabbitmqctl's names (info items).
        columns: Vec<String>,
    },
    /// Exchanges of a vhost.
    ListExchanges {
        /// Columns to print, by rabbitmqctl's names (info items).
        columns: Vec<String>,
    },
    /// Bindings of a vhost.
    ListBindings {
        /// Columns to print, by rabbitmqctl's names (info items).
        columns: Vec<String>,
    },
    /// Every connection.
    ListConnections {
        /// Columns to print, by rabbitmqctl's names (info items).
        columns: Vec<String>,
    },
    /// Every channel.
    ListChannels {
        /// Columns to print, by rabbitmqctl's names (info items).
        columns: Vec<String>,
    },
    /// Consumers in a vhost.
    ListConsumers {
        /// Columns to print, by rabbitmqctl's names (info items).
        columns: Vec<String>,
    },
    /// Users and their tags.
    ListUsers {
        /// Columns to print, by rabbitmqctl's names (info items).
        columns: Vec<String>,
    },
    /// Virtual hosts.
    ListVhosts {
        /// Columns to print, by rabbitmqctl's names (info items).
        columns: Vec<String>,
    },
    /// Permissions in a vhost.
    ListPermissions {
        /// Columns to print, by rabbitmqctl's names (info items).
        columns: Vec<String>,
    },
    /// Policies of a vhost.
    ListPolicies {
        /// Columns to print, by rabbitmqctl's names (info items).
        columns: Vec<String>,
    },
    /// Creates a user (with no tags); without a password, one that cannot log in with one.
    AddUser {
        /// The user name.
        username: String,
        /// The password.
        #[arg(id = "new_password", value_name = "PASSWORD")]
        password: Option<String>,
    },
    /// Deletes a user.
    DeleteUser {
        /// The user name.
        username: String,
    },
    /// Sets a user's password, keeping the tags.
    ChangePassword {
        /// The user name.
        username: String,
        /// The password.
        #[arg(id = "new_password", value_name = "PASSWORD")]
        password: String,
    },
    /// Replaces a user's tags (none clears them), keeping the password.
    SetUserTags {
        /// The user name.
        username: String,
        /// The tags (administrator, monitoring, policymaker, management, impersonator).
        tags: Vec<String>,
    },
    /// Creates a virtual host.
    AddVhost {
        /// Its name.
        name: String,
        /// Its description.
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated tags.
        #[arg(long)]
        tags: Option<String>,
        /// `classic`, `quorum` or `stream`.
        #[arg(long = "default-queue-type")]
        default_queue_type: Option<String>,
    },
    /// Deletes a virtual host and everything in it.
    DeleteVhost {
        /// Its name.
        name: String,
    },
    /// Sets a user's configure, write and read patterns in a vhost.
    SetPermissions {
        /// The user name.
        #[arg(id = "username", value_name = "USER")]
        user: String,
        /// Regular expression of the resources the user may configure.
        #[arg(allow_hyphen_values = true)]
        configure: String,
        /// Regular expression of the resources the user may write to.
        #[arg(allow_hyphen_values = true)]
        write: String,
        /// Regular expression of the resources the user may read from.
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    /// Removes a user's permissions in a vhost.
    ClearPermissions {
        /// The user name.
        #[arg(id = "username", value_name = "USER")]
        user: String,
    },
    /// Sets a policy in a vhost.
    SetPolicy {
        /// Higher wins among matching policies.
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// What it applies to.
        #[arg(long = "apply-to", value_parser = ["queues", "exchanges", "all"], default_value = "all")]
        apply_to: String,
        /// Its name.
        name: String,
        /// Regular expression of the queue or exchange names it applies to.
        pattern: String,
        /// The definition, a JSON object.
        definition: String,
    },
    /// Removes a policy.
    ClearPolicy {
        /// Its name.
        name: String,
    },
    /// Writes every definition to FILE, or to stdout for `-`.
    ExportDefinitions {
        /// The file, or `-`.
        file: String,
    },
    /// Reads definitions from FILE, or from stdin for `-`, and imports them.
    ImportDefinitions {
        /// The file, or `-`.
        file: String,
    },
    /// Removes a queue's ready messages.
    PurgeQueue {
        /// Its name.
        name: String,
    },
    /// Deletes a queue.
    DeleteQueue {
        /// Its name.
        name: String,
        /// Only if it has no messages.
        #[arg(short = 'e', long = "if-empty")]
        if_empty: bool,
        /// Only if it has no consumers.
        #[arg(short = 'u', long = "if-unused")]
        if_unused: bool,
    },
    /// Closes a connection, by its name, with a reason given to the client.
    CloseConnection {
        /// Its name.
        name: String,
        /// The reason the client is told.
        reason: String,
    },
    /// Waits until the management API answers, for at most `--timeout` seconds.
    AwaitStartup,
    /// Prints a RabbitMQ-style SHA-256 hash of PASSWORD (computed locally).
    HashPassword {
        /// The password.
        #[arg(id = "new_password", value_name = "PASSWORD")]
        password: String,
    },
}

/// Runs one command, printing its output; returns the process exit code.
pub fn main(args: CtlArgs) -> i32 {
    match commands::run(&args) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("Error: {error}");
            error.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ctl: CtlArgs,
    }

    fn parse(args: &[&str]) -> CtlArgs {
        Cli::try_parse_from(std::iter::once("ctl").chain(args.iter().copied())).unwrap().ctl
    }

    #[test]
    fn options_go_before_or_after_the_command() {
        let args = parse(&["-p", "v1", "list_queues", "name", "messages_ready", "--formatter", "json", "-q"]);
        assert_eq!(args.vhost, "v1");
        assert_eq!(args.formatter, "json");
        assert!(args.quiet);
        assert_eq!(
            args.command,
            Command::ListQueues { columns: vec!["name".into(), "messages_ready".into()] }
        );
        let args = parse(&["--url", "http://h:1", "--user", "u", "--password", "p", "status"]);
        assert_eq!((args.url.as_str(), args.user.as_str(), args.password.as_str()), ("http://h:1", "u", "p"));
        assert_eq!(args.vhost, "/");
    }

    #[test]
    fn commands_take_rabbitmqctls_arguments() {
        let args = parse(&["set_permissions", "-p", "v", "alice", "^$", ".*", ".*"]);
        assert_eq!(args.vhost, "v");
        assert_eq!(
            args.command,
            Command::SetPermissions {
                user: "alice".into(),
                configure: "^$".into(),
                write: ".*".into(),
                read: ".*".into()
            }
        );
        let args = parse(&[
            "set_policy",
            "--priority",
            "2",
            "--apply-to",
            "queues",
            "lim",
            "^q",
            r#"{"max-length":5}"#,
        ]);
        assert_eq!(
            args.command,
            Command::SetPolicy {
                priority: 2,
                apply_to: "queues".into(),
                name: "lim".into(),
                pattern: "^q".into(),
                definition: r#"{"max-length":5}"#.into()
            }
        );
        let args = parse(&["delete_queue", "-e", "-u", "q"]);
        assert_eq!(args.command, Command::DeleteQueue { name: "q".into(), if_empty: true, if_unused: true });
        assert_eq!(
            parse(&["add_user", "bob"]).command,
            Command::AddUser { username: "bob".into(), password: None }
        );
        assert!(Cli::try_parse_from(["ctl", "set_policy", "--apply-to", "streams", "n", "p", "{}"]).is_err());
        assert!(Cli::try_parse_from(["ctl", "no_such_command"]).is_err());
    }

    #[test]
    fn exit_codes_are_rabbitmqctls() {
        let unreachable =
            Error::Unreachable { url: "u".into(), source: std::io::ErrorKind::ConnectionRefused.into() };
        assert_eq!(unreachable.exit_code(), 69);
        assert_eq!(Error::Usage(String::new()).exit_code(), 64);
        assert_eq!(Error::Api { status: 404, reason: "Not Found".into() }.exit_code(), 65);
        assert_eq!(Error::Api { status: 400, reason: "bad".into() }.exit_code(), 65);
        assert_eq!(Error::Api { status: 401, reason: "Login failed".into() }.exit_code(), 77);
        assert_eq!(Error::Api { status: 500, reason: "oops".into() }.exit_code(), 70);
        assert_eq!(Error::NoUser("x".into()).exit_code(), 67);
        assert_eq!(Error::Timeout(String::new()).exit_code(), 75);
    }
}
