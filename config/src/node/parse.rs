//! The parsers of `tortie-node`'s settings, one per setting whose text
//! means more than a string: node addresses (`ip`, `ip6`), `routerId`,
//! `datastore`, the autodetection methods, the node name and labels. Each
//! error names the setting by all its spellings ([`label`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::IpNet;

use super::{Address6Setting, AddressSetting, Autodetect, DatastoreSetting, IpFamily};
use crate::error::ConfigError;

/// A setting's name with its flag and environment variable, for errors:
/// `ip` -> `ip (--ip, TORTIE_IP)`.
pub fn label(field: &str) -> String {
    let mut flag = String::new();
    let mut env = String::from("TORTIE_");
    for c in field.chars() {
        if c.is_ascii_uppercase() {
            flag.push('-');
            env.push('_');
        }
        flag.push(c.to_ascii_lowercase());
        env.push(c.to_ascii_uppercase());
    }
    format!("{field} (--{flag}, {env})")
}

/// Parses `ip`: an address with its prefix length.
pub fn parse_node_ip(text: &str) -> Result<IpNet, ConfigError> {
    match text.parse::<IpNet>() {
        Ok(net) if net.addr().is_unspecified() || net.addr().is_loopback() => {
            Err(ConfigError::invalid(
                label("ip"),
                text,
                "not a usable node address (unspecified or loopback)",
            ))
        }
        Ok(net) => Ok(net),
        Err(_) if text.parse::<IpAddr>().is_ok() => Err(ConfigError::invalid(
            label("ip"),
            text,
            "give the prefix length too, e.g. 192.168.1.10/24: the subnet decides \
             which nodes are reached without encapsulation (CrossSubnet)",
        )),
        Err(_) => Err(ConfigError::invalid(
            label("ip"),
            text,
            "an address with its prefix length (192.168.1.10/24), autodetect, or none \
             (an IPv6-only node whose address is ip6)",
        )),
    }
}

/// Parses `ip6` when it is an address: an IPv6 address with its prefix
/// length.
pub fn parse_node_ip6(text: &str) -> Result<IpNet, ConfigError> {
    let net = parse_node_ip(text).map_err(|_| {
        ConfigError::invalid(
            label("ip6"),
            text,
            "an IPv6 address with its prefix length (fd00:1::10/64), autodetect or none",
        )
    })?;
    if net.addr().is_ipv4() {
        return Err(ConfigError::invalid(
            label("ip6"),
            text,
            "an IPv6 address; the IPv4 address goes in ip (--ip, TORTIE_IP)",
        ));
    }
    Ok(net)
}

/// `ip` and `ip6` (trimmed) as the underlay address and the dual-stack
/// IPv6 address. An IPv6-only node says `ip: none` with `ip6`
/// (`ADDR/PREFIX` or `autodetect`), or gives its address in `ip` alone.
pub(super) fn addresses(
    ip: Option<&str>,
    ip6: Option<&str>,
    method: Autodetect,
    method6: Option<Autodetect>,
) -> Result<(AddressSetting, Option<Address6Setting>), ConfigError> {
    if ip == Some("none") {
        return match ip6 {
            None | Some("none") => Err(ConfigError::invalid(
                label("ip"),
                "none",
                "none is an IPv6-only node: set ip6 (--ip6, TORTIE_IP6) to its address \
                 (fd00:1::10/64) or autodetect; a node needs an address",
            )),
            Some("autodetect") => Ok((
                AddressSetting::Autodetect6(method6.unwrap_or(Autodetect::FirstFound)),
                None,
            )),
            Some(text) => Ok((AddressSetting::Explicit(parse_node_ip6(text)?), None)),
        };
    }
    let address = match ip {
        None | Some("autodetect") => AddressSetting::Autodetect(method),
        Some(text) => AddressSetting::Explicit(parse_node_ip(text)?),
    };
    let address_v6 = match ip6 {
        None | Some("none") => return Ok((address, None)),
        Some("autodetect") => Address6Setting::Autodetect(method6),
        Some(text) => Address6Setting::Explicit(parse_node_ip6(text)?),
    };
    if matches!(address, AddressSetting::Explicit(n) if n.addr().is_ipv6()) {
        return Err(ConfigError::invalid(
            label("ip6"),
            ip6.unwrap_or_default(),
            "ip (--ip, TORTIE_IP) is already an IPv6 address: an IPv6-only node gives \
             its address in ip alone (or ip none with ip6 ADDR/PREFIX or autodetect); a \
             dual-stack node gives IPv4 in ip and IPv6 in ip6",
        ));
    }
    Ok((address, Some(address_v6)))
}

/// Parses `routerId`: an IPv4 address that is not 0.0.0.0.
pub fn parse_router_id(text: &str) -> Result<Ipv4Addr, ConfigError> {
    match text.parse::<Ipv4Addr>() {
        Ok(a) if !a.is_unspecified() => Ok(a),
        _ => Err(ConfigError::invalid(
            label("routerId"),
            text,
            "an IPv4 address other than 0.0.0.0 (BGP identifiers are 32 bits, RFC 6286), \
             unique in the cluster, or hash",
        )),
    }
}

/// `routerId: hash`: FNV-1a-32 of the node name as an IPv4 address (never
/// 0.0.0.0). Every node computes its own from its unique name.
pub fn hashed_router_id(node_name: &str) -> Ipv4Addr {
    let mut h: u32 = 0x811c_9dc5;
    for b in node_name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    Ipv4Addr::from(h.max(1))
}

/// Parses `datastore` (`file:DIR`, `etcd:URL[,URL...]`, `kubernetes` or
/// `kubernetes:KUBECONFIG`) with the etcd key prefix.
pub fn parse_datastore(text: &str, prefix: &str) -> Result<DatastoreSetting, ConfigError> {
    let allowed = "file:DIR (e.g. file:/var/lib/tortie), etcd:URL[,URL...] \
                   (e.g. etcd:http://10.0.0.1:2379), kubernetes or kubernetes:KUBECONFIG";
    if text == "kubernetes" {
        return Ok(DatastoreSetting::Kubernetes(None));
    }
    match text.split_once(':') {
        Some(("kubernetes", path)) if !path.is_empty() => {
            Ok(DatastoreSetting::Kubernetes(Some(PathBuf::from(path))))
        }
        Some(("file", dir)) if !dir.is_empty() => Ok(DatastoreSetting::File(PathBuf::from(dir))),
        Some(("etcd", urls)) => {
            let endpoints: Vec<String> = urls
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(String::from)
                .collect();
            if endpoints.is_empty() {
                return Err(ConfigError::invalid(label("datastore"), text, allowed));
            }
            for e in &endpoints {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Err(ConfigError::invalid(
                        label("datastore"),
                        text,
                        format!("etcd endpoint {e:?} needs its scheme: http://HOST:PORT"),
                    ));
                }
            }
            if !prefix.starts_with('/') {
                return Err(ConfigError::invalid(
                    label("etcdPrefix"),
                    prefix,
                    "a key prefix starting with /, e.g. /tortie/v1",
                ));
            }
            Ok(DatastoreSetting::Etcd {
                endpoints,
                prefix: prefix.to_string(),
            })
        }
        _ => Err(ConfigError::invalid(label("datastore"), text, allowed)),
    }
}

/// Parses `ipAutodetectionMethod` (`family` IPv4) or
/// `ip6AutodetectionMethod` (IPv6): CIDRs and the can-reach address must
/// be of that family.
pub(super) fn parse_autodetect(text: &str, family: IpFamily) -> Result<Autodetect, ConfigError> {
    let (name, other, example) = match family {
        IpFamily::Ipv4 => (
            "ipAutodetectionMethod",
            "ip6AutodetectionMethod",
            "10.0.0.0/8",
        ),
        IpFamily::Ipv6 => (
            "ip6AutodetectionMethod",
            "ipAutodetectionMethod",
            "fd00::/8",
        ),
    };
    let field = label(name);
    let wrong_family = |what: &str, v6: bool| {
        (v6 != (family == IpFamily::Ipv6)).then(|| {
            format!(
                "{what} is an IPv{} address: {name} finds the IPv{} address; put it in {}",
                if v6 { 6 } else { 4 },
                if v6 { 4 } else { 6 },
                label(other)
            )
        })
    };
    let allowed = "first-found, interface=REGEX[,REGEX], skip-interface=REGEX[,REGEX], \
                   cidr=CIDR[,CIDR] or can-reach=ADDRESS";
    let text = text.trim();
    if text == "first-found" {
        return Ok(Autodetect::FirstFound);
    }
    let Some((method, arg)) = text.split_once('=') else {
        return Err(ConfigError::invalid(field, text, allowed));
    };
    let list = || -> Vec<String> {
        arg.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    match method {
        "interface" | "skip-interface" => {
            let res = list();
            if res.is_empty() {
                return Err(ConfigError::invalid(
                    field,
                    text,
                    "give at least one regular expression",
                ));
            }
            for re in &res {
                regex::Regex::new(re).map_err(|e| {
                    ConfigError::invalid(
                        field.clone(),
                        text,
                        format!("{re:?} is not a regular expression: {e}"),
                    )
                })?;
            }
            Ok(if method == "interface" {
                Autodetect::Interface(res)
            } else {
                Autodetect::SkipInterface(res)
            })
        }
        "cidr" => {
            let mut nets = Vec::new();
            for c in list() {
                let net = c.parse::<IpNet>().map_err(|_| {
                    ConfigError::invalid(
                        field.clone(),
                        text,
                        format!("{c:?} is not a CIDR ({example})"),
                    )
                })?;
                if let Some(why) = wrong_family(&c, net.addr().is_ipv6()) {
                    return Err(ConfigError::invalid(field, text, why));
                }
                nets.push(net);
            }
            if nets.is_empty() {
                return Err(ConfigError::invalid(field, text, "give at least one CIDR"));
            }
            Ok(Autodetect::Cidr(nets))
        }
        "can-reach" => {
            let dest: IpAddr = arg.trim().parse().map_err(|_| {
                ConfigError::invalid(
                    field.clone(),
                    text,
                    "can-reach takes an IP address (no host names)",
                )
            })?;
            match wrong_family(arg.trim(), dest.is_ipv6()) {
                Some(why) => Err(ConfigError::invalid(field, text, why)),
                None => Ok(Autodetect::CanReach(dest)),
            }
        }
        _ => Err(ConfigError::invalid(field, text, allowed)),
    }
}

/// A node name: a DNS subdomain (lowercase letters, digits, `-`, `.`;
/// starts and ends alphanumeric; at most 253 characters), as Kubernetes
/// requires of node names.
pub(super) fn check_node_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            label("nodeName"),
            format!("{name:?}"),
            "a DNS name: lowercase letters, digits, '-' and '.', starting and ending \
             with a letter or digit, at most 253 characters",
        ))
    }
}

/// A label as Kubernetes allows: key `[prefix/]name` (name 1-63 of
/// alphanumerics, `-`, `_`, `.`), value at most 63 of the same.
pub(super) fn check_label(key: &str, value: &str) -> Result<(), ConfigError> {
    let part = |s: &str, empty_ok: bool| {
        (empty_ok || !s.is_empty())
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    };
    let name = key.rsplit_once('/').map_or(key, |(_, n)| n);
    if !part(name, false) {
        return Err(ConfigError::invalid(
            label("labels"),
            format!("{key:?}"),
            "a label key: [prefix/]name, name 1-63 letters, digits, '-', '_' or '.'",
        ));
    }
    if !part(value, true) {
        return Err(ConfigError::invalid(
            label("labels"),
            format!("{key}={value:?}"),
            "a label value: at most 63 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

/// Parses `--labels k=v,k=v`.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}
