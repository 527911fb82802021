//! `tortiectl node status` of every node, from the datastore: each
//! tortie-node writes its BGP sessions into its `CalicoNodeStatus`, and
//! tortiectl (pointed at the lab's datastore, no admin address) shows a
//! table per node. Real tortie-node processes in network namespaces (the
//! lab of `tortiectl lab`), on the file datastore and on a real
//! kube-apiserver (CRDs of `deploy/crds.yaml`, status subresource).
//!
//! ```text
//!   subnet A 172.30.1.0/24            subnet B 172.30.2.0/24
//!   node1 .11  node2 .12 ── router ── node3 .13
//! ```
//!
//! 1. Every node's status shows its two mesh sessions Established, fresh
//!    (table and JSON); `--node node2` shows node2 alone.
//! 2. A user's Calico document gives node3's object a period of 1 s and
//!    the class Routes: its lastUpdated moves on at that pace (the spec
//!    applied, the status kept by the node), and its `status.routes`
//!    lists node1's and node2's blocks (learned over the mesh: FIB,
//!    `NodeMesh` from that node, with the gateway and interface of
//!    node3's kernel route), node3's own block (FIB, `blackhole`,
//!    `Static`), node3's pod (FIB, its veth, `Kernel`) and node3's
//!    subnet (FIB, `Direct`); node1's own object (Agent, BGP) has none.
//! 3. node3's tortie-node is killed (SIGKILL): node1's and node2's
//!    statuses show their session to node3 no longer Established, and
//!    node3's status is flagged stale (3 periods without a write).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tortie_ctl::lab::{net, Encap, Lab, Signal};
use tortie_tests::lab::{apply, spec};
use tortie_tests::wait_until;

#[test]
fn every_nodes_sessions_on_the_file_datastore() -> Result<()> {
    every_nodes_sessions(false)
}

#[test]
fn every_nodes_sessions_on_the_kubernetes_datastore() -> Result<()> {
    let cache = tortie_testkit::k8s::cache();
    if !cache.join("bin/kube-apiserver").exists() {
        tortie_testkit::missing(
            "node_status_all (kubernetes)",
            &format!("no Kubernetes in {} (scripts/k8s.sh all)", cache.display()),
        );
        return Ok(());
    }
    every_nodes_sessions(true)
}

/// `tortiectl node status -o json` against the lab's datastore.
fn cluster_status(lab: &Lab, args: &[&str]) -> Result<Value> {
    let mut argv = vec!["node", "status", "-o", "json"];
    argv.extend_from_slice(args);
    let out = lab.tortiectl(&argv)?;
    serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))
}

/// The view of node `name` in a `node status -o json` answer.
fn node<'a>(view: &'a Value, name: &str) -> Option<&'a Value> {
    view["nodes"].as_array()?.iter().find(|n| n["node"] == name)
}

/// Node `name`'s peers as `address state type`.
fn peers(view: &Value, name: &str) -> Vec<String> {
    node(view, name)
        .and_then(|n| n["peers"].as_array())
        .map(|peers| {
            peers
                .iter()
                .map(|p| {
                    format!(
                        "{} {} {}",
                        p["peerIP"].as_str().unwrap_or(""),
                        p["state"].as_str().unwrap_or(""),
                        p["type"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `status` of the `CalicoNodeStatus` `name`, from the datastore.
fn object_status(lab: &Lab, name: &str) -> Result<Value> {
    let out = lab.tortiectl(&["get", "caliconodestatus", name, "-o", "json"])?;
    let v: Value = serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))?;
    Ok(v[0]["status"].clone())
}

/// The entry of `destination` in `status.routes.routesV4` as `type
/// gateway interface sourceType peerIP` (`-` where absent).
fn route_entry(status: &Value, destination: &str) -> Option<String> {
    let r = status["routes"]["routesV4"]
        .as_array()?
        .iter()
        .find(|r| r["destination"] == destination)?;
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    Some(format!(
        "{} {} {} {} {}",
        text(&r["type"]),
        text(&r["gateway"]),
        text(&r["interface"]),
        text(&r["learnedFrom"]["sourceType"]),
        text(&r["learnedFrom"]["peerIP"]),
    ))
}

/// `(gateway, interface)` of the kernel route of `destination` in
/// namespace `ns` (`N/A` without a gateway, as Calico writes it).
fn kernel_route(ns: &str, destination: &str) -> Result<(String, String)> {
    let line = net::ip_in_output(ns, &["-4", "route", "show", destination])?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .map(|w| w.to_string())
    };
    let dev = after("dev").with_context(|| format!("no dev in {line:?}"))?;
    Ok((after("via").unwrap_or_else(|| "N/A".into()), dev))
}

/// The block a node announces (its `/status` `originated`).
fn block_of(lab: &Lab, i: usize) -> Result<String> {
    let s = lab.node_status(i)?;
    s["originated"]
        .as_array()
        .and_then(|o| o.iter().find_map(|p| p.as_str()))
        .map(String::from)
        .with_context(|| format!("node{} announces no block: {s}", i + 1))
}

fn every_nodes_sessions(kubernetes: bool) -> Result<()> {
    let mut spec = spec("ns", 3)?;
    spec.encap = Encap::Vxlan;
    spec.kubernetes = kubernetes;
    let mut lab = Lab::up(spec)?;
    let names: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
    let addresses: Vec<String> = lab.nodes.iter().map(|n| n.address.to_string()).collect();

    // 1. Every node's mesh, Established, from the datastore alone.
    let view = wait_until(
        Duration::from_secs(60),
        "every node's mesh Established",
        || {
            let view = cluster_status(&lab, &[]).map_err(|e| format!("{e:#}"))?;
            for (i, name) in names.iter().enumerate() {
                let n = node(&view, name).ok_or(format!("no status of {name}: {view}"))?;
                let mut want: Vec<String> = addresses
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, a)| format!("{a} Established NodeMesh"))
                    .collect();
                want.sort();
                let mut got = peers(&view, name);
                got.sort();
                if got != want || n["stale"] != false {
                    return Err(format!("{name}: {got:?} (stale {})", n["stale"]));
                }
            }
            Ok(view)
        },
    )?;
    assert_eq!(view["silent"], serde_json::json!([]), "{view}");
    let table = lab.tortiectl(&["node", "status"])?;
    for name in &names {
        assert!(
            table.contains(&format!("Node {name} (CalicoNodeStatus/{name}): updated ")),
            "{table}"
        );
    }
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains("| node-to-node mesh | Established |"))
            .count(),
        6,
        "{table}"
    );
    assert!(!table.contains("STALE"), "{table}");
    let one = lab.tortiectl(&["node", "status", "--node", "node2"])?;
    assert!(
        one.starts_with("Node node2 (CalicoNodeStatus/node2)"),
        "{one}"
    );
    assert!(
        !one.contains("Node node1") && !one.contains("Node node3"),
        "{one}"
    );
    if kubernetes {
        let listed = lab.kubectl(&["get", "caliconodestatuses"])?;
        for name in &names {
            assert!(
                listed.lines().any(|l| l.starts_with(&format!("{name} "))),
                "{listed}"
            );
        }
    }

    // 2. node3's object, as a Calico user writes it: a 1 s period, and
    // the routes.
    apply(
        &lab,
        "node3-status",
        "apiVersion: projectcalico.org/v3\nkind: CalicoNodeStatus\nmetadata:\n  name: node3\n\
         spec:\n  node: node3\n  classes: [Agent, BGP, Routes]\n  updatePeriodSeconds: 1\n",
    )?;
    let updated = |view: &Value| -> Option<String> {
        node(view, "node3")?["lastUpdated"]
            .as_str()
            .map(String::from)
    };
    let first = wait_until(Duration::from_secs(20), "node3's period of 1 s", || {
        let view = cluster_status(&lab, &["--node", "node3"]).map_err(|e| format!("{e:#}"))?;
        match node(&view, "node3") {
            Some(n) if n["staleAfterSeconds"] == 3 && n["stale"] == false => {
                updated(&view).ok_or(format!("{view}"))
            }
            _ => Err(format!("{view}")),
        }
    })?;
    wait_until(Duration::from_secs(10), "node3's status refreshed", || {
        let view = cluster_status(&lab, &["--node", "node3"]).map_err(|e| format!("{e:#}"))?;
        match updated(&view) {
            Some(t) if t > first => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })?;
    // Its routes, against node3's kernel.
    let ns3 = lab.nodes[2].ns.clone();
    let mut want: Vec<(String, String)> = Vec::new();
    for (i, address) in addresses[..2].iter().enumerate() {
        let block = block_of(&lab, i)?;
        let (gateway, dev) = kernel_route(&ns3, &block)?;
        want.push((block, format!("FIB {gateway} {dev} NodeMesh {address}")));
    }
    let block3 = block_of(&lab, 2)?;
    want.push((block3.clone(), "FIB N/A blackhole Static -".into()));
    let pod3 = lab
        .pods
        .iter()
        .find(|p| p.node == "node3")
        .context("no pod on node3")?;
    let pod3 = format!("{}/32", pod3.address);
    let (_, veth) = kernel_route(&ns3, &pod3)?;
    assert!(veth.starts_with("tort"), "{pod3} dev {veth}");
    want.push((pod3, format!("FIB N/A {veth} Kernel -")));
    let underlay = lab.node_status(2)?["interface"]
        .as_str()
        .context("node3's interface")?
        .to_string();
    want.push((
        "172.30.2.0/24".into(),
        format!("FIB N/A {underlay} Direct -"),
    ));
    let routes = wait_until(Duration::from_secs(20), "node3's routes", || {
        let status = object_status(&lab, "node3").map_err(|e| format!("{e:#}"))?;
        for (destination, entry) in &want {
            let got = route_entry(&status, destination);
            if got.as_deref() != Some(entry.as_str()) {
                return Err(format!("{destination}: {got:?}, want {entry:?}: {status}"));
            }
        }
        Ok(status["routes"].clone())
    })?;
    assert!(routes.get("truncatedV4").is_none(), "{routes}");
    let kernel3 = net::ip_in_output(&ns3, &["-4", "route", "show", &block3])?;
    assert!(
        kernel3.starts_with(&format!("blackhole {block3}")),
        "node3's block in its kernel: {kernel3}"
    );
    let own = object_status(&lab, "node1")?;
    assert!(own["bgp"]["peersV4"].is_array(), "{own}");
    assert!(own.get("routes").is_none(), "class Routes not asked: {own}");

    // 3. node3 dies: the others see its sessions go, its status goes stale.
    lab.stop_node(2, Signal::SIGKILL)?;
    let node3 = &addresses[2];
    let view = wait_until(
        Duration::from_secs(30),
        "node3 down, seen from the datastore",
        || {
            let view = cluster_status(&lab, &[]).map_err(|e| format!("{e:#}"))?;
            for name in &names[..2] {
                let p = peers(&view, name);
                let to3 = p.iter().find(|l| l.starts_with(&format!("{node3} ")));
                match to3 {
                    Some(l) if !l.contains(" Established ") => {}
                    other => return Err(format!("{name}'s session to node3: {other:?}")),
                }
            }
            if node(&view, "node3").is_some_and(|n| n["stale"] == true) {
                Ok(view)
            } else {
                Err(format!("node3 not stale yet: {:?}", node(&view, "node3")))
            }
        },
    )?;
    // node1 and node2 still have each other.
    assert!(
        peers(&view, "node1").contains(&format!("{} Established NodeMesh", addresses[1])),
        "{view}"
    );
    let table = lab.tortiectl(&["node", "status"])?;
    let stale: Vec<&str> = table.lines().filter(|l| l.contains("STALE")).collect();
    if stale.len() != 1 || !stale[0].starts_with("Node node3 (CalicoNodeStatus/node3): STALE") {
        bail!("node3 alone should be flagged stale:\n{table}");
    }
    Ok(())
}
