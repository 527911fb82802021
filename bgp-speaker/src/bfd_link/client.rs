//! The client task: the BFD service's requests in the order the
//! instance decided them, and one forwarder per session that turns its
//! status watch into instance inputs.

use bfd::{BfdHandle, SessionStatus};
use tokio::sync::{mpsc, watch};

use super::Op;
use crate::events::Input;
use crate::rib::PeerId;

/// Runs the service's requests in order; each added session gets a
/// forwarder of its status.
pub(super) async fn client(
    handle: BfdHandle,
    owned: bool,
    mut ops: mpsc::Receiver<Op>,
    inputs: mpsc::Sender<Input>,
) {
    while let Some(op) = ops.recv().await {
        match op {
            Op::Add { id, gen, cfg } => match handle.add(cfg).await {
                Ok(rx) => {
                    tokio::spawn(forward(id, gen, rx, inputs.clone()));
                }
                Err(e) => {
                    let tx = inputs.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(Input::BfdFailed(id, gen, e.to_string())).await;
                    });
                }
            },
            Op::Remove(key) => {
                if let Err(e) = handle.remove(&key).await {
                    tracing::debug!(?key, error = %e, "BFD session not removed");
                }
            }
            Op::Reconfigure(key, timers) => {
                if let Err(e) = handle.reconfigure(&key, timers).await {
                    tracing::warn!(?key, error = %e, "BFD timers not changed");
                }
            }
            Op::Counters => {
                if let Ok(c) = handle.counters().await {
                    // Periodic: one lost to a full queue comes again.
                    let _ = inputs.try_send(Input::BfdCounters(c));
                }
            }
            Op::Shutdown(done) => {
                if owned {
                    let _ = handle.shutdown().await;
                }
                let _ = done.send(());
                return;
            }
        }
    }
    if owned {
        let _ = handle.shutdown().await;
    }
}

/// Hands each status of a session to the instance, the current one first;
/// ends when the session is removed or the speaker stops.
async fn forward(
    id: PeerId,
    gen: u64,
    mut rx: watch::Receiver<SessionStatus>,
    inputs: mpsc::Sender<Input>,
) {
    loop {
        let s = *rx.borrow_and_update();
        if inputs.send(Input::BfdStatus(id, gen, s)).await.is_err() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
