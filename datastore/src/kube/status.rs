//! Each node's problems with a user object, on that object's status: a
//! Tortie extension of Calico's `BGPConfiguration`, `BGPPeer` and
//! `IPPool` (Calico's own have no status), for what only the agents can
//! tell (a Calico field refused, a password secret missing on a node, a
//! service range that does not parse, ...).
//!
//! ```yaml
//! status:
//!   problems:
//!     node-1:
//!       - field: spec.ttlSecurity
//!         message: "..."
//!     node-2: [...]
//! ```
//!
//! Every node writes only its own key, with a JSON merge patch of the
//! status subresource, so nodes never conflict and need no revision; a
//! `null` removes the key. The file and etcd backends have no status:
//! there the problems are in each node's `/status`, its logs and
//! `tortiectl node status` only (`AnyStore::report_problems` does
//! nothing).

use std::collections::BTreeMap;

use kube::api::{ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tortie_config::resources::{Key, Kind};

use super::{kinds, kube_error, KubeStore};
use crate::{Revision, StoreError};

/// One problem a node has with an object: the field, and what is wrong
/// and what the node does about it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectProblem {
    /// The field (`spec.ttlSecurity`); empty when the object as a whole.
    #[serde(default)]
    pub field: String,
    pub message: String,
}

/// The kinds whose objects carry the nodes' problems.
pub const WITH_PROBLEMS: [Kind; 3] = [Kind::BGPConfiguration, Kind::BGPPeer, Kind::IPPool];

// ===== impl KubeStore =====

impl KubeStore {
    /// Sets `node`'s problems with object `key` (`None` or empty: removes
    /// `node`'s entry), leaving the other nodes' entries as they are;
    /// the object's revision after the write. An object that is not there
    /// is [`StoreError::NotFound`].
    pub async fn report_problems(
        &self,
        key: &Key,
        node: &str,
        problems: Option<&[ObjectProblem]>,
    ) -> Result<Revision, StoreError> {
        let op = || format!("patch {key} status.problems.{node}");
        if !WITH_PROBLEMS.contains(&key.kind) {
            return Err(StoreError::Kube {
                op: op(),
                message: format!("{} carries no problems in its status", key.kind),
            });
        }
        let api = self.api(key.kind)?;
        let entry = match problems {
            Some(p) if !p.is_empty() => json!(p),
            _ => Value::Null,
        };
        let patch = json!({ "status": { "problems": { node: entry } } });
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(made) => kinds::revision_of(&made.metadata, key.kind, &key.name),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                Err(StoreError::NotFound { key: key.clone() })
            }
            Err(e) => Err(kube_error(op(), e)),
        }
    }

    /// What `node` has reported on every object ([`WITH_PROBLEMS`] kinds),
    /// as the objects' statuses hold it now: for a node agent starting,
    /// so that it clears what an earlier run wrote and no longer holds.
    pub async fn reported_problems(
        &self,
        node: &str,
    ) -> Result<BTreeMap<Key, Vec<ObjectProblem>>, StoreError> {
        let mut out = BTreeMap::new();
        for kind in WITH_PROBLEMS {
            let list = self
                .api(kind)?
                .list(&ListParams::default())
                .await
                .map_err(|e| kube_error(format!("list {kind}"), e))?;
            for object in list.items {
                let Some(name) = object.metadata.name.clone() else {
                    continue;
                };
                let Some(mine) = object
                    .data
                    .pointer(&format!("/status/problems/{}", escape(node)))
                else {
                    continue;
                };
                // Unreadable (another writer's): rewritten as ours.
                let problems: Vec<ObjectProblem> = serde_json::from_value(mine.clone())
                    .unwrap_or_else(|_| {
                        vec![ObjectProblem {
                            field: String::new(),
                            message: mine.to_string(),
                        }]
                    });
                out.insert(Key::new(kind, name), problems);
            }
        }
        Ok(out)
    }
}

// ===== helpers =====

/// `name` as one JSON pointer token (RFC 6901).
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}
