//! Per-peer route filters in the RIB (Calico's BGPFilter, compiled by the
//! caller into [`FilterRules`]): the import rules of a peer decide each
//! prefix it sends before `import_within` does; the export rules of a peer
//! are part of its export class, by an id ([`PolicyId`]) that equal rules
//! share, so that peers with equal filters stay in one update group and
//! share its Adj-RIB-Out and attribute memo. The rules are run per prefix
//! (they look at the prefix and the route's source only, never at its
//! attributes), the memo per attribute set, as before.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use tortie_config::filter::{FilterAction, FilterRules};

use crate::route::Prefix;

/// Export rules of a class: 0 for none, else an index into [`Policies`].
pub type PolicyId = u32;

/// No export rules.
pub const NO_POLICY: PolicyId = 0;

/// Every distinct export rule set seen, by id. Equal rules get the same id
/// (so their peers share a class); ids are never reused, so a class never
/// changes meaning. A few sets at most in practice (one per distinct
/// BGPPeer `filters` list, per change of a filter).
#[derive(Debug, Default)]
pub(crate) struct Policies {
    list: Vec<Arc<FilterRules>>,
    ids: FxHashMap<Arc<FilterRules>, PolicyId>,
}

/// What the export rules say of one prefix for one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ExportVerdict {
    /// No rule matched: the speaker's own export policy decides.
    Default,
    /// A rule accepted it: sent even where the speaker's own policy would
    /// not (within BGP's rules).
    Accept,
    /// A rule rejected it: not sent.
    Reject,
}

// ===== impl Policies =====

impl Policies {
    /// The id of `rules` (registered if new); [`NO_POLICY`] for none.
    pub fn id(&mut self, rules: Option<&Arc<FilterRules>>) -> PolicyId {
        let Some(rules) = rules.filter(|r| !r.is_empty()) else {
            return NO_POLICY;
        };
        if let Some(id) = self.ids.get(rules) {
            return *id;
        }
        self.list.push(rules.clone());
        let id = PolicyId::try_from(self.list.len()).unwrap_or(PolicyId::MAX);
        self.ids.insert(rules.clone(), id);
        id
    }

    /// What class policy `id` says of `prefix` from a peer (`from_peer`) or
    /// from us.
    pub fn export(&self, id: PolicyId, prefix: &Prefix, from_peer: bool) -> ExportVerdict {
        if id == NO_POLICY {
            return ExportVerdict::Default;
        }
        let rules = self.list.get(id as usize - 1);
        match rules.and_then(|r| r.verdict(prefix, from_peer)) {
            None => ExportVerdict::Default,
            Some(FilterAction::Accept) => ExportVerdict::Accept,
            Some(FilterAction::Reject) => ExportVerdict::Reject,
        }
    }
}

/// Whether a prefix from a peer is accepted: its import rules first, then
/// `within` (`None`: anything).
pub(crate) fn import_allowed(
    rules: Option<&FilterRules>,
    within: Option<&[ipnet::IpNet]>,
    prefix: &Prefix,
) -> bool {
    match rules.and_then(|r| r.verdict(prefix, true)) {
        Some(FilterAction::Accept) => true,
        Some(FilterAction::Reject) => false,
        None => within.is_none_or(|nets| nets.iter().any(|n| n.contains(prefix))),
    }
}

#[cfg(test)]
mod tests {
    use tortie_config::filter::{FilterRule, MatchOperator, PrefixMatch};

    use super::*;

    fn net(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn rules(op: MatchOperator, cidr: &str, action: FilterAction) -> Arc<FilterRules> {
        Arc::new(FilterRules {
            v4: vec![FilterRule {
                prefix: Some(PrefixMatch::new(net(cidr), op)),
                from_peers: false,
                interface: None,
                action,
            }],
            v6: Vec::new(),
        })
    }

    #[test]
    fn equal_rules_share_an_id() {
        let mut p = Policies::default();
        let a = rules(MatchOperator::In, "10.0.0.0/8", FilterAction::Reject);
        let b = rules(MatchOperator::In, "10.0.0.0/8", FilterAction::Reject);
        let c = rules(MatchOperator::In, "10.0.0.0/8", FilterAction::Accept);
        assert_eq!(p.id(None), NO_POLICY);
        assert_eq!(p.id(Some(&Arc::new(FilterRules::default()))), NO_POLICY);
        let ida = p.id(Some(&a));
        assert_ne!(ida, NO_POLICY);
        assert_eq!(p.id(Some(&b)), ida, "equal rules, one class");
        assert_ne!(p.id(Some(&c)), ida);
        assert_eq!(
            p.export(ida, &net("10.1.0.0/16"), false),
            ExportVerdict::Reject
        );
        assert_eq!(
            p.export(ida, &net("11.0.0.0/16"), false),
            ExportVerdict::Default
        );
        assert_eq!(
            p.export(NO_POLICY, &net("10.1.0.0/16"), true),
            ExportVerdict::Default
        );
    }

    #[test]
    fn import_rules_come_before_within() {
        let pools = [net("10.244.0.0/16")];
        let accept = rules(MatchOperator::Equal, "0.0.0.0/0", FilterAction::Accept);
        let reject = rules(MatchOperator::In, "10.244.1.0/24", FilterAction::Reject);
        // (rules, prefix, accepted)
        let rows = [
            (None, "10.244.1.0/26", true),
            (None, "0.0.0.0/0", false),
            (Some(&accept), "0.0.0.0/0", true),
            (Some(&accept), "10.244.1.0/26", true),
            (Some(&reject), "10.244.1.0/26", false),
            (Some(&reject), "10.244.2.0/26", true),
        ];
        for (i, (r, p, want)) in rows.into_iter().enumerate() {
            let got = import_allowed(r.map(|r| &**r), Some(&pools), &net(p));
            assert_eq!(got, want, "row {i}");
        }
        assert!(import_allowed(None, None, &net("0.0.0.0/0")));
    }
}
