//! One address family's tables split into shards by a hash of the prefix,
//! so that a large batch of received routes is applied on several cores.
//!
//! Routes and withdrawals from peers are queued per shard (in arrival
//! order) and applied when anything reads or changes the tables otherwise:
//! at the latest by the decision run that follows every input batch of the
//! instance. A batch of at least [`PARALLEL_MIN`] prefixes is applied with
//! one thread per shard (scoped: they end before `apply` returns); smaller
//! ones on the caller's thread. Each shard is a whole [`Table`] (Loc-RIB,
//! Adj-RIB-In bookkeeping, Adj-RIB-Out of its prefixes), so shards share
//! nothing but the read-only peer facts; the export step runs shard after
//! shard and sends from all of them.

use std::hash::BuildHasher;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::api::BestPathChange;
use crate::route::PathAttrs;

use crate::route::Afi;

use super::export::ExportClass;
use super::group::ClassGroup;
use super::memo::ExportRun;
use super::table::{Ctx, Key, Peers, Table, Taking};
use super::{OutBatch, PeerId};

/// A peer to export to: id, export class, families.
pub(super) type Target = (PeerId, ExportClass, Vec<Afi>);

/// Queued prefixes from which applying uses a thread per shard: below it,
/// starting the threads costs more than it saves.
pub(super) const PARALLEL_MIN: usize = 8192;

/// A queued change from a peer.
#[derive(Debug)]
enum Op {
    /// The queue's keys from the previous op's end up to `to`, announced
    /// with these attributes (`None`: not accepted).
    Update {
        id: PeerId,
        attrs: Option<Arc<PathAttrs>>,
        to: usize,
    },
    /// The queue's next key withdrawn.
    Withdraw { id: PeerId },
}

/// One shard's queue.
#[derive(Debug)]
struct Queue<K> {
    ops: Vec<Op>,
    keys: Vec<K>,
}

/// The tables of one family.
#[derive(Debug)]
pub(super) struct Family<K> {
    shards: Vec<Table<K>>,
    queues: Vec<Queue<K>>,
    queued: usize,
}

// ===== impl Queue =====

impl<K: Key> Queue<K> {
    fn new() -> Self {
        Queue {
            ops: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// Applies the queue in order, and empties it (keeping its buffers).
    fn apply(&mut self, t: &mut Table<K>, peers: &Peers) {
        // More routes announced than the table holds: most are new (a
        // table coming in), so the table grows once. A refresh of routes
        // already held announces no more than the table holds.
        let mut from = 0;
        let mut announced = 0;
        for op in &self.ops {
            if let Op::Update { attrs, to, .. } = op {
                if attrs.is_some() {
                    announced += to - from;
                }
                from = *to;
            } else {
                from += 1;
            }
        }
        t.reserve(announced);
        let mut from = 0;
        for op in self.ops.drain(..) {
            match op {
                Op::Update { id, attrs, to } => {
                    t.update(id, attrs.as_deref(), &self.keys[from..to], peers);
                    from = to;
                }
                Op::Withdraw { id } => {
                    t.withdraw(id, self.keys[from], peers);
                    from += 1;
                }
            }
        }
        self.keys.clear();
    }
}

// ===== impl Family =====

impl<K: Key + Send + Sync> Family<K> {
    /// `shards` tables (at least one).
    pub fn new(shards: usize) -> Self {
        let n = shards.max(1);
        Family {
            shards: (0..n).map(|_| Table::new()).collect(),
            queues: (0..n).map(|_| Queue::new()).collect(),
            queued: 0,
        }
    }

    fn shard_of(&self, k: &K) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        // A hash of its own (seeded), so that a shard's prefixes still
        // spread over the whole of the shard's index.
        let h = FxBuildHasher.hash_one((0x5eed_u16, k));
        (((h >> 32) * self.shards.len() as u64) >> 32) as usize
    }

    /// Routes from a peer sharing one attribute set (`None`: not
    /// accepted); queued.
    pub fn update(&mut self, id: PeerId, attrs: Option<&Arc<PathAttrs>>, keys: &[K]) {
        if keys.is_empty() {
            return;
        }
        let starts: Vec<usize> = self.queues.iter().map(|q| q.keys.len()).collect();
        for k in keys {
            let s = self.shard_of(k);
            self.queues[s].keys.push(*k);
        }
        for (q, from) in self.queues.iter_mut().zip(starts) {
            let to = q.keys.len();
            if to > from {
                q.ops.push(Op::Update {
                    id,
                    attrs: attrs.cloned(),
                    to,
                });
            }
        }
        self.queued += keys.len();
    }

    /// The table (shard) that holds `k`.
    pub fn table_of(&self, k: &K) -> &Table<K> {
        &self.shards[self.shard_of(k)]
    }

    /// A withdrawal from a peer; queued.
    pub fn withdraw(&mut self, id: PeerId, k: K) {
        let s = self.shard_of(&k);
        self.queues[s].keys.push(k);
        self.queues[s].ops.push(Op::Withdraw { id });
        self.queued += 1;
    }

    /// Applies everything queued: in parallel when there is enough.
    pub fn apply(&mut self, peers: &Peers) {
        if self.queued == 0 {
            return;
        }
        if self.shards.len() > 1 && self.queued >= PARALLEL_MIN {
            std::thread::scope(|scope| {
                let mut pairs = self.shards.iter_mut().zip(self.queues.iter_mut());
                let first = pairs.next();
                for (t, q) in pairs {
                    scope.spawn(move || q.apply(t, peers));
                }
                if let Some((t, q)) = first {
                    q.apply(t, peers);
                }
            });
        } else {
            for (t, q) in self.shards.iter_mut().zip(self.queues.iter_mut()) {
                q.apply(t, peers);
            }
        }
        self.queued = 0;
    }

    pub fn best_count(&self) -> u64 {
        debug_assert_eq!(self.queued, 0, "read with queued changes");
        self.shards.iter().map(Table::best_count).sum()
    }

    /// (destinations, attribute sets, overflow lists) over all shards.
    #[cfg(test)]
    pub fn storage_in_use(&self) -> (usize, usize, usize) {
        self.shards.iter().fold((0, 0, 0), |acc, t| {
            let (a, b, c) = t.storage_in_use();
            (acc.0 + a, acc.1 + b, acc.2 + c)
        })
    }

    /// Whether a decision would do nothing (see [`Table::idle`]).
    pub fn idle(&self) -> bool {
        self.queued == 0 && self.shards.iter().all(Table::idle)
    }

    /// Whether the next apply or decision is a batch of at least
    /// [`PARALLEL_MIN`] (run on threads of its own when there are shards).
    pub fn heavy(&self) -> bool {
        self.queued >= PARALLEL_MIN
            || self.shards.iter().map(Table::changed_len).sum::<usize>() >= PARALLEL_MIN
    }

    /// Entries in the groups' change logs, over all shards.
    #[cfg(test)]
    pub fn logged(&self) -> usize {
        self.shards.iter().map(Table::logged).sum()
    }

    /// (received, accepted, advertised) of a peer.
    pub fn counts(&self, id: PeerId) -> (u64, u64, u64) {
        debug_assert_eq!(self.queued, 0, "read with queued changes");
        self.shards.iter().fold((0, 0, 0), |acc, t| {
            let (a, b, c) = t.counts(id);
            (acc.0 + a, acc.1 + b, acc.2 + c)
        })
    }

    pub fn skip_to_pending(&mut self, id: PeerId) -> bool {
        self.shards.iter_mut().any(|t| t.skip_to_pending(id))
    }

    pub fn mark_all(&mut self, peers: &Peers) {
        self.apply(peers);
        self.shards.iter_mut().for_each(Table::mark_all);
    }

    pub fn set_local(&mut self, k: K, attrs: &PathAttrs, peers: &Peers) {
        self.apply(peers);
        let s = self.shard_of(&k);
        self.shards[s].set_local(k, attrs, peers);
    }

    pub fn remove_local(&mut self, k: K, peers: &Peers) {
        self.apply(peers);
        let s = self.shard_of(&k);
        self.shards[s].remove_local(k, peers);
    }

    pub fn peer_down(&mut self, id: PeerId, keep: bool, peers: &Peers) {
        self.apply(peers);
        for t in &mut self.shards {
            t.peer_down(id, keep, peers);
        }
    }

    pub fn sweep_stale(&mut self, id: PeerId, peers: &Peers) -> usize {
        self.apply(peers);
        self.shards
            .iter_mut()
            .map(|t| t.sweep_stale(id, peers))
            .sum()
    }

    pub fn forget(&mut self, id: PeerId) {
        for t in &mut self.shards {
            t.forget(id);
        }
    }

    /// Queues every best path for the (new) peers in `targets`.
    pub fn queue_all(&mut self, ctx: &Ctx<'_>, targets: &[Target]) {
        self.apply(ctx.peers);
        for t in &mut self.shards {
            t.queue_all(ctx, &mut ExportRun::new(targets.to_vec()));
        }
    }

    /// Moves peer `id` to its new export class (`targets`: it alone) and
    /// queues it the difference (see `Table::reclass`).
    pub fn reclass(&mut self, id: PeerId, ctx: &Ctx<'_>, targets: &[Target]) {
        self.apply(ctx.peers);
        for t in &mut self.shards {
            t.reclass(id, ctx, &mut ExportRun::new(targets.to_vec()));
        }
    }

    /// Removes the paths of `id` its import rules now refuse; how many.
    pub fn reimport(&mut self, id: PeerId, peers: &Peers) -> usize {
        self.apply(peers);
        self.shards.iter_mut().map(|t| t.reimport(id, peers)).sum()
    }

    /// Whether a prefix `id` sent and we refused would pass these rules.
    pub fn refused_would_pass(
        &mut self,
        id: PeerId,
        peers: &Peers,
        rules: Option<&super::policy::Compiled>,
        within: Option<&[ipnet::IpNet]>,
    ) -> bool {
        self.apply(peers);
        self.shards
            .iter()
            .any(|t| t.refused_would_pass(id, rules, within))
    }

    pub fn refresh(&mut self, id: PeerId) {
        for t in &mut self.shards {
            t.refresh(id);
        }
    }

    /// Exports the best-path changes since the last run to `targets`;
    /// returns them (when `want_changes`). Shards run in parallel when
    /// there are enough changes; each has its own export run.
    pub fn decide(
        &mut self,
        ctx: &Ctx<'_>,
        targets: &Arc<Vec<ClassGroup>>,
        want_changes: bool,
    ) -> Vec<BestPathChange> {
        self.apply(ctx.peers);
        let one = |t: &mut Table<K>| {
            if t.idle() {
                return Vec::new();
            }
            let mut run = ExportRun::with_groups(targets.clone());
            let mut changes = Vec::new();
            t.decide(ctx, &mut run, want_changes.then_some(&mut changes));
            changes
        };
        let total: usize = self.shards.iter().map(Table::changed_len).sum();
        if self.shards.len() > 1 && total >= PARALLEL_MIN {
            std::thread::scope(|scope| {
                let mut shards = self.shards.iter_mut();
                let first = shards.next();
                let others: Vec<_> = shards.map(|t| scope.spawn(|| one(t))).collect();
                let mut changes = first.map(one).unwrap_or_default();
                for h in others {
                    match h.join() {
                        Ok(c) => changes.extend(c),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                changes
            })
        } else {
            self.shards.iter_mut().flat_map(one).collect()
        }
    }

    /// Takes up to `max` pending prefixes of a peer into `batch`, from the
    /// shards in turn; announcements of the same attributes from several
    /// shards are merged into one group.
    pub fn take_out(&mut self, id: PeerId, max: usize, batch: &mut OutBatch) {
        let mut out = Taking {
            announce: Vec::new(),
            withdraw: Vec::new(),
        };
        for t in &mut self.shards {
            let taken = out.len();
            if taken >= max {
                break;
            }
            t.take_out(id, max - taken, &mut out);
        }
        let mut announce = out.announce;
        if self.shards.len() > 1 && announce.len() > 1 {
            let mut merged: Vec<(Arc<PathAttrs>, Vec<K>)> = Vec::with_capacity(announce.len());
            for (attrs, prefixes) in announce {
                // Shards intern separately: equal sets may be two Arcs.
                match merged
                    .iter_mut()
                    .find(|(a, _)| Arc::ptr_eq(a, &attrs) || **a == *attrs)
                {
                    Some((_, p)) => p.extend(prefixes),
                    None => merged.push((attrs, prefixes)),
                }
            }
            announce = merged;
        }
        batch
            .announce
            .extend(announce.into_iter().map(|(a, keys)| (a, K::nlri(keys))));
        let withdraw = K::withdrawals(batch);
        if withdraw.is_empty() {
            *withdraw = out.withdraw;
        } else {
            withdraw.extend(out.withdraw);
        }
    }
}
