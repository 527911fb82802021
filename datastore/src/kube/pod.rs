//! A Pod's annotations, and its Namespace's, for the CNI plugin: Calico's
//! per-pod IPAM annotations (`cni.projectcalico.org/ipAddrs`,
//! `ipv4pools`, ...) are read from the Pod being set up, and the pool
//! annotations (`ipv4pools`, `ipv6pools`) from its Namespace too.
//!
//! The Pod is read with a LIST narrowed by a field selector on the name,
//! not a GET: the plugin's role (`deploy/rbac.yaml`, ClusterRole
//! `tortie-cni`) may list and patch pods, and needs nothing more for
//! this. The Namespace is read with a GET (the role's `get` on
//! namespaces, and nothing else on them).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};

use super::{kube_error, KubeStore};
use crate::StoreError;

// ===== impl KubeStore: pods =====

impl KubeStore {
    /// The annotations of Pod `namespace/name` (empty if it has none), or
    /// `None` if there is no such Pod.
    pub async fn pod_annotations(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let selector = format!("metadata.name={name}");
        let list = pods
            .list(&ListParams::default().fields(&selector))
            .await
            .map_err(|e| kube_error(format!("read pod {namespace}/{name}"), e))?;
        Ok(list
            .items
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .map(|p| p.metadata.annotations.unwrap_or_default()))
    }

    /// The annotations of Namespace `name` (empty if it has none), or
    /// `None` if there is no such Namespace. One GET.
    pub async fn namespace_annotations(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let ns = namespaces
            .get_opt(name)
            .await
            .map_err(|e| kube_error(format!("get namespace {name}"), e))?;
        Ok(ns.map(|n| n.metadata.annotations.unwrap_or_default()))
    }
}
