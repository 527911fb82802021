//! `tortiectl explain` against real tortie-node agents: two nodes (AS
//! 64512, mesh, one subnet, no encapsulation) and a BIRD ToR (AS 65000)
//! announcing two prefixes inside the pool; the nodes' BGPPeer to it
//! names a BGPFilter whose first import rule rejects one of them.
//!
//! ```text
//!   node0 .11 ──┐
//!               ├── one subnet ── tor (BIRD, AS 65000):
//!   node1 .12 ──┘                 10.244.250.0/24 (rejected by edge importV4[0])
//!                                 10.244.251.0/24 (accepted)
//! ```
//!
//! Checks, each on node0's `/explain` (JSON) and some through the
//! `tortiectl explain` binary (the text block):
//! 1. A local pod by `namespace/name` (its WorkloadEndpoint rewritten as
//!    Kubernetes records one): owner the local pod and its interface,
//!    its kernel route installed.
//! 2. node1's block: owned by node1, one path from node1 (best), the
//!    encapsulation decision Direct (same subnet, pool modes Never), the
//!    kernel route installed, and when felix wrote it.
//!    10.244.251.0/24 from the ToR: two paths, the ToR's (eBGP) best and
//!    node1's (iBGP, passed on) lost at the eBGP-over-iBGP step.
//! 3. 10.244.250.0/24 from the ToR: not accepted, the rule named
//!    (`BGPFilter/edge importV4[0]`), no kernel route.
//! 4. A prefix nobody knows: no owner, no path, no route.
//! 5. Bad input: an argument that is no prefix, address or pod, and an
//!    unknown pod, each refused with a message naming it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::Value;
use tortie_ctl::lab::{get_in, net, Encap, Lab, ADMIN};
use tortie_tests::lab::{apply, block4, spec};
use tortie_tests::tor::{bird_here, BirdTor};
use tortie_tests::wait_until;

const TEST: &str = "node_explain";

#[test]
fn explain_a_pod_a_block_a_filtered_prefix_and_nothing() -> Result<()> {
    if !bird_here(TEST) {
        return Ok(());
    }
    let mut spec = spec("expl", 2)?;
    spec.encap = Encap::None;
    spec.one_subnet = true;
    let mut lab = Lab::up(spec)?;
    let (tor_ns, tor_addr) = lab.add_host("tor")?;
    let _tor = BirdTor::start_with(
        &lab,
        &tor_ns,
        tor_addr,
        64512,
        &["10.244.250.0/24", "10.244.251.0/24"],
    )?;
    apply(
        &lab,
        "policy",
        &format!(
            "apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {{name: edge}}
spec:
  importV4:
    - {{action: Reject, matchOperator: Equal, cidr: 10.244.250.0/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: tor}}
spec:
  peerIP: {tor_addr}
  asNumber: 65000
  filters: [edge]
"
        ),
    )?;
    let node0 = lab.nodes[0].ns.clone();
    wait_until(
        Duration::from_secs(60),
        "10.244.251.0/24 via the ToR on node0",
        || {
            let r = net::ip_in_output(&node0, &["route"]).map_err(|e| e.to_string())?;
            if r.contains(&format!("10.244.251.0/24 via {tor_addr} ")) {
                Ok(())
            } else {
                Err(r)
            }
        },
    )?;

    // 1. A local pod, by namespace/name.
    let pod = lab
        .pods
        .iter()
        .find(|p| p.node == lab.nodes[0].name)
        .context("a pod on node0")?
        .clone();
    let iface = as_kubernetes_pod(&lab, &pod.address.to_string(), "default", "web")?;
    let e = wait_until(Duration::from_secs(30), "the pod's route installed", || {
        let e = explain(&lab, "default/web").map_err(|e| e.to_string())?;
        match e["prefixes"][0]["kernel"]["state"].as_str() {
            Some("installed") => Ok(e),
            _ => Err(e.to_string()),
        }
    })?;
    assert_eq!(e["kind"], "pod", "{e}");
    assert_eq!(e["pod"]["node"], lab.nodes[0].name.as_str(), "{e}");
    let r = &e["prefixes"][0];
    assert_eq!(r["asked"], format!("{}/32", pod.address), "{r}");
    assert_eq!(r["owner"]["kind"], "local-pod", "{r}");
    assert_eq!(r["owner"]["interface"], iface.as_str(), "{r}");
    assert_eq!(
        r["kernel"]["wanted"],
        format!("{}/32 dev {iface} scope link", pod.address),
        "{r}"
    );
    assert!(r["encap"].is_null(), "a local pod has no next hop: {r}");

    // 2. node1's block: one path, Direct, installed, written by felix.
    let b1 = block4(&lab, 1);
    let e = wait_until(Duration::from_secs(30), "node1's block installed", || {
        let e = explain(&lab, &b1).map_err(|e| e.to_string())?;
        match e["prefixes"][0]["kernel"]["state"].as_str() {
            Some("installed") => Ok(e),
            _ => Err(e.to_string()),
        }
    })?;
    let r = &e["prefixes"][0];
    let node1 = lab.nodes[1].name.as_str();
    assert_eq!(r["owner"]["kind"], "block", "{r}");
    assert_eq!(r["owner"]["node"], node1, "{r}");
    let paths = r["bgp"]["paths"].as_array().context("paths")?;
    assert_eq!(paths.len(), 1, "{r}");
    assert_eq!(paths[0]["best"], true, "{r}");
    assert!(
        paths[0]["from"]
            .as_str()
            .is_some_and(|f| f.contains(&format!("(node {node1})"))),
        "{r}"
    );
    let x = &r["encap"];
    assert_eq!(x["decision"], "Direct", "{r}");
    assert_eq!(x["sameSubnet"], true, "{r}");
    assert_eq!(x["nextHopNode"], node1, "{r}");
    assert_eq!(
        (x["ipipMode"].as_str(), x["vxlanMode"].as_str()),
        (Some("Never"), Some("Never")),
        "{r}"
    );
    let k = &r["kernel"];
    assert_eq!(k["state"], "installed", "{r}");
    assert_eq!(k["prefix"], b1.as_str(), "{r}");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let at = k["lastWrite"]["atUnixMs"]
        .as_u64()
        .context("felix's write")?;
    assert!(
        at <= now_ms && now_ms - at < 600_000,
        "written {} ms ago: {r}",
        now_ms.saturating_sub(at)
    );
    assert_eq!(k["lastWrite"]["kind"], "added", "{r}");
    let text = tortiectl_in(&node0, &["explain", &b1])?;
    for want in [
        "  Encap:   Direct",
        "  Kernel:  installed: wanted ",
        "felix last wrote it: added",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    eprintln!("{TEST}: tortiectl explain {b1} on node0:\n{text}");

    // 2b. The ToR's accepted prefix: its own path (eBGP) and node1's
    // (iBGP, the same route passed on), which lost at the eBGP step.
    let e = wait_until(
        Duration::from_secs(30),
        "two paths to 10.244.251.0/24",
        || {
            let e = explain(&lab, "10.244.251.0/24").map_err(|e| e.to_string())?;
            match e["prefixes"][0]["bgp"]["paths"].as_array().map(Vec::len) {
                Some(2) => Ok(e),
                _ => Err(e.to_string()),
            }
        },
    )?;
    let r = &e["prefixes"][0];
    let paths = r["bgp"]["paths"].as_array().context("paths")?;
    let lines: Vec<(String, bool, Value)> = paths
        .iter()
        .map(|p| {
            (
                p["from"].as_str().unwrap_or("").to_string(),
                p["best"] == true,
                p["lost"].clone(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (format!("{tor_addr} (BGPPeer/tor)"), true, Value::Null),
            (
                format!("{} (node {node1})", lab.nodes[1].address),
                false,
                Value::from("iBGP (eBGP preferred)")
            ),
        ],
        "{r}"
    );
    assert_eq!(
        r["kernel"]["wanted"],
        format!("10.244.251.0/24 via {tor_addr} dev eth0"),
        "{r}"
    );
    assert_eq!(
        r["encap"]["nextHopNode"],
        Value::Null,
        "the ToR is no node: {r}"
    );
    assert_eq!(
        r["kernel"]["why"],
        format!("learned over BGP from {tor_addr} (a router, not a node); same subnet, no encapsulation"),
        "{r}"
    );
    let text = tortiectl_in(&node0, &["explain", "10.244.251.0/24"])?;
    assert!(text.contains("lost: iBGP (eBGP preferred)"), "{text}");
    eprintln!("{TEST}: tortiectl explain 10.244.251.0/24 on node0:\n{text}");

    // 3. The ToR's prefix its import rule refuses: the rule named.
    let e = wait_until(Duration::from_secs(30), "the ToR's refused prefix", || {
        let e = explain(&lab, "10.244.250.0/24").map_err(|e| e.to_string())?;
        match e["prefixes"][0]["bgp"]["prefix"].as_str() {
            Some(_) => Ok(e),
            None => Err(e.to_string()),
        }
    })?;
    let r = &e["prefixes"][0];
    assert_eq!(r["bgp"]["prefix"], "10.244.250.0/24", "{r}");
    assert_eq!(r["bgp"]["paths"].as_array().map(Vec::len), Some(0), "{r}");
    let tor = r["bgp"]["peers"]
        .as_array()
        .and_then(|ps| {
            ps.iter().find(|p| {
                p["peer"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&format!("{tor_addr} ")))
            })
        })
        .context("the ToR's row")?;
    assert_eq!(tor["announced"], "not accepted", "{r}");
    assert_eq!(
        tor["import"], "BGPFilter/edge importV4[0]: Reject Equal 10.244.250.0/24",
        "{r}"
    );
    assert_eq!(
        r["filters"][0],
        format!(
            "import from {tor_addr} (BGPPeer/tor): BGPFilter/edge importV4[0]: Reject Equal \
             10.244.250.0/24"
        ),
        "{r}"
    );
    assert_eq!(r["kernel"]["state"], "absent", "{r}");
    let text = tortiectl_in(&node0, &["explain", "10.244.250.0/24"])?;
    assert!(
        text.contains("sent not accepted; import: BGPFilter/edge importV4[0]"),
        "{text}"
    );

    // 4. Nothing known.
    let e = explain(&lab, "192.0.2.0/24")?;
    let r = &e["prefixes"][0];
    assert_eq!(r["owner"]["kind"], "none", "{r}");
    assert!(r["bgp"]["prefix"].is_null(), "{r}");
    assert_eq!(r["kernel"]["state"], "absent", "{r}");
    let text = tortiectl_in(&node0, &["explain", "192.0.2.0/24"])?;
    assert!(
        text.contains("BGP:     no path, and no peer sent it"),
        "{text}"
    );

    let json: Value = serde_json::from_str(&tortiectl_in(
        &node0,
        &["explain", "192.0.2.0/24", "-o", "json"],
    )?)?;
    assert_eq!(
        (
            json["kind"].as_str(),
            json["prefixes"][0]["owner"]["kind"].as_str()
        ),
        (Some("prefix"), Some("none")),
        "{json}"
    );

    // 5. Bad input, refused by name.
    let err = tortiectl_in(&node0, &["explain", "web"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"web\" is not a prefix (10.244.1.0/26), an address"),
        "{err}"
    );
    let err = tortiectl_in(&node0, &["explain", "default/nope"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 404: no pod default/nope: no WorkloadEndpoint in namespace default"),
        "{err}"
    );
    Ok(())
}

// ===== helpers =====

/// node0's `/explain?target=`.
fn explain(lab: &Lab, target: &str) -> Result<Value> {
    let path = format!("/explain?target={}", target.replace('/', "%2F"));
    let body = get_in(&lab.nodes[0].ns, ADMIN.parse()?, &path)?;
    Ok(serde_json::from_str(&body)?)
}

/// `tortiectl ARGS` in namespace `ns` (where the agent's admin address
/// is); its output, or an error with its stderr.
fn tortiectl_in(ns: &str, args: &[&str]) -> Result<String> {
    let ctl = tortie_tests::lab::bin_dir().join("tortiectl");
    let ctl = ctl.display().to_string();
    let mut argv = vec![ctl.as_str()];
    argv.extend_from_slice(args);
    net::exec_in(ns, &argv)
}

/// Rewrites the WorkloadEndpoint of the pod at `address` as Kubernetes
/// records one (namespace `ns`, `spec.pod`), the old one deleted; its
/// interface.
fn as_kubernetes_pod(lab: &Lab, address: &str, ns: &str, pod: &str) -> Result<String> {
    let all: Value = serde_json::from_str(&lab.tortiectl(&["get", "wep", "-o", "json"])?)?;
    let list = all
        .as_array()
        .or_else(|| all["items"].as_array())
        .context("a list of WorkloadEndpoints")?;
    let old = list
        .iter()
        .find(|w| {
            w["spec"]["ipNetworks"]
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n == &format!("{address}/32")))
        })
        .with_context(|| format!("no WorkloadEndpoint for {address}: {all}"))?
        .clone();
    let name = old["metadata"]["name"]
        .as_str()
        .context("name")?
        .to_string();
    let mut new = old.clone();
    new["metadata"] = serde_json::json!({"name": name, "namespace": ns});
    new["spec"]["pod"] = Value::from(pod);
    let file = lab.spec.dir.join("pod.json");
    std::fs::write(&file, serde_json::to_string(&new)?)?;
    lab.tortiectl(&["apply", "-f", &file.display().to_string()])?;
    lab.tortiectl(&["delete", "wep", &name])?;
    old["spec"]["interfaceName"]
        .as_str()
        .map(String::from)
        .context("interfaceName")
}
