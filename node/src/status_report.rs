//! The status reporter: writes this node's BGP agent and sessions into the
//! datastore as `CalicoNodeStatus` objects, for `tortiectl node status`
//! of every node and for `kubectl get caliconodestatus`.
//!
//! ```text
//!  agent's NodeStatus (watch) ───────────────▶ ┌──────────┐
//!  CalicoNodeStatus follower (spec.node = us) ▶ │ reporter │ ──create / update──▶ datastore
//!  timer: next write due ────────────────────▶ └──────────┘
//! ```
//!
//! It fills every object whose `spec.node` names this node, and keeps one
//! of its own (named after the node, `classes: [Agent, BGP]`), created
//! when absent. When an object's `spec.updatePeriodSeconds` is set, it is
//! written every that many seconds (0: never), as Calico does; when unset,
//! when a session changes state (at most once per [`MIN_GAP`]) and every
//! [`DEFAULT_REFRESH_SECONDS`] otherwise, so that its `lastUpdated` shows
//! the node is alive. `tortiectl node status` calls a status stale after
//! [`STALE_PERIODS`](tortie_config::resources::STALE_PERIODS) periods.
//!
//! It runs apart from the agent: it only reads the agent's published
//! status (a `watch`, never waited on by the agent), so a slow or absent
//! datastore delays the status and nothing else. A failed write is logged,
//! counted (`tortie_node_status_writes_total{result="failed"}`) and
//! retried with backoff. A write is a compare-and-swap on the object as
//! the follower (or our previous write) last showed it, so a report costs
//! no read: the object is read only when nothing is known of it yet or
//! the swap meets a newer revision (on Kubernetes an agent makes list,
//! watch and these writes, no get).
//!
//! Each object gets the classes it asks for, and only those. Class
//! `Routes` (`status.routes`: what each entry means is in `routes`,
//! `status_report_routes.rs`) is computed only when such an object is
//! written, at most [`MAX_ROUTES_PER_FAMILY`] per family; a change of
//! routes alone does not make a write (routes change with every UPDATE):
//! they are as they were at the object's last write, every period (or
//! [`DEFAULT_REFRESH_SECONDS`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tortie_config::resources::time::format_rfc3339;
use tortie_config::resources::{
    BgpStatus, CalicoNodeStatus, CalicoNodeStatusSpec, DaemonState, DaemonStatus, Kind,
    NodeStatusClass, NodeStatusReport, Object, PeerStatus, PeerType, Resource, SessionState,
    DEFAULT_REFRESH_SECONDS, MAX_ROUTES_PER_FAMILY,
};
use tortie_datastore::follow::{self, Follow};
use tortie_datastore::{AnyStore, Datastore, Only, Revision, StoreError, TypedStore};
use tracing::{debug, info, warn};

use crate::metrics::StatusWrites;
use crate::status::{NodeStatus, Phase};

#[path = "status_report_routes.rs"]
mod routes;

/// An object without `updatePeriodSeconds` is written at most this often
/// (session changes in a burst are one write).
pub const MIN_GAP: Duration = Duration::from_secs(1);
/// Retry delays after a failed write.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// The follower's queue.
const INPUTS: usize = 64;

/// What the reporter needs.
pub struct ReporterConfig {
    /// This node's name.
    pub node: String,
    pub store: AnyStore,
    /// Counts the writes.
    pub writes: StatusWrites,
    /// When this agent started (`agent.birdV4.lastBootTime`), Unix seconds.
    pub started_unix: i64,
}

/// The reporter's state.
struct Reporter {
    cfg: ReporterConfig,
    /// The objects to fill, by name.
    targets: BTreeMap<String, Target>,
    /// Listed at least once: whether our own object exists is known.
    listed: bool,
    /// The agent's latest status.
    status: watch::Receiver<Arc<NodeStatus>>,
}

/// One object the reporter fills.
#[derive(Debug)]
struct Target {
    spec: CalicoNodeStatusSpec,
    /// The object as last seen (its status left out) and its revision:
    /// from the watch, or from our last write. The next write is a
    /// compare-and-swap on it, with no read first; only a conflict (or
    /// nothing known yet) costs a read.
    seen: Option<(CalicoNodeStatus, Revision)>,
    /// Not in the datastore yet: our own object, to create.
    missing: bool,
    /// What was last written (without its time), and when.
    written: Option<(NodeStatusReport, Instant)>,
    /// After failed writes: not before then.
    retry_at: Option<Instant>,
    /// The current retry delay.
    backoff: Duration,
}

// ===== impl Reporter =====

/// Starts the reporter; aborting the handle stops it (and its follower).
pub fn spawn(cfg: ReporterConfig, status: watch::Receiver<Arc<NodeStatus>>) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel(INPUTS);
    // Only our objects' text is read: `"node":"<name>"` is in their spec.
    let only = Only::containing(format!("\"node\":{}", serde_json::json!(cfg.node)));
    let follower = follow::follow_only(cfg.store.clone(), Kind::CalicoNodeStatus, Some(only), tx);
    let reporter = Reporter {
        cfg,
        targets: BTreeMap::new(),
        listed: false,
        status,
    };
    tokio::spawn(async move {
        let _follower = AbortOnDrop(follower);
        reporter.run(rx).await;
    })
}

impl Reporter {
    async fn run(mut self, mut rx: mpsc::Receiver<Follow>) {
        loop {
            let now = Instant::now();
            let status = self.status.borrow().clone();
            let report = report(&status, self.cfg.started_unix);
            // The same with the routes, made for the first object due
            // that asks for them.
            let mut with_routes: Option<NodeStatusReport> = None;
            let mut next: Option<Instant> = None;
            let names: Vec<String> = self.targets.keys().cloned().collect();
            for name in names {
                let Some(due) = self.targets[&name].due(&report, now) else {
                    continue;
                };
                if due <= now {
                    let full = if self.targets[&name].spec.wants(NodeStatusClass::Routes) {
                        &*with_routes.get_or_insert_with(|| NodeStatusReport {
                            routes: routes::routes(&status, MAX_ROUTES_PER_FAMILY),
                            ..report.clone()
                        })
                    } else {
                        &report
                    };
                    self.write(&name, full).await;
                    // Its next time is computed on the next turn.
                    next = Some(Instant::now());
                } else {
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => self.on_follow(event),
                    None => return,
                },
                changed = self.status.changed() => {
                    if changed.is_err() {
                        return; // the agent is gone
                    }
                }
                _ = sleep => {}
            }
        }
    }

    /// A follower report: the objects that name this node.
    fn on_follow(&mut self, event: Follow) {
        match event {
            Follow::Listed { items, .. } => {
                let mut old = std::mem::take(&mut self.targets);
                for r in items {
                    self.upsert(r, &mut old);
                }
                self.listed = true;
                self.own_if_absent();
            }
            Follow::Changed(e) => match e.resource {
                Some(r) => {
                    let mut old = BTreeMap::new();
                    if let Some(t) = self.targets.remove(&e.key.name) {
                        old.insert(e.key.name.clone(), t);
                    }
                    let seen = match &r {
                        Resource::CalicoNodeStatus(o) => {
                            let mut o = o.clone();
                            o.spec.status = None;
                            Some((o, e.revision))
                        }
                        _ => None,
                    };
                    self.upsert(r, &mut old);
                    if let Some(t) = self.targets.get_mut(&e.key.name) {
                        // Not older than what our own write left.
                        if t.seen.as_ref().is_none_or(|(_, r)| *r <= e.revision) {
                            t.seen = seen;
                        }
                    }
                    self.own_if_absent();
                }
                None => {
                    self.targets.remove(&e.key.name);
                    self.own_if_absent();
                }
            },
            Follow::Trouble { error, .. } => {
                debug!(%error, "CalicoNodeStatus follower (it retries)");
            }
            Follow::Probe(_) => {}
        }
    }

    /// Takes `r` as a target if it names this node, keeping what `old`
    /// knew of it (what was written, when).
    fn upsert(&mut self, r: Resource, old: &mut BTreeMap<String, Target>) {
        let Resource::CalicoNodeStatus(o) = r else {
            return;
        };
        if o.spec.node != self.cfg.node {
            return;
        }
        let name = o.metadata.name.clone();
        let mut spec = o.spec;
        let stored = spec.status.take();
        let target = match old.remove(&name) {
            Some(mut t) => {
                t.spec = spec;
                t.missing = false;
                t
            }
            None => {
                // Seen for the first time (or again after a restart): what
                // it holds counts as written, at its age (older than this
                // process: as never written).
                let written = stored.and_then(|mut s| {
                    let age = u64::try_from(unix_now() - s.last_updated_unix()?).ok()?;
                    s.last_updated = None;
                    let at = Instant::now().checked_sub(Duration::from_secs(age))?;
                    Some((s, at))
                });
                if o.metadata.name == self.cfg.node {
                    info!(object = %name, "reporting BGP status to CalicoNodeStatus");
                } else {
                    info!(object = %name, "reporting BGP status to a CalicoNodeStatus that names this node");
                }
                Target::new(spec, false, written)
            }
        };
        self.targets.insert(name, target);
    }

    /// Our own object, once listed, when there is none.
    fn own_if_absent(&mut self) {
        if self.listed && !self.targets.contains_key(&self.cfg.node) {
            self.targets.insert(
                self.cfg.node.clone(),
                Target::new(CalicoNodeStatusSpec::for_node(&self.cfg.node), true, None),
            );
        }
    }

    /// Writes target `name`'s status: read it, fill it, compare-and-swap
    /// (again at once after a conflict); our own object is created when
    /// absent. The outcome is counted; a failure is retried later.
    async fn write(&mut self, name: &str, report: &NodeStatusReport) {
        let Some(create) = self.targets.get(name).map(|t| t.missing) else {
            return;
        };
        let seen = self.targets.get(name).and_then(|t| t.seen.clone());
        let mut result = match seen {
            Some((object, revision)) if !create => self.write_seen(object, revision, report).await,
            _ => self.write_once(name, create, report).await,
        };
        if matches!(&result, Err(e) if e.is_conflict() || matches!(e, StoreError::NotFound { .. }))
        {
            result = self.write_once(name, create, report).await;
        }
        if matches!(&result, Err(e) if e.is_conflict()) {
            result = self.write_once(name, create, report).await;
        }
        self.cfg.writes.count(result.is_ok());
        let Some(target) = self.targets.get_mut(name) else {
            return;
        };
        match result {
            Ok(Written::Done(seen)) => {
                if let Some(seen) = seen {
                    target.seen = Some(*seen);
                }
                target.missing = false;
                target.written = Some((report.clone(), Instant::now()));
                target.retry_at = None;
                target.backoff = RETRY_MIN;
            }
            Ok(Written::Gone) => {
                // Deleted (or no longer ours) meanwhile: the follower says.
                target.retry_at = Some(Instant::now() + target.backoff);
            }
            Err(e) => {
                warn!(object = %name, error = %e, retry_in = ?target.backoff, "cannot write CalicoNodeStatus (routing is not affected)");
                target.retry_at = Some(Instant::now() + target.backoff);
                target.backoff = (target.backoff * 2).min(RETRY_MAX);
            }
        }
    }

    /// The write without a read: a compare-and-swap on the object as the
    /// watch (or our last write) showed it.
    async fn write_seen(
        &self,
        object: CalicoNodeStatus,
        revision: Revision,
        report: &NodeStatusReport,
    ) -> Result<Written, StoreError> {
        self.update(object, revision, report).await
    }

    /// Read, fill, compare-and-swap (or create our own object).
    async fn write_once(
        &self,
        name: &str,
        create: bool,
        report: &NodeStatusReport,
    ) -> Result<Written, StoreError> {
        let store = &self.cfg.store;
        let Some((object, revision)) = store.get_typed::<CalicoNodeStatusSpec>(name).await? else {
            if !create {
                return Ok(Written::Gone);
            }
            let mut object: CalicoNodeStatus =
                Object::new(name, CalicoNodeStatusSpec::for_node(&self.cfg.node));
            object.spec.status = Some(stamped(&object.spec, report));
            let made = store
                .create(Resource::CalicoNodeStatus(object.clone()))
                .await?;
            object.spec.status = None;
            return Ok(Written::Done(Some(Box::new((object, made.revision)))));
        };
        if object.spec.node != self.cfg.node {
            return Ok(Written::Gone);
        }
        self.update(object, revision, report).await
    }

    async fn update(
        &self,
        mut object: CalicoNodeStatus,
        revision: Revision,
        report: &NodeStatusReport,
    ) -> Result<Written, StoreError> {
        object.spec.status = Some(stamped(&object.spec, report));
        let written = self
            .cfg
            .store
            .update_typed(object.clone(), revision)
            .await?;
        object.spec.status = None;
        Ok(Written::Done(Some(Box::new((object, written)))))
    }
}

/// What a write did.
enum Written {
    /// Written; the object (without its status) at its new revision.
    Done(Option<Box<(CalicoNodeStatus, Revision)>>),
    /// The object is gone or names another node now.
    Gone,
}

// ===== impl Target =====

impl Target {
    fn new(
        spec: CalicoNodeStatusSpec,
        missing: bool,
        written: Option<(NodeStatusReport, Instant)>,
    ) -> Target {
        Target {
            spec,
            seen: None,
            missing,
            written,
            retry_at: None,
            backoff: RETRY_MIN,
        }
    }

    /// When it should next be written, given what the node reports now
    /// (its routes aside: they do not hasten a write); `None`: not at all
    /// (`updatePeriodSeconds: 0`).
    fn due(&self, report: &NodeStatusReport, now: Instant) -> Option<Instant> {
        let wanted = due(
            self.spec.update_period_seconds,
            self.written
                .as_ref()
                .map(|(w, at)| (same_but_routes(&self.spec, w, report), *at)),
            now,
        )?;
        Some(self.retry_at.map_or(wanted, |r| wanted.max(r)))
    }
}

// ===== helpers =====

/// When an object is next due: with a period, every period after the last
/// write (0: never); without, [`DEFAULT_REFRESH_SECONDS`] after it, or
/// [`MIN_GAP`] after it when what it says changed. Never written: now.
/// `written` is (same as now, when).
fn due(period: Option<u32>, written: Option<(bool, Instant)>, now: Instant) -> Option<Instant> {
    let Some((same, at)) = written else {
        return (period != Some(0)).then_some(now);
    };
    match period {
        Some(0) => None,
        Some(p) => Some(at + Duration::from_secs(p.into())),
        None if same => Some(at + Duration::from_secs(DEFAULT_REFRESH_SECONDS.into())),
        None => Some((at + MIN_GAP).max(now)),
    }
}

/// `report` as written to an object of `spec`: its classes only, stamped
/// with the time now.
fn stamped(spec: &CalicoNodeStatusSpec, report: &NodeStatusReport) -> NodeStatusReport {
    let mut out = filtered(spec, report);
    out.last_updated = Some(format_rfc3339(unix_now()));
    out
}

/// The parts of `report` that `spec`'s classes ask for.
fn filtered(spec: &CalicoNodeStatusSpec, report: &NodeStatusReport) -> NodeStatusReport {
    NodeStatusReport {
        last_updated: None,
        agent: if spec.wants(NodeStatusClass::Agent) {
            report.agent.clone()
        } else {
            Default::default()
        },
        bgp: if spec.wants(NodeStatusClass::BGP) {
            report.bgp.clone()
        } else {
            Default::default()
        },
        routes: if spec.wants(NodeStatusClass::Routes) {
            report.routes.clone()
        } else {
            Default::default()
        },
    }
}

/// Whether `a` and `b` say the same in the classes `spec` asks for,
/// their routes and times aside.
fn same_but_routes(
    spec: &CalicoNodeStatusSpec,
    a: &NodeStatusReport,
    b: &NodeStatusReport,
) -> bool {
    (!spec.wants(NodeStatusClass::Agent) || a.agent == b.agent)
        && (!spec.wants(NodeStatusClass::BGP) || a.bgp == b.bgp)
}

/// The agent's status as a `CalicoNodeStatus` status (every class but
/// `Routes`, no time): the speaker as both of Calico's BIRD daemons,
/// each peer with its session.
pub fn report(status: &NodeStatus, started_unix: i64) -> NodeStatusReport {
    let running = matches!(status.phase, Phase::WaitingForPeers | Phase::Running);
    let daemon = DaemonStatus {
        state: Some(if running {
            DaemonState::Ready
        } else {
            DaemonState::NotReady
        }),
        version: Some(format!("tortie-node {}", env!("CARGO_PKG_VERSION"))),
        router_id: status.router_id.map(|r| r.to_string()),
        last_boot_time: Some(format_rfc3339(started_unix)),
        last_reconfiguration_time: None,
    };
    let peers = status
        .peers
        .iter()
        .map(|p| PeerStatus {
            peer_ip: p.address,
            kind: match p.kind.as_str() {
                "node-to-node mesh" => Some(PeerType::NodeMesh),
                "global" => Some(PeerType::GlobalPeer),
                "node specific" => Some(PeerType::NodePeer),
                _ => None,
            },
            state: Some(session_state(p.state)),
            since: (p.since_unix > 0)
                .then(|| format_rfc3339(i64::try_from(p.since_unix).unwrap_or(i64::MAX))),
        })
        .collect();
    let mut out = NodeStatusReport {
        bgp: BgpStatus::of(peers),
        ..NodeStatusReport::default()
    };
    out.agent.bird_v4 = daemon.clone();
    out.agent.bird_v6 = daemon;
    out
}

fn session_state(s: bgp_speaker::SessionState) -> SessionState {
    use bgp_speaker::SessionState as S;
    match s {
        S::Idle => SessionState::Idle,
        S::Connect => SessionState::Connect,
        S::Active => SessionState::Active,
        S::OpenSent => SessionState::OpenSent,
        S::OpenConfirm => SessionState::OpenConfirm,
        S::Established => SessionState::Established,
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Aborts a task when dropped (the follower dies with the reporter).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
#[path = "status_report_tests.rs"]
mod tests;
