//! The route reflector's configuration file (`tortie-rr --config rr.yaml`).
//!
//! [`RrConfig::from_yaml`] / [`RrConfig::load`] parse the file (camelCase
//! keys, unknown keys rejected with their path), apply the defaults and
//! validate everything; the result is ready to hand to the BGP speaker. The
//! reference for users is `docs/tortie-rr.md`.
//!
//! The defaults below match `bgp_speaker::config`; `tortie-rr` has a test
//! that fails if they drift apart (this crate cannot depend on the speaker:
//! the speaker depends on it).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

mod raw;
mod validate;

/// Default `listen`: every address, the BGP port.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:179";
/// Default `admin`: loopback only, so metrics are not exposed by accident.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9180";
/// Default peer `holdTime` (RFC 4271 §10 suggests 90 s).
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// Default peer `connectRetry` in seconds.
pub const DEFAULT_CONNECT_RETRY: u16 = 5;
/// Default BGP port of a peer.
pub const DEFAULT_PORT: u16 = 179;
/// Default `gracefulRestart.restartTime` in seconds (RFC 4724 §3).
pub const DEFAULT_RESTART_TIME: u16 = 120;
/// Default `gracefulRestart.staleRoutesTime` in seconds.
pub const DEFAULT_STALE_ROUTES_TIME: u16 = 360;
/// Longest TCP MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_PASSWORD_LEN: usize = 80;
/// Largest restart time the GR capability can carry (12 bits).
pub const MAX_RESTART_TIME: u16 = 4095;
/// AS_TRANS (RFC 6793): never a real AS.
pub const AS_TRANS: u32 = 23456;

/// The validated route reflector configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RrConfig {
    /// BGP identifier (RFC 4271); never 0.0.0.0.
    pub router_id: Ipv4Addr,
    /// Our AS; iBGP peers share it.
    pub as_number: u32,
    /// RFC 4456 CLUSTER_ID; defaults to `router_id`. Two reflectors that
    /// serve the same clients redundantly should share it.
    pub cluster_id: Ipv4Addr,
    /// Where BGP sessions are accepted.
    pub listen: SocketAddr,
    /// Where the admin HTTP server (/metrics, /status, /healthz, /readyz)
    /// listens.
    pub admin: SocketAddr,
    /// Statically configured neighbours.
    pub peers: Vec<RrPeer>,
    /// Prefixes from which any neighbour is accepted.
    pub dynamic_peers: Vec<RrDynamicPeer>,
    /// Graceful restart (RFC 4724) settings.
    pub graceful_restart: GracefulRestart,
    /// Address families offered to every peer; at least one, no repeats.
    pub families: Vec<Family>,
    /// Clients taken from the datastore: every Node its selector picks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore_clients: Option<DatastoreClients>,
}

/// `datastoreClients`: the reflector peers with every node of the
/// datastore that `node_selector` picks (its AS must be ours: clients are
/// iBGP). Static `peers` win for the same address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreClients {
    /// `file:DIR` or `etcd:URL[,URL...]` (as tortie-node's `--datastore`).
    pub datastore: String,
    /// Key prefix in etcd.
    pub etcd_prefix: String,
    /// Which nodes: a label selector (default `all()`), checked to parse.
    pub node_selector: String,
}

/// One static neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RrPeer {
    /// The neighbour; each address once.
    pub address: IpAddr,
    /// The neighbour's AS; equal to ours means iBGP.
    pub as_number: u32,
    /// RFC 4456 client. Defaults to `true` for iBGP, always `false` for
    /// eBGP (reflection is an iBGP mechanism).
    pub client: bool,
    /// TCP MD5 key (RFC 2385), 1..=80 bytes.
    pub password: Option<String>,
    /// Proposed hold time: 0 (no keepalives) or 3..=65535 seconds.
    pub hold_time: u16,
    /// Seconds between connection attempts.
    pub connect_retry: u16,
    /// Only accept the session, never connect out.
    pub passive: bool,
    /// The peer's TCP port.
    pub port: u16,
    /// Source address for outgoing connections; same family as `address`.
    pub local_address: Option<IpAddr>,
    /// Rewrite NEXT_HOP to our address on routes sent to this peer.
    pub next_hop_self: bool,
    /// Limit on the prefixes this peer may send; `None`: no limit.
    pub max_prefix: Option<MaxPrefix>,
}

/// Accept any neighbour inside `prefix`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RrDynamicPeer {
    /// Accept sessions from any address inside; no host bits, no overlap
    /// with other dynamic prefixes.
    pub prefix: IpNet,
    /// The AS such peers must have.
    pub as_number: u32,
    /// RFC 4456 client, as in [`RrPeer::client`].
    pub client: bool,
    /// TCP MD5 key, as in [`RrPeer::password`].
    pub password: Option<String>,
    /// Proposed hold time, as in [`RrPeer::hold_time`].
    pub hold_time: u16,
    /// As in [`RrPeer::next_hop_self`].
    pub next_hop_self: bool,
    /// As in [`RrPeer::max_prefix`].
    pub max_prefix: Option<MaxPrefix>,
    /// The most peers accepted through this prefix at once (at least 1);
    /// `None`: the speaker's default (1000).
    pub max_peers: Option<u32>,
}

/// A limit on the prefixes one peer may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaxPrefix {
    /// At least 1.
    pub limit: u64,
    /// What to do when the limit is exceeded.
    pub action: MaxPrefixAction,
}

/// What happens when a peer goes over its `maxPrefix.limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaxPrefixAction {
    /// Log a warning and keep the session.
    Warn,
    /// Close the session with Cease / Maximum Number of Prefixes Reached
    /// (RFC 4486 subcode 1).
    Teardown,
}

/// Graceful restart (RFC 4724).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestart {
    /// Advertise the capability; also makes SIGTERM a graceful stop.
    pub enabled: bool,
    /// Seconds peers keep our routes while we restart: 1..=4095.
    pub restart_time: u16,
    /// Seconds we keep a restarting peer's stale routes, waiting for its
    /// End-of-RIB: 1..=65535.
    pub stale_routes_time: u16,
}

/// An address family (unicast).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 unicast (AFI 1, SAFI 1).
    Ipv4,
    /// IPv6 unicast (AFI 2, SAFI 1).
    Ipv6,
}

// ===== impl RrConfig =====

impl RrConfig {
    /// Parses and validates the YAML text of an RR file.
    pub fn from_yaml(text: &str) -> Result<RrConfig, ConfigError> {
        let (raw, lines) = crate::yaml::from_str_located::<raw::RawRrConfig>(text)?;
        validate::validate(raw).map_err(|e| lines.locate(e))
    }

    /// Reads, parses and validates an RR file.
    pub fn load(path: &Path) -> Result<RrConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        RrConfig::from_yaml(&text)
    }

    /// The static peer with this address.
    pub fn peer(&self, address: IpAddr) -> Option<&RrPeer> {
        self.peers.iter().find(|p| p.address == address)
    }
}

// ===== impl GracefulRestart =====

impl Default for GracefulRestart {
    fn default() -> Self {
        GracefulRestart {
            enabled: true,
            restart_time: DEFAULT_RESTART_TIME,
            stale_routes_time: DEFAULT_STALE_ROUTES_TIME,
        }
    }
}

#[cfg(test)]
mod tests;
