//! Route policy of tortie-node against a real router: a BIRD ToR (AS
//! 65000, a host on the nodes' subnet) peers over eBGP with two nodes
//! (AS 64512, mesh on, one subnet, no encapsulation). The ToR announces
//! two prefixes inside the pool and one outside it; the nodes' BGPPeer to
//! it names a BGPFilter, and the BGPConfiguration tags the pool's routes
//! with communities.
//!
//! ```text
//!   node1 .11 ──┐
//!               ├── subnet A 172.30.1.0/24 ── tor .2 (BIRD, AS 65000)
//!   node2 .12 ──┘
//! ```
//!
//! Checks:
//! 1. Export: the filter rejects node1's block: the ToR has node2's block
//!    (from node2) and not node1's (from nobody: node2 sends a router only
//!    its own routes).
//! 2. Communities: the ToR sees node2's block with the standard and large
//!    communities of `prefixAdvertisements` (`birdc show route all`).
//! 3. Import: the filter rejects 10.244.250.0/24 (inside the pool) and
//!    accepts 198.51.100.0/24 (outside it, which the default refuses):
//!    3 received, 2 accepted; the kernel has 10.244.251.0/24 via the ToR,
//!    neither of the other two (198.51.100.0/24 is outside the pools).
//! 4. The filter changed in the datastore (export: node2's block instead
//!    of node1's; import: 10.244.251.0/24 instead of 10.244.250.0/24),
//!    and the communities (one standard community now):
//!    the ToR gets node1's block, with the new community, and loses
//!    node2's, the nodes program
//!    10.244.250.0/24 and remove 10.244.251.0/24 (taken again through a
//!    ROUTE-REFRESH), and no session restarts: BIRD's sessions keep their
//!    since-time, the nodes' sessions keep theirs.
//! 5. A filter named but missing: nothing reaches the ToR from either node
//!    and nothing is accepted from it; each node reports the BGPPeer's
//!    `spec.filters[1]`. Once the filter exists, node1's block is back.
//!    Still no session restarted.
//! 6. reachableBy: a BGPPeer to 203.0.113.9 (behind the ToR) with
//!    `reachableBy: <ToR>` puts `203.0.113.9 via <ToR>` in each node's
//!    kernel; one whose gateway is on no subnet of the nodes gets no route
//!    and a problem naming `spec.reachableBy`; one of another family than
//!    its peerIP is refused by `tortiectl apply`, naming the field.
//!    Deleting the first takes its route away.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tortie_ctl::lab::{net, Lab};
use tortie_tests::lab::{apply, block4};
use tortie_tests::tor::{bird_here, communities_lab, paths, BirdTor};
use tortie_tests::wait_until;

const TEST: &str = "node_policy";

#[test]
fn filters_and_communities_with_a_bird_tor() -> Result<()> {
    if !bird_here(TEST) {
        return Ok(());
    }
    let (lab, ns, tor_addr) = communities_lab("pol")?;
    let tor = BirdTor::start_with(
        &lab,
        &ns,
        tor_addr,
        64512,
        &["10.244.250.0/24", "10.244.251.0/24", "198.51.100.0/24"],
    )?;
    let (b1, b2) = (block4(&lab, 0), block4(&lab, 1));
    apply(
        &lab,
        "policy",
        &format!(
            "apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {{name: edge}}
spec:
  exportV4:
    - {{action: Reject, matchOperator: Equal, cidr: {b1}}}
  importV4:
    - {{action: Reject, matchOperator: Equal, cidr: 10.244.250.0/24}}
    - {{action: Accept, matchOperator: Equal, cidr: 198.51.100.0/24}}
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

    // 1. Export: node1's block held back by its filter.
    tor.expect(&b2, &[1])?;
    tor.expect(&b1, &[])?;
    // 2. Communities on node2's block, as BIRD shows them.
    let table = tor.table()?;
    let attrs = route_all(&table, &b2);
    for want in [
        "BGP.community: (64512,7) (65000,100)",
        "BGP.large_community: (65000, 1, 2)",
    ] {
        assert!(
            attrs.contains(want),
            "{b2} lacks `{want}` at the ToR:\n{attrs}"
        );
    }
    // 3. Import: two of the ToR's three accepted; one programmed.
    for i in 0..2 {
        let peer = wait_until(
            Duration::from_secs(30),
            "the ToR's routes at the node",
            || {
                let p = tor_peer(&lab, i, tor_addr).map_err(|e| e.to_string())?;
                match (&p["prefixesReceived"], &p["prefixesAccepted"]) {
                    (r, a) if *r == 3 && *a == 2 => Ok(p),
                    _ => Err(p.to_string()),
                }
            },
        )?;
        assert_eq!(peer["state"], "Established", "{peer}");
        let routes = wait_until(
            Duration::from_secs(10),
            "10.244.251.0/24 programmed",
            || {
                let r =
                    net::ip_in_output(&lab.nodes[i].ns, &["route"]).map_err(|e| e.to_string())?;
                if r.contains(&format!("10.244.251.0/24 via {tor_addr} ")) {
                    Ok(r)
                } else {
                    Err(r)
                }
            },
        )?;
        assert!(
            !routes.contains("10.244.250.0/24"),
            "rejected, yet:\n{routes}"
        );
        assert!(
            !routes.contains("198.51.100.0"),
            "outside the pools:\n{routes}"
        );
    }

    // 4. The filter changes; the sessions stay.
    let sessions = |tor: &BirdTor| -> Result<Vec<String>> {
        (0..2).map(|i| tor.session(&format!("n{i}"))).collect()
    };
    let before = sessions(&tor)?;
    let since: Vec<Value> = (0..2)
        .map(|i| tor_peer(&lab, i, tor_addr).map(|p| p["sinceUnix"].clone()))
        .collect::<Result<_>>()?;
    assert!(
        since.iter().all(|t| t.as_u64().is_some_and(|t| t > 0)),
        "sessions' since-times: {since:?}"
    );
    eprintln!("node_policy: ToR sessions before the change: {before:?}, node sessions since (unix) {since:?}");
    apply(
        &lab,
        "changed",
        &format!(
            "apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {{name: edge}}
spec:
  exportV4:
    - {{action: Reject, matchOperator: Equal, cidr: {b2}}}
  importV4:
    - {{action: Reject, matchOperator: Equal, cidr: 10.244.251.0/24}}
    - {{action: Accept, matchOperator: Equal, cidr: 198.51.100.0/24}}
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
        ),
    )?;
    tor.expect(&b1, &[0])?;
    tor.expect(&b2, &[])?;
    wait_until(
        Duration::from_secs(30),
        "node1's block with the new community",
        || {
            let table = tor.table().map_err(|e| e.to_string())?;
            let attrs = route_all(&table, &b1);
            if attrs.contains("BGP.community: (65000,101)\n") && !attrs.contains("large_community")
            {
                Ok(())
            } else {
                Err(attrs)
            }
        },
    )?;
    for (i, was) in since.iter().enumerate() {
        wait_until(
            Duration::from_secs(30),
            "10.244.250.0/24 programmed instead of 10.244.251.0/24",
            || {
                let r =
                    net::ip_in_output(&lab.nodes[i].ns, &["route"]).map_err(|e| e.to_string())?;
                if r.contains(&format!("10.244.250.0/24 via {tor_addr} "))
                    && !r.contains("10.244.251.0/24")
                {
                    Ok(())
                } else {
                    Err(r)
                }
            },
        )?;
        let p = tor_peer(&lab, i, tor_addr)?;
        assert_eq!(p["state"], "Established", "{p}");
        assert_eq!(
            p["sinceUnix"], *was,
            "node {i}'s session to the ToR restarted: {p}"
        );
    }
    assert_eq!(sessions(&tor)?, before, "a ToR session restarted");

    // 5. A missing filter: nothing either way, said on the BGPPeer.
    apply(
        &lab,
        "missing",
        &format!(
            "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: tor}}
spec:
  peerIP: {tor_addr}
  asNumber: 65000
  filters: [edge, later]
"
        ),
    )?;
    tor.expect(&b1, &[])?;
    for i in 0..2 {
        wait_until(
            Duration::from_secs(30),
            "the missing filter's effect",
            || {
                let s = lab.node_status(i).map_err(|e| e.to_string())?;
                let said = s["problems"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p.as_str().is_some_and(|p| {
                            p.starts_with(
                                "BGPPeer/tor: spec.filters[1]: BGPFilter/later does not exist",
                            )
                        })
                    })
                });
                let p = tor_peer(&lab, i, tor_addr).map_err(|e| e.to_string())?;
                let nothing = p["state"] == "Established"
                    && p["prefixesAccepted"] == 0
                    && p["prefixesAdvertised"] == 0;
                if said && nothing {
                    Ok(())
                } else {
                    Err(format!("problems {}, peer {p}", s["problems"]))
                }
            },
        )?;
    }
    apply(
        &lab,
        "later",
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: later}\nspec:\n  exportV6:\n    - {action: Reject}\n",
    )?;
    tor.expect(&b1, &[0])?;
    tor.expect(&b2, &[])?;
    lab.wait_full_mesh(Duration::from_secs(30))?;
    assert_eq!(sessions(&tor)?, before, "a ToR session restarted");
    for (i, f) in since.iter().enumerate() {
        let p = tor_peer(&lab, i, tor_addr)?;
        assert_eq!(
            p["sinceUnix"], *f,
            "node {i}'s session to the ToR restarted: {p}"
        );
    }

    // 6. reachableBy.
    let peer = |name: &str, ip: &str, by: &str| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: {name}}}\n\
             spec: {{peerIP: '{ip}', asNumber: 65001, reachableBy: '{by}'}}\n"
        )
    };
    let err = apply(&lab, "family", &peer("v6gw", "203.0.113.11", "fd00::1"))
        .expect_err("a gateway of another family is refused");
    assert!(
        format!("{err:#}").contains("spec.reachableBy: \"fd00::1\": another address family"),
        "{err:#}"
    );
    apply(
        &lab,
        "reachable",
        &format!(
            "{}---\n{}",
            peer("behind-tor", "203.0.113.9", &tor_addr.to_string()),
            peer("nowhere", "203.0.113.10", "192.0.2.1")
        ),
    )?;
    for i in 0..2 {
        wait_until(
            Duration::from_secs(30),
            "the route to 203.0.113.9 via the ToR, and the problem",
            || {
                let r =
                    net::ip_in_output(&lab.nodes[i].ns, &["route"]).map_err(|e| e.to_string())?;
                let routed = r.contains(&format!("203.0.113.9 via {tor_addr} "));
                let s = lab.node_status(i).map_err(|e| e.to_string())?;
                let said = s["problems"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p.as_str().is_some_and(|p| {
                            p.starts_with("BGPPeer/nowhere: spec.reachableBy: 192.0.2.1: is on none of this node's subnets")
                        })
                    })
                });
                if routed && said && !r.contains("203.0.113.10") {
                    Ok(())
                } else {
                    Err(format!("routes:\n{r}\nproblems {}", s["problems"]))
                }
            },
        )?;
    }
    lab.tortiectl(&["delete", "bgppeer", "behind-tor"])?;
    for i in 0..2 {
        wait_until(
            Duration::from_secs(30),
            "the route to 203.0.113.9 gone",
            || {
                let r =
                    net::ip_in_output(&lab.nodes[i].ns, &["route"]).map_err(|e| e.to_string())?;
                if r.contains("203.0.113.9") {
                    Err(r)
                } else {
                    Ok(())
                }
            },
        )?;
    }
    Ok(())
}

// ===== helpers =====

/// Node `i`'s row of the ToR in its `/status`.
fn tor_peer(lab: &Lab, i: usize, tor: std::net::Ipv4Addr) -> Result<Value> {
    let s = lab.node_status(i)?;
    s["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["address"] == tor.to_string().as_str()))
        .cloned()
        .with_context(|| format!("no ToR peer: {s}"))
}

/// The lines of `show route all` about `prefix` (all its paths).
fn route_all(table: &str, prefix: &str) -> String {
    assert!(
        paths(table).contains_key(prefix),
        "{prefix} not in:\n{table}"
    );
    let mut out = String::new();
    let mut inside = false;
    for line in table.lines() {
        if !line.starts_with(char::is_whitespace) {
            inside = line.split_whitespace().next() == Some(prefix);
        }
        if inside {
            out += line;
            out.push('\n');
        }
    }
    out
}
