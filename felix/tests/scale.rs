//! Scale check (ignored by default: takes seconds and a lot of CPU on the
//! shared machines). Programs N /32 `via` routes into a fresh namespace,
//! then checks a resync of the unchanged table writes nothing; prints the
//! timings. The benchmarks with `ip -batch` and BIRD side by side are a
//! separate step (docs/benchmarks.md).
//! `FELIX_SCALE_ROUTES=100000 cargo test -p felix --test scale -- --ignored --nocapture`

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use felix::desired::{DesiredState, LearnedRoute, LocalNode, PeerNode};
use felix::reconciler::{self, ReconcilerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale measurement (seconds of CPU): run with --ignored --nocapture"]
async fn many_routes_converge_and_resync_writes_nothing() {
    let n: u32 = std::env::var("FELIX_SCALE_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let ns = common::node_ns("scale");
    let state = DesiredState {
        local_node: LocalNode {
            name: "a".into(),
            addresses: vec!["192.168.1.11/24".parse().unwrap()],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        nodes: vec![PeerNode {
            name: "b".into(),
            addresses: vec!["192.168.1.12".parse().unwrap()],
            vteps: vec![],
        }],
        learned: (0..n)
            .map(|i| LearnedRoute {
                prefix: ipnet::IpNet::from(std::net::IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))),
                next_hop: "192.168.1.12".parse().unwrap(),
            })
            .collect(),
        ..DesiredState::default()
    };
    let mut h = reconciler::start(ReconcilerConfig {
        netns: Some(ns.path()),
        ..ReconcilerConfig::default()
    })
    .unwrap();
    let t = Instant::now();
    h.set_desired(state).await.unwrap();
    let s = h
        .wait_for(Duration::from_secs(120), |s| s.passes > 0)
        .await
        .expect("no pass");
    let first = s.last_pass.clone().unwrap();
    eprintln!(
        "{n} routes: first pass {:?} (end to end {:?})",
        first.duration,
        t.elapsed()
    );
    assert!(first.failures.is_empty());
    assert_eq!(first.writes, u64::from(n));
    h.resync().await.unwrap();
    let s2 = h
        .wait_for(Duration::from_secs(120), |x| x.passes > s.passes)
        .await
        .expect("no resync pass");
    let second = s2.last_pass.unwrap();
    eprintln!(
        "{n} routes: unchanged resync {:?}; notification overruns so far: {}",
        second.duration, s2.kernel_overruns
    );
    assert_eq!((second.installed, second.writes), (n as usize, 0));
    // A human deletes one route: it comes back without a full dump.
    ns.ip(&["route", "del", "10.0.0.7/32"]);
    let deleted = Instant::now();
    let s3 = h
        .wait_for(Duration::from_secs(5), |x| x.writes > s2.writes)
        .await
        .expect("not healed");
    let took = deleted.elapsed();
    eprintln!("{n} routes: healed one deleted route in {took:?}");
    assert!(!s3.last_pass.unwrap().full);
    assert!(took < Duration::from_millis(100), "{took:?}");
    assert!(ns.routes_text(&["proto", "116"]).contains("10.0.0.7 via"));
}
