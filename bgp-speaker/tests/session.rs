//! Session behaviour over real TCP, seen from a hand-driven peer:
//! ROUTE-REFRESH is answered with the routes again, the max-prefix limit
//! tears the session down with Cease/1, collisions, a peer with a zero
//! receive window, connection floods, and End-of-RIB after the initial
//! table. (The state x event table and the timers run over in-memory
//! connections with paused time: `fsm_table.rs`, `fsm_timers.rs`.)

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_speaker::{start, LocalRoute, MaxPrefix, NextHop, PathAttrs, ShutdownMode, SpeakerConfig};
use common::*;

/// Reads UPDATEs until one that carries IPv4 NLRI; returns its NLRI bytes.
async fn next_nlri(c: &mut Client) -> Vec<u8> {
    loop {
        let (t, body) = c.read().await.expect("connection open");
        if t != 2 {
            continue;
        }
        let wl = u16::from_be_bytes([body[0], body[1]]) as usize;
        let al = u16::from_be_bytes([body[2 + wl], body[3 + wl]]) as usize;
        let nlri = body[4 + wl + al..].to_vec();
        if !nlri.is_empty() {
            return nlri;
        }
    }
}

#[tokio::test]
async fn route_refresh_resends_the_routes() {
    let (h, addr) = dynamic_speaker("127.0.1.0/24", None).await;
    h.originate(vec![LocalRoute {
        prefix: "10.50.0.0/24".parse().unwrap(),
        attrs: PathAttrs::local(NextHop::V4(Ipv4Addr::new(192, 168, 5, 1))),
    }])
    .await
    .unwrap();
    let mut c = Client::connect(addr, 60).await;
    c.establish(60).await;
    assert_eq!(next_nlri(&mut c).await, vec![24, 10, 50, 0]);
    // End-of-RIB (an empty UPDATE) follows the initial table.
    loop {
        let (t, body) = c.read().await.unwrap();
        if t == 2 && body == [0, 0, 0, 0] {
            break;
        }
    }
    c.send(&msg(5, &[0, 1, 0, 1])).await;
    assert_eq!(
        next_nlri(&mut c).await,
        vec![24, 10, 50, 0],
        "ROUTE-REFRESH answered"
    );
    h.shutdown(ShutdownMode::Hard).await;
}

/// A dynamic speaker whose peers may send 2 prefixes per family
/// (teardown above).
async fn speaker_with_max_prefix_2() -> (bgp_speaker::SpeakerHandle, SocketAddr) {
    dynamic_speaker(
        "127.0.1.0/24",
        Some(MaxPrefix {
            limit: 2,
            teardown: true,
        }),
    )
    .await
}

/// The limit counts accepted prefixes, per family: routes the import
/// checks refuse (here ORIGINATOR_ID = our router id, RFC 4456 §8) do not
/// count; a third accepted IPv4 prefix over a limit of 2 gets Cease/1
/// naming IPv4 unicast (RFC 4486 §4).
#[tokio::test]
async fn max_prefix_tears_down_with_cease_1() {
    let (h, addr) = speaker_with_max_prefix_2().await;
    let mut c = Client::connect(addr, 61).await;
    c.establish(61).await;
    let looped = [good_attrs(), attr(0x80, 9, &[10, 9, 0, 1])].concat();
    c.send(&update(
        &[],
        &looped,
        &[24, 10, 2, 1, 24, 10, 2, 2, 24, 10, 2, 3],
    ))
    .await;
    let p = wait_peer(&h, c.addr, |p| p.prefixes_received == 3).await;
    assert_eq!(
        (p.state, p.prefixes_accepted),
        (bgp_speaker::SessionState::Established, 0),
        "refused routes do not count"
    );
    c.send(&update(&[], &good_attrs(), &[24, 10, 1, 1, 24, 10, 1, 2]))
        .await;
    c.send(&update(&[], &good_attrs(), &[24, 10, 1, 3])).await;
    let (code, sub, data) = c.notification().await;
    assert_eq!((code, sub), (6, 1));
    // RFC 4486 §4: AFI 1, SAFI 1, the limit.
    assert_eq!(data, vec![0, 1, 1, 0, 0, 0, 2]);
    let st = h.status();
    assert!(st
        .peers
        .iter()
        .all(|p| !p.last_error.as_deref().unwrap_or("x").is_empty()));
    h.shutdown(ShutdownMode::Hard).await;
}

/// OPEN with IPv4 and IPv6 unicast (RFC 4760) and 4-octet AS.
fn open_dual(asn: u32, id: [u8; 4]) -> Vec<u8> {
    let mut caps = vec![2, 6, 1, 4, 0, 1, 0, 1, 2, 6, 1, 4, 0, 2, 0, 1, 2, 6, 65, 4];
    caps.extend_from_slice(&asn.to_be_bytes());
    let mut b = vec![4];
    b.extend_from_slice(&u16::try_from(asn).unwrap().to_be_bytes());
    b.extend_from_slice(&90u16.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(caps.len() as u8);
    b.extend_from_slice(&caps);
    msg(1, &b)
}

/// The limit applies to each family: three IPv6 prefixes over a limit of
/// 2, with two IPv4 ones, get Cease/1 naming IPv6 unicast (AFI 2). Counted
/// together, the IPv4 ones tripped it earlier.
#[tokio::test]
async fn max_prefix_names_the_family_that_overflowed() {
    let (h, addr) = speaker_with_max_prefix_2().await;
    let mut c = Client::connect(addr, 63).await;
    c.send(&open_dual(AS, [10, 9, 9, 63])).await;
    assert_eq!(c.read().await.map(|m| m.0), Some(1));
    assert_eq!(c.read().await.map(|m| m.0), Some(4));
    c.send(&msg(4, &[])).await;
    c.send(&update(&[], &good_attrs(), &[24, 10, 1, 1, 24, 10, 1, 2]))
        .await;
    let mp_reach = |nlri: &[u8]| {
        let mut v = vec![0, 2, 1, 16];
        v.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        v.push(0);
        v.extend_from_slice(nlri);
        attr(0x80, 14, &v)
    };
    let v6_attrs = |nlri: &[u8]| {
        [
            attr(0x40, 1, &[0]),
            attr(0x40, 2, &[]),
            attr(0x40, 5, &[0, 0, 0, 100]),
            mp_reach(nlri),
        ]
        .concat()
    };
    c.send(&update(
        &[],
        &v6_attrs(&[48, 0x20, 1, 0xd, 0xb8, 0, 1, 48, 0x20, 1, 0xd, 0xb8, 0, 2]),
        &[],
    ))
    .await;
    let p = wait_peer(&h, c.addr, |p| p.prefixes_accepted == 4).await;
    assert_eq!(p.state, bgp_speaker::SessionState::Established);
    c.send(&update(
        &[],
        &v6_attrs(&[48, 0x20, 1, 0xd, 0xb8, 0, 3]),
        &[],
    ))
    .await;
    let (code, sub, data) = c.notification().await;
    assert_eq!((code, sub, data), (6, 1, vec![0, 2, 1, 0, 0, 0, 2]));
    h.shutdown(ShutdownMode::Hard).await;
}

/// RFC 4271 §6.8: both sides open a connection; the one opened by the side
/// with the higher BGP identifier survives, the other gets Cease/7.
#[tokio::test]
async fn collision_keeps_the_connection_of_the_higher_identifier() {
    use bgp_speaker::SessionState;
    // Connection A: opened by the speaker (lower id 10.8.0.1).
    let (h, mut a, speaker_addr) = speaker_dialing_us(70).await;
    // Connection B: opened by us (higher id 10.9.9.70), from the same address.
    let mut b = Client::connect(speaker_addr, 70).await;
    for cl in [&mut a, &mut b] {
        cl.send(&open(4, AS, 90, [10, 9, 9, 70])).await;
    }
    // A: the speaker's OPEN, then Cease/7 (collision resolution).
    let (code, sub, _) = a.notification().await;
    assert_eq!((code, sub), (6, 7), "the speaker's own connection loses");
    // B: OPEN, KEEPALIVE, and it becomes Established.
    assert_eq!(b.read().await.map(|m| m.0), Some(1));
    assert_eq!(b.read().await.map(|m| m.0), Some(4));
    b.send(&msg(4, &[])).await;
    for _ in 0..200 {
        if h.status()
            .peers
            .iter()
            .any(|p| p.state == SessionState::Established)
        {
            h.shutdown(ShutdownMode::Hard).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the peer's connection never became Established: {:#?}",
        h.status()
    );
}

/// RFC 4271 §6.8 race: our connection to the speaker (B) wins over the
/// speaker's connection to us (A) while A waits in OpenConfirm for our
/// KEEPALIVE. When that KEEPALIVE comes after B is Established, A (told to
/// close with Cease/7) must not become the session: before, it replaced B
/// and its close then took the session down, leaving B up but ignored
/// (seen as a node mesh that never completed).
#[tokio::test]
async fn a_connection_told_to_close_never_becomes_the_session() {
    let (h, mut first, speaker_addr) = speaker_dialing_us(41).await;
    let peer = first.addr;
    assert_eq!(first.read().await.map(|m| m.0), Some(1), "OPEN on A");
    first.send(&open(4, AS, 90, [10, 9, 9, 41])).await;
    // The speaker's KEEPALIVE: A is in OpenConfirm.
    assert_eq!(first.read().await.map(|m| m.0), Some(4), "KEEPALIVE");
    let mut second = Client::connect(speaker_addr, 41).await;
    second.establish(41).await;
    let established = |h: &bgp_speaker::SpeakerHandle| {
        let h = h.clone();
        async move {
            h.fresh_status()
                .await
                .unwrap()
                .peers
                .iter()
                .find(|p| p.address == peer)
                .map(|p| (p.state, p.prefixes_received, p.flaps))
        }
    };
    for _ in 0..200 {
        if established(&h)
            .await
            .is_some_and(|s| s.0 == bgp_speaker::SessionState::Established)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Now the first connection's KEEPALIVE: it is closed as the loser.
    first.send(&msg(4, &[])).await;
    let (code, subcode, _) = first.notification().await;
    assert_eq!((code, subcode), (6, 7), "Cease/collision");
    // The second is the session: a route sent on it is taken.
    second.send(&update(&[], &good_attrs(), &NLRI)).await;
    let mut last = None;
    for _ in 0..200 {
        last = established(&h).await;
        if last.is_some_and(|s| s.1 == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        last,
        Some((bgp_speaker::SessionState::Established, 1, 0)),
        "(state, prefixes received, flaps) of the peer"
    );
    h.shutdown(ShutdownMode::Hard).await;
}

/// A speaker (router id 10.8.0.1) configured with us (127.0.1.`last`) as
/// its peer, and the connection it opened to our listener (nothing read
/// from it yet); also the speaker's own listening address.
async fn speaker_dialing_us(last: u8) -> (bgp_speaker::SpeakerHandle, Client, SocketAddr) {
    speaker_dialing_us_with(last, None).await
}

/// [`speaker_dialing_us`], our receive buffer `rcvbuf` bytes if given.
async fn speaker_dialing_us_with(
    last: u8,
    rcvbuf: Option<u32>,
) -> (bgp_speaker::SpeakerHandle, Client, SocketAddr) {
    use bgp_speaker::PeerConfig;
    let me = std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 1, last));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(bytes) = rcvbuf {
        socket.set_recv_buffer_size(bytes).unwrap();
    }
    socket.bind(SocketAddr::new(me, 0)).unwrap();
    let listener = socket.listen(4).unwrap();
    let mut c = SpeakerConfig::new(Ipv4Addr::new(10, 8, 0, 1), AS);
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.peers.push(PeerConfig {
        port: listener.local_addr().unwrap().port(),
        connect_retry: 1,
        ..PeerConfig::new(me, AS)
    });
    let (h, _best) = start(c).await.unwrap();
    let speaker_addr = h.status().listen.unwrap();
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .unwrap()
        .unwrap();
    (h, Client { stream, addr: me }, speaker_addr)
}

/// A speaker (router id 10.8.0.1, lower than ours) that connects to our
/// listener (connection A, outbound for it) while we connect to it
/// (connection B, inbound). With `a_first`, A is brought to Established
/// (graceful restart, one route), else B; the other has only the
/// speaker's OPEN. Returns the speaker, A and B.
async fn crossed_connections(
    last: u8,
    a_first: bool,
) -> (bgp_speaker::SpeakerHandle, Client, Client) {
    let me = std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 1, last));
    let (h, mut a, speaker_addr) = speaker_dialing_us(last).await;
    assert_eq!(
        a.read().await.map(|m| m.0),
        Some(1),
        "the speaker's OPEN on A"
    );
    let mut b;
    if a_first {
        establish_with(&mut a, last, true).await;
        wait_peer(&h, me, |p| p.prefixes_received == 1).await;
        b = Client::connect(speaker_addr, last).await;
        assert_eq!(
            b.read().await.map(|m| m.0),
            Some(1),
            "the speaker's OPEN on B"
        );
    } else {
        b = Client::connect(speaker_addr, last).await;
        establish_with(&mut b, last, false).await;
        wait_peer(&h, me, |p| p.prefixes_received == 1).await;
    }
    (h, a, b)
}

/// OPEN (graceful restart, no R bit), the speaker's KEEPALIVE (and OPEN
/// first unless already read), KEEPALIVE, one route.
async fn establish_with(c: &mut Client, last: u8, speaker_open_read: bool) {
    c.send(&open_gr(AS, 90, [10, 9, 9, last], false)).await;
    if !speaker_open_read {
        assert_eq!(c.read().await.map(|m| m.0), Some(1));
    }
    assert_eq!(c.read().await.map(|m| m.0), Some(4));
    c.send(&msg(4, &[])).await;
    c.send(&update(&[], &good_attrs(), &NLRI)).await;
}

/// Reads until the speaker closes; fails on a NOTIFICATION.
async fn closed_quietly(c: &mut Client) {
    loop {
        match c.read().await {
            None => return,
            Some((3, body)) => panic!("closed with a NOTIFICATION {body:?}"),
            Some(_) => continue,
        }
    }
}

/// Waits until the peer's status satisfies `ok`.
async fn wait_peer(
    h: &bgp_speaker::SpeakerHandle,
    peer: std::net::IpAddr,
    ok: impl Fn(&bgp_speaker::PeerStatus) -> bool,
) -> bgp_speaker::PeerStatus {
    for _ in 0..400 {
        if let Some(p) = h
            .fresh_status()
            .await
            .unwrap()
            .peers
            .iter()
            .find(|p| p.address == peer)
        {
            if ok(p) {
                return p.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("peer {peer} never got there: {:#?}", h.status());
}

/// A mesh coming up: both sides connected to each other at once and B got
/// to Established first; then A's OPEN (no R bit) arrives. That is a
/// collision, not a restart: the connection of the higher identifier
/// (ours, B) stays, A gets Cease/7, and the session never went down.
/// (Taken as a restart, it reset the session.)
#[tokio::test]
async fn an_open_crossing_an_established_session_is_a_collision_not_a_restart() {
    let (h, mut a, mut b) = crossed_connections(72, false).await;
    a.send(&open_gr(AS, 90, [10, 9, 9, 72], false)).await;
    let (code, sub, _) = a.notification().await;
    assert_eq!((code, sub), (6, 7), "A loses the collision");
    // B is still the session, never flapped, and still takes routes.
    b.send(&update(&[], &good_attrs(), &[24, 10, 1, 2])).await;
    let p = wait_peer(&h, a.addr, |p| p.prefixes_received == 2).await;
    assert_eq!(
        (p.state, p.flaps),
        (bgp_speaker::SessionState::Established, 0)
    );
    h.shutdown(ShutdownMode::Hard).await;
}

/// The same crossing with A Established first: B, of the higher
/// identifier, wins on both sides, so the Established A goes (its route
/// kept as stale, not withdrawn) and B becomes the session.
#[tokio::test]
async fn a_crossing_won_by_the_new_connection_keeps_the_routes_as_stale() {
    let (h, mut a, mut b) = crossed_connections(73, true).await;
    b.send(&open_gr(AS, 90, [10, 9, 9, 73], false)).await;
    assert_eq!(
        b.read().await.map(|m| m.0),
        Some(4),
        "B proceeds: KEEPALIVE"
    );
    closed_quietly(&mut a).await;
    b.send(&msg(4, &[])).await;
    let p = wait_peer(&h, b.addr, |p| {
        p.state == bgp_speaker::SessionState::Established && p.flaps == 1
    })
    .await;
    assert_eq!(p.last_error.as_deref(), Some("connection collision"));
    assert_eq!(
        h.fresh_status().await.unwrap().loc_rib_prefixes,
        1,
        "A's route kept as stale"
    );
    h.shutdown(ShutdownMode::Hard).await;
}

/// RFC 4724 §4.2: a new OPEN with the R bit while the session is
/// Established means the peer restarted: the old session goes, its route
/// stays (stale), the new connection becomes the session.
#[tokio::test]
async fn a_new_open_with_the_r_bit_replaces_the_established_session() {
    let (h, addr) = dynamic_speaker("127.0.1.0/24", None).await;
    let peer = std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 1, 74));
    let mut old = Client::connect(addr, 74).await;
    old.send(&open_gr(AS, 90, [10, 9, 9, 74], false)).await;
    assert_eq!(old.read().await.map(|m| m.0), Some(1));
    assert_eq!(old.read().await.map(|m| m.0), Some(4));
    old.send(&msg(4, &[])).await;
    old.send(&update(&[], &good_attrs(), &NLRI)).await;
    wait_peer(&h, peer, |p| p.prefixes_received == 1).await;
    let mut new = Client::connect(addr, 74).await;
    new.send(&open_gr(AS, 90, [10, 9, 9, 74], true)).await;
    assert_eq!(new.read().await.map(|m| m.0), Some(1));
    assert_eq!(new.read().await.map(|m| m.0), Some(4));
    new.send(&msg(4, &[])).await;
    let p = wait_peer(&h, peer, |p| {
        p.state == bgp_speaker::SessionState::Established && p.flaps == 1
    })
    .await;
    assert_eq!(p.last_error.as_deref(), Some("peer restarted"));
    assert_eq!(
        h.fresh_status().await.unwrap().loc_rib_prefixes,
        1,
        "the route kept as stale"
    );
    closed_quietly(&mut old).await;
    h.shutdown(ShutdownMode::Hard).await;
}

/// Counters alone do not publish a snapshot per UPDATE (that was work
/// per peer for every UPDATE): watchers see them within the one-second
/// tick, and `fresh_status` has them at once.
#[tokio::test]
async fn counters_reach_watchers_at_the_tick_and_fresh_status_at_once() {
    let (h, addr) = dynamic_speaker("127.0.1.0/24", None).await;
    let peer = std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 1, 75));
    let mut c = Client::connect(addr, 75).await;
    c.establish(75).await;
    wait_peer(&h, peer, |p| {
        p.state == bgp_speaker::SessionState::Established
    })
    .await;
    // Counts the snapshots published while the UPDATEs come in (the test
    // sleeps between them, so the counter runs after each one).
    let mut watch = h.watch_status();
    watch.mark_unchanged();
    let published = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = published.clone();
    let counting = tokio::spawn(async move {
        while watch.changed().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let updates = 20u8;
    for i in 0..updates {
        c.send(&update(&[], &good_attrs(), &[24, 10, 2, i])).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let published = published.load(std::sync::atomic::Ordering::SeqCst);
    counting.abort();
    assert!(
        published <= 3,
        "{published} snapshots for {updates} UPDATEs"
    );
    let fresh = wait_peer(&h, peer, |p| p.prefixes_received == u64::from(updates)).await;
    assert_eq!(fresh.state, bgp_speaker::SessionState::Established);
    // A plain watcher sees the counters by the next tick.
    let mut watch = h.watch_status();
    let seen = tokio::time::timeout(Duration::from_secs(3), async {
        watch
            .wait_for(|s| s.loc_rib_prefixes == u64::from(updates))
            .await
            .is_ok()
    })
    .await;
    assert_eq!(seen, Ok(true));
    h.shutdown(ShutdownMode::Hard).await;
}

/// A speaker with a table of `routes` routes of their own attributes (an
/// UPDATE each, ~180 bytes: together far more than the socket buffers
/// hold) and a peer (us, 127.0.1.`last`, with a 4 KiB receive buffer)
/// that brings the session up (hold time 90 s, one route of its own) and
/// then reads nothing. Returns the speaker, our address and the
/// connection's halves (the read half is never read).
async fn speaker_facing_a_peer_that_reads_nothing(
    last: u8,
    routes: u32,
) -> (
    bgp_speaker::SpeakerHandle,
    std::net::IpAddr,
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
) {
    use tokio::io::AsyncWriteExt;
    let (h, mut c, _) = speaker_dialing_us_with(last, Some(4096)).await;
    let table = (0..routes)
        .map(|i| LocalRoute {
            prefix: std::net::IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)).into(),
            attrs: PathAttrs {
                med: Some(i),
                communities: (0..30).map(|k| 0xfde8_0000 + k).collect(),
                ..PathAttrs::local(NextHop::V4(Ipv4Addr::new(192, 168, 5, 1)))
            },
        })
        .collect();
    h.originate(table).await.unwrap();
    assert_eq!(c.read().await.map(|m| m.0), Some(1), "the speaker's OPEN");
    c.send(&open(4, AS, 90, [10, 9, 9, last])).await;
    assert_eq!(c.read().await.map(|m| m.0), Some(4));
    let (rd, mut wr) = c.stream.into_split();
    wr.write_all(&msg(4, &[])).await.unwrap();
    wr.write_all(&update(&[], &good_attrs(), &NLRI))
        .await
        .unwrap();
    let me = c.addr;
    wait_peer(&h, me, |p| p.prefixes_accepted == 1).await;
    (h, me, rd, wr)
}

/// Waits (in paused time, up to `limit`) until the peer is no longer
/// Established; returns its status and how long that took.
async fn wait_down(
    h: &bgp_speaker::SpeakerHandle,
    peer: std::net::IpAddr,
    limit: Duration,
) -> (bgp_speaker::PeerStatus, Duration) {
    let t0 = tokio::time::Instant::now();
    while t0.elapsed() < limit {
        let st = h.fresh_status().await.unwrap();
        if let Some(p) = st.peers.iter().find(|p| p.address == peer) {
            if p.state != bgp_speaker::SessionState::Established {
                return (p.clone(), t0.elapsed());
            }
        }
        // Well within the speaker's first reconnect (from 190 ms), whose
        // failure would replace the reason the session ended.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still Established after {limit:?}: {:#?}", h.status());
}

/// RFC 9687: a peer that keeps its session alive with keepalives but reads
/// nothing (a zero receive window) is closed once nothing could be sent
/// for the send hold time (8 minutes: more than twice the 90 s hold
/// time), with NOTIFICATION 8 as the reason, and its routes go. The
/// session used to wait in its write for ever, with its timers.
#[tokio::test(start_paused = true)]
async fn a_peer_that_reads_nothing_is_closed_by_the_send_hold_timer() {
    use tokio::io::AsyncWriteExt;
    let (h, me, _rd, mut wr) = speaker_facing_a_peer_that_reads_nothing(81, 30_000).await;
    let keepalives = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            if wr.write_all(&msg(4, &[])).await.is_err() {
                return;
            }
        }
    });
    let (p, after) = wait_down(&h, me, Duration::from_secs(1200)).await;
    keepalives.abort();
    let why = p.last_error.clone().unwrap_or_default();
    assert!(why.contains("send hold timer expired"), "{why}");
    assert!(
        after >= Duration::from_secs(480) && after <= Duration::from_secs(490),
        "closed after {after:?}"
    );
    assert_eq!(p.prefixes_accepted, 0, "the peer's route is gone");
    assert_eq!(h.fresh_status().await.unwrap().loc_rib_prefixes, 30_000);
    h.shutdown(ShutdownMode::Hard).await;
}

/// A connection flood from one address holds one socket: each new
/// connection of a peer replaces its inbound connections that have not
/// reached Established (counted as superseded), and the last one comes up.
#[tokio::test]
async fn one_unfinished_inbound_connection_per_address() {
    let (h, addr) = dynamic_speaker("127.0.1.0/24", None).await;
    let mut earlier = Vec::new();
    for _ in 0..20 {
        let mut c = Client::connect(addr, 91).await;
        assert_eq!(c.read().await.map(|m| m.0), Some(1), "the speaker's OPEN");
        earlier.push(c);
    }
    let mut last = earlier.pop().unwrap();
    for (i, c) in earlier.iter_mut().enumerate() {
        assert_eq!(c.read().await, None, "connection {i} is closed");
    }
    last.send(&open(4, AS, 90, [10, 9, 9, 91])).await;
    assert_eq!(last.read().await.map(|m| m.0), Some(4));
    last.send(&msg(4, &[])).await;
    last.send(&update(&[], &good_attrs(), &NLRI)).await;
    wait_peer(&h, last.addr, |p| p.prefixes_accepted == 1).await;
    assert_eq!(h.fresh_status().await.unwrap().refused.superseded, 19);
    h.shutdown(ShutdownMode::Hard).await;
}

/// A dynamic prefix takes at most `max_peers` peers at once; connections
/// from further addresses (and from addresses in no prefix) are closed
/// before any OPEN and counted. When a peer leaves, there is room again.
#[tokio::test]
async fn a_dynamic_prefix_takes_at_most_max_peers() {
    let mut c = SpeakerConfig::new(Ipv4Addr::new(10, 9, 0, 1), AS);
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.dynamic_peers.push(bgp_speaker::DynamicPeerConfig {
        max_peers: 2,
        ..bgp_speaker::DynamicPeerConfig::new("127.0.1.0/24".parse().unwrap(), AS)
    });
    let (h, _best) = start(c).await.unwrap();
    let addr = h.status().listen.unwrap();
    let mut a = Client::connect(addr, 93).await;
    a.establish(93).await;
    let mut b = Client::connect(addr, 94).await;
    b.establish(94).await;
    let mut third = Client::connect(addr, 95).await;
    assert_eq!(third.read().await, None, "closed without an OPEN");
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.2.1:0".parse().unwrap()).unwrap();
    let mut stranger = Client {
        stream: sock.connect(addr).await.unwrap(),
        addr: "127.0.2.1".parse().unwrap(),
    };
    assert_eq!(stranger.read().await, None, "not a peer: closed");
    let st = h.fresh_status().await.unwrap();
    assert_eq!((st.refused.peer_limit, st.refused.not_a_peer), (1, 1));
    assert_eq!(st.peers.len(), 2);
    // One leaves: the third gets in.
    drop(a);
    for _ in 0..400 {
        if h.fresh_status().await.unwrap().peers.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut third = Client::connect(addr, 95).await;
    third.establish(95).await;
    wait_peer(&h, third.addr, |p| {
        p.state == bgp_speaker::SessionState::Established
    })
    .await;
    drop(b);
    h.shutdown(ShutdownMode::Hard).await;
}

/// A re-announcement whose attributes do not fit the peer's 4096-octet
/// messages (no RFC 8654 extended messages) withdraws the prefix from the
/// peer instead, so that it does not keep the older path; counted.
#[tokio::test]
async fn a_route_too_large_to_encode_is_withdrawn_from_the_peer() {
    let (h, addr) = dynamic_speaker("127.0.1.0/24", None).await;
    let route = |communities: u32| LocalRoute {
        prefix: "10.60.0.0/24".parse().unwrap(),
        attrs: PathAttrs {
            communities: (0..communities).collect(),
            ..PathAttrs::local(NextHop::V4(Ipv4Addr::new(192, 168, 6, 1)))
        },
    };
    h.originate(vec![route(1)]).await.unwrap();
    let mut c = Client::connect(addr, 97).await;
    c.establish(97).await;
    assert_eq!(next_nlri(&mut c).await, vec![24, 10, 60, 0]);
    // 1,100 communities: 4,400 octets, more than a message holds.
    h.originate(vec![route(1100)]).await.unwrap();
    let withdrawn = loop {
        let (t, body) = c.read().await.expect("connection open");
        let wl = usize::from(u16::from_be_bytes([body[0], body[1]]));
        if t == 2 && wl > 0 {
            break body[2..2 + wl].to_vec();
        }
    };
    assert_eq!(withdrawn, vec![24, 10, 60, 0]);
    let p = wait_peer(&h, c.addr, |p| p.routes_unsendable == 1).await;
    assert_eq!(p.state, bgp_speaker::SessionState::Established);
    h.shutdown(ShutdownMode::Hard).await;
}
