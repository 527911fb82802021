//! Dual stack and IPv6 only, end to end: real tortie-node processes in the
//! lab's network namespaces (`tortiectl lab --stack dual|ipv6`), pods made
//! by tortie-cni with an IPv4 and an IPv6 address (or IPv6 alone), an IPv4
//! pool (10.244.0.0/16, blocks /26) and an IPv6 pool (fd00:10:244::/48,
//! blocks /122, Calico's IPv6 default), torn down when each test ends, also
//! on failure.
//!
//! ```text
//!   subnet A 172.30.1.0/24, fd30:1::/64        subnet B 172.30.2.0/24, fd30:2::/64
//!   node1 .11 ::11   node2 .12 ::12 ── router .1 ::1 | .1 ::1 ── node3 .13 ::13
//! ```
//!
//! The router knows only the node subnets. The pools are VXLAN
//! CrossSubnet: IPv4 through `vxlan.tortie`, IPv6 through
//! `vxlan-v6.tortie` (IPIP carries IPv4 only). The mesh runs one session
//! per pair of nodes over IPv4 carrying both families (MP-BGP, RFC 4760);
//! IPv6-only nodes peer over IPv6.
//!
//! Checks, per test (numbered in each).

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tortie_ctl::lab::{net, Encap, Lab, Signal, Stack};
use tortie_tests::lab::{bin_dir, block6, mesh_off, node_resource, route_line, routes6, spec};
use tortie_tests::tor::{bird_here, rack_args, rack_peer, BirdTor};
use tortie_tests::wait_until;

const MESH: Duration = Duration::from_secs(45);

/// A lab of three nodes with `stack`, a name unique to this process.
fn lab(prefix: &str, stack: Stack, encap: Encap) -> Result<Lab> {
    let mut spec = spec(prefix, 3)?;
    spec.stack = stack;
    spec.encap = encap;
    Lab::up(spec)
}

/// Waits until node `i` has `n` peers, all Established; returns them.
fn established(lab: &Lab, i: usize, n: usize) -> Result<Vec<Value>> {
    wait_until(Duration::from_secs(20), "peers Established", || {
        let p = tortie_tests::lab::peers(lab, i).map_err(|e| e.to_string())?;
        if p.len() == n && p.iter().all(|p| p["state"] == "Established") {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    })
}

/// Checks of a dual-stack mesh:
/// 1. Every pod reaches every other over IPv4 and over IPv6 (same subnet
///    and across the router).
/// 2. Each pod has its /128 on its host veth; each node blackholes its
///    own IPv6 block.
/// 3. node1 reaches node2's IPv6 block directly (`via fd30:1::12 dev
///    eth0`), node3's through `vxlan-v6.tortie` at node3's IPv6 VTEP;
///    node3 reaches both through the tunnel.
/// 4. `vxlan-v6.tortie` is VNI 6096 over node1's IPv6 address, with a
///    permanent neighbour (node3's VTEP, its Node's `ipv6VXLANTunnelAddr`
///    -> the MAC of node3's device) and an FDB entry (-> fd30:2::13).
///    `tortie-node --check --ip6 autodetect` on node1 finds fd30:1::11/64.
/// 5. The mesh: two sessions per node (over IPv4), Established; each node
///    announces its two blocks (one per family) and learned four; its
///    `/status` has its IPv6 address.
/// 6. Nothing failed in the dataplane; no problem reported.
#[test]
fn dual_stack_pods_reach_each_other_over_both_families() -> Result<()> {
    let lab = lab("d", Stack::Dual, Encap::Vxlan)?;
    // 1.
    lab.wait_full_mesh(MESH)?;
    for p in &lab.pods {
        assert_eq!(p.addresses().len(), 2, "{p:?}");
    }
    // 2.
    for (i, n) in lab.nodes.iter().enumerate() {
        let r = routes6(&lab, i);
        let pod = lab.pods.iter().find(|p| p.node == n.name).unwrap();
        let host = route_line(&r, &pod.address6.unwrap().to_string())
            .with_context(|| format!("{}: no /128 of its pod:\n{r}", n.name))?;
        assert!(
            host.contains(" dev tort") && host.contains("proto 116"),
            "{host}"
        );
        assert!(
            r.contains(&format!("blackhole {} ", block6(&lab, i))),
            "{}:\n{r}",
            n.name
        );
    }
    // 3.
    let r1 = routes6(&lab, 0);
    let direct = route_line(&r1, &block6(&lab, 1)).context("node2's block")?;
    assert!(
        direct.contains("via fd30:1::12 dev eth0 proto 116"),
        "{direct}\n{r1}"
    );
    let node3 = node_resource(&lab, "node3")?;
    let vtep3 = node3["spec"]["ipv6VXLANTunnelAddr"]
        .as_str()
        .with_context(|| format!("node3 has no IPv6 VTEP: {node3}"))?
        .to_string();
    let tunnel = route_line(&r1, &block6(&lab, 2)).context("node3's block")?;
    assert!(
        tunnel.contains(&format!("via {vtep3} dev vxlan-v6.tortie proto 116"))
            && tunnel.contains("onlink"),
        "{tunnel}\n{r1}"
    );
    let r3 = routes6(&lab, 2);
    for b in [block6(&lab, 0), block6(&lab, 1)] {
        let l = route_line(&r3, &b).with_context(|| format!("node3 lacks {b}:\n{r3}"))?;
        assert!(l.contains("dev vxlan-v6.tortie"), "{l}");
    }
    // 4.
    let ns1 = &lab.nodes[0].ns;
    let link = net::ip_in_output(ns1, &["-d", "link", "show", "vxlan-v6.tortie"])?;
    assert!(
        link.contains("vxlan id 6096") && link.contains("local fd30:1::11"),
        "{link}"
    );
    let neigh = net::ip_in_output(ns1, &["-6", "neigh", "show", "dev", "vxlan-v6.tortie"])?;
    // node3's device MAC, as node3 has it.
    let link3 = net::ip_in_output(&lab.nodes[2].ns, &["link", "show", "vxlan-v6.tortie"])?;
    let mac3 = link3
        .split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .with_context(|| format!("node3's vxlan-v6.tortie: {link3}"))?
        .to_string();
    assert!(
        neigh.lines().any(|l| l.starts_with(&format!("{vtep3} "))
            && l.contains(&mac3)
            && l.contains("PERMANENT")),
        "{neigh}"
    );
    let fdb = net::run(
        "ip",
        &[
            "netns",
            "exec",
            ns1,
            "bridge",
            "fdb",
            "show",
            "dev",
            "vxlan-v6.tortie",
        ],
    )?;
    assert!(
        fdb.lines()
            .any(|l| l.starts_with(&mac3) && l.contains("dst fd30:2::13")),
        "{fdb}"
    );
    // `--ip6 autodetect` finds node1's IPv6 address on the interface of
    // its IPv4 one.
    let out = Command::new("ip")
        .args(["netns", "exec", ns1])
        .arg(bin_dir().join("tortie-node"))
        .args(["--check", "--node-name", "node1", "--ip", "172.30.1.11/24"])
        .args(["--ip6", "autodetect"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.starts_with(
                "OK: node node1 at 172.30.1.11/24 and fd30:1::11/64 on eth0, router ID 172.30.1.11"
            ),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 5.
    for i in 0..3 {
        let peers = established(&lab, i, 2)?;
        assert!(
            peers.iter().all(|p| p["address"]
                .as_str()
                .is_some_and(|a| a.starts_with("172.30."))),
            "the mesh runs over IPv4: {peers:?}"
        );
        let s = wait_until(Duration::from_secs(10), "four learned blocks", || {
            let s = lab.node_status(i).map_err(|e| e.to_string())?;
            if s["learned"] == 4 {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        })?;
        let originated: Vec<&str> = s["originated"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(originated.len(), 2, "{s}");
        assert!(originated.contains(&block6(&lab, i).as_str()), "{s}");
        let v6 = format!("{}/64", lab.nodes[i].address6.unwrap());
        assert_eq!(s["addressV6"], v6.as_str(), "{s}");
        // 6.
        assert_eq!(s["problems"].as_array().map(Vec::len), Some(0), "{s}");
        assert_eq!(
            s["dataplane"]["failures"].as_array().map(Vec::len),
            Some(0),
            "{s}"
        );
    }
    Ok(())
}

/// Graceful restart keeps IPv6 forwarding too:
/// 1. Pods on node1 (same subnet) and node3 (across, through
///    `vxlan-v6.tortie`) ping node2's pod over IPv6 at 100 packets/s while
///    node2's agent is killed (`kill -9`) and started again: not one
///    packet lost.
/// 2. The restarted agent runs with the R bit; every pod again reaches
///    every other over both families.
#[test]
fn kill_9_of_an_agent_loses_no_ipv6_packet() -> Result<()> {
    let mut lab = lab("k", Stack::Dual, Encap::Vxlan)?;
    lab.wait_full_mesh(MESH)?;
    for i in 0..3 {
        established(&lab, i, 2)?;
    }
    // 1.
    let target = lab
        .pods
        .iter()
        .find(|p| p.node == "node2")
        .and_then(|p| p.address6)
        .context("node2's pod's IPv6 address")?
        .to_string();
    let mut pings = Vec::new();
    for p in lab.pods.iter().filter(|p| p.node != "node2") {
        pings.push(
            Command::new("ip")
                .args([
                    "netns", "exec", &p.ns, "ping", "-q", "-i", "0.01", "-W", "1",
                ])
                .args(["-c", "800", &target])
                .stdout(std::process::Stdio::piped())
                .spawn()?,
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    lab.stop_node(1, Signal::SIGKILL)?;
    std::thread::sleep(Duration::from_millis(500));
    lab.start_node(1)?;
    for c in pings {
        let out = c.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("800 packets transmitted, 800 received"),
            "IPv6 packets lost across a kill -9 of node2's agent:\n{text}"
        );
    }
    // 2.
    let s = wait_until(Duration::from_secs(10), "node2 running", || {
        let s = lab.node_status(1).map_err(|e| e.to_string())?;
        if s["phase"] == "running" {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })?;
    assert_eq!(s["restarting"], true, "{s}");
    lab.wait_full_mesh(MESH)?;
    Ok(())
}

/// Checks of an IPv6-only cluster (no IPv4 on nodes or pods, only the
/// IPv6 pool; router IDs by `--router-id hash`):
/// 1. Every pod reaches every other over IPv6.
/// 2. The mesh runs over IPv6: two Established sessions per node at the
///    others' IPv6 addresses; router IDs differ.
/// 3. node1: node2's block direct, node3's through `vxlan-v6.tortie`; no
///    IPv4 route of ours and no `vxlan.tortie`.
/// 4. The Nodes have `ipv6Address` and no `ipv4Address`.
/// 5. An IPv6-only node without a router ID is refused at start, naming
///    the setting.
#[test]
fn ipv6_only_cluster() -> Result<()> {
    let lab = lab("s", Stack::Ipv6, Encap::Vxlan)?;
    // 1.
    lab.wait_full_mesh(MESH)?;
    for p in &lab.pods {
        assert!(p.address.is_unspecified() && p.address6.is_some(), "{p:?}");
    }
    // 2.
    let mut ids = Vec::new();
    for i in 0..3 {
        let peers = established(&lab, i, 2)?;
        assert!(
            peers.iter().all(|p| p["address"]
                .as_str()
                .is_some_and(|a| a.starts_with("fd30:"))),
            "{peers:?}"
        );
        ids.push(lab.node_status(i)?["routerId"].to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "router IDs: {ids:?}");
    // 3.
    let r1 = routes6(&lab, 0);
    let direct = route_line(&r1, &block6(&lab, 1)).context("node2's block")?;
    assert!(direct.contains("via fd30:1::12 dev eth0 proto 116"), "{r1}");
    let tunnel = route_line(&r1, &block6(&lab, 2)).context("node3's block")?;
    assert!(tunnel.contains("dev vxlan-v6.tortie"), "{r1}");
    let v4 = net::ip_in_output(&lab.nodes[0].ns, &["route"])?;
    assert!(!v4.contains("proto 116"), "{v4}");
    let links = net::ip_in_output(&lab.nodes[0].ns, &["link"])?;
    assert!(!links.contains("vxlan.tortie:"), "{links}");
    // 4.
    let node1 = node_resource(&lab, "node1")?;
    assert_eq!(
        node1["spec"]["bgp"]["ipv6Address"], "fd30:1::11/64",
        "{node1}"
    );
    assert!(node1["spec"]["bgp"]["ipv4Address"].is_null(), "{node1}");
    // 5.
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.nodes[0].ns])
        .arg(bin_dir().join("tortie-node"))
        .args(["--check", "--node-name", "node1", "--ip", "fd30:1::11/64"])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("no BGP router ID: the node's address fd30:1::11 is IPv6")
            && err.contains("routerId (--router-id, TORTIE_ROUTER_ID)"),
        "{err}"
    );
    Ok(())
}

/// The ToR peers over IPv6 too (eBGP, each node its own AS, no mesh, no
/// encapsulation: the ToR routes between the subnets with what it learns).
///
/// Checks:
/// 1. Every pod reaches every other over IPv4 and IPv6.
/// 2. Each node has two sessions with its ToR address pair, both
///    Established; on each it announced exactly its block of that
///    session's family.
/// 3. BIRD learned every node's IPv6 block over the IPv6 sessions and
///    programmed it via the node's IPv6 address.
/// 4. node1 reaches node3's IPv6 block through the ToR
///    (`via fd30:1::1 dev eth0`), with no tunnel device.
#[test]
fn bird_tor_peers_over_ipv6_and_routes_the_v6_blocks() -> Result<()> {
    if !bird_here("bird_tor_peers_over_ipv6_and_routes_the_v6_blocks") {
        return Ok(());
    }
    let mut spec = spec("q", 3)?;
    spec.stack = Stack::Dual;
    spec.encap = Encap::None;
    // Each rack's nodes peer with both of its ToR's addresses.
    spec.resources = mesh_off(&[
        ("tor-a", &rack_peer("a", "172.30.1.1", 65000)),
        ("tor-a6", &rack_peer("a", "fd30:1::1", 65000)),
        ("tor-b", &rack_peer("b", "172.30.2.1", 65000)),
        ("tor-b6", &rack_peer("b", "fd30:2::1", 65000)),
    ]);
    for (i, asn) in [65001, 65002, 65003].iter().enumerate() {
        let rack = if i < 2 { "a" } else { "b" };
        spec.per_node_args.insert(i + 1, rack_args(*asn, rack));
    }
    let lab = Lab::up(spec)?;
    // AS 65000, an IPv4 and an IPv6 session to each node.
    let mut conf = String::from(
        "router id 172.30.1.1;\nprotocol device {}\nprotocol direct { ipv4; ipv6; }\n\
         protocol kernel { ipv4 { export where source = RTS_BGP; }; }\n\
         protocol kernel { ipv6 { export where source = RTS_BGP; }; }\n\
         template bgp v4 { local as 65000; ipv4 { import all; export where source = RTS_BGP; }; }\n\
         template bgp v6 { local as 65000; ipv6 { import all; export where source = RTS_BGP; }; }\n",
    );
    for (i, n) in lab.nodes.iter().enumerate() {
        let asn = 65001 + i;
        conf += &format!(
            "protocol bgp n{i} from v4 {{ neighbor {} as {asn}; }}\n",
            n.address
        );
        conf += &format!(
            "protocol bgp n{i}v6 from v6 {{ neighbor {} as {asn}; }}\n",
            n.address6.context("dual stack")?
        );
    }
    let tor = BirdTor::start_conf(&lab, &lab.router, "bird", &conf)?;
    // 1.
    lab.wait_full_mesh(MESH)
        .with_context(|| format!("ToR:\n{}", tor.show(&["route", "all"]).unwrap_or_default()))?;
    // 2.
    for (i, n) in lab.nodes.iter().enumerate() {
        let peers = established(&lab, i, 2)?;
        for p in &peers {
            let v6 = p["address"].as_str().is_some_and(|a| a.contains(':'));
            let want = if v6 { "fd30:" } else { "172.30." };
            assert!(p["address"].as_str().unwrap_or("").starts_with(want), "{p}");
            assert_eq!(p["prefixesAdvertised"], 1, "{}: {p}", n.name);
        }
        assert!(
            peers
                .iter()
                .any(|p| p["address"].as_str().is_some_and(|a| a.contains(':'))),
            "{peers:?}"
        );
    }
    // 3.
    let kernel = net::ip_in_output(&lab.router, &["-6", "route"])?;
    for (i, n) in lab.nodes.iter().enumerate() {
        let b = block6(&lab, i);
        let l =
            route_line(&kernel, &b).with_context(|| format!("ToR kernel lacks {b}:\n{kernel}"))?;
        let via = format!("via {} ", n.address6.unwrap());
        if !l.contains(&via) {
            bail!("ToR: {b} not {via}: {l}");
        }
    }
    // 4.
    let r1 = routes6(&lab, 0);
    let l = route_line(&r1, &block6(&lab, 2)).context("node1 lacks node3's block")?;
    assert!(l.contains("via fd30:1::1 dev eth0 proto 116"), "{r1}");
    assert!(!r1.contains("vxlan"), "{r1}");
    Ok(())
}
