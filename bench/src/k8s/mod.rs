//! The Kubernetes benchmarks, on the lab of `tortie_ctl` with a real
//! kube-apiserver (v1.20, `scripts/k8s.sh`) in the router's namespace:
//!
//! - `k8s-reach` ([`reach`]): pod start to reachable from another node.
//!   Two kubelet nodes (`LabSpec::kubelets`) with `deploy/` applied, as a
//!   user installs it; pods created one after another on node1; for each,
//!   when node1's kernel got the pod's /32 (the CNI ADD's last step) and
//!   when node2's kernel routed the address to node1; then the pods are
//!   deleted one by one, timed until the /32 is gone.
//! - `k8s-watch` ([`watch`]): watch load. tortie-node processes on the
//!   lab's Kubernetes datastore (no kubelets: the lab makes each Pod object
//!   and runs the CNI ADD itself), 1,000 pods created and deleted across
//!   three nodes; each agent's CPU time and memory, and every request the
//!   agents made to the API server, counted from its audit log ([`audit`]).
//!
//! Layout: `routes` reads a node's routing table over netlink; `audit` counts the
//! API server's audit log; `report` holds the results and their Markdown
//! tables.

pub mod audit;
pub mod reach;
pub mod report;
pub mod routes;
pub mod watch;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tortie_ctl::lab::kube::cache;
use tortie_ctl::lab::Lab;

/// Which Kubernetes benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bench {
    Reach,
    Watch,
}

/// What `tortie-bench k8s-*` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    pub bench: Bench,
    /// Where tortie-node, tortie-cni, tortiectl and tortie-rr are.
    pub bin_dir: PathBuf,
    pub quick: bool,
    /// Pods (reach: default 50, quick 5; watch: default 1000, quick 60).
    pub pods: Option<usize>,
    /// watch: nodes (default 3).
    pub nodes: Option<usize>,
}

/// A directory of our own, removed on drop (also when a run fails).
pub struct Scratch(pub PathBuf);

// ===== impl Bench =====

impl Bench {
    /// The section of `docs/benchmarks.md` it writes.
    pub fn section(self) -> &'static str {
        match self {
            Bench::Reach => "k8s-reach",
            Bench::Watch => "k8s-watch",
        }
    }
}

// ===== impl Scratch =====

impl Scratch {
    /// `$TMPDIR/tortie-bench-<what>-<pid>`, empty.
    pub fn new(what: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("tortie-bench-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the benchmark `o.bench`; returns the Markdown section (without
/// the run header, which the caller puts on top).
pub fn run(o: &Options) -> Result<String> {
    match o.bench {
        Bench::Reach => {
            let pods = o.pods.unwrap_or(if o.quick { 5 } else { 50 });
            if !(1..=100).contains(&pods) {
                bail!("--pods: between 1 and 100 for k8s-reach (a kubelet runs at most 110)");
            }
            let r = reach::run(&o.bin_dir, pods)?;
            Ok(report::reach_section(&r))
        }
        Bench::Watch => {
            let pods = o.pods.unwrap_or(if o.quick { 60 } else { 1000 });
            let nodes = o.nodes.unwrap_or(3);
            if !(1..=5000).contains(&pods) || !(2..=10).contains(&nodes) {
                bail!("--pods: 1 to 5000, --nodes: 2 to 10 for k8s-watch");
            }
            let r = watch::run(&o.bin_dir, nodes, pods)?;
            Ok(report::watch_section(&r))
        }
    }
}

/// Fails with what to install unless `scripts/k8s.sh` has built the
/// control plane (and, for `kubelets`, the kubelet, the pause image and
/// the node tools are there).
pub fn require(kubelets: bool) -> Result<()> {
    let cache = cache();
    if !cache.join("bin/kube-apiserver").exists() {
        bail!(
            "no Kubernetes in {}: scripts/k8s.sh all builds it (once, ~5-20 min)",
            cache.display()
        );
    }
    if !kubelets {
        return Ok(());
    }
    if !cache.join("bin/kubelet").exists() || !cache.join("images/pause.tar").exists() {
        bail!(
            "no kubelet or pause image in {}: scripts/k8s.sh all",
            cache.display()
        );
    }
    for tool in [
        "containerd",
        "ctr",
        "runc",
        "busybox",
        "nsenter",
        "unshare",
        "python3",
    ] {
        if which(tool).is_none() {
            bail!("no {tool}: apt-get install containerd runc busybox-static util-linux python3");
        }
    }
    Ok(())
}

/// A lab name unique on this machine while this process lives:
/// `<prefix><pid>x<n>`.
pub fn lab_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where the benchmark labs live (as the node benchmarks').
pub fn lab_root() -> PathBuf {
    std::env::temp_dir().join("tortie-bench-labs")
}

/// The workspace (its `deploy/` and `scripts/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Waits until every node's agent has a session with every other node,
/// Established (its `/status`, read in the node's namespace).
pub fn wait_established(lab: &Lab, within: Duration) -> Result<()> {
    let start = Instant::now();
    let want = lab.nodes.len() - 1;
    for i in 0..lab.nodes.len() {
        loop {
            let status = lab.node_status(i);
            let ok = status.as_ref().is_ok_and(|s| {
                let peers = s["peers"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                peers.len() >= want && peers.iter().all(|p| p["state"] == "Established")
            });
            if ok {
                break;
            }
            if start.elapsed() > within {
                let s = status.map_or_else(|e| format!("{e:#}"), |s| s.to_string());
                bail!(
                    "{}'s BGP sessions not all Established within {within:?}: {s}",
                    lab.nodes[i].name
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    Ok(())
}

/// Runs a command; its stdout, or an error with its output.
pub fn run_cmd(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The path of `tool` on `$PATH`.
pub fn which(tool: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}
