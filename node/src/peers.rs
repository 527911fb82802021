//! Pure: the cluster's resources -> this node's BGP speaker configuration,
//! the way Calico configures BIRD on a node.
//!
//! - **Node-to-node mesh** (BGPConfiguration `default`
//!   `nodeToNodeMeshEnabled`, on by default): one iBGP session to every
//!   other node with a BGP address.
//! - **BGPPeer** resources that apply to this node (`node` is this node,
//!   `nodeSelector` matches its labels, or neither is set):
//!   - `peerIP` (+ `asNumber`): that one neighbour (a ToR router, a
//!     `tortie-rr`);
//!   - `peerSelector`: every node it matches. Selector peerings work both
//!     ways: a node matched by a BGPPeer's `peerSelector` also peers with
//!     the nodes its `nodeSelector` matches, which is how a route reflector
//!     node gets its clients.
//! - Route reflection: a node with `routeReflectorClusterID` reflects; a
//!   selector peer in the same AS whose cluster id differs from ours is our
//!   client (two reflectors of one cluster are plain iBGP peers).
//! - An explicit BGPPeer wins over the mesh for the same address.
//! - A BGPPeer's `filters` become its sessions' import and export rules
//!   (`peer_filters`); a router taking pool aggregates also gets rules
//!   that keep the blocks back.
//! - BFD (`failureDetectionMode`, Tortie's `bfd`) on the sessions of the
//!   BGPPeers that ask for it; the mesh has none (Calico has no mesh
//!   setting for it).
//!
//! Problems (a selector matching nothing, a peer at our own address, two
//! nodes with one address, ...) are returned as values naming the resource
//! and field; the other peers are configured regardless.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use bgp_speaker::{Afi, GracefulRestartConfig, PeerConfig, SpeakerConfig};
use serde::Serialize;
use tortie_config::bfd::resolve as resolve_bfd;
use tortie_config::peer::MAX_PASSWORD_LEN;
use tortie_config::resources::{BGPPeer, PasswordSource, SourceAddress};

use crate::cluster::{Cluster, NodeFacts};
use crate::peer_filters;

/// Stale routes of a restarting peer are kept this long after its session
/// comes back, waiting for its End-of-RIB (as the speaker's default).
const STALE_ROUTES_TIME: u16 = 360;
/// After our own restart, the longest wait for the peers' End-of-RIB
/// before we send our routes and program theirs: well below the restart
/// time our peers keep our routes for.
const MAX_DEFERRAL: u16 = 30;

/// How a peer came to be, as `tortiectl node status` shows it (Calico's
/// words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PeerType {
    /// From the node-to-node mesh.
    #[serde(rename = "node-to-node mesh")]
    Mesh,
    /// From a BGPPeer without `node`.
    #[serde(rename = "global")]
    Global,
    /// From a BGPPeer with `node` set to this node.
    #[serde(rename = "node specific")]
    NodeSpecific,
}

/// One configured peer and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSource {
    pub address: IpAddr,
    #[serde(rename = "type")]
    pub kind: PeerType,
    /// `mesh` or `BGPPeer/<name>`.
    pub source: String,
    /// The node at that address, if it is one.
    pub node: Option<String>,
    /// We reflect routes to it.
    pub rr_client: bool,
}

/// A problem with the resources, naming the resource and the field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    /// `Kind/name`.
    pub resource: String,
    /// The field (`spec.peerSelector`).
    pub field: String,
    /// What is wrong and what happens.
    pub message: String,
}

/// What this node runs with: the speaker's configuration, where each peer
/// comes from, and the problems found.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerPlan {
    pub config: SpeakerConfig,
    pub sources: Vec<PeerSource>,
    pub problems: Vec<Problem>,
}

/// Reads a BGPPeer's password: the key, or why it cannot be had.
pub type Secrets<'a> = &'a dyn Fn(&PasswordSource) -> Result<String, String>;

/// Settings of the speaker that do not come from resources.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalBgp {
    /// The BGP router ID (`routerId`, else the node's IPv4 address).
    pub router_id: std::net::Ipv4Addr,
    /// Graceful restart time we advertise.
    pub restart_time: u16,
    /// We restarted within the restart time: set the R bit and wait for the
    /// peers' End-of-RIB.
    pub restarting: bool,
    /// Peers that were up before the restart (from the marker).
    pub wait_for: Vec<IpAddr>,
}

// ===== impl Problem =====

impl Problem {
    /// A problem with `resource` at `field`.
    pub fn new(resource: impl Into<String>, field: &str, message: impl Into<String>) -> Problem {
        Problem {
            resource: resource.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.resource, self.message)
        } else {
            write!(f, "{}: {}: {}", self.resource, self.field, self.message)
        }
    }
}

// ===== plan =====

/// The speaker configuration of node `me` (whose facts must exist).
pub fn plan(cluster: &Cluster, me: &NodeFacts, local: &LocalBgp, secrets: Secrets<'_>) -> PeerPlan {
    let mut problems = Vec::new();
    let others = distinct_nodes(cluster, me, &mut problems);
    let mut peers: BTreeMap<IpAddr, (PeerConfig, PeerSource)> = BTreeMap::new();
    let mesh_restart = cluster
        .bgp_configurations
        .get(crate::cluster::DEFAULT_BGP_CONFIGURATION)
        .and_then(|c| c.spec.node_mesh_max_restart_time)
        .map(|s| restart_secs(s.0));
    if cluster.mesh_enabled() {
        for n in &others {
            let Some(addr) = session_address(me, n) else {
                continue;
            };
            let source = PeerSource {
                address: addr,
                kind: PeerType::Mesh,
                source: "mesh".into(),
                node: Some(n.name.clone()),
                rr_client: false,
            };
            let mut config = peer_config(me, addr, n.asn, None, SourceAddress::UseNodeIP);
            config.restart_time = mesh_restart;
            peers.insert(addr, (config, source));
        }
    }
    let pools: Vec<ipnet::IpNet> = cluster.pools.values().map(|p| p.spec.cidr).collect();
    for (name, bgp_peer) in &cluster.bgp_peers {
        let mut found = from_bgp_peer(name, bgp_peer, me, &others, &pools, &mut problems);
        if let Some(source) = &bgp_peer.spec.password {
            match secrets(source).and_then(|key| check_key(&key).map(|()| key)) {
                Ok(key) => found
                    .iter_mut()
                    .for_each(|(_, _, c)| c.password = Some(key.clone())),
                Err(e) => {
                    problems.push(Problem::new(
                        format!("BGPPeer/{name}"),
                        "spec.password",
                        format!("{e}: its sessions are not started (never without their key)"),
                    ));
                    found.clear();
                }
            }
        }
        // BFD: Calico's failureDetectionMode and Tortie's `bfd` (checked
        // when the BGPPeer was loaded); never on the mesh.
        let spec = &bgp_peer.spec;
        if let Ok(Some(bfd)) = resolve_bfd("spec", spec.failure_detection_mode, spec.bfd.as_ref()) {
            found.iter_mut().for_each(|(_, _, c)| c.bfd = Some(bfd));
        }
        if let Some(k) = bgp_peer.spec.keepalive_time {
            let hold = u16::try_from(k.0.saturating_mul(3))
                .unwrap_or(u16::MAX)
                .max(3);
            found.iter_mut().for_each(|(_, _, c)| c.hold_time = hold);
        }
        // GTSM (Calico: `ttl security on; multihop N` for BIRD); 0 is off.
        if let Some(hops) = bgp_peer.spec.ttl_security.filter(|h| *h > 0) {
            found
                .iter_mut()
                .for_each(|(_, _, c)| c.ttl_security = Some(hops));
        }
        if !found.is_empty() {
            apply_peer_settings(cluster, name, bgp_peer, &pools, &mut found, &mut problems);
        }
        for (addr, source, config) in found {
            peers.insert(addr, (config, source));
        }
    }
    for (name, c) in &cluster.bgp_configurations {
        if c.spec.log_severity_screen != "Info" {
            problems.push(Problem::new(
                format!("BGPConfiguration/{name}"),
                "spec.logSeverityScreen",
                format!(
                    "{:?} is not applied: tortie-node logs at its --log-level (TORTIE_LOG_LEVEL)",
                    c.spec.log_severity_screen
                ),
            ));
        }
    }
    let (configs, sources): (Vec<_>, Vec<_>) = peers.into_values().unzip();
    let router_id = local.router_id;
    let port = cluster.listen_port(&me.name);
    let listen = if me.v6.is_some() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port))
    };
    // The families of our addresses: a dual-stack node carries both over
    // each session (RFC 4760), an IPv6-only node IPv6 alone.
    let mut families = Vec::new();
    if me.v4.is_some() {
        families.push(Afi::Ipv4);
    }
    if me.v6.is_some() {
        families.push(Afi::Ipv6);
    }
    // reachableBy: the routes are felix's (`routes::desired`); their
    // problems are the peers'.
    let subnets: Vec<ipnet::IpNet> = [me.v4, me.v6].into_iter().flatten().collect();
    problems.extend(crate::reachable::routes(cluster, me, &subnets).1);
    problems.sort();
    problems.dedup();
    PeerPlan {
        config: SpeakerConfig {
            router_id,
            asn: me.asn,
            cluster_id: me.cluster_id,
            listen: Some(listen),
            peers: configs,
            dynamic_peers: Vec::new(),
            graceful_restart: GracefulRestartConfig {
                enabled: true,
                restart_time: local.restart_time,
                stale_routes_time: STALE_ROUTES_TIME,
                restarting: local.restarting,
                wait_for: local.wait_for.clone(),
                deferral_time: Some(MAX_DEFERRAL.min(local.restart_time)),
            },
            families,
        },
        sources,
        problems,
    }
}

/// The other BGP nodes, without duplicates: a node whose address another
/// node (or this one) already has is left out, with a problem naming both.
fn distinct_nodes(
    cluster: &Cluster,
    me: &NodeFacts,
    problems: &mut Vec<Problem>,
) -> Vec<NodeFacts> {
    let mut owner: BTreeMap<IpAddr, String> = BTreeMap::new();
    for a in [me.v4, me.v6].into_iter().flatten() {
        owner.insert(a.addr(), me.name.clone());
    }
    let mut out = Vec::new();
    for n in cluster.all_facts() {
        if n.name == me.name {
            continue;
        }
        let clash = [n.v4, n.v6]
            .into_iter()
            .flatten()
            .find_map(|a| owner.get(&a.addr()).map(|o| (a.addr(), o.clone())));
        if let Some((addr, other)) = clash {
            problems.push(Problem::new(
                format!("Node/{}", n.name),
                "spec.bgp",
                format!(
                    "address {addr} is also Node/{other}'s: no session to Node/{}",
                    n.name
                ),
            ));
            continue;
        }
        for a in [n.v4, n.v6].into_iter().flatten() {
            owner.insert(a.addr(), n.name.clone());
        }
        out.push(n);
    }
    out
}

/// The peers a BGPPeer gives this node.
fn from_bgp_peer(
    name: &str,
    p: &BGPPeer,
    me: &NodeFacts,
    others: &[NodeFacts],
    pools: &[ipnet::IpNet],
    problems: &mut Vec<Problem>,
) -> Vec<(IpAddr, PeerSource, PeerConfig)> {
    let resource = format!("BGPPeer/{name}");
    let spec = &p.spec;
    let kind = if spec.node.is_some() {
        PeerType::NodeSpecific
    } else {
        PeerType::Global
    };
    let selects_me = match (&spec.node, &spec.node_selector) {
        (Some(n), _) => *n == me.name,
        (None, Some(sel)) => sel.matches(&me.labels),
        (None, None) => true,
    };
    let mut out = Vec::new();
    if let Some(peer_ip) = spec.peer_ip {
        if !selects_me {
            return out;
        }
        let addr = peer_ip.ip;
        if !is_unicast(addr) {
            problems.push(Problem::new(
                &resource,
                "spec.peerIP",
                format!("{addr} is not a unicast address: peer skipped"),
            ));
            return out;
        }
        if [me.v4, me.v6]
            .into_iter()
            .flatten()
            .any(|a| a.addr() == addr)
        {
            problems.push(Problem::new(
                &resource,
                "spec.peerIP",
                format!("{addr} is this node's own address: peer skipped"),
            ));
            return out;
        }
        let asn = spec.as_number.map_or(me.asn, |a| a.0);
        let mut config = peer_config(me, addr, asn, peer_ip.port, spec.source_address);
        config.rr_client = false;
        let node = others
            .iter()
            .find(|n| [n.v4, n.v6].into_iter().flatten().any(|a| a.addr() == addr))
            .map(|n| n.name.clone());
        if node.is_none() {
            // A router (ToR) or a route reflector: it is sent what this
            // node originates, unless it reflects for us (iBGP), and only
            // pool prefixes are taken from it.
            config.import_within = Some(pools.to_vec());
            config.export_local_only = asn != me.asn;
            config.export_aggregates = spec.advertise_pool_aggregates;
        } else if spec.advertise_pool_aggregates {
            problems.push(Problem::new(
                &resource,
                "spec.advertisePoolAggregates",
                format!("{addr} is a node, which gets blocks: the option applies to routers and is ignored"),
            ));
        }
        out.push((
            addr,
            PeerSource {
                address: addr,
                kind,
                source: resource,
                node,
                rr_client: false,
            },
            config,
        ));
        return out;
    }
    let Some(peer_sel) = &spec.peer_selector else {
        return out;
    };
    if spec.advertise_pool_aggregates && selects_me {
        problems.push(Problem::new(
            &resource,
            "spec.advertisePoolAggregates",
            "a peerSelector picks nodes, which get blocks: the option applies to routers and is ignored",
        ));
    }
    // Forward: we are selected, peer with the nodes peerSelector matches.
    // Reverse: peerSelector matches us, peer with the nodes the BGPPeer
    // selects (node / nodeSelector / all).
    let me_is_target = peer_sel.matches(&me.labels);
    let selected = |n: &NodeFacts| match (&spec.node, &spec.node_selector) {
        (Some(x), _) => *x == n.name,
        (None, Some(sel)) => sel.matches(&n.labels),
        (None, None) => true,
    };
    let targets: Vec<&NodeFacts> = others
        .iter()
        .filter(|n| (selects_me && peer_sel.matches(&n.labels)) || (me_is_target && selected(n)))
        .collect();
    if selects_me && !others.iter().any(|n| peer_sel.matches(&n.labels)) && !me_is_target {
        problems.push(Problem::new(
            &resource,
            "spec.peerSelector",
            format!(
                "{} matches no other node: no session from it",
                peer_sel.as_str()
            ),
        ));
    }
    for n in targets {
        let Some(addr) = session_address(me, n) else {
            continue;
        };
        // RFC 4456: we reflect to an iBGP peer outside our cluster.
        let rr_client = me.cluster_id.is_some() && n.asn == me.asn && n.cluster_id != me.cluster_id;
        let mut config = peer_config(me, addr, n.asn, None, spec.source_address);
        config.rr_client = rr_client;
        out.push((
            addr,
            PeerSource {
                address: addr,
                kind,
                source: resource.clone(),
                node: Some(n.name.clone()),
                rr_client,
            },
            config,
        ));
    }
    out
}

/// What every session of BGPPeer `name` shares besides its address:
/// next hop, restart time, AS loop allowance, and its import and export
/// rules (`filters`; for a router taking aggregates, then the rules that
/// keep the blocks back).
fn apply_peer_settings(
    cluster: &Cluster,
    name: &str,
    p: &BGPPeer,
    pools: &[ipnet::IpNet],
    found: &mut [(IpAddr, PeerSource, PeerConfig)],
    problems: &mut Vec<Problem>,
) {
    let filters = peer_filters::compile(cluster, name, p, problems);
    for (_, _, c) in found {
        // eBGP only, in the speaker (Calico: `next hop keep` when the AS
        // differs).
        c.keep_next_hop = p.spec.keep_original_next_hop;
        c.restart_time = p.spec.max_restart_time.map(|s| restart_secs(s.0));
        c.allow_local_as = p
            .spec
            .num_allowed_local_as_numbers
            .map_or(0, |n| u8::try_from(n).unwrap_or(u8::MAX));
        c.import_filter = filters.import.clone();
        c.export_filter = filters.export.clone();
        if c.export_aggregates {
            c.export_filter
                .extend(peer_filters::keep_blocks_back(pools));
        }
    }
}

/// A restart time the resource has checked (at most 4095 s).
fn restart_secs(s: u32) -> u16 {
    u16::try_from(s).unwrap_or(4095).min(4095)
}

/// A peer with the node's defaults: active and passive (collisions are
/// resolved by RFC 4271 §6.8), bound to our address of its family.
fn peer_config(
    me: &NodeFacts,
    addr: IpAddr,
    asn: u32,
    port: Option<u16>,
    source: SourceAddress,
) -> PeerConfig {
    let mut c = PeerConfig::new(addr, asn);
    if let Some(port) = port {
        c.port = port;
    }
    if source == SourceAddress::UseNodeIP {
        c.local_address = [me.v4, me.v6]
            .into_iter()
            .flatten()
            .map(|a| a.addr())
            .find(|a| a.is_ipv4() == addr.is_ipv4());
    }
    c
}

/// The address of our session with node `n`: its IPv4 address when both
/// have one (one session carries IPv4 and IPv6 routes), else its IPv6
/// address when both have one (IPv6-only nodes), else none.
fn session_address(me: &NodeFacts, n: &NodeFacts) -> Option<IpAddr> {
    [(me.v4, n.v4), (me.v6, n.v6)]
        .into_iter()
        .find_map(|(mine, theirs)| mine.and(theirs))
        .map(|a| a.addr())
}

/// A usable TCP MD5 key.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "the key has {} bytes; Linux takes at most {MAX_PASSWORD_LEN}",
            key.len()
        ));
    }
    Ok(())
}

/// Reads a password from the file it names (`file`, or
/// `<secrets_dir>/<name>/<key>` for `secretKeyRef`, where a DaemonSet
/// mounts the secret). One trailing newline is not part of the key.
pub fn read_password(
    secrets_dir: &std::path::Path,
    source: &PasswordSource,
) -> Result<String, String> {
    let path = match (&source.file, &source.secret_key_ref) {
        (Some(f), _) => f.clone(),
        (None, Some(r)) => secrets_dir.join(&r.name).join(&r.key),
        (None, None) => return Err("no password source".into()),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

fn is_unicast(a: IpAddr) -> bool {
    !(a.is_unspecified()
        || a.is_multicast()
        || a.is_loopback()
        || matches!(a, IpAddr::V4(v4) if v4.is_broadcast()))
}

#[cfg(test)]
#[path = "peers_tests.rs"]
mod tests;
