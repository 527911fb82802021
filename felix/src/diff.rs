//! Pure: (desired routes, kernel dump of our protocol) -> [`Plan`].
//!
//! The dump only holds routes of our protocol, and every delete the kernel
//! layer sends carries our protocol too, so a plan can never remove a route
//! of another protocol, even one with the same prefix.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::endpoint::IFNAME_PREFIX;
use crate::route::{InstalledRoute, KernelRoute, RouteKind};

/// The kernel writes that turn the dump into the desired routes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    /// New routes (`ip route add`).
    pub add: Vec<KernelRoute>,
    /// Routes of ours with the right prefix but the wrong shape (`ip route
    /// replace`).
    pub replace: Vec<KernelRoute>,
    /// Routes of ours that are not wanted, or duplicates (`ip route del`).
    pub delete: Vec<InstalledRoute>,
}

/// Computes the plan. `desired` is keyed by destination (one route per
/// prefix); `installed` is the dump of our protocol in table main.
///
/// Per prefix: an installed route equal to the desired one with the default
/// metric is kept; else one with the default metric is replaced; else the
/// desired route is added. Every other installed route of that prefix (other
/// metrics, duplicates) and every installed route of an unwanted prefix is
/// deleted, except a workload route (`DST dev tort… scope link`) of an
/// unwanted prefix: the CNI plugin writes that route during ADD, before the
/// agent can know the pod's WorkloadEndpoint, so it is left alone. It goes
/// with its interface (CNI DEL, or the endpoint GC once the interface has
/// been unknown for its grace period); a dump only shows it while the
/// interface exists.
pub fn diff<'a>(
    desired: impl IntoIterator<Item = &'a KernelRoute>,
    installed: &[InstalledRoute],
) -> Plan {
    let mut by_dst: BTreeMap<IpNet, Vec<&InstalledRoute>> = BTreeMap::new();
    for r in installed {
        by_dst.entry(r.route.dst).or_default().push(r);
    }
    let mut plan = Plan::default();
    for want in desired {
        let Some(have) = by_dst.remove(&want.dst) else {
            plan.add.push(want.clone());
            continue;
        };
        let keep = have
            .iter()
            .position(|h| h.has_default_metric() && h.route == *want)
            .or_else(|| have.iter().position(|h| h.has_default_metric()));
        match keep {
            Some(i) if have[i].route == *want => {}
            Some(_) => plan.replace.push(want.clone()),
            None => plan.add.push(want.clone()),
        }
        let extra = have
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != keep)
            .map(|(_, h)| (*h).clone());
        plan.delete.extend(extra);
    }
    plan.delete.extend(
        by_dst
            .into_values()
            .flatten()
            .filter(|r| !is_cni_workload_route(&r.route))
            .cloned(),
    );
    plan.add.sort();
    plan.replace.sort();
    plan.delete.sort();
    plan
}

/// A route the CNI plugin may have made: `DST dev tort… scope link`.
fn is_cni_workload_route(route: &KernelRoute) -> bool {
    matches!(&route.kind, RouteKind::Link { dev } if dev.starts_with(IFNAME_PREFIX))
}

// ===== impl Plan =====

impl Plan {
    /// Whether the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.replace.is_empty() && self.delete.is_empty()
    }

    /// Number of kernel writes the plan needs.
    pub fn len(&self) -> usize {
        self.add.len() + self.replace.len() + self.delete.len()
    }
}

/// One line per write: `add <ip route line>`, `replace ...`, `del ...`.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.add {
            writeln!(f, "add {r}")?;
        }
        for r in &self.replace {
            writeln!(f, "replace {r}")?;
        }
        for r in &self.delete {
            writeln!(f, "del {r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn installed(route: KernelRoute, metric: Option<u32>) -> InstalledRoute {
        InstalledRoute { route, metric }
    }

    #[test]
    fn empty_kernel_adds_everything() {
        let want = vec![
            KernelRoute::blackhole(net("10.244.3.0/26")),
            KernelRoute::link(net("10.244.3.7/32"), "tortaaaaaaaaaaa"),
        ];
        let plan = diff(&want, &[]);
        assert_eq!(plan.add.len(), 2);
        assert!(plan.replace.is_empty() && plan.delete.is_empty());
    }

    #[test]
    fn converged_kernel_needs_no_write() {
        let want = vec![
            KernelRoute::blackhole(net("10.244.3.0/26")),
            KernelRoute::blackhole(net("fd00:244::/122")),
        ];
        let have = vec![
            installed(want[0].clone(), Some(0)),
            installed(want[1].clone(), Some(1024)),
        ];
        let plan = diff(&want, &have);
        assert!(plan.is_empty(), "{plan}");
        assert_eq!(plan.len(), 0);
    }

    #[test]
    fn wrong_shape_is_replaced_unwanted_is_deleted() {
        let want = vec![KernelRoute::via(
            net("10.244.7.0/26"),
            "192.168.1.12".parse().unwrap(),
            "eth0",
            false,
        )];
        let have = vec![
            installed(
                KernelRoute::via(
                    net("10.244.7.0/26"),
                    "192.168.2.21".parse().unwrap(),
                    "tunl0",
                    true,
                ),
                None,
            ),
            installed(KernelRoute::blackhole(net("10.244.9.0/26")), None),
        ];
        let plan = diff(&want, &have);
        assert_eq!(
            plan.to_string(),
            "replace 10.244.7.0/26 via 192.168.1.12 dev eth0\n\
             del blackhole 10.244.9.0/26\n"
        );
    }

    #[test]
    fn odd_metrics_and_duplicates_are_deleted() {
        let want = vec![KernelRoute::blackhole(net("10.244.3.0/26"))];
        // Only an odd-metric copy: add ours, delete it.
        let have = vec![installed(want[0].clone(), Some(7))];
        let plan = diff(&want, &have);
        assert_eq!(plan.add, want);
        assert_eq!(plan.delete, have);
        // Ours plus an odd-metric copy: keep ours, delete the copy.
        let have = vec![
            installed(want[0].clone(), Some(7)),
            installed(want[0].clone(), Some(0)),
        ];
        let plan = diff(&want, &have);
        assert!(plan.add.is_empty() && plan.replace.is_empty());
        assert_eq!(plan.delete, vec![have[0].clone()]);
    }

    #[test]
    fn a_cni_made_workload_route_is_spared_until_its_endpoint_is_known() {
        // The CNI plugin routed a new pod; the agent has not seen its
        // WorkloadEndpoint yet. An unknown prefix on another interface is
        // deleted as usual.
        let cni = KernelRoute::link(net("10.244.3.9/32"), "tortbbbbbbbbbbb");
        let stray = KernelRoute::link(net("10.244.3.10/32"), "eth1");
        let want = vec![KernelRoute::blackhole(net("10.244.3.0/26"))];
        let have = vec![
            installed(want[0].clone(), None),
            installed(cni.clone(), None),
            installed(stray.clone(), None),
        ];
        let plan = diff(&want, &have);
        assert_eq!(plan.to_string(), "del 10.244.3.10/32 dev eth1 scope link\n");
        // Once the endpoint is known the route is simply kept; a different
        // interface for that address is replaced.
        let want = vec![KernelRoute::link(net("10.244.3.9/32"), "tortccccccccccc")];
        let plan = diff(&want, &[installed(cni, None)]);
        assert_eq!(
            plan.to_string(),
            "replace 10.244.3.9/32 dev tortccccccccccc scope link\n"
        );
    }
}
