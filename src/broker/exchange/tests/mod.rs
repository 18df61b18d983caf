//! Tests of the exchange routing core: shared fixtures (a field value type
//! standing in for the codec's) and the per-area test modules.

mod headers;
mod table;
mod topic;
mod topic_prop;

use bytes::Bytes;

use super::{BindingTable, ExchangeKind, HeaderValue};

/// A field value like the codec's: enough variants to exercise integer
/// widths, void and strings.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Fv {
    Void,
    Bool(bool),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    U32(u32),
    Timestamp(u64),
    F64(f64),
    Str(Bytes),
    ByteArray(Bytes),
}

impl HeaderValue for Fv {
    fn is_void(&self) -> bool {
        matches!(self, Fv::Void)
    }

    fn as_integer(&self) -> Option<i128> {
        match *self {
            Fv::I8(v) => Some(v.into()),
            Fv::I16(v) => Some(v.into()),
            Fv::I32(v) => Some(v.into()),
            Fv::I64(v) => Some(v.into()),
            Fv::U32(v) => Some(v.into()),
            Fv::Timestamp(v) => Some(v.into()),
            _ => None,
        }
    }

    fn as_long_str(&self) -> Option<&[u8]> {
        match self {
            Fv::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A field table as the codec represents it.
pub(super) type Table = Vec<(Bytes, Fv)>;

/// The routing table type under test.
pub(super) type Exchange = BindingTable<u32, Bytes, Fv>;

/// A long-string value.
pub(super) fn s(text: &str) -> Fv {
    Fv::Str(Bytes::copy_from_slice(text.as_bytes()))
}

/// Builds a field table.
pub(super) fn table(entries: &[(&str, Fv)]) -> Table {
    entries.iter().map(|(k, v)| (Bytes::copy_from_slice(k.as_bytes()), v.clone())).collect()
}

/// Routes `key` (with `headers`) and returns the destinations.
pub(super) fn route(ex: &Exchange, key: &str, headers: &Table) -> Vec<u32> {
    let mut out = Vec::new();
    ex.route(key.as_bytes(), headers, &mut out);
    out
}

/// A topic exchange with destination `i` bound to `patterns[i]`.
pub(super) fn topic_with(patterns: &[&str]) -> Exchange {
    let mut ex = Exchange::new(ExchangeKind::Topic);
    for (dest, pattern) in (0u32..).zip(patterns) {
        ex.bind(pattern.as_bytes(), Vec::new(), dest);
    }
    ex
}
