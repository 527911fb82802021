//! `status.routes` from a published status: each kind of entry, the
//! order, the families apart, the cap.
//!
//! ```text
//!   this node 192.168.1.11/24 (eth0), block 10.244.0.0/26, pod 10.244.0.5
//!   node2 192.168.1.12 (same subnet, mesh peer), block 10.244.1.0/26,
//!         uses 10.244.0.9 of our block
//!   node3 192.168.2.21 (other subnet: IPIP), block 10.244.2.0/26, learned
//!         through the reflector 192.168.1.1 (a global BGPPeer)
//! ```

use std::sync::Arc;

use bgp_speaker::SessionState as Speaker;
use felix::desired::{
    BorrowedAddress, DesiredState, LearnedRoute, LocalNode, PeerNode, Pool, WorkloadEndpoint,
};
use tortie_config::resources::NodeStatusReport;
use tortie_ipip::EncapMode;

use super::*;
use crate::status::{LearnedPath, PeerView};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn peer(address: &str, kind: &str) -> PeerView {
    PeerView {
        address: ip(address),
        kind: kind.into(),
        source: "test".into(),
        node: None,
        asn: 64512,
        rr_client: false,
        state: Speaker::Established,
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

/// What felix is handed for the topology above.
fn desired() -> DesiredState {
    DesiredState {
        local_node: LocalNode {
            name: "node1".into(),
            addresses: vec![net("192.168.1.11/24")],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        nodes: vec![
            PeerNode {
                name: "node2".into(),
                addresses: vec![ip("192.168.1.12")],
                vteps: vec![],
            },
            PeerNode {
                name: "node3".into(),
                addresses: vec![ip("192.168.2.21")],
                vteps: vec![],
            },
        ],
        endpoints: vec![WorkloadEndpoint {
            workload_id: "default/pod-a".into(),
            interface: "tort0123456789a".into(),
            addresses: vec![ip("10.244.0.5")],
        }],
        blocks: vec![net("10.244.0.0/26")],
        borrowed: vec![BorrowedAddress {
            address: ip("10.244.0.9"),
            node: ip("192.168.1.12"),
        }],
        learned: vec![
            LearnedRoute {
                prefix: net("10.244.1.0/26"),
                next_hop: ip("192.168.1.12"),
            },
            LearnedRoute {
                prefix: net("10.244.2.0/26"),
                next_hop: ip("192.168.2.21"),
            },
            // No node has this next hop: felix refuses it.
            LearnedRoute {
                prefix: net("10.244.3.0/26"),
                next_hop: ip("192.168.9.9"),
            },
        ],
        pools: vec![Pool {
            cidr: net("10.244.0.0/16"),
            ipip: EncapMode::CrossSubnet,
            vxlan: EncapMode::Never,
            nat_outgoing: false,
        }],
    }
}

fn best_paths() -> BTreeMap<IpNet, LearnedPath> {
    let path = |next_hop: &str, peer: &str| LearnedPath {
        next_hop: ip(next_hop),
        peer: ip(peer),
    };
    BTreeMap::from([
        (net("10.244.1.0/26"), path("192.168.1.12", "192.168.1.12")),
        // Reflected: the next hop is node3, the sender the reflector.
        (net("10.244.2.0/26"), path("192.168.2.21", "192.168.1.1")),
        (net("10.244.3.0/26"), path("192.168.9.9", "192.168.1.12")),
        // Outside every pool: the speaker has it, felix does not.
        (net("172.16.0.0/16"), path("192.168.1.1", "192.168.1.1")),
        (net("fd00:99::/64"), path("fd00::12", "192.168.1.12")),
    ])
}

fn status(desired: Option<DesiredState>) -> NodeStatus {
    NodeStatus {
        node: "node1".into(),
        address: Some(net("192.168.1.11/24")),
        interface: "eth0".into(),
        peers: vec![
            peer("192.168.1.12", "node-to-node mesh"),
            peer("192.168.2.21", "node-to-node mesh"),
            peer("192.168.1.1", "global"),
        ],
        // Our block, and a service range.
        originated: vec![net("10.244.0.0/26"), net("10.96.0.0/12")],
        best_paths: Arc::new(best_paths()),
        desired: desired.map(Arc::new),
        ..NodeStatus::default()
    }
}

/// `type destination gateway interface sourceType peerIP`, `-` where a
/// field is absent.
fn lines(routes: &[RouteStatus]) -> Vec<String> {
    routes
        .iter()
        .map(|r| {
            let from = r.learned_from.as_ref().unwrap();
            format!(
                "{:?} {} {} {} {:?} {}",
                r.kind.unwrap(),
                r.destination.as_deref().unwrap_or("-"),
                r.gateway.as_deref().unwrap_or("-"),
                r.interface.as_deref().unwrap_or("-"),
                from.source_type.unwrap(),
                from.peer_ip.map_or("-".into(), |p| p.to_string()),
            )
        })
        .collect()
}

#[test]
fn every_kind_of_entry_in_calicos_words() {
    let r = routes(&status(Some(desired())), 1000);
    assert_eq!(
        lines(&r.routes_v4),
        [
            // Ours, in the kernel: FIB, by destination.
            "FIB 10.244.0.0/26 N/A blackhole Static -",
            "FIB 10.244.0.5/32 N/A tort0123456789a Kernel -",
            // From IPAM alone (node2 announces no best path for it).
            "FIB 10.244.0.9/32 192.168.1.12 eth0 Kernel -",
            "FIB 10.244.1.0/26 192.168.1.12 eth0 NodeMesh 192.168.1.12",
            "FIB 10.244.2.0/26 192.168.2.21 tunl0 BGPPeer 192.168.1.1",
            "FIB 192.168.1.0/24 N/A eth0 Direct -",
            // Then the speaker's alone: RIB.
            "RIB 10.96.0.0/12 N/A - Static -",
            "RIB 10.244.3.0/26 192.168.9.9 - NodeMesh 192.168.1.12",
            "RIB 172.16.0.0/16 192.168.1.1 - BGPPeer 192.168.1.1",
        ]
    );
    assert_eq!(
        lines(&r.routes_v6),
        ["RIB fd00:99::/64 fd00::12 - NodeMesh 192.168.1.12"]
    );
    assert_eq!((r.truncated_v4, r.truncated_v6), (0, 0));

    // As written: Calico's field names, no truncation fields.
    let written = serde_json::to_value(NodeStatusReport {
        routes: r,
        ..NodeStatusReport::default()
    })
    .unwrap();
    assert_eq!(
        written["routes"]["routesV4"][4],
        serde_json::json!({
            "type": "FIB",
            "destination": "10.244.2.0/26",
            "gateway": "192.168.2.21",
            "interface": "tunl0",
            "learnedFrom": {"sourceType": "BGPPeer", "peerIP": "192.168.1.1"},
        })
    );
    assert_eq!(
        written["routes"]["routesV4"][0]["learnedFrom"],
        serde_json::json!({"sourceType": "Static"})
    );
    assert!(written["routes"].get("truncatedV4").is_none(), "{written}");
}

#[test]
fn a_prefix_of_our_own_learned_from_a_peer_is_rib_beside_our_fib() {
    let mut s = status(Some(desired()));
    Arc::make_mut(&mut s.best_paths).insert(
        net("10.244.0.5/32"),
        LearnedPath {
            next_hop: ip("192.168.1.12"),
            peer: ip("192.168.1.12"),
        },
    );
    let r = routes(&s, 1000);
    let ours: Vec<String> = lines(&r.routes_v4)
        .into_iter()
        .filter(|l| l.contains(" 10.244.0.5/32 "))
        .collect();
    assert_eq!(
        ours,
        [
            "FIB 10.244.0.5/32 N/A tort0123456789a Kernel -",
            "RIB 10.244.0.5/32 192.168.1.12 - NodeMesh 192.168.1.12",
        ]
    );
}

#[test]
fn before_felix_has_a_desired_state_nothing_of_ours_is_fib() {
    let r = routes(&status(None), 1000);
    assert_eq!(
        lines(&r.routes_v4),
        [
            "FIB 192.168.1.0/24 N/A eth0 Direct -",
            "RIB 10.96.0.0/12 N/A - Static -",
            "RIB 10.244.0.0/26 N/A - Static -",
            "RIB 10.244.1.0/26 192.168.1.12 - NodeMesh 192.168.1.12",
            "RIB 10.244.2.0/26 192.168.2.21 - BGPPeer 192.168.1.1",
            "RIB 10.244.3.0/26 192.168.9.9 - NodeMesh 192.168.1.12",
            "RIB 172.16.0.0/16 192.168.1.1 - BGPPeer 192.168.1.1",
        ]
    );
}

#[test]
fn capped_per_family_fib_first_and_the_rest_counted() {
    let r = routes(&status(Some(desired())), 4);
    assert_eq!(
        lines(&r.routes_v4),
        [
            "FIB 10.244.0.0/26 N/A blackhole Static -",
            "FIB 10.244.0.5/32 N/A tort0123456789a Kernel -",
            "FIB 10.244.0.9/32 192.168.1.12 eth0 Kernel -",
            "FIB 10.244.1.0/26 192.168.1.12 eth0 NodeMesh 192.168.1.12",
        ]
    );
    assert_eq!(r.truncated_v4, 5, "9 IPv4 routes, 4 listed");
    assert_eq!((r.routes_v6.len(), r.truncated_v6), (1, 0));
    let written = serde_json::to_value(&r).unwrap();
    assert_eq!(written["truncatedV4"], 5);
    assert!(written.get("truncatedV6").is_none(), "{written}");

    // A big table: the cap holds, the count is exact.
    let mut s = status(Some(desired()));
    let paths = Arc::make_mut(&mut s.best_paths);
    for i in 0..5000u32 {
        let [_, _, a, b] = (0xac10_0000 + (i << 2)).to_be_bytes();
        paths.insert(
            net(&format!("172.16.{a}.{b}/30")),
            LearnedPath {
                next_hop: ip("192.168.1.1"),
                peer: ip("192.168.1.1"),
            },
        );
    }
    let r = routes(&s, MAX);
    assert_eq!(r.routes_v4.len(), MAX);
    assert_eq!(r.truncated_v4 as usize, 9 + 5000 - MAX);
    assert_eq!(r.routes_v4[0].kind, Some(RouteType::FIB));
}

const MAX: usize = tortie_config::resources::MAX_ROUTES_PER_FAMILY;
