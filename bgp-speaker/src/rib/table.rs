//! One address family's tables: the Loc-RIB of that family and every peer's
//! Adj-RIB-In / Adj-RIB-Out for it. Keyed by the family's own prefix type
//! (5 octets for IPv4), so that a route costs as little memory as possible.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use crate::api::{BestPath, BestPathChange};
use crate::route::{Afi, PathAttrs, Prefix};

use super::best_path::{self, Candidate};
use super::export::{self, ExportClass, LocalFacts, SourceKind};
use super::{Interner, OutBatch, PeerId, PeerInfo};

/// `source` of a locally originated path.
pub(super) const LOCAL: u32 = u32::MAX;
/// `best` of a destination without a best path.
const NONE: u32 = u32::MAX - 1;

/// A prefix type of one family.
pub(super) trait Key: Copy + Eq + Hash + Debug {
    fn prefix(self) -> Prefix;
}

impl Key for Ipv4Net {
    fn prefix(self) -> Prefix {
        Prefix::V4(self)
    }
}

impl Key for Ipv6Net {
    fn prefix(self) -> Prefix {
        Prefix::V6(self)
    }
}

/// One candidate path (16 octets).
#[derive(Debug)]
struct Path {
    attrs: Arc<PathAttrs>,
    /// Peer id, or [`LOCAL`].
    source: u32,
    stale: bool,
}

/// Every path to one prefix. The common single path is stored inline.
#[derive(Debug)]
struct Dest {
    paths: SmallVec<[Path; 1]>,
    /// Source of the current best path, or [`NONE`].
    best: u32,
    dirty: bool,
    /// The best path's attributes changed or it was removed since the
    /// last decision.
    best_touched: bool,
}

/// One peer's view of this family.
#[derive(Debug)]
pub(super) struct PeerAf<K> {
    /// Adj-RIB-In: every prefix announced, and whether it was accepted.
    adj_in: FxHashMap<K, bool>,
    accepted: u64,
    /// Adj-RIB-Out: what the peer has been (or is about to be) told.
    adj_out: FxHashMap<K, Arc<PathAttrs>>,
    /// Prefixes whose Adj-RIB-Out entry changed and are not yet sent.
    pending: FxHashSet<K>,
}

/// The tables of one family.
#[derive(Debug)]
pub(super) struct Table<K> {
    loc: FxHashMap<K, Dest>,
    dirty: Vec<K>,
    peers: FxHashMap<PeerId, PeerAf<K>>,
    best_count: u64,
}

/// Export targets of one decision run, with the attributes already
/// computed per (best attributes, source kind, peer class): a change costs
/// one transform per class, not one per peer.
pub(super) struct ExportRun {
    pub targets: Vec<(PeerId, ExportClass, Vec<Afi>)>,
    #[allow(clippy::type_complexity)]
    memo: FxHashMap<(usize, SourceKind, ExportClass), (Option<Arc<PathAttrs>>, Arc<PathAttrs>)>,
}

// ===== impl ExportRun =====

impl ExportRun {
    pub fn new(targets: Vec<(PeerId, ExportClass, Vec<Afi>)>) -> ExportRun {
        ExportRun {
            targets,
            memo: FxHashMap::default(),
        }
    }
}

// ===== impl PeerAf =====

impl<K> Default for PeerAf<K> {
    fn default() -> Self {
        PeerAf {
            adj_in: FxHashMap::default(),
            accepted: 0,
            adj_out: FxHashMap::default(),
            pending: FxHashSet::default(),
        }
    }
}

// ===== impl Table =====

impl<K: Key> Table<K> {
    pub fn new() -> Table<K> {
        Table {
            loc: FxHashMap::default(),
            dirty: Vec::new(),
            peers: FxHashMap::default(),
            best_count: 0,
        }
    }

    pub fn best_count(&self) -> u64 {
        self.best_count
    }

    /// (received, accepted, advertised) of a peer.
    pub fn counts(&self, id: PeerId) -> (u64, u64, u64) {
        self.peers
            .get(&id)
            .map(|p| (p.adj_in.len() as u64, p.accepted, p.adj_out.len() as u64))
            .unwrap_or_default()
    }

    pub fn has_pending(&self, id: PeerId) -> bool {
        self.peers.get(&id).is_some_and(|p| !p.pending.is_empty())
    }

    /// Marks every destination dirty (our identity changed).
    pub fn mark_all(&mut self) {
        let all: Vec<K> = self.loc.keys().copied().collect();
        for k in all {
            self.mark(k);
        }
    }

    /// Routes from a peer sharing one attribute set; `attrs` is `None` when
    /// they were not accepted (they still count as received).
    pub fn update(&mut self, id: PeerId, attrs: Option<&Arc<PathAttrs>>, keys: &[K]) {
        for k in keys {
            let p = self.peers.entry(id).or_default();
            let was = p.adj_in.insert(*k, attrs.is_some()) == Some(true);
            p.accepted = p.accepted + u64::from(attrs.is_some()) - u64::from(was);
            match attrs {
                Some(a) => self.set_path(*k, id, a.clone()),
                None => self.remove_path(*k, id),
            }
        }
    }

    pub fn withdraw(&mut self, id: PeerId, k: K) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        if let Some(was) = p.adj_in.remove(&k) {
            p.accepted -= u64::from(was);
            self.remove_path(k, id);
        }
    }

    pub fn set_local(&mut self, k: K, attrs: Arc<PathAttrs>) {
        self.set_path(k, LOCAL, attrs);
    }

    pub fn remove_local(&mut self, k: K) {
        self.remove_path(k, LOCAL);
    }

    /// A session went down: its paths stay as stale (`keep`), or go.
    pub fn peer_down(&mut self, id: PeerId, keep: bool) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.adj_out.clear();
        p.pending.clear();
        let keys: Vec<K> = p.adj_in.keys().copied().collect();
        if keep {
            for k in keys {
                if let Some(d) = self.loc.get_mut(&k) {
                    for path in d.paths.iter_mut().filter(|x| x.source == id) {
                        path.stale = true;
                    }
                }
            }
        } else {
            for k in keys {
                self.withdraw(id, k);
            }
            self.peers.remove(&id);
        }
    }

    /// Drops the peer's stale paths; returns how many.
    pub fn sweep_stale(&mut self, id: PeerId) -> usize {
        let Some(p) = self.peers.get(&id) else {
            return 0;
        };
        let stale: Vec<K> = p
            .adj_in
            .keys()
            .filter(|k| {
                self.loc
                    .get(k)
                    .is_some_and(|d| d.paths.iter().any(|x| x.source == id && x.stale))
            })
            .copied()
            .collect();
        for k in &stale {
            self.withdraw(id, *k);
        }
        stale.len()
    }

    /// Forgets a peer that has no session and no stale routes.
    pub fn forget(&mut self, id: PeerId) {
        if self.peers.get(&id).is_some_and(|p| p.adj_in.is_empty()) {
            self.peers.remove(&id);
        }
    }

    /// Queues every best path for a peer that just came up.
    pub fn queue_all(&mut self, ctx: &mut Ctx<'_>, run: &mut ExportRun) {
        let keys: Vec<K> = self
            .loc
            .iter()
            .filter(|(_, d)| d.best != NONE)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.export_one(k, ctx, run);
        }
    }

    /// Queues the Adj-RIB-Out of a peer again (ROUTE-REFRESH).
    pub fn refresh(&mut self, id: PeerId) {
        if let Some(p) = self.peers.get_mut(&id) {
            let all: Vec<K> = p.adj_out.keys().copied().collect();
            p.pending.extend(all);
        }
    }

    /// The decision process over the dirty prefixes of this family.
    pub fn decide(
        &mut self,
        ctx: &mut Ctx<'_>,
        run: &mut ExportRun,
        changes: &mut Vec<BestPathChange>,
    ) {
        let dirty = std::mem::take(&mut self.dirty);
        for k in dirty {
            let Some(dest) = self.loc.get_mut(&k) else {
                continue;
            };
            dest.dirty = false;
            let old = dest.best;
            let touched = std::mem::take(&mut dest.best_touched);
            let new_idx = select(ctx.peers, &dest.paths);
            let new = new_idx.map(|i| dest.paths[i].source).unwrap_or(NONE);
            dest.best = new;
            let change = (old != new || touched).then(|| BestPathChange {
                prefix: k.prefix(),
                best: new_idx.map(|i| BestPath {
                    attrs: dest.paths[i].attrs.clone(),
                    peer: ctx
                        .peers
                        .get(&dest.paths[i].source)
                        .map(|p| p.facts.address),
                }),
            });
            if dest.paths.is_empty() {
                self.loc.remove(&k);
            }
            let Some(change) = change else { continue };
            match (old != NONE, new != NONE) {
                (false, true) => self.best_count += 1,
                (true, false) => self.best_count -= 1,
                _ => {}
            }
            changes.push(change);
            self.export_one(k, ctx, run);
        }
    }

    /// Takes up to `max` pending prefixes of a peer into `batch`, grouped
    /// by identical attributes.
    pub fn take_out(&mut self, id: PeerId, max: usize, batch: &mut OutBatch) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let take: Vec<K> = p.pending.iter().take(max).copied().collect();
        let mut groups: FxHashMap<*const PathAttrs, usize> = FxHashMap::default();
        for k in take {
            p.pending.remove(&k);
            match p.adj_out.get(&k) {
                Some(a) => {
                    let slot = *groups.entry(Arc::as_ptr(a)).or_insert_with(|| {
                        batch.announce.push((a.clone(), Vec::new()));
                        batch.announce.len() - 1
                    });
                    batch.announce[slot].1.push(k.prefix());
                }
                None => batch.withdraw.push(k.prefix()),
            }
        }
    }

    // ----- helpers -----

    fn mark(&mut self, k: K) {
        let dest = self.loc.entry(k).or_insert_with(|| Dest {
            paths: SmallVec::new(),
            best: NONE,
            dirty: false,
            best_touched: false,
        });
        if !dest.dirty {
            dest.dirty = true;
            self.dirty.push(k);
        }
    }

    fn set_path(&mut self, k: K, source: u32, attrs: Arc<PathAttrs>) {
        self.mark(k);
        let dest = self.loc.get_mut(&k).expect("just marked");
        match dest.paths.iter_mut().find(|p| p.source == source) {
            Some(p) => {
                let same = Arc::ptr_eq(&p.attrs, &attrs);
                if same && !p.stale {
                    return;
                }
                p.attrs = attrs;
                p.stale = false;
                if dest.best == source && !same {
                    dest.best_touched = true;
                }
            }
            None => dest.paths.push(Path {
                attrs,
                source,
                stale: false,
            }),
        }
    }

    fn remove_path(&mut self, k: K, source: u32) {
        let Some(dest) = self.loc.get_mut(&k) else {
            return;
        };
        let Some(i) = dest.paths.iter().position(|p| p.source == source) else {
            return;
        };
        dest.paths.swap_remove(i);
        if dest.best == source {
            dest.best_touched = true;
        }
        self.mark(k);
    }

    /// Recomputes the Adj-RIB-Out entry of `k` for the run's targets.
    fn export_one(&mut self, k: K, ctx: &mut Ctx<'_>, run: &mut ExportRun) {
        let best = self
            .loc
            .get(&k)
            .and_then(|d| d.paths.iter().find(|p| p.source == d.best));
        let best = best.map(|p| (p.source, p.attrs.clone()));
        let kind = match &best {
            Some((LOCAL, _)) => Some(SourceKind::Local),
            Some((s, _)) => ctx.peers.get(s).map(|p| p.source_kind(ctx.local)),
            None => None,
        };
        let afi = match k.prefix() {
            Prefix::V4(_) => Afi::Ipv4,
            Prefix::V6(_) => Afi::Ipv6,
        };
        for (id, class, families) in &run.targets {
            if !families.contains(&afi) {
                continue;
            }
            let out = match (&best, kind) {
                (Some((source, attrs)), Some(kind)) if source != id => {
                    let key = (Arc::as_ptr(attrs) as usize, kind, *class);
                    match run.memo.get(&key) {
                        Some((o, _)) => o.clone(),
                        None => {
                            let o = export::allowed(ctx.local, kind, class)
                                .then(|| export::transform(ctx.local, kind, class, attrs))
                                .flatten()
                                .map(|a| ctx.interner.intern(a));
                            // The Arc kept in the memo pins the address used as key.
                            run.memo.insert(key, (o.clone(), attrs.clone()));
                            o
                        }
                    }
                }
                _ => None,
            };
            let p = self.peers.entry(*id).or_default();
            let changed = match (&out, p.adj_out.get(&k)) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                (None, None) => false,
                _ => true,
            };
            if changed {
                match out {
                    Some(a) => p.adj_out.insert(k, a),
                    None => p.adj_out.remove(&k),
                };
                p.pending.insert(k);
            }
        }
    }
}

/// What a family's tables need of the rest of the RIB.
pub(super) struct Ctx<'a> {
    pub peers: &'a FxHashMap<PeerId, PeerInfo>,
    pub local: &'a LocalFacts,
    pub interner: &'a mut Interner,
}

/// Index of the best path, by the decision process.
fn select(peers: &FxHashMap<PeerId, PeerInfo>, paths: &[Path]) -> Option<usize> {
    let mut best: Option<(usize, Candidate<'_>)> = None;
    for (i, p) in paths.iter().enumerate() {
        let c = match p.source {
            LOCAL => Candidate {
                attrs: &p.attrs,
                peer: None,
            },
            s => match peers.get(&s) {
                Some(peer) => Candidate {
                    attrs: &p.attrs,
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
