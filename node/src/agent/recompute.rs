//! The recompute: from the agent's whole picture to its outputs, handing
//! on only what differs: the speaker's configuration ([`peers::plan`])
//! and originated routes ([`routes::originated`]), felix's desired state
//! ([`routes::desired`], behind felix's gate), and the tunnel addresses
//! the pools ask for.

use std::sync::Arc;

use bgp_speaker::LocalRoute;
use felix::desired::DesiredState;
use ipnet::IpNet;
use tracing::{debug, info, warn};

use super::{Agent, Input, Running};
use crate::peers::{self, Problem};
use crate::register::{self, Tunnel};
use crate::routes;

// ===== impl Agent =====

impl Agent {
    /// Recomputes the speaker configuration, the originated routes and
    /// felix's desired state, and hands on what changed.
    /// `all`: the peers too (else only the node's own blocks or endpoints
    /// changed, and the last plan stands).
    pub(super) async fn recompute(&mut self, all: bool) {
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
        let aggregator = self
            .plan
            .as_ref()
            .filter(|p| p.config.peers.iter().any(|c| c.export_aggregates))
            .map(|p| p.config.router_id);
        let (originated, route_problems) = routes::originated(&self.cluster, &me, aggregator);
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
    pub(super) async fn refresh_dataplane(&mut self) {
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
                    // Outside the pools only a BGPPeer's reachableBy
                    // route is there, which no learned path replaces.
                    if had.is_some() && self.cluster.pool_of(&prefix).is_none() {
                        continue;
                    }
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
    pub(super) fn gate_open(&self) -> bool {
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
                Tunnel::VxlanV6 => me.vxlan_v6,
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
}
