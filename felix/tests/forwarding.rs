//! IP forwarding (`felix::forwarding`) against a real kernel, in
//! namespaces the test creates: `net.ipv4.ip_forward` and
//! `net.ipv6.conf.*` are per network namespace, and a fresh one starts
//! with forwarding off (set to 0 here as well, in case the host has
//! `net.core.devconf_inherit_init_net`).

mod common;

use std::time::Duration;

use common::{run, Netns};
use felix::desired::{DesiredState, LocalNode, Pool};
use felix::forwarding::{IPV4_KEY, IPV6_KEY};
use felix::reconciler::{self, ReconcilerConfig, ReconcilerHandle};
use felix::sysctl;

const WAIT: Duration = Duration::from_secs(5);

/// A node with `addresses` and one pool per CIDR in `pools`.
fn desired(addresses: &[&str], pools: &[&str]) -> DesiredState {
    DesiredState {
        local_node: LocalNode {
            name: "node-a".into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            underlay: "eth0".into(),
            vteps: vec![],
        },
        pools: pools
            .iter()
            .map(|p| Pool {
                cidr: p.parse().unwrap(),
                ipip: Default::default(),
                vxlan: Default::default(),
                nat_outgoing: false,
            })
            .collect(),
        ..DesiredState::default()
    }
}

/// A namespace with both forwarding sysctls at 0, or `None` (a skip said
/// why; a failure under `CI=true`) when namespaces cannot be made here.
fn fresh(test: &str) -> Option<Netns> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user.
    if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
        tortie_testkit::missing(test, "network namespaces need root (run the tests as root)");
        return None;
    }
    let ns = Netns::new("fwd");
    set(&ns, "net.ipv4.ip_forward=0");
    set(&ns, "net.ipv6.conf.all.forwarding=0");
    assert_eq!(get(&ns, IPV4_KEY), "0");
    assert_eq!(get(&ns, IPV6_KEY), "0");
    Some(ns)
}

/// `ip netns exec NS sysctl -qw KEY=VALUE`.
fn set(ns: &Netns, assignment: &str) {
    run(
        "ip",
        &["netns", "exec", &ns.name, "sysctl", "-qw", assignment],
    );
}

/// The value of `/proc/sys/KEY` inside `ns`.
fn get(ns: &Netns, key: &str) -> String {
    sysctl::read_in(Some(&ns.path()), key).unwrap_or_else(|e| panic!("{e}"))
}

/// Starts a reconciler on `ns`, hands it `state` and waits for its first
/// (full) pass.
async fn started(ns: &Netns, ip_forwarding: bool, state: DesiredState) -> ReconcilerHandle {
    let mut h = reconciler::start(ReconcilerConfig {
        netns: Some(ns.path()),
        ip_forwarding,
        ..ReconcilerConfig::default()
    })
    .expect("reconciler starts");
    h.set_desired(state).await.expect("running");
    h.wait_for(WAIT, |s| s.passes >= 1)
        .await
        .expect("a first pass within 5 s");
    h
}

/// Asks for a full pass and waits for it.
async fn resync(h: &mut ReconcilerHandle) {
    let before = h.status().passes;
    h.resync().await.expect("running");
    h.wait_for(WAIT, |s| s.passes > before)
        .await
        .expect("a pass within 5 s");
}

#[tokio::test]
async fn enabled_sets_both_families_and_keeps_them() {
    let Some(ns) = fresh("enabled_sets_both_families_and_keeps_them") else {
        return;
    };
    let state = desired(
        &["192.168.1.11/24", "fd00:1::11/64"],
        &["10.244.0.0/16", "fd00:244::/56"],
    );
    let mut h = started(&ns, true, state).await;
    assert_eq!(get(&ns, IPV4_KEY), "1");
    assert_eq!(get(&ns, IPV6_KEY), "1");
    // `all` sets every interface, lo included.
    assert_eq!(get(&ns, "net/ipv4/conf/lo/forwarding"), "1");
    assert_eq!(get(&ns, "net/ipv6/conf/lo/forwarding"), "1");

    // Someone turns it off: the next full pass turns it on again.
    set(&ns, "net.ipv4.ip_forward=0");
    set(&ns, "net.ipv6.conf.all.forwarding=0");
    resync(&mut h).await;
    assert_eq!(get(&ns, IPV4_KEY), "1");
    assert_eq!(get(&ns, IPV6_KEY), "1");
    h.shutdown().await;
}

#[tokio::test]
async fn disabled_leaves_them_alone() {
    let Some(ns) = fresh("disabled_leaves_them_alone") else {
        return;
    };
    let state = desired(
        &["192.168.1.11/24", "fd00:1::11/64"],
        &["10.244.0.0/16", "fd00:244::/56"],
    );
    let mut h = started(&ns, false, state).await;
    resync(&mut h).await;
    assert_eq!(get(&ns, IPV4_KEY), "0");
    assert_eq!(get(&ns, IPV6_KEY), "0");
    h.shutdown().await;
}

#[tokio::test]
async fn only_the_families_routed() {
    let Some(ns) = fresh("only_the_families_routed") else {
        return;
    };
    // An IPv6 address but no IPv6 pool: IPv4 only.
    let state = desired(&["192.168.1.11/24", "fd00:1::11/64"], &["10.244.0.0/16"]);
    let mut h = started(&ns, true, state).await;
    assert_eq!(get(&ns, IPV4_KEY), "1");
    assert_eq!(get(&ns, IPV6_KEY), "0");

    // An IPv6 pool arrives: IPv6 too, at the pass of that state.
    let before = h.status().passes;
    let state = desired(
        &["192.168.1.11/24", "fd00:1::11/64"],
        &["10.244.0.0/16", "fd00:244::/56"],
    );
    h.set_desired(state).await.expect("running");
    h.wait_for(WAIT, |s| s.passes > before)
        .await
        .expect("a pass within 5 s");
    assert_eq!(get(&ns, IPV6_KEY), "1");
    h.shutdown().await;
}
