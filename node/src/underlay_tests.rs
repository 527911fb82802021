//! Tests of `underlay.rs`: each method for each family, interface lists
//! in, an address or an error out.

use super::*;

fn i(name: &str, addrs: &[&str]) -> Iface {
    Iface {
        name: name.into(),
        addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        unpreferred: Vec::new(),
    }
}

fn ifaces() -> Vec<Iface> {
    vec![
        i("lo", &["127.0.0.1/8", "::1/128"]),
        i("docker0", &["172.17.0.1/16", "fd99::1/64"]),
        i(
            "eth0",
            &[
                "169.254.3.3/16",
                "192.168.1.11/24",
                "fe80::11/64",
                "fd30:1::11/64",
                "2001:db8:1::11/64",
            ],
        ),
        i("eth1", &["10.0.0.11/8", "fe80::12/64", "fd30:9::11/64"]),
        i("veth0", &["10.1.0.1/24", "fd30:5::1/64"]),
        i("tort0123456789a", &[]),
    ]
}

/// `setting` on `list`, as "interface address".
fn pick_in(list: &[Iface], setting: AddressSetting, reach: Option<&str>) -> Result<String, String> {
    choose(&setting, list, reach.map(|r| r.parse().unwrap()))
        .map(|u| format!("{} {}", u.interface, u.address))
}

fn pick(setting: AddressSetting, reach: Option<&str>) -> Result<String, String> {
    pick_in(&ifaces(), setting, reach)
}

fn auto(m: Autodetect) -> AddressSetting {
    AddressSetting::Autodetect(m)
}

fn auto6(m: Autodetect) -> AddressSetting {
    AddressSetting::Autodetect6(m)
}

fn re(r: &str) -> Vec<String> {
    vec![r.into()]
}

fn nets(n: &str) -> Vec<IpNet> {
    vec![n.parse().unwrap()]
}

fn dest(a: &str) -> Autodetect {
    Autodetect::CanReach(a.parse().unwrap())
}

#[test]
fn methods_v4() {
    use Autodetect::*;
    for (setting, reach, want) in [
        (auto(FirstFound), None, "eth0 192.168.1.11/24"),
        (auto(Interface(re("eth1"))), None, "eth1 10.0.0.11/8"),
        (auto(SkipInterface(re("eth0"))), None, "eth1 10.0.0.11/8"),
        (auto(Cidr(nets("10.0.0.0/8"))), None, "eth1 10.0.0.11/8"),
        (
            auto(dest("10.9.9.9")),
            Some("10.0.0.11"),
            "eth1 10.0.0.11/8",
        ),
        // An explicit prefix length wins over the interface's.
        (
            AddressSetting::Explicit("10.0.0.11/16".parse().unwrap()),
            None,
            "eth1 10.0.0.11/16",
        ),
    ] {
        assert_eq!(pick(setting.clone(), reach).unwrap(), want, "{setting:?}");
    }
    // The whole name must match: "eth" alone matches no interface.
    assert!(pick(auto(Interface(re("eth"))), None).is_err());
}

#[test]
fn methods_v6_ipv6_only() {
    use Autodetect::*;
    // Global addresses only: not ::1, not fe80::/10; docker0 and veth0
    // are skipped by first-found as for IPv4.
    for (setting, reach, want) in [
        (auto6(FirstFound), None, "eth0 fd30:1::11/64"),
        (auto6(Interface(re("eth1"))), None, "eth1 fd30:9::11/64"),
        (auto6(Interface(re("veth0"))), None, "veth0 fd30:5::1/64"),
        (auto6(SkipInterface(re("eth0"))), None, "eth1 fd30:9::11/64"),
        (
            auto6(Cidr(nets("2001:db8::/32"))),
            None,
            "eth0 2001:db8:1::11/64",
        ),
        (auto6(Cidr(nets("fd30:9::/64"))), None, "eth1 fd30:9::11/64"),
        (
            auto6(dest("2001:db8:9::1")),
            Some("fd30:9::11"),
            "eth1 fd30:9::11/64",
        ),
        (
            AddressSetting::Explicit("fd30:9::11/64".parse().unwrap()),
            None,
            "eth1 fd30:9::11/64",
        ),
    ] {
        assert_eq!(pick(setting.clone(), reach).unwrap(), want, "{setting:?}");
    }
    // Tentative or deprecated addresses are passed over ...
    let mut list = ifaces();
    list[2].unpreferred.push("fd30:1::11".parse().unwrap());
    assert_eq!(
        pick_in(&list, auto6(FirstFound), None).unwrap(),
        "eth0 2001:db8:1::11/64"
    );
    list[2].unpreferred.push("2001:db8:1::11".parse().unwrap());
    assert_eq!(
        pick_in(&list, auto6(FirstFound), None).unwrap(),
        "eth1 fd30:9::11/64"
    );
    // ... but a given one is taken.
    assert_eq!(
        pick_in(
            &list,
            AddressSetting::Explicit("fd30:1::11/64".parse().unwrap()),
            None
        )
        .unwrap(),
        "eth0 fd30:1::11/64"
    );
    // A link-local source towards the destination is no node address.
    let e = pick(auto6(dest("fe80::99")), Some("fe80::12")).unwrap_err();
    assert!(
        e.starts_with("ip6 autodetection (can-reach=fe80::99) found no global IPv6 address"),
        "{e}"
    );
    assert!(
        e.contains("the kernel's source address towards fe80::99 is fe80::12"),
        "{e}"
    );
    let e = pick(auto6(Cidr(nets("2001:db8:7::/48"))), None).unwrap_err();
    assert!(
        e.contains("--ip6 ADDR/PREFIX or another --ip6-autodetection-method (with --ip none)"),
        "{e}"
    );
    let e = pick_in(&list, auto6(Interface(re("eth0"))), None).unwrap_err();
    assert!(
        e.contains("eth0 [169.254.3.3/16 192.168.1.11/24 fe80::11/64 fd30:1::11/64 (tentative or deprecated) 2001:db8:1::11/64 (tentative or deprecated)]"),
        "{e}"
    );
}

#[test]
fn dual_stack_autodetect_on_the_ipv4_interface() {
    use Autodetect::*;
    let list = ifaces();
    let base = choose(&auto(FirstFound), &list, None).unwrap();
    let v6 = |m: Option<Autodetect>, list: &[Iface], reach: Option<&str>| {
        autodetect_v6(&base, m.as_ref(), list, reach.map(|r| r.parse().unwrap()))
            .map(|a| a.to_string())
    };
    // Default: eth0's first global address, not its link-local one.
    assert_eq!(v6(None, &list, None).unwrap(), "fd30:1::11/64");
    assert_eq!(v6(Some(FirstFound), &list, None).unwrap(), "fd30:1::11/64");
    assert_eq!(
        v6(Some(Cidr(nets("2001:db8::/32"))), &list, None).unwrap(),
        "2001:db8:1::11/64"
    );
    assert_eq!(
        v6(Some(Interface(re("eth.*"))), &list, None).unwrap(),
        "fd30:1::11/64"
    );
    assert_eq!(
        v6(Some(dest("2001:db8:9::1")), &list, Some("2001:db8:1::11")).unwrap(),
        "2001:db8:1::11/64"
    );
    // Only eth0's addresses count: eth1's would split the node's two
    // addresses over two interfaces.
    for (m, reach) in [
        (Interface(re("eth1")), None),
        (SkipInterface(re("eth0")), None),
        (Cidr(nets("fd30:9::/64")), None),
        (dest("2001:db8:9::1"), Some("fd30:9::11")),
    ] {
        let e = v6(Some(m.clone()), &list, reach).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "ip6 autodetection ({}) found no global IPv6 address on eth0, the interface of ip 192.168.1.11/24",
                describe(&m)
            )),
            "{e}"
        );
        assert!(e.contains(": eth0 [169.254.3.3/16 "), "{e}");
        assert!(!e.contains("eth1 ["), "{e}");
    }
    let mut tentative = list.clone();
    tentative[2].unpreferred.push("fd30:1::11".parse().unwrap());
    assert_eq!(v6(None, &tentative, None).unwrap(), "2001:db8:1::11/64");
    let e = v6(None, &ifaces()[..2], None).unwrap_err();
    assert!(
        e.starts_with("ip6 autodetection (default: the interface's first) found no global IPv6 address on eth0"),
        "{e}"
    );
    let only6 = choose(&auto6(FirstFound), &list, None).unwrap();
    let e = autodetect_v6(&only6, None, &list, None).unwrap_err();
    assert!(e.contains("is already IPv6"), "{e}");
}

#[test]
fn dual_stack_address_must_be_on_the_underlay_interface() {
    let list = ifaces();
    let base = choose(&auto(Autodetect::FirstFound), &list, None).unwrap();
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
}

#[test]
fn failures_say_what_was_seen() {
    let e = pick(auto(Autodetect::Cidr(nets("203.0.113.0/24"))), None).unwrap_err();
    assert!(
        e.starts_with("ip autodetection (cidr=203.0.113.0/24) found no IPv4 address"),
        "{e}"
    );
    assert!(
        e.contains("eth0 [169.254.3.3/16 192.168.1.11/24 fe80::11/64"),
        "{e}"
    );
    assert!(!e.contains("IPv6-only"), "{e}");
    let e = pick(
        AddressSetting::Explicit("192.168.9.9/24".parse().unwrap()),
        None,
    )
    .unwrap_err();
    assert!(
        e.contains("no interface of this node has address 192.168.9.9"),
        "{e}"
    );
    // A node without IPv4 is told how an IPv6-only node asks.
    let only6 = vec![i("lo", &["127.0.0.1/8"]), i("eth0", &["fd30:1::11/64"])];
    let e = pick_in(&only6, auto(Autodetect::FirstFound), None).unwrap_err();
    assert!(
        e.ends_with("(an IPv6-only node: --ip none with --ip6 autodetect or ADDR/PREFIX)"),
        "{e}"
    );
}
