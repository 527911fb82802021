//! NAT outgoing in namespaces the test creates: a node with two pods and an
//! "external" host outside all pools on the node's subnet.
//!
//! ```text
//!  pod-a 10.244.3.7 ─ tort… ┐
//!                           ├ node 192.168.1.11 ═ eth0 ═ ext 192.168.1.100
//!  pod-b 10.244.3.8 ─ tort… ┘
//! ```
//!
//! The external host has a route back to the pool, so a reply comes back
//! with or without NAT: the source address its server sees is what tells.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{udp_echo_seen, Netns};
use felix::desired::{DesiredState, LocalNode, Pool, WorkloadEndpoint};
use felix::endpoint::{configure_host_side, host_ifname};
use felix::nat;
use felix::reconciler::{self, ReconcilerConfig, ReconcilerHandle, Status};
use felix::sysctl::{self, Sysctl};
use tortie_ipip::EncapMode;

/// A table of someone else's in the same namespace: must never change.
const FOREIGN: &str = "table inet foreign {
  set blocked { type ipv4_addr; elements = { 192.0.2.1 } }
  chain out { type filter hook output priority 0; policy accept; ip daddr @blocked drop; }
}
table ip nat {
  chain postrouting { type nat hook postrouting priority 50; policy accept; ip daddr 192.0.2.2 counter; }
}";

fn nft(ns: &Netns, args: &[&str]) -> String {
    let mut full = vec!["netns", "exec", ns.name.as_str(), "nft"];
    full.extend_from_slice(args);
    common::run("ip", &full)
}

fn add_foreign(ns: &Netns) {
    let path = std::env::temp_dir().join(format!("{}-foreign.nft", ns.name));
    std::fs::write(&path, FOREIGN).unwrap();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "-f"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "nft -f foreign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn foreign_listing(ns: &Netns) -> String {
    nft(ns, &["list", "table", "inet", "foreign"]) + &nft(ns, &["list", "table", "ip", "nat"])
}

/// A pod namespace behind a tort veth in `node`.
fn pod(node: &Netns, tag: &str, ip: &str) -> (Netns, String) {
    let pod = Netns::new(tag);
    let ifname = host_ifname(&format!("default/{tag}"));
    common::add_pod(node, &pod, &ifname, ip);
    (pod, ifname)
}

fn state(ifs: &[(String, &str)], nat_outgoing: bool) -> DesiredState {
    DesiredState {
        local_node: LocalNode {
            name: "node-a".into(),
            addresses: vec!["192.168.1.11/24".parse().unwrap()],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        endpoints: ifs
            .iter()
            .map(|(ifname, ip)| WorkloadEndpoint {
                workload_id: ifname.clone(),
                interface: ifname.clone(),
                addresses: vec![ip.parse().unwrap()],
            })
            .collect(),
        blocks: vec!["10.244.3.0/26".parse().unwrap()],
        pools: vec![
            Pool {
                cidr: "10.244.0.0/16".parse().unwrap(),
                ipip: EncapMode::Never,
                vxlan: EncapMode::Never,
                nat_outgoing,
            },
            Pool {
                cidr: "10.96.0.0/12".parse().unwrap(),
                ipip: EncapMode::Never,
                vxlan: EncapMode::Never,
                nat_outgoing: false,
            },
        ],
        ..DesiredState::default()
    }
}

async fn pass_after(h: &mut ReconcilerHandle, before: u64) -> Status {
    h.wait_for(Duration::from_secs(5), |s| s.passes > before)
        .await
        .expect("no pass")
}

async fn quiet_resync(h: &mut ReconcilerHandle) -> Status {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = h.status().passes;
    h.resync().await.unwrap();
    pass_after(h, before).await
}

#[tokio::test]
async fn pods_are_masqueraded_to_the_outside_only_and_foreign_tables_stay() {
    let node = Netns::new("natn");
    let ext = Netns::new("natx");
    node.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "ext0",
    ]);
    node.ip(&["link", "set", "ext0", "netns", &ext.name]);
    node.ip(&["addr", "add", "192.168.1.11/24", "dev", "eth0"]);
    node.ip(&["link", "set", "eth0", "up"]);
    node.ip(&["route", "add", "default", "via", "192.168.1.100"]);
    ext.ip(&["addr", "add", "192.168.1.100/24", "dev", "ext0"]);
    ext.ip(&["link", "set", "ext0", "up"]);
    ext.ip(&["route", "add", "10.244.0.0/16", "via", "192.168.1.11"]);
    sysctl::write_in(
        Some(&node.path()),
        vec![Sysctl::new("net/ipv4/ip_forward", "1")],
    )
    .unwrap();
    let (pod_a, if_a) = pod(&node, "nata", "10.244.3.7");
    let (pod_b, if_b) = pod(&node, "natb", "10.244.3.8");
    add_foreign(&node);
    let foreign = foreign_listing(&node);

    let k = felix::kernel::open(Some(&node.path())).unwrap();
    for ifname in [&if_a, &if_b] {
        configure_host_side(&k.handle, Some(&node.path()), ifname)
            .await
            .unwrap();
    }
    let ifs = [(if_a.clone(), "10.244.3.7"), (if_b.clone(), "10.244.3.8")];
    let mut h = reconciler::start(ReconcilerConfig {
        netns: Some(node.path()),
        ..ReconcilerConfig::default()
    })
    .unwrap();
    h.set_desired(state(&ifs, true)).await.unwrap();
    let s = pass_after(&mut h, 0).await;
    let p = s.last_pass.unwrap();
    assert_eq!((p.nat_writes, p.failures.len()), (1, 0), "{p:?}");
    let ours = nft(&node, &["list", "table", "ip", "tortie"]);
    assert!(
        ours.contains("ip saddr @nat-pools ip daddr != @all-pools masquerade"),
        "{ours}"
    );

    // Pod to the outside: the external host sees the node's address.
    let (_, seen) = udp_echo_seen(&pod_a, &ext, "10.244.3.7", "192.168.1.100", 7500).unwrap();
    assert_eq!(seen.ip().to_string(), "192.168.1.11");
    // Pod to pod: not masqueraded.
    let (_, seen) = udp_echo_seen(&pod_a, &pod_b, "10.244.3.7", "10.244.3.8", 7501).unwrap();
    assert_eq!(seen.ip().to_string(), "10.244.3.7");
    assert_eq!(foreign_listing(&node), foreign);

    // Idempotent: a second reconcile sends no nft batch.
    let p = quiet_resync(&mut h).await.last_pass.unwrap();
    assert_eq!((p.nat_writes, p.writes), (0, 0), "{p:?}");

    // A human edits our table: the next pass puts it back (one batch).
    nft(
        &node,
        &[
            "add",
            "element",
            "ip",
            "tortie",
            "all-pools",
            "{ 192.168.1.0/24 }",
        ],
    );
    let p = quiet_resync(&mut h).await.last_pass.unwrap();
    assert_eq!((p.nat_writes, p.failures.len()), (1, 0), "{p:?}");
    let ours2 = nft(&node, &["list", "table", "ip", "tortie"]);
    assert!(!ours2.contains("192.168.1.0/24"), "{ours2}");
    assert_eq!(foreign_listing(&node), foreign);

    // natOutgoing off: our table goes, the external host sees the pod.
    let generation = h.set_desired(state(&ifs, false)).await.unwrap();
    let p = h
        .wait_for(Duration::from_secs(5), |s| s.applied >= generation)
        .await
        .expect("no pass applied the new state")
        .last_pass
        .unwrap();
    assert_eq!((p.nat_writes, p.failures.len()), (1, 0), "{p:?}");
    let tables = nft(&node, &["list", "tables"]);
    assert!(!tables.contains("tortie"), "{tables}");
    let (_, seen) = udp_echo_seen(&pod_a, &ext, "10.244.3.7", "192.168.1.100", 7502).unwrap();
    assert_eq!(seen.ip().to_string(), "10.244.3.7");
    assert_eq!(foreign_listing(&node), foreign);
    h.shutdown().await;
}

#[test]
fn both_families_in_one_batch_then_nothing_and_changes_replace() {
    let ns = Netns::new("natf");
    add_foreign(&ns);
    let foreign = foreign_listing(&ns);
    let pool = |cidr: &str, nat| Pool {
        cidr: cidr.parse().unwrap(),
        ipip: EncapMode::Never,
        vxlan: EncapMode::Never,
        nat_outgoing: nat,
    };
    let pools = vec![
        pool("10.244.0.0/16", true),
        pool("10.244.128.0/24", true),
        pool("fd00:244::/48", true),
        pool("fd00:96::/108", false),
    ];
    let r = nat::reconcile(Some(&ns.path()), &pools).unwrap();
    assert_eq!(r.writes, 1, "{r:?}");
    assert_eq!(r.changes, ["replace ip tortie", "replace ip6 tortie"]);
    let v6 = nft(&ns, &["list", "table", "ip6", "tortie"]);
    assert!(
        v6.contains("ip6 saddr @nat-pools ip6 daddr != @all-pools masquerade")
            && v6.contains("fd00:96::/108"),
        "{v6}"
    );
    // Unchanged: no write, and nothing in the host namespace.
    let r = nat::reconcile(Some(&ns.path()), &pools).unwrap();
    assert_eq!((r.writes, r.changes.len()), (0, 0), "{r:?}");
    // One pool more: one batch, only the IPv4 table replaced.
    let mut more = pools.clone();
    more.push(pool("10.96.0.0/12", false));
    let r = nat::reconcile(Some(&ns.path()), &more).unwrap();
    assert_eq!(
        (r.writes, r.changes.clone()),
        (1, vec!["replace ip tortie".to_string()])
    );
    assert!(nft(&ns, &["list", "set", "ip", "tortie", "all-pools"]).contains("10.96.0.0/12"));
    // No pools: both tables go; the foreign tables never changed.
    let r = nat::reconcile(Some(&ns.path()), &[]).unwrap();
    assert_eq!(r.changes, ["delete ip tortie", "delete ip6 tortie"]);
    assert!(!nft(&ns, &["list", "tables"]).contains("tortie"));
    assert_eq!(foreign_listing(&ns), foreign);
    // A namespace that does not exist is an error naming it.
    let err = nat::reconcile(Some(Path::new("/run/netns/tortie-no-such-ns")), &pools).unwrap_err();
    assert!(err.to_string().contains("tortie-no-such-ns"), "{err}");
}
