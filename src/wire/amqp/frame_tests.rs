//! Tests of frame splitting and frame encoding.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;
use crate::wire::amqp::arb::arb_props;
use crate::wire::amqp::basic::{BasicDeliver, BasicPublish};
use crate::wire::amqp::primitives::ShortStr;
use crate::wire::amqp::properties::BasicProperties;
use proptest::prelude::*;

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u16>(), Method::arb()).prop_map(|(channel, method)| Frame::Method { channel, method }),
        (any::<u16>(), any::<u64>(), arb_props()).prop_map(|(channel, size, p)| Frame::Header {
            channel,
            header: ContentHeader::new(60, size, &p),
        }),
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..600))
            .prop_map(|(channel, b)| { Frame::Body { channel, payload: Bytes::from(b) } }),
        Just(Frame::Heartbeat),
    ]
}

fn encode(f: &Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    f.encode(&mut buf);
    buf
}

proptest! {
    #[test]
    fn frame_round_trip(frame in arb_frame()) {
        let mut buf = encode(&frame);
        prop_assert_eq!(buf.len(), frame.encoded_len());
        prop_assert_eq!(peek_frame(&buf, 0).unwrap(), Some(buf.len()));
        let decoded = decode_frame(&mut buf, 0).unwrap().unwrap();
        prop_assert_eq!(decoded, frame);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn every_prefix_is_incomplete(frame in arb_frame()) {
        let full = encode(&frame);
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            prop_assert_eq!(decode_frame(&mut buf, 0), Ok(None), "cut at {}", cut);
            prop_assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        frame_max in prop_oneof![Just(0u32), 0u32..300, Just(FRAME_MIN_SIZE)],
    ) {
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = decode_frame(&mut buf, frame_max) {}
        let _ = check_protocol_header(&data);
    }

    #[test]
    fn valid_frame_header_garbage_payload_never_panics(
        kind in prop_oneof![Just(1u8), Just(2u8), Just(3u8), Just(8u8)],
        channel in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut buf = BytesMut::new();
        buf.put_u8(kind);
        buf.put_u16(channel);
        buf.put_u32(payload.len() as u32);
        buf.put_slice(&payload);
        buf.put_u8(FRAME_END);
        let _ = decode_frame(&mut buf, 0);
    }

    #[test]
    fn content_is_split_and_reassembled(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        frame_max in 9u32..700,
    ) {
        let method = Method::BasicPublish(BasicPublish {
            exchange: ShortStr::from_static("ex"),
            routing_key: ShortStr::from_static("rk"),
            ..Default::default()
        });
        let header = ContentHeader::new(60, body.len() as u64, &BasicProperties::default());
        let mut buf = BytesMut::new();
        encode_content_frames(&mut buf, 3, &method, &header, &body, frame_max);
        prop_assert_eq!(buf.len(), content_frames_len(&method, &header, body.len(), frame_max));
        // The method and header frames may exceed a tiny frame_max; only
        // body frames are split, so decode without a limit.
        prop_assert_eq!(decode_frame(&mut buf, 0).unwrap(), Some(Frame::Method { channel: 3, method }));
        prop_assert_eq!(decode_frame(&mut buf, 0).unwrap(), Some(Frame::Header { channel: 3, header }));
        let mut got = Vec::new();
        while let Some(frame) = decode_frame(&mut buf, frame_max).unwrap() {
            let Frame::Body { channel: 3, payload } = frame else {
                return Err(TestCaseError::fail("expected a body frame"));
            };
            prop_assert!(!payload.is_empty());
            prop_assert!(payload.len() + FRAME_OVERHEAD <= frame_max as usize);
            got.extend_from_slice(&payload);
        }
        prop_assert_eq!(got, body);
    }
}

#[test]
fn protocol_header() {
    assert_eq!(check_protocol_header(b""), ProtocolHeader::Incomplete);
    assert_eq!(check_protocol_header(b"AMQP\x00"), ProtocolHeader::Incomplete);
    assert_eq!(check_protocol_header(b"AMQP\x00\x00\x09\x01rest"), ProtocolHeader::Match);
    assert_eq!(
        check_protocol_header(b"AMQP\x01\x01\x00\x0a"),
        ProtocolHeader::Mismatch { received: *b"AMQP\x01\x01\x00\x0a", len: 8 }
    );
    assert_eq!(
        check_protocol_header(b"GET"),
        ProtocolHeader::Mismatch { received: *b"GET\0\0\0\0\0", len: 3 }
    );
}

#[test]
fn framing_errors_carry_facts() {
    let mut buf = BytesMut::from(&b"\x08\x00\x00\x00\x00\x00\x00\xcd"[..]);
    assert_eq!(decode_frame(&mut buf, 0), Err(DecodeError::BadFrameEnd { found: 0xcd }));
    assert_eq!(buf.len(), 8, "buffer untouched on framing errors");

    // Rejected from the 7-octet header alone, before the payload arrives.
    let mut buf = BytesMut::from(&b"\x03\x00\x01\x00\x01\x00\x00"[..]);
    assert_eq!(decode_frame(&mut buf, 4096), Err(DecodeError::FrameTooLarge { size: 65_544, max: 4096 }));
    let mut buf = BytesMut::from(&b"\x04"[..]);
    assert_eq!(decode_frame(&mut buf, 0), Err(DecodeError::UnknownFrameType(4)));
    let mut buf = BytesMut::from(&b"\x08\x00\x05\x00\x00\x00\x00\xce"[..]);
    assert_eq!(decode_frame(&mut buf, 0), Err(DecodeError::HeartbeatOnChannel(5)));
}

#[test]
fn frame_max_counts_framing_octets() {
    let mut buf = BytesMut::new();
    encode_body_frames(&mut buf, 1, &[7; 10], 0);
    assert_eq!(buf.len(), 18);
    assert_eq!(peek_frame(&buf, 18), Ok(Some(18)));
    assert_eq!(peek_frame(&buf, 17), Err(DecodeError::FrameTooLarge { size: 18, max: 17 }));
}

#[test]
fn heartbeat_bytes() {
    let mut buf = BytesMut::new();
    encode_heartbeat_frame(&mut buf);
    assert_eq!(&buf[..], b"\x08\x00\x00\x00\x00\x00\x00\xce");
    assert_eq!(decode_frame(&mut buf, 0), Ok(Some(Frame::Heartbeat)));
}

#[test]
fn body_payload_is_zero_copy() {
    let mut buf = BytesMut::new();
    encode_body_frames(&mut buf, 1, b"hello", 0);
    let start = buf.as_ptr() as usize;
    let Some(Frame::Body { payload, .. }) = decode_frame(&mut buf, 0).unwrap() else {
        panic!("expected body");
    };
    assert_eq!(payload.as_ptr() as usize, start + FRAME_HEADER_SIZE);
}

#[test]
fn delivery_frames_bytes() {
    let deliver = Method::BasicDeliver(BasicDeliver {
        consumer_tag: ShortStr::from_static("c"),
        delivery_tag: 1,
        redelivered: true,
        exchange: ShortStr::empty(),
        routing_key: ShortStr::from_static("q"),
    });
    let header = ContentHeader::new(60, 2, &BasicProperties::default());
    let mut buf = BytesMut::new();
    encode_content_frames(&mut buf, 1, &deliver, &header, b"hi", FRAME_MIN_SIZE);
    let expected: &[u8] = b"\x01\x00\x01\x00\x00\x00\x12\
        \x00\x3c\x00\x3c\x01c\x00\x00\x00\x00\x00\x00\x00\x01\x01\x00\x01q\xce\
        \x02\x00\x01\x00\x00\x00\x0e\
        \x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\xce\
        \x03\x00\x01\x00\x00\x00\x02hi\xce";
    assert_eq!(&buf[..], expected);
}

#[test]
fn deliver_frame_from_borrowed_fields_equals_the_method_encoding() {
    for (tag, exchange, key, delivery_tag, redelivered) in [
        ("ctag", "", "q", 1u64, false),
        ("amq.ctag-XYZ", "amq.direct", "a.b.c", u64::MAX, true),
        ("", "x", "", 42, false),
    ] {
        let mut expected = BytesMut::new();
        let deliver = BasicDeliver {
            consumer_tag: ShortStr::try_from(tag).unwrap(),
            delivery_tag,
            redelivered,
            exchange: ShortStr::try_from(exchange).unwrap(),
            routing_key: ShortStr::try_from(key).unwrap(),
        };
        encode_method_frame(&mut expected, 7, &deliver.into());
        let mut raw = BytesMut::new();
        encode_deliver_frame(
            &mut raw,
            7,
            tag.as_bytes(),
            delivery_tag,
            redelivered,
            exchange.as_bytes(),
            key.as_bytes(),
        );
        assert_eq!(raw, expected);
    }
}
