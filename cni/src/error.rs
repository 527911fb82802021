//! CNI errors: the spec's codes and a message that says what to fix.
//! Printed on stdout as `{"cniVersion", "code", "msg", "details"}` with a
//! non-zero exit status.

use serde::Serialize;
use tortie_datastore::StoreError;
use tortie_ipam::IpamError;

/// Error codes of the CNI spec (1.1.0 section "Error"), and ours (>= 100).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin cannot serve ADD now.
    pub const NOT_AVAILABLE: u32 = 50;
    /// Ours: the IP pool has no free address.
    pub const POOL_EXHAUSTED: u32 = 100;
    /// Ours: a kernel (netlink, sysctl) operation failed.
    pub const KERNEL: u32 = 101;
}

/// A CNI error result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", if .details.is_empty() { String::new() } else { format!(" ({})", .details) })]
pub struct CniError {
    /// The code (see [`code`]).
    pub code: u32,
    /// What is wrong and what to fix.
    pub msg: String,
    /// More detail (the underlying cause).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

// ===== impl CniError =====

impl CniError {
    /// An error of `code` saying `msg`.
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds the cause.
    pub fn details(mut self, details: impl ToString) -> CniError {
        self.details = details.to_string();
        self
    }

    /// The JSON the runtime reads.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["cniVersion"] = cni_version.into();
        v
    }

    /// A datastore failure while doing `what`.
    pub fn store(what: &str, e: StoreError) -> CniError {
        let code = match &e {
            StoreError::Etcd { .. } | StoreError::Task(_) => code::TRY_AGAIN,
            StoreError::Corrupt { .. } | StoreError::Io { .. } => code::IO,
            _ => code::IO,
        };
        let hint = match code {
            code::TRY_AGAIN => "; check that the datastore is reachable (datastore.endpoints in the network config)",
            _ => "; fix or remove the named file / key",
        };
        CniError::new(code, format!("{what}: datastore: {e}{hint}"))
    }

    /// An IPAM failure.
    pub fn ipam(e: IpamError) -> CniError {
        match e {
            IpamError::Store(s) => CniError::store("IP allocation", s),
            IpamError::UnknownPool { .. }
            | IpamError::PoolDisabled { .. }
            | IpamError::NoPool { .. } => {
                CniError::new(code::INVALID_CONFIG, format!("pools: {e}"))
            }
            IpamError::Exhausted { .. } => CniError::new(code::POOL_EXHAUSTED, e.to_string()),
            IpamError::Contention { .. } => CniError::new(code::TRY_AGAIN, e.to_string()),
            IpamError::BadHandle(_) => CniError::new(code::INVALID_ENV, e.to_string()),
            IpamError::NotInPool { .. } => CniError::new(code::INVALID_CONFIG, e.to_string()),
            IpamError::AddressInUse { .. } => CniError::new(code::NOT_AVAILABLE, e.to_string()),
        }
    }

    /// A kernel operation failed.
    pub fn kernel(what: impl Into<String>, e: impl ToString) -> CniError {
        CniError::new(code::KERNEL, what).details(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_spec_fields() {
        let e = CniError::new(code::INVALID_CONFIG, "mtu: 70000 is too large").details("x");
        let v = e.to_json("1.1.0");
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "mtu: 70000 is too large");
        assert_eq!(v["details"], "x");
        let v = CniError::new(1, "m").to_json("1.0.0");
        assert!(v.get("details").is_none());
    }
}
