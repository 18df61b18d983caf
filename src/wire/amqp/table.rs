//! Field tables and field values (the AMQP `table` type), with the field
//! type tags RabbitMQ uses.
//!
//! | tag | type | tag | type |
//! |-----|------|-----|------|
//! | `t` | bool | `l` | i64 |
//! | `b` | i8   | `f` | f32 |
//! | `B` | u8   | `d` | f64 |
//! | `s` | i16  | `D` | decimal (scale u8, value u32) |
//! | `u` | u16  | `S` | long string |
//! | `I` | i32  | `x` | byte array |
//! | `i` | u32  | `A` | array |
//! | `T` | timestamp (u64) | `F` | nested table |
//! | `V` | void | | |
//!
//! Tables keep their entries in wire order (duplicates included) so that
//! decoding and re-encoding is byte-exact.

use bytes::{Bytes, BytesMut};

use super::error::DecodeError;
use super::primitives::{Field, Reader, ShortStr, Sizer, Writer};

/// Maximum nesting of tables/arrays accepted by the decoder. Deeper input is
/// rejected with [`DecodeError::NestingTooDeep`] instead of risking stack
/// exhaustion.
pub const MAX_NESTING_DEPTH: usize = 64;

/// One value in a field table or field array.
///
/// Equality compares floats by their bit patterns, so a decoded NaN equals
/// the NaN that was encoded and `FieldValue` can be `Eq`.
#[derive(Debug, Clone)]
pub enum FieldValue {
    /// `t`: boolean (any non-zero octet decodes as `true`).
    Bool(bool),
    /// `b`: signed 8-bit integer.
    I8(i8),
    /// `B`: unsigned 8-bit integer.
    U8(u8),
    /// `s`: signed 16-bit integer.
    I16(i16),
    /// `u`: unsigned 16-bit integer.
    U16(u16),
    /// `I`: signed 32-bit integer.
    I32(i32),
    /// `i`: unsigned 32-bit integer.
    U32(u32),
    /// `l`: signed 64-bit integer (what clients send for 64-bit values).
    I64(i64),
    /// `f`: 32-bit float.
    F32(f32),
    /// `d`: 64-bit float.
    F64(f64),
    /// `D`: decimal, `value / 10^scale`.
    Decimal {
        /// Number of decimal digits after the point.
        scale: u8,
        /// Unscaled value.
        value: u32,
    },
    /// `S`: long string (arbitrary octets, usually UTF-8).
    LongStr(Bytes),
    /// `x`: byte array.
    ByteArray(Bytes),
    /// `A`: array of values.
    Array(Vec<FieldValue>),
    /// `T`: timestamp, seconds since the Unix epoch.
    Timestamp(u64),
    /// `F`: nested table.
    Table(FieldTable),
    /// `V`: no value.
    Void,
}

impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        use FieldValue::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a == b,
            (I8(a), I8(b)) => a == b,
            (U8(a), U8(b)) => a == b,
            (I16(a), I16(b)) => a == b,
            (U16(a), U16(b)) => a == b,
            (I32(a), I32(b)) => a == b,
            (U32(a), U32(b)) => a == b,
            (I64(a), I64(b)) => a == b,
            (F32(a), F32(b)) => a.to_bits() == b.to_bits(),
            (F64(a), F64(b)) => a.to_bits() == b.to_bits(),
            (Decimal { scale: s1, value: v1 }, Decimal { scale: s2, value: v2 }) => s1 == s2 && v1 == v2,
            (LongStr(a), LongStr(b)) => a == b,
            (ByteArray(a), ByteArray(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (Table(a), Table(b)) => a == b,
            (Void, Void) => true,
            _ => false,
        }
    }
}

impl Eq for FieldValue {}

impl FieldValue {
    /// The value as an `i64` if it is any integer type (including `u32`).
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            Self::I8(v) => v.into(),
            Self::U8(v) => v.into(),
            Self::I16(v) => v.into(),
            Self::U16(v) => v.into(),
            Self::I32(v) => v.into(),
            Self::U32(v) => v.into(),
            Self::I64(v) => v,
            _ => return None,
        })
    }

    /// The value as a `bool` if it is `t`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The octets of a long string or byte array.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::LongStr(b) | Self::ByteArray(b) => Some(b),
            _ => None,
        }
    }

    /// A long string as UTF-8 text (`None` if not `S` or not valid UTF-8).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::LongStr(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The nested table, if this is `F`.
    pub fn as_table(&self) -> Option<&FieldTable> {
        match self {
            Self::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The elements, if this is `A`.
    pub fn as_array(&self) -> Option<&[FieldValue]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The type tag octet written before the value.
    pub fn tag(&self) -> u8 {
        match self {
            Self::Bool(_) => b't',
            Self::I8(_) => b'b',
            Self::U8(_) => b'B',
            Self::I16(_) => b's',
            Self::U16(_) => b'u',
            Self::I32(_) => b'I',
            Self::U32(_) => b'i',
            Self::I64(_) => b'l',
            Self::F32(_) => b'f',
            Self::F64(_) => b'd',
            Self::Decimal { .. } => b'D',
            Self::LongStr(_) => b'S',
            Self::ByteArray(_) => b'x',
            Self::Array(_) => b'A',
            Self::Timestamp(_) => b'T',
            Self::Table(_) => b'F',
            Self::Void => b'V',
        }
    }

    /// Encoded size including the tag octet.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Self::Bool(_) | Self::I8(_) | Self::U8(_) => 1,
            Self::I16(_) | Self::U16(_) => 2,
            Self::I32(_) | Self::U32(_) | Self::F32(_) => 4,
            Self::I64(_) | Self::F64(_) | Self::Timestamp(_) => 8,
            Self::Decimal { .. } => 5,
            Self::LongStr(b) | Self::ByteArray(b) => 4 + b.len(),
            Self::Array(a) => 4 + a.iter().map(FieldValue::encoded_len).sum::<usize>(),
            Self::Table(t) => t.encoded_len(),
            Self::Void => 0,
        }
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.u8(self.tag());
        match self {
            Self::Bool(v) => w.u8(u8::from(*v)),
            Self::I8(v) => w.slice(&v.to_be_bytes()),
            Self::U8(v) => w.u8(*v),
            Self::I16(v) => w.slice(&v.to_be_bytes()),
            Self::U16(v) => w.u16(*v),
            Self::I32(v) => w.slice(&v.to_be_bytes()),
            Self::U32(v) => w.u32(*v),
            Self::I64(v) => w.slice(&v.to_be_bytes()),
            Self::F32(v) => w.slice(&v.to_be_bytes()),
            Self::F64(v) => w.slice(&v.to_be_bytes()),
            Self::Decimal { scale, value } => {
                w.u8(*scale);
                w.u32(*value);
            }
            Self::LongStr(b) | Self::ByteArray(b) => w.longstr(b),
            Self::Array(items) => {
                let at = w.len_placeholder();
                for item in items {
                    item.write(w);
                }
                w.patch_len(at);
            }
            Self::Timestamp(v) => w.u64(*v),
            Self::Table(t) => t.write(w),
            Self::Void => {}
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>, depth: usize) -> Result<Self, DecodeError> {
        let tag = r.u8()?;
        Ok(match tag {
            b't' => Self::Bool(r.u8()? != 0),
            b'b' => Self::I8(r.i8()?),
            b'B' => Self::U8(r.u8()?),
            b's' => Self::I16(r.i16()?),
            b'u' => Self::U16(r.u16()?),
            b'I' => Self::I32(r.i32()?),
            b'i' => Self::U32(r.u32()?),
            b'l' => Self::I64(r.i64()?),
            b'f' => Self::F32(r.f32()?),
            b'd' => Self::F64(r.f64()?),
            b'D' => Self::Decimal { scale: r.u8()?, value: r.u32()? },
            b'S' => Self::LongStr(r.longstr()?),
            b'x' => Self::ByteArray(r.longstr()?),
            b'A' => {
                let depth = nest(depth)?;
                let mut sub = r.sub_u32()?;
                let mut items = Vec::new();
                while sub.remaining() > 0 {
                    items.push(Self::read(&mut sub, depth)?);
                }
                Self::Array(items)
            }
            b'T' => Self::Timestamp(r.u64()?),
            b'F' => Self::Table(FieldTable::read(r, nest(depth)?)?),
            b'V' => Self::Void,
            other => return Err(DecodeError::UnknownFieldType(other)),
        })
    }

    /// Validates one value without building it (no allocation).
    pub(crate) fn skip(r: &mut Reader<'_>, depth: usize) -> Result<(), DecodeError> {
        let tag = r.u8()?;
        match tag {
            b't' | b'b' | b'B' => r.skip(1),
            b's' | b'u' => r.skip(2),
            b'I' | b'i' | b'f' => r.skip(4),
            b'l' | b'd' | b'T' => r.skip(8),
            b'D' => r.skip(5),
            b'S' | b'x' => r.skip_longstr(),
            b'A' => {
                let depth = nest(depth)?;
                let mut sub = r.sub_u32()?;
                while sub.remaining() > 0 {
                    Self::skip(&mut sub, depth)?;
                }
                Ok(())
            }
            b'F' => FieldTable::skip(r, nest(depth)?),
            b'V' => Ok(()),
            other => Err(DecodeError::UnknownFieldType(other)),
        }
    }
}

fn nest(depth: usize) -> Result<usize, DecodeError> {
    if depth >= MAX_NESTING_DEPTH {
        Err(DecodeError::NestingTooDeep { max: MAX_NESTING_DEPTH })
    } else {
        Ok(depth + 1)
    }
}

/// An AMQP field table: ordered `(key, value)` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    /// An empty table (does not allocate).
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the entries in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&ShortStr, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The value of the first entry named `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| k.as_bytes() == key.as_bytes()).map(|(_, v)| v)
    }

    /// True if an entry named `key` exists.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value of `key` as an integer (any integer field type).
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(FieldValue::as_i64)
    }

    /// The value of `key` as a boolean.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(FieldValue::as_bool)
    }

    /// The value of `key` as UTF-8 text (long string values only).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(FieldValue::as_str)
    }

    /// The value of `key` as a nested table.
    pub fn get_table(&self, key: &str) -> Option<&FieldTable> {
        self.get(key).and_then(FieldValue::as_table)
    }

    /// Sets `key` to `value`, replacing the first existing entry of that
    /// name in place or appending a new one. Returns the previous value.
    pub fn insert(&mut self, key: ShortStr, value: FieldValue) -> Option<FieldValue> {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    /// Removes all entries named `key`, returning the first removed value.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let mut removed = None;
        self.0.retain_mut(|(k, v)| {
            if k.as_bytes() != key.as_bytes() {
                return true;
            }
            if removed.is_none() {
                removed = Some(std::mem::replace(v, FieldValue::Void));
            }
            false
        });
        removed
    }

    /// Encoded size including the 4-octet length prefix.
    pub fn encoded_len(&self) -> usize {
        4 + self.0.iter().map(|(k, v)| 1 + k.len() + v.encoded_len()).sum::<usize>()
    }

    /// Appends the encoding (length prefix included) to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        self.write(&mut Writer::new(buf));
    }

    /// Decodes a table (length prefix included) that fills all of `bytes`.
    /// Values are zero-copy views of `bytes`.
    pub fn decode(bytes: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let table = Self::read(&mut r, 0)?;
        match r.remaining() {
            0 => Ok(table),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }

    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        let at = w.len_placeholder();
        for (k, v) in &self.0 {
            w.shortstr(k);
            v.write(w);
        }
        w.patch_len(at);
    }

    pub(crate) fn read(r: &mut Reader<'_>, depth: usize) -> Result<Self, DecodeError> {
        let mut sub = r.sub_u32()?;
        let mut entries = Vec::new();
        while sub.remaining() > 0 {
            let key = sub.shortstr()?;
            let value = FieldValue::read(&mut sub, depth)?;
            entries.push((key, value));
        }
        Ok(Self(entries))
    }

    /// Validates a table without building it (no allocation).
    pub(crate) fn skip(r: &mut Reader<'_>, depth: usize) -> Result<(), DecodeError> {
        let mut sub = r.sub_u32()?;
        while sub.remaining() > 0 {
            sub.skip_shortstr()?;
            FieldValue::skip(&mut sub, depth)?;
        }
        Ok(())
    }
}

impl Field for FieldTable {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::read(r, 0)
    }
    fn write(&self, w: &mut Writer<'_>) {
        FieldTable::write(self, w);
    }
    fn size(&self, s: &mut Sizer) {
        s.add(self.encoded_len());
    }
}

impl FromIterator<(ShortStr, FieldValue)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (ShortStr, FieldValue)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
