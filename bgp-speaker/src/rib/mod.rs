//! The RIBs: per-peer Adj-RIB-In (what each peer sent), the Loc-RIB (every
//! candidate path per prefix and the best one), and per-peer Adj-RIB-Out
//! (what each peer has been told), with interned attributes.
//!
//! Changes only mark prefixes dirty; [`Rib::decide`] then runs the decision
//! process over the dirty set alone and records, per peer, which prefixes
//! must be re-sent. Cost grows with the number of changes, not the table.

pub mod best_path;
pub mod export;

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::api::{BestPath, BestPathChange};
use crate::route::{afi_of, Afi, PathAttrs, Prefix};

use best_path::{Candidate, PeerFacts};
use export::{ExportClass, ImportReject, LocalFacts, SourceKind};

/// A peer's index, given by the instance.
pub type PeerId = u32;

/// What the RIB keeps of an Established (or restarting) peer.
#[derive(Debug)]
pub struct RibPeer {
    pub facts: PeerFacts,
    pub asn: u32,
    pub rr_client: bool,
    /// `None` while the session is down (routes kept stale for GR).
    pub export: Option<ExportClass>,
    pub families: Vec<Afi>,
    /// Adj-RIB-In: every prefix the peer announced, and whether it was
    /// accepted into the Loc-RIB.
    adj_in: FxHashMap<Prefix, bool>,
    /// Entries of `adj_in` that were accepted.
    accepted: u64,
    /// Adj-RIB-Out: what the peer has been (or is about to be) told.
    adj_out: FxHashMap<Prefix, Arc<PathAttrs>>,
    /// Prefixes whose Adj-RIB-Out entry changed and are not yet sent.
    pending: FxHashSet<Prefix>,
    /// Families whose routes from this peer are stale (graceful restart).
    stale: Vec<Afi>,
}

/// Export targets of one decision run, with the memo of computed attributes.
struct ExportRun {
    targets: Vec<(PeerId, ExportClass, Vec<Afi>)>,
    #[allow(clippy::type_complexity)]
    memo: FxHashMap<(usize, SourceKind, ExportClass), (Option<Arc<PathAttrs>>, Arc<PathAttrs>)>,
}

/// Routes waiting to be sent to one peer: announcements grouped by
/// identical attributes, and withdrawals.
#[derive(Debug, Default)]
pub struct OutBatch {
    pub announce: Vec<(Arc<PathAttrs>, Vec<Prefix>)>,
    pub withdraw: Vec<Prefix>,
}

#[derive(Debug)]
struct Path {
    /// `None`: a local route.
    source: Option<PeerId>,
    attrs: Arc<PathAttrs>,
    stale: bool,
}

#[derive(Debug, Default)]
struct Dest {
    paths: Vec<Path>,
    /// The current best path: (source, attributes). Kept as a value, not an
    /// index, so that removing paths leaves what was announced readable.
    best: Option<(Option<PeerId>, Arc<PathAttrs>)>,
    dirty: bool,
}

/// The tables of one speaker.
#[derive(Debug)]
pub struct Rib {
    local: LocalFacts,
    peers: FxHashMap<PeerId, RibPeer>,
    loc: FxHashMap<Prefix, Dest>,
    dirty: Vec<Prefix>,
    /// Interned attribute sets: equal attributes share one allocation.
    attrs: FxHashSet<Arc<PathAttrs>>,
    attrs_pruned_at: usize,
    /// Number of prefixes with a best path.
    best_count: u64,
}

// ===== impl RibPeer =====

impl RibPeer {
    /// A peer as it comes up.
    pub fn new(
        facts: PeerFacts,
        asn: u32,
        rr_client: bool,
        export: ExportClass,
        families: Vec<Afi>,
    ) -> Self {
        RibPeer {
            facts,
            asn,
            rr_client,
            export: Some(export),
            families,
            adj_in: FxHashMap::default(),
            accepted: 0,
            adj_out: FxHashMap::default(),
            pending: FxHashSet::default(),
            stale: Vec::new(),
        }
    }

    /// (received, accepted) prefix counts.
    pub fn received(&self) -> (u64, u64) {
        (self.adj_in.len() as u64, self.accepted)
    }

    /// Prefixes in Adj-RIB-Out.
    pub fn advertised(&self) -> u64 {
        self.adj_out.len() as u64
    }

    fn source_kind(&self, local: &LocalFacts) -> SourceKind {
        if self.facts.ebgp {
            SourceKind::Ebgp
        } else {
            SourceKind::Ibgp {
                client: self.rr_client && local.cluster_id.is_some(),
                router_id: self.facts.router_id,
            }
        }
    }
}

// ===== impl Rib =====

impl Rib {
    /// Empty tables.
    pub fn new(local: LocalFacts) -> Rib {
        Rib {
            local,
            peers: FxHashMap::default(),
            loc: FxHashMap::default(),
            dirty: Vec::new(),
            attrs: FxHashSet::default(),
            attrs_pruned_at: 1024,
            best_count: 0,
        }
    }

    /// Our identity changed (reconfiguration): everything is re-decided.
    pub fn set_local(&mut self, local: LocalFacts) {
        if local != self.local {
            self.local = local;
            let all: Vec<Prefix> = self.loc.keys().copied().collect();
            for p in all {
                self.mark(p);
            }
        }
    }

    /// The peer `id`, if known.
    pub fn peer(&self, id: PeerId) -> Option<&RibPeer> {
        self.peers.get(&id)
    }

    /// Prefixes with a best path.
    pub fn best_count(&self) -> u64 {
        self.best_count
    }

    /// A session came up. Its stale routes (if it restarted gracefully) stay
    /// until its End-of-RIB; every best path it may receive is queued.
    pub fn peer_up(&mut self, id: PeerId, mut peer: RibPeer) {
        if let Some(old) = self.peers.remove(&id) {
            peer.adj_in = old.adj_in;
            peer.accepted = old.accepted;
            peer.stale = old.stale;
        }
        self.peers.insert(id, peer);
        let prefixes: Vec<Prefix> = self
            .loc
            .iter()
            .filter(|(_, d)| d.best.is_some())
            .map(|(p, _)| *p)
            .collect();
        let mut run = self.export_run(Some(id));
        for p in prefixes {
            self.export_one(p, &mut run);
        }
    }

    /// A session went down. With `keep_stale` (graceful restart) its routes
    /// stay, marked stale, for the given families; otherwise they go.
    pub fn peer_down(&mut self, id: PeerId, keep_stale: &[Afi]) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.export = None;
        peer.adj_out.clear();
        peer.pending.clear();
        peer.stale = keep_stale.to_vec();
        let prefixes: Vec<Prefix> = peer.adj_in.keys().copied().collect();
        for p in prefixes {
            if keep_stale.contains(&afi_of(&p)) {
                if let Some(d) = self.loc.get_mut(&p) {
                    for path in d.paths.iter_mut().filter(|x| x.source == Some(id)) {
                        path.stale = true;
                    }
                }
            } else {
                self.withdraw(id, p);
            }
        }
        if keep_stale.is_empty() {
            self.peers.remove(&id);
        }
    }

    /// Drops the stale routes of `id` in `afi` (End-of-RIB received, or the
    /// restart/stale timer ran out). Returns how many were dropped.
    pub fn sweep_stale(&mut self, id: PeerId, afi: Afi) -> usize {
        let Some(peer) = self.peers.get_mut(&id) else {
            return 0;
        };
        peer.stale.retain(|a| *a != afi);
        let stale: Vec<Prefix> = peer
            .adj_in
            .keys()
            .filter(|p| afi_of(p) == afi)
            .filter(|p| {
                self.loc
                    .get(p)
                    .is_some_and(|d| d.paths.iter().any(|x| x.source == Some(id) && x.stale))
            })
            .copied()
            .collect();
        for p in &stale {
            self.withdraw(id, *p);
        }
        let peer = self.peers.get(&id);
        if peer.is_some_and(|p| p.export.is_none() && p.stale.is_empty()) {
            self.peers.remove(&id);
        }
        stale.len()
    }

    /// Routes from peer `id` sharing one attribute set (one UPDATE's worth).
    /// Import checks run once for the set. Returns why they were not
    /// accepted, if they were not (they still count as received).
    pub fn update(
        &mut self,
        id: PeerId,
        mut attrs: PathAttrs,
        prefixes: &[Prefix],
    ) -> Result<(), ImportReject> {
        let Some(peer) = self.peers.get(&id) else {
            return Ok(());
        };
        let verdict = export::import(&self.local, peer.asn, peer.facts.ebgp, &mut attrs);
        let interned = verdict.is_ok().then(|| self.intern(attrs));
        for prefix in prefixes {
            if let Some(peer) = self.peers.get_mut(&id) {
                let was = peer.adj_in.insert(*prefix, verdict.is_ok()) == Some(true);
                peer.accepted = peer.accepted + u64::from(verdict.is_ok()) - u64::from(was);
            }
            match &interned {
                Some(a) => self.set_path(*prefix, Some(id), a.clone()),
                None => self.remove_path(*prefix, Some(id)),
            }
        }
        verdict
    }

    /// A withdrawal from peer `id`.
    pub fn withdraw(&mut self, id: PeerId, prefix: Prefix) {
        if let Some(peer) = self.peers.get_mut(&id) {
            if let Some(was) = peer.adj_in.remove(&prefix) {
                peer.accepted -= u64::from(was);
                self.remove_path(prefix, Some(id));
            }
        }
    }

    /// Adds or replaces a locally originated route.
    pub fn local_update(&mut self, prefix: Prefix, attrs: PathAttrs) {
        let attrs = self.intern(attrs);
        self.set_path(prefix, None, attrs);
    }

    /// Withdraws a locally originated route.
    pub fn local_withdraw(&mut self, prefix: Prefix) {
        self.remove_path(prefix, None);
    }

    /// Runs the decision process over the dirty prefixes. Returns the
    /// best-path changes; per-peer changes wait in [`Rib::take_out`].
    pub fn decide(&mut self) -> Vec<BestPathChange> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut changes = Vec::new();
        let mut run = self.export_run(None);
        for prefix in dirty {
            let Some(dest) = self.loc.get_mut(&prefix) else {
                continue;
            };
            dest.dirty = false;
            let old = dest.best.take();
            dest.best = select(&self.peers, &dest.paths)
                .map(|i| (dest.paths[i].source, dest.paths[i].attrs.clone()));
            let new = dest.best.clone();
            let gone = dest.paths.is_empty();
            if gone {
                self.loc.remove(&prefix);
            }
            let same = match (&old, &new) {
                (Some((s1, a1)), Some((s2, a2))) => s1 == s2 && Arc::ptr_eq(a1, a2),
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            match (old.is_some(), new.is_some()) {
                (false, true) => self.best_count += 1,
                (true, false) => self.best_count -= 1,
                _ => {}
            }
            changes.push(BestPathChange {
                prefix,
                best: new.map(|(source, attrs)| BestPath {
                    attrs,
                    peer: source
                        .and_then(|s| self.peers.get(&s))
                        .map(|p| p.facts.address),
                }),
            });
            self.export_one(prefix, &mut run);
        }
        self.maybe_prune_attrs();
        changes
    }

    /// Peers with routes waiting to be sent.
    pub fn peers_with_pending(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| !p.pending.is_empty())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Takes up to `max` pending prefixes of peer `id`, grouped for packing.
    pub fn take_out(&mut self, id: PeerId, max: usize) -> OutBatch {
        let mut batch = OutBatch::default();
        let Some(peer) = self.peers.get_mut(&id) else {
            return batch;
        };
        let take: Vec<Prefix> = peer.pending.iter().take(max).copied().collect();
        let mut groups: FxHashMap<*const PathAttrs, usize> = FxHashMap::default();
        for p in take {
            peer.pending.remove(&p);
            match peer.adj_out.get(&p) {
                Some(a) => {
                    let slot = *groups.entry(Arc::as_ptr(a)).or_insert_with(|| {
                        batch.announce.push((a.clone(), Vec::new()));
                        batch.announce.len() - 1
                    });
                    batch.announce[slot].1.push(p);
                }
                None => batch.withdraw.push(p),
            }
        }
        batch
    }

    /// Queues everything in the Adj-RIB-Out of `id` for `afi` again (the
    /// peer sent a ROUTE-REFRESH, RFC 2918).
    pub fn refresh(&mut self, id: PeerId, afi: Afi) {
        if let Some(peer) = self.peers.get_mut(&id) {
            let all: Vec<Prefix> = peer
                .adj_out
                .keys()
                .filter(|p| afi_of(p) == afi)
                .copied()
                .collect();
            peer.pending.extend(all);
        }
    }

    /// Whether any pending work is queued for `id`.
    pub fn has_pending(&self, id: PeerId) -> bool {
        self.peers.get(&id).is_some_and(|p| !p.pending.is_empty())
    }

    // ----- helpers -----

    fn mark(&mut self, prefix: Prefix) {
        let dest = self.loc.entry(prefix).or_default();
        if !dest.dirty {
            dest.dirty = true;
            self.dirty.push(prefix);
        }
    }

    fn set_path(&mut self, prefix: Prefix, source: Option<PeerId>, attrs: Arc<PathAttrs>) {
        let dest = self.loc.entry(prefix).or_default();
        match dest.paths.iter_mut().find(|p| p.source == source) {
            Some(p) => {
                if Arc::ptr_eq(&p.attrs, &attrs) && !p.stale {
                    return;
                }
                p.attrs = attrs;
                p.stale = false;
            }
            None => dest.paths.push(Path {
                source,
                attrs,
                stale: false,
            }),
        }
        self.mark(prefix);
    }

    fn remove_path(&mut self, prefix: Prefix, source: Option<PeerId>) {
        let Some(dest) = self.loc.get_mut(&prefix) else {
            return;
        };
        let Some(i) = dest.paths.iter().position(|p| p.source == source) else {
            return;
        };
        dest.paths.swap_remove(i);
        self.mark(prefix);
    }

    /// The export targets and a memo for one run: who gets routes, and
    /// the attributes already computed per (best attributes, source kind,
    /// peer class), so a change costs one transform per class, not per peer.
    fn export_run(&self, only: Option<PeerId>) -> ExportRun {
        let targets = self
            .peers
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o == **id))
            .filter_map(|(id, p)| p.export.map(|c| (*id, c, p.families.clone())))
            .collect();
        ExportRun { targets, memo: FxHashMap::default() }
    }

    /// Recomputes the Adj-RIB-Out entry of `prefix` for the run's targets.
    fn export_one(&mut self, prefix: Prefix, run: &mut ExportRun) {
        let best = self.loc.get(&prefix).and_then(|d| d.best.clone());
        let source_kind = match &best {
            Some((None, _)) => Some(SourceKind::Local),
            Some((Some(s), _)) => self.peers.get(s).map(|p| p.source_kind(&self.local)),
            None => None,
        };
        let afi = afi_of(&prefix);
        for (id, class, families) in &run.targets {
            if !families.contains(&afi) {
                continue;
            }
            let out = match (&best, source_kind) {
                (Some((source, attrs)), Some(kind)) if *source != Some(*id) => {
                    let key = (Arc::as_ptr(attrs) as usize, kind, *class);
                    match run.memo.get(&key) {
                        Some((o, _)) => o.clone(),
                        None => {
                            let o = export::allowed(&self.local, kind, class)
                                .then(|| export::transform(&self.local, kind, class, attrs))
                                .flatten()
                                .map(|a| self.intern(a));
                            // The Arc kept in the memo pins the address used as key.
                            run.memo.insert(key, (o.clone(), attrs.clone()));
                            o
                        }
                    }
                }
                _ => None,
            };
            let Some(peer) = self.peers.get_mut(id) else { continue };
            let changed = match (&out, peer.adj_out.get(&prefix)) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                (None, None) => false,
                _ => true,
            };
            if changed {
                match out {
                    Some(a) => peer.adj_out.insert(prefix, a),
                    None => peer.adj_out.remove(&prefix),
                };
                peer.pending.insert(prefix);
            }
        }
    }

    fn intern(&mut self, attrs: PathAttrs) -> Arc<PathAttrs> {
        if let Some(a) = self.attrs.get(&attrs) {
            return a.clone();
        }
        let a = Arc::new(attrs);
        self.attrs.insert(a.clone());
        a
    }

    /// Drops interned attribute sets nobody uses, when the set has doubled.
    fn maybe_prune_attrs(&mut self) {
        if self.attrs.len() >= self.attrs_pruned_at {
            self.attrs.retain(|a| Arc::strong_count(a) > 1);
            self.attrs_pruned_at = (self.attrs.len() * 2).max(1024);
        }
    }
}

/// Index of the best path, by the decision process.
fn select(peers: &FxHashMap<PeerId, RibPeer>, paths: &[Path]) -> Option<usize> {
    let mut best: Option<(usize, Candidate<'_>)> = None;
    for (i, p) in paths.iter().enumerate() {
        let c = match p.source {
            None => Candidate {
                attrs: &p.attrs,
                peer: None,
            },
            Some(s) => match peers.get(&s) {
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

#[cfg(test)]
mod tests;
