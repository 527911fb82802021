//! The VXLAN device `vxlan.tortie` and its per-peer entries, reconciled like
//! routes: dump, diff, apply; no write when the kernel is already right.
//!
//! What [`reconcile`] keeps in place (`ip` equivalents):
//!
//! ```text
//! ip link add vxlan.tortie type vxlan id 4096 dstport 4789 local <underlay ip> \
//!     dev <underlay> nolearning
//! ip link set vxlan.tortie mtu <underlay mtu - 50> address <MAC from node name> up
//! ip addr add <vtep ip>/32 dev vxlan.tortie
//! # per remote node:
//! ip neigh replace <its vtep ip> lladdr <its MAC> dev vxlan.tortie nud permanent
//! bridge fdb replace <its MAC> dev vxlan.tortie dst <its underlay ip> self permanent
//! ```
//!
//! - The MAC of a node's VTEP is derived from the node name ([`Mac::for_node`]):
//!   every node computes the same MAC for a peer without a datastore field.
//! - Ownership: the device is ours by name. On it, permanent neighbour entries
//!   and permanent `self` FDB entries with a destination are ours: those not
//!   wanted are deleted. Entries the kernel makes (non-permanent neighbours,
//!   the IPv6 link-local address) are left alone.
//! - A device of our name with the wrong kind, VNI, port, local address,
//!   underlay or learning is deleted and made again (those cannot be changed
//!   in place); MTU, MAC and up are set in place.
//! - A device is of one family: that of the local underlay address. IPv4
//!   is `vxlan.tortie` (VNI 4096, overhead 50 bytes), IPv6 `vxlan-v6.tortie`
//!   (VNI 6096, overhead 70), as Calico's `vxlan.calico` and
//!   `vxlan-v6.calico`; a dual-stack node has both ([`device_name`]). Peers
//!   of the other family are skipped and reported.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

mod kernel;

pub use kernel::reconcile;

/// Name of Tortie's IPv4 VXLAN device.
pub const VXLAN_DEV: &str = "vxlan.tortie";
/// Name of Tortie's IPv6 VXLAN device (15 bytes: the longest a name gets).
pub const VXLAN_DEV_V6: &str = "vxlan-v6.tortie";
/// VXLAN network identifier of the IPv4 device (as Calico uses).
pub const VXLAN_VNI: u32 = 4096;
/// VXLAN network identifier of the IPv6 device (as Calico's
/// `vxlan-v6.calico`).
pub const VXLAN_VNI_V6: u32 = 6096;
/// UDP destination port (IANA VXLAN).
pub const VXLAN_PORT: u16 = 4789;
/// `NUD_PERMANENT` of the kernel's neighbour states.
const NUD_PERMANENT: u16 = 0x80;
/// Encapsulation overhead over an IPv4 underlay (outer IP 20, UDP 8,
/// VXLAN 8, inner Ethernet 14).
pub const VXLAN_OVERHEAD_V4: u32 = 50;
/// Encapsulation overhead over an IPv6 underlay (outer IPv6 header is 40).
pub const VXLAN_OVERHEAD_V6: u32 = 70;

/// An Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Mac(pub [u8; 6]);

/// This node's VTEP: what the device is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalVtep {
    /// Node name: the device MAC is derived from it.
    pub node: String,
    /// Underlay interface (e.g. `eth0`): its MTU and index.
    pub underlay: String,
    /// Underlay address: the outer source address (`local`).
    pub local: IpAddr,
    /// The VTEP address on `vxlan.tortie` (a /32 or /128), the gateway other
    /// nodes' routes name.
    pub vtep: IpAddr,
}

/// Another node's VTEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteVtep {
    /// Node name, for messages.
    pub node: String,
    /// Its VTEP address (gateway of our routes to its blocks).
    pub vtep: IpAddr,
    /// Its VTEP MAC (normally [`Mac::for_node`] of its name).
    pub mac: Mac,
    /// Its underlay address: where its encapsulated packets go.
    pub underlay: IpAddr,
}

/// A permanent neighbour entry on `vxlan.tortie`: VTEP address -> MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ArpEntry {
    /// The peer's VTEP address.
    pub ip: IpAddr,
    /// The peer's VTEP MAC.
    pub mac: Mac,
}

/// A permanent FDB entry on `vxlan.tortie`: MAC -> underlay address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FdbEntry {
    /// The peer's VTEP MAC.
    pub mac: Mac,
    /// The peer's underlay address.
    pub dst: IpAddr,
}

/// The writes that make the peer entries right ([`plan_peers`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerPlan {
    /// `ip neigh replace`.
    pub set_arp: Vec<ArpEntry>,
    /// `ip neigh del`.
    pub del_arp: Vec<ArpEntry>,
    /// `bridge fdb replace`.
    pub set_fdb: Vec<FdbEntry>,
    /// `bridge fdb del`.
    pub del_fdb: Vec<FdbEntry>,
    /// Wanted peers that were skipped, each naming the peer and why.
    pub skipped: Vec<String>,
}

/// What one [`reconcile`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VxlanReport {
    /// Netlink writes sent (0 when everything was right).
    pub writes: u64,
    /// Index of `vxlan.tortie` afterwards.
    pub ifindex: Option<u32>,
    /// The writes sent, as `ip`/`bridge` commands.
    pub changes: Vec<String>,
    /// Writes that failed or peers skipped, one line each naming the item.
    pub problems: Vec<String>,
}

/// Why [`reconcile`] could not do its job at all.
#[derive(Debug, thiserror::Error)]
pub enum VxlanError {
    /// The underlay interface is not there.
    #[error(
        "underlay interface {0:?} does not exist: the VXLAN device needs it for MTU and index"
    )]
    NoUnderlay(String),
    /// A dump failed.
    #[error("netlink dump of {what} failed: {source}")]
    Dump {
        /// What was dumped.
        what: &'static str,
        /// The cause.
        source: rtnetlink::Error,
    },
    /// The device could not be made or fixed.
    #[error("cannot {what}: {source}")]
    Device {
        /// `create vxlan.tortie`, `delete ...`, `set ...`: the device named.
        what: String,
        /// The cause.
        source: rtnetlink::Error,
    },
    /// The VTEP address and the underlay address are of different families.
    #[error(
        "VTEP address {vtep} and underlay address {local} are of different IP \
         families: a VXLAN device carries one family; use a VTEP of the underlay's family"
    )]
    FamilyMismatch {
        /// The VTEP address.
        vtep: IpAddr,
        /// The underlay address.
        local: IpAddr,
    },
}

/// What the kernel said about the device (the parts we manage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DeviceInfo {
    index: u32,
    is_vxlan: bool,
    vni: Option<u32>,
    port: Option<u16>,
    local: Option<IpAddr>,
    learning: Option<bool>,
    link: Option<u32>,
    mtu: Option<u32>,
    mac: Option<Vec<u8>>,
    up: bool,
}

/// What the device needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DeviceAction {
    Ok,
    /// Set MTU / MAC / up in place (one `ip link set`).
    Fix,
    /// Wrong identity: delete and create.
    Recreate,
}

/// Pure: the writes that turn the permanent entries found (`arp`, `fdb`) into
/// the ones `wanted` needs. Peers whose underlay is not of `local`'s family
/// are skipped; two peers with one VTEP address or MAC: the first wins.
pub fn plan_peers(
    local: IpAddr,
    wanted: &[RemoteVtep],
    arp: &[ArpEntry],
    fdb: &[FdbEntry],
) -> PeerPlan {
    let mut plan = PeerPlan::default();
    let mut want_arp: BTreeMap<IpAddr, Mac> = BTreeMap::new();
    let mut want_fdb: BTreeMap<Mac, IpAddr> = BTreeMap::new();
    for p in wanted {
        if p.underlay.is_ipv4() != local.is_ipv4() {
            plan.skipped.push(format!(
                "node {}: underlay address {} is not of the family of {}'s \
                 local address {local}: skipped",
                p.node,
                p.underlay,
                device_name(local.is_ipv4())
            ));
            continue;
        }
        if want_arp.contains_key(&p.vtep) || want_fdb.contains_key(&p.mac) {
            plan.skipped.push(format!(
                "node {}: VTEP {} / MAC {} is already used by another node: skipped",
                p.node, p.vtep, p.mac
            ));
            continue;
        }
        want_arp.insert(p.vtep, p.mac);
        want_fdb.insert(p.mac, p.underlay);
    }
    let have_arp: BTreeMap<IpAddr, Mac> = arp.iter().map(|e| (e.ip, e.mac)).collect();
    for (&ip, &mac) in &want_arp {
        if have_arp.get(&ip) != Some(&mac) {
            plan.set_arp.push(ArpEntry { ip, mac });
        }
    }
    plan.del_arp = arp
        .iter()
        .filter(|e| !want_arp.contains_key(&e.ip))
        .copied()
        .collect();
    for (&mac, &dst) in &want_fdb {
        let entries: Vec<&FdbEntry> = fdb.iter().filter(|e| e.mac == mac).collect();
        if entries.len() != 1 || entries[0].dst != dst {
            // Extra destinations for the MAC (appended by someone) go too.
            plan.del_fdb
                .extend(entries.into_iter().filter(|e| e.dst != dst).copied());
            if !fdb.contains(&FdbEntry { mac, dst }) {
                plan.set_fdb.push(FdbEntry { mac, dst });
            }
        }
    }
    plan.del_fdb.extend(
        fdb.iter()
            .filter(|e| !want_fdb.contains_key(&e.mac))
            .copied(),
    );
    plan
}

/// The VXLAN device of a family: `vxlan.tortie` (IPv4) or
/// `vxlan-v6.tortie` (IPv6).
pub fn device_name(v4: bool) -> &'static str {
    if v4 {
        VXLAN_DEV
    } else {
        VXLAN_DEV_V6
    }
}

/// The VNI of a family's device.
pub fn vni(v4: bool) -> u32 {
    if v4 {
        VXLAN_VNI
    } else {
        VXLAN_VNI_V6
    }
}

// ===== impl VxlanReport =====

impl VxlanReport {
    /// Counts one write and records what it was.
    fn wrote(&mut self, what: String) {
        self.writes += 1;
        tracing::debug!(change = %what, "vxlan");
        self.changes.push(what);
    }
}

// ===== impl Mac =====

impl Mac {
    /// The VTEP MAC of node `name`: FNV-1a-64 of the name, first six bytes,
    /// with the locally-administered bit set and the multicast bit cleared.
    /// Deterministic, so every node computes the same MAC for a peer.
    pub fn for_node(name: &str) -> Mac {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let b = h.to_be_bytes();
        Mac([(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// ===== helpers =====

/// Pure: what the found device needs.
fn device_action(d: &DeviceInfo, local: IpAddr, underlay: u32, mtu: u32, mac: Mac) -> DeviceAction {
    let identity = d.is_vxlan
        && d.vni == Some(vni(local.is_ipv4()))
        && d.port == Some(VXLAN_PORT)
        && d.local == Some(local)
        && d.learning == Some(false)
        && d.link == Some(underlay);
    if !identity {
        DeviceAction::Recreate
    } else if d.mtu != Some(mtu) || d.mac.as_deref() != Some(&mac.0[..]) || !d.up {
        DeviceAction::Fix
    } else {
        DeviceAction::Ok
    }
}

#[cfg(test)]
mod tests;
