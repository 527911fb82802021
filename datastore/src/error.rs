//! Datastore errors: each names the object (or file) and what is wrong.

use std::path::PathBuf;

use tortie_config::resources::Key;
use tortie_config::ConfigError;

use crate::Revision;

/// Why a datastore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `update` / `delete` of an object that does not exist.
    #[error("{key}: not found")]
    NotFound {
        /// The object.
        key: Key,
    },
    /// `create` of an object that exists.
    #[error("{key}: already exists (revision {revision})")]
    AlreadyExists {
        /// The object.
        key: Key,
        /// Its current revision.
        revision: Revision,
    },
    /// The object changed since the caller read it: read again and retry.
    #[error("{key}: revision conflict: expected {expected}, the object is at {}", current.map_or("(deleted)".to_string(), |r| r.to_string()))]
    Conflict {
        /// The object.
        key: Key,
        /// The revision the caller passed.
        expected: Revision,
        /// The object's revision now; `None` if it was deleted.
        current: Option<Revision>,
    },
    /// A batch of writes names this object twice.
    #[error("{key}: named twice in one batch of writes")]
    Repeated {
        /// The object.
        key: Key,
    },
    /// A user kind in the file backend: edit the file instead.
    #[error("{key}: read-only: {} kinds come from {file}; edit that file", key.kind)]
    ReadOnly {
        /// The object.
        key: Key,
        /// The user's file.
        file: PathBuf,
    },
    /// The object does not validate.
    #[error("{key}: {source}")]
    Invalid {
        /// The object.
        key: Key,
        /// What is wrong, by field.
        #[source]
        source: ConfigError,
    },
    /// The object at `key` is of another kind than asked (a bug).
    #[error("{key}: stored object is of another kind")]
    WrongKind {
        /// The object.
        key: Key,
    },
    /// A state file or stored value that does not parse. Never
    /// overwritten: fix or remove it.
    #[error("{}{}: corrupt: {message}", file.display(), line.map_or(String::new(), |l| format!(":{l}")))]
    Corrupt {
        /// The file (or `etcd:<key>`).
        file: PathBuf,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The user's resources file does not load.
    #[error("{0}")]
    UserFile(String),
    /// An OS error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// etcd failed or is unreachable.
    #[error("etcd {op}: {message}")]
    Etcd {
        /// What we were doing (`get WorkloadEndpoint/x`).
        op: String,
        /// What the client said.
        message: String,
    },
    /// The Kubernetes API server refused or could not be reached.
    #[error("kubernetes {op}: {message}")]
    Kube {
        /// What we were doing (`create IPPool/default`).
        op: String,
        /// What the server (or the client) said.
        message: String,
    },
    /// Watch history before `oldest` is gone: list again and watch from
    /// the listing's revision.
    #[error("watch from revision {requested}: history before {oldest} is compacted; list again")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        oldest: Revision,
    },
    /// A background task of the store ended unexpectedly.
    #[error("datastore task failed: {0}")]
    Task(String),
}

// ===== impl StoreError =====

impl StoreError {
    /// `Io` for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether retrying after a fresh read may succeed (a lost race).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }
        )
    }
}
