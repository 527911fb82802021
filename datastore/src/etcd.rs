//! The etcd v3 backend. Each object is one key,
//! `<prefix>/<Kind>/<name>`, holding the object as JSON
//! (`{apiVersion: tortie.io/v1, kind, metadata, spec}`). The object's
//! revision is the key's etcd mod revision, so revisions are etcd's own:
//! store-wide and strictly increasing.
//!
//! Every write is one transaction guarded by a compare: `create` on the
//! key's version being 0, `update` and a revision-checked `delete` on its
//! mod revision; `apply` puts the compares and writes of a whole batch in
//! one transaction (its changes share one revision). A watch follows the kind's key prefix from a revision;
//! when the stream breaks (etcd restarted, network lost) it reconnects and
//! resumes after the last revision it delivered, so nothing is lost or
//! repeated, unless etcd compacted that history (then
//! [`StoreError::Compacted`]).

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KeyValue,
    Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;
use tortie_config::resources::{Key, Kind, Resource};

use crate::{
    check_batch, Action, Datastore, Listing, Only, Op, Rejected, Revision, StoreError, Versioned,
    Watch, WatchEvent,
};

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "/tortie/v1";
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest pause between watch reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// The etcd backend; cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
    endpoints: Vec<String>,
}

// ===== impl EtcdStore =====

impl EtcdStore {
    /// Connects to `endpoints` (`http://127.0.0.1:2379`); keys live under
    /// `prefix` (e.g. [`DEFAULT_PREFIX`]).
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<EtcdStore, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(TIMEOUT)
            .with_timeout(TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| etcd_error(format!("connect to {}", endpoints.join(",")), e))?;
        Ok(EtcdStore {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
            endpoints: endpoints.to_vec(),
        })
    }

    fn kind_prefix(&self, kind: Kind) -> String {
        format!("{}/{}/", self.prefix, kind.as_str())
    }

    fn key_path(&self, key: &Key) -> String {
        format!("{}{}", self.kind_prefix(key.kind), key.name)
    }

    /// Reads an object out of a key-value pair.
    fn decode(&self, kv: &KeyValue) -> Result<Versioned, StoreError> {
        let path = String::from_utf8_lossy(kv.key()).into_owned();
        let corrupt = |message: String| StoreError::Corrupt {
            file: PathBuf::from(format!("etcd:{path}")),
            line: None,
            message,
        };
        let text =
            std::str::from_utf8(kv.value()).map_err(|e| corrupt(format!("not UTF-8 text: {e}")))?;
        // The key says which kind the value should be: `.../<Kind>/<name>`.
        let kind = path.rsplit('/').nth(1).and_then(Kind::parse);
        let read = match kind {
            Some(kind) => Resource::from_json(kind, text),
            None => {
                let value = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
                Resource::from_value(value)
            }
        };
        let (resource, _) = read.map_err(|e| corrupt(e.to_string()))?;
        if self.key_path(&resource.key()) != path {
            return Err(corrupt(format!("holds {}", resource.key())));
        }
        Ok(Versioned {
            resource,
            revision: rev(kv.mod_revision()),
        })
    }

    /// The current mod revision of `path` (None: absent), for errors.
    async fn current(&self, path: &str, key: &Key) -> Result<Option<Revision>, StoreError> {
        let resp = self
            .client
            .clone()
            .get(path, None)
            .await
            .map_err(|e| etcd_error(format!("get {key}"), e))?;
        Ok(resp.kvs().first().map(|kv| rev(kv.mod_revision())))
    }
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Datastore for EtcdStore {
    async fn get(&self, key: &Key) -> Result<Option<Versioned>, StoreError> {
        let resp = self
            .client
            .clone()
            .get(self.key_path(key), None)
            .await
            .map_err(|e| etcd_error(format!("get {key}"), e))?;
        resp.kvs().first().map(|kv| self.decode(kv)).transpose()
    }

    async fn list(&self, kind: Kind) -> Result<Listing, StoreError> {
        let resp = self
            .client
            .clone()
            .get(
                self.kind_prefix(kind),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .map_err(|e| etcd_error(format!("list {kind}"), e))?;
        let prefix = self.kind_prefix(kind);
        let mut items = Vec::new();
        let mut rejected = Vec::new();
        for kv in resp.kvs() {
            match self.decode(kv) {
                Ok(v) => items.push(v),
                Err(e) => {
                    let name = name_in(&prefix, kv);
                    tracing::warn!(%kind, name, error = %e, "datastore: record left out of the listing");
                    rejected.push(Rejected {
                        name,
                        error: e.to_string(),
                    });
                }
            }
        }
        Ok(Listing {
            items,
            revision: resp.header().map_or(0, |h| rev(h.revision())),
            rejected,
        })
    }

    async fn create(&self, mut resource: Resource) -> Result<Versioned, StoreError> {
        let key = crate::validated(&mut resource)?;
        let path = self.key_path(&key);
        let txn = Txn::new()
            .when([Compare::version(path.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(path.clone(), encode(&resource), None)])
            .or_else([TxnOp::get(path.clone(), None)]);
        let resp = self
            .client
            .clone()
            .txn(txn)
            .await
            .map_err(|e| etcd_error(format!("create {key}"), e))?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| rev(h.revision()));
            return Ok(Versioned { resource, revision });
        }
        let current = first_get(&resp.op_responses()).unwrap_or(0);
        Err(StoreError::AlreadyExists {
            key,
            revision: current,
        })
    }

    async fn update(
        &self,
        mut resource: Resource,
        revision: Revision,
    ) -> Result<Versioned, StoreError> {
        let key = crate::validated(&mut resource)?;
        let path = self.key_path(&key);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                path.clone(),
                CompareOp::Equal,
                signed(revision),
            )])
            .and_then([TxnOp::put(path.clone(), encode(&resource), None)])
            .or_else([TxnOp::get(path.clone(), None)]);
        let resp = self
            .client
            .clone()
            .txn(txn)
            .await
            .map_err(|e| etcd_error(format!("update {key}"), e))?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| rev(h.revision()));
            return Ok(Versioned { resource, revision });
        }
        match first_get(&resp.op_responses()) {
            None => Err(StoreError::NotFound { key }),
            current => Err(StoreError::Conflict {
                key,
                expected: revision,
                current,
            }),
        }
    }

    async fn delete(&self, key: &Key, revision: Option<Revision>) -> Result<Revision, StoreError> {
        let path = self.key_path(key);
        let mut client = self.client.clone();
        let op = |e| etcd_error(format!("delete {key}"), e);
        let Some(expected) = revision else {
            let resp = client.delete(path, None).await.map_err(op)?;
            if resp.deleted() == 0 {
                return Err(StoreError::NotFound { key: key.clone() });
            }
            return Ok(resp.header().map_or(0, |h| rev(h.revision())));
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(
                path.clone(),
                CompareOp::Equal,
                signed(expected),
            )])
            .and_then([TxnOp::delete(path.clone(), None::<DeleteOptions>)])
            .or_else([TxnOp::get(path.clone(), None)]);
        let resp = client.txn(txn).await.map_err(op)?;
        if resp.succeeded() {
            return Ok(resp.header().map_or(0, |h| rev(h.revision())));
        }
        match self.current(&path, key).await? {
            None => Err(StoreError::NotFound { key: key.clone() }),
            current => Err(StoreError::Conflict {
                key: key.clone(),
                expected,
                current,
            }),
        }
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        let ops = check_batch(ops)?;
        if ops.is_empty() {
            return Ok(0);
        }
        let mut when = Vec::new();
        let mut then = Vec::new();
        let mut reads = Vec::new();
        for op in &ops {
            let path = self.key_path(&op.key());
            match op {
                Op::Create(r) => {
                    when.push(Compare::version(path.clone(), CompareOp::Equal, 0));
                    then.push(TxnOp::put(path.clone(), encode(r), None));
                }
                Op::Update(r, revision) => {
                    when.push(Compare::mod_revision(
                        path.clone(),
                        CompareOp::Equal,
                        signed(*revision),
                    ));
                    then.push(TxnOp::put(path.clone(), encode(r), None));
                }
                Op::Put(r) => then.push(TxnOp::put(path.clone(), encode(r), None)),
                Op::Delete(_, revision) => {
                    when.push(match revision {
                        Some(r) => {
                            Compare::mod_revision(path.clone(), CompareOp::Equal, signed(*r))
                        }
                        None => Compare::version(path.clone(), CompareOp::Greater, 0),
                    });
                    then.push(TxnOp::delete(path.clone(), None::<DeleteOptions>));
                }
                Op::Remove(_) => then.push(TxnOp::delete(path.clone(), None::<DeleteOptions>)),
            }
            reads.push(TxnOp::get(path, None));
        }
        let what = || {
            let keys: Vec<String> = ops.iter().map(|op| op.key().to_string()).collect();
            format!("write of {}", keys.join(", "))
        };
        let resp = self
            .client
            .clone()
            .txn(Txn::new().when(when).and_then(then).or_else(reads))
            .await
            .map_err(|e| etcd_error(what(), e))?;
        if resp.succeeded() {
            return Ok(resp.header().map_or(0, |h| rev(h.revision())));
        }
        // The reads say which check failed: the first, in batch order.
        let current: Vec<Option<Revision>> = resp
            .op_responses()
            .iter()
            .map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().map(|kv| rev(kv.mod_revision())),
                _ => None,
            })
            .collect();
        for (op, current) in ops.iter().zip(current) {
            let key = op.key();
            match (op, current) {
                (Op::Create(_), Some(revision)) => {
                    return Err(StoreError::AlreadyExists { key, revision })
                }
                (Op::Update(..) | Op::Delete(..), None) => {
                    return Err(StoreError::NotFound { key })
                }
                (Op::Update(_, expected) | Op::Delete(_, Some(expected)), Some(now))
                    if now != *expected =>
                {
                    return Err(StoreError::Conflict {
                        key,
                        expected: *expected,
                        current: Some(now),
                    })
                }
                _ => {}
            }
        }
        Err(StoreError::Etcd {
            op: what(),
            message: "the transaction's checks failed, but its reads show none failing".into(),
        })
    }

    async fn watch(&self, kind: Kind, from: Revision) -> Result<Watch, StoreError> {
        self.watch_with(kind, from, None)
    }

    async fn watch_only(
        &self,
        kind: Kind,
        from: Revision,
        only: Only,
    ) -> Result<Watch, StoreError> {
        self.watch_with(kind, from, Some(only))
    }
}

impl EtcdStore {
    /// A watch of `kind` after `from`, filtered by `only` when given.
    fn watch_with(
        &self,
        kind: Kind,
        from: Revision,
        only: Option<Only>,
    ) -> Result<Watch, StoreError> {
        let (tx, rx) = mpsc::channel(256);
        let store = self.clone();
        let task = tokio::spawn(async move {
            // The client asserts on unexpected watch responses; run the
            // follower as its own task so that a panic there reaches the
            // reader as an error instead of a silent end.
            let inner_tx = tx.clone();
            let follower = tokio::spawn(async move {
                if let Err(e) = store.follow(kind, from, only, &inner_tx).await {
                    let _ = inner_tx.send(Err(e)).await;
                }
            });
            let abort = follower.abort_handle();
            let _guard = AbortOnDrop(abort);
            if let Err(e) = follower.await {
                if e.is_panic() {
                    let _ = tx
                        .send(Err(StoreError::Task(format!(
                            "etcd watch of {kind} failed: {e}"
                        ))))
                        .await;
                }
            }
        });
        Ok(Watch::new(rx, task))
    }

    /// Streams changes of `kind` after `from` into `tx`, reconnecting after
    /// errors and resuming after the last revision delivered. Returns on
    /// compaction, or `Ok` when the receiver is gone.
    async fn follow(
        &self,
        kind: Kind,
        from: Revision,
        mut only: Option<Only>,
        tx: &mpsc::Sender<Result<WatchEvent, StoreError>>,
    ) -> Result<(), StoreError> {
        let prefix = self.kind_prefix(kind);
        let mut last = from;
        let mut backoff = BACKOFF.0;
        loop {
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(signed(last + 1));
            let stream = self
                .client
                .clone()
                .watch(prefix.clone(), Some(options))
                .await;
            let (_watcher, mut stream) = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%kind, error = %e, "etcd watch: cannot (re)connect; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = tx.closed() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                    continue;
                }
            };
            loop {
                let message = tokio::select! {
                    m = stream.message() => m,
                    _ = tx.closed() => return Ok(()),
                };
                let resp = match message {
                    Ok(Some(resp)) => resp,
                    Ok(None) | Err(_) => {
                        tracing::debug!(%kind, last, "etcd watch stream ended; resuming");
                        break;
                    }
                };
                if resp.compact_revision() > 0 {
                    return Err(StoreError::Compacted {
                        requested: last,
                        oldest: rev(resp.compact_revision()),
                    });
                }
                if resp.canceled() {
                    tracing::debug!(%kind, reason = resp.cancel_reason(), "etcd watch canceled; resuming");
                    break;
                }
                backoff = BACKOFF.0;
                // A batch (`apply`) gives all its changes one revision, and
                // they come in one response: skip only what an earlier
                // response delivered.
                let before = last;
                for event in resp.events() {
                    let Some(kv) = event.kv() else { continue };
                    let revision = rev(kv.mod_revision());
                    if revision <= before {
                        continue;
                    }
                    let name = name_in(&prefix, kv);
                    let admitted = match (only.as_mut(), event.event_type()) {
                        (None, _) => true,
                        (Some(o), EventType::Delete) => o.admits(&name, None),
                        (Some(o), EventType::Put) => match std::str::from_utf8(kv.value()) {
                            Ok(text) => o.admits(&name, Some(text)),
                            // Not text: delivered, so that decoding names it.
                            Err(_) => true,
                        },
                    };
                    if !admitted {
                        last = revision;
                        continue;
                    }
                    let out = match event.event_type() {
                        EventType::Delete => WatchEvent {
                            revision,
                            action: Action::Deleted,
                            key: Key::new(kind, name),
                            resource: None,
                        },
                        EventType::Put => {
                            let v = self.decode(kv)?;
                            WatchEvent {
                                revision,
                                action: if kv.create_revision() == kv.mod_revision() {
                                    Action::Created
                                } else {
                                    Action::Updated
                                },
                                key: v.resource.key(),
                                resource: Some(v.resource),
                            }
                        }
                    };
                    if tx.send(Ok(out)).await.is_err() {
                        return Ok(());
                    }
                    last = revision;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = tx.closed() => return Ok(()),
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }
}

// ===== helpers =====

/// Aborts the follower task when the watch task is aborted (the `Watch`
/// was dropped).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn encode(resource: &Resource) -> Vec<u8> {
    // A JSON value: serializing it cannot fail.
    serde_json::to_vec(&resource.to_value()).unwrap_or_default()
}

/// The mod revision of the key in the first get of a failed transaction.
fn first_get(responses: &[TxnOpResponse]) -> Option<Revision> {
    responses.iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().first().map(|kv| rev(kv.mod_revision())),
        _ => None,
    })
}

fn rev(r: i64) -> Revision {
    u64::try_from(r).unwrap_or(0)
}

fn signed(r: Revision) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

fn etcd_error(op: String, e: etcd_client::Error) -> StoreError {
    StoreError::Etcd {
        op,
        message: e.to_string(),
    }
}

/// The object name of `kv`, a key under a kind's `prefix`.
fn name_in(prefix: &str, kv: &KeyValue) -> String {
    let path = String::from_utf8_lossy(kv.key());
    path.strip_prefix(prefix).unwrap_or(&path).to_string()
}
