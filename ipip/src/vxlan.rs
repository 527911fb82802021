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
//! - The device is of one family: that of the local underlay address (IPv4:
//!   overhead 50 bytes; IPv6: 70). Peers of the other family are skipped and
//!   reported.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};
use serde::{Deserialize, Serialize};

/// Name of Tortie's VXLAN device.
pub const VXLAN_DEV: &str = "vxlan.tortie";
/// VXLAN network identifier (as Calico uses).
pub const VXLAN_VNI: u32 = 4096;
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
    #[error("underlay interface {0:?} does not exist: vxlan.tortie needs it for MTU and index")]
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
    #[error("cannot {what} vxlan.tortie: {source}")]
    Device {
        /// `create`, `delete`, `set` ...
        what: String,
        /// The cause.
        source: rtnetlink::Error,
    },
    /// The VTEP address and the underlay address are of different families.
    #[error(
        "VTEP address {vtep} and underlay address {local} are of different IP \
         families: vxlan.tortie carries one family; use a VTEP of the underlay's family"
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

/// Reconciles `vxlan.tortie`, its address, and the neighbour and FDB entries
/// for `peers`, through `handle` (in whatever namespace it was opened).
/// Per-entry failures do not stop the rest: they are in the report.
pub async fn reconcile(
    handle: &Handle,
    local: &LocalVtep,
    peers: &[RemoteVtep],
) -> Result<VxlanReport, VxlanError> {
    if local.vtep.is_ipv4() != local.local.is_ipv4() {
        return Err(VxlanError::FamilyMismatch {
            vtep: local.vtep,
            local: local.local,
        });
    }
    let mut report = VxlanReport::default();
    let links: Vec<LinkMessage> =
        handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| VxlanError::Dump {
                what: "links",
                source,
            })?;
    let underlay = links
        .iter()
        .find(|m| link_name(m) == Some(local.underlay.as_str()))
        .map(device_info)
        .ok_or_else(|| VxlanError::NoUnderlay(local.underlay.clone()))?;
    let overhead = if local.local.is_ipv4() {
        VXLAN_OVERHEAD_V4
    } else {
        VXLAN_OVERHEAD_V6
    };
    let mtu = underlay.mtu.unwrap_or(1500).saturating_sub(overhead);
    let mac = Mac::for_node(&local.node);
    let current = links
        .iter()
        .find(|m| link_name(m) == Some(VXLAN_DEV))
        .map(device_info);
    let index = ensure_device(
        handle,
        local,
        current,
        underlay.index,
        mtu,
        mac,
        &mut report,
    )
    .await?;
    report.ifindex = Some(index);
    ensure_address(handle, index, local.vtep, &mut report).await?;
    let (arp, fdb) = dump_peers(handle, index).await?;
    let plan = plan_peers(local.local, peers, &arp, &fdb);
    report.problems.extend(plan.skipped.iter().cloned());
    apply_peers(handle, index, &plan, &mut report).await;
    Ok(report)
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
                "node {}: underlay address {} is not of the family of vxlan.tortie's \
                 local address {local}: skipped",
                p.node, p.underlay
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

// ===== impl VxlanReport =====

impl VxlanReport {
    /// Counts one write and records what it was.
    fn wrote(&mut self, what: String) {
        self.writes += 1;
        tracing::debug!(change = %what, "vxlan.tortie");
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

fn link_name(m: &LinkMessage) -> Option<&str> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn device_info(m: &LinkMessage) -> DeviceInfo {
    let mut d = DeviceInfo {
        index: m.header.index,
        up: m.header.flags.contains(LinkFlags::Up),
        ..DeviceInfo::default()
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::Mtu(v) => d.mtu = Some(*v),
            LinkAttribute::Address(v) => d.mac = Some(v.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => d.is_vxlan = *k == InfoKind::Vxlan,
                        LinkInfo::Data(InfoData::Vxlan(v)) => vxlan_info(v, &mut d),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    d
}

fn vxlan_info(infos: &[InfoVxlan], d: &mut DeviceInfo) {
    for i in infos {
        match i {
            InfoVxlan::Id(v) => d.vni = Some(*v),
            InfoVxlan::Port(v) => d.port = Some(*v),
            InfoVxlan::Local(v) => d.local = Some(IpAddr::V4(*v)),
            InfoVxlan::Local6(v) => d.local = Some(IpAddr::V6(*v)),
            InfoVxlan::Learning(v) => d.learning = Some(*v),
            InfoVxlan::Link(v) => d.link = Some(*v),
            _ => {}
        }
    }
}

/// Pure: what the found device needs.
fn device_action(d: &DeviceInfo, local: IpAddr, underlay: u32, mtu: u32, mac: Mac) -> DeviceAction {
    let identity = d.is_vxlan
        && d.vni == Some(VXLAN_VNI)
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

async fn ensure_device(
    handle: &Handle,
    local: &LocalVtep,
    current: Option<DeviceInfo>,
    underlay: u32,
    mtu: u32,
    mac: Mac,
    report: &mut VxlanReport,
) -> Result<u32, VxlanError> {
    let fail = |what: &str| {
        let what = what.to_owned();
        move |source| VxlanError::Device { what, source }
    };
    let action = current
        .as_ref()
        .map(|d| device_action(d, local.local, underlay, mtu, mac));
    match (&current, action) {
        (Some(d), Some(DeviceAction::Ok)) => return Ok(d.index),
        (Some(d), Some(DeviceAction::Fix)) => {
            report.wrote(format!(
                "ip link set {VXLAN_DEV} mtu {mtu} address {mac} up (was mtu {:?} up {})",
                d.mtu, d.up
            ));
            // Only what differs: setting the address, even to the same
            // value, flushes the device's neighbour entries.
            let mut b = LinkUnspec::new_with_index(d.index).up();
            if d.mtu != Some(mtu) {
                b = b.mtu(mtu);
            }
            if d.mac.as_deref() != Some(&mac.0[..]) {
                b = b.address(mac.0.to_vec());
            }
            let msg = b.build();
            handle
                .link()
                .set(msg)
                .execute()
                .await
                .map_err(fail("set mtu/address/up of"))?;
            return Ok(d.index);
        }
        (Some(d), _) => {
            tracing::warn!(?d, "vxlan.tortie has the wrong settings: recreating it");
            report.wrote(format!("ip link del {VXLAN_DEV} (wrong settings)"));
            handle
                .link()
                .del(d.index)
                .execute()
                .await
                .map_err(fail("delete the misconfigured"))?;
        }
        (None, _) => {}
    }
    let b = LinkVxlan::new(VXLAN_DEV, VXLAN_VNI)
        .port(VXLAN_PORT)
        .dev(underlay)
        .learning(false);
    let b = match local.local {
        IpAddr::V4(v4) => b.local(v4),
        IpAddr::V6(v6) => b.local6(v6),
    };
    let msg = b.mtu(mtu).address(mac.0.to_vec()).up().build();
    report.wrote(format!("ip link add {VXLAN_DEV} type vxlan id {VXLAN_VNI} dstport {VXLAN_PORT} local {} nolearning", local.local));
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(fail("create"))?;
    let made: Vec<LinkMessage> = handle
        .link()
        .get()
        .match_name(VXLAN_DEV.to_owned())
        .execute()
        .try_collect()
        .await
        .map_err(|source| VxlanError::Dump {
            what: "the new vxlan.tortie",
            source,
        })?;
    Ok(made.first().map_or(0, |m| m.header.index))
}

/// Keeps exactly `vtep` (host prefix) as the global address of the device.
async fn ensure_address(
    handle: &Handle,
    index: u32,
    vtep: IpAddr,
    report: &mut VxlanReport,
) -> Result<(), VxlanError> {
    let addrs: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|source| VxlanError::Dump {
            what: "addresses of vxlan.tortie",
            source,
        })?;
    let host_len = if vtep.is_ipv4() { 32 } else { 128 };
    let mut present = false;
    for m in addrs.into_iter().filter(|m| m.header.index == index) {
        let addr = m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            AddressAttribute::Address(ip) if ip.is_ipv6() => Some(*ip),
            _ => None,
        });
        let Some(addr) = addr else { continue };
        if addr == vtep && m.header.prefix_len == host_len {
            present = true;
        } else if !is_link_local(addr) {
            report.wrote(format!(
                "ip addr del {addr}/{} dev {VXLAN_DEV}",
                m.header.prefix_len
            ));
            if let Err(e) = handle.address().del(m.clone()).execute().await {
                report
                    .problems
                    .push(format!("ip addr del {addr} dev {VXLAN_DEV}: {e}"));
            }
        }
    }
    if !present {
        report.wrote(format!("ip addr add {vtep}/{host_len} dev {VXLAN_DEV}"));
        if let Err(e) = handle.address().add(index, vtep, host_len).execute().await {
            report.problems.push(format!(
                "ip addr add {vtep}/{host_len} dev {VXLAN_DEV}: {e}"
            ));
        }
    }
    Ok(())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Dumps our permanent neighbour and FDB entries on the device.
async fn dump_peers(
    handle: &Handle,
    index: u32,
) -> Result<(Vec<ArpEntry>, Vec<FdbEntry>), VxlanError> {
    let mut arp = Vec::new();
    let mut fdb = Vec::new();
    for family in [
        AddressFamily::Inet,
        AddressFamily::Inet6,
        AddressFamily::Bridge,
    ] {
        let msgs: Vec<NeighbourMessage> = handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await
            .map_err(|source| VxlanError::Dump {
                what: "neighbours",
                source,
            })?;
        for m in msgs {
            // NUD_PERMANENT may come with other bits (`bridge fdb add ...
            // permanent` reads back as PERMANENT|NOARP).
            let permanent = u16::from(m.header.state) & NUD_PERMANENT != 0;
            if m.header.ifindex != index || !permanent {
                continue;
            }
            let (ip, mac) = neigh_parts(&m);
            let (Some(ip), Some(mac)) = (ip, mac) else {
                continue;
            };
            if family == AddressFamily::Bridge {
                if m.header.flags.contains(NeighbourFlags::Own) {
                    fdb.push(FdbEntry { mac, dst: ip });
                }
            } else {
                arp.push(ArpEntry { ip, mac });
            }
        }
    }
    Ok((arp, fdb))
}

fn neigh_parts(m: &NeighbourMessage) -> (Option<IpAddr>, Option<Mac>) {
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => ip = Some((*v4).into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => ip = Some((*v6).into()),
            // AF_BRIDGE (FDB) messages: netlink-packet-route leaves NDA_DST
            // as raw bytes, 4 or 16 of them.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                ip = <[u8; 4]>::try_from(b.as_slice())
                    .map(IpAddr::from)
                    .or_else(|_| <[u8; 16]>::try_from(b.as_slice()).map(IpAddr::from))
                    .ok()
            }
            NeighbourAttribute::LinkLayerAddress(l) => {
                mac = <[u8; 6]>::try_from(l.as_slice()).ok().map(Mac)
            }
            _ => {}
        }
    }
    (ip, mac)
}

/// Sends the plan's writes; failures go to the report, the rest goes on.
async fn apply_peers(handle: &Handle, index: u32, plan: &PeerPlan, report: &mut VxlanReport) {
    let n = handle.neighbours();
    for e in &plan.del_fdb {
        report.wrote(format!(
            "bridge fdb del {} dev {VXLAN_DEV} dst {} self",
            e.mac, e.dst
        ));
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = index;
        m.header.flags = NeighbourFlags::Own;
        m.header.state = NeighbourState::Permanent;
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(e.mac.0.to_vec()));
        m.attributes
            .push(NeighbourAttribute::Destination(addr(e.dst)));
        if let Err(err) = n.del(m).execute().await {
            report.problems.push(format!(
                "bridge fdb del {} dev {VXLAN_DEV} dst {}: {err}",
                e.mac, e.dst
            ));
        }
    }
    for e in &plan.del_arp {
        report.wrote(format!("ip neigh del {} dev {VXLAN_DEV}", e.ip));
        let mut m = NeighbourMessage::default();
        m.header.family = family(e.ip);
        m.header.ifindex = index;
        m.attributes
            .push(NeighbourAttribute::Destination(addr(e.ip)));
        if let Err(err) = n.del(m).execute().await {
            report
                .problems
                .push(format!("ip neigh del {} dev {VXLAN_DEV}: {err}", e.ip));
        }
    }
    for e in &plan.set_fdb {
        report.wrote(format!(
            "bridge fdb replace {} dev {VXLAN_DEV} dst {} self permanent",
            e.mac, e.dst
        ));
        let r = n
            .add_bridge(index, &e.mac.0)
            .destination(e.dst)
            .flags(NeighbourFlags::Own)
            .replace()
            .execute()
            .await;
        if let Err(err) = r {
            report.problems.push(format!(
                "bridge fdb replace {} dev {VXLAN_DEV} dst {} self permanent: {err}",
                e.mac, e.dst
            ));
        }
    }
    for e in &plan.set_arp {
        report.wrote(format!(
            "ip neigh replace {} lladdr {} dev {VXLAN_DEV} nud permanent",
            e.ip, e.mac
        ));
        let r = n
            .add(index, e.ip)
            .link_layer_address(&e.mac.0)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await;
        if let Err(err) = r {
            report.problems.push(format!(
                "ip neigh replace {} lladdr {} dev {VXLAN_DEV} nud permanent: {err}",
                e.ip, e.mac
            ));
        }
    }
}

fn addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

#[cfg(test)]
#[path = "vxlan_tests.rs"]
mod tests;
