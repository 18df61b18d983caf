//! Topic matching edge cases, each checked against RabbitMQ's semantics.

use super::{route, topic_with};

/// Whether a topic exchange with the single binding `pattern` routes `key`.
fn matches(pattern: &str, key: &str) -> bool {
    route(&topic_with(&[pattern]), key, &Vec::new()) == vec![0]
}

/// Asserts every (pattern, key, expected) case.
fn check(cases: &[(&str, &str, bool)]) {
    for &(pattern, key, expected) in cases {
        assert_eq!(matches(pattern, key), expected, "pattern {pattern:?} key {key:?}");
    }
}

#[test]
fn empty_routing_key() {
    check(&[
        ("#", "", true),
        ("", "", true),
        ("#.#", "", true),
        ("*", "", false),
        ("#.*", "", false),
        ("*.#", "", false),
        ("a", "", false),
        ("#.a", "", false),
    ]);
}

#[test]
fn empty_pattern_matches_only_empty_key() {
    check(&[("", "", true), ("", "a", false), ("", ".", false), ("", "a.b", false)]);
}

#[test]
fn single_star() {
    check(&[
        ("*", "a", true),
        ("*", "abc", true),
        ("*", "", false),
        ("*", "a.b", false),
        ("*", ".", false),
        ("*.*", "a.b", true),
        ("*.*", "a", false),
        ("*.*", ".", true),
    ]);
}

#[test]
fn hash_alone_matches_everything() {
    for key in ["", "a", "a.b", ".", "..", "a..b", ".a", "a.", "#", "*"] {
        assert!(matches("#", key), "{key:?}");
    }
}

#[test]
fn empty_words() {
    check(&[
        ("a..b", "a..b", true),
        ("a.*.b", "a..b", true),
        ("a.#.b", "a..b", true),
        ("a.b", "a..b", false),
        ("*.*.*", "a..b", true),
        ("a.#", "a..b", true),
        ("*.b", "a..b", false),
        (".a", ".a", true),
        ("*.a", ".a", true),
        ("#.a", ".a", true),
        ("a", ".a", false),
        (".a", "a", false),
        ("a.", "a.", true),
        ("a.*", "a.", true),
        ("a.#", "a.", true),
        ("a", "a.", false),
        ("a.", "a", false),
        (".", ".", true),
        ("..", "..", true),
        (".", "..", false),
        ("", ".", false),
    ]);
}

#[test]
fn hash_hash() {
    check(&[("#.#", "", true), ("#.#", "a", true), ("#.#", "a.b.c", true), ("#.#.#", "a..", true)]);
}

#[test]
fn hash_star_hash_needs_one_word() {
    check(&[("#.*.#", "", false), ("#.*.#", "a", true), ("#.*.#", "a.b.c", true), ("#.*.#", ".", true)]);
}

#[test]
fn hash_in_the_middle_and_at_ends() {
    check(&[
        ("a.#.b", "a.b", true),
        ("a.#.b", "a.x.y.b", true),
        ("a.#.b", "a.b.c", false),
        ("a.#.b", "b.a.b", false),
        ("#.a", "a", true),
        ("#.a", "b.a", true),
        ("#.a", "a.b", false),
        ("a.#", "a", true),
        ("a.#", "a.b.c", true),
        ("a.#", "b", false),
        ("a.*.#", "a", false),
        ("a.*.#", "a.b", true),
    ]);
}

#[test]
fn literal_words_are_exact() {
    check(&[
        ("a", "A", false),
        ("ab", "a", false),
        ("a.b", "a.b", true),
        ("a.b", "a.c", false),
        ("*", "*", true),
        ("#", "#", true),
        ("a", "*", false),
        ("a", "#", false),
    ]);
}

#[test]
fn many_hashes_do_not_blow_up() {
    let pattern = vec!["#"; 40].join(".") + ".z";
    let miss = vec!["a"; 64].join(".");
    let hit = miss.clone() + ".z";
    let started = std::time::Instant::now();
    assert!(!matches(&pattern, &miss));
    assert!(matches(&pattern, &hit));
    let alternating = vec!["#.*"; 20].join(".");
    assert!(!matches(&alternating, &vec!["a"; 19].join(".")));
    assert!(matches(&alternating, &vec!["a"; 64].join(".")));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn destination_bound_by_several_patterns_gets_one_copy() {
    let mut ex = topic_with(&["a.*", "*.b", "#", "a.b"]);
    // Re-bind destination 0 with yet another matching pattern.
    ex.bind(b"#.b", Vec::new(), 0);
    assert_eq!(route(&ex, "a.b", &Vec::new()), vec![0, 1, 2, 3]);
    assert_eq!(route(&ex, "a.c", &Vec::new()), vec![0, 2]);
    assert_eq!(route(&ex, "", &Vec::new()), vec![2]);
}

#[test]
fn unbinding_prunes_the_trie() {
    let patterns = ["a.b.c", "a.*.#", "#.#", "", "a..", "#"];
    let mut ex = topic_with(&patterns);
    assert!(ex.trie.as_ref().is_some_and(|t| t.node_count() > 1));
    for (dest, pattern) in (0u32..).zip(patterns) {
        assert!(ex.unbind(pattern.as_bytes(), &[], dest));
        assert!(!ex.unbind(pattern.as_bytes(), &[], dest));
    }
    assert!(ex.is_empty());
    assert_eq!(ex.trie.as_ref().map(|t| t.node_count()), Some(1));
    assert!(route(&ex, "a.b.c", &Vec::new()).is_empty());
}
