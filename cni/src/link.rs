//! The kernel side of a pod: the veth pair, the pod's address and default
//! route, the host side's settings and the pod's /32 (/128) route.
//!
//! ```text
//!  pod netns                          host
//!  eth0 10.244.0.5/32                 tortXXXXXXXXXXX  (ee:ee:ee:ee:ee:ee,
//!  default via 169.254.1.1 onlink  <-->   proxy_arp=1, proxy_delay=0,
//!  169.254.1.1 lladdr ee:..:ee            forwarding=1, accept_ra=0)
//!                                     10.244.0.5/32 dev tortXXX scope link proto 116
//! ```
//!
//! The pair is made in one request with the peer created directly inside
//! the pod's namespace under its final name (`IFLA_NET_NS_FD` in the peer
//! info), so there is never a half-made pair with a temporary name: either
//! both ends exist, or neither does. Deleting the host end deletes both,
//! which is also how DEL cleans up when the pod's namespace is gone.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::{code, CniError};

/// The pod's IPv4 gateway: nobody has it; the host end answers ARP for it.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pod's IPv6 gateway: the host end's link-local address (EUI-64 of
/// `ee:ee:ee:ee:ee:ee`).
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

// ===== functions =====

/// A netlink connection in our (the host's) namespace.
pub fn host_handle() -> Result<Handle, CniError> {
    let (conn, handle, _) = rtnetlink::new_connection()
        .map_err(|e| CniError::kernel("cannot open a netlink socket", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A netlink connection inside the namespace at `netns`.
pub fn netns_handle(netns: &Path) -> Result<Handle, CniError> {
    felix::kernel::open(Some(netns))
        .map(|k| k.handle)
        .map_err(|e| CniError::new(code::IO, format!("CNI_NETNS={}: {e}", netns.display())))
}

/// Opens the namespace file, checking that it is one.
pub fn open_netns(netns: &Path) -> Result<File, CniError> {
    File::open(netns).map_err(|e| {
        CniError::new(
            code::INVALID_ENV,
            format!(
                "CNI_NETNS={}: cannot open the network namespace: {e}; pass the path of the container's netns",
                netns.display()
            ),
        )
    })
}

/// `ip link add HOST mtu M type veth peer name IFNAME mtu M netns NS`.
pub async fn create_veth(
    host: &Handle,
    host_if: &str,
    ifname: &str,
    netns: &File,
    mtu: u32,
) -> Result<(), CniError> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(ifname.to_owned())
        .mtu(mtu)
        .setns_by_fd(netns.as_raw_fd())
        .build();
    let msg = LinkVeth::new(host_if, ifname)
        .mtu(mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    host.link().add(msg).execute().await.map_err(|e| {
        CniError::kernel(
            format!("creating veth {host_if} <-> {ifname} (in the pod's netns) failed; does {ifname} already exist in the pod?"),
            e,
        )
    })
}

/// Index and MAC of the link `name`, or `None`.
pub async fn link(handle: &Handle, name: &str) -> Result<Option<(u32, String)>, CniError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(l)) => {
            let mac = l
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::Address(m) => Some(format_mac(m)),
                    _ => None,
                })
                .unwrap_or_default();
            Ok(Some((l.header.index, mac)))
        }
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == Errno::ENODEV as i32 => {
            Ok(None)
        }
        Err(e) => Err(CniError::kernel(
            format!("looking up link {name} failed"),
            e,
        )),
    }
}

/// `ip link del NAME`; `false` if it did not exist.
pub async fn delete_link(handle: &Handle, name: &str) -> Result<bool, CniError> {
    let Some((index, _)) = link(handle, name).await? else {
        return Ok(false);
    };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == Errno::ENODEV as i32 => {
            Ok(false)
        }
        Err(e) => Err(CniError::kernel(format!("deleting link {name} failed"), e)),
    }
}

/// Inside the pod: `ip link set IF up; ip addr add A/32 dev IF;
/// ip neigh replace 169.254.1.1 lladdr ee:.. dev IF nud permanent;
/// ip route add default via 169.254.1.1 dev IF onlink` (and the IPv6
/// equivalents). Returns the pod side's MAC.
pub async fn setup_pod(pod: &Handle, ifname: &str, addrs: &[IpAddr]) -> Result<String, CniError> {
    let (index, mac) = link(pod, ifname)
        .await?
        .ok_or_else(|| CniError::kernel(format!("{ifname} vanished from the pod"), "ENODEV"))?;
    let fail = |what: &str| format!("pod {ifname}: {what} failed");
    pod.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| CniError::kernel(fail("set up"), e))?;
    for addr in addrs {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        let mut req = pod.address().add(index, *addr, len).replace();
        if addr.is_ipv6() {
            // No duplicate address detection: the address is ours (IPAM),
            // and DAD would leave it "tentative", unusable, for ~1 s.
            let msg = req.message_mut();
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        req.execute()
            .await
            .map_err(|e| CniError::kernel(fail(&format!("add address {addr}/{len}")), e))?;
        match addr {
            IpAddr::V4(_) => {
                pod.neighbours()
                    .add(index, IpAddr::V4(GATEWAY_V4))
                    .link_layer_address(&felix::endpoint::HOST_MAC)
                    .state(NeighbourState::Permanent)
                    .replace()
                    .execute()
                    .await
                    .map_err(|e| CniError::kernel(fail("add gateway neighbour"), e))?;
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(GATEWAY_V4)
                    .output_interface(index)
                    .onlink()
                    .build();
                pod.route()
                    .add(route)
                    .replace()
                    .execute()
                    .await
                    .map_err(|e| CniError::kernel(fail("add default route"), e))?;
            }
            IpAddr::V6(_) => {
                let route = RouteMessageBuilder::<Ipv6Addr>::new()
                    .gateway(GATEWAY_V6)
                    .output_interface(index)
                    .build();
                pod.route()
                    .add(route)
                    .replace()
                    .execute()
                    .await
                    .map_err(|e| CniError::kernel(fail("add IPv6 default route"), e))?;
            }
        }
    }
    Ok(mac)
}

/// The host end: felix's settings (sysctls, MAC, up), then
/// `ip route replace A/32 dev HOST scope link proto 116` per address, so
/// the pod is reachable before the agent has seen it (the agent owns the
/// route from then on: same protocol, same route). Returns its MAC.
pub async fn setup_host(
    host: &Handle,
    host_if: &str,
    addrs: &[IpAddr],
) -> Result<String, CniError> {
    felix::endpoint::configure_host_side(host, None, host_if)
        .await
        .map_err(|e| CniError::kernel(format!("host side {host_if}: setup failed"), e))?;
    let (index, mac) = link(host, host_if)
        .await?
        .ok_or_else(|| CniError::kernel(format!("{host_if} vanished"), "ENODEV"))?;
    let proto = RouteProtocol::from(felix::kernel::TORTIE_RT_PROTO);
    for addr in addrs {
        let route = match addr {
            IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(*a, 32)
                .output_interface(index)
                .scope(RouteScope::Link)
                .protocol(proto)
                .build(),
            IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(*a, 128)
                .output_interface(index)
                .protocol(proto)
                .build(),
        };
        host.route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(|e| CniError::kernel(format!("host route {addr} dev {host_if} failed"), e))?;
    }
    Ok(mac)
}

/// The addresses on `ifname` inside the pod (for CHECK).
pub async fn pod_addresses(pod: &Handle, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
    let (index, _) = link(pod, ifname).await?.ok_or_else(|| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("{ifname} does not exist in the pod's netns"),
        )
    })?;
    let mut out = Vec::new();
    let mut msgs = pod.address().get().set_link_index_filter(index).execute();
    while let Some(m) = msgs
        .try_next()
        .await
        .map_err(|e| CniError::kernel(format!("listing addresses of {ifname} failed"), e))?
    {
        out.extend(m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        }));
    }
    Ok(out)
}

// ===== helpers =====

fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_v6_is_eui64_of_host_mac() {
        assert_eq!(GATEWAY_V6.to_string(), "fe80::ecee:eeff:feee:eeee");
        assert_eq!(format_mac(&felix::endpoint::HOST_MAC), "ee:ee:ee:ee:ee:ee");
    }
}
