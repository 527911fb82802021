//! Stale workload interfaces in a real namespace: an unknown `tort*` veth
//! survives its grace period and is then removed; a known one and foreign
//! interfaces are never touched.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Netns;
use felix::endpoint_gc::{sweep, StaleTracker};

#[tokio::test]
async fn unknown_workload_interface_is_removed_after_its_grace_period() {
    let ns = Netns::new("gc");
    for (a, b) in [
        ("tortaaaaaaaaaaa", "pa"),
        ("tortbbbbbbbbbbb", "pb"),
        ("vethforeign", "pc"),
    ] {
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
    }
    let kernel = felix::kernel::open(Some(&ns.path())).unwrap();
    let handle = kernel.handle.clone();
    let known: HashSet<String> = ["tortaaaaaaaaaaa".to_string()].into_iter().collect();
    let grace = Duration::from_millis(300);
    let mut tracker = StaleTracker::default();
    // Fresh: left alone.
    assert!(sweep(&handle, &mut tracker, &known, grace)
        .await
        .unwrap()
        .is_empty());
    assert!(ns.try_ip(&["link", "show", "tortbbbbbbbbbbb"]));
    tokio::time::sleep(grace).await;
    let deleted = sweep(&handle, &mut tracker, &known, grace).await.unwrap();
    assert_eq!(deleted, vec!["tortbbbbbbbbbbb".to_string()]);
    assert!(
        !ns.try_ip(&["link", "show", "tortbbbbbbbbbbb"]),
        "stale workload interface removed"
    );
    assert!(!ns.try_ip(&["link", "show", "pb"]), "its peer went with it");
    assert!(
        ns.try_ip(&["link", "show", "tortaaaaaaaaaaa"]),
        "known workload kept"
    );
    assert!(
        ns.try_ip(&["link", "show", "vethforeign"]),
        "foreign interface kept"
    );
    // Nothing else to do.
    assert!(sweep(&handle, &mut tracker, &known, grace)
        .await
        .unwrap()
        .is_empty());
}
