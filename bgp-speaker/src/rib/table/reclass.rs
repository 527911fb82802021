//! A peer's filters changed while its session is up (reconfiguration):
//! what it is sent and what is taken from it follow without a reset.
//!
//! - Export: the peer moves to the update group of its new export class
//!   and is sent the difference between what its old group told it (or
//!   had yet to) and what the new one holds: announcements for what is
//!   now allowed or carries other attributes, withdrawals for what is now
//!   refused. Nothing it already has in the same form is sent again.
//! - Import: its routes in the Loc-RIB that the new rules refuse are
//!   removed at once (the rules look at the prefix only, so no copy of
//!   what the peer sent is needed); whether a prefix it sent and we
//!   refused would now pass says if the peer must send its routes again
//!   (ROUTE-REFRESH, decided by the instance): we keep no attributes of
//!   refused routes.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::route::PathAttrs;

use super::super::group::read_log;
use super::super::memo::ExportRun;
use super::super::policy;
use super::super::PeerId;
use super::{Ctx, Key, Peers, Table};

// ===== impl Table: reclass =====

impl<K: Key> Table<K> {
    /// Moves peer `id` to the class of `run` (its only target) and queues
    /// for it exactly the prefixes whose state, as it is told them,
    /// changed (and those it had not been sent yet).
    pub fn reclass(&mut self, id: PeerId, ctx: &Ctx<'_>, run: &mut ExportRun) {
        let mut changed: Vec<K> = Vec::new();
        let mut told: FxHashMap<K, Arc<PathAttrs>> = FxHashMap::default();
        if let Some(p) = self.peers.get(&id) {
            changed.extend_from_slice(&p.pending);
            if let Some(g) = p.group.and_then(|c| self.groups.get(&c)) {
                if p.family {
                    read_log(g, id, p.cursor, usize::MAX, &mut changed);
                    told.extend(
                        g.adj_out
                            .iter()
                            .filter(|(_, (_, source))| *source != id)
                            .map(|(k, (a, _))| (*k, a.clone())),
                    );
                }
            }
        }
        // Joins the new group (leaving the old one), which gets an entry
        // for every best path it lacks.
        self.queue_all(ctx, run);
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(g) = p.group.and_then(|c| self.groups.get(&c)) else {
            return;
        };
        p.cursor = g.log_end();
        if !p.family {
            p.pending.clear();
            return;
        }
        for (k, (a, source)) in &g.adj_out {
            if *source == id {
                continue;
            }
            match told.remove(k) {
                Some(old) if Arc::ptr_eq(&old, a) || *old == **a => {}
                _ => changed.push(*k),
            }
        }
        // Told before, refused now: withdrawn.
        changed.extend(told.into_keys());
        p.pending = changed;
        p.pending_dups = true;
    }

    /// Removes the paths of peer `id` that its import rules (as they are
    /// now in `peers`) refuse; they count as received, not accepted.
    /// Returns how many went.
    pub fn reimport(&mut self, id: PeerId, peers: &Peers) -> usize {
        let Some(info) = peers.get(&id) else {
            return 0;
        };
        let (rules, within) = (info.import_filter.as_deref(), info.import_within.as_deref());
        let refused: Vec<K> = self
            .loc
            .iter()
            .filter(|(_, d)| d.paths.get(&self.overflow).iter().any(|x| x.source == id))
            .map(|(_, d)| d.key)
            .filter(|k| !policy::import_allowed(rules, within, &k.prefix()))
            .collect();
        for k in &refused {
            if self.remove_path(*k, id, peers) {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.accepted -= 1;
                    p.rejected.insert(*k);
                }
            }
        }
        refused.len()
    }

    /// Whether a prefix peer `id` sent and we refused would pass import
    /// rules `rules` and `within` (the peer must send it again for us to
    /// have it: we keep no attributes of refused routes).
    pub fn refused_would_pass(
        &self,
        id: PeerId,
        rules: Option<&policy::Compiled>,
        within: Option<&[ipnet::IpNet]>,
    ) -> bool {
        self.peers.get(&id).is_some_and(|p| {
            p.rejected
                .iter()
                .any(|k| policy::import_allowed(rules, within, &k.prefix()))
        })
    }
}
