//! The object status writer: this node's problems with a user object
//! (`BGPConfiguration`, `BGPPeer`, `IPPool`) onto that object's status,
//! under the node's own key, on the Kubernetes datastore
//! (`tortie_datastore::kube::status`).
//!
//! ```text
//!  agent's NodeStatus (watch: by_object) ─▶ ┌────────┐
//!  timer: a failed write's retry ─────────▶ │ writer │ ──merge PATCH <obj>/status──▶ API server
//!                                           └────────┘   {status:{problems:{<node>: [...] | null}}}
//! ```
//!
//! It keeps what the objects hold for this node (read once at start, so
//! that what an earlier run wrote and no longer holds is cleared, then
//! what it wrote) and patches only the difference: an object whose
//! problems appear or change gets the node's list, one whose problems are
//! gone gets `null`, an object the node has no problems with gets no
//! write. At most one pass per [`MIN_GAP`], of at most [`PER_PASS`]
//! writes. It runs apart from the agent and only reads its published
//! status (never waited on), so a slow or refusing API server delays the
//! statuses and nothing else. A failed write is logged, counted
//! (`tortie_node_object_status_writes_total{result="failed"}`) and
//! retried with backoff. On the file and etcd datastores, which have no
//! status, it stops at once: the problems are in `/status`, the logs and
//! `tortiectl node status`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tortie_config::resources::{Key, Kind};
use tortie_datastore::kube::status::WITH_PROBLEMS;
use tortie_datastore::{AnyStore, ObjectProblem, Rejected, StoreError};
use tracing::{debug, info, warn};

use crate::metrics::StatusWrites;
use crate::peers::Problem;
use crate::status::NodeStatus;

/// A pass of writes at most this often (problems changing in a burst
/// are one write per object).
pub const MIN_GAP: Duration = Duration::from_secs(1);
/// Writes per pass at most; the rest wait for the next pass.
pub const PER_PASS: usize = 20;
/// Retry delays after a failed write (and a failed first read).
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// This node's problems by object.
pub type ByObject = BTreeMap<Key, Vec<ObjectProblem>>;

/// What the writer needs.
pub struct WriterConfig {
    /// This node's name: its key in the statuses.
    pub node: String,
    pub store: AnyStore,
    /// Counts the writes.
    pub writes: StatusWrites,
}

/// One write to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Patch {
    /// The node's problems with the object are these now.
    Set(Key, Vec<ObjectProblem>),
    /// The node has no problems with the object any more: remove its key.
    Clear(Key),
}

/// A key whose write failed: not again before `at`.
#[derive(Clone, Copy, Debug)]
struct Failing {
    at: Instant,
    delay: Duration,
}

/// The writer's state.
struct Writer {
    cfg: WriterConfig,
    /// What the objects hold under this node's key, as far as known.
    written: ByObject,
    failing: BTreeMap<Key, Failing>,
}

// ===== impl Writer =====

/// Starts the writer; aborting the handle stops it.
pub fn spawn(cfg: WriterConfig, status: watch::Receiver<Arc<NodeStatus>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(written) = first_read(&cfg).await else {
            debug!(
                "object statuses: this datastore has none (problems are in /status and the logs)"
            );
            return;
        };
        let writer = Writer {
            cfg,
            written,
            failing: BTreeMap::new(),
        };
        writer.run(status).await;
    })
}

/// What earlier runs of this node left on the objects; `None` when the
/// datastore has no statuses. Retried with backoff until it answers.
async fn first_read(cfg: &WriterConfig) -> Option<ByObject> {
    let mut delay = RETRY_MIN;
    loop {
        match cfg.store.reported_problems(&cfg.node).await {
            Ok(found) => return found,
            Err(e) => {
                warn!(error = %e, retry_in = ?delay, "cannot read the problems this node reported on objects (routing is not affected)");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

impl Writer {
    async fn run(mut self, mut status: watch::Receiver<Arc<NodeStatus>>) {
        loop {
            let snapshot = status.borrow_and_update().clone();
            let mut more = false;
            // Until the agent has listed everything, its problems are not
            // the whole picture: nothing is cleared on a partial one.
            if snapshot.datastore.synced {
                more = self.pass(&snapshot.by_object).await;
            }
            tokio::time::sleep(MIN_GAP).await;
            if more {
                continue;
            }
            let retry = self.failing.values().map(|f| f.at).min();
            let sleep = async {
                match retry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = status.changed() => {
                    if changed.is_err() {
                        return; // the agent is gone
                    }
                }
                _ = sleep => {}
            }
        }
    }

    /// Makes the writes `wanted` needs (up to [`PER_PASS`], skipping the
    /// failing ones until their time); whether writes were left for the
    /// next pass.
    async fn pass(&mut self, wanted: &ByObject) -> bool {
        let now = Instant::now();
        let todo: Vec<Patch> = patches(&self.written, wanted)
            .into_iter()
            .filter(|p| self.failing.get(p.key()).is_none_or(|f| f.at <= now))
            .collect();
        // Failures of objects no longer to write are forgotten.
        let wanted_keys: Vec<Key> = todo.iter().map(|p| p.key().clone()).collect();
        self.failing
            .retain(|k, f| f.at > now || wanted_keys.contains(k));
        let more = todo.len() > PER_PASS;
        for patch in todo.into_iter().take(PER_PASS) {
            self.write(patch).await;
        }
        more
    }

    /// One write; what the object holds is recorded, a failure retried.
    async fn write(&mut self, patch: Patch) {
        let (key, problems) = match &patch {
            Patch::Set(k, p) => (k.clone(), Some(p.as_slice())),
            Patch::Clear(k) => (k.clone(), None),
        };
        let result = self
            .cfg
            .store
            .report_problems(&key, &self.cfg.node, problems)
            .await;
        match (result, patch) {
            (Ok(_), Patch::Set(key, problems)) => {
                self.cfg.writes.count(true);
                info!(object = %key, problems = problems.len(), "problems reported on the object's status");
                self.failing.remove(&key);
                self.written.insert(key, problems);
            }
            (Ok(_), Patch::Clear(key)) => {
                self.cfg.writes.count(true);
                info!(object = %key, "problems cleared from the object's status");
                self.failing.remove(&key);
                self.written.remove(&key);
            }
            // Gone: nothing of ours is left on it.
            (Err(StoreError::NotFound { .. }), Patch::Clear(key)) => {
                self.failing.remove(&key);
                self.written.remove(&key);
            }
            (Err(e), patch) => {
                self.cfg.writes.count(false);
                let key = patch.key().clone();
                let delay = self
                    .failing
                    .get(&key)
                    .map_or(RETRY_MIN, |f| (f.delay * 2).min(RETRY_MAX));
                warn!(object = %key, error = %e, retry_in = ?delay, "cannot write this node's problems on the object's status (routing is not affected)");
                self.failing.insert(
                    key,
                    Failing {
                        at: Instant::now() + delay,
                        delay,
                    },
                );
            }
        }
    }
}

// ===== impl Patch =====

impl Patch {
    /// The object written.
    pub fn key(&self) -> &Key {
        match self {
            Patch::Set(k, _) | Patch::Clear(k) => k,
        }
    }
}

// ===== helpers =====

/// The writes that take the objects from `written` to `wanted`: a list
/// for each object whose problems appeared or changed, a clear for each
/// whose problems are gone; nothing for the others.
pub fn patches(written: &ByObject, wanted: &ByObject) -> Vec<Patch> {
    let mut out: Vec<Patch> = wanted
        .iter()
        .filter(|(k, p)| !p.is_empty() && written.get(*k) != Some(*p))
        .map(|(k, p)| Patch::Set(k.clone(), p.clone()))
        .collect();
    out.extend(
        written
            .keys()
            .filter(|k| wanted.get(*k).is_none_or(Vec::is_empty))
            .map(|k| Patch::Clear(k.clone())),
    );
    out
}

/// The agent's problems (`Kind/name` resources) and the records its
/// listings left out, by object, for the kinds whose objects carry them.
pub fn by_object(problems: &[Problem], rejected: &BTreeMap<Kind, Vec<Rejected>>) -> ByObject {
    let mut out = ByObject::new();
    for p in problems {
        let Some((kind, name)) = p.resource.split_once('/') else {
            continue;
        };
        let Some(kind) = Kind::parse(kind).filter(|k| WITH_PROBLEMS.contains(k)) else {
            continue;
        };
        out.entry(Key::new(kind, name))
            .or_default()
            .push(ObjectProblem {
                field: p.field.clone(),
                message: p.message.clone(),
            });
    }
    for (kind, records) in rejected {
        if !WITH_PROBLEMS.contains(kind) {
            continue;
        }
        for r in records {
            out.entry(Key::new(*kind, &r.name))
                .or_default()
                .push(left_out(&r.error));
        }
    }
    for list in out.values_mut() {
        list.sort();
        list.dedup();
    }
    out
}

/// A record left out of a listing as a problem: the field its error
/// names (`...: corrupt: spec.ttlSecurity: 1: not supported: ...`).
fn left_out(error: &str) -> ObjectProblem {
    let why = error.split_once("corrupt: ").map_or(error, |(_, w)| w);
    let (field, rest) = match why.split_once(": ") {
        Some((f, rest))
            if (f.starts_with("spec") || f.starts_with("metadata")) && !f.contains(' ') =>
        {
            (f.to_string(), rest)
        }
        _ => (String::new(), why),
    };
    ObjectProblem {
        field,
        message: format!("{rest}; this node leaves the object out (the others apply)"),
    }
}

#[cfg(test)]
#[path = "object_status_tests.rs"]
mod tests;
