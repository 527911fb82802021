//! The kinds the system writes: `WorkloadEndpoint` (the CNI plugin) and
//! the IPAM records `Block`, `BlockAffinity` and `Handle`. Read and written
//! as `tortie.io/v1` only.
//!
//! A block is the unit of compare-and-swap for IPAM: one allocation changes
//! one block object, written with the revision it was read at.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::Metadata;
use crate::error::ConfigError;

/// Largest number of addresses in a block (a /20 or a /116): keeps the
/// allocation table of one object small.
pub const MAX_BLOCK_ADDRESSES: usize = 4096;

/// A pod's network interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointSpec {
    /// The node the pod runs on.
    pub node: String,
    /// Who runs the workload (`k8s`, `cni`).
    #[serde(default = "default_orchestrator")]
    pub orchestrator: String,
    /// The pod's name, when Kubernetes runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The container (sandbox) id the runtime gave.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface inside the pod (`eth0`).
    pub endpoint: String,
    /// The host side of the veth (`tort` + 11 hex), at most 15 characters.
    pub interface_name: String,
    /// The pod's addresses, as /32 or /128.
    pub ip_networks: Vec<IpNet>,
    /// The pod side MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// An IPAM block: a slice of a pool, claimed by one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockSpec {
    /// The block's range; no host bits.
    pub cidr: IpNet,
    /// `host:<node>` for the node that claimed it; `None` while unclaimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    /// One slot per address of the block: the index into `attributes` of
    /// its allocation, or `null` when free.
    pub allocations: Vec<Option<u32>>,
    /// The free slots, in the order they will be handed out.
    pub unallocated: Vec<u32>,
    /// Who owns each allocation.
    #[serde(default)]
    pub attributes: Vec<AllocationAttribute>,
    /// Being released: no new allocations.
    #[serde(default)]
    pub deleted: bool,
}

/// The owner of one allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllocationAttribute {
    /// The handle (container id + interface) that holds it.
    #[serde(rename = "handleID", default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    /// Extra facts (namespace, pod, node).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secondary: BTreeMap<String, String>,
}

/// A node's claim on a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockAffinitySpec {
    /// The node.
    pub node: String,
    /// The block.
    pub cidr: IpNet,
    /// Where the claim stands.
    #[serde(default)]
    pub state: AffinityState,
    /// Being released.
    #[serde(default)]
    pub deleted: bool,
}

/// `BlockAffinity.spec.state`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AffinityState {
    /// Claimed, the block not yet written.
    #[default]
    Pending,
    /// Claimed and the block written.
    Confirmed,
    /// Being released.
    PendingDeletion,
}

/// The allocations of one workload interface: how many addresses it holds
/// in each block. ADD retried finds it; DEL releases exactly it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandleSpec {
    /// The handle id (`<network>.<container id>`, plus the interface).
    #[serde(rename = "handleID")]
    pub handle_id: String,
    /// Block CIDR -> number of addresses held there.
    #[serde(default)]
    pub block: BTreeMap<String, u32>,
    /// Being released.
    #[serde(default)]
    pub deleted: bool,
}

// ===== impl WorkloadEndpointSpec =====

impl WorkloadEndpointSpec {
    fn check(&mut self, _: &Metadata) -> Result<(), ConfigError> {
        for (field, value) in [
            ("spec.node", &self.node),
            ("spec.containerID", &self.container_id),
            ("spec.endpoint", &self.endpoint),
        ] {
            if value.is_empty() {
                return Err(ConfigError::invalid(field, "\"\"", "must not be empty"));
            }
        }
        let n = self.interface_name.len();
        if n == 0 || n > 15 || self.interface_name.contains(['/', ' ']) {
            return Err(ConfigError::invalid(
                "spec.interfaceName",
                format!("{:?}", self.interface_name),
                "a Linux interface name: 1-15 characters, no '/' or space",
            ));
        }
        for (i, net) in self.ip_networks.iter().enumerate() {
            if net.prefix_len() != net.max_prefix_len() {
                return Err(ConfigError::invalid(
                    format!("spec.ipNetworks[{i}]"),
                    net,
                    "a single address: /32 for IPv4, /128 for IPv6",
                ));
            }
        }
        if let Some(mac) = &self.mac {
            super::node::check_mac("spec.mac", mac)?;
        }
        Ok(())
    }
}

super::spec_kind!(WorkloadEndpointSpec, WorkloadEndpoint);

// ===== impl BlockSpec =====

impl BlockSpec {
    /// An empty block of `cidr` (every address free, handed out in order).
    pub fn new(cidr: IpNet, affinity: Option<String>) -> BlockSpec {
        let n = block_addresses(&cidr).unwrap_or(0);
        BlockSpec {
            cidr,
            affinity,
            allocations: vec![None; n],
            unallocated: (0..n as u32).collect(),
            attributes: Vec::new(),
            deleted: false,
        }
    }

    /// The object name for a block of `cidr`: `10-244-0-64-26`.
    pub fn name_for(cidr: &IpNet) -> String {
        cidr.to_string()
            .replace(['.', ':', '/'], "-")
            .trim_matches('-')
            .to_string()
    }

    fn check(&mut self, _: &Metadata) -> Result<(), ConfigError> {
        if self.cidr.trunc() != self.cidr {
            return Err(ConfigError::invalid(
                "spec.cidr",
                self.cidr,
                format!("host bits are set; did you mean {}?", self.cidr.trunc()),
            ));
        }
        let Some(n) = block_addresses(&self.cidr) else {
            return Err(ConfigError::invalid(
                "spec.cidr",
                self.cidr,
                format!("a block holds at most {MAX_BLOCK_ADDRESSES} addresses (/20 or /116)"),
            ));
        };
        if self.allocations.len() != n {
            return Err(ConfigError::invalid(
                "spec.allocations",
                format!("{} entries", self.allocations.len()),
                format!("one entry per address of {}: {n}", self.cidr),
            ));
        }
        for (i, slot) in self.allocations.iter().enumerate() {
            if let Some(a) = slot {
                if *a as usize >= self.attributes.len() {
                    return Err(ConfigError::invalid(
                        format!("spec.allocations[{i}]"),
                        a,
                        format!(
                            "an index into attributes (which has {} entries)",
                            self.attributes.len()
                        ),
                    ));
                }
            }
        }
        // Every agent reads (and so checks) every block write: no
        // allocation per slot here, the field name is made on error only.
        let mut seen = vec![false; n];
        for (i, free) in self.unallocated.iter().enumerate() {
            let field = || format!("spec.unallocated[{i}]");
            match self.allocations.get(*free as usize) {
                None => {
                    return Err(ConfigError::invalid(
                        field(),
                        free,
                        format!("a slot 0..{n}"),
                    ));
                }
                Some(Some(_)) => {
                    return Err(ConfigError::invalid(
                        field(),
                        free,
                        "this slot is allocated, it cannot also be free",
                    ));
                }
                Some(None) if std::mem::replace(&mut seen[*free as usize], true) => {
                    return Err(ConfigError::invalid(field(), free, "listed twice"));
                }
                Some(None) => {}
            }
        }
        if let Some(i) = (0..n).find(|i| self.allocations[*i].is_none() && !seen[*i]) {
            return Err(ConfigError::invalid(
                "spec.unallocated",
                format!("{} entries", self.unallocated.len()),
                format!("slot {i} is neither allocated nor listed as free"),
            ));
        }
        Ok(())
    }
}

super::spec_kind!(BlockSpec, Block);

// ===== impl BlockAffinitySpec =====

impl BlockAffinitySpec {
    fn check(&mut self, _: &Metadata) -> Result<(), ConfigError> {
        if self.node.is_empty() {
            return Err(ConfigError::invalid(
                "spec.node",
                "\"\"",
                "must not be empty",
            ));
        }
        if self.cidr.trunc() != self.cidr {
            return Err(ConfigError::invalid(
                "spec.cidr",
                self.cidr,
                "host bits are set",
            ));
        }
        Ok(())
    }
}

super::spec_kind!(BlockAffinitySpec, BlockAffinity);

// ===== impl HandleSpec =====

impl HandleSpec {
    fn check(&mut self, _: &Metadata) -> Result<(), ConfigError> {
        if self.handle_id.is_empty() {
            return Err(ConfigError::invalid(
                "spec.handleID",
                "\"\"",
                "must not be empty",
            ));
        }
        for key in self.block.keys() {
            if key.parse::<IpNet>().is_err() {
                return Err(ConfigError::invalid(
                    format!("spec.block.{key}"),
                    format!("{key:?}"),
                    "keys are block CIDRs, e.g. 10.244.0.64/26",
                ));
            }
        }
        Ok(())
    }
}

super::spec_kind!(HandleSpec, Handle);

// ===== helpers =====

/// How many addresses `cidr` holds, if at most [`MAX_BLOCK_ADDRESSES`].
fn block_addresses(cidr: &IpNet) -> Option<usize> {
    let bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
    (bits <= 12).then(|| 1usize << bits)
}

fn default_orchestrator() -> String {
    "k8s".into()
}
