//! Cluster resources: the objects users write (`BGPConfiguration`,
//! `BGPPeer`, `BGPFilter`, `IPPool`, `Node`), the ones the system writes
//! (`WorkloadEndpoint`, IPAM `Block`, `BlockAffinity`, `Handle`), and
//! `CalicoNodeStatus`, which either makes and each node agent fills.
//!
//! Every resource is `{apiVersion, kind, metadata, spec}` (a
//! `CalicoNodeStatus` also has `status`). Two API versions are read:
//! Calico's `projectcalico.org/v3` (for the user kinds, `Node` and
//! `CalicoNodeStatus`, with Calico's field names, so existing manifests
//! load as is) and our own
//! `tortie.io/v1` (every kind). Calico fields we do not implement are listed
//! in [`compat`]: each is either warned about (and ignored) or rejected,
//! never silently dropped; any other unknown field is rejected with its path.
//!
//! # Layout
//!
//! - `mod.rs`: [`Kind`], [`ApiVersion`], [`Metadata`], [`Object`],
//!   [`Resource`], and the loaders ([`load_documents`], [`Resource::from_value`]).
//! - `bgp.rs`: `BGPConfiguration`, `BGPPeer`; `bgp_filter.rs`:
//!   `BGPFilter`; `communities.rs`: BGP community values; `pool.rs`: `IPPool`;
//!   `node.rs`: `Node`; `ipam.rs`: `Block`, `BlockAffinity`, `Handle`,
//!   `WorkloadEndpoint`; `node_status.rs`: `CalicoNodeStatus` (the one
//!   kind with a top-level `status`); `time.rs`: its RFC 3339 times.
//! - `compat.rs`: the Calico compatibility table; `selector.rs`: Calico
//!   label selectors (parser + evaluator).
//!
//! The user reference is `docs/resources.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConfigError;
use crate::yaml;

mod bgp;
mod bgp_filter;
pub mod communities;
pub mod compat;
mod ipam;
mod node;
mod node_status;
mod pool;
pub mod selector;
#[cfg(test)]
mod tests;
pub mod time;

pub use bgp::{
    AsNumber, BGPConfigurationSpec, BGPPeerSpec, CidrEntry, PasswordSource, PeerAddress, Seconds,
    SecretKeyRef, SourceAddress,
};
pub use bgp_filter::{BGPFilterRule, BGPFilterSpec, FilterSource, PrefixLength};
pub use communities::{CommunityValue, PrefixCommunities};
pub use compat::Warning;
pub use ipam::{
    AffinityState, AllocationAttribute, BlockAffinitySpec, BlockSpec, HandleSpec,
    WorkloadEndpointSpec,
};
pub use node::{NodeAddress, NodeBgpSpec, NodeSpec};
pub use node_status::{
    AgentStatus, BgpStatus, CalicoNodeStatusSpec, DaemonState, DaemonStatus, LearnedFrom,
    NodeStatusClass, NodeStatusReport, PeerStatus, PeerType, RouteSourceType, RouteStatus,
    RouteType, RoutesStatus, SessionState, BLACKHOLE, DEFAULT_REFRESH_SECONDS,
    MAX_ROUTES_PER_FAMILY, MAX_UPDATE_PERIOD_SECONDS, NO_GATEWAY, STALE_PERIODS,
};
pub use pool::{AllowedUse, EncapMode, IPPoolSpec};
pub use selector::Selector;

/// Calico's API group and version, accepted for the four user kinds.
pub const CALICO_API_VERSION: &str = "projectcalico.org/v3";
/// Our own API group and version, accepted for every kind and written by us.
pub const TORTIE_API_VERSION: &str = "tortie.io/v1";
/// Calico's default AS number for nodes without one.
pub const DEFAULT_AS_NUMBER: u32 = 64512;
/// Default IPv4 block size (a /26: 64 addresses per block).
pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
/// Default IPv6 block size (a /122: 64 addresses per block).
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;

/// The kinds of resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// Cluster-wide BGP settings (AS number, node-to-node mesh).
    BGPConfiguration,
    /// A BGP neighbour of some or all nodes.
    BGPPeer,
    /// A range pod addresses come from.
    IPPool,
    /// A node: its addresses and BGP settings.
    Node,
    /// A pod's network interface (written by the CNI plugin).
    WorkloadEndpoint,
    /// An IPAM block: a slice of a pool and its allocations.
    Block,
    /// A block's claim by a node.
    BlockAffinity,
    /// The allocations of one workload interface (container id + interface).
    Handle,
    /// A node's BGP sessions and agent, as that node reports them.
    CalicoNodeStatus,
    /// Route filters a BGPPeer applies to what it imports and exports.
    BGPFilter,
}

/// Which API version a document was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    /// `projectcalico.org/v3`.
    Calico,
    /// `tortie.io/v1`.
    Tortie,
}

/// Identifies one stored object: its kind and name (`namespace/name` for
/// namespaced kinds).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The kind.
    pub kind: Kind,
    /// The name, `namespace/name` when the object has a namespace.
    pub name: String,
}

/// Object metadata, as Kubernetes writes it (the part we use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Unique per kind (per namespace for `WorkloadEndpoint`).
    pub name: String,
    /// Only `WorkloadEndpoint` has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels, matched by selectors (`nodeSelector`, `peerSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form notes; never interpreted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A resource of one kind: metadata plus its typed spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Object<S> {
    /// Name, labels.
    pub metadata: Metadata,
    /// The kind's settings.
    pub spec: S,
}

/// `BGPConfiguration` (Calico's name).
#[allow(clippy::upper_case_acronyms)]
pub type BGPConfiguration = Object<BGPConfigurationSpec>;
/// `BGPPeer`.
#[allow(clippy::upper_case_acronyms)]
pub type BGPPeer = Object<BGPPeerSpec>;
/// `IPPool`.
#[allow(clippy::upper_case_acronyms)]
pub type IPPool = Object<IPPoolSpec>;
/// `Node`.
pub type Node = Object<NodeSpec>;
/// `WorkloadEndpoint`.
pub type WorkloadEndpoint = Object<WorkloadEndpointSpec>;
/// IPAM `Block`.
pub type Block = Object<BlockSpec>;
/// IPAM `BlockAffinity`.
pub type BlockAffinity = Object<BlockAffinitySpec>;
/// IPAM `Handle`.
pub type Handle = Object<HandleSpec>;
/// `CalicoNodeStatus` (its `status` is in the spec type).
pub type CalicoNodeStatus = Object<CalicoNodeStatusSpec>;
/// `BGPFilter`.
#[allow(clippy::upper_case_acronyms)]
pub type BGPFilter = Object<BGPFilterSpec>;

/// What each spec type says about itself.
pub trait Spec: Clone + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The kind this spec belongs to.
    const KIND: Kind;
    /// Checks values serde cannot (ranges, combinations) and fills in the
    /// defaults that depend on other fields. Errors name the field
    /// (`spec.blockSize`).
    fn validate(&mut self, metadata: &Metadata) -> Result<(), ConfigError>;
    /// Wraps a typed object into [`Resource`].
    fn wrap(object: Object<Self>) -> Resource;
    /// The typed object inside `resource`, if it is of this kind.
    fn unwrap(resource: Resource) -> Option<Object<Self>>;
}

/// Any resource.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::upper_case_acronyms)]
pub enum Resource {
    /// See [`Kind::BGPConfiguration`].
    BGPConfiguration(BGPConfiguration),
    /// See [`Kind::BGPPeer`].
    BGPPeer(BGPPeer),
    /// See [`Kind::IPPool`].
    IPPool(IPPool),
    /// See [`Kind::Node`].
    Node(Node),
    /// See [`Kind::WorkloadEndpoint`].
    WorkloadEndpoint(WorkloadEndpoint),
    /// See [`Kind::Block`].
    Block(Block),
    /// See [`Kind::BlockAffinity`].
    BlockAffinity(BlockAffinity),
    /// See [`Kind::Handle`].
    Handle(Handle),
    /// See [`Kind::CalicoNodeStatus`].
    CalicoNodeStatus(CalicoNodeStatus),
    /// See [`Kind::BGPFilter`].
    BGPFilter(BGPFilter),
}

/// The result of loading a file: the resources, in file order, and what
/// was ignored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    /// Every resource of the file.
    pub resources: Vec<Resource>,
    /// Calico fields we ignored, one per occurrence.
    pub warnings: Vec<Warning>,
}

/// Loads a multi-document (`---`) YAML file of resources. Errors carry the
/// line (`ConfigError::line`); two resources of the same kind and name are
/// an error.
pub fn load_documents(text: &str) -> Result<Loaded, ConfigError> {
    let mut loaded = Loaded::default();
    let mut seen = BTreeMap::new();
    for doc in yaml::documents(text)? {
        let (resource, warnings) = Resource::from_value(doc.value).map_err(|e| {
            let e = doc.lines.locate(e);
            match e.line() {
                Some(_) => e,
                None => ConfigError::At {
                    line: doc.line,
                    error: Box::new(e),
                },
            }
        })?;
        let key = resource.key();
        if let Some(first) = seen.insert(key.clone(), doc.line) {
            return Err(ConfigError::At {
                line: doc.line,
                error: Box::new(ConfigError::invalid(
                    "metadata.name",
                    &key.name,
                    format!(
                        "a {:?} of this name is already defined at line {first}; names are unique per kind",
                        key.kind
                    ),
                )),
            });
        }
        loaded
            .warnings
            .extend(warnings.into_iter().map(|w| w.at(&doc.lines, &key)));
        loaded.resources.push(resource);
    }
    Ok(loaded)
}

// ===== impl Kind =====

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 10] = [
        Kind::BGPConfiguration,
        Kind::BGPPeer,
        Kind::IPPool,
        Kind::Node,
        Kind::WorkloadEndpoint,
        Kind::Block,
        Kind::BlockAffinity,
        Kind::Handle,
        Kind::CalicoNodeStatus,
        Kind::BGPFilter,
    ];

    /// The name written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BGPConfiguration => "BGPConfiguration",
            Kind::BGPPeer => "BGPPeer",
            Kind::IPPool => "IPPool",
            Kind::Node => "Node",
            Kind::WorkloadEndpoint => "WorkloadEndpoint",
            Kind::Block => "Block",
            Kind::BlockAffinity => "BlockAffinity",
            Kind::Handle => "Handle",
            Kind::CalicoNodeStatus => "CalicoNodeStatus",
            Kind::BGPFilter => "BGPFilter",
        }
    }

    /// Parses the name written in `kind:`.
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether only users write this kind (in the file backend: only in
    /// `resources.yaml`). `Node` is not one: each node agent registers its
    /// own, and users change it through the datastore (`tortiectl apply`).
    pub fn is_user_kind(self) -> bool {
        matches!(
            self,
            Kind::BGPConfiguration | Kind::BGPPeer | Kind::BGPFilter | Kind::IPPool
        )
    }

    /// Whether Calico's `projectcalico.org/v3` names this kind (the user
    /// kinds, `Node` and `CalicoNodeStatus`).
    pub fn is_calico_kind(self) -> bool {
        self.is_user_kind() || matches!(self, Kind::Node | Kind::CalicoNodeStatus)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ===== impl Key =====

impl Key {
    /// A key of `kind` and `name`.
    pub fn new(kind: Kind, name: impl Into<String>) -> Key {
        Key {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

// ===== impl Object =====

impl<S: Spec> Object<S> {
    /// An object named `name` with no labels.
    pub fn new(name: impl Into<String>, spec: S) -> Object<S> {
        Object {
            metadata: Metadata {
                name: name.into(),
                ..Metadata::default()
            },
            spec,
        }
    }

    /// Its key in a datastore.
    pub fn key(&self) -> Key {
        let name = match &self.metadata.namespace {
            Some(ns) => format!("{ns}/{}", self.metadata.name),
            None => self.metadata.name.clone(),
        };
        Key::new(S::KIND, name)
    }

    /// Validates and fills defaults, as loading does.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        validate_name(&self.metadata)?;
        self.spec.validate(&self.metadata)
    }
}

// ===== impl Resource =====

impl Resource {
    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::BGPConfiguration(_) => Kind::BGPConfiguration,
            Resource::BGPPeer(_) => Kind::BGPPeer,
            Resource::IPPool(_) => Kind::IPPool,
            Resource::Node(_) => Kind::Node,
            Resource::WorkloadEndpoint(_) => Kind::WorkloadEndpoint,
            Resource::Block(_) => Kind::Block,
            Resource::BlockAffinity(_) => Kind::BlockAffinity,
            Resource::Handle(_) => Kind::Handle,
            Resource::CalicoNodeStatus(_) => Kind::CalicoNodeStatus,
            Resource::BGPFilter(_) => Kind::BGPFilter,
        }
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        match self {
            Resource::BGPConfiguration(o) => &o.metadata,
            Resource::BGPPeer(o) => &o.metadata,
            Resource::IPPool(o) => &o.metadata,
            Resource::Node(o) => &o.metadata,
            Resource::WorkloadEndpoint(o) => &o.metadata,
            Resource::Block(o) => &o.metadata,
            Resource::BlockAffinity(o) => &o.metadata,
            Resource::Handle(o) => &o.metadata,
            Resource::CalicoNodeStatus(o) => &o.metadata,
            Resource::BGPFilter(o) => &o.metadata,
        }
    }

    /// Its key in a datastore.
    pub fn key(&self) -> Key {
        match self {
            Resource::BGPConfiguration(o) => o.key(),
            Resource::BGPPeer(o) => o.key(),
            Resource::IPPool(o) => o.key(),
            Resource::Node(o) => o.key(),
            Resource::WorkloadEndpoint(o) => o.key(),
            Resource::Block(o) => o.key(),
            Resource::BlockAffinity(o) => o.key(),
            Resource::Handle(o) => o.key(),
            Resource::CalicoNodeStatus(o) => o.key(),
            Resource::BGPFilter(o) => o.key(),
        }
    }

    /// Validates and fills defaults (as loading does).
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        match self {
            Resource::BGPConfiguration(o) => o.validate(),
            Resource::BGPPeer(o) => o.validate(),
            Resource::IPPool(o) => o.validate(),
            Resource::Node(o) => o.validate(),
            Resource::WorkloadEndpoint(o) => o.validate(),
            Resource::Block(o) => o.validate(),
            Resource::BlockAffinity(o) => o.validate(),
            Resource::Handle(o) => o.validate(),
            Resource::CalicoNodeStatus(o) => o.validate(),
            Resource::BGPFilter(o) => o.validate(),
        }
    }

    /// The typed object, if `self` is of that kind.
    pub fn into_typed<S: Spec>(self) -> Option<Object<S>> {
        S::unwrap(self)
    }

    /// Reads one document tree: checks `apiVersion` and `kind`, applies the
    /// Calico compatibility table, deserializes strictly, validates and
    /// fills defaults. Returns the warnings for ignored Calico fields.
    pub fn from_value(mut value: Value) -> Result<(Resource, Vec<Warning>), ConfigError> {
        let Value::Object(map) = &mut value else {
            return Err(ConfigError::Schema {
                field: "(top level)".into(),
                message: "a resource is a mapping with apiVersion, kind, metadata and spec".into(),
            });
        };
        let api = match map.remove("apiVersion") {
            Some(Value::String(s)) if s == CALICO_API_VERSION => ApiVersion::Calico,
            Some(Value::String(s)) if s == TORTIE_API_VERSION => ApiVersion::Tortie,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "apiVersion",
                    shown(&other),
                    format!("expected {CALICO_API_VERSION} or {TORTIE_API_VERSION}"),
                ))
            }
            None => {
                return Err(ConfigError::Schema {
                    field: "apiVersion".into(),
                    message: format!(
                        "missing; write {TORTIE_API_VERSION} (or {CALICO_API_VERSION} for Calico manifests)"
                    ),
                })
            }
        };
        let kind = match map.remove("kind") {
            Some(Value::String(s)) => Kind::parse(&s).ok_or_else(|| {
                ConfigError::invalid(
                    "kind",
                    format!("{s:?}"),
                    format!("expected one of {}", kind_list()),
                )
            })?,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "kind",
                    shown(&other),
                    format!("expected one of {}", kind_list()),
                ))
            }
            None => {
                return Err(ConfigError::Schema {
                    field: "kind".into(),
                    message: format!("missing; one of {}", kind_list()),
                })
            }
        };
        if api == ApiVersion::Calico && !kind.is_calico_kind() {
            return Err(ConfigError::invalid(
                "apiVersion",
                CALICO_API_VERSION,
                format!("{kind} is only read as {TORTIE_API_VERSION}"),
            ));
        }
        let warnings = compat::strip(kind, api, &mut value)?;
        if kind == Kind::CalicoNodeStatus {
            // The one kind with a top-level status (kept in the spec type).
            let status = node_status::take_status(&mut value)?;
            let mut object: CalicoNodeStatus = yaml::from_value(value)?;
            object.spec.status = status;
            object.validate()?;
            return Ok((Resource::CalicoNodeStatus(object), warnings));
        }
        let resource = match kind {
            Kind::BGPConfiguration => typed::<BGPConfigurationSpec>(value)?,
            Kind::BGPPeer => typed::<BGPPeerSpec>(value)?,
            Kind::IPPool => typed::<IPPoolSpec>(value)?,
            Kind::Node => typed::<NodeSpec>(value)?,
            Kind::WorkloadEndpoint => typed::<WorkloadEndpointSpec>(value)?,
            Kind::Block => typed::<BlockSpec>(value)?,
            Kind::BlockAffinity => typed::<BlockAffinitySpec>(value)?,
            Kind::Handle => typed::<HandleSpec>(value)?,
            Kind::BGPFilter => {
                let name = value["metadata"]["name"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string();
                typed::<BGPFilterSpec>(value).map_err(|e| bgp_filter::name_in_error(e, &name))?
            }
            Kind::CalicoNodeStatus => unreachable!("read above"),
        };
        Ok((resource, warnings))
    }

    /// Reads one resource from JSON text, as the datastores keep it. The
    /// result is that of [`Resource::from_value`] on the parsed text; a
    /// record as [`Resource::to_value`] writes it is read straight into
    /// its type, without building a tree first (every agent reads every
    /// record of the kinds it watches). Any other text (a Calico
    /// document, a field the type does not have, a bad value) is read by
    /// `from_value`, for the same errors and warnings. `kind` is the kind
    /// the record should be (its key's): a record of another kind is read
    /// by `from_value` too.
    pub fn from_json(kind: Kind, text: &str) -> Result<(Resource, Vec<Warning>), ConfigError> {
        fn direct<S: Spec>(text: &str) -> Option<Resource> {
            let stored: Stored<S> = serde_json::from_str(text).ok()?;
            if stored.api_version != TORTIE_API_VERSION || stored.kind != S::KIND.as_str() {
                return None;
            }
            let mut object = Object {
                metadata: stored.metadata,
                spec: stored.spec,
            };
            object.validate().ok()?;
            Some(S::wrap(object))
        }
        let fast = match kind {
            Kind::BGPConfiguration => direct::<BGPConfigurationSpec>(text),
            Kind::BGPPeer => direct::<BGPPeerSpec>(text),
            Kind::IPPool => direct::<IPPoolSpec>(text),
            Kind::Node => direct::<NodeSpec>(text),
            Kind::WorkloadEndpoint => direct::<WorkloadEndpointSpec>(text),
            Kind::Block => direct::<BlockSpec>(text),
            Kind::BlockAffinity => direct::<BlockAffinitySpec>(text),
            Kind::Handle => direct::<HandleSpec>(text),
            Kind::BGPFilter => direct::<BGPFilterSpec>(text),
            // A stored status is read by from_value (its top-level
            // status is not in the spec type's serde form).
            Kind::CalicoNodeStatus => None,
        };
        match fast {
            Some(resource) => Ok((resource, Vec::new())),
            None => {
                let value = serde_json::from_str(text).map_err(|e| ConfigError::Schema {
                    field: "(top level)".into(),
                    message: format!("not JSON: {e}"),
                })?;
                Resource::from_value(value)
            }
        }
    }

    /// The resource as `{apiVersion: tortie.io/v1, kind, metadata, spec}`;
    /// [`Resource::from_value`] reads it back unchanged.
    pub fn to_value(&self) -> Value {
        let inner = match self {
            Resource::BGPConfiguration(o) => serde_json::to_value(o),
            Resource::BGPPeer(o) => serde_json::to_value(o),
            Resource::IPPool(o) => serde_json::to_value(o),
            Resource::Node(o) => serde_json::to_value(o),
            Resource::WorkloadEndpoint(o) => serde_json::to_value(o),
            Resource::Block(o) => serde_json::to_value(o),
            Resource::BlockAffinity(o) => serde_json::to_value(o),
            Resource::Handle(o) => serde_json::to_value(o),
            Resource::CalicoNodeStatus(o) => serde_json::to_value(o),
            Resource::BGPFilter(o) => serde_json::to_value(o),
        };
        // Our types only hold strings, numbers, maps and lists with string
        // keys: serializing them cannot fail.
        let mut map = match inner {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let mut out = serde_json::Map::new();
        out.insert("apiVersion".into(), TORTIE_API_VERSION.into());
        out.insert("kind".into(), self.kind().as_str().into());
        out.append(&mut map);
        if let Resource::CalicoNodeStatus(o) = self {
            if let Some(status) = &o.spec.status {
                out.insert(
                    "status".into(),
                    serde_json::to_value(status).unwrap_or_default(),
                );
            }
        }
        Value::Object(out)
    }
}

// ===== helpers =====

/// A resource as [`Resource::to_value`] writes it, read in one pass.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Stored<S> {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: S,
}

/// Deserializes `{metadata, spec}` into `Object<S>` and validates it.
fn typed<S: Spec>(value: Value) -> Result<Resource, ConfigError> {
    let mut object: Object<S> = yaml::from_value(value)?;
    object.validate()?;
    Ok(S::wrap(object))
}

/// Names are DNS-1123 subdomains as in Kubernetes: lowercase alphanumerics,
/// `-` and `.`, starting and ending alphanumeric, at most 253 characters.
fn validate_name(metadata: &Metadata) -> Result<(), ConfigError> {
    check_name("metadata.name", &metadata.name)?;
    if let Some(ns) = &metadata.namespace {
        check_name("metadata.namespace", ns)?;
    }
    Ok(())
}

/// One name (of an object, or a field that names one) by the rule of
/// [`validate_name`]; the error names `field`.
pub(crate) fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty()
        || name.len() > 253
        || !name.chars().all(ok_char)
        || !edge(name.chars().next())
        || !edge(name.chars().last())
    {
        return Err(ConfigError::invalid(
            field,
            format!("{name:?}"),
            "a name is 1-253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

/// `"BGPConfiguration, BGPPeer, ..."`.
fn kind_list() -> String {
    Kind::ALL.map(Kind::as_str).join(", ")
}

/// A JSON value as the user would recognise it.
pub(crate) fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Implements [`Spec`] for `$spec` of kind `$kind`, validating with the
/// inherent method `$spec::check(&mut self, &Metadata)`.
macro_rules! spec_kind {
    ($spec:ty, $kind:ident) => {
        impl $crate::resources::Spec for $spec {
            const KIND: $crate::resources::Kind = $crate::resources::Kind::$kind;
            fn validate(
                &mut self,
                metadata: &$crate::resources::Metadata,
            ) -> Result<(), $crate::error::ConfigError> {
                self.check(metadata)
            }
            fn wrap(object: $crate::resources::Object<Self>) -> $crate::resources::Resource {
                $crate::resources::Resource::$kind(object)
            }
            fn unwrap(
                resource: $crate::resources::Resource,
            ) -> Option<$crate::resources::Object<Self>> {
                match resource {
                    $crate::resources::Resource::$kind(o) => Some(o),
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use spec_kind;
