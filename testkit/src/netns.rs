//! Network namespaces for tests and benchmarks: unique names, commands
//! and processes inside, threads that enter them, and cleanup on drop
//! (also when a test fails: the drop runs while the panic unwinds).
//!
//! Everything goes through iproute2 (`ip netns ...`, `ip -n NS ...`),
//! except what must be opened inside a namespace (a socket), which a
//! thread does after `setns(2)` ([`Netns::on_thread`]).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Where `ip netns add` puts the namespace handles.
pub const NETNS_DIR: &str = "/run/netns";

/// A network namespace (`ip netns add`), deleted on drop after every
/// process inside it was killed (a namespace with live processes would
/// only be unmounted, not freed); deleting it also removes its veth ends.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// A process started in a namespace, stopped and reaped on drop: SIGKILL
/// at once, or SIGTERM first with [`NsChild::with_grace`].
#[derive(Debug)]
pub struct NsChild {
    child: Child,
    what: String,
    grace: Duration,
}

// ===== impl Netns =====

impl Netns {
    /// Creates `<prefix>-<pid>-<n>` (unique on this machine while this
    /// process lives: tests in parallel never collide) with `lo` up.
    pub fn new(prefix: &str) -> io::Result<Netns> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        output(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `ip -n NAME ARGS...`: its stdout, or an error with its stderr.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        output(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs `argv` inside the namespace (`ip netns exec`,
    /// which execs in place: the child's pid is the program's).
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Starts `argv` in the namespace with stdout and stderr appended to
    /// `log`.
    pub fn spawn(&self, argv: &[&str], log: &Path) -> io::Result<NsChild> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", log.display())))?;
        let err = out.try_clone()?;
        let child = self
            .command(argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("starting {argv:?} in {}: {e}", self.name))
            })?;
        Ok(NsChild {
            child,
            what: format!("{} in {}", argv.first().copied().unwrap_or("?"), self.name),
            grace: Duration::ZERO,
        })
    }

    /// Pids of every process inside the namespace (`ip netns pids`).
    pub fn pids(&self) -> Vec<i32> {
        output(Command::new("ip").args(["netns", "pids", &self.name]))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Moves the calling thread into the namespace; threads it starts
    /// afterwards start there too. Use a thread of its own.
    pub fn enter(&self) -> io::Result<()> {
        enter_path(&self.path())
    }

    /// Runs `f` on a fresh thread inside the namespace and returns what it
    /// returns. What it opens (a socket) stays in the namespace.
    pub fn on_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let path = self.path();
        std::thread::spawn(move || {
            enter_path(&path)?;
            f()
        })
        .join()
        .map_err(|_| io::Error::other("the thread inside the namespace panicked"))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if let Err(e) = output(Command::new("ip").args(["netns", "del", &self.name])) {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("cleanup: deleting netns {}: {e}\n", self.name).as_bytes(),
            );
        }
    }
}

// ===== impl NsChild =====

impl NsChild {
    /// On drop, SIGTERM first and up to `grace` to exit (a profiler
    /// wrapping a daemon writes its data), then SIGKILL.
    pub fn with_grace(mut self, grace: Duration) -> NsChild {
        self.grace = grace;
        self
    }

    /// The process id (the program's own, not a wrapper's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What runs where, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        if !self.grace.is_zero() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                let until = Instant::now() + self.grace;
                while Instant::now() < until {
                    if let Ok(Some(_)) = self.child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        self.kill9();
    }
}

// ===== helpers =====

/// Moves the calling thread into the namespace at `path`.
pub fn enter_path(path: &Path) -> io::Result<()> {
    let f = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
    setns(f, CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::other(format!("setns({}): {e}", path.display())))
}

/// Connects `a` and `b` with a veth pair named `a_if` in `a` and `b_if` in
/// `b` (created directly in the namespaces, so names never collide in the
/// host), both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> io::Result<()> {
    output(Command::new("ip").args([
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]))?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

/// Runs a command to completion: its stdout, or an error naming it with
/// its stderr.
pub fn output(cmd: &mut Command) -> io::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
