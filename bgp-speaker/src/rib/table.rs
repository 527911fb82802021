//! One address family's tables: the Loc-RIB of that family and every peer's
//! Adj-RIB-In / Adj-RIB-Out for it. Keyed by the family's own prefix type
//! (5 octets for IPv4), so that a route costs as little memory as possible.
//! The update groups and their change logs are in `group`, the export of a
//! decision run (and its attribute memo) in `memo`.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use rustc_hash::FxHashMap;

use crate::api::{BestPath, BestPathChange};
use crate::route::{Afi, PathAttrs, Prefix};

use super::best_path::{self, Candidate};
use super::export::{ExportClass, LocalFacts};
use super::group::{
    concerns, leave, put_members, read_log, take_members, trim_logs, Group, PeerAf,
};
use super::loc::{Keyed, Slab};
use super::memo::{export_one, ExportRun};
use super::paths::{AttrPool, Overflow, Path, Paths};
use super::{Interner, Nlri, OutBatch, PeerId, PeerInfo};

mod reclass;

mod explain;

/// The RIB's peers, as the decision needs them.
pub(super) type Peers = FxHashMap<PeerId, PeerInfo>;

/// `source` of a locally originated path.
pub(super) const LOCAL: u32 = u32::MAX;
/// `best` of a destination without a best path.
pub(super) const NONE: u32 = u32::MAX - 1;

/// A prefix type of one family.
pub(super) trait Key: Copy + Eq + Hash + Debug {
    const AFI: Afi;
    fn prefix(self) -> Prefix;
    /// Announced prefixes of this family, for a batch.
    fn nlri(keys: Vec<Self>) -> Nlri;
    /// A batch's withdrawals of this family.
    fn withdrawals(batch: &mut OutBatch) -> &mut Vec<Self>;
}

impl Key for Ipv4Net {
    const AFI: Afi = Afi::Ipv4;
    fn prefix(self) -> Prefix {
        Prefix::V4(self)
    }
    fn nlri(keys: Vec<Self>) -> Nlri {
        Nlri::V4(keys)
    }
    fn withdrawals(batch: &mut OutBatch) -> &mut Vec<Self> {
        &mut batch.withdraw_v4
    }
}

impl Key for Ipv6Net {
    const AFI: Afi = Afi::Ipv6;
    fn prefix(self) -> Prefix {
        Prefix::V6(self)
    }
    fn nlri(keys: Vec<Self>) -> Nlri {
        Nlri::V6(keys)
    }
    fn withdrawals(batch: &mut OutBatch) -> &mut Vec<Self> {
        &mut batch.withdraw_v6
    }
}

/// One prefix and every path to it (24 octets for IPv4): the common
/// single path inline, more in the table's [`Overflow`].
#[derive(Debug)]
struct Dest<K> {
    paths: Paths,
    /// Source of the current best path, or [`NONE`].
    best: u32,
    key: K,
    /// Its position is in `Table::changed` (decided since the last run).
    queued: bool,
}

/// The tables of one family.
#[derive(Debug)]
pub(super) struct Table<K> {
    loc: Slab<K, Dest<K>>,
    /// Path lists of prefixes with more than one path.
    overflow: Overflow,
    /// The attribute sets the paths use.
    attrs: AttrPool,
    /// Attribute sets as exported (shared by the Adj-RIBs-Out).
    interner: Interner,
    /// Positions in `loc` of the prefixes whose best path changed since
    /// the last run, once each (the run exports their state then).
    changed: Vec<u32>,
    peers: FxHashMap<PeerId, PeerAf<K>>,
    groups: FxHashMap<ExportClass, Group<K>>,
    best_count: u64,
    /// A member read its group's change log since the last run (the next
    /// run trims what every member has read).
    read_since_run: bool,
}

/// Prefixes being taken out for one peer, in the family's own type.
#[derive(Debug)]
pub(super) struct Taking<K> {
    pub announce: Vec<(Arc<PathAttrs>, Vec<K>)>,
    pub withdraw: Vec<K>,
}

impl<K> Taking<K> {
    pub fn len(&self) -> usize {
        self.withdraw.len() + self.announce.iter().map(|a| a.1.len()).sum::<usize>()
    }
}

// ===== impl Dest =====

impl<K> Dest<K> {
    fn empty(key: K) -> Dest<K> {
        Dest {
            paths: Paths::None,
            best: NONE,
            key,
            queued: false,
        }
    }
}

impl<K: Copy> Keyed<K> for Dest<K> {
    fn key(&self) -> K {
        self.key
    }
}

// ===== impl Table =====

impl<K: Key> Table<K> {
    pub fn new() -> Table<K> {
        Table {
            loc: Slab::new(),
            overflow: Overflow::default(),
            attrs: AttrPool::default(),
            interner: Interner::default(),
            changed: Vec::new(),
            peers: FxHashMap::default(),
            groups: FxHashMap::default(),
            best_count: 0,
            read_since_run: false,
        }
    }

    pub fn best_count(&self) -> u64 {
        self.best_count
    }

    /// Room for a batch announcing `announced` routes, if that is more
    /// than the table holds (see `Slab::reserve`).
    pub fn reserve(&mut self, announced: usize) {
        let held = self.loc.len();
        if announced > held {
            self.loc.reserve(announced - held);
            self.changed.reserve(announced - held);
        }
    }

    /// (destinations, attribute sets, overflow lists) held: every one must
    /// go when the routes go.
    #[cfg(test)]
    pub fn storage_in_use(&self) -> (usize, usize, usize) {
        (self.loc.len(), self.attrs.len(), self.overflow.in_use())
    }

    /// Entries in the groups' change logs.
    #[cfg(test)]
    pub fn logged(&self) -> usize {
        self.groups.values().map(|g| g.log.len()).sum()
    }

    /// (received, accepted, advertised) of a peer.
    pub fn counts(&self, id: PeerId) -> (u64, u64, u64) {
        self.peers
            .get(&id)
            .map(|p| {
                let told = match p.group.and_then(|c| self.groups.get(&c)) {
                    Some(g) if p.family => g.told_count(id),
                    _ => 0,
                };
                (p.accepted + p.rejected.len() as u64, p.accepted, told)
            })
            .unwrap_or_default()
    }

    /// Prefixes whose best path changed since the last run.
    pub fn changed_len(&self) -> usize {
        self.changed.len()
    }

    /// Whether a run would do nothing: no best path changed and no log
    /// was read since the last one. The speaker decides after every
    /// event (a keepalive, an UPDATE of another family); a run takes
    /// every peer out of its group and back, work per peer.
    pub fn idle(&self) -> bool {
        self.changed.is_empty() && !self.read_since_run
    }

    /// Whether anything waits to be sent to `id`. Log entries that do
    /// not concern it (its own routes) are skipped on the way.
    pub fn skip_to_pending(&mut self, id: PeerId) -> bool {
        let Some(p) = self.peers.get_mut(&id) else {
            return false;
        };
        if !p.pending.is_empty() {
            return true;
        }
        let Some(g) = p.group.and_then(|c| self.groups.get(&c)) else {
            return false;
        };
        if !p.family {
            return false;
        }
        let end = g.log_end();
        let base = g.log_base;
        debug_assert!(p.cursor >= base, "a member's unread log was trimmed");
        p.cursor = p.cursor.max(base);
        while p.cursor < end {
            let c = &g.log[(p.cursor - base) as usize];
            if concerns(c, id) {
                return true;
            }
            p.cursor += 1;
        }
        false
    }

    /// Queues every best path for export again (our identity changed).
    pub fn mark_all(&mut self) {
        let all: Vec<u32> = self.loc.iter().map(|(at, _)| at).collect();
        for at in all {
            if let Some(d) = self.loc.get_mut(at) {
                queue(&mut self.changed, d, at);
            }
        }
    }

    /// Routes from a peer sharing one attribute set; `attrs` is `None` when
    /// they were not accepted (they still count as received).
    pub fn update(&mut self, id: PeerId, attrs: Option<&PathAttrs>, keys: &[K], peers: &Peers) {
        if keys.is_empty() {
            return;
        }
        let mut added: u64 = 0;
        let mut removed: u64 = 0;
        let p = self.peers.entry(id).or_default();
        match attrs {
            Some(_) if !p.rejected.is_empty() => keys.iter().for_each(|k| {
                p.rejected.remove(k);
            }),
            Some(_) => {}
            None => p.rejected.extend(keys.iter().copied()),
        }
        match attrs {
            Some(a) => {
                let a = self.attrs.intern(a);
                for k in keys {
                    added += u64::from(self.set_path(*k, id, a, peers));
                }
                self.attrs.forget_unused(a);
            }
            None => {
                for k in keys {
                    removed += u64::from(self.remove_path(*k, id, peers));
                }
            }
        }
        let p = self.peers.get_mut(&id).expect("entry made above");
        p.accepted = p.accepted + added - removed;
    }

    pub fn withdraw(&mut self, id: PeerId, k: K, peers: &Peers) {
        if self.remove_path(k, id, peers) {
            if let Some(p) = self.peers.get_mut(&id) {
                p.accepted -= 1;
            }
        } else if let Some(p) = self.peers.get_mut(&id) {
            p.rejected.remove(&k);
        }
    }

    pub fn set_local(&mut self, k: K, attrs: &PathAttrs, peers: &Peers) {
        let a = self.attrs.intern(attrs);
        self.set_path(k, LOCAL, a, peers);
        self.attrs.forget_unused(a);
    }

    pub fn remove_local(&mut self, k: K, peers: &Peers) {
        self.remove_path(k, LOCAL, peers);
    }

    /// A session went down: its paths stay as stale (`keep`), or go. Walks
    /// the family's Loc-RIB once (a peer's routes are its paths there).
    pub fn peer_down(&mut self, id: PeerId, keep: bool, peers: &Peers) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.pending.clear();
        if let Some(class) = p.group.take() {
            leave(&mut self.groups, class);
        }
        p.rejected.clear();
        if keep {
            for d in self.loc.values_mut() {
                for path in d.paths.get_mut(&mut self.overflow) {
                    if path.source == id {
                        path.set_stale(true);
                    }
                }
            }
        } else {
            for k in self.keys_of(id, false) {
                self.withdraw(id, k, peers);
            }
            self.peers.remove(&id);
        }
    }

    /// Drops the peer's stale paths; returns how many.
    pub fn sweep_stale(&mut self, id: PeerId, peers: &Peers) -> usize {
        let stale = self.keys_of(id, true);
        for k in &stale {
            self.withdraw(id, *k, peers);
        }
        stale.len()
    }

    /// Forgets a peer that has no session and no stale routes.
    pub fn forget(&mut self, id: PeerId) {
        if self.peers.get(&id).is_some_and(|p| p.accepted == 0) {
            if let Some(class) = self.peers.remove(&id).and_then(|p| p.group) {
                leave(&mut self.groups, class);
            }
        }
    }

    /// Prefixes where `id` has a path (only stale ones with `stale_only`).
    fn keys_of(&self, id: PeerId, stale_only: bool) -> Vec<K> {
        self.loc
            .iter()
            .filter(|(_, d)| {
                d.paths
                    .get(&self.overflow)
                    .iter()
                    .any(|x| x.source == id && (x.stale() || !stale_only))
            })
            .map(|(_, d)| d.key)
            .collect()
    }

    /// Queues every best path for a peer that just came up.
    pub fn queue_all(&mut self, ctx: &Ctx<'_>, run: &mut ExportRun) {
        run.partial = true;
        let bests: Vec<(K, u32, Arc<PathAttrs>)> = self
            .loc
            .iter()
            .filter_map(|(_, d)| {
                let p = d
                    .paths
                    .get(&self.overflow)
                    .iter()
                    .find(|p| p.source == d.best)?;
                Some((d.key, p.source, self.attrs.get(p.attrs()).clone()))
            })
            .collect();
        let mut taken = take_members(&mut self.peers, &mut self.groups, run);
        for (k, source, attrs) in bests {
            export_one(
                &mut taken.groups,
                k,
                Some((source, &attrs)),
                ctx,
                &mut self.interner,
                run,
            );
        }
        put_members(&mut self.peers, &mut self.groups, run, taken);
    }

    /// Queues the Adj-RIB-Out of a peer again (ROUTE-REFRESH).
    pub fn refresh(&mut self, id: PeerId) {
        if let Some(p) = self.peers.get_mut(&id) {
            let Some(g) = p.group.and_then(|c| self.groups.get(&c)) else {
                return;
            };
            let all: Vec<K> = g
                .adj_out
                .iter()
                .filter(|(_, (_, source))| *source != id)
                .map(|(k, _)| *k)
                .collect();
            p.pending_dups |= !p.pending.is_empty();
            p.pending.extend(all);
            if p.pending.len() > self.loc.len() + 1024 {
                // Refreshes asked faster than they are sent.
                p.pending.sort_unstable_by_key(|k| k.prefix());
                p.pending.dedup();
            }
        }
    }

    /// Exports the best-path changes decided since the last run (each
    /// prefix was decided when its paths changed, while its entry was in
    /// cache; one entry per prefix). Best path changes are collected into
    /// `changes` when given.
    pub fn decide(
        &mut self,
        ctx: &Ctx<'_>,
        run: &mut ExportRun,
        mut changes: Option<&mut Vec<BestPathChange>>,
    ) {
        let changed = std::mem::take(&mut self.changed);
        self.read_since_run = false;
        let mut taken = take_members(&mut self.peers, &mut self.groups, run);
        for &at in &changed {
            let Some(d) = self.loc.get_mut(at) else {
                continue;
            };
            d.queued = false;
            let (k, new) = (d.key, d.best);
            let best = d
                .paths
                .get(&self.overflow)
                .iter()
                .find(|p| p.source == new)
                .map(|p| self.attrs.get(p.attrs()));
            if let Some(changes) = changes.as_deref_mut() {
                changes.push(BestPathChange {
                    prefix: k.prefix(),
                    best: best.map(|a| BestPath {
                        attrs: a.clone(),
                        peer: ctx.peers.get(&new).map(|p| p.facts.address),
                    }),
                });
            }
            export_one(
                &mut taken.groups,
                k,
                best.map(|a| (new, a)),
                ctx,
                &mut self.interner,
                run,
            );
            // A prefix left without paths was kept until now (its
            // position was queued); it goes.
            if new == NONE && d.paths.is_empty() {
                self.loc.remove(at);
            }
        }
        trim_logs(&mut taken, run, self.log_bound());
        put_members(&mut self.peers, &mut self.groups, run, taken);
        // Keep the queue's allocation for the next run.
        self.changed = changed;
        self.changed.clear();
        self.interner.maybe_prune();
    }

    /// Bound on a group's change log: a prefix flapping while a member's
    /// session is slow must not grow it without end.
    fn log_bound(&self) -> usize {
        2 * self.loc.len() + 1024
    }

    /// Takes up to `max` pending prefixes of a peer into `announce`
    /// (grouped by identical attributes) and `withdraw`: its pending list
    /// first, then its group's change log.
    pub fn take_out(&mut self, id: PeerId, max: usize, out: &mut Taking<K>) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let from = p.pending.len().saturating_sub(max);
        let mut take = p.pending.split_off(from);
        let mut dups = p.pending_dups;
        if p.pending.is_empty() {
            p.pending = Vec::new();
            p.pending_dups = false;
        }
        let group = p.group.and_then(|c| self.groups.get(&c));
        if let Some(g) = group.filter(|_| p.family) {
            let before = take.len();
            let from = p.cursor;
            p.cursor = read_log(g, id, from, max, &mut take);
            self.read_since_run |= p.cursor != from;
            dups |= (before > 0 && take.len() > before) || g.may_repeat(from, p.cursor);
        }
        if dups {
            // A prefix queued twice is sent once, in its current state.
            take.sort_unstable_by_key(|k| k.prefix());
            take.dedup();
        }
        let mut by_attrs: FxHashMap<*const PathAttrs, usize> = FxHashMap::default();
        let n = take.len();
        for k in take {
            match group.and_then(|g| g.told(id, &k)) {
                Some(a) => {
                    let slot = *by_attrs.entry(Arc::as_ptr(a)).or_insert_with(|| {
                        // Mostly one set of attributes: room for all.
                        let room = if out.announce.is_empty() { n } else { 0 };
                        out.announce.push((a.clone(), Vec::with_capacity(room)));
                        out.announce.len() - 1
                    });
                    out.announce[slot].1.push(k);
                }
                None => out.withdraw.push(k),
            }
        }
    }

    // ----- helpers -----

    /// Adds or replaces the path of `source` (a peer in `peers`, or
    /// LOCAL) with attributes `attrs` and decides the prefix again; true
    /// when it is a new path.
    fn set_path(&mut self, k: K, source: u32, attrs: u32, peers: &Peers) -> bool {
        let at = self.loc.find_or_insert(k, || Dest::empty(k));
        let Some(dest) = self.loc.get_mut(at) else {
            return false;
        };
        let paths = dest.paths.get_mut(&mut self.overflow);
        let (added, touched) = match paths.iter_mut().find(|p| p.source == source) {
            Some(p) => {
                let same = p.attrs() == attrs;
                if same && !p.stale() {
                    return false;
                }
                if !same {
                    self.attrs.retain(attrs);
                    self.attrs.release(p.attrs());
                }
                *p = Path::new(attrs, source);
                (false, dest.best == source && !same)
            }
            None => {
                self.attrs.retain(attrs);
                dest.paths
                    .push(&mut self.overflow, Path::new(attrs, source));
                (true, false)
            }
        };
        let old = dest.best;
        // The caller knows `source` (a peer in `peers`, or LOCAL).
        if let Some(new) = redecide(dest, &self.overflow, &self.attrs, peers, source, touched) {
            self.best_count = count(self.best_count, old, new);
            queue(&mut self.changed, dest, at);
        }
        added
    }

    /// Removes the path of `source` and decides the prefix again; true when
    /// there was one.
    fn remove_path(&mut self, k: K, source: u32, peers: &Peers) -> bool {
        let Some(at) = self.loc.find(&k) else {
            return false;
        };
        let Some(dest) = self.loc.get_mut(at) else {
            return false;
        };
        let Some(i) = dest
            .paths
            .get(&self.overflow)
            .iter()
            .position(|p| p.source == source)
        else {
            return false;
        };
        let gone = dest.paths.swap_remove(&mut self.overflow, i);
        self.attrs.release(gone.attrs());
        let old = dest.best;
        if let Some(new) = redecide(
            dest,
            &self.overflow,
            &self.attrs,
            peers,
            NONE,
            old == source,
        ) {
            self.best_count = count(self.best_count, old, new);
            queue(&mut self.changed, dest, at);
        } else if dest.paths.is_empty() && !dest.queued {
            self.loc.remove(at);
        }
        true
    }
}

/// What a family's tables need of the rest of the RIB.
pub(super) struct Ctx<'a> {
    pub peers: &'a FxHashMap<PeerId, PeerInfo>,
    pub local: &'a LocalFacts,
    /// The export rules the classes name.
    pub policies: &'a super::policy::Policies,
}

/// The decision for one destination: sets its best path and returns the new
/// best (source, attributes) when the source changed, or when `touched` (the
/// best path's attributes changed, or it was removed).
fn redecide<K>(
    dest: &mut Dest<K>,
    overflow: &Overflow,
    attrs: &AttrPool,
    peers: &Peers,
    known: u32,
    touched: bool,
) -> Option<u32> {
    let paths = dest.paths.get(overflow);
    let new = select(peers, attrs, paths, known)
        .map(|i| paths[i].source)
        .unwrap_or(NONE);
    if new == dest.best && !touched {
        return None;
    }
    dest.best = new;
    Some(new)
}

/// The count of prefixes with a best path after a change from `old` to `new`.
fn count(n: u64, old: u32, new: u32) -> u64 {
    match (old != NONE, new != NONE) {
        (false, true) => n + 1,
        (true, false) => n - 1,
        _ => n,
    }
}

/// Queues the destination at `at` for the export step, once per run (the
/// step exports its state as it is then).
fn queue<K>(changed: &mut Vec<u32>, dest: &mut Dest<K>, at: u32) {
    if !dest.queued {
        dest.queued = true;
        changed.push(at);
    }
}

/// Index of the best path, by the decision process.
/// `known` is a source the caller knows to be in `peers` (or NONE).
fn select(peers: &Peers, attrs: &AttrPool, paths: &[Path], known: u32) -> Option<usize> {
    if let [only] = paths {
        // One path: it is the best if its source is known.
        let s = only.source;
        return (s == known || s == LOCAL || peers.contains_key(&s)).then_some(0);
    }
    let mut best: Option<(usize, Candidate<'_>)> = None;
    for (i, p) in paths.iter().enumerate() {
        let c = match p.source {
            LOCAL => Candidate {
                attrs: attrs.get(p.attrs()),
                peer: None,
            },
            s => match peers.get(&s) {
                Some(peer) => Candidate {
                    attrs: attrs.get(p.attrs()),
                    peer: Some(peer.facts),
                },
                None => continue,
            },
        };
        best = match best {
            Some((bi, bc)) if best_path::compare(&bc, &c).0 != std::cmp::Ordering::Greater => {
                Some((bi, bc))
            }
            _ => Some((i, c)),
        };
    }
    best.map(|(i, _)| i)
}
