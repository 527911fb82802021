//! Speakers of ours talking to each other over loopback (127.0.0.x): the
//! session comes up, routes and withdrawals flow, reflection adds its
//! attributes, a removed peer goes away. Interop with BIRD, FRR and GoBGP is
//! in the workspace's `tests/` crate.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_speaker::{
    start, BestPathChange, LocalRoute, NextHop, PathAttrs, PeerConfig, SessionState, ShutdownMode,
    SpeakerConfig, SpeakerHandle,
};
use tokio::sync::mpsc::Receiver;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn cfg(last: u8, asn: u32) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(Ipv4Addr::new(10, 0, 0, last), asn);
    c.listen = Some(SocketAddr::new(ip(last), 0));
    c
}

fn peer(last: u8, asn: u32, port: u16) -> PeerConfig {
    PeerConfig {
        port,
        connect_retry: 1,
        ..PeerConfig::new(ip(last), asn)
    }
}

fn port(h: &SpeakerHandle) -> u16 {
    h.status().listen.expect("listening").port()
}

async fn wait_state(h: &SpeakerHandle, addr: IpAddr, want: SessionState) {
    let mut rx = h.watch_status();
    let ok = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if rx
                .borrow_and_update()
                .peers
                .iter()
                .any(|p| p.address == addr && p.state == want)
            {
                return;
            }
            rx.changed().await.expect("speaker alive");
        }
    })
    .await;
    assert!(
        ok.is_ok(),
        "peer {addr} never reached {want:?}: {:#?}",
        h.status()
    );
}

async fn next_change(rx: &mut Receiver<Vec<BestPathChange>>) -> Vec<BestPathChange> {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a best-path change")
        .expect("stream open")
}

fn route(p: &str, nh: u8) -> LocalRoute {
    LocalRoute {
        prefix: p.parse().unwrap(),
        attrs: PathAttrs::local(NextHop::V4(Ipv4Addr::new(192, 168, 0, nh))),
    }
}

#[tokio::test]
async fn ibgp_session_routes_and_withdrawals_flow() {
    let (a, _a_best) = start(cfg(11, 64512)).await.unwrap();
    let (b, mut b_best) = start(cfg(12, 64512)).await.unwrap();
    // Both sides active: exercises collision detection.
    let mut ca = cfg(11, 64512);
    ca.listen = a.status().listen;
    ca.peers.push(PeerConfig {
        local_address: Some(ip(11)),
        ..peer(12, 64512, port(&b))
    });
    a.reconfigure(ca).await.unwrap();
    let mut cb = cfg(12, 64512);
    cb.listen = b.status().listen;
    cb.peers.push(PeerConfig {
        local_address: Some(ip(12)),
        ..peer(11, 64512, port(&a))
    });
    b.reconfigure(cb).await.unwrap();
    wait_state(&a, ip(12), SessionState::Established).await;
    wait_state(&b, ip(11), SessionState::Established).await;

    a.originate(vec![route("10.244.1.0/26", 11), route("10.244.2.0/26", 11)])
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(next_change(&mut b_best).await);
    }
    for c in &got {
        let best = c.best.as_ref().expect("announced");
        assert_eq!(best.peer, Some(ip(11)));
        assert_eq!(
            best.attrs.next_hop,
            NextHop::V4(Ipv4Addr::new(192, 168, 0, 11))
        );
        assert_eq!(best.attrs.local_pref, Some(100));
    }
    a.withdraw(vec!["10.244.1.0/26".parse().unwrap()])
        .await
        .unwrap();
    let w = next_change(&mut b_best).await;
    assert_eq!(
        w,
        vec![BestPathChange {
            prefix: "10.244.1.0/26".parse().unwrap(),
            best: None
        }]
    );
    let st = b.fresh_status().await.unwrap();
    let p = st.peers.iter().find(|p| p.address == ip(11)).unwrap();
    assert_eq!((p.prefixes_received, p.prefixes_accepted), (1, 1));
    assert!(p.negotiated.as_ref().unwrap().four_octet_as);
    a.shutdown(ShutdownMode::Hard).await;
    b.shutdown(ShutdownMode::Hard).await;
}

#[tokio::test]
async fn route_reflector_reflects_between_clients() {
    let mut rr_cfg = cfg(21, 64512);
    rr_cfg.cluster_id = Some(Ipv4Addr::new(10, 0, 0, 21));
    let (c1, _c1_best) = start(cfg(22, 64512)).await.unwrap();
    let (c2, mut c2_best) = start(cfg(23, 64512)).await.unwrap();
    rr_cfg.peers = vec![
        PeerConfig {
            rr_client: true,
            local_address: Some(ip(21)),
            ..peer(22, 64512, port(&c1))
        },
        PeerConfig {
            rr_client: true,
            local_address: Some(ip(21)),
            ..peer(23, 64512, port(&c2))
        },
    ];
    let (rr, _rr_best) = start(rr_cfg).await.unwrap();
    for (c, last) in [(&c1, 22u8), (&c2, 23u8)] {
        let mut cc = cfg(last, 64512);
        cc.listen = c.status().listen;
        cc.peers.push(PeerConfig {
            passive: true,
            ..peer(21, 64512, 179)
        });
        c.reconfigure(cc).await.unwrap();
    }
    wait_state(&rr, ip(22), SessionState::Established).await;
    wait_state(&rr, ip(23), SessionState::Established).await;
    c1.originate(vec![route("10.244.9.0/26", 22)])
        .await
        .unwrap();
    let ch = next_change(&mut c2_best).await;
    let best = ch[0].best.as_ref().expect("reflected");
    assert_eq!(best.peer, Some(ip(21)));
    assert_eq!(best.attrs.originator_id, Some(Ipv4Addr::new(10, 0, 0, 22)));
    assert_eq!(best.attrs.cluster_list, vec![Ipv4Addr::new(10, 0, 0, 21)]);
    assert_eq!(
        best.attrs.next_hop,
        NextHop::V4(Ipv4Addr::new(192, 168, 0, 22)),
        "RR keeps the next hop"
    );

    // Removing a client by reconfiguration closes only its session.
    let mut keep = rr.status().peers.clone();
    keep.retain(|p| p.address == ip(23));
    let mut new_cfg = cfg(21, 64512);
    new_cfg.listen = rr.status().listen;
    new_cfg.cluster_id = Some(Ipv4Addr::new(10, 0, 0, 21));
    new_cfg.peers = vec![PeerConfig {
        rr_client: true,
        local_address: Some(ip(21)),
        ..peer(23, 64512, port(&c2))
    }];
    rr.reconfigure(new_cfg).await.unwrap();
    let ch = next_change(&mut c2_best).await;
    assert!(
        ch[0].best.is_none(),
        "c1's route withdrawn when c1 is removed"
    );
    let st = rr.status();
    assert_eq!(st.peers.len(), 1);
    assert_eq!(st.peers[0].state, SessionState::Established, "c2 untouched");
    for h in [&rr, &c1, &c2] {
        h.shutdown(ShutdownMode::Hard).await;
    }
}
