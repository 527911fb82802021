//! GTSM (RFC 5082, `ttl_security`) at the speaker's listener, on loopback
//! in the test's own sockets: a SYN from the loopback arrives with the
//! sender's TTL (64 by default, 255 when it asks), so "too far" is a
//! client that does not send with 255. The real topology (a router in
//! between, BIRD on the other side) is `tests/tests/gtsm.rs`.
//!
//! 1. With a GTSM peer and a peer without it, the listener lets every SYN
//!    in; the speaker closes the GTSM peer's connection whose SYN came
//!    with TTL 64 before reading a byte (`refused.ttl_security`, the
//!    peer's last error says why), and takes one that came with 255 up to
//!    Established.
//! 2. With only GTSM peers, the kernel drops SYNs below 255 at the
//!    listener: the connection never opens and the kernel's counter
//!    (`kernel_min_ttl_drops`) moves, the speaker's does not. A
//!    reconfiguration that adds a peer without GTSM opens the listener,
//!    and the speaker then refuses the connection itself.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_speaker::{start, PeerConfig, SessionState, SpeakerConfig, SpeakerHandle};
use common::{Client, AS};
use std::os::fd::AsRawFd;
use tokio::net::TcpSocket;

/// A passive peer at 127.0.1.`last`, with GTSM for `hops` hops.
fn peer(last: u8, hops: Option<u8>) -> PeerConfig {
    PeerConfig {
        passive: true,
        ttl_security: hops,
        ..PeerConfig::new(IpAddr::V4(Ipv4Addr::new(127, 0, 1, last)), AS)
    }
}

async fn speaker(peers: Vec<PeerConfig>) -> (SpeakerHandle, SocketAddr, SpeakerConfig) {
    let mut c = SpeakerConfig::new(Ipv4Addr::new(10, 7, 0, 1), AS);
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.peers = peers;
    let (h, _best) = start(c.clone()).await.unwrap();
    let addr = h.status().listen.unwrap();
    (h, addr, c)
}

/// Connects from 127.0.1.`last` with the SYN's TTL set to `ttl`; `None`
/// when the connection did not open within 2 s.
async fn connect_with_ttl(to: SocketAddr, last: u8, ttl: i32) -> Option<Client> {
    let addr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, last));
    let sock = TcpSocket::new_v4().unwrap();
    let value: libc::c_int = ttl;
    // SAFETY: `value` is a valid c_int of the size passed, which the kernel
    // only reads; the fd is open (borrowed). (setsockopt(IP_TTL): tokio
    // has no setter before connect.)
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_TTL,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    sock.bind(SocketAddr::new(addr, 0)).unwrap();
    let stream = tokio::time::timeout(Duration::from_secs(2), sock.connect(to))
        .await
        .ok()?
        .unwrap();
    Some(Client { stream, addr })
}

async fn peer_status(h: &SpeakerHandle, last: u8) -> bgp_speaker::PeerStatus {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 1, last));
    let s = h.fresh_status().await.unwrap();
    s.peers.iter().find(|p| p.address == ip).unwrap().clone()
}

// 1.
#[tokio::test]
async fn a_syn_below_the_peers_minimum_is_closed_unread_and_counted() {
    let (h, to, _) = speaker(vec![peer(70, Some(1)), peer(71, None)]).await;
    let mut far = connect_with_ttl(to, 70, 64)
        .await
        .expect("the listener lets in what the peer without GTSM may send");
    assert_eq!(far.read().await, None, "closed without an OPEN");
    let s = h.fresh_status().await.unwrap();
    assert_eq!(s.refused.ttl_security, 1, "{:?}", s.refused);
    assert!(
        s.kernel_min_ttl_drops.is_some(),
        "a peer uses GTSM: the counter is shown"
    );
    let p = peer_status(&h, 70).await;
    let why = p.last_error.unwrap_or_default();
    assert!(
        why.contains("GTSM refused a connection from 127.0.1.70")
            && why.contains("TTL 64, below 255 (ttlSecurity 1)"),
        "{why}"
    );

    let mut near = connect_with_ttl(to, 70, 255).await.unwrap();
    near.establish(70).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while peer_status(&h, 70).await.state != SessionState::Established {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the connection with TTL 255 comes up");
    // The peer without GTSM is not checked at all.
    let mut other = connect_with_ttl(to, 71, 64).await.unwrap();
    other.establish(71).await;
    assert_eq!(h.fresh_status().await.unwrap().refused.ttl_security, 1);
}

// 2.
#[tokio::test]
async fn the_kernel_drops_syns_below_every_peers_minimum() {
    let (h, to, mut c) = speaker(vec![peer(72, Some(1))]).await;
    let before = h
        .fresh_status()
        .await
        .unwrap()
        .kernel_min_ttl_drops
        .unwrap();
    assert!(
        connect_with_ttl(to, 72, 64).await.is_none(),
        "a SYN with TTL 64 was answered"
    );
    let s = h.fresh_status().await.unwrap();
    assert!(s.kernel_min_ttl_drops.unwrap() > before, "{s:?}");
    assert_eq!(s.refused.ttl_security, 0, "never reached the speaker");

    c.peers.push(peer(73, None));
    h.reconfigure(c.clone()).await.unwrap();
    let mut far = connect_with_ttl(to, 72, 64)
        .await
        .expect("the listener opened");
    assert_eq!(far.read().await, None);
    assert_eq!(h.fresh_status().await.unwrap().refused.ttl_security, 1);

    // Without GTSM anywhere, nothing is checked or shown.
    c.peers.iter_mut().for_each(|p| p.ttl_security = None);
    h.reconfigure(c).await.unwrap();
    let mut plain = connect_with_ttl(to, 72, 64).await.unwrap();
    plain.establish(72).await;
    let s = h.fresh_status().await.unwrap();
    assert_eq!((s.refused.ttl_security, s.kernel_min_ttl_drops), (1, None));
}
