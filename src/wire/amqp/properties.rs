//! Content headers and the `basic` class's 14 message properties.
//!
//! A content header payload is: class id (u16), weight (u16, always 0),
//! body size (u64), one or more 16-bit property flag words (bit 0 of each
//! word says another word follows), then the present properties in flag
//! order. The broker keeps the received payload as [`Bytes`] and re-sends it
//! unchanged on delivery; [`ContentHeader`] therefore stores the raw payload
//! (validated on decode without allocating) and parses [`BasicProperties`]
//! only when asked. [`ContentHeader::new`] builds a header from properties
//! when the broker has to change them (e.g. dead-lettering).

use bytes::{Bytes, BytesMut};

use super::error::DecodeError;
use super::primitives::{Reader, ShortStr, Writer};
use super::table::{FieldTable, FieldValue};

/// Flag bit of each property, in wire order (bit 15 first).
mod flag {
    pub(super) const CONTENT_TYPE: u16 = 1 << 15;
    pub(super) const CONTENT_ENCODING: u16 = 1 << 14;
    pub(super) const HEADERS: u16 = 1 << 13;
    pub(super) const DELIVERY_MODE: u16 = 1 << 12;
    pub(super) const PRIORITY: u16 = 1 << 11;
    pub(super) const CORRELATION_ID: u16 = 1 << 10;
    pub(super) const REPLY_TO: u16 = 1 << 9;
    pub(super) const EXPIRATION: u16 = 1 << 8;
    pub(super) const MESSAGE_ID: u16 = 1 << 7;
    pub(super) const TIMESTAMP: u16 = 1 << 6;
    pub(super) const TYPE: u16 = 1 << 5;
    pub(super) const USER_ID: u16 = 1 << 4;
    pub(super) const APP_ID: u16 = 1 << 3;
    pub(super) const CLUSTER_ID: u16 = 1 << 2;
    /// Bit 0 of a flag word: another flag word follows.
    pub(super) const CONTINUATION: u16 = 1;
    /// All property bits the `basic` class defines.
    pub(super) const KNOWN: u16 = 0xFFFC;
}

/// Octets of a content header before the property flags.
const FIXED_LEN: usize = 2 + 2 + 8;

/// The properties of a `basic` class message. `None` means absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BasicProperties {
    /// MIME content type.
    pub content_type: Option<ShortStr>,
    /// MIME content encoding.
    pub content_encoding: Option<ShortStr>,
    /// Application headers.
    pub headers: Option<FieldTable>,
    /// 1 = non-persistent, 2 = persistent.
    pub delivery_mode: Option<u8>,
    /// Message priority, 0 to 9.
    pub priority: Option<u8>,
    /// Application correlation identifier.
    pub correlation_id: Option<ShortStr>,
    /// Address to reply to.
    pub reply_to: Option<ShortStr>,
    /// Per-message TTL in milliseconds, as decimal text (RabbitMQ).
    pub expiration: Option<ShortStr>,
    /// Application message identifier.
    pub message_id: Option<ShortStr>,
    /// Message timestamp, seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// Message type name (the spec's `type` property).
    pub message_type: Option<ShortStr>,
    /// Creating user id (RabbitMQ validates it against the connection user).
    pub user_id: Option<ShortStr>,
    /// Creating application id.
    pub app_id: Option<ShortStr>,
    /// Cluster id (reserved in 0-9-1, must be absent from clients).
    pub cluster_id: Option<ShortStr>,
}

impl BasicProperties {
    /// The first property flag word these properties encode to.
    pub fn flags(&self) -> u16 {
        let mut f = 0;
        let mut set = |present: bool, bit: u16| {
            if present {
                f |= bit;
            }
        };
        set(self.content_type.is_some(), flag::CONTENT_TYPE);
        set(self.content_encoding.is_some(), flag::CONTENT_ENCODING);
        set(self.headers.is_some(), flag::HEADERS);
        set(self.delivery_mode.is_some(), flag::DELIVERY_MODE);
        set(self.priority.is_some(), flag::PRIORITY);
        set(self.correlation_id.is_some(), flag::CORRELATION_ID);
        set(self.reply_to.is_some(), flag::REPLY_TO);
        set(self.expiration.is_some(), flag::EXPIRATION);
        set(self.message_id.is_some(), flag::MESSAGE_ID);
        set(self.timestamp.is_some(), flag::TIMESTAMP);
        set(self.message_type.is_some(), flag::TYPE);
        set(self.user_id.is_some(), flag::USER_ID);
        set(self.app_id.is_some(), flag::APP_ID);
        set(self.cluster_id.is_some(), flag::CLUSTER_ID);
        f
    }

    fn shortstrs(&self) -> [&Option<ShortStr>; 10] {
        [
            &self.content_type,
            &self.content_encoding,
            &self.correlation_id,
            &self.reply_to,
            &self.expiration,
            &self.message_id,
            &self.message_type,
            &self.user_id,
            &self.app_id,
            &self.cluster_id,
        ]
    }

    /// Encoded size of the flag word and the present properties.
    pub fn encoded_len(&self) -> usize {
        let strs: usize = self.shortstrs().iter().flat_map(|s| s.as_ref()).map(|s| 1 + s.len()).sum();
        2 + strs
            + self.headers.as_ref().map_or(0, FieldTable::encoded_len)
            + usize::from(self.delivery_mode.is_some())
            + usize::from(self.priority.is_some())
            + if self.timestamp.is_some() { 8 } else { 0 }
    }

    /// Appends the flag word and the present properties to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        let mut w = Writer::new(buf);
        w.u16(self.flags());
        let s = |v: &Option<ShortStr>, w: &mut Writer<'_>| {
            if let Some(v) = v {
                w.shortstr(v);
            }
        };
        s(&self.content_type, &mut w);
        s(&self.content_encoding, &mut w);
        if let Some(h) = &self.headers {
            h.write(&mut w);
        }
        if let Some(v) = self.delivery_mode {
            w.u8(v);
        }
        if let Some(v) = self.priority {
            w.u8(v);
        }
        s(&self.correlation_id, &mut w);
        s(&self.reply_to, &mut w);
        s(&self.expiration, &mut w);
        s(&self.message_id, &mut w);
        if let Some(v) = self.timestamp {
            w.u64(v);
        }
        s(&self.message_type, &mut w);
        s(&self.user_id, &mut w);
        s(&self.app_id, &mut w);
        s(&self.cluster_id, &mut w);
    }

    /// Decodes flag words and properties that fill all of `bytes` (the part
    /// of a content header payload after the body size). Strings and header
    /// values are zero-copy views of `bytes`.
    pub fn decode(bytes: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let props = Self::read(&mut r)?;
        match r.remaining() {
            0 => Ok(props),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let f = read_flags(r)?;
        let has = |bit: u16| f & bit != 0;
        let s = |r: &mut Reader<'_>, bit: u16| -> Result<Option<ShortStr>, DecodeError> {
            if has(bit) {
                r.shortstr().map(Some)
            } else {
                Ok(None)
            }
        };
        let o = |r: &mut Reader<'_>, bit: u16| -> Result<Option<u8>, DecodeError> {
            if has(bit) {
                r.u8().map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(Self {
            content_type: s(r, flag::CONTENT_TYPE)?,
            content_encoding: s(r, flag::CONTENT_ENCODING)?,
            headers: if has(flag::HEADERS) { Some(FieldTable::read(r, 0)?) } else { None },
            delivery_mode: o(r, flag::DELIVERY_MODE)?,
            priority: o(r, flag::PRIORITY)?,
            correlation_id: s(r, flag::CORRELATION_ID)?,
            reply_to: s(r, flag::REPLY_TO)?,
            expiration: s(r, flag::EXPIRATION)?,
            message_id: s(r, flag::MESSAGE_ID)?,
            timestamp: if has(flag::TIMESTAMP) { Some(r.u64()?) } else { None },
            message_type: s(r, flag::TYPE)?,
            user_id: s(r, flag::USER_ID)?,
            app_id: s(r, flag::APP_ID)?,
            cluster_id: s(r, flag::CLUSTER_ID)?,
        })
    }
}

/// Reads the flag words; returns the first word without its continuation
/// bit. Continuation words may only carry further continuation bits, since
/// `basic` defines no more than 14 properties.
fn read_flags(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    let first = r.u16()?;
    if first & !(flag::KNOWN | flag::CONTINUATION) != 0 {
        return Err(DecodeError::UnknownPropertyFlags { flags: first });
    }
    let mut word = first;
    while word & flag::CONTINUATION != 0 {
        word = r.u16()?;
        if word & !flag::CONTINUATION != 0 {
            return Err(DecodeError::UnknownPropertyFlags { flags: word });
        }
    }
    Ok(first & flag::KNOWN)
}

/// Skips the properties selected by `flags`, optionally stopping before the
/// one with flag `stop`. Returns whether `stop` is present. No allocation.
fn skip_properties(r: &mut Reader<'_>, flags: u16, stop: u16) -> Result<bool, DecodeError> {
    let mut bit = flag::CONTENT_TYPE;
    while bit >= flag::CLUSTER_ID {
        if bit == stop {
            return Ok(flags & bit != 0);
        }
        if flags & bit != 0 {
            match bit {
                flag::HEADERS => FieldTable::skip(r, 0)?,
                flag::DELIVERY_MODE | flag::PRIORITY => r.skip(1)?,
                flag::TIMESTAMP => r.skip(8)?,
                _ => r.skip_shortstr()?,
            }
        }
        bit >>= 1;
    }
    Ok(false)
}

/// The properties a broker acts on when a message is published, read in one pass over a
/// validated header: strings are zero-copy views, and only a `headers` table (when
/// present) is decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// Application headers (headers exchanges route on them).
    pub headers: Option<FieldTable>,
    /// 1 = non-persistent, 2 = persistent.
    pub delivery_mode: Option<u8>,
    /// Message priority.
    pub priority: Option<u8>,
    /// Address to reply to (direct reply-to rewrites it).
    pub reply_to: Option<ShortStr>,
    /// Per-message TTL in milliseconds, as decimal text.
    pub expiration: Option<ShortStr>,
    /// Creating user id (checked against the connection's user).
    pub user_id: Option<ShortStr>,
}

/// A content header frame payload: kept as received, with the fixed fields
/// decoded and the properties validated but parsed only on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHeader {
    raw: Bytes,
    class_id: u16,
    weight: u16,
    body_size: u64,
    flags: u16,
}

impl ContentHeader {
    /// Validates a received header payload without allocating. The returned
    /// header keeps `payload` as its raw bytes.
    pub fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(&payload);
        let class_id = r.u16()?;
        let weight = r.u16()?;
        let body_size = r.u64()?;
        let flags = read_flags(&mut r)?;
        skip_properties(&mut r, flags, 0)?;
        if r.remaining() != 0 {
            return Err(DecodeError::TrailingBytes { extra: r.remaining() });
        }
        Ok(Self { raw: payload, class_id, weight, body_size, flags })
    }

    /// Builds a header by encoding `properties` (weight 0).
    pub fn new(class_id: u16, body_size: u64, properties: &BasicProperties) -> Self {
        let mut buf = BytesMut::with_capacity(FIXED_LEN + properties.encoded_len());
        let mut w = Writer::new(&mut buf);
        w.u16(class_id);
        w.u16(0);
        w.u64(body_size);
        properties.encode(&mut buf);
        Self { raw: buf.freeze(), class_id, weight: 0, body_size, flags: properties.flags() }
    }

    /// The same header with one more entry in its headers table, spliced into the raw
    /// bytes without decoding or re-encoding the other properties (the per-delivery
    /// `x-stream-offset` of streams). Falls back to a full re-encode when the key may
    /// already be present or the flags span more than one word.
    pub fn with_header_entry(&self, key: &ShortStr, value: &FieldValue) -> Result<Self, DecodeError> {
        match self.splice_header_entry(key, value) {
            Some(header) => Ok(header),
            None => {
                let mut properties = self.properties()?;
                let mut headers = properties.headers.take().unwrap_or_default();
                headers.insert(key.clone(), value.clone());
                properties.headers = Some(headers);
                Ok(self.with_properties(&properties))
            }
        }
    }

    fn splice_header_entry(&self, key: &ShortStr, value: &FieldValue) -> Option<Self> {
        let mut out = BytesMut::with_capacity(self.raw.len() + 4 + 1 + key.len() + value.encoded_len());
        Self::write_with_header_entry(&self.raw, key, value, &mut out).then(|| Self {
            raw: out.freeze(),
            class_id: self.class_id,
            weight: self.weight,
            body_size: self.body_size,
            flags: self.flags | flag::HEADERS,
        })
    }

    /// Appends to `out` the payload of [`ContentHeader::with_header_entry`], spliced straight
    /// from `raw` (a validated header's bytes) without decoding or re-encoding the other
    /// properties. Returns `false`, writing nothing, where splicing does not apply (several
    /// flag words, or `key` possibly present already): the caller then re-encodes.
    pub fn write_with_header_entry(
        raw: &[u8],
        key: &ShortStr,
        value: &FieldValue,
        out: &mut BytesMut,
    ) -> bool {
        use bytes::BufMut;
        let Some(key_len) = u8::try_from(key.len()).ok() else { return false };
        let key = key.as_bytes();
        let Some(flags) = raw.get(FIXED_LEN..FIXED_LEN + 2).and_then(|b| b.try_into().ok()) else {
            return false;
        };
        let flags = u16::from_be_bytes(flags);
        if flags & flag::CONTINUATION != 0 {
            return false;
        }
        let mut at = FIXED_LEN + 2;
        for bit in [flag::CONTENT_TYPE, flag::CONTENT_ENCODING] {
            if flags & bit != 0 {
                match raw.get(at) {
                    Some(len) => at += 1 + usize::from(*len),
                    None => return false,
                }
            }
        }
        let entry_len = 1 + key.len() + value.encoded_len();
        let put_entry = |out: &mut BytesMut| {
            out.put_u8(key_len);
            out.put_slice(key);
            value.write(&mut Writer::new(out));
        };
        if flags & flag::HEADERS != 0 {
            let Some(length) = raw.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes)
            else {
                return false;
            };
            let length = length as usize;
            let Some(table) = raw.get(at + 4..at + 4 + length) else { return false };
            let present = table.windows(key.len() + 1).any(|w| w.split_first() == Some((&key_len, key)));
            let Ok(new_length) = u32::try_from(length + entry_len) else { return false };
            if present {
                return false;
            }
            let (Some(before), Some(after)) = (raw.get(..at), raw.get(at + 4 + length..)) else {
                return false;
            };
            out.reserve(raw.len() + entry_len);
            out.put_slice(before);
            out.put_u32(new_length);
            out.put_slice(table);
            put_entry(out);
            out.put_slice(after);
        } else {
            let (Some(head), Some(strings), Some(rest)) =
                (raw.get(..FIXED_LEN), raw.get(FIXED_LEN + 2..at), raw.get(at..))
            else {
                return false;
            };
            out.reserve(raw.len() + 4 + entry_len);
            out.put_slice(head);
            out.put_u16(flags | flag::HEADERS);
            out.put_slice(strings);
            out.put_u32(entry_len as u32);
            put_entry(out);
            out.put_slice(rest);
        }
        true
    }

    /// A header for the same class and body size with new properties.
    pub fn with_properties(&self, properties: &BasicProperties) -> Self {
        Self::new(self.class_id, self.body_size, properties)
    }

    /// Class id of the content (60 for `basic`).
    pub fn class_id(&self) -> u16 {
        self.class_id
    }

    /// Weight field (unused, always 0 from conforming peers).
    pub fn weight(&self) -> u16 {
        self.weight
    }

    /// Total size of the message body in octets.
    pub fn body_size(&self) -> u64 {
        self.body_size
    }

    /// First property flag word without its continuation bit.
    pub fn property_flags(&self) -> u16 {
        self.flags
    }

    /// The payload exactly as received (or as built by [`ContentHeader::new`]).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Consumes the header, returning its raw payload.
    pub fn into_raw(self) -> Bytes {
        self.raw
    }

    /// Parses all properties. Strings are zero-copy; only a `headers` table
    /// allocates. Cannot fail for a header returned by [`ContentHeader::decode`].
    pub fn properties(&self) -> Result<BasicProperties, DecodeError> {
        let props = self.raw.slice(FIXED_LEN.min(self.raw.len())..);
        BasicProperties::decode(&props)
    }

    /// The properties publishing needs, without building the others.
    pub fn publish_properties(&self) -> Result<PublishProperties, DecodeError> {
        let mut r = Reader::new(&self.raw);
        r.skip(FIXED_LEN)?;
        let flags = read_flags(&mut r)?;
        let mut out = PublishProperties::default();
        let mut bit = flag::CONTENT_TYPE;
        while bit >= flag::CLUSTER_ID {
            if flags & bit != 0 {
                match bit {
                    flag::HEADERS => out.headers = Some(FieldTable::read(&mut r, 0)?),
                    flag::DELIVERY_MODE => out.delivery_mode = Some(r.u8()?),
                    flag::PRIORITY => out.priority = Some(r.u8()?),
                    flag::TIMESTAMP => r.skip(8)?,
                    flag::REPLY_TO => out.reply_to = Some(r.shortstr()?),
                    flag::EXPIRATION => out.expiration = Some(r.shortstr()?),
                    flag::USER_ID => out.user_id = Some(r.shortstr()?),
                    _ => r.skip_shortstr()?,
                }
            }
            bit >>= 1;
        }
        Ok(out)
    }

    /// A header this broker validated before (a stored message's): only the fixed fields
    /// and the flag word are read.
    pub fn trusted(raw: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(&raw);
        let class_id = r.u16()?;
        let weight = r.u16()?;
        let body_size = r.u64()?;
        let flags = r.u16()? & !flag::CONTINUATION;
        Ok(Self { raw, class_id, weight, body_size, flags })
    }

    /// Reader positioned at the property with flag `bit`, if present.
    fn seek(&self, bit: u16) -> Option<Reader<'_>> {
        let mut r = Reader::new(&self.raw);
        r.skip(FIXED_LEN).ok()?;
        read_flags(&mut r).ok()?;
        skip_properties(&mut r, self.flags, bit).ok()?.then_some(r)
    }

    /// The `delivery-mode` property without parsing the others.
    pub fn delivery_mode(&self) -> Option<u8> {
        self.seek(flag::DELIVERY_MODE)?.u8().ok()
    }

    /// True if `delivery-mode` is 2 (persistent).
    pub fn is_persistent(&self) -> bool {
        self.delivery_mode() == Some(2)
    }

    /// The `priority` property without parsing the others.
    pub fn priority(&self) -> Option<u8> {
        self.seek(flag::PRIORITY)?.u8().ok()
    }

    /// The `expiration` property without parsing the others.
    pub fn expiration(&self) -> Option<ShortStr> {
        self.seek(flag::EXPIRATION)?.shortstr().ok()
    }

    /// The `timestamp` property (seconds since the epoch) without parsing the others.
    pub fn timestamp(&self) -> Option<u64> {
        // Most messages have none: the flag says so without walking the properties.
        if self.flags & flag::TIMESTAMP == 0 {
            return None;
        }
        self.seek(flag::TIMESTAMP)?.u64().ok()
    }

    /// Encoded payload size.
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }
}

#[cfg(test)]
#[path = "properties_tests.rs"]
mod tests;
