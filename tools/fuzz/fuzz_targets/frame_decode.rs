//! Feeds arbitrary bytes to the frame, method and content header decoders.
//!
//! The first two input octets choose how the input is cut into "socket
//! reads" and the frame-max, so incremental buffering is exercised too.
//! Anything that decodes must re-encode to something that decodes equal.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren::wire::amqp::{check_protocol_header, decode_frame, peek_frame, Frame, Method};

fuzz_target!(|data: &[u8]| {
    let (read_size, frame_max, input) = match data {
        [a, b, rest @ ..] => (usize::from(*a).max(1), u32::from(*b) * 64, rest),
        _ => return,
    };
    let _ = check_protocol_header(input);
    let _ = peek_frame(input, frame_max);

    let mut buf = BytesMut::new();
    'reads: for chunk in input.chunks(read_size) {
        buf.extend_from_slice(chunk);
        loop {
            match decode_frame(&mut buf, frame_max) {
                Ok(Some(frame)) => check_frame(&frame),
                Ok(None) => break,
                Err(_) => break 'reads,
            }
        }
    }
});

fn check_frame(frame: &Frame) {
    match frame {
        Frame::Method { method, .. } => {
            let mut out = BytesMut::new();
            method.encode(&mut out);
            assert_eq!(out.len(), method.encoded_len());
            let again = Method::decode(&out.freeze()).expect("re-encoded method decodes");
            assert_eq!(&again, method);
        }
        Frame::Header { header, .. } => {
            let props = header.properties().expect("validated header parses");
            let _ = (header.delivery_mode(), header.priority(), header.expiration());
            let rebuilt = header.with_properties(&props);
            assert_eq!(rebuilt.properties().expect("rebuilt header parses"), props);
        }
        Frame::Body { .. } | Frame::Heartbeat => {}
    }
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    assert_eq!(out.len(), frame.encoded_len());
    let again = decode_frame(&mut out, 0).expect("re-encoded frame decodes");
    assert_eq!(again.as_ref(), Some(frame));
}
