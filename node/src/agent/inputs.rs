//! The agent's input handlers, one per input: what each changes in the
//! agent's state and what it marks dirty for the next recompute
//! (`recompute`), or publishes at once (`publish`).

use std::net::IpAddr;
use std::sync::Arc;

use bgp_speaker::BestPathChange;
use tortie_config::resources::Kind;
use tortie_datastore::follow::Follow;
use tortie_datastore::kube::services::{follow_services, ServiceEvent};
use tortie_datastore::AnyStore;
use tracing::{debug, info, warn};

use super::publish::same_states;
use super::{Agent, RECHECK_TICKS, TRIM_AFTER};
use crate::register::Tunnel;
use crate::services;
use crate::status::LearnedPath;

// ===== impl Agent =====

impl Agent {
    /// A Services follower report: our routes are recomputed when it can
    /// change them (not felix's state, not the peers). On trouble the
    /// last known Services stand.
    pub(super) fn on_services(&mut self, event: ServiceEvent) {
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
    pub(super) fn follow_services(&mut self) {
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

    pub(super) fn on_store(&mut self, event: Follow) {
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

    pub(super) fn on_best_paths(&mut self, changes: Vec<BestPathChange>) {
        debug!(changes = changes.len(), "best paths changed");
        let paths = Arc::make_mut(&mut self.best_paths);
        for c in changes {
            self.learned_dirty.insert(c.prefix);
            match c
                .best
                .and_then(|b| Some((b.peer?, b.attrs.next_hop.addr())))
            {
                Some((peer, next_hop)) => {
                    self.learned.insert(c.prefix, next_hop);
                    paths.insert(c.prefix, LearnedPath { next_hop, peer });
                }
                None => {
                    self.learned.remove(&c.prefix);
                    paths.remove(&c.prefix);
                }
            }
        }
        self.dirty.learned = true;
    }

    pub(super) fn on_speaker_status(&mut self) {
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

    pub(super) fn on_tunnel_allocated(&mut self, tunnel: Tunnel, result: Result<IpAddr, String>) {
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

    pub(super) async fn on_tick(&mut self) {
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
}

// ===== helpers =====

fn tunnel_problem_key(t: Tunnel) -> &'static str {
    match t {
        Tunnel::Vxlan => "vxlan-address",
        Tunnel::Ipip => "ipip-address",
        Tunnel::VxlanV6 => "vxlan-v6-address",
    }
}
