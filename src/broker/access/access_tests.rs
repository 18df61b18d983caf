use serde_json::json;

use super::definitions::{Definitions, VhostDefinitions};
use super::*;
use crate::limits::{ACCESS_USER_NAME_BYTES_MAX, ACCESS_VHOST_NAME_BYTES_MAX};

fn guest() -> AccessControl {
    AccessControl::with_default_user("guest", "guest").expect("default state")
}

fn exported_by_rabbitmq() -> Definitions {
    serde_json::from_value(json!({
        "rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8",
        "product_name": "RabbitMQ", "product_version": "3.10.8",
        "users": [
            {"name": "alice", "password_hash": "Zt0liDS+w8PXki8KVMjzkt1Jlu8UsIUBm3Ku3yykU1IlRXpP",
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["monitoring"], "limits": {}},
            {"name": "bob", "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256",
             "tags": [], "limits": {"max-connections": 2}}
        ],
        "vhosts": [{"name": "/"}, {"name": "prod"}],
        "permissions": [{"user": "alice", "vhost": "prod", "configure": "^$", "write": ".*", "read": "^alice\\."}],
        "topic_permissions": [{"user": "alice", "vhost": "prod", "exchange": "amq.topic",
                               "write": "^{username}\\.", "read": ".*"}],
        "parameters": [{"value": {"max-queues": 10}, "vhost": "prod", "component": "vhost-limits", "name": "limits"},
                       {"value": {"uri": "amqp://x"}, "vhost": "prod", "component": "federation-upstream", "name": "up"}],
        "global_parameters": [{"name": "internal_cluster_id", "value": "rabbitmq-cluster-id-x"}],
        "policies": [{"vhost": "prod", "name": "limit", "pattern": "^alice\\.", "apply-to": "queues",
                      "definition": {"max-length": 100}, "priority": 1}],
        "queues": [], "exchanges": [], "bindings": []
    }))
    .expect("a 3.10.8 export parses")
}

#[test]
fn the_first_start_has_guest_as_administrator_of_the_default_vhost() {
    let access = guest();
    let state = access.snapshot();
    let user = state.authenticate("guest", "guest").expect("guest logs in");
    assert!(user.is_administrator());
    assert_eq!(state.check_vhost_access("guest", "/"), Ok(()));
    assert_eq!(state.check("guest", "/", Resource::queue(b"any"), Permission::Configure), Ok(()));
    assert_eq!(state.check("guest", "/", Resource::exchange(b""), Permission::Write), Ok(()));
    assert_eq!(state.all_permissions().len(), 1);
}

#[test]
fn logins_fail_alike_for_unknown_users_wrong_and_blank_passwords() {
    let state = guest().snapshot();
    assert_eq!(
        state.authenticate("guest", "nope"),
        Err(AuthError::InvalidCredentials { user: "guest".into() })
    );
    assert_eq!(
        state.authenticate("ghost", "guest"),
        Err(AuthError::InvalidCredentials { user: "ghost".into() })
    );
    assert_eq!(state.authenticate("guest", ""), Err(AuthError::BlankPassword { user: "guest".into() }));
    assert_eq!(
        AuthError::InvalidCredentials { user: "x".into() }.to_string(),
        "user 'x' - invalid credentials"
    );
}

#[test]
fn users_can_be_added_changed_and_deleted() {
    let access = guest();
    access
        .update(|state| {
            state.add_user("carol", Some("pw1"), users::parse_tags("management"))?;
            state.set_permissions("carol", "/", "", ".*", ".*")
        })
        .expect("added");
    assert_eq!(
        access.update(|state| state.add_user("carol", None, vec![])),
        Err(AccessError::UserExists("carol".into()))
    );
    access.update(|state| state.change_password("carol", Some("pw2"))).expect("changed");
    let state = access.snapshot();
    assert!(state.authenticate("carol", "pw1").is_err());
    assert!(state.authenticate("carol", "pw2").is_ok());
    access.update(|state| state.set_user_tags("carol", vec![Tag::Policymaker])).expect("tagged");
    assert!(access.snapshot().user("carol").expect("carol").is_policymaker());
    access.update(|state| state.change_password("carol", None)).expect("cleared");
    assert!(access.snapshot().authenticate("carol", "pw2").is_err(), "no password: no password login");
    access.update(|state| state.delete_user("carol")).expect("deleted");
    let state = access.snapshot();
    assert!(state.user("carol").is_none());
    assert!(state.permissions("carol", "/").is_none(), "permissions go with the user");
    assert_eq!(
        access.update(|state| state.delete_user("carol")),
        Err(AccessError::NoSuchUser("carol".into()))
    );
}

#[test]
fn resource_checks_refuse_with_rabbitmq_texts() {
    let access = guest();
    access
        .update(|state| {
            state.add_user("u", Some("p"), vec![])?;
            state.set_permissions("u", "/", "^u\\.", "^amq\\.default$", "")
        })
        .expect("set");
    let state = access.snapshot();
    assert_eq!(state.check("u", "/", Resource::queue(b"u.q"), Permission::Configure), Ok(()));
    let refused = state.check("u", "/", Resource::queue(b"q"), Permission::Configure).expect_err("refused");
    assert_eq!(refused.to_string(), "access to queue 'q' in vhost '/' refused for user 'u'");
    assert_eq!(state.check("u", "/", Resource::exchange(b""), Permission::Write), Ok(()));
    let refused =
        state.check("u", "/", Resource::exchange(b"amq.direct"), Permission::Write).expect_err("refused");
    assert_eq!(refused.to_string(), "access to exchange 'amq.direct' in vhost '/' refused for user 'u'");
    let refused = state.check("u", "/", Resource::exchange(b""), Permission::Read).expect_err("refused");
    assert_eq!(refused.to_string(), "access to exchange 'amq.default' in vhost '/' refused for user 'u'");
    assert!(state.check("nobody", "/", Resource::queue(b"q"), Permission::Read).is_err());
}

#[test]
fn vhost_access_needs_the_vhost_and_a_permission_entry() {
    let access = guest();
    access.update(|state| state.add_user("u", Some("p"), vec![])).expect("added");
    let state = access.snapshot();
    assert_eq!(
        state.check_vhost_access("u", "/").map_err(|e| e.to_string()),
        Err("access to vhost '/' refused for user 'u'".into())
    );
    assert_eq!(
        state.check_vhost_access("guest", "nowhere").map_err(|e| e.to_string()),
        Err("vhost nowhere not found".into())
    );
}

#[test]
fn topic_permissions_apply_per_exchange() {
    let access = guest();
    access
        .update(|state| state.set_topic_permissions("guest", "/", "amq.topic", "^{username}\\.", "^{vhost}$"))
        .expect("set");
    let state = access.snapshot();
    assert_eq!(state.check_topic("guest", "/", b"amq.topic", b"guest.a", Permission::Write), Ok(()));
    let refused =
        state.check_topic("guest", "/", b"amq.topic", b"bob.a", Permission::Write).expect_err("refused");
    assert_eq!(
        refused.to_string(),
        "access to topic 'bob.a' in exchange 'amq.topic' in vhost '/' refused for user 'guest'"
    );
    assert_eq!(state.check_topic("guest", "/", b"amq.topic", b"/", Permission::Read), Ok(()));
    assert_eq!(
        state.check_topic("guest", "/", b"other", b"bob.a", Permission::Write),
        Ok(()),
        "no entry: allowed"
    );
    access.update(|state| state.clear_topic_permissions("guest", "/", Some("amq.topic"))).expect("cleared");
    assert_eq!(
        access.snapshot().check_topic("guest", "/", b"amq.topic", b"bob.a", Permission::Write),
        Ok(())
    );
    assert!(access.snapshot().all_topic_permissions().is_empty());
}

#[test]
fn deleting_a_vhost_drops_its_permissions_and_policies() {
    let access = guest();
    access
        .update(|state| {
            state.add_vhost("v")?;
            state.set_permissions("guest", "v", ".*", ".*", ".*")?;
            state.set_topic_permissions("guest", "v", "t", ".*", ".*")?;
            state.set_policy(Policy::from_json(
                "v",
                "p",
                &json!({"pattern": ".*", "definition": {"max-length": 1}}),
            )?)
        })
        .expect("set");
    assert_eq!(access.snapshot().policies("v").len(), 1);
    access.update(|state| state.delete_vhost("v")).expect("deleted");
    let state = access.snapshot();
    assert!(state.vhost("v").is_none() && state.permissions("guest", "v").is_none());
    assert!(state.policies("v").is_empty() && state.all_topic_permissions().is_empty());
    assert!(state.permissions("guest", "/").is_some(), "other vhosts keep theirs");
    assert_eq!(access.update(|state| state.delete_vhost("v")), Err(AccessError::NoSuchVhost("v".into())));
}

#[test]
fn permissions_need_an_existing_user_and_vhost() {
    let access = guest();
    assert_eq!(
        access.update(|state| state.set_permissions("ghost", "/", ".*", ".*", ".*")),
        Err(AccessError::NoSuchUser("ghost".into()))
    );
    assert_eq!(
        access.update(|state| state.set_permissions("guest", "v", ".*", ".*", ".*")),
        Err(AccessError::NoSuchVhost("v".into()))
    );
    assert!(matches!(
        access.update(|state| state.set_permissions("guest", "/", "(", ".*", ".*")),
        Err(AccessError::Pattern(_))
    ));
    access.update(|state| state.clear_permissions("guest", "/")).expect("cleared");
    assert!(access.snapshot().check_vhost_access("guest", "/").is_err());
}

#[test]
fn policies_are_set_replaced_matched_and_cleared() {
    let access = guest();
    let policy = |priority: i64, max: i64| {
        Policy::from_json(
            "/",
            "p",
            &json!({"pattern": "^q", "priority": priority, "definition": {"max-length": max}}),
        )
    };
    access.update(|state| state.set_policy(policy(1, 10)?)).expect("set");
    access.update(|state| state.set_policy(policy(2, 20)?)).expect("replaced");
    let state = access.snapshot();
    assert_eq!(state.policies("/").len(), 1);
    let chosen =
        state.effective_policy("/", b"q1", PolicyTarget::Queue(QueueKind::Classic)).expect("matches");
    assert_eq!(chosen.get("max-length"), Some(&json!(20)));
    assert!(state.effective_policy("/", b"x", PolicyTarget::Queue(QueueKind::Classic)).is_none());
    let missing =
        Policy::from_json("nowhere", "p", &json!({"pattern": ".*", "definition": {"max-length": 1}}));
    assert_eq!(
        access.update(|state| state.set_policy(missing?)),
        Err(AccessError::NoSuchVhost("nowhere".into()))
    );
    access.update(|state| state.clear_policy("/", "p")).expect("cleared");
    assert_eq!(
        access.update(|state| state.clear_policy("/", "p")),
        Err(AccessError::NoSuchPolicy { vhost: "/".into(), name: "p".into() })
    );
}

#[test]
fn limits_refuse_connections_channels_and_queues_in_rabbitmq_order() {
    let access = guest();
    access
        .update(|state| {
            state.set_vhost_limits("/", VhostLimits { max_connections: Some(2), max_queues: Some(1) })?;
            state.set_user_limits("guest", UserLimits { max_connections: Some(1), max_channels: Some(0) })
        })
        .expect("set");
    let state = access.snapshot();
    assert_eq!(state.check_new_connection("guest", "/", 0, 0), Ok(()));
    let text = |result: Result<(), AccessRefused>| result.map_err(|error| error.to_string());
    assert_eq!(
        text(state.check_new_connection("guest", "/", 2, 5)),
        Err("access to vhost '/' refused for user 'guest': connection limit (2) is reached".into())
    );
    assert_eq!(
        text(state.check_new_connection("guest", "/", 1, 1)),
        Err("connection refused for user 'guest': user connection limit (1) is reached".into())
    );
    assert_eq!(text(state.check_new_connection("guest", "x", 0, 0)), Err("vhost x not found".into()));
    assert!(state.check_new_channel("guest", 0).is_err(), "0 allows no channel");
    assert_eq!(state.check_new_queue("/", b"q0", 0), Ok(()));
    assert_eq!(
        text(state.check_new_queue("/", b"q1", 1)),
        Err("cannot declare queue 'q1': queue limit in vhost '/' (1) is reached".into())
    );
}

#[test]
fn a_failed_change_publishes_nothing() {
    let access = guest();
    let before = access.generation();
    let result = access.update(|state| {
        state.add_vhost("half")?;
        state.set_permissions("ghost", "half", ".*", ".*", ".*")
    });
    assert!(result.is_err());
    assert!(access.snapshot().vhost("half").is_none());
    assert_eq!(access.generation(), before);
    access.update(|state| state.add_vhost("whole")).expect("added");
    assert_eq!(access.generation(), before + 1);
}

#[test]
fn snapshots_do_not_change_under_their_holders() {
    let access = guest();
    let old = access.snapshot();
    access.update(|state| state.delete_user("guest")).expect("deleted");
    assert!(old.user("guest").is_some());
    assert!(access.snapshot().user("guest").is_none());
}

#[test]
fn names_and_bounds_are_enforced() {
    let access = guest();
    let long_user = "u".repeat(ACCESS_USER_NAME_BYTES_MAX + 1);
    assert!(matches!(
        access.update(|state| state.add_user(&long_user, None, vec![])),
        Err(AccessError::BadName { .. })
    ));
    let long_vhost = "v".repeat(ACCESS_VHOST_NAME_BYTES_MAX + 1);
    assert!(matches!(access.update(|state| state.add_vhost(&long_vhost)), Err(AccessError::BadName { .. })));
    assert!(matches!(access.update(|state| state.add_vhost("")), Err(AccessError::BadName { .. })));
    let tags = (0..100).map(|n| Tag::Other(n.to_string())).collect();
    assert!(matches!(
        access.update(|state| state.set_user_tags("guest", tags)),
        Err(AccessError::TooMany { .. })
    ));
}

#[test]
fn a_rabbitmq_export_imports_with_working_passwords() {
    let access = guest();
    access.update(|state| state.import_definitions(&exported_by_rabbitmq())).expect("imported");
    let state = access.snapshot();
    let alice = state.authenticate("alice", "secret").expect("alice logs in with her RabbitMQ password");
    assert!(alice.is_monitor());
    assert!(state.authenticate("bob", "anything").is_err(), "bob has no password");
    assert_eq!(state.user("bob").expect("bob").limits.connections_max(), Some(2));
    assert_eq!(state.vhost("prod").expect("prod").limits.queues_max(), Some(10));
    assert_eq!(state.check("alice", "prod", Resource::queue(b"alice.q"), Permission::Read), Ok(()));
    assert!(state.check("alice", "prod", Resource::queue(b"q"), Permission::Configure).is_err());
    assert!(state.check_topic("alice", "prod", b"amq.topic", b"bob.x", Permission::Write).is_err());
    let policy = state.effective_policy("prod", b"alice.q", PolicyTarget::Queue(QueueKind::Classic));
    assert_eq!(policy.map(|p| p.name.as_str()), Some("limit"));
    assert!(state.user("guest").is_some(), "an import merges");
}

#[test]
fn users_of_old_exports_get_md5() {
    let salt = [1, 2, 3, 4];
    let hash = PasswordHash::with_salt(HashingAlgorithm::Md5, salt, "old-pw").to_base64();
    let old: Definitions = serde_json::from_value(
        json!({"rabbit_version": "3.5.7", "users": [{"name": "o", "password_hash": hash, "tags": ""}]}),
    )
    .expect("parses");
    let access = guest();
    access.update(|state| state.import_definitions(&old)).expect("imported");
    let state = access.snapshot();
    assert!(state.authenticate("o", "old-pw").is_ok());
    assert_eq!(state.user("o").expect("o").password.algorithm(), HashingAlgorithm::Md5);
}

#[test]
fn a_bad_import_changes_nothing_and_names_the_policy() {
    let mut bad = exported_by_rabbitmq();
    bad.policies[0].definition = json!({"foo": 1});
    let access = guest();
    let error = access.update(|state| state.import_definitions(&bad)).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "Validation failed\n\n[{<<\"foo\">>,1}] are not recognised policy settings\n (prod/limit)"
    );
    assert!(access.snapshot().user("alice").is_none(), "nothing of it applied");
    let mut unknown = exported_by_rabbitmq();
    unknown.users[0].hashing_algorithm = Some("rabbit_password_hashing_sha3".into());
    assert!(matches!(
        access.update(|state| state.import_definitions(&unknown)),
        Err(AccessError::Password(_))
    ));
}

#[test]
fn the_export_has_rabbitmq_3_10_8_shape() {
    let access = guest();
    access.update(|state| state.import_definitions(&exported_by_rabbitmq())).expect("imported");
    let exported = serde_json::to_value(access.snapshot().export_definitions()).expect("serializes");
    assert_eq!(exported["vhosts"], json!([{"name": "/"}, {"name": "prod"}]));
    assert_eq!(
        exported["users"][0],
        json!({"name": "alice", "password_hash": "Zt0liDS+w8PXki8KVMjzkt1Jlu8UsIUBm3Ku3yykU1IlRXpP",
               "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["monitoring"], "limits": {}})
    );
    assert_eq!(exported["users"][1]["limits"], json!({"max-connections": 2}));
    assert_eq!(
        exported["parameters"],
        json!([{"value": {"max-queues": 10}, "vhost": "prod", "component": "vhost-limits", "name": "limits"}])
    );
    assert_eq!(
        exported["policies"],
        json!([{"vhost": "prod", "name": "limit", "pattern": "^alice\\.", "apply-to": "queues",
                "definition": {"max-length": 100}, "priority": 1}])
    );
    assert_eq!(exported["topic_permissions"][0]["write"], json!("^{username}\\."));
    let keys: Vec<&String> = exported.as_object().expect("object").keys().collect();
    for key in ["users", "vhosts", "permissions", "topic_permissions", "parameters", "policies", "queues"] {
        assert!(keys.iter().any(|k| k.as_str() == key), "{key}");
    }
}

#[test]
fn a_vhost_export_imports_into_another_vhost() {
    let access = guest();
    access.update(|state| state.import_definitions(&exported_by_rabbitmq())).expect("imported");
    let exported = access.snapshot().export_vhost_definitions("prod");
    let mut text = serde_json::to_value(&exported).expect("serializes");
    text["policies"][0].as_object_mut().expect("object").remove("vhost");
    text["parameters"][0].as_object_mut().expect("object").remove("vhost");
    let without_vhosts: VhostDefinitions = serde_json::from_value(text).expect("parses");
    access
        .update(|state| {
            state.add_vhost("staging")?;
            state.import_vhost_definitions("staging", &without_vhosts)
        })
        .expect("imported");
    let state = access.snapshot();
    assert_eq!(state.policies("staging").len(), 1);
    assert_eq!(state.vhost("staging").expect("staging").limits.queues_max(), Some(10));
    assert!(matches!(
        access.update(|state| state.import_vhost_definitions("nowhere", &without_vhosts)),
        Err(AccessError::NoSuchVhost(_))
    ));
}

#[test]
fn the_state_survives_bytes_whole() {
    let access = guest();
    access
        .update(|state| {
            state.import_definitions(&exported_by_rabbitmq())?;
            state.put_vhost(Vhost {
                name: "meta".into(),
                description: "described".into(),
                tags: vec!["a".into(), "b".into()],
                default_queue_type: Some("stream".into()),
                tracing: true,
                limits: VhostLimits { max_connections: Some(-1), max_queues: None },
            })
        })
        .expect("set");
    let bytes = access.to_bytes();
    let loaded = AccessControl::from_bytes(&bytes).expect("loads");
    let (before, after) = (access.snapshot(), loaded.snapshot());
    assert_eq!(after.vhost("meta"), before.vhost("meta"));
    assert_eq!(after.authenticate("alice", "secret").map(|u| u.name.clone()), Ok("alice".into()));
    assert!(after.authenticate("guest", "guest").is_ok());
    assert_eq!(after.users().count(), before.users().count());
    assert_eq!(after.all_permissions().len(), before.all_permissions().len());
    assert_eq!(after.all_topic_permissions().len(), 1);
    assert_eq!(after.all_policies().count(), 1);
    assert_eq!(loaded.to_bytes(), bytes, "saving again gives the same bytes");
    assert!(matches!(AccessControl::from_bytes(b"{\"format\":9}"), Err(AccessError::Invalid(_))));
    assert!(matches!(AccessControl::from_bytes(b"garbage"), Err(AccessError::Invalid(_))));
}

#[test]
fn the_model_is_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<AccessControl>();
    let access = std::sync::Arc::new(guest());
    let reader = {
        let access = std::sync::Arc::clone(&access);
        std::thread::spawn(move || {
            for _ in 0..1000 {
                let state = access.snapshot();
                // Every published state is whole: guest has its permissions or is gone.
                if state.user("guest").is_some() {
                    assert!(state.permissions("guest", "/").is_some());
                }
            }
        })
    };
    for round in 0..100 {
        let name = format!("v{round}");
        access.update(|state| state.add_vhost(&name)).expect("added");
    }
    access.update(|state| state.delete_user("guest")).expect("deleted");
    reader.join().expect("the reader saw only whole states");
    assert_eq!(access.generation(), 101);
}

#[test]
fn reimporting_a_vhost_keeps_what_the_document_leaves_out() {
    let access = guest();
    access
        .update(|state| {
            let mut vhost = Vhost::new("v");
            vhost.tracing = true;
            vhost.limits.max_queues = Some(3);
            state.put_vhost(vhost)
        })
        .expect("set");
    let names_only: Definitions = serde_json::from_value(json!({"vhosts": [{"name": "v"}]})).expect("parses");
    access.update(|state| state.import_definitions(&names_only)).expect("imported");
    let state = access.snapshot();
    let vhost = state.vhost("v").expect("v");
    assert!(vhost.tracing);
    assert_eq!(vhost.limits.queues_max(), Some(3));
}
