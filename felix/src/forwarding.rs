//! IP forwarding on the node: `net.ipv4.ip_forward` and
//! `net.ipv6.conf.all.forwarding`, set to 1 as Calico's Felix does with
//! FelixConfiguration `ipForwarding: Enabled` (its default).
//!
//! A node that routes pods is a router: without forwarding the kernel
//! drops every packet between a pod and anything off the node. The
//! reconciler checks the sysctls on every full pass (so at the first
//! desired state, at each periodic resync and after kernel events): read
//! first, write only a value that differs, so a pass that finds them right
//! costs one read each, and a `sysctl -w net.ipv4.ip_forward=0` by someone
//! else heals by the next full pass.
//!
//! Which families ([`families`]): IPv4 when the node has an IPv4 pool or
//! an IPv4 address; IPv6 when it has an IPv6 pool. Disabled: nothing is
//! read or written. Forwarding is never turned off by us.
//!
//! Setting `net.ipv6.conf.all.forwarding=1` also sets it on every
//! interface, and the kernel then ignores router advertisements on
//! interfaces with `accept_ra=1` (only `accept_ra=2` still takes them):
//! a node that gets its IPv6 default route from RAs needs `accept_ra=2`
//! on that interface (`docs/dataplane.md`).
//!
//! Changes are logged at info; a sysctl that cannot be read or written
//! (e.g. a read-only `/proc/sys` in an unprivileged container) is warned
//! once, naming the file and the cause, and the routes are programmed all
//! the same (it is not a route failure and causes no retry). The problems
//! of the last check are also published ([`Forwarding::problems`], the
//! reconciler's `Status::forwarding`), where tortie-node lists them among
//! the node's problems until a check finds the sysctls right.

use std::path::Path;

use tracing::{info, warn};

use crate::desired::DesiredState;
use crate::sysctl::{self, Ensured, Sysctl, SysctlError};

/// `net.ipv4.ip_forward` (also sets `net.ipv4.conf.*.forwarding`).
pub const IPV4_KEY: &str = "net/ipv4/ip_forward";
/// `net.ipv6.conf.all.forwarding` (also sets it on every interface and
/// as the default for new ones).
pub const IPV6_KEY: &str = "net/ipv6/conf/all/forwarding";

/// The address families the node routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Families {
    /// IPv4: an IPv4 pool, or an IPv4 node address.
    pub v4: bool,
    /// IPv6: an IPv6 pool.
    pub v6: bool,
}

/// The reconciler's forwarding check: the setting, and the problems last
/// warned about (each is warned once, not on every pass).
#[derive(Debug)]
pub struct Forwarding {
    /// `ipForwarding: Enabled`.
    enabled: bool,
    /// Problems of the last check.
    reported: Vec<String>,
}

/// The families `state` routes.
pub fn families(state: &DesiredState) -> Families {
    let pools = |v4: bool| state.pools.iter().any(|p| p.cidr.addr().is_ipv4() == v4);
    Families {
        v4: pools(true)
            || state
                .local_node
                .addresses
                .iter()
                .any(|a| a.addr().is_ipv4()),
        v6: pools(false),
    }
}

/// The sysctls to hold at 1 for `families`; none when `enabled` is false.
pub fn wanted(families: Families, enabled: bool) -> Vec<Sysctl> {
    let mut out = Vec::new();
    if enabled && families.v4 {
        out.push(Sysctl::new(IPV4_KEY, "1"));
    }
    if enabled && families.v6 {
        out.push(Sysctl::new(IPV6_KEY, "1"));
    }
    out
}

// ===== impl Forwarding =====

impl Forwarding {
    /// The problems of the last check (empty before the first).
    pub fn problems(&self) -> &[String] {
        &self.reported
    }

    /// A check that sets forwarding when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Forwarding {
            enabled,
            reported: Vec::new(),
        }
    }

    /// Reads, and sets where they differ, the forwarding sysctls `state`
    /// needs in `netns` (`None` = ours). Logs each change (info) and each
    /// new problem (warn); returns the problems, one line each.
    pub async fn ensure(&mut self, netns: Option<&Path>, state: &DesiredState) -> Vec<String> {
        let wanted = wanted(families(state), self.enabled);
        if wanted.is_empty() {
            self.reported.clear();
            return Vec::new();
        }
        let ns = netns.map(Path::to_path_buf);
        let keys = wanted.clone();
        let results =
            tokio::task::spawn_blocking(move || sysctl::ensure_in(ns.as_deref(), keys)).await;
        let mut problems = Vec::new();
        match results {
            Ok(Ok(results)) => {
                for (s, r) in wanted.iter().zip(results) {
                    match r {
                        Ok(Ensured::Kept) => {}
                        Ok(Ensured::Changed { from }) => info!(
                            sysctl = %dotted(&s.key),
                            from = %from,
                            to = %s.value,
                            "IP forwarding enabled"
                        ),
                        Err(e) => problems.push(problem(&e)),
                    }
                }
            }
            Ok(Err(e)) => problems.push(problem(&e)),
            Err(e) => problems.push(format!("worker failed: {e}")),
        }
        for p in problems.iter().filter(|p| !self.reported.contains(p)) {
            warn!(problem = %p, "cannot enable IP forwarding");
        }
        self.reported.clone_from(&problems);
        problems
    }
}

// ===== helpers =====

/// `net/ipv4/ip_forward` -> `net.ipv4.ip_forward`.
fn dotted(key: &str) -> String {
    key.replace('/', ".")
}

/// One line for a failed check: the file, the cause, and the fix.
fn problem(e: &SysctlError) -> String {
    use std::io::ErrorKind;
    let hint = match e {
        SysctlError::Write { source, .. } | SysctlError::Read { source, .. } => {
            match source.kind() {
                ErrorKind::NotFound => {
                    "the kernel has no such setting (IPv6 disabled?); pods of this family are not \
                     forwarded"
                }
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
                    "run tortie-node privileged (a writable /proc/sys), or enable forwarding on the \
                     host and set ipForwarding: Disabled"
                }
                _ => "pods may not be forwarded",
            }
        }
        _ => "pods may not be forwarded",
    };
    format!("{e}: {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{LocalNode, Pool};

    fn pool(cidr: &str) -> Pool {
        Pool {
            cidr: cidr.parse().unwrap(),
            ipip: Default::default(),
            vxlan: Default::default(),
            nat_outgoing: false,
        }
    }

    fn state(addresses: &[&str], pools: &[&str]) -> DesiredState {
        DesiredState {
            local_node: LocalNode {
                addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
                ..LocalNode::default()
            },
            pools: pools.iter().map(|p| pool(p)).collect(),
            ..DesiredState::default()
        }
    }

    fn keys(addresses: &[&str], pools: &[&str], enabled: bool) -> Vec<String> {
        wanted(families(&state(addresses, pools)), enabled)
            .into_iter()
            .map(|s| {
                assert_eq!(s.value, "1");
                s.key
            })
            .collect()
    }

    #[test]
    fn families_decide_the_sysctls() {
        let (v4, v6) = (IPV4_KEY.to_string(), IPV6_KEY.to_string());
        // (node addresses, pools) -> sysctls set when Enabled.
        let rows: &[(&[&str], &[&str], &[&String])] = &[
            (&["192.168.1.11/24"], &["10.244.0.0/16"], &[&v4]),
            // An IPv4 address alone: the node routes IPv4 (a ToR's routes).
            (&["192.168.1.11/24"], &[], &[&v4]),
            (&[], &["10.244.0.0/16"], &[&v4]),
            (
                &["192.168.1.11/24", "fd00:1::11/64"],
                &["10.244.0.0/16", "fd00:244::/56"],
                &[&v4, &v6],
            ),
            // An IPv6 address without an IPv6 pool: nothing IPv6 to route.
            (
                &["192.168.1.11/24", "fd00:1::11/64"],
                &["10.244.0.0/16"],
                &[&v4],
            ),
            // IPv6 only.
            (&["fd00:1::11/64"], &["fd00:244::/56"], &[&v6]),
            (&["fd00:1::11/64"], &[], &[]),
            (&[], &[], &[]),
        ];
        for (addresses, pools, want) in rows {
            let want: Vec<String> = want.iter().map(|k| (*k).clone()).collect();
            assert_eq!(
                keys(addresses, pools, true),
                want,
                "{addresses:?} {pools:?}"
            );
            assert!(
                keys(addresses, pools, false).is_empty(),
                "Disabled writes nothing"
            );
        }
    }

    /// A check that fails (here: the namespace cannot be entered, without
    /// touching any sysctl) keeps its problems for the status until a
    /// check finds nothing wrong.
    #[tokio::test]
    async fn problems_stay_published_until_a_check_finds_none() {
        let mut f = Forwarding::new(true);
        assert!(f.problems().is_empty(), "none before the first check");
        let routed = state(&["192.168.1.11/24"], &["10.244.0.0/16"]);
        let gone = Path::new("/nonexistent/tortie-forwarding-test-netns");
        let got = f.ensure(Some(gone), &routed).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("tortie-forwarding-test-netns"), "{got:?}");
        assert_eq!(f.problems(), got.as_slice());
        // The same failure again: still there (warned once, published on).
        assert_eq!(f.ensure(Some(gone), &routed).await, got);
        assert_eq!(f.problems(), got.as_slice());
        // Nothing to set (no family routed): nothing wrong, cleared.
        assert!(f.ensure(Some(gone), &state(&[], &[])).await.is_empty());
        assert!(f.problems().is_empty());
        // Disabled: nothing is read, nothing reported.
        let mut off = Forwarding::new(false);
        assert!(off.ensure(Some(gone), &routed).await.is_empty());
        assert!(off.problems().is_empty());
    }

    #[test]
    fn keys_are_the_kernel_names() {
        assert_eq!(dotted(IPV4_KEY), "net.ipv4.ip_forward");
        assert_eq!(dotted(IPV6_KEY), "net.ipv6.conf.all.forwarding");
    }

    #[test]
    fn problems_name_the_file_the_cause_and_the_fix() {
        let e = SysctlError::Write {
            key: IPV4_KEY.into(),
            value: "1".into(),
            source: std::io::Error::from_raw_os_error(30),
        };
        let p = problem(&e);
        assert!(p.contains("/proc/sys/net/ipv4/ip_forward"), "{p}");
        assert!(p.contains("Read-only file system"), "{p}");
        assert!(p.contains("privileged"), "{p}");
        let e = SysctlError::Read {
            key: IPV6_KEY.into(),
            source: std::io::Error::from_raw_os_error(2),
        };
        let p = problem(&e);
        assert!(
            p.contains("cannot read /proc/sys/net/ipv6/conf/all/forwarding"),
            "{p}"
        );
        assert!(p.contains("IPv6 disabled"), "{p}");
    }
}
