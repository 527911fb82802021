//! The Calico compatibility table: Calico `projectcalico.org/v3` fields we
//! read but do not implement. Each is either **warned** (ignored, and
//! reported in [`Warning`]s: ignoring it changes no route or session) or
//! **rejected** (an error: ignoring it would silently change routing or
//! security). Fields in neither list and not in our model are unknown and
//! rejected with their path by serde. `docs/resources.md` prints this table.

use std::fmt;

use serde_json::Value;

use super::{shown, ApiVersion, Key, Kind};
use crate::error::ConfigError;
use crate::yaml::Lines;

/// How we treat one Calico field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Read and ignored with a warning.
    Warned,
    /// An error.
    Rejected,
    /// Ignored with a warning when it has this (default) value, rejected
    /// with any other.
    WarnedIf(&'static str),
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// The kind, or `None` for every kind (metadata fields).
    pub kind: Option<Kind>,
    /// The field's path, `spec.password`.
    pub field: &'static str,
    /// What we do with it.
    pub support: Support,
    /// Why.
    pub reason: &'static str,
}

/// A Calico field that was ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The resource.
    pub key: Option<Key>,
    /// The field's path.
    pub field: String,
    /// The line it is on, when loaded from a file.
    pub line: Option<usize>,
    /// Why it was ignored.
    pub reason: String,
}

/// Kubernetes bookkeeping that `kubectl get -o yaml` prints: ignored.
const K8S: &str = "Kubernetes bookkeeping; ignored";

/// The table. Order: kind, then field.
pub const TABLE: &[Entry] = &[
    // Every kind: Kubernetes metadata written by the API server.
    e(None, "metadata.uid", Support::Warned, K8S),
    e(None, "metadata.resourceVersion", Support::Warned, "revisions come from the datastore; ignored"),
    e(None, "metadata.creationTimestamp", Support::Warned, K8S),
    e(None, "metadata.generation", Support::Warned, K8S),
    e(None, "metadata.managedFields", Support::Warned, K8S),
    e(None, "metadata.selfLink", Support::Warned, K8S),
    e(None, "metadata.ownerReferences", Support::Warned, K8S),
    e(None, "metadata.finalizers", Support::Warned, K8S),
    e(None, "metadata.generateName", Support::Rejected, "names must be given; write metadata.name"),
    // BGPConfiguration
    e(Some(Kind::BGPConfiguration), "spec.bindMode", Support::WarnedIf("None"), "we always listen on every address; NodeIP is not implemented"),
    e(Some(Kind::BGPConfiguration), "spec.ignoredInterfaces", Support::Warned, "tortie-node's --ip-autodetection-method skip-interface=REGEX does this"),
    e(Some(Kind::BGPConfiguration), "spec.localWorkloadPeeringIPV4", Support::Warned, "peering with local workloads is not implemented"),
    e(Some(Kind::BGPConfiguration), "spec.localWorkloadPeeringIPV6", Support::Warned, "peering with local workloads is not implemented"),
    e(Some(Kind::BGPConfiguration), "spec.nodeMeshPassword", Support::Rejected, "TCP MD5 from a Kubernetes secret is not implemented; ignoring it would run the mesh unauthenticated"),
    e(Some(Kind::BGPConfiguration), "spec.programClusterRoutes", Support::WarnedIf("Enabled"), "cluster routes are always programmed"),
    e(Some(Kind::BGPConfiguration), "spec.serviceLoadBalancerAggregation", Support::WarnedIf("Enabled"), "service ranges are always announced as ranges (Enabled); Disabled is not implemented"),
    // BGPPeer
    e(Some(Kind::BGPPeer), "spec.birdGatewayMode", Support::Warned, "BIRD-specific"),
    e(Some(Kind::BGPPeer), "spec.localASNumber", Support::Rejected, "a per-peer local AS is not implemented; ignoring it would present the wrong AS"),
    e(Some(Kind::BGPPeer), "spec.localWorkloadSelector", Support::Rejected, "peering with local workloads is not implemented"),
    e(Some(Kind::BGPPeer), "spec.nextHopMode", Support::WarnedIf("Auto"), "only Auto (and keepOriginalNextHop) is implemented"),
    e(Some(Kind::BGPPeer), "spec.restartMode", Support::WarnedIf("GracefulRestart"), "graceful restart is always offered"),
    // IPPool
    e(Some(Kind::IPPool), "spec.assignmentMode", Support::WarnedIf("Automatic"), "only Automatic assignment is implemented"),
    e(Some(Kind::IPPool), "spec.ipip", Support::Rejected, "the deprecated v1 form; write spec.ipipMode"),
    e(Some(Kind::IPPool), "spec.nat-outgoing", Support::Rejected, "the deprecated v1 form; write spec.natOutgoing"),
    // Node
    e(Some(Kind::Node), "spec.orchRefs", Support::Warned, "the node name is the Kubernetes node name"),
    e(Some(Kind::Node), "spec.wireguard", Support::Warned, "WireGuard is not implemented"),
    e(Some(Kind::Node), "status", Support::Warned, "status is written by the agent; ignored on input"),
];

/// Removes the table's fields from `value` (a Calico document; for
/// `tortie.io/v1` only the metadata rows apply). Returns the warnings, or
/// the first rejected field as an error.
pub(crate) fn strip(
    kind: Kind,
    api: ApiVersion,
    value: &mut Value,
) -> Result<Vec<Warning>, ConfigError> {
    let mut warnings = Vec::new();
    for entry in TABLE {
        let applies = match entry.kind {
            None => true,
            Some(k) => k == kind && api == ApiVersion::Calico,
        };
        if !applies {
            continue;
        }
        let Some(found) = take(value, entry.field) else {
            continue;
        };
        let rejected = match entry.support {
            Support::Warned => false,
            Support::Rejected => true,
            Support::WarnedIf(ok) => found.as_str() != Some(ok),
        };
        if rejected {
            let allowed = match entry.support {
                Support::WarnedIf(ok) => {
                    format!("not supported: {}; only {ok:?} is accepted", entry.reason)
                }
                _ => format!("not supported: {}", entry.reason),
            };
            return Err(ConfigError::invalid(entry.field, shown(&found), allowed));
        }
        warnings.push(Warning {
            key: None,
            field: entry.field.to_string(),
            line: None,
            reason: entry.reason.to_string(),
        });
    }
    Ok(warnings)
}

// ===== impl Warning =====

impl Warning {
    /// Adds the resource and the line.
    pub(crate) fn at(mut self, lines: &Lines, key: &Key) -> Warning {
        self.line = lines.line(&self.field);
        self.key = Some(key.clone());
        self
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}: ignored: {}", self.field, self.reason)
    }
}

// ===== helpers =====

const fn e(
    kind: Option<Kind>,
    field: &'static str,
    support: Support,
    reason: &'static str,
) -> Entry {
    Entry {
        kind,
        field,
        support,
        reason,
    }
}

/// Removes and returns the field at the dotted `path`.
fn take(value: &mut Value, path: &str) -> Option<Value> {
    let (parents, last) = match path.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, path),
    };
    let mut node = value;
    if let Some(parents) = parents {
        for part in parents.split('.') {
            node = node.as_object_mut()?.get_mut(part)?;
        }
    }
    node.as_object_mut()?.remove(last)
}
