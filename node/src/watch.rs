//! One task per watched kind: list, then watch from the listing's
//! revision; on any gap (compacted history, a broken stream, a restarted
//! store, a user file that stopped loading) list again. Everything goes to
//! the agent as [`StoreEvent`]s; errors are reported, never fatal, and
//! retried with backoff (100 ms doubling to 5 s), so a store that is away
//! mid-run leaves the agent on its last known picture. A probe reads one
//! small object every 2 s: an etcd watch reconnects quietly, so only the
//! probe tells that the store is away.

use std::time::Duration;

use tokio::sync::mpsc;
use tortie_config::resources::{Kind, Resource};
use tortie_datastore::{AnyStore, Datastore, StoreError, WatchEvent};
use tracing::{debug, warn};

use crate::agent::Input;

/// First retry delay after an error; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a watcher tells the agent.
#[derive(Debug)]
pub enum StoreEvent {
    /// Every object of `kind` (replaces what the agent had).
    Listed { kind: Kind, items: Vec<Resource> },
    /// One change.
    Changed(Box<WatchEvent>),
    /// The store failed for `kind`; the watcher retries.
    Trouble { kind: Kind, error: String },
    /// The periodic reachability probe: `Err` while the store does not
    /// answer (a watch may be quietly reconnecting meanwhile).
    Probe(Result<(), String>),
}

/// How often the store is probed, and how long a probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts the reachability probe: one small read every 2 s.
pub fn spawn_probe(store: AnyStore, tx: mpsc::Sender<Input>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let key = tortie_config::resources::Key::new(Kind::BGPConfiguration, "default");
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            let result = match tokio::time::timeout(PROBE_TIMEOUT, store.get(&key)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            if tx
                .send(Input::Store(StoreEvent::Probe(result)))
                .await
                .is_err()
            {
                return;
            }
        }
    })
}

/// Starts the watcher of `kind`. Dropping the handle stops it.
pub fn spawn(store: AnyStore, kind: Kind, tx: mpsc::Sender<Input>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        loop {
            match run_once(&store, kind, &tx, &mut backoff).await {
                Ok(()) => return, // the agent is gone
                Err(error) => {
                    warn!(%kind, %error, retry_in = ?backoff, "datastore");
                    if tx
                        .send(Input::Store(StoreEvent::Trouble { kind, error }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    })
}

/// One list + watch. `Ok` only when the agent stopped listening.
async fn run_once(
    store: &AnyStore,
    kind: Kind,
    tx: &mpsc::Sender<Input>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let listing = store.list(kind).await.map_err(|e| e.to_string())?;
    let revision = listing.revision;
    let items = listing.items.into_iter().map(|v| v.resource).collect();
    if tx
        .send(Input::Store(StoreEvent::Listed { kind, items }))
        .await
        .is_err()
    {
        return Ok(());
    }
    *backoff = MIN_BACKOFF;
    let mut watch = store
        .watch(kind, revision)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match watch.next().await {
            Some(Ok(event)) => {
                if tx
                    .send(Input::Store(StoreEvent::Changed(Box::new(event))))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            // The user's file does not load: reported (by the relist,
            // which fails with the same error until the file is fixed and
            // then clears it); the agent keeps the last good objects.
            Some(Err(e @ StoreError::UserFile(_))) => return Err(e.to_string()),
            Some(Err(e)) => return Err(format!("watch: {e}; listing again")),
            None => {
                debug!(%kind, "watch ended; listing again");
                return Err("watch ended; listing again".into());
            }
        }
    }
}
