//! What one family's tables hold of one prefix, for `tortiectl explain`:
//! its paths, the peers whose announcement of it was not accepted, and
//! the peers whose update group has it in its Adj-RIB-Out. A read on
//! request, never on the hot path.

use std::sync::Arc;

use crate::route::PathAttrs;

use super::{Key, Table, LOCAL, NONE};
use crate::rib::PeerId;

/// One prefix as a family's table holds it.
#[derive(Clone, Debug, Default)]
pub(in crate::rib) struct TableView {
    /// Every path: (source: a peer, or `None` for ours), attributes,
    /// stale (graceful restart).
    pub paths: Vec<(Option<PeerId>, Arc<PathAttrs>, bool)>,
    /// The source of the best path: `Some(None)` for ours.
    pub best: Option<Option<PeerId>>,
    /// Peers that announced it and whose import did not accept it.
    pub rejected_by: Vec<PeerId>,
    /// Peers whose update group's Adj-RIB-Out has it, with what they are
    /// told.
    pub told: Vec<(PeerId, Arc<PathAttrs>)>,
}

// ===== impl Table =====

impl<K: Key> Table<K> {
    /// Whether the table knows anything of `k` (a path, or a peer's
    /// announcement it did not accept).
    pub fn knows(&self, k: &K) -> bool {
        self.loc.find(k).is_some() || self.peers.values().any(|p| p.rejected.contains(k))
    }

    /// What the table holds of `k`.
    pub fn view(&self, k: &K) -> TableView {
        let source = |s: u32| (s != LOCAL).then_some(s);
        let mut out = TableView::default();
        if let Some(dest) = self.loc.find(k).and_then(|at| self.loc.get(at)) {
            out.paths = dest
                .paths
                .get(&self.overflow)
                .iter()
                .map(|p| {
                    (
                        source(p.source),
                        self.attrs.get(p.attrs()).clone(),
                        p.stale(),
                    )
                })
                .collect();
            out.best = (dest.best != NONE).then(|| source(dest.best));
        }
        let mut ids: Vec<&PeerId> = self.peers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let p = &self.peers[id];
            if p.rejected.contains(k) {
                out.rejected_by.push(*id);
            }
            let group = p.group.and_then(|c| self.groups.get(&c));
            if let Some(a) = group.filter(|_| p.family).and_then(|g| g.told(*id, k)) {
                out.told.push((*id, a.clone()));
            }
        }
        out
    }
}
