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
//!
//! Layout: the settings and their layering here; the value parsers
//! (addresses, router id, datastore, autodetection, names, labels) in
//! `parse`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::resources::AsNumber;

mod parse;

use parse::{addresses, check_label, check_node_name, parse_autodetect};
pub use parse::{
    hashed_router_id, label, parse_datastore, parse_labels, parse_node_ip, parse_node_ip6,
    parse_router_id,
};

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

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
