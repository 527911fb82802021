//! State files: one JSON file per kind, `{kind, revision, objects}`,
//! replaced atomically (temp file, fsync, rename, fsync of the directory).
//! A file that does not parse is reported with its line and never
//! overwritten.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tortie_config::resources::{Kind, Resource};

use crate::{Revision, StoreError};

/// One kind's objects as read from its file.
#[derive(Debug)]
pub(super) struct StateFile {
    /// Where it lives.
    pub path: PathBuf,
    /// The kind it holds.
    pub kind: Kind,
    /// The highest journal revision applied to it.
    pub applied: Revision,
    /// Name -> object.
    pub objects: BTreeMap<String, Stored>,
    /// Changed since read.
    pub dirty: bool,
}

/// One object and the revision of its last change.
#[derive(Clone, Debug)]
pub(super) struct Stored {
    pub revision: Revision,
    pub resource: Resource,
}

/// The file as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    kind: String,
    revision: Revision,
    objects: BTreeMap<String, DiskEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskEntry {
    revision: Revision,
    object: Value,
}

/// The file name of `kind` in the state directory.
pub(super) fn file_name(kind: Kind) -> &'static str {
    match kind {
        Kind::BGPConfiguration => "bgpconfigurations.json",
        Kind::BGPPeer => "bgppeers.json",
        Kind::IPPool => "ippools.json",
        Kind::Node => "nodes.json",
        Kind::WorkloadEndpoint => "endpoints.json",
        Kind::Block => "blocks.json",
        Kind::BlockAffinity => "affinities.json",
        Kind::Handle => "handles.json",
        Kind::CalicoNodeStatus => "caliconodestatuses.json",
        Kind::BGPFilter => "bgpfilters.json",
    }
}

// ===== impl StateFile =====

impl StateFile {
    /// Reads `kind`'s file in `dir`; a missing file is empty.
    pub fn read(dir: &Path, kind: Kind) -> Result<StateFile, StoreError> {
        let path = dir.join(file_name(kind));
        let mut file = StateFile {
            path: path.clone(),
            kind,
            applied: 0,
            objects: BTreeMap::new(),
            dirty: false,
        };
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(file),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        let disk: OnDisk = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            file: path.clone(),
            line: Some(e.line()),
            message: e.to_string(),
        })?;
        if disk.kind != kind.as_str() {
            return Err(corrupt(
                &path,
                format!("holds kind {:?}, expected {kind}", disk.kind),
            ));
        }
        file.applied = disk.revision;
        for (name, entry) in disk.objects {
            let (resource, _) = Resource::from_value(entry.object)
                .map_err(|e| corrupt(&path, format!("objects.{name}: {e}")))?;
            if resource.kind() != kind || resource.key().name != name {
                return Err(corrupt(
                    &path,
                    format!(
                        "objects.{name}: holds {}, not {kind}/{name}",
                        resource.key()
                    ),
                ));
            }
            file.objects.insert(
                name,
                Stored {
                    revision: entry.revision,
                    resource,
                },
            );
        }
        Ok(file)
    }

    /// Writes the file atomically if it changed.
    pub fn write(&mut self) -> Result<(), StoreError> {
        if !self.dirty {
            return Ok(());
        }
        let disk = OnDisk {
            kind: self.kind.as_str().to_string(),
            revision: self.applied,
            objects: self
                .objects
                .iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        DiskEntry {
                            revision: s.revision,
                            object: s.resource.to_value(),
                        },
                    )
                })
                .collect(),
        };
        // Maps with string keys, strings and numbers: cannot fail.
        let text = serde_json::to_string_pretty(&disk).unwrap_or_default();
        write_atomic(&self.path, text.as_bytes())?;
        self.dirty = false;
        Ok(())
    }
}

// ===== helpers =====

fn corrupt(path: &Path, message: String) -> StoreError {
    StoreError::Corrupt {
        file: path.to_path_buf(),
        line: None,
        message,
    }
}

/// Replaces `path` with `bytes` so that readers see the old or the new
/// content, never a mix, even across a crash: write a temp file beside it,
/// fsync it, rename over, fsync the directory. Callers hold the lock, so
/// one temp name per file suffices.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    replace(path, bytes, true)
}

/// [`write_atomic`], with the fsyncs only when `durable`.
pub(super) fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|_| durable) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e| StoreError::io(path, e))
}
