//! IP forwarding (`felix::forwarding`) against a real kernel, in
//! namespaces the test creates: `net.ipv4.ip_forward` and
//! `net.ipv6.conf.*` are per network namespace, and a fresh one starts
//! with forwarding off (set to 0 here as well, in case the host has
//! `net.core.devconf_inherit_init_net`). A failure to set them is made
//! with a read-only `/proc/sys` in a mount namespace of one thread.

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
    // Set: nothing for the node's problems.
    let forwarding = h.status().forwarding;
    assert!(forwarding.is_empty(), "{forwarding:?}");
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

/// A read-only `/proc/sys` (as in a container without privileges): the
/// check fails, and the reconciler publishes the problem (which
/// tortie-node lists among the node's problems) naming the sysctl and the
/// cause; once `/proc/sys` is writable again, the next full pass sets
/// forwarding and clears it. The read-only mount lives in a mount
/// namespace of one thread of ours (`unshare(CLONE_NEWNS)`, every mount
/// made private first), where the reconciler runs: the host and the
/// test's other threads never see it, and it goes with the thread.
#[test]
fn a_read_only_proc_sys_is_a_problem_until_forwarding_is_set() {
    let Some(ns) = fresh("a_read_only_proc_sys_is_a_problem_until_forwarding_is_set") else {
        return;
    };
    let path = ns.path();
    let probe = path.clone();
    std::thread::spawn(move || {
        use nix::sched::{unshare, CloneFlags};
        unshare(CloneFlags::CLONE_NEWNS).expect("a mount namespace of this thread");
        // Private first: nothing below may reach the host's mounts.
        run("mount", &["--make-rprivate", "/"]);
        run("mount", &["--bind", "/proc/sys", "/proc/sys"]);
        run("mount", &["-o", "remount,bind,ro", "/proc/sys"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let mut h = reconciler::start(ReconcilerConfig {
                netns: Some(path),
                ip_forwarding: true,
                ..ReconcilerConfig::default()
            })
            .expect("reconciler starts");
            let state = desired(&["192.168.1.11/24"], &["10.244.0.0/16"]);
            h.set_desired(state).await.expect("running");
            let s = h
                .wait_for(WAIT, |s| s.passes >= 1 && !s.forwarding.is_empty())
                .await
                .expect("the problem within 5 s");
            assert_eq!(s.forwarding.len(), 1, "{:?}", s.forwarding);
            let p = &s.forwarding[0];
            assert!(
                p.starts_with(
                    "cannot set /proc/sys/net/ipv4/ip_forward = 1: Read-only file system"
                ),
                "{p}"
            );
            assert!(p.contains("privileged"), "{p}");
            // Routes are not failures for it.
            let failures = &s.last_pass.as_ref().expect("a pass").failures;
            assert!(failures.is_empty(), "{failures:?}");

            // Writable again: the next full pass sets it and clears the
            // problem.
            run("umount", &["/proc/sys"]);
            resync(&mut h).await;
            let s = h.status();
            assert!(s.forwarding.is_empty(), "{:?}", s.forwarding);
            h.shutdown().await;
        });
    })
    .join()
    .expect("the test thread");
    assert_eq!(
        sysctl::read_in(Some(&probe), IPV4_KEY).unwrap_or_else(|e| panic!("{e}")),
        "1"
    );
}
