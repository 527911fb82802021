//! `SpeakerHandle::explain`: why the speaker has (or has not) a best path
//! for one prefix. Every path it holds in decision order, the best
//! marked and each other with the step at which it lost; and for each
//! peer whether it sent the prefix, what its import rules say of it,
//! what its export rules say, and whether it was told it. `tortiectl
//! explain` shows it.
//!
//! The rules are run here as written (first match wins, as the RIB's
//! compiled form decides), so that the answer can name the rule: its
//! index in the peer's list for the prefix's family.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tortie_config::filter::{FilterAction, FilterRule, FilterRules};

use crate::rib::best_path::RejectReason;
use crate::route::{PathAttrs, Prefix};

/// What the speaker knows of one prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixExplain {
    /// The prefix asked for.
    pub asked: Prefix,
    /// The prefix found: `asked`, or the longest prefix holding it that
    /// the speaker knows (`None`: nothing known; the peers' rules are
    /// then those for `asked`).
    pub prefix: Option<Prefix>,
    /// Every path held (accepted), the best first, then in decision
    /// order.
    pub paths: Vec<PathView>,
    /// Every peer, by address.
    pub peers: Vec<PeerView>,
}

/// One path to the prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathView {
    /// The peer it came from; `None`: originated here.
    pub peer: Option<IpAddr>,
    /// That peer's BGP identifier.
    pub router_id: Option<Ipv4Addr>,
    pub ebgp: bool,
    pub attrs: Arc<PathAttrs>,
    pub best: bool,
    /// Kept while its peer restarts (graceful restart).
    pub stale: bool,
    /// The decision step at which it lost to the best path.
    pub lost: Option<RejectReason>,
}

/// Whether a peer announced the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Announced {
    /// It did, and the path is held.
    Accepted,
    /// It did, and its import (a rule, the prefixes it may send, or the
    /// import checks such as an AS_PATH loop) did not accept it.
    NotAccepted,
    /// It did not (or withdrew it).
    No,
}

/// A rule that matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleHit {
    /// Its index in the peer's rules of the prefix's family (the
    /// concatenation of its filters' lists).
    pub index: usize,
    pub action: FilterAction,
    /// The rule, written out (`Reject In 10.0.0.0/8{24,32}`).
    pub rule: String,
}

/// One peer and the prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    pub address: IpAddr,
    pub established: bool,
    pub announced: Announced,
    /// The first import rule that matches the prefix (`None`: none does).
    pub import_rule: Option<RuleHit>,
    /// When no import rule matches and the peer may send only prefixes
    /// inside some (a router: the pools), whether the prefix is inside.
    pub import_within: Option<bool>,
    /// What the import rules and limits say: accepted or not.
    pub import_allowed: bool,
    /// The first export rule that matches the prefix as it would be sent
    /// (from a peer, or ours, as its best path is).
    pub export_rule: Option<RuleHit>,
    /// Its update group's Adj-RIB-Out has the prefix: it was (or is
    /// about to be) told.
    pub advertised: bool,
}

// ===== impl Instance =====

impl crate::instance::Instance {
    /// What the speaker knows of `asked` (or the longest prefix holding
    /// it): the RIB's paths, then each peer's rules and announcement.
    pub(crate) fn explain(&mut self, asked: Prefix) -> PrefixExplain {
        let view = self.rib.explain(asked);
        let prefix = view.as_ref().map_or(asked, |v| v.prefix);
        let paths: Vec<PathView> = view
            .iter()
            .flat_map(|v| &v.paths)
            .map(|p| PathView {
                peer: p.peer.map(|(_, f)| f.address),
                router_id: p.peer.map(|(_, f)| f.router_id),
                ebgp: p.peer.is_some_and(|(_, f)| f.ebgp),
                attrs: p.attrs.clone(),
                best: p.best,
                stale: p.stale,
                lost: p.lost,
            })
            .collect();
        // The route as it would be exported: from a peer, or ours.
        let from_peer = view
            .as_ref()
            .and_then(|v| v.paths.first())
            .is_some_and(|p| p.best && p.peer.is_some());
        let mut peers: Vec<PeerView> = self
            .neighbors
            .values()
            .map(|n| {
                let held = view.as_ref().is_some_and(|v| {
                    v.paths
                        .iter()
                        .any(|p| p.peer.is_some_and(|(id, _)| id == n.id))
                });
                let refused = view.as_ref().is_some_and(|v| v.rejected_by.contains(&n.id));
                let c = &n.config;
                let import_rule = first_rule(&c.import_filter, &prefix, true);
                let import_within = match (&import_rule, &c.import_within) {
                    (None, Some(nets)) => Some(nets.iter().any(|net| net.contains(&prefix))),
                    _ => None,
                };
                PeerView {
                    address: c.address,
                    established: n.established.is_some(),
                    announced: if held {
                        Announced::Accepted
                    } else if refused {
                        Announced::NotAccepted
                    } else {
                        Announced::No
                    },
                    import_allowed: import_allowed(import_rule.as_ref(), import_within),
                    import_rule,
                    import_within,
                    export_rule: first_rule(&c.export_filter, &prefix, from_peer),
                    advertised: view
                        .as_ref()
                        .is_some_and(|v| v.told.iter().any(|(id, _)| *id == n.id)),
                }
            })
            .collect();
        peers.sort_by_key(|p| p.address);
        PrefixExplain {
            asked,
            prefix: view.map(|v| v.prefix),
            paths,
            peers,
        }
    }
}

// ===== helpers =====

/// The first rule of `rules` (the prefix's family) that matches, with its
/// index.
pub fn first_rule(rules: &FilterRules, prefix: &Prefix, from_peer: bool) -> Option<RuleHit> {
    let list = rules.of(prefix);
    let index = list.iter().position(|r| r.matches(prefix, from_peer))?;
    let r = &list[index];
    Some(RuleHit {
        index,
        action: r.action,
        rule: describe(r),
    })
}

/// A rule in one line: action, prefix test, source, interface.
pub fn describe(r: &FilterRule) -> String {
    let mut out = format!("{:?}", r.action);
    match &r.prefix {
        Some(m) => out.push_str(&format!(" {m}")),
        None => out.push_str(" all"),
    }
    if r.from_peers {
        out.push_str(" source RemotePeers");
    }
    if let Some(i) = &r.interface {
        out.push_str(&format!(" interface {i:?}"));
    }
    out
}

/// Whether import accepts `prefix`: the rule decides, else `within`.
pub fn import_allowed(rule: Option<&RuleHit>, within: Option<bool>) -> bool {
    match rule {
        Some(r) => r.action == FilterAction::Accept,
        None => within.unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use tortie_config::filter::{MatchOperator, PrefixMatch};

    use super::*;

    fn net(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_matching_rule_is_named_by_index() {
        let mut narrow = PrefixMatch::new(net("10.0.0.0/8"), MatchOperator::In);
        (narrow.min_len, narrow.max_len) = (24, 32);
        let mut peers_only = FilterRule::all(FilterAction::Accept);
        peers_only.from_peers = true;
        let rules = FilterRules {
            v4: vec![
                FilterRule {
                    prefix: Some(narrow),
                    from_peers: false,
                    interface: None,
                    action: FilterAction::Reject,
                },
                peers_only,
            ],
            v6: vec![FilterRule::all(FilterAction::Reject)],
        };
        let hit = first_rule(&rules, &net("10.1.2.0/26"), true).unwrap();
        assert_eq!(
            (hit.index, hit.action, hit.rule.as_str()),
            (0, FilterAction::Reject, "Reject In 10.0.0.0/8{24,32}")
        );
        let hit = first_rule(&rules, &net("10.1.0.0/16"), true).unwrap();
        assert_eq!(
            (hit.index, hit.rule.as_str()),
            (1, "Accept all source RemotePeers")
        );
        assert_eq!(first_rule(&rules, &net("10.1.0.0/16"), false), None);
        let v6 = first_rule(&rules, &net("fd00::/64"), true).unwrap();
        assert_eq!((v6.index, v6.action), (0, FilterAction::Reject));
        assert!(!import_allowed(Some(&v6), Some(true)));
        assert!(import_allowed(None, None));
        assert!(!import_allowed(None, Some(false)));
    }
}
