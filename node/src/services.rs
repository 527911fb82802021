//! Pure: Kubernetes Services -> the service prefixes this node announces,
//! as Calico does it for the BGPConfiguration `default`'s
//! `serviceClusterIPs`, `serviceExternalIPs` and `serviceLoadBalancerIPs`
//! (confd's route generator, with load balancer aggregation on, Calico's
//! default):
//!
//! - **The ranges, from every node**: every `serviceClusterIPs` range, and
//!   every `serviceExternalIPs` / `serviceLoadBalancerIPs` range that is
//!   not a single address (/32, /128). Traffic to a service of policy
//!   `Cluster` spreads over all nodes (ECMP at the router).
//! - **A Service's own addresses, as /32 (/128)**: for a Service of type
//!   ClusterIP, NodePort or LoadBalancer that has a cluster IP (not
//!   headless), its cluster IPs inside a `serviceClusterIPs` range, its
//!   `externalIPs` inside a `serviceExternalIPs` range and its load
//!   balancer ingress IPs inside a `serviceLoadBalancerIPs` range, when
//!   - `externalTrafficPolicy: Local`: only from the nodes that run one of
//!     its ready endpoints (core/v1 Endpoints `addresses`, by `nodeName`),
//!     so that the router sends to those nodes only (the source address
//!     is kept); the more specific route wins over the range;
//!   - policy `Cluster`: from every node, but only when one of its
//!     external IPs (or, for type LoadBalancer, its `loadBalancerIP` or an
//!     ingress IP) lies in a range that is a single address (such an
//!     entry is not announced as a range).
//!
//!   `internalTrafficPolicy` plays no part (nor does it in Calico).
//! - A node labelled `node.kubernetes.io/exclude-from-external-load-balancers=true`
//!   announces none of it.
//!
//! Bad ranges (not a CIDR, host bits set, a default route, overlapping an
//! IP pool) are left out and named as problems by field; the others are
//! announced. Service ranges in a `node.<name>` BGPConfiguration are not
//! read (Calico reads only `default`'s) and are named as a problem too.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use tortie_config::resources::CidrEntry;
use tortie_datastore::kube::services::{EndpointsInfo, ServiceEvent, ServiceInfo};

use crate::cluster::{Cluster, NodeFacts, DEFAULT_BGP_CONFIGURATION};
use crate::peers::Problem;

/// Calico's (and Kubernetes') node label that keeps a node out of service
/// advertisement when `"true"`.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The cluster's Services and Endpoints, as the agent last heard of them
/// (empty on the file and etcd datastores, which hold none). Keys are
/// `namespace/name`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceView {
    pub services: BTreeMap<String, ServiceInfo>,
    pub endpoints: BTreeMap<String, EndpointsInfo>,
}

/// The usable ranges of the BGPConfiguration `default`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ranges {
    /// `serviceClusterIPs`.
    pub cluster: Vec<IpNet>,
    /// `serviceExternalIPs`.
    pub external: Vec<IpNet>,
    /// `serviceLoadBalancerIPs`.
    pub load_balancer: Vec<IpNet>,
}

// ===== impl ServiceView =====

impl ServiceView {
    /// Applies a change from the follower (not `Trouble`, which changes
    /// nothing here); whether it can change what node `me` announces: a
    /// listing or a Service may, an Endpoints object only if `me` is, or
    /// was, among its ready nodes.
    pub fn apply(&mut self, event: ServiceEvent, me: &str) -> bool {
        match event {
            ServiceEvent::Listed {
                services,
                endpoints,
            } => {
                let changed = self.services != services || self.endpoints != endpoints;
                self.services = services;
                self.endpoints = endpoints;
                changed
            }
            ServiceEvent::Service(key, Some(s)) => {
                self.services.insert(key, s);
                true
            }
            ServiceEvent::Service(key, None) => self.services.remove(&key).is_some(),
            ServiceEvent::Endpoints(key, now) => {
                let mine = |e: &EndpointsInfo| e.ready_nodes.contains(me);
                let is_mine = now.as_ref().is_some_and(mine);
                let before = match now {
                    Some(e) => self.endpoints.insert(key, e),
                    None => self.endpoints.remove(&key),
                };
                is_mine || before.is_some_and(|b| mine(&b))
            }
            ServiceEvent::Trouble(_) => false,
        }
    }
}

// ===== impl Ranges =====

impl Ranges {
    /// No range at all: nothing to announce, no Service to follow.
    pub fn is_empty(&self) -> bool {
        self.cluster.is_empty() && self.external.is_empty() && self.load_balancer.is_empty()
    }
}

/// The service ranges of the BGPConfiguration `default`, and what is
/// wrong with the others.
pub fn ranges(cluster: &Cluster) -> (Ranges, Vec<Problem>) {
    let mut out = Ranges::default();
    let mut problems = Vec::new();
    let pools: Vec<(&String, IpNet)> = cluster
        .pools
        .iter()
        .map(|(name, p)| (name, p.spec.cidr))
        .collect();
    for (name, c) in &cluster.bgp_configurations {
        let resource = format!("BGPConfiguration/{name}");
        let fields = [
            ("spec.serviceClusterIPs", &c.spec.service_cluster_ips),
            ("spec.serviceExternalIPs", &c.spec.service_external_ips),
            (
                "spec.serviceLoadBalancerIPs",
                &c.spec.service_load_balancer_ips,
            ),
        ];
        if name != DEFAULT_BGP_CONFIGURATION {
            for (field, list) in fields.iter().filter(|(_, l)| !l.is_empty()) {
                problems.push(Problem::new(
                    &resource,
                    field,
                    format!(
                        "{} range(s) ignored: only BGPConfiguration/{DEFAULT_BGP_CONFIGURATION}'s \
                         service ranges apply (as in Calico)",
                        list.len()
                    ),
                ));
            }
            continue;
        }
        for (i, (field, list)) in fields.into_iter().enumerate() {
            let into = match i {
                0 => &mut out.cluster,
                1 => &mut out.external,
                _ => &mut out.load_balancer,
            };
            for (n, entry) in list.iter().enumerate() {
                let field = format!("{field}[{n}].cidr");
                match usable(entry, &pools) {
                    Ok(net) if !into.contains(&net) => into.push(net),
                    Ok(_) => {}
                    Err(e) => problems.push(Problem::new(
                        &resource,
                        &field,
                        format!("{e}: not announced"),
                    )),
                }
            }
        }
    }
    (out, problems)
}

/// An entry as a range to announce, or why not.
fn usable(entry: &CidrEntry, pools: &[(&String, IpNet)]) -> Result<IpNet, String> {
    let net = entry.net()?;
    if net.prefix_len() == 0 {
        return Err(format!("{net} is a default route, not a service range"));
    }
    if let Some((name, cidr)) = pools
        .iter()
        .find(|(_, p)| p.contains(&net) || net.contains(p))
    {
        return Err(format!(
            "{net} overlaps IPPool/{name} ({cidr}): pod and service addresses must not share a range"
        ));
    }
    Ok(net)
}

/// The service prefixes node `me` announces (see the module doc).
pub fn advertised(ranges: &Ranges, view: &ServiceView, me: &NodeFacts) -> BTreeSet<IpNet> {
    let mut out = BTreeSet::new();
    if me.labels.get(EXCLUDE_LABEL).map(String::as_str) == Some("true") {
        return out;
    }
    let single = |n: &&IpNet| n.prefix_len() == n.max_prefix_len();
    out.extend(ranges.cluster.iter().copied());
    out.extend(ranges.external.iter().filter(|n| !single(n)).copied());
    out.extend(ranges.load_balancer.iter().filter(|n| !single(n)).copied());
    let within = |ranges: &[IpNet], ip: &IpAddr| ranges.iter().any(|r| r.contains(ip));
    let in_single =
        |ranges: &[IpNet], ip: &IpAddr| ranges.iter().filter(single).any(|r| r.contains(ip));
    for (key, s) in &view.services {
        let relevant = matches!(s.kind.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer");
        if !relevant || s.cluster_ips.is_empty() {
            continue;
        }
        let announce = if s.external_local {
            view.endpoints
                .get(key)
                .is_some_and(|e| e.ready_nodes.contains(&me.name))
        } else {
            let lb = s.kind == "LoadBalancer"
                && s.requested_load_balancer_ip
                    .iter()
                    .chain(&s.load_balancer_ips)
                    .any(|ip| in_single(&ranges.load_balancer, ip));
            lb || s
                .external_ips
                .iter()
                .any(|ip| in_single(&ranges.external, ip))
        };
        if !announce {
            continue;
        }
        let addresses = [
            (&s.cluster_ips, &ranges.cluster),
            (&s.external_ips, &ranges.external),
            (&s.load_balancer_ips, &ranges.load_balancer),
        ];
        for (ips, allowed) in addresses {
            out.extend(
                ips.iter()
                    .filter(|ip| within(allowed, ip))
                    .map(|ip| IpNet::from(*ip)),
            );
        }
    }
    out
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
