//! BGPPeer `reachableBy` (Calico's field): the way to a peer's address is
//! pinned to a gateway. Calico adds a BIRD static route `peerIP/32 via
//! reachableBy`, which BIRD's kernel protocol programs; here felix programs
//! the same kernel route (`<peer>/32 via <gateway> dev <underlay> proto
//! ...`, as a route through a router on the node's subnet), so that
//! neither the default route nor any other route takes over the way to the
//! peer: a host route is the most specific there is, and no learned route
//! replaces it (learned routes outside the IP pools are never programmed,
//! and the agent keeps this one when a learned best path for the same
//! address comes or goes).
//!
//! The resource's own checks (an address, of `peerIP`'s family, with
//! `peerIP`) are at load time; here, per node: the gateway must be on one
//! of the node's subnets (the kernel takes no other), not the node's own
//! address, and the peer must not be inside an IP pool (its address would
//! be a pod's). A peering whose `reachableBy` fails them gets no route and
//! a problem naming `spec.reachableBy`; its session is still configured.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::cluster::{Cluster, NodeFacts};
use crate::peers::Problem;

/// The routes to peers (host prefix -> gateway) the BGPPeers applying to
/// node `me` ask for, given the node's `subnets` (addresses with their
/// prefix length), and the problems found.
pub fn routes(
    cluster: &Cluster,
    me: &NodeFacts,
    subnets: &[IpNet],
) -> (BTreeMap<IpNet, IpAddr>, Vec<Problem>) {
    let mut out: BTreeMap<IpNet, IpAddr> = BTreeMap::new();
    let mut by: BTreeMap<IpNet, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, p) in &cluster.bgp_peers {
        let spec = &p.spec;
        let (Ok(Some(gw)), Some(peer)) = (spec.reachable_by(), spec.peer_ip) else {
            continue;
        };
        let selects_me = match (&spec.node, &spec.node_selector) {
            (Some(n), _) => *n == me.name,
            (None, Some(sel)) => sel.matches(&me.labels),
            (None, None) => true,
        };
        if !selects_me {
            continue;
        }
        let resource = format!("BGPPeer/{name}");
        let problem = |why: String| {
            Problem::new(
                &resource,
                "spec.reachableBy",
                format!("{gw}: {why}; no route to the peer {} is added", peer.ip),
            )
        };
        if subnets.iter().any(|s| s.addr() == gw) {
            problems.push(problem("is this node's own address".into()));
            continue;
        }
        if !subnets.iter().any(|s| s.trunc().contains(&gw)) {
            let shown: Vec<String> = subnets.iter().map(|s| s.trunc().to_string()).collect();
            problems.push(problem(format!(
                "is on none of this node's subnets ({}): the kernel takes a gateway only on a \
                 connected subnet",
                shown.join(", ")
            )));
            continue;
        }
        if let Some(pool) = cluster.pool_of(&IpNet::from(peer.ip)) {
            problems.push(problem(format!(
                "the peer's address is inside IP pool {}: it would be a pod's",
                pool.spec.cidr
            )));
            continue;
        }
        let prefix = IpNet::from(peer.ip);
        match by.get(&prefix) {
            Some(first) if out.get(&prefix) != Some(&gw) => {
                problems.push(problem(format!(
                    "{first} already routes the peer's address via {}",
                    out[&prefix]
                )));
            }
            Some(_) => {}
            None => {
                by.insert(prefix, resource.clone());
                out.insert(prefix, gw);
            }
        }
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster of node n1 (172.30.1.11/24, labelled rack=a) and these
    /// documents.
    fn cluster(docs: &str) -> (Cluster, NodeFacts) {
        let node = "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1, labels: {rack: a}}\nspec:\n  bgp: {ipv4Address: 172.30.1.11/24}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.244.0.0/16}\n";
        let mut c = Cluster::default();
        for r in tortie_config::resources::load_documents(&format!("{node}---\n{docs}"))
            .unwrap()
            .resources
        {
            c.upsert(r);
        }
        let me = c.facts("n1").unwrap();
        (c, me)
    }

    fn peer(name: &str, extra: &str) -> String {
        format!("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec:\n  asNumber: 65000\n{extra}---\n")
    }

    #[test]
    fn a_gateway_on_the_subnet_routes_the_peer_and_others_are_problems() {
        let docs = [
            peer("tor", "  peerIP: 203.0.113.9\n  reachableBy: 172.30.1.2\n"),
            peer("far", "  peerIP: 203.0.113.10\n  reachableBy: 172.30.9.2\n"),
            peer(
                "self",
                "  peerIP: 203.0.113.11\n  reachableBy: 172.30.1.11\n",
            ),
            peer("pod", "  peerIP: 10.244.1.5\n  reachableBy: 172.30.1.2\n"),
            peer(
                "other-rack",
                "  peerIP: 203.0.113.12\n  reachableBy: 172.30.1.3\n  nodeSelector: rack == 'b'\n",
            ),
            peer(
                "tor-again",
                "  peerIP: 203.0.113.9\n  reachableBy: 172.30.1.3\n",
            ),
        ]
        .concat();
        let (c, me) = cluster(&docs);
        let subnets = [me.v4.unwrap()];
        let (routes, problems) = routes(&c, &me, &subnets);
        let want: BTreeMap<IpNet, IpAddr> = [(
            "203.0.113.9/32".parse().unwrap(),
            "172.30.1.2".parse().unwrap(),
        )]
        .into();
        assert_eq!(routes, want);
        let said: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let expect = [
            "BGPPeer/far: spec.reachableBy: 172.30.9.2: is on none of this node's subnets (172.30.1.0/24)",
            "BGPPeer/pod: spec.reachableBy: 172.30.1.2: the peer's address is inside IP pool 10.244.0.0/16",
            "BGPPeer/self: spec.reachableBy: 172.30.1.11: is this node's own address",
            "BGPPeer/tor-again: spec.reachableBy: 172.30.1.3: BGPPeer/tor already routes the peer's address via 172.30.1.2",
        ];
        assert_eq!(said.len(), expect.len(), "{said:#?}");
        for (s, e) in said.iter().zip(expect) {
            assert!(s.starts_with(e), "{s}\n  wanted {e}");
        }
        // The routes go to felix in place of any learned route.
        let learned = crate::routes::desired(
            &c,
            &me,
            &crate::routes::Underlay {
                address: me.v4.unwrap(),
                interface: "eth0".into(),
                address_v6: None,
            },
            &BTreeMap::new(),
        )
        .learned;
        assert_eq!(learned.len(), 1);
        assert_eq!(
            learned[0].prefix,
            "203.0.113.9/32".parse::<IpNet>().unwrap()
        );
    }
}
