//! Scenarios shared by `interop_bird.rs`, `interop_frr.rs` and
//! `interop_gobgp.rs`: each runs the same checks of tortie-rr against one
//! daemon. Every scenario documents its topology and numbered checks.
//!
//! Addresses: host N is 172.30.0.N and fd00:30::N; daemons peer with
//! tortie-rr over one IPv4 and one IPv6 session each.
//!
//! The speaker in the middle is a [`Middle`]: tortie-rr in the interop
//! tests, or a daemon (BIRD, FRR, GoBGP) built from the same config in
//! `harness_reference.rs`, which runs the scenarios against real daemons
//! today and so proves their expectations (checks that read tortie-rr's
//! /status counters are skipped for daemons).

#![allow(dead_code)] // each test file uses a subset

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::Result;
use tortie_tests::daemons::bird::Bird;
use tortie_tests::daemons::frr::Frr;
use tortie_tests::daemons::gobgp::Gobgp;
use tortie_tests::daemons::tortie::{TortieConfig, TortieRr};
use tortie_tests::daemons::{afi_of, net, BgpDaemon, DaemonConfig, IpNet, Kind, Neighbor, Route};
use tortie_tests::netns::{Host, Topology};

/// Deadline for a session or a route to show up.
pub const WAIT: Duration = Duration::from_secs(20);
/// tortie-rr's AS in iBGP scenarios (and the daemons').
pub const AS_RR: u32 = 64512;
/// Cluster id tortie-rr reflects with.
pub const CLUSTER: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);

/// Which speaker sits in the middle of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MiddleKind {
    /// The real subject: the tortie-rr binary.
    Tortie,
    /// A BIRD with the equivalent config (reference run).
    Bird,
    /// An FRR bgpd with the equivalent config (reference run).
    Frr,
    /// A GoBGP with the equivalent config (reference run).
    Gobgp,
}

/// The speaker under test in a scenario.
pub trait Middle {
    /// Waits until its session with `peer` is Established.
    fn up(&self, peer: IpAddr, deadline: Duration) -> Result<()>;
    /// A /status counter of one peer; `None` when the middle has no such
    /// counters (BIRD).
    fn counter(&self, peer: IpAddr, field: &str) -> Option<u64>;
    /// Whether the session with `peer` is Established now.
    fn is_established(&self, peer: IpAddr) -> bool;
    /// SIGKILL.
    fn kill9(&mut self);
    /// Start again with the same config (and state).
    fn restart(&mut self) -> Result<()>;
}

impl Middle for TortieRr {
    fn up(&self, peer: IpAddr, deadline: Duration) -> Result<()> {
        self.wait_established(peer, deadline)
    }
    fn counter(&self, peer: IpAddr, field: &str) -> Option<u64> {
        Some(self.peer_counter(peer, field).unwrap())
    }
    fn is_established(&self, peer: IpAddr) -> bool {
        let p = self.peer_status(peer).unwrap();
        p["state"].as_str() == Some("Established")
    }
    fn kill9(&mut self) {
        TortieRr::kill9(self)
    }
    fn restart(&mut self) -> Result<()> {
        TortieRr::restart(self)
    }
}

/// The reference daemons: the same trait through their launchers.
macro_rules! daemon_middle {
    ($($t:ty),*) => {$(
        impl Middle for $t {
            fn up(&self, peer: IpAddr, deadline: Duration) -> Result<()> {
                self.wait_established(peer, deadline)
            }
            fn counter(&self, _: IpAddr, _: &str) -> Option<u64> {
                None
            }
            fn is_established(&self, peer: IpAddr) -> bool {
                self.sessions().unwrap().iter().any(|s| s.peer == peer && s.established)
            }
            fn kill9(&mut self) {
                <$t>::kill9(self)
            }
            fn restart(&mut self) -> Result<()> {
                <$t>::restart(self)
            }
        }
    )*};
}

daemon_middle!(Bird, Frr, Gobgp);

/// Starts the middle speaker on `host` with `cfg` (translated for a daemon:
/// same peers, roles, passwords, cluster id; graceful restart on, as
/// tortie-rr's default).
pub fn start_middle(m: MiddleKind, host: &Host, cfg: TortieConfig) -> Box<dyn Middle> {
    match m {
        MiddleKind::Tortie => Box::new(TortieRr::start(&host.ns, cfg).unwrap()),
        daemon => {
            let mut d = DaemonConfig::new(host, cfg.asn).graceful_restart();
            d.router_id = cfg.router_id;
            d.cluster_id = cfg.cluster_id;
            for p in &cfg.peers {
                let mut n = Neighbor::new(p.address, p.asn);
                n.rr_client = p.client;
                n.password = p.password.clone();
                n.passive = p.passive;
                n.port = p.port;
                d.neighbors.push(n);
            }
            match daemon {
                MiddleKind::Frr => Box::new(Frr::start(&host.ns, d).unwrap()),
                MiddleKind::Gobgp => Box::new(Gobgp::start(&host.ns, d).unwrap()),
                _ => Box::new(Bird::start(&host.ns, d).unwrap()),
            }
        }
    }
}

/// tortie-rr on `rr` peering with `peers` over v4 and v6 (`client` for iBGP
/// reflection when `rr_clients`).
fn tortie_for(rr: &Host, peers: &[(&Host, u32)], rr_clients: bool) -> TortieConfig {
    let mut cfg = TortieConfig::new(rr.v4, AS_RR);
    if rr_clients {
        cfg.cluster_id = Some(CLUSTER);
    }
    for (h, asn) in peers {
        for a in [IpAddr::from(h.v4), IpAddr::from(h.v6)] {
            cfg = cfg.peer(a, *asn, |p| p.client = rr_clients && *asn == AS_RR);
        }
    }
    cfg
}

/// Waits for the v4 and v6 sessions between the middle and `d` on `h`.
fn both_up(rr: &dyn Middle, rr_host: &Host, d: &dyn BgpDaemon, h: &Host) {
    for (peer, me) in [
        (IpAddr::from(h.v4), IpAddr::from(rr_host.v4)),
        (h.v6.into(), rr_host.v6.into()),
    ] {
        rr.up(peer, WAIT).unwrap();
        d.wait_established(me, WAIT).unwrap();
    }
}

/// Topology:
///
/// ```text
///   h1 tortie-rr AS 64512 ------+------ h2 source (kind), AS 64512 | 65002
///   (clusterId when iBGP)       |
///                               +------ h3 sink (kind),   AS 64512 | 65003
/// ```
///
/// Checks:
/// 1. The four sessions (v4 + v6 to h2 and h3) are Established, in
///    tortie-rr's /status and in the daemons.
/// 2. h2's 10.2.0.0/24 and fd10:2::/64 reach h3. iBGP: next hop h2, empty AS
///    path. eBGP: AS path [64512, 65002], next hop h1 or h2 (third-party
///    next hop on a shared segment is allowed).
/// 3. tortie-rr's /status counts them: prefixes_received 1 on each of h2's
///    sessions, prefixes_advertised >= 1 on each of h3's.
/// 4. A prefix announced on h2 at run time (10.12.0.0/24) reaches h3.
/// 5. Withdrawing 10.2.0.0/24 and fd10:2::/64 on h2 removes them from h3;
///    10.12.0.0/24 stays.
pub fn routes_flow(m: MiddleKind, kind: Kind, ebgp: bool) {
    let topo = Topology::new(3).unwrap();
    let (h1, h2, h3) = (&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]);
    let (as2, as3) = if ebgp { (65002, 65003) } else { (AS_RR, AS_RR) };
    let rr = start_middle(m, h1, tortie_for(h1, &[(h2, as2), (h3, as3)], !ebgp));
    let mut src = kind
        .start(
            h2,
            DaemonConfig::new(h2, as2)
                .peer_both(h1, AS_RR, |n| n)
                .originate(&["10.2.0.0/24", "fd10:2::/64"]),
        )
        .unwrap();
    let mut sink_cfg = DaemonConfig::new(h3, as3).peer_both(h1, AS_RR, |n| n);
    // The middle sets itself as next hop on eBGP, with its link-local
    // address besides (RFC 2545 §3: h3 shares its subnet), which FRR's
    // bgpd keeps only with zebra.
    sink_cfg.kernel = kind == Kind::Frr;
    let sink = kind.start(h3, sink_cfg).unwrap();
    // 1.
    both_up(rr.as_ref(), h1, src.as_ref(), h2);
    both_up(rr.as_ref(), h1, sink.as_ref(), h3);
    // 2.
    let check = |r: &Route| -> Result<(), String> {
        let (src_nh, rr_nh): (IpAddr, IpAddr) = if r.prefix.addr().is_ipv4() {
            (h2.v4.into(), h1.v4.into())
        } else {
            (h2.v6.into(), h1.v6.into())
        };
        let nh_ok = r.next_hop == Some(src_nh) || (ebgp && r.next_hop == Some(rr_nh));
        if !nh_ok {
            return Err(format!("next hop {:?}", r.next_hop));
        }
        let path = if ebgp { vec![AS_RR, as2] } else { vec![] };
        if r.as_path != path {
            return Err(format!("AS path {:?}, want {path:?}", r.as_path));
        }
        Ok(())
    };
    for p in ["10.2.0.0/24", "fd10:2::/64"] {
        sink.wait_route(net(p), WAIT, &check).unwrap();
    }
    // 3.
    for a in [IpAddr::from(h2.v4), h2.v6.into()] {
        if let Some(n) = rr.counter(a, "prefixesReceived") {
            assert_eq!(n, 1, "prefixes_received from {a}");
        }
    }
    for a in [IpAddr::from(h3.v4), h3.v6.into()] {
        if let Some(n) = rr.counter(a, "prefixesAdvertised") {
            assert!(n >= 1, "prefixes_advertised to {a}: {n}");
        }
    }
    // 4.
    src.announce(net("10.12.0.0/24")).unwrap();
    sink.wait_route(net("10.12.0.0/24"), WAIT, &check).unwrap();
    // 5.
    for p in ["10.2.0.0/24", "fd10:2::/64"] {
        src.withdraw(net(p)).unwrap();
    }
    for p in ["10.2.0.0/24", "fd10:2::/64"] {
        sink.wait_no_route(net(p), WAIT).unwrap();
    }
    sink.wait_route(net("10.12.0.0/24"), WAIT, &check).unwrap();
}

/// Topology: h1 tortie-rr -- h2 `kind`, iBGP, one IPv4 session with a TCP
/// MD5 password.
///
/// Checks:
/// 1. Same password on both sides: Established on both, and h2's
///    10.2.0.0/24 is counted as received by tortie-rr.
/// 2. (fresh namespaces) tortie-rr's password differs from h2's: the
///    session is never Established on either side during 8 s (a good one
///    takes ~2 s).
pub fn md5(m: MiddleKind, kind: Kind) {
    for (rr_pw, daemon_pw, good) in [("s3cret", "s3cret", true), ("s3cret", "wrong", false)] {
        let topo = Topology::new(2).unwrap();
        let (h1, h2) = (&topo.hosts[0], &topo.hosts[1]);
        let cfg = TortieConfig::new(h1.v4, AS_RR)
            .peer(h2.v4, AS_RR, |p| p.password = Some(rr_pw.to_string()));
        let rr = start_middle(m, h1, cfg);
        let d = kind
            .start(
                h2,
                DaemonConfig::new(h2, AS_RR)
                    .neighbor(Neighbor::new(h1.v4, AS_RR).password(daemon_pw))
                    .originate(&["10.2.0.0/24"]),
            )
            .unwrap();
        if good {
            // 1.
            rr.up(h2.v4.into(), WAIT).unwrap();
            d.wait_established(h1.v4.into(), WAIT).unwrap();
            if rr.counter(h2.v4.into(), "prefixesReceived").is_some() {
                tortie_tests::wait_until(WAIT, "tortie-rr to count h2's prefix", || {
                    match rr.counter(h2.v4.into(), "prefixesReceived") {
                        Some(1) => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                })
                .unwrap();
            }
        } else {
            // 2.
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(8) {
                assert!(
                    !rr.is_established(h2.v4.into()),
                    "wrong MD5 key accepted by the middle"
                );
                let s = d.sessions().unwrap();
                assert!(
                    s.iter().all(|s| !s.established),
                    "{} accepted a wrong key: {s:?}",
                    kind_name(kind)
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

/// Topology: as [`routes_flow`] iBGP: h2 and h3 (`kind`) are tortie-rr's
/// route reflector clients (clusterId 10.255.0.1) with no session between
/// them.
///
/// Checks:
/// 1. Sessions Established.
/// 2. h2's v4 and v6 prefixes reach h3 with next hop h2 (unchanged),
///    LOCAL_PREF 100, ORIGINATOR_ID = h2's router id (172.30.0.2) and
///    CLUSTER_LIST = [10.255.0.1].
/// 3. h3's own prefix 10.3.0.0/24 reaches h2 with ORIGINATOR_ID 172.30.0.3:
///    reflection works both ways.
pub fn reflection(m: MiddleKind, kind: Kind) {
    let topo = Topology::new(3).unwrap();
    let (h1, h2, h3) = (&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]);
    let rr = start_middle(m, h1, tortie_for(h1, &[(h2, AS_RR), (h3, AS_RR)], true));
    let c2 = kind
        .start(
            h2,
            DaemonConfig::new(h2, AS_RR)
                .peer_both(h1, AS_RR, |n| n)
                .originate(&["10.2.0.0/24", "fd10:2::/64"]),
        )
        .unwrap();
    let c3 = kind
        .start(
            h3,
            DaemonConfig::new(h3, AS_RR)
                .peer_both(h1, AS_RR, |n| n)
                .originate(&["10.3.0.0/24"]),
        )
        .unwrap();
    // 1.
    both_up(rr.as_ref(), h1, c2.as_ref(), h2);
    both_up(rr.as_ref(), h1, c3.as_ref(), h3);
    // 2.
    let reflected = |origin: &Host| {
        let (v4, v6) = (origin.v4, origin.v6);
        move |r: &Route| -> Result<(), String> {
            let nh: IpAddr = if r.prefix.addr().is_ipv4() {
                v4.into()
            } else {
                v6.into()
            };
            if r.next_hop != Some(nh) {
                return Err(format!("next hop {:?}, want {nh}", r.next_hop));
            }
            if r.originator_id != Some(v4) {
                return Err(format!("ORIGINATOR_ID {:?}, want {v4}", r.originator_id));
            }
            if r.cluster_list != vec![CLUSTER] {
                return Err(format!(
                    "CLUSTER_LIST {:?}, want [{CLUSTER}]",
                    r.cluster_list
                ));
            }
            if r.local_pref.is_some_and(|lp| lp != 100) {
                return Err(format!("LOCAL_PREF {:?}", r.local_pref));
            }
            Ok(())
        }
    };
    for p in ["10.2.0.0/24", "fd10:2::/64"] {
        c3.wait_route(net(p), WAIT, &reflected(h2)).unwrap();
    }
    // 3.
    c2.wait_route(net("10.3.0.0/24"), WAIT, &reflected(h3))
        .unwrap();
}

/// Topology: as [`routes_flow`] iBGP with graceful restart on in h2 and h3.
///
/// Checks:
/// 1. h2's v4 and v6 prefixes reach h3, not stale.
/// 2. `kill -9` tortie-rr: h3 keeps both routes and marks them stale.
/// 3. tortie-rr restarts with the same state dir: sessions come back and
///    h3's routes are fresh (not stale) again.
/// 4. Throughout 2-3 the routes never leave h3's RIB (polled every ~100 ms;
///    the BIRD reference run checks this during 2 only, see below).
pub fn graceful_restart(m: MiddleKind, kind: Kind) {
    let topo = Topology::new(3).unwrap();
    let (h1, h2, h3) = (&topo.hosts[0], &topo.hosts[1], &topo.hosts[2]);
    let mut rr = start_middle(m, h1, tortie_for(h1, &[(h2, AS_RR), (h3, AS_RR)], true));
    let src = kind
        .start(
            h2,
            DaemonConfig::new(h2, AS_RR)
                .graceful_restart()
                .peer_both(h1, AS_RR, |n| n)
                .originate(&["10.2.0.0/24", "fd10:2::/64"]),
        )
        .unwrap();
    let sink = kind
        .start(
            h3,
            DaemonConfig::new(h3, AS_RR)
                .graceful_restart()
                .peer_both(h1, AS_RR, |n| n),
        )
        .unwrap();
    both_up(rr.as_ref(), h1, src.as_ref(), h2);
    both_up(rr.as_ref(), h1, sink.as_ref(), h3);
    let prefixes = [net("10.2.0.0/24"), net("fd10:2::/64")];
    // 1.
    for p in prefixes {
        sink.wait_route(p, WAIT, &|r| {
            if r.stale {
                Err("stale".into())
            } else {
                Ok(())
            }
        })
        .unwrap();
    }
    // 2. + 4.
    rr.kill9();
    poll_rib(sink.as_ref(), &prefixes, "stale after kill -9", true, |r| {
        r.stale
    });
    // 3. + 4.
    rr.restart().unwrap();
    // The BIRD reference (restarted with -R) sends End-of-RIB to FRR before
    // the re-learned routes: FRR drops them for a moment. tortie-rr must
    // not, so only the reference run tolerates that gap.
    let strict = m == MiddleKind::Tortie;
    poll_rib(
        sink.as_ref(),
        &prefixes,
        "fresh after the restart",
        strict,
        |r| !r.stale,
    );
    both_up(rr.as_ref(), h1, sink.as_ref(), h3);
}

/// Polls `d`'s RIB every ~100 ms until every prefix has a route satisfying
/// `want`; panics after [`WAIT`], or (when `never_missing`) as soon as a
/// prefix is missing.
fn poll_rib(
    d: &dyn BgpDaemon,
    prefixes: &[IpNet],
    what: &str,
    never_missing: bool,
    want: impl Fn(&Route) -> bool,
) {
    let start = Instant::now();
    loop {
        let mut ok = 0;
        for p in prefixes {
            let routes = d.routes(afi_of(p)).unwrap();
            match routes.iter().find(|r| r.prefix == *p) {
                Some(r) => ok += usize::from(want(r)),
                None if never_missing => {
                    panic!("{p} left {}'s RIB while waiting for {what}", d.kind_name())
                }
                None => {}
            }
        }
        if ok == prefixes.len() {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "{}: routes never {what}",
            d.kind_name()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Bird => "bird",
        Kind::Frr => "frr",
        Kind::Gobgp => "gobgp",
    }
}
