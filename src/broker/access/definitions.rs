//! RabbitMQ's definitions JSON: the whole-broker export (`GET /api/definitions`) and the
//! per-vhost one (`GET /api/definitions/{vhost}`), as serde types.
//!
//! On export the keys and types are RabbitMQ 3.10.8's (`rw_state/0` and
//! `all_definitions/2` in `deps/rabbitmq_management/src/rabbit_mgmt_wm_definitions.erl`;
//! OPERATIONS-REFERENCE.md §1.3): every list is present, even empty; a vhost is only its
//! `name`, and its limits travel as a `vhost-limits` runtime parameter; the per-vhost
//! export drops the `vhost` key of queues, exchanges and bindings (not of policies and
//! parameters) and carries only `rabbit_version`.
//! On import every key but the names is optional and unknown keys are ignored, as
//! RabbitMQ's import reads what it knows (`rabbit_definitions.erl`): `tags` may be a list
//! or a comma-separated text, a vhost's description and tags may sit in `metadata`.
//! This module only describes the document; `AccessControl` applies its access parts and
//! the broker its queues, exchanges and bindings.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};

/// The runtime parameter component that carries vhost limits.
pub const VHOST_LIMITS_COMPONENT: &str = "vhost-limits";
/// The name of the vhost-limits parameter.
pub const VHOST_LIMITS_NAME: &str = "limits";

/// The whole-broker definitions document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    /// The exporting broker's version (RabbitMQ's own key, kept for old importers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    /// The exporting broker's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    /// The exporting product's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// The exporting product's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    /// Users.
    #[serde(default)]
    pub users: Vec<UserDefinition>,
    /// Virtual hosts.
    #[serde(default)]
    pub vhosts: Vec<VhostDefinition>,
    /// Permissions.
    #[serde(default)]
    pub permissions: Vec<PermissionDefinition>,
    /// Topic permissions.
    #[serde(default)]
    pub topic_permissions: Vec<TopicPermissionDefinition>,
    /// Runtime parameters (vhost limits among them).
    #[serde(default)]
    pub parameters: Vec<ParameterDefinition>,
    /// Global runtime parameters (`cluster_name`, `internal_cluster_id`).
    #[serde(default)]
    pub global_parameters: Vec<GlobalParameterDefinition>,
    /// Policies.
    #[serde(default)]
    pub policies: Vec<PolicyDefinition>,
    /// Queues.
    #[serde(default)]
    pub queues: Vec<QueueDefinition>,
    /// Exchanges.
    #[serde(default)]
    pub exchanges: Vec<ExchangeDefinition>,
    /// Bindings.
    #[serde(default)]
    pub bindings: Vec<BindingDefinition>,
}

/// The per-vhost definitions document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostDefinitions {
    /// The exporting broker's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    /// Runtime parameters of the vhost.
    #[serde(default)]
    pub parameters: Vec<ParameterDefinition>,
    /// Policies of the vhost.
    #[serde(default)]
    pub policies: Vec<PolicyDefinition>,
    /// Queues of the vhost (no `vhost` key).
    #[serde(default)]
    pub queues: Vec<QueueDefinition>,
    /// Exchanges of the vhost (no `vhost` key).
    #[serde(default)]
    pub exchanges: Vec<ExchangeDefinition>,
    /// Bindings of the vhost (no `vhost` key).
    #[serde(default)]
    pub bindings: Vec<BindingDefinition>,
}

/// A user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserDefinition {
    /// Name.
    pub name: String,
    /// A clear-text password (accepted on import, as RabbitMQ accepts it; never exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Base64 of salt and digest; `""` for no password.
    #[serde(default)]
    pub password_hash: String,
    /// `rabbit_password_hashing_sha256` and the like; missing in files from before 3.6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashing_algorithm: Option<String>,
    /// Tags: a list, or on import also a comma-separated text.
    #[serde(default, deserialize_with = "tag_list")]
    pub tags: Vec<String>,
    /// `{"max-connections": n, "max-channels": n}`, `{}` when none.
    #[serde(default)]
    pub limits: Map<String, Value>,
}

/// A vhost. RabbitMQ 3.10.8 exports only `name`; the other keys are read on import
/// (`add_vhost/2` in `rabbit_definitions.erl`) and written by Warren's own store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostDefinition {
    /// Name.
    pub name: String,
    /// Description (newer exports put it here, older ones in `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags (a list, or a comma-separated text).
    #[serde(default, deserialize_with = "optional_tag_list", skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Default queue type (newer exports put it here, 3.10 in `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
    /// `{"description", "tags", "default_queue_type"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<VhostMetadata>,
    /// `{"max-connections": n, "max-queues": n}` (`rabbitmqctl export_definitions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Map<String, Value>>,
    /// Message tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<bool>,
}

/// A vhost's metadata object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostMetadata {
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags.
    #[serde(default, deserialize_with = "optional_tag_list", skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Default queue type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
}

/// A user's permissions in a vhost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionDefinition {
    /// User.
    pub user: String,
    /// Vhost.
    pub vhost: String,
    /// Configure expression.
    #[serde(default)]
    pub configure: String,
    /// Write expression.
    #[serde(default)]
    pub write: String,
    /// Read expression.
    #[serde(default)]
    pub read: String,
}

/// A user's topic permissions on an exchange of a vhost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPermissionDefinition {
    /// User.
    pub user: String,
    /// Vhost.
    pub vhost: String,
    /// Topic exchange.
    pub exchange: String,
    /// Write expression.
    #[serde(default)]
    pub write: String,
    /// Read expression.
    #[serde(default)]
    pub read: String,
}

/// A runtime parameter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParameterDefinition {
    /// The vhost (absent in a per-vhost file written by other tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// Component, such as `vhost-limits`, `federation-upstream`, `shovel`.
    pub component: String,
    /// Name.
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: Value,
}

/// A global runtime parameter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalParameterDefinition {
    /// Name.
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: Value,
}

/// A policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyDefinition {
    /// The vhost (kept in the per-vhost export too; absent: the vhost imported into).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// Name.
    pub name: String,
    /// Pattern.
    #[serde(default)]
    pub pattern: Value,
    /// `queues`, `exchanges` or `all` (missing: `all`).
    #[serde(rename = "apply-to", default, skip_serializing_if = "Option::is_none")]
    pub apply_to: Option<String>,
    /// Settings.
    #[serde(default)]
    pub definition: Value,
    /// Priority (missing: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Number>,
}

impl PolicyDefinition {
    /// The policy's value as `Policy::from_json` reads it.
    pub fn value(&self) -> Value {
        let mut map = Map::new();
        map.insert("pattern".into(), self.pattern.clone());
        map.insert("definition".into(), self.definition.clone());
        if let Some(apply_to) = &self.apply_to {
            map.insert("apply-to".into(), Value::from(apply_to.as_str()));
        }
        if let Some(priority) = &self.priority {
            map.insert("priority".into(), Value::Number(priority.clone()));
        }
        Value::Object(map)
    }
}

/// A queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueDefinition {
    /// Name.
    pub name: String,
    /// Vhost (absent in the per-vhost export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// Queue type (`rabbitmqctl export_definitions` writes it; the HTTP export does not).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub queue_type: Option<String>,
    /// Durable.
    #[serde(default)]
    pub durable: bool,
    /// Auto-delete.
    #[serde(default)]
    pub auto_delete: bool,
    /// `x-` arguments.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// An exchange.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExchangeDefinition {
    /// Name.
    pub name: String,
    /// Vhost (absent in the per-vhost export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// Exchange type.
    #[serde(rename = "type")]
    pub exchange_type: String,
    /// Durable.
    #[serde(default)]
    pub durable: bool,
    /// Auto-delete.
    #[serde(default)]
    pub auto_delete: bool,
    /// Internal.
    #[serde(default)]
    pub internal: bool,
    /// Arguments.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// A binding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindingDefinition {
    /// Source exchange.
    pub source: String,
    /// Vhost (absent in the per-vhost export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// Destination queue or exchange.
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    /// Routing key.
    #[serde(default)]
    pub routing_key: String,
    /// Arguments.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// Tags as a list of names from a list or a comma-separated text (`null`: none).
fn tags_from_value(value: Value) -> Result<Vec<String>, String> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(text
            .split(',')
            .map(|tag| tag.trim_matches(' '))
            .filter(|tag| !tag.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                other => Err(format!("a tag must be a string, not {other}")),
            })
            .collect(),
        other => Err(format!("tags must be a list or a comma-separated string, not {other}")),
    }
}

fn tag_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    tags_from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

fn optional_tag_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    tags_from_value(Value::deserialize(deserializer)?).map(Some).map_err(serde::de::Error::custom)
}

#[cfg(test)]
#[path = "definitions_tests.rs"]
mod tests;
