//! Property tests: the topic trie against an obviously correct recursive
//! matcher, over a small word alphabet, through bind/unbind sequences.

use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;

use super::{route, s, table, Exchange, Table};
use crate::broker::exchange::ExchangeKind;

/// Splits like RabbitMQ: "" has no words, otherwise split on every dot.
fn words(text: &str) -> Vec<&str> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('.').collect()
    }
}

/// Reference matcher, straight from the definition of `*` and `#`.
fn reference(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| reference(rest, key.get(skip..).unwrap_or(&[]))),
        Some((&"*", rest)) => key.split_first().is_some_and(|(_, tail)| reference(rest, tail)),
        Some((word, rest)) => {
            key.split_first().is_some_and(|(first, tail)| first == word && reference(rest, tail))
        }
    }
}

fn key_word() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("a"), Just("b"), Just("c"), Just("")]
}

fn pattern_word() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => key_word(), 1 => Just("*"), 1 => Just("#")]
}

fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(pattern_word(), 0..7).prop_map(|w| w.join("."))
}

fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(key_word(), 0..7).prop_map(|w| w.join("."))
}

/// Two distinct argument tables, so the same (pattern, destination) pair
/// can carry two bindings.
fn args(variant: u8) -> Table {
    if variant == 0 {
        Vec::new()
    } else {
        table(&[("x-tag", s("two"))])
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn single_binding_matches_reference(pattern in pattern(), key in key()) {
        let mut ex = Exchange::new(ExchangeKind::Topic);
        ex.bind(pattern.as_bytes(), Vec::new(), 7);
        let expected = reference(&words(&pattern), &words(&key));
        prop_assert_eq!(route(&ex, &key, &Vec::new()) == vec![7], expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn bind_unbind_sequences_match_reference(
        pool in prop::collection::vec(pattern(), 1..8),
        ops in prop::collection::vec((any::<bool>(), 0..8usize, 0..2u8, 0..4u32), 0..60),
        keys in prop::collection::vec(key(), 1..12),
    ) {
        let mut ex = Exchange::new(ExchangeKind::Topic);
        let mut model: HashSet<(String, u8, u32)> = HashSet::new();
        for (is_bind, index, variant, dest) in ops {
            let pattern = pool.get(index % pool.len()).cloned().unwrap_or_default();
            let entry = (pattern.clone(), variant, dest);
            if is_bind {
                prop_assert_eq!(ex.bind(pattern.as_bytes(), args(variant), dest), model.insert(entry));
            } else {
                prop_assert_eq!(ex.unbind(pattern.as_bytes(), &args(variant), dest), model.remove(&entry));
            }
            prop_assert_eq!(ex.len(), model.len());
        }
        for key in &keys {
            let expected: Vec<u32> = model
                .iter()
                .filter(|(p, _, _)| reference(&words(p), &words(key)))
                .map(|&(_, _, d)| d)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            prop_assert_eq!(route(&ex, key, &Vec::new()), expected, "key {:?}", key);
        }
        let dests: BTreeSet<u32> = ex.destinations().collect();
        let model_dests: BTreeSet<u32> = model.iter().map(|&(_, _, d)| d).collect();
        prop_assert_eq!(dests, model_dests);
        let listed: HashSet<(String, u8, u32)> = ex
            .bindings()
            .map(|b| (
                String::from_utf8_lossy(b.key).into_owned(),
                u8::from(!b.args.is_empty()),
                b.destination,
            ))
            .collect();
        prop_assert_eq!(&listed, &model);
        // Unbinding everything leaves only the root.
        for (pattern, variant, dest) in &model {
            prop_assert!(ex.unbind(pattern.as_bytes(), &args(*variant), *dest));
        }
        prop_assert!(ex.is_empty());
        prop_assert_eq!(ex.trie.as_ref().map(|t| t.node_count()), Some(1));
    }
}
