//! The write-ahead journal (`journal.jsonl`): one JSON line per change,
//! appended and fsynced *before* the state file changes. It is the source
//! of revisions and of watch history, and what recovery replays after a
//! crash between the two writes.
//!
//! A first line `{"compactedThrough": R}` says history up to R was dropped
//! by compaction (by default the journal keeps the last [`KEEP`] entries
//! once it passes [`MAX_ENTRIES`]).

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tortie_config::resources::{Key, Kind, Resource};

use super::state::write_atomic;
use crate::{Action, Revision, StoreError, WatchEvent};

/// Compact when the journal holds more entries than this.
pub(super) const MAX_ENTRIES: usize = 2000;
/// Entries kept by compaction.
pub(super) const KEEP: usize = 1000;

/// One change.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Entry {
    pub rev: Revision,
    pub kind: String,
    pub name: String,
    pub action: String,
    #[serde(default)]
    pub object: Option<Value>,
}

/// The first line after a compaction.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Header {
    compacted_through: Revision,
}

/// The journal as read.
#[derive(Debug, Default)]
pub(super) struct Contents {
    /// History up to here is gone.
    pub compacted_through: Revision,
    /// The entries, in revision order.
    pub entries: Vec<Entry>,
    /// Bytes up to the last complete line; more means a torn append.
    pub valid_len: u64,
    /// The file's length.
    pub len: u64,
}

/// Reads the journal; a missing file is empty. A last line without its
/// newline is a torn append (a crash while writing) and is not returned;
/// any other bad line is [`StoreError::Corrupt`] with its line number.
pub(super) fn read(path: &Path) -> Result<Contents, StoreError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Contents::default()),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let valid = text.rfind('\n').map_or(0, |i| i + 1);
    let mut out = Contents {
        valid_len: valid as u64,
        len: text.len() as u64,
        ..Contents::default()
    };
    for (i, line) in text[..valid].lines().enumerate() {
        let bad = |e: serde_json::Error| StoreError::Corrupt {
            file: path.to_path_buf(),
            line: Some(i + 1),
            message: e.to_string(),
        };
        if i == 0 && line.contains("compactedThrough") {
            out.compacted_through = serde_json::from_str::<Header>(line)
                .map_err(bad)?
                .compacted_through;
            continue;
        }
        let entry: Entry = serde_json::from_str(line).map_err(bad)?;
        if entry.rev <= out.entries.last().map_or(out.compacted_through, |e| e.rev) {
            return Err(StoreError::Corrupt {
                file: path.to_path_buf(),
                line: Some(i + 1),
                message: format!("revision {} does not increase", entry.rev),
            });
        }
        out.entries.push(entry);
    }
    Ok(out)
}

/// Appends `entries` and fsyncs.
pub(super) fn append(path: &Path, entries: &[Entry]) -> Result<(), StoreError> {
    let mut text = String::new();
    for e in entries {
        // Strings, numbers and a JSON value: cannot fail.
        text.push_str(&serde_json::to_string(e).unwrap_or_default());
        text.push('\n');
    }
    let result = (|| {
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    result.map_err(|e| StoreError::io(path, e))
}

/// Cuts a torn last line (the append never completed, so the change it
/// started never happened).
pub(super) fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let result = (|| {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    })();
    result.map_err(|e| StoreError::io(path, e))
}

/// Rewrites the journal with its last `keep` entries.
pub(super) fn compact(path: &Path, contents: &Contents, keep: usize) -> Result<(), StoreError> {
    let cut = contents.entries.len().saturating_sub(keep);
    let through = match cut {
        0 => return Ok(()),
        n => contents.entries[n - 1].rev,
    };
    let mut text = serde_json::to_string(&Header {
        compacted_through: through,
    })
    .unwrap_or_default();
    text.push('\n');
    for e in &contents.entries[cut..] {
        text.push_str(&serde_json::to_string(e).unwrap_or_default());
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

// ===== impl Entry =====

impl Entry {
    /// The entry for a change of `key` to `resource` (None: deleted).
    pub fn new(rev: Revision, key: &Key, action: Action, resource: Option<&Resource>) -> Entry {
        Entry {
            rev,
            kind: key.kind.as_str().to_string(),
            name: key.name.clone(),
            action: match action {
                Action::Created => "created",
                Action::Updated => "updated",
                Action::Deleted => "deleted",
            }
            .to_string(),
            object: resource.map(Resource::to_value),
        }
    }

    /// The kind, if the entry names a known one.
    pub fn kind(&self) -> Option<Kind> {
        Kind::parse(&self.kind)
    }

    /// The entry as a watch event; `path` names the journal in errors.
    pub fn to_event(&self, path: &Path) -> Result<WatchEvent, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            file: path.to_path_buf(),
            line: None,
            message: format!("revision {}: {message}", self.rev),
        };
        let kind = self
            .kind()
            .ok_or_else(|| corrupt(format!("unknown kind {:?}", self.kind)))?;
        let action = match self.action.as_str() {
            "created" => Action::Created,
            "updated" => Action::Updated,
            "deleted" => Action::Deleted,
            other => return Err(corrupt(format!("unknown action {other:?}"))),
        };
        let resource = match (&self.object, action) {
            (_, Action::Deleted) => None,
            (Some(v), _) => Some(
                Resource::from_value(v.clone())
                    .map_err(|e| corrupt(e.to_string()))?
                    .0,
            ),
            (None, _) => return Err(corrupt("no object".into())),
        };
        Ok(WatchEvent {
            revision: self.rev,
            action,
            key: Key::new(kind, self.name.clone()),
            resource,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(rev: Revision) -> String {
        format!("{{\"rev\":{rev},\"kind\":\"Handle\",\"name\":\"h\",\"action\":\"deleted\"}}\n")
    }

    #[test]
    fn torn_bad_and_out_of_order_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let read_text = |text: &str| {
            fs::write(&path, text).unwrap();
            read(&path)
        };
        // Missing file: empty.
        assert!(read(&path).unwrap().entries.is_empty());
        // A torn last line is left out, and its length reported.
        let good = format!("{}{}", line(1), line(2));
        let c = read_text(&format!("{good}{{\"rev\":3,")).unwrap();
        assert_eq!(
            (c.entries.len(), c.valid_len as usize, c.len as usize),
            (2, good.len(), good.len() + 9)
        );
        // A bad complete line is corrupt, with its line number.
        let e = read_text(&format!("{}not json\n{}", line(1), line(2))).unwrap_err();
        assert!(
            matches!(e, StoreError::Corrupt { line: Some(2), .. }),
            "{e}"
        );
        // Revisions must increase.
        let e = read_text(&format!("{}{}", line(2), line(2))).unwrap_err();
        assert!(
            e.to_string()
                .contains(":2: corrupt: revision 2 does not increase"),
            "{e}"
        );
        // After a compaction header, entries continue past it.
        let c = read_text(&format!("{{\"compactedThrough\":5}}\n{}", line(6))).unwrap();
        assert_eq!((c.compacted_through, c.entries[0].rev), (5, 6));
        let e = read_text(&format!("{{\"compactedThrough\":5}}\n{}", line(5))).unwrap_err();
        assert!(
            matches!(e, StoreError::Corrupt { line: Some(2), .. }),
            "{e}"
        );
    }

    #[test]
    fn compaction_keeps_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let text: String = (1..=10).map(line).collect();
        fs::write(&path, text).unwrap();
        compact(&path, &read(&path).unwrap(), 3).unwrap();
        let c = read(&path).unwrap();
        assert_eq!(c.compacted_through, 7);
        assert_eq!(
            c.entries.iter().map(|e| e.rev).collect::<Vec<_>>(),
            [8, 9, 10]
        );
    }
}
