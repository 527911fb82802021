//! Compact storage of candidate paths: a path is 8 octets (attribute id and
//! source), attribute sets live once in an [`AttrPool`] with plain
//! (non-atomic) reference counts, and a destination keeps its one path
//! inline; only prefixes with several paths use the [`Overflow`] lists.
//!
//! This keeps a route of the Loc-RIB at 24 octets plus its index slot and
//! spares every route an atomic reference count update.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::route::PathAttrs;

/// An attribute set's id in its [`AttrPool`].
pub(super) type AttrId = u32;

/// One candidate path: attributes (the top bit marks it stale) and source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Path {
    attrs: u32,
    pub source: u32,
}

/// The paths of one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Paths {
    None,
    One(Path),
    /// Two or more, in `Overflow` at this index.
    Many(u32),
}

/// The path lists of destinations with more than one path.
#[derive(Debug, Default)]
pub(super) struct Overflow {
    lists: Vec<Vec<Path>>,
    free: Vec<u32>,
}

/// Interned attribute sets with the number of paths using each.
#[derive(Debug, Default)]
pub(super) struct AttrPool {
    slots: Vec<(Option<Arc<PathAttrs>>, u32)>,
    free: Vec<u32>,
    ids: FxHashMap<Arc<PathAttrs>, AttrId>,
}

// ===== impl Path =====

impl Path {
    const STALE: u32 = 1 << 31;

    pub fn new(attrs: AttrId, source: u32) -> Path {
        Path { attrs, source }
    }

    pub fn attrs(self) -> AttrId {
        self.attrs & !Self::STALE
    }

    pub fn stale(self) -> bool {
        self.attrs & Self::STALE != 0
    }

    pub fn set_stale(&mut self, stale: bool) {
        self.attrs = if stale {
            self.attrs | Self::STALE
        } else {
            self.attrs & !Self::STALE
        };
    }
}

// ===== impl Paths =====

impl Paths {
    pub fn get<'a>(&'a self, ov: &'a Overflow) -> &'a [Path] {
        match self {
            Paths::None => &[],
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(i) => &ov.lists[*i as usize],
        }
    }

    pub fn get_mut<'a>(&'a mut self, ov: &'a mut Overflow) -> &'a mut [Path] {
        match self {
            Paths::None => &mut [],
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(i) => &mut ov.lists[*i as usize],
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Paths::None)
    }

    pub fn push(&mut self, ov: &mut Overflow, p: Path) {
        *self = match *self {
            Paths::None => Paths::One(p),
            Paths::One(first) => Paths::Many(ov.add(vec![first, p])),
            Paths::Many(i) => {
                ov.lists[i as usize].push(p);
                Paths::Many(i)
            }
        };
    }

    /// Removes the path at `i` (the last one takes its place).
    pub fn swap_remove(&mut self, ov: &mut Overflow, i: usize) -> Path {
        match *self {
            Paths::None => unreachable!("swap_remove on no paths"),
            Paths::One(p) => {
                *self = Paths::None;
                p
            }
            Paths::Many(at) => {
                let list = &mut ov.lists[at as usize];
                let p = list.swap_remove(i);
                if let [only] = list[..] {
                    ov.remove(at);
                    *self = Paths::One(only);
                }
                p
            }
        }
    }
}

// ===== impl Overflow =====

impl Overflow {
    fn add(&mut self, list: Vec<Path>) -> u32 {
        match self.free.pop() {
            Some(at) => {
                self.lists[at as usize] = list;
                at
            }
            None => {
                self.lists.push(list);
                u32::try_from(self.lists.len() - 1).expect("fewer than 2^32 multi-path prefixes")
            }
        }
    }

    fn remove(&mut self, at: u32) {
        self.lists[at as usize] = Vec::new();
        self.free.push(at);
    }

    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.lists.len() - self.free.len()
    }
}

// ===== impl AttrPool =====

impl AttrPool {
    /// The id of `attrs`, added with no users if new. The caller
    /// [`retain`](Self::retain)s it per path, and calls
    /// [`forget_unused`](Self::forget_unused) if it may have taken none.
    pub fn intern(&mut self, attrs: &PathAttrs) -> AttrId {
        if let Some(id) = self.ids.get(attrs) {
            return *id;
        }
        let arc = Arc::new(attrs.clone());
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = (Some(arc.clone()), 0);
                id
            }
            None => {
                self.slots.push((Some(arc.clone()), 0));
                u32::try_from(self.slots.len() - 1)
                    .ok()
                    .filter(|id| id & Path::STALE == 0)
                    .expect("fewer than 2^31 attribute sets")
            }
        };
        self.ids.insert(arc, id);
        id
    }

    pub fn get(&self, id: AttrId) -> &Arc<PathAttrs> {
        self.slots[id as usize]
            .0
            .as_ref()
            .expect("a path's attribute id is live")
    }

    pub fn retain(&mut self, id: AttrId) {
        self.slots[id as usize].1 += 1;
    }

    pub fn release(&mut self, id: AttrId) {
        let slot = &mut self.slots[id as usize];
        slot.1 -= 1;
        if slot.1 == 0 {
            self.drop_slot(id);
        }
    }

    /// Drops `id` if no path uses it.
    pub fn forget_unused(&mut self, id: AttrId) {
        if self.slots[id as usize].1 == 0 && self.slots[id as usize].0.is_some() {
            self.drop_slot(id);
        }
    }

    fn drop_slot(&mut self, id: AttrId) {
        if let Some(a) = self.slots[id as usize].0.take() {
            self.ids.remove(&*a);
            self.free.push(id);
        }
    }

    /// Attribute sets in use.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::route::NextHop;

    fn attrs(last: u8) -> PathAttrs {
        PathAttrs::local(NextHop::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn stale_bit_is_separate_from_the_id() {
        let mut p = Path::new(7, 3);
        p.set_stale(true);
        assert!(p.stale());
        assert_eq!(p.attrs(), 7);
        p.set_stale(false);
        assert!(!p.stale());
        assert_eq!(p, Path::new(7, 3));
    }

    #[test]
    fn one_path_inline_more_in_overflow_and_back() {
        let mut ov = Overflow::default();
        let mut ps = Paths::None;
        assert!(ps.get(&ov).is_empty());
        ps.push(&mut ov, Path::new(1, 10));
        assert_eq!(ps, Paths::One(Path::new(1, 10)));
        ps.push(&mut ov, Path::new(2, 20));
        ps.push(&mut ov, Path::new(3, 30));
        assert_eq!(ov.in_use(), 1);
        assert_eq!(ps.get(&ov).len(), 3);
        ps.get_mut(&mut ov)[1].set_stale(true);
        assert!(ps.get(&ov)[1].stale());
        assert_eq!(ps.swap_remove(&mut ov, 0), Path::new(1, 10));
        assert_eq!(ps.get(&ov).len(), 2);
        let gone = ps.swap_remove(&mut ov, 0);
        assert_eq!(gone.source, 30);
        assert!(matches!(ps, Paths::One(p) if p.source == 20), "{ps:?}");
        assert_eq!(ov.in_use(), 0, "the list went back when one path was left");
        ps.push(&mut ov, Path::new(4, 40));
        assert_eq!(ov.in_use(), 1);
        ps.swap_remove(&mut ov, 1);
        ps.swap_remove(&mut ov, 0);
        assert_eq!(ov.in_use(), 0);
        assert!(ps.is_empty());
    }

    #[test]
    fn attribute_sets_live_while_a_path_uses_them() {
        let mut pool = AttrPool::default();
        let a = pool.intern(&attrs(1));
        assert_eq!(pool.intern(&attrs(1)), a, "equal sets share an id");
        let b = pool.intern(&attrs(2));
        assert_ne!(a, b);
        pool.retain(a);
        pool.retain(a);
        pool.forget_unused(b);
        assert_eq!(pool.len(), 1, "an unused new set is dropped");
        pool.release(a);
        assert_eq!(**pool.get(a), attrs(1));
        pool.release(a);
        assert_eq!(pool.len(), 0);
        let c = pool.intern(&attrs(3));
        assert_eq!(c, a, "a freed id is reused");
    }
}
