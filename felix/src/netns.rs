//! Entering a network namespace. Namespaces belong to threads: felix
//! opens its sockets, runs `nft` and writes sysctls on a thread of its own
//! that entered the namespace first (a tokio worker never moves).

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

/// The namespace could not be entered.
#[derive(Debug)]
pub struct EnterError {
    /// The namespace path (e.g. `/run/netns/node-a`).
    pub path: PathBuf,
    /// Why: the file could not be opened, or `setns(2)` refused it.
    pub source: std::io::Error,
}

/// Moves the calling thread into the network namespace at `path` (`None`:
/// stays where it is). Call it on a thread of its own.
pub fn enter(path: Option<&Path>) -> Result<(), EnterError> {
    let Some(path) = path else {
        return Ok(());
    };
    let fail = |source| EnterError {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(fail)?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| fail(e.into()))
}
