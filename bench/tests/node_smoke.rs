//! Smoke test of the node benchmarks (`tortie-bench node`) on three nodes,
//! tortie-node and then BIRD: bring-up to complete routes, the ping
//! matrix, one block claim and release, one heal. Each step fails unless
//! every node's kernel showed the change, so the harness cannot rot
//! unnoticed. Needs root, BIRD and the workspace's binaries
//! (`cargo build --workspace --bins`, as scripts/test.sh does); without
//! them it says why on stderr and skips, and under `CI=true` it fails.

use std::path::PathBuf;
use std::time::Duration;

use tortie_bench::node::{Bed, Daemon, Topology};

/// Skips (a line on the real stderr), or fails under `CI=true`.
fn skip(why: &str) {
    tortie_testkit::missing("node_smoke", why);
}

/// target/debug (or release): the test executable's grandparent.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

#[test]
fn node_benchmarks_on_three_nodes() {
    if !tortie_bench::is_root() {
        return skip("needs root for network namespaces");
    }
    let bins = bin_dir();
    for b in ["tortie-node", "tortie-cni"] {
        if !bins.join(b).is_file() {
            return skip(&format!(
                "no {} (cargo build --workspace --bins)",
                bins.join(b).display()
            ));
        }
    }
    if std::process::Command::new("bird")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip("no bird binary (apt install bird2)");
    }
    for daemon in [Daemon::Tortie, Daemon::Bird] {
        let mut bed = Bed::new(daemon, Topology::Mesh, 3, &bins).expect("lab");
        bed.bring_up()
            .unwrap_or_else(|e| panic!("{daemon:?} bring-up: {e:#}\n{}", bed.diagnostics()));
        bed.wait_complete(Duration::from_secs(30)).expect("routes");
        let (ok, tried, _) = bed.ping_matrix(3);
        assert_eq!((ok, tried), (6, 6), "{daemon:?}: ping matrix");
        let trials = bed
            .convergence(1)
            .unwrap_or_else(|e| panic!("{daemon:?} convergence: {e:#}\n{}", bed.diagnostics()));
        assert_eq!(trials.len(), 1);
        let heal = bed
            .heal(1)
            .unwrap_or_else(|e| panic!("{daemon:?} heal: {e:#}\n{}", bed.diagnostics()));
        assert_eq!(heal.len(), 1);
        let mem = bed.memory().expect("memory");
        assert!(
            mem.iter().all(|m| m.anon_kib > 0 && m.rss_kib > m.anon_kib),
            "{mem:?}"
        );
        // BIRD may use less than a clock tick (10 ms) in these seconds;
        // tortie-node (a debug build here) starts a runtime and a speaker.
        let cpu = bed.cpu_secs().expect("cpu");
        if daemon == Daemon::Tortie {
            assert!(cpu > 0.0, "tortie-node used no CPU time?");
        }
    }
}
