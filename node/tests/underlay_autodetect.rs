//! Address autodetection against a real kernel: `tortie-node --check` in a
//! namespace the test creates (deleted on drop, also on failure), for each
//! method and family.
//!
//! ```text
//!   eth0  192.168.1.11/24   fd30:1::99/64 (deprecated)  fd30:1::11/64  2001:db8:1::11/64
//!   eth2                    fd30:2::11/64 (tentative: no carrier, so DAD never ends)
//!   eth1  10.0.0.11/8       fd30:9::11/64
//! ```
//!
//! The kernel lists the newest IPv6 address of an interface first, so
//! eth0's deprecated one comes before the others. All but eth2's are
//! added `nodad`: final at once.
//!
//! Checks: 1. each IPv6 method on an IPv6-only node (`--ip none --ip6
//! autodetect`); 2. each on a dual-stack node (eth0's addresses only);
//! 3. IPv4 autodetection unchanged; 4. bad values refused, naming the
//! setting.

use std::process::Output;

use tortie_testkit::netns::Netns;

/// The namespace above, or `None` (a skip said why; a failure under
/// `CI=true`) when namespaces cannot be made here.
fn topology(test: &str) -> Option<Netns> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user.
    if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
        tortie_testkit::missing(test, "network namespaces need root (run the tests as root)");
        return None;
    }
    let ns = match Netns::new("tn-underlay") {
        Ok(ns) => ns,
        Err(e) => {
            tortie_testkit::missing(test, &format!("cannot make a namespace (iproute2?): {e}"));
            return None;
        }
    };
    let ip = |args: &str| {
        let args: Vec<&str> = args.split_whitespace().collect();
        ns.ip(&args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    };
    for (dev, up) in [("eth0", true), ("eth2", false), ("eth1", true)] {
        ip(&format!("link add {dev} type veth peer name {dev}p"));
        ip(&format!("link set {dev} up"));
        if up {
            ip(&format!("link set {dev}p up"));
        }
    }
    ip("addr add 192.168.1.11/24 dev eth0");
    ip("addr add 2001:db8:1::11/64 dev eth0 nodad");
    ip("addr add fd30:1::11/64 dev eth0 nodad");
    ip("addr add fd30:1::99/64 dev eth0 nodad preferred_lft 0");
    ip("addr add fd30:2::11/64 dev eth2");
    ip("addr add 10.0.0.11/8 dev eth1");
    ip("addr add fd30:9::11/64 dev eth1 nodad");
    let shown = ns.ip(&["-6", "addr", "show", "dev", "eth2"]).unwrap();
    assert!(shown.contains("tentative"), "{shown}");
    Some(ns)
}

/// `tortie-node --check` in `ns` with these settings (flags; no
/// `TORTIE_*` from the caller's environment).
fn check(ns: &Netns, args: &[&str]) -> Output {
    let mut argv = vec![
        env!("CARGO_BIN_EXE_tortie-node"),
        "--check",
        "--node-name",
        "n1",
        "--router-id",
        "10.9.9.9",
    ];
    argv.extend_from_slice(args);
    let mut cmd = ns.command(&argv);
    for (k, _) in std::env::vars() {
        if k.starts_with("TORTIE_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("running tortie-node --check")
}

/// What `--check` found: "ADDRESS[ and ADDRESS6] on INTERFACE", or its
/// error.
fn found(ns: &Netns, args: &[&str]) -> Result<String, String> {
    let out = check(ns, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            stdout
        ));
    }
    let rest = stdout
        .trim()
        .strip_prefix("OK: node n1 at ")
        .unwrap_or_else(|| panic!("{stdout}"));
    Ok(rest.split(", router ID").next().unwrap().to_string())
}

#[test]
fn each_method_picks_the_right_ipv6_address() {
    let Some(ns) = topology("each_method_picks_the_right_ipv6_address") else {
        return;
    };
    // 1. IPv6 only: --ip none --ip6 autodetect.
    let only6 = |method: Option<&str>| {
        let mut args = vec!["--ip", "none", "--ip6", "autodetect"];
        if let Some(m) = method {
            args.extend(["--ip6-autodetection-method", m]);
        }
        found(&ns, &args)
    };
    for (method, want) in [
        // Not eth0's deprecated fd30:1::99, listed first.
        (None, "fd30:1::11/64 on eth0"),
        (Some("first-found"), "fd30:1::11/64 on eth0"),
        (Some("interface=eth1"), "fd30:9::11/64 on eth1"),
        // Not eth2's tentative address.
        (Some("skip-interface=eth0"), "fd30:9::11/64 on eth1"),
        (Some("cidr=2001:db8::/32"), "2001:db8:1::11/64 on eth0"),
        (
            Some("cidr=fd30:9::/64,fd30:1::/64"),
            "fd30:1::11/64 on eth0",
        ),
        // A UDP connect over IPv6: the kernel's source towards it.
        (Some("can-reach=fd30:9::55"), "fd30:9::11/64 on eth1"),
        (Some("can-reach=fd30:1::55"), "fd30:1::11/64 on eth0"),
    ] {
        assert_eq!(only6(method).as_deref(), Ok(want), "{method:?}");
    }
    let e = only6(Some("interface=eth2")).unwrap_err();
    assert!(
        e.contains("ip6 autodetection (interface=eth2) found no global IPv6 address")
            && e.contains("fd30:2::11/64 (tentative or deprecated)"),
        "{e}"
    );
    assert_eq!(
        found(&ns, &["--ip", "none", "--ip6", "fd30:2::11/64"]).as_deref(),
        Ok("fd30:2::11/64 on eth2"),
        "a given address may be tentative"
    );

    // 2. Dual stack: eth0's addresses only.
    let dual = |method: Option<&str>| {
        let mut args = vec!["--ip6", "autodetect"];
        if let Some(m) = method {
            args.extend(["--ip6-autodetection-method", m]);
        }
        found(&ns, &args)
    };
    for (method, want) in [
        (None, "192.168.1.11/24 and fd30:1::11/64 on eth0"),
        (
            Some("first-found"),
            "192.168.1.11/24 and fd30:1::11/64 on eth0",
        ),
        (
            Some("cidr=2001:db8::/32"),
            "192.168.1.11/24 and 2001:db8:1::11/64 on eth0",
        ),
        (
            Some("can-reach=fd30:1::55"),
            "192.168.1.11/24 and fd30:1::11/64 on eth0",
        ),
    ] {
        assert_eq!(dual(method).as_deref(), Ok(want), "{method:?}");
    }
    for method in ["interface=eth1", "can-reach=fd30:9::55", "cidr=fd30:9::/64"] {
        let e = dual(Some(method)).unwrap_err();
        assert!(
            e.contains(&format!(
                "ip6 autodetection ({method}) found no global IPv6 address on eth0, the \
                 interface of ip 192.168.1.11/24"
            )),
            "{e}"
        );
    }

    // 3. IPv4 as before.
    assert_eq!(
        found(&ns, &["--ip-autodetection-method", "can-reach=10.1.2.3"]).as_deref(),
        Ok("10.0.0.11/8 on eth1")
    );
    assert_eq!(found(&ns, &[]).as_deref(), Ok("192.168.1.11/24 on eth0"));

    // 4. Bad values: exit 2, naming the setting.
    for (args, want) in [
        (
            vec!["--ip-autodetection-method", "can-reach=fd30:9::55"],
            "ipAutodetectionMethod (--ip-autodetection-method, TORTIE_IP_AUTODETECTION_METHOD): can-reach=fd30:9::55: fd30:9::55 is an IPv6 address",
        ),
        (
            vec!["--ip6", "autodetect", "--ip6-autodetection-method", "cidr=10.0.0.0/8"],
            "ip6AutodetectionMethod (--ip6-autodetection-method, TORTIE_IP6_AUTODETECTION_METHOD): cidr=10.0.0.0/8",
        ),
        (vec!["--ip", "none"], "ip (--ip, TORTIE_IP): none: none is an IPv6-only node"),
    ] {
        let out = check(&ns, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
