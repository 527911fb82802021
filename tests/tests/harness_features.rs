//! Harness self-tests for the features the tortie-rr interop tests check:
//! TCP MD5, route reflection attributes, graceful restart stale marking.
//! They prove each daemon's launcher and parser on these features with
//! daemons only.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tortie_tests::daemons::bird::Bird;
use tortie_tests::daemons::{net, BgpDaemon, DaemonConfig, Kind, Neighbor};
use tortie_tests::netns::Topology;

const WAIT: Duration = Duration::from_secs(20);

/// Asserts that the session with `peer` never reaches Established during
/// `window` (polled every 200 ms).
fn assert_never_established(d: &dyn BgpDaemon, peer: IpAddr, window: Duration) {
    let start = Instant::now();
    while start.elapsed() < window {
        let s = d.sessions().unwrap();
        let s = s.iter().find(|s| s.peer == peer).expect("session listed");
        assert!(
            !s.established,
            "{} session with {peer} came up: {s:?}",
            d.kind_name()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Topology: A -- B, same daemon on both, one IPv4 iBGP session with a
/// TCP MD5 password.
///
/// Checks:
/// 1. With the same password on both sides the session reaches Established
///    and a route flows.
/// 2. With different passwords it stays down for 8 s (a good session needs
///    about 2 s), on both sides.
fn md5(kind: Kind) {
    for (pw_a, pw_b, good) in [("s3cret", "s3cret", true), ("s3cret", "wrong", false)] {
        let topo = Topology::new(2).unwrap();
        let (a, b) = (&topo.hosts[0], &topo.hosts[1]);
        let da = kind
            .start(
                a,
                DaemonConfig::new(a, 64512)
                    .neighbor(Neighbor::new(b.v4, 64512).password(pw_a))
                    .originate(&["10.1.0.0/24"]),
            )
            .unwrap();
        let db = kind
            .start(
                b,
                DaemonConfig::new(b, 64512).neighbor(Neighbor::new(a.v4, 64512).password(pw_b)),
            )
            .unwrap();
        if good {
            // 1.
            da.wait_established(b.v4.into(), WAIT).unwrap();
            db.wait_established(a.v4.into(), WAIT).unwrap();
            db.wait_route(net("10.1.0.0/24"), WAIT, &|_| Ok(()))
                .unwrap();
        } else {
            // 2.
            assert_never_established(da.as_ref(), b.v4.into(), Duration::from_secs(8));
            assert_never_established(db.as_ref(), a.v4.into(), Duration::from_millis(500));
        }
    }
}

#[test]
fn md5_bird() {
    md5(Kind::Bird);
}

#[test]
fn md5_frr() {
    md5(Kind::Frr);
}

#[test]
fn md5_gobgp() {
    md5(Kind::Gobgp);
}

/// Topology: three hosts on a bridge. Host 1 runs a BIRD route reflector
/// (cluster id 9.9.9.9); hosts 2 and 3 run `kind` as its iBGP clients (no
/// session between 2 and 3).
///
/// Checks:
/// 1. Host 2's v4 and v6 prefixes reach host 3 with next hop host 2,
///    ORIGINATOR_ID = host 2's router id and CLUSTER_LIST = [9.9.9.9].
fn reflected_by_bird(kind: Kind) {
    let topo = Topology::new(3).unwrap();
    let (r, c1, c2) = (&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]);
    let cluster = "9.9.9.9".parse().unwrap();
    let _rr = Bird::start(
        &r.ns,
        DaemonConfig::new(r, 64512)
            .cluster_id(cluster)
            .peer_both(c1, 64512, |n| n.rr_client())
            .peer_both(c2, 64512, |n| n.rr_client()),
    )
    .unwrap();
    let _d1 = kind
        .start(
            c1,
            DaemonConfig::new(c1, 64512)
                .peer_both(r, 64512, |n| n)
                .originate(&["10.2.0.0/24", "fd10:2::/64"]),
        )
        .unwrap();
    let d2 = kind
        .start(c2, DaemonConfig::new(c2, 64512).peer_both(r, 64512, |n| n))
        .unwrap();
    for (p, nh) in [
        ("10.2.0.0/24", IpAddr::from(c1.v4)),
        ("fd10:2::/64", c1.v6.into()),
    ] {
        d2.wait_route(net(p), WAIT, &|rt| {
            if rt.next_hop != Some(nh) {
                return Err(format!("next hop {:?}", rt.next_hop));
            }
            if rt.originator_id != Some(c1.v4) {
                return Err(format!("ORIGINATOR_ID {:?}", rt.originator_id));
            }
            if rt.cluster_list != vec![cluster] {
                return Err(format!("CLUSTER_LIST {:?}", rt.cluster_list));
            }
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn reflected_by_bird_to_bird() {
    reflected_by_bird(Kind::Bird);
}

#[test]
fn reflected_by_bird_to_frr() {
    reflected_by_bird(Kind::Frr);
}

#[test]
fn reflected_by_bird_to_gobgp() {
    reflected_by_bird(Kind::Gobgp);
}

/// Topology: A (BIRD, restarts) -- B (`kind`, the helper), iBGP, graceful
/// restart on both, one v4 and one v6 session.
///
/// Checks:
/// 1. B learns A's v4 and v6 prefixes, not stale.
/// 2. `kill -9` A: B keeps both routes, marked stale.
/// 3. A comes back: the sessions return and B's routes are fresh again.
/// 4. The routes never left B's RIB (polled every ~100 ms throughout).
fn graceful_restart_helper(kind: Kind) {
    let topo = Topology::new(2).unwrap();
    let (a, b) = (&topo.hosts[0], &topo.hosts[1]);
    let mut bird = Bird::start(
        &a.ns,
        DaemonConfig::new(a, 64512)
            .graceful_restart()
            .peer_both(b, 64512, |n| n)
            .originate(&["10.1.0.0/24", "fd10:1::/64"]),
    )
    .unwrap();
    let helper = kind
        .start(
            b,
            DaemonConfig::new(b, 64512)
                .graceful_restart()
                .peer_both(a, 64512, |n| n),
        )
        .unwrap();
    let prefixes = [net("10.1.0.0/24"), net("fd10:1::/64")];
    // 1.
    for p in prefixes {
        helper
            .wait_route(p, WAIT, &|r| {
                if r.stale {
                    Err("stale".into())
                } else {
                    Ok(())
                }
            })
            .unwrap();
    }
    // 2.
    bird.kill9();
    let mut seen_stale = [false, false];
    let start = Instant::now();
    while seen_stale != [true, true] {
        assert!(
            start.elapsed() < WAIT,
            "{} never marked the routes stale",
            helper.kind_name()
        );
        for (i, p) in prefixes.iter().enumerate() {
            let rs = helper.routes(tortie_tests::daemons::afi_of(p)).unwrap();
            let r = rs.iter().find(|r| r.prefix == *p);
            let r =
                r.unwrap_or_else(|| panic!("{p} left {} during the restart", helper.kind_name()));
            seen_stale[i] |= r.stale;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // 3. + 4.
    bird.restart().unwrap();
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < WAIT,
            "routes still stale after the restart"
        );
        let mut fresh = 0;
        for p in prefixes {
            let rs = helper.routes(tortie_tests::daemons::afi_of(&p)).unwrap();
            let r = rs.iter().find(|r| r.prefix == p);
            let r =
                r.unwrap_or_else(|| panic!("{p} left {} during the restart", helper.kind_name()));
            fresh += usize::from(!r.stale);
        }
        if fresh == prefixes.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    helper.wait_established(a.v4.into(), WAIT).unwrap();
    helper.wait_established(a.v6.into(), WAIT).unwrap();
}

#[test]
fn graceful_restart_helper_bird() {
    graceful_restart_helper(Kind::Bird);
}

#[test]
fn graceful_restart_helper_frr() {
    graceful_restart_helper(Kind::Frr);
}

#[test]
fn graceful_restart_helper_gobgp() {
    graceful_restart_helper(Kind::Gobgp);
}

/// The reference run of `interop_rr_client.rs` with a BIRD in tortie-rr's
/// place, proving that scenario's expectations on real daemons.
///
/// Topology (all AS 64512): h1 BIRD RR (cluster 9.9.9.9) with clients h2
/// and h3; h2 BIRD, client of h1 and RR (cluster 10.255.0.1) for h4; h3
/// originates 10.3.0.0/24 + fd10:3::/64; h4 originates 10.4.0.0/24.
///
/// Checks:
/// 1. h3's prefixes reach h4 with next hop h3, ORIGINATOR_ID 172.30.0.3 and
///    CLUSTER_LIST [10.255.0.1, 9.9.9.9] (newest reflector first).
/// 2. h4's prefix reaches h3 with CLUSTER_LIST [9.9.9.9, 10.255.0.1].
#[test]
fn hierarchical_reflection_reference() {
    let topo = Topology::new(4).unwrap();
    let (h1, h2, h3, h4) = (
        &topo.hosts[0],
        &topo.hosts[1],
        &topo.hosts[2],
        &topo.hosts[3],
    );
    let (c1, c2) = ("9.9.9.9".parse().unwrap(), "10.255.0.1".parse().unwrap());
    let _b1 = Bird::start(
        &h1.ns,
        DaemonConfig::new(h1, 64512)
            .cluster_id(c1)
            .peer_both(h2, 64512, |n| n.rr_client())
            .peer_both(h3, 64512, |n| n.rr_client()),
    )
    .unwrap();
    let _b2 = Bird::start(
        &h2.ns,
        DaemonConfig::new(h2, 64512)
            .cluster_id(c2)
            .peer_both(h1, 64512, |n| n)
            .peer_both(h4, 64512, |n| n.rr_client()),
    )
    .unwrap();
    let b3 = Bird::start(
        &h3.ns,
        DaemonConfig::new(h3, 64512)
            .peer_both(h1, 64512, |n| n)
            .originate(&["10.3.0.0/24", "fd10:3::/64"]),
    )
    .unwrap();
    let b4 = Bird::start(
        &h4.ns,
        DaemonConfig::new(h4, 64512)
            .peer_both(h2, 64512, |n| n)
            .originate(&["10.4.0.0/24"]),
    )
    .unwrap();
    let check = |origin: &tortie_tests::netns::Host, list: Vec<std::net::Ipv4Addr>| {
        let (v4, v6) = (origin.v4, origin.v6);
        move |r: &tortie_tests::daemons::Route| -> Result<(), String> {
            let nh: IpAddr = if r.prefix.addr().is_ipv4() {
                v4.into()
            } else {
                v6.into()
            };
            if r.next_hop != Some(nh) || r.originator_id != Some(v4) || r.cluster_list != list {
                return Err(format!(
                    "want next hop {nh}, originator {v4}, cluster list {list:?}"
                ));
            }
            Ok(())
        }
    };
    // 1.
    for p in ["10.3.0.0/24", "fd10:3::/64"] {
        b4.wait_route(net(p), WAIT, &check(h3, vec![c2, c1]))
            .unwrap();
    }
    // 2.
    b3.wait_route(net("10.4.0.0/24"), WAIT, &check(h4, vec![c1, c2]))
        .unwrap();
}

/// Topology: A -- B, same daemon, one IPv4 iBGP session.
///
/// Checks:
/// 1. A passive, B active: the session comes up (B connects).
/// 2. Both passive (fresh namespaces): it never comes up during 5 s.
fn passive(kind: Kind) {
    for both_passive in [false, true] {
        let topo = Topology::new(2).unwrap();
        let (a, b) = (&topo.hosts[0], &topo.hosts[1]);
        let da = kind
            .start(
                a,
                DaemonConfig::new(a, 64512).neighbor(Neighbor::new(b.v4, 64512).passive()),
            )
            .unwrap();
        let nb = Neighbor::new(a.v4, 64512);
        let nb = if both_passive { nb.passive() } else { nb };
        let db = kind
            .start(b, DaemonConfig::new(b, 64512).neighbor(nb))
            .unwrap();
        if both_passive {
            // 2.
            assert_never_established(da.as_ref(), b.v4.into(), Duration::from_secs(5));
        } else {
            // 1.
            da.wait_established(b.v4.into(), WAIT).unwrap();
            db.wait_established(a.v4.into(), WAIT).unwrap();
        }
    }
}

#[test]
fn passive_bird() {
    passive(Kind::Bird);
}

#[test]
fn passive_frr() {
    passive(Kind::Frr);
}

#[test]
fn passive_gobgp() {
    passive(Kind::Gobgp);
}

/// Topology: A (GoBGP) -- B (`kind` with `kernel: true`: BIRD's `kernel`
/// protocol, FRR's zebra), iBGP v4 + v6.
///
/// Checks:
/// 1. Without the option B installs nothing (`ip -n B route` has no
///    10.1.0.0/24) once it has the route.
/// 2. With it, A's 10.1.0.0/24 and fd10:1::/64 appear in B's kernel table
///    via A's addresses.
fn kernel_export_only_when_asked(kind: Kind) {
    for kernel in [false, true] {
        let topo = Topology::new(2).unwrap();
        let (a, b) = (&topo.hosts[0], &topo.hosts[1]);
        let _ga = Kind::Gobgp
            .start(
                a,
                DaemonConfig::new(a, 64512)
                    .peer_both(b, 64512, |n| n)
                    .originate(&["10.1.0.0/24", "fd10:1::/64"]),
            )
            .unwrap();
        let mut cfg = DaemonConfig::new(b, 64512).peer_both(a, 64512, |n| n);
        cfg.kernel = kernel;
        let daemon = kind.start(b, cfg).unwrap();
        for p in ["10.1.0.0/24", "fd10:1::/64"] {
            daemon.wait_route(net(p), WAIT, &|_| Ok(())).unwrap();
        }
        let kernel_routes = |fam: &str| b.ns.run(&["ip", fam, "route", "show"]).unwrap();
        if kernel {
            // 2.
            tortie_tests::wait_until(WAIT, &format!("kernel routes from {kind:?}"), || {
                let (v4, v6) = (kernel_routes("-4"), kernel_routes("-6"));
                // zebra adds a next hop group id (`... nhid 8 via ...`).
                let has = |table: &str, prefix: &str, via: String| {
                    table
                        .lines()
                        .any(|l| l.starts_with(&format!("{prefix} ")) && l.contains(&via))
                };
                let ok4 = has(&v4, "10.1.0.0/24", format!(" via {} ", a.v4));
                let ok6 = has(&v6, "fd10:1::/64", format!(" via {} ", a.v6));
                if ok4 && ok6 {
                    Ok(())
                } else {
                    Err(format!("{v4}{v6}"))
                }
            })
            .unwrap();
        } else {
            // 1.
            let v4 = kernel_routes("-4");
            assert!(
                !v4.contains("10.1.0.0/24"),
                "{kind:?} exported to the kernel: {v4}"
            );
        }
    }
}

#[test]
fn bird_kernel_export_only_when_asked() {
    kernel_export_only_when_asked(Kind::Bird);
}

#[test]
fn frr_kernel_export_only_when_asked() {
    kernel_export_only_when_asked(Kind::Frr);
}
