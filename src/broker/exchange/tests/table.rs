//! Binding-table behaviour common to all kinds, plus direct and fanout
//! routing and exchange-kind parsing.

use super::{route, s, table, topic_with, Exchange, Fv};
use crate::broker::exchange::ExchangeKind;

#[test]
fn kind_parse_and_names() {
    for kind in [ExchangeKind::Direct, ExchangeKind::Fanout, ExchangeKind::Topic, ExchangeKind::Headers] {
        assert_eq!(ExchangeKind::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    for bad in ["", "Direct", "x-consistent-hash", "match", "topic "] {
        assert_eq!(ExchangeKind::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn direct_is_exact_match() {
    let mut ex = Exchange::new(ExchangeKind::Direct);
    assert!(ex.bind(b"a", Vec::new(), 1));
    assert!(ex.bind(b"a", Vec::new(), 2));
    assert!(ex.bind(b"", Vec::new(), 3));
    assert!(ex.bind(b"a.*", Vec::new(), 4));
    assert_eq!(route(&ex, "a", &Vec::new()), vec![1, 2]);
    assert_eq!(route(&ex, "A", &Vec::new()), Vec::<u32>::new());
    assert_eq!(route(&ex, "", &Vec::new()), vec![3]);
    assert_eq!(route(&ex, "a.b", &Vec::new()), Vec::<u32>::new());
    assert_eq!(route(&ex, "a.*", &Vec::new()), vec![4]);
}

#[test]
fn fanout_routes_to_all_once() {
    let mut ex = Exchange::new(ExchangeKind::Fanout);
    ex.bind(b"x", Vec::new(), 5);
    ex.bind(b"y", Vec::new(), 5);
    ex.bind(b"", Vec::new(), 2);
    assert_eq!(route(&ex, "anything", &Vec::new()), vec![2, 5]);
    assert_eq!(ex.len(), 3);
    assert!(ex.unbind(b"x", &[], 5));
    assert_eq!(route(&ex, "", &Vec::new()), vec![2, 5]);
    assert!(ex.unbind(b"y", &[], 5));
    assert_eq!(route(&ex, "", &Vec::new()), vec![2]);
}

#[test]
fn binding_identity_includes_args_in_any_order() {
    let mut ex = Exchange::new(ExchangeKind::Direct);
    let ab = table(&[("a", Fv::I32(1)), ("b", s("x"))]);
    let ba = table(&[("b", s("x")), ("a", Fv::I32(1))]);
    let wide = table(&[("a", Fv::I64(1)), ("b", s("x"))]);
    assert!(ex.bind(b"k", ab.clone(), 1));
    assert!(!ex.bind(b"k", ba.clone(), 1));
    assert!(ex.contains(b"k", &ba, 1));
    // Type is part of identity even though matching ignores integer width.
    assert!(ex.bind(b"k", wide.clone(), 1));
    assert!(ex.bind(b"k", Vec::new(), 1));
    assert_eq!(ex.len(), 3);
    assert_eq!(route(&ex, "k", &Vec::new()), vec![1]);
    assert!(ex.unbind(b"k", &ba, 1));
    assert!(!ex.unbind(b"k", &ab, 1));
    assert!(ex.unbind(b"k", &[], 1));
    assert_eq!(route(&ex, "k", &Vec::new()), vec![1]);
    assert!(ex.unbind(b"k", &wide, 1));
    assert!(ex.is_empty());
    assert!(!ex.has_destination(1));
    assert_eq!(route(&ex, "k", &Vec::new()), Vec::<u32>::new());
}

#[test]
fn route_appends_sorted_and_keeps_prefix() {
    let ex = topic_with(&["#", "a", "*", "a.#"]);
    let mut out = vec![9, 0, 9];
    ex.route(b"a", &Vec::new(), &mut out);
    assert_eq!(out, vec![9, 0, 9, 0, 1, 2, 3]);
}

#[test]
fn unbind_destination_removes_all_its_bindings() {
    for kind in [ExchangeKind::Direct, ExchangeKind::Fanout, ExchangeKind::Topic, ExchangeKind::Headers] {
        let mut ex = Exchange::new(kind);
        ex.bind(b"a", Vec::new(), 1);
        ex.bind(b"a", table(&[("h", Fv::I8(1))]), 1);
        ex.bind(b"b.#", Vec::new(), 1);
        ex.bind(b"a", Vec::new(), 2);
        assert_eq!(ex.unbind_destination(1), 3, "{kind}");
        assert_eq!(ex.unbind_destination(1), 0, "{kind}");
        assert_eq!(ex.len(), 1);
        assert_eq!(ex.destinations().collect::<Vec<_>>(), vec![2]);
        let listed: Vec<_> = ex.bindings().map(|b| (b.key.to_vec(), b.destination)).collect();
        assert_eq!(listed, vec![(b"a".to_vec(), 2)]);
        if kind != ExchangeKind::Headers {
            assert_eq!(route(&ex, "a", &Vec::new()), vec![2], "{kind}");
        }
        if let Some(trie) = ex.trie.as_ref() {
            assert_eq!(trie.node_count(), 2);
        }
    }
}

#[test]
fn listing_reports_key_args_and_destination() {
    let mut ex = Exchange::new(ExchangeKind::Topic);
    let args = table(&[("x-q", s("v"))]);
    ex.bind(b"a.*", args.clone(), 4);
    ex.bind(b"#", Vec::new(), 4);
    ex.bind(b"#", Vec::new(), 4);
    let mut listed: Vec<_> =
        ex.bindings().map(|b| (b.key.to_vec(), b.args.to_vec(), b.destination)).collect();
    listed.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(listed, vec![(b"#".to_vec(), Vec::new(), 4), (b"a.*".to_vec(), args, 4)]);
    assert_eq!(ex.len(), 2);
    assert!(!ex.is_empty());
    assert_eq!(ex.kind(), ExchangeKind::Topic);
}
