//! The route vocabulary shared by the pure parts (desired state, diff) and
//! the kernel layer: one kernel route, as felix programs it, and one route
//! as the kernel reported it.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A route felix wants in (or found in) table main, always with our route
/// protocol number ([`crate::kernel::TORTIE_RT_PROTO`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KernelRoute {
    /// Destination prefix (host bits always zero).
    pub dst: IpNet,
    /// What the route does with the packet.
    pub kind: RouteKind,
}

/// The shapes of route felix programs. The `Display` of a [`KernelRoute`] is
/// the `ip route` line that makes it (without `proto`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RouteKind {
    /// `DST dev DEV scope link`: a local workload's address on its host-side
    /// veth (no gateway; proxy ARP answers for the pod's default gateway).
    Link {
        /// Interface name, e.g. `tort0123456789a`.
        dev: String,
    },
    /// `blackhole DST`: an own block, so unused addresses in it never leave
    /// the node.
    Blackhole,
    /// `DST via GATEWAY dev DEV [onlink]`: a block of another node, directly
    /// (`onlink` false) or through a tunnel device (`onlink` true, because the
    /// gateway is not on the tunnel device's subnet).
    Via {
        /// The next hop: the peer's underlay address, or its VTEP address.
        gateway: IpAddr,
        /// Outgoing interface: the underlay, `tunl0` or `vxlan.tortie`.
        dev: String,
        /// Whether the kernel must treat the gateway as on-link.
        onlink: bool,
    },
    /// A route of our protocol that felix never makes (e.g. multipath, or an
    /// interface index without a name): found in a dump, always replaced or
    /// deleted.
    Unsupported {
        /// What the dump showed, for logs.
        what: String,
    },
}

/// A route of our protocol as the kernel dump reported it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstalledRoute {
    /// The route in felix's vocabulary.
    pub route: KernelRoute,
    /// `RTA_PRIORITY` (the `metric`), if the kernel reported one. Felix never
    /// sets one, so the kernel default is used: 0 for IPv4, 1024 for IPv6.
    /// Deletes carry it so they hit exactly this route.
    pub metric: Option<u32>,
}

// ===== impl KernelRoute =====

impl KernelRoute {
    /// A local workload route: `DST dev DEV scope link`.
    pub fn link(dst: IpNet, dev: impl Into<String>) -> Self {
        KernelRoute {
            dst: dst.trunc(),
            kind: RouteKind::Link { dev: dev.into() },
        }
    }

    /// An own block: `blackhole DST`.
    pub fn blackhole(dst: IpNet) -> Self {
        KernelRoute {
            dst: dst.trunc(),
            kind: RouteKind::Blackhole,
        }
    }

    /// A route via a gateway: `DST via GATEWAY dev DEV [onlink]`.
    pub fn via(dst: IpNet, gateway: IpAddr, dev: impl Into<String>, onlink: bool) -> Self {
        KernelRoute {
            dst: dst.trunc(),
            kind: RouteKind::Via {
                gateway,
                dev: dev.into(),
                onlink,
            },
        }
    }

    /// The interface this route names, if any.
    pub fn dev(&self) -> Option<&str> {
        match &self.kind {
            RouteKind::Link { dev } | RouteKind::Via { dev, .. } => Some(dev),
            RouteKind::Blackhole | RouteKind::Unsupported { .. } => None,
        }
    }
}

impl fmt::Display for KernelRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RouteKind::Link { dev } => write!(f, "{} dev {dev} scope link", self.dst),
            RouteKind::Blackhole => write!(f, "blackhole {}", self.dst),
            RouteKind::Via {
                gateway,
                dev,
                onlink,
            } => {
                write!(f, "{} via {gateway} dev {dev}", self.dst)?;
                if *onlink {
                    write!(f, " onlink")?;
                }
                Ok(())
            }
            RouteKind::Unsupported { what } => write!(f, "{} ({what})", self.dst),
        }
    }
}

// ===== impl InstalledRoute =====

impl InstalledRoute {
    /// Whether the metric is the kernel default for the family (0 for IPv4,
    /// 1024 for IPv6), i.e. the one a route felix adds would get.
    pub fn has_default_metric(&self) -> bool {
        let default = match self.route.dst {
            IpNet::V4(_) => 0,
            IpNet::V6(_) => 1024,
        };
        self.metric.unwrap_or(default) == default
    }
}

impl fmt::Display for InstalledRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.route)?;
        if let Some(m) = self.metric.filter(|_| !self.has_default_metric()) {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_ip_route_line() {
        let r = KernelRoute::link("10.244.3.7/32".parse().unwrap(), "tort0123456789a");
        assert_eq!(
            r.to_string(),
            "10.244.3.7/32 dev tort0123456789a scope link"
        );
        let r = KernelRoute::blackhole("10.244.3.5/26".parse().unwrap());
        assert_eq!(r.to_string(), "blackhole 10.244.3.0/26");
        let r = KernelRoute::via(
            "10.244.7.0/26".parse().unwrap(),
            "192.168.2.21".parse().unwrap(),
            "tunl0",
            true,
        );
        assert_eq!(
            r.to_string(),
            "10.244.7.0/26 via 192.168.2.21 dev tunl0 onlink"
        );
    }

    #[test]
    fn default_metric_depends_on_family() {
        let v4 = InstalledRoute {
            route: KernelRoute::blackhole("10.0.0.0/26".parse().unwrap()),
            metric: Some(0),
        };
        let v6 = InstalledRoute {
            route: KernelRoute::blackhole("fd00::/122".parse().unwrap()),
            metric: Some(1024),
        };
        assert!(v4.has_default_metric() && v6.has_default_metric());
        let odd = InstalledRoute {
            metric: Some(5),
            ..v4
        };
        assert!(!odd.has_default_metric());
        assert_eq!(odd.to_string(), "blackhole 10.0.0.0/26 metric 5");
    }
}
