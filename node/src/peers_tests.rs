use std::collections::BTreeMap;

use tortie_config::resources::{
    AsNumber, BGPConfigurationSpec, BGPPeerSpec, NodeBgpSpec, NodeSpec, Object, PasswordSource,
    PeerAddress, Resource, Selector,
};

use super::*;

fn node(c: &mut Cluster, name: &str, addr: &str, labels: &[(&str, &str)], cid: Option<&str>) {
    let mut o = Object::new(
        name,
        NodeSpec {
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some(addr.parse().unwrap()),
                route_reflector_cluster_id: cid.map(|c| c.parse().unwrap()),
                ..NodeBgpSpec::default()
            }),
            ..NodeSpec::default()
        },
    );
    o.metadata.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    c.upsert(Resource::Node(o));
}

fn bgp_peer(c: &mut Cluster, name: &str, spec: BGPPeerSpec) {
    c.upsert(Resource::BGPPeer(Object::new(name, spec)));
}

fn empty_peer() -> BGPPeerSpec {
    BGPPeerSpec {
        node: None,
        node_selector: None,
        peer_ip: None,
        peer_selector: None,
        as_number: None,
        keep_original_next_hop: false,
        advertise_pool_aggregates: false,
        source_address: SourceAddress::UseNodeIP,
        failure_detection_mode: Default::default(),
        bfd: None,
        password: None,
        keepalive_time: None,
        ttl_security: None,
        filters: Vec::new(),
        max_restart_time: None,
        num_allowed_local_as_numbers: None,
        reachable_by: None,
    }
}

fn no_secrets(_: &PasswordSource) -> Result<String, String> {
    Err("no secrets in this test".into())
}

fn mesh_off(c: &mut Cluster) {
    let spec = BGPConfigurationSpec {
        node_to_node_mesh_enabled: false,
        ..BGPConfigurationSpec::default()
    };
    c.upsert(Resource::BGPConfiguration(Object::new("default", spec)));
}

fn local() -> LocalBgp {
    LocalBgp {
        router_id: "192.168.1.11".parse().unwrap(),
        restart_time: 120,
        restarting: false,
        wait_for: Vec::new(),
    }
}

fn plan_of(c: &Cluster, me: &str) -> PeerPlan {
    plan(c, &c.facts(me).unwrap(), &local(), &no_secrets)
}

/// `address type source client` per peer.
fn table(p: &PeerPlan) -> Vec<String> {
    p.sources
        .iter()
        .map(|s| {
            format!(
                "{} {:?} {}{}",
                s.address,
                s.kind,
                s.source,
                if s.rr_client { " client" } else { "" }
            )
        })
        .collect()
}

fn problems(p: &PeerPlan) -> Vec<String> {
    p.problems.iter().map(ToString::to_string).collect()
}

fn sel(s: &str) -> Option<Selector> {
    Some(Selector::parse(s).unwrap())
}

#[test]
fn mesh_of_three() {
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", &[], None);
    node(&mut c, "n2", "192.168.1.12/24", &[], None);
    node(&mut c, "n3", "192.168.2.13/24", &[], None);
    let p = plan_of(&c, "n1");
    assert_eq!(
        table(&p),
        ["192.168.1.12 Mesh mesh", "192.168.2.13 Mesh mesh"]
    );
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    let cfg = &p.config;
    assert_eq!(cfg.router_id.to_string(), "192.168.1.11");
    assert_eq!(cfg.asn, 64512);
    assert_eq!(cfg.listen, Some("0.0.0.0:179".parse().unwrap()));
    assert_eq!(cfg.families, vec![Afi::Ipv4]);
    assert!(cfg.peers.iter().all(|p| p.asn == 64512
        && !p.passive
        && p.local_address == Some("192.168.1.11".parse().unwrap())));
    assert!(cfg.graceful_restart.enabled);
    assert_eq!(cfg.graceful_restart.deferral_time, Some(30));
    assert_eq!(cfg.check(), Ok(()));
}

#[test]
fn route_reflectors_with_the_mesh_off() {
    let mut c = Cluster::default();
    mesh_off(&mut c);
    node(
        &mut c,
        "rr1",
        "192.168.1.1/24",
        &[("rr", "true")],
        Some("1.1.1.1"),
    );
    node(
        &mut c,
        "rr2",
        "192.168.1.2/24",
        &[("rr", "true")],
        Some("1.1.1.1"),
    );
    node(&mut c, "c1", "192.168.1.11/24", &[], None);
    node(&mut c, "c2", "192.168.1.12/24", &[], None);
    bgp_peer(
        &mut c,
        "to-rrs",
        BGPPeerSpec {
            node_selector: sel("all()"),
            peer_selector: sel("rr == 'true'"),
            ..empty_peer()
        },
    );
    // A client peers with both reflectors only.
    assert_eq!(
        table(&plan_of(&c, "c1")),
        [
            "192.168.1.1 Global BGPPeer/to-rrs",
            "192.168.1.2 Global BGPPeer/to-rrs"
        ]
    );
    // A reflector: the other reflector (same cluster id: not a client),
    // and every client (through the reverse direction of the selector).
    let p = plan_of(&c, "rr1");
    assert_eq!(
        table(&p),
        [
            "192.168.1.2 Global BGPPeer/to-rrs",
            "192.168.1.11 Global BGPPeer/to-rrs client",
            "192.168.1.12 Global BGPPeer/to-rrs client"
        ]
    );
    assert_eq!(p.config.cluster_id, Some("1.1.1.1".parse().unwrap()));
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    let clients: Vec<bool> = p.config.peers.iter().map(|p| p.rr_client).collect();
    assert_eq!(clients, [false, true, true]);
}

#[test]
fn explicit_peers_global_and_node_specific() {
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", &[("rack", "a")], None);
    node(&mut c, "n2", "192.168.1.12/24", &[("rack", "b")], None);
    bgp_peer(
        &mut c,
        "tor-a",
        BGPPeerSpec {
            node_selector: sel("rack == 'a'"),
            peer_ip: Some(PeerAddress {
                ip: "192.168.1.254".parse().unwrap(),
                port: Some(1179),
            }),
            as_number: Some(AsNumber(65000)),
            ..empty_peer()
        },
    );
    bgp_peer(
        &mut c,
        "special",
        BGPPeerSpec {
            node: Some("n2".into()),
            peer_ip: Some(PeerAddress {
                ip: "10.9.9.9".parse().unwrap(),
                port: None,
            }),
            as_number: Some(AsNumber(65001)),
            source_address: SourceAddress::None,
            ..empty_peer()
        },
    );
    // The mesh session to n1 is replaced by an explicit one.
    bgp_peer(
        &mut c,
        "to-n1",
        BGPPeerSpec {
            node: Some("n2".into()),
            peer_ip: Some(PeerAddress {
                ip: "192.168.1.11".parse().unwrap(),
                port: None,
            }),
            as_number: Some(AsNumber(64512)),
            ..empty_peer()
        },
    );
    let p1 = plan_of(&c, "n1");
    assert_eq!(
        table(&p1),
        [
            "192.168.1.12 Mesh mesh",
            "192.168.1.254 Global BGPPeer/tor-a"
        ]
    );
    let tor = &p1.config.peers[1];
    assert_eq!((tor.asn, tor.port), (65000, 1179));
    // A router, not a node: our own routes only, pool prefixes only.
    assert!(tor.export_local_only);
    assert_eq!(tor.import_within, Some(vec![]), "no pools in this cluster");
    assert!(
        !p1.config.peers[0].export_local_only,
        "a mesh peer gets everything"
    );
    assert_eq!(p1.config.peers[0].import_within, None);
    let p2 = plan_of(&c, "n2");
    assert_eq!(
        table(&p2),
        [
            "10.9.9.9 NodeSpecific BGPPeer/special",
            "192.168.1.11 NodeSpecific BGPPeer/to-n1"
        ]
    );
    assert_eq!(p2.sources[1].node.as_deref(), Some("n1"));
    assert_eq!(
        p2.config.peers[0].local_address, None,
        "sourceAddress: None"
    );
}

#[test]
fn pool_aggregates_go_to_routers_that_ask() {
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", &[], None);
    node(&mut c, "n2", "192.168.1.12/24", &[], None);
    let peer = |ip: &str| BGPPeerSpec {
        peer_ip: Some(PeerAddress {
            ip: ip.parse().unwrap(),
            port: None,
        }),
        as_number: Some(AsNumber(65000)),
        advertise_pool_aggregates: true,
        ..empty_peer()
    };
    bgp_peer(&mut c, "tor", peer("192.168.1.254"));
    // A node is no router: the option is reported and ignored.
    bgp_peer(&mut c, "to-n2", peer("192.168.1.12"));
    bgp_peer(
        &mut c,
        "to-rrs",
        BGPPeerSpec {
            peer_selector: sel("all()"),
            advertise_pool_aggregates: true,
            ..empty_peer()
        },
    );
    let p = plan_of(&c, "n1");
    let by_addr = |a: &str| {
        p.config
            .peers
            .iter()
            .find(|x| x.address == a.parse::<IpAddr>().unwrap())
            .unwrap()
    };
    assert!(by_addr("192.168.1.254").export_aggregates);
    assert!(by_addr("192.168.1.254").export_local_only);
    assert!(!by_addr("192.168.1.12").export_aggregates);
    assert_eq!(
        problems(&p),
        [
            "BGPPeer/to-n2: spec.advertisePoolAggregates: 192.168.1.12 is a node, which gets blocks: the option applies to routers and is ignored",
            "BGPPeer/to-rrs: spec.advertisePoolAggregates: a peerSelector picks nodes, which get blocks: the option applies to routers and is ignored"
        ]
    );
}

#[test]
fn bad_peerings_are_problems_and_the_rest_still_peers() {
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", &[], None);
    node(&mut c, "n2", "192.168.1.12/24", &[], None);
    // Two nodes claim one address: the later name is left out.
    node(&mut c, "n3", "192.168.1.12/24", &[], None);
    node(&mut c, "n4", "192.168.1.11/24", &[], None);
    bgp_peer(
        &mut c,
        "self",
        BGPPeerSpec {
            peer_ip: Some(PeerAddress {
                ip: "192.168.1.11".parse().unwrap(),
                port: None,
            }),
            as_number: Some(AsNumber(64512)),
            ..empty_peer()
        },
    );
    bgp_peer(
        &mut c,
        "mcast",
        BGPPeerSpec {
            peer_ip: Some(PeerAddress {
                ip: "224.0.0.5".parse().unwrap(),
                port: None,
            }),
            as_number: Some(AsNumber(65000)),
            ..empty_peer()
        },
    );
    bgp_peer(
        &mut c,
        "nobody",
        BGPPeerSpec {
            peer_selector: sel("rr == 'true'"),
            ..empty_peer()
        },
    );
    let p = plan_of(&c, "n1");
    assert_eq!(table(&p), ["192.168.1.12 Mesh mesh"]);
    assert_eq!(
        problems(&p),
        [
            "BGPPeer/mcast: spec.peerIP: 224.0.0.5 is not a unicast address: peer skipped",
            "BGPPeer/nobody: spec.peerSelector: rr == 'true' matches no other node: no session from it",
            "BGPPeer/self: spec.peerIP: 192.168.1.11 is this node's own address: peer skipped",
            "Node/n3: spec.bgp: address 192.168.1.12 is also Node/n2's: no session to Node/n3",
            "Node/n4: spec.bgp: address 192.168.1.11 is also Node/n1's: no session to Node/n4",
        ]
    );
}

#[test]
fn dual_stack_node_listens_on_both_families() {
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", &[], None);
    let mut n = c.nodes["n1"].clone();
    n.spec.bgp.as_mut().unwrap().ipv6_address = Some("fd00::11/64".parse().unwrap());
    c.upsert(Resource::Node(n));
    let p = plan_of(&c, "n1");
    assert_eq!(p.config.listen, Some("[::]:179".parse().unwrap()));
    assert_eq!(p.config.families, vec![Afi::Ipv4, Afi::Ipv6]);
}

#[test]
fn ipv6_only_nodes_mesh_over_ipv6_and_dual_stack_over_ipv4() {
    let mut c = Cluster::default();
    // n1, n2 dual stack; n3 IPv6 only; n4 IPv4 only.
    for (name, v4, v6) in [
        ("n1", Some("192.168.1.11/24"), Some("fd30:1::11/64")),
        ("n2", Some("192.168.1.12/24"), Some("fd30:1::12/64")),
        ("n3", None, Some("fd30:2::13/64")),
        ("n4", Some("192.168.2.14/24"), None),
    ] {
        let spec = NodeSpec {
            bgp: Some(NodeBgpSpec {
                ipv4_address: v4.map(|a| a.parse().unwrap()),
                ipv6_address: v6.map(|a| a.parse().unwrap()),
                ..NodeBgpSpec::default()
            }),
            ..NodeSpec::default()
        };
        c.upsert(Resource::Node(Object::new(name, spec)));
    }
    // Dual stack: one session per node, over IPv4 where both have it,
    // carrying both families; over IPv6 to the IPv6-only node.
    let p = plan_of(&c, "n1");
    assert_eq!(
        table(&p),
        [
            "192.168.1.12 Mesh mesh",
            "192.168.2.14 Mesh mesh",
            "fd30:2::13 Mesh mesh"
        ]
    );
    assert_eq!(p.config.families, vec![Afi::Ipv4, Afi::Ipv6]);
    let to_n3 = p.config.peers.iter().find(|p| p.address.is_ipv6()).unwrap();
    assert_eq!(to_n3.local_address, Some("fd30:1::11".parse().unwrap()));
    // IPv6 only: IPv6 sessions and the IPv6 family alone; no session to
    // the IPv4-only node (no common family).
    let p = plan(
        &c,
        &c.facts("n3").unwrap(),
        &LocalBgp {
            router_id: "10.0.0.3".parse().unwrap(),
            ..local()
        },
        &no_secrets,
    );
    assert_eq!(table(&p), ["fd30:1::11 Mesh mesh", "fd30:1::12 Mesh mesh"]);
    assert_eq!(p.config.families, vec![Afi::Ipv6]);
    assert_eq!(p.config.router_id.to_string(), "10.0.0.3");
    assert_eq!(p.config.listen, Some("[::]:179".parse().unwrap()));
}

#[test]
fn passwords_come_from_files_and_keepalive_sets_the_hold_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tor-md5")).unwrap();
    std::fs::write(dir.path().join("tor-md5/key"), "s3cret\n").unwrap();
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", &[], None);
    let secret = |name: &str| PasswordSource {
        secret_key_ref: Some(tortie_config::resources::SecretKeyRef {
            name: name.into(),
            key: "key".into(),
        }),
        file: None,
    };
    for (name, ip, source) in [
        ("good", "192.168.1.1", secret("tor-md5")),
        ("missing", "192.168.1.2", secret("nope")),
    ] {
        bgp_peer(
            &mut c,
            name,
            BGPPeerSpec {
                peer_ip: Some(PeerAddress {
                    ip: ip.parse().unwrap(),
                    port: None,
                }),
                as_number: Some(AsNumber(65000)),
                password: Some(source),
                keepalive_time: Some(tortie_config::resources::Seconds(20)),
                ..empty_peer()
            },
        );
    }
    let secrets = |s: &PasswordSource| read_password(dir.path(), s);
    let p = plan(&c, &c.facts("n1").unwrap(), &local(), &secrets);
    // The peer whose key cannot be read is not started at all.
    assert_eq!(table(&p), ["192.168.1.1 Global BGPPeer/good"]);
    assert_eq!(p.config.peers[0].password.as_deref(), Some("s3cret"));
    assert_eq!(p.config.peers[0].hold_time, 60);
    let problems = problems(&p);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("BGPPeer/missing: spec.password: cannot read ")
            && problems[0].contains("nope/key")
            && problems[0].ends_with("its sessions are not started (never without their key)"),
        "{problems:?}"
    );
}

/// `ttlSecurity` (GTSM) reaches every session its BGPPeer makes, peerIP
/// and peerSelector alike, as the hop count; 0 is off (Calico writes
/// nothing for BIRD then); mesh sessions have none.
#[test]
fn ttl_security_goes_to_the_sessions_of_its_bgp_peer() {
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", &[("rack", "a")], None);
    node(&mut c, "n2", "192.168.1.12/24", &[("rr", "true")], None);
    node(&mut c, "n3", "192.168.1.13/24", &[], None);
    let tor = |ip: &str, hops| BGPPeerSpec {
        peer_ip: Some(PeerAddress {
            ip: ip.parse().unwrap(),
            port: None,
        }),
        as_number: Some(AsNumber(65000)),
        ttl_security: Some(hops),
        ..empty_peer()
    };
    bgp_peer(&mut c, "tor", tor("192.168.1.1", 1));
    bgp_peer(&mut c, "zero", tor("192.168.1.2", 0));
    bgp_peer(
        &mut c,
        "to-rr",
        BGPPeerSpec {
            node_selector: sel("rack == 'a'"),
            peer_selector: sel("rr == 'true'"),
            ttl_security: Some(2),
            ..empty_peer()
        },
    );
    let p = plan_of(&c, "n1");
    let gtsm: Vec<String> = p
        .config
        .peers
        .iter()
        .map(|c| format!("{} {:?}", c.address, c.ttl_security))
        .collect();
    assert_eq!(
        gtsm,
        [
            "192.168.1.1 Some(1)",
            "192.168.1.2 None",
            "192.168.1.12 Some(2)",
            "192.168.1.13 None"
        ]
    );
    assert_eq!(
        p.config.listener_min_ttl(),
        Some(0),
        "mesh peers without GTSM"
    );
    assert_eq!(p.config.check(), Ok(()));
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    // The reflector's side of the selector peering has it too.
    let p = plan_of(&c, "n2");
    let to_n1 = p
        .config
        .peers
        .iter()
        .find(|c| c.address.to_string() == "192.168.1.11");
    assert_eq!(to_n1.and_then(|c| c.ttl_security), Some(2));
}

/// The BGP log level is the agent's own: a BGPConfiguration that asks
/// for another is named among the problems, not ignored in silence.
/// Service ranges are no peer matter (`services`): the plan says nothing
/// of them.
#[test]
fn log_level_is_named_and_service_ranges_are_not_a_peer_problem() {
    use tortie_config::resources::CidrEntry;
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", &[], None);
    let spec = BGPConfigurationSpec {
        service_cluster_ips: vec![CidrEntry {
            cidr: "10.96.0.0/12".into(),
        }],
        log_severity_screen: "Debug".into(),
        ..BGPConfigurationSpec::default()
    };
    c.upsert(Resource::BGPConfiguration(Object::new("default", spec)));
    let p = plan_of(&c, "n1");
    let got = problems(&p);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("spec.logSeverityScreen"), "{got:?}");
}

/// A BGPPeer's filters, restart time, AS loop allowance and next hop
/// reach its sessions; a missing filter rejects everything and is a
/// problem of the BGPPeers this node uses only; the mesh takes
/// `nodeMeshMaxRestartTime`.
#[test]
fn filters_and_session_settings_reach_the_peers() {
    use tortie_config::filter::{FilterAction, FilterRules};
    use tortie_config::resources::{BGPFilterSpec, IPPoolSpec, Seconds};
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", &[], None);
    node(&mut c, "n2", "192.168.1.12/24", &[], None);
    let spec = BGPConfigurationSpec {
        node_mesh_max_restart_time: Some(Seconds(200)),
        ..BGPConfigurationSpec::default()
    };
    c.upsert(Resource::BGPConfiguration(Object::new("default", spec)));
    let pool = IPPoolSpec::new("10.244.0.0/16".parse().unwrap());
    c.upsert(Resource::IPPool(Object::new("default", pool)));
    let edge: BGPFilterSpec = serde_json::from_value(serde_json::json!({
        "exportV4": [{"action": "Reject", "matchOperator": "Equal", "cidr": "10.244.1.0/26"}],
        "importV4": [{"action": "Accept", "matchOperator": "Equal", "cidr": "0.0.0.0/0"}],
    }))
    .unwrap();
    c.upsert(Resource::BGPFilter(Object::new("edge", edge)));
    let tor = |ip: &str, filters: &[&str]| BGPPeerSpec {
        peer_ip: Some(PeerAddress {
            ip: ip.parse().unwrap(),
            port: None,
        }),
        as_number: Some(AsNumber(65000)),
        filters: filters.iter().map(|f| f.to_string()).collect(),
        ..empty_peer()
    };
    bgp_peer(
        &mut c,
        "tor",
        BGPPeerSpec {
            max_restart_time: Some(Seconds(300)),
            num_allowed_local_as_numbers: Some(2),
            keep_original_next_hop: true,
            advertise_pool_aggregates: true,
            ..tor("192.168.1.254", &["edge"])
        },
    );
    bgp_peer(&mut c, "tor2", tor("192.168.1.253", &["gone"]));
    bgp_peer(
        &mut c,
        "elsewhere",
        BGPPeerSpec {
            node: Some("n2".into()),
            ..tor("192.168.1.252", &["gone"])
        },
    );
    let p = plan_of(&c, "n1");
    let by_addr = |a: &str| {
        p.config
            .peers
            .iter()
            .find(|x| x.address == a.parse::<IpAddr>().unwrap())
            .unwrap()
    };
    let t = by_addr("192.168.1.254");
    assert_eq!(
        (t.restart_time, t.allow_local_as, t.keep_next_hop),
        (Some(300), 2, true)
    );
    let net = |s: &str| s.parse::<ipnet::IpNet>().unwrap();
    assert_eq!(
        t.export_filter.verdict(&net("10.244.1.0/26"), false),
        Some(FilterAction::Reject)
    );
    // The aggregate router's own rule after the filter's: no block.
    assert_eq!(
        t.export_filter.verdict(&net("10.244.2.0/26"), false),
        Some(FilterAction::Reject)
    );
    assert_eq!(t.export_filter.verdict(&net("10.244.0.0/16"), false), None);
    assert_eq!(
        t.import_filter.verdict(&net("0.0.0.0/0"), true),
        Some(FilterAction::Accept)
    );
    let t2 = by_addr("192.168.1.253");
    assert_eq!(t2.export_filter, FilterRules::reject_all());
    assert_eq!(t2.import_filter, FilterRules::reject_all());
    assert_eq!((t2.restart_time, t2.allow_local_as), (None, 0));
    assert_eq!(by_addr("192.168.1.12").restart_time, Some(200), "the mesh");
    let got = problems(&p);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("BGPPeer/tor2: spec.filters[0]: BGPFilter/gone does not exist"),
        "{got:?}"
    );
}

/// BFD: Tortie's `bfd.enabled` and Calico's `failureDetectionMode` reach
/// every session their BGPPeer makes, with the timers (or 300 ms x 3);
/// `BFDIfDirectlyConnected` keeps to directly connected peers (the
/// speaker decides at Established); the mesh has none.
#[test]
fn bfd_goes_to_the_sessions_of_its_bgp_peer() {
    use std::time::Duration;
    use tortie_config::bfd::{BfdConfig, BfdSpec, FailureDetectionMode, Interval};
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", &[("rack", "a")], None);
    node(&mut c, "n2", "192.168.1.12/24", &[("rr", "true")], None);
    node(&mut c, "n3", "192.168.1.13/24", &[], None);
    let tor = |ip: &str| BGPPeerSpec {
        peer_ip: Some(PeerAddress {
            ip: ip.parse().unwrap(),
            port: None,
        }),
        as_number: Some(AsNumber(65000)),
        ..empty_peer()
    };
    bgp_peer(
        &mut c,
        "fast",
        BGPPeerSpec {
            bfd: Some(BfdSpec {
                enabled: Some(true),
                min_rx: Some(Interval("100ms".into())),
                min_tx: Some(Interval("100ms".into())),
                multiplier: Some(5),
            }),
            ..tor("192.168.1.1")
        },
    );
    bgp_peer(
        &mut c,
        "calico",
        BGPPeerSpec {
            failure_detection_mode: FailureDetectionMode::BFDIfDirectlyConnected,
            ..tor("192.168.1.2")
        },
    );
    bgp_peer(&mut c, "none", tor("192.168.1.3"));
    bgp_peer(
        &mut c,
        "to-rr",
        BGPPeerSpec {
            node_selector: sel("rack == 'a'"),
            peer_selector: sel("rr == 'true'"),
            bfd: Some(BfdSpec {
                enabled: Some(true),
                ..BfdSpec::default()
            }),
            ..empty_peer()
        },
    );
    let p = plan_of(&c, "n1");
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    let bfd = |addr: &str| {
        p.config
            .peers
            .iter()
            .find(|c| c.address == addr.parse::<IpAddr>().unwrap())
            .unwrap()
            .bfd
    };
    let ms = Duration::from_millis;
    assert_eq!(
        bfd("192.168.1.1"),
        Some(BfdConfig {
            min_rx: ms(100),
            min_tx: ms(100),
            multiplier: 5,
            directly_connected_only: false,
        })
    );
    assert_eq!(
        bfd("192.168.1.2"),
        Some(BfdConfig {
            directly_connected_only: true,
            ..BfdConfig::default()
        })
    );
    assert_eq!(bfd("192.168.1.3"), None);
    assert_eq!(bfd("192.168.1.12"), Some(BfdConfig::default()));
    assert_eq!(bfd("192.168.1.13"), None, "the mesh has no BFD");
}
