//! The write-ahead journal (`journal.jsonl`): one JSON line per change,
//! appended and fsynced *before* the state file changes. It is the source
//! of revisions and of watch history, and what recovery replays after a
//! crash between the two writes.
//!
//! The entries of one write (a batch: `Datastore::apply`, or an ingest of
//! the user's file) are appended together; every entry but the last of
//! such a group carries `"more": true`. A group whose last entry is
//! missing was torn by a crash: recovery cuts it whole and readers never
//! return a part of it, so a batch is seen entirely or not at all.
//!
//! A first line `{"compactedThrough": R}` says history up to R was dropped
//! by compaction (by default the journal is cut to its last [`KEEP`] bytes
//! of entries once it passes [`MAX_BYTES`]).
//!
//! Operations never parse the whole journal: they read its last line
//! ([`tail`]); watchers read only what was appended since their last read
//! ([`open_from`] with a [`Cursor`], or [`Held::read`]), and to start (or
//! after a compaction) search back from the end for the revision they
//! start after. Only recovery, compaction and a start before
//! the journal's beginning read it all.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tortie_config::resources::{Key, Kind, Resource};

use super::state::write_atomic;
use crate::{Action, Revision, StoreError, WatchEvent};

/// The journal's file name in the state directory.
pub(super) const FILE: &str = "journal.jsonl";
/// Compact when the journal is larger than this (bytes).
pub(super) const MAX_BYTES: u64 = 4 << 20;
/// Bytes of newest entries kept by compaction.
pub(super) const KEEP: u64 = 1 << 20;
/// The first read of what was appended ([`Held::read`]); more when full.
const READ_CHUNK: usize = 16 << 10;
/// How much of the end of the journal [`tail`] reads first.
const TAIL_CHUNK: u64 = 64 << 10;

/// One change.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Entry {
    pub rev: Revision,
    pub kind: String,
    pub name: String,
    pub action: String,
    /// The object as it is in the line: parsed only by a watch of its
    /// kind ([`Entry::to_event`]). Every process that watches the store
    /// reads every line, and most lines are of kinds it does not watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Box<RawValue>>,
    /// More entries of the same write follow (see the module's doc).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
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
    /// History up to here is not in `entries`: dropped by compaction, or
    /// (a read that started after a revision) left unread.
    pub compacted_through: Revision,
    /// The entries, in revision order.
    pub entries: Vec<Entry>,
    /// Bytes up to the last complete line; more means a torn append.
    pub valid_len: u64,
    /// The file's length.
    pub len: u64,
    /// Read from a cursor: only entries appended since, and
    /// `compacted_through` unknown (0).
    pub partial: bool,
}

/// Where a reader stopped: the file (by inode: compaction replaces it) and
/// the byte offset after the last complete line read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cursor {
    ino: u64,
    offset: u64,
}

/// The end of the journal, as an operation needs it.
#[derive(Debug, Default)]
pub(super) struct Tail {
    /// The last revision written (or compacted through); 0 if none.
    pub last: Revision,
    /// Bytes up to the last complete line.
    pub valid_len: u64,
    /// The file's length (more than `valid_len`: a torn append).
    pub len: u64,
}

/// Reads the last complete line of the journal only.
pub(super) fn tail(path: &Path) -> Result<Tail, StoreError> {
    let io = |e| StoreError::io(path, e);
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Tail::default()),
        Err(e) => return Err(io(e)),
    };
    let len = f.metadata().map_err(io)?.len();
    let start = len.saturating_sub(TAIL_CHUNK);
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    f.read_to_end(&mut buf).map_err(io)?;
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        if start == 0 {
            // Nothing complete yet.
            return Ok(Tail {
                last: 0,
                valid_len: 0,
                len,
            });
        }
        return from_full(path);
    };
    let begin = match buf[..end].iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None if start == 0 => 0,
        // The last line is longer than the chunk.
        None => return from_full(path),
    };
    let line = &buf[begin..end];
    let last = if let Ok(h) = serde_json::from_slice::<Header>(line) {
        h.compacted_through
    } else if let Ok(e) = serde_json::from_slice::<Entry>(line) {
        if e.more {
            // A group torn by a crash: the full read finds where it began.
            return from_full(path);
        }
        e.rev
    } else {
        // Let the full read find the line number.
        return from_full(path);
    };
    Ok(Tail {
        last,
        valid_len: start + end as u64 + 1,
        len,
    })
}

/// [`tail`] by reading everything (long lines, errors with line numbers).
fn from_full(path: &Path) -> Result<Tail, StoreError> {
    let c = read(path)?;
    Ok(Tail {
        last: c.entries.last().map_or(c.compacted_through, |e| e.rev),
        valid_len: c.valid_len,
        len: c.len,
    })
}

/// Whether `cursor` is still good for the journal at `path` (the same
/// file, not shorter): then [`open_from`] reads only what was appended.
pub(super) fn same_file(path: &Path, cursor: Cursor) -> bool {
    fs::metadata(path).is_ok_and(|m| m.ino() == cursor.ino && cursor.offset <= m.len())
}

/// The journal held open by a reader that inotify tells when another file
/// takes its path (a compaction): what was appended is then read without
/// a `stat` and an `open` per read ([`Held::read`]). Appends never rewrite
/// bytes before the cursor, and recovery cuts only a torn last line,
/// after it.
#[derive(Debug)]
pub(super) struct Held {
    file: File,
    /// Where the next read starts.
    pub cursor: Cursor,
    /// Kept between reads.
    buf: Vec<u8>,
}

impl Held {
    /// Reads what was appended to the held file since the last read.
    ///
    /// Positioned reads from the cursor, until one returns less than it
    /// asked for (the end of a regular file): one system call for a
    /// usual append, where a seek and `read_to_string` made five (it asks
    /// for the file's size and position to size its buffer, and reads
    /// again to see the end). Every reader pays this for every write.
    pub(super) fn read(&mut self, path: &Path) -> Result<Contents, StoreError> {
        use std::os::unix::fs::FileExt;
        let io = |e| StoreError::io(path, e);
        if self.buf.len() < READ_CHUNK {
            self.buf.resize(READ_CHUNK, 0);
        }
        let mut len = 0;
        loop {
            let at = self.cursor.offset + len as u64;
            match self.file.read_at(&mut self.buf[len..], at) {
                Ok(n) => len += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            }
            if len < self.buf.len() {
                break;
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let text = std::str::from_utf8(&self.buf[..len]).map_err(|e| StoreError::Corrupt {
            file: path.to_path_buf(),
            line: None,
            message: format!("after byte {}: not UTF-8: {e}", self.cursor.offset),
        })?;
        let out = appended(path, self.cursor.offset, text)?;
        self.cursor.offset = out.valid_len;
        Ok(out)
    }
}

/// Reads what was appended after `cursor`; when there is no cursor, or
/// the journal was replaced (compacted) since, what comes after revision
/// `after`:
/// found by reading back from the end ([`find_start`]), or, when that
/// needs the whole file, by reading it all. Returns the file held open at
/// the new cursor, for [`Held::read`] or to pass next time.
///
/// A watch starts from a recent revision and a journal holds up to
/// [`MAX_BYTES`]: every watch of every agent reading and parsing all of
/// it at start took 7 x 1.6 MB of reads, and 16 MB of heap at the peak,
/// on a lab's 30-node agent.
pub(super) fn open_from(
    path: &Path,
    cursor: Option<Cursor>,
    after: Revision,
) -> Result<(Contents, Option<Held>), StoreError> {
    let io = |e| StoreError::io(path, e);
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok((Contents::default(), None)),
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    let ino = meta.ino();
    if let Some(c) = cursor.filter(|c| c.ino == ino && c.offset <= meta.len()) {
        let mut held = Held {
            file,
            cursor: c,
            buf: Vec::new(),
        };
        let out = held.read(path)?;
        return Ok((out, Some(held)));
    }
    if let Some((offset, rev)) = find_start(&file, meta.len(), after).map_err(io)? {
        let mut held = Held {
            file,
            cursor: Cursor { ino, offset },
            buf: Vec::new(),
        };
        let mut out = held.read(path)?;
        out.partial = false;
        out.compacted_through = rev;
        return Ok((out, Some(held)));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io)?;
    let out = parse(path, &text)?;
    let cursor = Cursor {
        ino,
        offset: out.valid_len,
    };
    Ok((
        out,
        Some(Held {
            file,
            cursor,
            buf: Vec::new(),
        }),
    ))
}

/// Searches `file` (`len` bytes) back from its end, a doubling window at a
/// time, for the last complete line whose revision is `after` or older:
/// returns where the line after it begins, and its revision. None when only the whole file will
/// do: no such line before the file's beginning, a line that is not an
/// entry (the compaction header; a bad line, which the full read reports
/// with its line number), or the line ending an unfinished group. Only the
/// lines searched are parsed, and only for their revision.
fn find_start(file: &File, len: u64, after: Revision) -> std::io::Result<Option<(u64, Revision)>> {
    use std::os::unix::fs::FileExt;
    #[derive(Deserialize)]
    struct Line {
        rev: Revision,
        #[serde(default)]
        more: bool,
    }
    let mut window = TAIL_CHUNK;
    let mut buf = Vec::new();
    loop {
        let from = len.saturating_sub(window);
        buf.resize((len - from) as usize, 0);
        file.read_exact_at(&mut buf, from)?;
        // The lines ending in the window, last first (what follows the
        // last newline is a torn append); the first is cut unless the
        // window starts the file.
        let mut end = buf.iter().rposition(|b| *b == b'\n');
        while let Some(e) = end {
            let begin = match buf[..e].iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if from == 0 => 0,
                None => break,
            };
            let Ok(line) = serde_json::from_slice::<Line>(&buf[begin..e]) else {
                return Ok(None);
            };
            if line.rev <= after {
                return Ok((!line.more).then_some((from + e as u64 + 1, line.rev)));
            }
            end = begin.checked_sub(1);
        }
        if from == 0 {
            return Ok(None);
        }
        window *= 2;
    }
}

/// The complete groups of lines of `buf`, read from byte `offset` of the
/// journal (an unfinished group is left for the next read).
fn appended(path: &Path, offset: u64, buf: &str) -> Result<Contents, StoreError> {
    let mut out = Contents {
        len: offset + buf.len() as u64,
        partial: true,
        ..Contents::default()
    };
    let mut groups = Groups::default();
    for line in buf.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break;
        }
        let entry: Entry = serde_json::from_str(line).map_err(|e| StoreError::Corrupt {
            file: path.to_path_buf(),
            line: None,
            message: format!("after byte {}: {e}", offset + groups.read),
        })?;
        groups.push(&mut out.entries, entry, line.len());
    }
    out.valid_len = offset + groups.end(&mut out.entries);
    Ok(out)
}

/// Where the last complete group of lines ends, as lines are read.
#[derive(Default)]
struct Groups {
    /// Bytes read.
    read: u64,
    /// Bytes up to the end of the last complete group.
    complete: u64,
    /// Entries in complete groups.
    entries: usize,
}

impl Groups {
    fn push(&mut self, entries: &mut Vec<Entry>, entry: Entry, len: usize) {
        self.read += len as u64;
        let last = !entry.more;
        entries.push(entry);
        if last {
            self.complete = self.read;
            self.entries = entries.len();
        }
    }

    /// Drops the entries of an unfinished group; returns the bytes of the
    /// complete ones.
    fn end(&self, entries: &mut Vec<Entry>) -> u64 {
        entries.truncate(self.entries);
        self.complete
    }
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
    parse(path, &text)
}

/// The whole journal's text, read. A last line without its newline, or a
/// group without its last line, is a torn append and is not returned.
fn parse(path: &Path, text: &str) -> Result<Contents, StoreError> {
    let mut out = Contents {
        len: text.len() as u64,
        ..Contents::default()
    };
    let mut groups = Groups::default();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if !line.ends_with('\n') {
            break;
        }
        let bad = |e: serde_json::Error| StoreError::Corrupt {
            file: path.to_path_buf(),
            line: Some(i + 1),
            message: e.to_string(),
        };
        if i == 0 && line.contains("compactedThrough") {
            out.compacted_through = serde_json::from_str::<Header>(line)
                .map_err(bad)?
                .compacted_through;
            groups.read += line.len() as u64;
            groups.complete = groups.read;
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
        groups.push(&mut out.entries, entry, line.len());
    }
    out.valid_len = groups.end(&mut out.entries);
    Ok(out)
}

/// Appends `entries` as one group (one write) and fsyncs; returns the
/// bytes written.
pub(super) fn append(path: &Path, entries: &mut [Entry]) -> Result<u64, StoreError> {
    let n = entries.len();
    for (i, e) in entries.iter_mut().enumerate() {
        e.more = i + 1 < n;
    }
    let mut text = String::new();
    for e in entries.iter() {
        // Strings, numbers and a JSON value: cannot fail.
        text.push_str(&serde_json::to_string(e).unwrap_or_default());
        text.push('\n');
    }
    let result = (|| {
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    result.map_err(|e| StoreError::io(path, e))?;
    Ok(text.len() as u64)
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

/// Rewrites the journal with its newest entries, about `keep` bytes of
/// them (at least one entry). Returns the new length.
pub(super) fn compact(path: &Path, contents: &Contents, keep: u64) -> Result<u64, StoreError> {
    let mut kept = 0u64;
    let mut cut = contents.entries.len();
    while cut > 0 {
        let size =
            serde_json::to_string(&contents.entries[cut - 1]).map_or(0, |t| t.len() as u64 + 1);
        if kept + size > keep && cut < contents.entries.len() {
            break;
        }
        kept += size;
        cut -= 1;
    }
    // Keep a group whole.
    while cut > 0 && contents.entries[cut - 1].more {
        cut -= 1;
    }
    let through = match cut {
        0 => return Ok(contents.len),
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
    write_atomic(path, text.as_bytes())?;
    Ok(text.len() as u64)
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
            // A Value always serializes.
            object: resource.and_then(|r| serde_json::value::to_raw_value(&r.to_value()).ok()),
            more: false,
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
            (Some(raw), _) => Some(
                Resource::from_json(kind, raw.get())
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

    /// [`open_from`], keeping only the cursor.
    fn read_from(
        path: &Path,
        cursor: Option<Cursor>,
    ) -> Result<(Contents, Option<Cursor>), StoreError> {
        let (contents, held) = open_from(path, cursor, 0)?;
        Ok((contents, held.map(|h| h.cursor)))
    }

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
    fn a_held_journal_reads_only_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        fs::write(&path, format!("{}{{\"rev\":2", line(1))).unwrap();
        let (c, held) = open_from(&path, None, 0).unwrap();
        let mut held = held.unwrap();
        assert_eq!(c.entries.len(), 1);
        assert!(!c.partial);
        // The torn line, then completed and followed by another.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(
            format!(
                ",\"kind\":\"Handle\",\"name\":\"h\",\"action\":\"deleted\"}}\n{}",
                line(3)
            )
            .as_bytes(),
        )
        .unwrap();
        let c = held.read(&path).unwrap();
        assert!(c.partial);
        assert_eq!(c.entries.iter().map(|e| e.rev).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(held.cursor.offset, fs::metadata(&path).unwrap().len());
        // Nothing new: nothing read.
        assert!(held.read(&path).unwrap().entries.is_empty());
        // A compaction puts another file at the path: the held one is no
        // longer it, which only a check of the path tells (the reader's
        // inotify events ask for that check).
        compact(&path, &read(&path).unwrap(), 0).unwrap();
        assert!(!same_file(&path, held.cursor));
        let (c, held) = open_from(&path, Some(held.cursor), 0).unwrap();
        assert!(!c.partial, "another file is read whole");
        assert_eq!((c.compacted_through, c.entries[0].rev), (2, 3));
        assert!(same_file(&path, held.unwrap().cursor));
    }

    /// A line of a group that goes on.
    fn more(rev: Revision) -> String {
        line(rev).replace("}\n", ",\"more\":true}\n")
    }

    #[test]
    fn a_group_is_read_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        // One complete group (1, 2), then a group torn after its first line.
        let whole = format!("{}{}", more(1), line(2));
        fs::write(&path, format!("{whole}{}", more(3))).unwrap();
        let c = read(&path).unwrap();
        assert_eq!(c.entries.iter().map(|e| e.rev).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            c.valid_len,
            whole.len() as u64,
            "the open group is not valid"
        );
        assert!(c.entries[0].more && !c.entries[1].more);
        // Recovery's view: the last line goes on, so the tail is at the
        // group's start, and the cut removes the whole torn group.
        let t = tail(&path).unwrap();
        assert_eq!((t.last, t.valid_len), (2, whole.len() as u64));
        truncate(&path, t.valid_len).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), whole);
        // A reader that sees a group half written returns nothing of it
        // until its last line is there.
        let (_, held) = open_from(&path, None, 0).unwrap();
        let mut held = held.unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(format!("{}{}", more(3), more(4)).as_bytes())
            .unwrap();
        assert!(held.read(&path).unwrap().entries.is_empty());
        f.write_all(line(5).as_bytes()).unwrap();
        let c = held.read(&path).unwrap();
        assert_eq!(
            c.entries.iter().map(|e| e.rev).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        // append marks every entry but the last of its write.
        let mut entries = read(&path).unwrap().entries.split_off(2);
        for e in &mut entries {
            e.rev += 10;
            e.more = false;
        }
        append(&path, &mut entries).unwrap();
        let c = read(&path).unwrap();
        let marks: Vec<_> = c.entries.iter().map(|e| (e.rev, e.more)).collect();
        assert_eq!(
            marks,
            [
                (1, true),
                (2, false),
                (3, true),
                (4, true),
                (5, false),
                (13, true),
                (14, true),
                (15, false)
            ]
        );
        // Compaction never starts the kept tail inside a group.
        compact(&path, &c, 1).unwrap();
        let c = read(&path).unwrap();
        assert_eq!(c.compacted_through, 5);
        assert_eq!(
            c.entries.iter().map(|e| e.rev).collect::<Vec<_>>(),
            [13, 14, 15]
        );
    }

    #[test]
    fn a_held_read_takes_appends_larger_than_its_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        fs::write(&path, line(1)).unwrap();
        let (_, held) = open_from(&path, None, 0).unwrap();
        let mut held = held.unwrap();
        let text: String = (2..=2000).map(line).collect();
        assert!(text.len() > 4 * READ_CHUNK);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let c = held.read(&path).unwrap();
        assert_eq!(c.entries.len(), 1999);
        assert_eq!(c.entries.last().unwrap().rev, 2000);
        assert_eq!(held.cursor.offset, fs::metadata(&path).unwrap().len());
        f.write_all(line(2001).as_bytes()).unwrap();
        assert_eq!(held.read(&path).unwrap().entries[0].rev, 2001);
    }

    #[test]
    fn compaction_keeps_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let text: String = (1..=10).map(line).collect();
        fs::write(&path, text).unwrap();
        let one = line(10).len() as u64;
        compact(&path, &read(&path).unwrap(), 3 * one).unwrap();
        let c = read(&path).unwrap();
        assert_eq!(c.compacted_through, 7);
        assert_eq!(
            c.entries.iter().map(|e| e.rev).collect::<Vec<_>>(),
            [8, 9, 10]
        );
    }

    #[test]
    fn tail_and_cursor_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        assert_eq!(tail(&path).unwrap().last, 0);
        fs::write(&path, format!("{}{}{{\"rev\":3", line(1), line(2))).unwrap();
        let t = tail(&path).unwrap();
        assert_eq!((t.last, t.valid_len + 8), (2, t.len));
        // A long last line (bigger than the chunk) falls back to a full read.
        let big = Entry {
            rev: 3,
            kind: "Handle".into(),
            name: "x".repeat(100_000),
            action: "deleted".into(),
            object: None,
            more: false,
        };
        let mut text = format!("{}{}", line(1), line(2));
        text.push_str(&serde_json::to_string(&big).unwrap());
        text.push('\n');
        fs::write(&path, &text).unwrap();
        assert_eq!(tail(&path).unwrap().last, 3);

        // A cursor reads only what came after it; a replaced file is read whole.
        fs::write(&path, format!("{}{}", line(1), line(2))).unwrap();
        let (all, cursor) = read_from(&path, None).unwrap();
        assert_eq!((all.entries.len(), all.partial), (2, false));
        append(&path, &mut [serde_json::from_str(line(3).trim()).unwrap()]).unwrap();
        let (more, cursor) = read_from(&path, cursor).unwrap();
        assert_eq!(
            (more.entries.len(), more.entries[0].rev, more.partial),
            (1, 3, true)
        );
        let (none, cursor) = read_from(&path, cursor).unwrap();
        assert!(none.entries.is_empty());
        let one = line(3).len() as u64;
        compact(&path, &read(&path).unwrap(), one).unwrap();
        let (after, _) = read_from(&path, cursor).unwrap();
        assert_eq!((after.partial, after.compacted_through), (false, 2));
    }

    /// The revisions of `c`'s entries.
    fn revs(c: &Contents) -> Vec<Revision> {
        c.entries.iter().map(|e| e.rev).collect()
    }

    #[test]
    fn a_start_after_a_revision_reads_back_from_the_end_only_as_far_as_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        // Line 2 is bad: a read that reaches it fails, naming it. 3,000
        // lines are several search windows.
        let mut text = format!("{}not json\n", line(1));
        for rev in 3..=3000 {
            text.push_str(&line(rev));
        }
        text.push_str("{\"rev\":30"); // torn append
        fs::write(&path, &text).unwrap();
        let (c, held) = open_from(&path, None, 2990).unwrap();
        assert_eq!(revs(&c), (2991..=3000).collect::<Vec<_>>());
        assert_eq!((c.compacted_through, c.partial), (2990, false));
        assert_eq!(c.valid_len, text.rfind('\n').unwrap() as u64 + 1);
        // Far back: the window widens (the bad line is not reached)...
        let (c, _) = open_from(&path, None, 3).unwrap();
        assert_eq!((c.entries.len(), c.entries[0].rev), (2997, 4));
        // ...and before the bad line only the whole file will do, which
        // reports it.
        match open_from(&path, None, 1) {
            Err(StoreError::Corrupt { line: Some(2), .. }) => {}
            other => panic!("expected line 2 to be corrupt, got {other:?}"),
        }
        // The held file goes on from there.
        let mut held = held.unwrap();
        fs::write(
            &path,
            format!("{}{}", &text[..text.rfind('\n').unwrap() + 1], line(3001)),
        )
        .unwrap();
        assert_eq!(revs(&held.read(&path).unwrap()), [3001]);

        // After the last revision: nothing, and the cursor after the last line.
        let (c, held) = open_from(&path, None, Revision::MAX).unwrap();
        assert_eq!((c.entries.len(), c.compacted_through), (0, 3001));
        let mut held = held.unwrap();
        append(
            &path,
            &mut [serde_json::from_str(line(3002).trim()).unwrap()],
        )
        .unwrap();
        assert_eq!(revs(&held.read(&path).unwrap()), [3002]);
    }

    #[test]
    fn a_start_that_needs_the_whole_journal_reads_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        // Before the first entry after a compaction: the header says what
        // is gone.
        fs::write(
            &path,
            format!("{{\"compactedThrough\":5}}\n{}{}", line(6), line(7)),
        )
        .unwrap();
        let (c, _) = open_from(&path, None, 3).unwrap();
        assert_eq!((revs(&c), c.compacted_through), (vec![6, 7], 5));
        let (c, _) = open_from(&path, None, 6).unwrap();
        assert_eq!((revs(&c), c.compacted_through), (vec![7], 6));
        // The last line ends a group that is not finished: a full read
        // leaves the group out.
        fs::write(&path, format!("{}{}", line(1), more(2))).unwrap();
        let (c, held) = open_from(&path, None, Revision::MAX).unwrap();
        assert_eq!((revs(&c), c.partial), (vec![1], false));
        assert_eq!(held.unwrap().cursor.offset, line(1).len() as u64);
        // No journal, or nothing complete in it.
        fs::remove_file(&path).unwrap();
        let (c, held) = open_from(&path, None, Revision::MAX).unwrap();
        assert!(c.entries.is_empty() && held.is_none());
        fs::write(&path, "{\"rev\":1").unwrap();
        let (c, held) = open_from(&path, None, Revision::MAX).unwrap();
        assert_eq!((c.entries.len(), held.unwrap().cursor.offset), (0, 0));
    }
}
