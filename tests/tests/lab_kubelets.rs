//! `tortiectl lab demo --kubernetes --kubelets`, the binary as a user runs
//! it (`scripts/lab.sh --once --kubernetes --kubelets` runs the same):
//! three kubelet nodes (two on subnet A, one behind the router on B), each
//! with its own containerd and kubelet; Tortie installed from `deploy/`
//! (tortie-node a DaemonSet); a busybox pod per node.
//!
//! ```text
//!   subnet A 172.30.1.0/24 fd30:1::/64         subnet B 172.30.2.0/24 fd30:2::/64
//!   node1 .11   node2 .12 ─── router .1 (etcd, apiserver, ...) ─── node3 .13
//!   (containerd, kubelet, tortie-node pod, pod1 / pod2 / pod3)
//! ```
//!
//! 1. Dual stack (`--stack dual`: deploy/ with the edits of
//!    docs/kubernetes.md, an IPv6 pool): the demo exits 0 and says every
//!    pod reached every other; each pod has an IPv4 and an IPv6 address
//!    as Kubernetes reports them (`status.podIPs`, the matrix's columns);
//!    the ping matrix has `ok` in every cell off the diagonal, both
//!    families; the nodes route IPv6 blocks directly on subnet A and over
//!    `vxlan-v6.tortie` across subnets; the CNI MTU is 1430 (VXLAN over
//!    IPv6).
//! 2. Nothing is left: no namespace `tl-<name>-*`, cgroup
//!    `tortie-<name>-*`, process in one or naming the lab's directory,
//!    mount of it, nor the directory.
//! 3. Ctrl-C (SIGINT to its process group, as a terminal sends it) once
//!    its kubelet nodes have registered: it exits 130 and, again,
//!    nothing is left.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tortie_tests::lab::bin_dir;

/// The longest a demo may take (images, control plane, three kubelet
/// nodes, the DaemonSet's rollout, pods: ~2-5 min on two busy cores).
const RUN_WITHIN: Duration = Duration::from_secs(20 * 60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn root() -> PathBuf {
    std::env::temp_dir().join("tortie-test-labs")
}

/// `tortiectl lab demo --kubernetes --kubelets` of lab `name`, in a
/// process group of its own (its leader: `killpg` reaches it and what it
/// runs in the foreground, as a terminal's Ctrl-C does).
fn start_demo(name: &str, extra: &[&str]) -> Child {
    let mut cmd = Command::new(bin_dir().join("tortiectl"));
    cmd.args(["lab", "demo", "--kubernetes", "--kubelets", "--name", name])
        .args(extra)
        .arg("--root")
        .arg(root())
        .arg("--repo")
        .arg(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().expect("run tortiectl")
}

/// Its stderr line by line as it comes (echoed to ours), and its stdout
/// whole at the end.
fn outputs(child: &mut Child) -> (mpsc::Receiver<String>, std::thread::JoinHandle<String>) {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
            let _ = tx.send(line);
        }
    });
    let mut out = child.stdout.take().expect("stdout");
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    (rx, stdout)
}

/// Waits for the child until `deadline`, reading its stderr lines into
/// `lines` and calling `on_line` with each; kills its group at the deadline.
fn wait(
    child: &mut Child,
    rx: &mpsc::Receiver<String>,
    lines: &mut Vec<String>,
    mut on_line: impl FnMut(&str),
) -> i32 {
    let start = Instant::now();
    loop {
        while let Ok(line) = rx.try_recv() {
            on_line(&line);
            lines.push(line);
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
                lines.push(line);
            }
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > RUN_WITHIN {
            let _ = killpg(
                Pid::from_raw(i32::try_from(child.id()).expect("pid")),
                Signal::SIGKILL,
            );
            let _ = child.wait();
            panic!("tortiectl lab demo did not end within {RUN_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What lab `name` left on this machine (empty: nothing).
fn leftovers(name: &str) -> Vec<String> {
    let dir = root().join(name);
    let dir_s = dir.display().to_string();
    let (ns_prefix, cg_prefix) = (format!("tl-{name}-"), format!("tortie-{name}-"));
    let mut out = Vec::new();
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for ns in names(Path::new("/run/netns")) {
        if ns.starts_with(&ns_prefix) {
            out.push(format!("network namespace {ns}"));
        }
    }
    for h in names(Path::new("/sys/fs/cgroup")) {
        for cg in names(&Path::new("/sys/fs/cgroup").join(&h)) {
            if cg.starts_with(&cg_prefix) {
                out.push(format!("cgroup /sys/fs/cgroup/{h}/{cg}"));
            }
        }
    }
    for pid in names(Path::new("/proc")) {
        if pid.parse::<u32>().is_err() {
            continue;
        }
        let read =
            |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
        let cmdline = read("cmdline").replace('\0', " ");
        if cmdline.contains(&dir_s) || read("cgroup").contains(&cg_prefix) {
            out.push(format!("process {pid}: {cmdline}"));
        }
    }
    for line in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        if line.contains(&dir_s) || line.contains(&ns_prefix) {
            out.push(format!("mount {line}"));
        }
    }
    if dir.exists() {
        out.push(format!("directory {dir_s}"));
    }
    out
}

/// Asserts that lab `name` left nothing (after a few seconds for killed
/// processes to be reaped).
fn assert_clean(name: &str) {
    let start = Instant::now();
    let mut left = leftovers(name);
    while !left.is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(250));
        left = leftovers(name);
    }
    assert!(left.is_empty(), "lab {name} left:\n{}", left.join("\n"));
}

#[test]
fn tortiectl_lab_demo_on_kubelet_nodes() {
    for p in ["tortie-node", "tortie-cni", "tortie-rr", "tortiectl"] {
        let bin = bin_dir().join(p);
        assert!(
            bin.is_file(),
            "{} not found: `cargo build --workspace --bins` first (scripts/test.sh does)",
            bin.display()
        );
    }
    if let Err(e) = tortie_ctl::lab::deployed::require(&bin_dir(), &repo()) {
        tortie_testkit::missing("lab_kubelets", &format!("{e:#}"));
        return;
    }

    // 1.
    let name = format!("kl{}", std::process::id());
    let start = Instant::now();
    let mut child = start_demo(&name, &["--stack", "dual"]);
    let (rx, stdout) = outputs(&mut child);
    let mut lines = Vec::new();
    let code = wait(&mut child, &rx, &mut lines, |_| {});
    let stdout = stdout.join().expect("stdout reader");
    eprintln!(
        "lab_kubelets: tortiectl lab demo --kubernetes --kubelets --stack dual took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let all = format!("{stdout}\n{}", lines.join("\n"));
    assert_eq!(code, 0, "tortiectl lab demo failed:\n{all}");
    assert!(
        stdout.contains("lab: OK: every pod reaches every other; the lab is torn down"),
        "{all}"
    );
    assert!(stdout.contains("kubelet pid"), "no kubelet nodes? {all}");
    let matrix: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("pod-to-pod ping matrix"))
        .filter(|l| l.starts_with("| pod"))
        .collect();
    let cells: Vec<&str> = matrix
        .iter()
        .flat_map(|l| l.split('|').skip(2).map(str::trim))
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(matrix.len(), 3, "three pods, one per node: {all}");
    assert_eq!(
        cells.iter().filter(|c| **c == "ok").count(),
        12,
        "every pod reaches every other at both addresses: {all}"
    );
    assert!(!cells.contains(&"FAIL"), "{all}");
    // The columns: each pod's addresses from status.podIPs.
    let header = stdout
        .lines()
        .skip_while(|l| !l.contains("pod-to-pod ping matrix"))
        .find(|l| l.contains("FROM \\ TO"))
        .unwrap_or_else(|| panic!("no matrix header: {all}"));
    for pod in ["pod1", "pod2", "pod3"] {
        assert!(
            header.contains(&format!("{pod} 10.244."))
                && header.contains(&format!("{pod} fd00:10:244:")),
            "{pod} has an address of each family: {header}"
        );
    }
    // node1 reaches node2's IPv6 block directly, node3's over VXLAN; node3
    // reaches both over VXLAN.
    let ipv6_routes = |node: &str| -> Vec<&str> {
        stdout
            .lines()
            .skip_while(|l| *l != format!("== {node} IPv6 routes (ip -6 route)"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter(|l| l.contains("proto 116") && l.contains("/122 via"))
            .collect()
    };
    let n1 = ipv6_routes("node1");
    assert_eq!(
        n1.len(),
        2,
        "node1's routes to the other IPv6 blocks: {all}"
    );
    assert!(
        n1.iter().any(|r| r.contains("via fd30:1::12 dev eth0")),
        "{n1:?}"
    );
    assert!(
        n1.iter()
            .any(|r| r.contains("dev vxlan-v6.tortie") && r.contains("onlink")),
        "{n1:?}"
    );
    let n3 = ipv6_routes("node3");
    assert_eq!(
        n3.len(),
        2,
        "node3's routes to the other IPv6 blocks: {all}"
    );
    assert!(
        n3.iter().all(|r| r.contains("dev vxlan-v6.tortie")),
        "{n3:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("with the dual-stack edits")
            && l.contains("IPPool default-ipv6")
            && l.contains("CNI MTU 1430")),
        "{all}"
    );

    // 2.
    assert_clean(&name);

    // 3.
    let name = format!("kl{}c", std::process::id());
    let start = Instant::now();
    let mut child = start_demo(&name, &[]);
    let (rx, stdout) = outputs(&mut child);
    let mut lines = Vec::new();
    let group = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let mut sent = None;
    let code = wait(&mut child, &rx, &mut lines, |line| {
        if sent.is_none() && line.contains("kubelet nodes registered") {
            let _ = killpg(group, Signal::SIGINT);
            sent = Some(Instant::now());
        }
    });
    let _ = stdout.join();
    let sent = sent.unwrap_or_else(|| panic!("the nodes never registered:\n{}", lines.join("\n")));
    eprintln!(
        "lab_kubelets: Ctrl-C {:.1} s into the run; torn down and exited {:.1} s later",
        (sent - start).as_secs_f64(),
        sent.elapsed().as_secs_f64()
    );
    assert_eq!(code, 130, "exit code after Ctrl-C:\n{}", lines.join("\n"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("interrupted; the lab is torn down")),
        "{}",
        lines.join("\n")
    );
    assert_clean(&name);
}
