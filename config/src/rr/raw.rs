//! The RR file exactly as written: camelCase keys, unknown keys rejected,
//! addresses as text and numbers as `i64`, so that `validate` can name the
//! value and the allowed range in its own words.

use serde::Deserialize;

use super::Family;

/// Top level of the file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawRrConfig {
    pub router_id: String,
    pub as_number: i64,
    #[serde(default)]
    pub cluster_id: Option<String>,
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub admin: Option<String>,
    #[serde(default)]
    pub peers: Vec<RawPeer>,
    #[serde(default)]
    pub dynamic_peers: Vec<RawDynamicPeer>,
    #[serde(default)]
    pub graceful_restart: Option<RawGracefulRestart>,
    #[serde(default)]
    pub families: Option<Vec<Family>>,
    #[serde(default)]
    pub datastore_clients: Option<RawDatastoreClients>,
    #[serde(default)]
    pub filters: Vec<super::filters::RawFilter>,
}

/// `datastoreClients`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawDatastoreClients {
    pub datastore: String,
    #[serde(default)]
    pub etcd_prefix: Option<String>,
    #[serde(default)]
    pub node_selector: Option<String>,
    #[serde(default)]
    pub passive: Option<bool>,
}

/// One entry of `peers`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawPeer {
    pub address: String,
    pub as_number: i64,
    #[serde(default)]
    pub client: Option<bool>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub hold_time: Option<i64>,
    #[serde(default)]
    pub connect_retry: Option<i64>,
    #[serde(default)]
    pub passive: Option<bool>,
    #[serde(default)]
    pub port: Option<i64>,
    #[serde(default)]
    pub local_address: Option<String>,
    #[serde(default)]
    pub next_hop_self: Option<bool>,
    #[serde(default)]
    pub max_prefix: Option<RawMaxPrefix>,
    #[serde(default)]
    pub ttl_security: Option<i64>,
    #[serde(default)]
    pub bfd: Option<crate::bfd::BfdSpec>,
    #[serde(default)]
    pub filters: Vec<String>,
}

/// One entry of `dynamicPeers`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawDynamicPeer {
    pub prefix: String,
    pub as_number: i64,
    #[serde(default)]
    pub client: Option<bool>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub hold_time: Option<i64>,
    #[serde(default)]
    pub next_hop_self: Option<bool>,
    #[serde(default)]
    pub max_prefix: Option<RawMaxPrefix>,
    #[serde(default)]
    pub max_peers: Option<i64>,
    #[serde(default)]
    pub ttl_security: Option<i64>,
    #[serde(default)]
    pub filters: Vec<String>,
}

/// `maxPrefix` of a peer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawMaxPrefix {
    pub limit: i64,
    #[serde(default)]
    pub action: Option<MaxPrefixAction>,
}

/// `gracefulRestart`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawGracefulRestart {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub restart_time: Option<i64>,
    #[serde(default)]
    pub stale_routes_time: Option<i64>,
}

/// What happens when a peer goes over its `maxPrefix.limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum MaxPrefixAction {
    /// Log a warning and keep the session.
    Warn,
    /// Close the session with Cease / Maximum Number of Prefixes Reached
    /// (RFC 4486 subcode 1).
    Teardown,
}
