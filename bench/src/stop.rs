//! Ctrl-C and SIGTERM: stop cleanly, so the namespaces and daemons are
//! removed by their guards instead of leaking.
//!
//! [`install`] waits for them on a thread of its own (a one-thread tokio
//! runtime with `tokio::signal` handlers). It does not block them: a
//! blocked signal stays blocked in every process we start (std's `Command`
//! does not reset the mask), and then a daemon ignores the SIGTERM a
//! benchmark sends it. The first signal sets a flag that every waiting
//! loop checks ([`check`]) and turns into an error; the guards then clean
//! up on the way out. A second signal exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};

static STOP: AtomicBool = AtomicBool::new(false);

/// Routes SIGINT, SIGTERM and SIGHUP to the stop flag.
pub fn install() -> Result<()> {
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
                ("SIGINT", signal(SignalKind::interrupt())?),
                ("SIGTERM", signal(SignalKind::terminate())?),
                ("SIGHUP", signal(SignalKind::hangup())?),
            ])
        })
        .context("installing SIGINT/SIGTERM/SIGHUP handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let [(_, mut int), (_, mut term), (_, mut hup)] = streams;
            rt.block_on(async move {
                loop {
                    let sig = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                        _ = hup.recv() => "SIGHUP",
                    };
                    if STOP.swap(true, Ordering::SeqCst) {
                        eprintln!(
                            "{sig}: exiting now, namespaces may be left: ip netns list | grep -E '^(tb|tl-b)'"
                        );
                        std::process::exit(130);
                    }
                    eprintln!("{sig}: stopping, cleaning up (again to exit at once)");
                }
            });
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
