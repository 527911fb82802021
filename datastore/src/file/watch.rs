//! Watching the file backend: inotify (`notify`, one instance per opened
//! store, shared by its watches) on the state directory and the user's
//! file's directory wakes the watchers; each then reads the journal for
//! entries newer than the last revision it sent. A periodic revision check
//! covers any missed inotify event (and no inotify at all).

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tortie_config::resources::Kind;

use super::{journal, FileStore};
use crate::{Revision, StoreError, Watch, WatchEvent};

/// How often the journal is checked without an inotify event.
const RECHECK: Duration = Duration::from_secs(1);
/// The same with inotify working: only a safety net then (an event lost
/// to a full inotify queue). Each agent of a lab polls with every watch,
/// so 100 agents at 1 s kept a core busy reading the journal.
const RECHECK_WITH_INOTIFY: Duration = Duration::from_secs(10);
/// Events buffered for a slow reader.
const BUFFER: usize = 256;

/// Starts a watch of `kind` after revision `from`.
pub(super) async fn start(
    store: FileStore,
    kind: Kind,
    from: Revision,
) -> Result<Watch, StoreError> {
    if kind.is_user_kind() {
        store.sync_user_file().await?;
    }
    // Fail now, not in the stream, when the history is gone.
    let (contents, _) = read(&store, None).await?;
    check_history(&contents, from)?;

    let (mut wake_rx, inotify) = store
        .hub
        .subscribe(store.state_dir(), store.user_file().parent());
    let recheck = if inotify {
        RECHECK_WITH_INOTIFY
    } else {
        RECHECK
    };

    let (tx, rx) = mpsc::channel(BUFFER);
    let task = tokio::spawn(async move {
        let mut last = from;
        let mut reported = None;
        let mut cursor = None;
        let mut user_seen = None;
        loop {
            match step(&store, kind, last, &mut cursor, &mut user_seen).await {
                Ok((events, seen)) => {
                    for event in events {
                        if tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    last = seen;
                    reported = None;
                }
                // A typo in the user's file: say so (once per distinct
                // error) and keep watching; the last good objects stay.
                Err(StoreError::UserFile(message)) => {
                    if reported.as_ref() != Some(&message) {
                        reported = Some(message.clone());
                        if tx.send(Err(StoreError::UserFile(message))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            tokio::select! {
                // Never resolves without inotify (the sender lives in the
                // store's hub): then the recheck polls.
                Ok(()) = wake_rx.changed() => {}
                _ = tokio::time::sleep(recheck) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Watch::new(rx, task))
}

/// Whether an inotify event can mean new data. Opens and read-only closes
/// cannot, and must not wake a watcher: every watcher opens the journal
/// to read it, so with many watchers on one directory (an agent per node
/// on a shared store, seven kinds each) each read would wake all the
/// others, which read again: a storm that kept 30 agents busy.
fn changes(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// The store's inotify instance, shared by all its watches: one per opened
/// store and process (the kernel allows a user 128 instances by default,
/// and a lab runs an agent per node, seven watches each, as one user).
/// Created at the first watch; without inotify (the limit reached, a
/// filesystem without it) the watches poll every [`RECHECK`]; with it
/// they check every [`RECHECK_WITH_INOTIFY`] in case an event was lost.
#[derive(Default)]
pub(super) struct Hub {
    state: std::sync::Mutex<Option<HubState>>,
}

struct HubState {
    tx: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    watcher: Option<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hub")
    }
}

impl Hub {
    /// A receiver that changes whenever something in `state` or `user`
    /// (the user file's directory) may have new data, and whether inotify
    /// works (else the receiver never changes).
    pub(super) fn subscribe(
        &self,
        state: &Path,
        user: Option<&Path>,
    ) -> (tokio::sync::watch::Receiver<u64>, bool) {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let hub = guard.get_or_insert_with(|| {
            let tx = std::sync::Arc::new(tokio::sync::watch::channel(0u64).0);
            let watcher = match inotify(state, user, tx.clone()) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "no inotify for the file datastore: its watches poll every {RECHECK:?}"
                    );
                    None
                }
            };
            HubState { tx, watcher }
        });
        (hub.tx.subscribe(), hub.watcher.is_some())
    }
}

/// An inotify watcher on `state` and `user` that bumps `tx` on changes.
fn inotify(
    state: &Path,
    user: Option<&Path>,
    tx: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
) -> Result<notify::RecommendedWatcher, StoreError> {
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.as_ref().is_ok_and(|e| !changes(&e.kind)) {
            return;
        }
        tx.send_modify(|n| *n = n.wrapping_add(1));
    })
    .map_err(|e| notify_error(state, e))?;
    watcher
        .watch(state, RecursiveMode::NonRecursive)
        .map_err(|e| notify_error(state, e))?;
    if let Some(dir) = user {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| notify_error(dir, e))?;
    }
    Ok(watcher)
}

/// The user file as `stat` sees it: (inode, length, modification time).
type FileStamp = (u64, u64, Option<std::time::SystemTime>);

/// One pass: ingest the user file if it changed since this watcher last
/// ingested it (a `stat`, no lock: many watchers poll), then the journal
/// entries of `kind` after `last`. Returns them and the newest revision
/// seen.
async fn step(
    store: &FileStore,
    kind: Kind,
    last: Revision,
    cursor: &mut Option<journal::Cursor>,
    user_seen: &mut Option<FileStamp>,
) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
    if kind.is_user_kind() {
        let now = std::fs::metadata(store.user_file()).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.ino(), m.len(), m.modified().ok())
        });
        if now.is_none() || now != *user_seen {
            store.sync_user_file().await?;
            *user_seen = now;
        }
    }
    let (contents, next) = read(store, *cursor).await?;
    if !contents.partial {
        check_history(&contents, last)?;
    }
    *cursor = next;
    let path = store.state_dir().join("journal.jsonl");
    let mut seen = last;
    let mut events = Vec::new();
    for entry in contents.entries.iter().filter(|e| e.rev > last) {
        seen = entry.rev;
        if entry.kind() == Some(kind) {
            events.push(entry.to_event(&path)?);
        }
    }
    Ok((events, seen))
}

/// Reads the journal (after `cursor`) on a blocking thread. No lock is
/// needed: it is only appended to or replaced by rename, and a torn last
/// line is left out.
async fn read(
    store: &FileStore,
    cursor: Option<journal::Cursor>,
) -> Result<(journal::Contents, Option<journal::Cursor>), StoreError> {
    let path = store.state_dir().join("journal.jsonl");
    tokio::task::spawn_blocking(move || journal::read_from(&path, cursor))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

/// History after `from` must still be in the journal.
fn check_history(contents: &journal::Contents, from: Revision) -> Result<(), StoreError> {
    if from < contents.compacted_through {
        return Err(StoreError::Compacted {
            requested: from,
            oldest: contents.compacted_through + 1,
        });
    }
    Ok(())
}

fn notify_error(path: &Path, e: notify::Error) -> StoreError {
    StoreError::io(path, std::io::Error::other(format!("inotify: {e}")))
}

#[cfg(test)]
mod tests {
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, EventKind, ModifyKind, RemoveKind,
        RenameMode,
    };

    use super::changes;

    #[test]
    fn reads_do_not_wake_watchers() {
        assert!(!changes(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!changes(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(changes(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(changes(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(changes(&EventKind::Create(CreateKind::File)));
        assert!(changes(&EventKind::Remove(RemoveKind::File)));
        assert!(changes(&EventKind::Any));
    }
}
