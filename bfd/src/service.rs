//! The service: one owner task holding every session, the demux, the
//! counters and the network, fed by one input enum and one dispatch.
//!
//! ```text
//!  BfdHandle ──Request──┐
//!                       ▼
//!  reader task ──────► owner task (Bfd::run) ──► Network::send
//!  (one per family     │  sessions: discr -> Entry{Session, watch}
//!   and mode)          │  deadlines: (Instant, discr), one sleep
//!                      └─► watch::Sender<SessionStatus> per session
//! ```
//!
//! Timers are one ordered set of (deadline, discriminator) and a single
//! sleep for the earliest, not a task per session: a session re-arms at
//! every packet (ten times a second at 100 ms), which the set does without
//! spawning.

use std::collections::{BTreeSet, HashMap};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

use crate::api::{BfdError, BfdHandle, Request, SessionInfo, SessionStatus, REQUEST_QUEUE};
use crate::config::{ConfigError, SessionConfig, SessionKey, Timers};
use crate::counters::Counters;
use crate::demux::{Demux, Path};
use crate::net::{ifindex, Endpoint, Inbound, Network, Received, TxId, UdpNetwork};
use crate::packet::{ControlPacket, State};
use crate::session::{Output, Session};

/// Received datagrams queued to the owner task; past it the readers
/// wait and the kernel's socket buffer fills.
const INBOX: usize = 1024;

/// The BFD service. Build it with [`Bfd::new`] (UDP) or
/// [`Bfd::with_network`], then [`Bfd::run`] it, or [`Bfd::spawn`] both.
/// Sockets are opened in the network namespace of the thread running it.
#[derive(Debug)]
pub struct Bfd<N: Network = UdpNetwork> {
    requests: mpsc::Receiver<Request>,
    inst: Instance<N>,
}

/// One input to the owner task.
#[derive(Debug)]
enum Input {
    Request(Request),
    Packet(Box<Received>),
    RxError,
    Timer,
}

/// The owner task's state.
#[derive(Debug)]
struct Instance<N> {
    net: N,
    sessions: HashMap<u32, Entry>,
    keys: HashMap<SessionKey, u32>,
    demux: Demux,
    /// (deadline, discriminator) of every session with one.
    deadlines: BTreeSet<(Instant, u32)>,
    counters: Counters,
    rng: fastrand::Rng,
}

/// One session and what goes with it.
#[derive(Debug)]
struct Entry {
    key: SessionKey,
    fsm: Session,
    tx: TxId,
    status: watch::Sender<SessionStatus>,
    /// Its entry in `deadlines`.
    deadline: Option<Instant>,
}

// ===== impl Bfd =====

impl Bfd<UdpNetwork> {
    /// A service over UDP sockets.
    pub fn new() -> (Bfd<UdpNetwork>, BfdHandle) {
        Bfd::with_network(UdpNetwork::new(), None)
    }

    /// Starts a UDP service on the current runtime.
    pub fn spawn() -> BfdHandle {
        let (bfd, handle) = Bfd::new();
        tokio::spawn(bfd.run());
        handle
    }
}

impl<N: Network> Bfd<N> {
    /// A service over `net`. `seed` fixes discriminators and jitter (for
    /// tests); None draws one.
    pub fn with_network(net: N, seed: Option<u64>) -> (Bfd<N>, BfdHandle) {
        let (tx, requests) = mpsc::channel(REQUEST_QUEUE);
        let rng = seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        let inst = Instance {
            net,
            sessions: HashMap::new(),
            keys: HashMap::new(),
            demux: Demux::default(),
            deadlines: BTreeSet::new(),
            counters: Counters::default(),
            rng,
        };
        (Bfd { requests, inst }, BfdHandle { tx })
    }

    /// Runs until every handle is dropped or [`BfdHandle::shutdown`];
    /// then says AdminDown on every session.
    pub async fn run(mut self) {
        let (inbox_tx, mut inbox) = mpsc::channel(INBOX);
        self.inst.net.start(inbox_tx);
        let sleep = sleep_until(Instant::now());
        tokio::pin!(sleep);
        let mut armed = None;
        loop {
            let next = self.inst.deadlines.first().map(|(t, _)| *t);
            if next != armed {
                if let Some(t) = next {
                    sleep.as_mut().reset(t);
                }
                armed = next;
            }
            let input = tokio::select! {
                r = self.requests.recv() => match r {
                    Some(r) => Input::Request(r),
                    None => break,
                },
                Some(m) = inbox.recv() => match m {
                    Inbound::Packet(p) => Input::Packet(p),
                    Inbound::RxError => Input::RxError,
                },
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    Input::Timer
                }
            };
            if let Some(done) = self.inst.dispatch(input) {
                self.inst.stop();
                let _ = done.send(());
                return;
            }
        }
        self.inst.stop();
    }
}

// ===== impl Instance =====

impl<N: Network> Instance<N> {
    /// The one dispatch. Returns the reply of a shutdown request.
    fn dispatch(&mut self, input: Input) -> Option<oneshot::Sender<()>> {
        let now = Instant::now();
        match input {
            Input::Packet(p) => self.on_packet(&p, now),
            Input::Timer => self.on_timers(now),
            Input::RxError => self.counters.rx_errors += 1,
            Input::Request(r) => match r {
                Request::Add(cfg, reply) => {
                    let _ = reply.send(self.add(cfg, now));
                }
                Request::Remove(key, reply) => {
                    let _ = reply.send(self.remove(&key, now));
                }
                Request::Reconfigure(key, timers, reply) => {
                    let _ = reply.send(self.reconfigure(&key, timers, now));
                }
                Request::AdminDown(key, down, reply) => {
                    let _ = reply.send(self.admin_down(&key, down, now));
                }
                Request::Subscribe(key, reply) => {
                    let r = self
                        .find(&key)
                        .map(|d| self.sessions[&d].status.subscribe());
                    let _ = reply.send(r);
                }
                Request::Sessions(reply) => {
                    let _ = reply.send(self.list());
                }
                Request::Counters(reply) => {
                    let _ = reply.send(self.counters.clone());
                }
                Request::Shutdown(reply) => return Some(reply),
            },
        }
        None
    }

    fn on_packet(&mut self, r: &Received, now: Instant) {
        self.counters.rx_packets += 1;
        let pkt = match ControlPacket::decode(&r.buf[..r.len]) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(src = %r.meta.src, error = %e, "bfd: packet discarded");
                self.counters.discard(e.reason());
                return;
            }
        };
        let discr = match self.demux.find(&pkt, &r.meta) {
            Ok(d) => d,
            Err(reason) => {
                tracing::debug!(src = %r.meta.src, reason = reason.as_str(), "bfd: packet discarded");
                self.counters.discard(reason);
                return;
            }
        };
        let Some(e) = self.sessions.get_mut(&discr) else {
            return;
        };
        let out = e.fsm.receive(&pkt, now);
        self.apply(discr, out);
    }

    fn on_timers(&mut self, now: Instant) {
        while let Some(&(t, discr)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(e) = self.sessions.get_mut(&discr) else {
                continue;
            };
            e.deadline = None;
            let out = e.fsm.on_timer(now);
            self.apply(discr, out);
        }
    }

    fn add(
        &mut self,
        cfg: SessionConfig,
        now: Instant,
    ) -> Result<watch::Receiver<SessionStatus>, BfdError> {
        let peer = cfg.peer;
        let config = |source| BfdError::Config { peer, source };
        cfg.validate().map_err(config)?;
        let interface = match &cfg.interface {
            Some(name) => {
                let i = ifindex(name)
                    .ok_or_else(|| config(ConfigError::NoSuchInterface { name: name.clone() }))?;
                Some((name.clone(), i))
            }
            None => None,
        };
        let key = cfg.key();
        if self.keys.contains_key(&key) {
            return Err(BfdError::Exists(key));
        }
        let path = Path {
            peer,
            local: cfg.local,
            ifindex: interface.as_ref().map(|(_, i)| *i),
            multihop: cfg.multihop,
            min_ttl: cfg.min_ttl,
        };
        if let Some(d) = self.demux.conflict(&path) {
            let existing = self.sessions[&d].key.clone();
            return Err(BfdError::Conflict {
                key: Box::new(key),
                existing: Box::new(existing),
            });
        }
        let endpoint = Endpoint {
            peer,
            local: cfg.local,
            interface,
            multihop: cfg.multihop,
        };
        let tx = self
            .net
            .open(&endpoint)
            .map_err(|source| BfdError::Io { peer, source })?;
        let discr = loop {
            let d = self.rng.u32(1..);
            if !self.demux.contains(d) {
                break d;
            }
        };
        let fsm = Session::new(discr, cfg.timers, self.rng.u64(..), now);
        let (status, rx) = watch::channel(SessionStatus::of(&fsm));
        tracing::info!(peer = %peer, discr, multihop = cfg.multihop, "bfd: session added");
        self.demux.insert(discr, path);
        self.keys.insert(key.clone(), discr);
        self.sessions.insert(
            discr,
            Entry {
                key,
                fsm,
                tx,
                status,
                deadline: None,
            },
        );
        self.schedule(discr);
        Ok(rx)
    }

    fn remove(&mut self, key: &SessionKey, now: Instant) -> Result<(), BfdError> {
        let discr = self.find(key)?;
        let Some(e) = self.sessions.get_mut(&discr) else {
            return Err(BfdError::NotFound(key.clone()));
        };
        let out = e.fsm.set_admin_down(true, now);
        self.apply(discr, out);
        self.drop_session(discr);
        tracing::info!(peer = %key.peer, discr, "bfd: session removed");
        Ok(())
    }

    fn reconfigure(
        &mut self,
        key: &SessionKey,
        timers: Timers,
        now: Instant,
    ) -> Result<(), BfdError> {
        timers.validate().map_err(|source| BfdError::Config {
            peer: key.peer,
            source,
        })?;
        let discr = self.find(key)?;
        if let Some(e) = self.sessions.get_mut(&discr) {
            let out = e.fsm.set_timers(timers, now);
            self.apply(discr, out);
        }
        Ok(())
    }

    fn admin_down(&mut self, key: &SessionKey, down: bool, now: Instant) -> Result<(), BfdError> {
        let discr = self.find(key)?;
        if let Some(e) = self.sessions.get_mut(&discr) {
            let out = e.fsm.set_admin_down(down, now);
            self.apply(discr, out);
        }
        Ok(())
    }

    fn find(&self, key: &SessionKey) -> Result<u32, BfdError> {
        self.keys
            .get(key)
            .copied()
            .ok_or_else(|| BfdError::NotFound(key.clone()))
    }

    fn list(&self) -> Vec<SessionInfo> {
        let mut v: Vec<_> = self
            .sessions
            .values()
            .map(|e| SessionInfo {
                key: e.key.clone(),
                timers: e.fsm.timers(),
                status: SessionStatus::of(&e.fsm),
                rx_packets: e.fsm.stats().rx_packets,
                tx_packets: e.fsm.stats().tx_packets,
            })
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Sends what the session produced, publishes its status when it
    /// changed, and re-arms its deadline.
    fn apply(&mut self, discr: u32, out: Output) {
        let Some(e) = self.sessions.get_mut(&discr) else {
            return;
        };
        if let Some(p) = out.send {
            e.fsm.sent();
            match self.net.send(e.tx, &p.encode()) {
                Ok(()) => self.counters.tx_packets += 1,
                Err(err) => {
                    self.counters.tx_errors += 1;
                    tracing::debug!(peer = %e.key.peer, error = %err, "bfd: send failed");
                }
            }
        }
        if let Some(c) = out.change {
            if c.from == State::Up {
                self.counters.up_to_down += 1;
                tracing::warn!(peer = %e.key.peer, to = c.to.as_str(), diag = c.diag.as_str(), "bfd: session down");
            } else {
                tracing::info!(peer = %e.key.peer, from = c.from.as_str(), to = c.to.as_str(), "bfd: session state");
            }
        }
        let now = SessionStatus::of(&e.fsm);
        e.status.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
        self.schedule(discr);
    }

    fn schedule(&mut self, discr: u32) {
        let Some(e) = self.sessions.get_mut(&discr) else {
            return;
        };
        let next = e.fsm.next_deadline();
        if next == e.deadline {
            return;
        }
        if let Some(old) = e.deadline.take() {
            self.deadlines.remove(&(old, discr));
        }
        if let Some(t) = next {
            self.deadlines.insert((t, discr));
        }
        e.deadline = next;
    }

    fn drop_session(&mut self, discr: u32) {
        if let Some(e) = self.sessions.remove(&discr) {
            if let Some(t) = e.deadline {
                self.deadlines.remove(&(t, discr));
            }
            self.keys.remove(&e.key);
            self.demux.remove(discr);
            self.net.close(e.tx);
        }
    }

    /// Says AdminDown on every session, then closes them.
    fn stop(&mut self) {
        let now = Instant::now();
        let all: Vec<u32> = self.sessions.keys().copied().collect();
        for discr in all {
            if let Some(e) = self.sessions.get_mut(&discr) {
                let out = e.fsm.set_admin_down(true, now);
                self.apply(discr, out);
            }
            self.drop_session(discr);
        }
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
