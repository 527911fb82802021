//! Route reflectors in IPv6-only and dual-stack clusters: the mesh off,
//! two reflectors (a `tortie-rr` process on a lab host and a node whose
//! Node has a `routeReflectorClusterID`), four nodes, a pod on each,
//! VXLAN CrossSubnet (`vxlan-v6.tortie` for IPv6). `node_rr.rs` does the
//! same over IPv4.
//!
//! ```text
//!   subnet A fd30:1::/64 (172.30.1.0/24)                       subnet B fd30:2::/64
//!   node1 ::11 (reflector 10.0.0.1)  node2 ::12  node3 ::13  ── router ── node4 ::14
//!   tortie-rr fd30:1::2 (IPv6 only) or 172.30.1.2 (dual stack); cluster 10.0.0.2
//! ```
//!
//! Resources: BGPPeer `to-rr-nodes` (every node peers with the nodes
//! labelled `route-reflector=true`, which makes those reflect to it) and
//! BGPPeer `to-tortie-rr` (every node peers with tortie-rr). tortie-rr
//! takes any node of the lab as a dynamic client. The last test has
//! tortie-rr alone, taking its clients from the datastore.
//!
//! What the docs promise (`docs/dataplane.md`, "Dual stack and IPv6
//! only"): IPv6-only nodes peer over IPv6; a dual-stack node runs one
//! session per peer over IPv4 carrying both families (MP-BGP, RFC 4760),
//! the IPv6 routes with the origin node's IPv6 address as next hop, which
//! iBGP and reflection keep. Checks, per test (numbered in each).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tortie_ctl::lab::{net, Encap, Lab, Stack};
use tortie_tests::lab::{
    add_host6, bgp_paths, block4, block6, mesh_off, no_loss_during, node_resource, pod_on,
    reflector_resources, route_line, routes6, rr_config, rr_status, spec, start_lab_rr,
    wait_peer_lines, RR_ADMIN,
};
use tortie_tests::wait_until;

const MESH: Duration = Duration::from_secs(45);
const SESSIONS: Duration = Duration::from_secs(20);

/// Four nodes (node4 on subnet B) with `stack`, VXLAN CrossSubnet, node1
/// a reflector (cluster 10.0.0.1), the mesh off and both BGPPeers, the
/// tortie-rr at `rr`.
fn lab(prefix: &str, stack: Stack, rr: IpAddr) -> Result<Lab> {
    let mut spec = spec(prefix, 4)?;
    spec.stack = stack;
    spec.encap = Encap::Vxlan;
    spec.resources = reflector_resources(rr);
    spec.reflector(1, "10.0.0.1");
    Lab::up(spec)
}

/// Waits until tortie-rr in `ns` has the lab's four nodes as clients at
/// `addresses`, each Established and having sent its own `per_node`
/// blocks, and node1 (a reflector, to which tortie-rr is a non-client
/// peer: RFC 4456 §6) every node's; returns its `/status`.
fn rr_serves(ns: &str, addresses: &[String], per_node: u64) -> Result<Value> {
    wait_until(SESSIONS, "tortie-rr's four clients", || {
        let s = rr_status(ns).map_err(|e| e.to_string())?;
        let got = peer_rows(&s);
        let mut want: Vec<String> = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let n = if i == 0 { 4 * per_node } else { per_node };
                format!("{a} Established client=true received={n}")
            })
            .collect();
        want.sort();
        if got == want {
            Ok(s)
        } else {
            Err(format!("{got:?}, want {want:?}"))
        }
    })
}

/// tortie-rr's peers in its `/status` `s`, a sorted line each:
/// "ADDRESS STATE client=BOOL received=N".
fn peer_rows(s: &Value) -> Vec<String> {
    let mut rows: Vec<String> = s["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{} {} client={} received={}",
                p["address"].as_str().unwrap_or(""),
                p["state"].as_str().unwrap_or(""),
                p["client"],
                p["prefixesReceived"]
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Waits until node `i` has programmed `n` learned routes.
fn learned(lab: &Lab, i: usize, n: u64) -> Result<()> {
    wait_until(Duration::from_secs(10), "learned routes", || {
        let s = lab.node_status(i).map_err(|e| e.to_string())?;
        if s["learned"] == n {
            Ok(())
        } else {
            Err(format!("{}: learned {}", lab.nodes[i].name, s["learned"]))
        }
    })
}

/// Node `name`'s IPv6 VXLAN tunnel address, from its Node.
fn vtep6(lab: &Lab, name: &str) -> Result<String> {
    let node = node_resource(lab, name)?;
    node["spec"]["ipv6VXLANTunnelAddr"]
        .as_str()
        .map(String::from)
        .with_context(|| format!("{name} has no IPv6 VTEP: {node}"))
}

/// Checks that node `from`'s IPv6 route to node `to`'s block goes
/// straight to `to` on the subnet, or through `vxlan-v6.tortie` at `to`'s
/// VTEP across the router: never via a reflector.
fn ipv6_route_ok(lab: &Lab, from: usize, to: usize) -> Result<()> {
    let r = routes6(lab, from);
    let block = block6(lab, to);
    let line = route_line(&r, &block)
        .with_context(|| format!("{} lacks {block}:\n{r}", lab.nodes[from].name))?;
    let (a, b) = (&lab.nodes[from], &lab.nodes[to]);
    let ok = if a.subnet == b.subnet {
        let via = b.address6.context("an IPv6 address")?;
        line.contains(&format!("via {via} dev eth0 proto 116"))
    } else {
        let vtep = vtep6(lab, &b.name)?;
        line.contains(&format!("via {vtep} dev vxlan-v6.tortie proto 116"))
            && line.contains("onlink")
    };
    anyhow::ensure!(ok, "{} -> {}: {line}\n{r}", a.name, b.name);
    Ok(())
}

/// An IPv6-only cluster with route reflectors:
/// 1. Every pod reaches every other over IPv6 (node4's across the router).
/// 2. Every session runs over IPv6: a client's peer table has exactly the
///    two reflectors (fd30:1::2, fd30:1::11); the reflector node's has
///    tortie-rr and the three others as clients.
/// 3. tortie-rr has the four nodes as dynamic clients at their IPv6
///    addresses, Established, each having sent its /122 (node1 the four
///    it reflects); its Loc-RIB holds the four blocks. Each node learned
///    the three other blocks; node3 has node4's from both reflectors,
///    next hop fd30:2::14.
/// 4. Every node's IPv6 route to every other block: on subnet A via the
///    origin node's address on eth0, to and from node4 via its VTEP on
///    `vxlan-v6.tortie`; nothing via a reflector, no IPv4 route of ours.
/// 5. tortie-rr is killed (SIGKILL) while every pod pings node2's pod
///    over IPv6 at 100 packets/s: none of the 600 per pod is lost; node4
///    keeps its three routes; tortie-rr comes back with its four clients.
#[test]
fn ipv6_only_cluster_with_two_reflectors() -> Result<()> {
    let mut lab = lab("r6", Stack::Ipv6, "fd30:1::2".parse()?)?;
    let (rr_ns, rr_addr) = add_host6(&mut lab, "rr")?;
    assert_eq!(rr_addr.to_string(), "fd30:1::2");
    let conf = rr_config("10.0.0.2", "10.0.0.2", "[::]:179", "fd30::/16");
    let mut rr = start_lab_rr(&lab, &rr_ns, "rr", &conf)?;
    // 1.
    lab.wait_full_mesh(MESH)?;
    for p in &lab.pods {
        assert!(p.address.is_unspecified() && p.address6.is_some(), "{p:?}");
    }
    // 2.
    let reflector = [
        "fd30:1::2 Established",
        "fd30:1::12 Established client",
        "fd30:1::13 Established client",
        "fd30:2::14 Established client",
    ];
    wait_peer_lines(&lab, 0, &reflector, SESSIONS)?;
    for i in 1..4 {
        let client = ["fd30:1::2 Established", "fd30:1::11 Established"];
        wait_peer_lines(&lab, i, &client, SESSIONS)?;
    }
    // 3.
    let addresses: Vec<String> = lab
        .nodes
        .iter()
        .map(|n| n.address6.map(|a| a.to_string()).unwrap_or_default())
        .collect();
    let s = rr_serves(&rr_ns, &addresses, 1)?;
    assert_eq!(s["locRibPrefixes"], 4, "{s}");
    assert!(
        s["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|p| p["dynamic"] == true),
        "{s}"
    );
    for i in 0..4 {
        learned(&lab, i, 3)?;
    }
    // node3 holds node4's block from both reflectors, each with node4's
    // address as next hop.
    let paths = bgp_paths(&lab, 2, &block6(&lab, 3))?;
    assert_eq!(
        paths,
        ["fd30:1::11 fd30:2::14", "fd30:1::2 fd30:2::14"],
        "node3's paths to node4's block"
    );
    // 4.
    for from in 0..4 {
        for to in (0..4).filter(|t| *t != from) {
            ipv6_route_ok(&lab, from, to)?;
        }
        let v4 = net::ip_in_output(&lab.nodes[from].ns, &["route"])?;
        assert!(!v4.contains("proto 116"), "{v4}");
    }
    // 5.
    let target = pod_on(&lab, "node2")?;
    assert!(lab.pods[target].primary().is_ipv6());
    let before = routes6(&lab, 3);
    no_loss_during(&mut lab, target, 600, |_| {
        rr.kill()?;
        rr.wait()?;
        Ok(())
    })?;
    learned(&lab, 3, 3)?;
    for to in 0..3 {
        ipv6_route_ok(&lab, 3, to)?;
    }
    let block2 = block6(&lab, 1);
    assert_eq!(
        route_line(&routes6(&lab, 3), &block2),
        route_line(&before, &block2),
        "node4's route to node2's block changed"
    );
    rr = start_lab_rr(&lab, &rr_ns, "rr", &conf)?;
    rr_serves(&rr_ns, &addresses, 1)?;
    for i in 1..4 {
        let client = ["fd30:1::2 Established", "fd30:1::11 Established"];
        wait_peer_lines(&lab, i, &client, SESSIONS)?;
    }
    let _ = rr.kill();
    let _ = rr.wait();
    Ok(())
}

/// A dual-stack cluster with route reflectors (tortie-rr listens on
/// IPv4 only):
/// 1. Every pod reaches every other over IPv4 and over IPv6.
/// 2. One session per node and reflector, over IPv4: a client's peer
///    table has exactly 172.30.1.2 and 172.30.1.11; the reflector node's
///    has tortie-rr and the three others as clients; no IPv6 session.
/// 3. That session carries both families: tortie-rr got two prefixes from
///    each node (its /26 and its /122; node1 the eight it reflects) and
///    holds eight; each node learned the six blocks of the others; node3
///    has node4's two from both reflectors, next hops 172.30.2.14 and
///    fd30:2::14.
/// 4. node2's IPv6 routes: node1's and node3's blocks via their IPv6
///    addresses on eth0, node4's via its VTEP on `vxlan-v6.tortie` (the
///    origin's IPv6 next hop kept through the reflectors); its IPv4 route
///    to node1's block via 172.30.1.11 on eth0, to node4's through
///    `vxlan.tortie`. node4 reaches node1's IPv6 block through the tunnel.
#[test]
fn dual_stack_with_reflectors_one_session_carries_both_families() -> Result<()> {
    let mut lab = lab("r2", Stack::Dual, "172.30.1.2".parse()?)?;
    let (rr_ns, rr_addr) = lab.add_host("rr")?;
    assert_eq!(rr_addr.to_string(), "172.30.1.2");
    let conf = rr_config("172.30.1.2", "10.0.0.2", "0.0.0.0:179", "172.30.0.0/16");
    let mut rr = start_lab_rr(&lab, &rr_ns, "rr", &conf)?;
    // 1.
    lab.wait_full_mesh(MESH)?;
    for p in &lab.pods {
        assert_eq!(p.addresses().len(), 2, "{p:?}");
    }
    // 2.
    let reflector = [
        "172.30.1.2 Established",
        "172.30.1.12 Established client",
        "172.30.1.13 Established client",
        "172.30.2.14 Established client",
    ];
    wait_peer_lines(&lab, 0, &reflector, SESSIONS)?;
    for i in 1..4 {
        let client = ["172.30.1.2 Established", "172.30.1.11 Established"];
        wait_peer_lines(&lab, i, &client, SESSIONS)?;
    }
    // 3.
    let addresses: Vec<String> = lab.nodes.iter().map(|n| n.address.to_string()).collect();
    let s = rr_serves(&rr_ns, &addresses, 2)?;
    assert_eq!(s["locRibPrefixes"], 8, "{s}");
    for i in 0..4 {
        learned(&lab, i, 6)?;
    }
    // node3 holds node4's blocks from both reflectors, each with node4's
    // address of the block's family as next hop.
    let paths = bgp_paths(&lab, 2, &block6(&lab, 3))?;
    assert_eq!(
        paths,
        ["172.30.1.11 fd30:2::14", "172.30.1.2 fd30:2::14"],
        "node3's paths to node4's IPv6 block"
    );
    let paths = bgp_paths(&lab, 2, &block4(&lab, 3))?;
    assert_eq!(
        paths,
        ["172.30.1.11 172.30.2.14", "172.30.1.2 172.30.2.14"],
        "node3's paths to node4's IPv4 block"
    );
    // 4.
    for to in [0, 2, 3] {
        ipv6_route_ok(&lab, 1, to)?;
    }
    ipv6_route_ok(&lab, 3, 0)?;
    let r4 = net::ip_in_output(&lab.nodes[1].ns, &["route"])?;
    let direct = route_line(&r4, &block4(&lab, 0)).context("node1's IPv4 block")?;
    assert!(
        direct.contains("via 172.30.1.11 dev eth0 proto 116"),
        "{direct}\n{r4}"
    );
    let tunnel = route_line(&r4, &block4(&lab, 3)).context("node4's IPv4 block")?;
    assert!(
        tunnel.contains("dev vxlan.tortie proto 116"),
        "{tunnel}\n{r4}"
    );
    let _ = rr.kill();
    let _ = rr.wait();
    Ok(())
}

/// tortie-rr takes an IPv6-only cluster's nodes from the datastore
/// (`datastoreClients`) at their `ipv6Address` (three nodes, node3 on
/// subnet B; tortie-rr the one reflector, no reflecting node):
/// 1. tortie-rr reports three datastore clients and peers with them at
///    their IPv6 addresses, Established, each having sent its /122; each
///    node's one peer is tortie-rr, over IPv6; pods reach each other.
/// 2. A fourth node joins: tortie-rr peers with it without a reload, and
///    its pod is reached.
#[test]
fn ipv6_only_tortie_rr_takes_its_clients_from_the_datastore() -> Result<()> {
    let mut spec = spec("d6", 3)?;
    spec.stack = Stack::Ipv6;
    spec.encap = Encap::Vxlan;
    spec.resources = mesh_off(&[("rr", "peerIP: fd30:1::2\nasNumber: 64512")]);
    let mut lab = Lab::up(spec)?;
    let (rr_ns, _) = add_host6(&mut lab, "rr")?;
    let conf = format!(
        "routerId: 10.0.0.2\nasNumber: 64512\nlisten: \"[::]:179\"\nadmin: \"{RR_ADMIN}\"\n\
         datastoreClients:\n  datastore: file:{}\n",
        lab.spec.dir.join("store").display()
    );
    let mut rr = start_lab_rr(&lab, &rr_ns, "rr", &conf)?;
    let serves = |lab: &Lab| -> Result<()> {
        let n = lab.nodes.len();
        wait_until(SESSIONS, "tortie-rr's datastore clients", || {
            let s = rr_status(&rr_ns).map_err(|e| e.to_string())?;
            let got = peer_rows(&s);
            let mut want: Vec<String> = lab
                .nodes
                .iter()
                .filter_map(|n| n.address6)
                .map(|a| format!("{a} Established client=true received=1"))
                .collect();
            want.sort();
            if s["datastoreClients"]["clients"] == n && got == want {
                Ok(())
            } else {
                Err(format!("{got:?}, want {want:?}; {}", s["datastoreClients"]))
            }
        })?;
        for i in 0..n {
            wait_peer_lines(lab, i, &["fd30:1::2 Established"], SESSIONS)?;
        }
        lab.wait_full_mesh(MESH)?;
        Ok(())
    };
    // 1.
    serves(&lab)?;
    // 2.
    let n4 = lab.add_node()?;
    lab.add_pod(n4)?;
    serves(&lab)?;
    let _ = rr.kill();
    let _ = rr.wait();
    Ok(())
}
