//! One BGP connection: OPEN exchange, keepalives, hold timer, reading and
//! writing messages. Socket I/O only; routing decisions are the instance's.
//!
//! ```text
//!   socket --> reader task --(decoded msgs)--> session task --(FromSession)--> instance
//!                                                   ^
//!   socket <------------ writes --------------------+---(ToSession)--- instance
//! ```
//!
//! The reader (`reader.rs`) is a separate task so that a panic on hostile
//! input only closes this connection. Keepalives and the hold timer live
//! here, not in the instance, so a busy RIB never starves them; while the
//! instance is slow to take our updates we stop reading, and then the hold
//! timer is re-armed instead of expiring (the peer's keepalives are
//! waiting unread in our socket: not its fault). Writes never block the
//! session: what the socket does not take waits in an outbox (`outbox.rs`)
//! while timers and reads go on, and a peer that takes nothing for the
//! send hold time (RFC 9687) is closed with NOTIFICATION 8.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};

use super::negotiate::{check_open, code, Agreed, LocalOffer};
use super::outbox::{encode_batch, Outbox};
use super::reader::{read_loop, ReadError, ReadItem};
use super::transport::{Stream, WriteHalf};
use crate::packet::{self, DecodeCtx, EncodeCtx, Message, Notification, Open, Update, MAX_LEN};
use crate::rib::OutBatch;
use crate::route::Afi;

/// Hold time while waiting for the peer's OPEN (RFC 4271 §8: "large", 4 min).
pub(crate) const OPEN_HOLD: Duration = Duration::from_secs(240);
/// The same on a connection the peer opened: it sends its OPEN at once
/// (RFC 4271 §8.2.2, OpenSent), so one that does not is closed well before
/// the 4 minutes a connection flood would like to hold each socket.
pub(crate) const INBOUND_OPEN_WAIT: Duration = Duration::from_secs(30);
/// The least send hold time (RFC 9687's suggested 8 minutes).
const SEND_HOLD_MIN: Duration = Duration::from_secs(8 * 60);
/// How long a closing session tries to get its last bytes and the
/// NOTIFICATION out (a peer that reads nothing never takes them).
const CLOSE_WRITE: Duration = Duration::from_secs(2);
/// Capacity of the reader -> session queue.
const READ_QUEUE: usize = 16;
/// Batches of routes queued for a session at most: one waits to be
/// encoded while the session writes the one before. It asks for more
/// (`Drained`) when it has fewer.
pub(crate) const OUT_WINDOW: usize = 1;

/// Identifies one connection (a peer may have two during a collision).
pub type ConnId = u64;

/// What the instance tells a session.
#[derive(Debug)]
pub enum ToSession {
    /// Collision verdict after OpenReceived: `false` closes with Cease/7.
    Proceed(bool),
    Batch(OutBatch),
    EndOfRib(Afi),
    /// Ask the peer to send its routes of this family again (RFC 2918).
    RouteRefresh(Afi),
    /// Send this NOTIFICATION and close; `None`: close the TCP connection
    /// without one (a restart to a peer with graceful restart but no N
    /// bit, RFC 4724 §4: it keeps our routes as stale).
    Close(Option<Notification>),
}

/// What a session tells the instance.
#[derive(Debug)]
pub enum FromSession {
    /// The peer's OPEN passed our checks; the session waits for
    /// [`ToSession::Proceed`] (collision detection, RFC 4271 §6.8).
    OpenReceived(Box<Open>, Agreed),
    Established {
        local_addr: IpAddr,
        /// Our link-local address toward the peer, when it shares our
        /// subnet (RFC 2545 §3).
        link_local: Option<Ipv6Addr>,
    },
    Update(Update),
    RouteRefresh(Afi, u8),
    /// The session wrote everything it was given.
    Drained,
    Closed(CloseInfo),
}

/// Why a connection ended.
#[derive(Clone, Debug)]
pub struct CloseInfo {
    pub reason: String,
    pub sent: Option<Notification>,
    pub received: Option<Notification>,
}

/// Message counters, shared read-only with the instance for status.
#[derive(Debug, Default)]
pub struct Counters {
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub updates_in: AtomicU64,
    pub updates_out: AtomicU64,
    /// Routes withdrawn from the peer because they could not be encoded.
    pub unsendable: AtomicU64,
}

/// The fixed facts of one connection.
#[derive(Clone, Debug)]
pub struct SessionSpec {
    pub conn: ConnId,
    pub peer: IpAddr,
    /// How long the peer's OPEN may take.
    pub open_wait: Duration,
    pub offer: LocalOffer,
    pub expected_asn: u32,
    pub ibgp: bool,
}

type Events = mpsc::Sender<(ConnId, FromSession)>;

/// Runs a connection to its end and reports `Closed`.
pub async fn run(
    spec: SessionSpec,
    stream: Stream,
    events: Events,
    rx: mpsc::Receiver<ToSession>,
    counters: Arc<Counters>,
) {
    let conn = spec.conn;
    let mut s = Session {
        spec,
        events: events.clone(),
        rx,
        counters,
        established: false,
        agreed: None,
        out: Outbox::default(),
    };
    let info = s.drive(stream).await;
    let _ = events.send((conn, FromSession::Closed(info))).await;
}

struct Session {
    spec: SessionSpec,
    events: Events,
    rx: mpsc::Receiver<ToSession>,
    counters: Arc<Counters>,
    established: bool,
    agreed: Option<Agreed>,
    /// What is queued for the peer in Established.
    out: Outbox,
}

/// The send hold time (RFC 9687) for a negotiated hold time: a session
/// whose writes make no progress for this long is closed. The RFC's
/// suggested default: the greater of 8 minutes and twice the hold time;
/// none when the hold time is zero.
pub(crate) fn send_hold_time(hold_time: u16) -> Option<Duration> {
    match hold_time {
        0 => None,
        h => Some(SEND_HOLD_MIN.max(Duration::from_secs(2 * u64::from(h)))),
    }
}

/// What woke an Established session.
enum Wake {
    Hold,
    SendHold,
    Keepalive,
    Wrote(std::io::Result<usize>),
    /// A message read was handed to the instance.
    Forwarded,
    /// The instance went away.
    Stopped,
    Command(ToSession),
    Read(Option<ReadItem>),
}

/// How a phase ended early.
enum Stop {
    /// Send this and close.
    Notify(Notification, String),
    /// Close without a NOTIFICATION (after what is queued).
    Hangup(String),
    /// The peer sent a NOTIFICATION.
    Received(Notification),
    /// The connection or the instance went away.
    Gone(String),
}

// ===== impl Session =====

impl Session {
    async fn drive(&mut self, stream: Stream) -> CloseInfo {
        stream.set_nodelay();
        let local_addr = stream.local_ip();
        let link_local = stream.link_local();
        let (rd, mut wr) = stream.into_split();
        let pre_open = DecodeCtx {
            asn4: true,
            ibgp: self.spec.ibgp,
            max_len: MAX_LEN,
            families: self.spec.offer.families.clone(),
        };
        let (msg_tx, mut msgs) = mpsc::channel(READ_QUEUE);
        let (ctx_tx, ctx_rx) = oneshot::channel();
        let reader = tokio::spawn(read_loop(rd, msg_tx, pre_open, ctx_rx));
        let _reader = AbortOnDrop(reader);
        let stop = match local_addr {
            Ok(addr) => {
                self.phases(&mut wr, &mut msgs, ctx_tx, addr, link_local)
                    .await
            }
            Err(e) => Stop::Gone(format!("socket has no local address: {e}")),
        };
        let (reason, sent, received) = match stop {
            Stop::Notify(n, why) => {
                // After whatever part of a message is still queued, so
                // that the peer can read it as a NOTIFICATION.
                self.queue(packet::encode_notification(&n));
                self.flush_and_shut(&mut wr).await;
                (why, Some(n), None)
            }
            Stop::Hangup(why) => {
                self.flush_and_shut(&mut wr).await;
                (why, None, None)
            }
            Stop::Received(n) => (notification_text("received", &n), None, Some(n)),
            Stop::Gone(why) => (why, None, None),
        };
        tracing::debug!(
            peer = %self.spec.peer,
            conn = self.spec.conn,
            established = self.established,
            "connection closed: {reason}"
        );
        CloseInfo {
            reason,
            sent,
            received,
        }
    }

    async fn phases(
        &mut self,
        wr: &mut WriteHalf,
        msgs: &mut mpsc::Receiver<ReadItem>,
        ctx_tx: oneshot::Sender<DecodeCtx>,
        local_addr: IpAddr,
        link_local: Option<Ipv6Addr>,
    ) -> Stop {
        // OpenSent.
        let open = self.spec.offer.open();
        if let Err(e) = self.write(wr, &packet::encode_open(&open)).await {
            return e;
        }
        let deadline = Instant::now() + self.spec.open_wait;
        let peer_open = match recv_until(msgs, &mut self.rx, deadline).await {
            Ok(Message::Open(o)) => o,
            Ok(other) => return unexpected(&other, "OpenSent", 1),
            Err(stop) => return stop,
        };
        self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
        let agreed = match check_open(
            &self.spec.offer,
            self.spec.expected_asn,
            self.spec.ibgp,
            &peer_open,
        ) {
            Ok(a) => a,
            Err((n, why)) => return Stop::Notify(n, why),
        };
        let _ = ctx_tx.send(DecodeCtx {
            asn4: agreed.asn4,
            ibgp: self.spec.ibgp,
            max_len: agreed.max_len,
            families: agreed.families.clone(),
        });
        self.agreed = Some(agreed.clone());
        if let Err(stop) = self
            .tell(FromSession::OpenReceived(
                Box::new(peer_open),
                agreed.clone(),
            ))
            .await
        {
            return stop;
        }
        match tokio::time::timeout(OPEN_HOLD, self.rx.recv()).await {
            Ok(Some(ToSession::Proceed(true))) => {}
            Ok(Some(ToSession::Close(n))) => return closed_by_speaker(n),
            Ok(Some(ToSession::Proceed(false))) => {
                return Stop::Notify(
                    cease(code::COLLISION),
                    "connection collision: the other connection won".into(),
                )
            }
            _ => return Stop::Gone("speaker did not answer the OPEN".into()),
        }
        // OpenConfirm.
        if let Err(e) = self.write(wr, &packet::encode_keepalive()).await {
            return e;
        }
        let hold = Duration::from_secs(u64::from(agreed.hold_time));
        let deadline = Instant::now() + if hold.is_zero() { OPEN_HOLD } else { hold };
        // RFC 4271 §8.2.2, OpenConfirm: our KEEPALIVEs go on at the
        // keepalive interval until the peer's first one comes.
        let keepalive = Duration::from_secs(u64::from(agreed.keepalive));
        let mut keepalive_at = Instant::now() + keepalive;
        let first = loop {
            tokio::select! {
                m = recv_until(msgs, &mut self.rx, deadline) => break m,
                _ = sleep_until(keepalive_at), if !keepalive.is_zero() => {
                    if let Err(e) = self.write(wr, &packet::encode_keepalive()).await {
                        return e;
                    }
                    keepalive_at += keepalive;
                }
            }
        };
        match first {
            Ok(Message::Keepalive) => {}
            Ok(other) => return unexpected(&other, "OpenConfirm", 2),
            Err(stop) => return stop,
        }
        self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
        self.established = true;
        if let Err(stop) = self
            .tell(FromSession::Established {
                local_addr,
                link_local,
            })
            .await
        {
            return stop;
        }
        self.established_loop(wr, msgs, &agreed).await
    }

    async fn established_loop(
        &mut self,
        wr: &mut WriteHalf,
        msgs: &mut mpsc::Receiver<ReadItem>,
        agreed: &Agreed,
    ) -> Stop {
        let far = Duration::from_secs(365 * 24 * 3600);
        let hold = match agreed.hold_time {
            0 => far,
            h => Duration::from_secs(u64::from(h)),
        };
        let keepalive = match agreed.keepalive {
            0 if agreed.hold_time == 0 => far,
            0 => Duration::from_secs(1),
            k => Duration::from_secs(u64::from(k)),
        };
        let send_hold = send_hold_time(agreed.hold_time);
        let enc = EncodeCtx {
            asn4: agreed.asn4,
            max_len: agreed.max_len,
        };
        let mut hold_at = Instant::now() + hold;
        let mut keepalive_at = Instant::now() + keepalive;
        // When a write last made progress (or the outbox was last empty).
        let mut sent_at = Instant::now();
        // A message read and not yet taken by the instance: reading stops
        // (and the hold timer with it: not the peer's fault) until it is.
        let mut unforwarded: Option<FromSession> = None;
        // The instance is owed a Drained once the outbox is empty.
        let mut owes_drained = false;
        loop {
            let writing = !self.out.is_empty();
            if !writing {
                sent_at = Instant::now();
                if owes_drained && self.rx.len() < OUT_WINDOW {
                    owes_drained = false;
                    if let Err(stop) = self.tell(FromSession::Drained).await {
                        return stop;
                    }
                }
            }
            // What woke the session, handled once the select's futures
            // (which borrow the session) are gone.
            let wake = tokio::select! {
                biased;
                _ = sleep_until(hold_at), if unforwarded.is_none() => Wake::Hold,
                _ = sleep_until(sent_at + send_hold.unwrap_or(far)), if writing && send_hold.is_some() => Wake::SendHold,
                _ = sleep_until(keepalive_at) => Wake::Keepalive,
                written = wr.write(self.out.pending()), if writing => Wake::Wrote(written),
                permit = self.events.reserve(), if unforwarded.is_some() => match permit {
                    Ok(permit) => {
                        if let Some(event) = unforwarded.take() {
                            permit.send((self.spec.conn, event));
                        }
                        Wake::Forwarded
                    }
                    Err(_) => Wake::Stopped,
                },
                cmd = self.rx.recv(), if !writing => match cmd {
                    Some(cmd) => Wake::Command(cmd),
                    None => Wake::Stopped,
                },
                msg = msgs.recv(), if unforwarded.is_none() => Wake::Read(msg),
            };
            match wake {
                Wake::Hold => {
                    return Stop::Notify(
                        Notification {
                            code: code::HOLD_TIMER,
                            subcode: 0,
                            data: Vec::new(),
                        },
                        format!(
                            "hold timer expired ({} s without a message)",
                            agreed.hold_time
                        ),
                    );
                }
                Wake::SendHold => {
                    return Stop::Notify(
                        Notification { code: code::SEND_HOLD_TIMER, subcode: 0, data: Vec::new() },
                        format!(
                            "send hold timer expired: nothing could be sent for {} s (the peer reads nothing; {} bytes waiting)",
                            send_hold.unwrap_or(far).as_secs(),
                            self.out.pending().len(),
                        ),
                    );
                }
                Wake::Keepalive => {
                    // While a message is on its way, it is the keepalive.
                    if !writing {
                        self.queue(packet::encode_keepalive());
                        if let Err(e) = self.write_ready(wr) {
                            return e;
                        }
                    }
                    keepalive_at = Instant::now() + keepalive;
                }
                Wake::Wrote(Ok(0)) => {
                    return Stop::Gone("write failed: the connection takes no more".into())
                }
                Wake::Wrote(Ok(n)) => {
                    self.out.advance(n);
                    sent_at = Instant::now();
                }
                Wake::Wrote(Err(e)) => return Stop::Gone(format!("write failed: {e}")),
                Wake::Forwarded => {
                    hold_at = hold_at.max(Instant::now() + hold.min(Duration::from_secs(3)));
                }
                Wake::Stopped => return Stop::Gone("speaker stopped".into()),
                Wake::Command(cmd) => {
                    let bytes = match cmd {
                        ToSession::Batch(b) => encode_batch(&enc, b, &self.counters),
                        ToSession::EndOfRib(afi) => packet::encode_end_of_rib(afi),
                        ToSession::RouteRefresh(afi) => packet::encode_route_refresh(afi, 0),
                        ToSession::Close(n) => return closed_by_speaker(n),
                        ToSession::Proceed(_) => Vec::new(),
                    };
                    self.queue(bytes);
                    owes_drained = true;
                    if let Err(e) = self.write_ready(wr) {
                        return e;
                    }
                    // Any message we send restarts the peer's hold timer.
                    keepalive_at = Instant::now() + keepalive;
                }
                Wake::Read(msg) => {
                    let msg = match msg {
                        Some(Ok(m)) => m,
                        Some(Err(stop)) => return reader_stop(stop),
                        None => return Stop::Gone("connection closed by peer".into()),
                    };
                    self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
                    hold_at = Instant::now() + hold;
                    unforwarded = match msg {
                        Message::Keepalive => None,
                        Message::Update(u) => {
                            self.counters.updates_in.fetch_add(1, Ordering::Relaxed);
                            Some(FromSession::Update(u))
                        }
                        Message::RouteRefresh { afi, subtype } => {
                            Some(FromSession::RouteRefresh(afi, subtype))
                        }
                        Message::Notification(n) => return Stop::Received(n),
                        other @ Message::Open(_) => return unexpected(&other, "Established", 3),
                    };
                }
            }
        }
    }

    /// A whole write, for the few messages before Established (into an
    /// empty socket buffer).
    async fn write(&self, wr: &mut WriteHalf, bytes: &[u8]) -> Result<(), Stop> {
        if bytes.is_empty() {
            return Ok(());
        }
        wr.write_all(bytes)
            .await
            .map_err(|e| Stop::Gone(format!("write failed: {e}")))?;
        self.counters.messages_out.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes what is queued and closes our side (TCP FIN), for at most
    /// [`CLOSE_WRITE`] (a peer that reads nothing never takes it).
    async fn flush_and_shut(&self, wr: &mut WriteHalf) {
        let out = &self.out;
        let _ = tokio::time::timeout(CLOSE_WRITE, async {
            wr.write_all(out.pending()).await?;
            wr.shutdown().await
        })
        .await;
    }

    /// Puts a message (or a batch of them) in the outbox.
    fn queue(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        self.counters.messages_out.fetch_add(1, Ordering::Relaxed);
        self.out.push(bytes);
    }

    /// Writes what the socket takes now, without waiting: the usual case
    /// (room in the socket buffer) costs no turn of the loop.
    fn write_ready(&mut self, wr: &mut WriteHalf) -> Result<(), Stop> {
        while !self.out.is_empty() {
            match wr.try_write(self.out.pending()) {
                Ok(0) => {
                    return Err(Stop::Gone(
                        "write failed: the connection takes no more".into(),
                    ))
                }
                Ok(n) => self.out.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Stop::Gone(format!("write failed: {e}"))),
            }
        }
        Ok(())
    }

    async fn tell(&self, ev: FromSession) -> Result<(), Stop> {
        self.events
            .send((self.spec.conn, ev))
            .await
            .map_err(|_| Stop::Gone("speaker stopped".into()))
    }
}

/// The next message before `deadline` (the hold timer of OpenSent and
/// OpenConfirm), or how the wait ended: the peer's NOTIFICATION, the
/// connection gone, the timer, or the speaker closing the connection.
async fn recv_until(
    msgs: &mut mpsc::Receiver<ReadItem>,
    rx: &mut mpsc::Receiver<ToSession>,
    deadline: Instant,
) -> Result<Message, Stop> {
    loop {
        tokio::select! {
            m = msgs.recv() => return match m {
                Some(Ok(Message::Notification(n))) => Err(Stop::Received(n)),
                Some(Ok(m)) => Ok(m),
                Some(Err(e)) => Err(reader_stop(e)),
                None => Err(Stop::Gone("connection closed by peer".into())),
            },
            cmd = rx.recv() => match cmd {
                Some(ToSession::Close(n)) => return Err(closed_by_speaker(n)),
                // Nothing else comes before Established.
                Some(_) => {}
                None => return Err(Stop::Gone("speaker stopped".into())),
            },
            _ = sleep_until(deadline) => return Err(Stop::Notify(
                Notification { code: code::HOLD_TIMER, subcode: 0, data: Vec::new() },
                "hold timer expired while opening the session".into(),
            )),
        }
    }
}

/// How a close the speaker asked for ends: with its NOTIFICATION, or,
/// without one, as a restart looks to the peer (RFC 4724 §4).
fn closed_by_speaker(n: Option<Notification>) -> Stop {
    match n {
        Some(n) => Stop::Notify(n, "closed by the speaker".into()),
        None => Stop::Hangup(
            "closed by the speaker without a NOTIFICATION (a restart, RFC 4724 §4)".into(),
        ),
    }
}

/// RFC 4271 §6.6: an unexpected message is an FSM error; RFC 6608 subcodes
/// 1/2/3 = in OpenSent / OpenConfirm / Established.
fn unexpected(msg: &Message, state: &str, subcode: u8) -> Stop {
    let kind = match msg {
        Message::Open(_) => "OPEN",
        Message::Update(_) => "UPDATE",
        Message::Notification(_) => "NOTIFICATION",
        Message::Keepalive => "KEEPALIVE",
        Message::RouteRefresh { .. } => "ROUTE-REFRESH",
    };
    Stop::Notify(
        Notification {
            code: code::FSM,
            subcode,
            data: Vec::new(),
        },
        format!("unexpected {kind} in {state}"),
    )
}

fn reader_stop(e: ReadError) -> Stop {
    match e {
        ReadError::Decode(d) => Stop::Notify(d.notification, d.reason),
        ReadError::Io(why) => Stop::Gone(why),
    }
}

/// A Cease NOTIFICATION with the given subcode.
pub fn cease(subcode: u8) -> Notification {
    Notification {
        code: code::CEASE,
        subcode,
        data: Vec::new(),
    }
}

/// "sent/received NOTIFICATION 4/0 (hold timer expired)".
pub fn notification_text(dir: &str, n: &Notification) -> String {
    format!("{dir} NOTIFICATION {}/{}", n.code, n.subcode)
}

/// Aborts the task when dropped.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> std::fmt::Debug for AbortOnDrop<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AbortOnDrop")
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
