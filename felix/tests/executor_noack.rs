//! The batched executor without per-request ACK ([`Executor::open`]) in a
//! namespace the test creates: every failing request is reported, by
//! sequence number, with its errno; successes are silent; deletes of routes
//! that are gone are success; another protocol's route is never touched.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use felix::kernel::apply::{Executor, Request, INLINE_MAX, NOACK_BATCH};
use felix::kernel::{self, dump};
use felix::route::{InstalledRoute, KernelRoute};
use ipnet::IpNet;

fn host(a: u32) -> IpNet {
    IpNet::from(IpAddr::V4(Ipv4Addr::from(a)))
}

#[tokio::test]
async fn every_failure_is_reported_and_successes_are_silent() {
    let ns = common::node_ns("noack");
    // A foreign route (proto static) on a key we will try to add.
    ns.ip(&[
        "route",
        "add",
        "10.9.0.5/32",
        "via",
        "192.168.1.12",
        "proto",
        "static",
    ]);
    let k = kernel::open(Some(&ns.path())).unwrap();
    let links = dump::links(&k.handle).await.unwrap();
    let mut exec = Executor::open(k.handle.clone(), Some(&ns.path())).unwrap();

    let gw: IpAddr = "192.168.1.12".parse().unwrap();
    let bad_gw: IpAddr = "172.31.0.1".parse().unwrap();
    let mut reqs = Vec::new();
    let mut bad = Vec::new();
    for i in 0..1000u32 {
        let dst = host(0x0a00_0000 + i);
        if i % 97 == 5 {
            // Off-subnet gateway without onlink: ENETUNREACH.
            bad.push(dst);
            reqs.push(Request::Add(KernelRoute::via(dst, bad_gw, "eth0", false)));
        } else {
            reqs.push(Request::Add(KernelRoute::via(dst, gw, "eth0", false)));
        }
    }
    // Taken by the foreign route: EEXIST, and the foreign route stays.
    reqs.push(Request::Add(KernelRoute::via(
        "10.9.0.5/32".parse().unwrap(),
        gw,
        "eth0",
        false,
    )));
    let rep = exec.execute(reqs, &links).await;
    assert_eq!(rep.writes, 1001);
    let mut failed: Vec<IpNet> = rep
        .failures
        .iter()
        .map(|f| match &f.request {
            Request::Add(r) => r.dst,
            other => panic!("unexpected failure {other:?}"),
        })
        .collect();
    failed.sort();
    let mut want = bad.clone();
    want.push("10.9.0.5/32".parse().unwrap());
    want.sort();
    assert_eq!(failed, want, "{:#?}", rep.failures);
    for f in &rep.failures {
        let want_errno = if f.message.contains("10.9.0.5") {
            17
        } else {
            101
        };
        assert_eq!(f.errno, Some(want_errno), "{}", f.message);
    }
    let ours = dump::routes(&k.handle, &links).await.unwrap();
    assert_eq!(ours.len(), 1000 - bad.len());
    assert!(ns.routes_text(&["proto", "static"]).contains("10.9.0.5"));

    // More failures than one batch, all at once: none lost, none "unknown".
    let all_bad: Vec<Request> = (0..(3 * NOACK_BATCH as u32))
        .map(|i| {
            Request::Add(KernelRoute::via(
                host(0x0b00_0000 + i),
                bad_gw,
                "eth0",
                false,
            ))
        })
        .collect();
    let rep = exec.execute(all_bad, &links).await;
    assert_eq!(rep.failures.len(), 3 * NOACK_BATCH);
    assert!(
        rep.failures.iter().all(|f| f.errno == Some(101)),
        "{:?}",
        rep.failures[0]
    );

    // Deletes: ours go; already gone is success; the foreign key is not ours.
    let mut dels: Vec<Request> = ours.iter().cloned().map(Request::Delete).collect();
    dels.push(Request::Delete(InstalledRoute {
        route: KernelRoute::via("10.99.0.1/32".parse().unwrap(), gw, "eth0", false),
        metric: None,
    }));
    dels.push(Request::Delete(InstalledRoute {
        route: KernelRoute::via("10.9.0.5/32".parse().unwrap(), gw, "eth0", false),
        metric: None,
    }));
    let rep = exec.execute(dels, &links).await;
    assert!(rep.failures.is_empty(), "{:?}", rep.failures);
    assert!(dump::routes(&k.handle, &links).await.unwrap().is_empty());
    assert!(ns.routes_text(&["proto", "static"]).contains("10.9.0.5"));
    assert_eq!(
        exec.total_writes(),
        1001 + 3 * NOACK_BATCH as u64 + ours.len() as u64 + 2
    );

    // Small passes (what a learned route makes) are written on the
    // caller's task: the same reporting, pass after pass.
    for round in 0..3u32 {
        let good = host(0x0c00_0000 + round);
        let broken = host(0x0c00_0100 + round);
        let small = vec![
            Request::Add(KernelRoute::via(good, gw, "eth0", false)),
            Request::Add(KernelRoute::via(broken, bad_gw, "eth0", false)),
        ];
        assert!(small.len() <= INLINE_MAX);
        let rep = exec.execute(small, &links).await;
        assert_eq!(rep.writes, 2);
        assert_eq!(rep.failures.len(), 1, "{:?}", rep.failures);
        assert_eq!(rep.failures[0].errno, Some(101));
        assert!(rep.failures[0].message.contains(&broken.to_string()));
        let now = dump::routes(&k.handle, &links).await.unwrap();
        assert_eq!(now.len() as u32, round + 1, "{now:?}");
        assert!(now.iter().any(|r| r.route.dst == good));
    }
}
