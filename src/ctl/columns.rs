//! rabbitmqctl's `list_*` commands: for each, the API path it reads, its default columns,
//! and how each of rabbitmqctl's column names (info items) maps to a field of the API's JSON.

use super::Error;

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A field of the API's object, by dotted path (`connection_details.name`).
    Field(&'static str),
    /// The same text for every row (the API leaves it implicit).
    Constant(&'static str),
}

/// One listing command.
#[derive(Debug)]
pub struct Listing {
    /// The command, e.g. `list_queues`.
    pub command: &'static str,
    /// The API path, with `{vhost}` where the vhost goes.
    pub path: &'static str,
    /// The columns printed when none are named.
    pub defaults: &'static [&'static str],
    /// Every column the command accepts, with where its value comes from.
    pub columns: &'static [(&'static str, Source)],
}

use Source::{Constant, Field};

/// Columns whose name is the API's field name.
macro_rules! same {
    ($($name:literal),* $(,)?) => { [$(($name, Field($name))),*] };
}

const QUEUE_COLUMNS: &[(&str, Source)] = &same!(
    "name",
    "durable",
    "auto_delete",
    "arguments",
    "policy",
    "operator_policy",
    "effective_policy_definition",
    "exclusive",
    "exclusive_consumer_tag",
    "messages_ready",
    "messages_unacknowledged",
    "messages",
    "messages_ready_ram",
    "messages_unacknowledged_ram",
    "messages_ram",
    "messages_persistent",
    "message_bytes",
    "message_bytes_ready",
    "message_bytes_unacknowledged",
    "message_bytes_ram",
    "message_bytes_persistent",
    "head_message_timestamp",
    "consumers",
    "consumer_utilisation",
    "consumer_capacity",
    "memory",
    "state",
    "type",
    "leader",
    "members",
    "online",
    "vhost",
    "idle_since"
);

/// rabbitmqctl's queue `pid` names an Erlang process; the API's nearest fact is the node.
const QUEUE_EXTRA: &[(&str, Source)] = &[("pid", Field("node"))];

/// Every listing, by command name.
pub const LISTINGS: &[Listing] = &[
    Listing {
        command: "list_queues",
        path: "/api/queues/{vhost}",
        defaults: &["name", "messages"],
        columns: QUEUE_COLUMNS,
    },
    Listing {
        command: "list_exchanges",
        path: "/api/exchanges/{vhost}",
        defaults: &["name", "type"],
        columns: &same!("name", "type", "durable", "auto_delete", "internal", "arguments", "policy", "vhost"),
    },
    Listing {
        command: "list_bindings",
        path: "/api/bindings/{vhost}",
        defaults: &[
            "source_name",
            "source_kind",
            "destination_name",
            "destination_kind",
            "routing_key",
            "arguments",
        ],
        columns: &[
            ("source_name", Field("source")),
            ("source_kind", Constant("exchange")),
            ("destination_name", Field("destination")),
            ("destination_kind", Field("destination_type")),
            ("routing_key", Field("routing_key")),
            ("arguments", Field("arguments")),
            ("vhost", Field("vhost")),
            ("properties_key", Field("properties_key")),
        ],
    },
    Listing {
        command: "list_connections",
        path: "/api/connections",
        defaults: &["user", "peer_host", "peer_port", "state"],
        columns: &[
            ("pid", Field("name")),
            ("name", Field("name")),
            ("port", Field("port")),
            ("host", Field("host")),
            ("peer_port", Field("peer_port")),
            ("peer_host", Field("peer_host")),
            ("ssl", Field("ssl")),
            ("ssl_protocol", Field("ssl_protocol")),
            ("ssl_key_exchange", Field("ssl_key_exchange")),
            ("ssl_cipher", Field("ssl_cipher")),
            ("ssl_hash", Field("ssl_hash")),
            ("peer_cert_subject", Field("peer_cert_subject")),
            ("peer_cert_issuer", Field("peer_cert_issuer")),
            ("peer_cert_validity", Field("peer_cert_validity")),
            ("state", Field("state")),
            ("channels", Field("channels")),
            ("protocol", Field("protocol")),
            ("auth_mechanism", Field("auth_mechanism")),
            ("user", Field("user")),
            ("vhost", Field("vhost")),
            ("timeout", Field("timeout")),
            ("frame_max", Field("frame_max")),
            ("channel_max", Field("channel_max")),
            ("client_properties", Field("client_properties")),
            ("recv_oct", Field("recv_oct")),
            ("recv_cnt", Field("recv_cnt")),
            ("send_oct", Field("send_oct")),
            ("send_cnt", Field("send_cnt")),
            ("send_pend", Field("send_pend")),
            ("connected_at", Field("connected_at")),
            ("node", Field("node")),
            ("type", Field("type")),
        ],
    },
    Listing {
        command: "list_channels",
        path: "/api/channels",
        defaults: &["pid", "user", "consumer_count", "messages_unacknowledged"],
        columns: &[
            ("pid", Field("name")),
            ("connection", Field("connection_details.name")),
            ("name", Field("name")),
            ("number", Field("number")),
            ("user", Field("user")),
            ("vhost", Field("vhost")),
            ("transactional", Field("transactional")),
            ("confirm", Field("confirm")),
            ("consumer_count", Field("consumer_count")),
            ("messages_unacknowledged", Field("messages_unacknowledged")),
            ("messages_uncommitted", Field("messages_uncommitted")),
            ("acks_uncommitted", Field("acks_uncommitted")),
            ("messages_unconfirmed", Field("messages_unconfirmed")),
            ("prefetch_count", Field("prefetch_count")),
            ("global_prefetch_count", Field("global_prefetch_count")),
            ("state", Field("state")),
        ],
    },
    Listing {
        command: "list_consumers",
        path: "/api/consumers/{vhost}",
        defaults: &[
            "queue_name",
            "channel_pid",
            "consumer_tag",
            "ack_required",
            "prefetch_count",
            "active",
            "arguments",
        ],
        columns: &[
            ("queue_name", Field("queue.name")),
            ("channel_pid", Field("channel_details.name")),
            ("consumer_tag", Field("consumer_tag")),
            ("ack_required", Field("ack_required")),
            ("prefetch_count", Field("prefetch_count")),
            ("active", Field("active")),
            ("activity_status", Field("activity_status")),
            ("arguments", Field("arguments")),
            ("exclusive", Field("exclusive")),
            ("connection_name", Field("channel_details.connection_name")),
        ],
    },
    Listing {
        command: "list_users",
        path: "/api/users",
        defaults: &["user", "tags"],
        columns: &[("user", Field("name")), ("tags", Field("tags"))],
    },
    Listing {
        command: "list_vhosts",
        path: "/api/vhosts",
        defaults: &["name"],
        columns: &same!(
            "name",
            "description",
            "tags",
            "default_queue_type",
            "tracing",
            "cluster_state",
            "messages"
        ),
    },
    Listing {
        command: "list_permissions",
        path: "/api/vhosts/{vhost}/permissions",
        defaults: &["user", "configure", "write", "read"],
        columns: &same!("user", "configure", "write", "read", "vhost"),
    },
    Listing {
        command: "list_policies",
        path: "/api/policies/{vhost}",
        defaults: &["vhost", "name", "pattern", "apply-to", "definition", "priority"],
        columns: &same!("vhost", "name", "pattern", "apply-to", "definition", "priority"),
    },
];

impl Listing {
    /// The listing of `command`.
    ///
    /// # Panics
    /// When `command` is not in [`LISTINGS`]: the caller names only known commands.
    pub fn of(command: &str) -> &'static Listing {
        LISTINGS.iter().find(|l| l.command == command).expect("every list command has a listing")
    }

    /// The columns to print, checked: the defaults when none are named.
    ///
    /// # Errors
    /// [`Error::Usage`] naming every unknown column, as rabbitmqctl does.
    pub fn select(&self, named: &[String]) -> Result<Vec<(&'static str, Source)>, Error> {
        if named.is_empty() {
            return Ok(self
                .defaults
                .iter()
                .map(|name| self.find(name).expect("defaults are columns"))
                .collect());
        }
        // rabbitmqctl also takes `name,messages` as one argument.
        let names: Vec<&str> =
            named.iter().flat_map(|n| n.split(',')).map(str::trim).filter(|n| !n.is_empty()).collect();
        let unknown: Vec<&str> = names.iter().copied().filter(|n| self.find(n).is_none()).collect();
        if !unknown.is_empty() {
            return Err(Error::Usage(format!("Info key(s) {} are not supported", unknown.join(","))));
        }
        Ok(names.iter().filter_map(|n| self.find(n)).collect())
    }

    fn find(&self, name: &str) -> Option<(&'static str, Source)> {
        self.columns.iter().chain(self.extra()).find(|(column, _)| *column == name).copied()
    }

    fn extra(&self) -> &'static [(&'static str, Source)] {
        if self.command == "list_queues" {
            QUEUE_EXTRA
        } else {
            &[]
        }
    }

    /// The API path for `vhost`, percent-encoded.
    pub fn path_for(&self, vhost: &str) -> String {
        self.path.replace("{vhost}", &super::http::encode_segment(vhost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_column_is_a_column() {
        for listing in LISTINGS {
            assert!(listing.select(&[]).is_ok(), "{}", listing.command);
        }
    }

    #[test]
    fn rabbitmqctl_names_map_to_api_fields() {
        let queues = Listing::of("list_queues");
        let picked = queues.select(&["name".into(), "messages_ready,consumers".into()]).unwrap();
        assert_eq!(
            picked,
            vec![
                ("name", Field("name")),
                ("messages_ready", Field("messages_ready")),
                ("consumers", Field("consumers"))
            ]
        );
        let bindings = Listing::of("list_bindings").select(&[]).unwrap();
        assert_eq!(bindings[0], ("source_name", Field("source")));
        assert_eq!(bindings[1], ("source_kind", Constant("exchange")));
        assert_eq!(bindings[3], ("destination_kind", Field("destination_type")));
        assert_eq!(Listing::of("list_users").select(&[]).unwrap()[0], ("user", Field("name")));
        let channels = Listing::of("list_channels").select(&["connection".into()]).unwrap();
        assert_eq!(channels, vec![("connection", Field("connection_details.name"))]);
        assert_eq!(Listing::of("list_queues").path_for("/"), "/api/queues/%2F");
        assert_eq!(Listing::of("list_permissions").path_for("v 1"), "/api/vhosts/v%201/permissions");
    }

    #[test]
    fn unknown_columns_are_usage_errors() {
        let error =
            Listing::of("list_queues").select(&["name".into(), "bogus".into(), "x".into()]).unwrap_err();
        assert_eq!(error.to_string(), "Info key(s) bogus,x are not supported");
    }
}
