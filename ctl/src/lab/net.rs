//! The lab's plumbing: `ip` commands, namespaces, and sockets opened
//! inside a namespace.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};

/// Runs `ip ARGS`; fails with ip's stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    run("ip", args).map(|_| ())
}

/// Runs `ip -n NS ARGS`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<()> {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    ip(&full)
}

/// Runs `PROG ARGS` inside `ns`; returns stdout, fails unless it exits 0.
pub fn exec_in(ns: &str, argv: &[&str]) -> Result<String> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(argv);
    run("ip", &full)
}

/// Runs a program; stdout on success, an error naming it and its stderr
/// otherwise.
pub fn run(prog: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {prog}"))?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates namespace `ns` with `lo` up.
pub fn add_netns(ns: &str) -> Result<()> {
    ip(&["netns", "add", ns]).with_context(|| format!("creating network namespace {ns}"))?;
    ip_in(ns, &["link", "set", "lo", "up"])
}

/// Kills every process in `ns` and deletes it; a missing one is fine.
pub fn del_netns(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Whether namespace `ns` exists.
pub fn netns_exists(ns: &str) -> bool {
    std::path::Path::new("/run/netns").join(ns).exists()
}

/// A TCP connection opened from inside `ns` (a thread joins the
/// namespace, connects and returns the socket, which stays there).
pub fn connect_in(ns: &str, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let path = std::path::Path::new("/run/netns").join(ns);
    std::thread::spawn(move || -> Result<TcpStream> {
        let handle = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        setns(&handle, CloneFlags::CLONE_NEWNET).context("setns")?;
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        Ok(s)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the connecting thread panicked"))?
}

/// `ip -n NS ARGS` and its output.
pub fn ip_in_output(ns: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    run("ip", &full)
}
