//! Pure: the cluster and the speaker's best paths -> the node's two
//! outputs.
//!
//! - [`originated`]: what the speaker announces for this node: each block
//!   the node owns (unless its pool says `disableBGPExport`), each address
//!   of a local pod that lies in another node's block (a borrowed /32 or
//!   /128), and, when a router's BGPPeer asks for them
//!   (`advertisePoolAggregates`), each pool the node owns a block in, as an
//!   aggregate (the speaker sends aggregates only to such routers, and
//!   those routers nothing else of ours), and the service ranges and
//!   addresses [`crate::services`] says this node announces. Each carries
//!   the communities of the BGPConfiguration's `prefixAdvertisements`
//!   whose cidr holds it ([`tag`]).
//! - [`desired`]: felix's [`DesiredState`]: this node and the others, the
//!   local pods, the owned blocks (blackholed), the addresses of our blocks
//!   used elsewhere, the routes learned over BGP, and the pools.
//!
//! Learned routes outside every pool are not programmed: Tortie routes pod
//! traffic, and a neighbour's other prefixes are the host's business.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use bgp_speaker::{LocalRoute, NextHop, PathAttrs};
use felix::desired::{
    BorrowedAddress, DesiredState, LearnedRoute, LocalNode, PeerNode, Pool, WorkloadEndpoint,
};
use ipnet::IpNet;
use tortie_config::resources::{Block, EncapMode, PrefixCommunities};

use crate::cluster::{Cluster, NodeFacts};
use crate::peers::Problem;
use crate::services;

/// The node's underlay: its address with the subnet (IPv4, or IPv6 on an
/// IPv6-only node), the interface, and a dual-stack node's IPv6 address
/// (on the same interface).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Underlay {
    pub address: IpNet,
    pub interface: String,
    pub address_v6: Option<IpNet>,
}

/// The routes this node originates, by prefix, and the problems found;
/// with `aggregator` (the speaker's router ID, when a router asks for
/// aggregates), its pools too, as aggregates formed by that speaker.
pub fn originated(
    cluster: &Cluster,
    me: &NodeFacts,
    aggregator: Option<Ipv4Addr>,
) -> (BTreeMap<IpNet, LocalRoute>, Vec<Problem>) {
    let mut out = BTreeMap::new();
    let (ranges, mut problems) = services::ranges(cluster);
    let mut next_hop = |prefix: &IpNet, what: &str| -> Option<NextHop> {
        let hop = match prefix {
            IpNet::V4(_) => me.v4.map(|a| a.addr()),
            IpNet::V6(_) => me.v6.map(|a| a.addr()),
        };
        match hop {
            Some(IpAddr::V4(a)) => Some(NextHop::V4(a)),
            Some(IpAddr::V6(a)) => Some(NextHop::V6 {
                global: a,
                link_local: None,
            }),
            None => {
                problems.push(Problem::new(
                    format!("Node/{}", me.name),
                    "spec.bgp",
                    format!(
                        "{what} {prefix}: the node has no BGP address of its family: not announced"
                    ),
                ));
                None
            }
        }
    };
    let mine: Vec<&Block> = cluster.blocks_of(&me.name).collect();
    for block in &mine {
        let cidr = block.spec.cidr;
        if cluster
            .pool_of(&cidr)
            .is_some_and(|p| p.spec.disable_bgp_export)
        {
            continue;
        }
        if let Some(hop) = next_hop(&cidr, "block") {
            out.insert(
                cidr,
                LocalRoute {
                    prefix: cidr,
                    attrs: PathAttrs::local(hop),
                },
            );
        }
    }
    // The pools of our blocks, as aggregates: ATOMIC_AGGREGATE and
    // AGGREGATOR (RFC 4271 §5.1.6, §5.1.7) tell the router that the
    // more specific routes inside are not listed.
    let pools: BTreeSet<IpNet> = mine
        .iter()
        .filter_map(|b| cluster.pool_of(&b.spec.cidr))
        .filter(|p| aggregator.is_some() && !p.spec.disable_bgp_export)
        .map(|p| p.spec.cidr)
        .collect();
    for pool in pools {
        if let Some(hop) = next_hop(&pool, "pool") {
            let mut attrs = PathAttrs::local(hop);
            attrs.atomic_aggregate = true;
            // RFC 4271 §5.1.7: the speaker's AS and BGP Identifier (an
            // IPv6-only node's too: its router ID is an IPv4 address).
            attrs.aggregator = aggregator.map(|id| (me.asn, id));
            out.insert(
                pool,
                LocalRoute {
                    prefix: pool,
                    attrs,
                },
            );
        }
    }
    for (_, wep) in cluster.endpoints_of(&me.name) {
        for net in &wep.spec.ip_networks {
            let host = IpNet::from(net.addr());
            let in_own_block = mine.iter().any(|b| b.spec.cidr.contains(&host));
            let exported = cluster
                .pool_of(&host)
                .is_none_or(|p| !p.spec.disable_bgp_export);
            if in_own_block || !exported {
                continue;
            }
            if let Some(hop) = next_hop(&host, "borrowed address") {
                out.insert(
                    host,
                    LocalRoute {
                        prefix: host,
                        attrs: PathAttrs::local(hop),
                    },
                );
            }
        }
    }
    // Service ranges and addresses: to every peer that gets the blocks
    // (the ranges cannot hold a block: one overlapping a pool is left out).
    for prefix in services::advertised(&ranges, &cluster.services, me) {
        if out.contains_key(&prefix) {
            continue;
        }
        if let Some(hop) = next_hop(&prefix, "service prefix") {
            out.insert(
                prefix,
                LocalRoute {
                    prefix,
                    attrs: PathAttrs::local(hop),
                },
            );
        }
    }
    let tags = cluster.prefix_communities(&me.name);
    if !tags.is_empty() {
        for r in out.values_mut() {
            tag(&mut r.attrs, &r.prefix, &tags);
        }
    }
    (out, problems)
}

/// Adds to `attrs` the communities of every prefix advertisement whose
/// cidr holds `prefix` (Calico's `apply_communities`: `if (net ~ cidr)
/// then bgp_community.add(...)` per entry, for every route it exports).
/// Standard values go to COMMUNITIES, large ones to LARGE_COMMUNITY, each
/// once, in order.
pub fn tag(attrs: &mut PathAttrs, prefix: &IpNet, tags: &[PrefixCommunities]) {
    for t in tags.iter().filter(|t| t.cidr.contains(prefix)) {
        attrs
            .communities
            .extend(t.values.iter().filter_map(|v| v.standard_word()));
        attrs
            .large_communities
            .extend(t.values.iter().filter_map(|v| v.large_triple()));
    }
    attrs.communities.sort_unstable();
    attrs.communities.dedup();
    attrs.large_communities.sort_unstable();
    attrs.large_communities.dedup();
}

/// felix's desired state for node `me`. `learned` is the speaker's best
/// paths learned from peers: prefix -> next hop.
pub fn desired(
    cluster: &Cluster,
    me: &NodeFacts,
    underlay: &Underlay,
    learned: &BTreeMap<IpNet, IpAddr>,
) -> DesiredState {
    let others: Vec<_> = cluster
        .all_facts()
        .into_iter()
        .filter(|n| n.name != me.name)
        .collect();
    let node_addr: BTreeMap<&str, IpAddr> = others
        .iter()
        .filter_map(|n| Some((n.name.as_str(), n.v4.or(n.v6)?.addr())))
        .collect();
    let mine: Vec<&Block> = cluster.blocks_of(&me.name).collect();
    let mut borrowed = BTreeSet::new();
    for block in &mine {
        for (address, node) in allocations_elsewhere(block, &me.name) {
            if let Some(addr) = node_addr.get(node.as_str()) {
                borrowed.insert((address, *addr));
            }
        }
    }
    DesiredState {
        local_node: LocalNode {
            name: me.name.clone(),
            addresses: local_addresses(underlay, me),
            underlay: underlay.interface.clone(),
            vteps: [me.vxlan_v4, me.vxlan_v6].into_iter().flatten().collect(),
        },
        nodes: others
            .iter()
            .map(|n| PeerNode {
                name: n.name.clone(),
                addresses: [n.v4, n.v6]
                    .into_iter()
                    .flatten()
                    .map(|a| a.addr())
                    .collect(),
                vteps: [n.vxlan_v4, n.vxlan_v6].into_iter().flatten().collect(),
            })
            .collect(),
        endpoints: cluster
            .endpoints_of(&me.name)
            .map(|(name, w)| WorkloadEndpoint {
                workload_id: name.clone(),
                interface: w.spec.interface_name.clone(),
                addresses: w.spec.ip_networks.iter().map(|n| n.addr()).collect(),
            })
            .collect(),
        blocks: mine.iter().map(|b| b.spec.cidr).collect(),
        borrowed: borrowed
            .into_iter()
            .map(|(address, node)| BorrowedAddress { address, node })
            .collect(),
        learned: with_peer_routes(
            learned_routes(cluster, learned),
            crate::reachable::routes(cluster, me, &local_addresses(underlay, me)).0,
        ),
        pools: cluster
            .pools
            .values()
            .map(|p| Pool {
                cidr: p.spec.cidr,
                ipip: encap(p.spec.ipip_mode),
                vxlan: encap(p.spec.vxlan_mode),
                nat_outgoing: p.spec.nat_outgoing,
            })
            .collect(),
    }
}

/// This node's underlay addresses, at most one per family: the underlay's,
/// then its IPv6 one or else the Node's `ipv6Address`.
fn local_addresses(underlay: &Underlay, me: &NodeFacts) -> Vec<IpNet> {
    let mut out = vec![underlay.address];
    for a in [underlay.address_v6, me.v6].into_iter().flatten() {
        if out.iter().all(|o| o.addr().is_ipv4() != a.addr().is_ipv4()) {
            out.push(a);
        }
    }
    out
}

/// `learned` with the routes to peers of BGPPeers' `reachableBy`
/// ([`crate::reachable`]) in place of any learned route of the same
/// prefix; sorted by prefix. felix programs a route to a gateway on the
/// node's subnet as `via <gateway> dev <underlay>`.
fn with_peer_routes(
    learned: Vec<LearnedRoute>,
    to_peers: BTreeMap<IpNet, IpAddr>,
) -> Vec<LearnedRoute> {
    let mut out: Vec<LearnedRoute> = learned
        .into_iter()
        .filter(|l| !to_peers.contains_key(&l.prefix))
        .collect();
    out.extend(
        to_peers
            .into_iter()
            .map(|(prefix, next_hop)| LearnedRoute { prefix, next_hop }),
    );
    out.sort_by_key(|l| l.prefix);
    out
}

/// The learned best paths felix programs: those inside a pool.
pub fn learned_routes(cluster: &Cluster, learned: &BTreeMap<IpNet, IpAddr>) -> Vec<LearnedRoute> {
    learned
        .keys()
        .filter_map(|prefix| {
            let next_hop = learned_route(cluster, learned, prefix)?;
            Some(LearnedRoute {
                prefix: *prefix,
                next_hop,
            })
        })
        .collect()
}

/// The learned route of `prefix` felix gets: its best path's next hop,
/// if it has one and lies in a pool.
pub fn learned_route(
    cluster: &Cluster,
    learned: &BTreeMap<IpNet, IpAddr>,
    prefix: &IpNet,
) -> Option<IpAddr> {
    let hop = learned.get(prefix)?;
    cluster.pool_of(prefix).is_some().then_some(*hop)
}

/// Addresses of `block` allocated to pods of another node: (address, node).
fn allocations_elsewhere(block: &Block, me: &str) -> Vec<(IpAddr, String)> {
    let spec = &block.spec;
    spec.allocations
        .iter()
        .enumerate()
        .filter_map(|(slot, attr)| {
            let attr = spec.attributes.get(usize::try_from((*attr)?).ok()?)?;
            let node = attr.secondary.get("node")?;
            (node != me).then(|| {
                let slot = u32::try_from(slot).unwrap_or(u32::MAX);
                (
                    tortie_ipam::block::address_of(&spec.cidr, slot),
                    node.clone(),
                )
            })
        })
        .collect()
}

/// Calico's pool mode in felix's vocabulary.
pub fn encap(mode: EncapMode) -> tortie_ipip::EncapMode {
    match mode {
        EncapMode::Never => tortie_ipip::EncapMode::Never,
        EncapMode::Always => tortie_ipip::EncapMode::Always,
        EncapMode::CrossSubnet => tortie_ipip::EncapMode::CrossSubnet,
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
