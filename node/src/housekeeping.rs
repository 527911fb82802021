//! What the agent does once a second besides routing: remove workload
//! interfaces no pod owns (after a grace period of 60 s), keep `tunl0` as
//! the IPIP pools need it, and refresh the graceful restart marker.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use felix::endpoint_gc::{self, StaleTracker};
use rtnetlink::Handle;
use tortie_config::resources::{EncapMode, WorkloadEndpointSpec};
use tortie_daemon::marker::{self, Marker};
use tortie_datastore::{AnyStore, TypedStore};
use tortie_ipip::ipip_dev::{Tunl0, Tunl0Spec};
use tracing::warn;

use crate::cluster::{Cluster, NodeFacts};

/// How often stale workload interfaces are looked for.
const GC_EVERY: Duration = Duration::from_secs(5);
/// How long a workload interface may be unknown before it is removed: well
/// above the longest CNI ADD (the plugin's default timeout is 10 s; a
/// loaded or emulated machine takes longer), which creates the interface
/// before it writes the WorkloadEndpoint that explains it.
const GC_GRACE: Duration = Duration::from_secs(60);

/// The per-second chores and their state.
pub struct Housekeeping {
    handle: Handle,
    /// The datastore and this node's name: the GC's last check.
    store: AnyStore,
    node: String,
    underlay: String,
    gc: StaleTracker,
    last_gc: Option<Instant>,
    tunl0: Option<Tunl0>,
    marker: Marker,
    marker_every: Duration,
    last_marker: Option<Instant>,
}

/// What a tick found: per chore, a problem or `None` once it cleared.
pub type TickReport = Vec<(&'static str, Option<String>)>;

// ===== impl Housekeeping =====

impl Housekeeping {
    /// Chores on the node's own namespace (`handle`), with the graceful
    /// restart marker `marker`.
    pub fn new(
        handle: Handle,
        store: AnyStore,
        node: String,
        underlay: String,
        marker: Marker,
        restart_time: u16,
    ) -> Housekeeping {
        Housekeeping {
            handle,
            store,
            node,
            underlay,
            gc: StaleTracker::default(),
            last_gc: None,
            tunl0: None,
            marker,
            marker_every: marker::refresh_interval(restart_time),
            last_marker: None,
        }
    }

    /// One tick. `endpoints_current`: the agent's list of local endpoints
    /// is complete and current (only then may interfaces be removed);
    /// `known`: their interface names.
    pub async fn tick(
        &mut self,
        endpoints_current: bool,
        known: &BTreeSet<String>,
        me: Option<&NodeFacts>,
        cluster: &Cluster,
        established: &[IpAddr],
    ) -> TickReport {
        let mut report = TickReport::new();
        let now = Instant::now();
        if endpoints_current && self.last_gc.is_none_or(|t| now - t >= GC_EVERY) {
            self.last_gc = Some(now);
            let result = self.gc(known).await;
            report.push(("gc", result.err()));
        }
        report.push(("tunl0", self.tunl0(me, cluster).await));
        if self
            .last_marker
            .is_none_or(|t| now - t >= self.marker_every)
        {
            self.last_marker = Some(now);
            if let Err(e) = self.marker.write(established) {
                warn!(path = %self.marker.path().display(), error = %e, "cannot refresh the graceful restart marker");
            }
        }
        report
    }

    /// Removes workload interfaces unknown for the grace period. Before
    /// anything is removed the endpoints are read again from the datastore
    /// (the store, not the agent's picture, which may lag behind a busy
    /// machine, has the last word): an interface is removed only if no
    /// WorkloadEndpoint of this node names it there either.
    async fn gc(&mut self, known: &BTreeSet<String>) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("workload interface GC: {e}");
        let present = endpoint_gc::list_links(&self.handle)
            .await
            .map_err(|e| err(&e))?;
        let mut known: HashSet<String> = known.iter().cloned().collect();
        let stale = self.gc.observe(&present, &known, Instant::now(), GC_GRACE);
        if stale.is_empty() {
            return Ok(());
        }
        let fresh = self
            .store
            .list_typed::<WorkloadEndpointSpec>()
            .await
            .map_err(|e| err(&e))?;
        known.extend(
            fresh
                .into_iter()
                .filter(|(w, _)| w.spec.node == self.node)
                .map(|(w, _)| w.spec.interface_name),
        );
        endpoint_gc::sweep(&self.handle, &mut self.gc, &known, GC_GRACE)
            .await
            .map(drop)
            .map_err(|e| err(&e))
    }

    /// Keeps `tunl0` when a pool of this node uses IPIP and the node has
    /// its IPIP tunnel address.
    async fn tunl0(&mut self, me: Option<&NodeFacts>, cluster: &Cluster) -> Option<String> {
        let me = me?;
        let wanted = cluster.pools.values().any(|p| {
            p.spec.ipip_mode != EncapMode::Never
                && !p.spec.disabled
                && p.spec.node_selector.matches(&me.labels)
        });
        let Some(IpAddr::V4(address)) = me.ipip_v4.filter(|_| wanted) else {
            self.tunl0 = None;
            return None;
        };
        let spec = Tunl0Spec {
            address,
            underlay: self.underlay.clone(),
            mtu: None,
        };
        if self.tunl0.as_ref().is_none_or(|t| *t.spec() != spec) {
            match Tunl0::new(spec) {
                Ok(t) => self.tunl0 = Some(t),
                Err(e) => return Some(format!("tunl0: {e}")),
            }
        }
        let t = self.tunl0.as_mut()?;
        t.reconcile(&self.handle)
            .await
            .err()
            .map(|e| format!("tunl0: {e}"))
    }
}
