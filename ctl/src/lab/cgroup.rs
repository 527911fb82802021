//! The kubelet nodes' cgroups (`kubelet.rs`): one cgroup per node at the
//! top of every cgroup v1 hierarchy, holding everything the node runs
//! (the kubelet's `cgroupRoot`), so that tearing a node down is killing
//! what is in it and removing it. runc also makes the node's cgroup in
//! the cgroup v2 mount some systems add beside them (`unified`): removing
//! it looks there too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The cgroup v1 hierarchies (`/sys/fs/cgroup/<controllers>`), without
/// the empty cgroup v2 mount some systems add beside them.
fn hierarchies() -> Vec<PathBuf> {
    let mut out = mounts();
    out.retain(|p| !p.ends_with("unified"));
    out
}

/// Every cgroup mount under `/sys/fs/cgroup`, the v2 one too.
fn mounts() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    out.sort();
    out
}

/// Creates cgroup `name` at the top of every hierarchy (a cpuset one
/// with its parent's CPUs and memory nodes, without which it takes no
/// process).
pub(super) fn make_cgroup(name: &str) -> Result<()> {
    let all = hierarchies();
    if all.is_empty() || !all.iter().any(|h| h.join("cpuset.cpus").exists()) {
        bail!("the kubelet nodes need cgroup v1 hierarchies under /sys/fs/cgroup (cgroupfs)");
    }
    for h in all {
        let dir = h.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if h.join(f).exists() {
                let parent = std::fs::read_to_string(h.join(f))?;
                std::fs::write(dir.join(f), parent.trim())
                    .with_context(|| format!("writing {}", dir.join(f).display()))?;
            }
        }
    }
    Ok(())
}

/// Kills every process in cgroup `name` (and below) and removes it from
/// every hierarchy.
pub(super) fn remove_cgroup(name: &str) {
    let roots: Vec<PathBuf> = mounts()
        .into_iter()
        .map(|h| h.join(name))
        .filter(|d| d.exists())
        .collect();
    if roots.is_empty() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut pids = Vec::new();
        for root in &roots {
            for dir in subtree(root) {
                let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                pids.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Deepest first: a cgroup with children cannot be removed. One whose
    // last process has just been killed may still be busy for a moment:
    // again until every one is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while roots.iter().any(|r| r.exists()) && Instant::now() < deadline {
        for root in &roots {
            // A process that appeared after the kills above (a shim that
            // was still starting one) keeps its cgroup: killed too.
            for dir in subtree(root) {
                let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in text
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            let mut dirs = subtree(root);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in dirs {
                let _ = std::fs::remove_dir(&d);
            }
        }
        if roots.iter().any(|r| r.exists()) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `root` and every cgroup below it.
fn subtree(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            for e in entries.filter_map(|e| e.ok()) {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// Kills (SIGKILL) every process whose command line holds `marker`:
/// containerd's shims of a kubelet node (`-address <node dir>/containerd.sock`)
/// leave the node's cgroup for the root ones and are reparented to init,
/// so the cgroup's kill does not reach them.
pub fn kill_by_cmdline(marker: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id();
    for e in entries.filter_map(|e| e.ok()) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
