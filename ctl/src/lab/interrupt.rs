//! Ctrl-C, SIGTERM and SIGHUP during `tortiectl lab up | demo`: the lab
//! is torn down, not left half built.
//!
//! [`install`] waits for them on a thread of its own (tortie-bench's
//! `stop.rs` does the same). The first signal sets a flag that every
//! waiting loop of the lab checks ([`check`]) and turns into an error, so
//! the [`Lab`](super::Lab) value unwinds and its drop removes what it
//! made; the signal also goes to the command the lab is waiting for (an
//! `ip`, `kubectl`, `openssl` or `scripts/image.sh` of our process group,
//! as a terminal's Ctrl-C does), so that no wait outlasts it. The lab's
//! daemons have process groups of their own and are left to the teardown.
//! A second signal exits at once. Without [`install`] (the tests, the
//! benchmarks) nothing here is ever set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpgrp, getpid, Pid};

/// Set by the first signal.
static STOP: AtomicBool = AtomicBool::new(false);
/// The lab's name, for the message of a second signal.
static NAME: OnceLock<String> = OnceLock::new();

/// Routes SIGINT, SIGTERM and SIGHUP to the stop flag, for the lab `name`.
pub fn install(name: &str) -> Result<()> {
    let _ = NAME.set(name.to_string());
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
                    let name = NAME.get().map_or("lab", String::as_str);
                    if STOP.swap(true, Ordering::SeqCst) {
                        eprintln!(
                            "lab: {sig}: exiting now; `tortiectl lab down --name {name}` removes what is left"
                        );
                        std::process::exit(130);
                    }
                    eprintln!("lab: {sig}: tearing the lab down (again to exit at once)");
                    interrupt_foreground_children();
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
