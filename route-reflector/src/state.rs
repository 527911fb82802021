//! What the admin server, the reload task and the main loop share: the
//! speaker handle, the metrics, the running configuration and readiness.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bgp_speaker::{PeerConfig, SpeakerConfig, SpeakerHandle};
use tokio::sync::{watch, Mutex};
use tortie_config::RrConfig;

use crate::clients::ClientsStatus;
use crate::metrics::Metrics;
use crate::speaker_config::to_speaker_config;

/// How long a health probe waits for the speaker task to answer.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The configuration the speaker runs with right now.
#[derive(Debug)]
pub struct Applied {
    pub rr: RrConfig,
    pub speaker: SpeakerConfig,
    /// Unix time (seconds) it was applied.
    pub applied_unix: u64,
}

/// State shared by the tasks of the process.
#[derive(Debug)]
pub struct Shared {
    pub handle: SpeakerHandle,
    pub metrics: Metrics,
    /// The file we load and reload.
    pub config_path: PathBuf,
    /// The graceful restart R bit chosen at start; kept for every reload.
    pub restarting: bool,
    /// Published after each successful apply; readers never wait.
    applied: watch::Sender<Arc<Applied>>,
    /// Serializes calls to `reconfigure` so that an older configuration can
    /// never overtake a newer one (reload vs. health probe).
    reconfigure: Mutex<()>,
    /// Config loaded, speaker started, admin bound, not shutting down.
    ready: AtomicBool,
    /// Clients from the datastore (`clients.rs`), merged into every apply,
    /// and what `/status` shows of them.
    clients: std::sync::Mutex<(Vec<PeerConfig>, Option<ClientsStatus>)>,
}

// ===== impl Applied =====

impl Applied {
    /// The running configuration, stamped now.
    pub fn new(rr: RrConfig, speaker: SpeakerConfig) -> Applied {
        Applied {
            rr,
            speaker,
            applied_unix: unix_now(),
        }
    }
}

// ===== impl Shared =====

impl Shared {
    /// State for a speaker started with `applied`.
    pub fn new(
        handle: SpeakerHandle,
        config_path: PathBuf,
        restarting: bool,
        applied: Applied,
    ) -> Shared {
        let metrics = Metrics::new(handle.watch_status());
        Shared {
            handle,
            metrics,
            config_path,
            restarting,
            applied: watch::Sender::new(Arc::new(applied)),
            reconfigure: Mutex::new(()),
            ready: AtomicBool::new(false),
            clients: std::sync::Mutex::new((Vec::new(), None)),
        }
    }

    /// The running configuration.
    pub fn applied(&self) -> Arc<Applied> {
        self.applied.borrow().clone()
    }

    /// A receiver that wakes when the running configuration changes.
    pub fn watch_applied(&self) -> watch::Receiver<Arc<Applied>> {
        self.applied.subscribe()
    }

    /// Hands a new configuration to the speaker and, if it takes it, makes
    /// it the running one.
    pub async fn apply(&self, rr: RrConfig) -> Result<(), bgp_speaker::Error> {
        let _turn = self.reconfigure.lock().await;
        let mut speaker = to_speaker_config(&rr, self.restarting);
        let clients = self.clients.lock().map(|c| c.0.clone()).unwrap_or_default();
        merge_clients(&mut speaker, clients);
        if speaker != self.applied().speaker {
            self.handle.reconfigure(speaker.clone()).await?;
        }
        self.applied
            .send_replace(Arc::new(Applied::new(rr, speaker)));
        Ok(())
    }

    /// Replaces the clients from the datastore and applies the running
    /// file with them. A speaker that refuses keeps what it runs (logged).
    pub async fn set_clients(&self, peers: Vec<PeerConfig>, status: Option<ClientsStatus>) {
        let changed = match self.clients.lock() {
            Ok(mut c) => {
                let changed = c.0 != peers;
                *c = (peers, status);
                changed
            }
            Err(_) => false,
        };
        if changed {
            let rr = self.applied().rr.clone();
            if let Err(e) = self.apply(rr).await {
                tracing::error!(error = %e, "the speaker refused the clients from the datastore");
            }
        }
    }

    /// What `/status` shows of the datastore clients.
    pub fn clients_status(&self) -> Option<ClientsStatus> {
        self.clients.lock().ok().and_then(|c| c.1.clone())
    }

    /// Checks that the speaker task answers: its status channel is open and
    /// a round trip to the speaker task (`SpeakerHandle::ping`) completes
    /// within [`PING_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), String> {
        match tokio::time::timeout(PING_TIMEOUT, self.handle.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the BGP speaker task has stopped: {e}")),
            Err(_) => Err(format!(
                "the BGP speaker task did not answer within {} s",
                PING_TIMEOUT.as_secs()
            )),
        }
    }

    /// Marks the process ready or not (see `/readyz`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Why the process is not ready, or `Ok`.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.ready.load(Ordering::SeqCst) {
            return Err("not ready: starting or shutting down".into());
        }
        if self.handle.watch_status().has_changed().is_err() {
            return Err("not ready: the BGP speaker has stopped".into());
        }
        Ok(())
    }
}

// ===== helpers =====

/// Adds the datastore clients to `speaker`; a static peer of the file keeps
/// its own settings for its address.
pub fn merge_clients(speaker: &mut SpeakerConfig, clients: Vec<PeerConfig>) {
    for c in clients {
        if !speaker.peers.iter().any(|p| p.address == c.address) {
            speaker.peers.push(c);
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
