//! `tortie-bench`: tortie-rr side by side with BIRD, FRR bgpd and GoBGP in
//! one run, and tortie-node next to BIRD as Calico runs it, in network
//! namespaces of its own.
//!
//! Layout:
//! - `netns`: namespaces and processes in them, removed on drop.
//! - `bed`: the two-namespace test bed and the thread that runs inside it.
//! - `wire`: pre-encoded OPEN/UPDATE traffic (the speaker's own codec).
//! - `session`: our light BGP peer (generator, RR client, keepalive probe).
//! - `receivers`: the speakers under test: config, start, Loc-RIB count.
//! - `procstat`: RSS, peak RSS and CPU time from `/proc`.
//! - `ingest`: bulk ingest and keepalives under load; `fanout`: RR fan-out.
//! - `report`: Markdown tables and the sections of `docs/benchmarks.md`.
//! - `stop`: Ctrl-C/SIGTERM become an error, so guards clean up.
//! - `node`: the node agent's benchmarks (bring-up, convergence, heal,
//!   restart, scale): tortie-node next to BIRD as Calico runs it, on the
//!   lab of `tortie_ctl`.
//! - `k8s`: on a real kube-apiserver: pod start to reachable from another
//!   node (real kubelets, `deploy/`), and the agents' watch load (CPU,
//!   memory and API requests while pods come and go).

pub mod bed;
pub mod fanout;
pub mod ingest;
pub mod k8s;
pub mod loopback;
pub mod netns;
pub mod node;
pub mod procstat;
pub mod receivers;
pub mod report;
pub mod session;
pub mod stop;
pub mod wire;

use std::path::PathBuf;

/// Whether this process runs as root (network namespaces need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The environment variable naming the tortie-rr binary to measure.
pub const TORTIE_RR_ENV: &str = "TORTIE_RR_BIN";

/// The tortie-rr binary: `$TORTIE_RR_BIN`; else the one the same build
/// made, beside the running executable (`target/<profile>/tortie-rr` for
/// tortie-bench, or for a test in `target/<profile>/deps/`), wherever the
/// target directory is (`CARGO_TARGET_DIR`); else the workspace's
/// `target/release/tortie-rr`, else `target/debug/tortie-rr`; `None` if
/// none exists.
pub fn find_tortie_rr() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(TORTIE_RR_ENV) {
        return Some(PathBuf::from(p));
    }
    let mut beside = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            beside.push(dir.join("tortie-rr"));
            if let Some(up) = dir.parent().filter(|_| dir.ends_with("deps")) {
                beside.push(up.join("tortie-rr"));
            }
        }
    }
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    let workspace = ["release", "debug"]
        .iter()
        .map(|profile| target.join(profile).join("tortie-rr"));
    beside
        .into_iter()
        .chain(workspace)
        .find(|p| p.exists())
        .map(|p| p.canonicalize().unwrap_or(p))
}
