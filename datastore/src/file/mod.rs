//! The file backend: a directory, by default `/var/lib/tortie/`.
//!
//! ```text
//! /var/lib/tortie/
//!   resources.yaml          the user's resources (multi-document); read-only to us
//!   state/
//!     lock                  flock(2) target: every operation holds it exclusively
//!     journal.jsonl         write-ahead journal: revisions and watch history
//!     revision              the last revision fully applied (a counter)
//!     blocks.json affinities.json handles.json endpoints.json nodes.json
//!                           what the system writes, one file per kind
//!                           (Nodes: registered by tortie-node, changed by users
//!                           through the interface)
//!     bgpconfigurations.json bgppeers.json bgpfilters.json ippools.json
//!                           resources.yaml as last ingested, with revisions
//!     ingested.yaml         the text of resources.yaml last ingested
//! ```
//!
//! A write, under the lock: append the change to the journal (fsync), then
//! replace the kind's file atomically, then the revision counter. A crash
//! between them is repaired by the next operation: journal entries newer
//! than the counter are replayed into the files that lack them.
//!
//! User kinds: when `resources.yaml` differs from `ingested.yaml`, the
//! next operation on a user kind (or a watch of one) diffs the two,
//! journals each change with a new revision, and updates the files, so
//! edits to the file become ordinary revisions and watch events.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use tortie_config::resources::{load_documents, Key, Kind, Resource};

use crate::{
    check_batch, Action, Datastore, Listing, Only, Op, Revision, StoreError, Versioned, Watch,
};

mod journal;
mod state;
mod watch;

use state::{StateFile, Stored};

/// Pause between the reads that must agree before a changed
/// `resources.yaml` is taken.
const STABLE_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// At most this many pauses; then the last read is taken.
const STABLE_TRIES: usize = 20;

/// The default directory.
pub const DEFAULT_DIR: &str = "/var/lib/tortie";
/// The user's file in the directory.
pub const USER_FILE: &str = "resources.yaml";
/// The state subdirectory.
pub const STATE_DIR: &str = "state";

/// The file backend; cheap to clone (all clones share the directory).
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Paths>,
    /// The one inotify instance that wakes every watch of this store (and
    /// its clones): see `watch::Hub`.
    hub: Arc<watch::Hub>,
}

/// Where everything is.
#[derive(Clone, Debug)]
struct Paths {
    user: PathBuf,
    state: PathBuf,
    lock: PathBuf,
    journal: PathBuf,
    counter: PathBuf,
    ingested: PathBuf,
    /// Compact the journal past this many bytes...
    max_bytes: u64,
    /// ...keeping about this many bytes of the newest entries.
    keep_bytes: u64,
}

/// One operation under the lock.
struct Txn<'a> {
    paths: &'a Paths,
    _lock: Flock<File>,
    revision: Revision,
    files: BTreeMap<Kind, StateFile>,
    pending: Vec<journal::Entry>,
    journal_len: u64,
}

// ===== impl FileStore =====

impl FileStore {
    /// Opens (creating `state/` if needed) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref();
        let state = dir.join(STATE_DIR);
        fs::create_dir_all(&state).map_err(|e| StoreError::io(&state, e))?;
        Ok(FileStore {
            inner: Arc::new(Paths {
                user: dir.join(USER_FILE),
                lock: state.join("lock"),
                journal: state.join(journal::FILE),
                counter: state.join("revision"),
                ingested: state.join("ingested.yaml"),
                state,
                max_bytes: journal::MAX_BYTES,
                keep_bytes: journal::KEEP,
            }),
            hub: Arc::default(),
        })
    }

    /// Sets how much watch history the journal keeps: past `max_bytes`
    /// it is cut to about the newest `keep_bytes` of entries (defaults
    /// 4 MiB and 1 MiB). Watches from before the cut get
    /// [`StoreError::Compacted`].
    pub fn with_journal_limits(mut self, max_bytes: u64, keep_bytes: u64) -> FileStore {
        let mut paths = (*self.inner).clone();
        paths.max_bytes = max_bytes.max(1);
        paths.keep_bytes = keep_bytes.clamp(1, paths.max_bytes);
        self.inner = Arc::new(paths);
        self
    }

    /// The user's resources file.
    pub fn user_file(&self) -> &Path {
        &self.inner.user
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.inner.state
    }

    /// Runs `f` under the lock on a blocking thread, then commits.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Txn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut txn = Txn::begin(&inner)?;
            let out = f(&mut txn)?;
            txn.commit()?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// A create or update: the object with its new revision.
    async fn one(&self, op: Op) -> Result<Versioned, StoreError> {
        let mut ops = check_batch(vec![op])?;
        self.run(move |txn| {
            let op = ops.pop().expect("one op");
            let key = op.key();
            txn.op(op)?.ok_or(StoreError::NotFound { key })
        })
        .await
    }

    /// Ingests `resources.yaml` if it changed; returns the revision.
    pub(crate) async fn sync_user_file(&self) -> Result<Revision, StoreError> {
        self.run(|txn| {
            txn.ingest()?;
            Ok(txn.revision)
        })
        .await
    }
}

impl Datastore for FileStore {
    async fn get(&self, key: &Key) -> Result<Option<Versioned>, StoreError> {
        let key = key.clone();
        self.run(move |txn| {
            txn.ingest_if_user(key.kind)?;
            Ok(txn
                .file(key.kind)?
                .objects
                .get(&key.name)
                .map(Stored::versioned))
        })
        .await
    }

    async fn list(&self, kind: Kind) -> Result<Listing, StoreError> {
        self.run(move |txn| {
            txn.ingest_if_user(kind)?;
            let items = txn
                .file(kind)?
                .objects
                .values()
                .map(Stored::versioned)
                .collect();
            Ok(Listing {
                items,
                revision: txn.revision,
                // The state files are checked whole when read.
                rejected: Vec::new(),
            })
        })
        .await
    }

    async fn create(&self, resource: Resource) -> Result<Versioned, StoreError> {
        self.one(Op::Create(resource)).await
    }

    async fn update(
        &self,
        resource: Resource,
        revision: Revision,
    ) -> Result<Versioned, StoreError> {
        self.one(Op::Update(resource, revision)).await
    }

    async fn delete(&self, key: &Key, revision: Option<Revision>) -> Result<Revision, StoreError> {
        self.apply(vec![Op::Delete(key.clone(), revision)]).await
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        let ops = check_batch(ops)?;
        if ops.is_empty() {
            return Ok(0);
        }
        self.run(move |txn| {
            for op in ops {
                txn.op(op)?;
            }
            Ok(txn.revision)
        })
        .await
    }

    async fn watch(&self, kind: Kind, from: Revision) -> Result<Watch, StoreError> {
        watch::start(self.clone(), kind, from, None).await
    }

    async fn watch_only(
        &self,
        kind: Kind,
        from: Revision,
        only: Only,
    ) -> Result<Watch, StoreError> {
        watch::start(self.clone(), kind, from, Some(only)).await
    }
}

// ===== impl Txn =====

impl<'a> Txn<'a> {
    /// Takes the lock, cuts a torn journal line, replays journal entries
    /// the files lack (a crash between the writes).
    fn begin(paths: &'a Paths) -> Result<Txn<'a>, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&paths.lock)
            .map_err(|e| StoreError::io(&paths.lock, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| StoreError::io(&paths.lock, std::io::Error::from(errno)))?;
        let tail = journal::tail(&paths.journal)?;
        if tail.valid_len < tail.len {
            tracing::warn!(file = %paths.journal.display(), "cutting a torn journal line left by a crash");
            journal::truncate(&paths.journal, tail.valid_len)?;
        }
        let counter = read_counter(&paths.counter)?;
        let mut txn = Txn {
            paths,
            _lock: lock,
            revision: counter.max(tail.last),
            files: BTreeMap::new(),
            pending: Vec::new(),
            journal_len: tail.valid_len,
        };
        if tail.last > counter {
            let contents = journal::read(&paths.journal)?;
            txn.replay(&contents, counter)?;
        }
        Ok(txn)
    }

    /// Applies journal entries after `counter` to the files that lack them.
    fn replay(
        &mut self,
        contents: &journal::Contents,
        counter: Revision,
    ) -> Result<(), StoreError> {
        for entry in contents.entries.iter().filter(|e| e.rev > counter) {
            let event = entry.to_event(&self.paths.journal)?;
            let file = self.file(event.key.kind)?;
            if file.applied >= entry.rev {
                continue;
            }
            tracing::warn!(revision = entry.rev, key = %event.key, "replaying a journal entry a crash left unapplied");
            match event.resource {
                Some(resource) => {
                    file.objects.insert(
                        event.key.name.clone(),
                        Stored {
                            revision: entry.rev,
                            resource,
                        },
                    );
                }
                None => {
                    file.objects.remove(&event.key.name);
                }
            }
            file.applied = entry.rev;
            file.dirty = true;
        }
        for file in self.files.values_mut() {
            file.write()?;
        }
        write_counter(&self.paths.counter, self.revision)
    }

    /// The state file of `kind`, read once per operation.
    fn file(&mut self, kind: Kind) -> Result<&mut StateFile, StoreError> {
        let dir = &self.paths.state;
        Ok(match self.files.entry(kind) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(StateFile::read(dir, kind)?),
        })
    }

    /// User kinds are read-only here.
    fn writable(&self, key: &Key) -> Result<(), StoreError> {
        if key.kind.is_user_kind() {
            return Err(StoreError::ReadOnly {
                key: key.clone(),
                file: self.paths.user.clone(),
            });
        }
        Ok(())
    }

    /// Compare-and-swap check: the object exists at `revision`.
    fn check(&mut self, key: &Key, revision: Revision) -> Result<(), StoreError> {
        match self.file(key.kind)?.objects.get(&key.name) {
            None => Err(StoreError::NotFound { key: key.clone() }),
            Some(s) if s.revision != revision => Err(StoreError::Conflict {
                key: key.clone(),
                expected: revision,
                current: Some(s.revision),
            }),
            Some(_) => Ok(()),
        }
    }

    /// Records a change with the next revision (applied to the file in
    /// memory; written by `commit`).
    fn put(
        &mut self,
        key: &Key,
        action: Action,
        resource: Option<Resource>,
    ) -> Result<Option<Versioned>, StoreError> {
        self.file(key.kind)?;
        self.revision += 1;
        let rev = self.revision;
        self.pending
            .push(journal::Entry::new(rev, key, action, resource.as_ref()));
        let file = self.file(key.kind)?;
        file.applied = rev;
        file.dirty = true;
        match resource {
            Some(resource) => {
                let stored = Stored {
                    revision: rev,
                    resource,
                };
                let out = stored.versioned();
                file.objects.insert(key.name.clone(), stored);
                Ok(Some(out))
            }
            None => {
                file.objects.remove(&key.name);
                Ok(None)
            }
        }
    }

    /// One write, checked as its op says (nothing is written before
    /// `commit`, so an error here leaves the store as it was). Returns the
    /// object with its new revision, `None` for a deletion (or a `Remove`
    /// of nothing).
    fn op(&mut self, op: Op) -> Result<Option<Versioned>, StoreError> {
        let key = op.key();
        self.writable(&key)?;
        let current = self
            .file(key.kind)?
            .objects
            .get(&key.name)
            .map(|s| s.revision);
        match (op, current) {
            (Op::Create(_), Some(revision)) => Err(StoreError::AlreadyExists { key, revision }),
            (Op::Create(resource), None) => {
                self.put_object(&key, Action::Created, resource).map(Some)
            }
            (Op::Update(resource, revision), _) => {
                self.check(&key, revision)?;
                self.put_object(&key, Action::Updated, resource).map(Some)
            }
            (Op::Put(resource), Some(_)) => {
                self.put_object(&key, Action::Updated, resource).map(Some)
            }
            (Op::Put(resource), None) => self.put_object(&key, Action::Created, resource).map(Some),
            (Op::Delete(_, Some(revision)), _) => {
                self.check(&key, revision)?;
                self.put(&key, Action::Deleted, None)
            }
            (Op::Delete(..), None) => Err(StoreError::NotFound { key }),
            (Op::Delete(_, None) | Op::Remove(_), Some(_)) => self.put(&key, Action::Deleted, None),
            (Op::Remove(_), None) => Ok(None),
        }
    }

    /// `put` of an object: returns it with its new revision.
    fn put_object(
        &mut self,
        key: &Key,
        action: Action,
        resource: Resource,
    ) -> Result<Versioned, StoreError> {
        let revision = self.revision + 1;
        Ok(self
            .put(key, action, Some(resource.clone()))?
            .unwrap_or(Versioned { resource, revision }))
    }

    /// Ingests the user file when `kind` is a user kind.
    fn ingest_if_user(&mut self, kind: Kind) -> Result<(), StoreError> {
        if kind.is_user_kind() {
            self.ingest()?;
        }
        Ok(())
    }

    /// If `resources.yaml` changed since last ingested: load it, and
    /// journal every object that appeared, changed or went away.
    fn ingest(&mut self) -> Result<(), StoreError> {
        let before = read_optional(&self.paths.ingested)?;
        let mut text = read_optional(&self.paths.user)?;
        if text == before && self.paths.ingested.exists() {
            return Ok(());
        }
        // The file changed. An editor that truncates and rewrites in place
        // (not temp file + rename) shows a half-written file for a moment;
        // taking that would delete objects. Wait until two reads agree.
        for _ in 0..STABLE_TRIES {
            std::thread::sleep(STABLE_WAIT);
            let again = read_optional(&self.paths.user)?;
            if again == text {
                break;
            }
            text = again;
        }
        let loaded =
            load_documents(&text).map_err(|e| StoreError::UserFile(e.in_file(&self.paths.user)))?;
        for w in &loaded.warnings {
            tracing::warn!(file = %self.paths.user.display(), "{w}");
        }
        let mut wanted: BTreeMap<Key, Resource> = BTreeMap::new();
        for r in loaded.resources {
            wanted.insert(r.key(), r);
        }
        for kind in Kind::ALL.into_iter().filter(|k| k.is_user_kind()) {
            let current: Vec<(String, Resource)> = self
                .file(kind)?
                .objects
                .iter()
                .map(|(n, s)| (n.clone(), s.resource.clone()))
                .collect();
            for (name, old) in current {
                let key = Key::new(kind, name);
                match wanted.remove(&key) {
                    None => {
                        self.put(&key, Action::Deleted, None)?;
                    }
                    Some(new) if new != old => {
                        self.put(&key, Action::Updated, Some(new))?;
                    }
                    Some(_) => {}
                }
            }
        }
        // What is left is new.
        for (key, resource) in wanted {
            if key.kind == Kind::Node {
                return Err(StoreError::UserFile(format!(
                    "{}: {key}: Node objects are registered by tortie-node, not read \
                     from this file; change one with `tortiectl apply -f`",
                    self.paths.user.display(),
                )));
            }
            if !key.kind.is_user_kind() {
                return Err(StoreError::UserFile(format!(
                    "{}: {key}: {} objects are written by the system, not in this file",
                    self.paths.user.display(),
                    key.kind
                )));
            }
            self.put(&key, Action::Created, Some(resource))?;
        }
        self.commit()?;
        state::write_atomic(&self.paths.ingested, text.as_bytes())
    }

    /// Writes what changed: journal first (the write-ahead record), then
    /// the state files, then the counter.
    fn commit(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.journal_len += journal::append(&self.paths.journal, &mut self.pending)?;
        self.pending.clear();
        for file in self.files.values_mut() {
            file.write()?;
        }
        write_counter(&self.paths.counter, self.revision)?;
        if self.journal_len > self.paths.max_bytes {
            let contents = journal::read(&self.paths.journal)?;
            self.journal_len =
                journal::compact(&self.paths.journal, &contents, self.paths.keep_bytes)?;
        }
        Ok(())
    }
}

// ===== impl Stored =====

impl Stored {
    fn versioned(&self) -> Versioned {
        Versioned {
            resource: self.resource.clone(),
            revision: self.revision,
        }
    }
}

// ===== helpers =====

fn read_optional(path: &Path) -> Result<String, StoreError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

fn read_counter(path: &Path) -> Result<Revision, StoreError> {
    let text = read_optional(path)?;
    if text.is_empty() {
        return Ok(0);
    }
    text.trim().parse().map_err(|_| StoreError::Corrupt {
        file: path.to_path_buf(),
        line: Some(1),
        message: format!("{:?} is not a revision number", text.trim()),
    })
}

/// The counter is a hint, not the record: the journal is. A counter lost
/// in a crash is behind the journal, and the next operation replays (an
/// idempotent no-op for files that already have the entries), so it is
/// replaced atomically but not fsynced.
fn write_counter(path: &Path, revision: Revision) -> Result<(), StoreError> {
    state::replace(path, format!("{revision}\n").as_bytes(), false)
}
