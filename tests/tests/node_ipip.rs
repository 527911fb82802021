//! tortie-node over IPIP: the lab's mesh of three with the pool in IPIP
//! CrossSubnet mode. This machine's kernel has no `ipip` module, so here
//! the test prints why it skips; `qemu/run-ipip-tests.sh` runs it in a
//! Debian kernel under qemu (the CI tier), where it must pass.
//!
//! ```text
//!   subnet A 172.30.1.0/24                  subnet B 172.30.2.0/24
//!   node1 .11   node2 .12 ── router .1 | .1 ── node3 .13
//! ```
//!
//! 1. Every pod reaches every other.
//! 2. node1 reaches node2's block directly and node3's `via 172.30.2.13
//!    dev tunl0 onlink`; node3 reaches both through tunl0; each node's
//!    `tunl0` carries its IPIP tunnel address (allocated from the pool).
//! 3. Traffic to node3's pod crossed tunl0 (its packet counters moved).

use std::time::Duration;

use anyhow::{Context, Result};
use tortie_ctl::lab::{net, Encap, Lab};
use tortie_tests::lab::{block4, spec};

/// Whether this kernel can make an IPIP device (probed in a scratch
/// namespace).
fn kernel_has_ipip() -> bool {
    let ns = format!("tipip-probe-{}", std::process::id());
    if net::add_netns(&ns).is_err() {
        return false;
    }
    let ok = tortie_ctl::lab::kernel_has_ipip(&ns);
    net::del_netns(&ns);
    ok
}

#[test]
fn mesh_of_three_over_ipip() -> Result<()> {
    if !kernel_has_ipip() {
        tortie_testkit::skip(
            "mesh_of_three_over_ipip",
            "this kernel has no ipip module; qemu/run-ipip-tests.sh runs it in a Debian \
             kernel under qemu",
        );
        return Ok(());
    }
    let mut spec = spec("i", 3)?;
    spec.encap = Encap::Ipip;
    let lab = Lab::up(spec)?;
    // 1.
    // Software emulation is slow: give it time.
    lab.wait_full_mesh(Duration::from_secs(240))?;
    // 2.
    let routes = |i: usize| net::ip_in_output(&lab.nodes[i].ns, &["route"]).unwrap_or_default();
    let r1 = routes(0);
    assert!(
        r1.contains(&format!(
            "{} via 172.30.1.12 dev eth0 proto 116",
            block4(&lab, 1)
        )),
        "{r1}"
    );
    assert!(
        r1.contains(&format!(
            "{} via 172.30.2.13 dev tunl0 proto 116 onlink",
            block4(&lab, 2)
        )),
        "{r1}"
    );
    let r3 = routes(2);
    assert_eq!(
        r3.lines()
            .filter(|l| l.contains("dev tunl0") && l.contains("onlink"))
            .count(),
        2,
        "{r3}"
    );
    for n in &lab.nodes {
        let t = net::ip_in_output(&n.ns, &["-4", "addr", "show", "tunl0"])?;
        assert!(t.contains("inet 10.244."), "{}: {t}", n.name);
    }
    // 3.
    let tx = |i: usize| -> Result<u64> {
        let out = net::ip_in_output(&lab.nodes[i].ns, &["-j", "-s", "link", "show", "tunl0"])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        Ok(v[0]["stats64"]["tx"]["packets"].as_u64().unwrap_or(0))
    };
    let before = tx(0)?;
    let to = lab.pods.iter().find(|p| p.node == "node3").context("pod")?;
    let from = lab.pods.iter().find(|p| p.node == "node1").context("pod")?;
    assert!(lab.ping(from, to.address, Duration::from_secs(5)));
    assert!(tx(0)? > before, "node1's tunl0 sent nothing");
    Ok(())
}
