//! Our link-local address toward a directly connected IPv6 peer, for the
//! second next hop of RFC 2545 §3: an UPDATE carries the link-local
//! address beside the global one when the speaker shares a subnet with
//! the peer (and with the global next hop, which is then our own
//! session address).
//!
//! "Shares a subnet": the peer's address is in the prefix of the
//! interface address the session runs from (`ip -6 addr`: `fd30:1::11/64`
//! on `eth0` with the peer `fd30:1::2`). The link-local address is then
//! that interface's (`fe80::.../64` on `eth0`). A peer reached through a
//! router, a session over IPv4, or one whose local address is not a
//! global one on some interface, gets none.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::Ipv6Net;

/// One IPv6 address of an interface: its name, the address, the prefix
/// length.
pub(crate) type IfAddr6 = (String, Ipv6Addr, u8);

/// Our link-local address for a session from `local` to `peer`, read
/// from the interfaces' addresses now (`getifaddrs`); `None` when the
/// peer is not on the subnet of `local` (see the module comment).
pub(crate) fn link_local_toward(local: IpAddr, peer: IpAddr) -> Option<Ipv6Addr> {
    let (IpAddr::V6(local), IpAddr::V6(peer)) = (local, peer) else {
        return None;
    };
    // An IPv4-mapped address is an IPv4 session on a dual-stack socket.
    if local.to_ipv4_mapped().is_some() || peer.to_ipv4_mapped().is_some() {
        return None;
    }
    let addrs: Vec<IfAddr6> = nix::ifaddrs::getifaddrs()
        .ok()?
        .filter_map(|ifa| {
            let addr = ifa.address?.as_sockaddr_in6()?.ip();
            let mask = ifa.netmask?.as_sockaddr_in6()?.ip();
            let len = u8::try_from(u128::from(mask).leading_ones()).ok()?;
            Some((ifa.interface_name, addr, len))
        })
        .collect();
    pick(local, peer, &addrs)
}

/// [`link_local_toward`] on a list of interface addresses.
pub(crate) fn pick(local: Ipv6Addr, peer: Ipv6Addr, addrs: &[IfAddr6]) -> Option<Ipv6Addr> {
    if local.is_unicast_link_local() || peer.is_unicast_link_local() {
        return None;
    }
    let (ifname, _, _) = addrs
        .iter()
        .find(|(_, a, len)| *a == local && same_prefix(*a, peer, *len))?;
    addrs
        .iter()
        .filter(|(name, _, _)| name == ifname)
        .map(|(_, a, _)| *a)
        .find(Ipv6Addr::is_unicast_link_local)
}

/// Whether `b` is in `a`'s prefix of `len` bits.
fn same_prefix(a: Ipv6Addr, b: Ipv6Addr, len: u8) -> bool {
    Ipv6Net::new(a, len).is_ok_and(|net| net.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn addrs() -> Vec<IfAddr6> {
        [
            ("lo", "::1", 128),
            ("eth0", "fd30:1::11", 64),
            ("eth0", "fe80::1:11", 64),
            ("eth1", "fd31::11", 64),
            ("eth1", "fe80::2:11", 64),
            ("dummy0", "2001:db8::11", 128),
        ]
        .into_iter()
        .map(|(n, x, l)| (n.to_string(), a(x), l))
        .collect()
    }

    #[test]
    fn a_peer_on_the_subnet_gets_that_interfaces_link_local() {
        let got = pick(a("fd30:1::11"), a("fd30:1::2"), &addrs());
        assert_eq!(got, Some(a("fe80::1:11")));
        let got = pick(a("fd31::11"), a("fd31::ffff"), &addrs());
        assert_eq!(
            got,
            Some(a("fe80::2:11")),
            "the session's interface, not the first"
        );
    }

    #[test]
    fn a_peer_off_the_subnet_or_an_odd_session_gets_none() {
        // Through a router.
        assert_eq!(pick(a("fd30:1::11"), a("fd30:2::13"), &addrs()), None);
        // From a /128 (a loopback-style address): no subnet shared.
        assert_eq!(pick(a("2001:db8::11"), a("2001:db8::12"), &addrs()), None);
        // Not one of our addresses.
        assert_eq!(pick(a("fd30:1::99"), a("fd30:1::2"), &addrs()), None);
        // A session between link-local addresses.
        assert_eq!(pick(a("fe80::1:11"), a("fe80::2"), &addrs()), None);
        // An interface without a link-local address.
        let no_ll: Vec<IfAddr6> = addrs()
            .into_iter()
            .filter(|(_, x, _)| !x.is_unicast_link_local())
            .collect();
        assert_eq!(pick(a("fd30:1::11"), a("fd30:1::2"), &no_ll), None);
    }

    #[test]
    fn prefixes() {
        assert!(same_prefix(a("fd30:1::11"), a("fd30:1::2"), 64));
        assert!(!same_prefix(a("fd30:1::11"), a("fd30:2::2"), 64));
        assert!(same_prefix(a("fd30:1::11"), a("::"), 0));
        assert!(!same_prefix(a("fd30:1::11"), a("fd30:1::12"), 128));
        assert!(same_prefix(a("fd30:1::11"), a("fd30:1::11"), 128));
    }

    #[test]
    fn ipv4_sessions_get_none() {
        let v4: IpAddr = "172.30.1.11".parse().unwrap();
        let peer: IpAddr = "172.30.1.2".parse().unwrap();
        assert_eq!(link_local_toward(v4, peer), None);
        let mapped: IpAddr = "::ffff:172.30.1.11".parse().unwrap();
        let mapped_peer: IpAddr = "::ffff:172.30.1.2".parse().unwrap();
        assert_eq!(link_local_toward(mapped, mapped_peer), None);
    }
}
