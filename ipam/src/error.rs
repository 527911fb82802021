//! IPAM errors: each names the pool, block or handle and what to do.

use tortie_datastore::StoreError;

use crate::Family;

/// Why an IPAM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The datastore failed (unreachable, corrupt, ...).
    #[error("datastore: {0}")]
    Store(#[from] StoreError),
    /// A pool asked for by name does not exist.
    #[error("IP pool {name:?} does not exist (pools: {}); fix the pool name or create the pool", list(.known))]
    UnknownPool {
        /// The name asked for.
        name: String,
        /// The pools that exist.
        known: Vec<String>,
    },
    /// A pool asked for by name is disabled.
    #[error(
        "IP pool {name:?} is disabled (spec.disabled: true); enable it or choose another pool"
    )]
    PoolDisabled {
        /// The pool.
        name: String,
    },
    /// No enabled pool of the family selects the node.
    #[error("no enabled {family} IP pool for node {node:?}{}; create one or check its nodeSelector", if .asked.is_empty() { String::new() } else { format!(" among {}", list(.asked)) })]
    NoPool {
        /// The address family.
        family: Family,
        /// The node.
        node: String,
        /// The pools asked for (empty = any).
        asked: Vec<String>,
    },
    /// Every usable block of the pools is full and no block is left to
    /// claim.
    #[error("{family} IP pool {} is exhausted: no free address{}; widen the pool or add one", list(.pools), if *.strict { " (strictAffinity: addresses of other nodes' blocks are not borrowed)" } else { "" })]
    Exhausted {
        /// The address family.
        family: Family,
        /// The pools tried, `name (cidr)`.
        pools: Vec<String>,
        /// Whether borrowing was forbidden.
        strict: bool,
    },
    /// Lost the compare-and-swap race too many times.
    #[error("{what}: still conflicting after {attempts} attempts; too many concurrent writers, retry later")]
    Contention {
        /// The object fought over.
        what: String,
        /// How many times we tried.
        attempts: u32,
    },
    /// A requested address lies in no pool (of those asked for).
    #[error("address {address} is in no IP pool{}; request one inside a pool", if .pools.is_empty() { String::new() } else { format!(" (pools: {})", list(.pools)) })]
    NotInPool {
        /// The address asked for.
        address: std::net::IpAddr,
        /// The pools there are, `name (cidr)`.
        pools: Vec<String>,
    },
    /// A requested address is allocated to someone else.
    #[error("address {address} is in use (held by {holder}); request another or release it")]
    AddressInUse {
        /// The address asked for.
        address: std::net::IpAddr,
        /// Who holds it: the handle id (container id + interface).
        holder: String,
    },
    /// The handle id is unusable.
    #[error("handle id {0:?}: must not be empty")]
    BadHandle(String),
}

// ===== impl IpamError =====

impl IpamError {
    /// Whether the failure is transient (the datastore could not be
    /// reached, or too much contention): a retry later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            IpamError::Contention { .. }
                | IpamError::Store(StoreError::Etcd { .. } | StoreError::Task(_))
        )
    }
}

// ===== helpers =====

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}
