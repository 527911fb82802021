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
//! from the whole picture ([`peers::plan`], [`routes::originated`],
//! [`routes::desired`]) and hands on only what differs. When only learned
//! best paths changed, felix gets just those prefixes' changes
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
use tortie_datastore::kube::services::{follow_services, ServiceEvent};
use tortie_datastore::{AnyStore, Rejected};
use tracing::{debug, info, warn};

use crate::cluster::{Cluster, WATCHED};
use crate::housekeeping::Housekeeping;
use crate::object_status;
use crate::peers::{self, LocalBgp, PeerPlan, Problem};
use crate::register::{self, Tunnel};
use crate::routes::{self, Underlay};
use crate::services;
use crate::status::{DataplaneView, DatastoreView, NodeStatus, PeerView, Phase};

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

    /// A Services follower report: our routes are recomputed when it can
    /// change them (not felix's state, not the peers). On trouble the
    /// last known Services stand.
    fn on_services(&mut self, event: ServiceEvent) {
        if self.services_follower.is_none() {
            return; // a report sent before the follower was stopped
        }
        if let ServiceEvent::Trouble(error) = event {
            self.other_problems.insert(
                "services",
                format!("services: {error}; service routes stay as they were"),
            );
            return;
        }
        let recovered = self.other_problems.remove("services").is_some();
        if self.cluster.services.apply(event, &self.cfg.name) || recovered {
            self.dirty.local = true;
        }
    }

    /// Starts the Services follower when there are service ranges to
    /// announce on the Kubernetes datastore, and stops it (forgetting the
    /// Services) when there are none.
    fn follow_services(&mut self) {
        let AnyStore::Kube(store) = &self.cfg.store else {
            return;
        };
        let wanted = !services::ranges(&self.cluster).0.is_empty();
        match (&self.services_follower, wanted) {
            (None, true) => {
                info!("services: following Services and Endpoints (service ranges are set)");
                self.services_follower = Some(follow_services(store.clone(), self.tx.clone()));
            }
            (Some(task), false) => {
                info!("services: no service ranges; Services no longer followed");
                task.abort();
                self.services_follower = None;
                self.cluster.services = services::ServiceView::default();
                self.other_problems.remove("services");
            }
            _ => {}
        }
    }

    fn on_store(&mut self, event: Follow) {
        match event {
            Follow::Listed {
                kind,
                items,
                rejected,
            } => {
                if rejected.is_empty() {
                    self.rejected.remove(&kind);
                } else {
                    self.rejected.insert(kind, rejected);
                }
                self.churn += items.len() as u64 + 1;
                self.churn_busy = true;
                self.cluster.replace_kind(kind, items);
                if self.listed.insert(kind) {
                    info!(%kind, "datastore: listed");
                }
                self.trouble.remove(&kind);
            }
            Follow::Changed(ev) => {
                let ev = *ev;
                self.churn += 1;
                self.churn_busy = true;
                let concerns = self.cluster.concerns(
                    &self.cfg.name,
                    ev.key.kind,
                    &ev.key.name,
                    ev.resource.as_ref(),
                );
                debug!(kind = %ev.key.kind, name = %ev.key.name, deleted = ev.resource.is_none(), concerns, "datastore: changed");
                // A rejected record rewritten or deleted: no longer wrong.
                if let Some(r) = self.rejected.get_mut(&ev.key.kind) {
                    r.retain(|r| r.name != ev.key.name);
                }
                match ev.resource {
                    Some(r) => self.cluster.upsert(r),
                    None => self.cluster.remove(ev.key.kind, &ev.key.name),
                }
                let recovered = self.trouble.remove(&ev.key.kind).is_some();
                // Another node's block or pod: kept (for /status and
                // explain), nothing to recompute.
                if !concerns && !recovered {
                    return;
                }
                // Ours: our routes and felix's state, not the peers.
                if !recovered && matches!(ev.key.kind, Kind::Block | Kind::WorkloadEndpoint) {
                    self.dirty.local = true;
                    return;
                }
            }
            Follow::Trouble { kind, error } => {
                self.trouble.insert(kind, error);
            }
            Follow::Probe(result) => {
                let was = self.unreachable.take();
                match result {
                    Ok(()) => {
                        if was.is_some() {
                            info!("datastore: reachable again");
                        }
                    }
                    Err(e) => {
                        if was.is_none() {
                            warn!(error = %e, "datastore unreachable; routes are kept as they are");
                        }
                        self.unreachable = Some(e);
                    }
                }
                if was.is_some() != self.unreachable.is_some() {
                    self.publish();
                }
                return;
            }
        }
        self.schedule();
    }

    fn on_best_paths(&mut self, changes: Vec<BestPathChange>) {
        debug!(changes = changes.len(), "best paths changed");
        for c in changes {
            self.learned_dirty.insert(c.prefix);
            match c.best.filter(|b| b.peer.is_some()) {
                Some(best) => {
                    self.learned.insert(c.prefix, best.attrs.next_hop.addr());
                }
                None => {
                    self.learned.remove(&c.prefix);
                }
            }
        }
        self.dirty.learned = true;
    }

    fn on_speaker_status(&mut self) {
        let Some(s) = &self.speaker else { return };
        let status = s.status.borrow().clone();
        let deferring = status.deferring;
        self.bgp.send_replace(status);
        if deferring != self.deferring {
            // The end of the restart deferral opens felix's gate.
            self.deferring = deferring;
            self.schedule();
        } else if !same_states(&self.published_states, &self.bgp.borrow()) {
            // A session went up or down. (Counters alone, which change
            // with every UPDATE, wait to be asked for: the status joins
            // every peer, work per peer for every learned route.)
            self.publish();
        }
    }

    fn on_tunnel_allocated(&mut self, tunnel: Tunnel, result: Result<IpAddr, String>) {
        self.allocating.remove(&(tunnel as u8));
        match result {
            Ok(addr) => {
                info!(?tunnel, %addr, "tunnel address allocated");
                self.other_problems.remove(tunnel_problem_key(tunnel));
            }
            Err(e) => {
                self.other_problems.insert(
                    tunnel_problem_key(tunnel),
                    format!("{tunnel:?} tunnel address: {e}"),
                );
            }
        }
        self.schedule();
    }

    async fn on_tick(&mut self) {
        let synced = self.synced();
        let me = self.cluster.facts(&self.cfg.name);
        let known = self.cluster.interfaces_of(&self.cfg.name);
        let established = self.established();
        let report = self
            .cfg
            .housekeeping
            .tick(
                synced && !self.trouble.contains_key(&Kind::WorkloadEndpoint),
                &known,
                me.as_ref(),
                &self.cluster,
                &established,
            )
            .await;
        for (key, problem) in report {
            match problem {
                Some(p) => {
                    self.other_problems.insert(key, p);
                }
                None => {
                    self.other_problems.remove(key);
                }
            }
        }
        self.ticks += 1;
        if !std::mem::take(&mut self.churn_busy) && self.churn >= TRIM_AFTER {
            self.churn = 0;
            tokio::task::spawn_blocking(bgp_speaker::give_back_memory);
        }
        if synced && (self.speaker.is_none() || self.ticks % RECHECK_TICKS == 0) {
            // Retry a speaker that failed to start; pick up changed
            // password files (they are read at each recompute).
            self.schedule();
        }
        self.publish();
    }

    fn schedule(&mut self) {
        self.dirty.all = true;
    }

    fn synced(&self) -> bool {
        WATCHED.iter().all(|k| self.listed.contains(k))
    }

    /// Recomputes the speaker configuration, the originated routes and
    /// felix's desired state, and hands on what changed.
    /// `all`: the peers too (else only the node's own blocks or endpoints
    /// changed, and the last plan stands).
    async fn recompute(&mut self, all: bool) {
        if !self.synced() {
            self.publish();
            return;
        }
        let mut problems: Vec<String> = Vec::new();
        let Some(me) = self.cluster.facts(&self.cfg.name) else {
            problems.push(format!(
                "Node/{}: missing from the datastore (deleted?): restart tortie-node to register again; \
                 routes are kept as they are",
                self.cfg.name
            ));
            self.problems = problems;
            self.publish();
            return;
        };
        self.follow_services();
        let mut found: Vec<Problem> = Vec::new();
        // 1. The speaker.
        if all || self.speaker.is_none() || self.plan.is_none() {
            self.replan(&me, &mut found).await;
        } else if let Some(last) = &self.plan {
            // Only our blocks or endpoints changed: the last plan stands.
            found.extend(last.problems.iter().cloned());
        }
        // 2. What we announce (pool aggregates only for a router that
        // asks for them).
        let aggregates = self
            .plan
            .as_ref()
            .is_some_and(|p| p.config.peers.iter().any(|c| c.export_aggregates_only));
        let (originated, route_problems) = routes::originated(&self.cluster, &me, aggregates);
        found.extend(route_problems);
        problems.extend(found.iter().map(ToString::to_string));
        self.resource_problems = found;
        if let Some(running) = &self.speaker {
            let announce: Vec<LocalRoute> = originated
                .iter()
                .filter(|(p, r)| self.originated.get(*p) != Some(*r))
                .map(|(_, r)| r.clone())
                .collect();
            let withdraw: Vec<IpNet> = self
                .originated
                .keys()
                .filter(|p| !originated.contains_key(*p))
                .copied()
                .collect();
            if !announce.is_empty() || !withdraw.is_empty() {
                debug!(
                    announce = announce.len(),
                    withdraw = withdraw.len(),
                    "originated routes changed"
                );
            }
            let mut ok = true;
            if !announce.is_empty() {
                ok &= running.handle.originate(announce).await.is_ok();
            }
            if !withdraw.is_empty() {
                ok &= running.handle.withdraw(withdraw).await.is_ok();
            }
            if ok {
                self.originated = originated;
            }
        }
        // 3. felix, once the picture is complete.
        self.update_dataplane(&me).await;
        // 4. Tunnel addresses the pools ask for.
        self.allocate_tunnels(&me);
        for p in problems.iter().filter(|p| !self.problems.contains(p)) {
            warn!(problem = %p, "configuration");
        }
        self.problems = problems;
        self.publish();
    }

    /// Plans the peers from the cluster and starts or reconfigures the
    /// speaker with the plan; its problems go to `problems`.
    async fn replan(&mut self, me: &crate::cluster::NodeFacts, problems: &mut Vec<Problem>) {
        let dir = self.cfg.secrets_dir.clone();
        let secrets =
            move |s: &tortie_config::resources::PasswordSource| peers::read_password(&dir, s);
        let plan = peers::plan(&self.cluster, me, &self.cfg.local_bgp, &secrets);
        problems.extend(plan.problems.iter().cloned());
        match &self.speaker {
            None => match bgp_speaker::start(plan.config.clone()).await {
                Ok((handle, best)) => {
                    info!(router_id = %plan.config.router_id, asn = plan.config.asn, peers = plan.config.peers.len(), "BGP speaker started");
                    let status = handle.watch_status();
                    self.speaker_handle.send_replace(Some(handle.clone()));
                    self.speaker = Some(Running { handle, status });
                    self.best = Some(best);
                    self.plan = Some(plan);
                    self.other_problems.remove("speaker");
                }
                Err(e) => {
                    self.other_problems
                        .insert("speaker", format!("BGP speaker cannot start: {e}"));
                }
            },
            Some(running) => {
                if self.plan.as_ref().map(|p| &p.config) != Some(&plan.config) {
                    match running.handle.reconfigure(plan.config.clone()).await {
                        Ok(()) => {
                            info!(peers = plan.config.peers.len(), "BGP configuration applied");
                            self.other_problems.remove("speaker");
                            self.plan = Some(plan);
                        }
                        Err(e) => {
                            self.other_problems.insert(
                                "speaker",
                                format!("BGP speaker rejected the new configuration (the previous one runs on): {e}"),
                            );
                        }
                    }
                } else {
                    self.plan = Some(plan);
                }
            }
        }
    }

    /// After best-path changes alone: felix gets the changed prefixes'
    /// learned routes (the speaker's configuration and our routes cannot
    /// have changed).
    async fn refresh_dataplane(&mut self) {
        if self.gate_open() {
            if let Some(base) = &mut self.base {
                let mut changes = Vec::new();
                for prefix in std::mem::take(&mut self.learned_dirty) {
                    let hop = routes::learned_route(&self.cluster, &self.learned, &prefix);
                    let had = base
                        .learned
                        .binary_search_by_key(&prefix, |l| l.prefix)
                        .ok()
                        .map(|i| base.learned[i].next_hop);
                    if had != hop {
                        changes.push((prefix, hop));
                    }
                }
                if changes.is_empty() {
                    return;
                }
                // Shared with desired_out until the first change after a
                // publish: copied once then.
                let state = Arc::make_mut(base);
                for (prefix, hop) in &changes {
                    state.set_learned(*prefix, *hop);
                }
                self.desired_stale = true;
                match self.cfg.felix.update_learned(changes).await {
                    Ok(generation) => self.sent = generation,
                    Err(e) => {
                        self.other_problems
                            .insert("felix", format!("dataplane: {e}"));
                    }
                }
                return;
            }
        }
        let me = match self.synced() {
            true => self.cluster.facts(&self.cfg.name),
            false => None,
        };
        match me {
            Some(me) => {
                // Counters only: published when asked, or at the tick.
                self.update_dataplane(&me).await;
            }
            // Not ready: the full path says why.
            None => self.recompute(true).await,
        }
    }

    /// Hands felix the desired state when it changed, once the picture
    /// is complete.
    async fn update_dataplane(&mut self, me: &crate::cluster::NodeFacts) {
        // Whatever the outcome, every learned route is in what follows.
        self.learned_dirty.clear();
        if !self.gate_open() {
            self.base = None;
            return;
        }
        let desired = routes::desired(&self.cluster, me, &self.cfg.underlay, &self.learned);
        if self.base.as_deref() == Some(&desired) {
            return;
        }
        let desired = Arc::new(desired);
        self.base = Some(desired.clone());
        self.hand_to_felix(desired).await;
    }

    /// Hands `desired` to felix.
    async fn hand_to_felix(&mut self, desired: Arc<DesiredState>) {
        if self.desired_out.borrow().is_none() {
            info!("dataplane: first desired state (routes of a previous run are adopted)");
        }
        match self.cfg.felix.set_desired(desired.clone()).await {
            Ok(generation) => {
                self.sent = generation;
                // Shared with felix; `/routes` reads it too.
                self.desired_out.send_replace(Some(desired));
                self.desired_stale = false;
            }
            Err(e) => {
                self.other_problems
                    .insert("felix", format!("dataplane: {e}"));
            }
        }
    }

    /// Whether felix may get the desired state: everything listed, the
    /// speaker running and not deferring after a restart.
    fn gate_open(&self) -> bool {
        self.synced()
            && self
                .speaker
                .as_ref()
                .is_some_and(|s| !s.status.borrow().deferring)
    }

    fn allocate_tunnels(&mut self, me: &crate::cluster::NodeFacts) {
        let pools: Vec<_> = self.cluster.pools.values().collect();
        for (tunnel, names) in register::tunnels_needed(&pools, &me.labels) {
            let have = match tunnel {
                Tunnel::Vxlan => me.vxlan_v4,
                Tunnel::Ipip => me.ipip_v4,
            };
            if have.is_some() || !self.allocating.insert(tunnel as u8) {
                continue;
            }
            let store = self.cfg.store.clone();
            let name = self.cfg.name.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let result = register::tunnel_address(&store, &name, tunnel, names).await;
                let _ = tx.send(Input::TunnelAllocated(tunnel, result)).await;
            });
        }
    }

    fn established(&self) -> Vec<IpAddr> {
        self.speaker
            .as_ref()
            .map(|s| {
                s.status
                    .borrow()
                    .peers
                    .iter()
                    .filter(|p| p.state == bgp_speaker::SessionState::Established)
                    .map(|p| p.address)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The datastore's current errors, one line per distinct error naming
    /// the kinds it hits (`datastore: BGPPeer, IPPool: resources.yaml:7:
    /// ...`), and whether it answers at all.
    fn datastore_errors(&self) -> Vec<String> {
        let mut by_error: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (k, e) in &self.trouble {
            by_error.entry(e.as_str()).or_default().push(k.to_string());
        }
        let mut out: Vec<String> = by_error
            .into_iter()
            .map(|(e, kinds)| format!("datastore: {}: {e}", kinds.join(", ")))
            .collect();
        for (kind, records) in &self.rejected {
            for r in records {
                out.push(format!(
                    "datastore: {kind}/{} left out (the others apply): {}",
                    r.name, r.error
                ));
            }
        }
        if let Some(e) = &self.unreachable {
            out.push(format!(
                "datastore: unreachable ({}): {e}; routes are kept as they are",
                self.cfg.location
            ));
        }
        out
    }

    /// Rebuilds and publishes the snapshot (and the desired state, for
    /// `/routes`, if it changed).
    fn publish(&mut self) {
        if std::mem::take(&mut self.desired_stale) {
            self.desired_out.send_replace(self.base.clone());
        }
        let speaker = self
            .speaker
            .as_ref()
            .map(|s| s.status.borrow().clone())
            .unwrap_or_default();
        self.published_states = states(&speaker);
        let felix = self.cfg.felix.status();
        let phase = if !self.synced() {
            Phase::WaitingForDatastore
        } else if self.speaker.is_none() {
            Phase::StartingBgp
        } else if !self.gate_open() {
            Phase::WaitingForPeers
        } else {
            Phase::Running
        };
        let mut problems = self.problems.clone();
        problems.extend(self.other_problems.values().cloned());
        problems.extend(self.datastore_errors());
        let status = NodeStatus {
            node: self.cfg.name.clone(),
            address: Some(self.cfg.underlay.address),
            interface: self.cfg.underlay.interface.clone(),
            phase,
            restarting: self.cfg.local_bgp.restarting,
            as_number: self.plan.as_ref().map(|p| p.config.asn),
            router_id: self.plan.as_ref().map(|p| p.config.router_id),
            cluster_id: self.plan.as_ref().and_then(|p| p.config.cluster_id),
            datastore: DatastoreView {
                location: self.cfg.location.clone(),
                synced: self.synced(),
                errors: self.datastore_errors(),
            },
            peers: self
                .plan
                .as_ref()
                .map(|p| PeerView::join(&p.sources, &speaker))
                .unwrap_or_default(),
            originated: self.originated.keys().copied().collect(),
            learned: self.base.as_ref().map_or(0, |d| d.learned.len()),
            dataplane: DataplaneView {
                sent: self.sent,
                applied: felix.applied,
                routes: felix.last_pass.as_ref().map_or(0, |p| p.desired),
                failures: felix
                    .last_pass
                    .as_ref()
                    .map(|p| p.failures.clone())
                    .unwrap_or_default(),
                warnings: felix.warnings.clone(),
            },
            problems,
            by_object: object_status::by_object(&self.resource_problems, &self.rejected),
        };
        self.status.send_if_modified(|old| {
            if **old == status {
                false
            } else {
                *old = Arc::new(status);
                true
            }
        });
    }
}

// ===== helpers =====

/// Each peer's session state.
fn states(s: &SpeakerStatus) -> Vec<(IpAddr, bgp_speaker::SessionState)> {
    s.peers.iter().map(|p| (p.address, p.state)).collect()
}

/// Whether `s` has the peers and session states of `published`.
fn same_states(published: &[(IpAddr, bgp_speaker::SessionState)], s: &SpeakerStatus) -> bool {
    published.len() == s.peers.len()
        && published
            .iter()
            .zip(&s.peers)
            .all(|(a, p)| a.0 == p.address && a.1 == p.state)
}

fn tunnel_problem_key(t: Tunnel) -> &'static str {
    match t {
        Tunnel::Vxlan => "vxlan-address",
        Tunnel::Ipip => "ipip-address",
    }
}

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
