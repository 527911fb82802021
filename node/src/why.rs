//! `/explain?target=`: why a prefix, an address or a pod is (or is not)
//! routed as it is on this node (`tortiectl explain`). Pure: the target
//! parsed, and the answer built from what [`crate::why_fetch`] gathers:
//!
//! - the owner: a local pod and its interface, this node's block, another
//!   node's block (and the pod using the address), or nothing;
//! - the BGP paths the speaker holds, in decision order, the best marked
//!   and each other with the decision step it lost at; per peer whether
//!   it sent the prefix, and the import and export rules that matched,
//!   named by BGPFilter and list index;
//! - the encapsulation decision and its inputs (pool and modes, this
//!   node's address and subnet, the next hop and its node);
//! - the kernel route felix wants and the one it found, and when felix
//!   last wrote it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bgp_speaker::explain::PrefixExplain;
use felix::desired::{DesiredRoutes, DesiredState};
use felix::route::InstalledRoute;
use felix::written::LastWrite;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use tortie_config::resources::{BGPFilterSpec, BGPPeerSpec};

use crate::status::PeerView;

/// What `tortiectl explain` was asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Prefix(IpNet),
    Address(IpAddr),
    Pod { namespace: String, name: String },
}

/// The whole answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub node: String,
    pub target: String,
    /// `prefix`, `address` or `pod`.
    pub kind: String,
    pub pod: Option<PodView>,
    /// One per prefix: the target's, or each address of the pod.
    pub prefixes: Vec<PrefixReport>,
    /// What could not be read (the answer is partial then).
    pub problems: Vec<String>,
}

/// A pod, from its WorkloadEndpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub interface: String,
    pub addresses: Vec<IpNet>,
}

/// Everything about one prefix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixReport {
    pub asked: IpNet,
    pub owner: Owner,
    /// `None` while the speaker is not running (`bgp_error` says why).
    pub bgp: Option<BgpView>,
    pub bgp_error: Option<String>,
    pub encap: Option<EncapView>,
    pub kernel: KernelView,
    /// Every rule that decided something about the prefix, one line each.
    pub filters: Vec<String>,
}

/// Who the prefix belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// `local-pod`, `own-block`, `block` (another node's), `pool` (in a
    /// pool, in no block) or `none`.
    pub kind: String,
    pub block: Option<IpNet>,
    /// The node the block (or pod) is on.
    pub node: Option<String>,
    /// `namespace/name` of the pod using the address.
    pub pod: Option<String>,
    pub interface: Option<String>,
    pub pool: Option<String>,
    pub summary: String,
}

/// The speaker's view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpView {
    /// The prefix the speaker matched (`None`: it knows nothing of it).
    pub prefix: Option<IpNet>,
    pub paths: Vec<PathLine>,
    pub peers: Vec<PeerLine>,
}

/// One path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathLine {
    /// The peer's address and what it is (`node n2`, `BGPPeer/tor`), or
    /// `local` for ours.
    pub from: String,
    pub next_hop: String,
    pub as_path: String,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub origin: String,
    pub best: bool,
    pub stale: bool,
    /// The decision step it lost at, in words.
    pub lost: Option<String>,
}

/// One peer and the prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerLine {
    pub peer: String,
    pub established: bool,
    /// `accepted`, `not accepted` or `no`.
    pub announced: String,
    /// The import rule that matched, named, or the default that decided.
    pub import: String,
    pub import_allowed: bool,
    pub export: Option<String>,
    pub advertised: bool,
}

/// The encapsulation decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncapView {
    pub pool: Option<String>,
    pub ipip_mode: String,
    pub vxlan_mode: String,
    pub local: Option<IpNet>,
    pub next_hop: IpAddr,
    pub next_hop_node: Option<String>,
    pub next_hop_addresses: Vec<IpAddr>,
    pub same_subnet: bool,
    /// `Direct`, `Ipip`, `Vxlan`, or why there is none.
    pub decision: String,
}

/// The kernel route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelView {
    /// The prefix of the route that carries the target (`None`: no route
    /// of ours does).
    pub prefix: Option<IpNet>,
    pub wanted: Option<String>,
    pub why: Option<String>,
    pub found: Vec<String>,
    /// `installed`, `missing`, `different`, `unwanted` or `absent`.
    pub state: String,
    pub last_write: Option<LastWrite>,
    /// felix's warnings about the prefix (why a route is not wanted).
    pub warnings: Vec<String>,
}

/// What the datastore says of the addresses: blocks and endpoints.
#[derive(Clone, Debug, Default)]
pub struct StoreFacts {
    /// (block, its node from the affinity).
    pub blocks: Vec<(IpNet, Option<String>)>,
    pub endpoints: Vec<PodView>,
    /// (name, cidr, ipipMode, vxlanMode).
    pub pools: Vec<(String, IpNet, String, String)>,
}

/// Names of a peer's rules, by index, per list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleNames {
    pub import_v4: Vec<String>,
    pub import_v6: Vec<String>,
    pub export_v4: Vec<String>,
    pub export_v6: Vec<String>,
    /// The name of export rules after the BGPPeer's own (Tortie's rules
    /// for a router taking pool aggregates).
    pub export_after: Option<String>,
}

/// The inputs of one prefix's report.
pub struct Facts<'a> {
    pub desired: Option<&'a DesiredState>,
    pub claims: Option<&'a DesiredRoutes>,
    pub installed: &'a [InstalledRoute],
    pub peers: &'a [PeerView],
    pub bgp: Result<&'a PrefixExplain, String>,
    pub names: &'a BTreeMap<IpAddr, RuleNames>,
    pub store: &'a StoreFacts,
    pub last_write: Option<LastWrite>,
}

// ===== parse =====

/// The target of `/explain?target=`: a prefix (`10.244.1.0/26`), an
/// address, or `namespace/pod`.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("no target: give a prefix (10.244.1.0/26), an address or namespace/pod".into());
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(Target::Address(a));
    }
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "{s}: host bits set; the prefix is {} (or give the address {})",
                net.trunc(),
                net.addr()
            ));
        }
        return Ok(Target::Prefix(net));
    }
    match s.split_once('/') {
        Some((addr, _)) if addr.parse::<IpAddr>().is_ok() => Err(format!(
            "{s:?} is not a prefix: the length must be 0..=32 (IPv4) or 0..=128 (IPv6)"
        )),
        Some((ns, name)) if valid_name(ns) && !ns.contains('.') && valid_name(name) => {
            Ok(Target::Pod {
                namespace: ns.into(),
                name: name.into(),
            })
        }
        _ => Err(format!(
            "{s:?} is not a prefix (10.244.1.0/26), an address (10.244.1.5) or namespace/pod \
             (default/web)"
        )),
    }
}

/// A Kubernetes object name (DNS label or subdomain).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

/// `%XX` escapes and `+` of a query value decoded (bytes that are not
/// UTF-8 are replaced).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ===== rule names =====

/// The names of a BGPPeer's rules by index, as `peer_filters::compile`
/// lays them out: each filter's list in the order the peer names them
/// (`BGPFilter/<name> importV4[<i>]`); a missing filter makes one
/// reject-all rule per list.
pub fn rule_names(peer: &BGPPeerSpec, filters: &BTreeMap<String, BGPFilterSpec>) -> RuleNames {
    let mut out = RuleNames::default();
    if let Some(gone) = peer.filters.iter().find(|f| !filters.contains_key(*f)) {
        let all = format!("BGPFilter/{gone} does not exist: every route is rejected until it does");
        out.import_v4 = vec![all.clone()];
        out.import_v6 = vec![all.clone()];
        out.export_v4 = vec![all.clone()];
        out.export_v6 = vec![all];
        return out;
    }
    for name in &peer.filters {
        let f = &filters[name];
        let label = |list: &str, n: usize| -> Vec<String> {
            (0..n)
                .map(|i| format!("BGPFilter/{name} {list}[{i}]"))
                .collect()
        };
        out.import_v4.extend(label("importV4", f.import_v4.len()));
        out.import_v6.extend(label("importV6", f.import_v6.len()));
        out.export_v4.extend(label("exportV4", f.export_v4.len()));
        out.export_v6.extend(label("exportV6", f.export_v6.len()));
    }
    if peer.advertise_pool_aggregates {
        out.export_after =
            Some("Tortie's default for a router taking pool aggregates (blocks kept back)".into());
    }
    out
}

// ===== build =====

/// The prefix of the route that carries `asked`: the longest of felix's
/// wanted and found routes holding it.
pub fn kernel_prefix(
    asked: &IpNet,
    claims: Option<&DesiredRoutes>,
    installed: &[InstalledRoute],
) -> Option<IpNet> {
    let wanted = claims.into_iter().flat_map(|c| c.routes.keys());
    let found = installed.iter().map(|r| &r.route.dst);
    wanted
        .chain(found)
        .filter(|p| p.contains(asked))
        .max_by_key(|p| p.prefix_len())
        .copied()
}

/// The report for `asked`.
pub fn report(asked: IpNet, f: &Facts<'_>) -> PrefixReport {
    let kp = kernel_prefix(&asked, f.claims, f.installed);
    let kernel = kernel_view(kp, f);
    let mut out = PrefixReport {
        asked,
        owner: owner(&asked, f),
        kernel,
        ..PrefixReport::default()
    };
    match &f.bgp {
        Ok(e) => {
            let (view, filters) = crate::why_bgp::bgp_view(e, f);
            out.bgp = Some(view);
            out.filters = filters;
        }
        Err(why) => out.bgp_error = Some(why.clone()),
    }
    let next_hop = kp.and_then(|p| remote_next_hop(&p, f.desired)).or_else(|| {
        let e = f.bgp.as_ref().ok()?;
        e.paths
            .iter()
            .find(|p| p.best && p.peer.is_some())
            .map(|p| p.attrs.next_hop.addr())
    });
    if let (Some(hop), Some(d)) = (next_hop, f.desired) {
        out.encap = Some(encap_view(kp.unwrap_or(asked), hop, d, f.store));
    }
    out
}

fn owner(asked: &IpNet, f: &Facts<'_>) -> Owner {
    let mut o = Owner {
        kind: "none".into(),
        ..Owner::default()
    };
    o.pool = f
        .store
        .pools
        .iter()
        .filter(|p| p.1.contains(asked))
        .max_by_key(|p| p.1.prefix_len())
        .map(|p| format!("{} ({})", p.0, p.1));
    if let Some(d) = f.desired {
        if let Some(e) = d
            .endpoints
            .iter()
            .find(|e| e.addresses.iter().any(|a| asked.contains(a)))
        {
            o.kind = "local-pod".into();
            o.pod = Some(e.workload_id.clone());
            o.interface = Some(e.interface.clone());
            o.node = Some(d.local_node.name.clone());
            o.block = d.blocks.iter().find(|b| b.contains(asked)).copied();
            o.summary = format!("local pod {} on {}", e.workload_id, e.interface);
            return o;
        }
        if let Some(b) = d.blocks.iter().find(|b| b.contains(asked)) {
            o.kind = "own-block".into();
            o.block = Some(*b);
            o.node = Some(d.local_node.name.clone());
            o.summary = format!("this node's block {b}");
        }
    }
    // The pod using an address (not every pod of a block).
    let host = asked.prefix_len() == asked.max_prefix_len();
    let pod = f
        .store
        .endpoints
        .iter()
        .filter(|_| host)
        .find(|e| e.addresses.iter().any(|a| asked.contains(&a.addr())));
    if o.kind == "none" {
        if let Some((b, node)) = f.store.blocks.iter().find(|(b, _)| b.contains(asked)) {
            o.kind = "block".into();
            o.block = Some(*b);
            o.node = node.clone();
            o.summary = match node {
                Some(n) => format!("block {b} of node {n}"),
                None => format!("block {b}, claimed by no node"),
            };
        } else if let Some(pool) = &o.pool {
            o.kind = "pool".into();
            o.summary = format!("in pool {pool}, in no block");
        } else {
            o.summary = "no pool, block or pod of the cluster holds it".into();
        }
    }
    if let Some(p) = pod.filter(|_| o.pod.is_none()) {
        o.pod = Some(format!("{}/{}", p.namespace, p.name));
        o.summary.push_str(&format!(
            "; used by pod {}/{} on node {}",
            p.namespace, p.name, p.node
        ));
        if o.node.is_none() {
            o.node = Some(p.node.clone());
        }
    }
    o
}

fn kernel_view(kp: Option<IpNet>, f: &Facts<'_>) -> KernelView {
    let mut v = KernelView {
        prefix: kp,
        state: "absent".into(),
        last_write: f.last_write,
        ..KernelView::default()
    };
    let Some(p) = kp else {
        return v;
    };
    let claim = f.claims.and_then(|c| c.routes.get(&p));
    let found: Vec<&InstalledRoute> = f.installed.iter().filter(|r| r.route.dst == p).collect();
    v.found = found.iter().map(|r| r.route.to_string()).collect();
    if let Some(c) = claim {
        v.wanted = Some(c.route.to_string());
        v.state = if found
            .iter()
            .any(|r| r.route == c.route && r.has_default_metric())
        {
            "installed"
        } else if found.is_empty() {
            "missing"
        } else {
            "different"
        }
        .into();
        // Reuse `/routes`' words for why it is wanted.
        if let Some(d) = f.desired {
            let one = DesiredRoutes {
                routes: [(p, c.clone())].into(),
                warnings: Vec::new(),
            };
            v.why = crate::explain::explain(d, &one, &[])
                .into_iter()
                .next()
                .map(|r| r.why);
        }
    } else if !found.is_empty() {
        v.state = "unwanted".into();
    }
    if let Some(c) = f.claims {
        let about = std::collections::BTreeSet::from([p]);
        v.warnings = c
            .warnings
            .iter()
            .filter(|w| w.is_about(&about))
            .map(ToString::to_string)
            .collect();
    }
    v
}

/// The next hop of a learned or borrowed route of `prefix`.
fn remote_next_hop(prefix: &IpNet, d: Option<&DesiredState>) -> Option<IpAddr> {
    let d = d?;
    d.learned
        .iter()
        .find(|l| l.prefix == *prefix)
        .map(|l| l.next_hop)
        .or_else(|| {
            d.borrowed
                .iter()
                .find(|b| IpNet::from(b.address) == *prefix)
                .map(|b| b.node)
        })
}

fn encap_view(prefix: IpNet, hop: IpAddr, d: &DesiredState, store: &StoreFacts) -> EncapView {
    let pool = d
        .pools
        .iter()
        .filter(|p| p.cidr.trunc().contains(&prefix))
        .max_by_key(|p| p.cidr.prefix_len());
    let (ipip, vxlan) = pool.map_or(
        (tortie_ipip::EncapMode::Never, tortie_ipip::EncapMode::Never),
        |p| (p.ipip, p.vxlan),
    );
    let local = d
        .local_node
        .addresses
        .iter()
        .find(|a| a.addr().is_ipv4() == hop.is_ipv4())
        .copied();
    let node = d.nodes.iter().find(|n| n.addresses.contains(&hop));
    let decision = match (local, node) {
        (None, _) => "none: this node has no address of the next hop's family".to_string(),
        (Some(l), _) if l.addr() == hop => "none: the next hop is this node".into(),
        (Some(l), None) if l.trunc().contains(&hop) => {
            "Direct: the next hop is a router on this node's subnet, not a node".into()
        }
        (Some(_), None) => "none: the next hop is no node and not on this node's subnet".into(),
        (Some(l), Some(_)) => match tortie_ipip::decide(ipip, vxlan, l, hop) {
            Ok(dec) => {
                let mut s = format!("{:?}", dec.encap);
                if let Some(w) = dec.warning {
                    s.push_str(&format!(" ({w})"));
                }
                if dec.encap == tortie_ipip::Encap::Direct && !l.trunc().contains(&hop) {
                    s = "none: no encapsulation and the next hop is off this node's subnet \
                         (the fabric must route it)"
                        .into();
                }
                s
            }
            Err(e) => format!("none: {e}"),
        },
    };
    let pool_name = pool.map(|p| {
        store
            .pools
            .iter()
            .find(|s| s.1 == p.cidr)
            .map_or(p.cidr.to_string(), |s| format!("{} ({})", s.0, p.cidr))
    });
    EncapView {
        pool: pool_name,
        ipip_mode: format!("{ipip:?}"),
        vxlan_mode: format!("{vxlan:?}"),
        local,
        next_hop: hop,
        next_hop_node: node.map(|n| n.name.clone()),
        next_hop_addresses: node.map(|n| n.addresses.clone()).unwrap_or_default(),
        same_subnet: local.is_some_and(|l| l.trunc().contains(&hop)),
        decision,
    }
}

#[cfg(test)]
#[path = "why_tests.rs"]
mod tests;
