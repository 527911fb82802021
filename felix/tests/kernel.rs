//! The kernel layer against a real kernel, in namespaces the test creates:
//! every route shape felix writes, read back by the dump and by `ip -j`.

mod common;

use felix::desired::{compute, DesiredState};
use felix::diff::diff;
use felix::kernel::{self, apply::Executor, dump};

fn state() -> DesiredState {
    serde_json::from_str(include_str!("snapshots/fresh-node/desired.json")).unwrap()
}

#[tokio::test]
async fn every_shape_round_trips_through_the_kernel() {
    let ns = common::node_ns("shape");
    // The fresh-node snapshot names tort5d41402abc4 for its pod.
    ns.ip(&["link", "set", "tort0123456789a", "name", "tort5d41402abc4"]);
    let k = kernel::open(Some(&ns.path())).unwrap();
    let mut exec = Executor::new(k.handle.clone());
    let links = dump::links(exec.handle()).await.unwrap();
    let want = compute(&state());
    let plan = diff(want.routes.values().map(|c| &c.route), &[]);
    assert_eq!(plan.add.len(), 8);
    let report = exec.apply(&plan, &links).await;
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.writes, 8);
    // Read back: the dump equals what we wanted, so the next plan is empty.
    let have = dump::routes(exec.handle(), &links).await.unwrap();
    let again = diff(want.routes.values().map(|c| &c.route), &have);
    assert!(again.is_empty(), "not converged:\n{again}\nhave: {have:#?}");
    // And `ip` sees them, with our protocol, in the namespace only.
    let text = ns.routes_text(&["proto", "116"]);
    for line in [
        "blackhole 10.244.3.0/26",
        "10.244.3.7 dev tort5d41402abc4 scope link",
        "10.244.3.50 via 192.168.2.21 dev tunl0 onlink",
        "10.244.7.0/26 via 192.168.1.12 dev eth0",
        "10.244.9.0/26 via 192.168.2.21 dev tunl0 onlink",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }
    let v6 = ns.ip(&["-6", "route", "show", "proto", "116"]);
    assert!(
        v6.contains("fd00:244:7::/122 via fd00:1::12 dev eth0"),
        "{v6}"
    );
    assert!(v6.contains("blackhole fd00:244:3::/122"), "{v6}");
    assert_eq!(ns.our_routes().len(), 8);
}

#[tokio::test]
async fn delete_never_hits_another_protocols_route_and_missing_is_success() {
    use felix::kernel::apply::Request;
    use felix::route::{InstalledRoute, KernelRoute};
    let ns = common::node_ns("del");
    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "10.9.0.0/24",
        "proto",
        "static",
    ]);
    ns.ip(&[
        "-6",
        "route",
        "add",
        "blackhole",
        "fd00:9::/64",
        "proto",
        "12",
    ]);
    let k = kernel::open(Some(&ns.path())).unwrap();
    let mut exec = Executor::new(k.handle.clone());
    let links = dump::links(exec.handle()).await.unwrap();
    // The dump does not see them...
    assert!(dump::routes(exec.handle(), &links)
        .await
        .unwrap()
        .is_empty());
    // ...and deleting "our" route of the same prefix leaves them alone; the
    // kernel finds no route of ours (ESRCH), which counts as success.
    let gone = |dst: &str| {
        Request::Delete(InstalledRoute {
            route: KernelRoute::blackhole(dst.parse().unwrap()),
            metric: None,
        })
    };
    let report = exec
        .execute(
            vec![
                gone("10.9.0.0/24"),
                gone("fd00:9::/64"),
                gone("10.8.0.0/24"),
            ],
            &links,
        )
        .await;
    assert_eq!(report.writes, 3);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(ns
        .routes_text(&[])
        .contains("blackhole 10.9.0.0/24 proto static"));
    let v6 = ns.ip(&["-6", "route", "show"]);
    assert!(
        v6.contains("blackhole fd00:9::/64") && v6.contains("proto bird"),
        "{v6}"
    );
}
