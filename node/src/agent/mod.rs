//! The owner task: the one place where the datastore, the BGP speaker and
//! felix meet.
//!
//! ```text
//!  watchers (one per kind) ──Input::Store──▶ ┌──────────────┐ ──reconfigure/originate──▶ speaker
//!  speaker best paths ────────────────────▶  │  agent task  │ ──set_desired────────────▶ felix
//!  speaker status (deferral) ─────────────▶  │ (owns state) │ ──watch──▶ NodeStatus (/status, /metrics)
//!  Services + Endpoints (Kubernetes) ─────▶  │              │
//!  status requests (/status, /metrics) ───▶  │              │
//!  tick (1 s): GC, tunl0, marker ─────────▶  └──────────────┘
//! ```
//!
//! Every change marks the state dirty. Before acting, the task takes every
//! input already queued (a burst of datastore events or UPDATEs becomes
//! one recompute, with no timer on the path), then recomputes both outputs
//! from the whole picture ([`peers::plan`](crate::peers::plan),
//! [`routes::originated`](crate::routes::originated),
//! [`routes::desired`](crate::routes::desired)) and hands on only what
//! differs. When only learned best paths changed, felix gets just those
//! prefixes' changes
//! (`update_learned`), and recomputes just their routes. felix
//! gets its first desired state only once every kind is listed and the
//! speaker has stopped deferring (after a restart: the peers'
//! End-of-RIB), so routes a previous run left stay until the new picture
//! is complete.
//!
//! Services and Endpoints are followed only on the Kubernetes datastore
//! and only while the BGPConfiguration `default` has service ranges; they
//! change the routes the node announces, never felix's state, and felix's
//! gate does not wait for them (the ranges are announced from the start,
//! a service's own addresses once its Service is seen).
//!
//! # Layout
//!
//! - `mod.rs` (this file): the inputs, the state, the main loop (wait,
//!   drain what is queued, recompute) and the one dispatch.
//! - `inputs`: one handler per input: datastore followers, the Services
//!   follower, best paths, the speaker's status, tunnel allocations and
//!   the tick.
//! - `recompute`: the picture to the outputs: the speaker's
//!   configuration and originated routes, felix's desired state (and its
//!   gate), tunnel address allocations.
//! - `publish`: the [`NodeStatus`] snapshot (`/status`, `/metrics`).

mod inputs;
mod publish;
mod recompute;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bgp_speaker::{BestPathChange, LocalRoute, SpeakerHandle, Status as SpeakerStatus};
use felix::desired::DesiredState;
use felix::reconciler::ReconcilerHandle;
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch};
use tortie_config::resources::Kind;
use tortie_datastore::follow::Follow;
use tortie_datastore::kube::services::ServiceEvent;
use tortie_datastore::{AnyStore, Rejected};
use tracing::debug;

use crate::cluster::{Cluster, WATCHED};
use crate::housekeeping::Housekeeping;
use crate::peers::{LocalBgp, PeerPlan, Problem};
use crate::register::Tunnel;
use crate::routes::Underlay;
use crate::status::{LearnedPath, NodeStatus};

/// Every this many ticks (seconds) everything is recomputed even without a
/// change: password files are read again.
const RECHECK_TICKS: u64 = 10;

/// At most this many queued inputs are taken before a recompute (a
/// never-ending stream of inputs still gets recomputes).
const DRAIN_MAX: usize = 1024;

/// Datastore objects received (listed or changed) after which a quiet
/// second gives free heap pages back to the kernel: a listing parses the
/// whole datastore, and the allocator would keep that peak for good.
const TRIM_AFTER: u64 = 100;
/// Status requests waiting for the agent.
const REFRESH_QUEUE: usize = 16;
/// How long a status request waits for the speaker's fresh counters
/// (less than the admin server waits for the agent).
const SPEAKER_STATUS_WAIT: Duration = Duration::from_millis(200);

/// Everything the agent task accepts.
#[derive(Debug)]
pub enum Input {
    /// From a datastore follower or the probe.
    Store(Follow),
    /// A tunnel address allocation finished.
    TunnelAllocated(Tunnel, Result<IpAddr, String>),
    /// From the Services follower.
    Services(ServiceEvent),
}

/// What the agent needs to start.
pub struct AgentConfig {
    pub name: String,
    pub underlay: Underlay,
    pub store: AnyStore,
    pub location: String,
    pub local_bgp: LocalBgp,
    /// BGPPeer passwords by `secretKeyRef`: `<dir>/<name>/<key>`.
    pub secrets_dir: std::path::PathBuf,
    pub felix: ReconcilerHandle,
    pub housekeeping: Housekeeping,
}

/// The watches the agent publishes on, made before it starts (the admin
/// server reports the start-up through them).
pub struct Channels {
    pub status: watch::Sender<Arc<NodeStatus>>,
    pub status_rx: watch::Receiver<Arc<NodeStatus>>,
    /// The speaker's own status (for the BGP metrics).
    pub bgp: watch::Sender<Arc<SpeakerStatus>>,
    pub bgp_rx: watch::Receiver<Arc<SpeakerStatus>>,
    /// The speaker, once started (for shutdown and health).
    pub speaker: watch::Sender<Option<SpeakerHandle>>,
    pub speaker_rx: watch::Receiver<Option<SpeakerHandle>>,
    /// The last desired state handed to felix (for `/routes`).
    pub desired: watch::Sender<Option<Arc<DesiredState>>>,
    pub desired_rx: watch::Receiver<Option<Arc<DesiredState>>>,
    /// Requests for a fresh status (`/status`, `/metrics`): the agent
    /// publishes, then answers.
    pub refresh: mpsc::Sender<oneshot::Sender<()>>,
    pub refresh_rx: mpsc::Receiver<oneshot::Sender<()>>,
}

/// What the rest of the process keeps of a running agent.
pub struct Outputs {
    /// The speaker, once started.
    pub speaker: watch::Receiver<Option<SpeakerHandle>>,
}

/// The agent's state.
struct Agent {
    cfg: AgentConfig,
    cluster: Cluster,
    /// Kinds listed at least once.
    listed: BTreeSet<Kind>,
    /// Current datastore errors by kind.
    trouble: BTreeMap<Kind, String>,
    /// Records the last listing of each kind left out (unreadable), until
    /// their key changes.
    rejected: BTreeMap<Kind, Vec<Rejected>>,
    /// The reachability probe's error, while the store does not answer.
    unreachable: Option<String>,
    /// Best paths learned from peers: prefix -> next hop.
    learned: BTreeMap<IpNet, IpAddr>,
    /// The same with the peer each came from, for the published status
    /// (`CalicoNodeStatus` routes): shared with the last published one,
    /// copied on the first change after it.
    best_paths: Arc<BTreeMap<IpNet, LearnedPath>>,
    /// Prefixes whose best path changed since felix last heard of them.
    learned_dirty: BTreeSet<IpNet>,
    speaker: Option<Running>,
    /// The speaker's best-path changes (apart from `speaker`: both are
    /// awaited in one select).
    best: Option<mpsc::Receiver<Vec<BestPathChange>>>,
    /// The speaker's last `deferring`.
    deferring: bool,
    plan: Option<PeerPlan>,
    originated: BTreeMap<IpNet, LocalRoute>,
    sent: u64,
    /// Problems of the last recompute, and others kept until they clear.
    problems: Vec<String>,
    other_problems: BTreeMap<&'static str, String>,
    /// The problems of the last recompute about resources, as values (for
    /// the objects' statuses).
    resource_problems: Vec<Problem>,
    /// Tunnel address allocations in flight.
    allocating: BTreeSet<TunnelKey>,
    /// The Services follower, while service ranges are set (Kubernetes
    /// datastore only).
    services_follower: Option<tokio::task::JoinHandle<()>>,
    /// What changed since the last recompute.
    dirty: Dirty,
    /// Ticks since start.
    ticks: u64,
    /// Datastore objects received since memory was last given back, and
    /// whether any came during this tick.
    churn: u64,
    churn_busy: bool,
    tx: mpsc::Sender<Input>,
    status: watch::Sender<Arc<NodeStatus>>,
    bgp: watch::Sender<Arc<SpeakerStatus>>,
    speaker_handle: watch::Sender<Option<SpeakerHandle>>,
    desired_out: watch::Sender<Option<Arc<DesiredState>>>,
    /// The desired state felix has (None while felix's gate is closed):
    /// computed whole from the cluster, with the learned-route changes
    /// since applied (nothing else in it depends on best paths).
    base: Option<Arc<DesiredState>>,
    /// `base` changed since `desired_out` was last given it: published
    /// with the status (a copy for `/routes` per change would be work per
    /// node for every learned route).
    desired_stale: bool,
    /// The peers' session states in the last published status: a change
    /// of one is published at once, a change of counters only when asked
    /// or at the next tick.
    published_states: Vec<(IpAddr, bgp_speaker::SessionState)>,
}

/// A running speaker: its handle, best paths and status.
struct Running {
    handle: SpeakerHandle,
    status: watch::Receiver<Arc<SpeakerStatus>>,
}

type TunnelKey = u8;

/// What a recompute has to look at.
#[derive(Clone, Copy, Debug, Default)]
struct Dirty {
    /// The datastore, the speaker's state or a tunnel changed: everything.
    all: bool,
    /// Only the node's own blocks or endpoints changed: the routes it
    /// announces and felix's desired state, not the peers (the plan
    /// reads neither).
    local: bool,
    /// Only learned best paths changed: felix's desired state.
    learned: bool,
}

/// Starts the agent task. `rx` is where the watchers (and the agent's own
/// tasks, through `tx`) send.
pub fn spawn(
    cfg: AgentConfig,
    ch: Channels,
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
) -> Outputs {
    let outputs = Outputs {
        speaker: ch.speaker_rx.clone(),
    };
    let agent = Agent {
        cfg,
        cluster: Cluster::default(),
        listed: BTreeSet::new(),
        trouble: BTreeMap::new(),
        rejected: BTreeMap::new(),
        unreachable: None,
        learned: BTreeMap::new(),
        best_paths: Arc::default(),
        learned_dirty: BTreeSet::new(),
        speaker: None,
        best: None,
        deferring: false,
        plan: None,
        originated: BTreeMap::new(),
        sent: 0,
        problems: Vec::new(),
        other_problems: BTreeMap::new(),
        resource_problems: Vec::new(),
        allocating: BTreeSet::new(),
        services_follower: None,
        dirty: Dirty::default(),
        ticks: 0,
        churn: 0,
        churn_busy: false,
        tx,
        status: ch.status,
        bgp: ch.bgp,
        speaker_handle: ch.speaker,
        desired_out: ch.desired,
        base: None,
        desired_stale: false,
        published_states: Vec::new(),
    };
    tokio::spawn(agent.run(rx, ch.refresh_rx));
    outputs
}

// ===== impl Channels =====

impl Channels {
    /// Fresh watches, the status starting at `initial`.
    pub fn new(initial: NodeStatus) -> Channels {
        let (status, status_rx) = watch::channel(Arc::new(initial));
        let (bgp, bgp_rx) = watch::channel(Arc::new(SpeakerStatus::default()));
        let (speaker, speaker_rx) = watch::channel(None);
        let (desired, desired_rx) = watch::channel(None);
        let (refresh, refresh_rx) = mpsc::channel(REFRESH_QUEUE);
        Channels {
            status,
            status_rx,
            bgp,
            bgp_rx,
            speaker,
            speaker_rx,
            desired,
            desired_rx,
            refresh,
            refresh_rx,
        }
    }
}

impl From<Follow> for Input {
    fn from(f: Follow) -> Input {
        Input::Store(f)
    }
}

impl From<ServiceEvent> for Input {
    fn from(e: ServiceEvent) -> Input {
        Input::Services(e)
    }
}

// ===== impl Agent =====

impl Agent {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Input>,
        mut refresh: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            if self.dirty.all || self.dirty.local || self.dirty.learned {
                self.drain(&mut rx);
                let dirty = std::mem::take(&mut self.dirty);
                let started = std::time::Instant::now();
                if dirty.all || dirty.local {
                    self.recompute(dirty.all).await;
                } else {
                    self.refresh_dataplane().await;
                }
                debug!(?dirty, took = ?started.elapsed(), "recomputed");
                continue;
            }
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => self.dispatch(input),
                    None => return,
                },
                Some(changes) = next_best(&mut self.best) => self.on_best_paths(changes),
                Some(()) = speaker_changed(&mut self.speaker) => self.on_speaker_status(),
                Some(reply) = refresh.recv() => {
                    // The speaker's counters as they are now, too; not
                    // waited for long (a speaker blocked on a full
                    // best-path channel waits for this task).
                    if let Some(s) = &self.speaker {
                        let fresh = s.handle.fresh_status();
                        if let Ok(Ok(status)) = tokio::time::timeout(SPEAKER_STATUS_WAIT, fresh).await {
                            self.bgp.send_replace(status);
                        }
                    }
                    self.publish();
                    let _ = reply.send(());
                }
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    /// Takes the inputs and best-path changes already queued (at most
    /// [`DRAIN_MAX`] of each), without waiting.
    fn drain(&mut self, rx: &mut mpsc::Receiver<Input>) {
        for _ in 0..DRAIN_MAX {
            match rx.try_recv() {
                Ok(input) => self.dispatch(input),
                Err(_) => break,
            }
        }
        let Some(mut best) = self.best.take() else {
            return;
        };
        for _ in 0..DRAIN_MAX {
            match best.try_recv() {
                Ok(changes) => self.on_best_paths(changes),
                Err(_) => break,
            }
        }
        self.best = Some(best);
    }

    /// The one dispatch of [`Input`]s.
    fn dispatch(&mut self, input: Input) {
        match input {
            Input::Store(event) => self.on_store(event),
            Input::TunnelAllocated(tunnel, result) => self.on_tunnel_allocated(tunnel, result),
            Input::Services(event) => self.on_services(event),
        }
    }

    fn schedule(&mut self) {
        self.dirty.all = true;
    }

    fn synced(&self) -> bool {
        WATCHED.iter().all(|k| self.listed.contains(k))
    }
}

// ===== helpers =====

async fn next_best(
    best: &mut Option<mpsc::Receiver<Vec<BestPathChange>>>,
) -> Option<Vec<BestPathChange>> {
    match best {
        Some(b) => b.recv().await,
        None => std::future::pending().await,
    }
}

async fn speaker_changed(speaker: &mut Option<Running>) -> Option<()> {
    match speaker {
        Some(s) => s.status.changed().await.ok(),
        None => std::future::pending().await,
    }
}
