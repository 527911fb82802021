//! Two nodes on different subnets behind a router that knows only the node
//! subnets; one pod each; VXLAN (`vxlanMode: CrossSubnet`) programmed by one
//! reconciler per node: device, VTEP address, neighbour + FDB entries and the
//! `via <vtep> dev vxlan.tortie onlink` routes. The pods exchange UDP echoes
//! (no ping binary here) and the device counters prove the path.
//!
//! ```text
//!  pod-a 10.244.3.7 ─ tort… ─ node-a 192.168.1.11 ─ router (.1.1 | .2.1) ─ 192.168.2.21 node-b ─ tort… ─ pod-b 10.244.7.9
//!                      vxlan.tortie 10.244.3.0              (no pod routes)            vxlan.tortie 10.244.7.0
//! ```

mod common;

use std::time::Duration;

use common::{udp_echo_seen, Netns};
use felix::desired::{DesiredState, LearnedRoute, LocalNode, PeerNode, Pool, WorkloadEndpoint};
use felix::endpoint::{configure_host_side, host_ifname};
use felix::reconciler::{self, ReconcilerConfig, ReconcilerHandle, Status};
use felix::sysctl::{self, Sysctl};
use serde_json::Value;
use tortie_ipip::vxlan::Mac;
use tortie_ipip::EncapMode;

struct Node {
    ns: Netns,
    pod: Netns,
    ifname: String,
}

/// A node namespace with a pod behind a tort veth and an uplink `eth0` to
/// the router (`router_if` on the router's side).
fn node(tag: &str, router: &Netns, router_if: &str, addr: &str, gw: &str, pod_ip: &str) -> Node {
    let ns = Netns::new(tag);
    let pod = Netns::new(&format!("{tag}pod"));
    let ifname = host_ifname(&format!("default/{tag}"));
    common::add_pod(&ns, &pod, &ifname, pod_ip);
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", router_if,
    ]);
    ns.ip(&["link", "set", router_if, "netns", &router.name]);
    ns.ip(&["addr", "add", addr, "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["route", "add", "default", "via", gw]);
    router.ip(&["link", "set", router_if, "up"]);
    sysctl::write_in(
        Some(&ns.path()),
        vec![Sysctl::new("net/ipv4/ip_forward", "1")],
    )
    .unwrap();
    Node { ns, pod, ifname }
}

#[allow(clippy::too_many_arguments)]
fn desired(
    me: &str,
    addr: &str,
    vtep: &str,
    peer: &str,
    peer_addr: &str,
    peer_vtep: &str,
    n: &Node,
    pod_ip: &str,
    block: &str,
    peer_block: &str,
) -> DesiredState {
    DesiredState {
        local_node: LocalNode {
            name: me.into(),
            addresses: vec![addr.parse().unwrap()],
            underlay: "eth0".into(),
            vteps: vec![vtep.parse().unwrap()],
        },
        nodes: vec![PeerNode {
            name: peer.into(),
            addresses: vec![peer_addr.parse().unwrap()],
            vteps: vec![peer_vtep.parse().unwrap()],
        }],
        endpoints: vec![WorkloadEndpoint {
            workload_id: format!("default/{me}"),
            interface: n.ifname.clone(),
            addresses: vec![pod_ip.parse().unwrap()],
        }],
        blocks: vec![block.parse().unwrap()],
        borrowed: vec![],
        learned: vec![LearnedRoute {
            prefix: peer_block.parse().unwrap(),
            next_hop: peer_addr.parse().unwrap(),
        }],
        pools: vec![Pool {
            cidr: "10.244.0.0/16".parse().unwrap(),
            ipip: EncapMode::Never,
            vxlan: EncapMode::CrossSubnet,
            nat_outgoing: false,
        }],
    }
}

async fn start(n: &Node, state: DesiredState) -> ReconcilerHandle {
    let k = felix::kernel::open(Some(&n.ns.path())).unwrap();
    configure_host_side(&k.handle, Some(&n.ns.path()), &n.ifname)
        .await
        .unwrap();
    let mut h = reconciler::start(ReconcilerConfig {
        netns: Some(n.ns.path()),
        ..ReconcilerConfig::default()
    })
    .unwrap();
    let generation = h.set_desired(state).await.unwrap();
    let s = h
        .wait_for(Duration::from_secs(5), |s| {
            s.applied >= generation
                && s.last_pass
                    .as_ref()
                    .is_some_and(|p| p.full && p.failures.is_empty())
        })
        .await
        .unwrap_or_else(|| panic!("no clean pass: {:?}", h.status()));
    assert!(s.last_pass.unwrap().vxlan_writes > 0);
    h
}

/// Resyncs after the echoes of earlier writes have settled; returns the pass.
async fn quiet_resync(h: &mut ReconcilerHandle) -> Status {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = h.status().passes;
    h.resync().await.unwrap();
    h.wait_for(Duration::from_secs(5), |s| s.passes > before)
        .await
        .expect("no resync pass")
}

/// Polls `check` every 20 ms for up to 2 s.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn link_json(ns: &Netns, dev: &str) -> Value {
    let out = ns.ip(&["-d", "-s", "-j", "link", "show", dev]);
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

fn counters(ns: &Netns) -> (u64, u64) {
    let l = link_json(ns, "vxlan.tortie");
    let get = |dir: &str| l["stats64"][dir]["packets"].as_u64().unwrap();
    (get("tx"), get("rx"))
}

#[tokio::test]
async fn pods_on_two_subnets_talk_through_vxlan_across_a_router() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let router = Netns::new("vxr");
    sysctl::write_in(
        Some(&router.path()),
        vec![Sysctl::new("net/ipv4/ip_forward", "1")],
    )
    .unwrap();
    let a = node(
        "vxa",
        &router,
        "ra",
        "192.168.1.11/24",
        "192.168.1.1",
        "10.244.3.7",
    );
    let b = node(
        "vxb",
        &router,
        "rb",
        "192.168.2.21/24",
        "192.168.2.1",
        "10.244.7.9",
    );
    router.ip(&["addr", "add", "192.168.1.1/24", "dev", "ra"]);
    router.ip(&["addr", "add", "192.168.2.1/24", "dev", "rb"]);
    let rroutes = router.routes_text(&[]);
    assert!(
        !rroutes.contains("10.244."),
        "router must not know pods: {rroutes}"
    );

    let mut ha = start(
        &a,
        desired(
            "node-a",
            "192.168.1.11/24",
            "10.244.3.0",
            "node-b",
            "192.168.2.21",
            "10.244.7.0",
            &a,
            "10.244.3.7",
            "10.244.3.0/26",
            "10.244.7.0/26",
        ),
    )
    .await;
    let hb = start(
        &b,
        desired(
            "node-b",
            "192.168.2.21/24",
            "10.244.7.0",
            "node-a",
            "192.168.1.11",
            "10.244.3.0",
            &b,
            "10.244.7.9",
            "10.244.7.0/26",
            "10.244.3.0/26",
        ),
    )
    .await;

    // The device as specified.
    let l = link_json(&a.ns, "vxlan.tortie");
    let info = &l["linkinfo"]["info_data"];
    assert_eq!(info["id"], 4096, "{l}");
    assert_eq!(info["port"], 4789, "{l}");
    assert_eq!(info["local"], "192.168.1.11", "{l}");
    assert_eq!(info["learning"], false, "{l}");
    assert_eq!(l["mtu"], 1450, "underlay 1500 - 50: {l}");
    assert_eq!(l["address"], Mac::for_node("node-a").to_string(), "{l}");
    assert!(l["flags"].as_array().unwrap().contains(&"UP".into()), "{l}");
    let addr = a.ns.ip(&["-4", "addr", "show", "dev", "vxlan.tortie"]);
    assert!(addr.contains("inet 10.244.3.0/32"), "{addr}");
    // Per-peer entries and the route.
    let neigh = a.ns.ip(&["neigh", "show", "dev", "vxlan.tortie"]);
    let mac_b = Mac::for_node("node-b").to_string();
    assert!(
        neigh.contains(&format!("10.244.7.0 lladdr {mac_b} PERMANENT")),
        "{neigh}"
    );
    let fdb = common::run(
        "bridge",
        &["-n", &a.ns.name, "fdb", "show", "dev", "vxlan.tortie"],
    );
    assert!(
        fdb.contains(&format!("{mac_b} dst 192.168.2.21 self permanent")),
        "{fdb}"
    );
    let routes = a.ns.routes_text(&["proto", "116"]);
    assert!(
        routes.contains("10.244.7.0/26 via 10.244.7.0 dev vxlan.tortie onlink"),
        "{routes}"
    );

    // Pod to pod through the tunnel: counters on both ends move.
    let (a_tx, _) = counters(&a.ns);
    let (_, b_rx) = counters(&b.ns);
    for round in 0..3 {
        let got = udp_echo_seen(&a.pod, &b.pod, "10.244.3.7", "10.244.7.9", 7200 + round);
        let (reply, seen) = got.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(reply, "ping from 10.244.3.7");
        assert_eq!(seen.ip().to_string(), "10.244.3.7", "no NAT on the way");
    }
    if let Some(ok) = common::icmp_ping(&a.pod, "10.244.7.9") {
        assert!(ok, "ICMP ping pod-a -> pod-b through vxlan.tortie failed");
    }
    let (a_tx2, _) = counters(&a.ns);
    let (_, b_rx2) = counters(&b.ns);
    assert!(
        a_tx2 >= a_tx + 3,
        "vxlan.tortie tx on node-a: {a_tx} -> {a_tx2}"
    );
    assert!(
        b_rx2 >= b_rx + 3,
        "vxlan.tortie rx on node-b: {b_rx} -> {b_rx2}"
    );

    // A second reconcile writes nothing (routes, device, entries, NAT).
    let s = quiet_resync(&mut ha).await;
    let p = s.last_pass.unwrap();
    assert_eq!((p.writes, p.vxlan_writes, p.nat_writes), (0, 0, 0), "{p:?}");

    // A human deletes the neighbour and FDB entries: the neighbour
    // notifications trigger a pass that restores exactly those (2 writes,
    // no resync asked for) and the pods talk again.
    let passes_before = ha.status().passes;
    a.ns.ip(&["neigh", "del", "10.244.7.0", "dev", "vxlan.tortie"]);
    common::run(
        "bridge",
        &[
            "-n",
            &a.ns.name,
            "fdb",
            "del",
            &mac_b,
            "dev",
            "vxlan.tortie",
            "dst",
            "192.168.2.21",
            "self",
        ],
    );
    let healed = eventually(|| {
        a.ns.ip(&["neigh", "show", "dev", "vxlan.tortie"])
            .contains(&format!("10.244.7.0 lladdr {mac_b} PERMANENT"))
            && common::run(
                "bridge",
                &["-n", &a.ns.name, "fdb", "show", "dev", "vxlan.tortie"],
            )
            .contains(&format!("{mac_b} dst 192.168.2.21 self permanent"))
    })
    .await;
    assert!(healed, "entries not restored: {:?}", ha.status());
    // (The entries come back early in the pass; it is counted at its end.)
    let s = ha
        .wait_for(Duration::from_secs(2), |s| s.passes > passes_before)
        .await;
    assert!(s.is_some(), "healed without a pass?");
    assert!(udp_echo_seen(&a.pod, &b.pod, "10.244.3.7", "10.244.7.9", 7300).is_ok());
    let p = quiet_resync(&mut ha).await.last_pass.unwrap();
    assert_eq!((p.vxlan_writes, p.failures.len()), (0, 0), "{p:?}");

    // A wrong MTU is fixed in place (the link notification already runs a
    // pass); the neighbour entries survive it.
    a.ns.ip(&["link", "set", "vxlan.tortie", "mtu", "1400"]);
    let s = quiet_resync(&mut ha).await;
    assert!(s.last_pass.unwrap().failures.is_empty());
    assert_eq!(link_json(&a.ns, "vxlan.tortie")["mtu"], 1450);
    let neigh = a.ns.ip(&["neigh", "show", "dev", "vxlan.tortie"]);
    assert!(neigh.contains("10.244.7.0"), "{neigh}");
    // A stray permanent FDB entry on our device goes; a neighbour entry on
    // another device stays.
    common::run(
        "bridge",
        &[
            "-n",
            &a.ns.name,
            "fdb",
            "append",
            "02:00:00:00:00:99",
            "dev",
            "vxlan.tortie",
            "dst",
            "192.168.2.99",
            "self",
            "permanent",
        ],
    );
    a.ns.ip(&[
        "neigh",
        "add",
        "192.168.1.77",
        "lladdr",
        "02:00:00:00:00:77",
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    let gone = eventually(|| {
        !common::run(
            "bridge",
            &["-n", &a.ns.name, "fdb", "show", "dev", "vxlan.tortie"],
        )
        .contains("02:00:00:00:00:99")
    })
    .await;
    assert!(gone, "stray FDB entry stayed: {:?}", ha.status());
    let p = quiet_resync(&mut ha).await.last_pass.unwrap();
    assert_eq!((p.vxlan_writes, p.failures.len()), (0, 0), "{p:?}");
    let fdb = common::run(
        "bridge",
        &["-n", &a.ns.name, "fdb", "show", "dev", "vxlan.tortie"],
    );
    assert!(!fdb.contains("02:00:00:00:00:99"), "{fdb}");
    assert!(fdb.contains(&mac_b), "{fdb}");
    assert!(a
        .ns
        .ip(&["neigh", "show", "dev", "eth0"])
        .contains("192.168.1.77"));

    // Node b leaves: its entries and route go from node-a.
    let mut alone = desired(
        "node-a",
        "192.168.1.11/24",
        "10.244.3.0",
        "node-b",
        "192.168.2.21",
        "10.244.7.0",
        &a,
        "10.244.3.7",
        "10.244.3.0/26",
        "10.244.7.0/26",
    );
    alone.nodes.clear();
    alone.learned.clear();
    let generation = ha.set_desired(alone).await.unwrap();
    let s = ha
        .wait_for(Duration::from_secs(5), |s| s.applied >= generation)
        .await
        .expect("no pass");
    assert!(s.last_pass.unwrap().failures.is_empty());
    let neigh = a.ns.ip(&["neigh", "show", "dev", "vxlan.tortie"]);
    assert!(!neigh.contains("10.244.7.0"), "{neigh}");
    let fdb = common::run(
        "bridge",
        &["-n", &a.ns.name, "fdb", "show", "dev", "vxlan.tortie"],
    );
    assert!(!fdb.contains(&mac_b), "{fdb}");
    assert!(udp_echo_seen(&a.pod, &b.pod, "10.244.3.7", "10.244.7.9", 7400).is_err());
    ha.shutdown().await;
    hb.shutdown().await;
}
