//! Following a kind for a long-running process (tortie-node, tortie-rr):
//! list, then watch from the listing's revision; on any gap (compacted
//! history, a broken stream, a restarted store, a user file that stopped
//! loading) list again. Errors are reported as [`Follow::Trouble`], never
//! fatal, and retried with backoff (100 ms doubling to 5 s), so a store
//! that is away leaves the follower on its last known objects. A probe
//! ([`probe`]) tells whether the store answers: on etcd it reads one small
//! object every 2 s (an etcd watch reconnects quietly, so only a read
//! tells that the store is away); on Kubernetes it makes no request and
//! reports the watches' own health (`KubeStore::reachability`).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tortie_config::resources::{Key, Kind, Resource};

use crate::{AnyStore, Datastore, Only, Rejected, StoreError, WatchEvent};

/// First retry delay after an error; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often [`probe`] reads, and how long a read may take.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a follower reports.
#[derive(Debug)]
pub enum Follow {
    /// Every object of `kind` (replaces what the follower's user had).
    Listed {
        /// The kind.
        kind: Kind,
        /// Its objects.
        items: Vec<Resource>,
        /// Its records that could not be read (left out of `items`).
        rejected: Vec<Rejected>,
    },
    /// One change.
    Changed(Box<WatchEvent>),
    /// The store failed for `kind`; the follower retries.
    Trouble {
        /// The kind.
        kind: Kind,
        /// What failed.
        error: String,
    },
    /// A probe: `Err` while the store does not answer.
    Probe(Result<(), String>),
}

/// Follows `kind`, sending to `tx` (converted with `From`). Ends when the
/// receiver is gone; aborting the handle stops it.
pub fn follow<T>(store: AnyStore, kind: Kind, tx: mpsc::Sender<T>) -> JoinHandle<()>
where
    T: From<Follow> + Send + 'static,
{
    follow_only(store, kind, None, tx)
}

/// [`follow`], of the objects `only` admits (when given): listings hold
/// just those, and the watch skips the others' changes unread.
pub fn follow_only<T>(
    store: AnyStore,
    kind: Kind,
    only: Option<Only>,
    tx: mpsc::Sender<T>,
) -> JoinHandle<()>
where
    T: From<Follow> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        loop {
            let Err(error) = run_once(&store, kind, only.clone(), &tx, &mut backoff).await else {
                return; // the receiver is gone
            };
            tracing::warn!(%kind, %error, retry_in = ?backoff, "datastore");
            if tx
                .send(Follow::Trouble { kind, error }.into())
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// Reports whether the store answers. etcd: one small object read every
/// 2 s. Kubernetes: no request of its own (an agent makes list and watch
/// calls only); a report each time the store's watches lose or regain the
/// API server. The file backend is not probed: a local directory does not
/// go away, and its errors come through the followers (a probe would only
/// add lock traffic).
pub fn probe<T>(store: AnyStore, tx: mpsc::Sender<T>) -> JoinHandle<()>
where
    T: From<Follow> + Send + 'static,
{
    tokio::spawn(async move {
        let store = match store {
            AnyStore::File(_) => return,
            AnyStore::Kube(k) => return watch_health(k.reachability(), tx).await,
            etcd @ AnyStore::Etcd(_) => etcd,
        };
        let key = Key::new(Kind::BGPConfiguration, "default");
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            let result = match tokio::time::timeout(PROBE_TIMEOUT, store.get(&key)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            if tx.send(Follow::Probe(result).into()).await.is_err() {
                return;
            }
        }
    })
}

/// Reports each change of the watches' health until `tx` or the store
/// is gone.
async fn watch_health<T: From<Follow>>(
    mut health: tokio::sync::watch::Receiver<Option<String>>,
    tx: mpsc::Sender<T>,
) {
    while health.changed().await.is_ok() {
        let result = match health.borrow_and_update().clone() {
            None => Ok(()),
            Some(e) => Err(format!("the API server refuses the watches: {e}")),
        };
        if tx.send(Follow::Probe(result).into()).await.is_err() {
            return;
        }
    }
}

/// One list + watch. `Ok` only when the receiver is gone.
async fn run_once<T: From<Follow>>(
    store: &AnyStore,
    kind: Kind,
    mut only: Option<Only>,
    tx: &mpsc::Sender<T>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let listing = store.list(kind).await.map_err(|e| e.to_string())?;
    let revision = listing.revision;
    let mut items: Vec<Resource> = listing.items.into_iter().map(|v| v.resource).collect();
    if let Some(o) = only.as_mut() {
        items = o.listed(items);
    }
    let rejected = listing.rejected;
    if tx
        .send(
            Follow::Listed {
                kind,
                items,
                rejected,
            }
            .into(),
        )
        .await
        .is_err()
    {
        return Ok(());
    }
    *backoff = MIN_BACKOFF;
    let watch = match only {
        Some(o) => store.watch_only(kind, revision, o).await,
        None => store.watch(kind, revision).await,
    };
    let mut watch = watch.map_err(|e| e.to_string())?;
    loop {
        match watch.next().await {
            Some(Ok(event)) => {
                if tx
                    .send(Follow::Changed(Box::new(event)).into())
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            // The user's file does not load: reported by the relist, which
            // fails with the same error until the file is fixed and then
            // lists the good objects.
            Some(Err(e @ StoreError::UserFile(_))) => return Err(e.to_string()),
            Some(Err(e)) => return Err(format!("watch: {e}; listing again")),
            None => return Err("watch ended; listing again".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileStore;

    #[tokio::test]
    async fn follow_only_lists_and_watches_what_it_admits() {
        use tortie_config::resources::{BlockSpec, Object};
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::File(FileStore::open(dir.path()).unwrap());
        let block = |n: u8, node: &str| {
            let cidr = format!("10.244.{n}.0/26").parse().unwrap();
            Resource::Block(Object::new(
                BlockSpec::name_for(&cidr),
                BlockSpec::new(cidr, Some(format!("host:{node}"))),
            ))
        };
        store.create(block(1, "n1")).await.unwrap();
        let theirs = store.create(block(2, "n2")).await.unwrap();
        let (tx, mut rx) = mpsc::channel::<Follow>(16);
        let only = Only::containing("\"host:n1\"");
        let _f = follow_only(store.clone(), Kind::Block, Some(only), tx);
        let Some(Follow::Listed { items, .. }) = rx.recv().await else {
            panic!("first a listing");
        };
        assert_eq!(items, vec![block(1, "n1")], "only n1's block is listed");
        store.update(block(2, "n2"), theirs.revision).await.unwrap();
        store.create(block(3, "n1")).await.unwrap();
        match rx.recv().await.unwrap() {
            Follow::Changed(e) => assert_eq!(e.key.name, "10-244-3-0-26"),
            other => panic!("n2's change skipped, n1's new block next: {other:?}"),
        }
    }

    #[tokio::test]
    async fn lists_then_follows_and_reports_a_broken_user_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("resources.yaml");
        let pool = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/16\n";
        std::fs::write(&file, pool).unwrap();
        let store = AnyStore::File(FileStore::open(dir.path()).unwrap());
        let (tx, mut rx) = mpsc::channel::<Follow>(16);
        let _f = follow(store, Kind::IPPool, tx);
        let Some(Follow::Listed { items, .. }) = rx.recv().await else {
            panic!("first a listing");
        };
        assert_eq!(items.len(), 1);
        // Broken: reported (by the failing relist), then fixed: listed.
        std::fs::write(&file, pool.replace("/16", "/99")).unwrap();
        loop {
            match rx.recv().await.unwrap() {
                Follow::Trouble { error, .. } => {
                    assert!(error.contains("resources.yaml"), "{error}");
                    break;
                }
                Follow::Changed(_) | Follow::Listed { .. } | Follow::Probe(_) => {}
            }
        }
        std::fs::write(&file, pool.replace("10.0.0.0", "10.1.0.0")).unwrap();
        loop {
            match rx.recv().await.unwrap() {
                Follow::Listed { items, .. } => {
                    assert!(format!("{items:?}").contains("10.1.0.0/16"));
                    break;
                }
                Follow::Trouble { .. } | Follow::Changed(_) | Follow::Probe(_) => {}
            }
        }
    }
}
