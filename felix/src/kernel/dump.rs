//! Dumps: our routes (IPv4 and IPv6, table main, our protocol only) and the
//! interface table.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{KernelError, Links, MAIN_TABLE, TORTIE_RT_PROTO};
use crate::route::{InstalledRoute, KernelRoute, RouteKind};

/// Dumps every route of our protocol in table main, IPv4 then IPv6.
///
/// `ip -4 route show table main proto 116 type all; ip -6 route show table
/// main proto 116 type all` (strict dump: the kernel filters by table,
/// protocol, and `kind` Unspec so blackholes are included; we filter
/// protocol and table again in case a kernel ignores the filter).
pub async fn routes(handle: &Handle, links: &Links) -> Result<Vec<InstalledRoute>, KernelError> {
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut filter = RouteMessageBuilder::<IpAddr>::new()
            .protocol(RouteProtocol::from(TORTIE_RT_PROTO))
            .kind(RouteType::Unspec)
            .scope(RouteScope::Universe)
            .build();
        filter.header.address_family = family;
        filter.header.table = MAIN_TABLE;
        let mut stream = handle.route().get(filter).execute();
        let what = || format!("{family:?} routes proto {TORTIE_RT_PROTO}");
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|source| KernelError::Dump {
                what: what(),
                source,
            })?
        {
            if let Some(route) = installed(&msg, links) {
                out.push(route);
            }
        }
    }
    Ok(out)
}

/// Dumps the interface table. `ip -o link show`.
pub async fn links(handle: &Handle) -> Result<Links, KernelError> {
    let mut stream = handle.link().get().execute();
    let mut pairs = Vec::new();
    let mut down = Vec::new();
    while let Some(msg) = stream
        .try_next()
        .await
        .map_err(|source| KernelError::Dump {
            what: "links".into(),
            source,
        })?
    {
        let name = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(name) = name {
            pairs.push((msg.header.index, name));
            if !msg.header.flags.contains(LinkFlags::Up) {
                down.push(msg.header.index);
            }
        }
    }
    let mut links = Links::from_pairs(pairs);
    for index in down {
        links.set_down(index);
    }
    Ok(links)
}

/// Converts one route message to felix's vocabulary. `None` when the route
/// is not ours (other protocol or table): those are never looked at again.
pub fn installed(msg: &RouteMessage, links: &Links) -> Option<InstalledRoute> {
    if msg.header.protocol != RouteProtocol::from(TORTIE_RT_PROTO)
        || table(msg) != MAIN_TABLE as u32
    {
        return None;
    }
    let dst = destination(msg)?;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = None;
    let mut multipath = false;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Gateway(a) => gateway = ip(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::MultiPath(_) => multipath = true,
            _ => {}
        }
    }
    let dev = oif.map(|i| links.name(i).map(str::to_owned).ok_or(i));
    let unsupported = |what: String| RouteKind::Unsupported { what };
    let kind = match (msg.header.kind, gateway, dev) {
        _ if multipath => unsupported("multipath".into()),
        (RouteType::BlackHole, _, _) => RouteKind::Blackhole,
        (RouteType::Unicast, _, Some(Err(index))) => {
            unsupported(format!("ifindex {index} without a name"))
        }
        (RouteType::Unicast, Some(gateway), Some(Ok(dev))) => RouteKind::Via {
            gateway,
            dev,
            onlink: msg.header.flags.contains(RouteFlags::Onlink),
        },
        (RouteType::Unicast, None, Some(Ok(dev)))
            if dst.addr().is_ipv6() || msg.header.scope == RouteScope::Link =>
        {
            RouteKind::Link { dev }
        }
        (kind, gw, _) => unsupported(format!(
            "type {kind:?} scope {:?} gateway {gw:?}",
            msg.header.scope
        )),
    };
    Some(InstalledRoute {
        route: KernelRoute { dst, kind },
        metric,
    })
}

// ===== helpers =====

fn table(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(msg.header.table as u32)
}

fn destination(msg: &RouteMessage) -> Option<IpNet> {
    let len = msg.header.destination_prefix_length;
    let addr = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(d) => ip(d),
            _ => None,
        })
        .or(match msg.header.address_family {
            AddressFamily::Inet => Some(IpAddr::from([0u8; 4])),
            AddressFamily::Inet6 => Some(IpAddr::from([0u8; 16])),
            _ => None,
        })?;
    IpNet::new(addr, len).ok().map(|n| n.trunc())
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}
