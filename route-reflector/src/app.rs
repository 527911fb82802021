//! Start-up, the main loop and shutdown.
//!
//! ```text
//! main loop ── waits for SIGTERM / SIGINT / speaker gone
//!   ├─ admin server task      (admin.rs)
//!   ├─ reload task            (reload.rs) <- SIGHUP task, inotify watcher
//!   ├─ marker refresh task    (marker.rs)
//!   └─ best-path drain task   (a reflector programs no routes)
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bgp_speaker::ShutdownMode;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tortie_config::RrConfig;
use tracing::{debug, error, info, warn};

use crate::cli::Cli;
use crate::reload::{self, Reloader, Trigger};
use crate::speaker_config::to_speaker_config;
use crate::state::{Applied, Shared};
use tortie_daemon::marker::{self, Marker};

/// How long a shutdown may take before we exit anyway.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// `--check`: validate the file, print the verdict, exit 0 or 1.
pub fn check(path: &Path) -> ExitCode {
    let verdict = RrConfig::load(path)
        .map_err(|e| e.in_file(path))
        .and_then(|rr| {
            to_speaker_config(&rr, false)
                .check()
                .map(|()| rr)
                .map_err(|e| format!("{}: rejected by the BGP speaker: {e}", path.display()))
        });
    match verdict {
        Ok(rr) => {
            println!(
                "{}: OK (router id {}, AS {}, {} peers, {} dynamic prefixes)",
                path.display(),
                rr.router_id,
                rr.as_number,
                rr.peers.len(),
                rr.dynamic_peers.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the route reflector until SIGTERM/SIGINT (Ok) or a fatal error.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;

    let path = cli.config.clone();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let rr = RrConfig::from_yaml(&text).map_err(|e| anyhow::anyhow!(e.in_file(&path)))?;

    // The marker is ours for this router id and this configuration file;
    // another's in the same state directory is left alone.
    let config_id = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let marker = Marker::new(
        &cli.state_dir,
        format!("router-id {} config {}", rr.router_id, config_id.display()),
    );
    if let Some(other) = marker.foreign_owner() {
        warn!(path = %marker.path().display(), owner = %other, "the graceful restart marker is another's (router id or configuration file): starting fresh, and it is replaced");
    }
    let gr = rr.graceful_restart.clone();
    let restarting =
        gr.enabled && marker.restarted_within(Duration::from_secs(gr.restart_time.into()));
    info!(
        path = %path.display(),
        router_id = %rr.router_id,
        asn = rr.as_number,
        peers = rr.peers.len(),
        dynamic_prefixes = rr.dynamic_peers.len(),
        restarting,
        "starting tortie-rr"
    );

    // Bind the admin port first: a failure then costs no BGP session.
    let admin_addr = rr.admin;
    let listener = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("admin: cannot listen on {admin_addr}"))?;

    let mut speaker = to_speaker_config(&rr, restarting);
    if restarting {
        // Wait for the End-of-RIB of every peer that was up before the
        // restart (dynamic ones included) before sending routes.
        speaker.graceful_restart.wait_for = marker.peers();
    }
    let (handle, best_paths) = bgp_speaker::start(speaker.clone())
        .await
        .context("cannot start the BGP speaker")?;
    // A reflector programs no routes: dropping the stream tells the speaker
    // not to build best-path changes at all.
    drop(best_paths);
    let shared = Arc::new(Shared::new(
        handle.clone(),
        path.clone(),
        restarting,
        Applied::new(rr, speaker),
    ));

    let (stop_admin, admin_stopped) = oneshot::channel::<()>();
    let admin_task = tokio::spawn(crate::admin::serve(listener, shared.clone(), async {
        let _ = admin_stopped.await;
    }));
    info!(%admin_addr, "admin HTTP server listening");

    let (triggers_tx, triggers_rx) = mpsc::channel(16);
    let _watcher = match reload::watch_file(&path, triggers_tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %e, path = %path.display(), "cannot watch the configuration file; reload with SIGHUP");
            None
        }
    };
    tokio::spawn(forward_sighup(sighup, triggers_tx));
    tokio::spawn(Reloader::new(shared.clone(), text).run(triggers_rx));
    let marker_task = tokio::spawn(refresh_marker(shared.clone(), marker.clone()));
    let clients_task = tokio::spawn(crate::clients::run(shared.clone()));

    shared.set_ready(true);
    let mut status = handle.watch_status();
    let outcome = tokio::select! {
        _ = sigterm.recv() => { info!("SIGTERM: shutting down"); Ok(()) }
        _ = sigint.recv() => { info!("SIGINT: shutting down"); Ok(()) }
        _ = speaker_gone(&mut status) => Err(anyhow::anyhow!("the BGP speaker stopped unexpectedly")),
    };
    shared.set_ready(false);
    marker_task.abort();
    clients_task.abort();

    if outcome.is_ok() {
        let gr_enabled = shared.applied().rr.graceful_restart.enabled;
        let mode = if gr_enabled {
            ShutdownMode::Graceful
        } else {
            ShutdownMode::Hard
        };
        // A second SIGTERM/SIGINT cuts the wait short.
        tokio::select! {
            done = tokio::time::timeout(SHUTDOWN_TIMEOUT, handle.shutdown(mode)) => {
                if done.is_err() {
                    warn!(timeout_secs = SHUTDOWN_TIMEOUT.as_secs(), "the BGP speaker did not stop in time");
                }
            }
            _ = sigterm.recv() => warn!("second SIGTERM: exiting without waiting for the speaker"),
            _ = sigint.recv() => warn!("second SIGINT: exiting without waiting for the speaker"),
        }
        // Graceful: a fresh marker, so a restart within the restart time
        // sets the R bit. Hard: no marker, the next start is a fresh one.
        let marked = if gr_enabled {
            marker.write(&established(&shared))
        } else {
            marker.remove()
        };
        if let Err(e) = marked {
            warn!(path = %marker.path().display(), error = %e, "cannot update the graceful restart marker");
        }
        info!(?mode, "BGP speaker stopped");
    }
    let _ = stop_admin.send(());
    match tokio::time::timeout(Duration::from_secs(5), admin_task).await {
        Ok(Ok(Err(e))) => warn!(error = %e, "admin server failed"),
        Err(_) => warn!("admin server did not stop in time"),
        _ => {}
    }
    outcome
}

/// A reflector programs no routes: it only logs best-path changes. The
/// channel is bounded, so it must be drained or the speaker would stall.
async fn forward_sighup(mut sighup: tokio::signal::unix::Signal, triggers: mpsc::Sender<Trigger>) {
    while sighup.recv().await.is_some() {
        info!("SIGHUP: reloading the configuration");
        if triggers.send(Trigger::Signal).await.is_err() {
            return;
        }
    }
}

/// The peers whose session is Established now.
fn established(shared: &Shared) -> Vec<std::net::IpAddr> {
    shared
        .handle
        .status()
        .peers
        .iter()
        .filter(|p| p.state == bgp_speaker::SessionState::Established)
        .map(|p| p.address)
        .collect()
}

/// Keeps the marker fresh while graceful restart is on; removes it when a
/// reload turns graceful restart off.
async fn refresh_marker(shared: Arc<Shared>, marker: Marker) {
    let mut applied = shared.watch_applied();
    let mut failing = false;
    loop {
        let gr = shared.applied().rr.graceful_restart.clone();
        let result = if gr.enabled {
            marker.write(&established(&shared))
        } else {
            marker.remove()
        };
        match result {
            // Warn once per failure streak, not on every refresh.
            Err(e) if !failing => {
                failing = true;
                warn!(path = %marker.path().display(), error = %e, "cannot update the graceful restart marker; running without it");
            }
            Err(e) => {
                debug!(path = %marker.path().display(), error = %e, "graceful restart marker still failing")
            }
            Ok(()) if failing => {
                failing = false;
                info!(path = %marker.path().display(), "graceful restart marker writable again");
            }
            Ok(()) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(marker::refresh_interval(gr.restart_time)) => {}
            changed = applied.changed() => if changed.is_err() { return },
        }
    }
}

/// Completes when the speaker's status channel closes (its task ended).
async fn speaker_gone(status: &mut tokio::sync::watch::Receiver<Arc<bgp_speaker::Status>>) {
    while status.changed().await.is_ok() {}
    error!("the BGP speaker's status channel closed");
}
