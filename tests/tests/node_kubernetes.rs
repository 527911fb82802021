//! tortie-node and tortie-cni on the Kubernetes datastore: the lab of
//! `tortiectl lab --kubernetes`, a real kube-apiserver v1.20.2 (built by
//! `scripts/k8s.sh`) on etcd in the router's namespace, the CRDs of
//! `deploy/crds.yaml`; the lab registers a Kubernetes Node per node and a
//! Pod per pod (a kubelet's part; no kubelet runs).
//!
//! ```text
//!   subnet A 172.30.1.0/24            subnet B 172.30.2.0/24
//!   node1 .11  node2 .12 ── router ── node3 .13
//!                          (etcd, kube-apiserver .1)
//! ```
//!
//! 1. Every pod reaches every other; the mesh is Established.
//! 2. The Kubernetes objects say it: each Node carries its BGP address as
//!    Calico's annotation, each Pod its endpoint and podIP, the IPAM
//!    blocks are custom resources.
//! 3. A deleted pod's endpoint goes from its Pod and its route from its
//!    node; a new pod is reached.
//! 4. The API server goes away: every agent reports it (its watches can
//!    not reopen), every route stays and the pods keep reaching each
//!    other; once it is back the report clears, and a new pod on node3 is
//!    reached from node1: node3's agent programmed its /32 route, which it
//!    does only on seeing the pod's endpoint (its watch resumed).

use std::time::Duration;

use anyhow::Result;
use tortie_ctl::lab::{Encap, Lab};
use tortie_tests::lab::spec;
use tortie_tests::wait_until;

#[test]
fn pods_reach_each_other_on_the_kubernetes_datastore() -> Result<()> {
    let cache = tortie_testkit::k8s::cache();
    if !cache.join("bin/kube-apiserver").exists() {
        tortie_testkit::missing(
            "node_kubernetes",
            &format!("no Kubernetes in {} (scripts/k8s.sh all)", cache.display()),
        );
        return Ok(());
    }
    let mut spec = spec("k", 3)?;
    spec.encap = Encap::Vxlan;
    spec.kubernetes = true;
    let mut lab = Lab::up(spec)?;
    // 1.
    lab.wait_full_mesh(Duration::from_secs(60))?;
    for i in 0..3 {
        let s = lab.node_status(i)?;
        assert_eq!(s["phase"], "running", "{s}");
        assert_eq!(s["problems"].as_array().map(Vec::len), Some(0), "{s}");
        let location = s["datastore"]["location"].as_str().unwrap_or("");
        assert!(location.starts_with("kubernetes:"), "{s}");
    }
    // 2.
    let ip = lab.kubectl(&[
        "get",
        "node",
        "node3",
        "-o",
        "jsonpath={.metadata.annotations.projectcalico\\.org/IPv4Address}",
    ])?;
    assert_eq!(ip, "172.30.2.13/24");
    let pod = lab.pods[0].clone();
    let pod_ip = lab.kubectl(&[
        "get",
        "pod",
        &pod.name,
        "-o",
        "jsonpath={.metadata.annotations.cni\\.projectcalico\\.org/podIP}",
    ])?;
    assert_eq!(pod_ip, format!("{}/32", pod.address));
    let blocks = lab.kubectl(&["get", "ipamblocks.tortie.io", "-o", "name"])?;
    assert_eq!(blocks.lines().count(), 3, "{blocks}");
    // 3.
    let on_node1 = pod.address.to_string();
    lab.delete_pod(&pod.name)?;
    wait_until(Duration::from_secs(20), "the pod's route goes", || {
        let r =
            tortie_ctl::lab::net::ip_in_output(&lab.nodes[0].ns, &["route"]).unwrap_or_default();
        if r.contains(&format!("{on_node1} dev tort")) {
            Err(r)
        } else {
            Ok(())
        }
    })?;
    let new = lab.add_pod(0)?;
    let from = lab.pods.iter().find(|p| p.node == "node3").cloned();
    let from = from.expect("a pod on node3");
    assert!(
        lab.ping(&from, new.address, Duration::from_secs(20)),
        "the new pod is reached"
    );
    // 4.
    let routes = |lab: &Lab| -> Vec<String> {
        (0..3)
            .map(|i| {
                tortie_ctl::lab::net::ip_in_output(&lab.nodes[i].ns, &["route"]).unwrap_or_default()
            })
            .collect()
    };
    let before = routes(&lab);
    lab.stop_apiserver()?;
    // Each agent says so (from its watches: it makes no request of its
    // own to find out) and keeps its routes.
    for i in 0..3 {
        wait_until(
            Duration::from_secs(30),
            "the agent reports the API server away",
            || {
                let s = lab.node_status(i).map_err(|e| e.to_string())?;
                let p = s["problems"].to_string();
                if p.contains("datastore: unreachable") && p.contains("refuses the watches") {
                    Ok(())
                } else {
                    Err(p)
                }
            },
        )?;
    }
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        routes(&lab),
        before,
        "no route changed while the API server was away"
    );
    lab.wait_full_mesh(Duration::from_secs(10))?;
    lab.start_apiserver()?;
    for i in 0..3 {
        wait_until(
            Duration::from_secs(60),
            "the agent reports the API server back",
            || {
                let s = lab.node_status(i).map_err(|e| e.to_string())?;
                let p = s["problems"].to_string();
                if p.contains("unreachable") {
                    Err(p)
                } else {
                    Ok(())
                }
            },
        )?;
    }
    let later = lab.add_pod(2)?;
    let from = lab.pods.iter().find(|p| p.node == "node1").cloned();
    let from = from.expect("a pod on node1");
    wait_until(
        Duration::from_secs(60),
        "the pod made after the outage is reached",
        || {
            if lab.ping(&from, later.address, Duration::from_secs(1)) {
                Ok(())
            } else {
                Err(format!("{} not reached", later.address))
            }
        },
    )?;
    Ok(())
}
