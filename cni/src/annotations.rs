//! Calico's IPAM annotations on a Kubernetes Pod and its Namespace, read
//! when the datastore is Kubernetes and `CNI_ARGS` names the pod
//! (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`):
//!
//! - [`IP_ADDRS`]: a JSON list of addresses, at most one IPv4 and one
//!   IPv6: the pod gets exactly these (the path of the other requested
//!   addresses, [`crate::config::NetConf::requested_ips`]).
//! - [`IPV4_POOLS`], [`IPV6_POOLS`]: JSON lists of IPPool names or CIDRs:
//!   that family's addresses come only from those pools, in place of the
//!   network config's `pools`. Read from the pod, else from its
//!   Namespace ([`PodIpam::inherit`]).
//! - [`IP_FAMILIES`]: `["IPv4"]`, `["IPv6"]` or both: the families of an
//!   automatic assignment, in place of `assignIPv4` / `assignIPv6`.
//! - [`IP_ADDRS_NO_IPAM`] and [`FLOATING_IPS`] are not supported: an ADD
//!   for a pod that has one is refused.
//!
//! Precedence of the pool annotations, per family, as Calico's plugin
//! (`cni-plugin/pkg/k8s/k8s.go`: the Namespace's value is the default, a
//! non-empty value on the pod replaces it): the pod's own annotation,
//! else its Namespace's, else the network config's `pools`. A
//! Namespace's value the pod replaces is not read, so not checked either
//! (Calico parses only the value it uses). The Namespace's other
//! annotations are ignored, as in Calico.
//!
//! An annotation whose value is the empty string is absent (as in Calico).
//! [`PodIpam::parse`] and [`PodIpam::inherit`] check each annotation on
//! its own; [`crate::plan::Plan`] checks them against the network config,
//! the runtime's request and the IP pools, before anything is allocated.
//! Every problem is a CNI error naming the pod or the namespace, the
//! annotation and what is wrong.
//!
//! Where Calico differs: it ignores the pool annotations when `ipAddrs`
//! is set; Tortie requires the addresses to lie in the pools named (the
//! pod's or its Namespace's, as it requires requested addresses to lie in
//! the network config's `pools`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;
use tortie_datastore::AnyStore;
use tortie_ipam::Family;

use crate::config::Env;
use crate::error::{code, CniError};

/// Exactly these addresses.
pub const IP_ADDRS: &str = "cni.projectcalico.org/ipAddrs";
/// Addresses outside IPAM: not supported.
pub const IP_ADDRS_NO_IPAM: &str = "cni.projectcalico.org/ipAddrsNoIpam";
/// The IPv4 pools to assign from.
pub const IPV4_POOLS: &str = "cni.projectcalico.org/ipv4pools";
/// The IPv6 pools to assign from.
pub const IPV6_POOLS: &str = "cni.projectcalico.org/ipv6pools";
/// The families to assign.
pub const IP_FAMILIES: &str = "cni.projectcalico.org/ipFamilies";
/// Addresses to DNAT to the pod: not supported.
pub const FLOATING_IPS: &str = "cni.projectcalico.org/floatingIPs";

/// What a pod's annotations (and its Namespace's pool annotations) ask of
/// the IPAM, parsed (not yet checked against the pools:
/// [`crate::plan::Plan::new`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodIpam {
    /// `namespace/name`, for messages.
    pub pod: String,
    /// [`IP_ADDRS`]; empty when absent.
    pub addresses: Vec<IpAddr>,
    /// [`IPV4_POOLS`], the pod's or its Namespace's; `None` when both
    /// are absent.
    pub v4_pools: Option<Pools>,
    /// [`IPV6_POOLS`], likewise.
    pub v6_pools: Option<Pools>,
    /// [`IP_FAMILIES`]; `None` when absent.
    pub families: Option<Vec<Family>>,
}

/// A pool annotation in effect, and whose it is: a problem with it
/// (an unknown pool, an address outside it) names that object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pools {
    /// The pools named, without repeats.
    pub refs: Vec<PoolRef>,
    /// The pod's annotation, or its Namespace's.
    pub source: Source,
}

/// The object an annotation was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The pod, `namespace/name`.
    Pod(String),
    /// The pod's Namespace, by name.
    Namespace(String),
}

/// One entry of a pool annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolRef {
    /// The pool's name.
    Name(String),
    /// The pool's CIDR (host bits cleared).
    Cidr(IpNet),
}

// ===== impl PodIpam =====

impl PodIpam {
    /// Parses the annotations of pod `pod` (`namespace/name`).
    pub fn parse(pod: &str, notes: &BTreeMap<String, String>) -> Result<PodIpam, CniError> {
        let get = |k: &str| value(notes, k);
        let mut out = PodIpam {
            pod: pod.to_owned(),
            ..PodIpam::default()
        };
        let source = out.source();
        for (name, why) in [
            (
                IP_ADDRS_NO_IPAM,
                "Tortie assigns every pod address through its IPAM; use cni.projectcalico.org/ipAddrs for a fixed address inside an IP pool",
            ),
            (
                FLOATING_IPS,
                "Tortie has no floating IPs (DNAT to pods); remove the annotation",
            ),
        ] {
            if let Some(v) = get(name) {
                return Err(bad(&source, name, v, &format!("not supported: {why}")));
            }
        }
        if let Some(v) = get(IP_ADDRS) {
            out.addresses = addresses(&source, v)?;
        }
        out.v4_pools = pools(&source, IPV4_POOLS, get(IPV4_POOLS))?;
        out.v6_pools = pools(&source, IPV6_POOLS, get(IPV6_POOLS))?;
        if let Some(v) = get(IP_FAMILIES) {
            out.families = Some(families(&source, v)?);
        }
        Ok(out)
    }

    /// Whether a family lacks a pool annotation of the pod's own: its
    /// Namespace's may then apply ([`PodIpam::inherit`]).
    pub fn inherits(&self) -> bool {
        self.v4_pools.is_none() || self.v6_pools.is_none()
    }

    /// Takes the pool annotations of the pod's Namespace `namespace`
    /// (`notes`) for each family the pod names no pools of its own.
    /// Where the pod has one, the Namespace's is not read (as Calico).
    /// The Namespace's other annotations are ignored (as Calico).
    pub fn inherit(
        &mut self,
        namespace: &str,
        notes: &BTreeMap<String, String>,
    ) -> Result<(), CniError> {
        let source = Source::Namespace(namespace.to_owned());
        for (slot, name) in [
            (&mut self.v4_pools, IPV4_POOLS),
            (&mut self.v6_pools, IPV6_POOLS),
        ] {
            if slot.is_none() {
                *slot = pools(&source, name, value(notes, name))?;
            }
        }
        Ok(())
    }

    /// Whether a pool annotation is in effect (the pools must then be
    /// read).
    pub fn names_pools(&self) -> bool {
        self.v4_pools.is_some() || self.v6_pools.is_some()
    }

    /// The pod, as messages name it.
    pub(crate) fn source(&self) -> Source {
        Source::Pod(self.pod.clone())
    }

    /// The pool annotation of `family` in effect, and its name.
    pub(crate) fn pools(&self, family: Family) -> (Option<&Pools>, &'static str) {
        match family {
            Family::V4 => (self.v4_pools.as_ref(), IPV4_POOLS),
            Family::V6 => (self.v6_pools.as_ref(), IPV6_POOLS),
        }
    }
}

// ===== impl Source =====

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Pod(p) => write!(f, "pod {p}"),
            Source::Namespace(n) => write!(f, "namespace {n}"),
        }
    }
}

// ===== reading the pod =====

/// The IPAM annotations of the pod `CNI_ARGS` names, with its Namespace's
/// pool annotations where the pod has none of its own, when the datastore
/// is Kubernetes; nothing asked otherwise (no pod named, another
/// datastore). One LIST for the pod, and one GET of its Namespace unless
/// the pod names both families' pools itself.
pub async fn read(store: &AnyStore, env: &Env) -> Result<PodIpam, CniError> {
    let (Some(ns), Some(name)) = (
        env.args.get("K8S_POD_NAMESPACE"),
        env.args.get("K8S_POD_NAME"),
    ) else {
        return Ok(PodIpam::default());
    };
    let AnyStore::Kube(kube) = store else {
        return Ok(PodIpam::default());
    };
    let pod = format!("{ns}/{name}");
    let mut out = match kube.pod_annotations(ns, name).await {
        Ok(Some(notes)) => PodIpam::parse(&pod, &notes)?,
        Ok(None) => return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!(
                "pod {pod} (CNI_ARGS K8S_POD_NAMESPACE, K8S_POD_NAME) is not in the Kubernetes API; tortie-cni reads its annotations and writes its endpoint on it"
            ),
        )),
        Err(e) => return Err(CniError::new(
            code::IO,
            format!(
                "reading the annotations of pod {pod}: datastore: {e}; check that the API server answers and that tortie-cni may list pods (deploy/rbac.yaml)"
            ),
        )),
    };
    if !out.inherits() {
        return Ok(out);
    }
    match kube.namespace_annotations(ns).await {
        Ok(Some(notes)) => out.inherit(ns, &notes)?,
        Ok(None) => return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!(
                "namespace {ns} of pod {pod} is not in the Kubernetes API; tortie-cni reads its IP pool annotations"
            ),
        )),
        Err(e) => return Err(CniError::new(
            code::IO,
            format!(
                "reading the annotations of namespace {ns} (pod {pod}): datastore: {e}; check that the API server answers and that tortie-cni may get namespaces (deploy/rbac.yaml)"
            ),
        )),
    }
    Ok(out)
}

// ===== helpers =====

/// An annotation's problem: `pod ns/name: annotation X=value: what` or
/// `namespace ns: annotation X=value: what` (as `kubectl annotate` writes
/// it).
pub(crate) fn bad(source: &Source, name: &str, value: &str, what: &str) -> CniError {
    CniError::new(
        code::INVALID_CONFIG,
        format!("{}={value}: {what}", origin(source, name)),
    )
}

/// `pod ns/name: annotation X`, or `namespace ns: annotation X`.
pub(crate) fn origin(source: &Source, name: &str) -> String {
    format!("{source}: annotation {name}")
}

/// Annotation `name`'s value; the empty string is absent (as in Calico).
fn value<'a>(notes: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    notes
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// A pool annotation of `source`, parsed, if set.
fn pools(source: &Source, name: &str, value: Option<&str>) -> Result<Option<Pools>, CniError> {
    let Some(value) = value else { return Ok(None) };
    Ok(Some(Pools {
        refs: pool_refs(source, name, value)?,
        source: source.clone(),
    }))
}

/// The value as a JSON list of strings.
fn strings(pod: &Source, name: &str, value: &str, example: &str) -> Result<Vec<String>, CniError> {
    let not_list = |why: String| {
        bad(
            pod,
            name,
            value,
            &format!("{why}; write a JSON list of strings, e.g. {example}"),
        )
    };
    let parsed: Value =
        serde_json::from_str(value).map_err(|e| not_list(format!("not JSON ({e})")))?;
    let Value::Array(items) = parsed else {
        return Err(not_list("not a list".into()));
    };
    let out = items
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| not_list("an entry is not a string".into()))?;
    if out.is_empty() {
        return Err(bad(
            pod,
            name,
            value,
            &format!("an empty list; name at least one, e.g. {example}, or remove the annotation"),
        ));
    }
    Ok(out)
}

/// [`IP_ADDRS`]: addresses, at most one per family.
fn addresses(pod: &Source, value: &str) -> Result<Vec<IpAddr>, CniError> {
    let example = r#"["10.244.1.5"] or ["10.244.1.5", "fd00::5"]"#;
    let mut out: Vec<IpAddr> = Vec::new();
    for t in strings(pod, IP_ADDRS, value, example)? {
        let a: IpAddr = t.trim().parse().map_err(|_| {
            bad(
                pod,
                IP_ADDRS,
                value,
                &format!("{t:?} is not an IP address (write one without a prefix length: 10.244.1.5, fd00::5)"),
            )
        })?;
        if let Some(other) = out.iter().find(|o| family_of(o) == family_of(&a)) {
            return Err(bad(
                pod,
                IP_ADDRS,
                value,
                &format!(
                    "{other} and {a}: at most one {} address (a pod gets one of each family)",
                    family_of(&a)
                ),
            ));
        }
        out.push(a);
    }
    Ok(out)
}

/// A pool annotation: names or CIDRs, without repeats.
fn pool_refs(pod: &Source, name: &str, value: &str) -> Result<Vec<PoolRef>, CniError> {
    let example = if name == IPV6_POOLS {
        r#"["default-ipv6-ippool"] or ["fd00:10:244::/64"]"#
    } else {
        r#"["default-ipv4-ippool"] or ["10.244.0.0/16"]"#
    };
    let mut out = Vec::new();
    for t in strings(pod, name, value, example)? {
        let t = t.trim();
        let r = if t.contains('/') {
            let net: IpNet = t.parse().map_err(|_| {
                bad(
                    pod,
                    name,
                    value,
                    &format!("{t:?} is neither a CIDR nor an IP pool name"),
                )
            })?;
            PoolRef::Cidr(net.trunc())
        } else {
            PoolRef::Name(t.to_owned())
        };
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// [`IP_FAMILIES`]: `IPv4`, `IPv6`.
fn families(pod: &Source, value: &str) -> Result<Vec<Family>, CniError> {
    let mut out = Vec::new();
    for t in strings(pod, IP_FAMILIES, value, r#"["IPv4", "IPv6"]"#)? {
        let f = match t.as_str() {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            _ => {
                return Err(bad(
                    pod,
                    IP_FAMILIES,
                    value,
                    &format!("{t:?} is not a family; use \"IPv4\" and/or \"IPv6\""),
                ))
            }
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

/// The family of an address.
pub fn family_of(a: &IpAddr) -> Family {
    match a {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<PodIpam, CniError> {
        PodIpam::parse("default/web", &notes(pairs))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_what_calico_writes() {
        let p = parse(&[
            (IP_ADDRS, r#"["10.244.1.5", "fd00:10::5"]"#),
            (IPV4_POOLS, r#"["a", "10.245.7.0/16", "a"]"#),
            (IPV6_POOLS, r#"["fd00:10::/64"]"#),
            (IP_FAMILIES, r#"["IPv6"]"#),
            ("example.com/other", "x"),
        ])
        .unwrap();
        assert_eq!(p.pod, "default/web");
        assert_eq!(p.addresses, [ip("10.244.1.5"), ip("fd00:10::5")]);
        let v4 = p.v4_pools.unwrap();
        assert_eq!(
            v4.refs,
            [
                PoolRef::Name("a".into()),
                PoolRef::Cidr("10.245.0.0/16".parse().unwrap())
            ]
        );
        assert_eq!(v4.source, Source::Pod("default/web".into()));
        assert_eq!(
            p.v6_pools.unwrap().refs,
            [PoolRef::Cidr("fd00:10::/64".parse().unwrap())]
        );
        assert_eq!(p.families.unwrap(), [Family::V6]);
        // None of ours, or empty values: nothing asked.
        let none = PodIpam {
            pod: "default/web".into(),
            ..PodIpam::default()
        };
        assert_eq!(parse(&[]).unwrap(), none);
        assert_eq!(
            parse(&[(IP_ADDRS, ""), (IPV4_POOLS, ""), (IP_ADDRS_NO_IPAM, "")]).unwrap(),
            none
        );
    }

    #[test]
    fn bad_annotations_name_pod_annotation_and_problem() {
        let cases: &[(&str, &str, &str)] = &[
            (IP_ADDRS, "10.244.1.5", "not JSON"),
            (IP_ADDRS, r#"{"ip":"10.244.1.5"}"#, "not a list"),
            (IP_ADDRS, r#"[10]"#, "an entry is not a string"),
            (IP_ADDRS, "[]", "an empty list"),
            (IP_ADDRS, r#"["ten"]"#, "\"ten\" is not an IP address"),
            (IP_ADDRS, r#"["10.244.1.5/32"]"#, "is not an IP address"),
            (
                IP_ADDRS,
                r#"["10.244.1.5", "10.244.1.6"]"#,
                "at most one IPv4 address",
            ),
            (IP_ADDRS, r#"["fd00::1", "fd00::2"]"#, "at most one IPv6"),
            (IPV4_POOLS, "a", "not JSON"),
            (IPV4_POOLS, r#""a""#, "not a list"),
            (IPV4_POOLS, "[]", "an empty list"),
            (IPV6_POOLS, r#"["fd00::/zz"]"#, "neither a CIDR nor"),
            (IP_FAMILIES, r#"["IPv5"]"#, "\"IPv5\" is not a family"),
            (IP_ADDRS_NO_IPAM, r#"["10.244.1.5"]"#, "not supported"),
            (FLOATING_IPS, r#"["1.2.3.4"]"#, "not supported"),
        ];
        for (name, value, needle) in cases {
            let e = parse(&[(name, value)]).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{name}={value}: {e}");
            let head = format!("pod default/web: annotation {name}={value}: ");
            assert!(e.msg.starts_with(&head), "{name}={value}: {e}");
            assert!(e.msg.contains(needle), "{name}={value}: {e}");
        }
        // NoIpam is refused even beside a valid ipAddrs.
        let e = parse(&[
            (IP_ADDRS, r#"["10.244.1.5"]"#),
            (IP_ADDRS_NO_IPAM, r#"["10.244.1.5"]"#),
        ])
        .unwrap_err();
        assert!(e.msg.contains(IP_ADDRS_NO_IPAM), "{e}");
    }

    /// Calico's precedence, per family: the pod's non-empty pool
    /// annotation, else its Namespace's; the Namespace's other annotations
    /// are not read.
    #[test]
    fn namespace_pools_apply_where_the_pod_names_none() {
        let ns = |pairs: &[(&str, &str)], pod: &[(&str, &str)]| {
            let mut p = parse(pod).unwrap();
            p.inherit("team", &notes(pairs)).map(|()| p)
        };
        let name = |n: &str| vec![PoolRef::Name(n.into())];
        let from_ns = Source::Namespace("team".into());
        let from_pod = Source::Pod("default/web".into());
        let both = [(IPV4_POOLS, r#"["ns-a"]"#), (IPV6_POOLS, r#"["ns-six"]"#)];

        // Nothing on the pod: both of the Namespace's.
        let p = ns(&both, &[]).unwrap();
        let (v4, v6) = (p.v4_pools.unwrap(), p.v6_pools.unwrap());
        assert_eq!((v4.refs, v4.source), (name("ns-a"), from_ns.clone()));
        assert_eq!((v6.refs, v6.source), (name("ns-six"), from_ns.clone()));

        // The pod's ipv4pools wins for IPv4 only; an empty value on the
        // pod is absent, so the Namespace's applies.
        for pod in [
            &[(IPV4_POOLS, r#"["pod-b"]"#)][..],
            &[(IPV4_POOLS, r#"["pod-b"]"#), (IPV6_POOLS, "")],
        ] {
            let p = ns(&both, pod).unwrap();
            let (v4, v6) = (p.v4_pools.unwrap(), p.v6_pools.unwrap());
            assert_eq!((v4.refs, v4.source), (name("pod-b"), from_pod.clone()));
            assert_eq!((v6.refs, v6.source), (name("ns-six"), from_ns.clone()));
        }

        // The pod names both: the Namespace is not needed.
        let mine = [(IPV4_POOLS, r#"["pod-b"]"#), (IPV6_POOLS, r#"["pod-six"]"#)];
        assert!(!parse(&mine).unwrap().inherits());
        assert!(parse(&[(IPV4_POOLS, r#"["pod-b"]"#)]).unwrap().inherits());
        assert!(parse(&[]).unwrap().inherits());

        // A Namespace value the pod replaces is not read, even a bad one.
        let p = ns(&[(IPV4_POOLS, "nope")], &[(IPV4_POOLS, r#"["pod-b"]"#)]).unwrap();
        assert_eq!(p.v4_pools.unwrap().source, from_pod);
        assert_eq!(p.v6_pools, None);

        // Only the pool annotations come from the Namespace.
        let p = ns(
            &[
                (IP_ADDRS, r#"["10.244.1.5"]"#),
                (IP_FAMILIES, r#"["IPv6"]"#),
                (IP_ADDRS_NO_IPAM, r#"["10.244.1.5"]"#),
                (FLOATING_IPS, r#"["1.2.3.4"]"#),
                (IPV4_POOLS, ""),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(p, parse(&[]).unwrap());
    }

    #[test]
    fn bad_namespace_annotations_name_the_namespace() {
        let cases: &[(&str, &str, &str)] = &[
            (IPV4_POOLS, "a", "not JSON"),
            (IPV4_POOLS, r#""a""#, "not a list"),
            (IPV6_POOLS, "[]", "an empty list"),
            (IPV6_POOLS, r#"["fd00::/zz"]"#, "neither a CIDR nor"),
        ];
        for (name, value, needle) in cases {
            let mut p = parse(&[]).unwrap();
            let e = p.inherit("team", &notes(&[(name, value)])).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{name}={value}: {e}");
            let head = format!("namespace team: annotation {name}={value}: ");
            assert!(e.msg.starts_with(&head), "{name}={value}: {e}");
            assert!(e.msg.contains(needle), "{name}={value}: {e}");
        }
    }
}
