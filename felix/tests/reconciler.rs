//! The reconciler against a real kernel, in namespaces the test creates.
//! See `common::node_ns` for the namespace (eth0 192.168.1.11/24, real
//! vxlan.tortie and vxlan-v6.tortie, a veth named tunl0 standing in for the
//! ipip device, and a pod veth tort0123456789a).

mod common;

use std::time::{Duration, Instant};

use felix::desired::{
    BorrowedAddress, DesiredState, LearnedRoute, LocalNode, PeerNode, Pool, WorkloadEndpoint,
};
use felix::reconciler::{self, PassReason, ReconcilerConfig, ReconcilerHandle, Status};
use tortie_ipip::EncapMode;

const WAIT: Duration = Duration::from_secs(5);

fn desired() -> DesiredState {
    let ip = |s: &str| s.parse().unwrap();
    let net = |s: &str| s.parse().unwrap();
    DesiredState {
        local_node: LocalNode {
            name: "node-a".into(),
            addresses: vec![net("192.168.1.11/24"), net("fd00:1::11/64")],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        nodes: vec![
            PeerNode {
                name: "node-b".into(),
                addresses: vec![ip("192.168.1.12"), ip("fd00:1::12")],
                vteps: vec![],
            },
            PeerNode {
                name: "node-c".into(),
                addresses: vec![ip("192.168.2.21"), ip("fd00:2::21")],
                vteps: vec![ip("10.245.9.0"), ip("fd00:245:9::")],
            },
        ],
        endpoints: vec![WorkloadEndpoint {
            workload_id: "default/web-1".into(),
            interface: "tort0123456789a".into(),
            addresses: vec![ip("10.244.3.7"), ip("fd00:244:3::7")],
        }],
        blocks: vec![net("10.244.3.0/26"), net("fd00:244:3::/122")],
        borrowed: vec![BorrowedAddress {
            address: ip("10.244.3.50"),
            node: ip("192.168.2.21"),
        }],
        learned: vec![
            LearnedRoute {
                prefix: net("10.244.7.0/26"),
                next_hop: ip("192.168.1.12"),
            },
            LearnedRoute {
                prefix: net("fd00:244:7::/122"),
                next_hop: ip("fd00:1::12"),
            },
            LearnedRoute {
                prefix: net("10.244.9.0/26"),
                next_hop: ip("192.168.2.21"),
            },
            LearnedRoute {
                prefix: net("10.245.9.0/26"),
                next_hop: ip("192.168.2.21"),
            },
            LearnedRoute {
                prefix: net("fd00:245:9::/122"),
                next_hop: ip("fd00:2::21"),
            },
        ],
        pools: vec![
            Pool {
                cidr: net("10.244.0.0/16"),
                ipip: EncapMode::CrossSubnet,
                vxlan: EncapMode::Never,
                nat_outgoing: true,
            },
            Pool {
                cidr: net("10.245.0.0/16"),
                ipip: EncapMode::Never,
                vxlan: EncapMode::Always,
                nat_outgoing: false,
            },
            Pool {
                cidr: net("fd00:245::/32"),
                ipip: EncapMode::Never,
                vxlan: EncapMode::Always,
                nat_outgoing: false,
            },
        ],
    }
}

/// `ip -j route show proto 116` (v4 and v6) as sorted one-line summaries.
fn ours(ns: &common::Netns) -> Vec<String> {
    let mut v: Vec<String> = ns
        .our_routes()
        .iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let mut line = String::new();
            if let Some(t) = s("type") {
                line.push_str(&format!("{t} "));
            }
            line.push_str(&s("dst").unwrap_or_default());
            if let Some(g) = s("gateway") {
                line.push_str(&format!(" via {g}"));
            }
            if let Some(d) = s("dev").filter(|_| s("type").is_none()) {
                line.push_str(&format!(" dev {d}"));
            }
            for f in r["flags"].as_array().into_iter().flatten() {
                if f == "onlink" {
                    line.push_str(" onlink");
                }
            }
            line
        })
        .collect();
    v.sort();
    v
}

fn expected() -> Vec<String> {
    let mut v: Vec<String> = [
        "blackhole 10.244.3.0/26",
        "10.244.3.7 dev tort0123456789a",
        "10.244.3.50 via 192.168.2.21 dev tunl0 onlink",
        "10.244.7.0/26 via 192.168.1.12 dev eth0",
        "10.244.9.0/26 via 192.168.2.21 dev tunl0 onlink",
        "10.245.9.0/26 via 10.245.9.0 dev vxlan.tortie onlink",
        "blackhole fd00:244:3::/122",
        "fd00:244:3::7 dev tort0123456789a",
        "fd00:244:7::/122 via fd00:1::12 dev eth0",
        "fd00:245:9::/122 via fd00:245:9:: dev vxlan-v6.tortie onlink",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.sort();
    v
}

fn config(ns: &common::Netns) -> ReconcilerConfig {
    ReconcilerConfig {
        netns: Some(ns.path()),
        ..ReconcilerConfig::default()
    }
}

/// Waits for a pass after `passes` passes; returns the status.
async fn next_pass(h: &mut ReconcilerHandle, passes: u64) -> Status {
    h.wait_for(WAIT, |s| s.passes > passes)
        .await
        .unwrap_or_else(|| panic!("no pass after {passes} within {WAIT:?}"))
}

/// Waits until no pass ran for 300 ms (the echoes of earlier writes, and
/// the passes they cause, are over): a delta applies only to a kernel in
/// sync with no full pass pending.
async fn settled(h: &ReconcilerHandle) -> Status {
    let mut s = h.status();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = h.status();
        if now.passes == s.passes {
            return now;
        }
        s = now;
    }
}

/// A full pass (asked for after `passes` passes) finds the kernel as
/// desired: it writes nothing.
async fn full_pass_writes_nothing(h: &mut ReconcilerHandle, passes: u64) {
    h.resync().await.unwrap();
    let s = next_pass(h, passes).await;
    let full = s.last_pass.unwrap();
    assert!(full.full);
    assert_eq!(
        full.writes, 0,
        "the delta left the kernel as desired: {full:#?}"
    );
}

/// Starts a reconciler, sets the desired state, waits until converged.
async fn converged(ns: &common::Netns) -> ReconcilerHandle {
    let mut h = reconciler::start(config(ns)).unwrap();
    h.set_desired(desired()).await.unwrap();
    let s = next_pass(&mut h, 0).await;
    let last = s.last_pass.unwrap();
    assert!(last.failures.is_empty(), "{:#?}", last.failures);
    assert_eq!(ours(ns), expected());
    h
}

#[tokio::test]
async fn programs_every_shape_and_second_pass_writes_nothing() {
    let ns = common::node_ns("idem");
    let mut h = converged(&ns).await;
    let s = h.status();
    assert_eq!(s.writes, 10, "{s:#?}");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // A forced full pass and a re-sent identical state: zero writes.
    h.resync().await.unwrap();
    let s2 = next_pass(&mut h, s.passes).await;
    let last = s2.last_pass.clone().unwrap();
    assert_eq!(last.reason, PassReason::OnDemand);
    assert_eq!((last.installed, last.writes), (10, 0), "{last:#?}");
    h.set_desired(desired()).await.unwrap();
    let s3 = next_pass(&mut h, s2.passes).await;
    assert_eq!(s3.writes, 10, "identical state caused writes: {s3:#?}");
    assert_eq!(ours(&ns), expected());
}

#[tokio::test]
async fn a_deleted_route_comes_back_within_100ms() {
    let ns = common::node_ns("heal");
    let mut h = converged(&ns).await;
    let mut worst = Duration::ZERO;
    for (family, dst) in [
        ("-4", "10.244.7.0/26"),
        ("-4", "10.244.3.0/26"),
        ("-4", "10.244.3.7/32"),
        ("-4", "10.245.9.0/26"),
        ("-6", "fd00:244:7::/122"),
        ("-6", "fd00:245:9::/122"),
    ] {
        let before = h.status();
        ns.ip(&[family, "route", "del", dst]);
        let deleted = Instant::now();
        let s = h
            .wait_for(WAIT, |s| {
                s.passes > before.passes && s.writes > before.writes
            })
            .await
            .unwrap_or_else(|| panic!("{dst} was not restored"));
        let took = deleted.elapsed();
        worst = worst.max(took);
        let last = s.last_pass.unwrap();
        assert_eq!(last.reason, PassReason::Kernel);
        assert!(!last.full, "a deletion should heal without a full dump");
        assert_eq!((last.add, last.writes), (1, 1), "{last:#?}");
        assert_eq!(ours(&ns), expected(), "after healing {dst}");
        eprintln!("healed {dst} in {took:?}");
    }
    assert!(
        worst < Duration::from_millis(100),
        "slowest heal took {worst:?}"
    );
}

#[tokio::test]
async fn foreign_routes_are_never_touched() {
    let ns = common::node_ns("foreign");
    // Foreign routes: one beside ours, one from "BIRD" (proto 12), one with
    // a prefix felix wants (felix must not overwrite it), and one sharing a
    // prefix with a stale route of ours at another metric.
    ns.ip(&[
        "route",
        "add",
        "10.250.0.0/24",
        "via",
        "192.168.1.12",
        "proto",
        "static",
    ]);
    ns.ip(&[
        "route",
        "add",
        "10.251.0.0/24",
        "via",
        "192.168.1.12",
        "proto",
        "12",
    ]);
    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "10.244.9.0/26",
        "proto",
        "static",
    ]);
    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "10.244.60.0/26",
        "proto",
        "static",
        "metric",
        "10",
    ]);
    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "10.244.60.0/26",
        "proto",
        "116",
    ]);
    let foreign = |ns: &common::Netns| {
        let mut v: Vec<String> = ns
            .routes_text(&[])
            .lines()
            .chain(ns.ip(&["-6", "route", "show"]).lines())
            .filter(|l| !l.contains("proto 116"))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    let before = foreign(&ns);
    let mut h = reconciler::start(config(&ns)).unwrap();
    h.set_desired(desired()).await.unwrap();
    let s = next_pass(&mut h, 0).await;
    let last = s.last_pass.unwrap();
    // Our stale 10.244.60.0/26 went; the wanted 10.244.9.0/26 could not be
    // added over the static one and is reported, naming the route.
    assert_eq!(last.delete, 1, "{last:#?}");
    assert_eq!(last.failures.len(), 1, "{last:#?}");
    assert!(
        last.failures[0].contains("10.244.9.0/26"),
        "{:?}",
        last.failures
    );
    assert!(
        last.failures[0].contains("File exists"),
        "{:?}",
        last.failures
    );
    // It is retried with backoff, and keeps failing without touching it.
    let s = next_pass(&mut h, s.passes).await;
    assert_eq!(s.last_pass.as_ref().unwrap().reason, PassReason::Retry);
    h.resync().await.unwrap();
    next_pass(&mut h, s.passes).await;
    assert_eq!(foreign(&ns), before);
    let mut want = expected();
    want.retain(|r| !r.starts_with("10.244.9.0/26"));
    assert_eq!(ours(&ns), want);
}

#[tokio::test]
async fn restart_keeps_routes_and_adopts_them_without_writes() {
    let ns = common::node_ns("restart");
    let h = converged(&ns).await;
    h.shutdown().await;
    // Routes stay after the reconciler is gone.
    assert_eq!(ours(&ns), expected());
    // A stale route of ours from "before the restart".
    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "10.244.99.0/26",
        "proto",
        "116",
    ]);
    let mut h = reconciler::start(config(&ns)).unwrap();
    // No desired state yet: nothing is touched, even on a resync or when a
    // route of ours is deleted.
    h.resync().await.unwrap();
    ns.ip(&["route", "del", "10.244.7.0/26"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = h.status();
    assert_eq!((s.passes, s.writes), (0, 0), "{s:#?}");
    assert!(ns.routes_text(&[]).contains("10.244.99.0/26"));
    // First desired state: one add (the deleted one) and one delete (the
    // stale one); the other 9 are adopted as they are.
    h.set_desired(desired()).await.unwrap();
    let s = next_pass(&mut h, 0).await;
    let last = s.last_pass.unwrap();
    assert_eq!(
        (last.installed, last.add, last.delete, last.replace),
        (10, 1, 1, 0),
        "{last:#?}"
    );
    assert_eq!(s.writes, 2);
    assert_eq!(ours(&ns), expected());
    h.shutdown().await;
    // Plain restart: zero writes.
    let mut h = reconciler::start(config(&ns)).unwrap();
    h.set_desired(desired()).await.unwrap();
    let s = next_pass(&mut h, 0).await;
    assert_eq!(s.writes, 0, "{s:#?}");
    assert_eq!(ours(&ns), expected());
}

#[tokio::test]
async fn route_to_a_missing_workload_interface_waits_until_it_exists() {
    let ns = common::node_ns("late-if");
    let mut state = desired();
    state.endpoints.push(WorkloadEndpoint {
        workload_id: "default/late".into(),
        interface: "tortbbbbbbbbbbb".into(),
        addresses: vec!["10.244.3.8".parse().unwrap()],
    });
    let mut h = reconciler::start(config(&ns)).unwrap();
    h.set_desired(state).await.unwrap();
    let s = next_pass(&mut h, 0).await;
    let last = s.last_pass.unwrap();
    // Not a failure: the CNI plugin writes the endpoint before it makes
    // the interface. The route waits for it.
    assert!(last.failures.is_empty(), "{last:#?}");
    assert_eq!(last.waiting, 1, "{last:#?}");
    assert_eq!(ours(&ns), expected(), "the rest must be programmed");
    // The CNI plugin creates the interface, its peer straight in the
    // pod's namespace (as tortie-cni does): the route follows.
    let pods = common::Netns::new("late-pod");
    ns.ip(&[
        "link",
        "add",
        "tortbbbbbbbbbbb",
        "type",
        "veth",
        "peer",
        "name",
        "pod1",
        "netns",
        &pods.name,
    ]);
    // Made but still down: the kernel would refuse the route, so it waits
    // (no failure, no retry, no pass).
    let passes = h.status().passes;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = h.status();
    assert_eq!(
        s.passes, passes,
        "nothing to do for a link that is down: {s:#?}"
    );
    ns.ip(&["link", "set", "tortbbbbbbbbbbb", "up"]);
    h.wait_for(WAIT, |s| {
        s.last_pass
            .as_ref()
            .is_some_and(|p| p.failures.is_empty() && p.waiting == 0)
    })
    .await
    .expect("route to the new interface was never added");
    assert!(ns
        .routes_text(&["proto", "116"])
        .contains("10.244.3.8 dev tortbbbbbbbbbbb"));
    let s = h.status();
    let last = s.last_pass.as_ref().unwrap();
    assert!(
        !last.full && last.writes >= 1,
        "the interface's own route, written without a dump: {last:#?}"
    );
    // Another workload's interface, no route of ours on it (its endpoint
    // is not known yet), with its IPv6 link-local address: no pass at all.
    let passes = s.passes;
    ns.ip(&[
        "link",
        "add",
        "tortccccccccccc",
        "type",
        "veth",
        "peer",
        "name",
        "pod2",
        "netns",
        &pods.name,
    ]);
    ns.ip(&["link", "set", "tortccccccccccc", "up"]);
    pods.ip(&["link", "set", "pod2", "up"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.status().passes,
        passes,
        "a workload interface with no route of ours costs no pass"
    );
    // Down (the kernel drops its route without a word) and up again: the
    // route is written back, still without a dump.
    pods.ip(&["link", "set", "pod1", "up"]);
    ns.ip(&["link", "set", "tortbbbbbbbbbbb", "down"]);
    ns.ip(&["link", "set", "tortbbbbbbbbbbb", "up"]);
    let back = Instant::now();
    while !ns
        .routes_text(&["proto", "116"])
        .contains("10.244.3.8 dev tortbbbbbbbbbbb")
    {
        assert!(back.elapsed() < WAIT, "the route did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = h.status().last_pass.unwrap();
    assert!(!last.full, "written back without a dump: {last:#?}");
    assert_eq!(ours(&ns).len(), expected().len() + 1);
}

#[tokio::test]
async fn periodic_resync_runs_and_bursts_are_coalesced() {
    let ns = common::node_ns("period");
    let mut h = reconciler::start(ReconcilerConfig {
        resync_interval: Duration::from_millis(150),
        coalesce: Duration::from_millis(20),
        ..config(&ns)
    })
    .unwrap();
    // 50 desired states in a burst: the passes run on the latest state and
    // far fewer than 50 of them.
    for i in 0..50u8 {
        let mut s = desired();
        s.blocks.push(format!("10.246.{i}.0/26").parse().unwrap());
        h.set_desired(s).await.unwrap();
    }
    let s = next_pass(&mut h, 0).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s2 = h.status();
    assert!(s2.passes <= 3, "burst not coalesced: {} passes", s2.passes);
    let text = ns.routes_text(&["proto", "116"]);
    assert!(text.contains("blackhole 10.246.49.0/26"), "{text}");
    assert!(!text.contains("blackhole 10.246.0.0/26"), "{text}");
    // The periodic resync runs by itself and, with nothing changed, writes
    // nothing.
    let p = h
        .wait_for(WAIT, |x| {
            x.last_pass
                .as_ref()
                .is_some_and(|p| p.reason == PassReason::Periodic)
        })
        .await
        .expect("no periodic pass");
    assert_eq!(p.writes, s2.writes, "periodic pass wrote: {p:#?}");
    assert!(s.passes >= 1);
}

/// A new desired state that only changes routes is applied as a delta:
/// no dump, one write per changed prefix; a full resync then agrees.
#[tokio::test]
async fn a_desired_state_change_is_applied_as_a_delta_without_a_dump() {
    let ns = common::node_ns("delta");
    let mut h = converged(&ns).await;
    // Let the echoes of the first pass's vxlan writes (a follow-up full
    // pass) settle: a delta only applies to a kernel in sync with no full
    // pass pending.
    let s = settled(&h).await;
    let mut d = desired();
    d.nodes.push(PeerNode {
        name: "node-d".into(),
        addresses: vec!["192.168.1.13".parse().unwrap()],
        vteps: vec![],
    });
    // Moved, removed, new.
    d.learned[0].next_hop = "192.168.1.13".parse().unwrap();
    d.learned
        .retain(|l| l.prefix.to_string() != "10.244.9.0/26");
    d.learned.push(LearnedRoute {
        prefix: "10.244.8.0/26".parse().unwrap(),
        next_hop: "192.168.1.13".parse().unwrap(),
    });
    h.set_desired(d).await.unwrap();
    let s2 = next_pass(&mut h, s.passes).await;
    let last = s2.last_pass.clone().unwrap();
    assert!(!last.full, "a route-only change needs no dump: {last:#?}");
    assert_eq!(
        (last.add, last.replace, last.delete, last.writes),
        (1, 1, 1, 3),
        "{last:#?}"
    );
    assert!(last.failures.is_empty(), "{:#?}", last.failures);
    let now = ours(&ns);
    assert!(
        now.contains(&"10.244.7.0/26 via 192.168.1.13 dev eth0".to_string()),
        "{now:#?}"
    );
    assert!(
        now.contains(&"10.244.8.0/26 via 192.168.1.13 dev eth0".to_string()),
        "{now:#?}"
    );
    assert!(
        !now.iter().any(|r| r.starts_with("10.244.9.0/26")),
        "{now:#?}"
    );
    full_pass_writes_nothing(&mut h, s2.passes).await;
}

/// Learned-route changes alone (what a BGP UPDATE brings) are computed
/// for their prefixes only and written as a delta: a route moved to
/// another next hop, one withdrawn, a new one, and one that a local pod's
/// route outranks (nothing to write); the warnings follow.
#[tokio::test]
async fn learned_route_changes_are_applied_as_a_delta() {
    let ns = common::node_ns("learned");
    let mut h = converged(&ns).await;
    let s = settled(&h).await;
    let net = |s: &str| s.parse().unwrap();
    let ip = |s: &str| Some(s.parse().unwrap());
    let generation = h
        .update_learned(vec![
            (net("10.244.7.0/26"), ip("192.168.2.21")),
            (net("10.244.9.0/26"), None),
            (net("10.244.8.0/26"), ip("192.168.1.12")),
            // The local pod's /32 wins over a learned host route.
            (net("10.244.3.7/32"), ip("192.168.1.12")),
            // Not a node, not on the subnet: skipped with a warning.
            (net("10.244.10.0/26"), ip("192.168.77.1")),
        ])
        .await
        .unwrap();
    let s2 = next_pass(&mut h, s.passes).await;
    let last = s2.last_pass.clone().unwrap();
    assert!(!last.full, "learned changes need no dump: {last:#?}");
    assert_eq!(
        (last.add, last.replace, last.delete, last.writes),
        (1, 1, 1, 3),
        "{last:#?}"
    );
    assert!(s2.applied >= generation, "{s2:#?}");
    assert!(
        s2.warnings
            .iter()
            .any(|w| w.contains("10.244.10.0/26") && w.contains("192.168.77.1")),
        "{:#?}",
        s2.warnings
    );
    let now = ours(&ns);
    for want in [
        "10.244.7.0/26 via 192.168.2.21 dev tunl0 onlink",
        "10.244.8.0/26 via 192.168.1.12 dev eth0",
        "10.244.3.7 dev tort0123456789a",
    ] {
        assert!(now.contains(&want.to_string()), "{want}: {now:#?}");
    }
    assert!(
        !now.iter().any(|r| r.starts_with("10.244.9.0/26")),
        "{now:#?}"
    );
    // The warning goes with the route that caused it.
    h.update_learned(vec![(net("10.244.10.0/26"), None)])
        .await
        .unwrap();
    let s3 = h
        .wait_for(WAIT, |s| {
            !s.warnings.iter().any(|w| w.contains("10.244.10.0/26"))
        })
        .await
        .expect("the warning cleared");
    // A full pass finds the kernel as the changes left it.
    full_pass_writes_nothing(&mut h, s3.passes).await;
}

/// Learned-route changes before any desired state have nothing to apply
/// to: ignored (the routes a previous run left stay), and the first
/// desired state is applied as usual.
#[tokio::test]
async fn learned_changes_before_the_first_desired_state_are_ignored() {
    let ns = common::node_ns("learned0");
    let mut h = reconciler::start(config(&ns)).unwrap();
    h.update_learned(vec![(
        "10.244.20.0/26".parse().unwrap(),
        Some("192.168.1.12".parse().unwrap()),
    )])
    .await
    .unwrap();
    h.set_desired(desired()).await.unwrap();
    let s = next_pass(&mut h, 0).await;
    assert!(s.last_pass.unwrap().failures.is_empty());
    assert_eq!(ours(&ns), expected());
}

/// An address change is a trigger: with retries far away (60 s), the routes
/// through eth0 that vanished with its address come back as soon as the
/// address is back.
#[tokio::test]
async fn an_address_change_triggers_a_pass() {
    let ns = common::node_ns("addr");
    let mut h = reconciler::start(ReconcilerConfig {
        retry_min: Duration::from_secs(60),
        retry_max: Duration::from_secs(60),
        ..config(&ns)
    })
    .unwrap();
    h.set_desired(desired()).await.unwrap();
    next_pass(&mut h, 0).await;
    assert_eq!(ours(&ns), expected());
    ns.ip(&["addr", "del", "192.168.1.11/24", "dev", "eth0"]);
    // The kernel drops the routes through the gone subnet; our re-add fails
    // while the address is missing.
    let gone = Instant::now();
    while ours(&ns).iter().any(|r| r.contains("via 192.168.1.12")) {
        assert!(
            gone.elapsed() < WAIT,
            "kernel kept the route: {:#?}",
            ours(&ns)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = h.status().passes;
    ns.ip(&["addr", "add", "192.168.1.11/24", "dev", "eth0"]);
    let back = Instant::now();
    while ours(&ns) != expected() {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "routes not back: {:#?}",
            ours(&ns)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h.status().passes > before);
}
