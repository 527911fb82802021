//! Route filters as the speaker runs them: ordered rules per family, the
//! first rule that matches a route decides (Calico's `BGPFilter`, as its
//! BIRD functions run: each rule an `if (...) then { accept; }` or
//! `reject;`). No rule matching leaves the route to the speaker's own
//! policy. tortie-node compiles a BGPPeer's `filters` (the BGPFilter
//! resources, `resources::BGPFilterSpec`) into one [`FilterRules`] per
//! direction; the speaker evaluates them per prefix ([`FilterRules::verdict`]).

use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// What a matching rule does with the route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FilterAction {
    /// Take (import) or send (export) the route, whatever the speaker's
    /// own policy says (its protocol rules still apply: AS loops, iBGP
    /// split horizon, route reflection).
    Accept,
    /// Drop the route.
    Reject,
}

/// How a rule compares the route's prefix with its `cidr` (Calico's
/// `matchOperator`; BIRD's `=`, `!=`, `~`, `!~`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchOperator {
    /// The prefix is the cidr.
    Equal,
    /// The prefix is not the cidr.
    NotEqual,
    /// The prefix lies inside the cidr (or is it), with a length in the
    /// rule's range.
    In,
    /// Not `In`.
    NotIn,
}

/// The prefix test of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrefixMatch {
    pub cidr: IpNet,
    pub op: MatchOperator,
    /// Prefix lengths `In` (and `NotIn`) take: BIRD's `cidr{min,max}`.
    /// Without Calico's `prefixLength`: the cidr's length up to the
    /// family's longest.
    pub min_len: u8,
    pub max_len: u8,
}

/// One rule: every test it has must hold for its action to apply.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FilterRule {
    /// The prefix test, if any (Calico's `cidr`, `matchOperator`,
    /// `prefixLength`).
    pub prefix: Option<PrefixMatch>,
    /// Only routes learned from a BGP peer, none this speaker originates
    /// (Calico's `source: RemotePeers`). Every imported route is one.
    pub from_peers: bool,
    /// Only routes whose outgoing interface matches this glob (Calico's
    /// `interface`). The speaker's routes have no interface (its own are
    /// announcements, not kernel routes; a peer's have no interface before
    /// the dataplane picks one): a rule with one matches no route.
    pub interface: Option<String>,
    pub action: FilterAction,
}

/// The rules of one direction (import or export) of one peer, per family,
/// in order: the concatenation of the BGPPeer's filters' lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FilterRules {
    /// For IPv4 prefixes (`importV4` / `exportV4`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub v4: Vec<FilterRule>,
    /// For IPv6 prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub v6: Vec<FilterRule>,
}

// ===== impl PrefixMatch =====

impl PrefixMatch {
    /// The test `op cidr`, with the lengths `In` takes when no
    /// `prefixLength` narrows them.
    pub fn new(cidr: IpNet, op: MatchOperator) -> PrefixMatch {
        PrefixMatch {
            cidr,
            op,
            min_len: cidr.prefix_len(),
            max_len: cidr.max_prefix_len(),
        }
    }

    /// Whether `prefix` passes the test.
    pub fn matches(&self, prefix: &IpNet) -> bool {
        let inside = || {
            let len = prefix.prefix_len();
            (self.min_len..=self.max_len).contains(&len) && self.cidr.contains(prefix)
        };
        match self.op {
            MatchOperator::Equal => *prefix == self.cidr,
            MatchOperator::NotEqual => *prefix != self.cidr,
            MatchOperator::In => inside(),
            MatchOperator::NotIn => !inside(),
        }
    }
}

impl fmt::Display for PrefixMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.op, self.cidr)?;
        let full = (self.cidr.prefix_len(), self.cidr.max_prefix_len());
        if (self.min_len, self.max_len) != full {
            write!(f, "{{{},{}}}", self.min_len, self.max_len)?;
        }
        Ok(())
    }
}

// ===== impl FilterRule =====

impl FilterRule {
    /// A rule that matches every route: `action` for all.
    pub fn all(action: FilterAction) -> FilterRule {
        FilterRule {
            prefix: None,
            from_peers: false,
            interface: None,
            action,
        }
    }

    /// Whether the rule applies to `prefix`, learned from a peer or not.
    pub fn matches(&self, prefix: &IpNet, from_peer: bool) -> bool {
        if self.interface.is_some() || (self.from_peers && !from_peer) {
            return false;
        }
        self.prefix.as_ref().is_none_or(|m| m.matches(prefix))
    }
}

// ===== impl FilterRules =====

impl FilterRules {
    /// Rules that reject every route of both families.
    pub fn reject_all() -> FilterRules {
        FilterRules {
            v4: vec![FilterRule::all(FilterAction::Reject)],
            v6: vec![FilterRule::all(FilterAction::Reject)],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The rules for `prefix`'s family.
    pub fn of(&self, prefix: &IpNet) -> &[FilterRule] {
        match prefix {
            IpNet::V4(_) => &self.v4,
            IpNet::V6(_) => &self.v6,
        }
    }

    /// The action of the first rule (of the prefix's family) that matches,
    /// or `None`: no rule does, the speaker's own policy decides.
    /// `from_peer`: the route was learned from a BGP peer (always so on
    /// import), not originated by the speaker.
    pub fn verdict(&self, prefix: &IpNet, from_peer: bool) -> Option<FilterAction> {
        self.of(prefix)
            .iter()
            .find(|r| r.matches(prefix, from_peer))
            .map(|r| r.action)
    }

    /// `self`'s rules, then `more`'s (a later filter's rules run when no
    /// earlier one matched).
    pub fn extend(&mut self, more: FilterRules) {
        self.v4.extend(more.v4);
        self.v6.extend(more.v6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn rule(op: MatchOperator, cidr: &str, action: FilterAction) -> FilterRule {
        FilterRule {
            prefix: Some(PrefixMatch::new(net(cidr), op)),
            from_peers: false,
            interface: None,
            action,
        }
    }

    #[test]
    fn operators_as_bird_runs_them() {
        use MatchOperator::*;
        // (operator, cidr, prefix, matches)
        let rows = [
            (Equal, "10.0.0.0/16", "10.0.0.0/16", true),
            (Equal, "10.0.0.0/16", "10.0.1.0/24", false),
            (NotEqual, "10.0.0.0/16", "10.0.1.0/24", true),
            (NotEqual, "10.0.0.0/16", "10.0.0.0/16", false),
            (In, "10.0.0.0/16", "10.0.0.0/16", true),
            (In, "10.0.0.0/16", "10.0.3.64/26", true),
            (In, "10.0.0.0/16", "10.1.0.0/24", false),
            (In, "10.0.0.0/16", "10.0.0.0/8", false),
            (NotIn, "10.0.0.0/16", "10.0.0.0/8", true),
            (NotIn, "10.0.0.0/16", "10.0.9.0/24", false),
            (In, "fd00::/8", "fd00:1::/64", true),
            (In, "0.0.0.0/0", "192.0.2.1/32", true),
        ];
        for (i, (op, cidr, p, want)) in rows.into_iter().enumerate() {
            assert_eq!(
                PrefixMatch::new(net(cidr), op).matches(&net(p)),
                want,
                "row {i}: {op:?} {cidr} {p}"
            );
        }
    }

    #[test]
    fn prefix_length_narrows_in_and_not_in() {
        let mut m = PrefixMatch::new(net("10.0.0.0/8"), MatchOperator::In);
        (m.min_len, m.max_len) = (16, 24);
        assert!(m.matches(&net("10.1.0.0/16")));
        assert!(m.matches(&net("10.1.2.0/24")));
        assert!(!m.matches(&net("10.1.2.64/26")), "longer than 24");
        assert!(!m.matches(&net("10.0.0.0/8")), "shorter than 16");
        m.op = MatchOperator::NotIn;
        assert!(m.matches(&net("10.1.2.64/26")));
        assert_eq!(m.to_string(), "NotIn 10.0.0.0/8{16,24}");
    }

    #[test]
    fn first_match_wins_and_no_match_is_none() {
        use FilterAction::*;
        use MatchOperator::*;
        let rules = FilterRules {
            v4: vec![
                rule(Equal, "10.244.1.0/26", Reject),
                rule(In, "10.244.0.0/16", Accept),
                FilterRule::all(Reject),
            ],
            v6: vec![rule(In, "fd00::/8", Reject)],
        };
        assert_eq!(rules.verdict(&net("10.244.1.0/26"), false), Some(Reject));
        assert_eq!(rules.verdict(&net("10.244.2.0/26"), false), Some(Accept));
        assert_eq!(rules.verdict(&net("192.0.2.0/24"), false), Some(Reject));
        // The v4 catch-all does not apply to IPv6.
        assert_eq!(rules.verdict(&net("2001:db8::/64"), false), None);
        assert_eq!(rules.verdict(&net("fd00::/64"), false), Some(Reject));
        assert_eq!(
            FilterRules::default().verdict(&net("10.0.0.0/8"), true),
            None
        );
    }

    #[test]
    fn source_and_interface() {
        let mut from_peers = FilterRule::all(FilterAction::Accept);
        from_peers.from_peers = true;
        assert!(from_peers.matches(&net("10.0.0.0/8"), true));
        assert!(!from_peers.matches(&net("10.0.0.0/8"), false), "our own");
        let mut iface = FilterRule::all(FilterAction::Reject);
        iface.interface = Some("*.calico".into());
        assert!(!iface.matches(&net("10.0.0.0/8"), true));
        assert!(!iface.matches(&net("10.0.0.0/8"), false));
    }
}
