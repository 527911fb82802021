//! Bulk ingest, and keepalives under ingest load.
//!
//! **Ingest**: the generator (our pre-encoded peer, [`crate::wire`])
//! reaches Established with the receiver, we read the receiver's
//! `/proc` numbers, then the generator writes every UPDATE at once. The
//! time runs from that moment to the first poll that sees all prefixes in
//! the receiver's Loc-RIB.
//!
//! **Keepalive**: a probe session with holdTime 3 comes up first; then the
//! generator announces, withdraws and re-announces the whole table
//! `rounds` times back to back, while the probe records the longest silence
//! from the receiver. With a 3 s hold time the receiver must send a
//! KEEPALIVE at least every 3 s (it should every 1 s) and must accept ours.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bed::{Bed, ASN, GENERATOR, PROBE, RECEIVER};
use crate::procstat::Sample;
use crate::receivers::{Kind, Receiver, Setup};
use crate::session::{Session, SessionConfig};
use crate::wire;

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(60);
/// How long the routes may take to arrive.
const LOAD: Duration = Duration::from_secs(300);

/// One receiver's bulk ingest result.
#[derive(Clone, Debug)]
pub struct IngestRow {
    pub kind: Kind,
    pub routes: u32,
    /// From the first UPDATE written to the poll that saw them all.
    pub secs: f64,
    /// The poll interval (the time's resolution).
    pub poll: Duration,
    /// RSS at Established, before any route.
    pub before: Sample,
    /// RSS when all routes were in.
    pub after: Sample,
    /// The times of every repetition (this row is the median one).
    pub runs: Vec<f64>,
    /// What our polling costs the receiver: its CPU milliseconds per second
    /// of polling at `poll`, measured idle after the ingest.
    pub poll_cpu_ms_per_s: f64,
    /// The route filter comparison ([`ingest_filtered`]): the rules of
    /// the receiver's import filter (0: none); `None` for plain ingest.
    pub filter_rules: Option<u32>,
}

/// One receiver's keepalive-under-load result.
#[derive(Clone, Debug)]
pub struct KeepaliveRow {
    pub kind: Kind,
    pub routes: u32,
    /// Announce/withdraw rounds written (plus a final announce).
    pub rounds: u32,
    /// How long the load lasted (first UPDATE to final Loc-RIB complete).
    pub load_secs: f64,
    /// Hold time agreed on the probe session.
    pub hold_time: u16,
    /// Longest time the probe heard nothing from the receiver, ms.
    pub max_silence_ms: u64,
    /// Why the probe session ended during the run, if it did.
    pub probe_closed: Option<String>,
    /// The receiver at the probe's Established, and at the end.
    pub before: Sample,
    pub after: Sample,
    /// What the receiver itself says of the probe at the end (tortie-rr:
    /// state and flaps from `/status`; others: empty).
    pub receiver_view: String,
}

// ===== impl IngestRow =====

impl IngestRow {
    /// RSS growth per route, bytes.
    pub fn bytes_per_route(&self) -> f64 {
        (self.after.rss_kib as f64 - self.before.rss_kib as f64) * 1024.0 / f64::from(self.routes)
    }

    /// CPU seconds the receiver spent during the ingest.
    pub fn cpu_secs(&self) -> f64 {
        self.after.cpu_secs_since(&self.before)
    }
}

// ===== helpers =====

/// Runs the bulk ingest of `routes` prefixes into `kind`.
pub fn ingest(kind: Kind, routes: u32, tortie_rr: &Path) -> Result<IngestRow> {
    ingest_with(kind, routes, tortie_rr, None)
}

/// The bulk ingest of `routes` prefixes into `kind` through an import
/// filter of `rules` rules that match none of them (0: no filter), so
/// that every route is tried against all of them: for tortie-rr a static
/// peer naming a filter of its file (also with 0 rules, so that both
/// cases are the same setup), for BIRD a filter of `rules` `if net ~
/// [...] then reject;` (as Calico writes a BGPFilter) before `accept`.
/// The rules are those of the criterion bench: `Reject In 192.i.0.0/L`
/// for L from /16 to /24 in turn, narrowed to lengths up to /28.
pub fn ingest_filtered(kind: Kind, routes: u32, tortie_rr: &Path, rules: u32) -> Result<IngestRow> {
    ingest_with(kind, routes, tortie_rr, Some(rules))
}

fn ingest_with(
    kind: Kind,
    routes: u32,
    tortie_rr: &Path,
    filter: Option<u32>,
) -> Result<IngestRow> {
    let blob = Arc::new(wire::announce_blob(&wire::prefixes(routes), GENERATOR));
    let bed = Bed::new(0)?;
    bed.run(|rt| {
        let rcv = start_filtered(kind, &bed, vec![GENERATOR], false, tortie_rr, filter)?;
        let base = rcv.loc_rib()?;
        let gen = rt.block_on(Session::establish(
            &peer(GENERATOR, 90, 0),
            Instant::now() + STEP,
        ))?;
        let gen = Arc::new(gen);
        let before = Sample::read(rcv.pid())?;
        let t0 = Instant::now();
        let sender = {
            let (gen, blob) = (gen.clone(), blob.clone());
            rt.spawn(async move { gen.send(&blob).await })
        };
        let t1 = wait_loc_rib(&rcv, base + u64::from(routes), &[&gen], t0 + LOAD)?;
        let after = Sample::read(rcv.pid())?;
        sender.abort();
        let poll_cpu_ms_per_s = poll_cost(&rcv)?;
        let secs = t1.duration_since(t0).as_secs_f64();
        Ok(IngestRow {
            kind,
            routes,
            secs,
            runs: vec![secs],
            poll_cpu_ms_per_s,
            poll: kind.poll_interval(),
            before,
            after,
            filter_rules: filter,
        })
    })
}

/// Runs the keepalive check: probe with holdTime 3 while `kind` ingests
/// and withdraws `routes` prefixes, round after round, for at least
/// `load_secs`, then ingests them once more.
pub fn keepalive(
    kind: Kind,
    routes: u32,
    load_secs: u64,
    tortie_rr: &Path,
) -> Result<KeepaliveRow> {
    let p = wire::prefixes(routes);
    let announce = Arc::new(wire::announce_blob(&p, GENERATOR));
    let withdraw = Arc::new(wire::withdraw_blob(&p));
    let bed = Bed::new(0)?;
    bed.run(|rt| {
        let rcv = start(kind, &bed, vec![GENERATOR, PROBE], true, tortie_rr)?;
        let base = rcv.loc_rib()?;
        let probe = rt.block_on(Session::establish(
            &peer(PROBE, 3, routes),
            Instant::now() + STEP,
        ))?;
        let gen = Arc::new(rt.block_on(Session::establish(
            &peer(GENERATOR, 90, 0),
            Instant::now() + STEP,
        ))?);
        let before = Sample::read(rcv.pid())?;
        let t0 = Instant::now();
        let min_load = Duration::from_secs(load_secs);
        let sender = {
            let (gen, announce, withdraw) = (gen.clone(), announce.clone(), withdraw.clone());
            rt.spawn(async move {
                let mut rounds = 0u32;
                while t0.elapsed() < min_load {
                    gen.send(&announce).await?;
                    gen.send(&withdraw).await?;
                    rounds += 1;
                }
                gen.send(&announce).await?;
                anyhow::Ok(rounds)
            })
        };
        // Wait for the writes to finish, then for the final table.
        while !sender.is_finished() {
            crate::stop::check()?;
            if Instant::now() > t0 + min_load + LOAD {
                bail!(
                    "{}: the generator could not write its UPDATEs in time",
                    kind.label()
                );
            }
            if let Some(why) = gen.closed() {
                bail!("{}: generator session ended: {why}", kind.label());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let rounds = rt.block_on(sender)?.context("generator")?;
        let t1 = wait_loc_rib(&rcv, base + u64::from(routes), &[&gen], t0 + LOAD)?;
        let after = Sample::read(rcv.pid())?;
        // One more hold time of quiet, to catch a late expiry.
        std::thread::sleep(Duration::from_secs(u64::from(probe.hold_time).max(1)));
        let receiver_view = match kind {
            Kind::Tortie => {
                let st = rcv.tortie_status()?;
                let me = st["peers"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["address"] == PROBE.to_string()))
                    .cloned()
                    .unwrap_or_default();
                format!("state {}, flaps {}", me["state"], me["flaps"])
            }
            _ => String::new(),
        };
        Ok(KeepaliveRow {
            kind,
            routes,
            rounds,
            load_secs: t1.duration_since(t0).as_secs_f64(),
            hold_time: probe.hold_time,
            max_silence_ms: probe
                .counters
                .max_gap_ms
                .load(std::sync::atomic::Ordering::Relaxed),
            probe_closed: probe.closed().cloned(),
            before,
            after,
            receiver_view,
        })
    })
}

/// Starts `kind` in the bed with `peers` as its (static) neighbours.
pub(crate) fn start(
    kind: Kind,
    bed: &Bed,
    peers: Vec<std::net::Ipv4Addr>,
    rr: bool,
    bin: &Path,
) -> Result<Receiver> {
    start_filtered(kind, bed, peers, rr, bin, None)
}

/// [`start`], with the filter comparison's setup when `filter` is set
/// (see [`Setup::filter`]).
fn start_filtered(
    kind: Kind,
    bed: &Bed,
    peers: Vec<std::net::Ipv4Addr>,
    rr: bool,
    bin: &Path,
    filter: Option<u32>,
) -> Result<Receiver> {
    let setup = Setup {
        address: RECEIVER,
        asn: ASN,
        peers,
        dynamic: "10.77.0.0/16".parse().expect("a valid prefix"),
        rr_clients: rr,
        filter,
    };
    Receiver::start(kind, &bed.receiver, &setup, bin, Instant::now() + STEP)
}

/// Our side of a session from `local`.
pub(crate) fn peer(local: std::net::Ipv4Addr, hold_time: u16, expect: u32) -> SessionConfig {
    SessionConfig {
        local,
        remote: RECEIVER,
        port: 179,
        asn: ASN,
        hold_time,
        expect,
    }
}

/// Polls an idle receiver for 2 s as [`wait_loc_rib`] does; returns the
/// receiver's CPU milliseconds per second.
fn poll_cost(rcv: &Receiver) -> Result<f64> {
    let before = Sample::read(rcv.pid())?;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(rcv.kind.poll_interval());
        rcv.loc_rib()?;
    }
    let after = Sample::read(rcv.pid())?;
    Ok(after.cpu_secs_since(&before) * 1000.0 / t.elapsed().as_secs_f64())
}

/// Polls the receiver's Loc-RIB every `kind.poll_interval()` until it holds
/// `want` prefixes; returns the time of that poll's answer.
fn wait_loc_rib(
    rcv: &Receiver,
    want: u64,
    sessions: &[&Session],
    deadline: Instant,
) -> Result<Instant> {
    let mut have = 0;
    while Instant::now() < deadline {
        crate::stop::check()?;
        std::thread::sleep(rcv.kind.poll_interval());
        have = rcv.loc_rib()?;
        if have >= want {
            return Ok(Instant::now());
        }
        for s in sessions {
            if let Some(why) = s.closed() {
                bail!(
                    "{}: session ended with {have}/{want} prefixes: {why}; log: {}",
                    rcv.kind.label(),
                    rcv.log_tail()
                );
            }
        }
    }
    bail!(
        "{}: {have}/{want} prefixes after {LOAD:?}; log: {}",
        rcv.kind.label(),
        rcv.log_tail()
    )
}
