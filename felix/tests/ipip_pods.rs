//! IPIP for real: `tunl0` managed by `tortie_ipip::ipip_dev`, tunnel routes
//! programmed by the felix reconciler, pod traffic across a router that knows
//! only node addresses. Needs a kernel with the ipip module: run by
//! `qemu/run-ipip-tests.sh` inside a qemu guest (Debian's kernel); on a
//! kernel without it (the CI host) every test prints why it skips.
//!
//! ```text
//!  pod-a 10.244.3.7                                               pod-b 10.244.7.9
//!     | tort…                                                           | tort…
//!  node-a eth0 192.168.1.11/24 ── .1 router .1 ── 192.168.2.21/24 eth0 node-b
//!   tunl0 10.244.3.1/32          (ip_forward, no pod routes)      tunl0 10.244.7.1/32
//! ```

mod common;
mod ipip_support;

use std::time::Duration;

use common::Netns;
use common::{udp_echo, udp_echo_eventually};
use felix::desired::{DesiredState, LearnedRoute, LocalNode, PeerNode, Pool, WorkloadEndpoint};
use felix::endpoint::{configure_host_side, host_ifname};
use felix::reconciler::{self, ReconcilerConfig, ReconcilerHandle};
use felix::sysctl::{self, Sysctl};
use ipip_support::capture_one;
use rtnetlink::Handle;
use tortie_ipip::ipip_dev::{IpipDevError, Tunl0, Tunl0Change, Tunl0Report, Tunl0Spec, TUNL0};
use tortie_ipip::EncapMode;

/// Reconcile passes under TCG emulation are slow: generous deadlines.
const WAIT: Duration = Duration::from_secs(20);

struct Node {
    ns: Netns,
    pod: Netns,
    ifname: String,
    tunl0: Tunl0,
    handle: Handle,
}

/// `tunl0` state as `ip -j -s -d link show tunl0` reports it.
#[derive(Debug)]
struct Dev {
    up: bool,
    mtu: u64,
    kind: String,
    rx_packets: u64,
    tx_packets: u64,
}

/// A node namespace with `eth0` (a veth whose peer `eth0p` stays inside) at
/// `addr`, with `mtu`.
fn lone_node(tag: &str, addr: &str, mtu: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ns.ip(&["link", "set", "eth0", "mtu", mtu, "up"]);
    ns.ip(&["link", "set", "eth0p", "up"]);
    ns.ip(&["addr", "add", addr, "dev", "eth0"]);
    ns
}

fn spec(address: &str) -> Tunl0Spec {
    Tunl0Spec {
        address: address.parse().unwrap(),
        underlay: "eth0".into(),
        mtu: None,
    }
}

/// One reconcile; `None` (after printing why) when the kernel has no ipip.
async fn reconcile_or_skip(t: &mut Tunl0, h: &Handle, test: &str) -> Option<Tunl0Report> {
    match t.reconcile(h).await {
        Ok(r) => Some(r),
        Err(e @ IpipDevError::NoKernelSupport { .. }) => {
            tortie_testkit::skip(
                test,
                &format!(
                    "{e}. This test needs the ipip module: run qemu/run-ipip-tests.sh \
                     (a Debian kernel under qemu)"
                ),
            );
            None
        }
        Err(e) => panic!("{test}: reconcile tunl0: {e}"),
    }
}

fn dev(ns: &Netns) -> Dev {
    let out = ns.ip(&["-j", "-s", "-d", "link", "show", TUNL0]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let l = &v[0];
    let flags: Vec<String> = serde_json::from_value(l["flags"].clone()).unwrap();
    Dev {
        up: flags.iter().any(|f| f == "UP"),
        mtu: l["mtu"].as_u64().unwrap(),
        kind: l["linkinfo"]["info_kind"].as_str().unwrap_or("").into(),
        rx_packets: l["stats64"]["rx"]["packets"].as_u64().unwrap(),
        tx_packets: l["stats64"]["tx"]["packets"].as_u64().unwrap(),
    }
}

/// `tunl0`'s IPv4 addresses as `A/LEN`.
fn addrs(ns: &Netns) -> Vec<String> {
    let out = ns.ip(&["-j", "-4", "addr", "show", "dev", TUNL0]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn tunl0_is_reconciled_and_a_second_pass_writes_nothing() {
    let ns = lone_node("iptun", "192.168.1.11/24", "1400");
    let k = felix::kernel::open(Some(&ns.path())).unwrap();
    let mut t = Tunl0::new(spec("10.244.3.1")).unwrap();
    let Some(r) = reconcile_or_skip(&mut t, &k.handle, "tunl0_is_reconciled").await else {
        return;
    };
    assert_eq!(r.mtu, 1380, "underlay 1400 - 20");
    assert!(r.writes > 0, "a fresh tunl0 needs writes: {r:?}");
    let d = dev(&ns);
    assert_eq!(
        (d.kind.as_str(), d.up, d.mtu),
        ("ipip", true, 1380),
        "{d:?}"
    );
    assert_eq!(addrs(&ns), vec!["10.244.3.1/32"]);

    let r = t.reconcile(&k.handle).await.unwrap();
    assert_eq!(
        (r.writes, r.changes.len(), r.created),
        (0, 0, false),
        "{r:?}"
    );

    // A human changes it: a stray address, another MTU, down. One pass
    // undoes exactly that, and the next writes nothing again.
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", TUNL0]);
    ns.ip(&["link", "set", TUNL0, "mtu", "1300", "down"]);
    let r = t.reconcile(&k.handle).await.unwrap();
    assert_eq!(
        r.changes,
        vec![
            Tunl0Change::DelAddress("10.99.0.1".parse().unwrap(), 24),
            Tunl0Change::SetMtu(1380),
            Tunl0Change::SetUp,
        ]
    );
    assert_eq!(r.writes, 3);
    let d = dev(&ns);
    assert_eq!((d.up, d.mtu), (true, 1380), "{d:?}");
    assert_eq!(addrs(&ns), vec!["10.244.3.1/32"]);
    assert_eq!(t.reconcile(&k.handle).await.unwrap().writes, 0);

    // The underlay grows (jumbo frames): the tunnel follows.
    ns.ip(&["link", "set", "eth0", "mtu", "9000"]);
    let r = t.reconcile(&k.handle).await.unwrap();
    assert_eq!(r.changes, vec![Tunl0Change::SetMtu(8980)]);
    assert_eq!(dev(&ns).mtu, 8980);
    assert_eq!(t.unsupported_warnings(), 0);
}

/// Restores `net.core.fb_tunnels_only_for_init_net` on drop.
struct FbSysctl(String);

impl Drop for FbSysctl {
    fn drop(&mut self) {
        let _ = sysctl::write_in(
            None,
            vec![Sysctl::new(FB_SYSCTL, std::mem::take(&mut self.0))],
        );
    }
}

const FB_SYSCTL: &str = "net/core/fb_tunnels_only_for_init_net";

#[tokio::test]
async fn tunl0_is_created_where_the_namespace_has_none() {
    // Probe first: on a kernel without ipip, skip before touching the
    // (global) sysctl below.
    let probe = lone_node("ipprobe", "192.168.9.1/24", "1500");
    let k = felix::kernel::open(Some(&probe.path())).unwrap();
    let mut t = Tunl0::new(spec("10.244.9.1")).unwrap();
    if reconcile_or_skip(&mut t, &k.handle, "tunl0_is_created")
        .await
        .is_none()
    {
        return;
    }
    // With the module loaded, new namespaces get no fallback tunl0 when
    // this sysctl is 1 (the kernel reads it at namespace creation).
    let old = sysctl::read_in(None, FB_SYSCTL).unwrap();
    let restore = FbSysctl(old);
    sysctl::write_in(None, vec![Sysctl::new(FB_SYSCTL, "1")]).unwrap();
    let ns = lone_node("ipcreate", "192.168.1.11/24", "1500");
    assert!(!ns.try_ip(&["link", "show", TUNL0]), "tunl0 exists already");
    drop(restore);

    let k = felix::kernel::open(Some(&ns.path())).unwrap();
    let mut t = Tunl0::new(spec("10.244.3.1")).unwrap();
    let r = t.reconcile(&k.handle).await.unwrap();
    assert!(r.created, "{r:?}");
    // Created with MTU and up in one request; only the address followed.
    assert_eq!(
        r.changes,
        vec![Tunl0Change::AddAddress("10.244.3.1".parse().unwrap())]
    );
    assert_eq!(r.writes, 2);
    let d = dev(&ns);
    assert_eq!(
        (d.kind.as_str(), d.up, d.mtu),
        ("ipip", true, 1480),
        "{d:?}"
    );
    let detail = ns.ip(&["-d", "link", "show", TUNL0]);
    assert!(detail.contains("remote any local any"), "{detail}");
    assert_eq!(t.reconcile(&k.handle).await.unwrap().writes, 0);
}

/// Node namespace with a pod behind a `tort…` veth (pod side: `pod_ip`/32,
/// default via 169.254.1.1 onlink), ip_forward on.
fn node(tag: &str, workload: &str, pod_ip: &str) -> (Netns, Netns, String) {
    let ns = Netns::new(tag);
    let pod = Netns::new(&format!("{tag}pod"));
    let ifname = host_ifname(workload);
    common::add_pod(&ns, &pod, &ifname, pod_ip);
    sysctl::write_in(
        Some(&ns.path()),
        vec![Sysctl::new("net/ipv4/ip_forward", "1")],
    )
    .unwrap();
    (ns, pod, ifname)
}

/// Joins `n`'s eth0 to the router (`rif` on its side) and gives both
/// addresses; the node's default route points at the router.
fn uplink(router: &Netns, n: &Netns, rif: &str, raddr: &str, naddr: &str, gw: &str) {
    n.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", rif]);
    n.ip(&["link", "set", rif, "netns", &router.name]);
    router.ip(&["addr", "add", raddr, "dev", rif]);
    router.ip(&["link", "set", rif, "up"]);
    n.ip(&["addr", "add", naddr, "dev", "eth0"]);
    n.ip(&["link", "set", "eth0", "up"]);
    n.ip(&["route", "add", "default", "via", gw]);
}

fn desired(
    me: (&str, &str),
    peer: (&str, &str),
    n: &Node,
    pods: (&str, &str, &str),
    ipip: EncapMode,
) -> DesiredState {
    let (pod_ip, block, peer_block) = pods;
    DesiredState {
        local_node: LocalNode {
            name: me.0.into(),
            addresses: vec![format!("{}/24", me.1).parse().unwrap()],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        nodes: vec![PeerNode {
            name: peer.0.into(),
            addresses: vec![peer.1.parse().unwrap()],
            vteps: vec![],
        }],
        endpoints: vec![WorkloadEndpoint {
            workload_id: format!("default/{}", me.0),
            interface: n.ifname.clone(),
            addresses: vec![pod_ip.parse().unwrap()],
        }],
        blocks: vec![block.parse().unwrap()],
        borrowed: vec![],
        learned: vec![LearnedRoute {
            prefix: peer_block.parse().unwrap(),
            next_hop: peer.1.parse().unwrap(),
        }],
        pools: vec![Pool {
            cidr: "10.244.0.0/16".parse().unwrap(),
            ipip,
            vxlan: EncapMode::Never,
            nat_outgoing: false,
        }],
    }
}

/// Sets the desired state of both nodes and waits for a clean pass on each.
async fn program(
    ra: &mut ReconcilerHandle,
    rb: &mut ReconcilerHandle,
    a: &Node,
    b: &Node,
    ipip: EncapMode,
) {
    let sa = desired(
        ("node-a", "192.168.1.11"),
        ("node-b", "192.168.2.21"),
        a,
        ("10.244.3.7", "10.244.3.0/26", "10.244.7.0/26"),
        ipip,
    );
    let sb = desired(
        ("node-b", "192.168.2.21"),
        ("node-a", "192.168.1.11"),
        b,
        ("10.244.7.9", "10.244.7.0/26", "10.244.3.0/26"),
        ipip,
    );
    for (h, s) in [(&mut *ra, sa), (&mut *rb, sb)] {
        let generation = h.set_desired(s).await.unwrap();
        let st = h
            .wait_for(WAIT, |st| st.applied >= generation)
            .await
            .unwrap_or_else(|| panic!("no reconcile pass within {WAIT:?} ({ipip:?})"));
        let failures = st.last_pass.unwrap().failures;
        assert!(failures.is_empty(), "{ipip:?}: {failures:?}");
    }
}

#[tokio::test]
async fn pods_on_two_subnets_talk_through_tunl0() {
    let test = "pods_on_two_subnets_talk_through_tunl0";
    let router = Netns::new("iprtr");
    sysctl::write_in(
        Some(&router.path()),
        vec![Sysctl::new("net/ipv4/ip_forward", "1")],
    )
    .unwrap();
    let mut nodes = Vec::new();
    for (tag, wl, pod_ip, rif, raddr, naddr, gw, tun) in [
        (
            "ipa",
            "default/pod-a",
            "10.244.3.7",
            "ra",
            "192.168.1.1/24",
            "192.168.1.11/24",
            "192.168.1.1",
            "10.244.3.1",
        ),
        (
            "ipb",
            "default/pod-b",
            "10.244.7.9",
            "rb",
            "192.168.2.1/24",
            "192.168.2.21/24",
            "192.168.2.1",
            "10.244.7.1",
        ),
    ] {
        let (ns, pod, ifname) = node(tag, wl, pod_ip);
        uplink(&router, &ns, rif, raddr, naddr, gw);
        let k = felix::kernel::open(Some(&ns.path())).unwrap();
        configure_host_side(&k.handle, Some(&ns.path()), &ifname)
            .await
            .unwrap();
        let mut tunl0 = Tunl0::new(spec(tun)).unwrap();
        if reconcile_or_skip(&mut tunl0, &k.handle, test)
            .await
            .is_none()
        {
            return;
        }
        nodes.push(Node {
            ns,
            pod,
            ifname,
            tunl0,
            handle: k.handle,
        });
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    // The router knows the node subnets only: pod traffic must be tunnelled.
    let rroutes = router.routes_text(&[]);
    assert!(!rroutes.contains("10.244."), "{rroutes}");

    let start = |n: &Node| {
        reconciler::start(ReconcilerConfig {
            netns: Some(n.ns.path()),
            ..ReconcilerConfig::default()
        })
        .unwrap()
    };
    let (mut ra, mut rb) = (start(a), start(b));

    // 1. ipipMode Always: tunnel routes, pods talk, tunl0 counts it.
    program(&mut ra, &mut rb, a, b, EncapMode::Always).await;
    let routes = a.ns.routes_text(&["proto", "116"]);
    assert!(
        routes.contains("10.244.7.0/26 via 192.168.2.21 dev tunl0") && routes.contains("onlink"),
        "{routes}"
    );
    through_tunl0(a, b, 7000, "Always");
    // On the wire between node-a and the router: IP protocol 4, outer node
    // addresses, inner pod addresses.
    let wire = capture_one(&router, "ra", "ip proto 4", || {
        let reply = udp_echo(&a.pod, &b.pod, "10.244.3.7", "10.244.7.9", 7040);
        assert_eq!(
            reply.as_deref(),
            Ok("ping from 10.244.3.7"),
            "captured echo"
        );
    });
    match wire {
        Some(line) => {
            eprintln!("on the wire: {line}");
            assert!(
                line.contains("IP 192.168.1.11 > 192.168.2.21: IP 10.244.3.7.")
                    && line.contains(" > 10.244.7.9.7040: UDP"),
                "{line}"
            );
        }
        None => eprintln!(
            "NOTE: no tcpdump on this system: the on-the-wire check is left out \
             (the tunl0 counters and the Never step still prove the path)"
        ),
    }
    // The node itself reaches the remote pod from its tunl0 address.
    let reply = udp_echo(&a.ns, &b.pod, "10.244.3.1", "10.244.7.9", 7050);
    assert_eq!(reply.as_deref(), Ok("ping from 10.244.3.1"), "node to pod");

    // 2. ipipMode Never: no route (peer outside our subnet), and the router
    // drops pod traffic: the tunnel was what carried it.
    program(&mut ra, &mut rb, a, b, EncapMode::Never).await;
    let routes = a.ns.routes_text(&["proto", "116"]);
    assert!(!routes.contains("10.244.7.0/26"), "{routes}");
    let tx = dev(&a.ns).tx_packets;
    let reply = udp_echo(&a.pod, &b.pod, "10.244.3.7", "10.244.7.9", 7100);
    assert!(reply.is_err(), "echo worked without the tunnel: {reply:?}");
    assert_eq!(dev(&a.ns).tx_packets, tx, "tunl0 sent with mode Never");

    // 3. ipipMode CrossSubnet: the nodes are on different subnets: tunnel.
    program(&mut ra, &mut rb, a, b, EncapMode::CrossSubnet).await;
    through_tunl0(a, b, 7200, "CrossSubnet");

    // tunl0 was not disturbed by the route reconciler: nothing to write.
    for n in &mut nodes {
        assert_eq!(n.tunl0.reconcile(&n.handle).await.unwrap().writes, 0);
    }
    ra.shutdown().await;
    rb.shutdown().await;
}

/// Three pod-to-pod echoes; both tunl0s sent and received at least that many.
fn through_tunl0(a: &Node, b: &Node, port: u16, mode: &str) {
    let (a0, b0) = (dev(&a.ns), dev(&b.ns));
    for round in 0..3 {
        let reply =
            udp_echo_eventually(&a.pod, &b.pod, "10.244.3.7", "10.244.7.9", port + round, 3);
        assert_eq!(
            reply.as_deref(),
            Ok("ping from 10.244.3.7"),
            "{mode}: round {round}; node-a routes:\n{}\nnode-b routes:\n{}",
            a.ns.routes_text(&[]),
            b.ns.routes_text(&[])
        );
    }
    let (a1, b1) = (dev(&a.ns), dev(&b.ns));
    eprintln!(
        "{mode}: node-a tunl0 tx {} -> {}, rx {} -> {}; node-b tunl0 tx {} -> {}, rx {} -> {}",
        a0.tx_packets,
        a1.tx_packets,
        a0.rx_packets,
        a1.rx_packets,
        b0.tx_packets,
        b1.tx_packets,
        b0.rx_packets,
        b1.rx_packets
    );
    // Requests leave a's tunl0 and arrive on b's; replies the other way.
    assert!(
        a1.tx_packets >= a0.tx_packets + 3,
        "{mode}: a tx {a0:?} {a1:?}"
    );
    assert!(
        b1.rx_packets >= b0.rx_packets + 3,
        "{mode}: b rx {b0:?} {b1:?}"
    );
    assert!(
        b1.tx_packets >= b0.tx_packets + 3,
        "{mode}: b tx {b0:?} {b1:?}"
    );
    assert!(
        a1.rx_packets >= a0.rx_packets + 3,
        "{mode}: a rx {a0:?} {a1:?}"
    );
}
