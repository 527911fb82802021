//! Per-peer filters in the RIB: export rules per class (peers with equal
//! rules share a group), an accepting rule lifting `local_only`, import
//! rules before `import_within`, and a router taking aggregates whose
//! rules keep the blocks back.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use tortie_config::filter::{FilterAction, FilterRule, FilterRules, MatchOperator, PrefixMatch};

use super::tests::{attrs_from, drain, local, peer, pfx};
use super::*;
use crate::route::{AsSegment, NextHop};

fn rule(op: MatchOperator, cidr: &str, action: FilterAction) -> FilterRule {
    FilterRule {
        prefix: Some(PrefixMatch::new(pfx(cidr), op)),
        from_peers: false,
        interface: None,
        action,
    }
}

fn v4(rules: Vec<FilterRule>) -> FilterRules {
    FilterRules {
        v4: rules,
        v6: Vec::new(),
    }
}

fn sent(rib: &mut Rib, id: PeerId) -> Vec<Prefix> {
    let mut held = BTreeMap::new();
    drain(rib, id, &mut held);
    held.into_keys().collect()
}

fn from_tor() -> PathAttrs {
    let mut a = PathAttrs::local(NextHop::V4(Ipv4Addr::new(172, 30, 0, 9)));
    a.as_path = vec![AsSegment::Sequence(vec![65000])];
    a
}

#[test]
fn export_rules_reject_per_peer_and_equal_rules_share_a_group() {
    let mut rib = Rib::new(local(false));
    let no_block_1 = v4(vec![rule(
        MatchOperator::Equal,
        "10.244.1.0/26",
        FilterAction::Reject,
    )]);
    // Peers 9 and 10: routers with the same filter; 11: none.
    for id in [9u8, 10] {
        let p = peer(id, 65000, false).filtered(&FilterRules::default(), &no_block_1.clone());
        rib.peer_up(u32::from(id), p);
    }
    rib.peer_up(11, peer(11, 65000, false));
    rib.local_update(pfx("10.244.1.0/26"), attrs_from(1));
    rib.local_update(pfx("10.244.2.0/26"), attrs_from(1));
    rib.decide(false);
    assert_eq!(rib.grouped.len(), 2, "one group for 9 and 10, one for 11");
    assert_eq!(sent(&mut rib, 9), vec![pfx("10.244.2.0/26")]);
    assert_eq!(sent(&mut rib, 10), vec![pfx("10.244.2.0/26")]);
    assert_eq!(sent(&mut rib, 11).len(), 2);
    // A peer coming up later with the same rules joins their group and is
    // sent what they hold.
    let p = peer(12, 65000, false).filtered(&FilterRules::default(), &no_block_1);
    rib.peer_up(12, p);
    rib.decide(false);
    assert_eq!(rib.grouped.len(), 2);
    assert_eq!(sent(&mut rib, 12), vec![pfx("10.244.2.0/26")]);
}

#[test]
fn an_accepting_export_rule_sends_a_learned_route_to_a_router() {
    let mut rib = Rib::new(local(false));
    let mut from_peers = rule(MatchOperator::In, "10.244.0.0/16", FilterAction::Accept);
    from_peers.from_peers = true;
    let mut tor = peer(9, 65000, false).filtered(&FilterRules::default(), &v4(vec![from_peers]));
    tor.export.local_only = true;
    rib.peer_up(9, tor);
    rib.peer_up(2, peer(2, 64512, false));
    rib.update(
        2,
        attrs_from(2),
        &[pfx("10.244.7.0/26"), pfx("192.0.2.0/24")],
    )
    .unwrap();
    rib.local_update(pfx("10.244.1.0/26"), attrs_from(1));
    rib.decide(false);
    // Our block (no rule: local_only allows it), the other node's block
    // (accepted, learned from a peer), not the learned 192.0.2.0/24.
    assert_eq!(
        sent(&mut rib, 9),
        vec![pfx("10.244.1.0/26"), pfx("10.244.7.0/26")]
    );
}

#[test]
fn import_rules_decide_before_the_pools() {
    let mut rib = Rib::new(local(false));
    let rules = v4(vec![
        rule(MatchOperator::Equal, "10.244.9.0/26", FilterAction::Reject),
        rule(MatchOperator::Equal, "0.0.0.0/0", FilterAction::Accept),
    ]);
    let tor = peer(9, 65000, false)
        .importing_only(Some(vec![pfx("10.244.0.0/16")]))
        .filtered(&rules, &FilterRules::default());
    rib.peer_up(9, tor);
    let prefixes = [
        pfx("10.244.9.0/26"),
        pfx("10.244.8.0/26"),
        pfx("0.0.0.0/0"),
        pfx("198.51.100.0/24"),
    ];
    rib.update(9, from_tor(), &prefixes).unwrap();
    let changes = rib.decide(true);
    let mut got: Vec<Prefix> = changes.iter().map(|c| c.prefix).collect();
    got.sort();
    assert_eq!(got, vec![pfx("0.0.0.0/0"), pfx("10.244.8.0/26")]);
    assert_eq!(rib.apply_then_count(9).unwrap().received(), (4, 2));
    // Withdrawing a rejected prefix is quiet.
    rib.withdraw(9, pfx("10.244.9.0/26"));
    assert!(rib.decide(true).is_empty());
    assert_eq!(rib.apply_then_count(9).unwrap().received(), (3, 2));
}

#[test]
fn a_router_taking_aggregates_gets_pools_and_other_routes_not_blocks() {
    let mut rib = Rib::new(local(false));
    // tortie-node's rule for such a router: nothing more specific than a
    // pool.
    let mut inside = PrefixMatch::new(pfx("10.244.0.0/16"), MatchOperator::In);
    inside.min_len = 17;
    let keep_blocks = v4(vec![FilterRule {
        prefix: Some(inside),
        from_peers: false,
        interface: None,
        action: FilterAction::Reject,
    }]);
    let mut router = peer(9, 65000, false).filtered(&FilterRules::default(), &keep_blocks);
    router.export.local_only = true;
    router.export.aggregates = true;
    rib.peer_up(9, router);
    rib.peer_up(2, peer(2, 64512, false));
    let mut pool = attrs_from(1);
    pool.atomic_aggregate = true;
    rib.local_update(pfx("10.244.0.0/16"), pool);
    rib.local_update(pfx("10.244.1.0/26"), attrs_from(1));
    rib.local_update(pfx("10.96.0.0/12"), attrs_from(1));
    rib.decide(false);
    assert_eq!(
        sent(&mut rib, 9),
        vec![pfx("10.96.0.0/12"), pfx("10.244.0.0/16")],
        "the service range and the pool"
    );
    assert_eq!(
        sent(&mut rib, 2),
        vec![pfx("10.96.0.0/12"), pfx("10.244.1.0/26")],
        "a node never gets the aggregate"
    );
}
