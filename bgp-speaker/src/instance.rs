//! The owner task: holds the configuration, the neighbours and the RIB, and
//! processes every input in one place (`events::dispatch`).
//!
//! ```text
//!  SpeakerHandle --Command--> +----------+ --ToSession--> session tasks
//!  listener ----Accepted----> | instance | <-FromSession-- session tasks
//!  dialer -----Connected----> |          |
//!  timers ------Input-------> +----------+ --Vec<BestPathChange>--> caller
//!                                  |  \--Arc<Status> (watch)--> handles
//! ```
//!
//! Inputs are drained in batches; after each batch the decision process runs
//! over the dirty prefixes, per-peer changes are handed to the sessions with
//! room for them, and a status snapshot is published if a session changed
//! state (counters alone: at the next one-second tick, or when asked).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::api::{BestPathChange, Command, SpeakerHandle, CHANNEL_CAPACITY};
use crate::bfd_link::BfdService;
use crate::config::{PeerConfig, SpeakerConfig};
use crate::error::Error;
use crate::events::Input;
use crate::memory::Trimmer;
use crate::neighbor::negotiate::LocalOffer;
use crate::neighbor::session::{
    self, AbortOnDrop, ConnId, FromSession, SessionSpec, ToSession, OUT_WINDOW,
};
use crate::neighbor::transport::{Dialer, Stream, TcpDialer};
use crate::neighbor::{tcp, Conn, Neighbor};
use crate::packet::{GracefulRestartCap, MAX_LEN};
use crate::rib::export::LocalFacts;
use crate::rib::{PeerId, Rib};
use crate::status::{SessionState, Status};

/// Inputs handled between two decision runs.
const BATCH: usize = 512;
/// Prefixes handed to a session at a time: about one full UPDATE of IPv4
/// host routes (5 octets each) at the session's message size, so that
/// packing is not cut short and little waits in memory per session.
fn out_chunk(max_len: usize) -> usize {
    (max_len.saturating_sub(96) / 5).max(64)
}

/// Events from all sessions waiting for the instance. Each may be an
/// UPDATE of ~800 decoded prefixes (~15 KB): the bound is what a peer
/// announcing faster than we decide can make us hold (its TCP connection
/// waits beyond it), and still more than one decision batch's worth.
const SESSION_EVENTS: usize = 128;
/// Messages a session may have queued (batches, End-of-RIB, Close).
const SESSION_QUEUE: usize = 8;

/// The listening socket and its accept task.
pub(crate) struct Listener {
    pub addr: SocketAddr,
    pub socket: Arc<TcpListener>,
    pub _task: AbortOnDrop<()>,
}

/// The speaker's state, owned by one task.
pub(crate) struct Instance {
    pub config: SpeakerConfig,
    pub rib: Rib,
    pub neighbors: FxHashMap<PeerId, Neighbor>,
    pub by_addr: FxHashMap<IpAddr, PeerId>,
    pub conn_owner: FxHashMap<ConnId, PeerId>,
    /// Connections of removed neighbours, sending their NOTIFICATION:
    /// dropped (and their task with them) once they report Closed.
    pub closing: FxHashMap<ConnId, Conn>,
    next_peer: PeerId,
    next_conn: ConnId,
    pub listener: Option<Listener>,
    /// Opens connections to active peers.
    pub dialer: Arc<dyn Dialer>,
    pub inputs: mpsc::Sender<Input>,
    pub sessions: mpsc::Sender<(ConnId, FromSession)>,
    best: mpsc::Sender<Vec<BestPathChange>>,
    status: watch::Sender<Arc<Status>>,
    /// Counters changed since the last snapshot (published at the tick).
    status_stale: bool,
    /// While set, we restarted (R bit) and hold our updates back until the
    /// peers' End-of-RIB or the deferral timer (RFC 4724 §4.1).
    pub deferring: Option<AbortOnDrop<()>>,
    /// Peers (besides configured ones) whose End-of-RIB ends the deferral.
    pub deferral_wait_for: Vec<IpAddr>,
    pub stopping: Option<tokio::sync::oneshot::Sender<()>>,
    /// When to give memory back after a burst of routes.
    pub trimmer: Trimmer,
    /// Inbound connections closed by the listener's limits.
    pub refused: crate::status::Refused,
    /// Peers with a max-prefix limit that sent UPDATEs in this batch.
    pub max_prefix_due: rustc_hash::FxHashSet<PeerId>,
    /// BFD with the peers that have it (`bfd_link`).
    pub bfd: BfdService,
}

/// Starts a speaker. Returns its handle and the stream of best-path changes
/// (batched; read it or drop it: a full channel slows the speaker down).
/// Fails if the configuration is invalid or the listen address cannot be
/// bound.
pub async fn start(
    config: SpeakerConfig,
) -> Result<(SpeakerHandle, mpsc::Receiver<Vec<BestPathChange>>), Error> {
    start_with(config, Arc::new(TcpDialer)).await
}

/// [`start`] with connections to active peers opened by `dialer` (tests:
/// in-memory pipes; see [`crate::transport`]).
pub async fn start_with(
    config: SpeakerConfig,
    dialer: Arc<dyn Dialer>,
) -> Result<(SpeakerHandle, mpsc::Receiver<Vec<BestPathChange>>), Error> {
    start_inner(config, dialer, None).await
}

/// [`start_with`] with BFD sessions made on `bfd` (tests: a service on
/// an in-memory network, `bfd::Bfd::with_network`) instead of a UDP
/// service of the speaker's own, started at the first BFD session.
pub async fn start_with_bfd(
    config: SpeakerConfig,
    dialer: Arc<dyn Dialer>,
    bfd: bfd::BfdHandle,
) -> Result<(SpeakerHandle, mpsc::Receiver<Vec<BestPathChange>>), Error> {
    start_inner(config, dialer, Some(bfd)).await
}

async fn start_inner(
    config: SpeakerConfig,
    dialer: Arc<dyn Dialer>,
    bfd: Option<bfd::BfdHandle>,
) -> Result<(SpeakerHandle, mpsc::Receiver<Vec<BestPathChange>>), Error> {
    config.check().map_err(Error::Config)?;
    let (cmd_tx, cmd_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (best_tx, best_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (input_tx, input_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (session_tx, session_rx) = mpsc::channel(SESSION_EVENTS);
    let (status_tx, status_rx) = watch::channel(Arc::new(Status::default()));
    let mut inst = Instance::new(
        &config, dialer, bfd, input_tx, session_tx, best_tx, status_tx,
    );
    if let Some(addr) = config.listen {
        inst.listener = Some(inst.bind(addr)?);
    }
    inst.set_listener_keys(&config)?;
    for p in &config.peers {
        inst.add_neighbor(p.clone(), false);
    }
    if config.graceful_restart.enabled && config.graceful_restart.restarting {
        let gr = &config.graceful_restart;
        let deferral = gr
            .deferral_time
            .unwrap_or_else(|| crate::config::default_deferral_time(gr.restart_time));
        let secs = u64::from(deferral.max(1));
        inst.deferring = Some(inst.timer(Duration::from_secs(secs), Input::DeferralExpired));
    }
    inst.publish();
    tokio::spawn(inst.run(cmd_rx, input_rx, session_rx));
    Ok((
        SpeakerHandle {
            commands: cmd_tx,
            status: status_rx,
        },
        best_rx,
    ))
}

/// The RIB's view of our identity.
pub(crate) fn local_facts(c: &SpeakerConfig) -> LocalFacts {
    LocalFacts {
        asn: c.asn,
        router_id: c.router_id,
        cluster_id: c.cluster_id,
    }
}

// ===== impl Instance =====

impl Instance {
    /// An instance of `config` that is not running yet: no listener, no
    /// peer. Its task (`run`) reads the other ends of the channels.
    fn new(
        config: &SpeakerConfig,
        dialer: Arc<dyn Dialer>,
        bfd: Option<bfd::BfdHandle>,
        inputs: mpsc::Sender<Input>,
        sessions: mpsc::Sender<(ConnId, FromSession)>,
        best: mpsc::Sender<Vec<BestPathChange>>,
        status: watch::Sender<Arc<Status>>,
    ) -> Instance {
        Instance {
            rib: Rib::new(local_facts(config)),
            config: config.clone(),
            neighbors: FxHashMap::default(),
            by_addr: FxHashMap::default(),
            conn_owner: FxHashMap::default(),
            closing: FxHashMap::default(),
            next_peer: 1,
            next_conn: 1,
            listener: None,
            dialer,
            inputs,
            sessions,
            best,
            status,
            status_stale: false,
            deferring: None,
            deferral_wait_for: config.graceful_restart.wait_for.clone(),
            stopping: None,
            trimmer: Trimmer::default(),
            refused: Default::default(),
            max_prefix_due: Default::default(),
            bfd: BfdService::new(bfd),
        }
    }

    /// An instance that never runs: its channels lead nowhere. For unit
    /// tests that call its handlers one by one.
    #[cfg(test)]
    pub(crate) fn idle(config: &SpeakerConfig) -> Instance {
        Instance::new(
            config,
            Arc::new(TcpDialer),
            None,
            mpsc::channel(CHANNEL_CAPACITY).0,
            mpsc::channel(SESSION_EVENTS).0,
            mpsc::channel(1).0,
            watch::channel(Arc::new(Status::default())).0,
        )
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inputs: mpsc::Receiver<Input>,
        mut sessions: mpsc::Receiver<(ConnId, FromSession)>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let first = tokio::select! {
                Some((c, ev)) = sessions.recv() => Input::Session(c, ev),
                Some(i) = inputs.recv() => i,
                c = commands.recv() => match c {
                    Some(c) => Input::Command(c),
                    // Every handle is gone: stop, leaving peers to GR.
                    None => Input::Command(Command::Shutdown(crate::api::ShutdownMode::Graceful, tokio::sync::oneshot::channel().0)),
                },
                _ = tick.tick() => Input::Tick,
            };
            let tick = matches!(first, Input::Tick);
            self.dispatch(first).await;
            for _ in 0..BATCH {
                let next = match sessions.try_recv() {
                    Ok((c, ev)) => Input::Session(c, ev),
                    Err(_) => match inputs.try_recv() {
                        Ok(i) => i,
                        Err(_) => break,
                    },
                };
                self.dispatch(next).await;
            }
            self.decide_and_flush().await;
            self.bfd_flush().await;
            if self.shape_changed() || (tick && self.status_stale) {
                self.publish();
            } else {
                self.status_stale = true;
            }
            if self.stopping.is_some() {
                self.finish_shutdown(&mut sessions).await;
                return;
            }
        }
    }

    /// Runs the decision process and hands per-peer work to the sessions.
    pub async fn decide_and_flush(&mut self) {
        let want = !self.best.is_closed();
        let changes = if self.rib.heavy() {
            // A large batch takes every core for a while (the shards in
            // parallel): on a blocking thread, so that the sessions on
            // this runtime (keepalives, hold timers) never wait for it.
            let stand_in = Rib::with_shards(local_facts(&self.config), 1);
            let mut rib = std::mem::replace(&mut self.rib, stand_in);
            match tokio::task::spawn_blocking(move || {
                let changes = rib.decide(want);
                (rib, changes)
            })
            .await
            {
                Ok((rib, changes)) => {
                    self.rib = rib;
                    changes
                }
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        } else {
            self.rib.decide(want)
        };
        for id in std::mem::take(&mut self.max_prefix_due) {
            self.check_max_prefix(id);
        }
        if !changes.is_empty() && !self.best.is_closed() {
            let _ = self.best.send(changes).await;
        }
        if self.deferring.is_some() {
            return;
        }
        let ids: Vec<PeerId> = self.neighbors.keys().copied().collect();
        for id in ids {
            self.flush_peer(id);
        }
    }

    /// Sends pending routes of one peer while its session has room, then
    /// its End-of-RIB once the initial table is out.
    pub fn flush_peer(&mut self, id: PeerId) {
        if self
            .neighbors
            .get(&id)
            .is_some_and(|n| !n.refresh_due.is_empty())
        {
            self.send_refreshes(id);
        }
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let Some(conn) = n.est() else { return };
        let tx = &conn.tx;
        let chunk = out_chunk(conn.agreed.as_ref().map_or(MAX_LEN, |a| a.max_len));
        while self.rib.skip_to_pending(id) {
            // Enough queued: the session's Drained event brings us back
            // here. Routes wait in the RIB (one shared log entry each),
            // not as a copy per session.
            if SESSION_QUEUE - tx.capacity() >= OUT_WINDOW {
                return;
            }
            let batch = self.rib.take_out(id, chunk);
            tracing::debug!(peer = %n.config.address, routes = batch.len(), "routes to send");
            if tx.try_send(ToSession::Batch(batch)).is_err() {
                return;
            }
        }
        if !n.eor_sent {
            let families = conn.agreed.as_ref().map_or(&[][..], |a| &a.families[..]);
            if tx.capacity() >= families.len() {
                for afi in families {
                    let _ = tx.try_send(ToSession::EndOfRib(*afi));
                }
                n.eor_sent = true;
            }
        }
    }

    /// Whether something other than counters differs from the last
    /// snapshot: the speaker's settings, the peers, a session's state or
    /// flaps, the restart deferral. Allocates nothing.
    fn shape_changed(&self) -> bool {
        let last = self.status.borrow();
        let c = &self.config;
        if last.router_id != Some(c.router_id)
            || last.asn != c.asn
            || last.cluster_id != c.cluster_id
            || last.listen != self.listener.as_ref().map(|l| l.addr)
            || last.deferring != self.deferring.is_some()
            || last.peers.len() != self.neighbors.len()
            || self.bfd.changed
        {
            return true;
        }
        self.neighbors.values().any(|n| {
            match last
                .peers
                .binary_search_by_key(&n.config.address, |p| p.address)
            {
                Ok(i) => {
                    let p = &last.peers[i];
                    p.state != n.state()
                        || p.flaps != n.flaps
                        || p.asn != n.config.asn
                        || p.rr_client != n.config.rr_client
                        || p.dynamic != n.dynamic
                }
                Err(_) => true,
            }
        })
    }

    /// The last published snapshot.
    pub fn status_now(&self) -> Arc<Status> {
        self.status.borrow().clone()
    }

    /// Publishes a fresh status snapshot.
    pub fn publish(&mut self) {
        self.status_stale = false;
        self.bfd.changed = false;
        let mut peers: Vec<_> = self
            .neighbors
            .values()
            .map(|n| {
                let rib = self.rib.apply_then_count(n.id);
                let received = rib.map(|p| p.received()).unwrap_or((0, 0));
                let advertised = rib.map(|p| p.advertised()).unwrap_or(0);
                n.status(received, advertised)
            })
            .collect();
        peers.sort_by_key(|p| p.address);
        let status = Status {
            router_id: Some(self.config.router_id),
            asn: self.config.asn,
            cluster_id: self.config.cluster_id,
            listen: self.listener.as_ref().map(|l| l.addr),
            loc_rib_prefixes: self.rib.apply_then_best_count(),
            deferring: self.deferring.is_some(),
            peers,
            refused: self.refused,
            // Only read where GTSM is in use: a file read per snapshot.
            kernel_min_ttl_drops: self
                .config
                .listener_min_ttl()
                .and_then(|_| tcp::min_ttl_drops()),
            bfd: self.bfd.counters.clone(),
        };
        self.status.send_replace(Arc::new(status));
    }

    /// Binds the listener and starts accepting.
    pub fn bind(&self, addr: SocketAddr) -> Result<Listener, Error> {
        let socket = Arc::new(tcp::listen(addr).map_err(|source| Error::Listen { addr, source })?);
        let addr = socket.local_addr().unwrap_or(addr);
        let (sock, tx) = (socket.clone(), self.inputs.clone());
        let task = tokio::spawn(async move {
            loop {
                match sock.accept().await {
                    Ok((stream, from)) => {
                        if tx.send(Input::Accepted(stream.into(), from)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tracing::info!(%addr, "listening for BGP sessions");
        Ok(Listener {
            addr,
            socket,
            _task: AbortOnDrop(task),
        })
    }

    /// Installs the TCP MD5 keys and the GTSM settings of `config` on a
    /// fresh listener (at start: there are no keys to remove).
    pub fn set_listener_keys(&self, config: &SpeakerConfig) -> Result<(), Error> {
        let none = SpeakerConfig::new(config.router_id, config.asn);
        match &self.listener {
            Some(l) => {
                listener_keys(&l.socket, &none, config)?;
                listener_gtsm(l, config)
            }
            None => Ok(()),
        }
    }

    /// Creates a neighbour; active ones start connecting at once.
    pub fn add_neighbor(&mut self, config: PeerConfig, dynamic: bool) -> PeerId {
        let id = self.next_peer;
        self.next_peer += 1;
        self.by_addr.insert(config.address, id);
        let passive = config.passive || dynamic;
        self.neighbors
            .insert(id, Neighbor::new(id, config, dynamic));
        if !passive {
            self.schedule_connect(id, Duration::from_millis(jitter_ms(200)));
        }
        id
    }

    /// Arms the ConnectRetry timer of a neighbour.
    pub fn schedule_connect(&mut self, id: PeerId, after: Duration) {
        let timer = self.timer(after, Input::ConnectRetry(id));
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.connect_timer = Some(timer);
        }
    }

    /// A task that sends `input` after `after`; dropping it cancels.
    pub fn timer(&self, after: Duration, input: Input) -> AbortOnDrop<()> {
        let tx = self.inputs.clone();
        AbortOnDrop(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(input).await;
        }))
    }

    /// Starts a session on a new connection of neighbour `id`.
    pub fn spawn_session(&mut self, id: PeerId, stream: Stream, inbound: bool) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let gr = &self.config.graceful_restart;
        let spec = SessionSpec {
            conn,
            peer: n.config.address,
            // A peer that connects to us sends its OPEN at once; one that
            // does not is closed soon (a connection flood holds little).
            open_wait: if inbound {
                session::INBOUND_OPEN_WAIT
            } else {
                session::OPEN_HOLD
            },
            offer: LocalOffer {
                asn: self.config.asn,
                router_id: self.config.router_id,
                hold_time: n.config.hold_time,
                families: self.config.families.clone(),
                graceful_restart: gr.enabled.then(|| GracefulRestartCap {
                    restart_state: gr.restarting,
                    notification: true,
                    restart_time: n.config.restart_time.unwrap_or(gr.restart_time),
                    families: self.config.families.iter().map(|f| (*f, true)).collect(),
                }),
            },
            expected_asn: n.config.asn,
            ibgp: n.config.asn == self.config.asn,
        };
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let task = tokio::spawn(session::run(
            spec,
            stream,
            self.sessions.clone(),
            rx,
            n.counters.clone(),
        ));
        n.conns.push(Conn {
            id: conn,
            inbound,
            state: SessionState::OpenSent,
            tx,
            agreed: None,
            closing: false,
            _task: AbortOnDrop(task),
        });
        n.touch();
        self.conn_owner.insert(conn, id);
    }

    async fn finish_shutdown(&mut self, sessions: &mut mpsc::Receiver<(ConnId, FromSession)>) {
        // Give sessions a moment to write their NOTIFICATION and close.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !self.closing.is_empty() || self.neighbors.values().any(|n| !n.conns.is_empty()) {
            match tokio::time::timeout_at(deadline, sessions.recv()).await {
                Ok(Some((c, FromSession::Closed(_)))) => {
                    self.closing.remove(&c);
                    if let Some(id) = self.conn_owner.remove(&c) {
                        if let Some(n) = self.neighbors.get_mut(&id) {
                            n.conns.retain(|x| x.id != c);
                        }
                    }
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        self.bfd_shutdown().await;
        if let Some(done) = self.stopping.take() {
            let _ = done.send(());
        }
    }
}

/// Up to `max` ms of jitter, without a random number crate.
pub(crate) fn jitter_ms(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) % max.max(1)
}

/// Sets the listener's GTSM settings for `config`'s peers (see
/// [`SpeakerConfig::listener_min_ttl`]).
pub(crate) fn listener_gtsm(l: &Listener, config: &SpeakerConfig) -> Result<(), Error> {
    let min = config.listener_min_ttl();
    tcp::set_listener_gtsm(&l.socket, min).map_err(|source| Error::Gtsm {
        addr: l.addr,
        source,
    })?;
    if let Some(min) = min {
        tracing::debug!(addr = %l.addr, min_ttl = min, "GTSM: the listener answers with TTL 255 and drops SYNs below the lowest TTL a peer may have; each connection is then held to its peer's");
    }
    Ok(())
}

/// Moves the TCP MD5 keys on listening `socket` from those of `from` to
/// those of `to`: keys of peers that no longer have one are removed, the
/// others set. Stops at the first failure (the caller puts `from`'s back).
pub(crate) fn listener_keys(
    socket: &tokio::net::TcpListener,
    from: &SpeakerConfig,
    to: &SpeakerConfig,
) -> Result<(), Error> {
    for p in &from.peers {
        if p.password.is_some()
            && !to
                .peers
                .iter()
                .any(|q| q.address == p.address && q.password.is_some())
        {
            let _ = tcp::set_listener_md5(socket, p.address, None, "");
        }
    }
    for p in &to.peers {
        if let Some(key) = &p.password {
            tcp::set_listener_md5(socket, p.address, None, key).map_err(|source| Error::Md5 {
                peer: p.address,
                source,
            })?;
        }
    }
    for d in &to.dynamic_peers {
        if let Some(key) = &d.password {
            tcp::set_listener_md5(socket, d.prefix.addr(), Some(d.prefix.prefix_len()), key)
                .map_err(|source| Error::Md5 {
                    peer: d.prefix.addr(),
                    source,
                })?;
        }
    }
    Ok(())
}
