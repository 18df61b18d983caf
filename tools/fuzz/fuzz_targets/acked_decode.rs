//! Feeds arbitrary bytes to the acked-ranges file decoder.
//!
//! The first input octet is a set of flags: bit 0 rewrites the trailing crc32 before
//! decoding, so mutations get past the checksum and reach the ranges. A decoded file must
//! hold at most `ACKED_RANGES_MAX` well-formed ranges at or above its floor, and encoding
//! it must give back the input byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren::limits::ACKED_RANGES_MAX;
use warren::log::acked::{decode, encode, well_formed};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if flags & 1 != 0 {
        if let Some(body_bytes) = bytes.len().checked_sub(4) {
            let crc = crc32fast::hash(&bytes[..body_bytes]).to_le_bytes();
            bytes[body_bytes..].copy_from_slice(&crc);
        }
    }
    let Some(acked) = decode(&bytes) else { return };
    assert!(acked.ranges.len() <= ACKED_RANGES_MAX);
    assert!(well_formed(acked.floor, &acked.ranges));
    assert!(acked.ranges.iter().all(|r| r.start >= acked.floor && r.start < r.end));
    assert!(acked.ranges.windows(2).all(|w| w[0].end <= w[1].start));
    assert_eq!(encode(acked.floor, &acked.ranges), bytes);
});
