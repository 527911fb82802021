//! Watching one kind through the API server, resuming where it left off.
//!
//! The stream of the API server's events goes through a [`Translate`]:
//! for custom resources one event is one change (filtered by [`Only`] when
//! asked); for Nodes (`node.rs`) an event is a change only when what we
//! read of the Node changed (the kubelet updates its Node all the time).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{Api, DynamicObject, WatchEvent as KubeEvent, WatchParams};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tortie_config::resources::{Key, Kind};

use super::{kinds, kube_error};
use crate::{Action, Only, Revision, StoreError, Watch, WatchEvent};

/// Changes waiting for the watcher.
const QUEUE: usize = 256;
/// First and longest pause before opening the stream again after an error.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// The server ends a watch after this long (it picks up to twice as much
/// when not told); we open the next one from the last revision seen.
const WATCH_SECONDS: u32 = 290;

type Events<K> = std::pin::Pin<Box<dyn Stream<Item = kube::Result<KubeEvent<K>>> + Send>>;

/// What an event of the API server is to the watcher.
pub(super) enum Seen {
    /// Changes to deliver, of one revision (one, or an endpoint replaced
    /// by another: a deletion and a creation).
    Changes(Vec<WatchEvent>),
    /// Nothing the watcher wants; the stream is past this revision.
    Skip(Revision),
    /// An object that cannot be read: the watch ends with it.
    Fail(StoreError),
}

/// Turns the API server's events of `K` into changes.
pub(super) trait Translate<K>: Send + 'static {
    fn translate(&mut self, action: Action, object: K) -> Seen;
}

/// Whether the watches of one store reach the API server: `Some(error)`
/// after a broken stream could not be opened again, `None` again once
/// one opens. Shared by every watch of a `KubeStore`.
#[derive(Clone)]
pub(super) struct Health(Arc<tokio::sync::watch::Sender<Option<String>>>);

impl Default for Health {
    fn default() -> Health {
        Health(Arc::new(tokio::sync::watch::Sender::new(None)))
    }
}

impl Health {
    pub(super) fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.0.subscribe()
    }

    fn opened(&self) {
        self.0.send_if_modified(|h| h.take().is_some());
    }

    fn refused(&self, error: &StoreError) {
        let error = error.to_string();
        self.0.send_if_modified(|h| {
            let first = h.is_none();
            *h = Some(error);
            first
        });
    }
}

/// Custom resources: every event is a change, less what `only` skips.
pub(super) struct Objects {
    pub kind: Kind,
    pub only: Option<Only>,
}

/// Starts a watch after `after`, delivering `first` before the stream.
pub(super) async fn start<K, T>(
    api: Api<K>,
    kind: Kind,
    after: Revision,
    first: Vec<WatchEvent>,
    translate: T,
    health: Health,
) -> Result<Watch, StoreError>
where
    K: Clone + Debug + DeserializeOwned + Send + 'static,
    T: Translate<K>,
{
    start_selected(api, kind, after, first, translate, None, health).await
}

/// [`start`] of the objects a label selector picks (the API server sends
/// an object that stops matching as deleted).
pub(super) async fn start_selected<K, T>(
    api: Api<K>,
    kind: Kind,
    after: Revision,
    first: Vec<WatchEvent>,
    translate: T,
    selector: Option<&'static str>,
    health: Health,
) -> Result<Watch, StoreError>
where
    K: Clone + Debug + DeserializeOwned + Send + 'static,
    T: Translate<K>,
{
    let source = Source {
        api,
        kind,
        selector,
        health,
    };
    // Opened here, so that a watch that cannot start fails the call.
    let events = source.open(after).await?;
    source.health.opened();
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(follow(source, after, events, first, translate, tx));
    Ok(Watch::new(rx, task))
}

/// What a watch follows: the objects of `api` (of our `kind`) that
/// `selector` picks.
struct Source<K> {
    api: Api<K>,
    kind: Kind,
    selector: Option<&'static str>,
    health: Health,
}

/// The changes of a listing, as a watch from 0 delivers them: creations in
/// revision order.
pub(super) fn as_creations(mut items: Vec<crate::Versioned>) -> Vec<WatchEvent> {
    items.sort_by_key(|v| v.revision);
    items
        .into_iter()
        .map(|v| WatchEvent {
            revision: v.revision,
            action: Action::Created,
            key: v.resource.key(),
            resource: Some(v.resource),
        })
        .collect()
}

impl<K> Source<K>
where
    K: Clone + Debug + DeserializeOwned + Send + 'static,
{
    async fn open(&self, after: Revision) -> Result<Events<K>, StoreError> {
        let mut params = WatchParams::default().timeout(WATCH_SECONDS);
        if let Some(s) = self.selector {
            params = params.labels(s);
        }
        let stream = self
            .api
            .watch(&params, &after.to_string())
            .await
            .map_err(|e| gone_or(e, self.kind, after))?;
        Ok(stream.boxed())
    }
}

/// Delivers `first`, then every change after `after`, opening the stream
/// again when it ends, until the watcher goes away or history is gone.
async fn follow<K, T>(
    source: Source<K>,
    mut after: Revision,
    mut events: Events<K>,
    first: Vec<WatchEvent>,
    mut translate: T,
    tx: mpsc::Sender<Result<WatchEvent, StoreError>>,
) where
    K: Clone + Debug + DeserializeOwned + Send + 'static,
    T: Translate<K>,
{
    for e in first {
        if tx.send(Ok(e)).await.is_err() {
            return;
        }
    }
    let mut pause = BACKOFF.0;
    loop {
        while let Some(item) = events.next().await {
            let seen = match item {
                Ok(KubeEvent::Added(o)) => translate.translate(Action::Created, o),
                Ok(KubeEvent::Modified(o)) => translate.translate(Action::Updated, o),
                Ok(KubeEvent::Deleted(o)) => translate.translate(Action::Deleted, o),
                Ok(KubeEvent::Bookmark(_)) => continue,
                Ok(KubeEvent::Error(status)) if status.code == 410 => Seen::Fail(compacted(after)),
                Ok(KubeEvent::Error(status)) => {
                    tracing::warn!(kind = %source.kind, code = status.code, "watch: {}", status.message);
                    break;
                }
                Err(e) => {
                    tracing::debug!(kind = %source.kind, error = %e, "watch stream broke: resuming");
                    break;
                }
            };
            match seen {
                Seen::Skip(revision) => after = after.max(revision),
                // A replayed change the watcher already has.
                Seen::Changes(es) if es.first().is_none_or(|e| e.revision <= after) => {}
                Seen::Changes(es) => {
                    for e in es {
                        after = e.revision;
                        if tx.send(Ok(e)).await.is_err() {
                            return;
                        }
                    }
                }
                Seen::Fail(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            pause = BACKOFF.0;
        }
        // The stream ended: open the next one after what was delivered.
        loop {
            if tx.is_closed() {
                return;
            }
            match source.open(after).await {
                Ok(next) => {
                    source.health.opened();
                    events = next;
                    break;
                }
                Err(e @ StoreError::Compacted { .. }) => {
                    source.health.opened();
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(e) => {
                    source.health.refused(&e);
                    tracing::debug!(kind = %source.kind, error = %e, "watch: cannot reopen yet");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(BACKOFF.1);
                }
            }
        }
    }
}

impl Translate<DynamicObject> for Objects {
    fn translate(&mut self, action: Action, object: DynamicObject) -> Seen {
        let name = object.metadata.name.clone().unwrap_or_default();
        let revision = match kinds::revision_of(&object.metadata, self.kind, &name) {
            Ok(r) => r,
            Err(e) => return Seen::Fail(e),
        };
        if let Some(only) = self.only.as_mut() {
            // Decided on the object's text, before it is read.
            let text = match action {
                Action::Deleted => None,
                _ => Some(serde_json::to_string(&object.data).unwrap_or_default()),
            };
            if !only.admits(&name, text.as_deref()) {
                return Seen::Skip(revision);
            }
        }
        let key = Key::new(self.kind, name);
        if action == Action::Deleted {
            // The object as it was, with the revision of its deletion.
            return Seen::Changes(vec![WatchEvent {
                revision,
                action,
                key,
                resource: None,
            }]);
        }
        match kinds::from_object(self.kind, object) {
            Ok(v) => Seen::Changes(vec![WatchEvent {
                revision: v.revision,
                action,
                key,
                resource: Some(v.resource),
            }]),
            Err(e) => Seen::Fail(e),
        }
    }
}

/// History the server no longer keeps (410 Gone).
fn compacted(requested: Revision) -> StoreError {
    StoreError::Compacted {
        requested,
        // The server does not say; the next listing's revision is what to
        // watch from.
        oldest: requested + 1,
    }
}

fn gone_or(e: kube::Error, kind: Kind, after: Revision) -> StoreError {
    match e {
        kube::Error::Api(s) if s.code == 410 => compacted(after),
        e => kube_error(format!("watch {kind} from {after}"), e),
    }
}
