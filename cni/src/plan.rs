//! What ADD allocates ([`Plan`]): the network config's `pools` and
//! families, the addresses the runtime asks for, and the pod's IPAM
//! annotations ([`crate::annotations`]) taken together and checked
//! against the IP pools, before anything is allocated.
//!
//! Precedence: the annotations win over the network config (`ipv4pools`
//! / `ipv6pools` over `pools` for their family, the pod's own or else its
//! Namespace's, [`PodIpam::inherit`]; `ipFamilies` over `assignIPv4` /
//! `assignIPv6`); `ipAddrs` and a runtime request for other addresses are
//! refused; a requested address must lie in the pools the pool annotation
//! of its family in effect names.

use std::net::IpAddr;

use tortie_config::resources::{IPPool, IPPoolSpec};
use tortie_datastore::{AnyStore, TypedStore};
use tortie_ipam::Family;

use crate::annotations::{bad, family_of, origin, PodIpam, PoolRef, Source, IP_ADDRS, IP_FAMILIES};
use crate::config::NetConf;
use crate::error::CniError;

/// What ADD allocates: the network config, the runtime's requested
/// addresses and the pod's annotations taken together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Exactly these addresses; empty: one address of each of `families`.
    pub addresses: Vec<IpAddr>,
    /// The families of an automatic assignment.
    pub families: Vec<Family>,
    /// The IPv4 pools by name (empty: every enabled pool that selects the
    /// node), as the IPAM's `Request::pools`.
    pub v4_pools: Vec<String>,
    /// The IPv6 pools, likewise.
    pub v6_pools: Vec<String>,
    /// Which choices annotations made (the pod's, or its Namespace's
    /// pools), and whose they are, for messages.
    annotated: Vec<(Choice, String)>,
}

/// A choice an annotation can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    /// The addresses ([`IP_ADDRS`]).
    Addresses,
    /// The pools of a family ([`crate::annotations::IPV4_POOLS`],
    /// [`crate::annotations::IPV6_POOLS`]).
    Pools(Family),
    /// The families ([`IP_FAMILIES`]).
    Families,
}

// ===== impl Plan =====

impl Plan {
    /// What to allocate: the network config's `pools` and families
    /// (`conf_pools`, `conf_families`), the addresses the runtime asked
    /// for (`requested`), and the pod's annotations with its Namespace's
    /// pools (`pod`), checked against the IP pools there are (`pools`;
    /// needed only when a pool annotation is in effect). The annotations
    /// win; `ipAddrs` and a different runtime request are refused.
    pub fn new(
        conf_pools: &[String],
        conf_families: &[Family],
        requested: &[IpAddr],
        pod: &PodIpam,
        pools: &[IPPool],
    ) -> Result<Plan, CniError> {
        let mut annotated = Vec::new();
        let addresses = if pod.addresses.is_empty() {
            requested.to_vec()
        } else {
            let same = requested.len() == pod.addresses.len()
                && requested.iter().all(|a| pod.addresses.contains(a));
            if !requested.is_empty() && !same {
                return Err(bad(
                    &pod.source(),
                    IP_ADDRS,
                    &list(&pod.addresses),
                    &format!(
                        "the runtime asks for {} (runtimeConfig.ips or CNI_ARGS IP=): one of the two must go",
                        list(requested)
                    ),
                ));
            }
            annotated.push((Choice::Addresses, origin(&pod.source(), IP_ADDRS)));
            pod.addresses.clone()
        };
        let mut chosen = [conf_pools.to_vec(), conf_pools.to_vec()];
        for (i, family) in [Family::V4, Family::V6].into_iter().enumerate() {
            let (named, name) = pod.pools(family);
            let Some(named) = named else { continue };
            let (refs, source) = (&named.refs, &named.source);
            let resolved = resolve(source, name, family, refs, pools)?;
            for a in addresses.iter().filter(|a| family_of(a) == family) {
                if !resolved.iter().any(|p| p.spec.cidr.contains(a)) {
                    return Err(bad(
                        source,
                        name,
                        &names(refs),
                        &format!(
                            "the address {a} ({}) is in none of these pools ({}): name its pool, or ask for an address inside them",
                            if pod.addresses.is_empty() {
                                "asked for by the runtime"
                            } else {
                                "annotation cni.projectcalico.org/ipAddrs"
                            },
                            described(&resolved)
                        ),
                    ));
                }
            }
            chosen[i] = resolved.iter().map(|p| p.metadata.name.clone()).collect();
            annotated.push((Choice::Pools(family), origin(source, name)));
        }
        let families = match &pod.families {
            Some(f) => {
                annotated.push((Choice::Families, origin(&pod.source(), IP_FAMILIES)));
                f.clone()
            }
            None => conf_families.to_vec(),
        };
        let [v4_pools, v6_pools] = chosen;
        Ok(Plan {
            addresses,
            families,
            v4_pools,
            v6_pools,
            annotated,
        })
    }

    /// The pools of `family`, by name (empty: any).
    pub fn pools(&self, family: Family) -> &[String] {
        match family {
            Family::V4 => &self.v4_pools,
            Family::V6 => &self.v6_pools,
        }
    }

    /// The IPAM requests of an automatic assignment: the families that
    /// share a pool list go in one request (one, unless the annotations
    /// gave the families different pools).
    pub fn requests(&self) -> Vec<(Vec<String>, Vec<Family>)> {
        let mut out: Vec<(Vec<String>, Vec<Family>)> = Vec::new();
        for f in &self.families {
            let pools = self.pools(*f).to_vec();
            match out.iter_mut().find(|(p, _)| *p == pools) {
                Some((_, fams)) => fams.push(*f),
                None => out.push((pools, vec![*f])),
            }
        }
        out
    }

    /// An IPAM failure for `families`, with the annotations that chose what
    /// failed in front: the pools and families of an automatic
    /// assignment, or (`address`) the address and its family's pools.
    pub fn context(&self, families: &[Family], address: bool, e: CniError) -> CniError {
        let said: Vec<&str> = self
            .annotated
            .iter()
            .filter(|(c, _)| match c {
                Choice::Addresses => address,
                Choice::Pools(f) => families.contains(f),
                Choice::Families => !address,
            })
            .map(|(_, s)| s.as_str())
            .collect();
        if said.is_empty() {
            return e;
        }
        CniError {
            msg: format!("{}: {}", said.join(", "), e.msg),
            ..e
        }
    }
}

/// The IP pools, when the annotations in effect name some (else none: no
/// read).
pub async fn pools_for(store: &AnyStore, pod: &PodIpam) -> Result<Vec<IPPool>, CniError> {
    if !pod.names_pools() {
        return Ok(Vec::new());
    }
    store
        .list_typed::<IPPoolSpec>()
        .await
        .map(|l| l.into_iter().map(|(p, _)| p).collect())
        .map_err(|e| CniError::store("listing IP pools", e))
}

// ===== helpers =====

/// The pools a pool annotation names: each must exist, be of `family`
/// and be enabled.
fn resolve<'a>(
    pod: &Source,
    name: &str,
    family: Family,
    refs: &[PoolRef],
    pools: &'a [IPPool],
) -> Result<Vec<&'a IPPool>, CniError> {
    let value = names(refs);
    let mut out: Vec<&IPPool> = Vec::new();
    for r in refs {
        let found = pools.iter().find(|p| match r {
            PoolRef::Name(n) => &p.metadata.name == n,
            PoolRef::Cidr(c) => p.spec.cidr.trunc() == *c,
        });
        let Some(p) = found else {
            let what = match r {
                PoolRef::Name(n) => format!("no IP pool is named {n:?}"),
                PoolRef::Cidr(c) => format!("no IP pool has the CIDR {c}"),
            };
            return Err(bad(
                pod,
                name,
                &value,
                &format!(
                    "{what} (pools: {}); fix the annotation or create the pool",
                    described(&pools.iter().collect::<Vec<_>>())
                ),
            ));
        };
        if Family::of(&p.spec.cidr) != family {
            return Err(bad(
                pod,
                name,
                &value,
                &format!(
                    "IP pool {} ({}) is not an {family} pool; name it in the other family's annotation",
                    p.metadata.name, p.spec.cidr
                ),
            ));
        }
        if p.spec.disabled {
            return Err(bad(
                pod,
                name,
                &value,
                &format!(
                    "IP pool {} is disabled (spec.disabled: true); enable it or name another pool",
                    p.metadata.name
                ),
            ));
        }
        if !out.iter().any(|o| o.metadata.name == p.metadata.name) {
            out.push(p);
        }
    }
    Ok(out)
}

fn list(addrs: &[IpAddr]) -> String {
    let items: Vec<String> = addrs
        .iter()
        .map(|a| format!("{:?}", a.to_string()))
        .collect();
    format!("[{}]", items.join(", "))
}

fn names(refs: &[PoolRef]) -> String {
    let items: Vec<String> = refs
        .iter()
        .map(|r| match r {
            PoolRef::Name(n) => format!("{n:?}"),
            PoolRef::Cidr(c) => format!("{:?}", c.to_string()),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn described(pools: &[&IPPool]) -> String {
    if pools.is_empty() {
        return "none".into();
    }
    let items: Vec<String> = pools
        .iter()
        .map(|p| format!("{} ({})", p.metadata.name, p.spec.cidr))
        .collect();
    items.join(", ")
}

/// The network config's families.
pub fn conf_families(conf: &NetConf) -> Vec<Family> {
    let mut out = Vec::new();
    if conf.assign_ipv4 {
        out.push(Family::V4);
    }
    if conf.assign_ipv6 {
        out.push(Family::V6);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::{IPV4_POOLS, IPV6_POOLS};
    use crate::error::code;

    fn parse(pairs: &[(&str, &str)]) -> Result<PodIpam, CniError> {
        let notes = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PodIpam::parse("default/web", &notes)
    }

    fn pool(name: &str, cidr: &str, disabled: bool) -> IPPool {
        let mut spec = IPPoolSpec::new(cidr.parse().unwrap());
        spec.disabled = disabled;
        IPPool::new(name, spec)
    }

    fn pools() -> Vec<IPPool> {
        vec![
            pool("a", "10.244.0.0/16", false),
            pool("b", "10.245.0.0/16", false),
            pool("off", "10.246.0.0/16", true),
            pool("six", "fd00:10::/64", false),
        ]
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_annotations_the_network_config_decides() {
        let none = parse(&[]).unwrap();
        let conf = ["a".to_string()];
        let plan = Plan::new(&conf, &[Family::V4, Family::V6], &[], &none, &[]).unwrap();
        assert!(plan.addresses.is_empty());
        assert_eq!(
            plan.requests(),
            [(conf.to_vec(), vec![Family::V4, Family::V6])]
        );
        let asked = [ip("10.244.0.9")];
        let plan = Plan::new(&conf, &[Family::V4], &asked, &none, &[]).unwrap();
        assert_eq!(plan.addresses, asked);
        assert_eq!(plan.pools(Family::V4), conf);
        // No annotation: errors are left as they are.
        let e = CniError::new(code::POOL_EXHAUSTED, "x");
        assert_eq!(plan.context(&[Family::V4], false, e.clone()), e);
    }

    #[test]
    fn pool_annotations_replace_the_configs_pools_of_their_family() {
        let p = parse(&[(IPV4_POOLS, r#"["10.245.0.0/16"]"#)]).unwrap();
        let conf = ["a".to_string(), "six".to_string()];
        let plan = Plan::new(&conf, &[Family::V4, Family::V6], &[], &p, &pools()).unwrap();
        assert_eq!(plan.v4_pools, ["b"], "the CIDR names pool b");
        assert_eq!(plan.v6_pools, conf, "IPv6: the config's");
        assert_eq!(
            plan.requests(),
            [
                (vec!["b".to_string()], vec![Family::V4]),
                (conf.to_vec(), vec![Family::V6])
            ]
        );
        // An IPAM failure then names the annotation behind it.
        let e = plan.context(
            &[Family::V4],
            false,
            CniError::new(code::POOL_EXHAUSTED, "full"),
        );
        assert_eq!(
            e.msg,
            "pod default/web: annotation cni.projectcalico.org/ipv4pools: full"
        );
        let e = plan.context(
            &[Family::V6],
            false,
            CniError::new(code::POOL_EXHAUSTED, "full"),
        );
        assert_eq!(e.msg, "full");
        // ipFamilies replaces assignIPv4/assignIPv6.
        let p = parse(&[(IP_FAMILIES, r#"["IPv6"]"#)]).unwrap();
        let plan = Plan::new(&[], &[Family::V4], &[], &p, &[]).unwrap();
        assert_eq!(plan.requests(), [(vec![], vec![Family::V6])]);
    }

    #[test]
    fn pool_annotations_are_checked_against_the_pools() {
        let cases: &[(&str, &str, &str)] = &[
            (
                IPV4_POOLS,
                r#"["nope"]"#,
                "no IP pool is named \"nope\" (pools: a (10.244.0.0/16), b (10.245.0.0/16), off (10.246.0.0/16), six (fd00:10::/64))",
            ),
            (IPV4_POOLS, r#"["10.9.0.0/16"]"#, "no IP pool has the CIDR 10.9.0.0/16"),
            (IPV4_POOLS, r#"["10.244.0.0/17"]"#, "no IP pool has the CIDR"),
            (IPV4_POOLS, r#"["six"]"#, "six (fd00:10::/64) is not an IPv4 pool"),
            (IPV6_POOLS, r#"["a"]"#, "is not an IPv6 pool"),
            (IPV4_POOLS, r#"["off"]"#, "IP pool off is disabled"),
        ];
        for (name, value, needle) in cases {
            let p = parse(&[(name, value)]).unwrap();
            let e = Plan::new(&[], &[Family::V4], &[], &p, &pools()).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{e}");
            assert!(
                e.msg
                    .starts_with(&format!("pod default/web: annotation {name}=")),
                "{e}"
            );
            assert!(e.msg.contains(needle), "{name}={value}: {e}");
        }
    }

    #[test]
    fn addresses_precedence_and_their_pools() {
        // ipAddrs wins over nothing; the same request from the runtime is
        // fine; a different one is refused.
        let p = parse(&[(IP_ADDRS, r#"["10.244.1.5"]"#)]).unwrap();
        let plan = Plan::new(&[], &[Family::V4], &[], &p, &[]).unwrap();
        assert_eq!(plan.addresses, [ip("10.244.1.5")]);
        let e = plan.context(
            &[Family::V4],
            true,
            CniError::new(code::NOT_AVAILABLE, "in use"),
        );
        assert_eq!(
            e.msg,
            "pod default/web: annotation cni.projectcalico.org/ipAddrs: in use"
        );
        assert!(Plan::new(&[], &[Family::V4], &[ip("10.244.1.5")], &p, &[]).is_ok());
        let e = Plan::new(&[], &[Family::V4], &[ip("10.244.1.6")], &p, &[]).unwrap_err();
        assert!(
            e.msg.contains("the runtime asks for [\"10.244.1.6\"]"),
            "{e}"
        );
        // With a pool annotation of its family, the address must be in
        // those pools.
        let p = parse(&[(IP_ADDRS, r#"["10.244.1.5"]"#), (IPV4_POOLS, r#"["b"]"#)]).unwrap();
        let e = Plan::new(&[], &[Family::V4], &[], &p, &pools()).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(
            e.msg.starts_with(
                "pod default/web: annotation cni.projectcalico.org/ipv4pools=[\"b\"]: the address 10.244.1.5 (annotation cni.projectcalico.org/ipAddrs) is in none of these pools (b (10.245.0.0/16))"
            ),
            "{e}"
        );
        let p = parse(&[
            (IP_ADDRS, r#"["10.244.1.5"]"#),
            (IPV4_POOLS, r#"["a"]"#),
            (IPV6_POOLS, r#"["six"]"#),
        ])
        .unwrap();
        let plan = Plan::new(&[], &[Family::V4], &[], &p, &pools()).unwrap();
        assert_eq!(plan.pools(Family::V4), ["a"]);
        // The runtime's request is held to the pod's pools too.
        let p = parse(&[(IPV4_POOLS, r#"["b"]"#)]).unwrap();
        let e = Plan::new(&[], &[Family::V4], &[ip("10.244.1.5")], &p, &pools()).unwrap_err();
        assert!(e.msg.contains("(asked for by the runtime)"), "{e}");
    }

    /// The pod's Namespace's pools: the pod's own win per family; what
    /// the Namespace's chose, and what is wrong with it, names the
    /// Namespace.
    #[test]
    fn namespace_pools_under_the_pods() {
        let with_ns = |pod: &[(&str, &str)], ns: &[(&str, &str)]| {
            let mut p = parse(pod).unwrap();
            let notes = ns
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            p.inherit("team", &notes).unwrap();
            p
        };
        let conf = ["a".to_string()];
        let both = [(IPV4_POOLS, r#"["b"]"#), (IPV6_POOLS, r#"["six"]"#)];
        let fams = [Family::V4, Family::V6];

        // The Namespace's pools replace the config's.
        let p = with_ns(&[], &both);
        let plan = Plan::new(&conf, &fams, &[], &p, &pools()).unwrap();
        assert_eq!(
            (plan.pools(Family::V4), plan.pools(Family::V6)),
            (&["b".to_string()][..], &["six".to_string()][..])
        );
        let e = plan.context(
            &[Family::V4],
            false,
            CniError::new(code::POOL_EXHAUSTED, "full"),
        );
        assert_eq!(
            e.msg,
            "namespace team: annotation cni.projectcalico.org/ipv4pools: full"
        );

        // The pod's ipv4pools wins over the Namespace's; IPv6 stays the
        // Namespace's.
        let p = with_ns(&[(IPV4_POOLS, r#"["10.244.0.0/16"]"#)], &both);
        let plan = Plan::new(&conf, &fams, &[], &p, &pools()).unwrap();
        assert_eq!(plan.pools(Family::V4), ["a"]);
        assert_eq!(plan.pools(Family::V6), ["six"]);
        let e = plan.context(&fams, false, CniError::new(code::POOL_EXHAUSTED, "full"));
        assert_eq!(
            e.msg,
            "pod default/web: annotation cni.projectcalico.org/ipv4pools, namespace team: annotation cni.projectcalico.org/ipv6pools: full"
        );

        // A Namespace pool that does not fit is refused naming the
        // Namespace, even for an address the pod's ipAddrs asks for.
        type Notes<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Notes, Notes, &str)] = &[
            (&[], &[(IPV4_POOLS, r#"["nope"]"#)], "namespace team: annotation cni.projectcalico.org/ipv4pools=[\"nope\"]: no IP pool is named \"nope\""),
            (&[], &[(IPV4_POOLS, r#"["off"]"#)], "namespace team: annotation cni.projectcalico.org/ipv4pools=[\"off\"]: IP pool off is disabled"),
            (&[], &[(IPV6_POOLS, r#"["a"]"#)], "namespace team: annotation cni.projectcalico.org/ipv6pools=[\"a\"]: IP pool a (10.244.0.0/16) is not an IPv6 pool"),
            (
                &[(IP_ADDRS, r#"["10.244.1.5"]"#)],
                &[(IPV4_POOLS, r#"["b"]"#)],
                "namespace team: annotation cni.projectcalico.org/ipv4pools=[\"b\"]: the address 10.244.1.5 (annotation cni.projectcalico.org/ipAddrs) is in none of these pools (b (10.245.0.0/16))",
            ),
        ];
        for (pod, ns, want) in cases {
            let p = with_ns(pod, ns);
            let e = Plan::new(&conf, &[Family::V4], &[], &p, &pools()).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{e}");
            assert!(e.msg.starts_with(want), "{e}");
        }
        // A runtime request for an IPv6 address, with pools of both
        // families in effect, is "asked for by the runtime".
        let p = with_ns(&[(IPV4_POOLS, r#"["a"]"#)], &[(IPV6_POOLS, r#"["six"]"#)]);
        let e = Plan::new(&[], &fams, &[ip("fd00:99::1")], &p, &pools()).unwrap_err();
        assert!(
            e.msg.starts_with("namespace team: annotation cni.projectcalico.org/ipv6pools=[\"six\"]: the address fd00:99::1 (asked for by the runtime)"),
            "{e}"
        );
    }
}
