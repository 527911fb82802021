//! `IPPool`, with Calico's field names and defaults.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::selector::Selector;
use super::{Metadata, DEFAULT_BLOCK_SIZE_V4, DEFAULT_BLOCK_SIZE_V6};
use crate::error::ConfigError;

/// A range pod addresses come from, cut into blocks that nodes claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IPPoolSpec {
    /// The range; no host bits set.
    pub cidr: IpNet,
    /// Prefix length of the blocks: IPv4 20..=32 (default 26), IPv6
    /// 116..=128 (default 122); never shorter than the pool's. Filled in
    /// when loaded, so always `Some` on a validated pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    /// IPIP encapsulation between nodes (IPv4 pools only); default Never.
    #[serde(default)]
    pub ipip_mode: EncapMode,
    /// VXLAN encapsulation between nodes; default Never.
    #[serde(default)]
    pub vxlan_mode: EncapMode,
    /// Masquerade traffic from pods to outside the pools (default false).
    #[serde(default)]
    pub nat_outgoing: bool,
    /// No new allocations from this pool (default false).
    #[serde(default)]
    pub disabled: bool,
    /// Do not advertise this pool's blocks over BGP (default false).
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
    /// The nodes that may take blocks from this pool (default `all()`).
    #[serde(default = "Selector::all")]
    pub node_selector: Selector,
    /// What addresses of this pool are for (default Workload, Tunnel).
    #[serde(default = "default_uses")]
    pub allowed_uses: Vec<AllowedUse>,
}

/// `ipipMode` / `vxlanMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncapMode {
    /// Never encapsulate.
    #[default]
    Never,
    /// Always encapsulate.
    Always,
    /// Encapsulate only towards nodes in another subnet.
    CrossSubnet,
}

/// One of `allowedUses`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllowedUse {
    /// Pod addresses.
    Workload,
    /// Tunnel device addresses.
    Tunnel,
    /// Service LoadBalancer addresses.
    LoadBalancer,
}

// ===== impl IPPoolSpec =====

impl IPPoolSpec {
    /// A pool of `cidr` with every other field at Calico's default.
    pub fn new(cidr: IpNet) -> IPPoolSpec {
        let mut spec = IPPoolSpec {
            cidr,
            block_size: None,
            ipip_mode: EncapMode::Never,
            vxlan_mode: EncapMode::Never,
            nat_outgoing: false,
            disabled: false,
            disable_bgp_export: false,
            node_selector: Selector::all(),
            allowed_uses: default_uses(),
        };
        spec.block_size = Some(spec.default_block_size());
        spec
    }

    /// The block prefix length (the default for the family when unset).
    pub fn block_size(&self) -> u8 {
        self.block_size.unwrap_or_else(|| self.default_block_size())
    }

    fn default_block_size(&self) -> u8 {
        match self.cidr {
            IpNet::V4(_) => DEFAULT_BLOCK_SIZE_V4,
            IpNet::V6(_) => DEFAULT_BLOCK_SIZE_V6,
        }
    }

    fn check(&mut self, _: &Metadata) -> Result<(), ConfigError> {
        if self.cidr.trunc() != self.cidr {
            return Err(ConfigError::invalid(
                "spec.cidr",
                self.cidr,
                format!("host bits are set; did you mean {}?", self.cidr.trunc()),
            ));
        }
        let (range, family) = match self.cidr {
            IpNet::V4(_) => (20..=32, "IPv4"),
            IpNet::V6(_) => (116..=128, "IPv6"),
        };
        let size = self.block_size();
        if !range.contains(&size) {
            return Err(ConfigError::invalid(
                "spec.blockSize",
                size,
                format!(
                    "an {family} block size is {}..={}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        if size < self.cidr.prefix_len() {
            return Err(ConfigError::invalid(
                "spec.blockSize",
                size,
                format!(
                    "blocks must fit in the pool: at least the pool's prefix length {}",
                    self.cidr.prefix_len()
                ),
            ));
        }
        self.block_size = Some(size);
        if self.ipip_mode != EncapMode::Never && self.vxlan_mode != EncapMode::Never {
            return Err(ConfigError::invalid(
                "spec.vxlanMode",
                format!("{:?}", self.vxlan_mode),
                format!(
                    "ipipMode is {:?}: a pool uses at most one encapsulation",
                    self.ipip_mode
                ),
            ));
        }
        if self.ipip_mode != EncapMode::Never && self.cidr.addr().is_ipv6() {
            return Err(ConfigError::invalid(
                "spec.ipipMode",
                format!("{:?}", self.ipip_mode),
                "IPIP carries IPv4 only; use Never (or vxlanMode) for an IPv6 pool",
            ));
        }
        if self.allowed_uses.is_empty() {
            return Err(ConfigError::invalid(
                "spec.allowedUses",
                "[]",
                "at least one of Workload, Tunnel, LoadBalancer",
            ));
        }
        if self.allowed_uses.contains(&AllowedUse::LoadBalancer) && self.allowed_uses.len() > 1 {
            return Err(ConfigError::invalid(
                "spec.allowedUses",
                format!("{:?}", self.allowed_uses),
                "LoadBalancer cannot be combined with other uses",
            ));
        }
        Ok(())
    }
}

super::spec_kind!(IPPoolSpec, IPPool);

// ===== helpers =====

fn default_uses() -> Vec<AllowedUse> {
    vec![AllowedUse::Workload, AllowedUse::Tunnel]
}
