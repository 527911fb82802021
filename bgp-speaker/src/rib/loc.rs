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

/// A value that holds its own key (so that a slot is one value, without a
/// separate key and its padding).
pub(super) trait Keyed<K> {
    fn key(&self) -> K;
}

/// A map from keys to values with stable `u32` positions.
#[derive(Debug)]
pub(super) struct Slab<K, V> {
    index: HashTable<Slot>,
    /// `None`: a free slot (on the free list).
    entries: Vec<Option<V>>,
    free: Vec<u32>,
    _key: std::marker::PhantomData<K>,
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

/// Whether the slot holds `k`.
fn holds<K: Eq, V: Keyed<K>>(e: &Option<V>, k: &K) -> bool {
    e.as_ref().is_some_and(|v| v.key() == *k)
}

impl<K: Copy + Eq + Hash, V: Keyed<K>> Slab<K, V> {
    pub fn new() -> Self {
        Slab {
            index: HashTable::new(),
            entries: Vec::new(),
            free: Vec::new(),
            _key: std::marker::PhantomData,
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Makes room for `additional` more entries at once (a table coming
    /// in): one growth of the index instead of one per doubling, and a slab
    /// of the size needed rather than the next power of two.
    pub fn reserve(&mut self, additional: usize) {
        let new_slots = additional.saturating_sub(self.free.len());
        self.entries.reserve(new_slots);
        self.index.reserve(additional, |s| probe_hash(s.hash));
    }

    /// The position of `k`, if present.
    pub fn find(&self, k: &K) -> Option<u32> {
        let h = hash32(k);
        let entries = &self.entries;
        self.index
            .find(probe_hash(h), |s| {
                s.hash == h && holds(&entries[s.at as usize], k)
            })
            .map(|s| s.at)
    }

    /// The position of `k`, inserting `make()` if it is absent.
    pub fn find_or_insert(&mut self, k: K, make: impl FnOnce() -> V) -> u32 {
        let h = hash32(&k);
        let entries = &self.entries;
        let found = self.index.find(probe_hash(h), |s| {
            s.hash == h && holds(&entries[s.at as usize], &k)
        });
        if let Some(s) = found {
            return s.at;
        }
        let at = match self.free.pop() {
            Some(at) => {
                self.entries[at as usize] = Some(make());
                at
            }
            None => {
                let at = u32::try_from(self.entries.len()).expect("fewer than 2^32 prefixes");
                self.entries.push(Some(make()));
                at
            }
        };
        self.index
            .insert_unique(probe_hash(h), Slot { at, hash: h }, |s| probe_hash(s.hash));
        at
    }

    /// Removes the entry at `at` (a live position) and returns its value.
    pub fn remove(&mut self, at: u32) -> Option<V> {
        let value = self.entries.get_mut(at as usize)?.take()?;
        let h = hash32(&value.key());
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

    /// The value at a live position.
    pub fn get(&self, at: u32) -> Option<&V> {
        self.entries.get(at as usize)?.as_ref()
    }

    /// The value at a live position, mutably.
    pub fn get_mut(&mut self, at: u32) -> Option<&mut V> {
        self.entries.get_mut(at as usize)?.as_mut()
    }

    /// Every live value with its position, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &V)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|v| (i as u32, v)))
    }

    /// Every live value, mutably.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().filter_map(|e| e.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Keyed<u64> for (u64, u64) {
        fn key(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn positions_are_stable_and_reused() {
        let mut s: Slab<u64, (u64, u64)> = Slab::new();
        let a = s.find_or_insert(1, || (1, 10));
        let b = s.find_or_insert(2, || (2, 20));
        assert_eq!(
            s.find_or_insert(1, || (1, 99)),
            a,
            "existing key keeps its slot"
        );
        assert_eq!(s.get(a), Some(&(1, 10)));
        assert_eq!(s.remove(a), Some((1, 10)));
        assert_eq!(s.find(&1), None);
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None, "a free slot cannot be removed twice");
        assert_eq!(s.find(&2), Some(b), "other entries do not move");
        let c = s.find_or_insert(3, || (3, 30));
        assert_eq!(c, a, "the freed slot is reused");
        assert_eq!(s.len(), 2);
        let mut all: Vec<_> = s.iter().map(|(_, v)| *v).collect();
        all.sort();
        assert_eq!(all, vec![(2, 20), (3, 30)]);
    }

    #[test]
    fn a_reserved_table_grows_once() {
        let mut s: Slab<u64, (u64, u64)> = Slab::new();
        s.reserve(10_000);
        let (slab, index) = (s.entries.capacity(), s.index.capacity());
        assert!(slab >= 10_000 && index >= 10_000);
        for k in 0..10_000u64 {
            s.find_or_insert(k, || (k, k));
        }
        assert_eq!((s.entries.capacity(), s.index.capacity()), (slab, index));
        assert!((0..10_000u64).all(|k| s.find(&k).is_some()));
        // Freed slots count: a reservation after removals reuses them.
        for k in 0..100u64 {
            let at = s.find(&k).expect("present");
            s.remove(at);
        }
        s.reserve(100);
        assert_eq!(s.entries.capacity(), slab);
    }

    #[test]
    fn many_keys_survive_growth_and_removal() {
        let mut s: Slab<u64, (u64, u64)> = Slab::new();
        for k in 0..50_000u64 {
            s.find_or_insert(k * 7919, || (k * 7919, k));
        }
        for k in (0..50_000u64).step_by(2) {
            let at = s.find(&(k * 7919)).expect("present");
            assert_eq!(s.remove(at), Some((k * 7919, k)));
        }
        assert_eq!(s.len(), 25_000);
        for k in 0..50_000u64 {
            let at = s.find(&(k * 7919));
            assert_eq!(at.is_some(), k % 2 == 1, "key {k}");
            if let Some(at) = at {
                assert_eq!(s.get(at), Some(&(k * 7919, k)));
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
