//! The route reflector's configuration file (`tortie-rr --config rr.yaml`).
//!
//! [`RrConfig::from_yaml`] / [`RrConfig::load`] parse the file (camelCase
//! keys, unknown keys rejected with their path), apply the defaults and
//! validate everything; the result is ready to hand to the BGP speaker. The
//! reference for users is `docs/tortie-rr.md`.
//!
//! Peers validate to [`crate::peer`]'s types, which the speaker runs with
//! as they are.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
pub use crate::peer::{
    DynamicPeerConfig, MaxPrefix, PeerConfig, DEFAULT_CONNECT_RETRY, DEFAULT_HOLD_TIME,
    DEFAULT_MAX_PEERS, DEFAULT_PORT, MAX_PASSWORD_LEN,
};

mod filters;
mod raw;
mod validate;

/// Default `listen`: every address, the BGP port.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:179";
/// Default `admin`: loopback only, so metrics are not exposed by accident.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9180";
/// Default `gracefulRestart.restartTime` in seconds (RFC 4724 §3).
pub const DEFAULT_RESTART_TIME: u16 = 120;
/// Default `gracefulRestart.staleRoutesTime` in seconds.
pub const DEFAULT_STALE_ROUTES_TIME: u16 = 360;
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
    /// Statically configured neighbours (`rr_client` defaults to `true`
    /// for iBGP and is always `false` for eBGP). Nothing is filtered but
    /// by the rules of the `filters` a peer names (its import and export
    /// rules); the other export and import options stay off.
    pub peers: Vec<PeerConfig>,
    /// Prefixes from which any neighbour is accepted.
    pub dynamic_peers: Vec<DynamicPeerConfig>,
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
    /// Wait for the nodes to connect (default: both sides connect). For a
    /// reflector that shares its address with a node's agent (a
    /// hostNetwork pod): the other agents cannot tell its connections
    /// from that agent's.
    #[serde(default)]
    pub passive: bool,
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
    pub fn peer(&self, address: IpAddr) -> Option<&PeerConfig> {
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
