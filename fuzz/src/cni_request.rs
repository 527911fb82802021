//! Target `cni_request`: what `tortie-cni` reads before it touches the
//! kernel or the datastore: the network config on stdin
//! (`NetConf::parse`, and VERSION's `commands::version`), the `CNI_*`
//! environment (`Env` as `Env::from_process` makes it, see [`env`], then
//! `container_id`, `ifname`, `netns`, `NetConf::requested_ips`), the
//! pod's and its Namespace's
//! Calico IPAM annotations (`PodIpam::parse`, `PodIpam::inherit`), and
//! ADD's plan from them all (`Plan::new`, against three fixed pools).
//!
//! Input: sections separated by NUL octets, in this order: stdin,
//! `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
//! `CNI_ARGS`, the pod's annotations, the Namespace's annotations (one
//! `key=value` a line). Missing sections are empty; an empty variable is
//! unset (as `Env::from_process` treats it).
//!
//! Checked, besides "no panic":
//! - a config that parses holds what `parse` promises (a supported
//!   `cniVersion`, type `tortie`, a name, an MTU of 68..=65535, a
//!   family to assign);
//! - every error is one of the spec's codes (or ours) and its JSON has
//!   `cniVersion`, `code` and `msg`;
//! - an accepted `CNI_IFNAME` is 1-15 octets without `/`, `:` or a space,
//!   and the host-side name derived from it is `tort` and 11 hex digits;
//! - requested addresses come without repeats; annotations give at most
//!   one address per family; a plan's addresses are the requested or
//!   annotated ones.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tortie_cni::annotations::{family_of, PodIpam};
use tortie_cni::commands::{handle_id, version};
use tortie_cni::config::{Env, NetConf, SUPPORTED_VERSIONS};
use tortie_cni::error::{code, CniError};
use tortie_cni::plan::{conf_families, Plan};
use tortie_config::resources::{IPPool, IPPoolSpec, Object};

/// The target's body.
pub fn run(data: &[u8]) {
    let mut sections = data.split(|b| *b == 0);
    let mut next = || sections.next().unwrap_or_default();
    let stdin = next();
    let env = env([next(), next(), next(), next(), next()]);
    let pod_notes = notes(next());
    let ns_notes = notes(next());

    let v = version(stdin);
    assert!(SUPPORTED_VERSIONS.contains(&v["cniVersion"].as_str().unwrap_or_default()));

    let env_checks = [env.container_id().err(), env.netns().err()];
    for e in env_checks.into_iter().flatten() {
        check_error(&e);
    }
    match env.ifname() {
        Ok(name) => {
            assert!(!name.is_empty() && name.len() <= 15, "{name:?}");
            assert!(!name.contains(['/', ':', ' ']), "{name:?}");
        }
        Err(e) => check_error(&e),
    }

    let conf = match NetConf::parse(stdin) {
        Ok(conf) => conf,
        Err(e) => return check_error(&e),
    };
    assert!(SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()));
    assert_eq!(conf.plugin_type, "tortie");
    assert!(!conf.name.is_empty());
    assert!((68..=65535).contains(&conf.mtu));
    assert!(conf.assign_ipv4 || conf.assign_ipv6);
    if let (Ok(cid), Ok(ifname)) = (env.container_id(), env.ifname()) {
        let host = felix::endpoint::host_ifname(&handle_id(&conf, cid, ifname));
        assert!(host.len() == 15 && host.starts_with("tort"), "{host}");
        assert!(host[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{host}");
    }

    let requested = match conf.requested_ips(&env) {
        Ok(r) => r,
        Err(e) => return check_error(&e),
    };
    for (i, a) in requested.iter().enumerate() {
        assert!(!requested[..i].contains(a), "{a} requested twice");
    }

    let pod = match PodIpam::parse("default/web", &pod_notes) {
        Ok(mut pod) => {
            if pod.inherits() {
                if let Err(e) = pod.inherit("default", &ns_notes) {
                    return check_error(&e);
                }
            }
            pod
        }
        Err(e) => return check_error(&e),
    };
    for (i, a) in pod.addresses.iter().enumerate() {
        let same = pod.addresses[..i].iter().any(|b| family_of(a) == family_of(b));
        assert!(!same, "two addresses of one family: {:?}", pod.addresses);
    }

    match Plan::new(&conf.pools, &conf_families(&conf), &requested, &pod, &pools()) {
        Ok(plan) => {
            for a in &plan.addresses {
                assert!(requested.contains(a) || pod.addresses.contains(a), "{a}");
            }
        }
        Err(e) => check_error(&e),
    }
}

/// A CNI error has a code the spec (or we) define and a JSON form.
fn check_error(e: &CniError) {
    let known = [
        code::INCOMPATIBLE_VERSION,
        code::UNSUPPORTED_FIELD,
        code::UNKNOWN_CONTAINER,
        code::INVALID_ENV,
        code::IO,
        code::DECODE,
        code::INVALID_CONFIG,
        code::TRY_AGAIN,
        code::NOT_AVAILABLE,
        code::POOL_EXHAUSTED,
        code::KERNEL,
    ];
    assert!(known.contains(&e.code), "code {}: {e}", e.code);
    let json = e.to_json("1.1.0");
    assert_eq!(json["code"].as_u64(), Some(u64::from(e.code)));
    assert_eq!(json["cniVersion"], "1.1.0");
    assert!(json["msg"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
    let text = json.to_string();
    let back: serde_json::Value = serde_json::from_str(&text).expect("error JSON reads back");
    assert_eq!(back, json);
}

/// The environment as `Env::from_process` reads it: `CNI_COMMAND`,
/// `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`; an empty or
/// non-UTF-8 value is unset. Not through the process environment: glibc
/// keeps every value `setenv` ever set (the fuzzer ran out of memory
/// after four million), so `CNI_ARGS` is split here as `Env`'s private
/// `parse_args` does (`;` then the first `=`).
fn env(vars: [&[u8]; 5]) -> Env {
    let var = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let args = var(vars[4]).unwrap_or_default();
    Env {
        command: var(vars[0]).unwrap_or_default(),
        container_id: var(vars[1]),
        netns: var(vars[2]).map(PathBuf::from),
        ifname: var(vars[3]),
        args: args
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// `key=value` lines; a line without `=` is a key with an empty value.
fn notes(section: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(section)
        .lines()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

/// The pools a plan is checked against: Calico's two defaults and a
/// disabled one.
fn pools() -> Vec<IPPool> {
    let pool = |name: &str, cidr: &str, disabled: bool| {
        let mut spec = IPPoolSpec::new(cidr.parse().expect("a CIDR"));
        spec.disabled = disabled;
        Object::new(name, spec)
    };
    vec![
        pool("default-ipv4-ippool", "10.244.0.0/16", false),
        pool("default-ipv6-ippool", "fd00:10:244::/64", false),
        pool("old", "10.96.0.0/24", true),
    ]
}
