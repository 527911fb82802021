//! Pure: the agent's published status -> `status.routes` of a
//! `CalicoNodeStatus` (class `Routes`), in Calico's words.
//!
//! calico-node fills the class from BIRD's `show route`: every route of
//! BIRD's table, `FIB` for the primary route of its prefix and `RIB` for
//! the others, `learnedFrom` the BIRD protocol that brought it (`kernel`:
//! the routes felix wrote, which BIRD imports; `static`: the blackholes of
//! the node's blocks; `direct`: the interfaces' subnets; a BGP session:
//! `NodeMesh` or `BGPPeer`, with the peer's address). tortie-node has no
//! table of everything: its speaker and its dataplane (felix) are one
//! process. It lists what that process knows, from two things the agent
//! publishes: the speaker's best paths learned from peers
//! ([`NodeStatus::best_paths`], with the peer of each) and felix's desired
//! state ([`NodeStatus::desired`], through [`felix::desired::compute`]:
//! exactly the routes `tortiectl routes` calls wanted). Each entry is one
//! of these:
//!
//! | entry | type | gateway | interface | learnedFrom |
//! |---|---|---|---|---|
//! | a route felix programs for a best path from a peer (another node's block or borrowed address) | FIB | the kernel route's: the node, or its VXLAN VTEP | the underlay, `tunl0` or `vxlan.tortie` | `NodeMesh` (mesh session) or `BGPPeer` (a BGPPeer's session), `peerIP`: the peer that sent the best path (with a route reflector, the reflector) |
//! | a route felix programs, from IPAM alone, for an address of this node's block used on another node, with no best path for it | FIB | as above | as above | `Kernel` |
//! | a pod of this node | FIB | `N/A` | its host-side veth | `Kernel` |
//! | a block of this node | FIB | `N/A` | `blackhole` | `Static` |
//! | the underlay's subnet: the kernel's connected route (not written by Tortie; it decides which next hops are on-link) | FIB | `N/A` | the underlay | `Direct` |
//! | a best path from a peer that felix does not program: outside every IP pool (Tortie routes pod traffic only), refused by felix (`/status` `dataplane.warnings`: unknown next hop, off-subnet without encapsulation, ...), or a prefix this node has itself | RIB | its BGP next hop | absent | `NodeMesh` or `BGPPeer`, as above |
//! | a prefix the node announces that is no route of its kernel: service ranges and addresses, pool aggregates | RIB | `N/A` | absent | `Static` |
//!
//! `FIB` means felix wants it in the kernel (it reconciles continuously;
//! a write that failed is in `/status` `dataplane.failures` and in
//! `tortiectl routes`). While felix has no desired state yet (the agent
//! is starting, or waiting for its peers' End-of-RIB after a restart),
//! nothing of Tortie's is `FIB`: learned routes are `RIB` and the node's
//! blocks are among the announced prefixes. Kernel routes Tortie did not
//! write (the default route, other interfaces) are not listed: BIRD
//! imports them in Calico, Tortie never reads them.
//!
//! Per family: `FIB` entries then `RIB` entries, each by destination; at
//! most `cap` of them (the rest counted in `truncatedV4`, `truncatedV6`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use felix::desired::{Claim, Source};
use felix::route::RouteKind;
use ipnet::IpNet;
use tortie_config::resources::{
    LearnedFrom, RouteSourceType, RouteStatus, RouteType, RoutesStatus, BLACKHOLE, NO_GATEWAY,
};

use crate::status::NodeStatus;

/// One entry before it is written out (the strings are made only for the
/// entries kept).
struct Entry<'a> {
    fib: bool,
    destination: IpNet,
    gateway: Option<IpAddr>,
    interface: Option<&'a str>,
    source: RouteSourceType,
    peer: Option<IpAddr>,
}

// ===== the mapping =====

/// The routes of `status`, at most `cap` per family.
pub fn routes(status: &NodeStatus, cap: usize) -> RoutesStatus {
    let claims: BTreeMap<IpNet, Claim> = status
        .desired
        .as_deref()
        .map(|d| felix::desired::compute(d).routes)
        .unwrap_or_default();
    // Why we peer with each peer: mesh sessions are `NodeMesh`, every
    // other one a BGPPeer's.
    let mesh: BTreeSet<IpAddr> = status
        .peers
        .iter()
        .filter(|p| p.kind == "node-to-node mesh")
        .map(|p| p.address)
        .collect();
    let from_peer = |peer: IpAddr| {
        if mesh.contains(&peer) {
            RouteSourceType::NodeMesh
        } else {
            RouteSourceType::BGPPeer
        }
    };
    let mut entries: Vec<Entry> = Vec::new();
    for (destination, claim) in &claims {
        let (gateway, interface, kernel_source) = match &claim.route.kind {
            RouteKind::Link { dev } => (None, dev.as_str(), RouteSourceType::Kernel),
            RouteKind::Blackhole => (None, BLACKHOLE, RouteSourceType::Static),
            RouteKind::Via { gateway, dev, .. } => {
                (Some(*gateway), dev.as_str(), RouteSourceType::Kernel)
            }
            RouteKind::Unsupported { .. } => continue,
        };
        let peer = match claim.source {
            Source::Tunnel | Source::SameSubnet => {
                status.best_paths.get(destination).map(|p| p.peer)
            }
            Source::Blackhole | Source::LocalWorkload => None,
        };
        entries.push(Entry {
            fib: true,
            destination: *destination,
            gateway,
            interface: Some(interface),
            source: peer.map_or(kernel_source, from_peer),
            peer,
        });
    }
    let mut subnets: BTreeSet<IpNet> = status.address.iter().map(IpNet::trunc).collect();
    if let Some(d) = &status.desired {
        subnets.extend(d.local_node.addresses.iter().map(IpNet::trunc));
    }
    for subnet in subnets {
        entries.push(Entry {
            fib: true,
            destination: subnet,
            gateway: None,
            interface: Some(status.interface.as_str()),
            source: RouteSourceType::Direct,
            peer: None,
        });
    }
    for (destination, path) in status.best_paths.iter() {
        let programmed = claims
            .get(destination)
            .is_some_and(|c| matches!(c.source, Source::Tunnel | Source::SameSubnet));
        if !programmed {
            entries.push(Entry {
                fib: false,
                destination: *destination,
                gateway: Some(path.next_hop),
                interface: None,
                source: from_peer(path.peer),
                peer: Some(path.peer),
            });
        }
    }
    for destination in &status.originated {
        if !claims.contains_key(destination) {
            entries.push(Entry {
                fib: false,
                destination: *destination,
                gateway: None,
                interface: None,
                source: RouteSourceType::Static,
                peer: None,
            });
        }
    }
    // FIB first, then by destination (stable: one destination's FIB
    // entry before its RIB one).
    entries.sort_by_key(|e| (!e.fib, e.destination));
    let (v4, v6): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| e.destination.addr().is_ipv4());
    let (routes_v4, truncated_v4) = capped(v4, cap);
    let (routes_v6, truncated_v6) = capped(v6, cap);
    RoutesStatus {
        routes_v4,
        routes_v6,
        truncated_v4,
        truncated_v6,
    }
}

// ===== helpers =====

/// The first `cap` entries, written out, and how many were left out.
fn capped(entries: Vec<Entry>, cap: usize) -> (Vec<RouteStatus>, u32) {
    let left_out = u32::try_from(entries.len().saturating_sub(cap)).unwrap_or(u32::MAX);
    let kept = entries.into_iter().take(cap).map(write_out).collect();
    (kept, left_out)
}

fn write_out(e: Entry) -> RouteStatus {
    RouteStatus {
        kind: Some(if e.fib {
            RouteType::FIB
        } else {
            RouteType::RIB
        }),
        destination: Some(e.destination.to_string()),
        gateway: Some(
            e.gateway
                .map_or_else(|| NO_GATEWAY.into(), |g| g.to_string()),
        ),
        interface: e.interface.map(String::from),
        learned_from: Some(LearnedFrom {
            source_type: Some(e.source),
            peer_ip: e.peer,
        }),
    }
}

#[cfg(test)]
#[path = "status_report_routes_tests.rs"]
mod tests;
