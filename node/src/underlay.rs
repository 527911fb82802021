//! The node's underlay address: given (`--ip ADDR/PREFIX`) or found on its
//! interfaces the ways Calico users know (`first-found`,
//! `interface=REGEX`, `skip-interface=REGEX`, `cidr=CIDR`,
//! `can-reach=DEST`). The prefix length matters: it decides which nodes
//! share our subnet (CrossSubnet encapsulation).
//!
//! The same methods find IPv6 addresses (`ip6AutodetectionMethod`, global
//! ones only: not link-local, tentative or deprecated): a dual-stack
//! node's on the IPv4 address's interface ([`autodetect_v6`]), an
//! IPv6-only node's (`ip: none`) on any ([`choose`]). One function,
//! `find`, serves both families.
//!
//! [`choose`] and [`autodetect_v6`] are pure (interfaces in, choice out);
//! [`detect`] lists the interfaces over netlink (`ip -o addr`) and calls
//! them.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use futures::TryStreamExt;
use ipnet::IpNet;
use regex::Regex;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::Handle;
use tortie_config::node::{Address6Setting, AddressSetting, Autodetect, IpFamily};

use crate::routes::Underlay;

/// Interfaces `first-found` and `skip-interface` never pick: loopback,
/// container and VM bridges, veths, other CNIs' and our own devices (the
/// list Calico uses, plus Tortie's names).
const EXCLUDED: &str =
    "^(lo|docker.*|cbr.*|dummy.*|virbr.*|lxcbr.*|veth.*|cali.*|tunl.*|flannel.*|\
                        kube-ipvs.*|cni.*|vxlan\\.calico|vxlan-v6\\.calico|vxlan\\.tortie|vxlan-v6\\.tortie|tort.*|\
                        nodelocaldns.*|wireguard\\.cali|wg-v6\\.cali)$";

/// One interface and its addresses, in the kernel's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub addrs: Vec<IpNet>,
    /// IPv6 addresses autodetection passes over: tentative (duplicate
    /// address detection not done, or failed) or deprecated (preferred
    /// lifetime over). A given address may still be one.
    pub unpreferred: Vec<IpAddr>,
}

// ===== detect =====

/// The node's underlay address and interface, as `setting` asks, and its
/// IPv6 address `v6` (dual stack), which must be on the same interface.
pub async fn detect(
    handle: &Handle,
    setting: &AddressSetting,
    v6: Option<&Address6Setting>,
) -> Result<Underlay, String> {
    let ifaces = list(handle)
        .await
        .map_err(|e| format!("cannot list interfaces: {e}"))?;
    let reach = match setting {
        AddressSetting::Autodetect(m) | AddressSetting::Autodetect6(m) => reach_for(Some(m))?,
        AddressSetting::Explicit(_) => None,
    };
    let mut underlay = choose(setting, &ifaces, reach)?;
    match v6 {
        None => {}
        Some(Address6Setting::Explicit(v6)) => with_v6(&mut underlay, *v6, &ifaces)?,
        Some(Address6Setting::Autodetect(method)) => {
            let reach = reach_for(method.as_ref())?;
            let v6 = autodetect_v6(&underlay, method.as_ref(), &ifaces, reach)?;
            with_v6(&mut underlay, v6, &ifaces)?;
        }
    }
    Ok(underlay)
}

/// `ip6: autodetect` on a dual-stack node: the IPv6 address `method` finds
/// among the global ones of the underlay's interface (both addresses share
/// it), or (`None`) that interface's first. `reach` is the kernel's source
/// address towards the `can-reach` destination.
pub fn autodetect_v6(
    underlay: &Underlay,
    method: Option<&Autodetect>,
    ifaces: &[Iface],
    reach: Option<IpAddr>,
) -> Result<IpNet, String> {
    if underlay.address.addr().is_ipv6() {
        return Err(format!(
            "ip6 autodetect: ip {} is already IPv6 (an IPv6-only node); set ip6 none",
            underlay.address
        ));
    }
    let own: Vec<Iface> = ifaces
        .iter()
        .filter(|i| i.name == underlay.interface)
        .cloned()
        .collect();
    find(IpFamily::Ipv6, method, &own, reach)
        .map(|(_, a)| a)
        .ok_or_else(|| {
            format!(
                "ip6 autodetection ({}) found no global IPv6 address on {}, the interface of \
                 ip {} (a dual-stack node's addresses share one interface; link-local, \
                 tentative and deprecated ones do not count): {}; set --ip6 ADDR/PREFIX, \
                 another --ip6-autodetection-method, or --ip6 none for an IPv4-only node",
                method.map_or("default: the interface's first".into(), describe),
                underlay.interface,
                underlay.address,
                seen(&own, method, reach)
            )
        })
}

/// Adds the dual-stack IPv6 address `v6` to `underlay`: it must be on the
/// underlay's interface (the VXLAN devices of both families use that one).
pub fn with_v6(underlay: &mut Underlay, v6: IpNet, ifaces: &[Iface]) -> Result<(), String> {
    let holder = ifaces
        .iter()
        .find(|i| i.addrs.iter().any(|a| a.addr() == v6.addr()));
    match holder {
        Some(i) if i.name == underlay.interface => {
            underlay.address_v6 = Some(v6);
            Ok(())
        }
        Some(i) => Err(format!(
            "ip6 {v6} is on interface {}, the IPv4 address {} on {}: give both addresses \
             of one interface",
            i.name, underlay.address, underlay.interface
        )),
        None => Err(format!(
            "ip6 {v6}: no interface of this node has address {}; give one it has (see \
             `ip -o addr`)",
            v6.addr()
        )),
    }
}

/// Picks the underlay: given, an IPv4 address autodetected, or an IPv6-only
/// node's IPv6 address autodetected. `reach` is the kernel's source
/// address towards the `can-reach` destination.
pub fn choose(
    setting: &AddressSetting,
    ifaces: &[Iface],
    reach: Option<IpAddr>,
) -> Result<Underlay, String> {
    let (family, method) = match setting {
        AddressSetting::Explicit(net) => {
            return match holding(ifaces, net.addr()) {
                Some((interface, _)) => Ok(Underlay {
                    address: *net,
                    interface,
                    address_v6: None,
                }),
                None => Err(format!(
                    "ip {net}: no interface of this node has address {}; give one it has \
                     (see `ip -o addr`) or use autodetection",
                    net.addr()
                )),
            };
        }
        AddressSetting::Autodetect(m) => (IpFamily::Ipv4, m),
        AddressSetting::Autodetect6(m) => (IpFamily::Ipv6, m),
    };
    let (interface, address) = find(family, Some(method), ifaces, reach).ok_or_else(|| {
        let seen = seen(ifaces, Some(method), reach);
        match family {
            IpFamily::Ipv4 => {
                let none = !ifaces
                    .iter()
                    .any(|i| i.addrs.iter().any(|a| usable(IpFamily::Ipv4, i, a)));
                format!(
                    "ip autodetection ({}) found no IPv4 address; interfaces: {seen}; set \
                     --ip ADDR/PREFIX or another --ip-autodetection-method{}",
                    describe(method),
                    if none {
                        " (an IPv6-only node: --ip none with --ip6 autodetect or ADDR/PREFIX)"
                    } else {
                        ""
                    }
                )
            }
            IpFamily::Ipv6 => format!(
                "ip6 autodetection ({}) found no global IPv6 address (link-local, tentative \
                 and deprecated ones do not count); interfaces: {seen}; set --ip6 \
                 ADDR/PREFIX or another --ip6-autodetection-method (with --ip none)",
                describe(method)
            ),
        }
    })?;
    Ok(Underlay {
        address,
        interface,
        address_v6: None,
    })
}

/// The interface and address `method` picks among the usable addresses
/// of `family` (IPv4 and IPv6 alike); `None` is the first usable address
/// of any of `ifaces`.
fn find(
    family: IpFamily,
    method: Option<&Autodetect>,
    ifaces: &[Iface],
    reach: Option<IpAddr>,
) -> Option<(String, IpNet)> {
    let excluded = Regex::new(EXCLUDED).expect("a valid regex");
    let first = |pick: &dyn Fn(&Iface) -> bool, within: &dyn Fn(&IpNet) -> bool| {
        ifaces.iter().filter(|i| pick(i)).find_map(|i| {
            i.addrs
                .iter()
                .find(|a| usable(family, i, a) && within(a))
                .map(|a| (i.name.clone(), *a))
        })
    };
    let any = |_: &IpNet| true;
    match method {
        None => first(&|_| true, &any),
        Some(Autodetect::FirstFound) => first(&|i| !excluded.is_match(&i.name), &any),
        Some(Autodetect::Interface(res)) => {
            let res = anchored(res);
            first(&|i| res.iter().any(|r| r.is_match(&i.name)), &any)
        }
        Some(Autodetect::SkipInterface(res)) => {
            let res = anchored(res);
            first(
                &|i| !excluded.is_match(&i.name) && !res.iter().any(|r| r.is_match(&i.name)),
                &any,
            )
        }
        Some(Autodetect::Cidr(nets)) => {
            first(&|_| true, &|a| nets.iter().any(|n| n.contains(&a.addr())))
        }
        Some(Autodetect::CanReach(_)) => {
            let src = reach?;
            first(&|_| true, &|a| a.addr() == src)
        }
    }
}

/// Whether autodetection may pick `a` of `iface` for `family`: IPv4 not
/// loopback or link-local; IPv6 global (ULAs too), not link-local
/// (fe80::/10), tentative or deprecated.
fn usable(family: IpFamily, iface: &Iface, a: &IpNet) -> bool {
    match (family, a.addr()) {
        (IpFamily::Ipv4, IpAddr::V4(v4)) => {
            !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified())
        }
        (IpFamily::Ipv6, IpAddr::V6(v6)) => {
            !(v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || v6.is_unicast_link_local()
                || iface.unpreferred.contains(&a.addr()))
        }
        _ => false,
    }
}

/// The interface holding `addr`, and the address with its prefix length.
fn holding(ifaces: &[Iface], addr: IpAddr) -> Option<(String, IpNet)> {
    ifaces.iter().find_map(|i| {
        i.addrs
            .iter()
            .find(|a| a.addr() == addr)
            .map(|a| (i.name.clone(), *a))
    })
}

/// What a failed detection saw: each interface with its addresses (the
/// tentative or deprecated marked), and where `can-reach` led.
fn seen(ifaces: &[Iface], method: Option<&Autodetect>, reach: Option<IpAddr>) -> String {
    let list: Vec<String> = ifaces
        .iter()
        .map(|i| {
            let addrs: Vec<String> = i
                .addrs
                .iter()
                .map(|a| {
                    if i.unpreferred.contains(&a.addr()) {
                        format!("{a} (tentative or deprecated)")
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            format!("{} [{}]", i.name, addrs.join(" "))
        })
        .collect();
    let mut out = list.join(", ");
    if let (Some(Autodetect::CanReach(dest)), Some(src)) = (method, reach) {
        out.push_str(&format!(
            "; the kernel's source address towards {dest} is {src}"
        ));
    }
    out
}

/// The kernel's source address towards a `can-reach` destination.
fn reach_for(method: Option<&Autodetect>) -> Result<Option<IpAddr>, String> {
    match method {
        Some(Autodetect::CanReach(dest)) => source_towards(*dest).map(Some),
        _ => Ok(None),
    }
}

/// The regexes of `interface=` / `skip-interface=`, each matching the
/// whole name (the settings checked that they compile; one that does not
/// matches nothing).
fn anchored(res: &[String]) -> Vec<Regex> {
    res.iter()
        .filter_map(|r| Regex::new(&format!("^(?:{r})$")).ok())
        .collect()
}

fn describe(m: &Autodetect) -> String {
    match m {
        Autodetect::FirstFound => "first-found".into(),
        Autodetect::Interface(r) => format!("interface={}", r.join(",")),
        Autodetect::SkipInterface(r) => format!("skip-interface={}", r.join(",")),
        Autodetect::Cidr(n) => {
            let n: Vec<String> = n.iter().map(ToString::to_string).collect();
            format!("cidr={}", n.join(","))
        }
        Autodetect::CanReach(a) => format!("can-reach={a}"),
    }
}

/// The source address the kernel picks towards `dest`: a UDP socket
/// connected there (connect sends nothing).
fn source_towards(dest: IpAddr) -> Result<IpAddr, String> {
    let bind: SocketAddr = match dest {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("valid"),
        IpAddr::V6(_) => "[::]:0".parse().expect("valid"),
    };
    let socket = UdpSocket::bind(bind).map_err(|e| format!("can-reach={dest}: {e}"))?;
    socket
        .connect((dest, 9))
        .map_err(|e| format!("can-reach={dest}: no route from this node: {e}"))?;
    socket
        .local_addr()
        .map(|a| a.ip())
        .map_err(|e| format!("can-reach={dest}: {e}"))
}

/// Interfaces with their addresses (`ip -o addr`), in index order; the
/// IPv6 ones `tentative`, `dadfailed` or `deprecated` also in
/// `unpreferred`.
pub async fn list(handle: &Handle) -> Result<Vec<Iface>, rtnetlink::Error> {
    let mut ifaces: Vec<(u32, Iface)> = Vec::new();
    let mut links = handle.link().get().execute();
    while let Some(msg) = links.try_next().await? {
        let name = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(name) = name {
            ifaces.push((
                msg.header.index,
                Iface {
                    name,
                    ..Iface::default()
                },
            ));
        }
    }
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs.try_next().await? {
        let ip = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let ip = ip.or_else(|| {
            msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        });
        let Some(ip) = ip else { continue };
        let Ok(net) = IpNet::new(ip, msg.header.prefix_len) else {
            continue;
        };
        // IFA_FLAGS (32 bits) when the kernel sends it, else the header's.
        let flags = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                AddressAttribute::Flags(f) => Some(*f),
                _ => None,
            })
            .unwrap_or_else(|| AddressFlags::from_bits_retain(msg.header.flags.bits().into()));
        let unpreferred = ip.is_ipv6()
            && flags.intersects(
                AddressFlags::Tentative | AddressFlags::Deprecated | AddressFlags::Dadfailed,
            );
        if let Some((_, i)) = ifaces.iter_mut().find(|(idx, _)| *idx == msg.header.index) {
            i.addrs.push(net);
            if unpreferred {
                i.unpreferred.push(ip);
            }
        }
    }
    ifaces.sort_by_key(|(idx, _)| *idx);
    Ok(ifaces.into_iter().map(|(_, i)| i).collect())
}

#[cfg(test)]
#[path = "underlay_tests.rs"]
mod tests;
