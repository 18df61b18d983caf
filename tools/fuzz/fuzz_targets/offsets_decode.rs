//! Feeds arbitrary bytes to the offsets file decoder.
//!
//! The first input octet is a set of flags: bit 0 rewrites the trailing crc32 before
//! decoding, so mutations get past the checksum and reach the entries. A decoded file
//! must hold names the encoder can write, and encoding it must decode to the same map.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren::log::offsets::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if flags & 1 != 0 {
        if let Some(body_bytes) = bytes.len().checked_sub(4) {
            let crc = crc32fast::hash(&bytes[..body_bytes]).to_le_bytes();
            bytes[body_bytes..].copy_from_slice(&crc);
        }
    }
    let Some(offsets) = decode(&bytes) else { return };
    assert!(offsets.keys().all(|name| name.len() <= usize::from(u16::MAX)));
    let encoded = encode(&offsets);
    assert!(encoded.len() <= bytes.len(), "a decoded file never grows when re-encoded");
    assert_eq!(decode(&encoded), Some(offsets));
});
