//! Network namespaces the benchmark creates, and processes inside them, all
//! removed on drop (also when a benchmark fails or panics).
//!
//! Names are `tb<tag>-<pid>-<counter>`, so runs (and tests) never collide.
//! Sockets are opened in a namespace by a thread that entered it with
//! `setns(2)`: see [`Netns::enter`].

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub use tortie_testkit::netns::NsChild;

/// A network namespace (`ip netns add`), deleted on drop after every process
/// inside it was killed ([`tortie_testkit::netns::Netns`], with the
/// benchmark's names and errors).
#[derive(Debug)]
pub struct Netns(tortie_testkit::netns::Netns);

/// How long a daemon gets to exit on SIGTERM before SIGKILL (a profiler
/// wrapping it writes its data).
const GRACE: Duration = Duration::from_secs(3);

// ===== impl Netns =====

impl Netns {
    /// Creates `tb<tag>-<pid>-<n>` and brings its `lo` up.
    pub fn new(tag: &str) -> Result<Netns> {
        Ok(Netns(tortie_testkit::netns::Netns::new(&format!(
            "tb{tag}"
        ))?))
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Runs `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        self.0.ip(args)?;
        Ok(())
    }

    /// Runs many `ip` commands (one per line, without the leading `ip`) in
    /// one `ip -n NAME -batch -` process.
    pub fn ip_batch(&self, lines: &[String]) -> Result<()> {
        let mut child = Command::new("ip")
            .args(["-n", self.0.name(), "-batch", "-"])
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
                self.0.name(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Command that runs `argv` inside the namespace (`ip netns exec`, which
    /// execs in place: the child's pid is the program's).
    pub fn command(&self, argv: &[&str]) -> Command {
        self.0.command(argv)
    }

    /// Starts `argv` in the namespace with stdout and stderr in `log`; on
    /// drop it gets SIGTERM and 3 s before SIGKILL.
    pub fn spawn(&self, argv: &[&str], log: &Path) -> Result<NsChild> {
        Ok(self.0.spawn(argv, log)?.with_grace(GRACE))
    }

    /// Moves the calling thread into the namespace (`setns(CLONE_NEWNET)`).
    /// Threads it creates afterwards start there too.
    pub fn enter(&self) -> Result<()> {
        Ok(self.0.enter()?)
    }

    /// The path that [`enter_path`] takes for this namespace.
    pub fn path(&self) -> String {
        self.0.path().display().to_string()
    }
}

// ===== helpers =====

/// Connects `a` and `b` with a veth pair, `eth0` on both sides (created
/// directly in the namespaces, so names never collide in the host), up.
pub fn veth(a: &Netns, b: &Netns) -> Result<()> {
    Ok(tortie_testkit::netns::veth(&a.0, "eth0", &b.0, "eth0")?)
}

/// Moves the calling thread into the namespace at `path`.
pub fn enter_path(path: &str) -> Result<()> {
    Ok(tortie_testkit::netns::enter_path(Path::new(path))?)
}

/// Runs a command to completion; fails with its stderr.
pub fn run(cmd: &mut Command) -> Result<()> {
    tortie_testkit::netns::output(cmd)?;
    Ok(())
}
