//! Headers matching: the four x-match modes, x- arguments, void values,
//! integer widths, duplicates and validation.

use bytes::Bytes;

use super::{route, s, table, Exchange, Fv, Table};
use crate::broker::exchange::{
    headers_match, validate_headers_binding, BindingArgsError, ExchangeKind, XMatch,
};

/// `headers_match` on built tables.
fn hm(args: &[(&str, Fv)], headers: &[(&str, Fv)]) -> bool {
    headers_match(&table(args), &table(headers))
}

#[test]
fn all_is_the_default_and_needs_every_argument() {
    let args = [("a", Fv::I32(1)), ("b", s("x"))];
    assert!(hm(&args, &[("a", Fv::I32(1)), ("b", s("x"))]));
    assert!(hm(&args, &[("b", s("x")), ("c", Fv::Bool(true)), ("a", Fv::I32(1))]));
    assert!(!hm(&args, &[("a", Fv::I32(1))]));
    assert!(!hm(&args, &[("a", Fv::I32(2)), ("b", s("x"))]));
    assert!(!hm(&args, &[]));
    let explicit = [("x-match", s("all")), ("a", Fv::I32(1)), ("b", s("x"))];
    assert!(hm(&explicit, &[("a", Fv::I32(1)), ("b", s("x"))]));
    assert!(!hm(&explicit, &[("a", Fv::I32(1))]));
}

#[test]
fn empty_binding_all_matches_everything_any_nothing() {
    assert!(hm(&[], &[]));
    assert!(hm(&[("x-match", s("all"))], &[("a", Fv::I8(1))]));
    assert!(!hm(&[("x-match", s("any"))], &[("a", Fv::I8(1))]));
    assert!(!hm(&[("x-match", s("any-with-x"))], &[("x-match", s("any-with-x"))]));
    assert!(hm(&[("x-match", s("all-with-x"))], &[]));
}

#[test]
fn any_needs_one_argument() {
    let args = [("x-match", s("any")), ("a", Fv::I32(1)), ("b", s("x"))];
    assert!(hm(&args, &[("a", Fv::I32(1))]));
    assert!(hm(&args, &[("a", Fv::I32(9)), ("b", s("x"))]));
    assert!(!hm(&args, &[("a", Fv::I32(9)), ("b", s("y"))]));
    assert!(!hm(&args, &[("c", Fv::I32(1))]));
    assert!(!hm(&args, &[]));
}

#[test]
fn x_arguments_ignored_in_all_and_any() {
    let all = [("x-match", s("all")), ("x-foo", s("bar")), ("a", Fv::I32(1))];
    assert!(hm(&all, &[("a", Fv::I32(1))]));
    let any = [("x-match", s("any")), ("x-foo", s("bar"))];
    // Nothing left to match: `any` fails even if the header is there.
    assert!(!hm(&any, &[("x-foo", s("bar"))]));
    // x- headers on the message are harmless.
    assert!(hm(&all, &[("x-foo", s("other")), ("a", Fv::I32(1))]));
}

#[test]
fn with_x_modes_count_x_arguments_but_not_x_match() {
    let all = [("x-match", s("all-with-x")), ("x-foo", s("bar")), ("a", Fv::I32(1))];
    assert!(hm(&all, &[("x-foo", s("bar")), ("a", Fv::I32(1))]));
    assert!(!hm(&all, &[("a", Fv::I32(1))]));
    assert!(!hm(&all, &[("x-foo", s("baz")), ("a", Fv::I32(1))]));
    let any = [("x-match", s("any-with-x")), ("x-foo", s("bar")), ("a", Fv::I32(1))];
    assert!(hm(&any, &[("x-foo", s("bar"))]));
    assert!(hm(&any, &[("a", Fv::I32(1))]));
    assert!(!hm(&any, &[("x-foo", s("baz")), ("x-match", s("any-with-x"))]));
}

#[test]
fn void_argument_tests_presence() {
    let all = [("a", Fv::Void), ("b", Fv::I32(2))];
    assert!(hm(&all, &[("a", s("anything")), ("b", Fv::I32(2))]));
    assert!(hm(&all, &[("a", Fv::Void), ("b", Fv::I32(2))]));
    assert!(!hm(&all, &[("b", Fv::I32(2))]));
    let any = [("x-match", s("any")), ("a", Fv::Void)];
    assert!(hm(&any, &[("a", Fv::I64(0))]));
    assert!(!hm(&any, &[("b", Fv::I64(0))]));
    // A void header only equals a void argument.
    assert!(!hm(&[("a", Fv::I32(0))], &[("a", Fv::Void)]));
}

#[test]
fn integer_widths_compare_by_value() {
    assert!(hm(&[("n", Fv::I32(1))], &[("n", Fv::I64(1))]));
    assert!(hm(&[("n", Fv::I8(-3))], &[("n", Fv::I16(-3))]));
    assert!(hm(&[("n", Fv::U32(7))], &[("n", Fv::Timestamp(7))]));
    assert!(!hm(&[("n", Fv::I32(1))], &[("n", Fv::I64(2))]));
    assert!(!hm(&[("n", Fv::I32(1))], &[("n", s("1"))]));
    // Documented divergence: int vs float is left to PartialEq.
    assert!(!hm(&[("n", Fv::I32(1))], &[("n", Fv::F64(1.0))]));
    assert!(hm(&[("n", Fv::F64(1.5))], &[("n", Fv::F64(1.5))]));
    assert!(!hm(&[("n", s("b"))], &[("n", Fv::ByteArray(Bytes::from_static(b"b")))]));
}

#[test]
fn duplicate_keys_pair_in_order() {
    let args = [("a", Fv::I32(1)), ("a", Fv::I32(2))];
    assert!(hm(&args, &[("a", Fv::I32(1)), ("b", Fv::I32(0)), ("a", Fv::I32(2))]));
    assert!(!hm(&args, &[("a", Fv::I32(2)), ("a", Fv::I32(1))]));
    assert!(!hm(&args, &[("a", Fv::I32(1))]));
    // The first x-match entry decides the mode.
    let modes = [("x-match", s("any")), ("x-match", s("all")), ("a", Fv::I32(1)), ("b", Fv::I32(1))];
    assert!(hm(&modes, &[("a", Fv::I32(1))]));
}

#[test]
fn x_match_parsing_and_validation() {
    assert_eq!(XMatch::from_args(&Table::new()), XMatch::All);
    for mode in [XMatch::All, XMatch::Any, XMatch::AllWithX, XMatch::AnyWithX] {
        let args = table(&[("x-match", s(mode.as_str()))]);
        assert_eq!(XMatch::from_args(&args), mode);
        assert_eq!(validate_headers_binding(&args), Ok(()));
    }
    assert_eq!(validate_headers_binding(&table(&[("a", Fv::I8(1))])), Ok(()));
    let bogus = table(&[("x-match", s("bogus")), ("a", Fv::I32(1))]);
    let err = validate_headers_binding(&bogus);
    assert_eq!(err, Err(BindingArgsError::InvalidXMatchValue(b"bogus".to_vec())));
    assert_eq!(
        err.err().map(|e| e.to_string()).unwrap_or_default(),
        "Invalid x-match field value <<\"bogus\">>; expected all, any, all-with-x, or any-with-x"
    );
    // Legacy fallback if such a binding exists anyway: behaves as `all`.
    assert_eq!(XMatch::from_args(&bogus), XMatch::All);
    assert!(!headers_match(&bogus, &table(&[("b", Fv::I32(1))])));
    let typed = table(&[("x-match", Fv::I32(1))]);
    assert_eq!(validate_headers_binding(&typed), Err(BindingArgsError::InvalidXMatchType));
    assert_eq!(ExchangeKind::Headers.validate_binding(&typed), Err(BindingArgsError::InvalidXMatchType));
    assert_eq!(ExchangeKind::Topic.validate_binding(&typed), Ok(()));
}

#[test]
fn headers_exchange_routes_each_queue_once() {
    let mut ex = Exchange::new(ExchangeKind::Headers);
    ex.bind(b"", table(&[("x-match", s("any")), ("a", Fv::I32(1))]), 1);
    ex.bind(b"other", table(&[("b", Fv::I32(2))]), 1);
    ex.bind(b"", table(&[("b", Fv::I64(2)), ("c", Fv::Void)]), 2);
    ex.bind(b"", Vec::new(), 3);
    let headers = table(&[("a", Fv::I32(1)), ("b", Fv::I8(2))]);
    // Routing key is ignored.
    assert_eq!(route(&ex, "whatever", &headers), vec![1, 3]);
    let more = table(&[("b", Fv::I8(2)), ("c", s(""))]);
    assert_eq!(route(&ex, "", &more), vec![1, 2, 3]);
    assert_eq!(route(&ex, "", &Vec::new()), vec![3]);
}
