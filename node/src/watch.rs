//! One task per watched kind: list, then watch from the listing's
//! revision; on any gap (compacted history, a broken stream, a restarted
//! store) list again. Everything goes to the agent as [`StoreEvent`]s;
//! errors are reported, never fatal, and retried with backoff, so a store
//! that is away mid-run leaves the agent on its last known picture.

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
            // The user's file does not load: reported, the watch goes on
            // with the last good objects.
            Some(Err(e @ StoreError::UserFile(_))) => {
                let event = StoreEvent::Trouble {
                    kind,
                    error: e.to_string(),
                };
                if tx.send(Input::Store(event)).await.is_err() {
                    return Ok(());
                }
            }
            Some(Err(e)) => return Err(format!("watch: {e}; listing again")),
            None => {
                debug!(%kind, "watch ended; listing again");
                return Err("watch ended; listing again".into());
            }
        }
    }
}
