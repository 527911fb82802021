//! Loading resources: Calico manifests as is, defaults, compatibility
//! table, errors with field and line.

use super::*;

const CALICO: &str = r#"# a Calico cluster's manifests, unchanged
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: false
  asNumber: 63400
  nodeMeshMaxRestartTime: 90s
  communities:
    - name: gold
      value: 65000:100
  prefixAdvertisements:
    - cidr: 10.244.0.0/16
      communities: [gold, 65000:1:2]
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: peer-with-route-reflectors
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: rack1-tor
spec:
  node: rack1-host1
  peerIP: 192.168.1.1
  asNumber: "1.10"
  ttlSecurity: 1
  keepOriginalNextHop: true
  filters: [edge, no-default]
  maxRestartTime: 2m
  numAllowedLocalASNumbers: 2
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 10.244.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: v6
spec:
  cidr: fd00:244::/48
  vxlanMode: Always
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node-1
  labels:
    route-reflector: "true"
  resourceVersion: "1234"
spec:
  bgp:
    ipv4Address: 192.168.1.10/24
    routeReflectorClusterID: 224.0.0.1
  orchRefs:
    - nodeName: node-1
      orchestrator: k8s
---
"#;

#[test]
fn calico_manifests_load_as_is_with_defaults() {
    let loaded = load_documents(CALICO).unwrap();
    assert_eq!(loaded.resources.len(), 6);
    let mut it = loaded.resources.into_iter();

    let conf = it
        .next()
        .unwrap()
        .into_typed::<BGPConfigurationSpec>()
        .unwrap();
    assert_eq!(conf.spec.as_number, AsNumber(63400));
    assert!(!conf.spec.node_to_node_mesh_enabled);
    assert_eq!(conf.spec.listen_port, 179);
    assert_eq!(conf.spec.node_mesh_max_restart_time, Some(Seconds(90)));
    let tags = conf.spec.prefix_communities();
    assert_eq!(tags.len(), 1);
    assert_eq!(
        tags[0].values,
        vec![
            CommunityValue::Standard(65000, 100),
            CommunityValue::Large(65000, 1, 2)
        ]
    );

    let rr = it.next().unwrap().into_typed::<BGPPeerSpec>().unwrap();
    let mut labels = std::collections::BTreeMap::new();
    assert!(!rr.spec.peer_selector.as_ref().unwrap().matches(&labels));
    labels.insert("route-reflector".to_string(), "true".to_string());
    assert!(rr.spec.peer_selector.as_ref().unwrap().matches(&labels));

    let tor = it.next().unwrap().into_typed::<BGPPeerSpec>().unwrap();
    assert_eq!(tor.spec.node.as_deref(), Some("rack1-host1"));
    assert_eq!(tor.spec.as_number, Some(AsNumber(65546)));
    assert_eq!(tor.spec.source_address, SourceAddress::UseNodeIP);
    assert_eq!(tor.spec.ttl_security, Some(1), "GTSM, no longer refused");
    assert!(tor.spec.keep_original_next_hop);
    assert_eq!(tor.spec.filters, ["edge", "no-default"]);
    assert_eq!(tor.spec.max_restart_time, Some(Seconds(120)));
    assert_eq!(tor.spec.num_allowed_local_as_numbers, Some(2));
    assert_eq!(rr.spec.ttl_security, None);

    let v4 = it.next().unwrap().into_typed::<IPPoolSpec>().unwrap();
    assert_eq!(v4.spec.block_size, Some(26));
    assert_eq!(v4.spec.ipip_mode, EncapMode::CrossSubnet);
    assert_eq!(v4.spec.vxlan_mode, EncapMode::Never);
    assert!(v4.spec.nat_outgoing && !v4.spec.disabled);
    assert_eq!(v4.spec.node_selector, Selector::all());

    let v6 = it.next().unwrap().into_typed::<IPPoolSpec>().unwrap();
    assert_eq!(v6.spec.block_size, Some(122));
    assert!(!v6.spec.nat_outgoing);

    let node = it.next().unwrap().into_typed::<NodeSpec>().unwrap();
    let bgp = node.spec.bgp.unwrap();
    assert_eq!(bgp.ipv4_address.unwrap().to_string(), "192.168.1.10/24");
    assert_eq!(
        bgp.route_reflector_cluster_id.unwrap().to_string(),
        "224.0.0.1"
    );

    // Ignored Calico fields are reported by name and line.
    let shown: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        shown,
        [
            "line 63: Node/node-1: metadata.resourceVersion: ignored: revisions come from the datastore; ignored",
            "line 68: Node/node-1: spec.orchRefs: ignored: the node name is the Kubernetes node name",
        ]
    );
}

#[test]
fn defaults_without_optional_fields() {
    let text =
        "apiVersion: tortie.io/v1\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec: {}\n";
    let loaded = load_documents(text).unwrap();
    let conf = loaded.resources[0]
        .clone()
        .into_typed::<BGPConfigurationSpec>()
        .unwrap();
    assert_eq!(conf.spec, BGPConfigurationSpec::default());
    assert_eq!(conf.spec.as_number, AsNumber(64512));
    assert!(conf.spec.node_to_node_mesh_enabled);
}

/// Every bad document gives an error naming the field (and the line).
#[test]
fn error_table() {
    let pool = |spec: &str| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n{spec}"
        )
    };
    let peer = |spec: &str| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: p\nspec:\n{spec}"
        )
    };
    // (document, line, message)
    let rows: Vec<(String, Option<usize>, &str)> = vec![
        (pool("  cidr: 10.244.0.0/16\n  blockSiz: 26\n"), Some(7), "spec.blockSiz: unknown field `blockSiz`, expected one of"),
        (pool("  cidr: 10.244.0.1/16\n"), Some(6), "spec.cidr: 10.244.0.1/16: host bits are set; did you mean 10.244.0.0/16?"),
        (pool("  cidr: 10.244.0.0/16\n  blockSize: 33\n"), Some(7), "spec.blockSize: 33: an IPv4 block size is 20..=32"),
        (pool("  cidr: 10.244.0.0/24\n  blockSize: 22\n"), Some(7), "spec.blockSize: 22: blocks must fit in the pool"),
        (pool("  cidr: fd00::/48\n  blockSize: 26\n"), Some(7), "spec.blockSize: 26: an IPv6 block size is 116..=128"),
        (pool("  cidr: 10.0.0.0/8\n  ipipMode: Always\n  vxlanMode: Always\n"), Some(8), "spec.vxlanMode: Always: ipipMode is Always"),
        (pool("  cidr: 10.0.0.0/8\n  ipipMode: Sometimes\n"), Some(7), "spec.ipipMode: unknown variant `Sometimes`"),
        (pool("  cidr: 10.0.0.0/8\n  nodeSelector: rack = 'a'\n"), Some(7), "spec.nodeSelector: selector \"rack = 'a'\": column 6: single '='"),
        (pool("  cidr: 10.0.0.0/8\n  ipip:\n    enabled: true\n"), Some(7), "spec.ipip: {\"enabled\":true}: not supported: the deprecated v1 form; write spec.ipipMode"),
        (pool("  cidr: 10.0.0.0/8\n  assignmentMode: Manual\n"), Some(7), "spec.assignmentMode: \"Manual\": not supported: only Automatic assignment is implemented; only \"Automatic\" is accepted"),
        (peer("  peerIP: 10.0.0.1\n"), Some(5), "spec.asNumber: missing; a peer given by peerIP needs its AS number"),
        (peer("  peerIP: 10.0.0.1\n  peerSelector: all()\n  asNumber: 1\n"), Some(7), "spec.peerSelector: all(): set either peerIP or peerSelector, not both"),
        (peer("  peerIP: 10.0.0.1:0\n  asNumber: 1\n"), Some(6), "spec.peerIP: \"10.0.0.1:0\" is not an address"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 23456\n"), Some(7), "spec.asNumber: 23456: AS 0 and AS_TRANS"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  password: s3cret\n"), Some(8), "spec.password: an inline password is not accepted"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  password:\n    secretKeyRef: {name: s, key: k}\n    file: /k\n"), Some(8), "spec.password: {...}: set exactly one of secretKeyRef"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  password:\n    file: k\n"), Some(9), "spec.password.file: k: an absolute path"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  password:\n    secretKeyRef: {name: ../x, key: k}\n"), Some(9), "spec.password.secretKeyRef: ../x/k: a secret name and key"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  keepaliveTime: 20 seconds\n"), Some(8), "spec.keepaliveTime: \"20 seconds\" is not a duration"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  keepaliveTime: 0s\n"), Some(8), "spec.keepaliveTime: 0s: 1s..=21845s"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  ttlSecurity: 256\n"), Some(8), "spec.ttlSecurity: 256 is not a hop count: use 1..=255 (1: the peer is on a link of the node), or 0 to turn GTSM off"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  ttlSecurity: -1\n"), Some(8), "spec.ttlSecurity: -1 is not a hop count"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  ttlSecurity: one\n"), Some(8), "spec.ttlSecurity: \"one\" is not a hop count"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  filters: [a, Bad]\n"), Some(8), "spec.filters[1]: \"Bad\": a name is 1-253 lowercase"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  filters: [a, a]\n"), Some(8), "spec.filters[1]: \"a\": listed twice"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  maxRestartTime: 2h\n"), Some(8), "spec.maxRestartTime: 7200s: at most 4095s"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  numAllowedLocalASNumbers: -1\n"), Some(8), "spec.numAllowedLocalASNumbers: invalid value"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  reachableBy: gw1\n"), Some(8), "spec.reachableBy: \"gw1\": not an IP address"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  reachableBy: 'fd00::1'\n"), Some(8), "spec.reachableBy: \"fd00::1\": another address family than peerIP 10.0.0.1"),
        (peer("  peerSelector: all()\n  reachableBy: 10.0.0.1\n"), Some(7), "spec.reachableBy: \"10.0.0.1\": needs peerIP"),
        (peer("  peerIP: 10.0.0.1\n  asNumber: 1\n  reachableBy: 0.0.0.0\n"), Some(8), "spec.reachableBy: \"0.0.0.0\": not a unicast address"),
        ("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [gold]}]\n".into(), Some(6), "spec.prefixAdvertisements[0].communities[0]: \"gold\": neither a name defined in spec.communities"),
        ("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  communities: [{name: x, value: '1:65536'}]\n".into(), Some(6), "spec.communities[0].value: 1:65536: \"1:65536\": a standard community"),
        ("apiVersion: tortie.io/v1\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/8\n  ipip: {}\n".into(), Some(7), "spec.ipip: unknown field `ipip`"),
        ("apiVersion: projectcalico.org/v3\nkind: Block\nmetadata:\n  name: b\nspec: {}\n".into(), Some(1), "apiVersion: projectcalico.org/v3: Block is only read as tortie.io/v1"),
        ("apiVersion: v1\nkind: IPPool\n".into(), Some(1), "apiVersion: \"v1\": expected projectcalico.org/v3 or tortie.io/v1"),
        ("apiVersion: tortie.io/v1\nkind: IpPool\n".into(), Some(2), "kind: \"IpPool\": expected one of BGPConfiguration"),
        ("apiVersion: tortie.io/v1\nkind: IPPool\nmetadata:\n  name: Big_Pool\nspec:\n  cidr: 10.0.0.0/8\n".into(), Some(4), "metadata.name: \"Big_Pool\": a name is 1-253 lowercase"),
        ("kind: IPPool\n".into(), Some(1), "apiVersion: missing"),
        ("apiVersion: tortie.io/v1\nkind: Node\nmetadata:\n  name: n\nspec:\n  bgp:\n    ipv4Address: fd00::1/64\n".into(), Some(7), "spec.bgp.ipv4Address: fd00::1/64: an IPv4 address"),
    ];
    for (text, line, want) in rows {
        let e = load_documents(&text).expect_err(&text);
        let got = e.to_string();
        assert!(
            got.starts_with(want),
            "got {got:?}\nwant {want:?}\nfor\n{text}"
        );
        assert_eq!(e.line(), line, "{got}");
    }
}

#[test]
fn duplicates_and_line_of_later_documents() {
    let one =
        "apiVersion: tortie.io/v1\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/8\n";
    let text = format!("{one}---\n{one}");
    let e = load_documents(&text).unwrap_err();
    assert_eq!(e.line(), Some(8), "{e}");
    assert!(e.to_string().contains("already defined at line 1"), "{e}");

    let bad = format!("{one}---\napiVersion: tortie.io/v1\nkind: IPPool\nmetadata:\n  name: q\nspec:\n  cidr: 10.0.0.0/88\n");
    let e = load_documents(&bad).unwrap_err();
    assert_eq!(e.line(), Some(13), "{e}");
    assert_eq!(e.field(), Some("spec.cidr"));
}

#[test]
fn system_kinds_round_trip_through_values() {
    let cidr: ipnet::IpNet = "10.244.0.64/26".parse().unwrap();
    let mut block = BlockSpec::new(cidr, Some("host:node-1".into()));
    block.allocations[0] = Some(0);
    block.unallocated.retain(|i| *i != 0);
    block.attributes.push(AllocationAttribute {
        handle_id: Some("net.abc.eth0".into()),
        secondary: Default::default(),
    });
    let resources = vec![
        Resource::Block(Object::new(BlockSpec::name_for(&cidr), block)),
        Resource::Handle(Object::new(
            "net.abc.eth0",
            HandleSpec {
                handle_id: "net.abc.eth0".into(),
                block: [(cidr.to_string(), 1)].into_iter().collect(),
                deleted: false,
            },
        )),
        Resource::BlockAffinity(Object::new(
            "node-1-10-244-0-64-26",
            BlockAffinitySpec {
                node: "node-1".into(),
                cidr,
                state: AffinityState::Confirmed,
                deleted: false,
            },
        )),
        Resource::WorkloadEndpoint(Object {
            metadata: Metadata {
                name: "node-1-k8s-pod-eth0".into(),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: WorkloadEndpointSpec {
                node: "node-1".into(),
                orchestrator: "k8s".into(),
                pod: Some("pod".into()),
                container_id: "abc".into(),
                endpoint: "eth0".into(),
                interface_name: "tort0123456789a".into(),
                ip_networks: vec!["10.244.0.64/32".parse().unwrap()],
                mac: Some("ee:ee:ee:ee:ee:ee".into()),
            },
        }),
        Resource::IPPool(Object::new(
            "p",
            IPPoolSpec::new("10.0.0.0/8".parse().unwrap()),
        )),
    ];
    for r in resources {
        let (back, warnings) = Resource::from_value(r.to_value()).unwrap();
        assert_eq!(back, r);
        assert!(warnings.is_empty());
        let text = r.to_value().to_string();
        let (back, warnings) = Resource::from_json(r.kind(), &text).unwrap();
        assert_eq!(back, r, "{text}");
        assert!(warnings.is_empty());
    }
    assert_eq!(BlockSpec::name_for(&cidr), "10-244-0-64-26");
    assert_eq!(
        Resource::WorkloadEndpoint(Object {
            metadata: Metadata {
                name: "w".into(),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: WorkloadEndpointSpec {
                node: "n".into(),
                orchestrator: "k8s".into(),
                pod: None,
                container_id: "c".into(),
                endpoint: "eth0".into(),
                interface_name: "tortx".into(),
                ip_networks: vec![],
                mac: None,
            },
        })
        .key()
        .to_string(),
        "WorkloadEndpoint/ns/w"
    );
}

/// `from_json` reads what `from_value` reads, with the same warnings and
/// errors, whichever of its two paths a text takes.
#[test]
fn json_reads_as_the_tree_does() {
    let block = r#""kind":"Block","metadata":{"name":"10-0-0-0-30"},"spec":{"cidr":"10.0.0.0/30","affinity":"host:n1","allocations":[null,null,null,null],"unallocated":[0,1,2,3],"attributes":[]}"#;
    let cases = [
        // As the stores write it: the direct path.
        (Kind::Block, format!(r#"{{"apiVersion":"tortie.io/v1",{block}}}"#)),
        // A Kubernetes field: a warning, from the tree's path.
        (
            Kind::Block,
            format!(r#"{{"apiVersion":"tortie.io/v1",{}}}"#, block.replace(r#""name":"#, r#""uid":"u","name":"#)),
        ),
        // Bad values and fields: the same errors.
        (Kind::Block, format!(r#"{{"apiVersion":"tortie.io/v1",{}}}"#, block.replace("[0,1,2,3]", "[0,1,2]"))),
        (Kind::Block, format!(r#"{{"apiVersion":"tortie.io/v1",{}}}"#, block.replace(r#""affinity""#, r#""owner""#))),
        (Kind::Block, format!(r#"{{"apiVersion":"tortie.io/v2",{block}}}"#)),
        (Kind::Block, format!("{{{}}}", block.replace(r#""kind":"Block","#, ""))),
        // Another kind than the key's: read as what it is.
        (Kind::Handle, format!(r#"{{"apiVersion":"tortie.io/v1",{block}}}"#)),
        // A Calico document, with a warned-about field.
        (
            Kind::IPPool,
            r#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/16","assignmentMode":"Manual"}}"#.to_string(),
        ),
        (
            Kind::IPPool,
            r#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/16","nodeSelector":"all()"}}"#.to_string(),
        ),
    ];
    let mut direct = 0;
    for (kind, text) in &cases {
        let tree = Resource::from_value(serde_json::from_str(text).unwrap());
        let json = Resource::from_json(*kind, text);
        match (&tree, &json) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.0, b.0, "{text}");
                assert_eq!(format!("{:?}", a.1), format!("{:?}", b.1), "{text}");
                direct += usize::from(a.1.is_empty());
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
            _ => panic!("{text}: from_value {tree:?}, from_json {json:?}"),
        }
    }
    assert!(direct >= 2, "the cases cover records read without warnings");
    // Text that is not JSON is an error naming why.
    let e = Resource::from_json(Kind::Block, "{\"kind\":").unwrap_err();
    assert!(e.to_string().contains("not JSON"), "{e}");
}

#[test]
fn corrupt_blocks_are_rejected_by_field() {
    let cidr: ipnet::IpNet = "10.0.0.0/30".parse().unwrap();
    let good = BlockSpec::new(cidr, None);
    type Mutation = Box<dyn Fn(&mut BlockSpec)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|b| b.allocations.pop().map(drop).unwrap_or(())),
            "spec.allocations: 3 entries: one entry per address of 10.0.0.0/30: 4",
        ),
        (
            Box::new(|b| {
                b.allocations[1] = Some(0);
                b.attributes.push(AllocationAttribute {
                    handle_id: None,
                    secondary: Default::default(),
                });
            }),
            "spec.unallocated[1]: 1: this slot is allocated",
        ),
        (
            Box::new(|b| b.unallocated.push(5)),
            "spec.unallocated[4]: 5: a slot 0..4",
        ),
        (
            Box::new(|b| b.unallocated.push(0)),
            "spec.unallocated[4]: 0: listed twice",
        ),
        (
            Box::new(|b| {
                b.unallocated.pop();
            }),
            "spec.unallocated: 3 entries: slot 3 is neither",
        ),
        (
            Box::new(|b| {
                b.allocations[3] = Some(2);
                b.unallocated.pop();
            }),
            "spec.allocations[3]: 2: an index into attributes",
        ),
        (
            Box::new(|b| b.cidr = "10.0.0.0/8".parse().unwrap()),
            "spec.cidr: 10.0.0.0/8: a block holds at most 4096",
        ),
    ];
    for (mutate, want) in cases {
        let mut b = good.clone();
        mutate(&mut b);
        let mut o = Object::new("b", b);
        let e = o.validate().unwrap_err().to_string();
        assert!(e.starts_with(want), "got {e:?} want {want:?}");
    }
}

/// docs/resources.md lists every row of the compatibility table.
#[test]
fn docs_list_every_compat_row() {
    let doc = include_str!("../../../docs/resources.md");
    for entry in compat::TABLE {
        let field = format!("`{}`", entry.field);
        assert!(doc.contains(&field), "docs/resources.md lacks {field}");
    }
}
