//! Where each kind lives in the Kubernetes API, and objects to and from
//! our resources.
//!
//! The user kinds and `CalicoNodeStatus` are served in Calico's group,
//! `projectcalico.org/v3`, so that Calico manifests apply with `kubectl
//! apply -f` unchanged; they are read as Calico documents (the
//! compatibility table applies: Calico fields we do not implement are
//! warned about or refused, by name). What the system writes lives in our
//! group, `tortie.io/v1`. The CRDs are in `deploy/crds.yaml`.
//!
//! A `CalicoNodeStatus`'s `status` is its CRD's status subresource: the
//! API server ignores it on create and on update of the object, and
//! writes it only through `/status` ([`status_of`] picks it out for that
//! second write).

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use serde_json::{json, Map, Value};
use tortie_config::resources::{Kind, Resource, CALICO_API_VERSION, TORTIE_API_VERSION};

use crate::{Revision, StoreError, Versioned};

/// A kind's place in the API.
#[derive(Clone, Copy, Debug)]
pub(super) struct Place {
    pub group: &'static str,
    pub version: &'static str,
    /// The kind's name in the API (`IPAMBlock` for our `Block`).
    pub kind: &'static str,
    pub plural: &'static str,
}

/// Where `kind` lives as a custom resource; `None` for the kinds that map
/// onto core objects (Node: the Kubernetes Node, `node.rs`;
/// WorkloadEndpoint: its Pod, `endpoint.rs`).
pub(super) fn place(kind: Kind) -> Option<Place> {
    let calico = |kind, plural| Place {
        group: "projectcalico.org",
        version: "v3",
        kind,
        plural,
    };
    let tortie = |kind, plural| Place {
        group: "tortie.io",
        version: "v1",
        kind,
        plural,
    };
    Some(match kind {
        Kind::BGPConfiguration => calico("BGPConfiguration", "bgpconfigurations"),
        Kind::BGPPeer => calico("BGPPeer", "bgppeers"),
        Kind::BGPFilter => calico("BGPFilter", "bgpfilters"),
        Kind::IPPool => calico("IPPool", "ippools"),
        Kind::Block => tortie("IPAMBlock", "ipamblocks"),
        Kind::BlockAffinity => tortie("BlockAffinity", "blockaffinities"),
        Kind::Handle => tortie("IPAMHandle", "ipamhandles"),
        Kind::CalicoNodeStatus => calico("CalicoNodeStatus", "caliconodestatuses"),
        Kind::Node | Kind::WorkloadEndpoint => return None,
    })
}

// ===== impl Place =====

impl Place {
    pub fn api_resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(self.group, self.version, self.kind);
        ApiResource::from_gvk_with_plural(&gvk, self.plural)
    }

    fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

/// The object to write for `resource` (its revision set when given: the
/// apiserver then refuses the write if the object changed). Its `status`,
/// if it has one, goes along (the API server keeps it only when written
/// through the status subresource).
pub(super) fn to_object(
    place: &Place,
    resource: &Resource,
    revision: Option<Revision>,
) -> DynamicObject {
    let meta = resource.metadata();
    let (spec, status) = match resource.to_value() {
        Value::Object(mut map) => (
            map.remove("spec").unwrap_or(Value::Null),
            map.remove("status"),
        ),
        _ => (Value::Null, None),
    };
    let mut data = json!({ "spec": spec });
    if let Some(status) = status {
        data["status"] = status;
    }
    DynamicObject {
        types: Some(kube::api::TypeMeta {
            api_version: place.api_version(),
            kind: place.kind.to_string(),
        }),
        metadata: ObjectMeta {
            name: Some(meta.name.clone()),
            labels: (!meta.labels.is_empty()).then(|| meta.labels.clone()),
            annotations: (!meta.annotations.is_empty()).then(|| meta.annotations.clone()),
            resource_version: revision.map(|r| r.to_string()),
            ..ObjectMeta::default()
        },
        data,
    }
}

/// Whether `resource` has a status to write through the status
/// subresource (a `CalicoNodeStatus` the node has filled).
pub(super) fn status_of(resource: &Resource) -> bool {
    matches!(resource, Resource::CalicoNodeStatus(o) if o.spec.status.is_some())
}

/// Our resource out of an object of `kind`, with its revision.
pub(super) fn from_object(kind: Kind, object: DynamicObject) -> Result<Versioned, StoreError> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let revision = revision_of(&object.metadata, kind, &name)?;
    let corrupt = |message: String| StoreError::Corrupt {
        file: format!("kubernetes:{kind}/{name}").into(),
        line: None,
        message,
    };
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.clone().into());
    if let Some(labels) = object.metadata.labels.filter(|l| !l.is_empty()) {
        metadata.insert("labels".into(), json!(labels));
    }
    if let Some(notes) = object.metadata.annotations.filter(|a| !a.is_empty()) {
        // kubectl's own note of what it applied is not the user's.
        let notes: std::collections::BTreeMap<_, _> = notes
            .into_iter()
            .filter(|(k, _)| k != "kubectl.kubernetes.io/last-applied-configuration")
            .collect();
        if !notes.is_empty() {
            metadata.insert("annotations".into(), json!(notes));
        }
    }
    let (spec, status) = match object.data {
        Value::Object(mut map) => (
            map.remove("spec").unwrap_or_else(|| json!({})),
            map.remove("status"),
        ),
        _ => (json!({}), None),
    };
    let api_version = if kind.is_calico_kind() {
        CALICO_API_VERSION
    } else {
        TORTIE_API_VERSION
    };
    let mut document = json!({
        "apiVersion": api_version,
        "kind": kind.as_str(),
        "metadata": metadata,
        "spec": spec,
    });
    if let Some(status) = status.filter(|_| kind == Kind::CalicoNodeStatus) {
        document["status"] = status;
    }
    let (resource, warnings) =
        Resource::from_value(document).map_err(|e| corrupt(e.to_string()))?;
    for w in warnings {
        tracing::warn!(object = %format!("{kind}/{name}"), "{w}");
    }
    Ok(Versioned { resource, revision })
}

/// The object's `resourceVersion`: with etcd underneath, the store-wide
/// revision of its last change.
pub(super) fn revision_of(
    meta: &ObjectMeta,
    kind: Kind,
    name: &str,
) -> Result<Revision, StoreError> {
    let text = meta.resource_version.as_deref().unwrap_or("");
    text.parse().map_err(|_| StoreError::Corrupt {
        file: format!("kubernetes:{kind}/{name}").into(),
        line: None,
        message: format!(
            "resourceVersion {text:?} is not a number (an API server not backed by etcd?)"
        ),
    })
}
