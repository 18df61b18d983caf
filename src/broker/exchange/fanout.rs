//! Fanout exchange routing and the destination index.
//!
//! This file owns [`Destinations`], a map from each bound destination to the
//! set of keys it is bound with. Its key set is the answer to "which
//! destinations does this exchange have" for every exchange kind, lets a
//! deleted queue's bindings be found without a scan, and listing it is the
//! whole of fanout routing.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use bytes::Bytes;

/// Destination → binding keys it is bound with (each key once, however
/// many argument tables that pair has).
#[derive(Debug, Clone)]
pub(super) struct Destinations<D> {
    keys: HashMap<D, HashSet<Bytes>>,
}

impl<D: Copy + Eq + Hash> Destinations<D> {
    /// An empty index.
    pub(super) fn new() -> Self {
        Self { keys: HashMap::new() }
    }

    /// Records that `dest` is now bound with `key`.
    pub(super) fn add(&mut self, dest: D, key: Bytes) {
        self.keys.entry(dest).or_default().insert(key);
    }

    /// Records that `dest` is no longer bound with `key`.
    pub(super) fn remove(&mut self, dest: D, key: &[u8]) {
        if let Some(keys) = self.keys.get_mut(&dest) {
            keys.remove(key);
            if keys.is_empty() {
                self.keys.remove(&dest);
            }
        }
    }

    /// Forgets `dest` entirely, returning the keys it was bound with.
    pub(super) fn take(&mut self, dest: D) -> HashSet<Bytes> {
        self.keys.remove(&dest).unwrap_or_default()
    }

    /// Whether `dest` has any binding.
    pub(super) fn contains(&self, dest: D) -> bool {
        self.keys.contains_key(&dest)
    }

    /// The bound destinations, unordered.
    pub(super) fn iter(&self) -> impl Iterator<Item = D> + '_ {
        self.keys.keys().copied()
    }

    /// Fanout routing: appends every bound destination once (unordered).
    pub(super) fn route(&self, out: &mut Vec<D>) {
        out.extend(self.keys.keys().copied());
    }
}
