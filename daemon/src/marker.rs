//! The graceful restart marker: `<state-dir>/running`.
//!
//! While the process runs it refreshes the file every few seconds. At start,
//! a marker younger than the graceful restart time means we went away (crash,
//! graceful stop, upgrade) recently enough that our peers may still hold our
//! routes as stale, so we set the R bit (RFC 4724 §3) in our OPENs. A clean
//! non-graceful exit removes the marker, so the next start is a fresh one.
//!
//! The marker names its owner (the router id and what the process runs
//! as: a configuration file, a node name). A marker of another owner (the
//! state directory shared with another configuration, the router id
//! changed) is not ours: no R bit, no peers to wait for. A marker without
//! an owner line (written before owners were recorded) counts as ours.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The marker file in a state directory, for one owner.
#[derive(Clone, Debug)]
pub struct Marker {
    path: PathBuf,
    owner: String,
}

// ===== impl Marker =====

impl Marker {
    /// The marker inside `state_dir` (not created yet) of `owner`, one
    /// line of text such as `router-id 10.0.0.1 config /etc/rr.yaml`.
    pub fn new(state_dir: &Path, owner: impl Into<String>) -> Marker {
        Marker {
            path: state_dir.join("running"),
            owner: owner.into().replace('\n', " "),
        }
    }

    /// The owner named in the marker on disk when it is another's (None:
    /// ours, no owner recorded, or no marker).
    pub fn foreign_owner(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let recorded = text.lines().find_map(|l| l.strip_prefix("owner "))?;
        (recorded != self.owner).then(|| recorded.to_string())
    }

    /// Where the marker lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long ago the marker was last written, if it exists. A marker
    /// from the future (clock stepped back) counts as just written.
    pub fn age(&self) -> Option<Duration> {
        let modified = std::fs::metadata(&self.path).ok()?.modified().ok()?;
        Some(
            SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default(),
        )
    }

    /// True when the marker exists, is ours and is younger than
    /// `restart_time`.
    pub fn restarted_within(&self, restart_time: Duration) -> bool {
        self.age().is_some_and(|age| age < restart_time) && self.foreign_owner().is_none()
    }

    /// Writes (or refreshes) the marker: the pid and the time, for humans;
    /// what counts is the modification time, and the peers that were
    /// Established (after a restart the speaker waits for their End-of-RIB
    /// before sending routes). Written to a temporary file and renamed so
    /// that a crash never leaves half a file.
    pub fn write(&self, peers: &[IpAddr]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut text = format!(
            "pid {}\nunix_time {now}\nowner {}\n",
            std::process::id(),
            self.owner
        );
        for p in peers {
            text += &format!("peer {p}\n");
        }
        // One write, not one per token (a File is unbuffered).
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }

    /// The peers recorded in the marker (none if it is missing, unreadable
    /// or another's).
    pub fn peers(&self) -> Vec<IpAddr> {
        if self.foreign_owner().is_some() {
            return Vec::new();
        }
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("peer "))
            .filter_map(|a| a.trim().parse().ok())
            .collect()
    }

    /// Removes the marker; a missing marker is fine.
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// How often to refresh the marker for a given restart time: a third of it
/// (so a crash is detected as a restart for at least 2/3 of the window), at
/// least 1 s and at most 10 s.
pub fn refresh_interval(restart_time: u16) -> Duration {
    Duration::from_secs(u64::from(restart_time / 3).clamp(1, 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let marker = Marker::new(
            &dir.path().join("nested"),
            "router-id 10.0.0.1 config /a.yaml",
        );
        assert_eq!(marker.age(), None);
        assert!(!marker.restarted_within(Duration::from_secs(120)));

        let peers: Vec<IpAddr> = vec!["172.30.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        marker.write(&peers).unwrap();
        assert_eq!(marker.peers(), peers);
        assert!(marker.restarted_within(Duration::from_secs(120)));
        let text = std::fs::read_to_string(marker.path()).unwrap();
        assert!(
            text.starts_with(&format!("pid {}\n", std::process::id())),
            "{text}"
        );

        // An old marker (mtime pushed back) is not a recent restart.
        let old = SystemTime::now() - Duration::from_secs(300);
        std::fs::File::options()
            .write(true)
            .open(marker.path())
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(!marker.restarted_within(Duration::from_secs(120)));
        assert!(marker.restarted_within(Duration::from_secs(400)));

        marker.remove().unwrap();
        assert!(!marker.path().exists());
        marker.remove().unwrap();
    }

    #[test]
    fn a_marker_of_another_owner_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let ours = Marker::new(dir.path(), "router-id 10.0.0.1 config /a.yaml");
        let theirs = Marker::new(dir.path(), "router-id 10.0.0.2 config /b.yaml");
        let peers: Vec<IpAddr> = vec!["172.30.0.2".parse().unwrap()];
        theirs.write(&peers).unwrap();
        assert!(theirs.restarted_within(Duration::from_secs(120)));
        assert_eq!(theirs.peers(), peers);
        assert!(!ours.restarted_within(Duration::from_secs(120)));
        assert!(ours.peers().is_empty());
        assert_eq!(
            ours.foreign_owner().as_deref(),
            Some("router-id 10.0.0.2 config /b.yaml")
        );
        // A marker written before owners were recorded is taken as ours.
        std::fs::write(ours.path(), "pid 1\nunix_time 0\npeer 172.30.0.2\n").unwrap();
        assert!(ours.restarted_within(Duration::from_secs(120)));
        assert_eq!(ours.peers(), peers);
        assert_eq!(ours.foreign_owner(), None);
    }

    #[test]
    fn refresh_interval_is_clamped() {
        assert_eq!(refresh_interval(1), Duration::from_secs(1));
        assert_eq!(refresh_interval(12), Duration::from_secs(4));
        assert_eq!(refresh_interval(120), Duration::from_secs(10));
    }
}
