//! `status` and `report`. `status` gathers the node's facts from `/api/overview` and
//! `/api/nodes`; `report` prints the status and then every listing, global ones first and
//! then vhost by vhost, as `rabbitmqctl report` does. Users appear with their tags only:
//! password hashes never leave the API through this command.

use serde_json::{Map, Value};

use super::columns::{Listing, Source};
use super::commands::{banner, Api, Out};
use super::format::{self, Style};
use super::Error;

/// One section of the status: a title and labelled facts, each with its JSON key.
struct Section {
    title: &'static str,
    facts: Vec<(&'static str, &'static str, Value)>,
}

fn field(object: &Value, path: &'static str) -> Value {
    format::cell(object, Source::Field(path))
}

fn sections(overview: &Value, node: &Value, vhosts: usize) -> Vec<Section> {
    let uptime_seconds = field(node, "uptime").as_u64().map_or(Value::Null, |ms| Value::from(ms / 1000));
    let alarms: Vec<&str> = [("mem_alarm", "memory"), ("disk_free_alarm", "free disk space")]
        .iter()
        .filter(|(key, _)| node.get(*key) == Some(&Value::Bool(true)))
        .map(|(_, name)| *name)
        .collect();
    let alarms = if alarms.is_empty() { "(none)".to_owned() } else { alarms.join(", ") };
    vec![
        Section {
            title: "Runtime",
            facts: vec![
                ("OS PID", "os_pid", field(node, "os_pid")),
                ("Uptime (seconds)", "uptime_seconds", uptime_seconds),
                ("Product name", "product_name", field(overview, "product_name")),
                ("Product version", "product_version", field(overview, "product_version")),
                ("RabbitMQ version", "rabbitmq_version", field(overview, "rabbitmq_version")),
                ("Management version", "management_version", field(overview, "management_version")),
                ("Node name", "node", field(overview, "node")),
                ("Cluster name", "cluster_name", field(overview, "cluster_name")),
                ("Erlang version", "erlang_version", field(overview, "erlang_version")),
                ("Statistics mode", "rates_mode", field(overview, "rates_mode")),
                ("Processors", "processors", field(node, "processors")),
            ],
        },
        Section {
            title: "Configuration",
            facts: vec![
                ("Config files", "config_files", field(node, "config_files")),
                ("Log files", "log_files", field(node, "log_files")),
                ("Data directory", "db_dir", field(node, "db_dir")),
                ("Enabled plugins", "enabled_plugins", field(node, "enabled_plugins")),
                ("Net tick time (seconds)", "net_ticktime", field(node, "net_ticktime")),
            ],
        },
        Section { title: "Alarms", facts: vec![("Alarms", "alarms", Value::String(alarms))] },
        Section {
            title: "Memory",
            facts: vec![
                ("Total memory used (bytes)", "mem_used", field(node, "mem_used")),
                ("Memory high watermark (bytes)", "mem_limit", field(node, "mem_limit")),
                ("Memory alarm", "mem_alarm", field(node, "mem_alarm")),
            ],
        },
        Section {
            title: "Free Disk Space",
            facts: vec![
                ("Low free disk space watermark (bytes)", "disk_free_limit", field(node, "disk_free_limit")),
                ("Free disk space (bytes)", "disk_free", field(node, "disk_free")),
                ("Free disk space alarm", "disk_free_alarm", field(node, "disk_free_alarm")),
            ],
        },
        Section {
            title: "File Descriptors",
            facts: vec![
                ("Used", "fd_used", field(node, "fd_used")),
                ("Limit", "fd_total", field(node, "fd_total")),
                ("Sockets used", "sockets_used", field(node, "sockets_used")),
                ("Sockets limit", "sockets_total", field(node, "sockets_total")),
            ],
        },
        Section {
            title: "Totals",
            facts: vec![
                ("Connection count", "connections", field(overview, "object_totals.connections")),
                ("Channel count", "channels", field(overview, "object_totals.channels")),
                ("Queue count", "queues", field(overview, "object_totals.queues")),
                ("Exchange count", "exchanges", field(overview, "object_totals.exchanges")),
                ("Consumer count", "consumers", field(overview, "object_totals.consumers")),
                ("Virtual host count", "vhosts", Value::from(vhosts)),
                ("Messages", "messages", field(overview, "queue_totals.messages")),
            ],
        },
    ]
}

/// `Interface: 127.0.0.1, port: 5672, protocol: amqp` for each listener.
fn listener_lines(overview: &Value) -> Vec<String> {
    let listeners = overview.get("listeners").and_then(Value::as_array).cloned().unwrap_or_default();
    listeners
        .iter()
        .map(|l| {
            let text = |key| format::table_text(&field(l, key));
            format!(
                "Interface: {}, port: {}, protocol: {}",
                text("ip_address"),
                text("port"),
                text("protocol")
            )
        })
        .collect()
}

/// The status as text, or as one JSON object.
fn status_of(api: &Api) -> Result<(String, Value), Error> {
    let overview = api.get("/api/overview")?;
    let nodes = api.list("/api/nodes")?;
    let node_name = field(&overview, "node");
    let node = nodes
        .iter()
        .find(|n| n.get("name") == Some(&node_name))
        .or(nodes.first())
        .cloned()
        .unwrap_or(Value::Null);
    let vhosts = api.list("/api/vhosts")?.len();
    let mut text = format!("Status of node {} ...\n", format::table_text(&node_name));
    let mut json = Map::new();
    for section in sections(&overview, &node, vhosts) {
        text.push_str(&format!("{}\n\n", section.title));
        for (label, key, value) in section.facts {
            text.push_str(&format!("{label}: {}\n", format::table_text(&value)));
            json.insert(key.to_owned(), value);
        }
        text.push('\n');
    }
    text.push_str("Listeners\n\n");
    for line in listener_lines(&overview) {
        text.push_str(&line);
        text.push('\n');
    }
    json.insert("listeners".into(), overview.get("listeners").cloned().unwrap_or(Value::Array(Vec::new())));
    Ok((text, Value::Object(json)))
}

/// `warren ctl status`.
pub(super) fn status(api: &Api, out: &Out) -> Result<(), Error> {
    let (text, json) = status_of(api)?;
    if out.style.json {
        println!("{json}");
    } else {
        print!("{text}");
    }
    Ok(())
}

/// The columns `report` prints for each listing: the defaults, and more where they help
/// a bug report.
fn report_columns(command: &str) -> &'static [&'static str] {
    match command {
        "list_queues" => &[
            "name",
            "type",
            "durable",
            "auto_delete",
            "exclusive",
            "arguments",
            "policy",
            "state",
            "messages",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
            "memory",
        ],
        "list_exchanges" => &["name", "type", "durable", "auto_delete", "internal", "arguments", "policy"],
        "list_connections" => &[
            "name",
            "user",
            "vhost",
            "peer_host",
            "peer_port",
            "state",
            "channels",
            "protocol",
            "frame_max",
            "timeout",
        ],
        "list_channels" => &[
            "name",
            "user",
            "vhost",
            "number",
            "consumer_count",
            "messages_unacknowledged",
            "prefetch_count",
            "confirm",
            "transactional",
        ],
        "list_vhosts" => &["name", "description", "tags", "default_queue_type"],
        _ => &[],
    }
}

/// One listing for the report: its banner, rows as text, and rows as JSON objects.
fn section(api: &Api, command: &'static str, vhost: &str, style: Style) -> Result<(String, Value), Error> {
    let listing = Listing::of(command);
    let named: Vec<String> = report_columns(command).iter().map(|c| (*c).to_owned()).collect();
    let columns = listing.select(&named)?;
    let rows = api.list(&listing.path_for(vhost))?;
    let title = banner(command, vhost);
    let text = format!("{title}\n{}\n", format::render(&rows, &columns, style));
    let objects = rows
        .iter()
        .map(|row| {
            Value::Object(
                columns
                    .iter()
                    .map(|(name, source)| ((*name).to_owned(), format::cell(row, *source)))
                    .collect(),
            )
        })
        .collect();
    Ok((text, Value::Array(objects)))
}

/// `warren ctl report`.
pub(super) fn report(api: &Api, out: &Out) -> Result<(), Error> {
    let (status_text, status_json) = status_of(api)?;
    let table = Style { json: false, headers: out.style.headers };
    let node = format::table_text(&field(&status_json, "node"));
    let mut text = format!("Reporting server status of node {node} ...\n\n{status_text}\n");
    let mut json = Map::new();
    json.insert("status".into(), status_json);
    for command in ["list_users", "list_vhosts", "list_connections", "list_channels"] {
        let (part, rows) = section(api, command, "/", table)?;
        text.push_str(&part);
        json.insert(command.trim_start_matches("list_").to_owned(), rows);
    }
    let vhosts = api.list("/api/vhosts")?;
    let mut per_vhost = Map::new();
    for vhost in vhosts.iter().filter_map(|v| v.get("name").and_then(Value::as_str)) {
        let mut one = Map::new();
        for command in [
            "list_permissions",
            "list_policies",
            "list_queues",
            "list_exchanges",
            "list_bindings",
            "list_consumers",
        ] {
            let (part, rows) = section(api, command, vhost, table)?;
            text.push_str(&part);
            one.insert(command.trim_start_matches("list_").to_owned(), rows);
        }
        per_vhost.insert(vhost.to_owned(), Value::Object(one));
    }
    json.insert("vhosts_detail".into(), Value::Object(per_vhost));
    if out.style.json {
        println!("{}", Value::Object(json));
    } else {
        print!("{text}");
    }
    Ok(())
}
