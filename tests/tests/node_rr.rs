//! tortie-node with route reflectors instead of the mesh: two reflectors,
//! a `tortie-rr` process and a node that reflects (its Node has a
//! `routeReflectorClusterID`), four nodes, pods on each.
//!
//! ```text
//!   subnet A 172.30.1.0/24                                   subnet B
//!   node1 .11 (reflector 10.0.0.1)  node2 .12  node3 .13  ── router ── node4 .14
//!   tortie-rr .2 (cluster 10.0.0.2, clients: any node of 172.30.0.0/16)
//! ```
//!
//! Resources: the mesh off; BGPPeer `to-rr-nodes` (every node peers with
//! the nodes labelled `route-reflector=true`, which makes those reflect to
//! it); BGPPeer `to-tortie-rr` (every node peers with tortie-rr).
//!
//! Checks:
//! 1. Every pod reaches every other; a client's peer table has exactly the
//!    two reflectors; the reflector node's has every other node as a
//!    client, plus tortie-rr.
//! 2. tortie-rr is killed (SIGKILL) while every pod pings a pod on node2 at
//!    100 packets/s: no packet lost, no route lost; it comes back.
//! 3. The reflector node's agent is killed (SIGKILL) and restarted the
//!    same way: no packet lost.

use std::time::Duration;

use anyhow::Result;
use tortie_ctl::lab::{Encap, Lab, Signal};
use tortie_tests::lab::{
    mesh_off, no_loss_during, peer_lines, pod_on, reflector_resources, rr_config, rr_status, spec,
    start_lab_rr, wait_peer_lines, RR_ADMIN,
};
use tortie_tests::wait_until;

#[test]
fn two_reflectors_and_either_may_die() -> Result<()> {
    let mut spec = spec("r", 4)?;
    spec.encap = Encap::Vxlan;
    spec.resources = reflector_resources("172.30.1.2".parse()?);
    spec.reflector(1, "10.0.0.1");
    let mut lab = Lab::up(spec)?;
    let (rr_ns, rr_addr) = lab.add_host("rr")?;
    assert_eq!(rr_addr.to_string(), "172.30.1.2");
    let conf = rr_config("172.30.1.2", "10.0.0.2", "0.0.0.0:179", "172.30.0.0/16");
    let mut rr = start_lab_rr(&lab, &rr_ns, "rr", &conf)?;

    // 1. Pods reach each other through the reflectors; the peer tables.
    lab.wait_full_mesh(Duration::from_secs(30))?;
    let reflector = [
        "172.30.1.2 Established",
        "172.30.1.12 Established client",
        "172.30.1.13 Established client",
        "172.30.2.14 Established client",
    ];
    wait_peer_lines(&lab, 0, &reflector, Duration::from_secs(15))?;
    for i in 1..4 {
        let client = ["172.30.1.2 Established", "172.30.1.11 Established"];
        wait_peer_lines(&lab, i, &client, Duration::from_secs(15))?;
    }
    let learned = |lab: &Lab, i: usize| {
        lab.node_status(i)
            .map(|s| s["learned"].as_u64().unwrap_or(0))
    };
    assert_eq!(learned(&lab, 3)?, 3, "node4 learns the three other blocks");

    // 2. tortie-rr dies: nothing is lost; then it comes back.
    let target = pod_on(&lab, "node2")?;
    no_loss_during(&mut lab, target, 600, |_| {
        rr.kill()?;
        rr.wait()?;
        Ok(())
    })?;
    assert_eq!(learned(&lab, 3)?, 3, "node4 keeps every block");
    rr = start_lab_rr(&lab, &rr_ns, "rr", &conf)?;
    wait_until(Duration::from_secs(20), "tortie-rr back", || {
        let p = peer_lines(&lab, 3).map_err(|e| e.to_string())?;
        if p.iter().all(|l| l.contains("Established")) {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    })?;

    // 3. The reflector node's agent dies and restarts: nothing is lost.
    no_loss_during(&mut lab, target, 600, |lab| {
        lab.stop_node(0, Signal::SIGKILL)?;
        std::thread::sleep(Duration::from_millis(500));
        lab.start_node(0)
    })?;
    lab.wait_full_mesh(Duration::from_secs(30))?;
    assert_eq!(learned(&lab, 3)?, 3);
    let _ = rr.kill();
    let _ = rr.wait();
    Ok(())
}

/// Two tortie-rr replicas with one cluster id take their clients from the
/// datastore (`datastoreClients`, every Node): no client is listed in
/// their files.
///
/// 1. Every node peers with both replicas; each replica reports three
///    clients; pods reach each other.
/// 2. A fourth node joins: both replicas peer with it without a reload,
///    and its pod is reached.
/// 3. One replica is killed while pods ping: nothing is lost.
#[test]
fn two_tortie_rr_replicas_take_their_clients_from_the_datastore() -> Result<()> {
    let mut spec = spec("q", 3)?;
    spec.encap = Encap::Vxlan;
    spec.resources = mesh_off(&[
        ("rr-a", "peerIP: 172.30.1.2\nasNumber: 64512"),
        ("rr-b", "peerIP: 172.30.1.3\nasNumber: 64512"),
    ]);
    let mut lab = Lab::up(spec)?;
    let store = lab.spec.dir.join("store");
    let mut replicas = Vec::new();
    for (host, addr) in [("rra", "172.30.1.2"), ("rrb", "172.30.1.3")] {
        let (ns, got) = lab.add_host(host)?;
        assert_eq!(got.to_string(), addr);
        let conf = format!(
            "routerId: {addr}\nasNumber: 64512\nclusterId: 10.0.0.9\nlisten: \"0.0.0.0:179\"\n\
             admin: \"{RR_ADMIN}\"\ndatastoreClients:\n  datastore: file:{}\n",
            store.display()
        );
        replicas.push((ns.clone(), start_lab_rr(&lab, &ns, host, &conf)?));
    }
    let rr_clients = |ns: &str| -> Result<u64> {
        Ok(rr_status(ns)?["datastoreClients"]["clients"]
            .as_u64()
            .unwrap_or(0))
    };
    let both = ["172.30.1.2 Established", "172.30.1.3 Established"];
    // 1.
    for i in 0..3 {
        wait_peer_lines(&lab, i, &both, Duration::from_secs(20))?;
    }
    for (ns, _) in &replicas {
        assert_eq!(rr_clients(ns)?, 3);
    }
    lab.wait_full_mesh(Duration::from_secs(30))?;
    // 2.
    let n4 = lab.add_node()?;
    lab.add_pod(n4)?;
    wait_peer_lines(&lab, n4, &both, Duration::from_secs(20))?;
    for (ns, _) in &replicas {
        assert_eq!(rr_clients(ns)?, 4);
    }
    lab.wait_full_mesh(Duration::from_secs(30))?;
    // 3.
    let target = pod_on(&lab, "node2")?;
    let (_, mut first) = replicas.remove(0);
    no_loss_during(&mut lab, target, 600, |_| {
        first.kill()?;
        first.wait()?;
        Ok(())
    })?;
    for (_, mut c) in replicas {
        let _ = c.kill();
        let _ = c.wait();
    }
    Ok(())
}
