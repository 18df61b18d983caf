//! Primitive wire types shared by the rest of the codec: the [`ShortStr`]
//! type, the bounds-checked [`Reader`], the bit-packing [`Writer`] and
//! [`Sizer`], and the [`Field`] and [`MethodArgs`] traits that tie them
//! together (used by the `amqp_method!` macro in `macros.rs`).
//!
//! AMQP packs consecutive `bit` fields of a method into shared octets (first
//! bit in the least significant position). Reader, writer and sizer track an
//! open bit octet; any non-bit field closes it.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, ShortStrTooLong};

/// An AMQP `shortstr`: at most 255 octets, backed by [`Bytes`] so decoding
/// slices the received frame instead of allocating.
///
/// AMQP says short strings are UTF-8 but peers do not always comply, so the
/// raw octets are kept; [`ShortStr::as_str`] validates on demand.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShortStr(Bytes);

impl ShortStr {
    /// Maximum length of a short string in octets.
    pub const MAX_LEN: usize = 255;

    /// The empty short string.
    pub const fn empty() -> Self {
        Self(Bytes::new())
    }

    /// Builds a short string from a static string without copying.
    ///
    /// # Panics
    /// Panics if `s` is longer than 255 octets (a programming error; in a
    /// `const` context this is a compile-time error).
    pub const fn from_static(s: &'static str) -> Self {
        assert!(s.len() <= Self::MAX_LEN, "short string longer than 255 octets");
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps `bytes` if it is at most 255 octets long.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, ShortStrTooLong> {
        if bytes.len() > Self::MAX_LEN {
            Err(ShortStrTooLong { len: bytes.len() })
        } else {
            Ok(Self(bytes))
        }
    }

    /// The raw octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The octets as UTF-8 text, if they are valid UTF-8.
    pub fn as_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// The underlying [`Bytes`] (cheap reference-counted clone).
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }

    /// Consumes the short string, returning its [`Bytes`].
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in octets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the string has no octets.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Ok(s) => fmt::Debug::fmt(s, f),
            Err(_) => fmt::Debug::fmt(&self.0, f),
        }
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl TryFrom<&str> for ShortStr {
    type Error = ShortStrTooLong;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<String> for ShortStr {
    type Error = ShortStrTooLong;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::from_bytes(Bytes::from(s))
    }
}

impl TryFrom<Bytes> for ShortStr {
    type Error = ShortStrTooLong;
    fn try_from(b: Bytes) -> Result<Self, Self::Error> {
        Self::from_bytes(b)
    }
}

impl AsRef<[u8]> for ShortStr {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// Bounds-checked cursor over a received payload. Sub-slices are taken as
/// [`Bytes`] views of the same allocation.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
    bits: u8,
    /// Next bit to read from `bits`; 8 means no open bit octet.
    bit_pos: u8,
}

impl<'a> Reader<'a> {
    /// A reader over all of `buf`.
    pub(crate) fn new(buf: &'a Bytes) -> Self {
        Self { buf, pos: 0, end: buf.len(), bits: 0, bit_pos: 8 }
    }

    /// Octets left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.bit_pos = 8;
        let available = self.remaining();
        if n > available {
            return Err(DecodeError::Truncated { needed: n, available });
        }
        let start = self.pos;
        self.pos = start + n;
        let buf: &'a Bytes = self.buf;
        buf.get(start..start + n).ok_or(DecodeError::Truncated { needed: n, available })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| DecodeError::Truncated { needed: N, available: s.len() })
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub(crate) fn f32(&mut self) -> Result<f32, DecodeError> {
        Ok(f32::from_be_bytes(self.array()?))
    }
    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    /// `n` octets as a zero-copy [`Bytes`] view.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.take(n)?;
        Ok(self.buf.slice(start..start + n))
    }

    /// Skips `n` octets.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    pub(crate) fn shortstr(&mut self) -> Result<ShortStr, DecodeError> {
        let len = usize::from(self.u8()?);
        Ok(ShortStr(self.bytes(len)?))
    }

    pub(crate) fn skip_shortstr(&mut self) -> Result<(), DecodeError> {
        let len = usize::from(self.u8()?);
        self.skip(len)
    }

    fn u32_len(&mut self) -> Result<usize, DecodeError> {
        let len = self.u32()?;
        // On 16-bit targets a length that does not fit is necessarily truncated.
        usize::try_from(len)
            .map_err(|_| DecodeError::Truncated { needed: usize::MAX, available: self.remaining() })
    }

    pub(crate) fn longstr(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u32_len()?;
        self.bytes(len)
    }

    pub(crate) fn skip_longstr(&mut self) -> Result<(), DecodeError> {
        let len = self.u32_len()?;
        self.skip(len)
    }

    /// Reads a u32 length prefix and returns a reader limited to that many
    /// octets, advancing this reader past them.
    pub(crate) fn sub_u32(&mut self) -> Result<Reader<'a>, DecodeError> {
        let len = self.u32_len()?;
        let start = self.pos;
        self.take(len)?;
        Ok(Reader { buf: self.buf, pos: start, end: start + len, bits: 0, bit_pos: 8 })
    }

    /// Reads one packed bit.
    pub(crate) fn bit(&mut self) -> Result<bool, DecodeError> {
        if self.bit_pos >= 8 {
            self.bits = self.u8()?;
            self.bit_pos = 0;
        }
        let v = (self.bits >> self.bit_pos) & 1 == 1;
        self.bit_pos += 1;
        Ok(v)
    }
}

/// Appends wire encodings to a caller-owned buffer, packing bits.
pub(crate) struct Writer<'a> {
    buf: &'a mut BytesMut,
    /// Index in `buf` of the open bit octet, if any, and the next bit.
    bit_octet: Option<(usize, u8)>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut BytesMut) -> Self {
        Self { buf, bit_octet: None }
    }

    pub(crate) fn buf(&mut self) -> &mut BytesMut {
        self.bit_octet = None;
        self.buf
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf().put_u8(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf().put_u16(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf().put_u32(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf().put_u64(v);
    }
    pub(crate) fn slice(&mut self, v: &[u8]) {
        self.buf().put_slice(v);
    }

    pub(crate) fn shortstr(&mut self, s: &ShortStr) {
        // The ShortStr invariant keeps the length within a u8.
        let len = u8::try_from(s.len()).unwrap_or(u8::MAX);
        self.u8(len);
        self.slice(s.as_bytes().get(..usize::from(len)).unwrap_or_default());
    }

    /// Writes a u32-length-prefixed string. Values beyond 4 GiB cannot be
    /// represented and are truncated to `u32::MAX` octets.
    pub(crate) fn longstr(&mut self, s: &[u8]) {
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.slice(s.get(..len as usize).unwrap_or(s));
    }

    /// Writes a u32 length placeholder; returns its position for
    /// [`Writer::patch_len`].
    pub(crate) fn len_placeholder(&mut self) -> usize {
        let at = self.buf.len();
        self.u32(0);
        at
    }

    /// Fills in a placeholder with the number of octets written after it.
    pub(crate) fn patch_len(&mut self, at: usize) {
        let len = self.buf.len().saturating_sub(at + 4);
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        if let Some(dst) = self.buf.get_mut(at..at + 4) {
            dst.copy_from_slice(&len.to_be_bytes());
        }
    }

    pub(crate) fn bit(&mut self, v: bool) {
        let (idx, pos) = match self.bit_octet {
            Some((idx, pos)) if pos < 8 => (idx, pos),
            _ => {
                self.buf.put_u8(0);
                (self.buf.len() - 1, 0)
            }
        };
        if v {
            if let Some(octet) = self.buf.get_mut(idx) {
                *octet |= 1 << pos;
            }
        }
        self.bit_octet = Some((idx, pos + 1));
    }
}

/// Computes encoded sizes with the same bit-packing rules as [`Writer`].
#[derive(Default)]
pub(crate) struct Sizer {
    len: usize,
    /// Bits used in the open bit octet; 0 or 8 means none open.
    bits: u8,
}

impl Sizer {
    pub(crate) fn add(&mut self, n: usize) {
        self.bits = 0;
        self.len += n;
    }
    pub(crate) fn bit(&mut self) {
        if self.bits == 0 || self.bits >= 8 {
            self.len += 1;
            self.bits = 0;
        }
        self.bits += 1;
    }
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// A value that can appear as a method argument.
pub(crate) trait Field: Sized {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    fn write(&self, w: &mut Writer<'_>);
    fn size(&self, s: &mut Sizer);
}

macro_rules! int_field {
    ($($t:ty => $read:ident),*) => {$(
        impl Field for $t {
            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$read()
            }
            fn write(&self, w: &mut Writer<'_>) {
                w.$read(*self);
            }
            fn size(&self, s: &mut Sizer) {
                s.add(std::mem::size_of::<$t>());
            }
        }
    )*};
}
int_field!(u8 => u8, u16 => u16, u32 => u32, u64 => u64);

impl Field for bool {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bit()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.bit(*self);
    }
    fn size(&self, s: &mut Sizer) {
        s.bit();
    }
}

impl Field for ShortStr {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.shortstr()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.shortstr(self);
    }
    fn size(&self, s: &mut Sizer) {
        s.add(1 + self.len());
    }
}

/// `Bytes` fields are AMQP `longstr`s.
impl Field for Bytes {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.longstr()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.longstr(self);
    }
    fn size(&self, s: &mut Sizer) {
        s.add(4 + self.len().min(u32::MAX as usize));
    }
}

/// Argument codec of one method struct; implemented by `amqp_method!`.
pub(crate) trait MethodArgs: Sized {
    fn read_args(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    fn write_args(&self, w: &mut Writer<'_>);
    fn size_args(&self, s: &mut Sizer);
}

#[cfg(test)]
#[path = "primitives_tests.rs"]
mod tests;
