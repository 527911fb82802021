//! The netlink side of [`super`]: dumps, the device, its address, and the
//! neighbour and FDB writes. Each write names its `ip`/`bridge` equivalent
//! in [`VxlanReport::changes`].

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

use super::{
    device_action, plan_peers, ArpEntry, DeviceAction, DeviceInfo, FdbEntry, LocalVtep, Mac,
    PeerPlan, RemoteVtep, VxlanError, VxlanReport, NUD_PERMANENT, VXLAN_OVERHEAD_V4,
    VXLAN_OVERHEAD_V6, VXLAN_PORT,
};

/// Reconciles the VXLAN device of `local`'s family (`vxlan.tortie` or
/// `vxlan-v6.tortie`), its address, and the neighbour and FDB entries
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
    let dev = super::device_name(local.local.is_ipv4());
    let current = links
        .iter()
        .find(|m| link_name(m) == Some(dev))
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
    ensure_address(handle, dev, index, local.vtep, &mut report).await?;
    let (arp, fdb) = dump_peers(handle, index).await?;
    let plan = plan_peers(local.local, peers, &arp, &fdb);
    report.problems.extend(plan.skipped.iter().cloned());
    apply_peers(handle, dev, index, &plan, &mut report).await;
    Ok(report)
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
async fn ensure_device(
    handle: &Handle,
    local: &LocalVtep,
    current: Option<DeviceInfo>,
    underlay: u32,
    mtu: u32,
    mac: Mac,
    report: &mut VxlanReport,
) -> Result<u32, VxlanError> {
    let v4 = local.local.is_ipv4();
    let (dev, vni) = (super::device_name(v4), super::vni(v4));
    let fail = |what: &str| {
        let what = format!("{what} {dev}");
        move |source| VxlanError::Device { what, source }
    };
    let action = current
        .as_ref()
        .map(|d| device_action(d, local.local, underlay, mtu, mac));
    match (&current, action) {
        (Some(d), Some(DeviceAction::Ok)) => return Ok(d.index),
        (Some(d), Some(DeviceAction::Fix)) => {
            report.wrote(format!(
                "ip link set {dev} mtu {mtu} address {mac} up (was mtu {:?} up {})",
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
            tracing::warn!(
                ?d,
                dev,
                "the VXLAN device has the wrong settings: recreating it"
            );
            report.wrote(format!("ip link del {dev} (wrong settings)"));
            handle
                .link()
                .del(d.index)
                .execute()
                .await
                .map_err(fail("delete the misconfigured"))?;
        }
        (None, _) => {}
    }
    let b = LinkVxlan::new(dev, vni)
        .port(VXLAN_PORT)
        .dev(underlay)
        .learning(false);
    let b = match local.local {
        IpAddr::V4(v4) => b.local(v4),
        IpAddr::V6(v6) => b.local6(v6),
    };
    let msg = b.mtu(mtu).address(mac.0.to_vec()).up().build();
    report.wrote(format!(
        "ip link add {dev} type vxlan id {vni} dstport {VXLAN_PORT} local {} nolearning",
        local.local
    ));
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(fail("create"))?;
    let made: Vec<LinkMessage> = handle
        .link()
        .get()
        .match_name(dev.to_owned())
        .execute()
        .try_collect()
        .await
        .map_err(|source| VxlanError::Dump {
            what: "the new VXLAN device",
            source,
        })?;
    Ok(made.first().map_or(0, |m| m.header.index))
}

/// Keeps exactly `vtep` (host prefix) as the global address of the device.
async fn ensure_address(
    handle: &Handle,
    dev: &str,
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
            what: "addresses of the VXLAN device",
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
                "ip addr del {addr}/{} dev {dev}",
                m.header.prefix_len
            ));
            if let Err(e) = handle.address().del(m.clone()).execute().await {
                report
                    .problems
                    .push(format!("ip addr del {addr} dev {dev}: {e}"));
            }
        }
    }
    if !present {
        report.wrote(format!("ip addr add {vtep}/{host_len} dev {dev}"));
        if let Err(e) = handle.address().add(index, vtep, host_len).execute().await {
            report
                .problems
                .push(format!("ip addr add {vtep}/{host_len} dev {dev}: {e}"));
        }
    }
    Ok(())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
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
async fn apply_peers(
    handle: &Handle,
    dev: &str,
    index: u32,
    plan: &PeerPlan,
    report: &mut VxlanReport,
) {
    let n = handle.neighbours();
    for e in &plan.del_fdb {
        report.wrote(format!(
            "bridge fdb del {} dev {dev} dst {} self",
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
                "bridge fdb del {} dev {dev} dst {}: {err}",
                e.mac, e.dst
            ));
        }
    }
    for e in &plan.del_arp {
        report.wrote(format!("ip neigh del {} dev {dev}", e.ip));
        let mut m = NeighbourMessage::default();
        m.header.family = family(e.ip);
        m.header.ifindex = index;
        m.attributes
            .push(NeighbourAttribute::Destination(addr(e.ip)));
        if let Err(err) = n.del(m).execute().await {
            report
                .problems
                .push(format!("ip neigh del {} dev {dev}: {err}", e.ip));
        }
    }
    for e in &plan.set_fdb {
        report.wrote(format!(
            "bridge fdb replace {} dev {dev} dst {} self permanent",
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
                "bridge fdb replace {} dev {dev} dst {} self permanent: {err}",
                e.mac, e.dst
            ));
        }
    }
    for e in &plan.set_arp {
        report.wrote(format!(
            "ip neigh replace {} lladdr {} dev {dev} nud permanent",
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
                "ip neigh replace {} lladdr {} dev {dev} nud permanent: {err}",
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
