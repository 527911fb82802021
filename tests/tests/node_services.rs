//! Service IP advertisement (the BGPConfiguration's `serviceClusterIPs`
//! and `serviceExternalIPs`) on the Kubernetes datastore: the lab of
//! `tortiectl lab --kubernetes` (kube-apiserver v1.20.2 from
//! `scripts/k8s.sh`, no controller manager: the test writes the Services
//! and their Endpoints itself, as the endpoints controller would), three
//! nodes in the mesh, and a BIRD router (AS 65000) on their subnet that
//! every node peers with (a global BGPPeer) and that exports nothing.
//!
//! ```text
//!   subnet A 172.30.1.0/24
//!   node1 .11   node2 .12   node3 .13   tor .2 (BIRD)   router .1 (etcd, API server)
//! ```
//!
//! Ranges: cluster 10.96.0.0/16 (the API server's service range),
//! external 203.0.113.0/24 and the single address 198.51.100.7/32.
//!
//! 1. The ToR receives 10.96.0.0/16 and 203.0.113.0/24 from every node,
//!    and no 198.51.100.7/32 (a single address is no range).
//! 2. Service `web` (NodePort, `externalTrafficPolicy: Local`, external IP
//!    203.0.113.10), its ready endpoint on node2: the ToR receives
//!    203.0.113.10/32 and the cluster IP's /32 from node2 only.
//! 3. The endpoint moves to node3: both /32s come from node3 only.
//! 4. The endpoint is no longer ready (`notReadyAddresses`): withdrawn
//!    everywhere; the ranges stay.
//! 5. Service `pinned` (policy Cluster, external IP 198.51.100.7, listed as
//!    a /32): every node announces the /32, without endpoints; deleted, it
//!    is withdrawn everywhere.
//! 6. No node installs a service route it learns over the mesh.
//! 7. Bad input: an entry `banana` in `serviceExternalIPs` is named among
//!    every node's problems, by field; the ranges stay announced.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tortie_ctl::lab::{net, Lab};
use tortie_tests::lab::spec;
use tortie_tests::tor::{bird_here, paths, BirdTor};
use tortie_tests::wait_until;

const TEST: &str = "node_services";

const RESOURCES: &str = "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  serviceClusterIPs:
  - cidr: 10.96.0.0/16
  serviceExternalIPs:
  - cidr: 203.0.113.0/24
  - cidr: 198.51.100.7/32
";

/// `kubectl apply` of a JSON object, written into the lab's directory.
fn apply(lab: &Lab, name: &str, object: serde_json::Value) -> Result<()> {
    let file = lab.spec.dir.join(format!("{name}.json"));
    std::fs::write(&file, object.to_string())?;
    lab.kubectl(&["apply", "-f", &file.display().to_string()])?;
    Ok(())
}

/// The Endpoints of `web`: its one address ready on `node`, or not ready.
fn web_endpoints(address: &str, node: &str, ready: bool) -> serde_json::Value {
    let key = if ready {
        "addresses"
    } else {
        "notReadyAddresses"
    };
    serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{key: [{"ip": address, "nodeName": node}], "ports": [{"port": 80}]}],
    })
}

#[test]
fn service_addresses_follow_their_endpoints() -> Result<()> {
    let cache = tortie_testkit::k8s::cache();
    if !cache.join("bin/kube-apiserver").exists() {
        tortie_testkit::missing(
            TEST,
            &format!("no Kubernetes in {} (scripts/k8s.sh all)", cache.display()),
        );
        return Ok(());
    }
    if !bird_here(TEST) {
        return Ok(());
    }
    let mut spec = spec("sv", 3)?;
    spec.kubernetes = true;
    spec.one_subnet = true;
    spec.resources = RESOURCES.into();
    let mut lab = Lab::up(spec)?;
    let (ns, tor_addr) = lab.add_host("tor")?;
    let peer = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  peerIP: {tor_addr}\n  asNumber: 65000\n"
    );
    tortie_tests::lab::apply(&lab, "tor-peer", &peer)?;

    let tor = BirdTor::start(&lab, &ns, tor_addr, 64512)?;
    lab.wait_full_mesh(Duration::from_secs(60))?;

    // 1. The ranges from every node; the single address is no range.
    let all = [0, 1, 2];
    let t = tor.expect("10.96.0.0/16", &all)?;
    eprintln!("{TEST}: cluster range from 3 nodes after {t:?}");
    tor.expect("203.0.113.0/24", &all)?;
    tor.expect("198.51.100.7/32", &[])?;
    for i in 0..3 {
        let s = lab.node_status(i)?;
        assert_eq!(s["problems"].as_array().map(Vec::len), Some(0), "{s}");
    }

    // 2. A Local service with its endpoint on node2.
    let on_node2 = lab
        .pods
        .iter()
        .find(|p| p.node == "node2")
        .context("a pod on node2")?
        .address
        .to_string();
    apply(
        &lab,
        "web-endpoints",
        web_endpoints(&on_node2, "node2", true),
    )?;
    let started = Instant::now();
    apply(
        &lab,
        "web",
        serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "NodePort", "externalTrafficPolicy": "Local",
                "externalIPs": ["203.0.113.10"], "ports": [{"port": 80}],
            },
        }),
    )?;
    tor.expect("203.0.113.10/32", &[1])?;
    eprintln!(
        "{TEST}: Local service's external IP from node2 {:?} after kubectl apply",
        started.elapsed()
    );
    let cluster_ip = lab.kubectl(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"])?;
    let cluster_ip = format!("{}/32", cluster_ip.trim());
    assert!(cluster_ip.starts_with("10.96."), "{cluster_ip}");
    tor.expect(&cluster_ip, &[1])?;

    // 3. The endpoint moves to node3.
    let started = Instant::now();
    apply(
        &lab,
        "web-endpoints",
        web_endpoints(&on_node2, "node3", true),
    )?;
    tor.expect("203.0.113.10/32", &[2])?;
    eprintln!(
        "{TEST}: the /32 moved from node2 to node3 {:?} after kubectl apply",
        started.elapsed()
    );
    tor.expect(&cluster_ip, &[2])?;

    // 4. Not ready any more: withdrawn; the ranges stay.
    let started = Instant::now();
    apply(
        &lab,
        "web-endpoints",
        web_endpoints(&on_node2, "node3", false),
    )?;
    tor.expect("203.0.113.10/32", &[])?;
    eprintln!(
        "{TEST}: withdrawn {:?} after the endpoint went not ready",
        started.elapsed()
    );
    tor.expect(&cluster_ip, &[])?;
    tor.expect("10.96.0.0/16", &all)?;
    tor.expect("203.0.113.0/24", &all)?;

    // 5. Policy Cluster with a /32 entry: from every node, no endpoints.
    apply(
        &lab,
        "pinned",
        serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "pinned", "namespace": "default"},
            "spec": {"externalIPs": ["198.51.100.7"], "ports": [{"port": 80}]},
        }),
    )?;
    tor.expect("198.51.100.7/32", &all)?;
    lab.kubectl(&["delete", "service", "pinned"])?;
    tor.expect("198.51.100.7/32", &[])?;

    // 6. The mesh carries them too; no node installs them.
    for n in &lab.nodes {
        let routes = net::ip_in_output(&n.ns, &["route"])?;
        for service in ["10.96.", "203.0.113.", "198.51.100."] {
            assert!(
                !routes.contains(service),
                "{} installed a service route:\n{routes}",
                n.name
            );
        }
    }

    // 7. A bad entry is named; the rest keeps working.
    lab.kubectl(&[
        "patch",
        "bgpconfigurations.projectcalico.org",
        "default",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/serviceExternalIPs/-","value":{"cidr":"banana"}}]"#,
    ])?;
    for i in 0..3 {
        wait_until(Duration::from_secs(20), "the bad entry named", || {
            let s = lab.node_status(i).map_err(|e| e.to_string())?;
            let named = s["problems"].as_array().is_some_and(|ps| {
                ps.iter().any(|p| {
                    p.as_str().is_some_and(|p| {
                        p.contains("BGPConfiguration/default: spec.serviceExternalIPs[2].cidr")
                            && p.contains("\"banana\" is not a CIDR")
                    })
                })
            });
            if named {
                Ok(())
            } else {
                Err(s.to_string())
            }
        })?;
    }
    tor.expect("10.96.0.0/16", &all)?;
    tor.expect("203.0.113.0/24", &all)?;
    Ok(())
}

#[test]
fn bird_paths_are_read_by_session() {
    let table = "BIRD 2.0.12 ready.
Table master4:
10.96.0.0/16         unicast [n0 10:00:00.000] * (100) [AS64512i]
\tvia 172.30.1.11 on eth0
\tBGP.as_path: 64512
                     unicast [n2 10:00:00.100] (100) [AS64512i]
\tvia 172.30.1.13 on eth0
203.0.113.10/32      unicast [n1 10:00:01.000] * (100) [AS64512i]
\tvia 172.30.1.12 on eth0
";
    let p = paths(table);
    assert_eq!(p.len(), 2);
    assert_eq!(
        p["10.96.0.0/16"].iter().collect::<Vec<_>>(),
        vec!["n0", "n2"]
    );
    assert_eq!(p["203.0.113.10/32"].iter().collect::<Vec<_>>(), vec!["n1"]);
}
