//! Tortie's datastore: one async interface ([`Datastore`]) over typed
//! resources ([`tortie_config::resources::Resource`]), with three backends:
//!
//! - [`FileStore`] (the default, embedded): a directory holding the user's
//!   `resources.yaml` (read-only to us) and the state files the system
//!   writes, each replaced atomically under an `flock`, with a write-ahead
//!   journal that gives revisions and watch history.
//! - [`EtcdStore`]: etcd v3, one key per object under a prefix, every
//!   write a compare-and-swap on the key's mod revision.
//! - [`KubeStore`]: the Kubernetes API, one custom resource per object,
//!   every write a compare-and-swap on its `resourceVersion` (in progress:
//!   Node and WorkloadEndpoint are not served yet).
//!
//! Every object carries a [`Revision`]: a store-wide, strictly increasing
//! number, bumped by every write. `update` and `delete` take the revision
//! the caller read and fail with [`StoreError::Conflict`] if the object has
//! changed since: read, modify, write back, retry on conflict. IPAM uses
//! exactly that on a `Block`. `watch` streams the changes of one kind after
//! a given revision, in order, resuming from history. `apply` writes a
//! batch of such changes as one: all of them or none (IPAM claims a block,
//! its affinity and the handle in one write, which every watcher then
//! reads once).
//!
//! # Layout
//!
//! - `lib.rs`: the trait, [`Versioned`], [`WatchEvent`], [`Watch`], batches
//!   ([`Op`]), filtered watches ([`Only`]), typed helpers ([`TypedStore`]),
//!   [`AnyStore`].
//! - `error.rs`: [`StoreError`].
//! - `file/`: the file backend: `mod.rs` (operations), `state.rs` (state
//!   files, atomic writes, the lock), `journal.rs` (write-ahead journal,
//!   recovery, history), `watch.rs` (inotify + revision check).
//! - `etcd.rs`: the etcd backend.
//! - `kube/`: the Kubernetes API backend (custom resources through the API
//!   server): `mod.rs` (operations), `kinds.rs` (where each kind lives,
//!   objects to and from resources), `watch.rs`.
//! - `follow.rs`: list + watch + relist for long-running processes.
//!
//! The reference for users is `docs/datastore.md`.

use std::future::Future;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tortie_config::resources::{Key, Kind, Object, Resource, Spec};

mod error;
pub mod etcd;
pub mod file;
pub mod follow;
pub mod kube;

pub use error::StoreError;
pub use etcd::EtcdStore;
pub use file::FileStore;
pub use kube::status::ObjectProblem;
pub use kube::KubeStore;

/// A store-wide revision: strictly increasing, bumped by every write.
/// `0` means "before anything" (watch from 0 replays all retained history).
pub type Revision = u64;

/// An object and the revision of its last change.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned {
    /// The object.
    pub resource: Resource,
    /// When it last changed (pass it to `update` / `delete`).
    pub revision: Revision,
}

/// All objects of one kind and the store's revision when they were read
/// (watch from it to see every later change).
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    /// The objects, by name.
    pub items: Vec<Versioned>,
    /// The store's revision at the time of the read.
    pub revision: Revision,
    /// Records of the kind that could not be read (etcd: a value that is
    /// not a valid object, written by another tool): left out of `items`,
    /// so one bad record does not hide the others.
    pub rejected: Vec<Rejected>,
}

/// A record a listing left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The name its key gives it.
    pub name: String,
    /// Where it is and what is wrong with it.
    pub error: String,
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// It did not exist before.
    Created,
    /// It existed and changed.
    Updated,
    /// It is gone.
    Deleted,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// The revision of the change.
    pub revision: Revision,
    /// What happened.
    pub action: Action,
    /// The object's key.
    pub key: Key,
    /// The object after the change; `None` for deletions.
    pub resource: Option<Resource>,
}

/// One write of a batch ([`Datastore::apply`]). Each fails the batch the
/// way the single call would.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Store a new object ([`StoreError::AlreadyExists`] if the key is
    /// taken), as [`Datastore::create`].
    Create(Resource),
    /// Replace the object if its revision is still the one given, as
    /// [`Datastore::update`].
    Update(Resource, Revision),
    /// Store the object whether one exists or not (no check).
    Put(Resource),
    /// Delete the object, if its revision is still the one given when one
    /// is; [`StoreError::NotFound`] if it is absent. As [`Datastore::delete`].
    Delete(Key, Option<Revision>),
    /// Delete the object if it exists; nothing if it does not.
    Remove(Key),
}

/// A stream of changes; dropping it stops the watch.
#[derive(Debug)]
pub struct Watch {
    rx: mpsc::Receiver<Result<WatchEvent, StoreError>>,
    task: JoinHandle<()>,
}

/// The datastore interface. Every method is one round trip and names the
/// object in its errors.
pub trait Datastore: Send + Sync {
    /// The object at `key` and its revision, or `None`.
    fn get(&self, key: &Key) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Every object of `kind`, sorted by name, and the store's revision.
    fn list(&self, kind: Kind) -> impl Future<Output = Result<Listing, StoreError>> + Send;

    /// Stores a new object; [`StoreError::AlreadyExists`] if its key is
    /// taken. The object is validated first.
    fn create(
        &self,
        resource: Resource,
    ) -> impl Future<Output = Result<Versioned, StoreError>> + Send;

    /// Replaces the object if its revision is still `revision`
    /// (compare-and-swap); [`StoreError::Conflict`] if it changed,
    /// [`StoreError::NotFound`] if it is gone.
    fn update(
        &self,
        resource: Resource,
        revision: Revision,
    ) -> impl Future<Output = Result<Versioned, StoreError>> + Send;

    /// Deletes the object, if its revision is still `revision` when one is
    /// given. Returns the revision of the deletion.
    fn delete(
        &self,
        key: &Key,
        revision: Option<Revision>,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send;

    /// Every change of `kind` after revision `from`, in order, then live
    /// changes. [`StoreError::Compacted`] if history that old is gone.
    fn watch(
        &self,
        kind: Kind,
        from: Revision,
    ) -> impl Future<Output = Result<Watch, StoreError>> + Send;

    /// Writes `ops` as one change: every check passes and every write is
    /// made, or nothing is written and the error is that of the first op
    /// that failed (as its single call would give it). Objects are
    /// validated first; a key named twice is refused
    /// ([`StoreError::Repeated`]). A crash leaves all of the batch or none
    /// of it. Watches see its changes in the batch's order. Returns the
    /// revision of the last change (0 for an empty batch, which writes
    /// nothing).
    fn apply(&self, ops: Vec<Op>) -> impl Future<Output = Result<Revision, StoreError>> + Send;

    /// [`Datastore::watch`], but changes that `only` does not admit may be
    /// skipped without being parsed (see [`Only`]): what is delivered is
    /// what `watch` delivers, less (some of) what the caller does not
    /// want. The backends skip them unread; this default skips nothing.
    fn watch_only(
        &self,
        kind: Kind,
        from: Revision,
        only: Only,
    ) -> impl Future<Output = Result<Watch, StoreError>> + Send {
        let _ = only;
        self.watch(kind, from)
    }
}

/// Which changes of a kind a watch delivers ([`Datastore::watch_only`]):
/// those of objects whose stored text contains a marker (`"host:node1"`,
/// quotes included, for the blocks of node1), and every later change of
/// an object delivered (so one that stops matching, or is deleted, comes
/// through once more, and then no more). Every agent watches every block
/// and endpoint of the cluster, and most are other nodes': they are
/// skipped by looking at the text, without parsing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Only {
    marker: String,
    /// The objects delivered and not yet seen to stop matching.
    held: std::collections::BTreeSet<String>,
}

/// Typed helpers over any [`Datastore`].
pub trait TypedStore: Datastore {
    /// The object of kind `S::KIND` named `name`, with its revision.
    fn get_typed<S: Spec>(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<(Object<S>, Revision)>, StoreError>> + Send {
        async move {
            let key = Key::new(S::KIND, name);
            match self.get(&key).await? {
                None => Ok(None),
                Some(v) => S::unwrap(v.resource)
                    .map(|o| Some((o, v.revision)))
                    .ok_or(StoreError::WrongKind { key }),
            }
        }
    }

    /// Every object of kind `S::KIND`, with revisions.
    fn list_typed<S: Spec>(
        &self,
    ) -> impl Future<Output = Result<Vec<(Object<S>, Revision)>, StoreError>> + Send {
        async move {
            let listing = self.list(S::KIND).await?;
            listing
                .items
                .into_iter()
                .map(|v| {
                    let key = v.resource.key();
                    S::unwrap(v.resource)
                        .map(|o| (o, v.revision))
                        .ok_or(StoreError::WrongKind { key })
                })
                .collect()
        }
    }

    /// Creates a typed object; returns its revision.
    fn create_typed<S: Spec>(
        &self,
        object: Object<S>,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send {
        async move { Ok(self.create(S::wrap(object)).await?.revision) }
    }

    /// Compare-and-swap of a typed object read at `revision` (e.g. an IPAM
    /// block); returns the new revision.
    fn update_typed<S: Spec>(
        &self,
        object: Object<S>,
        revision: Revision,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send {
        async move { Ok(self.update(S::wrap(object), revision).await?.revision) }
    }
}

impl<T: Datastore + ?Sized> TypedStore for T {}

/// Which backend, chosen at run time; nobody else needs to know.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// The file backend.
    File(FileStore),
    /// The etcd backend.
    Etcd(Box<EtcdStore>),
    /// The Kubernetes API backend.
    Kube(KubeStore),
}

/// Which backend to open, as written in configuration (the CNI network
/// config, the agent's flags): `{"type": "file", "dir": "/var/lib/tortie"}`
/// or `{"type": "etcd", "endpoints": ["http://10.0.0.1:2379"]}` or
/// `{"type": "kubernetes"}` (optionally with `"kubeconfig": PATH`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum StoreConfig {
    /// The file backend in `dir`.
    File {
        /// The directory (default [`file::DEFAULT_DIR`]).
        #[serde(default = "default_dir")]
        dir: std::path::PathBuf,
    },
    /// The etcd backend.
    Etcd {
        /// Client URLs, at least one.
        endpoints: Vec<String>,
        /// Key prefix (default [`etcd::DEFAULT_PREFIX`]).
        #[serde(default = "default_prefix")]
        prefix: String,
    },
    /// The Kubernetes API backend.
    Kubernetes {
        /// A kubeconfig file; without one, `$KUBECONFIG`,
        /// `~/.kube/config` or the pod's service account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kubeconfig: Option<std::path::PathBuf>,
    },
}

impl From<&tortie_config::node::DatastoreSetting> for StoreConfig {
    /// The backend a `--datastore` setting names (`file:DIR`,
    /// `etcd:URL,...`, `kubernetes[:KUBECONFIG]`).
    fn from(setting: &tortie_config::node::DatastoreSetting) -> StoreConfig {
        use tortie_config::node::DatastoreSetting;
        match setting {
            DatastoreSetting::File(dir) => StoreConfig::File { dir: dir.clone() },
            DatastoreSetting::Etcd { endpoints, prefix } => StoreConfig::Etcd {
                endpoints: endpoints.clone(),
                prefix: prefix.clone(),
            },
            DatastoreSetting::Kubernetes(kubeconfig) => StoreConfig::Kubernetes {
                kubeconfig: kubeconfig.clone(),
            },
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::File { dir: default_dir() }
    }
}

fn default_dir() -> std::path::PathBuf {
    file::DEFAULT_DIR.into()
}

fn default_prefix() -> String {
    etcd::DEFAULT_PREFIX.into()
}

// ===== impl Watch =====

impl Watch {
    /// A watch fed by `task` through `rx`; the task is aborted on drop.
    pub(crate) fn new(
        rx: mpsc::Receiver<Result<WatchEvent, StoreError>>,
        task: JoinHandle<()>,
    ) -> Watch {
        Watch { rx, task }
    }

    /// The next change. An error ends the watch (`None` after it), except
    /// [`StoreError::UserFile`] (the file backend's `resources.yaml` does
    /// not load): reported once per distinct error, then the watch goes on
    /// with the last good objects.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>> {
        self.rx.recv().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ===== impl AnyStore =====

impl AnyStore {
    /// Opens the backend `config` names (connecting, for etcd).
    pub async fn open(config: &StoreConfig) -> Result<AnyStore, StoreError> {
        match config {
            StoreConfig::File { dir } => Ok(AnyStore::File(FileStore::open(dir)?)),
            StoreConfig::Etcd { endpoints, .. } if endpoints.is_empty() => Err(StoreError::Etcd {
                op: "connect".into(),
                message: "no endpoints configured; list at least one, e.g. http://127.0.0.1:2379"
                    .into(),
            }),
            StoreConfig::Etcd { endpoints, prefix } => Ok(AnyStore::Etcd(Box::new(
                EtcdStore::connect(endpoints, prefix).await?,
            ))),
            StoreConfig::Kubernetes { kubeconfig } => Ok(AnyStore::Kube(
                KubeStore::connect(kubeconfig.as_deref()).await?,
            )),
        }
    }

    /// The annotations of Pod `namespace/name` ([`KubeStore::pod_annotations`]);
    /// `None` if there is no such Pod, always for the backends other than
    /// Kubernetes (they hold no pods).
    pub async fn pod_annotations(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, StoreError> {
        match self {
            AnyStore::Kube(s) => s.pod_annotations(namespace, name).await,
            AnyStore::File(_) | AnyStore::Etcd(_) => Ok(None),
        }
    }

    /// Sets `node`'s problems with object `key` on its status (`None` or
    /// empty: removes them; [`KubeStore::report_problems`]); the object's
    /// revision after. `None` on the file and etcd backends: they have no
    /// status, and the problems are in the node's `/status`, its logs and
    /// `tortiectl node status` only.
    pub async fn report_problems(
        &self,
        key: &Key,
        node: &str,
        problems: Option<&[ObjectProblem]>,
    ) -> Result<Option<Revision>, StoreError> {
        match self {
            AnyStore::Kube(s) => s.report_problems(key, node, problems).await.map(Some),
            AnyStore::File(_) | AnyStore::Etcd(_) => Ok(None),
        }
    }

    /// What `node` has reported on the objects' statuses
    /// ([`KubeStore::reported_problems`]); `None` on the file and etcd
    /// backends (no status).
    pub async fn reported_problems(
        &self,
        node: &str,
    ) -> Result<Option<std::collections::BTreeMap<Key, Vec<ObjectProblem>>>, StoreError> {
        match self {
            AnyStore::Kube(s) => s.reported_problems(node).await.map(Some),
            AnyStore::File(_) | AnyStore::Etcd(_) => Ok(None),
        }
    }
}

impl Datastore for AnyStore {
    async fn get(&self, key: &Key) -> Result<Option<Versioned>, StoreError> {
        match self {
            AnyStore::File(s) => s.get(key).await,
            AnyStore::Etcd(s) => s.get(key).await,
            AnyStore::Kube(s) => s.get(key).await,
        }
    }

    async fn list(&self, kind: Kind) -> Result<Listing, StoreError> {
        match self {
            AnyStore::File(s) => s.list(kind).await,
            AnyStore::Etcd(s) => s.list(kind).await,
            AnyStore::Kube(s) => s.list(kind).await,
        }
    }

    async fn create(&self, resource: Resource) -> Result<Versioned, StoreError> {
        match self {
            AnyStore::File(s) => s.create(resource).await,
            AnyStore::Etcd(s) => s.create(resource).await,
            AnyStore::Kube(s) => s.create(resource).await,
        }
    }

    async fn update(
        &self,
        resource: Resource,
        revision: Revision,
    ) -> Result<Versioned, StoreError> {
        match self {
            AnyStore::File(s) => s.update(resource, revision).await,
            AnyStore::Etcd(s) => s.update(resource, revision).await,
            AnyStore::Kube(s) => s.update(resource, revision).await,
        }
    }

    async fn delete(&self, key: &Key, revision: Option<Revision>) -> Result<Revision, StoreError> {
        match self {
            AnyStore::File(s) => s.delete(key, revision).await,
            AnyStore::Etcd(s) => s.delete(key, revision).await,
            AnyStore::Kube(s) => s.delete(key, revision).await,
        }
    }

    async fn watch(&self, kind: Kind, from: Revision) -> Result<Watch, StoreError> {
        match self {
            AnyStore::File(s) => s.watch(kind, from).await,
            AnyStore::Etcd(s) => s.watch(kind, from).await,
            AnyStore::Kube(s) => s.watch(kind, from).await,
        }
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        match self {
            AnyStore::File(s) => s.apply(ops).await,
            AnyStore::Etcd(s) => s.apply(ops).await,
            AnyStore::Kube(s) => s.apply(ops).await,
        }
    }

    async fn watch_only(
        &self,
        kind: Kind,
        from: Revision,
        only: Only,
    ) -> Result<Watch, StoreError> {
        match self {
            AnyStore::File(s) => s.watch_only(kind, from, only).await,
            AnyStore::Etcd(s) => s.watch_only(kind, from, only).await,
            AnyStore::Kube(s) => s.watch_only(kind, from, only).await,
        }
    }
}

// ===== impl Only =====

impl Only {
    /// Objects whose stored text contains `marker`.
    pub fn containing(marker: impl Into<String>) -> Only {
        Only {
            marker: marker.into(),
            held: Default::default(),
        }
    }

    /// Whether a change of `name` to the stored text `text` (`None`:
    /// deleted) is delivered; remembers what it admits.
    pub fn admits(&mut self, name: &str, text: Option<&str>) -> bool {
        let held = self.held.contains(name);
        match text {
            Some(t) if t.contains(&self.marker) => {
                if !held {
                    self.held.insert(name.to_owned());
                }
                true
            }
            _ => {
                if held {
                    self.held.remove(name);
                }
                held
            }
        }
    }

    /// The objects of a listing it admits (as their JSON text would be),
    /// and starts over from them: a watch from the listing's revision then
    /// delivers their later changes.
    pub fn listed(&mut self, items: Vec<Resource>) -> Vec<Resource> {
        self.held.clear();
        items
            .into_iter()
            .filter(|r| {
                let text = serde_json::to_string(&r.to_value()).unwrap_or_default();
                self.admits(&r.key().name, Some(&text))
            })
            .collect()
    }
}

// ===== impl Op =====

impl Op {
    /// The object the op writes.
    pub fn key(&self) -> Key {
        match self {
            Op::Create(r) | Op::Update(r, _) | Op::Put(r) => r.key(),
            Op::Delete(k, _) | Op::Remove(k) => k.clone(),
        }
    }
}

/// Validates `resource` (filling its defaults); its key, or what is
/// wrong with it, by field.
pub(crate) fn validated(resource: &mut Resource) -> Result<Key, StoreError> {
    let key = resource.key();
    resource.validate().map_err(|source| StoreError::Invalid {
        key: key.clone(),
        source,
    })?;
    Ok(key)
}

/// Validates the objects of a batch and refuses a key named twice (what
/// every backend checks before it writes).
pub(crate) fn check_batch(mut ops: Vec<Op>) -> Result<Vec<Op>, StoreError> {
    let mut seen = std::collections::BTreeSet::new();
    for op in &mut ops {
        let key = op.key();
        if let Op::Create(r) | Op::Update(r, _) | Op::Put(r) = op {
            validated(r)?;
        }
        if !seen.insert(key.clone()) {
            return Err(StoreError::Repeated { key });
        }
    }
    Ok(ops)
}
