//! `WorkloadEndpoint` is the Pod: tortie-cni writes the endpoint of a
//! pod's interface onto the Pod itself, so that there is no second object
//! to drift from it, and it goes with the Pod.
//!
//! On the Pod: the annotation `tortie.io/workload-endpoint` holds the
//! endpoint (`{"name": ..., "spec": ...}`); the label
//! `tortie.io/workload-endpoint` holds a hash of its name, to find the Pod
//! from the endpoint's name and to watch only Pods that have one; Calico's
//! `cni.projectcalico.org/podIP`, `podIPs` and `containerID` annotations
//! say the same for tools that read those. One endpoint per Pod (its
//! `eth0`); only Kubernetes pods have one in this backend.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{json, Value};
use tortie_config::resources::{
    Key, Kind, Metadata, Object, Resource, WorkloadEndpoint, WorkloadEndpointSpec,
};

use super::watch::{Seen, Translate};
use super::{kinds, kube_error, KubeStore};
use crate::{Action, Listing, Only, Revision, StoreError, Versioned, Watch, WatchEvent};

/// The annotation with the endpoint, and the label with its name's hash.
pub(super) const ENDPOINT: &str = "tortie.io/workload-endpoint";
const POD_IP: &str = "cni.projectcalico.org/podIP";
const POD_IPS: &str = "cni.projectcalico.org/podIPs";
const CONTAINER_ID: &str = "cni.projectcalico.org/containerID";

/// The endpoint on a Pod, if it has one.
pub(super) fn from_pod(pod: &Pod) -> Result<Option<Versioned>, StoreError> {
    let Some(text) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ENDPOINT))
    else {
        return Ok(None);
    };
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let corrupt = |message: String| StoreError::Corrupt {
        file: format!("kubernetes:Pod/{namespace}/{pod_name}").into(),
        line: None,
        message: format!("annotation {ENDPOINT}: {message}"),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stored {
        name: String,
        spec: WorkloadEndpointSpec,
    }
    let stored: Stored = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let mut object = Object {
        metadata: Metadata {
            name: stored.name,
            namespace: Some(namespace.clone()),
            ..Metadata::default()
        },
        spec: stored.spec,
    };
    object.validate().map_err(|e| corrupt(e.to_string()))?;
    let revision = kinds::revision_of(&pod.metadata, Kind::WorkloadEndpoint, &pod_name)?;
    Ok(Some(Versioned {
        resource: Resource::WorkloadEndpoint(object),
        revision,
    }))
}

/// The label value for an endpoint name: 16 hex digits of a hash (names
/// are longer than a label value may be).
fn label_of(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Splits a key's `namespace/name`.
fn split(key: &Key) -> Result<(&str, &str), StoreError> {
    key.name.split_once('/').ok_or_else(|| StoreError::Kube {
        op: format!("{key}"),
        message: "a WorkloadEndpoint's key is namespace/name".into(),
    })
}

// ===== impl KubeStore: endpoints =====

impl KubeStore {
    fn pods(&self, namespace: Option<&str>) -> Api<Pod> {
        match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// The Pod holding the endpoint `key`, and the endpoint.
    async fn pod_of(&self, key: &Key) -> Result<Option<(Pod, Versioned)>, StoreError> {
        let (ns, name) = split(key)?;
        let selector = format!("{ENDPOINT}={}", label_of(name));
        let pods = self
            .pods(Some(ns))
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| kube_error(format!("get {key}"), e))?;
        for pod in pods.items {
            if let Some(v) = from_pod(&pod)? {
                if v.resource.key() == *key {
                    return Ok(Some((pod, v)));
                }
            }
        }
        Ok(None)
    }

    pub(super) async fn get_endpoint(&self, key: &Key) -> Result<Option<Versioned>, StoreError> {
        Ok(self.pod_of(key).await?.map(|(_, v)| v))
    }

    pub(super) async fn list_endpoints(&self) -> Result<Listing, StoreError> {
        let list = self
            .pods(None)
            .list(&ListParams::default().labels(ENDPOINT))
            .await
            .map_err(|e| kube_error("list WorkloadEndpoint (pods)".into(), e))?;
        super::listing("list pods", list, from_pod, |pod| {
            format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            )
        })
    }

    /// Writes `endpoint` (`None`: removes it) on Pod `ns/pod`, if the Pod
    /// is still at `revision`.
    async fn patch_pod(
        &self,
        key: &Key,
        ns: &str,
        pod: &str,
        endpoint: Option<&WorkloadEndpoint>,
        revision: Option<Revision>,
    ) -> Result<Pod, StoreError> {
        let (label, notes) = match endpoint {
            Some(w) => {
                let ips: Vec<String> = w.spec.ip_networks.iter().map(|n| n.to_string()).collect();
                let stored = json!({"name": w.metadata.name, "spec": w.spec});
                (
                    Value::from(label_of(&w.metadata.name)),
                    json!({
                        ENDPOINT: stored.to_string(),
                        POD_IP: ips.first().cloned().unwrap_or_default(),
                        POD_IPS: ips.join(","),
                        CONTAINER_ID: w.spec.container_id,
                    }),
                )
            }
            None => (
                Value::Null,
                json!({ENDPOINT: null, POD_IP: null, POD_IPS: null, CONTAINER_ID: null}),
            ),
        };
        let mut meta = json!({
            "labels": { ENDPOINT: label },
            "annotations": notes,
        });
        if let Some(r) = revision {
            meta["resourceVersion"] = r.to_string().into();
        }
        match self
            .pods(Some(ns))
            .patch(
                pod,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "metadata": meta })),
            )
            .await
        {
            Ok(p) => Ok(p),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(StoreError::Kube {
                op: format!("write {key}"),
                message: format!("no pod {ns}/{pod}: an endpoint lives on its Pod"),
            }),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(StoreError::Conflict {
                key: key.clone(),
                expected: revision.unwrap_or(0),
                current: self.get_endpoint(key).await?.map(|v| v.revision),
            }),
            Err(e) => Err(kube_error(format!("write {key}"), e)),
        }
    }

    /// The Pod an endpoint belongs on: its namespace and pod name.
    fn home(key: &Key, w: &WorkloadEndpoint) -> Result<(String, String), StoreError> {
        match (&w.metadata.namespace, &w.spec.pod) {
            (Some(ns), Some(pod)) => Ok((ns.clone(), pod.clone())),
            _ => Err(StoreError::Kube {
                op: format!("write {key}"),
                message: "in Kubernetes an endpoint is a pod's: it needs the pod's namespace \
                          and name (CNI_ARGS K8S_POD_NAMESPACE and K8S_POD_NAME)"
                    .into(),
            }),
        }
    }

    pub(super) async fn create_endpoint(
        &self,
        w: WorkloadEndpoint,
    ) -> Result<Versioned, StoreError> {
        let key = w.key();
        let (ns, pod) = Self::home(&key, &w)?;
        if let Some(v) = self.get_endpoint(&key).await? {
            return Err(StoreError::AlreadyExists {
                key,
                revision: v.revision,
            });
        }
        let made = self.patch_pod(&key, &ns, &pod, Some(&w), None).await?;
        written(&key, &made)
    }

    pub(super) async fn update_endpoint(
        &self,
        w: WorkloadEndpoint,
        revision: Revision,
    ) -> Result<Versioned, StoreError> {
        let key = w.key();
        let (ns, pod) = Self::home(&key, &w)?;
        let Some((holder, _)) = self.pod_of(&key).await? else {
            return Err(StoreError::NotFound { key });
        };
        if holder.metadata.name.as_deref() != Some(pod.as_str()) {
            return Err(StoreError::Kube {
                op: format!("update {key}"),
                message: "an endpoint cannot move to another pod".into(),
            });
        }
        let made = self
            .patch_pod(&key, &ns, &pod, Some(&w), Some(revision))
            .await?;
        written(&key, &made)
    }

    pub(super) async fn delete_endpoint(
        &self,
        key: &Key,
        revision: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let Some((pod, v)) = self.pod_of(key).await? else {
            return Err(StoreError::NotFound { key: key.clone() });
        };
        let (ns, _) = split(key)?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let made = self
            .patch_pod(key, ns, &name, None, Some(revision.unwrap_or(v.revision)))
            .await?;
        kinds::revision_of(&made.metadata, Kind::WorkloadEndpoint, &name)
    }

    /// A watch of the endpoints after `from` (0: those there are now, then
    /// what follows), of what `only` admits when given.
    pub(super) async fn watch_endpoints(
        &self,
        from: Revision,
        mut only: Option<Only>,
    ) -> Result<Watch, StoreError> {
        let listing = self.list_endpoints().await?;
        let items = super::admitted(only.as_mut(), listing.items);
        // From 0 the listing is delivered, so it is what was last seen;
        // after `from` only whose endpoints there are is known (a change
        // between `from` and the listing is still to come).
        let known = from == 0;
        let present = items
            .iter()
            .map(|v| {
                let last = known.then(|| v.resource.clone());
                (pod_key(&v.resource), (v.resource.key(), last))
            })
            .collect();
        let (first, after) = if known {
            (super::watch::as_creations(items), listing.revision)
        } else {
            (Vec::new(), from)
        };
        let api = self.pods(None);
        super::watch::start_selected(
            api,
            Kind::WorkloadEndpoint,
            after,
            first,
            Endpoints { present, only },
            Some(ENDPOINT),
            self.health.clone(),
        )
        .await
    }
}

/// What a write left, read back.
fn written(key: &Key, pod: &Pod) -> Result<Versioned, StoreError> {
    from_pod(pod)?.ok_or_else(|| StoreError::Kube {
        op: format!("write {key}"),
        message: "the pod lost its endpoint".into(),
    })
}

/// `namespace/pod` of an endpoint (the watch follows Pods).
fn pod_key(r: &Resource) -> String {
    match r {
        Resource::WorkloadEndpoint(w) => format!(
            "{}/{}",
            w.metadata.namespace.as_deref().unwrap_or_default(),
            w.spec.pod.as_deref().unwrap_or_default()
        ),
        _ => String::new(),
    }
}

/// Pod events to endpoint changes: a Pod that gains an endpoint creates
/// it, one that loses it (or goes) deletes it, one whose endpoint changes
/// updates it (replaced by one of another name: deletes the old, creates
/// the new), and the Pod's other changes (its status) are skipped.
pub(super) struct Endpoints {
    /// By `namespace/pod`: the endpoint's key, and what was last delivered
    /// (`None`: not known yet).
    present: HashMap<String, (Key, Option<Resource>)>,
    only: Option<Only>,
}

impl Translate<Pod> for Endpoints {
    fn translate(&mut self, action: Action, pod: Pod) -> Seen {
        let home = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let revision = match kinds::revision_of(&pod.metadata, Kind::WorkloadEndpoint, &home) {
            Ok(r) => r,
            Err(e) => return Seen::Fail(e),
        };
        let now = match action {
            Action::Deleted => None,
            _ => match from_pod(&pod) {
                Ok(v) => v.map(|v| v.resource),
                Err(e) => return Seen::Fail(e),
            },
        };
        let before = self.present.get(&home).cloned();
        if let (Some(only), None) = (self.only.as_mut(), &before) {
            // Not one delivered yet: only if it is wanted.
            let text = now
                .as_ref()
                .map(|r| serde_json::to_string(&r.to_value()).unwrap_or_default());
            let name = now.as_ref().map_or(home.clone(), |r| r.key().name);
            if !only.admits(&name, text.as_deref()) {
                return Seen::Skip(revision);
            }
        }
        let change = |action, key: Key, resource| WatchEvent {
            revision,
            action,
            key,
            resource,
        };
        match (before, now) {
            (None, None) => Seen::Skip(revision),
            (Some((key, _)), None) => {
                self.present.remove(&home);
                Seen::Changes(vec![change(Action::Deleted, key, None)])
            }
            (Some((_, Some(last))), Some(r)) if last == r => Seen::Skip(revision),
            (before, Some(r)) => {
                let key = r.key();
                self.present.insert(home, (key.clone(), Some(r.clone())));
                match before {
                    None => Seen::Changes(vec![change(Action::Created, key, Some(r))]),
                    Some((old, _)) if old != key => Seen::Changes(vec![
                        change(Action::Deleted, old, None),
                        change(Action::Created, key, Some(r)),
                    ]),
                    Some(_) => Seen::Changes(vec![change(Action::Updated, key, Some(r))]),
                }
            }
        }
    }
}
