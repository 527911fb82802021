//! The RIB's part of `SpeakerHandle::explain`: every path held for one
//! prefix in decision order, why each but the best lost, which peers'
//! announcements of it were not accepted, and which peers were told it.

use std::cmp::Ordering;
use std::sync::Arc;

use ipnet::IpNet;

use crate::route::{PathAttrs, Prefix};

use super::best_path::{self, Candidate, PeerFacts, RejectReason};
use super::{PeerId, Rib};

/// One path to the prefix.
#[derive(Clone, Debug)]
pub struct RibPath {
    /// The peer it came from (`None`: originated here).
    pub peer: Option<(PeerId, PeerFacts)>,
    pub attrs: Arc<PathAttrs>,
    /// Kept from a peer that restarts (graceful restart).
    pub stale: bool,
    pub best: bool,
    /// The decision step at which it lost to the best path.
    pub lost: Option<RejectReason>,
}

/// What the RIB holds of one prefix.
#[derive(Clone, Debug)]
pub struct RibView {
    /// The prefix found: the one asked, or the longest one holding it.
    pub prefix: Prefix,
    /// The best path first, then the others in decision order.
    pub paths: Vec<RibPath>,
    /// Peers that announced it and whose import did not accept it.
    pub rejected_by: Vec<PeerId>,
    /// Peers whose update group has it in its Adj-RIB-Out, with the
    /// attributes they are told.
    pub told: Vec<(PeerId, Arc<PathAttrs>)>,
}

// ===== impl Rib =====

impl Rib {
    /// What the RIB holds of `prefix`, or of the longest prefix that holds
    /// it (an address as a /32 or /128 finds its block); `None` when no
    /// path to it, and no announcement of it, is known.
    pub fn explain(&mut self, prefix: Prefix) -> Option<RibView> {
        self.apply();
        let found = (0..=prefix.prefix_len()).rev().find_map(|len| {
            let k = IpNet::new(prefix.addr(), len).ok()?.trunc();
            let known = match k {
                IpNet::V4(k) => self.v4.table_of(&k).knows(&k),
                IpNet::V6(k) => self.v6.table_of(&k).knows(&k),
            };
            known.then_some(k)
        })?;
        let view = match found {
            IpNet::V4(k) => self.v4.table_of(&k).view(&k),
            IpNet::V6(k) => self.v6.table_of(&k).view(&k),
        };
        let facts = |id: PeerId| self.peers.get(&id).map(|p| (id, p.facts));
        let mut paths: Vec<RibPath> = view
            .paths
            .iter()
            // A path of a peer the RIB no longer knows takes no part in
            // the decision (a moment's state while it is removed).
            .filter_map(|(source, attrs, stale)| {
                let peer = match source {
                    Some(id) => Some(facts(*id)?),
                    None => None,
                };
                Some(RibPath {
                    peer,
                    attrs: attrs.clone(),
                    stale: *stale,
                    best: view.best == Some(*source),
                    lost: None,
                })
            })
            .collect();
        // Best first, then as the decision process ranks them.
        paths.sort_by(|a, b| match (a.best, b.best) {
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            _ => best_path::compare(&candidate(a), &candidate(b)).0,
        });
        if let Some(best) = paths.first().filter(|p| p.best).cloned() {
            for p in paths.iter_mut().skip(1) {
                p.lost = best_path::compare(&candidate(&best), &candidate(p)).1;
            }
        }
        Some(RibView {
            prefix: found,
            paths,
            rejected_by: view.rejected_by,
            told: view.told,
        })
    }
}

/// A path as the decision process sees it.
fn candidate(p: &RibPath) -> Candidate<'_> {
    Candidate {
        attrs: &p.attrs,
        peer: p.peer.map(|(_, f)| f),
    }
}
