//! Helpers for tests in network namespaces the test creates: unique names
//! (pid + counter), a guard that deletes the namespace on drop (also on
//! panic), and `ip` wrappers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace that exists while this value lives.
pub struct Netns {
    /// Its name (`ip netns` name).
    pub name: String,
}

impl Netns {
    /// Creates `tortie-<tag>-<pid>-<n>` with lo up.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("tf-{tag}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS...`; panics with stderr if it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ip -n NAME ARGS...`, returning success instead of panicking.
    pub fn try_ip(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Our routes as `ip -n NS -j route show proto 116` (plus `-6`), parsed.
    pub fn our_routes(&self) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        for fam in ["-4", "-6"] {
            let out = self.ip(&["-j", fam, "route", "show", "table", "main", "proto", "116"]);
            let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
            all.extend(v);
        }
        all
    }

    /// `ip -n NS route show ARGS` as text.
    pub fn routes_text(&self, args: &[&str]) -> String {
        let mut full = vec!["route", "show"];
        full.extend_from_slice(args);
        self.ip(&full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs a command, panics with its stderr on failure, returns stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A node namespace: `eth0` (a veth whose peer `eth0p` stays in the same
/// namespace) with 192.168.1.11/24 and fd00:1::11/64, a real VXLAN device
/// `vxlan.tortie`, and `tunl0`: this kernel has no ipip module, so a veth
/// named `tunl0` stands in for the route-shape tests (it carries no IPIP).
pub fn node_ns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ns.ip(&["addr", "add", "192.168.1.11/24", "dev", "eth0"]);
    ns.ip(&["addr", "add", "fd00:1::11/64", "dev", "eth0", "nodad"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "eth0p", "up"]);
    ns.ip(&[
        "link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0p",
    ]);
    ns.ip(&["link", "set", "tunl0", "up"]);
    ns.ip(&["link", "set", "tunl0p", "up"]);
    ns.ip(&[
        "link",
        "add",
        "vxlan.tortie",
        "type",
        "vxlan",
        "id",
        "4096",
        "dstport",
        "4789",
        "local",
        "192.168.1.11",
        "dev",
        "eth0",
        "nolearning",
    ]);
    ns.ip(&["link", "set", "vxlan.tortie", "up"]);
    ns.ip(&[
        "link",
        "add",
        "tort0123456789a",
        "type",
        "veth",
        "peer",
        "name",
        "pod0",
    ]);
    ns.ip(&["link", "set", "tort0123456789a", "up"]);
    ns.ip(&["link", "set", "pod0", "up"]);
    ns
}
