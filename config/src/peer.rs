//! One BGP neighbour, described once: what the speaker runs with, what
//! tortie-rr's file validates to (`rr`), and what tortie-node derives from
//! its BGPPeer resources and the node mesh. The user-facing layers above it
//! (the RR file as written, the Calico-style resources) say how a user
//! writes a peer; this is the peer itself.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::filter::FilterRules;

/// Default hold time, RFC 4271 §10 (suggested 90 s).
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// Default ConnectRetry time. RFC 4271 suggests 120 s; a cluster wants its
/// mesh back sooner, so we retry every 5 s (with jitter).
pub const DEFAULT_CONNECT_RETRY: u16 = 5;
/// The BGP port (RFC 4271 §8.2.1).
pub const DEFAULT_PORT: u16 = 179;
/// Longest TCP MD5 key (`password`) Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_PASSWORD_LEN: usize = 80;
/// The TTL (IPv6 hop limit) GTSM sends with: the highest (RFC 5082 §3).
pub const GTSM_TTL: u8 = 255;

/// One configured neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    pub address: IpAddr,
    pub asn: u32,
    /// Route reflector client (only meaningful with `cluster_id` and iBGP).
    pub rr_client: bool,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<String>,
    /// Proposed hold time in seconds; 0 disables keepalives (RFC 4271 §4.2).
    pub hold_time: u16,
    pub connect_retry: u16,
    /// Only accept sessions; never connect.
    pub passive: bool,
    /// The peer's TCP port (179).
    pub port: u16,
    /// Local address to bind active connections to.
    pub local_address: Option<IpAddr>,
    /// Set NEXT_HOP to our own address on routes sent to this peer.
    pub next_hop_self: bool,
    pub max_prefix: Option<MaxPrefix>,
    /// BFD with this peer (RFC 5880; issue 13): a BFD Down takes the
    /// session down at once. `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<crate::bfd::BfdConfig>,
    /// eBGP: send routes with their next hop unchanged instead of ours
    /// (Calico's `keepOriginalNextHop`).
    #[serde(default)]
    pub keep_next_hop: bool,
    /// Send this peer only the routes we originate, none we learned (a
    /// top-of-rack router gets a node's own blocks).
    #[serde(default)]
    pub export_local_only: bool,
    /// Send this peer our aggregates (routes originated with
    /// ATOMIC_AGGREGATE set, e.g. a node's pools); peers without it never
    /// get them. What else it gets is up to the other settings and its
    /// export rules (tortie-node's keep the blocks inside the pools back).
    #[serde(default)]
    pub export_aggregates: bool,
    /// Accept from this peer only prefixes inside one of these; the others
    /// count as received, not accepted. `None`: every prefix.
    #[serde(default)]
    pub import_within: Option<Vec<ipnet::IpNet>>,
    /// GTSM (RFC 5082), Calico's `ttlSecurity`: the peer is at most this
    /// many hops away (1: on a link of ours). Our packets to it leave with
    /// TTL (hop limit) 255, and the kernel drops its packets arriving with
    /// less than [`gtsm_min_ttl`] (256 - hops), so that a host further away
    /// cannot reach the session even with a forged source address. `None`:
    /// off.
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// Rules for the routes received from this peer (Calico's BGPFilter
    /// `importV4` / `importV6` of the BGPPeer's `filters`): the first that
    /// matches a prefix accepts or rejects it, overriding `import_within`;
    /// a prefix no rule matches is left to `import_within`.
    #[serde(default, skip_serializing_if = "FilterRules::is_empty")]
    pub import_filter: FilterRules,
    /// Rules for the routes sent to this peer (`exportV4` / `exportV6`):
    /// the first that matches accepts (sent even when `export_local_only`
    /// says no) or rejects it; a prefix no rule matches is sent as the
    /// other settings say. Peers with equal rules share an update group.
    #[serde(default, skip_serializing_if = "FilterRules::is_empty")]
    pub export_filter: FilterRules,
    /// How many times our own AS may appear in the AS_PATH of a route from
    /// this (eBGP) peer before the route is refused as a loop (Calico's
    /// `numAllowedLocalASNumbers`, BIRD's `allow local as N`). 0: never.
    #[serde(default)]
    pub allow_local_as: u8,
    /// The restart time (seconds) our graceful restart capability announces
    /// to this peer (Calico's `maxRestartTime`, BIRD's `graceful restart
    /// time`): how long it keeps our routes while we restart. `None`: the
    /// speaker's.
    #[serde(default)]
    pub restart_time: Option<u16>,
}

/// Accept sessions from any address inside `prefix` (like BIRD's
/// `neighbor range`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicPeerConfig {
    pub prefix: ipnet::IpNet,
    pub asn: u32,
    pub rr_client: bool,
    pub password: Option<String>,
    pub hold_time: u16,
    pub next_hop_self: bool,
    pub max_prefix: Option<MaxPrefix>,
    /// The most peers accepted through this prefix at once; connections
    /// from further addresses are closed at once (and counted).
    #[serde(default = "default_max_peers")]
    pub max_peers: u32,
    /// GTSM for every peer of the prefix, as [`PeerConfig::ttl_security`].
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// Import rules of every peer of the prefix, as
    /// [`PeerConfig::import_filter`].
    #[serde(default, skip_serializing_if = "FilterRules::is_empty")]
    pub import_filter: FilterRules,
    /// Export rules of every peer of the prefix, as
    /// [`PeerConfig::export_filter`].
    #[serde(default, skip_serializing_if = "FilterRules::is_empty")]
    pub export_filter: FilterRules,
}

/// [`DynamicPeerConfig::max_peers`] unless set: room for a large cluster's
/// nodes, not for a flood of addresses.
pub const DEFAULT_MAX_PEERS: u32 = 1000;

fn default_max_peers() -> u32 {
    DEFAULT_MAX_PEERS
}

/// Per-peer prefix limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxPrefix {
    pub limit: u64,
    /// `true`: tear the session down with Cease/1 (RFC 4486); `false`: log.
    pub teardown: bool,
}

// ===== impl DynamicPeerConfig =====

impl DynamicPeerConfig {
    /// Any peer of AS `asn` inside `prefix`, with the defaults: no RR
    /// client, hold 90 s, at most [`DEFAULT_MAX_PEERS`].
    pub fn new(prefix: ipnet::IpNet, asn: u32) -> DynamicPeerConfig {
        DynamicPeerConfig {
            prefix,
            asn,
            rr_client: false,
            password: None,
            hold_time: DEFAULT_HOLD_TIME,
            next_hop_self: false,
            max_prefix: None,
            max_peers: DEFAULT_MAX_PEERS,
            ttl_security: None,
            import_filter: FilterRules::default(),
            export_filter: FilterRules::default(),
        }
    }

    /// The configuration of the peer at `address`, accepted through this
    /// prefix: passive (we never connect to a dynamic peer), with the
    /// prefix's settings and filters.
    pub fn peer(&self, address: IpAddr) -> PeerConfig {
        PeerConfig {
            rr_client: self.rr_client,
            password: self.password.clone(),
            hold_time: self.hold_time,
            passive: true,
            next_hop_self: self.next_hop_self,
            max_prefix: self.max_prefix,
            ttl_security: self.ttl_security,
            import_filter: self.import_filter.clone(),
            export_filter: self.export_filter.clone(),
            ..PeerConfig::new(address, self.asn)
        }
    }

    /// The lowest TTL accepted from the prefix's peers when GTSM is on.
    pub fn min_ttl(&self) -> Option<u8> {
        self.ttl_security.map(gtsm_min_ttl)
    }
}

// ===== impl PeerConfig =====

impl PeerConfig {
    /// A peer with the defaults: active, hold 90 s, port 179.
    pub fn new(address: IpAddr, asn: u32) -> PeerConfig {
        PeerConfig {
            address,
            asn,
            rr_client: false,
            password: None,
            hold_time: DEFAULT_HOLD_TIME,
            connect_retry: DEFAULT_CONNECT_RETRY,
            passive: false,
            port: DEFAULT_PORT,
            local_address: None,
            next_hop_self: false,
            max_prefix: None,
            bfd: None,
            keep_next_hop: false,
            export_local_only: false,
            export_aggregates: false,
            import_within: None,
            ttl_security: None,
            import_filter: FilterRules::default(),
            export_filter: FilterRules::default(),
            allow_local_as: 0,
            restart_time: None,
        }
    }

    /// The lowest TTL accepted from this peer when GTSM is on.
    pub fn min_ttl(&self) -> Option<u8> {
        self.ttl_security.map(gtsm_min_ttl)
    }
}

// ===== helpers =====

/// The lowest TTL (IPv6 hop limit) GTSM accepts from a peer `hops` hops
/// away: 256 - hops, so 255 for a directly connected peer (RFC 5082 §3:
/// sent with 255, one less per router on the way). BIRD computes it the
/// same from `multihop`, which Calico sets to `ttlSecurity`. 0 hops counts
/// as 1.
pub fn gtsm_min_ttl(hops: u8) -> u8 {
    u8::try_from(256 - u16::from(hops.max(1))).unwrap_or(GTSM_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtsm_accepts_256_minus_hops() {
        assert_eq!(
            gtsm_min_ttl(1),
            255,
            "directly connected: nothing on the way"
        );
        assert_eq!(gtsm_min_ttl(2), 254);
        assert_eq!(gtsm_min_ttl(255), 1);
        assert_eq!(gtsm_min_ttl(0), 255);
        let mut p = PeerConfig::new("10.0.0.1".parse().unwrap(), 65001);
        assert_eq!(p.min_ttl(), None);
        p.ttl_security = Some(3);
        assert_eq!(p.min_ttl(), Some(253));
    }
}
