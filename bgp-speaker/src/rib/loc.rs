//! The storage of one family's Loc-RIB: destinations in a slab (a `Vec`
//! whose slots never move; freed slots are reused), found through a hash
//! index of 8-octet slots (slab position and 32 bits of the key's hash).
//!
//! Why not one `HashMap<K, Dest>`: its entries are scattered by hash, so
//! every new route touches a random cache line of a table that is 40+
//! octets per route, and every growth moves all of them. Here the random
//! access is into the index (a fifth of the size), new destinations are
//! appended where the previous one was written, growth of the index never
//! reads the slab, and a destination's position is a stable `u32` that the
//! decision queue can hold instead of the key and attributes.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// One index entry: where the destination is, and its key's hash.
#[derive(Clone, Copy, Debug)]
struct Slot {
    at: u32,
    hash: u32,
}

/// A slab slot: the key and its value, or a free slot.
#[derive(Debug)]
struct Entry<K, V> {
    key: K,
    /// `None`: a free slot (on the free list).
    value: Option<V>,
}

/// A map from keys to values with stable `u32` positions.
#[derive(Debug)]
pub(super) struct Slab<K, V> {
    index: HashTable<Slot>,
    entries: Vec<Entry<K, V>>,
    free: Vec<u32>,
}

/// The 32-bit hash kept in the index.
fn hash32<K: Hash>(k: &K) -> u32 {
    let h = FxBuildHasher.hash_one(k);
    (h >> 32) as u32 ^ h as u32
}

/// The hash the index probes with, rebuilt from the stored 32 bits (so
/// that growing the index never reads the slab): the low bits choose the
/// bucket, the top seven are the control tag.
fn probe_hash(h: u32) -> u64 {
    (u64::from(h) << 32) | u64::from(h)
}

impl<K: Copy + Eq + Hash, V> Slab<K, V> {
    pub fn new() -> Self {
        Slab {
            index: HashTable::new(),
            entries: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The position of `k`, if present.
    pub fn find(&self, k: &K) -> Option<u32> {
        let h = hash32(k);
        let entries = &self.entries;
        self.index
            .find(probe_hash(h), |s| {
                s.hash == h && entries[s.at as usize].key == *k
            })
            .map(|s| s.at)
    }

    /// The position of `k`, inserting `make()` if it is absent.
    pub fn find_or_insert(&mut self, k: K, make: impl FnOnce() -> V) -> u32 {
        let h = hash32(&k);
        let entries = &self.entries;
        let found = self.index.find(probe_hash(h), |s| {
            s.hash == h && entries[s.at as usize].key == k
        });
        if let Some(s) = found {
            return s.at;
        }
        let at = match self.free.pop() {
            Some(at) => {
                self.entries[at as usize] = Entry {
                    key: k,
                    value: Some(make()),
                };
                at
            }
            None => {
                let at = u32::try_from(self.entries.len()).expect("fewer than 2^32 prefixes");
                self.entries.push(Entry {
                    key: k,
                    value: Some(make()),
                });
                at
            }
        };
        self.index
            .insert_unique(probe_hash(h), Slot { at, hash: h }, |s| probe_hash(s.hash));
        at
    }

    /// Removes the entry at `at` (a live position) and returns its value.
    pub fn remove(&mut self, at: u32) -> Option<V> {
        let e = self.entries.get_mut(at as usize)?;
        let value = e.value.take()?;
        let h = hash32(&e.key);
        if let Ok(slot) = self.index.find_entry(probe_hash(h), |s| s.at == at) {
            slot.remove();
        }
        self.free.push(at);
        if self.index.is_empty() {
            // Give the memory back when the table empties.
            *self = Slab::new();
        }
        Some(value)
    }

    /// The key and value at a live position.
    #[cfg(test)]
    pub fn get(&self, at: u32) -> Option<(K, &V)> {
        let e = self.entries.get(at as usize)?;
        e.value.as_ref().map(|v| (e.key, v))
    }

    /// The key and value at a live position, mutably.
    pub fn get_mut(&mut self, at: u32) -> Option<(K, &mut V)> {
        let e = self.entries.get_mut(at as usize)?;
        let key = e.key;
        e.value.as_mut().map(|v| (key, v))
    }

    /// Every live entry with its position, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, K, &V)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.value.as_ref().map(|v| (i as u32, e.key, v)))
    }

    /// Every live value, mutably.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().filter_map(|e| e.value.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_stable_and_reused() {
        let mut s: Slab<u32, &str> = Slab::new();
        let a = s.find_or_insert(1, || "a");
        let b = s.find_or_insert(2, || "b");
        assert_eq!(
            s.find_or_insert(1, || "x"),
            a,
            "existing key keeps its slot"
        );
        assert_eq!(s.get(a), Some((1, &"a")));
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.find(&1), None);
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None, "a free slot cannot be removed twice");
        assert_eq!(s.find(&2), Some(b), "other entries do not move");
        let c = s.find_or_insert(3, || "c");
        assert_eq!(c, a, "the freed slot is reused");
        assert_eq!(s.len(), 2);
        let mut all: Vec<_> = s.iter().map(|(_, k, v)| (k, *v)).collect();
        all.sort();
        assert_eq!(all, vec![(2, "b"), (3, "c")]);
    }

    #[test]
    fn many_keys_survive_growth_and_removal() {
        let mut s: Slab<u64, u64> = Slab::new();
        for k in 0..50_000u64 {
            s.find_or_insert(k * 7919, || k);
        }
        for k in (0..50_000u64).step_by(2) {
            let at = s.find(&(k * 7919)).expect("present");
            assert_eq!(s.remove(at), Some(k));
        }
        assert_eq!(s.len(), 25_000);
        for k in 0..50_000u64 {
            let at = s.find(&(k * 7919));
            assert_eq!(at.is_some(), k % 2 == 1, "key {k}");
            if let Some(at) = at {
                assert_eq!(s.get(at), Some((k * 7919, &k)));
            }
        }
        for k in 0..50_000u64 {
            if let Some(at) = s.find(&(k * 7919)) {
                s.remove(at);
            }
        }
        assert_eq!(s.len(), 0);
        assert_eq!(s.iter().count(), 0);
    }
}
