use serde_json::json;

use super::*;

/// A whole-broker export shaped as RabbitMQ 3.10.8's `GET /api/definitions`.
fn rabbitmq_3_10_8_export() -> Value {
    json!({
        "rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8",
        "product_name": "RabbitMQ", "product_version": "3.10.8",
        "users": [
            {"name": "alice", "password_hash": "Zt0liDS+w8PXki8KVMjzkt1Jlu8UsIUBm3Ku3yykU1IlRXpP",
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["monitoring"], "limits": {}},
            {"name": "guest", "password_hash": "hJwnKN2/U3ORUmn25F5YvDmdg4h9xT7JvTfY/D0p5voMmGqp",
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"],
             "limits": {"max-connections": 10}}
        ],
        "vhosts": [{"name": "/"}, {"name": "prod"}],
        "permissions": [{"user": "alice", "vhost": "/", "configure": "^$", "write": ".*", "read": ".*"}],
        "topic_permissions": [{"user": "alice", "vhost": "/", "exchange": "amq.topic", "write": "^{username}", "read": ".*"}],
        "parameters": [{"value": {"max-queues": 10}, "vhost": "prod", "component": "vhost-limits", "name": "limits"}],
        "global_parameters": [{"name": "internal_cluster_id", "value": "rabbitmq-cluster-id-abc"}],
        "policies": [{"vhost": "/", "name": "ttl", "pattern": "^q", "apply-to": "queues",
                      "definition": {"message-ttl": 60000}, "priority": 1}],
        "queues": [{"name": "q1", "vhost": "/", "durable": true, "auto_delete": false,
                    "arguments": {"x-max-length": 1000, "x-queue-type": "classic"}}],
        "exchanges": [{"name": "ex1", "vhost": "/", "type": "topic", "durable": true, "auto_delete": false,
                       "internal": false, "arguments": {}}],
        "bindings": [{"source": "ex1", "vhost": "/", "destination": "q1", "destination_type": "queue",
                      "routing_key": "a.#", "arguments": {}}]
    })
}

#[test]
fn a_rabbitmq_export_round_trips_unchanged() {
    let original = rabbitmq_3_10_8_export();
    let parsed: Definitions = serde_json::from_value(original.clone()).expect("parses");
    assert_eq!(parsed.users.len(), 2);
    assert_eq!(parsed.users[0].tags, vec!["monitoring"]);
    assert_eq!(parsed.policies[0].apply_to.as_deref(), Some("queues"));
    assert_eq!(serde_json::to_value(&parsed).expect("serializes"), original);
}

#[test]
fn export_keys_come_in_rabbitmq_order_and_empty_lists_are_kept() {
    let text = serde_json::to_string(&Definitions {
        rabbit_version: Some("3.10.8".into()),
        rabbitmq_version: Some("3.10.8".into()),
        product_name: Some("RabbitMQ".into()),
        product_version: Some("3.10.8".into()),
        ..Definitions::default()
    })
    .expect("serializes");
    assert_eq!(
        text,
        "{\"rabbit_version\":\"3.10.8\",\"rabbitmq_version\":\"3.10.8\",\"product_name\":\"RabbitMQ\",\
         \"product_version\":\"3.10.8\",\"users\":[],\"vhosts\":[],\"permissions\":[],\"topic_permissions\":[],\
         \"parameters\":[],\"global_parameters\":[],\"policies\":[],\"queues\":[],\"exchanges\":[],\"bindings\":[]}"
    );
}

#[test]
fn a_per_vhost_export_round_trips_without_vhost_keys() {
    let original = json!({
        "rabbit_version": "3.10.8",
        "parameters": [],
        "policies": [{"vhost": "prod", "name": "p", "pattern": ".*", "apply-to": "all",
                      "definition": {"max-length": 5}, "priority": 0}],
        "queues": [{"name": "q", "durable": true, "auto_delete": false, "arguments": {}}],
        "exchanges": [{"name": "x", "type": "direct", "durable": true, "auto_delete": false, "internal": false,
                       "arguments": {}}],
        "bindings": [{"source": "x", "destination": "q", "destination_type": "queue", "routing_key": "k",
                      "arguments": {}}]
    });
    let parsed: VhostDefinitions = serde_json::from_value(original.clone()).expect("parses");
    assert_eq!(parsed.queues[0].vhost, None);
    assert_eq!(serde_json::to_value(&parsed).expect("serializes"), original);
}

#[test]
fn import_tolerates_missing_fields_unknown_keys_and_old_shapes() {
    let old = json!({
        "rabbit_version": "3.5.7",
        "users": [{"name": "old", "password_hash": "abcd", "tags": "administrator, management", "future": 1}],
        "vhosts": [{"name": "v", "metadata": {"description": "d", "tags": ["t"], "default_queue_type": "classic"}},
                   {"name": "w", "description": "top", "tags": "a,b", "default_queue_type": "stream"}],
        "queues": [{"name": "q", "vhost": "v", "type": "classic"}],
        "something_new": {"x": 1}
    });
    let parsed: Definitions = serde_json::from_value(old).expect("parses");
    let user = &parsed.users[0];
    assert_eq!(user.tags, vec!["administrator", "management"]);
    assert_eq!(user.hashing_algorithm, None);
    assert!(user.limits.is_empty());
    let metadata = parsed.vhosts[0].metadata.clone().expect("metadata");
    assert_eq!(metadata.tags, Some(vec!["t".to_owned()]));
    assert_eq!(parsed.vhosts[1].tags, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(parsed.queues[0].queue_type.as_deref(), Some("classic"));
    assert!(!parsed.queues[0].durable);
    assert!(parsed.permissions.is_empty() && parsed.policies.is_empty());
    let empty: Definitions = serde_json::from_str("{}").expect("an empty document parses");
    assert_eq!(empty, Definitions::default());
}

#[test]
fn bad_tags_are_refused() {
    let bad = json!({"users": [{"name": "u", "tags": 5}]});
    assert!(serde_json::from_value::<Definitions>(bad).is_err());
}

#[test]
fn a_policy_definition_gives_the_value_policies_read() {
    let policy = PolicyDefinition {
        vhost: None,
        name: "p".into(),
        pattern: json!("^a"),
        apply_to: None,
        definition: json!({"max-length": 1}),
        priority: None,
    };
    assert_eq!(policy.value(), json!({"pattern": "^a", "definition": {"max-length": 1}}));
}
