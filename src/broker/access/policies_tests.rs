use serde_json::json;

use super::*;

fn policy(name: &str, pattern: &str, apply_to: &str, priority: i64, definition: Value) -> Policy {
    let value =
        json!({"pattern": pattern, "apply-to": apply_to, "priority": priority, "definition": definition});
    Policy::from_json("/", name, &value).expect("valid policy")
}

fn refusal(value: Value) -> String {
    Policy::from_json("/", "p", &value).expect_err("invalid policy").to_string()
}

#[test]
fn defaults_are_priority_zero_and_all() {
    let p = Policy::from_json("/", "p", &json!({"pattern": "^q", "definition": {"max-length": 5}}))
        .expect("valid");
    assert_eq!(p.apply_to, ApplyTo::All);
    assert_eq!(p.priority, Priority(Number::from(0)));
    assert_eq!(
        p.to_json(),
        json!({"pattern": "^q", "apply-to": "all", "priority": 0, "definition": {"max-length": 5}})
    );
}

#[test]
fn unknown_keys_are_refused_with_rabbitmq_text() {
    let text =
        refusal(json!({"pattern": ".*", "definition": {"foo": "bar", "max-length": 1, "ha-mode": "all"}}));
    assert_eq!(
        text,
        "Validation failed\n\n[{<<\"foo\">>,<<\"bar\">>},{<<\"ha-mode\">>,<<\"all\">>}] are not recognised policy settings\n"
    );
    let error = Policy::from_json("/", "p", &json!({"pattern": ".*", "definition": {"foo": 1}}))
        .expect_err("invalid");
    assert_eq!(
        error.http_reason(),
        "Validation failed\n\n[{&lt;&lt;\"foo\"&gt;&gt;,1}] are not recognised policy settings\n"
    );
}

#[test]
fn known_keys_are_validated_before_unknown_ones() {
    let text = refusal(json!({"pattern": ".*", "definition": {"aaa": 1, "max-length": -1}}));
    assert_eq!(text, "Validation failed\n\n-1 is not a valid maximum length\n");
}

#[test]
fn each_key_is_checked_as_rabbitmq_checks_it() {
    let cases = [
        (json!({"alternate-exchange": 1}), "1 is not a valid alternate exchange name"),
        (json!({"dead-letter-exchange": true}), "true is not a valid dead letter exchange name"),
        (json!({"dead-letter-routing-key": 2}), "2 is not a valid dead letter routing key"),
        (json!({"message-ttl": -1}), "-1 is not a valid message TTL"),
        (json!({"message-ttl": 1.5}), "1.5 is not a valid message TTL"),
        (json!({"expires": 0}), "0 is not a valid queue expiry"),
        (json!({"max-length": "10"}), "<<\"10\">> is not a valid maximum length"),
        (json!({"max-length-bytes": -5}), "-5 is not a valid maximum length in bytes"),
        (json!({"overflow": "drop-tail"}), "<<\"drop-tail\">> is not a valid overflow value"),
        (json!({"max-age": "7d"}), "<<\"7d\">> is not a valid max age"),
        (json!({"max-age": "0D"}), "<<\"0D\">> is not a valid max age"),
        (json!({"max-age": 10}), "10 is not a valid max age"),
        (
            json!({"stream-max-segment-size-bytes": 3_000_000_001_u64}),
            "3000000001 is not a valid segment size",
        ),
    ];
    for (definition, reason) in cases {
        let text = refusal(json!({"pattern": ".*", "definition": definition}));
        assert_eq!(text, format!("Validation failed\n\n{reason}\n"), "{definition}");
    }
    let good = json!({"alternate-exchange": "ae", "dead-letter-exchange": "", "dead-letter-routing-key": "k",
        "message-ttl": 0, "expires": 1, "max-length": 0, "max-length-bytes": 0, "overflow": "reject-publish-dlx",
        "max-age": "1Y", "stream-max-segment-size-bytes": 3_000_000_000_u64});
    assert!(Policy::from_json("/", "p", &json!({"pattern": ".*", "definition": good})).is_ok());
}

#[test]
fn the_policy_itself_is_validated() {
    assert_eq!(
        refusal(json!({"pattern": ".*", "definition": {}})),
        "Validation failed\n\nno policy provided\n"
    );
    assert_eq!(
        refusal(json!({"pattern": ".*", "definition": [1]})),
        "Validation failed\n\ndefinition must be a dictionary: [1]\n"
    );
    assert_eq!(
        refusal(json!({"pattern": ".*", "apply-to": "streams", "definition": {"max-length": 1}})),
        "Validation failed\n\napply-to 'streams' unrecognised; should be 'queues', 'exchanges' or 'all'\n"
    );
    assert_eq!(
        refusal(json!({"definition": {"max-length": 1}, "priority": "high"})),
        "Validation failed\n\npattern should be a binary but was undefined\npriority should be a number, actually was <<\"high\">>\n"
    );
    assert!(refusal(json!({"pattern": "(", "definition": {"max-length": 1}}))
        .starts_with("Validation failed\n\npattern should be regular expression but is invalid: "));
}

#[test]
fn the_highest_priority_matching_policy_applies() {
    let low = policy("low", ".*", "all", 0, json!({"max-length": 1}));
    let high = policy("high", "orders", "queues", 5, json!({"max-length": 2}));
    let exchanges = policy("ex", ".*", "exchanges", 9, json!({"alternate-exchange": "ae"}));
    let all = [low.clone(), high.clone(), exchanges.clone()];
    let queue = PolicyTarget::Queue(QueueKind::Classic);
    assert_eq!(effective(&all, "/", b"orders.eu", queue), Some(&high));
    assert_eq!(effective(&all, "/", b"my.orders", queue), Some(&high), "patterns are unanchored");
    assert_eq!(effective(&all, "/", b"billing", queue), Some(&low));
    let anchored = policy("anchored", "^orders", "queues", 7, json!({"max-length": 3}));
    assert_eq!(effective([&low, &anchored], "/", b"my.orders", queue), Some(&low));
    assert_eq!(effective(&all, "/", b"orders", PolicyTarget::Exchange), Some(&exchanges));
    assert_eq!(effective(&all, "other", b"orders", queue), None, "policies belong to one vhost");
}

#[test]
fn equal_priorities_go_to_the_first_name() {
    let b = policy("b", ".*", "all", 1, json!({"max-length": 1}));
    let a = policy("a", ".*", "all", 1, json!({"max-length": 2}));
    let chosen = effective([&b, &a], "/", b"q", PolicyTarget::Queue(QueueKind::Classic));
    assert_eq!(chosen.map(|p| p.name.as_str()), Some("a"));
}

#[test]
fn a_policy_with_a_key_the_queue_type_does_not_support_skips_it() {
    let classic_only = policy("c", ".*", "queues", 5, json!({"max-length": 1}));
    let stream_only = policy("s", ".*", "queues", 1, json!({"max-age": "1D"}));
    let all = [classic_only.clone(), stream_only.clone()];
    assert_eq!(effective(&all, "/", b"q", PolicyTarget::Queue(QueueKind::Classic)), Some(&classic_only));
    assert_eq!(effective(&all, "/", b"q", PolicyTarget::Queue(QueueKind::Stream)), Some(&stream_only));
    let mixed = policy("m", ".*", "queues", 9, json!({"max-age": "1D", "max-length-bytes": 1}));
    assert!(!mixed.matches("/", b"q", PolicyTarget::Queue(QueueKind::Classic)));
    assert!(mixed.matches("/", b"q", PolicyTarget::Queue(QueueKind::Stream)));
}

#[test]
fn float_priorities_order_with_integers() {
    let value = json!({"pattern": ".*", "priority": 1.5, "definition": {"max-length": 1}});
    let float = Policy::from_json("/", "f", &value).expect("valid");
    let one = policy("one", ".*", "all", 1, json!({"max-length": 1}));
    let two = policy("two", ".*", "all", 2, json!({"max-length": 1}));
    let target = PolicyTarget::Queue(QueueKind::Classic);
    assert_eq!(effective([&one, &float], "/", b"q", target), Some(&float));
    assert_eq!(effective([&two, &float], "/", b"q", target), Some(&two));
}

#[test]
fn max_age_parses_as_rabbitmq_does() {
    assert_eq!(max_age_ms("7D"), Some(7 * 86_400_000));
    assert_eq!(max_age_ms("1h"), Some(3_600_000));
    assert_eq!(max_age_ms("2M"), Some(60 * 86_400_000));
    assert_eq!(max_age_ms("1Y"), Some(365 * 86_400_000));
    assert_eq!(max_age_ms("30s"), Some(30_000));
    for bad in ["", "h", "0s", "10", "10 s", "1hh", "-1h"] {
        assert_eq!(max_age_ms(bad), None, "{bad}");
    }
}
