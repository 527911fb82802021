//! Communities and an export filter of tortie-node as FRR sees them: an
//! FRR 8.4 bgpd ToR (AS 65000, a host on the nodes' subnet, bgpd alone,
//! `tortie_tests::tor_frr::FrrTor`) peers over eBGP with two nodes (AS
//! 64512, mesh on, one subnet, no encapsulation). The nodes' BGPPeer to
//! it names a BGPFilter; the BGPConfiguration tags the pool's routes with
//! a standard and a large community (`prefixAdvertisements`). The BIRD
//! twin of these checks is `node_policy`.
//!
//! ```text
//!   node1 .11 ──┐
//!               ├── subnet A 172.30.1.0/24 ── tor .2 (FRR bgpd, AS 65000)
//!   node2 .12 ──┘
//! ```
//!
//! Checks (all read from FRR's JSON, cross-checked with the nodes'
//! `/status`):
//! 1. Export: the filter rejects node1's block: FRR has node2's block from
//!    node2 and not node1's; FRR received 0 prefixes from node1 and 1 from
//!    node2 (`pfxRcd`), and the nodes say they advertised 0 and 1.
//! 2. Communities: FRR's path of node2's block carries the standard
//!    communities 64512:7 and 65000:100 and the large community
//!    65000:1:2, AS path 64512, next hop node2.
//! 3. The filter (now rejecting node2's block) and the communities (one
//!    standard community, 65000:101) change in the datastore: FRR gets
//!    node1's block with 65000:101 alone and no large community, and
//!    loses node2's; no session restarted (FRR's `connectionsEstablished`
//!    stays 1 for each node).

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tortie_ctl::lab::Lab;
use tortie_tests::daemons::frr::frr_here;
use tortie_tests::lab::{apply, block4};
use tortie_tests::tor::communities_lab;
use tortie_tests::tor_frr::FrrTor;
use tortie_tests::wait_until;

const TEST: &str = "node_tor_frr";

// 1., 2., 3.
#[test]
fn communities_and_export_filter_with_an_frr_tor() -> Result<()> {
    if !frr_here(TEST) {
        return Ok(());
    }
    let (lab, ns, tor_addr) = communities_lab("fcom")?;
    let tor = FrrTor::start(&lab, &ns, tor_addr, 64512)?;
    let (n1, n2) = (lab.nodes[0].address, lab.nodes[1].address);
    let (b1, b2) = (block4(&lab, 0), block4(&lab, 1));
    apply(&lab, "policy", &policy(&b1, tor_addr))?;

    // 1. Export: node1's block held back by its filter.
    let paths = tor.expect(&b2, &[n2]).with_context(|| tor.log())?;
    tor.expect(&b1, &[])?;
    let received = tor.neighbors()?;
    for (node, want) in [(n1, 0), (n2, 1)] {
        assert!(
            received
                .iter()
                .any(|(a, s, n)| *a == node && s == "Established" && *n == want),
            "{node}: want {want} received: {received:?}"
        );
    }
    for (i, want) in [(0, 0), (1, 1)] {
        let p = tor_peer(&lab, i, tor_addr)?;
        assert_eq!(p["prefixesAdvertised"], want, "node {i}: {p}");
    }

    // 2. Communities, AS path and next hop of node2's block.
    let [path] = paths.as_slice() else {
        panic!("one path of {b2} wanted: {paths:?}");
    };
    assert_eq!(communities(path, "community"), ["64512:7", "65000:100"]);
    assert_eq!(communities(path, "largeCommunity"), ["65000:1:2"]);
    assert_eq!(path["aspath"]["string"], "64512", "{path}");
    assert_eq!(path["nexthops"][0]["ip"], n2.to_string().as_str(), "{path}");
    let before = connections(&tor)?;
    assert_eq!(before, [(n1, 1), (n2, 1)], "sessions before the change");

    // 3. Filter and communities change; the sessions stay.
    apply(&lab, "changed", &changed(&b2))?;
    let path = wait_until(
        Duration::from_secs(30),
        "node1's block from node1 with the new community alone",
        || {
            let paths = tor.paths(&b1).map_err(|e| format!("{e:#}"))?;
            match paths.as_slice() {
                [p] if p["peer"]["peerId"] == n1.to_string().as_str()
                    && communities(p, "community") == ["65000:101"]
                    && communities(p, "largeCommunity").is_empty() =>
                {
                    Ok(p.clone())
                }
                _ => Err(format!("{paths:?}")),
            }
        },
    )?;
    tor.expect(&b2, &[])?;
    assert_eq!(path["nexthops"][0]["ip"], n1.to_string().as_str(), "{path}");
    assert_eq!(connections(&tor)?, before, "a session restarted");
    Ok(())
}

// ===== helpers =====

/// The BGPFilter `edge` (export: rejects `block`) and the BGPPeer to the
/// ToR that names it.
fn policy(block: &str, tor: Ipv4Addr) -> String {
    format!(
        "apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {{name: edge}}
spec:
  exportV4:
    - {{action: Reject, matchOperator: Equal, cidr: {block}}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: tor}}
spec:
  peerIP: {tor}
  asNumber: 65000
  filters: [edge]
"
    )
}

/// `edge` rejecting `block` instead, and one standard community on the
/// pool's routes.
fn changed(block: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {{name: edge}}
spec:
  exportV4:
    - {{action: Reject, matchOperator: Equal, cidr: {block}}}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  communities:
    - {{name: pods, value: '65000:101'}}
  prefixAdvertisements:
    - cidr: 10.244.0.0/16
      communities: [pods]
"
    )
}

/// Node `i`'s block (the /26 of its pod).
/// Node `i`'s row of the ToR in its `/status`.
fn tor_peer(lab: &Lab, i: usize, tor: Ipv4Addr) -> Result<Value> {
    let s = lab.node_status(i)?;
    s["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["address"] == tor.to_string().as_str()))
        .cloned()
        .with_context(|| format!("no ToR peer: {s}"))
}

/// The `list` of a path's `community` or `largeCommunity` (empty when the
/// path has none).
fn communities(path: &Value, key: &str) -> Vec<String> {
    path[key]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(String::from))
        .collect()
}

/// Each neighbour's `connectionsEstablished` (`show bgp neighbors json`),
/// in address order.
fn connections(tor: &FrrTor) -> Result<Vec<(Ipv4Addr, u64)>> {
    let v = tor.json("show bgp neighbors json")?;
    let map = v
        .as_object()
        .with_context(|| format!("not an object: {v}"))?;
    let mut out: Vec<(Ipv4Addr, u64)> = map
        .iter()
        .map(|(a, n)| {
            let count = n["connectionsEstablished"]
                .as_u64()
                .with_context(|| format!("no connectionsEstablished: {n}"))?;
            Ok((a.parse()?, count))
        })
        .collect::<Result<_>>()?;
    out.sort();
    Ok(out)
}
