//! Two nodes on one L2 (a veth between their namespaces), one pod each, the
//! host side set up by `endpoint::configure_host_side`, routes programmed by
//! one reconciler per node (direct routes): the pods ping each other.
//!
//! ```text
//!  pod-a 10.244.3.7 ─ tort… ─ node-a 192.168.1.11 ═ eth0 ═ node-b 192.168.1.12 ─ tort… ─ pod-b 10.244.7.9
//! ```

mod common;

use std::time::Duration;

use common::{udp_echo, Netns};
use felix::desired::{DesiredState, LearnedRoute, LocalNode, PeerNode, Pool, WorkloadEndpoint};
use felix::endpoint::{configure_host_side, host_ifname, EndpointError};
use felix::reconciler::{self, ReconcilerConfig, ReconcilerHandle};
use felix::sysctl::{self, Sysctl};
use tortie_ipip::EncapMode;

struct Node {
    ns: Netns,
    pod: Netns,
    ifname: String,
}

/// Makes a node namespace (eth0 added later) with a pod behind a tort veth.
fn node(tag: &str, workload: &str, pod_ip: &str) -> Node {
    let ns = Netns::new(tag);
    let pod = Netns::new(&format!("{tag}pod"));
    let ifname = host_ifname(workload);
    common::add_pod(&ns, &pod, &ifname, pod_ip);
    // Node-level settings the agent expects of a node (not endpoint work).
    sysctl::write_in(
        Some(&ns.path()),
        vec![Sysctl::new("net/ipv4/ip_forward", "1")],
    )
    .unwrap();
    Node { ns, pod, ifname }
}

fn desired(
    me: (&str, &str),
    peer: (&str, &str),
    n: &Node,
    pod_ip: &str,
    block: &str,
    peer_block: &str,
) -> DesiredState {
    DesiredState {
        local_node: LocalNode {
            name: me.0.into(),
            addresses: vec![format!("{}/24", me.1).parse().unwrap()],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        nodes: vec![PeerNode {
            name: peer.0.into(),
            addresses: vec![peer.1.parse().unwrap()],
            vteps: vec![],
        }],
        endpoints: vec![WorkloadEndpoint {
            workload_id: format!("default/{}", me.0),
            interface: n.ifname.clone(),
            addresses: vec![pod_ip.parse().unwrap()],
        }],
        blocks: vec![block.parse().unwrap()],
        borrowed: vec![],
        learned: vec![LearnedRoute {
            prefix: peer_block.parse().unwrap(),
            next_hop: peer.1.parse().unwrap(),
        }],
        pools: vec![Pool {
            cidr: "10.244.0.0/16".parse().unwrap(),
            ipip: EncapMode::CrossSubnet,
            vxlan: EncapMode::Never,
            nat_outgoing: false,
        }],
    }
}

async fn run_reconciler(n: &Node, state: DesiredState) -> ReconcilerHandle {
    let mut h = reconciler::start(ReconcilerConfig {
        netns: Some(n.ns.path()),
        ..ReconcilerConfig::default()
    })
    .unwrap();
    h.set_desired(state).await.unwrap();
    let s = h
        .wait_for(Duration::from_secs(5), |s| s.passes > 0)
        .await
        .expect("no pass");
    assert!(s.last_pass.unwrap().failures.is_empty());
    h
}

#[tokio::test]
async fn pods_on_two_nodes_ping_over_direct_routes() {
    let a = node("pa", "default/node-a", "10.244.3.7");
    let b = node("pb", "default/node-b", "10.244.7.9");
    // One L2 between the nodes; a default route on each node (proxy ARP
    // only answers for addresses the host has a route to).
    a.ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0b",
    ]);
    a.ns.ip(&["link", "set", "eth0b", "netns", &b.ns.name]);
    b.ns.ip(&["link", "set", "eth0b", "name", "eth0"]);
    for (n, addr) in [(&a, "192.168.1.11/24"), (&b, "192.168.1.12/24")] {
        n.ns.ip(&["addr", "add", addr, "dev", "eth0"]);
        n.ns.ip(&["link", "set", "eth0", "up"]);
        n.ns.ip(&["route", "add", "default", "dev", "eth0"]);
    }

    for n in [&a, &b] {
        let k = felix::kernel::open(Some(&n.ns.path())).unwrap();
        configure_host_side(&k.handle, Some(&n.ns.path()), &n.ifname)
            .await
            .unwrap();
        // Idempotent: a second run changes nothing and succeeds.
        configure_host_side(&k.handle, Some(&n.ns.path()), &n.ifname)
            .await
            .unwrap();
        for (key, want) in [
            (format!("net/ipv4/conf/{}/proxy_arp", n.ifname), "1"),
            (format!("net/ipv4/neigh/{}/proxy_delay", n.ifname), "0"),
            (format!("net/ipv4/conf/{}/forwarding", n.ifname), "1"),
            (format!("net/ipv6/conf/{}/accept_ra", n.ifname), "0"),
        ] {
            assert_eq!(
                sysctl::read_in(Some(&n.ns.path()), &key).unwrap(),
                want,
                "{key}"
            );
        }
        let link = n.ns.ip(&["-j", "link", "show", &n.ifname]);
        assert!(
            link.contains("ee:ee:ee:ee:ee:ee") && link.contains("\"UP\""),
            "{link}"
        );
        // A missing interface is an error naming it.
        let err = configure_host_side(&k.handle, Some(&n.ns.path()), "tortnotthere000")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, EndpointError::Missing { ifname } if ifname == "tortnotthere000"),
            "{err}"
        );
    }

    let ha = run_reconciler(
        &a,
        desired(
            ("node-a", "192.168.1.11"),
            ("node-b", "192.168.1.12"),
            &a,
            "10.244.3.7",
            "10.244.3.0/26",
            "10.244.7.0/26",
        ),
    )
    .await;
    let hb = run_reconciler(
        &b,
        desired(
            ("node-b", "192.168.1.12"),
            ("node-a", "192.168.1.11"),
            &b,
            "10.244.7.9",
            "10.244.7.0/26",
            "10.244.3.0/26",
        ),
    )
    .await;
    let routes = a.ns.routes_text(&["proto", "116"]);
    assert!(
        routes.contains("10.244.7.0/26 via 192.168.1.12 dev eth0"),
        "{routes}"
    );

    // Pod-to-pod "ping": a UDP echo between sockets opened inside the pod
    // namespaces (this machine has no ping binary; no traffic leaves the
    // test's namespaces).
    for round in 0..3 {
        let reply = udp_echo(&a.pod, &b.pod, "10.244.3.7", "10.244.7.9", 7000 + round);
        assert_eq!(
            reply.as_deref(),
            Ok("ping from 10.244.3.7"),
            "round {round}"
        );
    }
    // And a real ICMP ping, where the ping binary exists.
    if let Some(ok) = common::icmp_ping(&a.pod, "10.244.7.9") {
        assert!(ok, "ICMP ping pod-a -> pod-b failed");
    }
    // The pod learned the fixed host MAC for its gateway by proxy ARP.
    let neigh = a.pod.ip(&["neigh", "show", "169.254.1.1"]);
    assert!(neigh.contains("ee:ee:ee:ee:ee:ee"), "{neigh}");

    // Without the peer's block route there is no path: the route is what
    // made the ping work (and deleting it is healed, so stop node-a first).
    ha.shutdown().await;
    a.ns.ip(&["route", "del", "10.244.7.0/26"]);
    let reply = udp_echo(&a.pod, &b.pod, "10.244.3.7", "10.244.7.9", 7100);
    assert!(
        reply.is_err(),
        "echo succeeded without the route: {reply:?}"
    );
    hb.shutdown().await;
}
