//! Bad input to tortie-node, with real agents in the lab (three nodes,
//! the mesh): each problem is reported naming the resource and field, and
//! every other session and route keeps working.
//!
//! 1. A second node claiming node1's address is refused at start, naming
//!    both nodes.
//! 2. BGPPeers with a multicast address, a selector that matches nothing,
//!    and the wrong AS for node2: the first two are problems in node1's
//!    `/status` and `tortie_node_problems`; the third shows in node1's peer
//!    row (both AS numbers); node1 and node3's pods still reach each other.
//! 3. A resources.yaml that stops validating: the error (file, line,
//!    field) is a problem on every node, the last good pools stay, pods
//!    keep reaching each other; fixing the file clears it.
//! 4. The datastore away (etcd killed mid-run): a problem, routes and
//!    pings unaffected; etcd back: the problem clears. An agent started
//!    while etcd is away waits, not ready, naming the datastore.
//! 5. A record another tool wrote to etcd that does not validate: named
//!    with its key and field on every node, the rest applies; deleted,
//!    the problem clears.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tortie_ctl::lab::{get_in, Encap, Lab};
use tortie_tests::lab::{bin_dir, spec};
use tortie_tests::wait_until;

fn lab(etcd: bool, resources: &str) -> Result<Lab> {
    let mut spec = spec("b", 3)?;
    spec.encap = Encap::Vxlan;
    spec.etcd = etcd;
    spec.resources = resources.into();
    let lab = Lab::up(spec)?;
    lab.wait_full_mesh(Duration::from_secs(30))?;
    Ok(lab)
}

fn problems(s: &Value) -> Vec<String> {
    s["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until node `i`'s problems satisfy `ok`; returns them.
fn wait_problems(
    lab: &Lab,
    i: usize,
    what: &str,
    ok: impl Fn(&[String]) -> bool,
) -> Result<Vec<String>> {
    wait_until(Duration::from_secs(20), what, || {
        let s = lab.node_status(i).map_err(|e| e.to_string())?;
        let p = problems(&s);
        if ok(&p) {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    })
}

fn pods_ping(lab: &Lab, a: &str, b: &str) -> bool {
    let from = lab.pods.iter().find(|p| p.node == a).expect("pod");
    let to = lab.pods.iter().find(|p| p.node == b).expect("pod");
    lab.ping(from, to.address, Duration::from_secs(2))
}

#[test]
fn a_second_node_with_an_address_taken_is_refused() -> Result<()> {
    let lab = lab(false, "")?;
    // "node9" in node1's namespace, with node1's address.
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.nodes[0].ns])
        .arg(bin_dir().join("tortie-node"))
        .args([
            "--node-name",
            "node9",
            "--ip",
            "172.30.1.11/24",
            "--admin",
            "127.0.0.1:9199",
        ])
        .arg("--datastore")
        .arg(lab.datastore())
        .arg("--state-dir")
        .arg(lab.spec.dir.join("node9.state"))
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("address 172.30.1.11 is already Node/node1's; this node is node9"),
        "{stderr}"
    );
    // node1 is untouched.
    assert!(lab.tortiectl(&["get", "nodes"])?.contains("node1"));
    assert!(!lab.tortiectl(&["get", "nodes"])?.contains("node9"));
    lab.wait_full_mesh(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn bad_peers_are_named_and_the_rest_keeps_working() -> Result<()> {
    let resources = "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: mcast
spec:
  node: node1
  peerIP: 224.0.0.5
  asNumber: 65000
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: to-reflectors
spec:
  node: node1
  peerSelector: route-reflector == 'true'
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: wrong-as
spec:
  node: node1
  peerIP: 172.30.1.12
  asNumber: 65099
";
    let mut spec = spec("p", 3)?;
    spec.encap = Encap::Vxlan;
    spec.resources = resources.into();
    let lab = Lab::up(spec)?;
    let p = wait_problems(&lab, 0, "node1's problems", |p| p.len() == 2)?;
    assert_eq!(
        p,
        [
            "BGPPeer/mcast: spec.peerIP: 224.0.0.5 is not a unicast address: peer skipped",
            "BGPPeer/to-reflectors: spec.peerSelector: route-reflector == 'true' matches no other node: no session from it",
        ]
    );
    // The wrong AS: node1's row for node2 says so.
    wait_until(Duration::from_secs(20), "node1's AS mismatch", || {
        let s = lab.node_status(0).map_err(|e| e.to_string())?;
        let row = s["peers"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["address"] == "172.30.1.12").cloned())
            .ok_or("no row for node2")?;
        let e = row["lastError"].as_str().unwrap_or("");
        if row["source"] == "BGPPeer/wrong-as" && e.contains("peer AS is 64512, configured 65099") {
            Ok(())
        } else {
            Err(row.to_string())
        }
    })?;
    // The metric counts them.
    let metrics = get_in(
        &lab.nodes[0].ns,
        "127.0.0.1:9099".parse::<SocketAddr>()?,
        "/metrics",
    )?;
    assert!(
        metrics.lines().any(|l| l == "tortie_node_problems 2"),
        "{metrics}"
    );
    // Every other session works: node1 <-> node3, node2 <-> node3.
    for (a, b) in [("node1", "node3"), ("node3", "node1"), ("node2", "node3")] {
        wait_until(Duration::from_secs(20), "pods to reach each other", || {
            if pods_ping(&lab, a, b) {
                Ok(())
            } else {
                Err(format!("{a} -> {b}"))
            }
        })?;
    }
    let s = lab.node_status(2)?;
    assert!(problems(&s).is_empty(), "node3 has no problem: {s}");
    Ok(())
}

#[test]
fn a_resources_file_that_stops_validating_is_reported_and_the_last_good_state_stays() -> Result<()>
{
    let lab = lab(false, "")?;
    let file = lab.spec.dir.join("store/resources.yaml");
    let good = std::fs::read_to_string(&file)?;
    let bad = good.replace("blockSize: 26", "blockSize: 40");
    // Written whole, then renamed over (as docs/datastore.md advises).
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, &bad)?;
    std::fs::rename(&tmp, &file)?;
    for i in 0..3 {
        // Each watched kind of the file reports it (one line for all).
        let p = wait_problems(&lab, i, "the bad file reported", |p| {
            p.iter().any(|l| {
                l.starts_with("datastore: BGPConfiguration, BGPPeer, IPPool, BGPFilter: ")
                    && l.contains("resources.yaml:7: spec.blockSize: 40")
            })
        })?;
        // One line: every kind of the file is hit by the same error.
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("datastore: BGPConfiguration, BGPPeer, IPPool, BGPFilter: ")
                && p[0].ends_with("spec.blockSize: 40: an IPv4 block size is 20..=32"),
            "{p:?}"
        );
    }
    lab.wait_full_mesh(Duration::from_secs(10))?;
    std::fs::write(&tmp, &good)?;
    std::fs::rename(&tmp, &file)?;
    for i in 0..3 {
        wait_problems(&lab, i, "the problem to clear", |p| p.is_empty())?;
    }
    lab.wait_full_mesh(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn the_datastore_away_mid_run_and_at_start() -> Result<()> {
    let mut lab = lab(true, "")?;
    lab.stop_etcd()?;
    for i in 0..3 {
        wait_problems(&lab, i, "the datastore reported away", |p| {
            p.iter()
                .any(|l| l.starts_with("datastore: unreachable (etcd:http://172.30.1.1:2379): "))
        })?;
    }
    // The kernel keeps forwarding.
    lab.wait_full_mesh(Duration::from_secs(5))?;
    // An agent that starts now waits for the datastore, not ready.
    let mut late = Command::new("ip")
        .args(["netns", "exec", &lab.nodes[0].ns])
        .arg(bin_dir().join("tortie-node"))
        .args([
            "--node-name",
            "node1",
            "--ip",
            "172.30.1.11/24",
            "--admin",
            "127.0.0.1:9199",
        ])
        .args([
            "--datastore",
            &lab.datastore(),
            "--etcd-prefix",
            tortie_ctl::lab::ETCD_PREFIX,
        ])
        .arg("--state-dir")
        .arg(lab.spec.dir.join("late.state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let admin: SocketAddr = "127.0.0.1:9199".parse()?;
    let status = wait_until(Duration::from_secs(20), "the late agent's status", || {
        let body = get_in(&lab.nodes[0].ns, admin, "/status").map_err(|e| e.to_string())?;
        let s: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        if problems(&s)
            .iter()
            .any(|p| p.starts_with("datastore: cannot register Node/node1"))
        {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })?;
    assert_eq!(status["phase"], "waiting-for-datastore", "{status}");
    let ready = get_in(&lab.nodes[0].ns, admin, "/readyz")
        .unwrap_err()
        .to_string();
    assert!(
        ready.contains("503") && ready.contains("waiting-for-datastore"),
        "{ready}"
    );
    late.kill()?;
    late.wait()?;
    // etcd back: the problems clear.
    lab.start_etcd()?;
    for i in 0..3 {
        wait_problems(&lab, i, "the datastore back", |p| p.is_empty())
            .with_context(|| format!("node{}", i + 1))?;
    }
    lab.wait_full_mesh(Duration::from_secs(10))?;
    Ok(())
}

/// Standard base64 (etcd's JSON gateway takes keys and values so).
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A request to the lab's etcd through its JSON gateway (`/v3/kv/put`,
/// `/v3/kv/deleterange`), from inside the router's namespace: what
/// another tool writing to etcd would do, with no validation of ours.
fn etcd_call(lab: &Lab, path: &str, body: &Value) -> Result<String> {
    use std::io::{Read, Write};
    let addr: SocketAddr = "172.30.1.1:2379".parse()?;
    let mut s = tortie_ctl::lab::net::connect_in(&lab.router, addr, Duration::from_secs(5))?;
    let body = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    anyhow::ensure!(reply.starts_with("HTTP/1.1 200"), "etcd {path}: {reply}");
    Ok(reply)
}

/// 5. A record written to etcd by another tool that does not validate
///    (a BGPPeer whose peer address is no address): named with its field
///    in every node's `/status`, left out while the rest applies (the
///    mesh and pods keep working); deleted: the problem clears.
#[test]
fn a_bad_record_in_etcd_is_named_and_the_rest_applies() -> Result<()> {
    let lab = lab(true, "")?;
    let key = format!("{}/BGPPeer/bad", tortie_ctl::lab::ETCD_PREFIX);
    let value = serde_json::json!({
        "apiVersion": "tortie.io/v1",
        "kind": "BGPPeer",
        "metadata": {"name": "bad"},
        "spec": {"peerIP": "300.1.2.3", "asNumber": 65000},
    });
    etcd_call(
        &lab,
        "/v3/kv/put",
        &serde_json::json!({
            "key": base64(key.as_bytes()),
            "value": base64(value.to_string().as_bytes()),
        }),
    )?;
    for i in 0..3 {
        // The watch that meets the record fails and lists again (a
        // passing problem); the listing leaves it out and names it.
        let p = wait_problems(&lab, i, "the bad record named", |p| {
            p.iter().any(|l| {
                l.contains("BGPPeer/bad") && l.contains("left out") && l.contains("peerIP")
            }) && !p.iter().any(|l| l.contains("listing again"))
        })
        .with_context(|| format!("node{}", i + 1))?;
        assert!(
            p.iter().any(|l| l.contains("etcd:/tortie-lab/BGPPeer/bad")),
            "names the key: {p:?}"
        );
    }
    lab.wait_full_mesh(Duration::from_secs(10))?;
    assert!(
        pods_ping(&lab, "node1", "node3"),
        "pods still reach each other"
    );
    etcd_call(
        &lab,
        "/v3/kv/deleterange",
        &serde_json::json!({"key": base64(key.as_bytes())}),
    )?;
    for i in 0..3 {
        wait_problems(&lab, i, "the problem cleared", |p| p.is_empty())
            .with_context(|| format!("node{}", i + 1))?;
    }
    Ok(())
}
