//! Ctrl-C, SIGTERM and SIGHUP during `tortiectl lab up | demo` and the
//! benchmarks (tortie-bench): the lab is torn down, not left half built.
//!
//! [`install`] waits for them on a thread of its own (a one-thread tokio
//! runtime with `tokio::signal` handlers). It does not block them: a
//! blocked signal stays blocked in every process we start (std's `Command`
//! does not reset the mask), and then a daemon ignores the SIGTERM sent to
//! it. The first signal sets a flag that every waiting loop of the lab
//! (and of the benchmarks) checks ([`check`]) and turns into an error, so
//! the [`Lab`](super::Lab) value and the other guards unwind and their
//! drops remove what they made. For `tortiectl lab`, the signal also goes
//! to the command the lab is waiting for (an `ip`, `kubectl`, `openssl` or
//! `scripts/image.sh` of our process group, as a terminal's Ctrl-C does),
//! so that no wait outlasts it; the lab's daemons have process groups of
//! their own and are left to the teardown. A second signal exits at once.
//! Without [`install`] (the tests) nothing here is ever set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpgrp, getpid, Pid};

/// Set by the first signal.
static STOP: AtomicBool = AtomicBool::new(false);
/// What the signals do beyond the flag, set by the first [`install_with`].
static HANDLER: OnceLock<Handler> = OnceLock::new();

/// What a stop signal does beyond setting the flag.
#[derive(Debug, Clone)]
pub struct Handler {
    /// The prefix of the messages on stderr (`lab`, `bench`).
    pub who: String,
    /// What a second signal (exit at once) says may be left behind.
    pub leftover: String,
    /// Whether the first signal also goes to our children in our process
    /// group (the foreground command waited for).
    pub forward: bool,
}

/// Routes SIGINT, SIGTERM and SIGHUP to the stop flag, for the lab `name`.
pub fn install(name: &str) -> Result<()> {
    install_with(Handler {
        who: "lab".into(),
        leftover: format!("`tortiectl lab down --name {name}` removes what is left"),
        forward: true,
    })
}

/// Routes SIGINT, SIGTERM and SIGHUP to the stop flag, doing what
/// `handler` says.
pub fn install_with(handler: Handler) -> Result<()> {
    let _ = HANDLER.set(handler);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("the signal thread's runtime")?;
    // Registered here, so a signal that comes before the thread runs is
    // not lost.
    let streams = rt
        .block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            Ok::<_, std::io::Error>([
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
            ])
        })
        .context("installing SIGINT/SIGTERM/SIGHUP handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let [mut int, mut term, mut hup] = streams;
            rt.block_on(async move {
                loop {
                    let sig = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                        _ = hup.recv() => "SIGHUP",
                    };
                    let Some(h) = HANDLER.get() else { continue };
                    if STOP.swap(true, Ordering::SeqCst) {
                        eprintln!("{}: {sig}: exiting now; {}", h.who, h.leftover);
                        std::process::exit(130);
                    }
                    eprintln!("{}: {sig}: cleaning up (again to exit at once)", h.who);
                    if h.forward {
                        interrupt_foreground_children();
                    }
                }
            });
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Whether a stop signal arrived.
pub fn interrupted() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Fails once a stop signal arrived.
pub fn check() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// SIGINT to our children in our own process group: the command the lab
/// waits for (`kill -INT` of each, as a terminal's Ctrl-C would have
/// reached them), not the daemons.
fn interrupt_foreground_children() {
    let (me, group) = (getpid().as_raw(), getpgrp().as_raw());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        let parsed = |i: usize| fields.get(i).and_then(|f| f.parse::<i32>().ok());
        if parsed(1) == Some(me) && parsed(2) == Some(group) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        }
    }
}
