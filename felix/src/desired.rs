//! Pure: desired state in, desired kernel routes (and warnings) out.
//!
//! Which route for which case (the `ip route` lines, all `proto` ours):
//!
//! | source | route |
//! |---|---|
//! | local workload address | `10.244.3.7/32 dev tortXXXXXXXXXXX scope link` (and `/128`) |
//! | own block | `blackhole 10.244.3.0/26` |
//! | peer block or borrowed /32, `Direct`, peer in local subnet | `10.244.7.0/26 via 192.168.1.12 dev <underlay>` |
//! | learned route whose next hop is no node but on the local subnet (a ToR) | `10.244.7.0/26 via 192.168.1.1 dev <underlay>` |
//! | ... `Direct`, peer outside local subnet | none: the fabric routes it (warning) |
//! | ... `Ipip` | `10.244.7.0/26 via 192.168.2.21 dev tunl0 onlink` |
//! | ... `Vxlan` | `10.244.7.0/26 via <peer VTEP> dev vxlan.tortie onlink` |
//! | ... `Vxlan`, IPv6 | `fd00:244::80/122 via <peer IPv6 VTEP> dev vxlan-v6.tortie onlink` |
//!
//! When several sources claim one prefix the highest [`Source`] wins:
//! local workload > same-subnet (direct) > tunnel > blackhole.
//! Bad input items are skipped with a [`Warning`] naming them; everything
//! else is still computed.
//!
//! [`compute`] works on the whole state; [`update`] recomputes only the
//! prefixes whose learned routes changed (what a BGP UPDATE brings), with
//! the same rules (both run the same code, restricted to some prefixes),
//! so its cost follows the change, not the number of nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tortie_ipip::{decide, Encap, EncapError, EncapMode, EncapWarning};

use crate::route::KernelRoute;

/// Name of the IPIP tunnel device (created by the kernel's ipip module).
pub const IPIP_DEV: &str = "tunl0";
/// Name of Tortie's IPv4 VXLAN device.
pub const VXLAN_DEV: &str = tortie_ipip::vxlan::VXLAN_DEV;
/// Name of Tortie's IPv6 VXLAN device.
pub const VXLAN_DEV_V6: &str = tortie_ipip::vxlan::VXLAN_DEV_V6;
/// Linux's limit on interface names (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Everything felix needs to know to compute the node's routes. The node
/// agent assembles it from the datastore and the BGP speaker; no BGP types.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DesiredState {
    /// This node.
    pub local_node: LocalNode,
    /// Every other node: the only valid next hops for learned routes.
    pub nodes: Vec<PeerNode>,
    /// Workloads (pods) on this node.
    pub endpoints: Vec<WorkloadEndpoint>,
    /// Blocks this node owns (IPAM affinity): blackholed.
    pub blocks: Vec<IpNet>,
    /// Addresses of our blocks that another node uses (borrowed /32s, /128s).
    pub borrowed: Vec<BorrowedAddress>,
    /// Routes the BGP speaker learned: (prefix, next-hop node address).
    pub learned: Vec<LearnedRoute>,
    /// IP pools with their encapsulation modes.
    pub pools: Vec<Pool>,
}

/// A change of the learned routes of one prefix: the next hop it is
/// learned through now, or `None` for withdrawn.
pub type LearnedChange = (IpNet, Option<IpAddr>);

/// A change of one wanted route: the prefix, its route before and after.
pub type RouteChange = (IpNet, Option<KernelRoute>, Option<KernelRoute>);

impl DesiredState {
    /// Replaces the learned routes of `prefix` with one through `next_hop`
    /// (none when `None`). A learned list sorted by prefix stays sorted.
    pub fn set_learned(&mut self, prefix: IpNet, next_hop: Option<IpAddr>) {
        self.learned.retain(|l| l.prefix != prefix);
        if let Some(next_hop) = next_hop {
            let at = self.learned.partition_point(|l| l.prefix < prefix);
            self.learned.insert(at, LearnedRoute { prefix, next_hop });
        }
    }
}

/// The local node as registered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LocalNode {
    /// Node name, for messages.
    pub name: String,
    /// Underlay addresses with their subnet prefix (`192.168.1.11/24`), at
    /// most one per family is used: the first.
    pub addresses: Vec<IpNet>,
    /// Underlay interface for direct routes (e.g. `eth0`).
    pub underlay: String,
    /// This node's VXLAN tunnel endpoint address (on `vxlan.tortie`), at most
    /// one per family; without one no VXLAN device is managed.
    #[serde(default)]
    pub vteps: Vec<IpAddr>,
}

/// Another node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PeerNode {
    /// Node name, for messages.
    pub name: String,
    /// Its underlay addresses (the BGP next hops it uses).
    pub addresses: Vec<IpAddr>,
    /// Its VXLAN tunnel endpoint addresses (on its `vxlan.tortie`), one per
    /// family at most.
    #[serde(default)]
    pub vteps: Vec<IpAddr>,
}

/// A workload (pod) interface on this node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkloadEndpoint {
    /// Stable workload id (names the host-side interface).
    pub workload_id: String,
    /// Host-side interface name, `tort` + 11 hex chars.
    pub interface: String,
    /// The pod's addresses (each becomes a /32 or /128).
    pub addresses: Vec<IpAddr>,
}

/// An address of one of our blocks that lives on another node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BorrowedAddress {
    /// The borrowed address (routed as /32 or /128).
    pub address: IpAddr,
    /// Underlay address of the node that uses it.
    pub node: IpAddr,
}

/// A route learned over BGP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedRoute {
    /// The advertised prefix (a block or a borrowed host route).
    pub prefix: IpNet,
    /// The BGP next hop: a node's underlay address.
    pub next_hop: IpAddr,
}

/// An IP pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The pool's CIDR.
    pub cidr: IpNet,
    /// IPIP mode.
    #[serde(default)]
    pub ipip: EncapMode,
    /// VXLAN mode.
    #[serde(default)]
    pub vxlan: EncapMode,
    /// Masquerade traffic leaving the pools ([`crate::nat`]).
    #[serde(default)]
    pub nat_outgoing: bool,
}

/// Why a route is wanted; the order is the priority (last wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Source {
    /// An own block.
    Blackhole,
    /// A peer's prefix through a tunnel device.
    Tunnel,
    /// A peer's prefix directly over the shared subnet.
    SameSubnet,
    /// A workload on this node.
    LocalWorkload,
}

/// One wanted route and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The route.
    pub route: KernelRoute,
    /// The source that won the prefix.
    pub source: Source,
}

/// The outcome of [`compute`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DesiredRoutes {
    /// One route per prefix.
    pub routes: BTreeMap<IpNet, Claim>,
    /// Problems found in the input, each naming the item; skipped items are
    /// not in `routes`.
    pub warnings: Vec<Warning>,
}

/// A problem with one input item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Warning {
    /// A pool overlaps the local node's subnet: ignored for encapsulation.
    PoolOverlapsNodeSubnet {
        /// The pool.
        pool: IpNet,
        /// The node's subnet.
        subnet: IpNet,
    },
    /// Two nodes claim overlapping blocks (both still programmed; the kernel
    /// picks the longest prefix).
    OverlappingBlocks {
        /// The learned prefix.
        prefix: IpNet,
        /// Its next hop.
        next_hop: IpAddr,
        /// The block it overlaps.
        other: IpNet,
        /// Who claims the other: `local` or a next-hop address.
        other_owner: String,
    },
    /// Two next hops for one prefix: the lower address is used.
    ConflictingNextHops {
        /// The prefix.
        prefix: IpNet,
        /// The next hop used.
        kept: IpAddr,
        /// The next hop ignored.
        ignored: IpAddr,
    },
    /// A next hop that is no known node's address: skipped.
    UnknownNextHop {
        /// The prefix.
        prefix: IpNet,
        /// The unknown next hop.
        next_hop: IpAddr,
    },
    /// A next hop that is this node: skipped.
    NextHopIsLocal {
        /// The prefix.
        prefix: IpNet,
    },
    /// No local node address of the prefix's family: skipped.
    NoLocalAddress {
        /// The prefix.
        prefix: IpNet,
    },
    /// The pool's modes are invalid for this peer: skipped.
    Encap {
        /// The prefix.
        prefix: IpNet,
        /// The pool it belongs to, if any.
        pool: Option<IpNet>,
        /// Why.
        error: String,
    },
    /// The encapsulation decision warned (local host prefix).
    EncapWarning {
        /// The warning text.
        message: String,
    },
    /// VXLAN towards a node without a VTEP address of that family: skipped.
    NoVtep {
        /// The prefix.
        prefix: IpNet,
        /// The node.
        node: String,
    },
    /// No encapsulation and the next hop is off-subnet: no route is
    /// programmed, traffic follows the host's other routes (the fabric).
    OffSubnetDirect {
        /// The prefix.
        prefix: IpNet,
        /// The next hop.
        next_hop: IpAddr,
    },
    /// An endpoint's interface name is not a valid Linux name: skipped.
    InvalidInterface {
        /// The workload.
        workload_id: String,
        /// The name.
        interface: String,
    },
}

/// Computes the routes for `state`. Pure and deterministic.
pub fn compute(state: &DesiredState) -> DesiredRoutes {
    compute_in(state, None)
}

/// Brings `routes`, computed by [`compute`] (or this) from `state` before
/// the learned routes of the prefixes in `changed` changed, up to date with
/// `state`: the claims of those prefixes and the warnings about them are
/// computed again, nothing else. Everything else in `state` must be as it
/// was. Returns the wanted routes that changed.
pub fn update(
    state: &DesiredState,
    routes: &mut DesiredRoutes,
    changed: &BTreeSet<IpNet>,
) -> Vec<RouteChange> {
    let part = compute_in(state, Some(changed));
    routes.warnings.retain(|w| !w.is_about(changed));
    for w in part.warnings {
        if !routes.warnings.contains(&w) {
            routes.warnings.push(w);
        }
    }
    let mut out = Vec::new();
    for prefix in changed {
        let after = part.routes.get(prefix).cloned();
        let before = match after {
            Some(claim) => routes.routes.insert(*prefix, claim),
            None => routes.routes.remove(prefix),
        };
        let before = before.map(|c| c.route);
        let after = routes.routes.get(prefix).map(|c| &c.route);
        if before.as_ref() != after {
            out.push((*prefix, before, after.cloned()));
        }
    }
    out
}

/// [`compute`], for every prefix or only those in `only` (then the
/// warnings are those about these prefixes, and the global ones).
fn compute_in(state: &DesiredState, only: Option<&BTreeSet<IpNet>>) -> DesiredRoutes {
    let wanted = |p: &IpNet| only.is_none_or(|s| s.contains(p));
    let mut out = Builder::default();
    let pools = usable_pools(state, &mut out.warnings);
    for block in state.blocks.iter().filter(|b| wanted(b)) {
        out.claim(KernelRoute::blackhole(*block), Source::Blackhole);
    }
    // The remote routes of the prefixes looked at, sorted (the lower next
    // hop of one prefix wins); with `only`, the others are read for
    // overlaps alone, unsorted.
    let mut remote: Vec<(IpNet, IpAddr)> =
        remote_routes(state).filter(|(p, _)| wanted(p)).collect();
    remote.sort();
    remote.dedup();
    check_overlaps(state, &remote, only.is_some(), &mut out.warnings);
    for (prefix, next_hop) in &remote {
        remote_route(state, &pools, *prefix, *next_hop, &mut out);
    }
    for ep in &state.endpoints {
        if !valid_ifname(&ep.interface) {
            out.warnings.push(Warning::InvalidInterface {
                workload_id: ep.workload_id.clone(),
                interface: ep.interface.clone(),
            });
            continue;
        }
        for addr in &ep.addresses {
            let dst = IpNet::from(*addr);
            if wanted(&dst) {
                out.claim(
                    KernelRoute::link(dst, ep.interface.clone()),
                    Source::LocalWorkload,
                );
            }
        }
    }
    out.finish()
}

/// Whether `name` can be a Linux interface name.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

// ===== impl Warning =====

impl Warning {
    /// Whether the warning is about one of `prefixes` (a remote route's
    /// problem); the others are about the node, its pools or endpoints.
    pub fn is_about(&self, prefixes: &BTreeSet<IpNet>) -> bool {
        match self {
            Warning::OverlappingBlocks { prefix, other, .. } => {
                prefixes.contains(prefix) || prefixes.contains(other)
            }
            Warning::ConflictingNextHops { prefix, .. }
            | Warning::UnknownNextHop { prefix, .. }
            | Warning::NextHopIsLocal { prefix }
            | Warning::NoLocalAddress { prefix }
            | Warning::Encap { prefix, .. }
            | Warning::NoVtep { prefix, .. }
            | Warning::OffSubnetDirect { prefix, .. } => prefixes.contains(prefix),
            Warning::PoolOverlapsNodeSubnet { .. }
            | Warning::EncapWarning { .. }
            | Warning::InvalidInterface { .. } => false,
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::PoolOverlapsNodeSubnet { pool, subnet } => write!(
                f,
                "pool {pool} overlaps the node subnet {subnet}: pool ignored for \
                 encapsulation; pick a pool CIDR outside the node network"
            ),
            Warning::OverlappingBlocks {
                prefix,
                next_hop,
                other,
                other_owner,
            } => write!(
                f,
                "block {prefix} from node {next_hop} overlaps block {other} of \
                 {other_owner}: both programmed, the longest prefix wins; fix IPAM"
            ),
            Warning::ConflictingNextHops {
                prefix,
                kept,
                ignored,
            } => write!(
                f,
                "prefix {prefix} is claimed by nodes {kept} and {ignored}: using {kept}"
            ),
            Warning::UnknownNextHop { prefix, next_hop } => write!(
                f,
                "route {prefix}: next hop {next_hop} is neither a known node's address \
                 nor on the local subnet: skipped"
            ),
            Warning::NextHopIsLocal { prefix } => {
                write!(f, "route {prefix}: next hop is this node: skipped")
            }
            Warning::NoLocalAddress { prefix } => write!(
                f,
                "route {prefix}: the local node has no address of this family: skipped"
            ),
            Warning::Encap {
                prefix,
                pool,
                error,
            } => match pool {
                Some(pool) => write!(f, "route {prefix} in pool {pool}: {error}: skipped"),
                None => write!(f, "route {prefix}: {error}: skipped"),
            },
            Warning::EncapWarning { message } => f.write_str(message),
            Warning::NoVtep { prefix, node } => write!(
                f,
                "route {prefix}: VXLAN to node {node} which has no VTEP address of \
                 this family: skipped"
            ),
            Warning::OffSubnetDirect { prefix, next_hop } => write!(
                f,
                "route {prefix}: next hop {next_hop} is outside the local subnet and \
                 the pool does not encapsulate: no route programmed, the fabric must \
                 route pod traffic"
            ),
            Warning::InvalidInterface {
                workload_id,
                interface,
            } => write!(
                f,
                "workload {workload_id}: interface name {interface:?} is not a valid \
                 Linux interface name (1-15 chars, no '/', ':' or spaces): skipped"
            ),
        }
    }
}

// ===== helpers =====

/// Accumulates claims and warnings.
#[derive(Default)]
struct Builder {
    routes: BTreeMap<IpNet, Claim>,
    /// Next hop that won each remote prefix, to report conflicts.
    remote_next_hop: BTreeMap<IpNet, IpAddr>,
    warnings: Vec<Warning>,
}

impl Builder {
    /// Records `route` unless a higher-priority source has the prefix.
    fn claim(&mut self, route: KernelRoute, source: Source) {
        match self.routes.get(&route.dst) {
            Some(c) if c.source >= source => {}
            _ => {
                self.routes.insert(route.dst, Claim { route, source });
            }
        }
    }

    /// Records a peer's route. Same prefix from two next hops with the
    /// same priority: the first (lower address, `remote` is sorted) stays.
    fn claim_remote(&mut self, route: KernelRoute, source: Source, next_hop: IpAddr) {
        let prefix = route.dst;
        if let Some(prev) = self.remote_next_hop.get(&prefix).copied() {
            let prev_wins = self.routes.get(&prefix).is_some_and(|c| c.source >= source);
            let (kept, ignored) = if prev_wins {
                (prev, next_hop)
            } else {
                (next_hop, prev)
            };
            self.warnings.push(Warning::ConflictingNextHops {
                prefix,
                kept,
                ignored,
            });
            if prev_wins {
                return;
            }
        }
        self.remote_next_hop.insert(prefix, next_hop);
        self.claim(route, source);
    }

    fn finish(mut self) -> DesiredRoutes {
        let mut seen = Vec::new();
        self.warnings.retain(|w| {
            let dup = seen.contains(w);
            if !dup {
                seen.push(w.clone());
            }
            !dup
        });
        DesiredRoutes {
            routes: self.routes,
            warnings: self.warnings,
        }
    }
}

/// Pools that may be used for decisions; warns about the others, and
/// about a local host prefix that makes a pool's `CrossSubnet`
/// encapsulate everything (whether or not a route uses the pool yet).
fn usable_pools<'a>(state: &'a DesiredState, warnings: &mut Vec<Warning>) -> Vec<&'a Pool> {
    let mut usable = Vec::new();
    'pools: for pool in &state.pools {
        for local in &state.local_node.addresses {
            let subnet = local.trunc();
            if subnet.contains(&pool.cidr.trunc()) || pool.cidr.trunc().contains(&subnet) {
                warnings.push(Warning::PoolOverlapsNodeSubnet {
                    pool: pool.cidr,
                    subnet,
                });
                continue 'pools;
            }
        }
        let local = state
            .local_node
            .addresses
            .iter()
            .find(|a| a.addr().is_ipv4() == pool.cidr.addr().is_ipv4());
        if let Some(local) = local {
            // The decision for any peer carries the warning (it depends on
            // the local prefix alone); errors are reported per route.
            if let Ok(d) = decide(pool.ipip, pool.vxlan, *local, local.addr()) {
                if let Some(w @ EncapWarning::HostPrefix { .. }) = &d.warning {
                    warnings.push(Warning::EncapWarning {
                        message: w.to_string(),
                    });
                }
            }
        }
        usable.push(pool);
    }
    usable
}

/// Every remote route (learned, borrowed) as (prefix, next hop).
fn remote_routes(state: &DesiredState) -> impl Iterator<Item = (IpNet, IpAddr)> + '_ {
    state
        .learned
        .iter()
        .map(|l| (l.prefix.trunc(), l.next_hop))
        .chain(
            state
                .borrowed
                .iter()
                .map(|b| (IpNet::from(b.address), b.node)),
        )
}

/// Warns about learned blocks (not host routes) that overlap an own block or
/// a block of another next hop: those in `remote` (sorted), against each
/// other, or with `some`, against every remote route of the state. A pair
/// is reported as (lower, higher).
fn check_overlaps(
    state: &DesiredState,
    remote: &[(IpNet, IpAddr)],
    some: bool,
    warnings: &mut Vec<Warning>,
) {
    let is_host = |p: &IpNet| p.prefix_len() == p.max_prefix_len();
    let overlaps = |a: &IpNet, b: &IpNet| a.contains(b) || b.contains(a);
    let pair = |a: &(IpNet, IpAddr), b: &(IpNet, IpAddr)| {
        !is_host(&a.0) && !is_host(&b.0) && a.0 != b.0 && a.1 != b.1 && overlaps(&a.0, &b.0)
    };
    let report = |a: &(IpNet, IpAddr), b: &(IpNet, IpAddr), warnings: &mut Vec<Warning>| {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        warnings.push(Warning::OverlappingBlocks {
            prefix: a.0,
            next_hop: a.1,
            other: b.0,
            other_owner: format!("node {}", b.1),
        })
    };
    for (i, r) in remote.iter().enumerate() {
        if is_host(&r.0) {
            continue;
        }
        for own in &state.blocks {
            if overlaps(&r.0, &own.trunc()) {
                warnings.push(Warning::OverlappingBlocks {
                    prefix: r.0,
                    next_hop: r.1,
                    other: own.trunc(),
                    other_owner: format!("local node {}", state.local_node.name),
                });
            }
        }
        if some {
            // Twice for a pair of two looked-at prefixes: dropped as
            // duplicates.
            for o in remote_routes(state) {
                if pair(r, &o) {
                    report(r, &o, warnings);
                }
            }
        } else {
            for l in &remote[i + 1..] {
                if pair(r, l) {
                    report(r, l, warnings);
                }
            }
        }
    }
}

/// Adds the route for one remote prefix (learned block or borrowed address).
fn remote_route(
    state: &DesiredState,
    pools: &[&Pool],
    prefix: IpNet,
    next_hop: IpAddr,
    out: &mut Builder,
) {
    let Some(local) = state
        .local_node
        .addresses
        .iter()
        .find(|a| a.addr().is_ipv4() == prefix.addr().is_ipv4())
    else {
        out.warnings.push(Warning::NoLocalAddress { prefix });
        return;
    };
    if state
        .local_node
        .addresses
        .iter()
        .any(|a| a.addr() == next_hop)
    {
        out.warnings.push(Warning::NextHopIsLocal { prefix });
        return;
    }
    let Some(node) = state.nodes.iter().find(|n| n.addresses.contains(&next_hop)) else {
        // Not a node: a router on our subnet (a top-of-rack router that
        // passed the route on) is used as it is; nothing can be tunnelled
        // to it.
        if local.trunc().contains(&next_hop) {
            out.claim_remote(
                KernelRoute::via(prefix, next_hop, state.local_node.underlay.clone(), false),
                Source::SameSubnet,
                next_hop,
            );
        } else {
            out.warnings
                .push(Warning::UnknownNextHop { prefix, next_hop });
        }
        return;
    };
    // The most specific pool containing the prefix decides; none = no encap.
    let pool = pools
        .iter()
        .filter(|p| p.cidr.trunc().contains(&prefix))
        .max_by_key(|p| p.cidr.prefix_len());
    let (ipip, vxlan) = pool.map_or((EncapMode::Never, EncapMode::Never), |p| (p.ipip, p.vxlan));
    let decision = match decide(ipip, vxlan, *local, next_hop) {
        Ok(d) => d,
        Err(e) => {
            out.warnings.push(encap_warning(prefix, pool, &e));
            return;
        }
    };
    // decision.warning (a local host prefix) is reported with the pools.
    let (route, source) = match decision.encap {
        Encap::Direct if local.trunc().contains(&next_hop) => (
            KernelRoute::via(prefix, next_hop, state.local_node.underlay.clone(), false),
            Source::SameSubnet,
        ),
        Encap::Direct => {
            out.warnings
                .push(Warning::OffSubnetDirect { prefix, next_hop });
            return;
        }
        Encap::Ipip => (
            KernelRoute::via(prefix, next_hop, IPIP_DEV, true),
            Source::Tunnel,
        ),
        Encap::Vxlan => {
            let Some(vtep) = node
                .vteps
                .iter()
                .find(|v| v.is_ipv4() == prefix.addr().is_ipv4())
            else {
                out.warnings.push(Warning::NoVtep {
                    prefix,
                    node: node.name.clone(),
                });
                return;
            };
            (
                KernelRoute::via(
                    prefix,
                    *vtep,
                    tortie_ipip::vxlan::device_name(vtep.is_ipv4()),
                    true,
                ),
                Source::Tunnel,
            )
        }
    };
    out.claim_remote(route, source, next_hop);
}

fn encap_warning(prefix: IpNet, pool: Option<&&Pool>, e: &EncapError) -> Warning {
    Warning::Encap {
        prefix,
        pool: pool.map(|p| p.cidr),
        error: e.to_string(),
    }
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
