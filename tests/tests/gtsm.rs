//! GTSM (RFC 5082): tortie-rr's `ttlSecurity` (BGPPeer's, same meaning:
//! the peer is this many hops away; send TTL 255, take 256 - hops and up)
//! against BIRD 2 with `ttl security on; multihop N` (how Calico renders
//! `ttlSecurity: N` for BIRD) and against FRR 8.4 bgpd with `neighbor X
//! ttl-security hops N` (bgp_network.c: FRR sends with TTL / hop limit
//! 255, its listener too, and sets IP_MINTTL / IPV6_MINHOPCOUNT 256 - N
//! on the session's socket: before connecting on its own, after the
//! handshake on one it accepted; its listener takes any TTL), in network
//! namespaces. Part of the tortie-rr interop tests (`TORTIE_INTEROP=0`
//! skips them); needs `bird` or FRR (`/usr/lib/frr/bgpd`, `vtysh`),
//! `tcpdump` and the built binaries (`cargo build --workspace --bins`).
//!
//! Topologies:
//!
//! ```text
//! direct:   h1 tortie-rr AS 64512 ---- h2 BIRD or FRR AS 65002
//!           172.30.0.1, fd00:30::1      172.30.0.2, fd00:30::2
//!
//! too far:  a tortie-rr ---- r (forwards) ---- b BIRD or FRR AS 65002
//!           10.61.1.1    10.61.1.2  10.61.2.2   10.61.2.1
//! ```
//!
//! Checks, direct (`gtsm_direct_bird`, `gtsm_direct_frr`):
//! 1. ttlSecurity 1 on both sides (the peer then takes only TTL 255): the
//!    IPv4 and the IPv6 session come up on both sides.
//! 2. Every BGP packet tortie-rr sent arrived at h2 with TTL (hop limit)
//!    255 (tcpdump in h2's namespace).
//! 3. Every BGP packet of the peer's sessions arrived at h1 with TTL (hop
//!    limit) 255: the peer runs GTSM too (without it, eBGP sends TTL 1
//!    (FRR) or 64 (BIRD's `multihop`)).
//!
//! Checks, too far (`gtsm_one_hop_too_far`, `gtsm_one_hop_too_far_frr`):
//! the peer takes 2 hops (it sends 255 and takes 254, what we send arrives
//! with), tortie-rr:
//! 1. ttlSecurity 1, b its only peer: for 12 s no session; b's SYNs are
//!    never answered: the kernel drops them at the listener and counts
//!    them (/status `kernelMinTtlDrops` > 0, no more than the namespace's
//!    `TcpExtTCPMinTTLDrop`); our own connection attempts time out (the
//!    peer's SYN-ACKs come with 254), and b's `lastError` says so.
//! 2. ttlSecurity 1 beside a peer without GTSM (the listener lets every SYN
//!    in), b passive: tortie-rr closes b's connections itself
//!    (`connectionsRefused.ttlSecurity` > 0; `lastError` names TTL 254).
//! 3. ttlSecurity 2: Established; the peer's session packets arrive at a
//!    with TTL 254 (tcpdump in a's namespace): one hop, which 1 did not
//!    allow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tortie_tests::daemons::frr::frr_here;
use tortie_tests::daemons::tortie::{TortieConfig, TortieRr};
use tortie_tests::daemons::{BgpDaemon, DaemonConfig, Kind, Neighbor};
use tortie_tests::netns::{veth, Capture, Host, Netns, Topology};
use tortie_tests::tor::bird_here;
use tortie_tests::{interop_enabled, wait_until};

const AS_RR: u32 = 64512;
const AS_PEER: u32 = 65002;
const WAIT: Duration = Duration::from_secs(20);

/// a, r and b of the "too far" topology, addressed and routed.
struct Line {
    a: Host,
    b: Host,
}

#[test]
fn gtsm_direct_bird() -> Result<()> {
    direct("gtsm_direct_bird", Kind::Bird)
}

#[test]
fn gtsm_direct_frr() -> Result<()> {
    direct("gtsm_direct_frr", Kind::Frr)
}

#[test]
fn gtsm_one_hop_too_far() -> Result<()> {
    one_hop_too_far("gtsm_one_hop_too_far", Kind::Bird)
}

#[test]
fn gtsm_one_hop_too_far_frr() -> Result<()> {
    one_hop_too_far("gtsm_one_hop_too_far_frr", Kind::Frr)
}

// 1., 2., 3. (direct)
fn direct(test: &str, kind: Kind) -> Result<()> {
    if !interop_enabled(test) || !tools(test, kind) {
        return Ok(());
    }
    let topo = Topology::new(2)?;
    let (h1, h2) = (&topo.hosts[0], &topo.hosts[1]);
    let from = |h: &Host| format!("tcp port 179 and (src host {} or src host {})", h.v4, h.v6);
    let at_h2 = h2.ns.capture("eth0", &from(h1))?;
    let at_h1 = h1.ns.capture("eth0", &from(h2))?;
    let peer = kind.start(
        h2,
        DaemonConfig::new(h2, AS_PEER)
            .neighbor(Neighbor::new(h1.v4, AS_RR).ttl_security(1))
            .neighbor(Neighbor::new(h1.v6, AS_RR).ttl_security(1)),
    )?;
    let cfg = TortieConfig::new(h1.v4, AS_RR)
        .peer(h2.v4, AS_PEER, |p| p.ttl_security = Some(1))
        .peer(h2.v6, AS_PEER, |p| p.ttl_security = Some(1));
    let rr = TortieRr::start(&h1.ns, cfg)?;
    // 1.
    for ip in [IpAddr::from(h2.v4), IpAddr::from(h2.v6)] {
        rr.wait_established(ip, WAIT)?;
    }
    for ip in [IpAddr::from(h1.v4), IpAddr::from(h1.v6)] {
        peer.wait_established(ip, WAIT)?;
    }
    // 2., 3. The handshake, OPEN, KEEPALIVE, End-of-RIB of each session.
    for (capture, sender) in [(&at_h2, "tortie-rr"), (&at_h1, peer.kind_name())] {
        let (v4, v6) = wait_until(WAIT, &format!("{sender}'s packets"), || {
            let (v4, v6) = ttls(capture);
            if v4.len() >= 4 && v6.len() >= 4 {
                Ok((v4, v6))
            } else {
                Err(format!("ttl {v4:?}, hop limit {v6:?}"))
            }
        })?;
        assert!(
            v4.iter().chain(&v6).all(|t| *t == 255),
            "{sender}: TTLs {v4:?}, hop limits {v6:?}\n{}",
            capture.text()
        );
    }
    Ok(())
}

// 1., 2., 3. (too far)
fn one_hop_too_far(test: &str, kind: Kind) -> Result<()> {
    if !interop_enabled(test) || !tools(test, kind) {
        return Ok(());
    }
    // r lives to the end: dropping it would cut the line.
    let (a, r, b) = (Netns::new()?, Netns::new()?, Netns::new()?);
    let line = Line::new(&a, &r, &b)?;
    let peer = kind.start(
        &line.b,
        DaemonConfig::new(&line.b, AS_PEER)
            .neighbor(Neighbor::new(line.a.v4, AS_RR).ttl_security(2)),
    )?;
    let b_ip = IpAddr::from(line.b.v4);

    // 1.
    let rr = TortieRr::start(
        &a,
        TortieConfig::new(line.a.v4, AS_RR).peer(b_ip, AS_PEER, |p| p.ttl_security = Some(1)),
    )?;
    never_up(&rr, peer.as_ref(), b_ip, Duration::from_secs(12))?;
    let status = rr.status()?;
    let dropped = status["kernelMinTtlDrops"].as_u64().unwrap_or(0);
    assert!(dropped > 0, "no drop counted: {status}");
    assert_eq!(status["connectionsRefused"]["ttlSecurity"], 0, "{status}");
    let namespace = netstat_min_ttl_drops(&a)?;
    assert!(
        dropped <= namespace,
        "{dropped} > the namespace's {namespace}"
    );
    // Our first attempt times out after 10 s.
    wait_until(WAIT, "b's lastError to tell why", || {
        let why = rr.peer_status(b_ip).map_err(|e| format!("{e:#}"))?["lastError"].to_string();
        if why.contains("timed out")
            && why.contains("ttlSecurity 1: answers arriving with a TTL below 255")
        {
            Ok(())
        } else {
            Err(why)
        }
    })?;
    drop(rr);

    // 2.
    let other: IpAddr = Ipv4Addr::new(10, 61, 1, 9).into();
    let rr = TortieRr::start(
        &a,
        TortieConfig::new(line.a.v4, AS_RR)
            .peer(b_ip, AS_PEER, |p| {
                p.ttl_security = Some(1);
                p.passive = true;
            })
            .peer(other, AS_PEER, |p| p.passive = true),
    )?;
    let refused = wait_until(WAIT, "tortie-rr to refuse b's connections", || {
        let s = rr.status().map_err(|e| format!("{e:#}"))?;
        match s["connectionsRefused"]["ttlSecurity"].as_u64() {
            Some(n) if n > 0 => Ok(n),
            _ => Err(s.to_string()),
        }
    })?;
    never_up(&rr, peer.as_ref(), b_ip, Duration::from_secs(3))?;
    let why = rr.peer_status(b_ip)?["lastError"].to_string();
    assert!(
        why.contains("GTSM refused a connection from 10.61.2.1")
            && why.contains("TTL 254, below 255 (ttlSecurity 1)"),
        "{refused} refused; {why}"
    );
    drop(rr);

    // 3.
    let capture = a.capture("eth0", &format!("tcp port 179 and src host {b_ip}"))?;
    let rr = TortieRr::start(
        &a,
        TortieConfig::new(line.a.v4, AS_RR).peer(b_ip, AS_PEER, |p| p.ttl_security = Some(2)),
    )?;
    rr.wait_established(b_ip, WAIT)?;
    peer.wait_established(line.a.v4.into(), WAIT)?;
    let ttls = wait_until(WAIT, "the peer's packets at a", || match ttls(&capture) {
        (v4, _) if v4.len() >= 4 => Ok(v4),
        (v4, _) => Err(format!("{v4:?}")),
    })?;
    assert!(
        ttls.iter().all(|t| *t == 254),
        "{ttls:?}\n{}",
        capture.text()
    );
    Ok(())
}

// ===== impl Line =====

impl Line {
    /// a -- r -- b on two /24s, r forwarding (every test namespace does).
    fn new(a: &Netns, r: &Netns, b: &Netns) -> Result<Line> {
        veth(a, "eth0", r, "a0")?;
        veth(r, "b0", b, "eth0")?;
        for (ns, dev, cidr) in [
            (a, "eth0", "10.61.1.1/24"),
            (r, "a0", "10.61.1.2/24"),
            (r, "b0", "10.61.2.2/24"),
            (b, "eth0", "10.61.2.1/24"),
        ] {
            ns.add_addr(dev, cidr)?;
            ns.ip(&["link", "set", dev, "up"])?;
        }
        a.ip(&["route", "add", "default", "via", "10.61.1.2"])?;
        b.ip(&["route", "add", "default", "via", "10.61.2.2"])?;
        let host = |ns: &Netns, v4: [u8; 4], n: u16| Host {
            ns: ns.clone(),
            v4: Ipv4Addr::from(v4),
            // Unused (IPv4 sessions only): DaemonConfig wants one.
            v6: Ipv6Addr::new(0xfd00, 0x61, n, 0, 0, 0, 0, 1),
        };
        Ok(Line {
            a: host(a, [10, 61, 1, 1], 1),
            b: host(b, [10, 61, 2, 1], 2),
        })
    }
}

// ===== helpers =====

/// The IPv4 TTLs and IPv6 hop limits seen so far, in order, of the
/// packets a socket sent: not of the resets the kernel sends for segments
/// of a connection already closed (after a collision), which go with the
/// default TTL (64): a socket with a minimum TTL drops them.
fn ttls(capture: &Capture) -> (Vec<u8>, Vec<u8>) {
    let packets = capture.packets();
    let hops = |v4: bool| {
        packets
            .iter()
            .filter(|p| p.src.is_ipv4() == v4 && !p.is_reset())
            .map(|p| p.hop_limit)
            .collect()
    };
    (hops(true), hops(false))
}

/// Whether the daemon of `kind` (BIRD or FRR), `tcpdump` and the
/// tortie-rr binary are here; says why not (a failure under CI=true).
fn tools(test: &str, kind: Kind) -> bool {
    let runs = |argv: &[&str]| {
        std::process::Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let daemon = match kind {
        Kind::Bird => bird_here(test),
        Kind::Frr => frr_here(test),
        Kind::Gobgp => unreachable!("no GTSM test with GoBGP"),
    };
    if !daemon {
        return false;
    }
    if !runs(&["tcpdump", "--version"]) {
        tortie_testkit::missing(test, "no tcpdump (apt-get install tcpdump)");
        return false;
    }
    if let Err(e) = TortieRr::binary() {
        tortie_testkit::missing(test, &format!("{e:#} (cargo build --workspace --bins)"));
        return false;
    }
    true
}

/// Fails if the session with `ip` comes up on either side within `d`.
fn never_up(rr: &TortieRr, peer: &dyn BgpDaemon, ip: IpAddr, d: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < d {
        if rr.peer_status(ip)?["state"] == "Established" {
            bail!("tortie-rr's session with {ip} came up");
        }
        if let Some(s) = peer.sessions()?.iter().find(|s| s.established) {
            bail!(
                "{}'s session with {} came up: {}",
                peer.kind_name(),
                s.peer,
                s.state
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// `TcpExt: TCPMinTTLDrop` of the namespace (`/proc/net/netstat` read
/// from inside it).
fn netstat_min_ttl_drops(ns: &Netns) -> Result<u64> {
    let text = ns.run(&["cat", "/proc/net/netstat"])?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next(), lines.next());
    let (Some(names), Some(values)) = (names, values) else {
        bail!("no TcpExt lines in /proc/net/netstat");
    };
    let at = names
        .split_whitespace()
        .position(|n| n == "TCPMinTTLDrop")
        .context("no TCPMinTTLDrop")?;
    values
        .split_whitespace()
        .nth(at)
        .context("short TcpExt values")?
        .parse()
        .context("TCPMinTTLDrop is no number")
}
