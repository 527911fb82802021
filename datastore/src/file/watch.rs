//! Watching the file backend: inotify (`notify`) on the state directory and
//! the user's file wakes the watcher; it then reads the journal for
//! entries newer than the last revision it sent. A periodic revision check
//! covers any missed inotify event (and filesystems without inotify).

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tortie_config::resources::Kind;

use super::{journal, FileStore};
use crate::{Revision, StoreError, Watch, WatchEvent};

/// How often the journal is checked without an inotify event.
const RECHECK: Duration = Duration::from_secs(1);
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

    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.as_ref().is_ok_and(|e| !changes(&e.kind)) {
            return;
        }
        // Full means a wake-up is already pending: nothing is lost.
        let _ = wake_tx.try_send(());
    })
    .map_err(|e| notify_error(store.state_dir(), e))?;
    watcher
        .watch(store.state_dir(), RecursiveMode::NonRecursive)
        .map_err(|e| notify_error(store.state_dir(), e))?;
    if kind.is_user_kind() {
        if let Some(dir) = store.user_file().parent() {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| notify_error(dir, e))?;
        }
    }

    let (tx, rx) = mpsc::channel(BUFFER);
    let task = tokio::spawn(async move {
        // Keep the inotify watcher alive as long as the task.
        let _watcher = watcher;
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
                _ = wake_rx.recv() => {}
                _ = tokio::time::sleep(RECHECK) => {}
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
