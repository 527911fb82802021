use std::collections::BTreeMap;

use tortie_config::resources::{
    AllocationAttribute, BlockSpec, IPPoolSpec, NodeBgpSpec, NodeSpec, Object, Resource,
    WorkloadEndpointSpec,
};

use super::*;

/// The speaker's router ID when a router asks for aggregates (set apart
/// from the node's address: AGGREGATOR must name the identifier).
const ID: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);

/// Node `name` at `addr`: its IPv4 address, or an IPv6-only node's IPv6 one.
fn node(c: &mut Cluster, name: &str, addr: &str, vtep: Option<&str>) {
    c.upsert(Resource::Node(Object::new(
        name,
        NodeSpec {
            bgp: Some(if addr.contains(':') {
                NodeBgpSpec {
                    ipv6_address: Some(addr.parse().unwrap()),
                    ..NodeBgpSpec::default()
                }
            } else {
                NodeBgpSpec {
                    ipv4_address: Some(addr.parse().unwrap()),
                    ..NodeBgpSpec::default()
                }
            }),
            ipv4_vxlan_tunnel_addr: vtep.map(|v| v.parse().unwrap()),
            ..NodeSpec::default()
        },
    )));
}

fn pool(c: &mut Cluster, name: &str, cidr: &str, f: impl FnOnce(&mut IPPoolSpec)) {
    let mut spec = IPPoolSpec::new(cidr.parse().unwrap());
    f(&mut spec);
    c.upsert(Resource::IPPool(Object::new(name, spec)));
}

/// A block of `owner` with the given (slot, node using it) allocations.
fn block(c: &mut Cluster, cidr: &str, owner: &str, used: &[(u32, &str)]) {
    let mut spec = BlockSpec::new(cidr.parse().unwrap(), Some(format!("host:{owner}")));
    for (i, (slot, node)) in used.iter().enumerate() {
        spec.allocations[*slot as usize] = Some(i as u32);
        spec.unallocated.retain(|s| s != slot);
        spec.attributes.push(AllocationAttribute {
            handle_id: Some(format!("h{i}")),
            secondary: [("node".to_string(), node.to_string())].into(),
        });
    }
    c.upsert(Resource::Block(Object::new(
        BlockSpec::name_for(&spec.cidr),
        spec,
    )));
}

fn endpoint(c: &mut Cluster, name: &str, node: &str, ifname: &str, addr: &str) {
    let mut o = Object::new(
        name,
        WorkloadEndpointSpec {
            node: node.into(),
            orchestrator: "cni".into(),
            pod: None,
            container_id: name.into(),
            endpoint: "eth0".into(),
            interface_name: ifname.into(),
            ip_networks: vec![addr.parse().unwrap()],
            mac: None,
        },
    );
    o.metadata.namespace = Some("default".into());
    c.upsert(Resource::WorkloadEndpoint(o));
}

fn cluster() -> Cluster {
    let mut c = Cluster::default();
    node(&mut c, "n1", "192.168.1.11/24", Some("10.244.0.1"));
    node(&mut c, "n2", "192.168.1.12/24", None);
    pool(&mut c, "default", "10.244.0.0/16", |p| {
        p.vxlan_mode = EncapMode::CrossSubnet;
        p.nat_outgoing = true;
    });
    pool(&mut c, "quiet", "10.99.0.0/16", |p| {
        p.disable_bgp_export = true
    });
    // n1 owns 10.244.0.0/26; its slot 5 is used by a pod on n2.
    block(&mut c, "10.244.0.0/26", "n1", &[(2, "n1"), (5, "n2")]);
    block(&mut c, "10.244.0.64/26", "n2", &[(1, "n2"), (9, "n1")]);
    block(&mut c, "10.99.0.0/26", "n1", &[]);
    endpoint(&mut c, "pod-a", "n1", "tort00000000001", "10.244.0.2/32");
    // A pod of n1 whose address was borrowed from n2's block.
    endpoint(&mut c, "pod-b", "n1", "tort00000000002", "10.244.0.73/32");
    endpoint(&mut c, "pod-c", "n2", "tort00000000003", "10.244.0.5/32");
    c
}

#[test]
fn originated_blocks_and_borrowed_addresses() {
    let c = cluster();
    // Without a router that asks for aggregates: no pool.
    let (routes, _) = originated(&c, &c.facts("n1").unwrap(), None);
    assert_eq!(
        routes.keys().map(ToString::to_string).collect::<Vec<_>>(),
        ["10.244.0.0/26", "10.244.0.73/32"]
    );
    let (routes, problems) = originated(&c, &c.facts("n1").unwrap(), Some(ID));
    assert!(problems.is_empty(), "{problems:?}");
    let prefixes: Vec<String> = routes.keys().map(ToString::to_string).collect();
    // The quiet pool's block is not exported, nor is that pool; the
    // default pool is, as an aggregate.
    assert_eq!(
        prefixes,
        ["10.244.0.0/16", "10.244.0.0/26", "10.244.0.73/32"]
    );
    let block = &routes[&"10.244.0.0/26".parse().unwrap()].attrs;
    assert_eq!(block.next_hop, NextHop::V4("192.168.1.11".parse().unwrap()));
    assert!(!block.atomic_aggregate && block.aggregator.is_none());
    let pool = &routes[&"10.244.0.0/16".parse().unwrap()].attrs;
    assert_eq!(pool.next_hop, block.next_hop);
    assert!(pool.atomic_aggregate);
    assert_eq!(pool.aggregator, Some((c.facts("n1").unwrap().asn, ID)));
    // A node without blocks announces no pool.
    let mut c = c;
    node(&mut c, "n3", "192.168.1.13/24", None);
    let (routes, _) = originated(&c, &c.facts("n3").unwrap(), Some(ID));
    assert!(routes.is_empty(), "{routes:?}");
}

/// An IPv6-only node's pool aggregate names the speaker's router ID in
/// AGGREGATOR (the node has no IPv4 address to name), with its IPv6
/// address as the next hop.
#[test]
fn an_ipv6_only_node_aggregates_with_its_router_id() {
    let mut c = Cluster::default();
    node(&mut c, "n6", "fd30:1::16/64", None);
    pool(&mut c, "v6", "fd00:244::/48", |_| {});
    block(&mut c, "fd00:244::/122", "n6", &[]);
    let (routes, problems) = originated(&c, &c.facts("n6").unwrap(), Some(ID));
    assert!(problems.is_empty(), "{problems:?}");
    let pool = &routes[&"fd00:244::/48".parse::<IpNet>().unwrap()].attrs;
    assert!(pool.atomic_aggregate);
    assert_eq!(pool.aggregator, Some((c.facts("n6").unwrap().asn, ID)));
    assert_eq!(
        pool.next_hop,
        NextHop::V6 {
            global: "fd30:1::16".parse().unwrap(),
            link_local: None
        }
    );
}

#[test]
fn desired_state_of_a_node() {
    let c = cluster();
    let me = c.facts("n1").unwrap();
    let underlay = Underlay {
        address: "192.168.1.11/24".parse().unwrap(),
        interface: "eth0".into(),
        address_v6: None,
    };
    let learned: BTreeMap<IpNet, IpAddr> = [
        ("10.244.0.64/26", "192.168.1.12"),
        ("10.244.0.5/32", "192.168.1.12"),
        // Outside every pool: not programmed.
        ("198.51.100.0/24", "192.168.1.12"),
    ]
    .into_iter()
    .map(|(p, h)| (p.parse().unwrap(), h.parse().unwrap()))
    .collect();
    let d = desired(&c, &me, &underlay, &learned);
    assert_eq!(d.local_node.name, "n1");
    assert_eq!(
        d.local_node.addresses,
        vec!["192.168.1.11/24".parse::<IpNet>().unwrap()]
    );
    assert_eq!(d.local_node.underlay, "eth0");
    assert_eq!(
        d.local_node.vteps,
        vec!["10.244.0.1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(d.nodes.len(), 1);
    assert_eq!(
        d.nodes[0].addresses,
        vec!["192.168.1.12".parse::<IpAddr>().unwrap()]
    );
    let eps: Vec<(&str, &str)> = d
        .endpoints
        .iter()
        .map(|e| (e.workload_id.as_str(), e.interface.as_str()))
        .collect();
    assert_eq!(
        eps,
        [
            ("default/pod-a", "tort00000000001"),
            ("default/pod-b", "tort00000000002")
        ]
    );
    let blocks: Vec<String> = d.blocks.iter().map(ToString::to_string).collect();
    assert_eq!(blocks, ["10.244.0.0/26", "10.99.0.0/26"]);
    assert_eq!(
        d.borrowed,
        vec![BorrowedAddress {
            address: "10.244.0.5".parse().unwrap(),
            node: "192.168.1.12".parse().unwrap()
        }]
    );
    let learned: Vec<String> = d
        .learned
        .iter()
        .map(|l| format!("{} {}", l.prefix, l.next_hop))
        .collect();
    assert_eq!(
        learned,
        ["10.244.0.5/32 192.168.1.12", "10.244.0.64/26 192.168.1.12"]
    );
    assert_eq!(d.pools.len(), 2);
    let default = d
        .pools
        .iter()
        .find(|p| p.cidr.to_string() == "10.244.0.0/16")
        .unwrap();
    assert_eq!(default.vxlan, tortie_ipip::EncapMode::CrossSubnet);
    assert!(default.nat_outgoing);
    // felix accepts it: every route computes without a warning.
    let routes = felix::desired::compute(&d);
    assert!(routes.warnings.is_empty(), "{:?}", routes.warnings);
    let lines: Vec<String> = routes
        .routes
        .values()
        .map(|c| c.route.to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "blackhole 10.99.0.0/26",
            "blackhole 10.244.0.0/26",
            "10.244.0.2/32 dev tort00000000001 scope link",
            "10.244.0.5/32 via 192.168.1.12 dev eth0",
            "10.244.0.64/26 via 192.168.1.12 dev eth0",
            "10.244.0.73/32 dev tort00000000002 scope link",
        ]
    );
}

#[test]
fn a_node_without_an_address_of_the_family_reports_it() {
    let mut c = cluster();
    block(&mut c, "fd00:244::/122", "n1", &[]);
    pool(&mut c, "v6", "fd00:244::/64", |_| {});
    let (routes, problems) = originated(&c, &c.facts("n1").unwrap(), Some(ID));
    assert!(!routes.contains_key(&"fd00:244::/122".parse().unwrap()));
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "Node/n1: spec.bgp: block fd00:244::/122: the node has no BGP address of its family: not announced",
            "Node/n1: spec.bgp: pool fd00:244::/64: the node has no BGP address of its family: not announced"
        ]
    );
}

#[test]
fn prefix_advertisements_tag_what_the_node_originates() {
    let mut c = cluster();
    let mut config = |text: &str| {
        let doc = format!("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\n{text}");
        let loaded = tortie_config::resources::load_documents(&doc).unwrap();
        c.upsert(loaded.resources.into_iter().next().unwrap());
    };
    config(
        "metadata: {name: default}
spec:
  communities:
    - {name: pods, value: '65000:100'}
    - {name: big, value: '65000:7:8'}
  prefixAdvertisements:
    - {cidr: 10.244.0.0/16, communities: [pods, big]}
    - {cidr: 10.244.0.64/26, communities: ['65000:200']}
    - {cidr: 10.244.0.0/26, communities: ['65000:300', pods]}
",
    );
    let (routes, _) = originated(&c, &c.facts("n1").unwrap(), Some(ID));
    let attrs = |p: &str| routes[&p.parse::<IpNet>().unwrap()].attrs.clone();
    let pool = attrs("10.244.0.0/16");
    assert_eq!(pool.communities, vec![65000 << 16 | 100]);
    assert_eq!(pool.large_communities, vec![[65000, 7, 8]]);
    // The block is in the pool's entry and its own: both, once each.
    let block = attrs("10.244.0.0/26");
    assert_eq!(
        block.communities,
        vec![65000 << 16 | 100, 65000 << 16 | 300]
    );
    // The borrowed address lies in n2's block's entry too.
    let borrowed = attrs("10.244.0.73/32");
    assert_eq!(
        borrowed.communities,
        vec![65000 << 16 | 100, 65000 << 16 | 200]
    );
    // The node's own BGPConfiguration replaces default's list.
    let mut c2 = c.clone();
    let doc = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.n1}\nspec:\n  prefixAdvertisements: [{cidr: 10.244.0.0/26, communities: ['1:1']}]\n";
    c2.upsert(
        tortie_config::resources::load_documents(doc)
            .unwrap()
            .resources
            .remove(0),
    );
    let (routes, _) = originated(&c2, &c2.facts("n1").unwrap(), Some(ID));
    let block = &routes[&"10.244.0.0/26".parse::<IpNet>().unwrap()].attrs;
    assert_eq!(block.communities, vec![1 << 16 | 1]);
    assert!(block.large_communities.is_empty());
    assert!(routes[&"10.244.0.0/16".parse::<IpNet>().unwrap()]
        .attrs
        .communities
        .is_empty());
}
