//! `tunl0` management (`tortie_ipip::ipip_dev`) where the kernel has no ipip
//! module, as on the CI machines: the typed error, said once, and every
//! non-IPIP route still programmed. In namespaces the test creates.
//!
//! The IPIP path itself (tunl0 up, addressed, MTU, pod traffic through it)
//! needs a kernel with the module: `felix/tests/ipip_pods.rs`, run under
//! qemu by `qemu/run-ipip-tests.sh`.

mod common;

use std::time::Duration;

use common::Netns;
use felix::desired::{DesiredState, LearnedRoute, LocalNode, PeerNode, Pool, WorkloadEndpoint};
use felix::reconciler::{self, ReconcilerConfig};
use tortie_ipip::ipip_dev::{IpipDevError, Tunl0, Tunl0Spec, TUNL0};
use tortie_ipip::EncapMode;

const POD_IF: &str = "tort0123456789a";

/// A node namespace: eth0 (veth, peer kept inside) 192.168.1.11/24 and a
/// pod veth, both up. No tunl0.
fn node(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ns.ip(&["addr", "add", "192.168.1.11/24", "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "eth0p", "up"]);
    ns.ip(&[
        "link", "add", POD_IF, "type", "veth", "peer", "name", "pod0",
    ]);
    ns.ip(&["link", "set", POD_IF, "up"]);
    ns.ip(&["link", "set", "pod0", "up"]);
    ns
}

fn spec(underlay: &str) -> Tunl0Spec {
    Tunl0Spec {
        address: "10.244.3.1".parse().unwrap(),
        underlay: underlay.into(),
        mtu: None,
    }
}

/// True (and prints why the caller skips) when this kernel has ipip.
fn has_ipip(ns: &Netns, what: &str) -> bool {
    let present = ns.try_ip(&["-d", "link", "show", TUNL0]);
    if present {
        tortie_testkit::skip(
            what,
            "this kernel has the ipip module (tunl0 exists in a fresh namespace); the \
             no-ipip path is shown on kernels without it, and IPIP itself by \
             felix/tests/ipip_pods.rs",
        );
    }
    present
}

#[tokio::test]
async fn no_ipip_kernel_is_reported_once_and_non_ipip_routes_continue() {
    let ns = node("ipnok");
    if has_ipip(&ns, "no_ipip_kernel_is_reported_once") {
        return;
    }
    let k = felix::kernel::open(Some(&ns.path())).unwrap();
    let mut t = Tunl0::new(spec("eth0")).unwrap();
    for pass in 0..3 {
        let err = t.reconcile(&k.handle).await.unwrap_err();
        assert!(
            matches!(err, IpipDevError::NoKernelSupport { .. }),
            "pass {pass}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "kernel has no ipip module: IPIP routes cannot be programmed; \
                 non-IPIP routing continues"
            ),
            "{msg}"
        );
        assert!(msg.contains("modprobe ipip"), "{msg}");
    }
    // Returned every pass, logged once.
    assert_eq!(t.unsupported_warnings(), 1);
    assert!(
        !ns.try_ip(&["link", "show", TUNL0]),
        "a tunl0 was left behind"
    );

    // The route reconciler in the same namespace: one IPIP route (cross
    // subnet) that cannot be programmed, and everything else that can.
    let ip = |s: &str| s.parse().unwrap();
    let net = |s: &str| s.parse().unwrap();
    let state = DesiredState {
        local_node: LocalNode {
            name: "node-a".into(),
            addresses: vec![net("192.168.1.11/24")],
            underlay: "eth0".into(),
            vteps: vec![],
        },
        nodes: vec![
            PeerNode {
                name: "node-b".into(),
                addresses: vec![ip("192.168.1.12")],
                vteps: vec![],
            },
            PeerNode {
                name: "node-c".into(),
                addresses: vec![ip("192.168.2.21")],
                vteps: vec![],
            },
        ],
        endpoints: vec![WorkloadEndpoint {
            workload_id: "default/web-1".into(),
            interface: POD_IF.into(),
            addresses: vec![ip("10.244.3.7")],
        }],
        blocks: vec![net("10.244.3.0/26")],
        borrowed: vec![],
        learned: vec![
            LearnedRoute {
                prefix: net("10.244.7.0/26"),
                next_hop: ip("192.168.1.12"),
            },
            LearnedRoute {
                prefix: net("10.244.9.0/26"),
                next_hop: ip("192.168.2.21"),
            },
        ],
        pools: vec![Pool {
            cidr: net("10.244.0.0/16"),
            ipip: EncapMode::CrossSubnet,
            vxlan: EncapMode::Never,
            nat_outgoing: false,
        }],
    };
    let mut h = reconciler::start(ReconcilerConfig {
        netns: Some(ns.path()),
        ..ReconcilerConfig::default()
    })
    .unwrap();
    h.set_desired(state).await.unwrap();
    let s = h
        .wait_for(Duration::from_secs(5), |s| s.passes > 0)
        .await
        .expect("no reconcile pass within 5 s");
    let failures = s.last_pass.unwrap().failures;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("10.244.9.0/26") && failures[0].contains(TUNL0),
        "{failures:?}"
    );
    let routes = ns.routes_text(&["proto", "116"]);
    for want in [
        "10.244.7.0/26 via 192.168.1.12 dev eth0",
        &format!("10.244.3.7 dev {POD_IF} scope link"),
        "blackhole 10.244.3.0/26",
    ] {
        assert!(routes.contains(want), "missing {want:?} in:\n{routes}");
    }
    assert!(!routes.contains("10.244.9.0/26"), "{routes}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_tunl0_that_is_not_ipip_is_refused_by_kind() {
    let ns = node("ipkind");
    if has_ipip(&ns, "a_tunl0_that_is_not_ipip") {
        return;
    }
    ns.ip(&[
        "link", "add", TUNL0, "type", "veth", "peer", "name", "tunl0p",
    ]);
    let k = felix::kernel::open(Some(&ns.path())).unwrap();
    let mut t = Tunl0::new(spec("eth0")).unwrap();
    let err = t.reconcile(&k.handle).await.unwrap_err();
    assert!(
        matches!(&err, IpipDevError::NotIpip { kind } if kind == "veth"),
        "{err}"
    );
    assert!(err.to_string().contains("kind veth, not ipip"), "{err}");
    // Nothing was written to the foreign device.
    let addrs = ns.ip(&["-4", "addr", "show", "dev", TUNL0]);
    assert!(!addrs.contains("10.244.3.1"), "{addrs}");
    assert_eq!(t.unsupported_warnings(), 0);
}

#[tokio::test]
async fn a_missing_underlay_is_named() {
    let ns = node("ipund");
    let k = felix::kernel::open(Some(&ns.path())).unwrap();
    let mut t = Tunl0::new(spec("ens99")).unwrap();
    let err = t.reconcile(&k.handle).await.unwrap_err();
    assert!(
        matches!(&err, IpipDevError::UnderlayMissing { underlay } if underlay == "ens99"),
        "{err}"
    );
    assert!(err.to_string().contains("ens99"), "{err}");
}
