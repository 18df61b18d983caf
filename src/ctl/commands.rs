//! Every `warren ctl` command as requests to the management API: which endpoint, which
//! body, and what is printed. Informational lines (`Listing queues for vhost / ...`) go to
//! stdout as rabbitmqctl's do, except with `--quiet` or `--formatter json`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::columns::Listing;
use super::format::{self, Style};
use super::http::{encode_segment as enc, Endpoint, Response};
use super::{password, report, Command, CtlArgs, Error};
use crate::limits;

/// The API, reached through one endpoint, with answers checked.
pub(super) struct Api {
    endpoint: Endpoint,
}

impl Api {
    /// Sends a request; a 4xx or 5xx answer becomes [`Error::Api`] with the API's reason.
    pub(super) fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Result<Response, Error> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let response = self.endpoint.request(method, path, bytes.as_deref(), extra)?;
        if response.status >= 400 {
            return Err(Error::Api { status: response.status, reason: reason(&response) });
        }
        Ok(response)
    }

    /// GETs and parses JSON.
    pub(super) fn get(&self, path: &str) -> Result<Value, Error> {
        let response = self.send("GET", path, None, &[])?;
        serde_json::from_slice(&response.body)
            .map_err(|e| Error::Protocol(format!("GET {path}: the answer is not JSON: {e}")))
    }

    /// GETs and parses JSON; `None` on 404.
    pub(super) fn get_optional(&self, path: &str) -> Result<Option<Value>, Error> {
        match self.get(path) {
            Err(Error::Api { status: 404, .. }) => Ok(None),
            other => other.map(Some),
        }
    }

    /// GETs a JSON array.
    pub(super) fn list(&self, path: &str) -> Result<Vec<Value>, Error> {
        match self.get(path)? {
            Value::Array(items) => Ok(items),
            _ => Err(Error::Protocol(format!("GET {path}: expected a JSON array"))),
        }
    }
}

/// The API's `reason` (RabbitMQ answers `{"error": …, "reason": …}`), else the status.
fn reason(response: &Response) -> String {
    let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
    match parsed.as_ref().and_then(|v| v.get("reason")) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => format!("the API answered HTTP {}", response.status),
    }
}

/// Where output goes and in which style.
pub(super) struct Out {
    pub(super) style: Style,
    quiet: bool,
    /// `--timeout`, which list_queues' first line repeats.
    timeout_seconds: u64,
}

impl Out {
    /// An informational line, unless quiet or JSON.
    pub(super) fn info(&self, line: &str) {
        if !self.quiet && !self.style.json {
            println!("{line}");
        }
    }
}

/// Runs the command of `args`.
pub(super) fn run(args: &CtlArgs) -> Result<(), Error> {
    let out = Out {
        style: Style { json: args.formatter == "json", headers: !args.quiet && !args.no_table_headers },
        quiet: args.quiet,
        timeout_seconds: args.timeout,
    };
    if let Command::HashPassword { password } = &args.command {
        let hash = password::hash_password(password)
            .map_err(|e| Error::Protocol(format!("no randomness for the salt: {e}")))?;
        println!("{hash}");
        return Ok(());
    }
    let timeout = Duration::from_secs(args.timeout.max(1));
    let api = Api { endpoint: Endpoint::parse(&args.url, &args.user, &args.password, timeout)? };
    let vhost = args.vhost.as_str();
    if vhost.is_empty() {
        return Err(Error::Usage("the vhost name must not be empty".into()));
    }
    if let Some((command, columns)) = listing(&args.command) {
        return list(&api, &out, Listing::of(command), columns, vhost);
    }
    match &args.command {
        Command::Status => report::status(&api, &out),
        Command::Report => report::report(&api, &out),
        Command::AwaitStartup => await_startup(&api, &out, timeout),
        Command::AddUser { .. }
        | Command::DeleteUser { .. }
        | Command::ChangePassword { .. }
        | Command::SetUserTags { .. } => users(&api, &out, &args.command),
        Command::ExportDefinitions { file } => export_definitions(&api, &out, file),
        Command::ImportDefinitions { file } => import_definitions(&api, &out, file),
        Command::PurgeQueue { .. } | Command::DeleteQueue { .. } | Command::CloseConnection { .. } => {
            objects(&api, &out, &args.command, vhost)
        }
        command => access(&api, &out, command, vhost),
    }
}

/// The listing command and its columns, for the `list_*` commands.
fn listing(command: &Command) -> Option<(&'static str, &[String])> {
    Some(match command {
        Command::ListQueues { columns } => ("list_queues", columns),
        Command::ListExchanges { columns } => ("list_exchanges", columns),
        Command::ListBindings { columns } => ("list_bindings", columns),
        Command::ListConnections { columns } => ("list_connections", columns),
        Command::ListChannels { columns } => ("list_channels", columns),
        Command::ListConsumers { columns } => ("list_consumers", columns),
        Command::ListUsers { columns } => ("list_users", columns),
        Command::ListVhosts { columns } => ("list_vhosts", columns),
        Command::ListPermissions { columns } => ("list_permissions", columns),
        Command::ListPolicies { columns } => ("list_policies", columns),
        _ => return None,
    })
}

/// rabbitmqctl's line before a listing.
pub(super) fn banner(command: &str, vhost: &str) -> String {
    match command {
        "list_queues" => format!("Listing queues for vhost {vhost} ..."),
        "list_exchanges" => format!("Listing exchanges for vhost {vhost} ..."),
        "list_bindings" => format!("Listing bindings for vhost {vhost}..."),
        "list_consumers" => format!("Listing consumers in vhost {vhost} ..."),
        "list_permissions" => format!("Listing permissions for vhost \"{vhost}\" ..."),
        "list_policies" => format!("Listing policies for vhost \"{vhost}\" ..."),
        other => format!("Listing {} ...", other.trim_start_matches("list_")),
    }
}

fn list(api: &Api, out: &Out, listing: &Listing, named: &[String], vhost: &str) -> Result<(), Error> {
    let columns = listing.select(named)?;
    let rows = match api.list(&listing.path_for(vhost)) {
        Err(Error::Api { status: 404, .. }) if listing.path.contains("{vhost}") => {
            return Err(Error::Data(format!("Virtual host '{vhost}' does not exist")));
        }
        other => other?,
    };
    if listing.command == "list_queues" {
        out.info(&format!("Timeout: {}.0 seconds ...", out.timeout_seconds));
    }
    out.info(&banner(listing.command, vhost));
    print!("{}", format::render(&rows, &columns, out.style));
    Ok(())
}

fn users(api: &Api, out: &Out, command: &Command) -> Result<(), Error> {
    match command {
        Command::AddUser { username, password } => {
            out.info(&format!("Adding user \"{username}\" ..."));
            let path = format!("/api/users/{}", enc(username));
            if api.get_optional(&path)?.is_some() {
                return Err(Error::Exists(format!("User \"{username}\" already exists")));
            }
            let body = match password {
                Some(password) => json!({"password": password, "tags": ""}),
                None => json!({"password_hash": "", "tags": ""}),
            };
            api.send("PUT", &path, Some(&body), &[])?;
        }
        Command::DeleteUser { username } => {
            out.info(&format!("Deleting user \"{username}\" ..."));
            match api.send("DELETE", &format!("/api/users/{}", enc(username)), None, &[]) {
                Err(Error::Api { status: 404, .. }) => return Err(Error::NoUser(username.clone())),
                other => drop(other?),
            }
        }
        Command::ChangePassword { username, password } => {
            out.info(&format!("Changing password for user \"{username}\" ..."));
            let (path, user) = existing_user(api, username)?;
            let tags = user.get("tags").cloned().unwrap_or(Value::String(String::new()));
            api.send("PUT", &path, Some(&json!({"password": password, "tags": tags})), &[])?;
        }
        Command::SetUserTags { username, tags } => {
            out.info(&format!("Setting tags for user \"{username}\" to [{}] ...", tags.join(", ")));
            let (path, user) = existing_user(api, username)?;
            let mut body = json!({"tags": tags.join(",")});
            for key in ["password_hash", "hashing_algorithm"] {
                if let Some(value) = user.get(key) {
                    body[key] = value.clone();
                }
            }
            api.send("PUT", &path, Some(&body), &[])?;
        }
        _ => unreachable!("only user commands come here"),
    }
    Ok(())
}

/// The user's path and JSON; [`Error::NoUser`] when absent.
fn existing_user(api: &Api, username: &str) -> Result<(String, Value), Error> {
    let path = format!("/api/users/{}", enc(username));
    let user = api.get_optional(&path)?.ok_or_else(|| Error::NoUser(username.to_owned()))?;
    Ok((path, user))
}

/// A DELETE whose 404 gets a message naming what is missing.
fn delete(
    api: &Api,
    path: &str,
    extra: &[(&str, &str)],
    missing: impl FnOnce() -> String,
) -> Result<(), Error> {
    match api.send("DELETE", path, None, extra) {
        Err(Error::Api { status: 404, .. }) => Err(Error::Data(missing())),
        other => other.map(drop),
    }
}

fn access(api: &Api, out: &Out, command: &Command, vhost: &str) -> Result<(), Error> {
    let v = enc(vhost);
    match command {
        Command::AddVhost { name, description, tags, default_queue_type } => {
            out.info(&format!("Adding vhost \"{name}\" ..."));
            let mut body = json!({});
            for (key, value) in
                [("description", description), ("tags", tags), ("default_queue_type", default_queue_type)]
            {
                if let Some(value) = value {
                    body[key] = Value::String(value.clone());
                }
            }
            api.send("PUT", &format!("/api/vhosts/{}", enc(name)), Some(&body), &[])?;
        }
        Command::DeleteVhost { name } => {
            out.info(&format!("Deleting vhost \"{name}\" ..."));
            delete(api, &format!("/api/vhosts/{}", enc(name)), &[], || {
                format!("Virtual host '{name}' does not exist")
            })?;
        }
        Command::SetPermissions { user, configure, write, read } => {
            out.info(&format!("Setting permissions for user \"{user}\" in vhost \"{vhost}\" ..."));
            let body = json!({"configure": configure, "write": write, "read": read});
            api.send("PUT", &format!("/api/permissions/{v}/{}", enc(user)), Some(&body), &[])?;
        }
        Command::ClearPermissions { user } => {
            out.info(&format!("Clearing permissions for user \"{user}\" in vhost \"{vhost}\" ..."));
            delete(api, &format!("/api/permissions/{v}/{}", enc(user)), &[], || {
                format!("User \"{user}\" has no permissions in vhost \"{vhost}\"")
            })?;
        }
        Command::SetPolicy { priority, apply_to, name, pattern, definition } => {
            out.info(&format!(
                "Setting policy \"{name}\" for pattern \"{pattern}\" to \"{definition}\" with priority \"{priority}\" for vhost \"{vhost}\" ..."
            ));
            let definition: Value = serde_json::from_str(definition)
                .map_err(|e| Error::Data(format!("the policy definition is not JSON: {e}")))?;
            let body = json!({"pattern": pattern, "definition": definition, "priority": priority, "apply-to": apply_to});
            api.send("PUT", &format!("/api/policies/{v}/{}", enc(name)), Some(&body), &[])?;
        }
        Command::ClearPolicy { name } => {
            out.info(&format!("Clearing policy \"{name}\" on vhost \"{vhost}\" ..."));
            delete(api, &format!("/api/policies/{v}/{}", enc(name)), &[], || {
                format!("Policy \"{name}\" not found in vhost \"{vhost}\"")
            })?;
        }
        _ => unreachable!("run sends every other command elsewhere"),
    }
    Ok(())
}

fn objects(api: &Api, out: &Out, command: &Command, vhost: &str) -> Result<(), Error> {
    let v = enc(vhost);
    match command {
        Command::PurgeQueue { name } => {
            out.info(&format!("Purging queue '{name}' in vhost '{vhost}' ..."));
            delete(api, &format!("/api/queues/{v}/{}/contents", enc(name)), &[], || {
                format!("Queue '{name}' in vhost '{vhost}' not found")
            })?;
        }
        Command::DeleteQueue { name, if_empty, if_unused } => {
            out.info(&format!("Deleting queue '{name}' on vhost '{vhost}' ..."));
            let path = format!("/api/queues/{v}/{}", enc(name));
            let missing = || format!("Queue '{name}' in vhost '{vhost}' not found");
            let queue = api.get_optional(&path)?.ok_or_else(|| Error::Data(missing()))?;
            let conditions: Vec<&str> = [(*if_empty, "if-empty=true"), (*if_unused, "if-unused=true")]
                .iter()
                .filter_map(|(on, query)| on.then_some(*query))
                .collect();
            let query =
                if conditions.is_empty() { String::new() } else { format!("?{}", conditions.join("&")) };
            delete(api, &format!("{path}{query}"), &[], missing)?;
            let count = queue.get("messages").and_then(Value::as_u64).unwrap_or(0);
            out.info(&format!("Queue was successfully deleted with {count} messages"));
        }
        Command::CloseConnection { name, reason } => {
            if name.is_empty() {
                return Err(Error::Usage("the connection name must not be empty".into()));
            }
            out.info(&format!("Closing connection {name}, reason: {reason}..."));
            delete(api, &format!("/api/connections/{}", enc(name)), &[("X-Reason", reason)], || {
                format!("Connection '{name}' not found")
            })?;
        }
        _ => unreachable!("run sends every other command elsewhere"),
    }
    Ok(())
}

fn export_definitions(api: &Api, out: &Out, file: &str) -> Result<(), Error> {
    let response = api.send("GET", "/api/definitions", None, &[])?;
    if file == "-" {
        let mut stdout = std::io::stdout().lock();
        let written = stdout.write_all(&response.body).and_then(|()| stdout.write_all(b"\n"));
        return written.map_err(|source| Error::Io { context: "writing to stdout".into(), source });
    }
    out.info(&format!("Exporting definitions in JSON to a file at \"{file}\" ..."));
    std::fs::write(file, &response.body)
        .map_err(|source| Error::Io { context: format!("writing {file}"), source })
}

fn import_definitions(api: &Api, out: &Out, file: &str) -> Result<(), Error> {
    let mut bytes = Vec::new();
    let read = if file == "-" {
        std::io::stdin().lock().take(limits::CTL_RESPONSE_BYTES_MAX as u64).read_to_end(&mut bytes).map(drop)
    } else {
        out.info(&format!("Importing definitions in JSON from a file at \"{file}\" ..."));
        std::fs::read(file).map(|b| bytes = b)
    };
    read.map_err(|source| Error::Io { context: format!("reading {file}"), source })?;
    let definitions: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Data(format!("{file} is not a JSON document: {e}")))?;
    if !definitions.is_object() {
        return Err(Error::Data(format!("{file} is not a JSON object of definitions")));
    }
    api.send("POST", "/api/definitions", Some(&definitions), &[])?;
    out.info("Successfully started definition import. This process is asynchronous and can take some time.");
    Ok(())
}

/// Asks for the overview until the API answers, or until `timeout` has passed.
fn await_startup(api: &Api, out: &Out, timeout: Duration) -> Result<(), Error> {
    out.info(&format!("Waiting for the management API at {} ...", api.endpoint.display()));
    let deadline = Instant::now() + timeout;
    loop {
        let last = match api.send("GET", "/api/overview", None, &[]) {
            Ok(_) => return Ok(()),
            Err(
                error @ (Error::Unreachable { .. } | Error::Protocol(_) | Error::Api { status: 500.., .. }),
            ) => error,
            Err(other) => return Err(other),
        };
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "the management API at {} did not answer within {} seconds ({last})",
                api.endpoint.display(),
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(limits::CTL_AWAIT_POLL_MS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_are_rabbitmqctls() {
        assert_eq!(banner("list_queues", "/"), "Listing queues for vhost / ...");
        assert_eq!(banner("list_bindings", "/"), "Listing bindings for vhost /...");
        assert_eq!(banner("list_permissions", "/"), "Listing permissions for vhost \"/\" ...");
        assert_eq!(banner("list_users", "/"), "Listing users ...");
        assert_eq!(banner("list_consumers", "v"), "Listing consumers in vhost v ...");
    }

    #[test]
    fn reasons_come_from_the_api_body() {
        let answer = Response {
            status: 400,
            body: br#"{"error":"bad_request","reason":"inequivalent arg"}"#.to_vec(),
        };
        assert_eq!(reason(&answer), "inequivalent arg");
        assert_eq!(reason(&Response { status: 502, body: b"<html>".to_vec() }), "the API answered HTTP 502");
    }
}
