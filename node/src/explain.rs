//! `/routes`: every kernel route of ours the node wants or has, and why
//! (`tortiectl routes`). Pure: the desired state, felix's claims and the
//! kernel dump in, one line per prefix out.

use std::collections::BTreeMap;

use felix::desired::{DesiredRoutes, DesiredState, Source};
use felix::route::InstalledRoute;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteView {
    pub prefix: IpNet,
    /// The `ip route` line wanted, or found when not wanted.
    pub route: String,
    /// Why it is wanted (or why it is there).
    pub why: String,
    /// `installed`, `missing` (wanted, not in the kernel), `different`
    /// (the kernel has another route for the prefix) or `unwanted`.
    pub state: String,
}

/// Explains `claims` (computed from `desired`) against the dump.
pub fn explain(
    desired: &DesiredState,
    claims: &DesiredRoutes,
    installed: &[InstalledRoute],
) -> Vec<RouteView> {
    let mut have: BTreeMap<IpNet, Vec<&InstalledRoute>> = BTreeMap::new();
    for r in installed {
        have.entry(r.route.dst).or_default().push(r);
    }
    let node_of = |addr: std::net::IpAddr| {
        desired
            .nodes
            .iter()
            .find(|n| n.addresses.contains(&addr) || n.vteps.contains(&addr))
            .map_or_else(|| addr.to_string(), |n| format!("{} ({addr})", n.name))
    };
    let mut out = Vec::new();
    for (prefix, claim) in &claims.routes {
        let why = match claim.source {
            Source::Blackhole => {
                "own block (IPAM affinity): unused addresses go nowhere".to_string()
            }
            Source::LocalWorkload => desired
                .endpoints
                .iter()
                .find(|e| e.addresses.iter().any(|a| IpNet::from(*a) == *prefix))
                .map_or("local pod".into(), |e| {
                    format!("local pod {}", e.workload_id)
                }),
            Source::SameSubnet | Source::Tunnel => {
                let how = if claim.source == Source::Tunnel {
                    "encapsulated"
                } else {
                    "same subnet, no encapsulation"
                };
                if let Some(l) = desired.learned.iter().find(|l| l.prefix == *prefix) {
                    let from = if desired
                        .nodes
                        .iter()
                        .any(|n| n.addresses.contains(&l.next_hop))
                    {
                        format!("node {}", node_of(l.next_hop))
                    } else {
                        format!("{} (a router, not a node)", l.next_hop)
                    };
                    format!("learned over BGP from {from}; {how}")
                } else if let Some(b) = desired
                    .borrowed
                    .iter()
                    .find(|b| IpNet::from(b.address) == *prefix)
                {
                    format!(
                        "address of our block used on node {}; {how}",
                        node_of(b.node)
                    )
                } else {
                    how.to_string()
                }
            }
        };
        let state = match have.remove(prefix) {
            None => "missing",
            Some(h)
                if h.iter()
                    .any(|r| r.route == claim.route && r.has_default_metric()) =>
            {
                "installed"
            }
            Some(_) => "different",
        };
        out.push(RouteView {
            prefix: *prefix,
            route: claim.route.to_string(),
            why,
            state: state.into(),
        });
    }
    for (prefix, routes) in have {
        for r in routes {
            let why = if r
                .route
                .dev()
                .is_some_and(|d| d.starts_with(felix::endpoint::IFNAME_PREFIX))
            {
                "a pod route the CNI plugin made; kept until its endpoint is known or its interface goes"
            } else {
                "not wanted: the next full pass removes it"
            };
            out.push(RouteView {
                prefix,
                route: r.route.to_string(),
                why: why.into(),
                state: "unwanted".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use felix::desired::{LearnedRoute, LocalNode, PeerNode, WorkloadEndpoint};
    use felix::route::KernelRoute;

    #[test]
    fn each_route_says_why() {
        let desired = DesiredState {
            local_node: LocalNode {
                name: "n1".into(),
                addresses: vec!["192.168.1.11/24".parse().unwrap()],
                underlay: "eth0".into(),
                vteps: vec![],
            },
            nodes: vec![PeerNode {
                name: "n2".into(),
                addresses: vec!["192.168.1.12".parse().unwrap()],
                vteps: vec![],
            }],
            endpoints: vec![WorkloadEndpoint {
                workload_id: "default/pod-a".into(),
                interface: "tort00000000001".into(),
                addresses: vec!["10.244.0.2".parse().unwrap()],
            }],
            blocks: vec!["10.244.0.0/26".parse().unwrap()],
            learned: vec![LearnedRoute {
                prefix: "10.244.0.64/26".parse().unwrap(),
                next_hop: "192.168.1.12".parse().unwrap(),
            }],
            ..DesiredState::default()
        };
        let claims = felix::desired::compute(&desired);
        let installed = vec![
            InstalledRoute {
                route: KernelRoute::blackhole("10.244.0.0/26".parse().unwrap()),
                metric: None,
            },
            InstalledRoute {
                route: KernelRoute::link("10.244.0.9/32".parse().unwrap(), "tortffffffffff1"),
                metric: None,
            },
        ];
        let lines: Vec<String> = explain(&desired, &claims, &installed)
            .iter()
            .map(|r| format!("{} | {} | {}", r.route, r.state, r.why))
            .collect();
        assert_eq!(
            lines,
            [
                "blackhole 10.244.0.0/26 | installed | own block (IPAM affinity): unused addresses go nowhere",
                "10.244.0.2/32 dev tort00000000001 scope link | missing | local pod default/pod-a",
                "10.244.0.64/26 via 192.168.1.12 dev eth0 | missing | learned over BGP from node n2 (192.168.1.12); same subnet, no encapsulation",
                "10.244.0.9/32 dev tortffffffffff1 scope link | unwanted | a pod route the CNI plugin made; kept until its endpoint is known or its interface goes",
            ]
        );
    }
}
