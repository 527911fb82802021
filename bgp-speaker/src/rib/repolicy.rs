//! New import and export settings for a peer whose session stays up
//! (reconfiguration without a reset; see `table/reclass.rs` for what each
//! family's tables do).

use std::sync::Arc;

use tortie_config::filter::FilterRules;

use crate::route::Afi;

use super::export::ExportClass;
use super::policy::Compiled;
use super::table::Ctx;
use super::{PeerId, Rib};

/// A peer's import and export settings, as the RIB holds them.
#[derive(Clone, Debug)]
pub struct PeerPolicy {
    /// Its export class (the RIB sets `policy` from `export_filter`).
    pub export: ExportClass,
    pub import_within: Option<Vec<ipnet::IpNet>>,
    pub import_filter: FilterRules,
    pub export_filter: FilterRules,
}

/// What applying a [`PeerPolicy`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repolicied {
    /// The peer's routes the new import settings refused (gone from the
    /// Loc-RIB).
    pub refused: usize,
    /// Whether the export class changed (the peer is sent the difference).
    pub export_changed: bool,
}

// ===== impl Rib: repolicy =====

impl Rib {
    /// The families in which a prefix peer `id` sent, and we refused, would
    /// pass `within` and `rules`: the peer must send its routes of those
    /// families again (ROUTE-REFRESH) for the new settings to take them.
    pub fn refresh_needed(
        &mut self,
        id: PeerId,
        within: Option<&[ipnet::IpNet]>,
        rules: &FilterRules,
    ) -> Vec<Afi> {
        let compiled = (!rules.is_empty()).then(|| Compiled::new(rules));
        let mut out = Vec::new();
        if self
            .v4
            .refused_would_pass(id, &self.peers, compiled.as_ref(), within)
        {
            out.push(Afi::Ipv4);
        }
        if self
            .v6
            .refused_would_pass(id, &self.peers, compiled.as_ref(), within)
        {
            out.push(Afi::Ipv6);
        }
        out
    }

    /// Applies `new` to peer `id`: the import settings at once to the
    /// routes it sent (those now refused leave the Loc-RIB; the next
    /// decision withdraws them where they were best) and to all it sends
    /// from now on; the export class to what it is told (it is queued the
    /// difference). With the session down, they wait for it to come up.
    pub fn repolicy(&mut self, id: PeerId, new: PeerPolicy) -> Repolicied {
        let some = |r: &FilterRules| (!r.is_empty()).then(|| Arc::new(r.clone()));
        let mut class = new.export;
        class.policy = self.policies.id(some(&new.export_filter).as_ref());
        let Some(peer) = self.peers.get_mut(&id) else {
            return Repolicied::default();
        };
        peer.import_within = new.import_within.map(Arc::from);
        peer.import_filter = some(&new.import_filter).map(|r| Arc::new(Compiled::new(&r)));
        let refused = self.v4.reimport(id, &self.peers) + self.v6.reimport(id, &self.peers);
        let Some(peer) = self.peers.get_mut(&id) else {
            return Repolicied::default();
        };
        let export_changed = peer.export.is_some_and(|old| old != class);
        if export_changed {
            peer.export = Some(class);
            let targets = [(id, class, peer.families.clone())];
            let ctx = Ctx {
                peers: &self.peers,
                local: &self.local,
                policies: &self.policies,
            };
            self.v4.reclass(id, &ctx, &targets);
            self.v6.reclass(id, &ctx, &targets);
        }
        Repolicied {
            refused,
            export_changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tortie_config::filter::{FilterAction, FilterRule, MatchOperator, PrefixMatch};

    use super::super::tests::{attrs_from, drain, local, peer, pfx};
    use super::*;
    use crate::route::Prefix;

    /// Peer `id`'s export settings as `peer` makes them, with `export`.
    fn policy(id: u8, export: FilterRules) -> PeerPolicy {
        PeerPolicy {
            export: peer(id, 65000, false).export,
            import_within: None,
            import_filter: FilterRules::default(),
            export_filter: export,
        }
    }

    /// A peer that changes class leaves its group's other member alone and
    /// is sent exactly what differs, plus what it had not been sent yet.
    #[test]
    fn a_new_export_class_sends_the_difference_and_what_was_unsent() {
        let mut rib = Rib::new(local(false));
        rib.peer_up(9, peer(9, 65000, false));
        rib.peer_up(10, peer(10, 65000, false));
        rib.peer_up(2, peer(2, 64512, false));
        rib.local_update(pfx("10.244.1.0/26"), attrs_from(1));
        rib.local_update(pfx("10.244.2.0/26"), attrs_from(1));
        rib.update(2, attrs_from(2), &[pfx("10.244.7.0/26")])
            .unwrap();
        rib.decide(false);
        let (mut held9, mut held10) = (BTreeMap::new(), BTreeMap::new());
        assert_eq!(drain(&mut rib, 9, &mut held9), 3);
        assert_eq!(drain(&mut rib, 10, &mut held10), 3);
        // Decided, not yet sent to either.
        rib.local_update(pfx("10.244.3.0/26"), attrs_from(1));
        rib.decide(false);

        let no_block_1 = FilterRules {
            v4: vec![FilterRule {
                prefix: Some(PrefixMatch::new(pfx("10.244.1.0/26"), MatchOperator::Equal)),
                from_peers: false,
                interface: None,
                action: FilterAction::Reject,
            }],
            v6: Vec::new(),
        };
        let done = rib.repolicy(9, policy(9, no_block_1));
        assert!(done.export_changed);
        rib.decide(false);
        assert_eq!(
            drain(&mut rib, 9, &mut held9),
            2,
            "withdraw .1, announce .3"
        );
        let want: Vec<Prefix> = ["10.244.2.0/26", "10.244.3.0/26", "10.244.7.0/26"]
            .map(pfx)
            .to_vec();
        assert_eq!(held9.keys().copied().collect::<Vec<_>>(), want);
        assert_eq!(drain(&mut rib, 10, &mut held10), 1, "only .3");
        assert_eq!(held10.len(), 4);
        assert_eq!(rib.apply_then_count(9).unwrap().advertised(), 3);

        // Back to no rules: .1 again, nothing else.
        let done = rib.repolicy(9, policy(9, FilterRules::default()));
        assert!(done.export_changed);
        rib.decide(false);
        assert_eq!(drain(&mut rib, 9, &mut held9), 1);
        assert!(held9.contains_key(&pfx("10.244.1.0/26")));
        assert_eq!(drain(&mut rib, 10, &mut held10), 0);
        // The same class again: nothing at all.
        let done = rib.repolicy(9, policy(9, FilterRules::default()));
        assert!(!done.export_changed);
        assert_eq!(drain(&mut rib, 9, &mut held9), 0);
    }
}
