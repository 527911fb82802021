//! `BGPConfiguration` and `BGPPeer`, with Calico's field names.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::communities::{self, Community, PrefixAdvertisement, PrefixCommunities};
use super::selector::Selector;
use super::{Metadata, DEFAULT_AS_NUMBER};
use crate::error::ConfigError;

/// Cluster-wide BGP settings. Calico reads the one named `default`; others
/// named `node.<nodename>` override it for that node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BGPConfigurationSpec {
    /// The AS of nodes that set none (default 64512).
    #[serde(default = "default_as")]
    pub as_number: AsNumber,
    /// Whether every node peers with every other (default true). Turn off
    /// when route reflectors are used.
    #[serde(default = "yes")]
    pub node_to_node_mesh_enabled: bool,
    /// The BGP port nodes listen on (default 179).
    #[serde(default = "default_port")]
    pub listen_port: u16,
    /// Log level of the BGP speaker (`Info`, `Debug`, ...), Calico's
    /// spelling; default `Info`.
    #[serde(default = "default_severity")]
    pub log_severity_screen: String,
    /// Service cluster CIDRs to advertise.
    #[serde(
        default,
        rename = "serviceClusterIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_cluster_ips: Vec<CidrEntry>,
    /// Service external CIDRs to advertise.
    #[serde(
        default,
        rename = "serviceExternalIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_external_ips: Vec<CidrEntry>,
    /// Service LoadBalancer CIDRs to advertise.
    #[serde(
        default,
        rename = "serviceLoadBalancerIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_load_balancer_ips: Vec<CidrEntry>,
    /// Named community values, for `prefixAdvertisements`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    /// Communities added to the routes the nodes originate inside a cidr
    /// (`node.<name>`'s list replaces `default`'s for that node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    /// The graceful restart time the nodes announce on mesh sessions
    /// (default: the agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_max_restart_time: Option<Seconds>,
}

/// One `{cidr: ...}` entry of the service lists. Kept as written: an
/// entry that is no CIDR costs that entry (tortie-node names it among
/// its problems), not the whole BGPConfiguration ([`CidrEntry::net`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrEntry {
    /// The prefix, `10.96.0.0/12`.
    pub cidr: String,
}

/// A BGP neighbour of some nodes. Either `peerIP` + `asNumber` (one
/// external or explicit peer) or `peerSelector` (every node matching it,
/// e.g. route reflectors). Which of our nodes peer: `node` (one node),
/// `nodeSelector`, or all nodes when neither is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BGPPeerSpec {
    /// The one node that peers (Calico's node-scoped peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The nodes that peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<Selector>,
    /// The peer's address, optionally with a port (`10.0.0.1:1790`,
    /// `[fd00::1]:1790`).
    #[serde(default, rename = "peerIP", skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<PeerAddress>,
    /// The nodes to peer with, instead of `peerIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<Selector>,
    /// The peer's AS; required with `peerIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Keep the next hop of routes sent to this (eBGP) peer.
    #[serde(default)]
    pub keep_original_next_hop: bool,
    /// Tortie's own (Calico has no such field): send this router the
    /// pools the node has blocks in, as aggregates, instead of the blocks
    /// themselves. Only for `peerIP` peers that are not nodes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub advertise_pool_aggregates: bool,
    /// Source address of the session: `UseNodeIP` (default) or `None`.
    #[serde(default)]
    pub source_address: SourceAddress,
    /// Calico's: `BFDIfDirectlyConnected` runs BFD (RFC 5880) with the
    /// peer when it is on a subnet of the node (single hop), with the
    /// timers of `bfd` (default 300ms x 3); none otherwise. `None`
    /// (default): no BFD unless `bfd.enabled`.
    #[serde(
        default,
        skip_serializing_if = "crate::bfd::FailureDetectionMode::is_none"
    )]
    pub failure_detection_mode: crate::bfd::FailureDetectionMode,
    /// Tortie's extension: BFD timers (`minRx`, `minTx`, `multiplier`),
    /// and `enabled: true` for BFD with any peer (multihop when it is not
    /// directly connected). A BFD Down takes the session down at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<crate::bfd::BfdSpec>,
    /// TCP MD5 key (RFC 2385), never inline: `{secretKeyRef: {name, key}}`
    /// (Calico's) or `{file: PATH}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
    /// Seconds between keepalives (Calico writes a duration: `20s`, `1m`);
    /// the hold time proposed is three times it. Default: hold time 90 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<Seconds>,
    /// GTSM (RFC 5082): the peer is at most this many hops away (1: on a
    /// link of the node); its packets must arrive with a TTL (hop limit) of
    /// at least 256 minus it, ours leave with 255. 0 (or absent): off.
    /// Calico renders it for BIRD as `ttl security on; multihop N`.
    #[serde(
        default,
        deserialize_with = "hops",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl_security: Option<u8>,
    /// BGPFilter names, in order: the first matching rule of these
    /// filters decides each route imported from or exported to the peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// The graceful restart time announced to this peer (Calico's
    /// duration; BIRD's `graceful restart time`): how long the peer keeps
    /// our routes while we restart. Default: the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart_time: Option<Seconds>,
    /// How often our own AS may appear in the AS_PATH of a route from this
    /// (eBGP) peer before it counts as a loop (BIRD's `allow local as N`).
    #[serde(
        default,
        rename = "numAllowedLocalASNumbers",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_allowed_local_as_numbers: Option<u32>,
    /// The gateway through which `peerIP` is reached (Calico's field): the
    /// node programs a kernel route to the peer's address (a /32 or /128)
    /// via it, so that no other route takes over the way to the peer.
    /// An address of `peerIP`'s family; the node checks that it is on one
    /// of its subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable_by: Option<String>,
}

/// Where a BGP password comes from. Exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSource {
    /// A key of a Kubernetes secret (tortie-node reads it from its secrets
    /// directory: `<dir>/<name>/<key>`, where a DaemonSet mounts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A file holding the key (trailing newline ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
}

/// `secretKeyRef`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The secret.
    pub name: String,
    /// The key in it.
    pub key: String,
}

/// A number of seconds, read as an integer or a duration (`20s`, `1m30s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub u32);

/// An AS number: written as an integer or a string, plain (`"64512"`) or
/// in asdot notation (`"1.10"` = 65546).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsNumber(pub u32);

/// `peerIP`: an address and an optional port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddress {
    /// The peer.
    pub ip: IpAddr,
    /// The port, when not the default.
    pub port: Option<u16>,
}

/// `sourceAddress` of a peering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceAddress {
    /// Bind the session to the node's address.
    #[default]
    UseNodeIP,
    /// Let the kernel choose.
    None,
}

// ===== impl CidrEntry =====

impl CidrEntry {
    /// The prefix, or why the text is not one: a CIDR with its host bits
    /// clear (`10.96.0.0/12`, not `10.96.0.1/12`).
    pub fn net(&self) -> Result<IpNet, String> {
        let net: IpNet = self
            .cidr
            .trim()
            .parse()
            .map_err(|_| format!("{:?} is not a CIDR (write e.g. 10.96.0.0/12)", self.cidr))?;
        if net.trunc() != net {
            return Err(format!(
                "{:?} has host bits set: write {}",
                self.cidr,
                net.trunc()
            ));
        }
        Ok(net)
    }
}

// ===== impl BGPConfigurationSpec =====

impl Default for BGPConfigurationSpec {
    fn default() -> Self {
        BGPConfigurationSpec {
            as_number: default_as(),
            node_to_node_mesh_enabled: true,
            listen_port: default_port(),
            log_severity_screen: default_severity(),
            service_cluster_ips: Vec::new(),
            service_external_ips: Vec::new(),
            service_load_balancer_ips: Vec::new(),
            communities: Vec::new(),
            prefix_advertisements: Vec::new(),
            node_mesh_max_restart_time: None,
        }
    }
}

impl BGPConfigurationSpec {
    fn check(&mut self, _: &Metadata) -> Result<(), ConfigError> {
        if self.listen_port == 0 {
            return Err(ConfigError::invalid(
                "spec.listenPort",
                0,
                "a port is 1..=65535",
            ));
        }
        check_as("spec.asNumber", self.as_number)?;
        const LEVELS: [&str; 6] = ["Trace", "Debug", "Info", "Warning", "Error", "Fatal"];
        if !LEVELS.contains(&self.log_severity_screen.as_str()) {
            return Err(ConfigError::invalid(
                "spec.logSeverityScreen",
                format!("{:?}", self.log_severity_screen),
                format!("one of {}", LEVELS.join(", ")),
            ));
        }
        communities::resolve(&self.communities, &self.prefix_advertisements)?;
        check_restart_time(
            "spec.nodeMeshMaxRestartTime",
            self.node_mesh_max_restart_time,
        )?;
        Ok(())
    }

    /// `prefixAdvertisements`, their community names resolved (validation
    /// has checked them).
    pub fn prefix_communities(&self) -> Vec<PrefixCommunities> {
        communities::resolve(&self.communities, &self.prefix_advertisements).unwrap_or_default()
    }
}

super::spec_kind!(BGPConfigurationSpec, BGPConfiguration);

// ===== impl BGPPeerSpec =====

impl BGPPeerSpec {
    fn check(&mut self, _: &Metadata) -> Result<(), ConfigError> {
        if self.node.is_some() && self.node_selector.is_some() {
            return Err(ConfigError::invalid(
                "spec.nodeSelector",
                self.node_selector
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                "set either node or nodeSelector, not both",
            ));
        }
        match (&self.peer_ip, &self.peer_selector) {
            (Some(_), Some(s)) => {
                return Err(ConfigError::invalid(
                    "spec.peerSelector",
                    s.to_string(),
                    "set either peerIP or peerSelector, not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::Schema {
                    field: "spec".into(),
                    message: "set peerIP (with asNumber) or peerSelector".into(),
                })
            }
            (Some(_), None) if self.as_number.is_none() => {
                return Err(ConfigError::Schema {
                    field: "spec.asNumber".into(),
                    message: "missing; a peer given by peerIP needs its AS number".into(),
                })
            }
            _ => {}
        }
        if let Some(asn) = self.as_number {
            check_as("spec.asNumber", asn)?;
        }
        if let Some(node) = &self.node {
            if node.is_empty() {
                return Err(ConfigError::invalid("spec.node", "\"\"", "a node name"));
            }
        }
        if let Some(k) = self.keepalive_time {
            if k.0 == 0 || k.0 > 21845 {
                return Err(ConfigError::invalid(
                    "spec.keepaliveTime",
                    format!("{}s", k.0),
                    "1s..=21845s (the hold time, three times it, must fit 16 bits)",
                ));
            }
        }
        crate::bfd::resolve("spec", self.failure_detection_mode, self.bfd.as_ref())?;
        if let Some(p) = &self.password {
            if p.secret_key_ref.is_some() == p.file.is_some() {
                return Err(ConfigError::invalid(
                    "spec.password",
                    "{...}",
                    "set exactly one of secretKeyRef: {name, key} and file: PATH",
                ));
            }
            if let Some(r) = &p.secret_key_ref {
                let ok = |s: &str| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                        && s != "."
                        && s != ".."
                };
                if !ok(&r.name) || !ok(&r.key) {
                    return Err(ConfigError::invalid(
                        "spec.password.secretKeyRef",
                        format!("{}/{}", r.name, r.key),
                        "a secret name and key: letters, digits, '-', '_' and '.'",
                    ));
                }
            }
            if let Some(f) = &p.file {
                if !f.is_absolute() {
                    return Err(ConfigError::invalid(
                        "spec.password.file",
                        f.display(),
                        "an absolute path",
                    ));
                }
            }
        }
        for (i, name) in self.filters.iter().enumerate() {
            super::check_name(&format!("spec.filters[{i}]"), name)?;
            if self.filters[..i].contains(name) {
                return Err(ConfigError::invalid(
                    format!("spec.filters[{i}]"),
                    format!("{name:?}"),
                    "listed twice; name each BGPFilter once",
                ));
            }
        }
        check_restart_time("spec.maxRestartTime", self.max_restart_time)?;
        self.reachable_by()?;
        Ok(())
    }

    /// `reachableBy` as an address, checked: a unicast address of
    /// `peerIP`'s family, for a peer given by `peerIP`.
    pub fn reachable_by(&self) -> Result<Option<IpAddr>, ConfigError> {
        let Some(text) = &self.reachable_by else {
            return Ok(None);
        };
        let bad = |why: String| ConfigError::invalid("spec.reachableBy", format!("{text:?}"), why);
        let gw: IpAddr = text.parse().map_err(|_| {
            bad("not an IP address: the gateway's address, e.g. 172.30.1.1 or fd00::1".into())
        })?;
        let Some(peer) = self.peer_ip else {
            return Err(bad(
                "needs peerIP: it names the gateway to one peer's address (with peerSelector \
                 there is none)"
                    .into(),
            ));
        };
        if gw.is_ipv4() != peer.ip.is_ipv4() {
            return Err(bad(format!(
                "another address family than peerIP {}: a route to the peer needs a gateway of \
                 its family",
                peer.ip
            )));
        }
        if gw.is_unspecified() || gw.is_multicast() || gw.is_loopback() {
            return Err(bad("not a unicast address a gateway can have".into()));
        }
        Ok(Some(gw))
    }
}

// ===== impl PasswordSource =====

impl<'de> Deserialize<'de> for PasswordSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            secret_key_ref: Option<SecretKeyRef>,
            #[serde(default)]
            file: Option<std::path::PathBuf>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Inline(#[allow(dead_code)] String),
            Map(Raw),
        }
        match Either::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected {secretKeyRef: {name, key}} or {file: PATH} (and nothing else)",
            )
        })? {
            Either::Inline(_) => Err(serde::de::Error::custom(
                "an inline password is not accepted (it would sit in the datastore in clear): \
                 use {secretKeyRef: {name, key}} or {file: PATH}",
            )),
            Either::Map(r) => Ok(PasswordSource {
                secret_key_ref: r.secret_key_ref,
                file: r.file,
            }),
        }
    }
}

// ===== impl Seconds =====

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}s", self.0))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        let bad = |what: &str| {
            serde::de::Error::custom(format!(
                "{what} is not a duration: an integer of seconds or e.g. 20s, 1m30s"
            ))
        };
        match Raw::deserialize(d).map_err(|_| bad("this"))? {
            Raw::Int(n) => u32::try_from(n)
                .map(Seconds)
                .map_err(|_| bad(&n.to_string())),
            Raw::Text(t) => parse_duration(&t)
                .map(Seconds)
                .ok_or_else(|| bad(&format!("{t:?}"))),
        }
    }
}

/// Go-style durations of whole seconds: `90s`, `2m`, `1h2m3s`.
fn parse_duration(t: &str) -> Option<u32> {
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut any = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    u32::try_from(total).ok()
}

super::spec_kind!(BGPPeerSpec, BGPPeer);

// ===== impl AsNumber =====

impl FromStr for AsNumber {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not an AS number (0..=4294967295 or asdot X.Y)");
        match s.split_once('.') {
            Some((hi, lo)) => {
                let hi: u16 = hi.parse().map_err(|_| bad())?;
                let lo: u16 = lo.parse().map_err(|_| bad())?;
                Ok(AsNumber(u32::from(hi) << 16 | u32::from(lo)))
            }
            None => s.parse().map(AsNumber).map_err(|_| bad()),
        }
    }
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for AsNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected an AS number (integer, or a string like \"64512\" or \"1.10\")",
            )
        })? {
            Raw::Int(n) => u32::try_from(n).map(AsNumber).map_err(|_| {
                serde::de::Error::custom(format!("{n} is not an AS number (0..=4294967295)"))
            }),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

// ===== impl PeerAddress =====

impl FromStr for PeerAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(PeerAddress { ip, port: None });
        }
        match s.parse::<SocketAddr>() {
            Ok(sa) if sa.port() != 0 => Ok(PeerAddress {
                ip: sa.ip(),
                port: Some(sa.port()),
            }),
            _ => Err(format!(
                "{s:?} is not an address (10.0.0.1, fd00::1) or address:port (10.0.0.1:179, [fd00::1]:179)"
            )),
        }
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}", SocketAddr::new(self.ip, port)),
            None => write!(f, "{}", self.ip),
        }
    }
}

impl Serialize for PeerAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PeerAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ===== helpers =====

/// `ttlSecurity`: an integer 0..=255 (Calico's uint8), with a message
/// that says what it means.
fn hops<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let bad = |what: String| {
        serde::de::Error::custom(format!(
            "{what} is not a hop count: use 1..=255 (1: the peer is on a link of the node), \
             or 0 to turn GTSM off"
        ))
    };
    match Option::<serde_json::Value>::deserialize(d)? {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) => u8::try_from(n).map(Some).map_err(|_| bad(n.to_string())),
            None => Err(bad(v.to_string())),
        },
    }
}

/// A graceful restart time fits the capability's 12 bits (RFC 4724 §3).
fn check_restart_time(field: &str, t: Option<Seconds>) -> Result<(), ConfigError> {
    match t {
        Some(Seconds(s)) if s > 4095 => Err(ConfigError::invalid(
            field,
            format!("{s}s"),
            "at most 4095s (the graceful restart capability carries 12 bits)",
        )),
        _ => Ok(()),
    }
}

fn check_as(field: &str, asn: AsNumber) -> Result<(), ConfigError> {
    // AS 0 is reserved (RFC 7607); AS_TRANS only stands in for 4-byte ASes.
    if asn.0 == 0 || asn.0 == crate::rr::AS_TRANS {
        return Err(ConfigError::invalid(
            field,
            asn,
            "AS 0 and AS_TRANS (23456) are reserved; use 1..=4294967295",
        ));
    }
    Ok(())
}

fn default_as() -> AsNumber {
    AsNumber(DEFAULT_AS_NUMBER)
}

fn yes() -> bool {
    true
}

fn default_port() -> u16 {
    179
}

fn default_severity() -> String {
    "Info".into()
}
