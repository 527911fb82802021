//! Ctrl-C and SIGTERM: stop cleanly, so the namespaces and daemons are
//! removed by their guards instead of leaking.
//!
//! [`install`] blocks SIGINT, SIGTERM and SIGHUP in the calling thread
//! (call it first in `main`: threads inherit the mask; std's `Command`
//! resets it in children) and waits for them on a thread of its own. The
//! first signal sets a flag that every waiting loop checks ([`check`]) and
//! turns into an error; the guards then clean up on the way out. A second
//! signal exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{SigSet, Signal};

static STOP: AtomicBool = AtomicBool::new(false);

/// Routes SIGINT, SIGTERM and SIGHUP to the stop flag.
pub fn install() -> Result<()> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block()
        .context("blocking SIGINT/SIGTERM/SIGHUP")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(sig) = set.wait() {
                if STOP.swap(true, Ordering::SeqCst) {
                    eprintln!(
                        "{sig}: exiting now, namespaces may be left: ip netns list | grep ^tb"
                    );
                    std::process::exit(130);
                }
                eprintln!("{sig}: stopping, cleaning up (again to exit at once)");
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Fails once a stop signal arrived.
pub fn check() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}
