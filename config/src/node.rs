//! `tortie-node`'s settings: command-line flags, `TORTIE_*` environment
//! variables (what a DaemonSet sets) and an optional YAML file, in that
//! order of precedence, then the defaults.
//!
//! Each source is a [`NodeSettingsLayer`] (every field optional; the file's
//! keys are the camelCase field names, unknown keys are rejected with their
//! path); [`NodeSettingsLayer::over`] stacks two, and
//! [`NodeSettings::from_layer`] applies the defaults and validates. Errors
//! name the setting by all its spellings (`ip (--ip, TORTIE_IP)`), the value
//! and what is allowed. The reference for users is `docs/operations.md`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::resources::AsNumber;

/// Default datastore: the embedded file backend in its default directory.
pub const DEFAULT_DATASTORE: &str = "file:/var/lib/tortie";
/// Default key prefix in etcd (as the datastore's etcd backend).
pub const DEFAULT_ETCD_PREFIX: &str = "/tortie/v1";
/// Default admin address (`/metrics`, `/status`, `/healthz`, `/readyz`):
/// loopback only, Calico's health port.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9099";
/// Default state directory: the graceful restart marker. Under `/run`, so
/// that a reboot (which also empties the kernel's routes) starts fresh.
pub const DEFAULT_STATE_DIR: &str = "/run/tortie";
/// Default address autodetection method.
pub const DEFAULT_AUTODETECTION: &str = "first-found";
/// Default directory of BGPPeer passwords given by `secretKeyRef` (where a
/// DaemonSet mounts the secrets).
pub const DEFAULT_SECRETS_DIR: &str = "/etc/tortie/secrets";
/// Default graceful restart time advertised to peers, seconds.
pub const DEFAULT_RESTART_TIME: u16 = 120;

/// One source of settings; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSettingsLayer {
    /// This node's name (default: the kernel host name).
    pub node_name: Option<String>,
    /// `file:DIR`, `etcd:URL[,URL...]` or `kubernetes[:KUBECONFIG]`.
    pub datastore: Option<String>,
    /// Key prefix in etcd.
    pub etcd_prefix: Option<String>,
    /// `ADDR/PREFIX`, `autodetect`, or `none` (an IPv6-only node, whose
    /// address is `ip6`, as Calico's `IP=none`).
    pub ip: Option<String>,
    /// How to autodetect: `first-found`, `interface=REGEX[,REGEX]`,
    /// `skip-interface=REGEX[,REGEX]`, `cidr=CIDR[,CIDR]`, `can-reach=ADDR`.
    pub ip_autodetection_method: Option<String>,
    /// The node's IPv6 address with its prefix length (`fd00:1::10/64`),
    /// `autodetect` or `none` (Calico's `IP6`): dual stack beside `ip`, or
    /// an IPv6-only node's address with `ip: none` (such a node may also
    /// give its address in `ip` alone). Default: none.
    pub ip6: Option<String>,
    /// How `ip6: autodetect` finds the address: the methods of
    /// `ipAutodetectionMethod` over global IPv6 addresses (Calico's
    /// `IP6_AUTODETECTION_METHOD`). Default: the first global IPv6 address
    /// of the IPv4 address's interface; first-found with `ip: none`.
    pub ip6_autodetection_method: Option<String>,
    /// The BGP router ID: an IPv4 address, or `hash` (derived from the node
    /// name, as Calico's `CALICO_ROUTER_ID=hash`). Default: the node's IPv4
    /// address; a node without one must set it.
    pub router_id: Option<String>,
    /// The node's AS (written into its Node); default: the BGPConfiguration's.
    pub as_number: Option<AsNumber>,
    /// Labels merged into the node's Node (selectors match them).
    pub labels: Option<BTreeMap<String, String>>,
    /// Makes the node a route reflector with this cluster id (written into
    /// its Node as `spec.bgp.routeReflectorClusterID`).
    #[serde(rename = "routeReflectorClusterID")]
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    /// Admin HTTP address.
    pub admin: Option<String>,
    /// Log filter: a level or tracing directives.
    pub log_level: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// Where the graceful restart marker is kept.
    pub state_dir: Option<PathBuf>,
    /// Graceful restart time advertised to peers, seconds (1..=4095).
    pub restart_time: Option<u16>,
    /// Where BGPPeer `secretKeyRef` passwords are read:
    /// `<dir>/<secret>/<key>`.
    pub secrets_dir: Option<PathBuf>,
    /// `Enabled` (default) or `Disabled`: whether the agent sets the host's
    /// IP forwarding sysctls (Felix's `ipForwarding`).
    pub ip_forwarding: Option<String>,
}

/// The validated settings.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSettings {
    pub node_name: String,
    pub datastore: DatastoreSetting,
    /// The underlay address: IPv4, or IPv6 on an IPv6-only node.
    pub address: AddressSetting,
    /// The IPv6 address besides an IPv4 `address` (dual stack).
    pub address_v6: Option<Address6Setting>,
    /// The BGP router ID, when set (`routerId`).
    pub router_id: Option<Ipv4Addr>,
    pub as_number: Option<u32>,
    pub labels: BTreeMap<String, String>,
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    pub admin: SocketAddr,
    pub log_level: String,
    pub log_format: LogFormatSetting,
    pub state_dir: PathBuf,
    pub restart_time: u16,
    pub secrets_dir: PathBuf,
    /// Whether the agent sets the IP forwarding sysctls (`ipForwarding`).
    pub ip_forwarding: IpForwardingSetting,
}

/// Where the datastore is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatastoreSetting {
    /// The file backend in this directory (shared by every node of one
    /// machine in the lab).
    File(PathBuf),
    /// etcd v3.
    Etcd {
        /// Client URLs.
        endpoints: Vec<String>,
        /// Key prefix.
        prefix: String,
    },
    /// The Kubernetes API: with this kubeconfig, or (`None`) `$KUBECONFIG`,
    /// `~/.kube/config` or the pod's service account.
    Kubernetes(Option<PathBuf>),
}

/// How the node's underlay address is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressSetting {
    /// Given: the address and its subnet's prefix length (IPv6 on an
    /// IPv6-only node: `ip: ADDR6/PREFIX`, or `ip: none` with `ip6`).
    Explicit(IpNet),
    /// An IPv4 address found on the node's interfaces (`ip: autodetect`,
    /// `ipAutodetectionMethod`).
    Autodetect(Autodetect),
    /// An IPv6-only node's address found on its interfaces (`ip: none`,
    /// `ip6: autodetect`, `ip6AutodetectionMethod`, default first-found).
    Autodetect6(Autodetect),
}

/// A dual-stack node's IPv6 address (`ip6`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address6Setting {
    /// Given, with its prefix length.
    Explicit(IpNet),
    /// Found on the interface of the IPv4 address (a dual-stack node's
    /// addresses share one interface): by `ip6AutodetectionMethod`, or
    /// (`None`) the interface's first global IPv6 address.
    Autodetect(Option<Autodetect>),
}

/// The family an autodetection method looks for (`ipAutodetectionMethod`
/// or `ip6AutodetectionMethod`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpFamily {
    /// IPv4 addresses.
    Ipv4,
    /// Global IPv6 addresses.
    Ipv6,
}

/// Address autodetection, as Calico users know it (`IP_AUTODETECTION_METHOD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Autodetect {
    /// The first global address of the first interface that is not a known
    /// virtual one (loopback, docker, veth, our own devices ...).
    FirstFound,
    /// The first address of the first interface whose whole name matches one
    /// of the regular expressions.
    Interface(Vec<String>),
    /// Like `FirstFound`, but skipping interfaces whose name matches.
    SkipInterface(Vec<String>),
    /// The first address inside one of the prefixes.
    Cidr(Vec<IpNet>),
    /// The address the kernel would use as source towards this destination.
    CanReach(IpAddr),
}

/// `logFormat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormatSetting {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `ipForwarding`, as FelixConfiguration spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IpForwardingSetting {
    /// Hold `net.ipv4.ip_forward` (and, with an IPv6 pool,
    /// `net.ipv6.conf.all.forwarding`) at 1.
    #[default]
    Enabled,
    /// Leave them to the host.
    Disabled,
}

// ===== impl NodeSettingsLayer =====

impl NodeSettingsLayer {
    /// Parses the settings file (YAML, camelCase keys).
    pub fn from_yaml(text: &str) -> Result<NodeSettingsLayer, ConfigError> {
        crate::yaml::from_str_located(text).map(|(layer, _)| layer)
    }

    /// Reads and parses the settings file; errors name the file and line.
    pub fn load(path: &Path) -> Result<NodeSettingsLayer, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read settings file {}: {e}", path.display()))?;
        NodeSettingsLayer::from_yaml(&text).map_err(|e| e.in_file(path))
    }

    /// `self` where set, else `under`.
    pub fn over(self, under: NodeSettingsLayer) -> NodeSettingsLayer {
        NodeSettingsLayer {
            node_name: self.node_name.or(under.node_name),
            datastore: self.datastore.or(under.datastore),
            etcd_prefix: self.etcd_prefix.or(under.etcd_prefix),
            ip: self.ip.or(under.ip),
            ip_autodetection_method: self
                .ip_autodetection_method
                .or(under.ip_autodetection_method),
            ip6: self.ip6.or(under.ip6),
            ip6_autodetection_method: self
                .ip6_autodetection_method
                .or(under.ip6_autodetection_method),
            router_id: self.router_id.or(under.router_id),
            as_number: self.as_number.or(under.as_number),
            labels: self.labels.or(under.labels),
            route_reflector_cluster_id: self
                .route_reflector_cluster_id
                .or(under.route_reflector_cluster_id),
            admin: self.admin.or(under.admin),
            log_level: self.log_level.or(under.log_level),
            log_format: self.log_format.or(under.log_format),
            state_dir: self.state_dir.or(under.state_dir),
            restart_time: self.restart_time.or(under.restart_time),
            secrets_dir: self.secrets_dir.or(under.secrets_dir),
            ip_forwarding: self.ip_forwarding.or(under.ip_forwarding),
        }
    }
}

// ===== impl NodeSettings =====

impl NodeSettings {
    /// Applies the defaults and validates. `hostname` is the default node
    /// name.
    pub fn from_layer(
        layer: NodeSettingsLayer,
        hostname: &str,
    ) -> Result<NodeSettings, ConfigError> {
        let node_name = layer.node_name.unwrap_or_else(|| hostname.to_string());
        check_node_name(&node_name)?;
        let datastore = parse_datastore(
            layer.datastore.as_deref().unwrap_or(DEFAULT_DATASTORE),
            layer.etcd_prefix.as_deref().unwrap_or(DEFAULT_ETCD_PREFIX),
        )?;
        let method = parse_autodetect(
            layer
                .ip_autodetection_method
                .as_deref()
                .unwrap_or(DEFAULT_AUTODETECTION),
            IpFamily::Ipv4,
        )?;
        let method6 = layer
            .ip6_autodetection_method
            .as_deref()
            .map(|t| parse_autodetect(t, IpFamily::Ipv6))
            .transpose()?;
        let (address, address_v6) = addresses(
            layer.ip.as_deref().map(str::trim),
            layer.ip6.as_deref().map(str::trim),
            method,
            method6,
        )?;
        let router_id = match layer.router_id.as_deref().map(str::trim) {
            None => None,
            Some("hash") => Some(hashed_router_id(&node_name)),
            Some(text) => Some(parse_router_id(text)?),
        };
        if let Some(asn) = layer.as_number {
            if asn.0 == 0 {
                return Err(ConfigError::invalid(
                    label("asNumber"),
                    0,
                    "AS 0 is reserved (RFC 7607)",
                ));
            }
        }
        let labels = layer.labels.unwrap_or_default();
        for (k, v) in &labels {
            check_label(k, v)?;
        }
        let admin_text = layer.admin.as_deref().unwrap_or(DEFAULT_ADMIN);
        let admin = admin_text.parse().map_err(|_| {
            ConfigError::invalid(
                label("admin"),
                admin_text,
                "an address and port, e.g. 127.0.0.1:9099 or [::1]:9099",
            )
        })?;
        let log_format = match layer.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormatSetting::Text,
            "json" => LogFormatSetting::Json,
            other => {
                return Err(ConfigError::invalid(
                    label("logFormat"),
                    format!("{other:?}"),
                    "text or json",
                ))
            }
        };
        let ip_forwarding = match layer.ip_forwarding.as_deref().map(str::trim) {
            None | Some("Enabled") => IpForwardingSetting::Enabled,
            Some("Disabled") => IpForwardingSetting::Disabled,
            Some(other) => {
                return Err(ConfigError::invalid(
                    label("ipForwarding"),
                    format!("{other:?}"),
                    "Enabled or Disabled (as FelixConfiguration spells them)",
                ))
            }
        };
        let restart_time = layer.restart_time.unwrap_or(DEFAULT_RESTART_TIME);
        if restart_time == 0 || restart_time > 4095 {
            return Err(ConfigError::invalid(
                label("restartTime"),
                restart_time,
                "1..=4095 seconds (the graceful restart capability carries 12 bits)",
            ));
        }
        Ok(NodeSettings {
            node_name,
            datastore,
            address,
            address_v6,
            router_id,
            as_number: layer.as_number.map(|a| a.0),
            labels,
            route_reflector_cluster_id: layer.route_reflector_cluster_id,
            admin,
            log_level: layer.log_level.unwrap_or_else(|| "info".into()),
            log_format,
            state_dir: layer
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            restart_time,
            secrets_dir: layer
                .secrets_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SECRETS_DIR)),
            ip_forwarding,
        })
    }
}

// ===== impl Autodetect =====

/// Parses an `ipAutodetectionMethod` (IPv4).
impl FromStr for Autodetect {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_autodetect(s, IpFamily::Ipv4)
    }
}

// ===== helpers =====

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
fn addresses(
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
fn parse_autodetect(text: &str, family: IpFamily) -> Result<Autodetect, ConfigError> {
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
fn check_node_name(name: &str) -> Result<(), ConfigError> {
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
fn check_label(key: &str, value: &str) -> Result<(), ConfigError> {
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

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
