//! Sysctls (per interface, and the node's forwarding), read and written
//! inside a network namespace.
//!
//! `/proc/sys/net` resolves to the network namespace of the thread that
//! opens the file. So the writes run on a dedicated std thread that first
//! `setns(2)`s into the namespace; a tokio worker never moves (a worker
//! left in another namespace would run every later task there). (`/proc/net` and `/proc/self/net` would follow the main thread
//! instead: not used.)

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One sysctl write: a path under `/proc/sys` and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// Path relative to `/proc/sys`, e.g. `net/ipv4/conf/tort0/proxy_arp`.
    pub key: String,
    /// Value to write, e.g. `1`.
    pub value: String,
}

/// Why a sysctl write failed.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// The namespace could not be entered.
    #[error("cannot enter network namespace {path}: {source}")]
    Netns {
        /// The namespace path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A write failed (e.g. the interface does not exist).
    #[error("cannot set /proc/sys/{key} = {value}: {source}")]
    Write {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A read failed (e.g. the key does not exist: IPv6 is off).
    #[error("cannot read /proc/sys/{key}: {source}")]
    Read {
        /// The key.
        key: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The writer thread died.
    #[error("sysctl writer thread panicked")]
    Thread,
}

/// What [`ensure_in`] found for one sysctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// It already had the value: nothing written.
    Kept,
    /// It had this other value, and was written.
    Changed {
        /// The value found.
        from: String,
    },
}

/// Writes `sysctls` in order inside `netns` (`None` = the caller's), on a
/// dedicated thread; stops at the first failure. Blocking: call it from
/// `spawn_blocking` or a std thread when inside an async task.
///
/// `sysctl -w net.ipv4.conf.IF.proxy_arp=1 ...` run under `ip netns exec NS`.
pub fn write_in(netns: Option<&Path>, sysctls: Vec<Sysctl>) -> Result<(), SysctlError> {
    let ns = netns.map(Path::to_path_buf);
    std::thread::spawn(move || {
        enter(ns.as_deref())?;
        sysctls.iter().try_for_each(write_one)
    })
    .join()
    .map_err(|_| SysctlError::Thread)?
}

/// Reads one sysctl inside `netns` (for checks and tests).
pub fn read_in(netns: Option<&Path>, key: &str) -> Result<String, SysctlError> {
    let ns = netns.map(Path::to_path_buf);
    let key = key.to_owned();
    std::thread::spawn(move || {
        enter(ns.as_deref())?;
        read(&key)
    })
    .join()
    .map_err(|_| SysctlError::Thread)?
}

/// Read before write: inside `netns` (`None` = the caller's), on a
/// dedicated thread, reads each of `sysctls` and writes only those whose
/// value differs. One result per sysctl, in order (a failure does not stop
/// the others); the outer error is for the namespace or the thread.
/// Blocking, as [`write_in`].
///
/// `sysctl -n KEY`, then `sysctl -w KEY=VALUE` if it differs.
pub fn ensure_in(
    netns: Option<&Path>,
    sysctls: Vec<Sysctl>,
) -> Result<Vec<Result<Ensured, SysctlError>>, SysctlError> {
    let ns = netns.map(Path::to_path_buf);
    std::thread::spawn(move || {
        enter(ns.as_deref())?;
        Ok(sysctls.iter().map(ensure).collect())
    })
    .join()
    .map_err(|_| SysctlError::Thread)?
}

// ===== impl Sysctl =====

impl Sysctl {
    /// A write of `value` to `key`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Sysctl {
            key: key.into(),
            value: value.into(),
        }
    }
}

// ===== helpers =====

/// Reads `/proc/sys/KEY` in the current thread's namespace, trimmed.
fn read(key: &str) -> Result<String, SysctlError> {
    std::fs::read_to_string(Path::new("/proc/sys").join(key))
        .map(|v| v.trim().to_owned())
        .map_err(|source| SysctlError::Read {
            key: key.to_owned(),
            source,
        })
}

/// [`ensure_in`] for one sysctl, in the current thread's namespace.
fn ensure(s: &Sysctl) -> Result<Ensured, SysctlError> {
    let from = read(&s.key)?;
    if from == s.value {
        return Ok(Ensured::Kept);
    }
    write_one(s)?;
    Ok(Ensured::Changed { from })
}

/// Writes one sysctl in the current thread's namespace.
fn write_one(s: &Sysctl) -> Result<(), SysctlError> {
    let fail = |source| SysctlError::Write {
        key: s.key.clone(),
        value: s.value.clone(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .open(Path::new("/proc/sys").join(&s.key))
        .map_err(fail)?;
    f.write_all(s.value.as_bytes()).map_err(fail)
}

/// Moves the current (dedicated, throwaway) thread into `netns`.
fn enter(netns: Option<&Path>) -> Result<(), SysctlError> {
    crate::netns::enter(netns).map_err(|e| SysctlError::Netns {
        path: e.path,
        source: e.source,
    })
}
