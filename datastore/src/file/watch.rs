//! Watching the file backend. One reader per opened store, shared by all
//! its watches, reads the journal when inotify says the journal file or
//! the user's file's directory changed (and every
//! [`RECHECK_WITH_INOTIFY`] in case an event was lost; every [`RECHECK`]
//! without inotify), ingests the user's file when it changed, and
//! publishes the entries of each kind to that kind's watches (the last
//! [`PUBLISHED`] publications are kept):
//! a write costs one read per process, not one per watch (seven per
//! agent, which on a lab of agents sharing one store kept every core busy
//! at each write). A watch reads the journal itself only to start, when
//! it missed publications (it was that far behind), or when the reader's
//! read failed (to report why).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use std::ffi::OsStr;

use futures::{FutureExt, StreamExt};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use tokio::sync::{broadcast, mpsc};
use tortie_config::resources::Kind;

use super::{journal, FileStore};
use crate::{Only, Revision, StoreError, Watch, WatchEvent};

/// How often the journal is read without inotify.
const RECHECK: Duration = Duration::from_secs(1);
/// The same with inotify working: only a safety net then (an event lost
/// to a full inotify queue).
const RECHECK_WITH_INOTIFY: Duration = Duration::from_secs(10);
/// Events buffered for a slow reader.
const BUFFER: usize = 256;
/// Reads of the store's reader kept for watches that are behind.
const PUBLISHED: usize = 64;

/// One read of the journal by the store's reader.
#[derive(Debug, Default)]
struct Batch {
    /// `entries` are every entry after this revision...
    after: Revision,
    /// ...up to this one.
    through: Revision,
    entries: Vec<journal::Entry>,
    /// The read failed: watches read for themselves (and report why).
    failed: bool,
    /// The user's file could not be ingested (a typo): why.
    user_error: Option<String>,
}

/// Starts a watch of `kind` after revision `from`.
pub(super) async fn start(
    store: FileStore,
    kind: Kind,
    from: Revision,
    mut only: Option<Only>,
) -> Result<Watch, StoreError> {
    if kind.is_user_kind() {
        store.sync_user_file().await?;
    }
    // Subscribed before the first read: whatever is written after that
    // read is in a later publication.
    let mut batches = store.hub.subscribe(&store, kind, from);
    // Fail now, not in the stream, when the history is gone.
    let mut cursor = None;
    let (first, mut last) = step(&store, kind, from, &mut cursor, &mut only).await?;
    let path = store.state_dir().join(journal::FILE);

    let (tx, rx) = mpsc::channel(BUFFER);
    let task = tokio::spawn(async move {
        for event in first {
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        let mut reported: Option<String> = None;
        let mut own_read = false;
        loop {
            if own_read {
                own_read = false;
                match step(&store, kind, last, &mut cursor, &mut only).await {
                    Ok((events, seen)) => {
                        for event in events {
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        last = seen;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            tokio::select! {
                got = batches.recv() => {
                    let batch = match got {
                        Ok(batch) => batch,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            own_read = true;
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            // The reader's runtime went away: a new reader.
                            batches = store.hub.subscribe(&store, kind, last);
                            own_read = true;
                            continue;
                        }
                    };
                    // A typo in the user's file: say so (once per distinct
                    // error) and keep watching; the last good objects stay.
                    if kind.is_user_kind() {
                        match &batch.user_error {
                            Some(m) if reported.as_ref() != Some(m) => {
                                reported = Some(m.clone());
                                if tx.send(Err(StoreError::UserFile(m.clone()))).await.is_err() {
                                    return;
                                }
                            }
                            Some(_) => {}
                            None => reported = None,
                        }
                    }
                    if batch.failed || batch.after > last {
                        own_read = true;
                        continue;
                    }
                    for entry in batch.entries.iter().filter(|e| e.rev > last) {
                        if entry.kind() != Some(kind) || !admitted(&mut only, entry) {
                            continue;
                        }
                        let event = entry.to_event(&path);
                        let fatal = event.is_err();
                        if tx.send(event).await.is_err() || fatal {
                            return;
                        }
                    }
                    last = last.max(batch.through);
                }
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Watch::new(rx, task))
}

/// What the reader's inotify instance asks the kernel for. The journal
/// file itself is watched, not its directory: the state directory also
/// holds the lock, the counter and the state files, each rewritten
/// (through a temporary file and a rename) at every write, and a watch of
/// the directory woke every reader for each of them (two to three wakes
/// per write). On the journal, a finished append is `CLOSE_WRITE`; a
/// compaction renaming a new journal over it changes the old one's link
/// count (`ATTRIB`), then deletes it (`DELETE_SELF`): the reader then
/// watches the new file. Only while there is no journal yet is the state
/// directory watched, for its creation. The user's file may be written in
/// place, renamed in, created or deleted.
const JOURNAL_MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF);
const STATE_MASK: WatchMask = WatchMask::CREATE.union(WatchMask::MOVED_TO);
const USER_MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE);

/// Which of the reader's watches an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The journal file.
    Journal,
    /// The state directory (watched while there is no journal).
    StateDir,
    /// The user file's directory.
    UserDir,
    /// A watch given up (the replaced journal's, the state directory's
    /// once the journal exists): its last events.
    Old,
}

/// What an inotify event means for the reader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Meaning {
    /// There may be new data: read.
    read: bool,
    /// The journal may be another file now (replaced, created, events
    /// lost): watch whatever is at its path.
    refollow: bool,
    /// The user's file may have changed.
    user: bool,
}

impl Meaning {
    /// Anything may have changed (events lost, inotify gone).
    const ALL: Meaning = Meaning {
        read: true,
        refollow: true,
        user: true,
    };
}

/// The meaning of an event with `mask` from `source` about the file `name`
/// of a watched directory (`user`: the user file's name).
fn meaning(mask: EventMask, source: Source, name: Option<&OsStr>, user: Option<&OsStr>) -> Meaning {
    let journal = || name == Some(OsStr::new(journal::FILE));
    if mask.contains(EventMask::Q_OVERFLOW) {
        return Meaning::ALL;
    }
    match source {
        Source::Journal => {
            let replaced = mask.intersects(
                EventMask::ATTRIB
                    | EventMask::DELETE_SELF
                    | EventMask::MOVE_SELF
                    | EventMask::IGNORED,
            );
            Meaning {
                read: replaced || mask.contains(EventMask::CLOSE_WRITE),
                refollow: replaced,
                user: false,
            }
        }
        Source::StateDir => Meaning {
            read: journal(),
            refollow: journal(),
            user: false,
        },
        Source::UserDir => {
            let ours = name.is_some() && name == user;
            Meaning {
                read: ours,
                refollow: false,
                user: ours,
            }
        }
        Source::Old => Meaning::default(),
    }
}

/// The reader's inotify instance and its watches.
struct Notifier {
    stream: inotify::EventStream<[u8; 4096]>,
    state: std::path::PathBuf,
    user: Option<std::ffi::OsString>,
    on_journal: Option<WatchDescriptor>,
    on_state: Option<WatchDescriptor>,
    on_user: Option<WatchDescriptor>,
}

impl Notifier {
    /// An inotify instance on the journal in `state` (or on `state` until
    /// the journal exists) and on the directory of `user_file`.
    fn new(state: &Path, user_file: &Path) -> Result<Notifier, StoreError> {
        let io = |path: &Path, e: std::io::Error| {
            StoreError::io(path, std::io::Error::other(format!("inotify: {e}")))
        };
        let inotify = Inotify::init().map_err(|e| io(state, e))?;
        let on_user = match user_file.parent() {
            Some(dir) => Some(
                inotify
                    .watches()
                    .add(dir, USER_MASK)
                    .map_err(|e| io(dir, e))?,
            ),
            None => None,
        };
        let stream = inotify
            .into_event_stream([0u8; 4096])
            .map_err(|e| io(state, e))?;
        let mut n = Notifier {
            stream,
            state: state.to_path_buf(),
            user: user_file.file_name().map(OsStr::to_os_string),
            on_journal: None,
            on_state: None,
            on_user,
        };
        n.follow_journal().map_err(|e| io(state, e))?;
        Ok(n)
    }

    /// Watches the file now at the journal's path; while there is none,
    /// the state directory for its creation.
    fn follow_journal(&mut self) -> std::io::Result<()> {
        let path = self.state.join(journal::FILE);
        let mut watches = self.stream.watches();
        loop {
            match watches.add(&path, JOURNAL_MASK) {
                Ok(wd) => {
                    self.on_journal = Some(wd);
                    if let Some(wd) = self.on_state.take() {
                        // Already gone if the directory went: nothing to do.
                        let _ = watches.remove(wd);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.on_journal = None;
                    if self.on_state.is_some() {
                        return Ok(());
                    }
                    self.on_state = Some(watches.add(&self.state, STATE_MASK)?);
                    // Created between the two calls: watch it after all.
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Where an event came from.
    fn source(&self, wd: &WatchDescriptor) -> Source {
        if self.on_journal.as_ref() == Some(wd) {
            Source::Journal
        } else if self.on_state.as_ref() == Some(wd) {
            Source::StateDir
        } else if self.on_user.as_ref() == Some(wd) {
            Source::UserDir
        } else {
            Source::Old
        }
    }
}

/// The store's reader and its inotify instance, shared by all its watches:
/// one per opened store and process (the kernel allows a user 128 inotify
/// instances by default, and a lab runs an agent per node, seven watches
/// each, as one user). Started by the first watch, in its runtime; it
/// stops when the last watch is gone. Without inotify (the limit reached,
/// a filesystem without it) the reader polls every [`RECHECK`].
#[derive(Default)]
pub(super) struct Hub {
    state: std::sync::Mutex<Option<HubState>>,
}

struct HubState {
    out: Arc<Outs>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hub")
    }
}

impl Hub {
    /// A receiver of the reader's publications, starting the reader (and
    /// its inotify instance) when none runs: it then reads first what came
    /// after `from`, the revision the watch starts from.
    fn subscribe(
        &self,
        store: &FileStore,
        kind: Kind,
        from: Revision,
    ) -> broadcast::Receiver<Arc<Batch>> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hub) = guard.as_ref().filter(|h| !h.task.is_finished()) {
            return hub.out.subscribe(kind);
        }
        let out = Arc::new(Outs::new());
        let rx = out.subscribe(kind);
        let events = match Notifier::new(store.state_dir(), store.user_file()) {
            Ok(events) => Some(events),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "no inotify for the file datastore: it is read every {RECHECK:?}"
                );
                None
            }
        };
        let task = tokio::spawn(reader(store.clone(), out.clone(), events, from));
        *guard = Some(HubState { out, task });
        rx
    }

    /// Called by the reader when no watch is left: whether it may stop
    /// (no watch came in meanwhile).
    fn retire(&self, out: &Arc<Outs>) -> bool {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if out.receiver_count() > 0 {
            return false;
        }
        if guard.as_ref().is_some_and(|h| Arc::ptr_eq(&h.out, out)) {
            *guard = None;
        }
        true
    }
}

/// The reader's channels, one per kind.
struct Outs {
    by_kind: Vec<(Kind, broadcast::Sender<Arc<Batch>>)>,
}

impl Outs {
    fn new() -> Outs {
        Outs {
            by_kind: Kind::ALL
                .into_iter()
                .map(|k| (k, broadcast::channel(PUBLISHED).0))
                .collect(),
        }
    }

    fn subscribe(&self, kind: Kind) -> broadcast::Receiver<Arc<Batch>> {
        self.by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("every kind has a channel")
            .1
            .subscribe()
    }

    fn receiver_count(&self) -> usize {
        self.by_kind.iter().map(|(_, tx)| tx.receiver_count()).sum()
    }
}

/// What the reader has published to one kind's channel.
#[derive(Clone, Copy, Debug, Default)]
struct Published {
    /// Every entry of the kind up to here was published.
    through: Revision,
}

/// The store's reader: reads at each wake and publishes each kind's
/// entries to that kind's watches, until no watch is left. Without
/// `events` (no inotify) it polls. The first read starts after revision
/// `from` (the first watch's), found by reading the journal back from its
/// end: every watch that subscribed before it has read that far itself.
async fn reader(store: FileStore, out: Arc<Outs>, mut events: Option<Notifier>, from: Revision) {
    let path = store.state_dir().join(journal::FILE);
    let mut held = None;
    // Whether the held journal and the user's file must be checked
    // (stat) before the next read: at the start, after the inotify events
    // that can mean another file, and at each recheck (and always without
    // inotify). Else a wake is an append to the held journal.
    let mut check = Check::ALL;
    let mut through: Revision = 0;
    let mut user_seen = None;
    let mut last_user_error = None;
    let mut published = vec![Published::default(); out.by_kind.len()];
    // The reader has read every entry after this revision (a compaction
    // that dropped entries it had not read starts it again).
    let mut continuous: Revision = 0;
    // Until a read succeeds: the reader starts after `from`.
    let mut first = true;
    loop {
        let before = through;
        let batch = read_batch(
            &store,
            &path,
            &mut held,
            check,
            first.then_some(from),
            &mut through,
            &mut user_seen,
        )
        .await;
        first &= batch.failed;
        let user_changed = batch.user_error != last_user_error;
        last_user_error = batch.user_error.clone();
        // A read of the whole journal after a compaction that dropped
        // entries the reader had not read yet.
        if !batch.failed && batch.after > before {
            continuous = batch.after;
        }
        for ((kind, tx), done) in out.by_kind.iter().zip(published.iter_mut()) {
            let entries: Vec<journal::Entry> = batch
                .entries
                .iter()
                .filter(|e| e.kind() == Some(*kind))
                .cloned()
                .collect();
            // Nothing new for this kind wakes none of its watches.
            if entries.is_empty() && !batch.failed && !(user_changed && kind.is_user_kind()) {
                continue;
            }
            // The watches may take this publication if they have seen
            // everything up to `after`: what this kind had published, when
            // the reader has read on without a break since.
            let after = done.through.max(continuous);
            // No receiver: the check below sees to it.
            let _ = tx.send(Arc::new(Batch {
                after,
                through: batch.through,
                entries,
                failed: batch.failed,
                user_error: batch.user_error.clone(),
            }));
            if !batch.failed {
                done.through = batch.through;
            }
        }
        if out.receiver_count() == 0 && store.hub.retire(&out) {
            return;
        }
        let recheck = match events {
            Some(_) => RECHECK_WITH_INOTIFY,
            None => RECHECK,
        };
        check = loop {
            tokio::select! {
                woken = next_wake(&mut events) => {
                    if woken.read {
                        break match events {
                            Some(_) => Check {
                                journal: woken.refollow,
                                user: woken.user,
                            },
                            // inotify failed: polling from now on.
                            None => Check::ALL,
                        };
                    }
                }
                _ = tokio::time::sleep(recheck) => break Check::ALL,
            }
        };
    }
}

/// Waits for an inotify event and takes the others already queued: what
/// they mean together. Without inotify never returns; once its stream
/// failed, drops it (the reader then polls) and asks for a read.
async fn next_wake(events: &mut Option<Notifier>) -> Meaning {
    let Some(n) = events.as_mut() else {
        return std::future::pending().await;
    };
    let mut woken = Meaning::default();
    let mut next = n.stream.next().await;
    loop {
        match next {
            Some(Ok(e)) => {
                let m = meaning(
                    e.mask,
                    n.source(&e.wd),
                    e.name.as_deref(),
                    n.user.as_deref(),
                );
                woken.read |= m.read;
                woken.refollow |= m.refollow;
                woken.user |= m.user;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "file datastore: inotify failed; polling every {RECHECK:?}");
                *events = None;
                return Meaning::ALL;
            }
            None => {
                *events = None;
                return Meaning::ALL;
            }
        }
        match n.stream.next().now_or_never() {
            Some(e) => next = e,
            None => break,
        }
    }
    if woken.refollow {
        if let Err(e) = n.follow_journal() {
            tracing::warn!(error = %e, "file datastore: cannot watch the journal; polling every {RECHECK:?}");
            *events = None;
            return Meaning::ALL;
        }
    }
    woken
}

/// What the reader checks with a `stat` before a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Check {
    /// Whether the held journal is still the file at its path.
    journal: bool,
    /// Whether the user's file changed.
    user: bool,
}

impl Check {
    const ALL: Check = Check {
        journal: true,
        user: true,
    };
}

/// The user file as `stat` sees it: (inode, length, modification time).
type FileStamp = (u64, u64, Option<std::time::SystemTime>);

/// The reader's pass: ingests the user file if it changed (or appeared,
/// or went away) since last ingested (a `stat`, no lock, when `check`
/// asks), then reads the journal (at `path`) after the held cursor; on
/// the first pass after revision `first`. `through` is the newest
/// revision read so far.
async fn read_batch(
    store: &FileStore,
    path: &Path,
    held: &mut Option<journal::Held>,
    check: Check,
    first: Option<Revision>,
    through: &mut Revision,
    user_seen: &mut Option<Option<FileStamp>>,
) -> Batch {
    let mut user_error = None;
    if check.user {
        let now = std::fs::metadata(store.user_file()).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.ino(), m.len(), m.modified().ok())
        });
        if *user_seen != Some(now) {
            match store.sync_user_file().await {
                Ok(_) => *user_seen = Some(now),
                Err(StoreError::UserFile(m)) => user_error = Some(m),
                Err(_) => {
                    return Batch {
                        failed: true,
                        ..Batch::default()
                    }
                }
            }
        }
    }
    // What was appended since the last read is a few hundred bytes: read
    // here from the held file, without handing over to a blocking thread
    // and back at every write. The first read, and one after a
    // compaction, open the journal on a blocking thread.
    let read = match held.take() {
        Some(mut h) if !check.journal || journal::same_file(path, h.cursor) => {
            h.read(path).map(|contents| (contents, Some(h)))
        }
        // The journal was replaced (compacted), or this is the first
        // read: after the revision read through, or the first watch's.
        h => open_from(store, h.map(|h| h.cursor), first.unwrap_or(*through)).await,
    };
    match read {
        Ok((contents, next)) => {
            let after = match contents.partial {
                true => *through,
                false => contents.compacted_through,
            };
            *held = next;
            *through = contents.entries.last().map_or(after, |e| e.rev.max(after));
            Batch {
                after,
                through: *through,
                entries: contents.entries,
                failed: false,
                user_error,
            }
        }
        Err(_) => {
            // Start over at the next pass (`held` is None).
            Batch {
                failed: true,
                user_error,
                ..Batch::default()
            }
        }
    }
}

/// A watch's own read: the journal entries of `kind` after `last`.
/// Returns them and the newest revision seen.
async fn step(
    store: &FileStore,
    kind: Kind,
    last: Revision,
    cursor: &mut Option<journal::Cursor>,
    only: &mut Option<Only>,
) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
    let (contents, next) = read(store, *cursor, last).await?;
    if !contents.partial {
        check_history(&contents, last)?;
    }
    *cursor = next;
    let path = store.state_dir().join(journal::FILE);
    let mut seen = last;
    let mut events = Vec::new();
    for entry in contents.entries.iter().filter(|e| e.rev > last) {
        seen = entry.rev;
        if entry.kind() == Some(kind) && admitted(only, entry) {
            events.push(entry.to_event(&path)?);
        }
    }
    Ok((events, seen))
}

/// Whether the watch delivers `entry` (of its kind): always without a
/// filter; else as the filter says, from the entry's text, unparsed.
fn admitted(only: &mut Option<Only>, entry: &journal::Entry) -> bool {
    only.as_mut()
        .is_none_or(|o| o.admits(&entry.name, entry.object.as_ref().map(|r| r.get())))
}

/// Reads the journal (after `cursor`) on a blocking thread. No lock is
/// needed: it is only appended to or replaced by rename, and a torn last
/// line is left out.
async fn read(
    store: &FileStore,
    cursor: Option<journal::Cursor>,
    after: Revision,
) -> Result<(journal::Contents, Option<journal::Cursor>), StoreError> {
    let (contents, held) = open_from(store, cursor, after).await?;
    Ok((contents, held.map(|h| h.cursor)))
}

/// [`read`], keeping the journal open for the store's reader.
async fn open_from(
    store: &FileStore,
    cursor: Option<journal::Cursor>,
    after: Revision,
) -> Result<(journal::Contents, Option<journal::Held>), StoreError> {
    let path = store.state_dir().join(journal::FILE);
    tokio::task::spawn_blocking(move || journal::open_from(&path, cursor, after))
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

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use inotify::EventMask;

    use super::{meaning, Meaning, Source};

    const READ: Meaning = Meaning {
        read: true,
        refollow: false,
        user: false,
    };
    const USER: Meaning = Meaning {
        read: true,
        refollow: false,
        user: true,
    };
    const REFOLLOW: Meaning = Meaning {
        read: true,
        refollow: true,
        user: false,
    };
    const NOTHING: Meaning = Meaning {
        read: false,
        refollow: false,
        user: false,
    };

    fn of(mask: EventMask, source: Source, name: Option<&str>) -> Meaning {
        meaning(
            mask,
            source,
            name.map(OsStr::new),
            Some(OsStr::new("resources.yaml")),
        )
    }

    #[test]
    fn appends_and_the_user_file_wake_the_reader() {
        assert_eq!(of(EventMask::CLOSE_WRITE, Source::Journal, None), READ);
        for mask in [
            EventMask::CLOSE_WRITE,
            EventMask::MOVED_TO,
            EventMask::CREATE,
            EventMask::DELETE,
        ] {
            assert_eq!(of(mask, Source::UserDir, Some("resources.yaml")), USER);
        }
        // Other files beside the user's do not.
        assert_eq!(
            of(EventMask::CLOSE_WRITE, Source::UserDir, Some("notes.txt")),
            NOTHING
        );
    }

    #[test]
    fn a_replaced_or_new_journal_is_watched_again() {
        // A compaction renames a new journal over the old one: the old
        // file's link count changes, then it is deleted.
        for mask in [
            EventMask::ATTRIB,
            EventMask::DELETE_SELF,
            EventMask::MOVE_SELF,
            EventMask::IGNORED,
        ] {
            assert_eq!(of(mask, Source::Journal, None), REFOLLOW, "{mask:?}");
        }
        // No journal yet: its creation in the state directory.
        assert_eq!(
            of(EventMask::CREATE, Source::StateDir, Some("journal.jsonl")),
            REFOLLOW
        );
        assert_eq!(
            of(EventMask::MOVED_TO, Source::StateDir, Some("journal.jsonl")),
            REFOLLOW
        );
        // Lost events may mean anything.
        assert_eq!(of(EventMask::Q_OVERFLOW, Source::Old, None), Meaning::ALL);
    }

    #[test]
    fn the_other_state_files_and_old_watches_wake_nothing() {
        // Written at every write, but only seen while there is no journal.
        for file in [
            "lock",
            "revision",
            "Block.json",
            "Block.json.tmp",
            "ingested.yaml",
        ] {
            for mask in [EventMask::CREATE, EventMask::MOVED_TO] {
                assert_eq!(of(mask, Source::StateDir, Some(file)), NOTHING, "{file}");
            }
        }
        // The last events of a replaced journal's watch.
        assert_eq!(of(EventMask::DELETE_SELF, Source::Old, None), NOTHING);
        assert_eq!(of(EventMask::IGNORED, Source::Old, None), NOTHING);
    }
}
