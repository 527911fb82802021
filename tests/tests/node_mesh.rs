//! tortie-node in a cluster: real tortie-node processes in network
//! namespaces on a shared file datastore, pods made by tortie-cni (the
//! lab of `tortiectl lab`, torn down when each test ends, also on failure).
//!
//! ```text
//!   subnet A 172.30.1.0/24            subnet B 172.30.2.0/24
//!   node1 .11  node2 .12 ── router ── node3 .13
//! ```
//!
//! Checks, per test (numbered in each):
//! - mesh: every pod reaches every other; same-subnet blocks are routed
//!   directly, the cross-subnet block through the tunnel; the peer tables
//!   show the node-to-node mesh Established.
//! - join/leave: a fourth node and its pod join the mesh; a deleted pod's
//!   route goes; a node deleted from the datastore leaves every peer table
//!   and its block's route goes.
//! - restart: `kill -9`, and SIGTERM then a new start, of node2's agent
//!   while pods on node1 and node3 ping a pod on node2 at 100 packets/s:
//!   not one packet lost.

use std::time::Duration;

use anyhow::{Context, Result};
use tortie_ctl::lab::{Encap, Lab, Signal};
use tortie_tests::lab::{block4, ping_during, spec};
use tortie_tests::wait_until;

/// A lab of `nodes` nodes with a name unique to this process and test.
fn lab(nodes: usize, encap: Encap) -> Result<Lab> {
    lab_on(nodes, encap, false)
}

/// The same, on a real etcd when `etcd`.
fn lab_on(nodes: usize, encap: Encap, etcd: bool) -> Result<Lab> {
    let mut spec = spec("t", nodes)?;
    spec.encap = encap;
    spec.etcd = etcd;
    Lab::up(spec)
}

fn routes(lab: &Lab, i: usize) -> String {
    tortie_ctl::lab::net::ip_in_output(&lab.nodes[i].ns, &["route"]).unwrap_or_default()
}

/// The peers of node `i` as `address state type`.
fn peers(lab: &Lab, i: usize) -> Result<Vec<String>> {
    Ok(tortie_tests::lab::peers(lab, i)?
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p["address"].as_str().unwrap_or(""),
                p["state"].as_str().unwrap_or(""),
                p["type"].as_str().unwrap_or("")
            )
        })
        .collect())
}

#[test]
fn mesh_of_three_routes_directly_within_a_subnet_and_tunnels_across() -> Result<()> {
    mesh_of_three(false)
}

#[test]
fn mesh_of_three_on_a_real_etcd() -> Result<()> {
    mesh_of_three(true)
}

fn mesh_of_three(etcd: bool) -> Result<()> {
    let lab = lab_on(3, Encap::Vxlan, etcd)?;
    // 1. Every pod reaches every other.
    lab.wait_full_mesh(Duration::from_secs(30))?;
    // 2. node1 reaches node2's block directly, node3's through vxlan.tortie;
    //    node3 reaches both through the tunnel.
    let r1 = routes(&lab, 0);
    let b2 = block4(&lab, 1);
    let b3 = block4(&lab, 2);
    assert!(
        r1.contains(&format!("{b2} via 172.30.1.12 dev eth0 proto 116")),
        "{r1}"
    );
    assert!(
        r1.lines()
            .any(|l| l.starts_with(&b3) && l.contains("dev vxlan.tortie") && l.contains("onlink")),
        "{r1}"
    );
    let r3 = routes(&lab, 2);
    assert!(
        r3.lines()
            .filter(|l| l.contains("dev vxlan.tortie"))
            .count()
            == 2,
        "{r3}"
    );
    // Own block blackholed, own pod on its veth.
    assert!(
        r1.contains(&format!("blackhole {}", block4(&lab, 0))),
        "{r1}"
    );
    // 3. The peer tables: the mesh, Established.
    for i in 0..3 {
        let p = wait_until(Duration::from_secs(10), "mesh Established", || {
            let p = peers(&lab, i).map_err(|e| e.to_string())?;
            if p.len() == 2
                && p.iter()
                    .all(|l| l.contains(" Established node-to-node mesh"))
            {
                Ok(p)
            } else {
                Err(format!("{p:?}"))
            }
        })?;
        assert_eq!(p.len(), 2);
    }
    // 4. Nothing failed; the datastore is the one asked for.
    let s = lab.node_status(0)?;
    let location = s["datastore"]["location"].as_str().unwrap_or("");
    assert_eq!(location.starts_with("etcd:"), etcd, "{s}");
    assert_eq!(s["phase"], "running");
    assert_eq!(s["problems"].as_array().map(Vec::len), Some(0), "{s}");
    assert_eq!(
        s["dataplane"]["failures"].as_array().map(Vec::len),
        Some(0),
        "{s}"
    );
    Ok(())
}

#[test]
fn nodes_join_and_leave_and_pod_routes_follow() -> Result<()> {
    let mut lab = lab(3, Encap::Vxlan)?;
    lab.wait_full_mesh(Duration::from_secs(30))?;
    // 1. A fourth node joins subnet A with a pod: every pod reaches it.
    let n4 = lab.add_node()?;
    let pod4 = lab.add_pod(n4)?;
    lab.wait_full_mesh(Duration::from_secs(30))?;
    assert_eq!(peers(&lab, 0)?.len(), 3);
    // 2. A second pod on node3, then it is deleted: its route on node3 goes
    //    and the others still reach the first.
    let extra = lab.add_pod(2)?;
    lab.wait_full_mesh(Duration::from_secs(30))?;
    let host = format!("{} dev tort", extra.address);
    assert!(routes(&lab, 2).contains(&host), "{}", routes(&lab, 2));
    lab.delete_pod(&extra.name)?;
    wait_until(
        Duration::from_secs(10),
        "the deleted pod's route to go",
        || {
            let r = routes(&lab, 2);
            if r.contains(&host) {
                Err(r)
            } else {
                Ok(())
            }
        },
    )?;
    lab.wait_full_mesh(Duration::from_secs(30))?;
    // 3. node4 leaves: its agent stops and its Node is deleted. Every peer
    //    table loses it and its block's route goes.
    let b4 = block4(&lab, n4);
    lab.delete_pod(&pod4.name)?;
    lab.stop_node(n4, Signal::SIGTERM)?;
    lab.tortiectl(&["delete", "node", "node4"])?;
    for i in 0..3 {
        wait_until(Duration::from_secs(10), "node4 to leave", || {
            let p = peers(&lab, i).map_err(|e| e.to_string())?;
            let r = routes(&lab, i);
            if p.iter().any(|l| l.starts_with("172.30.1.14 ")) || r.contains(&b4) {
                Err(format!("{p:?}\n{r}"))
            } else {
                Ok(())
            }
        })?;
    }
    lab.wait_full_mesh(Duration::from_secs(30))?;
    Ok(())
}

fn restart_loses_nothing(signal: Signal) -> Result<()> {
    let mut lab = lab(3, Encap::Vxlan)?;
    lab.wait_full_mesh(Duration::from_secs(30))?;
    // Every session up before the restart (so peers keep our routes).
    for i in 0..3 {
        wait_until(Duration::from_secs(10), "mesh Established", || {
            let p = peers(&lab, i).map_err(|e| e.to_string())?;
            if p.iter().all(|l| l.contains(" Established ")) {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        })?;
    }
    // node2's pod is the target; pods on node1 (same subnet) and node3
    // (across the router) ping it.
    let target = lab
        .pods
        .iter()
        .position(|p| p.node == "node2")
        .context("pod on node2")?;
    let results = ping_during(&mut lab, target, 800, |lab| {
        lab.stop_node(1, signal)?;
        std::thread::sleep(Duration::from_millis(500));
        lab.start_node(1)?;
        Ok(())
    })?;
    for (sent, received) in &results {
        assert_eq!(
            sent,
            received,
            "lost {} of {sent} packets across a {signal} restart: {results:?}",
            sent - received
        );
        assert_eq!(*sent, 800);
    }
    // The restarted agent came back with the R bit and is running.
    let s = wait_until(Duration::from_secs(10), "node2 running", || {
        let s = lab.node_status(1).map_err(|e| e.to_string())?;
        if s["phase"] == "running" {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })?;
    assert_eq!(s["restarting"], true, "{s}");
    lab.wait_full_mesh(Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn kill_9_of_an_agent_loses_no_packet() -> Result<()> {
    restart_loses_nothing(Signal::SIGKILL)
}

#[test]
fn sigterm_and_restart_of_an_agent_loses_no_packet() -> Result<()> {
    restart_loses_nothing(Signal::SIGTERM)
}
