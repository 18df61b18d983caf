use super::*;

fn perms(configure: &str, write: &str, read: &str) -> UserPermissions {
    UserPermissions::new(configure, write, read).expect("valid expressions")
}

#[test]
fn expressions_are_unanchored_searches() {
    let p = perms("^$", ".*", "^app\\.");
    assert!(p.allows(Resource::queue(b""), Permission::Configure));
    assert!(!p.allows(Resource::queue(b"q"), Permission::Configure));
    assert!(p.allows(Resource::queue(b"anything"), Permission::Write));
    assert!(p.allows(Resource::queue(b"app.q"), Permission::Read));
    assert!(!p.allows(Resource::queue(b"my.app.q"), Permission::Read));
    let search = perms("q", "q", "q");
    assert!(search.allows(Resource::queue(b"xqx"), Permission::Configure), "not anchored");
}

#[test]
fn an_empty_expression_matches_only_the_empty_name() {
    let p = perms("", "", "");
    assert!(p.allows(Resource::queue(b""), Permission::Read));
    assert!(!p.allows(Resource::queue(b"q"), Permission::Read));
    assert_eq!(p.read.as_str(), "", "the expression is kept as set");
}

#[test]
fn the_default_exchange_is_checked_as_amq_default() {
    let p = perms("", "^amq\\.default$", "");
    assert!(p.allows(Resource::exchange(b""), Permission::Write));
    assert!(!perms("", "^$", "").allows(Resource::exchange(b""), Permission::Write));
    assert!(!p.allows(Resource::queue(b""), Permission::Write), "only exchanges are renamed");
    assert_eq!(Resource::exchange(b"").checked_name(), b"amq.default");
}

#[test]
fn names_are_matched_bytewise() {
    let p = perms(".", "^\\w+$", "é");
    assert!(p.allows(Resource::queue(&[0xff]), Permission::Configure), "any byte");
    assert!(!p.allows(Resource::queue("é".as_bytes()), Permission::Write), "\\w is ASCII");
    assert!(p.allows(Resource::queue("café".as_bytes()), Permission::Read));
}

#[test]
fn bad_expressions_are_refused() {
    assert!(matches!(UserPermissions::new("(", ".*", ".*"), Err(PatternError::Invalid { .. })));
    assert!(matches!(UserPermissions::new(".*", "(?=x)", ".*"), Err(PatternError::Invalid { .. })));
    let long = "a".repeat(ACCESS_PATTERN_BYTES_MAX + 1);
    assert!(matches!(Pattern::permission(&long), Err(PatternError::TooLong { .. })));
    assert!(matches!(Pattern::plain("a{1000}{1000}{1000}"), Err(PatternError::Invalid { .. })));
}

#[test]
fn topic_expressions_expand_user_and_vhost() {
    let topic =
        TopicPermission::new("alice", "prod", "amq.topic", "^{username}\\.", "^{vhost}\\.{username}$")
            .expect("valid");
    assert!(topic.allows(b"alice.x", Permission::Write));
    assert!(!topic.allows(b"bob.x", Permission::Write));
    assert!(topic.allows(b"prod.alice", Permission::Read));
    assert!(!topic.allows(b"prod.alice.x", Permission::Read));
    assert!(topic.allows(b"whatever", Permission::Configure));
    assert_eq!(topic.write.source, "^{username}\\.", "the expression is kept as set");
    let empty = TopicPermission::new("u", "v", "x", "", "").expect("valid");
    assert!(empty.allows(b"", Permission::Write) && !empty.allows(b"a", Permission::Write));
}

#[test]
fn refusals_render_rabbitmq_texts() {
    let resource = AccessRefused::Resource {
        kind: ResourceKind::Queue,
        name: "q".into(),
        vhost: "v".into(),
        user: "u".into(),
    };
    assert_eq!(resource.to_string(), "access to queue 'q' in vhost 'v' refused for user 'u'");
    assert_eq!(resource.code(), RefusalCode::AccessRefused);
    let exchange = AccessRefused::Resource {
        kind: ResourceKind::Exchange,
        name: "amq.default".into(),
        vhost: "/".into(),
        user: "guest".into(),
    };
    assert_eq!(
        exchange.to_string(),
        "access to exchange 'amq.default' in vhost '/' refused for user 'guest'"
    );
    let topic = AccessRefused::Topic {
        routing_key: "a.b".into(),
        exchange: "amq.topic".into(),
        vhost: "/".into(),
        user: "u".into(),
    };
    assert_eq!(
        topic.to_string(),
        "access to topic 'a.b' in exchange 'amq.topic' in vhost '/' refused for user 'u'"
    );
    let vhost = AccessRefused::Vhost { vhost: "X".into(), user: "U".into() };
    assert_eq!(vhost.to_string(), "access to vhost 'X' refused for user 'U'");
    assert_eq!(vhost.code(), RefusalCode::NotAllowed);
    let missing = AccessRefused::VhostNotFound { vhost: "X".into() };
    assert_eq!(missing.to_string(), "vhost X not found");
    let limit = AccessRefused::VhostConnectionLimit { vhost: "v".into(), user: "u".into(), limit: 2 };
    assert_eq!(
        limit.to_string(),
        "access to vhost 'v' refused for user 'u': connection limit (2) is reached"
    );
    let user = AccessRefused::UserConnectionLimit { user: "u".into(), limit: 0 };
    assert_eq!(user.to_string(), "connection refused for user 'u': user connection limit (0) is reached");
    let channels = AccessRefused::UserChannelLimit { user: "u".into(), limit: 5 };
    assert_eq!(
        channels.to_string(),
        "number of channels opened for user 'u' has reached the maximum allowed user limit of (5)"
    );
    let queues = AccessRefused::VhostQueueLimit { queue: "q".into(), vhost: "v".into(), limit: 1 };
    assert_eq!(queues.to_string(), "cannot declare queue 'q': queue limit in vhost 'v' (1) is reached");
    assert_eq!(queues.code(), RefusalCode::PreconditionFailed);
}
