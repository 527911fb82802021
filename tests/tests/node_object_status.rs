//! Bad input on the Kubernetes datastore, shown on the object itself:
//! each tortie-node writes its problems with a BGPPeer onto that
//! BGPPeer's status (`status.problems.<node>`, a Tortie extension of
//! Calico's kind), and removes them once the object is fixed; the agents
//! keep routing throughout. The lab of `tortiectl lab --kubernetes` (a
//! real kube-apiserver in the router's namespace, the CRDs of
//! `deploy/crds.yaml`), two nodes in a mesh.
//!
//! 1. A BGPPeer with a field Tortie refuses (`localASNumber:
//!    65010`, which the API server's schema accepts): every node's key on its
//!    status names `spec.localASNumber`; the mesh stays
//!    Established.
//! 2. A BGPPeer whose password secret no node has: every node's key names
//!    `spec.password` (a problem only the agents can tell).
//! 3. Both fixed: every node's key goes from both statuses; the agents'
//!    own `/status` has no problems; the mesh is still Established.
//!
//! The peers' addresses are the lab router's (a namespace of the lab,
//! where nothing listens on 179).

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use tortie_ctl::lab::Lab;
use tortie_tests::lab::spec;
use tortie_tests::wait_until;

const NODES: [&str; 2] = ["node1", "node2"];

/// Applies `manifest` (JSON) with kubectl.
fn apply(lab: &Lab, dir: &std::path::Path, name: &str, manifest: &Value) -> Result<()> {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, manifest.to_string())?;
    lab.kubectl(&["apply", "-f", &file.display().to_string()])?;
    Ok(())
}

/// The BGPPeer's `status.problems`, `{}` when there is none.
fn problems(lab: &Lab, name: &str) -> Result<Value, String> {
    let out = lab
        .kubectl(&["get", "bgppeer", name, "-o", "json"])
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    Ok(v["status"]["problems"].clone())
}

/// Waits until every node's key on `name`'s status has a problem naming
/// `field`.
fn wait_reported(lab: &Lab, name: &str, field: &str) -> Result<Value> {
    let what = format!("every node's problem with {field} on BGPPeer/{name}'s status");
    wait_until(Duration::from_secs(30), &what, || {
        let p = problems(lab, name)?;
        let named = |node: &str| {
            p[node]
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["field"] == field))
        };
        if NODES.iter().all(|n| named(n)) {
            Ok(p)
        } else {
            Err(p.to_string())
        }
    })
}

fn wait_cleared(lab: &Lab, name: &str) -> Result<()> {
    let what = format!("no node's problems on BGPPeer/{name}'s status");
    wait_until(Duration::from_secs(30), &what, || {
        let p = problems(lab, name)?;
        if p.is_null() || p.as_object().is_some_and(|m| m.is_empty()) {
            Ok(())
        } else {
            Err(p.to_string())
        }
    })?;
    Ok(())
}

fn all_running(lab: &Lab) -> Result<()> {
    lab.wait_full_mesh(Duration::from_secs(10))?;
    for i in 0..NODES.len() {
        let s = lab.node_status(i)?;
        assert_eq!(s["phase"], "running", "{s}");
    }
    Ok(())
}

#[test]
fn each_node_reports_its_problems_on_the_objects_status() -> Result<()> {
    let cache = tortie_testkit::k8s::cache();
    if !cache.join("bin/kube-apiserver").exists() {
        tortie_testkit::missing(
            "node_object_status",
            &format!("no Kubernetes in {} (scripts/k8s.sh all)", cache.display()),
        );
        return Ok(());
    }
    let mut spec = spec("os", NODES.len())?;
    spec.kubernetes = true;
    let lab = Lab::up(spec)?;
    lab.wait_full_mesh(Duration::from_secs(60))?;
    let dir = tempfile::tempdir()?;
    // The router's addresses on subnets A and B.
    let (router_a, router_b) = ("172.30.1.1", "172.30.2.1");
    let refused = format!("refused-{}", std::process::id());
    let keyless = format!("keyless-{}", std::process::id());
    let peer = |name: &str, ip: &str, extra: Value| {
        let mut spec = json!({"peerIP": ip, "asNumber": 65099});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            spec[k] = v;
        }
        json!({
            "apiVersion": "projectcalico.org/v3",
            "kind": "BGPPeer",
            "metadata": {"name": name},
            "spec": spec,
        })
    };

    // 1.
    apply(
        &lab,
        dir.path(),
        &refused,
        &peer(&refused, router_a, json!({"localASNumber": 65010})),
    )?;
    let p = wait_reported(&lab, &refused, "spec.localASNumber")?;
    let message = p["node1"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("not supported"), "{p}");
    all_running(&lab)?;

    // 2.
    let password = json!({"password": {"secretKeyRef": {"name": "nowhere", "key": "k"}}});
    apply(
        &lab,
        dir.path(),
        &keyless,
        &peer(&keyless, router_b, password),
    )?;
    wait_reported(&lab, &keyless, "spec.password")?;
    all_running(&lab)?;
    // The first object's problems are still there, written once.
    wait_reported(&lab, &refused, "spec.localASNumber")?;

    // 3.
    apply(
        &lab,
        dir.path(),
        &refused,
        &peer(&refused, router_a, json!({})),
    )?;
    wait_cleared(&lab, &refused)?;
    apply(
        &lab,
        dir.path(),
        &keyless,
        &peer(&keyless, router_b, json!({})),
    )?;
    wait_cleared(&lab, &keyless)?;
    all_running(&lab)?;
    for i in 0..NODES.len() {
        let s = lab.node_status(i)?;
        assert_eq!(s["problems"], json!([]), "{s}");
    }
    for name in [&refused, &keyless] {
        lab.kubectl(&["delete", "bgppeer", name])?;
    }
    Ok(())
}
