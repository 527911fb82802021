//! Per-peer route filters in the RIB (Calico's BGPFilter, compiled by the
//! caller into [`FilterRules`]): the import rules of a peer decide each
//! prefix it sends before `import_within` does; the export rules of a peer
//! are part of its export class, by an id ([`PolicyId`]) that equal rules
//! share, so that peers with equal filters stay in one update group and
//! share its Adj-RIB-Out and attribute memo. The rules are run per prefix
//! (they look at the prefix and the route's source only, never at its
//! attributes), the memo per attribute set, as before.
//!
//! Rules run compiled (`Compiled`): a run of rules that match a prefix
//! inside (or equal to) their cidr is looked up by the prefix's network at
//! each cidr length the run has, so that a hundred such rules cost a hash
//! lookup or two per prefix, not a hundred comparisons; the verdict is the
//! same as [`FilterRules::verdict`]'s (a property test checks it).

use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use tortie_config::filter::{FilterAction, FilterRule, FilterRules, MatchOperator};

use crate::route::Prefix;

/// Export rules of a class: 0 for none, else an index into `Policies`.
pub type PolicyId = u32;

/// No export rules.
pub const NO_POLICY: PolicyId = 0;

/// Every distinct export rule set seen, by id. Equal rules get the same id
/// (so their peers share a class); ids are never reused, so a class never
/// changes meaning. A few sets at most in practice (one per distinct
/// BGPPeer `filters` list, per change of a filter).
#[derive(Debug, Default)]
pub(crate) struct Policies {
    list: Vec<Compiled>,
    ids: FxHashMap<Arc<FilterRules>, PolicyId>,
}

/// A rule list compiled for speed, per family.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    v4: Vec<Segment>,
    v6: Vec<Segment>,
}

/// Consecutive rules of a list, tried as one step.
#[derive(Debug)]
enum Segment {
    /// One rule, tried as it is.
    One(FilterRule),
    /// Rules that each match only prefixes inside (or equal to) their
    /// cidr (`In`, `Equal`), found by the prefix's network.
    Set(PrefixSet),
}

/// A run of `In` / `Equal` rules: for each cidr length among them, the
/// rules by cidr network. The first rule of the run (lowest index) that
/// matches wins, as in the list.
#[derive(Debug)]
struct PrefixSet {
    rules: Vec<FilterRule>,
    by_len: Vec<(u8, FxHashMap<u128, Vec<u32>>)>,
    /// The shortest cidr length of the run, and every rule's cidr cut to
    /// it: a prefix whose network at that length is not here is inside
    /// no rule's cidr (one lookup for the common prefix no rule is about,
    /// instead of one per length).
    coarse: (u8, rustc_hash::FxHashSet<u128>),
}

/// Runs shorter than this are tried rule by rule.
const SET_MIN: usize = 4;

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
        self.list.push(Compiled::new(rules));
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

// ===== impl Compiled =====

impl Compiled {
    pub fn new(rules: &FilterRules) -> Compiled {
        Compiled {
            v4: segments(&rules.v4),
            v6: segments(&rules.v6),
        }
    }

    /// What [`FilterRules::verdict`] says of the same rules.
    pub fn verdict(&self, prefix: &Prefix, from_peer: bool) -> Option<FilterAction> {
        let segments = match prefix {
            Prefix::V4(_) => &self.v4,
            Prefix::V6(_) => &self.v6,
        };
        segments.iter().find_map(|s| match s {
            Segment::One(r) => r.matches(prefix, from_peer).then_some(r.action),
            Segment::Set(set) => set.first_match(prefix, from_peer),
        })
    }
}

// ===== impl PrefixSet =====

impl PrefixSet {
    fn new(rules: Vec<FilterRule>) -> PrefixSet {
        let mut by_len: Vec<(u8, FxHashMap<u128, Vec<u32>>)> = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let Some(m) = &r.prefix else { continue };
            let len = m.cidr.prefix_len();
            let at = match by_len.iter().position(|(l, _)| *l == len) {
                Some(at) => at,
                None => {
                    by_len.push((len, FxHashMap::default()));
                    by_len.len() - 1
                }
            };
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            by_len[at]
                .1
                .entry(network(&m.cidr, len))
                .or_default()
                .push(index);
        }
        by_len.sort_unstable_by_key(|(l, _)| *l);
        let shortest = by_len.first().map_or(0, |(l, _)| *l);
        let coarse = rules
            .iter()
            .filter_map(|r| r.prefix.as_ref())
            .map(|m| network(&m.cidr, shortest))
            .collect();
        PrefixSet {
            rules,
            by_len,
            coarse: (shortest, coarse),
        }
    }

    /// The action of the run's first rule that matches.
    fn first_match(&self, prefix: &Prefix, from_peer: bool) -> Option<FilterAction> {
        let len = prefix.prefix_len();
        let (shortest, coarse) = &self.coarse;
        if len < *shortest || !coarse.contains(&network(prefix, *shortest)) {
            return None;
        }
        let mut best: Option<u32> = None;
        for (cidr_len, map) in &self.by_len {
            // A cidr longer than the prefix cannot hold it.
            if *cidr_len > len {
                break;
            }
            let Some(candidates) = map.get(&network(prefix, *cidr_len)) else {
                continue;
            };
            let first = candidates
                .iter()
                .take_while(|i| best.is_none_or(|b| **i < b))
                .find(|i| self.rules[**i as usize].matches(prefix, from_peer));
            if let Some(i) = first {
                best = Some(*i);
            }
        }
        best.map(|i| self.rules[i as usize].action)
    }
}

// ===== helpers =====

/// The list cut into segments: runs of at least [`SET_MIN`] `In` /
/// `Equal` rules become sets, the rest stay single. Rules with an
/// `interface` match nothing here and are left out.
fn segments(rules: &[FilterRule]) -> Vec<Segment> {
    let settable = |r: &FilterRule| {
        r.prefix
            .as_ref()
            .is_some_and(|m| matches!(m.op, MatchOperator::In | MatchOperator::Equal))
    };
    let mut out = Vec::new();
    let mut run: Vec<FilterRule> = Vec::new();
    let flush = |run: &mut Vec<FilterRule>, out: &mut Vec<Segment>| {
        if run.len() >= SET_MIN {
            out.push(Segment::Set(PrefixSet::new(std::mem::take(run))));
        } else {
            out.extend(run.drain(..).map(Segment::One));
        }
    };
    for r in rules.iter().filter(|r| r.interface.is_none()) {
        if settable(r) {
            run.push(r.clone());
        } else {
            flush(&mut run, &mut out);
            out.push(Segment::One(r.clone()));
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The first `len` bits of `net`'s address, as a number (IPv4 in the low
/// 32 bits).
fn network(net: &Prefix, len: u8) -> u128 {
    match net.addr() {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u128::from(bits & mask)
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            bits & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
        }
    }
}

/// Whether a prefix from a peer is accepted: its import rules first, then
/// `within` (`None`: anything).
pub(crate) fn import_allowed(
    rules: Option<&Compiled>,
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
    use tortie_config::filter::PrefixMatch;

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

    /// A prefix in `n` (of 32 choices of network and length).
    fn prefix_of(n: u8) -> Prefix {
        let len = [8u8, 16, 24, 26, 32][usize::from(n % 5)];
        let addr = std::net::Ipv4Addr::new(10, n % 4, (n / 4) % 4, 64 * (n % 2));
        Prefix::V4(ipnet::Ipv4Net::new(addr, len).unwrap().trunc())
    }

    proptest::proptest! {
        /// The compiled rules decide as the rules as written, whatever
        /// their order, operators and lengths.
        #[test]
        fn compiled_rules_decide_as_written(
            spec in proptest::collection::vec((0u8..64, 0u8..4, 0u8..3, proptest::bool::ANY, proptest::bool::ANY), 0..24),
            probes in proptest::collection::vec((0u8..64, proptest::bool::ANY), 1..16),
        ) {
            use tortie_config::filter::PrefixMatch;
            let ops = [MatchOperator::In, MatchOperator::Equal, MatchOperator::NotIn, MatchOperator::NotEqual];
            let v4 = spec
                .iter()
                .map(|(n, op, narrow, peers, accept)| {
                    let cidr = prefix_of(*n);
                    let mut m = PrefixMatch::new(cidr, ops[usize::from(*op)]);
                    if *narrow == 1 {
                        m.min_len = m.min_len.max(24);
                    }
                    FilterRule {
                        prefix: (*narrow != 2 || *op != 0).then_some(m),
                        from_peers: *peers,
                        interface: (*n == 63).then(|| "eth0".to_string()),
                        action: if *accept { FilterAction::Accept } else { FilterAction::Reject },
                    }
                })
                .collect();
            let rules = FilterRules { v4, v6: Vec::new() };
            let compiled = Compiled::new(&rules);
            for (n, from_peer) in probes {
                let p = prefix_of(n);
                proptest::prop_assert_eq!(compiled.verdict(&p, from_peer), rules.verdict(&p, from_peer));
            }
        }
    }

    #[test]
    fn a_run_of_prefix_rules_is_a_set() {
        let rules = FilterRules {
            v4: (0..10)
                .map(|i| FilterRule {
                    prefix: Some(PrefixMatch::new(
                        net(&format!("192.0.{i}.0/24")),
                        MatchOperator::In,
                    )),
                    from_peers: false,
                    interface: None,
                    action: if i == 7 {
                        FilterAction::Accept
                    } else {
                        FilterAction::Reject
                    },
                })
                .collect(),
            v6: Vec::new(),
        };
        let c = Compiled::new(&rules);
        assert!(matches!(c.v4.as_slice(), [Segment::Set(_)]));
        assert_eq!(
            c.verdict(&net("192.0.7.128/25"), true),
            Some(FilterAction::Accept)
        );
        assert_eq!(
            c.verdict(&net("192.0.3.0/24"), true),
            Some(FilterAction::Reject)
        );
        assert_eq!(c.verdict(&net("192.0.0.0/16"), true), None);
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
            let compiled = r.map(|r| Compiled::new(r));
            let got = import_allowed(compiled.as_ref(), Some(&pools), &net(p));
            assert_eq!(got, want, "row {i}");
        }
        assert!(import_allowed(None, None, &net("0.0.0.0/0")));
    }
}
