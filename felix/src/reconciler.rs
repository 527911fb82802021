//! The route reconciler: coalesce events, dump, diff, apply.
//!
//! ```text
//!   ReconcilerHandle ──Input (bounded)──▶ ┌────────────────────┐
//!                                         │  reconciler task   │──Executor──▶ kernel (netns)
//!   kernel notifications ──KernelEvent──▶ │  (owns everything) │◀──dump───────┘
//!   (route v4/v6, link; in the netns)     └─────────┬──────────┘
//!                                                   └──watch──▶ Status
//! ```
//!
//! - A full pass reconciles all of our protocol: dump, [`diff`], apply.
//!   When the only news is that wanted routes were deleted (`ip route del`),
//!   a targeted pass re-adds just those, without a dump, so healing does not
//!   slow down with the table size. Passes are coalesced: an event schedules one pass `coalesce` later; more
//!   events before it runs join it.
//! - Triggers: a new desired state (applied as a delta without a dump when
//!   only routes changed and the kernel was in sync), a change of learned
//!   routes ([`ReconcilerHandle::update_learned`]: only their prefixes are
//!   recomputed, see [`crate::desired::update`]), [`ReconcilerHandle::resync`], the
//!   periodic resync (default 90 s), link and address changes (a workload
//!   interface's appearance re-adds its own routes without a dump; its
//!   removal and its addresses trigger nothing), lost notifications
//!   (socket overrun), and route notifications
//!   that disagree with the desired state (a human `ip route del` of one of
//!   ours comes back within one coalesce delay plus one pass). Echoes of our
//!   own writes agree with the desired state and are ignored.
//! - Failed routes are retried with exponential backoff (`retry_min` up to
//!   `retry_max`), and reported in [`Status`].
//! - Each full pass also holds the node's IP forwarding sysctls at 1 for
//!   the families it routes, unless `ip_forwarding` is off
//!   ([`crate::forwarding`]); what it could not set is in
//!   [`Status`]`::forwarding`.
//! - Adoption: until the first desired state arrives no pass runs, so the
//!   routes a previous run left are kept; the first pass then deletes only
//!   the ones that are still unwanted. Exiting leaves the routes in place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::desired::{compute, update, DesiredRoutes, DesiredState, LearnedChange, Pool};
use crate::diff::diff;
use crate::forwarding::Forwarding;
use crate::kernel::apply::{Executor, Request};
use crate::kernel::{self, dump, KernelError, KernelEvent, KernelEvents, Links};
use crate::route::{InstalledRoute, KernelRoute, RouteKind};
use crate::vxlan::VxlanWanted;
use crate::written::{LastWrite, WriteLog};

/// At most this many queued inputs are taken before a pass that is due.
const DRAIN_MAX: usize = 256;

pub use crate::pass::{PassReason, PassReport, Status};

/// Settings of the reconciler.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// Network namespace to program (`/run/netns/NAME`); `None` = ours.
    pub netns: Option<PathBuf>,
    /// Full resync period even when nothing happened.
    pub resync_interval: Duration,
    /// How long an event that needs a full pass (link, disagreeing route,
    /// changed tunnels or pools) waits for others before the pass runs. A
    /// pass that only applies a desired-state delta or re-adds a deleted
    /// route does not wait: it runs once the inputs already queued are
    /// taken.
    pub coalesce: Duration,
    /// First retry delay after a failed write.
    pub retry_min: Duration,
    /// Retry delay cap.
    pub retry_max: Duration,
    /// Hold `net.ipv4.ip_forward` / `net.ipv6.conf.all.forwarding` at 1
    /// for the families the node routes, checked on every full pass
    /// (FelixConfiguration `ipForwarding: Enabled`, the default; see
    /// [`crate::forwarding`]). `false` leaves them alone.
    pub ip_forwarding: bool,
}

/// What the reconciler task accepts.
#[derive(Debug)]
pub enum Input {
    /// A complete new desired state (replaces the previous one).
    Desired(Arc<DesiredState>),
    /// Changes of the learned routes of the last desired state (ignored,
    /// with a warning, before the first one).
    Learned(Vec<LearnedChange>),
    /// Run a full pass now.
    Resync,
    /// When felix last wrote each of these prefixes (`tortiectl explain`).
    LastWrites(Vec<IpNet>, oneshot::Sender<Vec<Option<LastWrite>>>),
}

/// Asks a running reconciler questions; cheap to clone (the admin server
/// holds one). Answered between passes.
#[derive(Debug, Clone)]
pub struct Queries {
    tx: mpsc::Sender<Input>,
}

/// Talks to a running reconciler. Dropping it stops the task (routes stay).
pub struct ReconcilerHandle {
    tx: mpsc::Sender<Input>,
    /// Desired states sent so far (the generation of the last one).
    sent: std::sync::atomic::AtomicU64,
    status: watch::Receiver<Status>,
    task: JoinHandle<()>,
}

/// The reconciler task has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the route reconciler has stopped")]
pub struct Stopped;

/// The reconciler task's state.
struct Reconciler {
    config: ReconcilerConfig,
    exec: Executor,
    events: Option<KernelEvents>,
    links: Links,
    /// The last desired state, with the learned changes since applied.
    state: Option<Arc<DesiredState>>,
    desired: Option<DesiredRoutes>,
    /// The VXLAN device and peers wanted, if any.
    vxlan: Vec<VxlanWanted>,
    /// The pools, for NAT outgoing.
    pools: Vec<Pool>,
    /// When the next pass is due, and why.
    due: Option<(Instant, PassReason)>,
    /// Whether the next pass must be a full one (dump + diff); if not, it
    /// only re-adds the routes in `healing`.
    full_pending: bool,
    /// Desired routes the kernel announced as deleted since the last pass.
    healing: BTreeSet<IpNet>,
    /// Route changes of the desired state since the last pass, to apply
    /// without a dump: per prefix the route before and after.
    delta: BTreeMap<IpNet, (Option<KernelRoute>, Option<KernelRoute>)>,
    /// Desired states received (generations).
    received: u64,
    /// The last full pass left the kernel as desired (no failures), so a
    /// desired-state change can be applied as a delta.
    in_sync: bool,
    backoff: Duration,
    status: watch::Sender<Status>,
    /// When each prefix was last written.
    written: WriteLog,
    /// The forwarding sysctls' check.
    forwarding: Forwarding,
}

/// Starts a reconciler on the kernel of `config.netns`. Must be called
/// inside a tokio runtime.
pub fn start(config: ReconcilerConfig) -> Result<ReconcilerHandle, KernelError> {
    let k = kernel::open(config.netns.as_deref())?;
    let (tx, rx) = mpsc::channel(16);
    let (status_tx, status) = watch::channel(Status {
        kernel_events: true,
        ..Status::default()
    });
    let backoff = config.retry_min;
    let forwarding = Forwarding::new(config.ip_forwarding);
    // Batched writes without per-request ACK (see kernel::apply).
    let exec = Executor::open(k.handle, config.netns.as_deref())?;
    let r = Reconciler {
        config,
        exec,
        events: Some(k.events),
        links: Links::default(),
        state: None,
        desired: None,
        vxlan: Vec::new(),
        pools: Vec::new(),
        due: None,
        full_pending: false,
        healing: BTreeSet::new(),
        delta: BTreeMap::new(),
        received: 0,
        in_sync: false,
        backoff,
        status: status_tx,
        written: WriteLog::default(),
        forwarding,
    };
    let task = tokio::spawn(r.run(rx));
    Ok(ReconcilerHandle {
        tx,
        sent: std::sync::atomic::AtomicU64::new(0),
        status,
        task,
    })
}

// ===== impl ReconcilerConfig =====

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            netns: None,
            resync_interval: Duration::from_secs(90),
            coalesce: Duration::from_millis(5),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            ip_forwarding: true,
        }
    }
}

// ===== impl ReconcilerHandle =====

impl ReconcilerHandle {
    /// Replaces the desired state. Errors only if the task has stopped.
    /// Returns the state's generation: once [`Status::applied`] reaches it,
    /// a pass has applied this state (or a later one).
    pub async fn set_desired(&self, state: impl Into<Arc<DesiredState>>) -> Result<u64, Stopped> {
        use std::sync::atomic::Ordering;
        self.send(Input::Desired(state.into())).await?;
        Ok(self.sent.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Changes the learned routes of the last desired state (a
    /// [`LearnedChange`] per prefix); only those prefixes are computed
    /// again. Returns the generation, as [`Self::set_desired`] does.
    pub async fn update_learned(&self, changes: Vec<LearnedChange>) -> Result<u64, Stopped> {
        use std::sync::atomic::Ordering;
        self.send(Input::Learned(changes)).await?;
        Ok(self.sent.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Asks for a full pass now.
    pub async fn resync(&self) -> Result<(), Stopped> {
        self.send(Input::Resync).await
    }

    /// A handle for questions ([`Queries`]).
    pub fn queries(&self) -> Queries {
        Queries {
            tx: self.tx.clone(),
        }
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Waits until `pred` holds for the status, at most `timeout`.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl FnMut(&Status) -> bool,
    ) -> Option<Status> {
        let fut = self.status.wait_for(pred);
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// Stops the task and waits for it. Kernel routes stay in place.
    pub async fn shutdown(self) {
        let ReconcilerHandle { tx, task, .. } = self;
        drop(tx);
        let _ = task.await;
    }

    async fn send(&self, input: Input) -> Result<(), Stopped> {
        self.tx.send(input).await.map_err(|_| Stopped)
    }
}

// ===== impl Queries =====

impl Queries {
    /// When felix last wrote each of `prefixes` (`None`: not since it
    /// started, or the record was dropped; see [`crate::written`]).
    pub async fn last_writes(
        &self,
        prefixes: Vec<IpNet>,
    ) -> Result<Vec<Option<LastWrite>>, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Input::LastWrites(prefixes, tx))
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }
}

// ===== impl Reconciler =====

impl Reconciler {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        let period = self.config.resync_interval;
        let mut resync = tokio::time::interval_at(Instant::now() + period, period);
        loop {
            let due = self.due.map(|(at, _)| at);
            if due.is_some_and(|at| at <= Instant::now()) {
                // Take the desired states already queued: a burst becomes
                // one pass.
                for _ in 0..DRAIN_MAX {
                    match rx.try_recv() {
                        Ok(input) => self.dispatch(input),
                        Err(_) => break,
                    }
                }
                self.pass().await;
                continue;
            }
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => self.dispatch(input),
                    None => break,
                },
                event = next_event(&mut self.events) => match event {
                    Some(event) => self.on_kernel_event(event),
                    None => {
                        warn!("kernel notifications ended: healing falls back to the periodic resync");
                        self.events = None;
                        self.status.send_modify(|s| s.kernel_events = false);
                    }
                },
                _ = sleep_until(due), if due.is_some() => self.pass().await,
                _ = resync.tick() => self.schedule(PassReason::Periodic, Duration::ZERO),
            }
        }
        debug!("route reconciler stopped; routes left in place");
    }

    /// The one dispatch of [`Input`]s.
    fn dispatch(&mut self, input: Input) {
        match input {
            Input::Desired(state) => self.on_desired(state),
            Input::Learned(changes) => self.on_learned(changes),
            Input::Resync => self.schedule(PassReason::OnDemand, Duration::ZERO),
            Input::LastWrites(prefixes, reply) => {
                let _ = reply.send(prefixes.iter().map(|p| self.written.get(p)).collect());
            }
        }
    }

    fn on_desired(&mut self, arc: Arc<DesiredState>) {
        self.received += 1;
        let state = &*arc;
        let routes = compute(state);
        let old = self
            .desired
            .as_ref()
            .map(|d| &d.warnings[..])
            .unwrap_or(&[]);
        for w in routes.warnings.iter().filter(|w| !old.contains(w)) {
            warn!(warning = %w, "desired state");
        }
        let warnings = routes.warnings.iter().map(ToString::to_string).collect();
        if self.desired.is_none() {
            info!(
                routes = routes.routes.len(),
                "first desired state: adopting routes of ours"
            );
        }
        let vxlan = crate::vxlan::wanted(state);
        // Only routes changed, and the kernel was in sync: apply just the
        // difference (cost follows the change, not the table).
        let delta_ok = self.in_sync
            && !self.full_pending
            && self.desired.is_some()
            && vxlan == self.vxlan
            && state.pools == self.pools;
        if delta_ok {
            let old = &self.desired.as_ref().expect("checked").routes;
            let mut changes = Vec::new();
            for (dst, claim) in &routes.routes {
                let before = old.get(dst).map(|c| &c.route);
                if before != Some(&claim.route) {
                    changes.push((*dst, before.cloned(), Some(claim.route.clone())));
                }
            }
            for (dst, claim) in old.iter().filter(|(d, _)| !routes.routes.contains_key(*d)) {
                changes.push((*dst, Some(claim.route.clone()), None));
            }
            self.add_delta(changes);
        }
        self.desired = Some(routes);
        self.vxlan = vxlan;
        self.pools = state.pools.clone();
        self.state = Some(arc);
        self.status.send_modify(|s| {
            s.has_desired = true;
            s.warnings = warnings;
        });
        if delta_ok {
            self.schedule_targeted(PassReason::Desired);
        } else {
            self.schedule(PassReason::Desired, self.config.coalesce);
        }
    }

    /// Learned routes changed: only their prefixes are computed again
    /// (`desired::update`), and the routes that changed are applied as a
    /// delta when the kernel is in sync.
    fn on_learned(&mut self, changes: Vec<LearnedChange>) {
        self.received += 1;
        let (Some(arc), Some(routes)) = (&mut self.state, &mut self.desired) else {
            warn!(
                changes = changes.len(),
                "learned routes before the first desired state: ignored"
            );
            return;
        };
        // Unshared after the first change (the agent keeps its own copy).
        let state = Arc::make_mut(arc);
        let mut prefixes = BTreeSet::new();
        for (prefix, next_hop) in changes {
            state.set_learned(prefix, next_hop);
            prefixes.insert(prefix);
        }
        let old: Vec<_> = routes.warnings.clone();
        let delta = update(state, routes, &prefixes);
        if routes.warnings != old {
            for w in routes.warnings.iter().filter(|w| !old.contains(w)) {
                warn!(warning = %w, "desired state");
            }
            let warnings = routes.warnings.iter().map(ToString::to_string).collect();
            self.status.send_modify(|s| s.warnings = warnings);
        }
        if delta.is_empty() {
            // Nothing to write: the state is applied as it stands.
            if self.due.is_none() && self.in_sync {
                let applied = self.received;
                self.status.send_modify(|s| s.applied = applied);
            }
            return;
        }
        if self.in_sync && !self.full_pending {
            self.add_delta(delta);
            self.schedule_targeted(PassReason::Desired);
        } else {
            self.schedule(PassReason::Desired, self.config.coalesce);
        }
    }

    /// Adds route changes (prefix, before, after) to the pending delta.
    fn add_delta(&mut self, changes: Vec<crate::desired::RouteChange>) {
        for (dst, before, after) in changes {
            let entry = self.delta.entry(dst).or_insert((before, None));
            entry.1 = after;
        }
    }

    /// Schedules a pass when a notification disagrees with the desired state.
    fn on_kernel_event(&mut self, event: KernelEvent) {
        if event == KernelEvent::Overrun {
            self.status.send_modify(|s| s.kernel_overruns += 1);
        }
        let Some(desired) = &self.desired else {
            return;
        };
        if event == KernelEvent::Overrun {
            warn!("kernel notifications were lost (socket overrun): full resync");
        }
        match &event {
            KernelEvent::Link {
                index,
                name,
                gone,
                up,
            } => {
                // A workload's host-side interface concerns only its own
                // routes: the table is kept up to date from the
                // notification, and its routes are written again when it
                // (re)appears, without a dump. The cost of a pod follows
                // its own routes, not the number of pods on the node.
                match name.as_deref() {
                    Some(n) if n.starts_with(crate::endpoint::IFNAME_PREFIX) => {
                        if *gone {
                            // Its routes went with it; wanted ones wait.
                            self.links.remove(*index);
                            return;
                        }
                        self.links.insert(*index, n.to_owned(), *up);
                        if !*up {
                            // The kernel refuses routes on it; they wait.
                            return;
                        }
                        let replace: Vec<_> = desired
                            .routes
                            .values()
                            .filter(
                                |c| matches!(&c.route.kind, RouteKind::Link { dev } if dev == n),
                            )
                            .map(|c| (c.route.dst, Some(c.route.clone()), Some(c.route.clone())))
                            .collect();
                        if !replace.is_empty() && self.in_sync && !self.full_pending {
                            self.add_delta(replace);
                            self.schedule_targeted(PassReason::Kernel);
                        } else if !replace.is_empty() {
                            self.schedule(PassReason::Kernel, self.config.coalesce);
                        }
                    }
                    // The underlay, the tunnels or any other link: every
                    // learned route may depend on it.
                    _ => self.schedule(PassReason::Kernel, self.config.coalesce),
                }
            }
            KernelEvent::Address { index } => {
                // A workload interface's own addresses (IPv6 link-local)
                // change no route of ours.
                let endpoint = self
                    .links
                    .name(*index)
                    .is_some_and(|n| n.starts_with(crate::endpoint::IFNAME_PREFIX));
                if !endpoint {
                    self.schedule(PassReason::Kernel, self.config.coalesce)
                }
            }
            KernelEvent::Overrun => self.schedule(PassReason::Kernel, self.config.coalesce),
            KernelEvent::Neighbour { ifindex } => {
                // Entries on vxlan.tortie are ours to keep (a human `ip neigh
                // del` / `bridge fdb del` heals at once); our own writes echo
                // here too, and the pass they cause writes nothing.
                let ours = self.vxlan.iter().any(|v| {
                    let dev = tortie_ipip::vxlan::device_name(v.local.local.is_ipv4());
                    self.links.index(dev) == Some(*ifindex)
                });
                if ours {
                    self.schedule(PassReason::Kernel, self.config.coalesce)
                }
            }
            KernelEvent::NewRoute(msg) => {
                let disagrees = dump::installed(msg, &self.links).is_some_and(|r| {
                    let wanted = desired.routes.get(&r.route.dst);
                    !(r.has_default_metric() && wanted.is_some_and(|c| c.route == r.route))
                });
                if disagrees {
                    self.schedule(PassReason::Kernel, self.config.coalesce);
                }
            }
            KernelEvent::DelRoute(msg) => {
                // Only the deletion of exactly the route we want matters
                // (our own deletes of unwanted or duplicate routes do not).
                let Some(r) = dump::installed(msg, &self.links) else {
                    return;
                };
                let wanted = desired.routes.get(&r.route.dst);
                if r.has_default_metric() && wanted.is_some_and(|c| c.route == r.route) {
                    self.healing.insert(r.route.dst);
                    self.schedule_targeted(PassReason::Kernel);
                }
            }
        }
    }

    /// Schedules a targeted pass (re-add deleted routes, apply a delta).
    fn schedule_targeted(&mut self, reason: PassReason) {
        let at = Instant::now();
        if self.due.is_none_or(|(due, _)| due > at) {
            self.due = Some((at, reason));
        }
    }

    /// Makes a pass due within `delay` (an earlier due time stays).
    fn schedule(&mut self, reason: PassReason, delay: Duration) {
        self.full_pending = true;
        let at = Instant::now() + delay;
        match self.due {
            Some((due, _)) if due <= at => {}
            _ => self.due = Some((at, reason)),
        }
    }

    /// Runs the due pass: a targeted heal when only deletions of wanted
    /// routes were seen, else a full reconcile.
    async fn pass(&mut self) {
        let Some((_, reason)) = self.due.take() else {
            return;
        };
        if self.desired.is_none() {
            debug!("no desired state yet: routes of ours are kept as they are");
            self.healing.clear();
            return;
        }
        if self.full_pending {
            self.full_pending = false;
            self.healing.clear();
            self.delta.clear();
            self.full_pass(reason).await;
        } else {
            self.targeted_pass(reason).await;
        }
    }

    /// Without a dump: re-adds the wanted routes the kernel said were
    /// deleted, and applies the desired-state delta (add a new prefix,
    /// replace a changed one, delete a removed one). The cost follows the
    /// number of changes, not the table size. Any failure (e.g. EEXIST:
    /// someone else holds the prefix) leads to a full pass.
    async fn targeted_pass(&mut self, reason: PassReason) {
        let Some(desired) = &self.desired else {
            return;
        };
        let started = std::time::Instant::now();
        let mut requests: Vec<Request> = std::mem::take(&mut self.healing)
            .into_iter()
            .filter_map(|dst| desired.routes.get(&dst))
            .map(|c| Request::Add(c.route.clone()))
            .collect();
        let (mut add, mut replace, mut delete) = (requests.len(), 0, 0);
        for (_, (before, after)) in std::mem::take(&mut self.delta) {
            match (before, after) {
                (None, Some(r)) => {
                    add += 1;
                    requests.push(Request::Add(r));
                }
                (Some(_), Some(r)) => {
                    replace += 1;
                    requests.push(Request::Replace(r));
                }
                (Some(r), None) => {
                    delete += 1;
                    requests.push(Request::Delete(InstalledRoute {
                        route: r,
                        metric: None,
                    }));
                }
                (None, None) => {}
            }
        }
        let wanted = desired.routes.len();
        let waiting = hold_back(&mut requests, &self.links);
        let writes = crate::written::kinds(&requests);
        let report = self.exec.execute(requests, &self.links).await;
        self.written.record(&writes, &report.failures);
        if !report.failures.is_empty() {
            self.in_sync = false;
            self.schedule(PassReason::Retry, self.config.coalesce);
        }
        let pass = PassReport {
            reason,
            full: false,
            installed: 0,
            desired: wanted,
            add,
            replace,
            delete,
            writes: report.writes,
            vxlan_writes: 0,
            nat_writes: 0,
            failures: report.failures.iter().map(|f| f.message.clone()).collect(),
            waiting,
            duration: started.elapsed(),
        };
        debug!(?pass, "targeted pass");
        self.publish(pass);
    }

    /// One full reconcile: links, dump, diff, apply.
    async fn full_pass(&mut self, reason: PassReason) {
        if self.desired.is_none() {
            return;
        }
        let started = std::time::Instant::now();
        // Read before write: two reads when right. Problems are warned and
        // published (`Status::forwarding`), not failures (no retry, no
        // loss of deltas): see crate::forwarding.
        if let Some(state) = &self.state {
            let netns = self.config.netns.as_deref();
            self.forwarding.ensure(netns, state).await;
        }
        // Devices and NAT first: the routes name vxlan.tortie.
        let (vxlan_writes, nat_writes, mut problems) = self.tunnel_and_nat().await;
        let dumped = async {
            let links = dump::links(self.exec.handle()).await?;
            let routes = dump::routes(self.exec.handle(), &links).await?;
            Ok::<_, KernelError>((links, routes))
        }
        .await;
        let (links, installed) = match dumped {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "dump failed; retrying");
                self.retry_later();
                return;
            }
        };
        self.links = links;
        let Some(desired) = &self.desired else {
            return;
        };
        let mut plan = diff(desired.routes.values().map(|c| &c.route), &installed);
        let waiting = hold_back_plan(&mut plan, &self.links);
        let report = self.exec.apply(&plan, &self.links).await;
        self.written
            .record(&crate::written::plan_kinds(&plan), &report.failures);
        for f in &report.failures {
            warn!(failure = %f.message, "route write failed; will retry");
        }
        let pass = PassReport {
            reason,
            full: true,
            installed: installed.len(),
            desired: desired.routes.len(),
            add: plan.add.len(),
            replace: plan.replace.len(),
            delete: plan.delete.len(),
            writes: report.writes,
            vxlan_writes,
            nat_writes,
            failures: {
                problems.extend(report.failures.iter().map(|f| f.message.clone()));
                problems
            },
            waiting,
            duration: started.elapsed(),
        };
        debug!(?pass, "reconcile pass");
        self.in_sync = pass.failures.is_empty();
        if pass.failures.is_empty() {
            self.backoff = self.config.retry_min;
        } else {
            self.retry_later();
        }
        self.publish(pass);
    }

    /// Reconciles the VXLAN devices wanted and the NAT tables; returns
    /// their writes and problems (each also logged).
    async fn tunnel_and_nat(&mut self) -> (u64, u64, Vec<String>) {
        let mut problems = Vec::new();
        let mut vxlan_writes = 0;
        for v in &self.vxlan {
            match tortie_ipip::vxlan::reconcile(self.exec.handle(), &v.local, &v.peers).await {
                Ok(r) => {
                    vxlan_writes += r.writes;
                    for c in &r.changes {
                        info!(change = %c, "vxlan");
                    }
                    problems.extend(r.problems);
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        let netns = self.config.netns.clone();
        let pools = self.pools.clone();
        let nat =
            tokio::task::spawn_blocking(move || crate::nat::reconcile(netns.as_deref(), &pools))
                .await;
        let nat_writes = match nat {
            Ok(Ok(r)) => r.writes,
            Ok(Err(e)) => {
                problems.push(format!("NAT outgoing: {e}"));
                0
            }
            Err(e) => {
                problems.push(format!("NAT outgoing: worker failed: {e}"));
                0
            }
        };
        for p in &problems {
            warn!(problem = %p, "tunnel device / NAT");
        }
        (vxlan_writes, nat_writes, problems)
    }

    fn publish(&mut self, pass: PassReport) {
        let total = self.exec.total_writes();
        let applied = self.received;
        let forwarding = self.forwarding.problems();
        self.status.send_modify(|s| {
            s.passes += 1;
            s.applied = applied;
            s.writes = total;
            s.last_pass = Some(pass);
            if s.forwarding != forwarding {
                s.forwarding = forwarding.to_vec();
            }
        });
    }

    fn retry_later(&mut self) {
        self.schedule(PassReason::Retry, self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.retry_max);
    }
}

// ===== helpers =====

/// Whether `route` goes out of an interface the kernel does not have yet
/// but will: a workload interface (the CNI plugin writes the endpoint
/// before it makes the interface, so the agent may know the pod first;
/// and until the plugin sets it up, the kernel refuses routes on it),
/// or `vxlan.tortie` / `vxlan-v6.tortie`, which felix makes itself (the first pass may want
/// routes through it before the link is seen; `tunl0` is made by the
/// agent, and where it cannot be, its routes must fail visibly). Such a
/// route is not a failure: it waits, and the link notification of the new
/// interface writes it (a workload interface's routes alone, without a
/// dump; `vxlan.tortie` by a full pass).
fn awaits_interface(route: &KernelRoute, links: &Links) -> bool {
    use crate::desired::{VXLAN_DEV, VXLAN_DEV_V6};
    let dev = match &route.kind {
        // A workload interface the CNI plugin has made but not set up yet.
        RouteKind::Link { dev } if dev.starts_with(crate::endpoint::IFNAME_PREFIX) => {
            return links.index_up(dev).is_none()
        }
        RouteKind::Via { dev, .. } if dev == VXLAN_DEV || dev == VXLAN_DEV_V6 => dev,
        _ => return false,
    };
    links.index(dev).is_none()
}

/// Takes out of `requests` the writes that wait for their interface;
/// returns how many.
fn hold_back(requests: &mut Vec<Request>, links: &Links) -> usize {
    let before = requests.len();
    requests.retain(|r| match r {
        Request::Add(route) | Request::Replace(route) => !awaits_interface(route, links),
        Request::Delete(_) => true,
    });
    before - requests.len()
}

/// [`hold_back`] for a plan.
fn hold_back_plan(plan: &mut crate::diff::Plan, links: &Links) -> usize {
    let before = plan.add.len() + plan.replace.len();
    plan.add.retain(|r| !awaits_interface(r, links));
    plan.replace.retain(|r| !awaits_interface(r, links));
    before - plan.add.len() - plan.replace.len()
}

async fn next_event(events: &mut Option<KernelEvents>) -> Option<KernelEvent> {
    match events {
        Some(e) => e.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::RouteKind;

    fn via(dev: &str) -> KernelRoute {
        KernelRoute {
            dst: "10.244.1.0/26".parse().unwrap(),
            kind: RouteKind::Via {
                gateway: "10.244.1.0".parse().unwrap(),
                dev: dev.into(),
                onlink: true,
            },
        }
    }

    #[test]
    fn routes_wait_for_interfaces_that_will_come() {
        let none = Links::from_pairs([(2, "eth0".to_string())]);
        let link = |dev: &str| KernelRoute {
            dst: "10.244.0.7/32".parse().unwrap(),
            kind: RouteKind::Link { dev: dev.into() },
        };
        // Not there yet, and felix or the CNI plugin makes them: waiting.
        assert!(awaits_interface(&link("tort0123456789a"), &none));
        assert!(awaits_interface(&via("vxlan.tortie"), &none));
        // A device felix does not make is a failure, not a wait.
        assert!(!awaits_interface(&via("tunl0"), &none));
        assert!(!awaits_interface(&via("eth9"), &none));
        assert!(!awaits_interface(&link("eth9"), &none));
        // There: written now.
        let all = Links::from_pairs([
            (3, "vxlan.tortie".to_string()),
            (4, "tort0123456789a".to_string()),
        ]);
        assert!(!awaits_interface(&via("vxlan.tortie"), &all));
        assert!(awaits_interface(&via("vxlan-v6.tortie"), &all));
        assert!(!awaits_interface(&link("tort0123456789a"), &all));
    }
}
