//! `Node`: a node's addresses and BGP settings, with Calico's field names.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::bgp::AsNumber;
use super::Metadata;
use crate::error::ConfigError;

/// A node of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// BGP settings; a node without them runs no BGP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    /// Address of the node's VXLAN device.
    #[serde(
        default,
        rename = "ipv4VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_vxlan_tunnel_addr: Option<IpAddr>,
    /// MAC of the node's VXLAN device.
    #[serde(
        default,
        rename = "vxlanTunnelMACAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr: Option<String>,
    /// Address of the node's IPv6 VXLAN device.
    #[serde(
        default,
        rename = "ipv6VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_vxlan_tunnel_addr: Option<IpAddr>,
    /// MAC of the node's IPv6 VXLAN device.
    #[serde(
        default,
        rename = "vxlanTunnelMACAddrV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr_v6: Option<String>,
    /// The node's addresses, informational.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
}

/// `spec.bgp` of a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeBgpSpec {
    /// The node's AS; the BGPConfiguration's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// The node's IPv4 address with its subnet length (`192.168.1.10/24`):
    /// the BGP router id and session address; the subnet decides
    /// CrossSubnet encapsulation.
    #[serde(
        default,
        rename = "ipv4Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_address: Option<IpNet>,
    /// The node's IPv6 address with its subnet length.
    #[serde(
        default,
        rename = "ipv6Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_address: Option<IpNet>,
    /// Address of the node's IPIP tunnel device.
    #[serde(
        default,
        rename = "ipv4IPIPTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_ipip_tunnel_addr: Option<IpAddr>,
    /// When set, this node is a route reflector with this CLUSTER_ID.
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "Option::is_none"
    )]
    pub route_reflector_cluster_id: Option<std::net::Ipv4Addr>,
}

/// One of `spec.addresses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAddress {
    /// The address (optionally with a prefix length, as Calico writes it).
    pub address: String,
    /// `InternalIP`, `ExternalIP`, `CalicoNodeIP`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

// ===== impl NodeSpec =====

impl NodeSpec {
    fn check(&mut self, _: &Metadata) -> Result<(), ConfigError> {
        if let Some(bgp) = &self.bgp {
            if let Some(a) = bgp.ipv4_address {
                if !a.addr().is_ipv4() {
                    return Err(ConfigError::invalid(
                        "spec.bgp.ipv4Address",
                        a,
                        "an IPv4 address with its prefix length, e.g. 192.168.1.10/24",
                    ));
                }
            }
            if let Some(a) = bgp.ipv6_address {
                if !a.addr().is_ipv6() {
                    return Err(ConfigError::invalid(
                        "spec.bgp.ipv6Address",
                        a,
                        "an IPv6 address with its prefix length, e.g. fd00::10/64",
                    ));
                }
            }
            if bgp.ipv4_address.is_none() && bgp.ipv6_address.is_none() {
                return Err(ConfigError::Schema {
                    field: "spec.bgp".into(),
                    message: "set ipv4Address and/or ipv6Address (the node's BGP address)".into(),
                });
            }
            if let Some(asn) = bgp.as_number {
                if asn.0 == 0 {
                    return Err(ConfigError::invalid(
                        "spec.bgp.asNumber",
                        0,
                        "AS 0 is reserved",
                    ));
                }
            }
        }
        for (field, mac) in [
            ("spec.vxlanTunnelMACAddr", &self.vxlan_tunnel_mac_addr),
            ("spec.vxlanTunnelMACAddrV6", &self.vxlan_tunnel_mac_addr_v6),
        ] {
            if let Some(mac) = mac {
                check_mac(field, mac)?;
            }
        }
        Ok(())
    }
}

super::spec_kind!(NodeSpec, Node);

/// A MAC is six two-digit hex bytes separated by `:`.
pub(crate) fn check_mac(field: &str, mac: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            format!("{mac:?}"),
            "a MAC address like ee:ee:ee:ee:ee:ee",
        ))
    }
}
