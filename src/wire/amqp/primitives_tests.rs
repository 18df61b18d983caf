//! Tests of the primitive wire codec.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;

#[test]
fn bits_pack_into_shared_octets() {
    let mut buf = BytesMut::new();
    let mut w = Writer::new(&mut buf);
    for v in [true, false, true, true, false, false, false, false, true] {
        w.bit(v);
    }
    w.u8(7);
    w.bit(true);
    assert_eq!(&buf[..], &[0b0000_1101, 0b1, 7, 1]);

    let mut s = Sizer::default();
    for _ in 0..9 {
        s.bit();
    }
    s.add(1);
    s.bit();
    assert_eq!(s.len(), 4);

    let bytes = buf.freeze();
    let mut r = Reader::new(&bytes);
    let bits: Vec<bool> = (0..9).map(|_| r.bit().unwrap()).collect();
    assert_eq!(bits, [true, false, true, true, false, false, false, false, true]);
    assert_eq!(r.u8().unwrap(), 7);
    assert!(r.bit().unwrap());
    assert_eq!(r.u8(), Err(DecodeError::Truncated { needed: 1, available: 0 }));
}

#[test]
fn shortstr_limits() {
    assert!(ShortStr::try_from("x".repeat(255)).is_ok());
    assert_eq!(ShortStr::try_from("x".repeat(256)), Err(ShortStrTooLong { len: 256 }));
    let s = ShortStr::from_static("amq.direct");
    assert_eq!(s, "amq.direct");
    assert_eq!(s.as_str().unwrap(), "amq.direct");
    assert_eq!(format!("{s:?}"), "\"amq.direct\"");
}

#[test]
fn shortstr_read_is_zero_copy() {
    let bytes = Bytes::from_static(b"\x03abcrest");
    let mut r = Reader::new(&bytes);
    let s = r.shortstr().unwrap();
    assert_eq!(s.as_bytes().as_ptr(), bytes[1..].as_ptr());
    assert_eq!(r.remaining(), 4);
}
