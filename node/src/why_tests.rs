use std::sync::Arc;

use bgp_speaker::explain::{Announced, PathView, PeerView as SpeakerPeer, RuleHit};
use bgp_speaker::route::{AsSegment, NextHop, PathAttrs};
use felix::desired::{LearnedRoute, LocalNode, PeerNode, Pool, WorkloadEndpoint};
use felix::route::KernelRoute;
use felix::written::WriteKind;
use tortie_config::filter::FilterAction;

use super::*;
use bgp_speaker::rib::best_path::RejectReason;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn targets_parse_or_say_what_is_wrong() {
    assert_eq!(
        parse_target("10.244.1.0/26"),
        Ok(Target::Prefix(net("10.244.1.0/26")))
    );
    assert_eq!(
        parse_target(" 10.244.1.5 "),
        Ok(Target::Address(ip("10.244.1.5")))
    );
    assert_eq!(
        parse_target("default/web-0"),
        Ok(Target::Pod {
            namespace: "default".into(),
            name: "web-0".into()
        })
    );
    assert_eq!(
        parse_target("10.244.1.5/26").unwrap_err(),
        "10.244.1.5/26: host bits set; the prefix is 10.244.1.0/26 (or give the address 10.244.1.5)"
    );
    for bad in [
        "web",
        "a/b/c",
        "Default/web",
        "/web",
        "ns/",
        "10.244.1.0/33",
    ] {
        let e = parse_target(bad).unwrap_err();
        assert!(e.contains("is not a prefix"), "{bad}: {e}");
    }
    assert!(parse_target("").unwrap_err().starts_with("no target"));
}

#[test]
fn query_values_are_decoded() {
    assert_eq!(percent_decode("default%2Fweb"), "default/web");
    assert_eq!(percent_decode("fd00%3A%3A%2f64"), "fd00::/64");
    assert_eq!(percent_decode("a+b%"), "a b%", "a lone % stays");
    assert_eq!(percent_decode("%zz%4"), "%zz%4");
}

fn filter(json: serde_json::Value) -> BGPFilterSpec {
    serde_json::from_value(json).unwrap()
}

#[test]
fn rules_are_named_by_filter_list_and_index() {
    let mut filters = BTreeMap::new();
    filters.insert(
        "a".to_string(),
        filter(serde_json::json!({"importV4": [{"action": "Reject", "matchOperator": "In", "cidr": "10.0.0.0/8"}]})),
    );
    filters.insert(
        "b".to_string(),
        filter(serde_json::json!({"importV4": [{"action": "Accept"}, {"action": "Reject"}], "exportV6": [{"action": "Reject"}]})),
    );
    let peer: BGPPeerSpec = serde_json::from_value(serde_json::json!({
        "peerIP": "192.168.1.254", "asNumber": 65000, "filters": ["a", "b"],
        "advertisePoolAggregates": true,
    }))
    .unwrap();
    let n = rule_names(&peer, &filters);
    assert_eq!(
        n.import_v4,
        [
            "BGPFilter/a importV4[0]",
            "BGPFilter/b importV4[0]",
            "BGPFilter/b importV4[1]"
        ]
    );
    assert_eq!(n.export_v6, ["BGPFilter/b exportV6[0]"]);
    assert!(n.export_v4.is_empty());
    assert!(n.export_after.unwrap().contains("pool aggregates"));
    let gone: BGPPeerSpec = serde_json::from_value(serde_json::json!({
        "peerIP": "192.168.1.254", "asNumber": 65000, "filters": ["a", "gone"],
    }))
    .unwrap();
    let n = rule_names(&gone, &filters);
    assert_eq!(
        n.import_v4,
        ["BGPFilter/gone does not exist: every route is rejected until it does"]
    );
}

/// Node n1 (192.168.1.11/24) with a local pod, its block, a block of n2
/// learned over BGP (same subnet), and a CrossSubnet IPIP pool.
fn state() -> DesiredState {
    DesiredState {
        local_node: LocalNode {
            name: "n1".into(),
            addresses: vec![net("192.168.1.11/24")],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        nodes: vec![PeerNode {
            name: "n2".into(),
            addresses: vec![ip("192.168.1.12")],
            vteps: vec![],
        }],
        endpoints: vec![WorkloadEndpoint {
            workload_id: "default/web".into(),
            interface: "tort00000000001".into(),
            addresses: vec![ip("10.244.1.2")],
        }],
        blocks: vec![net("10.244.1.0/26")],
        learned: vec![LearnedRoute {
            prefix: net("10.244.2.0/26"),
            next_hop: ip("192.168.1.12"),
        }],
        pools: vec![Pool {
            cidr: net("10.244.0.0/16"),
            ipip: tortie_ipip::EncapMode::CrossSubnet,
            vxlan: tortie_ipip::EncapMode::Never,
            nat_outgoing: false,
        }],
        ..DesiredState::default()
    }
}

fn store() -> StoreFacts {
    StoreFacts {
        blocks: vec![
            (net("10.244.1.0/26"), Some("n1".into())),
            (net("10.244.2.0/26"), Some("n2".into())),
        ],
        endpoints: vec![PodView {
            namespace: "default".into(),
            name: "db".into(),
            node: "n2".into(),
            interface: "tort0000000000a".into(),
            addresses: vec![net("10.244.2.9/32")],
        }],
        pools: vec![(
            "default".into(),
            net("10.244.0.0/16"),
            "CrossSubnet".into(),
            "Never".into(),
        )],
    }
}

fn path(peer: &str, as_path: Vec<u32>, best: bool, lost: Option<RejectReason>) -> PathView {
    let mut attrs = PathAttrs::local(NextHop::V4("192.168.1.12".parse().unwrap()));
    if !as_path.is_empty() {
        attrs.as_path = vec![AsSegment::Sequence(as_path)];
    }
    PathView {
        peer: Some(ip(peer)),
        router_id: None,
        ebgp: false,
        attrs: Arc::new(attrs),
        best,
        stale: false,
        lost,
    }
}

fn peer(addr: &str, announced: Announced, import: Option<RuleHit>) -> SpeakerPeer {
    SpeakerPeer {
        address: ip(addr),
        established: true,
        announced,
        import_allowed: import
            .as_ref()
            .is_none_or(|h| h.action == FilterAction::Accept),
        import_rule: import,
        import_within: None,
        export_rule: None,
        advertised: false,
    }
}

fn status_peer(addr: &str, source: &str, node: Option<&str>) -> PeerView {
    PeerView {
        address: ip(addr),
        kind: String::new(),
        source: source.into(),
        node: node.map(String::from),
        asn: 0,
        rr_client: false,
        state: bgp_speaker::SessionState::Established,
        since_unix: 0,
        uptime_secs: 0,
        prefixes_received: 0,
        prefixes_accepted: 0,
        prefixes_advertised: 0,
        hold_time: None,
        last_error: None,
        bfd: None,
    }
}

#[test]
fn a_remote_block_with_its_paths_encapsulation_and_rules() {
    let d = state();
    let claims = felix::desired::compute(&d);
    let installed = vec![InstalledRoute {
        route: KernelRoute::via(net("10.244.2.0/26"), ip("192.168.1.12"), "eth0", false),
        metric: None,
    }];
    let e = PrefixExplain {
        asked: net("10.244.2.0/26"),
        prefix: Some(net("10.244.2.0/26")),
        paths: vec![
            path("192.168.1.12", vec![], true, None),
            path(
                "192.168.1.254",
                vec![65000],
                false,
                Some(RejectReason::LongerAsPath),
            ),
        ],
        peers: vec![
            peer("192.168.1.12", Announced::Accepted, None),
            peer(
                "192.168.1.254",
                Announced::Accepted,
                Some(RuleHit {
                    index: 1,
                    action: FilterAction::Accept,
                    rule: "Accept In 10.244.0.0/16".into(),
                }),
            ),
        ],
    };
    let peers = [
        status_peer("192.168.1.12", "mesh", Some("n2")),
        status_peer("192.168.1.254", "BGPPeer/tor", None),
    ];
    let mut names = BTreeMap::new();
    names.insert(
        ip("192.168.1.254"),
        RuleNames {
            import_v4: vec![
                "BGPFilter/x importV4[0]".into(),
                "BGPFilter/y importV4[0]".into(),
            ],
            ..RuleNames::default()
        },
    );
    let written = LastWrite {
        at_unix_ms: 5,
        kind: WriteKind::Added,
    };
    let f = Facts {
        desired: Some(&d),
        claims: Some(&claims),
        installed: &installed,
        peers: &peers,
        bgp: Ok(&e),
        names: &names,
        store: &store(),
        last_write: Some(written),
    };
    let r = report(net("10.244.2.0/26"), &f);
    assert_eq!(r.owner.kind, "block");
    assert_eq!(r.owner.summary, "block 10.244.2.0/26 of node n2");
    assert_eq!(r.owner.pool.as_deref(), Some("default (10.244.0.0/16)"));
    assert_eq!(r.kernel.state, "installed");
    assert_eq!(
        r.kernel.wanted.as_deref(),
        Some("10.244.2.0/26 via 192.168.1.12 dev eth0")
    );
    assert_eq!(r.kernel.last_write, Some(written));
    assert!(r.kernel.why.as_deref().unwrap().contains("node n2"));
    let x = r.encap.unwrap();
    assert_eq!(
        (
            x.decision.as_str(),
            x.same_subnet,
            x.next_hop_node.as_deref()
        ),
        ("Direct", true, Some("n2"))
    );
    assert_eq!(x.ipip_mode, "CrossSubnet");
    let bgp = r.bgp.unwrap();
    let lines: Vec<_> = bgp
        .paths
        .iter()
        .map(|p| (p.from.as_str(), p.as_path.as_str(), p.lost.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            ("192.168.1.12 (node n2)", "(empty)", None),
            (
                "192.168.1.254 (BGPPeer/tor)",
                "65000",
                Some("longer AS_PATH".into())
            ),
        ]
    );
    assert_eq!(
        r.filters,
        ["import from 192.168.1.254 (BGPPeer/tor): BGPFilter/y importV4[0]: Accept In 10.244.0.0/16"]
    );
}

#[test]
fn a_local_pod_an_unused_address_and_nothing() {
    let d = state();
    let claims = felix::desired::compute(&d);
    let names = BTreeMap::new();
    let s = store();
    let f = |installed: &'static [InstalledRoute]| Facts {
        desired: Some(&d),
        claims: Some(&claims),
        installed,
        peers: &[],
        bgp: Err("the BGP speaker is not running yet".into()),
        names: &names,
        store: &s,
        last_write: None,
    };
    let r = report(net("10.244.1.2/32"), &f(&[]));
    assert_eq!(r.owner.kind, "local-pod");
    assert_eq!(r.owner.summary, "local pod default/web on tort00000000001");
    assert_eq!(r.owner.block, Some(net("10.244.1.0/26")));
    assert_eq!(r.kernel.prefix, Some(net("10.244.1.2/32")));
    assert_eq!(r.kernel.state, "missing");
    assert!(r.encap.is_none(), "a local pod has no next hop");
    assert_eq!(
        r.bgp_error.as_deref(),
        Some("the BGP speaker is not running yet")
    );
    // An unused address of our block: the blackhole carries it.
    let r = report(net("10.244.1.50/32"), &f(&[]));
    assert_eq!(r.owner.kind, "own-block");
    assert_eq!(r.kernel.prefix, Some(net("10.244.1.0/26")));
    assert_eq!(r.kernel.wanted.as_deref(), Some("blackhole 10.244.1.0/26"));
    // A pod of n2, through n2's block.
    let r = report(net("10.244.2.9/32"), &f(&[]));
    assert_eq!(
        r.owner.summary,
        "block 10.244.2.0/26 of node n2; used by pod default/db on node n2"
    );
    assert_eq!(r.kernel.prefix, Some(net("10.244.2.0/26")));
    // Nothing at all.
    let r = report(net("192.0.2.0/24"), &f(&[]));
    assert_eq!(r.owner.kind, "none");
    assert_eq!((r.kernel.prefix, r.kernel.state.as_str()), (None, "absent"));
}
