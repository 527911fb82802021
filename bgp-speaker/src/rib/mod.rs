//! The RIBs: per-peer Adj-RIB-In (what each peer sent), the Loc-RIB (every
//! candidate path per prefix and the best one), and an Adj-RIB-Out per
//! update group (what the peers of one export class have been told), with
//! interned attributes.
//!
//! A prefix is decided again when one of its paths changes (its entry is
//! in cache then), and the change is queued once per prefix; [`Rib::decide`]
//! then exports the queue: best-path changes out, and each group's changes
//! into its log, which every member reads at its own pace
//! ([`Rib::take_out`]). Cost grows with the number of changes, not the
//! table, nor (for a change) the number of peers.
//!
//! Files: `table` (one family's Loc-RIB and peers' views, the decision),
//! `group` (update groups: shared Adj-RIB-Out, change log, members),
//! `memo` (one run's export targets and attributes), `shard` (a family
//! split by prefix hash, applied in parallel), `loc` and `paths` (storage),
//! `best_path` and `export` (the rules), `policy` (per-peer import and
//! export filters), `repolicy` (new filters on a session that stays up).

pub mod best_path;
mod explain;
pub mod export;
mod group;
mod loc;
mod memo;
mod paths;
pub mod policy;
mod repolicy;
mod shard;
mod table;

use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use rustc_hash::{FxHashMap, FxHashSet};
use tortie_config::filter::FilterRules;

use crate::api::BestPathChange;
use crate::route::{Afi, PathAttrs, Prefix};

use best_path::PeerFacts;
pub use explain::{RibPath, RibView};
use export::{ExportClass, ImportReject, LocalFacts, SourceKind};
use policy::Policies;
pub use repolicy::{PeerPolicy, Repolicied};
use shard::Family;
use table::Ctx;

/// A peer's index, given by the instance.
pub type PeerId = u32;

/// A peer as it comes up: what the decision process and the export rules
/// need to know of it.
#[derive(Debug)]
pub struct RibPeer {
    pub facts: PeerFacts,
    pub asn: u32,
    pub rr_client: bool,
    pub export: ExportClass,
    pub families: Vec<Afi>,
    /// Accept only prefixes inside one of these (`None`: all).
    pub import_within: Option<Arc<[ipnet::IpNet]>>,
    /// Import rules, run before `import_within` (`None`: none).
    pub import_filter: Option<Arc<FilterRules>>,
    /// Export rules; the RIB puts their id in the export class.
    pub export_filter: Option<Arc<FilterRules>>,
    /// Our AS may appear this often in a route's AS_PATH (eBGP).
    pub allow_local_as: u8,
}

/// What the RIB keeps of a peer between sessions.
#[derive(Debug)]
pub(crate) struct PeerInfo {
    facts: PeerFacts,
    asn: u32,
    rr_client: bool,
    /// `None` while the session is down (routes kept stale for GR).
    export: Option<ExportClass>,
    families: Vec<Afi>,
    /// Families whose routes from this peer are stale (graceful restart).
    stale: Vec<Afi>,
    import_within: Option<Arc<[ipnet::IpNet]>>,
    import_filter: Option<Arc<policy::Compiled>>,
    allow_local_as: u8,
}

/// Counters of one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCounts {
    received: u64,
    accepted: u64,
    advertised: u64,
}

/// Routes waiting to be sent to one peer: announcements grouped by
/// identical attributes (one family each), and withdrawals. Prefixes are
/// held in their family's own type (5 octets for IPv4): a session may have
/// a few batches queued, and there may be thousands of sessions.
#[derive(Debug, Default)]
pub struct OutBatch {
    pub announce: Vec<(Arc<PathAttrs>, Nlri)>,
    pub withdraw_v4: Vec<Ipv4Net>,
    pub withdraw_v6: Vec<Ipv6Net>,
}

/// Prefixes of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Nlri {
    V4(Vec<Ipv4Net>),
    V6(Vec<Ipv6Net>),
}

/// Interned attribute sets: equal attributes share one allocation.
#[derive(Debug)]
pub(crate) struct Interner {
    set: FxHashSet<Arc<PathAttrs>>,
    pruned_at: usize,
}

/// The tables of one speaker.
#[derive(Debug)]
pub struct Rib {
    local: LocalFacts,
    peers: FxHashMap<PeerId, PeerInfo>,
    v4: Family<Ipv4Net>,
    v6: Family<Ipv6Net>,
    /// Buffers splitting an UPDATE's prefixes by family.
    scratch_v4: Vec<Ipv4Net>,
    scratch_v6: Vec<Ipv6Net>,
    /// The export targets of the last decision, and them grouped by
    /// class: kept while the peers' export classes stay the same (a copy
    /// per peer for every decision, otherwise).
    targets: Vec<shard::Target>,
    grouped: Arc<Vec<group::ClassGroup>>,
    /// The peers' export rules, by the id their classes hold.
    policies: Policies,
}

// ===== impl OutBatch =====

impl OutBatch {
    /// Prefixes in the batch, announced or withdrawn.
    pub fn len(&self) -> usize {
        let announced: usize = self.announce.iter().map(|(_, n)| n.len()).sum();
        announced + self.withdraw_v4.len() + self.withdraw_v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The announcements, with prefixes of either family.
    pub fn announced(&self) -> Vec<(Arc<PathAttrs>, Vec<Prefix>)> {
        self.announce
            .iter()
            .map(|(a, n)| (a.clone(), n.prefixes()))
            .collect()
    }

    /// The withdrawals, IPv4 first.
    pub fn withdrawn(&self) -> Vec<Prefix> {
        let v4 = self.withdraw_v4.iter().map(|k| Prefix::V4(*k));
        v4.chain(self.withdraw_v6.iter().map(|k| Prefix::V6(*k)))
            .collect()
    }
}

// ===== impl Nlri =====

impl Nlri {
    pub fn len(&self) -> usize {
        match self {
            Nlri::V4(v) => v.len(),
            Nlri::V6(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The prefixes as [`Prefix`].
    pub fn prefixes(&self) -> Vec<Prefix> {
        match self {
            Nlri::V4(v) => v.iter().map(|k| Prefix::V4(*k)).collect(),
            Nlri::V6(v) => v.iter().map(|k| Prefix::V6(*k)).collect(),
        }
    }
}

// ===== impl PeerCounts =====

impl PeerCounts {
    /// (received, accepted) prefixes.
    pub fn received(&self) -> (u64, u64) {
        (self.received, self.accepted)
    }

    /// Prefixes in Adj-RIB-Out.
    pub fn advertised(&self) -> u64 {
        self.advertised
    }
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
            export,
            families,
            import_within: None,
            import_filter: None,
            export_filter: None,
            allow_local_as: 0,
        }
    }

    /// The same peer, accepting only prefixes inside `nets` (when given).
    pub fn importing_only(mut self, nets: Option<Vec<ipnet::IpNet>>) -> Self {
        self.import_within = nets.map(Arc::from);
        self
    }

    /// The same peer with these import and export rules (empty: none).
    pub fn filtered(mut self, import: &FilterRules, export: &FilterRules) -> Self {
        let some = |r: &FilterRules| (!r.is_empty()).then(|| Arc::new(r.clone()));
        self.import_filter = some(import);
        self.export_filter = some(export);
        self
    }
}

// ===== impl PeerInfo =====

impl PeerInfo {
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

// ===== impl Interner =====

impl Default for Interner {
    fn default() -> Self {
        Interner {
            set: FxHashSet::default(),
            pruned_at: 1024,
        }
    }
}

impl Interner {
    fn intern(&mut self, attrs: PathAttrs) -> Arc<PathAttrs> {
        if let Some(a) = self.set.get(&attrs) {
            return a.clone();
        }
        let a = Arc::new(attrs);
        self.set.insert(a.clone());
        a
    }

    /// Drops attribute sets nobody uses, when the set has doubled.
    fn maybe_prune(&mut self) {
        if self.set.len() >= self.pruned_at {
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.pruned_at = (self.set.len() * 2).max(1024);
        }
    }
}

// ===== impl Rib =====

impl Rib {
    /// Empty tables, each family in as many shards as there are cores (at
    /// most 4).
    pub fn new(local: LocalFacts) -> Rib {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Rib::with_shards(local, cores.min(4))
    }

    /// Empty tables, each family in `shards` shards.
    pub fn with_shards(local: LocalFacts, shards: usize) -> Rib {
        Rib {
            local,
            peers: FxHashMap::default(),
            v4: Family::new(shards),
            v6: Family::new(shards),
            scratch_v4: Vec::new(),
            scratch_v6: Vec::new(),
            targets: Vec::new(),
            grouped: Arc::new(Vec::new()),
            policies: Policies::default(),
        }
    }

    /// Our identity changed (reconfiguration): everything is re-decided.
    pub fn set_local(&mut self, local: LocalFacts) {
        if local != self.local {
            self.local = local;
            self.v4.mark_all(&self.peers);
            self.v6.mark_all(&self.peers);
        }
    }

    /// Applies the routes and withdrawals received so far (the decision
    /// run does; so does every reader of counters).
    pub fn apply(&mut self) {
        self.v4.apply(&self.peers);
        self.v6.apply(&self.peers);
    }

    /// Applies the queued changes (free right after a decision, which
    /// applied them), then counts the prefixes accepted from peer `id` per
    /// family: (IPv4, IPv6).
    pub fn apply_then_accepted(&mut self, id: PeerId) -> (u64, u64) {
        self.apply();
        (self.v4.counts(id).1, self.v6.counts(id).1)
    }

    /// Applies the queued changes, then the counters of peer `id`, if the
    /// RIB knows it.
    pub fn apply_then_count(&mut self, id: PeerId) -> Option<PeerCounts> {
        self.peers.get(&id)?;
        self.apply();
        let (r4, a4, o4) = self.v4.counts(id);
        let (r6, a6, o6) = self.v6.counts(id);
        Some(PeerCounts {
            received: r4 + r6,
            accepted: a4 + a6,
            advertised: o4 + o6,
        })
    }

    /// Applies the queued changes, then the prefixes with a best path.
    pub fn apply_then_best_count(&mut self) -> u64 {
        self.apply();
        self.v4.best_count() + self.v6.best_count()
    }

    /// A session came up. Its stale routes (if it restarted gracefully) stay
    /// until its End-of-RIB; every best path it may receive is queued.
    pub fn peer_up(&mut self, id: PeerId, peer: RibPeer) {
        let stale = self.peers.remove(&id).map(|p| p.stale).unwrap_or_default();
        let mut export = peer.export;
        export.policy = self.policies.id(peer.export_filter.as_ref());
        let families = peer.families.clone();
        self.peers.insert(
            id,
            PeerInfo {
                facts: peer.facts,
                asn: peer.asn,
                rr_client: peer.rr_client,
                export: Some(export),
                families: peer.families,
                stale,
                import_within: peer.import_within,
                import_filter: peer
                    .import_filter
                    .map(|r| Arc::new(policy::Compiled::new(&r))),
                allow_local_as: peer.allow_local_as,
            },
        );
        let targets = [(id, export, families)];
        let ctx = Ctx {
            peers: &self.peers,
            local: &self.local,
            policies: &self.policies,
        };
        self.v4.queue_all(&ctx, &targets);
        self.v6.queue_all(&ctx, &targets);
    }

    /// A session went down. With graceful restart its routes of the
    /// `keep_stale` families stay, marked stale; all others go.
    pub fn peer_down(&mut self, id: PeerId, keep_stale: &[Afi]) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.export = None;
        peer.stale = keep_stale.to_vec();
        self.v4
            .peer_down(id, keep_stale.contains(&Afi::Ipv4), &self.peers);
        self.v6
            .peer_down(id, keep_stale.contains(&Afi::Ipv6), &self.peers);
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
        let gone = peer.export.is_none() && peer.stale.is_empty();
        let n = match afi {
            Afi::Ipv4 => self.v4.sweep_stale(id, &self.peers),
            Afi::Ipv6 => self.v6.sweep_stale(id, &self.peers),
        };
        if gone {
            self.v4.forget(id);
            self.v6.forget(id);
            self.peers.remove(&id);
        }
        n
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
        let verdict = export::import(
            &self.local,
            peer.asn,
            peer.facts.ebgp,
            peer.allow_local_as,
            &mut attrs,
        );
        let accepted = verdict.is_ok().then(|| Arc::new(attrs));
        let within = peer.import_within.clone();
        let rules = peer.import_filter.clone();
        let (mut v4, mut v6) = (
            std::mem::take(&mut self.scratch_v4),
            std::mem::take(&mut self.scratch_v6),
        );
        let (mut out4, mut out6) = (Vec::new(), Vec::new());
        for p in prefixes {
            let allowed = policy::import_allowed(rules.as_deref(), within.as_deref(), p);
            match (p, allowed) {
                (Prefix::V4(k), true) => v4.push(*k),
                (Prefix::V6(k), true) => v6.push(*k),
                (Prefix::V4(k), false) => out4.push(*k),
                (Prefix::V6(k), false) => out6.push(*k),
            }
        }
        self.v4.update(id, accepted.as_ref(), &v4);
        self.v6.update(id, accepted.as_ref(), &v6);
        // Outside the import filter: received, never accepted.
        self.v4.update(id, None, &out4);
        self.v6.update(id, None, &out6);
        // The buffers are kept for the next UPDATE.
        (self.scratch_v4, self.scratch_v6) = (v4, v6);
        self.scratch_v4.clear();
        self.scratch_v6.clear();
        verdict
    }

    /// A withdrawal from peer `id`.
    pub fn withdraw(&mut self, id: PeerId, prefix: Prefix) {
        match prefix {
            Prefix::V4(k) => self.v4.withdraw(id, k),
            Prefix::V6(k) => self.v6.withdraw(id, k),
        }
    }

    /// Adds or replaces a locally originated route.
    pub fn local_update(&mut self, prefix: Prefix, attrs: PathAttrs) {
        match prefix {
            Prefix::V4(k) => self.v4.set_local(k, &attrs, &self.peers),
            Prefix::V6(k) => self.v6.set_local(k, &attrs, &self.peers),
        }
    }

    /// Withdraws a locally originated route.
    pub fn local_withdraw(&mut self, prefix: Prefix) {
        match prefix {
            Prefix::V4(k) => self.v4.remove_local(k, &self.peers),
            Prefix::V6(k) => self.v6.remove_local(k, &self.peers),
        }
    }

    /// Whether the next decision is a large batch (run on threads of its
    /// own, `std::thread::scope`, when there are shards): the caller runs
    /// it off the async runtime.
    pub fn heavy(&self) -> bool {
        self.v4.heavy() || self.v6.heavy()
    }

    /// Runs the decision process over the dirty prefixes. Returns the
    /// best-path changes (none are built unless `want_changes`); per-peer
    /// changes wait in [`Rib::take_out`].
    pub fn decide(&mut self, want_changes: bool) -> Vec<BestPathChange> {
        // Most decisions (after a keepalive, say) have nothing to run:
        // no list of targets, work per peer, for them.
        if self.v4.idle() && self.v6.idle() {
            return Vec::new();
        }
        let now = self
            .peers
            .iter()
            .filter_map(|(id, p)| p.export.map(|c| (*id, c, &p.families)));
        let same = now
            .clone()
            .map(Some)
            .chain(std::iter::once(None))
            .zip(self.targets.iter().map(Some).chain(std::iter::once(None)))
            .all(|(a, b)| match (a, b) {
                (Some((id, c, f)), Some((id2, c2, f2))) => id == *id2 && c == *c2 && f == f2,
                (None, None) => true,
                _ => false,
            });
        if !same {
            self.targets = now.map(|(id, c, f)| (id, c, f.clone())).collect();
            self.grouped = Arc::new(group::group(self.targets.iter().cloned()));
        }
        let ctx = Ctx {
            peers: &self.peers,
            local: &self.local,
            policies: &self.policies,
        };
        let mut changes = self.v4.decide(&ctx, &self.grouped, want_changes);
        changes.extend(self.v6.decide(&ctx, &self.grouped, want_changes));
        changes
    }

    /// Takes up to `max` pending prefixes of peer `id`, grouped for packing.
    pub fn take_out(&mut self, id: PeerId, max: usize) -> OutBatch {
        let mut batch = OutBatch::default();
        self.v4.take_out(id, max, &mut batch);
        let left = max.saturating_sub(batch.len());
        if left > 0 {
            self.v6.take_out(id, left, &mut batch);
        }
        batch
    }

    /// Queues everything in the Adj-RIB-Out of `id` for `afi` again (the
    /// peer sent a ROUTE-REFRESH, RFC 2918).
    pub fn refresh(&mut self, id: PeerId, afi: Afi) {
        match afi {
            Afi::Ipv4 => self.v4.refresh(id),
            Afi::Ipv6 => self.v6.refresh(id),
        }
    }

    /// Moves `id`'s read position past log entries that do not concern it;
    /// whether anything then waits to be sent to it.
    pub fn skip_to_pending(&mut self, id: PeerId) -> bool {
        self.v4.skip_to_pending(id) || self.v6.skip_to_pending(id)
    }
}

#[cfg(test)]
mod filter_tests;
#[cfg(test)]
mod tests;
