//! Direct exchange routing and the canonical binding store.
//!
//! This file owns [`KeyedBindings`], a hash map from exact binding key to
//! destination to the argument tables bound with that pair. It is the
//! source of truth for binding identity for every exchange kind (the other
//! kinds keep extra indexes beside it), and exact-key lookup in it is the
//! whole of direct-exchange routing.

use std::collections::HashMap;
use std::hash::Hash;

use bytes::Bytes;

use super::args_equal;

/// The argument tables bound for one (key, destination) pair; almost
/// always exactly one.
type ArgVariants<K, V> = Vec<Vec<(K, V)>>;

/// Outcome of [`KeyedBindings::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inserted {
    /// The exact binding already existed; nothing changed.
    Duplicate,
    /// A new argument table for an already bound (key, destination) pair.
    NewArgs,
    /// The first binding of this (key, destination) pair.
    NewPair,
}

/// Outcome of [`KeyedBindings::remove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removed {
    /// No such binding.
    Missing,
    /// Removed; the (key, destination) pair still has other bindings.
    Args,
    /// Removed the last binding of the (key, destination) pair.
    LastOfPair,
}

/// Bindings indexed by exact key, then destination.
#[derive(Debug, Clone)]
pub(super) struct KeyedBindings<D, K, V> {
    by_key: HashMap<Bytes, HashMap<D, ArgVariants<K, V>>>,
}

impl<D, K, V> KeyedBindings<D, K, V>
where
    D: Copy + Eq + Hash,
    K: AsRef<[u8]>,
    V: PartialEq,
{
    /// An empty store.
    pub(super) fn new() -> Self {
        Self { by_key: HashMap::new() }
    }

    /// The stored `Bytes` for `key` if it is already bound (so indexes share
    /// one allocation), else a fresh copy.
    pub(super) fn intern(&self, key: &[u8]) -> Bytes {
        match self.by_key.get_key_value(key) {
            Some((stored, _)) => stored.clone(),
            None => Bytes::copy_from_slice(key),
        }
    }

    /// Adds a binding.
    pub(super) fn insert(&mut self, key: Bytes, args: Vec<(K, V)>, dest: D) -> Inserted {
        let variants = self.by_key.entry(key).or_default().entry(dest).or_default();
        if variants.iter().any(|known| args_equal(known, &args)) {
            return Inserted::Duplicate;
        }
        variants.push(args);
        if variants.len() == 1 {
            Inserted::NewPair
        } else {
            Inserted::NewArgs
        }
    }

    /// Removes one binding.
    pub(super) fn remove(&mut self, key: &[u8], args: &[(K, V)], dest: D) -> Removed {
        let Some(by_dest) = self.by_key.get_mut(key) else {
            return Removed::Missing;
        };
        let Some(variants) = by_dest.get_mut(&dest) else {
            return Removed::Missing;
        };
        let Some(pos) = variants.iter().position(|known| args_equal(known, args)) else {
            return Removed::Missing;
        };
        variants.swap_remove(pos);
        if !variants.is_empty() {
            return Removed::Args;
        }
        by_dest.remove(&dest);
        if by_dest.is_empty() {
            self.by_key.remove(key);
        }
        Removed::LastOfPair
    }

    /// Removes every binding of the (`key`, `dest`) pair; returns how many.
    pub(super) fn remove_pair(&mut self, key: &[u8], dest: D) -> usize {
        let Some(by_dest) = self.by_key.get_mut(key) else {
            return 0;
        };
        let removed = by_dest.remove(&dest).map_or(0, |variants| variants.len());
        if by_dest.is_empty() {
            self.by_key.remove(key);
        }
        removed
    }

    /// Whether the exact binding exists.
    pub(super) fn contains(&self, key: &[u8], args: &[(K, V)], dest: D) -> bool {
        self.by_key
            .get(key)
            .and_then(|by_dest| by_dest.get(&dest))
            .is_some_and(|variants| variants.iter().any(|known| args_equal(known, args)))
    }

    /// Direct routing: appends the destinations bound with exactly `key`
    /// (each once, unordered).
    pub(super) fn route(&self, key: &[u8], out: &mut Vec<D>) {
        if let Some(by_dest) = self.by_key.get(key) {
            out.extend(by_dest.keys().copied());
        }
    }

    /// Every (destination, argument tables) pair, across all keys; a
    /// destination bound under several keys appears several times.
    pub(super) fn pairs(&self) -> impl Iterator<Item = (D, &[Vec<(K, V)>])> + '_ {
        self.by_key
            .values()
            .flat_map(|by_dest| by_dest.iter().map(|(dest, variants)| (*dest, variants.as_slice())))
    }

    /// Every binding as (key, destination, arguments).
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], D, &[(K, V)])> + '_ {
        self.by_key.iter().flat_map(|(key, by_dest)| {
            by_dest.iter().flat_map(move |(dest, variants)| {
                variants.iter().map(move |args| (key.as_ref(), *dest, args.as_slice()))
            })
        })
    }
}
