//! Route reflector fan-out: `clients` light RR clients (one tokio task
//! each, [`crate::session`]) are Established with the reflector; then the
//! generator, also a client, announces `routes` prefixes. The time runs
//! from its first UPDATE written to the moment the last client holds all
//! of them (each client stamps its own completion when it decodes the last
//! one, so there is no polling error).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::bed::{client, Bed, GENERATOR};
use crate::ingest::{peer, start};
use crate::procstat::Sample;
use crate::receivers::Kind;
use crate::session::Session;
use crate::wire;

/// How long the clients may take to come up, and the routes to arrive.
const STEP: Duration = Duration::from_secs(120);
/// From the generator's session up to its first UPDATE: past FRR's update
/// group coalesce time, so that each reflector is measured after its
/// initial sync with the clients.
const SETTLE: Duration = Duration::from_secs(12);

/// One reflector's fan-out result.
#[derive(Clone, Debug)]
pub struct FanoutRow {
    pub kind: Kind,
    pub clients: usize,
    pub routes: u32,
    /// First UPDATE written to the last client complete.
    pub secs: f64,
    /// First UPDATE written to the median client complete.
    pub median_secs: f64,
    /// Seconds for all clients to reach Established (setup, not timed).
    pub setup_secs: f64,
    /// Reflector at the clients' Established, before any route.
    pub before: Sample,
    /// Reflector when the last client was complete.
    pub after: Sample,
    /// The times of every repetition (this row is the median one).
    pub runs: Vec<f64>,
}

// ===== impl FanoutRow =====

impl FanoutRow {
    /// CPU seconds the reflector spent during the fan-out.
    pub fn cpu_secs(&self) -> f64 {
        self.after.cpu_secs_since(&self.before)
    }
}

// ===== helpers =====

/// Runs the fan-out with `kind` as the reflector.
pub fn fanout(kind: Kind, clients: usize, routes: u32, tortie_rr: &Path) -> Result<FanoutRow> {
    let blob = Arc::new(wire::announce_blob(&wire::prefixes(routes), GENERATOR));
    let bed = Bed::new(clients)?;
    bed.run(|rt| {
        let mut peers = vec![GENERATOR];
        peers.extend((0..clients).map(client));
        let rcv = start(kind, &bed, peers, true, tortie_rr)?;
        let t_setup = Instant::now();
        let deadline = t_setup + STEP;
        let sessions: Vec<Session> = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..clients {
                set.spawn(async move { (i, Session::establish(&peer(client(i), 90, routes), deadline).await) });
            }
            let mut out: Vec<Option<Session>> = (0..clients).map(|_| None).collect();
            while let Some(r) = set.join_next().await {
                let (i, s) = r?;
                out[i] = Some(s?);
            }
            anyhow::Ok(out.into_iter().flatten().collect())
        })?;
        let setup_secs = t_setup.elapsed().as_secs_f64();
        let gen = Arc::new(rt.block_on(Session::establish(&peer(GENERATOR, 90, 0), deadline))?);
        // Let the reflector finish its initial sync with the clients before
        // the routes come: FRR holds a new update group's first
        // announcements for its coalesce time (one second, raised with the
        // number of peers, at most ten), and routes arriving inside that
        // window wait for it; every reflector gets the same wait.
        std::thread::sleep(SETTLE);
        let before = Sample::read(rcv.pid())?;
        let t0 = Instant::now();
        let sender = {
            let (gen, blob) = (gen.clone(), blob.clone());
            rt.spawn(async move { gen.send(&blob).await })
        };
        let end = t0 + STEP;
        loop {
            crate::stop::check()?;
            let done = sessions.iter().filter(|s| s.counters.complete_at.get().is_some()).count();
            if done == clients {
                break;
            }
            let lost: Vec<_> = sessions.iter().filter_map(|s| s.closed()).collect();
            if !lost.is_empty() || Instant::now() > end {
                let held: u64 = sessions.iter().map(|s| u64::from(s.counters.held.load(Ordering::Relaxed))).sum();
                bail!(
                    "{}: {done}/{clients} clients complete, {held} of {} prefixes held, {} sessions lost (first: {:?}) after {:?}; log: {}",
                    kind.label(),
                    clients as u64 * u64::from(routes),
                    lost.len(),
                    lost.first(),
                    t0.elapsed(),
                    rcv.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = Sample::read(rcv.pid())?;
        sender.abort();
        let mut times: Vec<f64> = sessions
            .iter()
            .filter_map(|s| s.counters.complete_at.get())
            .map(|t| t.saturating_duration_since(t0).as_secs_f64())
            .collect();
        times.sort_by(f64::total_cmp);
        let secs = times.last().copied().unwrap_or(0.0);
        Ok(FanoutRow {
            kind,
            clients,
            routes,
            secs,
            runs: vec![secs],
            median_secs: times.get(times.len() / 2).copied().unwrap_or(0.0),
            setup_secs,
            before,
            after,
        })
    })
}
