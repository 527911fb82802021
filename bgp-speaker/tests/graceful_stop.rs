//! How a stopping speaker closes each session, with paused time over
//! in-memory connections: exactly the bytes each peer gets from the stop
//! to the end of the connection.
//!
//! A graceful stop (`ShutdownMode::Graceful`, a planned restart) must
//! leave our routes at every peer that can keep them:
//!
//! | peer                                   | gets                          |
//! |----------------------------------------|-------------------------------|
//! | graceful restart with the N bit        | Cease / Administrative Reset (RFC 8538: kept as stale) |
//! | graceful restart, no N bit (BIRD 2.0)  | nothing: the connection ends (RFC 4724 §4: kept as stale) |
//! | no graceful restart                    | Cease / Administrative Reset (dropped anyway; says why) |
//! | graceful restart, no N bit, not yet Established | Cease / Administrative Reset |
//!
//! A hard stop sends Cease / Hard Reset carrying Administrative Shutdown
//! to every one of them.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp_speaker::{PeerConfig, SessionState, ShutdownMode, SpeakerConfig};
use common::pipe::{Net, Peer, SPEAKER};
use common::*;
use tokio::time::Instant;

/// Graceful restart with the N bit (RFC 8538).
const WITH_N: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Graceful restart without the N bit.
const WITHOUT_N: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
/// No graceful restart capability.
const NO_GR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
/// Graceful restart without the N bit, stopped in OpenConfirm.
const OPENING: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

/// The graceful restart flags' N bit (RFC 8538 §2).
const N_BIT: u8 = 0x40;

/// The peers' OPENs, by what they announce.
#[derive(Clone, Copy, Debug)]
enum Gr {
    WithN,
    WithoutN,
    None,
}

/// The peer's OPEN: hold time 90 s; graceful restart as given (restart
/// time 120 s, IPv4 unicast).
fn peer_open(id: Ipv4Addr, gr: Gr) -> Vec<u8> {
    match gr {
        Gr::None => open(4, AS, 90, id.octets()),
        Gr::WithoutN => open_gr(AS, 90, id.octets(), false),
        Gr::WithN => {
            let mut m = open_gr(AS, 90, id.octets(), false);
            // The capability ends the OPEN: flags and restart time, then
            // one family (4 bytes).
            let flags = m.len() - 6;
            m[flags] |= N_BIT;
            m
        }
    }
}

/// A speaker (graceful restart on, the default) with these peers,
/// passive: each connects when the test says.
async fn speaker(peers: &[Ipv4Addr]) -> Net {
    let mut c = SpeakerConfig::new(SPEAKER, AS);
    for p in peers {
        let mut peer = PeerConfig::new(IpAddr::V4(*p), AS);
        peer.passive = true;
        c.peers.push(peer);
    }
    Net::start_config(c).await
}

/// `addr` connects and exchanges OPENs (its with `gr`): OpenConfirm.
async fn open_confirm(net: &Net, addr: Ipv4Addr, gr: Gr) -> Peer {
    let mut p = net.connect_from(IpAddr::V4(addr)).await;
    p.expect(1, "the speaker's OPEN").await;
    p.send(&peer_open(addr, gr)).await;
    p.expect(4, "the speaker's KEEPALIVE").await;
    p
}

/// ... and sends its KEEPALIVE: Established, our End-of-RIB read.
async fn established(net: &Net, addr: Ipv4Addr, gr: Gr) -> Peer {
    let mut p = open_confirm(net, addr, gr).await;
    p.send(&msg(4, &[])).await;
    assert_eq!(p.expect(2, "End-of-RIB").await, [0, 0, 0, 0], "{addr}");
    p
}

/// Every message the speaker sends until the connection ends, as bytes.
async fn rest(p: &mut Peer) -> Vec<u8> {
    let mut got = Vec::new();
    while let Some((t, body)) = p.recv().await {
        got.extend(msg(t, &body));
    }
    got
}

/// Four peers as in the table above; the stop; what each got.
async fn stop(mode: ShutdownMode) -> Vec<(Ipv4Addr, Vec<u8>)> {
    let net = speaker(&[WITH_N, WITHOUT_N, NO_GR, OPENING]).await;
    let mut peers = vec![
        (WITH_N, established(&net, WITH_N, Gr::WithN).await),
        (WITHOUT_N, established(&net, WITHOUT_N, Gr::WithoutN).await),
        (NO_GR, established(&net, NO_GR, Gr::None).await),
        (OPENING, open_confirm(&net, OPENING, Gr::WithoutN).await),
    ];
    let s = net.h.fresh_status().await.unwrap();
    for (addr, _) in &peers {
        let row = s.peers.iter().find(|p| p.address == *addr).unwrap();
        let want = if *addr == OPENING {
            SessionState::OpenConfirm
        } else {
            SessionState::Established
        };
        assert_eq!(row.state, want, "{addr}");
    }
    let t0 = Instant::now();
    net.h.shutdown(mode).await;
    assert_eq!(t0.elapsed(), Duration::ZERO, "stopped at once");
    assert!(net.h.ping().await.is_err(), "the speaker stopped");
    let mut got = Vec::new();
    for (addr, p) in &mut peers {
        got.push((*addr, rest(p).await));
    }
    got
}

/// A NOTIFICATION's bytes.
fn notification(code: u8, subcode: u8, data: &[u8]) -> Vec<u8> {
    msg(3, &[&[code, subcode][..], data].concat())
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_hangs_up_on_peers_that_keep_routes_only_so() {
    let reset = notification(6, 4, &[]);
    let want = vec![
        (WITH_N, reset.clone()),
        (WITHOUT_N, Vec::new()),
        (NO_GR, reset.clone()),
        (OPENING, reset),
    ];
    assert_eq!(stop(ShutdownMode::Graceful).await, want);
}

#[tokio::test(start_paused = true)]
async fn a_hard_stop_sends_hard_reset_to_every_peer() {
    let hard = notification(6, 9, &[2]);
    let want = vec![
        (WITH_N, hard.clone()),
        (WITHOUT_N, hard.clone()),
        (NO_GR, hard.clone()),
        (OPENING, hard),
    ];
    assert_eq!(stop(ShutdownMode::Hard).await, want);
}
