//! Tunnel devices (`tunl0`, `vxlan.tortie`) and the encapsulation decision.
//!
//! # Layout
//!
//! - [`decide`] is the encapsulation decision: a pure function of the pool's
//!   IPIP and VXLAN modes, the local node's address and prefix, and the peer
//!   node's address. It needs no kernel and is unit-tested as a table.
//! - [`ipip_dev`]: `tunl0` (address, MTU, up), and a clear error once where
//!   the kernel has no ipip module.
//! - [`vxlan`]: `vxlan.tortie` and its per-peer neighbour and FDB entries,
//!   reconciled over rtnetlink.
//!
//! # The decision
//!
//! | IPIP mode     | VXLAN mode    | peer in local prefix | peer outside |
//! |---------------|---------------|----------------------|--------------|
//! | `Never`       | `Never`       | `Direct`             | `Direct`     |
//! | `Always`      | `Never`       | `Ipip`               | `Ipip`       |
//! | `CrossSubnet` | `Never`       | `Direct`             | `Ipip`       |
//! | `Never`       | `Always`      | `Vxlan`              | `Vxlan`      |
//! | `Never`       | `CrossSubnet` | `Direct`             | `Vxlan`      |
//! | not `Never`   | not `Never`   | error [`EncapError::BothEnabled`]   ||
//!
//! Both modes set is rejected, as Calico's pool validation rejects a pool
//! with IPIP and VXLAN enabled at once: there is no sensible answer to
//! "which tunnel" and guessing would silently send traffic somewhere the
//! operator did not expect. IPIP carries IPv4 only (IP protocol 4), so an
//! IPv6 peer with IPIP enabled is an error too ([`EncapError::IpipNotIpv6`]).
//!
//! A local node registered with a host prefix (`/32`, `/128`) has no
//! neighbours in its own subnet, so `CrossSubnet` encapsulates to every peer.
//! That is a classic Calico surprise; the decision then carries
//! [`EncapWarning::HostPrefix`] so the caller can log it.

#![warn(missing_docs)]

pub mod ipip_dev;
pub mod vxlan;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// When a pool encapsulates traffic to another node (Calico's `ipipMode` /
/// `vxlanMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum EncapMode {
    /// Encapsulate to every peer node.
    Always,
    /// Encapsulate only to peers outside the local node's prefix.
    CrossSubnet,
    /// Never encapsulate with this tunnel type.
    #[default]
    Never,
}

/// How a packet to a peer node's pods leaves this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encap {
    /// Plain routing via the peer's underlay address (same L2, or the fabric
    /// knows pod routes).
    Direct,
    /// IP-in-IP through `tunl0`.
    Ipip,
    /// VXLAN through `vxlan.tortie`.
    Vxlan,
}

/// Something the caller should log: the decision is valid but probably not
/// what the operator meant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EncapWarning {
    /// The local node's prefix is a host prefix, so `CrossSubnet` treats every
    /// peer as cross-subnet and encapsulates everything.
    HostPrefix {
        /// The local node's address and prefix as configured.
        local: IpNet,
    },
}

/// The outcome of [`decide`]: the encapsulation, and a warning if one applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decision {
    /// How to reach the peer.
    pub encap: Encap,
    /// Set when the answer is valid but likely surprising.
    pub warning: Option<EncapWarning>,
}

/// Inputs [`decide`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncapError {
    /// Both IPIP and VXLAN are enabled on one pool.
    #[error(
        "pool has ipipMode={ipip:?} and vxlanMode={vxlan:?}: enable at most one \
         encapsulation per pool (set the other to Never)"
    )]
    BothEnabled {
        /// The pool's IPIP mode.
        ipip: EncapMode,
        /// The pool's VXLAN mode.
        vxlan: EncapMode,
    },
    /// The peer and the local node address are of different IP families.
    #[error(
        "peer address {peer} and local node address {local} are of different \
         IP families: compare IPv4 with IPv4 and IPv6 with IPv6"
    )]
    FamilyMismatch {
        /// The local node's address and prefix.
        local: IpNet,
        /// The peer node's address.
        peer: IpAddr,
    },
    /// IPIP was requested towards an IPv6 peer.
    #[error(
        "ipipMode={ipip:?} towards IPv6 peer {peer}: IPIP carries IPv4 only; \
         use vxlanMode or Never for IPv6 pools"
    )]
    IpipNotIpv6 {
        /// The pool's IPIP mode.
        ipip: EncapMode,
        /// The peer node's address.
        peer: IpAddr,
    },
}

/// Decides how traffic to the pods of the node at `peer` is carried.
///
/// `local` is the local node's address with its subnet prefix length, as the
/// node is registered (e.g. `192.168.1.11/24`). See the crate docs for the
/// full table.
pub fn decide(
    ipip: EncapMode,
    vxlan: EncapMode,
    local: IpNet,
    peer: IpAddr,
) -> Result<Decision, EncapError> {
    if ipip != EncapMode::Never && vxlan != EncapMode::Never {
        return Err(EncapError::BothEnabled { ipip, vxlan });
    }
    if local.addr().is_ipv4() != peer.is_ipv4() {
        return Err(EncapError::FamilyMismatch { local, peer });
    }
    if ipip != EncapMode::Never && peer.is_ipv6() {
        return Err(EncapError::IpipNotIpv6 { ipip, peer });
    }
    let (mode, tunnel) = if ipip != EncapMode::Never {
        (ipip, Encap::Ipip)
    } else {
        (vxlan, Encap::Vxlan)
    };
    let host_prefix = local.prefix_len() == local.max_prefix_len();
    let same_subnet = local.trunc().contains(&peer);
    let (encap, warning) = match mode {
        EncapMode::Never => (Encap::Direct, None),
        EncapMode::Always => (tunnel, None),
        EncapMode::CrossSubnet if same_subnet && !host_prefix => (Encap::Direct, None),
        EncapMode::CrossSubnet => (
            tunnel,
            host_prefix.then_some(EncapWarning::HostPrefix { local }),
        ),
    };
    Ok(Decision { encap, warning })
}

// ===== impl EncapWarning =====

impl fmt::Display for EncapWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncapWarning::HostPrefix { local } => write!(
                f,
                "local node address {local} has a host prefix: CrossSubnet treats \
                 every peer as cross-subnet and encapsulates all traffic; register \
                 the node with its real subnet prefix (e.g. /24)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EncapMode::{Always, CrossSubnet, Never};
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn decision_table() {
        use Encap::*;
        // (ipip, vxlan, local, peer, expected)
        let rows: &[(EncapMode, EncapMode, &str, &str, Encap)] = &[
            (Never, Never, "192.168.1.11/24", "192.168.1.12", Direct),
            (Never, Never, "192.168.1.11/24", "192.168.2.21", Direct),
            (Always, Never, "192.168.1.11/24", "192.168.1.12", Ipip),
            (Always, Never, "192.168.1.11/24", "192.168.2.21", Ipip),
            (
                CrossSubnet,
                Never,
                "192.168.1.11/24",
                "192.168.1.12",
                Direct,
            ),
            (CrossSubnet, Never, "192.168.1.11/24", "192.168.2.21", Ipip),
            (Never, Always, "192.168.1.11/24", "192.168.1.12", Vxlan),
            (Never, Always, "192.168.1.11/24", "192.168.2.21", Vxlan),
            (
                Never,
                CrossSubnet,
                "192.168.1.11/24",
                "192.168.1.12",
                Direct,
            ),
            (Never, CrossSubnet, "192.168.1.11/24", "192.168.2.21", Vxlan),
            // Prefix boundaries: /23 covers .0.x and .1.x.
            (CrossSubnet, Never, "10.0.1.5/23", "10.0.0.200", Direct),
            (CrossSubnet, Never, "10.0.1.5/23", "10.0.2.1", Ipip),
            // IPv6 with VXLAN.
            (Never, CrossSubnet, "fd00:1::11/64", "fd00:1::12", Direct),
            (Never, CrossSubnet, "fd00:1::11/64", "fd00:2::21", Vxlan),
            (Never, Never, "fd00:1::11/64", "fd00:2::21", Direct),
        ];
        for (ipip, vxlan, local, peer, want) in rows {
            let got = decide(*ipip, *vxlan, net(local), ip(peer)).unwrap();
            assert_eq!(
                got.encap, *want,
                "ipip={ipip:?} vxlan={vxlan:?} local={local} peer={peer}"
            );
            assert_eq!(got.warning, None, "row {local} {peer}");
        }
    }

    #[test]
    fn both_modes_set_is_an_error() {
        for (ipip, vxlan) in [
            (Always, Always),
            (Always, CrossSubnet),
            (CrossSubnet, Always),
            (CrossSubnet, CrossSubnet),
        ] {
            let err = decide(ipip, vxlan, net("192.168.1.11/24"), ip("192.168.1.12")).unwrap_err();
            assert_eq!(err, EncapError::BothEnabled { ipip, vxlan });
            assert!(err.to_string().contains("at most one"), "{err}");
        }
    }

    #[test]
    fn host_prefix_makes_every_peer_cross_subnet_and_warns() {
        let local = net("192.168.1.11/32");
        let d = decide(CrossSubnet, Never, local, ip("192.168.1.12")).unwrap();
        assert_eq!(d.encap, Encap::Ipip);
        assert_eq!(d.warning, Some(EncapWarning::HostPrefix { local }));
        assert!(d.warning.unwrap().to_string().contains("192.168.1.11/32"));
        let d = decide(Never, CrossSubnet, net("fd00::1/128"), ip("fd00::2")).unwrap();
        assert_eq!(d.encap, Encap::Vxlan);
        assert!(d.warning.is_some());
        // Always and Never do not depend on the prefix: no warning.
        let d = decide(Always, Never, local, ip("192.168.1.12")).unwrap();
        assert_eq!((d.encap, d.warning), (Encap::Ipip, None));
        let d = decide(Never, Never, local, ip("192.168.1.12")).unwrap();
        assert_eq!((d.encap, d.warning), (Encap::Direct, None));
    }

    #[test]
    fn family_mismatch_and_ipip_v6_are_errors() {
        let err = decide(Never, Never, net("192.168.1.11/24"), ip("fd00::2")).unwrap_err();
        assert!(matches!(err, EncapError::FamilyMismatch { .. }), "{err}");
        let err = decide(Always, Never, net("fd00::1/64"), ip("fd00::2")).unwrap_err();
        assert!(matches!(err, EncapError::IpipNotIpv6 { .. }), "{err}");
        assert!(err.to_string().contains("IPv4 only"));
    }
}
