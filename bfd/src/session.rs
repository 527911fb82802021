//! One session's state machine (RFC 5880 §6.2, §6.8.1-§6.8.7, §6.8.16):
//! pure logic, fed packets and time as data, returning what to send and
//! how the state changed. No I/O and no timers of its own: the owner asks
//! [`Session::next_deadline`] and calls [`Session::on_timer`] then.
//!
//! ```text
//!                     +--+
//!                     |  | UP, ADMIN DOWN, TIMER
//!                     |  V
//!             DOWN  +------+  INIT
//!      +------------|      |------------+
//!      |            | DOWN |            |
//!      |  +-------->|      |<--------+  |
//!      |  |         +------+         |  |
//!      |  |                          |  |
//!      |  |               ADMIN DOWN,|  |
//!      |  |ADMIN DOWN,          DOWN,|  |
//!      |  |TIMER                TIMER|  |
//!      V  |                          |  V
//!    +------+                      +------+
//!    |      |                      |      |
//!    | INIT |--------------------->|  UP  |
//!    |      |    INIT, UP          |      |
//!    +------+                      +------+
//! ```
//! (RFC 5880 §6.2; events are the state the remote sends, and TIMER the
//! detection time expiring.)
//!
//! Timers (§6.8.2-§6.8.4): we send every max(our Desired Min TX, the
//! remote's Required Min RX), less 0-25% jitter (10-25% with multiplier
//! 1); the remote is declared down after its Detect Mult times max(our
//! Required Min RX, its Desired Min TX) without a packet. While not Up we
//! ask to send no faster than once a second. A change of our intervals
//! while Up starts a Poll Sequence (§6.5); a longer TX interval or a
//! shorter RX interval takes effect only when the Final arrives.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Timers, SLOW_TX};
use crate::packet::{ControlPacket, Diag, Flags, State};

/// What a call produced: a packet to send now, and a state change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Send this packet now (periodic, Final, or after a state change).
    pub send: Option<ControlPacket>,
    /// The session changed state.
    pub change: Option<Transition>,
}

/// A change of session state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state now.
    pub to: State,
    /// The local diagnostic set with it (RFC 5880 §4.1 "Diag").
    pub diag: Diag,
}

/// What we last heard from the remote system (RFC 5880 §6.8.1 bfd.Remote*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remote {
    /// bfd.RemoteDiscr: 0 until heard, and again after a detection time
    /// of silence.
    pub discr: u32,
    /// bfd.RemoteSessionState.
    pub state: State,
    /// The remote's last diagnostic.
    pub diag: Diag,
    /// bfd.RemoteDemandMode.
    pub demand: bool,
    /// bfd.RemoteMinRxInterval, µs (1 until heard, per §6.8.1).
    pub min_rx: u32,
    /// The remote's Desired Min TX Interval, µs.
    pub desired_min_tx: u32,
    /// The remote's Detect Mult (0 until heard).
    pub detect_mult: u8,
}

/// Per-session statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets accepted for this session.
    pub rx_packets: u64,
    /// Packets handed to the network for this session.
    pub tx_packets: u64,
    /// Transitions into Up.
    pub ups: u64,
    /// Transitions from Up to Down (or AdminDown).
    pub downs: u64,
}

/// One BFD session in asynchronous mode.
#[derive(Debug)]
pub struct Session {
    /// bfd.LocalDiscr.
    local_discr: u32,
    /// What the configuration asks for.
    timers: Timers,
    /// bfd.SessionState.
    state: State,
    /// bfd.LocalDiag.
    diag: Diag,
    /// The remote's variables.
    remote: Remote,
    /// bfd.DesiredMinTxInterval as sent, µs: the configured value once
    /// Up, at least [`SLOW_TX`] before.
    desired_min_tx: u32,
    /// bfd.RequiredMinRxInterval as sent, µs.
    required_min_rx: u32,
    /// The Desired Min TX our transmit timer uses: a longer interval
    /// waits for the Final of its Poll Sequence (§6.8.3).
    tx_in_use: u32,
    /// The Required Min RX our detection time uses: a shorter interval
    /// waits for the Final (§6.8.3).
    rx_in_use: u32,
    /// A Poll Sequence is running for these (desired tx, required rx).
    poll: Option<(u32, u32)>,
    /// When the last packet was accepted: the detection timer runs from it.
    last_rx: Option<Instant>,
    /// When the next periodic packet is due (None: none is sent).
    next_tx: Option<Instant>,
    /// When the state last changed.
    since: Instant,
    /// Jitter.
    rng: fastrand::Rng,
    /// Counts.
    stats: Stats,
}

// ===== impl Session =====

impl Session {
    /// A session in Down that sends its first packet at `now`. `seed`
    /// drives the jitter (give a random one outside tests).
    pub fn new(local_discr: u32, timers: Timers, seed: u64, now: Instant) -> Session {
        let desired_min_tx = slow(timers);
        let required_min_rx = micros(timers.min_rx);
        Session {
            local_discr,
            timers,
            state: State::Down,
            diag: Diag::None,
            remote: Remote {
                discr: 0,
                state: State::Down,
                diag: Diag::None,
                demand: false,
                min_rx: 1,
                desired_min_tx: 0,
                detect_mult: 0,
            },
            desired_min_tx,
            required_min_rx,
            tx_in_use: desired_min_tx,
            rx_in_use: required_min_rx,
            poll: None,
            last_rx: None,
            next_tx: Some(now),
            since: now,
            rng: fastrand::Rng::with_seed(seed),
            stats: Stats::default(),
        }
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// bfd.LocalDiag.
    pub fn diag(&self) -> Diag {
        self.diag
    }

    /// bfd.LocalDiscr.
    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }

    /// What we know of the remote system.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// The configured timers.
    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// Counts.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// When the state last changed.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Whether a Poll Sequence is running.
    pub fn polling(&self) -> bool {
        self.poll.is_some()
    }

    /// The interval between our periodic packets before jitter (§6.8.2),
    /// or None when the remote asked for none (Required Min RX 0, or
    /// Demand mode while both are Up: §6.8.7).
    pub fn tx_interval(&self) -> Option<Duration> {
        let demand =
            self.remote.demand && self.state == State::Up && self.remote.state == State::Up;
        if self.remote.min_rx == 0 || demand {
            return None;
        }
        Some(duration(self.tx_in_use.max(self.remote.min_rx)))
    }

    /// The detection time (§6.8.4): the remote's Detect Mult times
    /// max(our Required Min RX, its Desired Min TX). None until the
    /// remote was heard.
    pub fn detection_time(&self) -> Option<Duration> {
        if self.remote.detect_mult == 0 || self.last_rx.is_none() {
            return None;
        }
        let interval = self.rx_in_use.max(self.remote.desired_min_tx);
        Some(duration(interval) * u32::from(self.remote.detect_mult))
    }

    /// The earliest instant [`Session::on_timer`] has work at.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The packet we would send now, with P while polling (F and P are
    /// never both set).
    pub fn packet(&self, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.diag,
            state: self.state,
            flags: Flags {
                poll: self.poll.is_some() && !final_,
                final_,
                ..Flags::default()
            },
            detect_mult: self.timers.multiplier,
            my_discr: self.local_discr,
            your_discr: self.remote.discr,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            required_min_echo_rx: 0,
            auth_type: None,
        }
    }

    /// The service sent (or tried to send) a packet for this session.
    pub fn sent(&mut self) {
        self.stats.tx_packets += 1;
    }

    /// A packet the demux gave this session (every session-independent
    /// check of §6.8.6 passed): update the remote's variables, end a Poll
    /// Sequence on Final, run the state machine, answer a Poll.
    pub fn receive(&mut self, pkt: &ControlPacket, now: Instant) -> Output {
        self.stats.rx_packets += 1;
        self.remote.discr = pkt.my_discr;
        self.remote.state = pkt.state;
        self.remote.diag = pkt.diag;
        self.remote.demand = pkt.flags.demand;
        self.remote.min_rx = pkt.required_min_rx;
        self.remote.desired_min_tx = pkt.desired_min_tx;
        self.remote.detect_mult = pkt.detect_mult;
        if pkt.flags.final_ {
            self.finish_poll();
        }
        // §6.8.6: "If bfd.SessionState is AdminDown: Discard the packet".
        if self.state == State::AdminDown {
            self.reschedule(now);
            return Output::default();
        }
        let change = match (self.state, pkt.state) {
            (State::Down | State::AdminDown, State::AdminDown) => None,
            (_, State::AdminDown) => {
                Some(self.go(State::Down, Diag::NeighborSignaledSessionDown, now))
            }
            (State::Down, State::Down) => Some(self.go(State::Init, Diag::None, now)),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                Some(self.go(State::Up, Diag::None, now))
            }
            (State::Up, State::Down) => {
                Some(self.go(State::Down, Diag::NeighborSignaledSessionDown, now))
            }
            _ => None,
        };
        self.last_rx = Some(now);
        self.reschedule(now);
        let send = if pkt.flags.poll {
            Some(self.packet(true))
        } else if change.is_some() {
            Some(self.packet(false))
        } else {
            None
        };
        Output { send, change }
    }

    /// Time passed: declares the remote down after a detection time of
    /// silence (§6.8.4), and sends the periodic packet when it is due
    /// (§6.8.7).
    pub fn on_timer(&mut self, now: Instant) -> Output {
        let mut out = Output::default();
        if self.detect_deadline().is_some_and(|d| now >= d) {
            self.last_rx = None;
            // §6.8.1: bfd.RemoteDiscr is zeroed after a detection time of
            // silence, in any state.
            self.remote.discr = 0;
            self.remote.state = State::Down;
            if matches!(self.state, State::Init | State::Up) {
                out.change = Some(self.go(State::Down, Diag::ControlDetectionTimeExpired, now));
                self.reschedule(now);
            }
        }
        if self.next_tx.is_some_and(|t| now >= t) {
            out.send = Some(self.packet(false));
            self.next_tx = self.tx_interval().map(|iv| now + self.jitter(iv));
        } else if out.change.is_some() {
            out.send = Some(self.packet(false));
        }
        out
    }

    /// New timers from the configuration (§6.8.3): applied at once while
    /// not Up; while Up, announced by a Poll Sequence, a longer TX or a
    /// shorter RX interval used only once it is acknowledged.
    pub fn set_timers(&mut self, timers: Timers, now: Instant) -> Output {
        self.timers = timers;
        let tx = if self.state == State::Up {
            micros(timers.min_tx)
        } else {
            slow(timers)
        };
        self.change_intervals(tx, micros(timers.min_rx));
        self.reschedule(now);
        Output {
            send: self.poll.is_some().then(|| self.packet(false)),
            change: None,
        }
    }

    /// Holds the session in AdminDown (§6.8.16), or lets it out to Down.
    pub fn set_admin_down(&mut self, down: bool, now: Instant) -> Output {
        let change = match (down, self.state) {
            (true, State::AdminDown) | (false, State::Down | State::Init | State::Up) => {
                return Output::default()
            }
            (true, _) => self.go(State::AdminDown, Diag::AdministrativelyDown, now),
            (false, State::AdminDown) => self.go(State::Down, Diag::None, now),
        };
        self.last_rx = None;
        self.reschedule(now);
        Output {
            send: Some(self.packet(false)),
            change: Some(change),
        }
    }

    // ----- helpers -----

    /// Enters `to` with `diag`; leaving Up or entering it moves between
    /// the slow and the configured TX interval.
    fn go(&mut self, to: State, diag: Diag, now: Instant) -> Transition {
        let from = self.state;
        self.state = to;
        self.diag = diag;
        self.since = now;
        if to == State::Up {
            self.stats.ups += 1;
            self.change_intervals(micros(self.timers.min_tx), self.required_min_rx);
        } else {
            if from == State::Up {
                self.stats.downs += 1;
            }
            self.poll = None;
            self.desired_min_tx = slow(self.timers);
            self.tx_in_use = self.desired_min_tx;
            self.rx_in_use = self.required_min_rx;
        }
        Transition { from, to, diag }
    }

    /// §6.8.3: sets what we send; while Up starts a Poll Sequence (or
    /// leaves the running one to be followed by another) and holds back
    /// a longer TX / shorter RX interval.
    fn change_intervals(&mut self, tx: u32, rx: u32) {
        if (tx, rx) == (self.desired_min_tx, self.required_min_rx) {
            return;
        }
        self.desired_min_tx = tx;
        self.required_min_rx = rx;
        if self.state == State::Up {
            self.tx_in_use = self.tx_in_use.min(tx);
            self.rx_in_use = self.rx_in_use.max(rx);
            if self.poll.is_none() {
                self.poll = Some((tx, rx));
            }
        } else {
            self.tx_in_use = tx;
            self.rx_in_use = rx;
        }
    }

    /// A Final arrived: what the Poll announced is now in use; a change
    /// made meanwhile starts the next Poll.
    fn finish_poll(&mut self) {
        let Some((tx, rx)) = self.poll.take() else {
            return;
        };
        self.tx_in_use = self.desired_min_tx.min(tx);
        self.rx_in_use = self.required_min_rx.max(rx);
        if (self.desired_min_tx, self.required_min_rx) != (tx, rx) {
            self.poll = Some((self.desired_min_tx, self.required_min_rx));
        }
    }

    fn detect_deadline(&self) -> Option<Instant> {
        if self.state == State::AdminDown {
            return None;
        }
        Some(self.last_rx? + self.detection_time()?)
    }

    /// After the TX interval may have changed: the next packet comes no
    /// later than one (jittered) new interval from now.
    fn reschedule(&mut self, now: Instant) {
        match self.tx_interval() {
            None => self.next_tx = None,
            Some(iv) => {
                if self.next_tx.is_none_or(|t| t > now + iv) {
                    self.next_tx = Some(now + self.jitter(iv));
                }
            }
        }
    }

    /// §6.8.7: the interval less a random 0-25%; with Detect Mult 1, sent
    /// at 75-90% of it.
    fn jitter(&mut self, interval: Duration) -> Duration {
        let max = if self.timers.multiplier == 1 {
            900
        } else {
            1000
        };
        interval * self.rng.u32(750..=max) / 1000
    }
}

// ===== helpers =====

/// Whole microseconds, as on the wire.
pub(crate) fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

pub(crate) fn duration(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

/// Desired Min TX while not Up (§6.8.3).
fn slow(timers: Timers) -> u32 {
    micros(timers.min_tx.max(SLOW_TX))
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
