//! Network namespaces the benchmark creates, and processes inside them, all
//! removed on drop (also when a benchmark fails or panics).
//!
//! Names are `tb<tag>-<pid>-<counter>`, so runs (and tests) never collide.
//! Sockets are opened in a namespace by a thread that entered it with
//! `setns(2)`: see [`Netns::enter`].

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Makes namespace names unique within this process.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace (`ip netns add`), deleted on drop after every process
/// inside it was killed.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// A process started in a namespace; killed and reaped on drop.
#[derive(Debug)]
pub struct NsChild {
    child: Child,
    what: String,
}

// ===== impl Netns =====

impl Netns {
    /// Creates `tb<tag>-<pid>-<n>` and brings its `lo` up.
    pub fn new(tag: &str) -> Result<Netns> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("tb{tag}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Runs many `ip` commands (one per line, without the leading `ip`) in
    /// one `ip -n NAME -batch -` process.
    pub fn ip_batch(&self, lines: &[String]) -> Result<()> {
        let mut child = Command::new("ip")
            .args(["-n", &self.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ip -batch")?;
        let mut stdin = child.stdin.take().context("ip -batch has no stdin")?;
        std::io::Write::write_all(&mut stdin, lines.join("\n").as_bytes())
            .context("writing to ip -batch")?;
        drop(stdin);
        let out = child.wait_with_output().context("waiting for ip -batch")?;
        if !out.status.success() {
            bail!(
                "ip -n {} -batch failed ({}): {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Command that runs `argv` inside the namespace (`ip netns exec`, which
    /// execs in place: the child's pid is the program's).
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Starts `argv` in the namespace with stdout and stderr in `log`.
    pub fn spawn(&self, argv: &[&str], log: &Path) -> Result<NsChild> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file")?;
        let child = self
            .command(argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {argv:?} in {}", self.name))?;
        Ok(NsChild {
            child,
            what: format!("{} in {}", argv[0], self.name),
        })
    }

    /// Moves the calling thread into the namespace (`setns(CLONE_NEWNET)`).
    /// Threads it creates afterwards start there too.
    pub fn enter(&self) -> Result<()> {
        enter_path(&self.path())
    }

    /// The path that [`enter_path`] takes for this namespace.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

// ===== impl NsChild =====

impl NsChild {
    /// The process id (the program's own: `ip netns exec` execs in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What runs where, for error messages.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for NsChild {
    /// SIGTERM, up to 3 s to exit (so a profiler wrapping the daemon can
    /// write its data), then SIGKILL.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
            while std::time::Instant::now() < until {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ===== helpers =====

/// Connects `a` and `b` with a veth pair, `eth0` on both sides (created
/// directly in the namespaces, so names never collide in the host), up.
pub fn veth(a: &Netns, b: &Netns) -> Result<()> {
    run(Command::new("ip").args([
        "link", "add", "eth0", "netns", &a.name, "type", "veth", "peer", "name", "eth0", "netns",
        &b.name,
    ]))?;
    a.ip(&["link", "set", "eth0", "up"])?;
    b.ip(&["link", "set", "eth0", "up"])
}

/// Moves the calling thread into the namespace at `path`.
pub fn enter_path(path: &str) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening {path}"))?;
    setns(f, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns({path})"))
}

/// Runs a command to completion; fails with its stderr.
pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
