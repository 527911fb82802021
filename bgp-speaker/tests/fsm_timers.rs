//! Timers outside one connection's state x event table, with paused time
//! over in-memory connections: ConnectRetry and its back-off (Idle,
//! Connect, Active), the connect timeout, the OPEN wait of inbound
//! connections, graceful restart on the helper side (restart and stale
//! timers, End-of-RIB) and route selection deferral after our own restart
//! (RFC 4724 §4.1). Every instant is checked to the millisecond.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp_speaker::{LocalRoute, NextHop, PathAttrs, PeerConfig, SessionState, SpeakerConfig};
use common::pipe::{settle, Net, Peer, SPEAKER};
use common::*;
use tokio::time::Instant;

const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn peer_ip() -> IpAddr {
    IpAddr::V4(PEER)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Whether `d` is a retry delay of base `base_ms` (jitter takes off up
/// to a quarter).
fn is_retry(d: Duration, base_ms: u64) -> bool {
    (Duration::from_micros(base_ms * 750)..=ms(base_ms)).contains(&d)
}

async fn state(net: &Net) -> Option<SessionState> {
    net.state(peer_ip()).await
}

/// The NLRI bytes of an UPDATE body.
fn nlri_of(body: &[u8]) -> Vec<u8> {
    let wl = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let al = usize::from(u16::from_be_bytes([body[2 + wl], body[3 + wl]]));
    body[4 + wl + al..].to_vec()
}

fn end_of_rib() -> Vec<u8> {
    update(&[], &[], &[])
}

/// An announcement of 10.1.`third`.0/24 from the peer.
fn announce(third: u8) -> Vec<u8> {
    update(&[], &good_attrs(), &[24, 10, 1, third])
}

/// OPEN (graceful restart, restart time 120 s, R bit as given), our
/// OPEN and KEEPALIVE read, the peer's KEEPALIVE sent: Established.
async fn establish_gr(p: &mut Peer, restarted: bool) {
    p.expect(1, "OPEN").await;
    p.send(&open_gr(AS, 90, PEER.octets(), restarted)).await;
    p.expect(4, "KEEPALIVE").await;
    p.send(&msg(4, &[])).await;
}

// ----- ConnectRetry, Connect, Active -----

/// AutomaticStart dials within 200 ms; each refused attempt (event 18)
/// leaves the peer Active and the next one comes after 250 ms, doubling
/// to the ConnectRetry time (5 s), less up to a quarter of jitter.
#[tokio::test(start_paused = true)]
async fn refused_connections_back_off_to_the_connect_retry_time() {
    let t0 = Instant::now();
    let mut net = Net::start(vec![PeerConfig::new(peer_ip(), AS)]).await;
    let mut d = net.next_dial().await;
    assert!(
        t0.elapsed() <= ms(200),
        "first dial after {:?}",
        t0.elapsed()
    );
    assert_eq!(state(&net).await, Some(SessionState::Connect));
    for base in [250, 500, 1000, 2000, 4000, 5000, 5000] {
        d.refuse();
        let refused = Instant::now();
        assert_eq!(state(&net).await, Some(SessionState::Active));
        d = net.next_dial().await;
        let after = refused.elapsed();
        assert!(
            is_retry(after, base),
            "dialed {after:?} after a refusal, base {base} ms"
        );
    }
}

/// A connection attempt that never completes counts as failed after 10 s.
#[tokio::test(start_paused = true)]
async fn a_connection_attempt_that_hangs_fails_after_10_s() {
    let mut net = Net::start(vec![PeerConfig::new(peer_ip(), AS)]).await;
    let _hung = net.next_dial().await.hang();
    let t0 = Instant::now();
    tokio::time::sleep(secs(9)).await;
    assert_eq!(state(&net).await, Some(SessionState::Connect));
    let _next = net.next_dial().await;
    let after = t0.elapsed();
    assert!(
        is_retry(after - secs(10), 250),
        "dialed again {after:?} after the attempt began"
    );
}

/// Established resets the back-off: after three refusals the next delay
/// was 2 s; a session that came up and went starts again from 250 ms.
#[tokio::test(start_paused = true)]
async fn an_established_session_resets_the_back_off() {
    let mut net = Net::start(vec![PeerConfig::new(peer_ip(), AS)]).await;
    for _ in 0..3 {
        net.next_dial().await.refuse();
    }
    let mut p = net.next_dial().await.accept();
    p.expect(1, "OPEN").await;
    p.send(&open(4, AS, 90, PEER.octets())).await;
    p.expect(4, "KEEPALIVE").await;
    p.send(&msg(4, &[])).await;
    p.expect(2, "End-of-RIB").await;
    p.close().await;
    assert_eq!(p.recv().await, None);
    let down = Instant::now();
    let _again = net.next_dial().await;
    assert!(is_retry(down.elapsed(), 250), "{:?}", down.elapsed());
}

/// A connection the peer opened must bring its OPEN within 30 s (not the
/// 4 minutes of our own connections): then NOTIFICATION 4/0. A passive
/// peer is not dialed afterwards.
#[tokio::test(start_paused = true)]
async fn an_inbound_connection_has_30_s_to_send_its_open() {
    let mut passive = PeerConfig::new(peer_ip(), AS);
    passive.passive = true;
    let mut net = Net::start(vec![passive]).await;
    assert_eq!(state(&net).await, Some(SessionState::Active));
    let mut p = net.connect_from(peer_ip()).await;
    p.expect(1, "OPEN").await;
    let t0 = Instant::now();
    assert_eq!(p.notification().await.map(|n| (n.0, n.1)), Some((4, 0)));
    assert_eq!(t0.elapsed(), secs(30));
    assert_eq!(state(&net).await, Some(SessionState::Active));
    tokio::time::sleep(secs(600)).await;
    assert!(net.try_dial().is_none(), "a passive peer is never dialed");
}

/// While our attempt hangs (Connect), the peer connects to us: that
/// connection becomes the session; the attempt's failure 10 s later
/// changes nothing, and no new attempt is made while Established.
#[tokio::test(start_paused = true)]
async fn the_peer_connecting_while_we_dial_becomes_the_session() {
    let mut net = Net::start(vec![PeerConfig::new(peer_ip(), AS)]).await;
    let _hung = net.next_dial().await.hang();
    let mut p = net.connect_from(peer_ip()).await;
    p.expect(1, "OPEN").await;
    p.send(&open(4, AS, 90, PEER.octets())).await;
    p.expect(4, "KEEPALIVE").await;
    p.send(&msg(4, &[])).await;
    p.expect(2, "End-of-RIB").await;
    assert_eq!(state(&net).await, Some(SessionState::Established));
    tokio::time::sleep(secs(20)).await;
    p.send(&msg(4, &[])).await;
    assert_eq!(state(&net).await, Some(SessionState::Established));
    assert!(net.try_dial().is_none(), "no attempt while Established");
}

// ----- graceful restart, helper side (RFC 4724 §4.2) -----

/// A speaker with one passive peer; returns it with that peer Established
/// (graceful restart) and announcing 10.1.1.0/24 and 10.1.2.0/24.
async fn helper_with_two_stale_candidates(stale_routes_time: u16) -> (Net, Peer) {
    let mut c = SpeakerConfig::new(SPEAKER, AS);
    let mut passive = PeerConfig::new(peer_ip(), AS);
    passive.passive = true;
    c.peers.push(passive);
    c.graceful_restart.stale_routes_time = stale_routes_time;
    let mut net = Net::start_config(c).await;
    let mut p = net.connect_from(peer_ip()).await;
    establish_gr(&mut p, false).await;
    p.send(&announce(1)).await;
    p.send(&announce(2)).await;
    p.send(&end_of_rib()).await;
    let mut learned = 0;
    while learned < 2 {
        learned += net.changes().await.len();
    }
    (net, p)
}

/// The restart time of the graceful restart capability (code 64) in an
/// OPEN's body, if it has one.
fn announced_restart_time(open: &[u8]) -> Option<u16> {
    let params = open.get(10..10 + usize::from(*open.get(9)?))?;
    let mut at = 0;
    while at + 2 <= params.len() {
        let (kind, len) = (params[at], usize::from(params[at + 1]));
        let value = params.get(at + 2..at + 2 + len)?;
        if kind == 2 {
            let mut c = 0;
            while c + 2 <= value.len() {
                let (code, clen) = (value[c], usize::from(value[c + 1]));
                if code == 64 && clen >= 2 {
                    let v = u16::from_be_bytes([value[c + 2], value[c + 3]]);
                    return Some(v & 0x0fff);
                }
                c += 2 + clen;
            }
        }
        at += 2 + len;
    }
    None
}

/// A peer's own restart time (Calico's `maxRestartTime`, BIRD's
/// `graceful restart time`) is what our OPEN announces to it; the others
/// get the speaker's.
#[tokio::test(start_paused = true)]
async fn a_peers_own_restart_time_is_announced_to_it() {
    let other: IpAddr = "10.0.0.3".parse().unwrap();
    let mut c = SpeakerConfig::new(SPEAKER, AS);
    c.graceful_restart.restart_time = 120;
    for (ip, time) in [(peer_ip(), Some(300)), (other, None)] {
        let mut passive = PeerConfig::new(ip, AS);
        passive.passive = true;
        passive.restart_time = time;
        c.peers.push(passive);
    }
    let net = Net::start_config(c).await;
    let mut p = net.connect_from(peer_ip()).await;
    let open = p.expect(1, "OPEN").await;
    assert_eq!(announced_restart_time(&open), Some(300));
    let mut q = net.connect_from(other).await;
    let open = q.expect(1, "OPEN").await;
    assert_eq!(announced_restart_time(&open), Some(120));
}

fn withdrawn(changes: &[bgp_speaker::BestPathChange]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.best.is_none())
        .map(|c| c.prefix.to_string())
        .collect()
}

/// The peer's connection fails: its routes stay (stale) for exactly its
/// restart time (120 s, from its OPEN), then go.
#[tokio::test(start_paused = true)]
async fn stale_routes_stay_exactly_the_restart_time() {
    let (mut net, mut p) = helper_with_two_stale_candidates(360).await;
    p.close().await;
    assert_eq!(p.notification().await, None, "closed quietly");
    let t0 = Instant::now();
    assert_eq!(state(&net).await, Some(SessionState::Active));
    assert_eq!(net.h.fresh_status().await.unwrap().loc_rib_prefixes, 2);
    let gone = net.changes().await;
    assert_eq!(t0.elapsed(), secs(120));
    assert_eq!(withdrawn(&gone), ["10.1.1.0/24", "10.1.2.0/24"]);
}

/// The peer comes back (R bit) within its restart time and announces one
/// of its two routes again: at its End-of-RIB the other goes, at that
/// instant; the one sent again never changed.
#[tokio::test(start_paused = true)]
async fn the_end_of_rib_of_a_restarted_peer_sweeps_what_it_did_not_send_again() {
    let (mut net, mut p) = helper_with_two_stale_candidates(360).await;
    p.close().await;
    assert_eq!(p.notification().await, None, "closed quietly");
    tokio::time::sleep(secs(30)).await;
    let mut p = net.connect_from(peer_ip()).await;
    establish_gr(&mut p, true).await;
    p.send(&announce(1)).await;
    tokio::time::sleep(secs(10)).await;
    let eor = Instant::now();
    p.send(&end_of_rib()).await;
    let changes = net.changes().await;
    assert_eq!(eor.elapsed(), Duration::ZERO, "swept at the End-of-RIB");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(withdrawn(&changes), ["10.1.2.0/24"]);
}

/// The peer comes back but sends no End-of-RIB: what it did not announce
/// again goes when the stale routes time (here 60 s) after Established
/// runs out.
#[tokio::test(start_paused = true)]
async fn without_end_of_rib_stale_routes_go_at_the_stale_routes_time() {
    let (mut net, mut p) = helper_with_two_stale_candidates(60).await;
    p.close().await;
    assert_eq!(p.notification().await, None, "closed quietly");
    tokio::time::sleep(secs(30)).await;
    let mut p = net.connect_from(peer_ip()).await;
    establish_gr(&mut p, true).await;
    let up = Instant::now();
    p.send(&announce(1)).await;
    let changes = net.changes().await;
    assert_eq!(up.elapsed(), secs(60));
    assert_eq!(withdrawn(&changes), ["10.1.2.0/24"]);
    assert_eq!(net.h.fresh_status().await.unwrap().loc_rib_prefixes, 1);
}

// ----- route selection deferral after our restart (RFC 4724 §4.1) -----

/// A restarted speaker (R bit) with one passive peer and one local route.
async fn restarted_speaker() -> Net {
    let mut c = SpeakerConfig::new(SPEAKER, AS);
    let mut passive = PeerConfig::new(peer_ip(), AS);
    passive.passive = true;
    c.peers.push(passive);
    restarted(c).await
}

/// Starts `c` as a speaker that restarted (restart time 120 s, so the
/// deferral time is 60 s) and originates 10.50.0.0/24.
async fn restarted(mut c: SpeakerConfig) -> Net {
    c.graceful_restart.restarting = true;
    c.graceful_restart.restart_time = 120;
    let net = Net::start_config(c).await;
    net.h
        .originate(vec![LocalRoute {
            prefix: "10.50.0.0/24".parse().unwrap(),
            attrs: PathAttrs::local(NextHop::V4(Ipv4Addr::new(192, 168, 5, 1))),
        }])
        .await
        .unwrap();
    net
}

/// Our routes wait for the peer's End-of-RIB (sent at 20 s), and go at
/// that instant; nothing was sent before them.
#[tokio::test(start_paused = true)]
async fn after_a_restart_routes_go_at_the_peers_end_of_rib() {
    let t0 = Instant::now();
    let net = restarted_speaker().await;
    tokio::time::sleep(secs(5)).await;
    let mut p = net.connect_from(peer_ip()).await;
    establish_gr(&mut p, false).await;
    tokio::time::sleep(secs(15)).await;
    p.send(&end_of_rib()).await;
    let body = p.expect(2, "our route").await;
    assert_eq!(t0.elapsed(), secs(20));
    assert_eq!(nlri_of(&body), [24, 10, 50, 0]);
    assert_eq!(p.expect(2, "End-of-RIB").await, [0, 0, 0, 0]);
    assert!(!net.h.fresh_status().await.unwrap().deferring);
}

/// A peer that never sends End-of-RIB gets our routes when the deferral
/// timer (half the restart time: 60 s from our start) expires.
#[tokio::test(start_paused = true)]
async fn after_a_restart_routes_go_at_the_deferral_time_without_end_of_rib() {
    let t0 = Instant::now();
    let net = restarted_speaker().await;
    let mut p = net.connect_from(peer_ip()).await;
    establish_gr(&mut p, false).await;
    settle().await;
    assert!(net.h.fresh_status().await.unwrap().deferring);
    loop {
        let (t, body) = p.recv().await.expect("session up");
        if t == 2 {
            assert_eq!(nlri_of(&body), [24, 10, 50, 0]);
            break;
        }
        assert_eq!(t, 4, "only KEEPALIVEs before the routes");
    }
    assert_eq!(t0.elapsed(), secs(60));
}

/// A restarted speaker (restart time 120 s: deferral 60 s) that accepts
/// any peer of 10.0.0.0/24, waits for the End-of-RIB of the peers it is
/// told of, and originates 10.50.0.0/24.
async fn restarted_reflector(wait_for: &[&str]) -> Net {
    let mut c = SpeakerConfig::new(SPEAKER, AS);
    c.dynamic_peers.push(bgp_speaker::DynamicPeerConfig {
        rr_client: true,
        ..bgp_speaker::DynamicPeerConfig::new("10.0.0.0/24".parse().unwrap(), AS)
    });
    c.graceful_restart.wait_for = wait_for.iter().map(|a| a.parse().unwrap()).collect();
    restarted(c).await
}

/// A peer from `addr` connects and comes up (graceful restart).
async fn dynamic_peer_up(net: &Net, addr: &str) -> Peer {
    let ip: Ipv4Addr = addr.parse().unwrap();
    let mut p = net.connect_from(IpAddr::V4(ip)).await;
    p.expect(1, "OPEN").await;
    p.send(&open_gr(AS, 90, ip.octets(), false)).await;
    p.expect(4, "KEEPALIVE").await;
    p.send(&msg(4, &[])).await;
    p
}

/// The first UPDATE a peer gets, past KEEPALIVEs: its NLRI.
async fn first_routes(p: &mut Peer) -> Vec<u8> {
    loop {
        match p.recv().await.expect("session up") {
            (2, body) => return nlri_of(&body),
            (4, _) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// After a restart, routes wait for the End-of-RIB of every listed
/// dynamic peer (peers the configuration does not name): the first sends
/// it at 5 s, the second connects at 30 s and sends it at 40 s, and both
/// get the routes at 40 s, not before.
#[tokio::test(start_paused = true)]
async fn after_a_restart_routes_wait_for_every_listed_dynamic_peer() {
    let t0 = Instant::now();
    let net = restarted_reflector(&["10.0.0.2", "10.0.0.3"]).await;
    let mut a = dynamic_peer_up(&net, "10.0.0.2").await;
    tokio::time::sleep(secs(5)).await;
    a.send(&end_of_rib()).await;
    tokio::time::sleep(secs(25)).await;
    let mut b = dynamic_peer_up(&net, "10.0.0.3").await;
    tokio::time::sleep(secs(10)).await;
    b.send(&end_of_rib()).await;
    for p in [&mut a, &mut b] {
        assert_eq!(first_routes(p).await, [24, 10, 50, 0]);
        assert_eq!(t0.elapsed(), secs(40));
    }
}

/// A listed address that no configured peer or dynamic prefix covers (a
/// restart marker from an older configuration) is not waited for: the
/// one listed peer that can connect sends End-of-RIB at 5 s and gets the
/// routes then, not at the deferral time (60 s).
#[tokio::test(start_paused = true)]
async fn after_a_restart_peers_that_cannot_connect_are_not_waited_for() {
    let t0 = Instant::now();
    let net = restarted_reflector(&["10.0.0.2", "10.9.9.9"]).await;
    let mut a = dynamic_peer_up(&net, "10.0.0.2").await;
    tokio::time::sleep(secs(5)).await;
    a.send(&end_of_rib()).await;
    assert_eq!(first_routes(&mut a).await, [24, 10, 50, 0]);
    assert_eq!(t0.elapsed(), secs(5));
    assert!(!net.h.fresh_status().await.unwrap().deferring);
}

/// Hold time 0 (RFC 4271 §4.2): no keepalives and no hold timer; the
/// session stays up in silence (3 hours here).
#[tokio::test(start_paused = true)]
async fn hold_time_zero_means_no_keepalives_and_no_hold_timer() {
    let mut passive = PeerConfig::new(peer_ip(), AS);
    passive.passive = true;
    let net = Net::start(vec![passive]).await;
    let mut p = net.connect_from(peer_ip()).await;
    p.expect(1, "OPEN").await;
    p.send(&open(4, AS, 0, PEER.octets())).await;
    p.expect(4, "KEEPALIVE").await;
    p.send(&msg(4, &[])).await;
    p.expect(2, "End-of-RIB").await;
    assert!(p.quiet_for(secs(3 * 3600)).await, "nothing in 3 hours");
    let st = net.h.fresh_status().await.unwrap();
    assert_eq!(st.peers[0].state, SessionState::Established);
    assert_eq!(
        st.peers[0]
            .negotiated
            .as_ref()
            .map(|n| (n.hold_time, n.keepalive)),
        Some((0, 0))
    );
}

/// The hold timer runs while a write waits: a peer that reads nothing
/// (4 KiB of buffer for 20 KB of routes) and sends nothing is closed 90 s
/// after its last message (4/0), plus the 2 s the NOTIFICATION is given
/// to get out, not never.
#[tokio::test(start_paused = true)]
async fn the_hold_timer_expires_while_a_write_waits() {
    let (net, _p, up) = a_peer_that_reads_nothing().await;
    let (down, why) = down_at(&net).await;
    assert!(why.contains("hold timer expired (90 s"), "{why}");
    assert_eq!(down - up, secs(92));
}

/// RFC 9687: a peer that sends keepalives but reads nothing is closed
/// when nothing could be written for the send hold time (8 minutes, more
/// than twice the hold time), plus the 2 s given to the NOTIFICATION.
#[tokio::test(start_paused = true)]
async fn the_send_hold_timer_closes_a_peer_that_reads_nothing() {
    let (net, mut p, up) = a_peer_that_reads_nothing().await;
    let keepalives = async {
        loop {
            tokio::time::sleep(secs(30)).await;
            p.send(&msg(4, &[])).await;
        }
    };
    let (down, why) = tokio::select! {
        d = down_at(&net) => d,
        _ = keepalives => unreachable!(),
    };
    assert!(why.contains("send hold timer expired"), "{why}");
    assert_eq!(down - up, secs(482));
}

/// A passive peer whose connection holds 4 KiB, Established with 100
/// routes of ~200 bytes to send (more than it holds); the instant it came
/// up. The peer never reads again.
async fn a_peer_that_reads_nothing() -> (Net, Peer, Instant) {
    let mut passive = PeerConfig::new(peer_ip(), AS);
    passive.passive = true;
    let net = Net::start(vec![passive]).await;
    let table = (0..100u32)
        .map(|i| LocalRoute {
            prefix: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))).into(),
            attrs: PathAttrs {
                med: Some(i),
                communities: (0..40).map(|k| 0xfde8_0000 + k).collect(),
                ..PathAttrs::local(NextHop::V4(Ipv4Addr::new(192, 168, 5, 1)))
            },
        })
        .collect();
    net.h.originate(table).await.unwrap();
    let mut p = net.connect_from_with(peer_ip(), 4096).await;
    p.expect(1, "OPEN").await;
    p.send(&open(4, AS, 90, PEER.octets())).await;
    p.expect(4, "KEEPALIVE").await;
    p.send(&msg(4, &[])).await;
    let up = Instant::now();
    (net, p, up)
}

/// Waits for the peer to leave Established; the instant, and why.
async fn down_at(net: &Net) -> (Instant, String) {
    let mut w = net.h.watch_status();
    loop {
        w.changed().await.unwrap();
        let st = w.borrow_and_update().clone();
        if let Some(p) = st.peers.iter().find(|p| p.address == peer_ip()) {
            if p.state != SessionState::Established && p.flaps > 0 {
                return (Instant::now(), p.last_error.clone().unwrap_or_default());
            }
        }
    }
}
