//! Tests of content headers and basic properties.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use super::*;
use crate::wire::amqp::arb::arb_props;
use crate::wire::amqp::table::FieldValue;
use proptest::prelude::*;

proptest! {
    #[test]
    fn header_round_trip(props in arb_props(), size in any::<u64>()) {
        let h = ContentHeader::new(60, size, &props);
        prop_assert_eq!(h.raw().len(), FIXED_LEN + props.encoded_len());
        let d = ContentHeader::decode(h.raw().clone()).unwrap();
        prop_assert_eq!(&d, &h);
        prop_assert_eq!(d.body_size(), size);
        prop_assert_eq!(d.properties().unwrap(), props.clone());
        prop_assert_eq!(d.delivery_mode(), props.delivery_mode);
        prop_assert_eq!(d.priority(), props.priority);
        prop_assert_eq!(d.expiration(), props.expiration.clone());
        prop_assert_eq!(d.timestamp(), props.timestamp);
        let publish = d.publish_properties().unwrap();
        prop_assert_eq!(publish, PublishProperties {
            headers: props.headers.clone(),
            delivery_mode: props.delivery_mode,
            priority: props.priority,
            reply_to: props.reply_to.clone(),
            expiration: props.expiration.clone(),
            user_id: props.user_id.clone(),
        });
        prop_assert_eq!(ContentHeader::trusted(h.raw().clone()).unwrap(), h);
    }

    #[test]
    fn arbitrary_header_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(h) = ContentHeader::decode(Bytes::from(data)) {
            prop_assert!(h.properties().is_ok());
            let _ = (h.delivery_mode(), h.priority(), h.expiration(), h.timestamp());
        }
    }
}

#[test]
fn hand_encoded_header() {
    // class 60, weight 0, body 5, content-type "text/plain", delivery-mode 2,
    // headers {"k": 'I' 7}
    let raw: &[u8] = b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\
        \xb0\x00\
        \x0atext/plain\
        \x00\x00\x00\x07\x01kI\x00\x00\x00\x07\
        \x02";
    let h = ContentHeader::decode(Bytes::from_static(raw)).unwrap();
    assert_eq!((h.class_id(), h.body_size(), h.property_flags()), (60, 5, 0xB000));
    assert!(h.is_persistent());
    let p = h.properties().unwrap();
    assert_eq!(p.content_type.unwrap(), "text/plain");
    assert_eq!(p.headers.unwrap().get("k"), Some(&FieldValue::I32(7)));
    // Rebuilding from the parsed properties is byte-exact.
    let again = ContentHeader::new(60, 5, &h.properties().unwrap());
    assert_eq!(again.raw(), &Bytes::from_static(raw));
}

#[test]
fn flag_words_are_checked() {
    let base = b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let with = |flags: &[u8]| {
        let mut v = base.to_vec();
        v.extend_from_slice(flags);
        ContentHeader::decode(Bytes::from(v))
    };
    // Empty continuation word is accepted.
    assert!(with(b"\x00\x01\x00\x00").is_ok());
    assert_eq!(with(b"\x00\x02"), Err(DecodeError::UnknownPropertyFlags { flags: 2 }));
    assert_eq!(with(b"\x00\x01\x80\x00"), Err(DecodeError::UnknownPropertyFlags { flags: 0x8000 }));
    assert_eq!(with(b"\x00\x00\x00"), Err(DecodeError::TrailingBytes { extra: 1 }));
    assert!(matches!(with(b"\x80\x00\x05ab"), Err(DecodeError::Truncated { .. })));
}

proptest::proptest! {
    /// Splicing one header entry into the raw bytes gives exactly what decoding, inserting
    /// and re-encoding would, whatever properties the header had.
    #[test]
    fn spliced_header_entry_equals_reencoding(properties in arb_props(), offset in 0i64..i64::MAX) {
        let header = ContentHeader::new(60, 42, &properties);
        let key = ShortStr::from_static("x-stream-offset");
        let value = FieldValue::I64(offset);
        let spliced = header.with_header_entry(&key, &value).expect("splice");
        let mut expected = properties.clone();
        let mut headers = expected.headers.take().unwrap_or_default();
        headers.insert(key.clone(), value.clone());
        expected.headers = Some(headers);
        proptest::prop_assert_eq!(spliced.properties().expect("decodes"), expected);
        proptest::prop_assert_eq!(spliced.body_size(), 42);
        proptest::prop_assert_eq!(ContentHeader::decode(spliced.raw().clone()).expect("valid"), spliced.clone());
        // Written straight into a buffer: the same bytes, whenever it applies (one flag word,
        // key not there yet, as for every header arb_props makes without the key).
        let mut out = BytesMut::new();
        let direct = ContentHeader::write_with_header_entry(header.raw(), &key, &value, &mut out);
        let key_present = properties.headers.as_ref().is_some_and(|h| h.get("x-stream-offset").is_some());
        proptest::prop_assert_eq!(direct, !key_present);
        if direct {
            proptest::prop_assert_eq!(&out[..], &spliced.raw()[..]);
        }
    }
}

#[test]
fn header_entry_is_spliced_after_a_second_flag_word() {
    // delivery-mode 2, an (empty) continuation flag word: the entry cannot be spliced at
    // the one-word offsets, and the header is re-encoded instead.
    let raw: &[u8] = b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x10\x01\x00\x00\x02";
    let header = ContentHeader::decode(Bytes::from_static(raw)).unwrap();
    let key = ShortStr::from_static("x-stream-offset");
    let with = header.with_header_entry(&key, &FieldValue::I64(9)).unwrap();
    let properties = with.properties().unwrap();
    assert_eq!(properties.delivery_mode, Some(2));
    assert_eq!(properties.headers.unwrap().get("x-stream-offset"), Some(&FieldValue::I64(9)));
}
