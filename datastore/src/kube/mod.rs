//! The Kubernetes API backend: each object is a custom resource (the CRDs
//! in `deploy/crds.yaml`), read and written through the API server with
//! kube-rs.
//!
//! Revisions are the objects' `resourceVersion`s. With etcd under the API
//! server (always, for the API servers this project supports) they are
//! etcd's revisions: store-wide and strictly increasing, like the etcd
//! backend's. `update` and a revision-checked `delete` are the API
//! server's own compare-and-swap (a `resourceVersion` on the write, a
//! precondition on the delete). `watch` asks the API server for the
//! changes after a revision; when the stream ends (the server's watch
//! timeout, a restart, the network) it resumes after the last revision
//! delivered, and a revision the server no longer keeps (410 Gone) is
//! [`StoreError::Compacted`].
//!
//! `apply` is not one transaction here: the API has none across objects.
//! Every op of a batch is checked first, as its single call would be, and
//! a batch that fails a check writes nothing; then the writes are made in
//! order. Only a writer racing between the checks and the writes can make
//! one fail part way: the writes already made are then undone (best
//! effort) and the error is that of the failed one. Watchers see a
//! batch's changes one by one, and a process that dies part way leaves
//! the writes it made.
//!
//! `Node` is the Kubernetes Node itself (`node.rs`), a `WorkloadEndpoint`
//! lives on its Pod (`endpoint.rs`). A `CalicoNodeStatus` with a status
//! takes two writes: the object, then its status subresource (the
//! revision returned is the second's). BGPConfiguration, BGPPeer and
//! IPPool have a status subresource too, where each node reports its
//! problems with the object (`status.rs`, a Tortie extension); the store
//! neither reads nor writes it otherwise.

mod endpoint;
mod kinds;
mod node;
mod pod;
mod watch;

pub mod services;
pub mod status;

use std::path::Path;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tortie_config::resources::{Key, Kind, Resource};

use crate::{check_batch, Datastore, Listing, Only, Op, Revision, StoreError, Versioned, Watch};

/// The Kubernetes backend; cheap to clone.
#[derive(Clone)]
pub struct KubeStore {
    client: Client,
    /// Whether its watches reach the API server (see [`Self::reachability`]).
    health: watch::Health,
}

// ===== impl KubeStore =====

impl KubeStore {
    /// Connects with the kubeconfig at `path`, or, with `None`, as kube-rs
    /// finds one: `$KUBECONFIG`, `~/.kube/config`, or the pod's service
    /// account inside a cluster.
    pub async fn connect(kubeconfig: Option<&Path>) -> Result<KubeStore, StoreError> {
        let config = match kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| kube_error(format!("read kubeconfig {}", path.display()), e))?;
                Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| kube_error(format!("kubeconfig {}", path.display()), e))?
            }
            None => Config::infer()
                .await
                .map_err(|e| kube_error("find a kubeconfig or service account".into(), e))?,
        };
        let client = Client::try_from(config).map_err(|e| kube_error("client".into(), e))?;
        Ok(KubeStore {
            client,
            health: watch::Health::default(),
        })
    }

    /// Whether the API server answers this store's watches: `Some(error)`
    /// from the moment a broken watch could not be opened again until one
    /// opens. This is the watches' own health, no request of its own: a
    /// process that follows kinds learns that the API server is away when
    /// their streams break (a server that stops, or closes connections)
    /// and are refused on reopening. A network that drops packets without
    /// closing anything shows only when the server's watch timeout (290 s)
    /// ends a stream and the next cannot open.
    pub fn reachability(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.health.subscribe()
    }

    /// The API of `kind`'s objects.
    fn api(&self, kind: Kind) -> Result<Api<DynamicObject>, StoreError> {
        let place = kinds::place(kind).ok_or_else(|| StoreError::Kube {
            op: format!("{kind}"),
            message: format!("{kind} is not served by the Kubernetes backend yet"),
        })?;
        Ok(Api::all_with(self.client.clone(), &place.api_resource()))
    }

    /// The object's revision now, `None` if it is gone.
    async fn current(&self, key: &Key) -> Result<Option<Revision>, StoreError> {
        Ok(self.get(key).await?.map(|v| v.revision))
    }

    /// The store's revision now (a list of one object: its
    /// `resourceVersion` is etcd's current revision).
    async fn now(&self, kind: Kind) -> Result<Revision, StoreError> {
        let list = self
            .api(kind)?
            .list(&ListParams::default().limit(1))
            .await
            .map_err(|e| kube_error(format!("list {kind}"), e))?;
        parse_revision(
            &format!("list {kind}"),
            &list.metadata.resource_version.unwrap_or_default(),
        )
    }

    /// The second write of an object with a status subresource: its
    /// `status` through `/status`, at the revision the first write left
    /// (the API server ignores the status in the object's own writes).
    /// A writer between the two makes it fail with a conflict, and the
    /// object is left with its new spec and its old status.
    async fn write_status(
        &self,
        api: &Api<DynamicObject>,
        key: &Key,
        mut object: DynamicObject,
        revision: Revision,
    ) -> Result<Revision, StoreError> {
        object.metadata.resource_version = Some(revision.to_string());
        match api
            .replace_status(&key.name, &PostParams::default(), &object)
            .await
        {
            Ok(made) => kinds::revision_of(&made.metadata, key.kind, &key.name),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                Err(StoreError::NotFound { key: key.clone() })
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(StoreError::Conflict {
                key: key.clone(),
                expected: revision,
                current: self.current(key).await?,
            }),
            Err(e) => Err(kube_error(format!("update {key} status"), e)),
        }
    }

    /// Undoes the writes of a batch that failed part way, newest first.
    async fn undo(&self, done: Vec<Undo>) {
        for step in done.into_iter().rev() {
            let result = match step {
                Undo::Delete(key, revision) => self.delete(&key, Some(revision)).await.map(drop),
                Undo::Restore(resource, revision) => {
                    self.update(resource, revision).await.map(drop)
                }
                Undo::Recreate(resource) => self.create(resource).await.map(drop),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "a failed batch of writes could not be undone in full");
            }
        }
    }
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeStore")
    }
}

/// How to take back one write of a batch.
enum Undo {
    /// It created this object at this revision.
    Delete(Key, Revision),
    /// It replaced this object (the old one) and left it at this revision.
    Restore(Resource, Revision),
    /// It deleted this object.
    Recreate(Resource),
}

impl Datastore for KubeStore {
    async fn get(&self, key: &Key) -> Result<Option<Versioned>, StoreError> {
        if key.kind == Kind::Node {
            return self.get_node(&key.name).await;
        }
        if key.kind == Kind::WorkloadEndpoint {
            return self.get_endpoint(key).await;
        }
        let object = self
            .api(key.kind)?
            .get_opt(&key.name)
            .await
            .map_err(|e| kube_error(format!("get {key}"), e))?;
        object.map(|o| kinds::from_object(key.kind, o)).transpose()
    }

    async fn list(&self, kind: Kind) -> Result<Listing, StoreError> {
        if kind == Kind::Node {
            return self.list_nodes().await;
        }
        if kind == Kind::WorkloadEndpoint {
            return self.list_endpoints().await;
        }
        let list = self
            .api(kind)?
            .list(&ListParams::default())
            .await
            .map_err(|e| kube_error(format!("list {kind}"), e))?;
        listing(
            &format!("list {kind}"),
            list,
            |o| kinds::from_object(kind, o.clone()).map(Some),
            |o| o.metadata.name.clone().unwrap_or_default(),
        )
    }

    async fn create(&self, mut resource: Resource) -> Result<Versioned, StoreError> {
        let key = crate::validated(&mut resource)?;
        if let Resource::Node(node) = resource {
            return self.create_node(node).await;
        }
        if let Resource::WorkloadEndpoint(w) = resource {
            return self.create_endpoint(w).await;
        }
        let place = kinds::place(key.kind);
        let api = self.api(key.kind)?;
        let object = kinds::to_object(&place.expect("served"), &resource, None);
        match api.create(&PostParams::default(), &object).await {
            Ok(made) => {
                let mut revision = kinds::revision_of(&made.metadata, key.kind, &key.name)?;
                if kinds::status_of(&resource) {
                    revision = self.write_status(&api, &key, object, revision).await?;
                }
                Ok(Versioned { revision, resource })
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let revision = self.current(&key).await?.unwrap_or(0);
                Err(StoreError::AlreadyExists { key, revision })
            }
            Err(e) => Err(kube_error(format!("create {key}"), e)),
        }
    }

    async fn update(
        &self,
        mut resource: Resource,
        revision: Revision,
    ) -> Result<Versioned, StoreError> {
        let key = crate::validated(&mut resource)?;
        if let Resource::Node(node) = resource {
            return self.update_node(node, revision).await;
        }
        if let Resource::WorkloadEndpoint(w) = resource {
            return self.update_endpoint(w, revision).await;
        }
        let place = kinds::place(key.kind);
        let api = self.api(key.kind)?;
        let object = kinds::to_object(&place.expect("served"), &resource, Some(revision));
        match api
            .replace(&key.name, &PostParams::default(), &object)
            .await
        {
            Ok(made) => {
                let mut revision = kinds::revision_of(&made.metadata, key.kind, &key.name)?;
                if kinds::status_of(&resource) {
                    revision = self.write_status(&api, &key, object, revision).await?;
                }
                Ok(Versioned { revision, resource })
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Err(StoreError::NotFound { key }),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let current = self.current(&key).await?;
                match current {
                    None => Err(StoreError::NotFound { key }),
                    Some(current) => Err(StoreError::Conflict {
                        key,
                        expected: revision,
                        current: Some(current),
                    }),
                }
            }
            Err(e) => Err(kube_error(format!("update {key}"), e)),
        }
    }

    async fn delete(&self, key: &Key, revision: Option<Revision>) -> Result<Revision, StoreError> {
        if key.kind == Kind::Node {
            return self.delete_node(key, revision).await;
        }
        if key.kind == Kind::WorkloadEndpoint {
            return self.delete_endpoint(key, revision).await;
        }
        let api = self.api(key.kind)?;
        let params = DeleteParams {
            preconditions: revision.map(|r| Preconditions {
                resource_version: Some(r.to_string()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&key.name, &params).await {
            // The deleted object carries the revision of its deletion.
            Ok(either::Either::Left(gone)) => {
                kinds::revision_of(&gone.metadata, key.kind, &key.name)
            }
            Ok(either::Either::Right(_status)) => self.now(key.kind).await,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                Err(StoreError::NotFound { key: key.clone() })
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(StoreError::Conflict {
                key: key.clone(),
                expected: revision.unwrap_or(0),
                current: self.current(key).await?,
            }),
            Err(e) => Err(kube_error(format!("delete {key}"), e)),
        }
    }

    async fn watch(&self, kind: Kind, from: Revision) -> Result<Watch, StoreError> {
        self.watch_objects(kind, from, None).await
    }

    async fn watch_only(
        &self,
        kind: Kind,
        from: Revision,
        only: Only,
    ) -> Result<Watch, StoreError> {
        self.watch_objects(kind, from, Some(only)).await
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        let ops = check_batch(ops)?;
        // Every check before any write: a batch that would fail writes
        // nothing (only a writer racing us between here and the writes
        // can fail it part way; then the writes made are undone).
        let mut before = Vec::with_capacity(ops.len());
        for op in &ops {
            before.push(self.check(op).await?);
        }
        let mut done: Vec<Undo> = Vec::new();
        let mut last = 0;
        for (op, before) in ops.into_iter().zip(before) {
            let step = self.apply_one(op, before).await;
            match step {
                Ok((revision, undo)) => {
                    last = last.max(revision);
                    done.extend(undo);
                }
                Err(e) => {
                    self.undo(done).await;
                    return Err(e);
                }
            }
        }
        Ok(last)
    }
}

impl KubeStore {
    /// A watch of `kind` after `from` (0: the objects there are now, as
    /// creations in revision order, then what follows), of what `only`
    /// admits when given (Nodes: every change; few, and each agent wants
    /// them all).
    async fn watch_objects(
        &self,
        kind: Kind,
        from: Revision,
        mut only: Option<Only>,
    ) -> Result<Watch, StoreError> {
        if kind == Kind::Node {
            return self.watch_nodes(from).await;
        }
        if kind == Kind::WorkloadEndpoint {
            return self.watch_endpoints(from, only).await;
        }
        let api = self.api(kind)?;
        let mut first = Vec::new();
        let mut after = from;
        if from == 0 {
            let listing = self.list(kind).await?;
            first = watch::as_creations(admitted(only.as_mut(), listing.items));
            after = listing.revision;
        }
        let health = self.health.clone();
        let objects = watch::Objects { kind, only };
        watch::start(api, kind, after, first, objects, health).await
    }

    /// Whether `op` would succeed now: the error its single call would
    /// give, without writing; else the object as it is (what a write
    /// of the batch replaces, and puts back if the batch fails).
    async fn check(&self, op: &Op) -> Result<Option<Versioned>, StoreError> {
        let key = op.key();
        let before = self.get(&key).await?;
        let current = before.as_ref().map(|v| v.revision);
        match (op, current) {
            (Op::Put(_) | Op::Remove(_), _) => Ok(before),
            (Op::Create(_), Some(revision)) => Err(StoreError::AlreadyExists { key, revision }),
            (Op::Update(_, _) | Op::Delete(_, _), None) => Err(StoreError::NotFound { key }),
            (Op::Update(_, expected) | Op::Delete(_, Some(expected)), Some(now))
                if *expected != now =>
            {
                Err(StoreError::Conflict {
                    key,
                    expected: *expected,
                    current: Some(now),
                })
            }
            _ => Ok(before),
        }
    }

    /// One write of a batch, onto the object as `check` read it
    /// (`before`): its revision, and how to undo it.
    async fn apply_one(
        &self,
        op: Op,
        before: Option<Versioned>,
    ) -> Result<(Revision, Option<Undo>), StoreError> {
        Ok(match op {
            Op::Create(resource) => {
                let v = self.create(resource).await?;
                (v.revision, Some(Undo::Delete(v.resource.key(), v.revision)))
            }
            Op::Update(resource, revision) => {
                let v = self.update(resource, revision).await?;
                let undo = before.map(|o| Undo::Restore(o.resource, v.revision));
                (v.revision, undo)
            }
            Op::Put(resource) => {
                let key = resource.key();
                match before {
                    Some(old) => {
                        let v = self.update(resource, old.revision).await?;
                        (v.revision, Some(Undo::Restore(old.resource, v.revision)))
                    }
                    None => {
                        let v = self.create(resource).await?;
                        (v.revision, Some(Undo::Delete(key, v.revision)))
                    }
                }
            }
            Op::Delete(key, revision) => {
                let r = self.delete(&key, revision).await?;
                (r, before.map(|o| Undo::Recreate(o.resource)))
            }
            Op::Remove(key) => match before {
                Some(old) => {
                    let r = self.delete(&key, Some(old.revision)).await?;
                    (r, Some(Undo::Recreate(old.resource)))
                }
                None => (0, None),
            },
        })
    }
}

/// A listing out of what the API server listed: each object read by
/// `read` (`None`: not one of ours), the unreadable ones named and left
/// out, sorted by key, at the list's revision.
pub(super) fn listing<K>(
    op: &str,
    list: kube::api::ObjectList<K>,
    read: impl Fn(&K) -> Result<Option<Versioned>, StoreError>,
    name: impl Fn(&K) -> String,
) -> Result<Listing, StoreError>
where
    K: Clone + serde::de::DeserializeOwned,
{
    let text = list.metadata.resource_version.clone().unwrap_or_default();
    let revision = parse_revision(op, &text)?;
    let mut items = Vec::with_capacity(list.items.len());
    let mut rejected = Vec::new();
    for object in &list.items {
        match read(object) {
            Ok(Some(v)) => items.push(v),
            Ok(None) => {}
            Err(e) => rejected.push(crate::Rejected {
                name: name(object),
                error: e.to_string(),
            }),
        }
    }
    items.sort_by_key(|v| v.resource.key());
    Ok(Listing {
        items,
        revision,
        rejected,
    })
}

/// A list's `resourceVersion` as a revision.
fn parse_revision(op: &str, text: &str) -> Result<Revision, StoreError> {
    text.parse().map_err(|_| StoreError::Kube {
        op: op.to_string(),
        message: format!("resourceVersion {text:?} is not a number"),
    })
}

/// The objects of a listing that `only` admits (all without it); `only`
/// then holds them, so that a watch from the listing's revision delivers
/// their later changes.
pub(super) fn admitted(only: Option<&mut Only>, mut items: Vec<Versioned>) -> Vec<Versioned> {
    if let Some(only) = only {
        let keep: std::collections::BTreeSet<Key> = only
            .listed(items.iter().map(|v| v.resource.clone()).collect())
            .iter()
            .map(|r| r.key())
            .collect();
        items.retain(|v| keep.contains(&v.resource.key()));
    }
    items
}

/// A failed call to the API server, naming what we were doing; the
/// server's own message when it gave one (an RBAC denial names the verb
/// and resource).
pub(crate) fn kube_error(op: String, e: impl std::fmt::Display) -> StoreError {
    StoreError::Kube {
        op,
        message: e.to_string(),
    }
}
