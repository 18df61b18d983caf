//! Headers exchange routing: `x-match` modes, binding validation and
//! matching message headers against binding arguments.
//!
//! This file owns [`XMatch`], [`BindingArgsError`],
//! [`validate_headers_binding`] and [`headers_match`], reproducing
//! RabbitMQ 3.10:
//!
//! * The `x-match` argument (first entry with that key) selects the mode:
//!   `all` (also the default when absent, and the fallback for an invalid
//!   value that slipped past validation), `any`, `all-with-x`, `any-with-x`.
//! * The `x-match` argument itself never takes part in matching. In `all`
//!   and `any` modes, binding arguments whose key starts with `x-` are
//!   ignored too; in the `-with-x` modes they must match like any other.
//!   Message headers are never filtered: an `x-` header simply has no
//!   counterpart unless the binding names it.
//! * A binding argument matches when the message has a header with the same
//!   key and either the argument is `void` (presence test) or the values are
//!   equal as described on [`HeaderValue`].
//! * `all` needs every considered argument to match (so a binding with none
//!   matches every message); `any` needs at least one (so a binding with
//!   none matches nothing).
//! * Duplicate keys behave as in RabbitMQ's merge of key-sorted tables: the
//!   n-th argument with a key is compared with the n-th header with that key.

use std::hash::Hash;

use super::direct::KeyedBindings;
use super::{nth_with_key, occurrences_before, HeaderValue};

/// The binding argument that selects the match mode.
const X_MATCH: &[u8] = b"x-match";

/// The prefix of arguments ignored in `all` and `any` modes.
const X_PREFIX: &[u8] = b"x-";

/// How a headers binding combines its argument matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum XMatch {
    /// Every non-`x-` argument must match (the default).
    #[default]
    All,
    /// At least one non-`x-` argument must match.
    Any,
    /// Every argument but `x-match` must match, `x-` ones included.
    AllWithX,
    /// At least one argument other than `x-match` must match.
    AnyWithX,
}

impl XMatch {
    /// Parses an `x-match` value (`all`, `any`, `all-with-x`, `any-with-x`).
    pub fn parse(value: &[u8]) -> Option<Self> {
        match value {
            b"all" => Some(Self::All),
            b"any" => Some(Self::Any),
            b"all-with-x" => Some(Self::AllWithX),
            b"any-with-x" => Some(Self::AnyWithX),
            _ => None,
        }
    }

    /// The mode selected by binding arguments `args`: the first `x-match`
    /// entry if it is a valid long string, else [`XMatch::All`] (RabbitMQ's
    /// legacy fallback; [`validate_headers_binding`] rejects such bindings).
    pub fn from_args<K: AsRef<[u8]>, V: HeaderValue>(args: &[(K, V)]) -> Self {
        nth_with_key(args, X_MATCH, 0)
            .and_then(HeaderValue::as_long_str)
            .and_then(Self::parse)
            .unwrap_or_default()
    }

    /// The protocol spelling of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Any => "any",
            Self::AllWithX => "all-with-x",
            Self::AnyWithX => "any-with-x",
        }
    }

    /// Whether every argument must match (as opposed to at least one).
    fn needs_all(self) -> bool {
        matches!(self, Self::All | Self::AllWithX)
    }

    /// Whether `x-` arguments other than `x-match` take part.
    fn counts_x_args(self) -> bool {
        matches!(self, Self::AllWithX | Self::AnyWithX)
    }
}

/// Why headers-exchange binding arguments were rejected. The caller answers
/// with a `406 PRECONDITION_FAILED` channel error carrying the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingArgsError {
    /// `x-match` is a long string but not one of the four modes.
    #[error(
        "Invalid x-match field value <<\"{}\">>; expected all, any, all-with-x, or any-with-x",
        String::from_utf8_lossy(.0)
    )]
    InvalidXMatchValue(Vec<u8>),
    /// `x-match` is not a long string.
    #[error("Invalid x-match field type; expected longstr")]
    InvalidXMatchType,
}

/// Validates headers-exchange binding arguments as RabbitMQ does at bind
/// time: `x-match`, if present (first entry), must be a long string naming
/// one of the four modes.
pub fn validate_headers_binding<K: AsRef<[u8]>, V: HeaderValue>(
    args: &[(K, V)],
) -> Result<(), BindingArgsError> {
    let Some(value) = nth_with_key(args, X_MATCH, 0) else {
        return Ok(());
    };
    let Some(text) = value.as_long_str() else {
        return Err(BindingArgsError::InvalidXMatchType);
    };
    match XMatch::parse(text) {
        Some(_) => Ok(()),
        None => Err(BindingArgsError::InvalidXMatchValue(text.to_vec())),
    }
}

/// Whether message `headers` match headers-binding arguments `args`.
pub fn headers_match<K: AsRef<[u8]>, V: HeaderValue>(args: &[(K, V)], headers: &[(K, V)]) -> bool {
    let mode = XMatch::from_args(args);
    let needs_all = mode.needs_all();
    for (index, (key, wanted)) in args.iter().enumerate() {
        let key = key.as_ref();
        if key == X_MATCH || (!mode.counts_x_args() && key.starts_with(X_PREFIX)) {
            continue;
        }
        let occurrence = occurrences_before(args, index, key);
        let matched = nth_with_key(headers, key, occurrence)
            .is_some_and(|found| wanted.is_void() || values_equal(wanted, found));
        if matched != needs_all {
            // A hit decides `any`; a miss decides `all`.
            return matched;
        }
    }
    needs_all
}

/// Field-value equality for matching: integer views first, then `PartialEq`.
fn values_equal<V: HeaderValue>(wanted: &V, found: &V) -> bool {
    match (wanted.as_integer(), found.as_integer()) {
        (Some(a), Some(b)) => a == b,
        _ => wanted == found,
    }
}

/// Headers routing: appends each destination with at least one binding
/// whose arguments match `headers` (possibly more than once; the caller
/// dedupes).
pub(super) fn route<D, K, V>(store: &KeyedBindings<D, K, V>, headers: &[(K, V)], out: &mut Vec<D>)
where
    D: Copy + Eq + Hash,
    K: AsRef<[u8]>,
    V: HeaderValue,
{
    for (dest, variants) in store.pairs() {
        if variants.iter().any(|args| headers_match(args, headers)) {
            out.push(dest);
        }
    }
}
