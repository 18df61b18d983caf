//! Exchange routing core: the binding table of one exchange and how a
//! message is routed through it.
//!
//! This module owns the public face of routing: [`ExchangeKind`] (the four
//! built-in exchange types), the [`HeaderValue`] trait through which binding
//! arguments and message headers are inspected, [`BindingTable`] (bind,
//! unbind, route, list) and [`BindingRef`] (one listed binding). The
//! per-kind machinery lives in the submodules:
//!
//! * `direct` — the canonical binding store keyed by exact routing key, which
//!   is also the direct exchange's index;
//! * `fanout` — the destination index (destination → keys bound), which is
//!   also the fanout exchange's index;
//! * `topic` — the word trie used by topic exchanges;
//! * `headers` — `x-match` parsing, binding validation and header matching.
//!
//! Everything here is a plain data structure: no I/O, no locking, no async.
//! The caller (the broker) owns the tables and serialises access.
//!
//! # Field tables
//!
//! Binding arguments and message headers are taken as slices of
//! `(key, value)` pairs, `&[(K, V)]`, with `K: AsRef<[u8]>` and
//! `V: HeaderValue`. A codec field table represented as
//! `Vec<(Bytes, FieldValue)>` plugs in directly once `FieldValue`
//! implements [`HeaderValue`].

mod direct;
mod fanout;
mod headers;
mod topic;

#[cfg(test)]
mod tests;

pub use headers::{headers_match, validate_headers_binding, BindingArgsError, XMatch};

use std::fmt;
use std::hash::Hash;

/// The view of an AMQP field value that routing needs.
///
/// Implement this for the codec's field value type. Equality between a
/// binding argument and a message header is decided as follows, mirroring
/// RabbitMQ, which compares the *decoded Erlang terms* with `==`:
///
/// 1. a binding argument for which [`is_void`](HeaderValue::is_void) is true
///    matches any header with the same key, whatever its value;
/// 2. if both values have an [integer view](HeaderValue::as_integer), they
///    are equal when the integers are equal, so a signed 32-bit `1` equals a
///    64-bit `1` (and a timestamp `1`, if the implementation exposes
///    timestamps as integers, as RabbitMQ's decoded terms do);
/// 3. otherwise `PartialEq` decides.
///
/// RabbitMQ's `==` also equates an integer with an equal float (`1 == 1.0`)
/// and a long string with an equal byte array. Those cross-type cases are
/// left to the implementation's `PartialEq`; a plain derived `PartialEq`
/// treats them as different, which is the only known divergence.
///
/// Binding *identity* (whether two bindings are the same binding) uses plain
/// `PartialEq`, without the integer view, because RabbitMQ keeps the type tag
/// in the stored binding.
pub trait HeaderValue: PartialEq {
    /// True for the AMQP `void` field type (`V`).
    fn is_void(&self) -> bool;

    /// The value as an integer, for every integer field type (signed and
    /// unsigned 8/16/32/64-bit, and timestamp); `None` for anything else.
    fn as_integer(&self) -> Option<i128>;

    /// The bytes of a long-string (`S`) value; `None` for any other type.
    /// Used to read the `x-match` binding argument.
    fn as_long_str(&self) -> Option<&[u8]>;
}

/// The built-in exchange types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// Routes to bindings whose key equals the routing key exactly.
    Direct,
    /// Routes to every bound destination, ignoring the routing key.
    Fanout,
    /// Routes by matching the routing key against `*`/`#` word patterns.
    Topic,
    /// Routes by matching message headers against binding arguments.
    Headers,
}

impl ExchangeKind {
    /// Parses an `exchange.declare` type name. Unknown names give `None`; the
    /// caller answers `503 COMMAND_INVALID "unknown exchange type '<name>'"`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "direct" => Some(Self::Direct),
            "fanout" => Some(Self::Fanout),
            "topic" => Some(Self::Topic),
            "headers" => Some(Self::Headers),
            _ => None,
        }
    }

    /// The protocol name of the type (`"direct"`, `"fanout"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }

    /// Checks binding arguments the way RabbitMQ's `validate_binding` does
    /// for this exchange type: only headers exchanges check anything (the
    /// `x-match` argument). The caller turns an error into a
    /// `406 PRECONDITION_FAILED` channel error.
    pub fn validate_binding<K: AsRef<[u8]>, V: HeaderValue>(
        self,
        args: &[(K, V)],
    ) -> Result<(), BindingArgsError> {
        match self {
            Self::Headers => validate_headers_binding(args),
            Self::Direct | Self::Fanout | Self::Topic => Ok(()),
        }
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One binding as listed for management: routing key (or pattern),
/// arguments and destination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BindingRef<'a, D, K, V> {
    /// The binding key (a topic pattern for topic exchanges).
    pub key: &'a [u8],
    /// The binding arguments, in the order they were given at bind time.
    pub args: &'a [(K, V)],
    /// The bound queue or exchange.
    pub destination: D,
}

/// The bindings of one exchange, indexed for routing by its kind.
///
/// `D` is the caller's destination id (a queue or, for exchange-to-exchange
/// bindings, an exchange). A binding is identified, as in RabbitMQ, by
/// (key, arguments, destination); arguments compare as field tables sorted
/// by key, so their order does not matter. Binding the same key to the same
/// destination with different arguments makes two bindings, but routing
/// still delivers one copy per destination.
#[derive(Debug, Clone)]
pub struct BindingTable<D, K, V> {
    kind: ExchangeKind,
    store: direct::KeyedBindings<D, K, V>,
    destinations: fanout::Destinations<D>,
    trie: Option<topic::TopicTrie<D>>,
    len: usize,
}

impl<D, K, V> BindingTable<D, K, V>
where
    D: Copy + Eq + Hash + Ord,
    K: AsRef<[u8]>,
    V: HeaderValue,
{
    /// An empty table for an exchange of the given kind.
    pub fn new(kind: ExchangeKind) -> Self {
        Self {
            kind,
            store: direct::KeyedBindings::new(),
            destinations: fanout::Destinations::new(),
            trie: (kind == ExchangeKind::Topic).then(topic::TopicTrie::new),
            len: 0,
        }
    }

    /// The exchange kind this table routes for.
    pub fn kind(&self) -> ExchangeKind {
        self.kind
    }

    /// Adds the binding (`key`, `args`, `destination`). Returns `true` if it
    /// is new, `false` if an identical binding already existed (binding is
    /// idempotent in AMQP, so that is not an error).
    pub fn bind(&mut self, key: &[u8], args: Vec<(K, V)>, destination: D) -> bool {
        let key = self.store.intern(key);
        match self.store.insert(key.clone(), args, destination) {
            direct::Inserted::Duplicate => false,
            direct::Inserted::NewArgs => {
                self.len += 1;
                true
            }
            direct::Inserted::NewPair => {
                self.len += 1;
                if let Some(trie) = self.trie.as_mut() {
                    trie.insert(&key, destination);
                }
                self.destinations.add(destination, key);
                true
            }
        }
    }

    /// Removes the binding (`key`, `args`, `destination`). Returns `true` if
    /// it existed.
    pub fn unbind(&mut self, key: &[u8], args: &[(K, V)], destination: D) -> bool {
        match self.store.remove(key, args, destination) {
            direct::Removed::Missing => false,
            direct::Removed::Args => {
                self.len -= 1;
                true
            }
            direct::Removed::LastOfPair => {
                self.len -= 1;
                self.destinations.remove(destination, key);
                if let Some(trie) = self.trie.as_mut() {
                    trie.remove(key, destination);
                }
                true
            }
        }
    }

    /// Removes every binding to `destination` (used when a queue or a
    /// destination exchange is deleted). Returns how many were removed.
    pub fn unbind_destination(&mut self, destination: D) -> usize {
        let mut removed = 0;
        for key in self.destinations.take(destination) {
            removed += self.store.remove_pair(&key, destination);
            if let Some(trie) = self.trie.as_mut() {
                trie.remove(&key, destination);
            }
        }
        self.len -= removed;
        removed
    }

    /// Whether the binding (`key`, `args`, `destination`) exists.
    pub fn contains(&self, key: &[u8], args: &[(K, V)], destination: D) -> bool {
        self.store.contains(key, args, destination)
    }

    /// Appends to `out` every destination the message matches, each exactly
    /// once, in ascending order. `routing_key` is ignored by fanout and
    /// headers exchanges, `headers` by all but headers exchanges (pass `&[]`).
    /// Entries already in `out` are left untouched and are not consulted, so
    /// a caller routing through several exchanges dedupes across them itself.
    pub fn route(&self, routing_key: &[u8], headers: &[(K, V)], out: &mut Vec<D>) {
        let start = out.len();
        match self.kind {
            ExchangeKind::Direct => self.store.route(routing_key, out),
            ExchangeKind::Fanout => self.destinations.route(out),
            ExchangeKind::Topic => {
                if let Some(trie) = self.trie.as_ref() {
                    trie.route(routing_key, out);
                }
            }
            ExchangeKind::Headers => headers::route(&self.store, headers, out),
        }
        sort_dedup_tail(out, start);
    }

    /// The distinct destinations with at least one binding, in no
    /// particular order.
    pub fn destinations(&self) -> impl Iterator<Item = D> + '_ {
        self.destinations.iter()
    }

    /// Whether `destination` has at least one binding.
    pub fn has_destination(&self, destination: D) -> bool {
        self.destinations.contains(destination)
    }

    /// True when the exchange has no bindings.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of bindings (not of distinct destinations).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Every binding, in no particular order.
    pub fn bindings(&self) -> impl Iterator<Item = BindingRef<'_, D, K, V>> + '_ {
        self.store.iter().map(|(key, destination, args)| BindingRef { key, args, destination })
    }
}

/// Sorts `out[start..]` and removes duplicates from it, leaving the prefix
/// alone.
fn sort_dedup_tail<D: Copy + Ord>(out: &mut Vec<D>, start: usize) {
    let Some(tail) = out.get_mut(start..) else {
        return;
    };
    tail.sort_unstable();
    let mut write = start;
    let mut last: Option<D> = None;
    for read in start..out.len() {
        let Some(&value) = out.get(read) else { break };
        if last != Some(value) {
            if let Some(slot) = out.get_mut(write) {
                *slot = value;
            }
            write += 1;
            last = Some(value);
        }
    }
    out.truncate(write);
}

/// The value of the `n`-th (0-based) entry of `table` whose key is `key`.
fn nth_with_key<'a, K: AsRef<[u8]>, V>(table: &'a [(K, V)], key: &[u8], n: usize) -> Option<&'a V> {
    table.iter().filter(|(k, _)| k.as_ref() == key).nth(n).map(|(_, v)| v)
}

/// How many entries before position `index` of `table` have key `key`.
fn occurrences_before<K: AsRef<[u8]>, V>(table: &[(K, V)], index: usize, key: &[u8]) -> usize {
    table.iter().take(index).filter(|(k, _)| k.as_ref() == key).count()
}

/// Binding-argument identity: equal as tables stably sorted by key (what
/// RabbitMQ stores), i.e. the `n`-th entry with a given key in `a` equals the
/// `n`-th entry with that key in `b`, for every entry, and sizes match.
fn args_equal<K: AsRef<[u8]>, V: PartialEq>(a: &[(K, V)], b: &[(K, V)]) -> bool {
    a.len() == b.len()
        && a.iter().enumerate().all(|(i, (k, v))| {
            let key = k.as_ref();
            nth_with_key(b, key, occurrences_before(a, i, key)) == Some(v)
        })
}
