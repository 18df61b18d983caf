//! [`SeqMap`]: a map from `u64` sequence numbers (delivery tags, log offsets) to values, for
//! keys that mostly arrive in increasing order and mostly leave from the front, as
//! unacknowledged deliveries do.
//!
//! Entries live in one `VecDeque` sorted by key. Inserting past the last key is a push,
//! removing the first is a pop, and a lookup is a binary search. A key removed from the
//! middle leaves a tombstone; tombstones at the front are popped at once, and the deque is
//! compacted when tombstones outnumber live entries, so memory stays proportional to what
//! is live. An insert below the last key (a requeued message delivered again) shifts the
//! entries after it.

use std::collections::VecDeque;

use crate::limits::SEQ_MAP_TOMBSTONES_KEPT_MIN;

/// A map from increasing `u64` keys to values. See the module documentation.
#[derive(Debug, Clone)]
pub struct SeqMap<V> {
    entries: VecDeque<(u64, Option<V>)>,
    live: usize,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        SeqMap { entries: VecDeque::new(), live: 0 }
    }
}

impl<V> SeqMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn find(&self, key: u64) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&key, |(k, _)| *k)
    }

    /// Inserts `value` at `key`, returning the value it replaces.
    pub fn insert(&mut self, key: u64, value: V) -> Option<V> {
        if self.entries.back().is_none_or(|(last, _)| *last < key) {
            self.entries.push_back((key, Some(value)));
            self.live += 1;
            return None;
        }
        match self.find(key) {
            Ok(i) => {
                let old = self.entries[i].1.replace(value);
                if old.is_none() {
                    self.live += 1;
                }
                old
            }
            Err(i) => {
                self.entries.insert(i, (key, Some(value)));
                self.live += 1;
                None
            }
        }
    }

    /// The value at `key`.
    pub fn get(&self, key: u64) -> Option<&V> {
        self.find(key).ok().and_then(|i| self.entries[i].1.as_ref())
    }

    /// Whether `key` is live.
    pub fn contains_key(&self, key: u64) -> bool {
        self.get(key).is_some()
    }

    /// Removes and returns the value at `key`.
    pub fn remove(&mut self, key: u64) -> Option<V> {
        let i = self.find(key).ok()?;
        let value = self.entries[i].1.take()?;
        self.live -= 1;
        self.tidy();
        Some(value)
    }

    /// Removes every entry with a key up to `last` (inclusive), in key order.
    pub fn remove_through(&mut self, last: u64) -> Vec<(u64, V)> {
        let mut removed = Vec::new();
        while let Some((key, _)) = self.entries.front() {
            if *key > last {
                break;
            }
            if let Some((key, Some(value))) = self.entries.pop_front() {
                removed.push((key, value));
            }
        }
        self.live -= removed.len();
        self.tidy();
        removed
    }

    /// The lowest live key and its value.
    pub fn first(&self) -> Option<(u64, &V)> {
        // The front is never a tombstone (see `tidy`).
        self.entries.front().and_then(|(key, value)| value.as_ref().map(|v| (*key, v)))
    }

    /// Live entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.entries.iter().filter_map(|(key, value)| value.as_ref().map(|v| (*key, v)))
    }

    /// Live values in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().filter_map(|(_, value)| value.as_ref())
    }

    /// Pops tombstones off the front; compacts when they outnumber live entries.
    fn tidy(&mut self) {
        while self.entries.front().is_some_and(|(_, value)| value.is_none()) {
            self.entries.pop_front();
        }
        let tombstones = self.entries.len() - self.live;
        if tombstones > SEQ_MAP_TOMBSTONES_KEPT_MIN && tombstones > self.live {
            self.entries.retain(|(_, value)| value.is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::SeqMap;

    #[derive(Debug, Clone)]
    enum Op {
        /// Insert past the last key by this step (0 re-inserts the last key).
        Append(u8),
        /// Insert at an arbitrary key below 4096.
        InsertAt(u16),
        /// Remove the live key at this index (modulo the count), or an absent key when empty.
        Remove(u16),
        RemoveThrough(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<u8>().prop_map(Op::Append),
            1 => (0u16..4096).prop_map(Op::InsertAt),
            4 => any::<u16>().prop_map(Op::Remove),
            1 => (0u16..4096).prop_map(Op::RemoveThrough),
        ]
    }

    proptest! {
        /// Every operation answers as a BTreeMap does, and memory stays proportional to
        /// the live entries.
        #[test]
        fn behaves_as_an_ordered_map(ops in proptest::collection::vec(op(), 0..600)) {
            let mut map = SeqMap::new();
            let mut model = BTreeMap::new();
            let mut last = 0u64;
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Append(step) => {
                        last += u64::from(step);
                        prop_assert_eq!(map.insert(last, n), model.insert(last, n));
                    }
                    Op::InsertAt(key) => {
                        let key = u64::from(key);
                        prop_assert_eq!(map.insert(key, n), model.insert(key, n));
                    }
                    Op::Remove(i) => {
                        let live: Vec<u64> = model.keys().copied().collect();
                        let key = if live.is_empty() { u64::from(i) } else { live[usize::from(i) % live.len()] };
                        prop_assert_eq!(map.remove(key), model.remove(&key));
                    }
                    Op::RemoveThrough(key) => {
                        let key = u64::from(key);
                        let expected: Vec<(u64, usize)> = model.range(..=key).map(|(k, v)| (*k, *v)).collect();
                        for (k, _) in &expected {
                            model.remove(k);
                        }
                        prop_assert_eq!(map.remove_through(key), expected);
                    }
                }
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(map.first(), model.first_key_value().map(|(k, v)| (*k, v)));
                prop_assert!(map.iter().eq(model.iter().map(|(k, v)| (*k, v))));
                prop_assert!(map.entries.len() <= 2 * map.len() + crate::limits::SEQ_MAP_TOMBSTONES_KEPT_MIN + 1);
                for key in [0, last, last / 2] {
                    prop_assert_eq!(map.get(key), model.get(&key));
                }
            }
        }
    }

    #[test]
    fn acks_from_the_front_leave_nothing_behind() {
        let mut map = SeqMap::new();
        for tag in 1..=1000u64 {
            map.insert(tag, ());
        }
        assert_eq!(map.remove_through(600).len(), 600);
        for tag in (601..=1000u64).rev() {
            assert_eq!(map.remove(tag), Some(()));
        }
        assert!(map.is_empty());
        assert_eq!(map.entries.len(), 0);
    }
}
