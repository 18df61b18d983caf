//! Tests of field tables.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;
use crate::wire::amqp::arb::Arb;
use proptest::prelude::*;

fn encode(t: &FieldTable) -> Bytes {
    let mut buf = BytesMut::new();
    t.encode(&mut buf);
    buf.freeze()
}

proptest! {
    #[test]
    fn round_trip_is_byte_exact(table in FieldTable::arb()) {
        let bytes = encode(&table);
        prop_assert_eq!(bytes.len(), table.encoded_len());
        let decoded = FieldTable::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &table);
        prop_assert_eq!(encode(&decoded), bytes.clone());
        // The allocation-free validator agrees with the decoder.
        let mut r = Reader::new(&bytes);
        FieldTable::skip(&mut r, 0).unwrap();
        prop_assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let bytes = Bytes::from(data);
        let decoded = FieldTable::decode(&bytes);
        let mut r = Reader::new(&bytes);
        let skipped = FieldTable::skip(&mut r, 0);
        prop_assert_eq!(decoded.is_ok(), skipped.is_ok());
    }
}

#[test]
fn hand_encoded_table() {
    // {"a": 'l' -1, "bb": 'S' "hi", "c": 't' true}
    let raw: &[u8] = b"\x00\x00\x00\x19\
        \x01al\xff\xff\xff\xff\xff\xff\xff\xff\
        \x02bbS\x00\x00\x00\x02hi\
        \x01ct\x01";
    let bytes = Bytes::from_static(raw);
    let t = FieldTable::decode(&bytes).unwrap();
    assert_eq!(t.get_i64("a"), Some(-1));
    assert_eq!(t.get_str("bb"), Some("hi"));
    assert_eq!(t.get_bool("c"), Some(true));
    assert_eq!(t.get("missing"), None);
    assert_eq!(encode(&t), bytes);
}

#[test]
fn unknown_tag_and_truncation_are_errors() {
    let bytes = Bytes::from_static(b"\x00\x00\x00\x03\x01aZ");
    assert_eq!(FieldTable::decode(&bytes), Err(DecodeError::UnknownFieldType(b'Z')));
    let bytes = Bytes::from_static(b"\x00\x00\x00\x09\x01aI\x00");
    assert!(matches!(FieldTable::decode(&bytes), Err(DecodeError::Truncated { .. })));
    // Value overruns the declared table length even though bytes follow.
    let bytes = Bytes::from_static(b"\x00\x00\x00\x04\x01aI\x00\x00\x00\x00");
    assert!(matches!(FieldTable::decode(&bytes), Err(DecodeError::Truncated { .. })));
}

#[test]
fn deep_nesting_is_rejected() {
    let mut v = FieldValue::Void;
    for _ in 0..(MAX_NESTING_DEPTH + 5) {
        v = FieldValue::Array(vec![v]);
    }
    let t = FieldTable(vec![(ShortStr::from_static("k"), v)]);
    let bytes = encode(&t);
    let err = Err(DecodeError::NestingTooDeep { max: MAX_NESTING_DEPTH });
    assert_eq!(FieldTable::decode(&bytes), err);
    assert_eq!(FieldTable::skip(&mut Reader::new(&bytes), 0), err.map(|_: FieldTable| ()));
}

#[test]
fn insert_and_remove_keep_order() {
    let mut t = FieldTable::new();
    t.insert(ShortStr::from_static("x-a"), FieldValue::I32(1));
    t.insert(ShortStr::from_static("x-b"), FieldValue::I32(2));
    assert_eq!(t.insert(ShortStr::from_static("x-a"), FieldValue::I32(3)), Some(FieldValue::I32(1)));
    let keys: Vec<_> = t.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["x-a", "x-b"]);
    assert_eq!(t.remove("x-a"), Some(FieldValue::I32(3)));
    assert_eq!(t.len(), 1);
}
