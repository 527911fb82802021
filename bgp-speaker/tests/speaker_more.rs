//! More loopback sessions between our own speakers: eBGP rules, IPv6,
//! TCP MD5, graceful restart (helper and restarting sides), hold timer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bgp_speaker::route::AsSegment;
use bgp_speaker::{
    start, BestPathChange, LocalRoute, NextHop, PathAttrs, PeerConfig, SessionState, ShutdownMode,
    SpeakerConfig, SpeakerHandle,
};
use tokio::sync::mpsc::Receiver;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 2, last))
}

fn cfg(last: u8, asn: u32, port: u16) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(Ipv4Addr::new(10, 0, 2, last), asn);
    c.listen = Some(SocketAddr::new(ip(last), port));
    c
}

/// A passive peer entry for `last` (it connects to us).
fn passive(last: u8, asn: u32) -> PeerConfig {
    PeerConfig {
        passive: true,
        ..PeerConfig::new(ip(last), asn)
    }
}

/// An active peer entry for `last` listening on `port`.
fn active(from: u8, last: u8, asn: u32, port: u16) -> PeerConfig {
    PeerConfig {
        port,
        connect_retry: 1,
        local_address: Some(ip(from)),
        ..PeerConfig::new(ip(last), asn)
    }
}

fn port_of(h: &SpeakerHandle) -> u16 {
    h.status().listen.unwrap().port()
}

async fn wait_state(h: &SpeakerHandle, addr: IpAddr, want: SessionState, secs: u64) -> bool {
    let mut rx = h.watch_status();
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            if rx
                .borrow_and_update()
                .peers
                .iter()
                .any(|p| p.address == addr && p.state == want)
            {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    })
    .await
    .is_ok()
}

async fn changes(rx: &mut Receiver<Vec<BestPathChange>>, n: usize) -> Vec<BestPathChange> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("changes in time")
            .unwrap();
        got.extend(batch);
    }
    got
}

fn v4(p: &str) -> LocalRoute {
    LocalRoute {
        prefix: p.parse().unwrap(),
        attrs: PathAttrs::local(NextHop::V4(Ipv4Addr::UNSPECIFIED)),
    }
}

#[tokio::test]
async fn ebgp_prepends_sets_next_hop_and_carries_ipv6() {
    let (a, _ab) = start(cfg(1, 65001, 0)).await.unwrap();
    let mut cb = cfg(2, 65002, 0);
    cb.peers.push(active(2, 1, 65001, port_of(&a)));
    let (b, mut b_best) = start(cb).await.unwrap();
    let mut ca = cfg(1, 65001, port_of(&a));
    ca.peers.push(passive(2, 65002));
    a.reconfigure(ca).await.unwrap();
    assert!(wait_state(&b, ip(1), SessionState::Established, 20).await);
    let v6 = LocalRoute {
        prefix: "fd00:244::/64".parse().unwrap(),
        attrs: PathAttrs::local(NextHop::V6 {
            global: "fd00::1".parse().unwrap(),
            link_local: None,
        }),
    };
    let mut with_med = v4("10.5.0.0/16");
    with_med.attrs.med = Some(50);
    a.originate(vec![with_med, v6]).await.unwrap();
    let got = changes(&mut b_best, 2).await;
    let r4 = got
        .iter()
        .find(|c| c.prefix.to_string() == "10.5.0.0/16")
        .unwrap()
        .best
        .clone()
        .unwrap();
    assert_eq!(r4.attrs.as_path, vec![AsSegment::Sequence(vec![65001])]);
    assert_eq!(
        r4.attrs.next_hop,
        NextHop::V4(Ipv4Addr::new(127, 0, 2, 1)),
        "eBGP next hop = session address"
    );
    assert_eq!(r4.attrs.local_pref, None);
    assert_eq!(
        r4.attrs.med,
        Some(50),
        "a locally set MED goes to the eBGP peer"
    );
    let r6 = got
        .iter()
        .find(|c| c.prefix.to_string() == "fd00:244::/64")
        .unwrap()
        .best
        .clone()
        .unwrap();
    // IPv6 over an IPv4 session: next hop self is the v4-mapped address.
    assert_eq!(
        r6.attrs.next_hop,
        NextHop::V6 {
            global: Ipv4Addr::new(127, 0, 2, 1).to_ipv6_mapped(),
            link_local: None
        }
    );
    let _ = Ipv6Addr::LOCALHOST;
    a.shutdown(ShutdownMode::Hard).await;
    b.shutdown(ShutdownMode::Hard).await;
}

#[tokio::test]
async fn md5_right_key_connects_wrong_key_does_not() {
    let mut ca = cfg(11, 64512, 0);
    ca.peers.push(PeerConfig {
        password: Some("s3cret".into()),
        ..passive(12, 64512)
    });
    ca.peers.push(PeerConfig {
        password: Some("s3cret".into()),
        ..passive(13, 64512)
    });
    let (a, _ab) = start(ca).await.unwrap();
    let p = port_of(&a);
    let mut good = cfg(12, 64512, 0);
    good.peers.push(PeerConfig {
        password: Some("s3cret".into()),
        ..active(12, 11, 64512, p)
    });
    let (g, _gb) = start(good).await.unwrap();
    let mut bad = cfg(13, 64512, 0);
    bad.peers.push(PeerConfig {
        password: Some("wrong".into()),
        ..active(13, 11, 64512, p)
    });
    let (b, _bb) = start(bad).await.unwrap();
    assert!(
        wait_state(&a, ip(12), SessionState::Established, 20).await,
        "{:#?}",
        a.status()
    );
    assert!(
        !wait_state(&a, ip(13), SessionState::Established, 4).await,
        "wrong key must not connect"
    );
    let st = b.status();
    assert_ne!(st.peers[0].state, SessionState::Established);
    for h in [&a, &g, &b] {
        h.shutdown(ShutdownMode::Hard).await;
    }
}

/// Runs a speaker on its own runtime, so that dropping the runtime kills it
/// without any NOTIFICATION, like `kill -9`.
fn crashable(cfg: SpeakerConfig, routes: Vec<LocalRoute>) -> tokio::runtime::Runtime {
    // Built and entered on a plain thread: a runtime cannot block inside one.
    std::thread::spawn(move || crashable_on_this_thread(cfg, routes))
        .join()
        .unwrap()
}

fn crashable_on_this_thread(
    cfg: SpeakerConfig,
    routes: Vec<LocalRoute>,
) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (h, best) = start(cfg).await.unwrap();
        h.originate(routes).await.unwrap();
        // Keep the handle and stream alive as long as the runtime.
        tokio::spawn(async move {
            let _keep = (h, best);
            std::future::pending::<()>().await;
        });
    });
    rt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_routes_across_a_crash_and_refreshes_them() {
    let mut ch = cfg(21, 64512, 0);
    ch.peers.push(passive(22, 64512));
    ch.peers.push(passive(23, 64512));
    let (helper, mut best) = start(ch).await.unwrap();
    let p = port_of(&helper);
    let restarter = |restarting: bool, routes: Vec<LocalRoute>| {
        let mut c = cfg(22, 64512, 0);
        c.graceful_restart.restart_time = 30;
        c.graceful_restart.restarting = restarting;
        c.peers.push(active(22, 21, 64512, p));
        crashable(c, routes)
    };
    let rt = restarter(false, vec![v4("10.7.1.0/24"), v4("10.7.2.0/24")]);
    assert!(wait_state(&helper, ip(22), SessionState::Established, 20).await);
    assert_eq!(changes(&mut best, 2).await.len(), 2);

    // kill -9: the helper keeps both routes (stale), announces no change.
    rt.shutdown_background();
    assert!(wait_state(&helper, ip(22), SessionState::Active, 20).await);
    assert_eq!(
        helper.fresh_status().await.unwrap().loc_rib_prefixes,
        2,
        "stale routes kept"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), best.recv())
            .await
            .is_err(),
        "no best-path change"
    );

    // It comes back with the R bit and only one of the two routes: after
    // its End-of-RIB the other stale route goes, the kept one never left.
    let rt2 = restarter(true, vec![v4("10.7.1.0/24")]);
    assert!(wait_state(&helper, ip(22), SessionState::Established, 20).await);
    let got = changes(&mut best, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].prefix.to_string(), "10.7.2.0/24");
    assert!(got[0].best.is_none());
    // A status asked for after the change stream shows the change.
    let st = helper.fresh_status().await.unwrap();
    assert_eq!(st.loc_rib_prefixes, 1, "{st:#?}");
    rt2.shutdown_background();
    helper.shutdown(ShutdownMode::Hard).await;
}

#[tokio::test]
async fn hard_shutdown_drops_routes_at_once() {
    let mut ch = cfg(41, 64512, 0);
    ch.peers.push(passive(42, 64512));
    let (helper, mut best) = start(ch).await.unwrap();
    let mut c = cfg(42, 64512, 0);
    c.peers.push(active(42, 41, 64512, port_of(&helper)));
    let (other, _ob) = start(c).await.unwrap();
    other.originate(vec![v4("10.9.0.0/24")]).await.unwrap();
    changes(&mut best, 1).await;
    other.shutdown(ShutdownMode::Hard).await;
    let gone = tokio::time::timeout(Duration::from_secs(3), best.recv())
        .await
        .expect("withdrawn at once")
        .unwrap();
    assert!(gone[0].best.is_none());
    let st = helper.fresh_status().await.unwrap();
    assert!(
        st.peers[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("6/9"),
        "{:?}",
        st.peers[0].last_error
    );
    helper.shutdown(ShutdownMode::Hard).await;
}

#[tokio::test]
async fn extended_messages_pack_3000_routes_in_one_update() {
    let (a, _ab) = start(cfg(51, 64512, 0)).await.unwrap();
    let mut cb = cfg(52, 64512, 0);
    cb.peers.push(active(52, 51, 64512, port_of(&a)));
    let (b, mut b_best) = start(cb).await.unwrap();
    let mut ca = cfg(51, 64512, port_of(&a));
    ca.peers.push(passive(52, 64512));
    a.reconfigure(ca).await.unwrap();
    assert!(wait_state(&a, ip(52), SessionState::Established, 20).await);
    let routes: Vec<LocalRoute> = (0..3000u32)
        .map(|i| {
            let o = (i + 1).to_be_bytes();
            v4(&format!("10.{}.{}.{}/32", 100 + o[1], o[2], o[3]))
        })
        .collect();
    a.originate(routes).await.unwrap();
    assert_eq!(changes(&mut b_best, 3000).await.len(), 3000);
    let st = a.fresh_status().await.unwrap();
    let p = &st.peers[0];
    assert!(
        p.negotiated.as_ref().unwrap().extended_message,
        "RFC 8654 negotiated"
    );
    // 3000 x 5 octets of NLRI fit one 65535-octet UPDATE (not one of 4096).
    assert_eq!(p.updates_sent, 1, "{p:#?}");
    a.shutdown(ShutdownMode::Hard).await;
    b.shutdown(ShutdownMode::Hard).await;
}

/// RFC 4724 §4.1 Selection_Deferral_Timer: a restarted speaker whose
/// configured peer never comes back sends its routes after the deferral
/// time (half the 120 s restart time: 60 s), not after the restart time.
#[tokio::test(start_paused = true)]
async fn the_selection_deferral_timer_is_shorter_than_the_restart_time() {
    let mut c = cfg(74, 64512, 0);
    c.graceful_restart.restarting = true;
    c.graceful_restart.restart_time = 120;
    c.peers.push(passive(75, 64512));
    assert_eq!(bgp_speaker::default_deferral_time(120), 60);
    let (h, _best) = start(c).await.unwrap();
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(
        h.fresh_status().await.unwrap().deferring,
        "still deferring at 59 s"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!h.fresh_status().await.unwrap().deferring, "done at 61 s");
    h.shutdown(ShutdownMode::Hard).await;
}

/// A reconfiguration that fails part way changes nothing: here a new
/// listen address binds, but the MD5 key of an IPv6 peer cannot go on an
/// IPv4 listening socket. The old listener keeps listening (it used to be
/// replaced before the key failed) and the peers stay as they were.
#[tokio::test]
async fn a_reconfiguration_that_fails_changes_nothing() {
    let mut c = cfg(76, 64512, 0);
    c.peers.push(passive(77, 64512));
    let (h, _best) = start(c.clone()).await.unwrap();
    let before = h.status().listen.unwrap();
    let mut bad = c.clone();
    bad.listen = Some(SocketAddr::new(ip(78), 0));
    bad.peers.push(PeerConfig {
        password: Some("k".into()),
        ..passive(79, 64512)
    });
    bad.peers.push(PeerConfig {
        password: Some("k".into()),
        passive: true,
        ..PeerConfig::new("fd00::9".parse().unwrap(), 64512)
    });
    let err = h.reconfigure(bad.clone()).await.unwrap_err();
    assert!(err.to_string().contains("fd00::9"), "{err}");
    let st = h.fresh_status().await.unwrap();
    assert_eq!(st.listen, Some(before), "the old listener stays");
    assert_eq!(st.peers.len(), 1);
    tokio::net::TcpStream::connect(before)
        .await
        .expect("the old listener still accepts");
    // The same with the listen address unchanged.
    bad.listen = c.listen;
    assert!(h.reconfigure(bad).await.is_err());
    assert_eq!(h.fresh_status().await.unwrap().peers.len(), 1);
    h.shutdown(ShutdownMode::Hard).await;
}

/// A large batch (here 200,000 routes at once) is decided off the async
/// runtime: on a one-thread runtime, as tortie-node runs the speaker, a
/// task beside it (a session's keepalive timer, say) is not held up for
/// the length of the decision.
#[test]
fn a_large_decision_leaves_the_runtime_free() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    large_decision_beside_a_ticker(&rt, 80);
}

/// The same on a multi-thread runtime, as tortie-rr runs the speaker.
#[test]
fn a_large_decision_leaves_a_multi_thread_runtime_free() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    large_decision_beside_a_ticker(&rt, 81);
}

/// Originates 200,000 routes on a speaker (router id 10.0.2.`last`) in
/// `rt` while a task beside it ticks every 2 ms; fails if the ticker was
/// held up for a third of the time the routes took.
fn large_decision_beside_a_ticker(rt: &tokio::runtime::Runtime, last: u8) {
    rt.block_on(async {
        let (h, _best) = start(cfg(last, 64512, 0)).await.unwrap();
        let routes: Vec<LocalRoute> = (0..200_000u32)
            .map(|i| LocalRoute {
                prefix: IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)).into(),
                attrs: PathAttrs::local(NextHop::V4(Ipv4Addr::new(192, 168, 8, 1))),
            })
            .collect();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = tokio::spawn({
            let done = done.clone();
            async move {
                let mut worst = Duration::ZERO;
                let mut last = std::time::Instant::now();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    worst = worst.max(last.elapsed());
                    last = std::time::Instant::now();
                }
                worst
            }
        });
        // The ticker is running (asleep in its timer) before the routes go.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = std::time::Instant::now();
        h.originate(routes).await.unwrap();
        while h.fresh_status().await.unwrap().loc_rib_prefixes < 200_000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let total = t0.elapsed();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let worst = ticker.await.unwrap();
        eprintln!("200,000 routes decided in {total:?}; the runtime's longest stall: {worst:?}");
        assert!(
            worst * 3 < total,
            "the runtime stalled {worst:?} of {total:?}"
        );
        h.shutdown(ShutdownMode::Hard).await;
    });
}
