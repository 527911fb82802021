//! The speaker's vocabulary for routes: address families, prefixes and path
//! attributes, independent of the wire format.
//!
//! The codec (`packet/`) turns wire bytes into these types and back; the RIB
//! stores them (interned); the public API hands them out. Nothing here knows
//! about netgauze.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// A route's destination.
pub type Prefix = ipnet::IpNet;

/// The address families the speaker carries (AFI/SAFI unicast only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Afi {
    /// AFI 1, SAFI 1.
    Ipv4,
    /// AFI 2, SAFI 1.
    Ipv6,
}

/// ORIGIN (type 1), RFC 4271 §5.1.1. Lower is preferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// One AS_PATH segment (RFC 4271 §4.3, RFC 5065 for the confederation kinds).
/// ASNs are always 4 octets here; the codec maps 2-octet peers (RFC 6793).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AsSegment {
    Sequence(Vec<u32>),
    Set(Vec<u32>),
    ConfedSequence(Vec<u32>),
    ConfedSet(Vec<u32>),
}

/// The next hop of a route, as carried by NEXT_HOP (IPv4) or MP_REACH_NLRI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NextHop {
    V4(Ipv4Addr),
    /// A global IPv6 next hop, with the optional link-local one (RFC 2545).
    V6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
}

/// A path attribute the speaker does not interpret, kept to pass it on
/// (optional transitive ones only, RFC 4271 §5; the partial bit is set when
/// re-advertised).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawAttr {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// The path attributes of one route (one UPDATE's attributes, with the next
/// hop of the route's family filled in).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathAttrs {
    pub origin: Origin,
    pub as_path: Vec<AsSegment>,
    pub next_hop: NextHop,
    /// MULTI_EXIT_DISC (type 4).
    pub med: Option<u32>,
    /// LOCAL_PREF (type 5): only on iBGP sessions.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE (type 6).
    pub atomic_aggregate: bool,
    /// AGGREGATOR (type 7): (ASN, router id).
    pub aggregator: Option<(u32, Ipv4Addr)>,
    /// COMMUNITIES (type 8, RFC 1997).
    pub communities: Vec<u32>,
    /// ORIGINATOR_ID (type 9, RFC 4456).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (type 10, RFC 4456), first entry = most recent reflector.
    pub cluster_list: Vec<Ipv4Addr>,
    /// EXTENDED COMMUNITIES (type 16, RFC 4360), each 8 octets.
    pub ext_communities: Vec<[u8; 8]>,
    /// LARGE_COMMUNITY (type 32, RFC 8092).
    pub large_communities: Vec<[u32; 3]>,
    /// Optional transitive attributes we do not interpret, in type order.
    pub unknown: Vec<RawAttr>,
}

// ===== impl PathAttrs =====

impl PathAttrs {
    /// Attributes for a route this speaker originates: ORIGIN IGP, empty
    /// AS_PATH, the given next hop, nothing else.
    pub fn local(next_hop: NextHop) -> PathAttrs {
        PathAttrs {
            origin: Origin::Igp,
            as_path: Vec::new(),
            next_hop,
            med: None,
            local_pref: None,
            atomic_aggregate: false,
            aggregator: None,
            communities: Vec::new(),
            originator_id: None,
            cluster_list: Vec::new(),
            ext_communities: Vec::new(),
            large_communities: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// AS_PATH length for best-path selection (RFC 4271 §9.1.2.2 a): an
    /// AS_SET counts as one, confederation segments count as zero (RFC 5065).
    pub fn as_path_len(&self) -> usize {
        self.as_path
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v) => v.len(),
                AsSegment::Set(_) => 1,
                AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => 0,
            })
            .sum()
    }

    /// The neighbouring AS this path was learned from (first AS of the first
    /// AS_SEQUENCE), used to compare MEDs (RFC 4271 §9.1.2.2 c).
    pub fn neighbor_as(&self) -> Option<u32> {
        match self.as_path.first() {
            Some(AsSegment::Sequence(v)) => v.first().copied(),
            _ => None,
        }
    }

    /// Whether `asn` appears anywhere in the AS_PATH (loop detection).
    pub fn as_path_contains(&self, asn: u32) -> bool {
        self.as_path.iter().any(|s| match s {
            AsSegment::Sequence(v)
            | AsSegment::Set(v)
            | AsSegment::ConfedSequence(v)
            | AsSegment::ConfedSet(v) => v.contains(&asn),
        })
    }

    /// How many times `asn` appears in AS_PATH, in any segment.
    pub fn as_path_count(&self, asn: u32) -> usize {
        self.as_path
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v)
                | AsSegment::Set(v)
                | AsSegment::ConfedSequence(v)
                | AsSegment::ConfedSet(v) => v.iter().filter(|a| **a == asn).count(),
            })
            .sum()
    }
}

// ===== impl NextHop =====

impl NextHop {
    /// The address used for forwarding (the global one for IPv6).
    pub fn addr(&self) -> IpAddr {
        match self {
            NextHop::V4(a) => IpAddr::V4(*a),
            NextHop::V6 { global, .. } => IpAddr::V6(*global),
        }
    }
}

/// The family of a prefix.
pub fn afi_of(prefix: &Prefix) -> Afi {
    match prefix {
        Prefix::V4(_) => Afi::Ipv4,
        Prefix::V6(_) => Afi::Ipv6,
    }
}
