//! Virtual hosts' metadata and limits. Their exchanges, queues and bindings live in the
//! broker model; this is what operators set on a vhost as such.
//!
//! Limits are RabbitMQ's vhost-limits runtime parameter (`deps/rabbit/src/
//! rabbit_vhost_limit.erl`, v3.10.8): `{"max-connections": n, "max-queues": n}`, each an
//! integer; a negative value is no limit and 0 allows nothing.

use serde_json::Value;

use super::users::{in_force, limit_fields, limit_object};

/// A vhost's limits, kept as set (see the module doc for their meaning).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VhostLimits {
    /// `max-connections`: client connections open to the vhost at once.
    pub max_connections: Option<i64>,
    /// `max-queues`: queues the vhost may hold.
    pub max_queues: Option<i64>,
}

impl VhostLimits {
    /// Limits from their JSON object, validated as RabbitMQ does (`limits` is the name
    /// RabbitMQ gives the parameter in its texts).
    ///
    /// # Errors
    /// RabbitMQ's text, e.g. `max-queues should be a number, actually was <<"ten">>`.
    pub fn from_json(value: &Value) -> Result<VhostLimits, String> {
        let fields = limit_fields(value, "limits", &["max-connections", "max-queues"])?;
        Ok(VhostLimits { max_connections: fields[0], max_queues: fields[1] })
    }

    /// The limits as their JSON object: only the keys that are set.
    pub fn to_json(&self) -> Value {
        limit_object(&[("max-connections", self.max_connections), ("max-queues", self.max_queues)])
    }

    /// Whether no limit is set at all.
    pub fn is_empty(&self) -> bool {
        self.max_connections.is_none() && self.max_queues.is_none()
    }

    /// The connection limit in force, if any.
    pub fn connections_max(&self) -> Option<u64> {
        in_force(self.max_connections)
    }

    /// The queue limit in force, if any.
    pub fn queues_max(&self) -> Option<u64> {
        in_force(self.max_queues)
    }
}

/// A virtual host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vhost {
    /// The vhost's name (`/` is the default one).
    pub name: String,
    /// Free text for operators (`""` when unset).
    pub description: String,
    /// Free-form tags for operators.
    pub tags: Vec<String>,
    /// The queue type of queues declared without `x-queue-type` (`classic`, `quorum`,
    /// `stream`), if set. Kept as given; the broker decides what it can honour.
    pub default_queue_type: Option<String>,
    /// Message tracing (`tracing` in the HTTP API); kept so that it round-trips.
    pub tracing: bool,
    /// Connection and queue limits.
    pub limits: VhostLimits,
}

impl Vhost {
    /// A vhost with no description, tags or limits.
    pub fn new(name: &str) -> Vhost {
        Vhost {
            name: name.to_owned(),
            description: String::new(),
            tags: Vec::new(),
            default_queue_type: None,
            tracing: false,
            limits: VhostLimits::default(),
        }
    }
}

/// Vhost tags from a comma-separated text (the HTTP API accepts `"tags": "a,b"`).
pub fn parse_vhost_tags(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|tag| !tag.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn limits_mean_what_rabbitmq_says() {
        let limits = VhostLimits::from_json(&json!({"max-connections": 0, "max-queues": -5})).expect("valid");
        assert_eq!(limits.connections_max(), Some(0), "0 allows no connection");
        assert_eq!(limits.queues_max(), None, "negative is no limit");
        assert_eq!(limits.to_json(), json!({"max-connections": 0, "max-queues": -5}));
        assert!(VhostLimits::default().is_empty());
        assert_eq!(
            VhostLimits::from_json(&json!({"max-queues": "ten"})),
            Err("max-queues should be a number, actually was <<\"ten\">>".into())
        );
        assert_eq!(
            VhostLimits::from_json(&json!({"max-channels": 1})),
            Err("Unrecognised terms [{<<\"max-channels\">>,1}] in limits".into())
        );
        assert_eq!(VhostLimits::from_json(&json!([1])), Err("limits not a list [1]".into()));
    }

    #[test]
    fn tags_parse_from_text() {
        assert_eq!(parse_vhost_tags("a, b,,c "), vec!["a", "b", "c"]);
        assert!(Vhost::new("/").tags.is_empty());
    }
}
