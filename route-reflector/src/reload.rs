//! Reloading the configuration file on SIGHUP or when it changes on disk.
//!
//! ```text
//!  SIGHUP ----------------> Trigger::Signal ----\
//!  inotify (file's dir) --> Trigger::FileChanged -+--> run(): debounce --> reload()
//! ```
//!
//! A valid file goes to `SpeakerHandle::reconfigure` (the speaker touches
//! only the peers that changed). An invalid one is logged with the field
//! that is wrong, counted as `tortie_rr_config_reloads_total{result="error"}`,
//! and the running configuration stays. File-change reloads are skipped when
//! the bytes did not change (editors and ConfigMap updates fire several
//! events); SIGHUP always reloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tortie_config::RrConfig;
use tracing::{debug, error, info, warn};

use crate::metrics::ReloadResult;
use crate::state::Shared;

/// Quiet time after the last file event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Why to reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP: reload now, even if the file looks unchanged.
    Signal,
    /// Something happened in the file's directory.
    FileChanged,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Unchanged,
    Rejected(String),
}

/// The reload task's memory: the bytes last read, to skip no-op events.
#[derive(Debug)]
pub struct Reloader {
    shared: Arc<Shared>,
    last_text: String,
}

// ===== impl Reloader =====

impl Reloader {
    /// `text` is the file content the process started with.
    pub fn new(shared: Arc<Shared>, text: String) -> Reloader {
        Reloader {
            shared,
            last_text: text,
        }
    }

    /// Runs until every trigger sender is gone.
    pub async fn run(mut self, mut triggers: mpsc::Receiver<Trigger>) {
        while let Some(trigger) = triggers.recv().await {
            let force = match trigger {
                Trigger::Signal => true,
                Trigger::FileChanged => debounce(&mut triggers).await,
            };
            let why = if force { "SIGHUP" } else { "file change" };
            match self.reload(force).await {
                Outcome::Applied => info!(trigger = why, "configuration reloaded"),
                Outcome::Unchanged => debug!(trigger = why, "configuration file unchanged"),
                Outcome::Rejected(e) => error!(
                    trigger = why,
                    path = %self.shared.config_path.display(),
                    error = %e,
                    "configuration reload rejected; keeping the running configuration"
                ),
            }
        }
    }

    /// Reads, validates and applies the file. `force`: apply even if the
    /// bytes are the same as last time.
    pub async fn reload(&mut self, force: bool) -> Outcome {
        let path = &self.shared.config_path;
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return self.reject(format!("cannot read {}: {e}", path.display())),
        };
        if !force && text == self.last_text {
            return Outcome::Unchanged;
        }
        self.last_text = text;
        let mut rr = match RrConfig::from_yaml(&self.last_text) {
            Ok(rr) => rr,
            Err(e) => return self.reject(e.in_file(path)),
        };
        let running = self.shared.applied();
        if rr.admin != running.rr.admin {
            warn!(
                running = %running.rr.admin,
                file = %rr.admin,
                "admin: the admin address changes only on restart; keeping the running one"
            );
            rr.admin = running.rr.admin;
        }
        let changes = peer_changes(&running.rr, &rr);
        match self.shared.apply(rr).await {
            Ok(()) => {
                if !changes.is_empty() {
                    info!(changes = %changes.join(", "), "peers changed by the reload");
                }
                self.shared.metrics.reload(ReloadResult::Success);
                Outcome::Applied
            }
            Err(e) => self.reject(e.to_string()),
        }
    }

    fn reject(&self, error: String) -> Outcome {
        self.shared.metrics.reload(ReloadResult::Error);
        Outcome::Rejected(error)
    }
}

// ===== helpers =====

/// Human summary of the static peers a reload adds, removes or changes,
/// e.g. `["+127.0.0.4", "~127.0.0.2", "-127.0.0.3"]`.
fn peer_changes(old: &RrConfig, new: &RrConfig) -> Vec<String> {
    let mut out = Vec::new();
    for p in &new.peers {
        match old.peer(p.address) {
            None => out.push(format!("+{}", p.address)),
            Some(before) if before != p => out.push(format!("~{}", p.address)),
            Some(_) => {}
        }
    }
    for p in &old.peers {
        if new.peer(p.address).is_none() {
            out.push(format!("-{}", p.address));
        }
    }
    if old.dynamic_peers != new.dynamic_peers {
        out.push("dynamicPeers".into());
    }
    out
}

/// Waits until no file event came for [`DEBOUNCE`]. Returns true if a
/// SIGHUP arrived meanwhile (then the reload is forced).
async fn debounce(triggers: &mut mpsc::Receiver<Trigger>) -> bool {
    loop {
        match tokio::time::timeout(DEBOUNCE, triggers.recv()).await {
            Err(_) | Ok(None) => return false,
            Ok(Some(Trigger::FileChanged)) => continue,
            Ok(Some(Trigger::Signal)) => return true,
        }
    }
}

/// Watches the directory of `path` (not the file: editors and Kubernetes
/// ConfigMaps replace files by rename, which a file watch would lose) and
/// sends [`Trigger::FileChanged`] for every event that may change it. Keep
/// the returned watcher alive for as long as events are wanted.
pub fn watch_file(
    path: &Path,
    triggers: mpsc::Sender<Trigger>,
) -> notify::Result<RecommendedWatcher> {
    let dir = watch_dir(path);
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(event) if relevant(&event.kind) => {
                // Full channel: a reload is pending anyway.
                let _ = triggers.try_send(Trigger::FileChanged);
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "configuration file watch error"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    // A symlink to a file elsewhere: also watch where the content lives,
    // so in-place edits of the target are seen.
    if let Some(target_dir) = std::fs::canonicalize(path)
        .ok()
        .and_then(|target| target.parent().map(Path::to_path_buf))
    {
        let same = std::fs::canonicalize(&dir).is_ok_and(|d| d == target_dir);
        if !same {
            watcher.watch(&target_dir, RecursiveMode::NonRecursive)?;
        }
    }
    Ok(watcher)
}

/// The directory holding `path` ("." for a bare file name).
fn watch_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Events that can change the file's content. Reads (ours included) are
/// not: reacting to them would loop.
fn relevant(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};

    #[test]
    fn reads_do_not_trigger_reloads() {
        assert!(!relevant(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!relevant(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(relevant(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(relevant(&EventKind::Modify(ModifyKind::Any)));
        assert!(relevant(&EventKind::Create(CreateKind::File)));
    }

    #[test]
    fn peer_changes_lists_added_changed_removed() {
        let old = RrConfig::from_yaml(
            "routerId: 1.1.1.1\nasNumber: 64512\npeers:\n  - {address: 10.0.0.2, asNumber: 64512}\n  - {address: 10.0.0.3, asNumber: 64512}\n",
        )
        .unwrap();
        let new = RrConfig::from_yaml(
            "routerId: 1.1.1.1\nasNumber: 64512\npeers:\n  - {address: 10.0.0.2, asNumber: 64512, holdTime: 30}\n  - {address: 10.0.0.4, asNumber: 64512}\n",
        )
        .unwrap();
        assert_eq!(
            peer_changes(&old, &new),
            vec!["~10.0.0.2", "+10.0.0.4", "-10.0.0.3"]
        );
        assert!(peer_changes(&old, &old).is_empty());
    }

    #[test]
    fn watch_dir_of_a_bare_name_is_cwd() {
        assert_eq!(watch_dir(Path::new("rr.yaml")), PathBuf::from("."));
        assert_eq!(
            watch_dir(Path::new("/etc/tortie/rr.yaml")),
            PathBuf::from("/etc/tortie")
        );
    }

    /// A real (in-process) speaker behind the reloader: valid files apply,
    /// unchanged bytes are skipped unless forced, invalid files are counted
    /// and leave the running configuration alone.
    #[tokio::test]
    async fn reload_applies_skips_and_rejects() {
        use crate::speaker_config::to_speaker_config;
        use crate::state::Applied;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rr.yaml");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let yaml = |peers: &[&str]| {
            let mut t = format!(
                "routerId: 127.0.0.1\nasNumber: 64512\nlisten: \"127.0.0.1:{port}\"\npeers:\n"
            );
            for p in peers {
                t += &format!("  - {{address: {p}, asNumber: 64512, passive: true}}\n");
            }
            t
        };
        let first = yaml(&["127.0.0.2"]);
        std::fs::write(&path, &first).unwrap();
        let rr = RrConfig::from_yaml(&first).unwrap();
        let speaker = to_speaker_config(&rr, false);
        let (handle, _best) = bgp_speaker::start(speaker.clone()).await.unwrap();
        let shared = Arc::new(Shared::new(
            handle.clone(),
            path.clone(),
            false,
            Applied::new(rr, speaker),
        ));
        let mut reloader = Reloader::new(shared.clone(), first);
        let count = |r: &str| {
            let series = format!("tortie_rr_config_reloads_total{{result=\"{r}\"}} ");
            let text = shared.metrics.render();
            let line = text
                .lines()
                .find(|l| l.starts_with(&series))
                .unwrap()
                .to_string();
            line[series.len()..].parse::<u64>().unwrap()
        };

        assert_eq!(reloader.reload(false).await, Outcome::Unchanged);
        assert_eq!(reloader.reload(true).await, Outcome::Applied);
        assert_eq!((count("success"), count("error")), (1, 0));

        std::fs::write(&path, yaml(&["127.0.0.2", "127.0.0.3"])).unwrap();
        assert_eq!(reloader.reload(false).await, Outcome::Applied);
        assert_eq!(shared.applied().rr.peers.len(), 2);
        assert_eq!(handle.status().peers.len(), 2);

        std::fs::write(&path, yaml(&["127.0.0.2", "127.0.0.2"])).unwrap();
        let Outcome::Rejected(e) = reloader.reload(false).await else {
            panic!("accepted a duplicate peer")
        };
        let want = "6: peers[1].address: 127.0.0.2: already used by peers[0]; list each peer once";
        assert_eq!(e, format!("{}:{want}", path.display()));
        assert_eq!((count("success"), count("error")), (2, 1));
        assert_eq!(shared.applied().rr.peers.len(), 2);
        assert_eq!(handle.status().peers.len(), 2);
        handle.shutdown(bgp_speaker::ShutdownMode::Hard).await;
    }

    #[tokio::test(start_paused = true)]
    async fn debounce_waits_for_quiet_and_lets_a_signal_through() {
        let (tx, mut rx) = mpsc::channel(8);
        tx.send(Trigger::FileChanged).await.unwrap();
        tx.send(Trigger::FileChanged).await.unwrap();
        assert!(!debounce(&mut rx).await);
        assert!(rx.try_recv().is_err(), "the burst was consumed");
        tx.send(Trigger::FileChanged).await.unwrap();
        tx.send(Trigger::Signal).await.unwrap();
        assert!(debounce(&mut rx).await);
    }
}
