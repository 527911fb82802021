//! Unit tests of [`super::compute`].

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Node 192.168.1.11/24 on eth0; peer node-b .12 on the same subnet, node-c
/// 192.168.2.21 on another; one IPIP CrossSubnet pool.
fn base() -> DesiredState {
    DesiredState {
        local_node: LocalNode {
            name: "node-a".into(),
            addresses: vec![net("192.168.1.11/24"), net("fd00:1::11/64")],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        nodes: vec![
            PeerNode {
                name: "node-b".into(),
                addresses: vec![ip("192.168.1.12"), ip("fd00:1::12")],
                vteps: vec![ip("10.244.7.0")],
            },
            PeerNode {
                name: "node-c".into(),
                addresses: vec![ip("192.168.2.21")],
                vteps: vec![ip("10.244.9.0")],
            },
        ],
        pools: vec![Pool {
            cidr: net("10.244.0.0/16"),
            ipip: EncapMode::CrossSubnet,
            vxlan: EncapMode::Never,
            nat_outgoing: true,
        }],
        ..Default::default()
    }
}

fn lines(d: &DesiredRoutes) -> Vec<String> {
    d.routes.values().map(|c| c.route.to_string()).collect()
}

fn learned(prefix: &str, nh: &str) -> LearnedRoute {
    LearnedRoute {
        prefix: net(prefix),
        next_hop: ip(nh),
    }
}

#[test]
fn one_route_per_case() {
    let mut s = base();
    s.endpoints.push(WorkloadEndpoint {
        workload_id: "default/pod-1".into(),
        interface: "tort0123456789a".into(),
        addresses: vec![ip("10.244.3.7"), ip("fd00:244::7")],
    });
    s.blocks.push(net("10.244.3.0/26"));
    s.learned.push(learned("10.244.7.0/26", "192.168.1.12"));
    s.learned.push(learned("10.244.9.0/26", "192.168.2.21"));
    let d = compute(&s);
    assert_eq!(d.warnings, vec![]);
    assert_eq!(
        lines(&d),
        vec![
            "blackhole 10.244.3.0/26",
            "10.244.3.7/32 dev tort0123456789a scope link",
            "10.244.7.0/26 via 192.168.1.12 dev eth0",
            "10.244.9.0/26 via 192.168.2.21 dev tunl0 onlink",
            "fd00:244::7/128 dev tort0123456789a scope link",
        ]
    );
}

#[test]
fn vxlan_uses_the_peer_vtep() {
    let mut s = base();
    s.pools[0].ipip = EncapMode::Never;
    s.pools[0].vxlan = EncapMode::Always;
    s.learned.push(learned("10.244.9.0/26", "192.168.2.21"));
    let d = compute(&s);
    assert_eq!(
        lines(&d),
        vec!["10.244.9.0/26 via 10.244.9.0 dev vxlan.tortie onlink"]
    );
    // A node without a VTEP of the family: skipped with a warning.
    s.nodes[1].vteps.clear();
    let d = compute(&s);
    assert!(d.routes.is_empty());
    assert!(matches!(&d.warnings[..], [Warning::NoVtep { node, .. }] if node == "node-c"));
}

#[test]
fn ipv6_blocks_route_direct_on_the_subnet_and_through_vxlan_v6_across() {
    let mut s = base();
    s.pools.push(Pool {
        cidr: net("fd00:244::/48"),
        ipip: EncapMode::Never,
        vxlan: EncapMode::CrossSubnet,
        nat_outgoing: false,
    });
    s.nodes[1].addresses.push(ip("fd00:2::21"));
    s.nodes[1].vteps.push(ip("fd00:244::1:0"));
    s.blocks.push(net("fd00:244::40/122"));
    s.learned.push(learned("fd00:244::80/122", "fd00:1::12"));
    s.learned.push(learned("fd00:244::c0/122", "fd00:2::21"));
    let d = compute(&s);
    assert_eq!(d.warnings, vec![]);
    assert_eq!(
        lines(&d),
        vec![
            "blackhole fd00:244::40/122",
            "fd00:244::80/122 via fd00:1::12 dev eth0",
            "fd00:244::c0/122 via fd00:244::1:0 dev vxlan-v6.tortie onlink",
        ]
    );
}

#[test]
fn priority_local_workload_beats_direct_beats_tunnel_beats_blackhole() {
    let mut s = base();
    // The same /32 from a workload here, learned from a same-subnet peer,
    // and learned from a cross-subnet peer: the workload wins.
    s.endpoints.push(WorkloadEndpoint {
        workload_id: "w".into(),
        interface: "tortaaaaaaaaaaa".into(),
        addresses: vec![ip("10.244.3.7")],
    });
    s.learned.push(learned("10.244.3.7/32", "192.168.2.21"));
    s.learned.push(learned("10.244.3.7/32", "192.168.1.12"));
    // An own block also advertised by a cross-subnet peer: tunnel wins, and
    // the overlap is reported.
    s.blocks.push(net("10.244.5.0/26"));
    s.learned.push(learned("10.244.5.0/26", "192.168.2.21"));
    // One prefix from a tunnel peer and from a same-subnet peer: direct wins.
    s.learned.push(learned("10.244.6.0/26", "192.168.2.21"));
    s.learned.push(learned("10.244.6.0/26", "192.168.1.12"));
    let d = compute(&s);
    let get = |p: &str| d.routes[&net(p)].clone();
    assert_eq!(get("10.244.3.7/32").source, Source::LocalWorkload);
    assert_eq!(get("10.244.5.0/26").source, Source::Tunnel);
    assert_eq!(
        get("10.244.6.0/26").route.to_string(),
        "10.244.6.0/26 via 192.168.1.12 dev eth0"
    );
    assert!(d.warnings.iter().any(|w| matches!(
        w,
        Warning::OverlappingBlocks { prefix, .. } if *prefix == net("10.244.5.0/26")
    )));
    assert!(d.warnings.iter().any(|w| matches!(
        w,
        Warning::ConflictingNextHops { kept, ignored, .. }
            if *kept == ip("192.168.1.12") && *ignored == ip("192.168.2.21")
    )));
}

#[test]
fn bad_items_are_skipped_with_a_warning_and_the_rest_is_programmed() {
    let mut s = base();
    s.learned.push(learned("10.244.20.0/26", "192.168.9.9")); // unknown node
    s.learned.push(learned("10.244.21.0/26", "192.168.1.11")); // ourselves
    s.learned.push(learned("10.244.7.0/26", "192.168.1.12")); // fine
    s.endpoints.push(WorkloadEndpoint {
        workload_id: "bad".into(),
        interface: "this-name-is-way-too-long".into(),
        addresses: vec![ip("10.244.3.9")],
    });
    s.pools.push(Pool {
        cidr: net("192.168.0.0/16"),
        ipip: EncapMode::Always,
        vxlan: EncapMode::Never,
        nat_outgoing: false,
    });
    let d = compute(&s);
    assert_eq!(lines(&d), vec!["10.244.7.0/26 via 192.168.1.12 dev eth0"]);
    let text: Vec<String> = d.warnings.iter().map(|w| w.to_string()).collect();
    for needle in [
        "192.168.9.9",
        "10.244.21.0/26",
        "this-name-is-way-too-long",
        "pool 192.168.0.0/16",
    ] {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "{needle} not in {text:?}"
        );
    }
    assert_eq!(d.warnings.len(), 4, "{text:?}");
}

#[test]
fn overlapping_blocks_of_two_peers_are_both_programmed_and_reported() {
    let mut s = base();
    s.learned.push(learned("10.244.8.0/25", "192.168.1.12"));
    s.learned.push(learned("10.244.8.0/26", "192.168.2.21"));
    let d = compute(&s);
    assert_eq!(d.routes.len(), 2);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].to_string().contains("10.244.8.0/25"));
}

#[test]
fn borrowed_addresses_route_like_learned_host_routes() {
    let mut s = base();
    s.blocks.push(net("10.244.3.0/26"));
    s.borrowed.push(BorrowedAddress {
        address: ip("10.244.3.40"),
        node: ip("192.168.2.21"),
    });
    let d = compute(&s);
    assert_eq!(d.warnings, vec![]);
    assert_eq!(
        lines(&d),
        vec![
            "blackhole 10.244.3.0/26",
            "10.244.3.40/32 via 192.168.2.21 dev tunl0 onlink"
        ]
    );
}

#[test]
fn host_prefix_node_warns_and_tunnels_everything() {
    let mut s = base();
    s.local_node.addresses = vec![net("192.168.1.11/32")];
    s.learned.push(learned("10.244.7.0/26", "192.168.1.12"));
    let d = compute(&s);
    assert_eq!(
        lines(&d),
        vec!["10.244.7.0/26 via 192.168.1.12 dev tunl0 onlink"]
    );
    assert!(
        matches!(&d.warnings[..], [Warning::EncapWarning { message }]
        if message.contains("192.168.1.11/32"))
    );
}

#[test]
fn no_encap_across_subnets_programs_nothing_and_says_so() {
    let mut s = base();
    s.pools[0].ipip = EncapMode::Never;
    s.learned.push(learned("10.244.9.0/26", "192.168.2.21"));
    let d = compute(&s);
    assert!(d.routes.is_empty());
    assert!(matches!(&d.warnings[..], [Warning::OffSubnetDirect { .. }]));
}

#[test]
fn both_encaps_on_a_pool_skip_its_routes_with_the_reason() {
    let mut s = base();
    s.pools[0].vxlan = EncapMode::Always;
    s.learned.push(learned("10.244.9.0/26", "192.168.2.21"));
    let d = compute(&s);
    assert!(d.routes.is_empty());
    assert!(d.warnings[0].to_string().contains("at most one"));
}

#[test]
fn ifname_validation() {
    for ok in ["tort0123456789a", "eth0", "vxlan.tortie"] {
        assert!(valid_ifname(ok), "{ok}");
    }
    for bad in ["", "a/b", "a b", "0123456789abcdef", "..", "a:b"] {
        assert!(!valid_ifname(bad), "{bad}");
    }
}

#[test]
fn next_hop_of_the_other_family_is_reported_not_programmed() {
    let mut s = base();
    // A v6 prefix whose next hop is node-b's v4 address.
    s.learned.push(learned("fd00:244:7::/122", "192.168.1.12"));
    let d = compute(&s);
    assert!(d.routes.is_empty());
    let text = d.warnings[0].to_string();
    assert!(
        text.contains("fd00:244:7::/122") && text.contains("different IP families"),
        "{text}"
    );
}

#[test]
fn a_route_through_a_router_on_the_local_subnet_is_programmed_direct() {
    // A top-of-rack router (no node) passed on a block of a node elsewhere.
    let mut s = base();
    s.learned.push(learned("10.244.30.0/26", "192.168.1.1"));
    s.learned.push(learned("10.244.31.0/26", "192.168.7.1")); // off-subnet: skipped
    let d = compute(&s);
    assert_eq!(lines(&d), vec!["10.244.30.0/26 via 192.168.1.1 dev eth0"]);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0]
        .to_string()
        .contains("nor on the local subnet"));
}

mod update {
    //! [`super::update`] against [`super::compute`] of the whole state.

    use super::*;
    use proptest::prelude::*;

    /// Prefixes that overlap each other, own blocks, local pods and
    /// borrowed addresses, in both families.
    const PREFIXES: &[&str] = &[
        "10.244.3.0/26", // an own block
        "10.244.3.7/32", // a local pod in it
        "10.244.7.0/26", // node-b's
        "10.244.7.0/24", // overlaps it
        "10.244.7.5/32", // a host route inside both
        "10.244.9.0/26", // node-c's (another subnet)
        "10.244.9.0/25", // overlaps it
        "10.250.0.0/26", // outside the pool
        "fd00:244:7::/122",
        "fd00:244:7::/120",
    ];
    /// Next hops: nodes, this node, a router on the subnet, an unknown one.
    const HOPS: &[&str] = &[
        "192.168.1.12",
        "192.168.2.21",
        "192.168.1.11",
        "192.168.1.1",
        "192.168.9.9",
        "fd00:1::12",
    ];

    fn state(vxlan: bool) -> DesiredState {
        let mut s = base();
        s.blocks.push(net("10.244.3.0/26"));
        s.endpoints.push(WorkloadEndpoint {
            workload_id: "default/pod-1".into(),
            interface: "tort0123456789a".into(),
            addresses: vec![ip("10.244.3.7")],
        });
        s.borrowed.push(BorrowedAddress {
            address: ip("10.244.3.9"),
            node: ip("192.168.1.12"),
        });
        s.pools.push(Pool {
            cidr: net("fd00:244::/48"),
            ipip: EncapMode::Never,
            vxlan: EncapMode::Never,
            nat_outgoing: false,
        });
        if vxlan {
            s.pools[0].ipip = EncapMode::Never;
            s.pools[0].vxlan = EncapMode::CrossSubnet;
        }
        s
    }

    fn same(a: &DesiredRoutes, b: &DesiredRoutes) -> Result<(), TestCaseError> {
        prop_assert_eq!(&a.routes, &b.routes);
        let mut wa: Vec<String> = a.warnings.iter().map(|w| format!("{w:?}")).collect();
        let mut wb: Vec<String> = b.warnings.iter().map(|w| format!("{w:?}")).collect();
        wa.sort();
        wb.sort();
        prop_assert_eq!(wa, wb);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any sequence of learned-route changes, applied one batch at a
        /// time with `update`, gives what `compute` gives for the state.
        #[test]
        fn update_agrees_with_compute(
            vxlan: bool,
            initial in prop::collection::vec((0..PREFIXES.len(), 0..HOPS.len()), 0..6),
            steps in prop::collection::vec(
                prop::collection::vec((0..PREFIXES.len(), prop::option::of(0..HOPS.len())), 1..4),
                1..8,
            ),
        ) {
            let mut s = state(vxlan);
            for (p, h) in initial {
                // Several next hops for one prefix are allowed here (the
                // conflict warning), not through set_learned.
                s.learned.push(learned(PREFIXES[p], HOPS[h]));
            }
            let mut routes = compute(&s);
            for step in steps {
                let mut changed = BTreeSet::new();
                for (p, h) in step {
                    let prefix = net(PREFIXES[p]);
                    s.set_learned(prefix, h.map(|h| ip(HOPS[h])));
                    changed.insert(prefix);
                }
                let before = routes.routes.clone();
                let delta = update(&s, &mut routes, &changed);
                same(&routes, &compute(&s))?;
                // The delta is exactly the difference.
                for (dst, old, new) in &delta {
                    prop_assert_eq!(before.get(dst).map(|c| &c.route), old.as_ref());
                    prop_assert_eq!(routes.routes.get(dst).map(|c| &c.route), new.as_ref());
                    prop_assert_ne!(old, new);
                }
                for dst in before.keys().chain(routes.routes.keys()) {
                    let moved = before.get(dst).map(|c| &c.route) != routes.routes.get(dst).map(|c| &c.route);
                    prop_assert_eq!(moved, delta.iter().any(|(d, _, _)| d == dst), "{}", dst);
                }
            }
        }
    }

    #[test]
    fn set_learned_replaces_and_keeps_order() {
        let mut s = base();
        s.set_learned(net("10.244.9.0/26"), Some(ip("192.168.2.21")));
        s.set_learned(net("10.244.7.0/26"), Some(ip("192.168.1.12")));
        s.set_learned(net("10.244.7.0/26"), Some(ip("192.168.1.1")));
        assert_eq!(
            s.learned,
            vec![
                learned("10.244.7.0/26", "192.168.1.1"),
                learned("10.244.9.0/26", "192.168.2.21")
            ]
        );
        s.set_learned(net("10.244.7.0/26"), None);
        assert_eq!(s.learned, vec![learned("10.244.9.0/26", "192.168.2.21")]);
    }

    #[test]
    fn a_host_prefix_warning_needs_no_route() {
        let mut s = base();
        s.local_node.addresses = vec![net("192.168.1.11/32")];
        let d = compute(&s);
        assert!(d.routes.is_empty());
        assert!(
            matches!(&d.warnings[..], [Warning::EncapWarning { message }] if message.contains("192.168.1.11/32")),
            "{:?}",
            d.warnings
        );
    }
}
