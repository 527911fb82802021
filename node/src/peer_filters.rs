//! Pure: a BGPPeer's `filters` (names of BGPFilter resources) -> the
//! speaker's import and export rules for its sessions, as Calico's BIRD
//! configuration runs them: each filter's function in the order the
//! BGPPeer lists them, the first matching rule deciding; a route no rule
//! matches gets the default (Tortie's own import and export policy).
//!
//! Where Tortie departs from Calico, for safety:
//!
//! - **A filter that does not exist.** Calico's template skips it: the
//!   peer then gets (and gives) everything the missing filter might have
//!   rejected. Tortie rejects every route both ways on that peer's
//!   sessions until the filter exists, and reports the BGPPeer's
//!   `spec.filters[i]` as a problem. The sessions stay up (a filter
//!   deleted and made again does not flap them beyond the routes).
//! - **A rule with `interface`** matches no route (the speaker holds
//!   announcements, not kernel routes): said as a problem on the BGPPeer.
//!
//! And Tortie's own default for a router that takes pool aggregates
//! ([`keep_blocks_back`]): after the user's rules, prefixes inside a pool
//! and longer than it (the blocks, borrowed addresses) are not sent.

use ipnet::IpNet;
use tortie_config::filter::{FilterAction, FilterRule, FilterRules, MatchOperator, PrefixMatch};
use tortie_config::resources::BGPPeer;

use crate::cluster::Cluster;
use crate::peers::Problem;

/// The rules of one BGPPeer's sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerFilters {
    pub import: FilterRules,
    pub export: FilterRules,
}

/// The rules of BGPPeer `name`'s filters; problems (a missing filter, an
/// `interface` rule) go to `problems`.
pub fn compile(
    cluster: &Cluster,
    name: &str,
    peer: &BGPPeer,
    problems: &mut Vec<Problem>,
) -> PeerFilters {
    let resource = format!("BGPPeer/{name}");
    let mut out = PeerFilters::default();
    let mut missing = false;
    for (i, filter) in peer.spec.filters.iter().enumerate() {
        let field = format!("spec.filters[{i}]");
        let Some(f) = cluster.bgp_filters.get(filter) else {
            problems.push(Problem::new(
                &resource,
                &field,
                format!(
                    "BGPFilter/{filter} does not exist: nothing is sent to or accepted from \
                     this peer until it does (Calico would skip it, and advertise and accept \
                     what it may reject)"
                ),
            ));
            missing = true;
            continue;
        };
        for (at, glob) in f.spec.interface_rules() {
            problems.push(Problem::new(
                &resource,
                &field,
                format!(
                    "BGPFilter/{filter} {at}: {glob:?}: matches no route here (Tortie's speaker \
                     holds announcements, not kernel routes with an interface); the rule is \
                     skipped"
                ),
            ));
        }
        out.import.extend(f.spec.import_rules());
        out.export.extend(f.spec.export_rules());
    }
    if missing {
        return PeerFilters {
            import: FilterRules::reject_all(),
            export: FilterRules::reject_all(),
        };
    }
    out
}

/// Tortie's default for a router that takes pool aggregates: nothing
/// inside a pool and longer than it, so that the router gets each pool
/// as one aggregate and no block, and still the node's other prefixes
/// (service routes). Rules by family.
pub fn keep_blocks_back(pools: &[IpNet]) -> FilterRules {
    let mut out = FilterRules::default();
    for pool in pools.iter().filter(|p| p.prefix_len() < p.max_prefix_len()) {
        let mut m = PrefixMatch::new(*pool, MatchOperator::In);
        m.min_len = pool.prefix_len() + 1;
        let rule = FilterRule {
            prefix: Some(m),
            from_peers: false,
            interface: None,
            action: FilterAction::Reject,
        };
        match pool {
            IpNet::V4(_) => out.v4.push(rule),
            IpNet::V6(_) => out.v6.push(rule),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use tortie_config::resources::{BGPFilterSpec, BGPPeerSpec, Object};

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn filter(yaml_rules: &str) -> BGPFilterSpec {
        let text = format!(
            "apiVersion: tortie.io/v1\nkind: BGPFilter\nmetadata: {{name: f}}\nspec:\n{yaml_rules}"
        );
        let loaded = tortie_config::resources::load_documents(&text).unwrap();
        match loaded.resources.into_iter().next() {
            Some(tortie_config::resources::Resource::BGPFilter(f)) => f.spec,
            other => panic!("{other:?}"),
        }
    }

    fn peer(filters: &[&str]) -> BGPPeer {
        let spec: BGPPeerSpec = serde_json::from_value(serde_json::json!({
            "peerIP": "192.168.1.254",
            "asNumber": 65000,
            "filters": filters,
        }))
        .unwrap();
        Object::new("tor", spec)
    }

    #[test]
    fn filters_run_in_the_order_the_peer_lists_them() {
        let mut cluster = Cluster::default();
        let first = filter(
            "  exportV4:\n    - {action: Reject, matchOperator: Equal, cidr: 10.244.1.0/26}\n",
        );
        let second = filter(
            "  exportV4:\n    - {action: Accept, matchOperator: In, cidr: 10.244.0.0/16}\n  importV4:\n    - {action: Reject}\n",
        );
        cluster
            .bgp_filters
            .insert("a".into(), Object::new("a", first));
        cluster
            .bgp_filters
            .insert("b".into(), Object::new("b", second));
        let mut problems = Vec::new();
        let f = compile(&cluster, "tor", &peer(&["a", "b"]), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(f.export.v4.len(), 2);
        assert_eq!(
            f.export.verdict(&net("10.244.1.0/26"), false),
            Some(FilterAction::Reject)
        );
        assert_eq!(
            f.export.verdict(&net("10.244.2.0/26"), false),
            Some(FilterAction::Accept)
        );
        assert_eq!(
            f.import.verdict(&net("0.0.0.0/0"), true),
            Some(FilterAction::Reject)
        );
        // The other order: b's Accept comes first.
        let f = compile(&cluster, "tor", &peer(&["b", "a"]), &mut problems);
        assert_eq!(
            f.export.verdict(&net("10.244.1.0/26"), false),
            Some(FilterAction::Accept)
        );
    }

    #[test]
    fn a_missing_filter_rejects_everything_and_is_a_problem() {
        let mut cluster = Cluster::default();
        let allow = filter("  exportV4:\n    - {action: Accept}\n");
        cluster
            .bgp_filters
            .insert("a".into(), Object::new("a", allow));
        let mut problems = Vec::new();
        let f = compile(&cluster, "tor", &peer(&["a", "gone"]), &mut problems);
        assert_eq!(f.export, FilterRules::reject_all());
        assert_eq!(f.import, FilterRules::reject_all());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].resource, "BGPPeer/tor");
        assert_eq!(problems[0].field, "spec.filters[1]");
        assert!(problems[0]
            .message
            .contains("BGPFilter/gone does not exist"));
    }

    #[test]
    fn an_interface_rule_is_named() {
        let mut cluster = Cluster::default();
        let f = filter("  exportV4:\n    - {action: Reject, interface: '*.calico'}\n");
        cluster
            .bgp_filters
            .insert("calico".into(), Object::new("calico", f));
        let mut problems = Vec::new();
        let f = compile(&cluster, "tor", &peer(&["calico"]), &mut problems);
        assert_eq!(f.export.verdict(&net("10.0.0.0/8"), true), None);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains(
                "BGPFilter/calico spec.exportV4[0].interface: \"*.calico\": matches no route"
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn blocks_are_kept_back_not_the_pool_nor_the_rest() {
        let rules = keep_blocks_back(&[
            net("10.244.0.0/16"),
            net("fd00:10:244::/48"),
            net("10.9.9.9/32"),
        ]);
        assert_eq!(
            (rules.v4.len(), rules.v6.len()),
            (1, 1),
            "a /32 pool has nothing inside"
        );
        assert_eq!(rules.verdict(&net("10.244.0.0/16"), false), None);
        assert_eq!(
            rules.verdict(&net("10.244.3.0/26"), false),
            Some(FilterAction::Reject)
        );
        assert_eq!(rules.verdict(&net("10.96.0.0/12"), false), None);
        assert_eq!(
            rules.verdict(&net("fd00:10:244::40/122"), false),
            Some(FilterAction::Reject)
        );
    }
}
