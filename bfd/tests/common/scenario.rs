//! The interop scenario, the same for BIRD and FRR: Tortie in namespace
//! a, the daemon in namespace b (see `common` for the topology), three
//! sessions at 100 ms x 3, a set of them per [`Family`]:
//!
//! - [`Family::Dual`]: IPv4 single hop bound to the interface, IPv6
//!   single hop, IPv4 multihop;
//! - [`Family::Ipv6`]: IPv6 single hop between the global addresses
//!   bound to the interface, IPv6 single hop between the link-local ones
//!   (fe80::a, fe80::b: the interface is required), IPv6 multihop.
//!
//! tcpdump runs in b on its end of the link throughout.
//!
//! Checks:
//! 1. All three Up on both sides; our detection time 300 ms.
//! 2. On the wire (what b received): each of our sessions sends from its
//!    local address and from one source port of its own in 49152-65535
//!    (RFC 5881 §4, RFC 5883 §5), to port 3784 (single hop) or 4784
//!    (multihop), with TTL / Hop Limit 255 (RFC 5881 §5; we send 255 on
//!    multihop too) and DSCP CS6; the daemon's single-hop packets come
//!    with 255 as well.
//! 3. Tortie holds the first session AdminDown: the daemon shows it
//!    down; released, Up again on both sides.
//! 4. The cut: the daemon's end of the link goes down (`Dual`), or
//!    nftables in b drops every packet in and out (`Ipv6`: a link down
//!    would take the link-local addresses away): each of our sessions is
//!    Down ("control detection time expired") within [`LIMIT`]. The link
//!    up again or the drop removed: Up again.
//! 5. Our service stops without a word (no AdminDown): the daemon sees
//!    all three down (its detection, polled every 20 ms). A new service
//!    brings them Up again.
//! 6. The daemon is killed (SIGKILL): each of our sessions Down within
//!    [`LIMIT`].
//!
//! The detection times are printed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bfd::{Diag, SessionConfig, State, Timers};
use tokio::sync::watch;
use tortie_testkit::capture::Capture;

use super::daemons::{Daemon, Kind};
use super::*;

/// Event to Down at most: 300 ms after the last packet, plus our reaction
/// and the `ip`/`nft`/`kill` command, on a loaded machine running tests
/// side by side in a debug build (an idle one shows 220-300 ms). It only
/// has to tell a detection at the negotiated 100 ms x 3 from one at the
/// 1 s of a session that never got there (3 s); the <= 350 ms target is
/// measured by `cargo bench -p bfd --bench sessions`.
const LIMIT: Duration = Duration::from_millis(1500);
/// DSCP CS6 in the TOS / Traffic Class byte.
const CS6: u8 = 0xc0;

/// Which set of sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4 single hop (bound to the interface), IPv6 single hop, IPv4
    /// multihop; cut by taking the link down.
    Dual,
    /// IPv6 single hop on global addresses (bound to the interface) and
    /// on link-local ones, IPv6 multihop; cut by nftables.
    Ipv6,
}

type Sessions = Vec<(
    &'static str,
    SessionConfig,
    watch::Receiver<bfd::SessionStatus>,
)>;

/// Runs the scenario against `kind`; `test` names it in a skip.
pub async fn run(kind: Kind, family: Family, test: &str) {
    if let Some(why) = kind.missing() {
        tortie_testkit::missing(test, &why);
        return;
    }
    for (tool, pkg) in [("tcpdump", "tcpdump"), ("nft", "nftables")] {
        if !have(tool) {
            tortie_testkit::missing(test, &format!("no {tool} (apt-get install {pkg})"));
            return;
        }
    }
    let Some(link) = Link::new(test) else {
        return;
    };
    let wire = Capture::start(&link.b, IF_B, "udp and (port 3784 or port 4784)").unwrap();
    let configs = configs(family);
    let cfgs: Vec<SessionConfig> = configs.iter().map(|(_, c)| c.clone()).collect();
    let mut peer = Daemon::start(kind, &link.b, &cfgs);
    let name = kind.name();
    let mut bfd = NsBfd::start(&link.a);
    let mut ours = add_all(&bfd, &configs).await;

    // 1.
    let up_both = |peer: &Daemon| peer.all_in(3, "up");
    for (what, _, rx) in ours.iter_mut() {
        wait_up(rx, what).await;
        wait_status(rx, Duration::from_secs(5), what, |s| {
            s.detection_time == Some(Duration::from_millis(300))
        })
        .await;
    }
    poll_until(
        Duration::from_secs(10),
        &format!("{name}: 3 sessions up"),
        || up_both(&peer),
    )
    .await;

    // 2.
    settle(&mut ours).await;
    on_the_wire(&wire, &ours, name);

    // 3.
    let first = ours[0].1.key();
    bfd.handle.set_admin_down(&first, true).await.unwrap();
    assert_eq!(ours[0].2.borrow().state, State::AdminDown);
    poll_until(
        Duration::from_secs(5),
        &format!("{name}: {} down", ours[0].0),
        || {
            let v = peer.sessions()?;
            let downs = v.iter().filter(|p| p.state == "down").count();
            (downs == 1).then_some(()).ok_or(format!("{v:?}"))
        },
    )
    .await;
    bfd.handle.set_admin_down(&first, false).await.unwrap();
    wait_up(&mut ours[0].2, "after AdminDown").await;
    poll_until(
        Duration::from_secs(10),
        &format!("{name}: up again"),
        || up_both(&peer),
    )
    .await;

    // 4.
    settle(&mut ours).await;
    let t0 = Instant::now();
    match family {
        Family::Dual => {
            link.peer_link(false);
            detected(&mut ours, t0, &format!("tortie<-{name} link down")).await;
            link.peer_link(true);
        }
        Family::Ipv6 => {
            let cut = link.cut_peer();
            detected(&mut ours, t0, &format!("tortie<-{name} cut by nft")).await;
            drop(cut);
        }
    }
    for (what, _, rx) in ours.iter_mut() {
        wait_up(rx, &format!("{what} after the cut")).await;
    }
    poll_until(
        Duration::from_secs(10),
        &format!("{name}: up after the cut"),
        || up_both(&peer),
    )
    .await;

    // 5.
    settle(&mut ours).await;
    let t0 = Instant::now();
    drop(bfd);
    let mut seen = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if peer.all_in(3, "down").is_ok() {
            seen = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.unwrap_or_else(|| {
        panic!(
            "{name} did not see us go: {:?}\n{}",
            peer.sessions(),
            peer.log()
        )
    });
    say(&format!(
        "bfd {name}<-tortie stopped: {name} shows all 3 down within {seen:?} (polled every 20 ms)"
    ));
    bfd = NsBfd::start(&link.a);
    ours = add_all(&bfd, &configs).await;
    for (what, _, rx) in ours.iter_mut() {
        wait_up(rx, &format!("{what} with a new service")).await;
    }
    poll_until(
        Duration::from_secs(10),
        &format!("{name}: up again"),
        || up_both(&peer),
    )
    .await;

    // 6.
    settle(&mut ours).await;
    let t0 = Instant::now();
    peer.kill9();
    detected(&mut ours, t0, &format!("tortie<-{name} killed")).await;
    drop(bfd);
    drop(peer);
    drop(wire);
    drop(link);
}

/// Our three sessions of `family`, named.
fn configs(family: Family) -> Vec<(&'static str, SessionConfig)> {
    let t = Timers::new(Duration::from_millis(100), 3);
    let single =
        |peer: &str, local: &str| SessionConfig::single_hop(ip(peer)).with_local(ip(local));
    let v = match family {
        Family::Dual => vec![
            ("v4", single(B4, A4).with_interface(IF_A)),
            ("v6", single(B6, A6)),
            ("v4 multihop", SessionConfig::multihop(ip(B4), ip(A4))),
        ],
        Family::Ipv6 => vec![
            ("v6 global", single(B6, A6).with_interface(IF_A)),
            ("v6 link-local", single(B6_LL, A6_LL).with_interface(IF_A)),
            ("v6 multihop", SessionConfig::multihop(ip(B6), ip(A6))),
        ],
    };
    v.into_iter().map(|(w, c)| (w, c.with_timers(t))).collect()
}

/// Adds `configs` to the service.
async fn add_all(bfd: &NsBfd, configs: &[(&'static str, SessionConfig)]) -> Sessions {
    let mut v = vec![];
    for (what, cfg) in configs {
        let rx = bfd.handle.add(cfg.clone()).await.unwrap();
        v.push((*what, cfg.clone(), rx));
    }
    v
}

/// Check 2: what b received from each of our sessions and from the
/// daemon's single-hop ones.
fn on_the_wire(wire: &Capture, ours: &Sessions, name: &str) {
    let packets = wire.packets();
    let mut ports = BTreeSet::new();
    for (what, cfg, _) in ours {
        let local = cfg.local.unwrap();
        let port = if cfg.multihop { 4784 } else { 3784 };
        let sent: Vec<_> = packets
            .iter()
            .filter(|p| p.dst == SocketAddr::new(cfg.peer, port) && p.src.ip() == local)
            .collect();
        assert!(
            sent.len() >= 5,
            "{what}: {} packets {local} -> [{}]:{port} captured in b:\n{}",
            sent.len(),
            cfg.peer,
            wire.text()
        );
        let src: BTreeSet<u16> = sent.iter().map(|p| p.src.port()).collect();
        let hops: BTreeSet<u8> = sent.iter().map(|p| p.hop_limit).collect();
        let tos: BTreeSet<u8> = sent.iter().map(|p| p.tos).collect();
        say(&format!(
            "bfd tortie->{name} {what}: {} packets {local} -> [{}]:{port}, source ports {src:?}, \
             TTL/hop limit {hops:?}, TOS {tos:?}",
            sent.len(),
            cfg.peer
        ));
        assert_eq!(src.len(), 1, "{what}: one source port per session: {src:?}");
        let port = *src.first().unwrap();
        assert!(
            (49152..=65535).contains(&port),
            "{what}: source port {port}"
        );
        assert!(
            ports.insert(port),
            "{what}: source port {port} also used by another session"
        );
        assert_eq!(hops, BTreeSet::from([255]), "{what}: TTL / hop limit");
        assert_eq!(tos, BTreeSet::from([CS6]), "{what}: TOS / traffic class");
        if !cfg.multihop {
            let theirs: BTreeSet<u8> = packets
                .iter()
                .filter(|p| p.src.ip() == cfg.peer && p.dst == SocketAddr::new(local, 3784))
                .map(|p| p.hop_limit)
                .collect();
            assert_eq!(
                theirs,
                BTreeSet::from([255]),
                "{what}: {name}'s TTL / hop limit"
            );
        }
    }
}

/// Waits until every session runs at 100 ms both ways.
async fn settle(ours: &mut Sessions) {
    for (what, _, rx) in ours.iter_mut() {
        wait_status(rx, Duration::from_secs(5), what, |s| {
            s.state == State::Up
                && s.detection_time == Some(Duration::from_millis(300))
                && s.tx_interval == Some(Duration::from_millis(100))
        })
        .await;
    }
    // A few packets at the fast rate.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Every session must go Down by detection within [`LIMIT`] of `t0`.
async fn detected(ours: &mut Sessions, t0: Instant, what: &str) {
    for (name, _, rx) in ours.iter_mut() {
        let (took, s) = detection_after(rx, t0, name).await;
        say(&format!(
            "bfd {what} {name}: Down {} ms after (100 ms x 3)",
            took.as_millis()
        ));
        assert_eq!(s.state, State::Down, "{what} {name}");
        assert_eq!(
            s.local_diag,
            Diag::ControlDetectionTimeExpired,
            "{what} {name}"
        );
        assert!(took <= LIMIT, "{what} {name}: detected after {took:?}");
    }
}
