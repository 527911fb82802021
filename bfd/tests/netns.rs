//! Two Tortie BFD services over a veth pair in network namespaces (see
//! `common` for the topology).
//!
//! Checks:
//! 1. IPv4 single hop, IPv6 single hop and IPv4 multihop sessions at
//!    100 ms x 3 come Up on both sides.
//! 2. A datagram with TTL 254 and one of version 2 are discarded and
//!    counted (the real ancillary-data path).
//! 3. The peer's end of the link goes down: every session on a is Down
//!    with "control detection time expired" within 350 ms (at most
//!    3 x 100 ms after the last packet).
//! 4. The link comes back: Up again.
//! 5. b shuts down: a sees Down with "neighbor signaled session down",
//!    remote state AdminDown.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bfd::{Diag, DiscardReason, SessionConfig, State, Timers};
use common::*;

const TARGET: Duration = Duration::from_millis(350);

fn timers() -> Timers {
    Timers::new(Duration::from_millis(100), 3)
}

fn configs(me4: &str, peer4: &str, me6: &str, peer6: &str) -> Vec<(&'static str, SessionConfig)> {
    vec![
        (
            "v4",
            SessionConfig::single_hop(ip(peer4))
                .with_local(ip(me4))
                .with_timers(timers()),
        ),
        (
            "v6",
            SessionConfig::single_hop(ip(peer6))
                .with_local(ip(me6))
                .with_timers(timers()),
        ),
        (
            "v4 multihop",
            SessionConfig::multihop(ip(peer4), ip(me4)).with_timers(timers()),
        ),
    ]
}

#[tokio::test]
async fn two_tortie_endpoints_up_detect_down_and_recover() {
    let test = "two_tortie_endpoints_up_detect_down_and_recover";
    let Some(link) = Link::new(test) else {
        return;
    };
    let a = NsBfd::start(&link.a);
    let b = NsBfd::start(&link.b);
    let mut on_a = vec![];
    for (name, cfg) in configs(A4, B4, A6, B6) {
        on_a.push((name, a.handle.add(cfg).await.unwrap()));
    }
    let mut on_b = vec![];
    for (name, cfg) in configs(B4, A4, B6, A6) {
        on_b.push((name, b.handle.add(cfg).await.unwrap()));
    }
    // 1.
    for (name, rx) in on_a.iter_mut().chain(on_b.iter_mut()) {
        wait_up(rx, name).await;
        // The peer's Poll announces its 100 ms once it is Up.
        wait_status(rx, Duration::from_secs(5), name, |s| {
            s.detection_time == Some(Duration::from_millis(300))
        })
        .await;
    }
    // 2.
    let sent = link
        .b
        .on_thread(|| {
            let s = UdpSocket::bind("10.231.0.2:50000")?;
            let dst: SocketAddr = "10.231.0.1:3784".parse().unwrap();
            s.set_ttl(254)?;
            let mut p = [0u8; 24];
            p[0] = 0x20;
            p[1] = 0x40;
            p[2] = 3;
            p[3] = 24;
            p[4..8].copy_from_slice(&5u32.to_be_bytes());
            s.send_to(&p, dst)?;
            s.set_ttl(255)?;
            p[0] = 0x40;
            s.send_to(&p, dst)?;
            Ok(())
        })
        .map(|_| ());
    sent.unwrap();
    poll_counters(&a, DiscardReason::BadTtl).await;
    poll_counters(&a, DiscardReason::BadVersion).await;
    // 3. Let the fast rate settle first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    link.peer_link(false);
    for (name, rx) in on_a.iter_mut() {
        let (took, s) = detection_after(rx, t0, name).await;
        say(&format!(
            "bfd tortie<->tortie {name}: Down {took:?} after link down (100 ms x 3)"
        ));
        assert_eq!(s.state, State::Down);
        assert_eq!(s.local_diag, Diag::ControlDetectionTimeExpired, "{name}");
        assert!(took <= TARGET, "{name}: detected after {took:?}");
    }
    // 4.
    link.peer_link(true);
    for (name, rx) in on_a.iter_mut().chain(on_b.iter_mut()) {
        wait_up(rx, &format!("{name} again")).await;
    }
    // 5.
    b.handle.shutdown().await.unwrap();
    for (name, rx) in on_a.iter_mut() {
        let s = wait_status(rx, Duration::from_secs(5), name, |s| s.state == State::Down).await;
        assert_eq!(s.local_diag, Diag::NeighborSignaledSessionDown, "{name}");
        assert_eq!(s.remote_state, State::AdminDown, "{name}");
    }
    let c = a.handle.counters().await.unwrap();
    assert!(c.tx_packets > 0 && c.rx_packets > 0);
    assert_eq!(c.up_to_down, 6, "{c:?}");
    drop(a);
    drop(b);
    drop(link);
}

/// Waits for one discard of `reason`.
async fn poll_counters(bfd: &NsBfd, reason: DiscardReason) {
    for _ in 0..50 {
        if bfd.handle.counters().await.unwrap().discarded(reason) >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} not counted: {:?}",
        reason.as_str(),
        bfd.handle.counters().await.unwrap()
    );
}
