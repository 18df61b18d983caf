//! Feeds arbitrary bytes to the definitions file decoder, then reads the decoded table
//! the way a restart does (exchange kinds, queue arguments) without a broker.
//!
//! The first input octet is a set of flags: bit 0 rewrites the trailing crc32 before
//! decoding, so mutations get past the checksum and reach the field table. A decoded
//! document must encode to bytes that decode to the same document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren::broker::arguments::parse_queue_args;
use warren::broker::definitions::{decode, encode};
use warren::broker::exchange::ExchangeKind;
use warren::wire::amqp::{FieldTable, FieldValue};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if flags & 1 != 0 {
        if let Some(body_bytes) = bytes.len().checked_sub(4) {
            let crc = crc32fast::hash(&bytes[..body_bytes]).to_le_bytes();
            bytes[body_bytes..].copy_from_slice(&crc);
        }
    }
    let Ok(document) = decode(&bytes) else { return };
    let encoded = encode(&document);
    assert_eq!(decode(&encoded).expect("an encoded document decodes"), document);
    read_like_a_restart(&document);
});

fn list(document: &FieldTable, key: &str) -> Vec<FieldValue> {
    document.get(key).and_then(FieldValue::as_array).map(<[_]>::to_vec).unwrap_or_default()
}

fn text(table: &FieldTable, key: &str) -> String {
    String::from_utf8_lossy(table.get(key).and_then(FieldValue::as_bytes).unwrap_or_default()).into_owned()
}

fn read_like_a_restart(document: &FieldTable) {
    for value in list(document, "exchanges") {
        let Some(table) = value.as_table() else { continue };
        let _ = ExchangeKind::parse(&text(table, "type"));
        let _ = (table.get_bool("auto_delete"), table.get_bool("internal"), table.get_table("arguments"));
    }
    for value in list(document, "queues") {
        let Some(table) = value.as_table() else { continue };
        let arguments = table.get_table("arguments").cloned().unwrap_or_default();
        let _ = parse_queue_args(&text(table, "name"), &arguments);
    }
    for value in list(document, "bindings") {
        let Some(table) = value.as_table() else { continue };
        let _ = (text(table, "source"), text(table, "destination"), text(table, "routing_key"));
        let _ = (table.get_bool("queue"), table.get_table("arguments"));
    }
}
