//! Harness self-tests: the three daemons talk to each other, so the
//! launchers, config builders and parsers are proven before tortie-rr uses
//! them.
//!
//! Topology (every test):
//!
//! ```text
//!   host A (172.30.0.1, fd00:30::1)  ---- veth ----  host B (172.30.0.2, fd00:30::2)
//!   daemon X, AS 64512                               daemon Y, AS 64512 (iBGP) / 65002 (eBGP)
//!   one IPv4 session + one IPv6 session between them
//! ```
//!
//! Checks (`pair`):
//! 1. Both sessions reach Established on both sides.
//! 2. A's v4 and v6 prefixes reach B with A's address as next hop (and, for
//!    eBGP, A's AS as the AS path); B's reach A the same way.
//! 3. A prefix announced at run time on A reaches B.
//! 4. Withdrawing it and A's original v4 and v6 prefixes removes them from B;
//!    B's prefixes stay at A.

use std::time::Duration;

use tortie_tests::daemons::{net, BgpDaemon, DaemonConfig, Kind, Route};
use tortie_tests::netns::{Host, Topology};

const WAIT: Duration = Duration::from_secs(20);

fn pair(x: Kind, y: Kind, ebgp: bool) {
    let topo = Topology::new(2).expect("topology");
    let (a, b) = (&topo.hosts[0], &topo.hosts[1]);
    let (as_a, as_b) = (64512, if ebgp { 65002 } else { 64512 });
    let mut da = x
        .start(
            a,
            DaemonConfig::new(a, as_a)
                .peer_both(b, as_b, |n| n)
                .originate(&["10.1.0.0/24", "fd10:1::/64"]),
        )
        .expect("start A");
    let db = y
        .start(
            b,
            DaemonConfig::new(b, as_b)
                .peer_both(a, as_a, |n| n)
                .originate(&["10.2.0.0/24", "fd10:2::/64"]),
        )
        .expect("start B");

    // 1.
    for (d, peer) in [(&da, a), (&db, b)].map(|(d, h)| (d, other(&topo, h))) {
        d.wait_established(peer.v4.into(), WAIT).unwrap();
        d.wait_established(peer.v6.into(), WAIT).unwrap();
    }
    // 2.
    let expect_from = |h: &Host, asn: u32| {
        let (v4, v6) = (h.v4, h.v6);
        move |r: &Route| -> Result<(), String> {
            let want = if r.prefix.addr().is_ipv4() {
                v4.into()
            } else {
                v6.into()
            };
            if r.next_hop != Some(want) {
                return Err(format!("next hop {:?}, want {want}", r.next_hop));
            }
            let path: Vec<u32> = if ebgp { vec![asn] } else { vec![] };
            if r.as_path != path {
                return Err(format!("AS path {:?}, want {path:?}", r.as_path));
            }
            Ok(())
        }
    };
    for p in ["10.1.0.0/24", "fd10:1::/64"] {
        db.wait_route(net(p), WAIT, &expect_from(a, as_a)).unwrap();
    }
    for p in ["10.2.0.0/24", "fd10:2::/64"] {
        da.wait_route(net(p), WAIT, &expect_from(b, as_b)).unwrap();
    }
    // 3.
    da.announce(net("10.11.0.0/24")).unwrap();
    db.wait_route(net("10.11.0.0/24"), WAIT, &expect_from(a, as_a))
        .unwrap();
    // 4.
    for p in ["10.11.0.0/24", "10.1.0.0/24", "fd10:1::/64"] {
        da.withdraw(net(p)).unwrap();
    }
    for p in ["10.11.0.0/24", "10.1.0.0/24", "fd10:1::/64"] {
        db.wait_no_route(net(p), WAIT).unwrap();
    }
    for p in ["10.2.0.0/24", "fd10:2::/64"] {
        da.wait_route(net(p), WAIT, &|_| Ok(())).unwrap();
    }
}

fn other<'a>(topo: &'a Topology, h: &Host) -> &'a Host {
    topo.hosts.iter().find(|o| o.v4 != h.v4).expect("two hosts")
}

#[test]
fn bird_frr_ibgp() {
    pair(Kind::Bird, Kind::Frr, false);
}

#[test]
fn bird_frr_ebgp() {
    pair(Kind::Bird, Kind::Frr, true);
}

#[test]
fn bird_gobgp_ibgp() {
    pair(Kind::Bird, Kind::Gobgp, false);
}

#[test]
fn bird_gobgp_ebgp() {
    pair(Kind::Bird, Kind::Gobgp, true);
}

#[test]
fn frr_gobgp_ibgp() {
    pair(Kind::Frr, Kind::Gobgp, false);
}

#[test]
fn frr_gobgp_ebgp() {
    pair(Kind::Frr, Kind::Gobgp, true);
}

/// Daemon-specific sanity: the type behind `Box<dyn BgpDaemon>` says which
/// daemon it is (guards against a mix-up in `Kind::start`).
#[test]
fn kind_names_match() {
    let topo = Topology::new(2).expect("topology");
    for k in Kind::ALL {
        let d = k
            .start(&topo.hosts[0], DaemonConfig::new(&topo.hosts[0], 64512))
            .unwrap();
        let want = match k {
            Kind::Bird => "bird",
            Kind::Frr => "frr",
            Kind::Gobgp => "gobgp",
        };
        assert_eq!(d.kind_name(), want);
        drop(d);
    }
}

#[allow(dead_code)]
fn assert_object_safe(_: &dyn BgpDaemon) {}
