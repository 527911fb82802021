//! BFD drives BGP (RFC 5882, RFC 9384), with paused time: the speaker's
//! BFD service and the peer's on an in-memory wire (`common::bfd_wire`),
//! the BGP session on a pipe (`common::pipe`), so every instant is exact.
//!
//! ```text
//!  speaker 10.0.0.1 ==BGP (pipe)== test peer 10.0.0.2
//!          BFD ------(wire)------- BFD (a bfd::Bfd of the test's)
//! ```
//!
//! The pipe's addresses are no subnet of this host's: the speaker makes a
//! multihop session (RFC 5883), which the peer's service matches.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bfd::{BfdHandle, SessionConfig, SessionKey, SessionStatus, State, Timers};
use bgp_speaker::{BfdConfig, PeerConfig, PeerStatus, SessionState, SpeakerConfig};
use common::bfd_wire::Wire;
use common::pipe::{settle, Net, Peer, SPEAKER};
use common::*;
use tokio::sync::watch;
use tokio::time::Instant;

const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn peer_ip() -> IpAddr {
    IpAddr::V4(PEER)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fast() -> BfdConfig {
    BfdConfig {
        min_rx: ms(100),
        min_tx: ms(100),
        multiplier: 3,
        directly_connected_only: false,
    }
}

fn config(bfd: BfdConfig) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(SPEAKER, AS);
    c.peers.push(PeerConfig {
        bfd: Some(bfd),
        ..PeerConfig::new(peer_ip(), AS)
    });
    c
}

/// A speaker with one BFD peer, Established, one route learned, BFD Up.
struct Setup {
    net: Net,
    wire: Wire,
    /// The peer's BFD service, its session and that session's status.
    peer_bfd: BfdHandle,
    key: SessionKey,
    status: watch::Receiver<SessionStatus>,
    p: Peer,
}

async fn setup(open: Vec<u8>) -> Setup {
    let wire = Wire::default();
    let ours = wire.node(IpAddr::V4(SPEAKER), 1);
    let peer_bfd = wire.node(peer_ip(), 2);
    let mut net = Net::start_with_bfd(config(fast()), ours).await;
    let cfg = SessionConfig::multihop(IpAddr::V4(SPEAKER), peer_ip())
        .with_timers(Timers::new(ms(100), 3));
    let key = cfg.key();
    let status = peer_bfd.add(cfg).await.unwrap();
    let mut p = net.next_dial().await.accept();
    establish(&mut p, &open).await;
    p.send(&update(&[], &good_attrs(), &NLRI)).await;
    let changes = net.changes().await;
    assert!(changes[0].best.is_some(), "{changes:?}");
    let mut s = Setup {
        net,
        wire,
        peer_bfd,
        key,
        status,
        p,
    };
    s.wait_peer(|x| x.state == State::Up, "BFD Up").await;
    // Past the Poll Sequence that takes both to 100 ms.
    tokio::time::sleep(ms(2000)).await;
    s
}

async fn establish(p: &mut Peer, open: &[u8]) {
    p.expect(1, "OPEN").await;
    p.send(open).await;
    p.expect(4, "KEEPALIVE").await;
    p.send(&msg(4, &[])).await;
    p.expect(2, "End-of-RIB").await;
}

/// OPEN with graceful restart and the N bit (RFC 8538).
fn open_n_bit() -> Vec<u8> {
    let mut m = open_gr(AS, 90, PEER.octets(), false);
    let flags = m.len() - 6;
    m[flags] |= 0x40;
    m
}

impl Setup {
    async fn wait_peer(&mut self, f: impl FnMut(&SessionStatus) -> bool, what: &str) {
        tokio::time::timeout(Duration::from_secs(60), self.status.wait_for(f))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for the peer's {what}"))
            .unwrap();
    }

    async fn peer_status(&self) -> PeerStatus {
        settle().await;
        let s = self.net.h.fresh_status().await.unwrap();
        s.peers
            .iter()
            .find(|p| p.address == peer_ip())
            .cloned()
            .unwrap()
    }
}

/// 1. BFD Up on both sides; the speaker's session is multihop from the
///    BGP session's address, shown in the status.
/// 2. The wire is cut: exactly 3 x 100 ms after the speaker's BFD last
///    heard the peer, the BGP session goes (NOTIFICATION Cease / BFD Down
///    6/10) and the route is withdrawn, at the same instant.
/// 3. While BFD is down the speaker does not connect, and refuses the
///    peer's connection at its OPEN with the same Cease.
/// 4. The wire mended: BFD Up, the speaker connects, Established again.
#[tokio::test(start_paused = true)]
async fn a_bfd_down_takes_the_session_down_at_the_detection_time() {
    let mut s = setup(open(4, AS, 90, PEER.octets())).await;
    // 1.
    let st = s.peer_status().await;
    assert_eq!(st.state, SessionState::Established);
    let bfd = st.bfd.expect("a BFD peer shows its BFD");
    let session = bfd.session.expect("made at Established");
    assert_eq!(session.state, State::Up);
    assert!(session.multihop, "{session:?}");
    assert_eq!(session.local, Some(IpAddr::V4(SPEAKER)));
    assert_eq!(session.detection_time_ms, Some(300));
    assert_eq!(
        (bfd.min_rx_ms, bfd.min_tx_ms, bfd.multiplier),
        (100, 100, 3)
    );
    assert!(!bfd.holding);

    // 2.
    s.wire.cut(true);
    let n = s.p.notification().await;
    let at = Instant::now();
    assert_eq!(n, Some((6, 10, vec![])), "Cease / BFD Down (RFC 9384)");
    let last = s.wire.last_to(IpAddr::V4(SPEAKER)).unwrap();
    assert_eq!(at - last, ms(300), "down 3 x 100 ms after the last packet");
    let changes = s.net.changes().await;
    assert_eq!(Instant::now(), at, "routes withdrawn at the same instant");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].best, None, "{changes:?}");
    let st = s.peer_status().await;
    assert_ne!(st.state, SessionState::Established);
    assert_eq!(st.flaps, 1);
    assert!(
        st.last_error
            .as_deref()
            .is_some_and(|e| e.contains("BFD down (detection time expired)")),
        "{:?}",
        st.last_error
    );
    let bfd = st.bfd.unwrap();
    assert!(bfd.holding);
    assert_eq!(bfd.bgp_downs, 1);
    assert_eq!(bfd.session.unwrap().state, State::Down);

    // 3.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        s.net.try_dial().is_none(),
        "no connection while BFD is down"
    );
    let mut inbound = s.net.connect_from(peer_ip()).await;
    inbound.send(&open(4, AS, 90, PEER.octets())).await;
    assert_eq!(inbound.notification().await, Some((6, 10, vec![])));

    // 4.
    s.wire.cut(false);
    s.wait_peer(|x| x.state == State::Up, "BFD Up again").await;
    let up = Instant::now();
    let mut p = s.net.next_dial().await.accept();
    assert!(
        up.elapsed() <= ms(200),
        "dialed {:?} after BFD Up",
        up.elapsed()
    );
    establish(&mut p, &open(4, AS, 90, PEER.octets())).await;
    let st = s.peer_status().await;
    assert_eq!(st.state, SessionState::Established);
    let bfd = st.bfd.unwrap();
    assert!(!bfd.holding);
    assert_eq!(bfd.session.unwrap().ups, 2);
}

/// A peer that negotiated graceful restart with the N bit gets the Cease
/// as a Hard Reset (RFC 8538 §3, data: BFD Down), and its routes are
/// withdrawn at once, not kept as stale.
#[tokio::test(start_paused = true)]
async fn with_the_n_bit_the_cease_is_a_hard_reset_and_routes_still_go() {
    let mut s = setup(open_n_bit()).await;
    s.wire.cut(true);
    assert_eq!(s.p.notification().await, Some((6, 9, vec![10])));
    let changes = s.net.changes().await;
    assert_eq!(changes[0].best, None, "withdrawn, not stale: {changes:?}");
}

/// RFC 5882 §3.2: the peer turning BFD off (AdminDown) is no failure: the
/// BGP session stays, and BFD comes back Up when the peer lets it.
#[tokio::test(start_paused = true)]
async fn the_peers_admin_down_leaves_the_session_alone() {
    let mut s = setup(open(4, AS, 90, PEER.octets())).await;
    s.peer_bfd.set_admin_down(&s.key, true).await.unwrap();
    assert!(
        s.p.quiet_for(Duration::from_secs(5)).await,
        "no NOTIFICATION"
    );
    let st = s.peer_status().await;
    assert_eq!(st.state, SessionState::Established);
    let bfd = st.bfd.unwrap();
    let session = bfd.session.unwrap();
    assert_eq!(
        (session.state, session.remote_state),
        (State::Down, State::AdminDown)
    );
    assert!(!bfd.holding);
    assert_eq!(bfd.bgp_downs, 0);
    s.peer_bfd.set_admin_down(&s.key, false).await.unwrap();
    s.wait_peer(|x| x.state == State::Up, "BFD Up again").await;
    assert!(s.p.quiet_for(Duration::from_secs(2)).await);
    assert_eq!(s.peer_status().await.state, SessionState::Established);
}

/// New timers reach the running session by a Poll Sequence: no flap of
/// BFD, none of BGP. Turning BFD off removes the session (the peer hears
/// AdminDown), the BGP session stays.
#[tokio::test(start_paused = true)]
async fn bfd_settings_change_without_a_flap() {
    let mut s = setup(open(4, AS, 90, PEER.octets())).await;
    let slower = BfdConfig {
        min_tx: ms(300),
        multiplier: 5,
        ..fast()
    };
    s.net.h.reconfigure(config(slower)).await.unwrap();
    // The peer now waits 5 x max(its 100 ms RX, our 300 ms TX).
    s.wait_peer(
        |x| x.detection_time == Some(ms(1500)),
        "detection time 1.5 s",
    )
    .await;
    let now = *s.status.borrow();
    assert_eq!((now.state, now.downs), (State::Up, 0));
    assert!(
        s.p.quiet_for(Duration::from_secs(2)).await,
        "no NOTIFICATION"
    );
    let st = s.peer_status().await;
    assert_eq!(st.flaps, 0);
    assert_eq!(st.bfd.unwrap().multiplier, 5);

    let mut off = config(fast());
    off.peers[0].bfd = None;
    s.net.h.reconfigure(off).await.unwrap();
    s.wait_peer(|x| x.remote_state == State::AdminDown, "our AdminDown")
        .await;
    assert!(
        s.p.quiet_for(Duration::from_secs(2)).await,
        "no NOTIFICATION"
    );
    let st = s.peer_status().await;
    assert_eq!((st.state, st.bfd), (SessionState::Established, None));
}
