//! The node's underlay address: given (`--ip ADDR/PREFIX`) or found on its
//! interfaces the ways Calico users know (`first-found`,
//! `interface=REGEX`, `skip-interface=REGEX`, `cidr=CIDR`,
//! `can-reach=DEST`). The prefix length matters: it decides which nodes
//! share our subnet (CrossSubnet encapsulation).
//!
//! [`choose`] is pure (interfaces in, choice out); [`detect`] lists the
//! interfaces over netlink (`ip -o addr`) and calls it.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use futures::TryStreamExt;
use ipnet::IpNet;
use regex::Regex;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::Handle;
use tortie_config::node::{Address6Setting, AddressSetting, Autodetect};

use crate::routes::Underlay;

/// Interfaces `first-found` and `skip-interface` never pick: loopback,
/// container and VM bridges, veths, other CNIs' and our own devices (the
/// list Calico uses, plus Tortie's names).
const EXCLUDED: &str =
    "^(lo|docker.*|cbr.*|dummy.*|virbr.*|lxcbr.*|veth.*|cali.*|tunl.*|flannel.*|\
                        kube-ipvs.*|cni.*|vxlan\\.calico|vxlan-v6\\.calico|vxlan\\.tortie|vxlan-v6\\.tortie|tort.*|\
                        nodelocaldns.*|wireguard\\.cali|wg-v6\\.cali)$";

/// One interface and its addresses, in the kernel's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub addrs: Vec<IpNet>,
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
        AddressSetting::Autodetect(Autodetect::CanReach(dest)) => Some(source_towards(*dest)?),
        _ => None,
    };
    let mut underlay = choose(setting, &ifaces, reach)?;
    match v6 {
        None => {}
        Some(Address6Setting::Explicit(v6)) => with_v6(&mut underlay, *v6, &ifaces)?,
        Some(Address6Setting::Autodetect) => {
            let v6 = autodetect_v6(&underlay, &ifaces)?;
            with_v6(&mut underlay, v6, &ifaces)?;
        }
    }
    Ok(underlay)
}

/// `ip6: autodetect`: the first global IPv6 address of the underlay's
/// interface (not link-local, loopback, multicast or unspecified).
pub fn autodetect_v6(underlay: &Underlay, ifaces: &[Iface]) -> Result<IpNet, String> {
    if underlay.address.addr().is_ipv6() {
        return Err(format!(
            "ip6 autodetect: ip {} is already IPv6 (an IPv6-only node); set ip6 none",
            underlay.address
        ));
    }
    let iface = ifaces.iter().find(|i| i.name == underlay.interface);
    iface
        .and_then(|i| {
            i.addrs.iter().copied().find(|a| match a.addr() {
                IpAddr::V6(v6) => {
                    !(v6.is_loopback()
                        || v6.is_multicast()
                        || v6.is_unspecified()
                        || (v6.segments()[0] & 0xffc0) == 0xfe80)
                }
                IpAddr::V4(_) => false,
            })
        })
        .ok_or_else(|| {
            format!(
                "ip6 autodetect: interface {} (of ip {}) has no global IPv6 address; give \
                 ip6 ADDR/PREFIX, or none for an IPv4-only node",
                underlay.interface, underlay.address
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

/// Picks the underlay. `reach` is the kernel's source address towards the
/// `can-reach` destination.
pub fn choose(
    setting: &AddressSetting,
    ifaces: &[Iface],
    reach: Option<IpAddr>,
) -> Result<Underlay, String> {
    let usable = |a: &IpNet| match a.addr() {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()),
        IpAddr::V6(_) => false,
    };
    let holding = |addr: IpAddr| {
        ifaces.iter().find_map(|i| {
            i.addrs
                .iter()
                .find(|a| a.addr() == addr)
                .map(|a| (i.name.clone(), *a))
        })
    };
    let excluded = Regex::new(EXCLUDED).expect("a valid regex");
    let first = |pick: &dyn Fn(&Iface) -> bool| {
        ifaces.iter().filter(|i| pick(i)).find_map(|i| {
            i.addrs
                .iter()
                .find(|a| usable(a))
                .map(|a| (i.name.clone(), *a))
        })
    };
    let method = match setting {
        AddressSetting::Explicit(net) => {
            return match holding(net.addr()) {
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
        AddressSetting::Autodetect(m) => m,
    };
    let found = match method {
        Autodetect::FirstFound => first(&|i| !excluded.is_match(&i.name)),
        Autodetect::Interface(res) => {
            let res = anchored(res)?;
            first(&|i| res.iter().any(|r| r.is_match(&i.name)))
        }
        Autodetect::SkipInterface(res) => {
            let res = anchored(res)?;
            first(&|i| !excluded.is_match(&i.name) && !res.iter().any(|r| r.is_match(&i.name)))
        }
        Autodetect::Cidr(nets) => ifaces.iter().find_map(|i| {
            i.addrs
                .iter()
                .find(|a| usable(a) && nets.iter().any(|n| n.contains(&a.addr())))
                .map(|a| (i.name.clone(), *a))
        }),
        Autodetect::CanReach(_) => reach.and_then(holding),
    };
    let (interface, address) = found.ok_or_else(|| {
        let seen: Vec<String> = ifaces
            .iter()
            .map(|i| {
                let addrs: Vec<String> = i.addrs.iter().map(ToString::to_string).collect();
                format!("{} [{}]", i.name, addrs.join(" "))
            })
            .collect();
        format!(
            "ip autodetection ({}) found no IPv4 address; interfaces: {}; set --ip ADDR/PREFIX \
             or another --ip-autodetection-method",
            describe(method),
            seen.join(", ")
        )
    })?;
    Ok(Underlay {
        address,
        interface,
        address_v6: None,
    })
}

/// The regexes of `interface=` / `skip-interface=`, each matching the
/// whole name.
fn anchored(res: &[String]) -> Result<Vec<Regex>, String> {
    res.iter()
        .map(|r| Regex::new(&format!("^(?:{r})$")).map_err(|e| format!("{r:?}: {e}")))
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

/// Interfaces with their addresses (`ip -o addr`), in index order.
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
                    addrs: Vec::new(),
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
        if let Some((_, i)) = ifaces.iter_mut().find(|(idx, _)| *idx == msg.header.index) {
            i.addrs.push(net);
        }
    }
    ifaces.sort_by_key(|(idx, _)| *idx);
    Ok(ifaces.into_iter().map(|(_, i)| i).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifaces() -> Vec<Iface> {
        let i = |name: &str, addrs: &[&str]| Iface {
            name: name.into(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        };
        vec![
            i("lo", &["127.0.0.1/8"]),
            i("docker0", &["172.17.0.1/16"]),
            i("eth0", &["169.254.3.3/16", "192.168.1.11/24"]),
            i("eth1", &["10.0.0.11/8"]),
            i("veth0", &["10.1.0.1/24"]),
            i("tort0123456789a", &[]),
        ]
    }

    fn pick(setting: AddressSetting, reach: Option<&str>) -> Result<String, String> {
        choose(&setting, &ifaces(), reach.map(|r| r.parse().unwrap()))
            .map(|u| format!("{} {}", u.interface, u.address))
    }

    fn auto(m: Autodetect) -> AddressSetting {
        AddressSetting::Autodetect(m)
    }

    #[test]
    fn dual_stack_address_must_be_on_the_underlay_interface() {
        let mut list = ifaces();
        list[2].addrs.push("fd30:1::11/64".parse().unwrap());
        list[3].addrs.push("fd30:9::11/64".parse().unwrap());
        let base = choose(&auto(Autodetect::FirstFound), &list, None).unwrap();
        // autodetect: eth0's global IPv6 address, not a link-local one.
        list[2].addrs.insert(0, "fe80::1/64".parse().unwrap());
        assert_eq!(
            autodetect_v6(&base, &list).unwrap(),
            "fd30:1::11/64".parse::<IpNet>().unwrap()
        );
        let e = autodetect_v6(&base, &ifaces()).unwrap_err();
        assert!(
            e.starts_with(
                "ip6 autodetect: interface eth0 (of ip 192.168.1.11/24) has no global IPv6 address"
            ),
            "{e}"
        );
        let mut u = base.clone();
        with_v6(&mut u, "fd30:1::11/64".parse().unwrap(), &list).unwrap();
        assert_eq!(u.address_v6, Some("fd30:1::11/64".parse().unwrap()));
        let mut u = base.clone();
        let e = with_v6(&mut u, "fd30:9::11/64".parse().unwrap(), &list).unwrap_err();
        assert!(
            e.starts_with(
                "ip6 fd30:9::11/64 is on interface eth1, the IPv4 address 192.168.1.11/24 on eth0"
            ),
            "{e}"
        );
        let e = with_v6(&mut u, "fd30:7::1/64".parse().unwrap(), &list).unwrap_err();
        assert!(e.starts_with("ip6 fd30:7::1/64: no interface"), "{e}");
        // An IPv6-only node: its address given in ip.
        let u = choose(
            &AddressSetting::Explicit("fd30:1::11/64".parse().unwrap()),
            &list,
            None,
        )
        .unwrap();
        assert_eq!((u.interface.as_str(), u.address_v6), ("eth0", None));
    }

    #[test]
    fn methods() {
        assert_eq!(
            pick(auto(Autodetect::FirstFound), None).unwrap(),
            "eth0 192.168.1.11/24"
        );
        assert_eq!(
            pick(auto(Autodetect::Interface(vec!["eth1".into()])), None).unwrap(),
            "eth1 10.0.0.11/8"
        );
        // The whole name must match: "eth" alone matches no interface.
        assert!(pick(auto(Autodetect::Interface(vec!["eth".into()])), None).is_err());
        assert_eq!(
            pick(auto(Autodetect::SkipInterface(vec!["eth0".into()])), None).unwrap(),
            "eth1 10.0.0.11/8"
        );
        assert_eq!(
            pick(
                auto(Autodetect::Cidr(vec!["10.0.0.0/8".parse().unwrap()])),
                None
            )
            .unwrap(),
            "eth1 10.0.0.11/8"
        );
        assert_eq!(
            pick(
                auto(Autodetect::CanReach("10.9.9.9".parse().unwrap())),
                Some("10.0.0.11")
            )
            .unwrap(),
            "eth1 10.0.0.11/8"
        );
        assert_eq!(
            pick(
                AddressSetting::Explicit("10.0.0.11/16".parse().unwrap()),
                None
            )
            .unwrap(),
            "eth1 10.0.0.11/16",
            "an explicit prefix length wins over the interface's"
        );
    }

    #[test]
    fn failures_say_what_was_seen() {
        let e = pick(
            auto(Autodetect::Cidr(vec!["203.0.113.0/24".parse().unwrap()])),
            None,
        )
        .unwrap_err();
        assert!(
            e.starts_with("ip autodetection (cidr=203.0.113.0/24) found no IPv4 address"),
            "{e}"
        );
        assert!(e.contains("eth0 [169.254.3.3/16 192.168.1.11/24]"), "{e}");
        let e = pick(
            AddressSetting::Explicit("192.168.9.9/24".parse().unwrap()),
            None,
        )
        .unwrap_err();
        assert!(
            e.contains("no interface of this node has address 192.168.9.9"),
            "{e}"
        );
    }
}
