//! The state machine alone: two sessions wired back to back with virtual
//! time (instants are data here; nothing sleeps).

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Two sessions, 0 and 1, joined by a link that delivers at once (or
/// drops everything while cut).
struct Pair {
    s: [Session; 2],
    now: Instant,
    t0: Instant,
    link: bool,
    /// (time, sender, packet) of every packet sent.
    sent: Vec<(Duration, usize, ControlPacket)>,
    /// (time, session, transition).
    changes: Vec<(Duration, usize, Transition)>,
    /// Last time each session accepted a packet.
    last_rx: [Option<Instant>; 2],
}

impl Pair {
    fn new(a: Timers, b: Timers) -> Pair {
        let now = Instant::now();
        Pair {
            s: [Session::new(11, a, 1, now), Session::new(22, b, 2, now)],
            now,
            t0: now,
            link: true,
            sent: vec![],
            changes: vec![],
            last_rx: [None, None],
        }
    }

    fn at(&self) -> Duration {
        self.now - self.t0
    }

    fn handle(&mut self, who: usize, out: Output) {
        if let Some(c) = out.change {
            self.changes.push((self.at(), who, c));
        }
        if let Some(p) = out.send {
            self.s[who].sent();
            self.sent.push((self.at(), who, p));
            if self.link {
                let to = 1 - who;
                self.last_rx[to] = Some(self.now);
                let out = self.s[to].receive(&p, self.now);
                self.handle(to, out);
            }
        }
    }

    /// Runs every deadline up to `t` after the start.
    fn run_to(&mut self, t: Duration) {
        let end = self.t0 + t;
        loop {
            let next = [0, 1]
                .iter()
                .filter_map(|&i| self.s[i].next_deadline())
                .min();
            match next {
                Some(n) if n <= end => {
                    self.now = self.now.max(n);
                    for i in 0..2 {
                        if self.s[i].next_deadline().is_some_and(|d| d <= self.now) {
                            let out = self.s[i].on_timer(self.now);
                            self.handle(i, out);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn both(&self) -> (State, State) {
        (self.s[0].state(), self.s[1].state())
    }
}

#[test]
fn three_way_bring_up_then_fast_timers_after_a_poll() {
    let mut p = Pair::new(Timers::new(ms(100), 3), Timers::new(ms(100), 3));
    p.run_to(ms(0));
    // 0 sends Down first; 1 goes Init and says so; 0 goes Up; 1 goes Up.
    let seq: Vec<_> = p
        .changes
        .iter()
        .map(|(_, w, c)| (*w, c.from, c.to))
        .collect();
    assert_eq!(
        seq,
        vec![
            (1, State::Down, State::Init),
            (0, State::Down, State::Up),
            (1, State::Init, State::Up),
        ]
    );
    assert_eq!(p.both(), (State::Up, State::Up));
    // Up announced the 100 ms TX interval with a Poll, answered by a Final.
    assert!(p.sent.iter().any(|(_, _, k)| k.flags.poll));
    assert!(p.sent.iter().any(|(_, _, k)| k.flags.final_));
    assert!(!p.s[0].polling() && !p.s[1].polling());
    for (_, _, k) in &p.sent {
        assert!(!(k.flags.poll && k.flags.final_), "P and F together");
    }
    p.run_to(ms(2000));
    assert_eq!(p.both(), (State::Up, State::Up));
    assert_eq!(p.s[0].tx_interval(), Some(ms(100)));
    assert_eq!(p.s[0].detection_time(), Some(ms(300)));
    // Periodic packets of one side: 75-100 ms apart.
    let times: Vec<_> = p
        .sent
        .iter()
        .filter(|(t, w, k)| *w == 0 && *t > ms(500) && !k.flags.final_)
        .map(|(t, _, _)| *t)
        .collect();
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= ms(75) && gap <= ms(100), "gap {gap:?}");
    }
    assert!(times.len() >= 15, "{} packets in 1.5 s", times.len());
}

#[test]
fn detection_at_exactly_mult_times_the_negotiated_interval() {
    // 0 receives every 100 ms at best, 1 wants to send every 50 ms: the
    // negotiated interval 0 detects with is 100 ms, times 1's mult 4.
    let mut p = Pair::new(
        Timers {
            min_tx: ms(50),
            min_rx: ms(100),
            multiplier: 3,
        },
        Timers {
            min_tx: ms(50),
            min_rx: ms(20),
            multiplier: 4,
        },
    );
    p.run_to(ms(3000));
    assert_eq!(p.both(), (State::Up, State::Up));
    assert_eq!(p.s[0].detection_time(), Some(ms(400)));
    // 1 detects with max(20, 50) x 3.
    assert_eq!(p.s[1].detection_time(), Some(ms(150)));
    p.link = false;
    let cut = p.at();
    let last0 = p.last_rx[0].unwrap() - p.t0;
    let last1 = p.last_rx[1].unwrap() - p.t0;
    p.run_to(cut + ms(1000));
    let down = |who: usize| {
        p.changes
            .iter()
            .find(|(_, w, c)| *w == who && c.to == State::Down)
            .map(|(t, _, c)| (*t, c.diag))
            .unwrap()
    };
    assert_eq!(
        down(0),
        (last0 + ms(400), Diag::ControlDetectionTimeExpired)
    );
    assert_eq!(
        down(1),
        (last1 + ms(150), Diag::ControlDetectionTimeExpired)
    );
    assert_eq!(p.s[0].remote().discr, 0, "RemoteDiscr zeroed (§6.8.1)");
    assert_eq!(p.s[0].stats().downs, 1);
    // Down again: back to one packet a second.
    let after: Vec<_> = p
        .sent
        .iter()
        .filter(|(t, w, _)| *w == 0 && *t > cut + ms(500))
        .map(|(t, _, k)| (*t, *k))
        .collect();
    for w in after.windows(2) {
        assert!(w[1].0 - w[0].0 >= ms(750), "slow while Down");
        assert_eq!(w[1].1.desired_min_tx, 1_000_000);
    }
}

#[test]
fn slow_tx_while_not_up() {
    // The peer never answers: one packet a second, jittered 75-100%.
    let now = Instant::now();
    let mut s = Session::new(5, Timers::new(ms(100), 3), 9, now);
    let mut t = now;
    let mut sends = vec![];
    for _ in 0..50 {
        t = s.next_deadline().unwrap();
        if let Some(p) = s.on_timer(t).send {
            assert_eq!(p.desired_min_tx, 1_000_000);
            assert_eq!(p.required_min_rx, 100_000);
            assert_eq!(p.state, State::Down);
            assert_eq!(p.your_discr, 0);
            sends.push(t);
        }
    }
    assert!(t - now >= Duration::from_secs(37));
    for w in sends.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= ms(750) && gap <= ms(1000), "gap {gap:?}");
    }
}

#[test]
fn multiplier_one_jitters_between_75_and_90_percent() {
    let mut p = Pair::new(Timers::new(ms(100), 1), Timers::new(ms(100), 3));
    p.run_to(ms(5000));
    let times: Vec<_> = p
        .sent
        .iter()
        .filter(|(t, w, k)| *w == 0 && *t > ms(1000) && !k.flags.final_)
        .map(|(t, _, _)| *t)
        .collect();
    assert!(times.len() > 30);
    let gaps: Vec<_> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= ms(75) && *g <= ms(90)),
        "{gaps:?}"
    );
    assert!(gaps.iter().any(|g| *g < ms(80)) && gaps.iter().any(|g| *g > ms(85)));
}

#[test]
fn poll_sequence_holds_back_a_longer_tx_and_shorter_rx_until_final() {
    let mut p = Pair::new(Timers::new(ms(100), 3), Timers::new(ms(100), 3));
    p.run_to(ms(2000));
    p.link = false; // so that we see the held-back values
    let now = p.now;
    let out = p.s[0].set_timers(
        Timers {
            min_tx: ms(300),
            min_rx: ms(50),
            multiplier: 3,
        },
        now,
    );
    let poll = out.send.unwrap();
    assert!(poll.flags.poll);
    assert_eq!(poll.desired_min_tx, 300_000);
    assert_eq!(poll.required_min_rx, 50_000);
    // Not yet acknowledged: still sending every 100 ms, detecting with 100.
    assert_eq!(p.s[0].tx_interval(), Some(ms(100)));
    assert_eq!(p.s[0].detection_time(), Some(ms(300)));
    // The peer answers with a Final.
    p.link = true;
    p.handle(0, out);
    assert!(!p.s[0].polling());
    assert_eq!(p.s[0].tx_interval(), Some(ms(300)));
    // 1 still sends every 100 ms until it hears 0's new Required Min RX
    // (it did, in the Poll), so 0 detects with max(50, 100) x 3.
    assert_eq!(p.s[0].detection_time(), Some(ms(300)));
    p.run_to(p.at() + ms(2000));
    assert_eq!(p.both(), (State::Up, State::Up));
    // 1 now sends every 100 ms and 0 every 300: 1 detects in 900 ms.
    assert_eq!(p.s[1].detection_time(), Some(ms(900)));
}

#[test]
fn shorter_tx_applies_at_once_and_a_second_change_polls_again() {
    let mut p = Pair::new(Timers::new(ms(300), 3), Timers::new(ms(50), 3));
    p.run_to(ms(3000));
    p.link = false;
    let now = p.now;
    let first = p.s[0].set_timers(Timers::new(ms(100), 3), now);
    assert!(first.send.unwrap().flags.poll);
    assert_eq!(p.s[0].tx_interval(), Some(ms(100)), "shorter TX at once");
    // Changed again before the Final: the Final acknowledges only the
    // first change, so a second Poll follows.
    p.s[0].set_timers(Timers::new(ms(200), 3), now);
    assert_eq!(p.s[0].tx_interval(), Some(ms(100)), "longer TX waits");
    let fin = ControlPacket {
        flags: Flags {
            final_: true,
            ..Flags::default()
        },
        ..p.s[1].packet(false)
    };
    p.s[0].receive(&fin, now);
    assert!(p.s[0].polling(), "a second Poll Sequence");
    assert_eq!(p.s[0].tx_interval(), Some(ms(100)));
    p.s[0].receive(&fin, now);
    assert!(!p.s[0].polling());
    assert_eq!(p.s[0].tx_interval(), Some(ms(200)));
}

#[test]
fn admin_down_is_sent_and_brings_the_peer_down_with_diag_3() {
    let mut p = Pair::new(Timers::new(ms(100), 3), Timers::new(ms(100), 3));
    p.run_to(ms(2000));
    let now = p.now;
    let out = p.s[0].set_admin_down(true, now);
    let k = out.send.unwrap();
    assert_eq!(
        (k.state, k.diag),
        (State::AdminDown, Diag::AdministrativelyDown)
    );
    assert_eq!(
        out.change.unwrap(),
        Transition {
            from: State::Up,
            to: State::AdminDown,
            diag: Diag::AdministrativelyDown
        }
    );
    p.changes.clear();
    p.handle(0, out);
    assert_eq!(p.s[1].state(), State::Down);
    assert_eq!(p.s[1].diag(), Diag::NeighborSignaledSessionDown);
    assert_eq!(p.s[1].remote().state, State::AdminDown);
    // Stays down: 0 ignores 1's packets, 1 stays Down on AdminDown.
    p.run_to(p.at() + ms(5000));
    assert_eq!(p.both(), (State::AdminDown, State::Down));
    assert_eq!(p.s[0].next_deadline().map(|d| d > p.now), Some(true));
    // Out of AdminDown: up again.
    let now = p.now;
    let out = p.s[0].set_admin_down(false, now);
    p.handle(0, out);
    p.run_to(p.at() + ms(3000));
    assert_eq!(p.both(), (State::Up, State::Up));
}

#[test]
fn remote_down_while_up_goes_down_with_diag_3() {
    let mut p = Pair::new(Timers::new(ms(100), 3), Timers::new(ms(100), 3));
    p.run_to(ms(2000));
    let now = p.now;
    let down = ControlPacket {
        state: State::Down,
        your_discr: 0,
        ..p.s[1].packet(false)
    };
    let out = p.s[0].receive(&down, now);
    assert_eq!(
        out.change.unwrap(),
        Transition {
            from: State::Up,
            to: State::Down,
            diag: Diag::NeighborSignaledSessionDown
        }
    );
    assert_eq!(out.send.unwrap().state, State::Down, "said at once");
}

#[test]
fn a_poll_is_answered_with_a_final_in_any_state_but_admin_down() {
    let now = Instant::now();
    let mut s = Session::new(5, Timers::new(ms(100), 3), 9, now);
    let poll = ControlPacket {
        diag: Diag::None,
        state: State::AdminDown,
        flags: Flags {
            poll: true,
            ..Flags::default()
        },
        detect_mult: 3,
        my_discr: 77,
        your_discr: 0,
        desired_min_tx: 1_000_000,
        required_min_rx: 1_000_000,
        required_min_echo_rx: 0,
        auth_type: None,
    };
    let out = s.receive(&poll, now);
    let f = out.send.unwrap();
    assert!(f.flags.final_ && !f.flags.poll);
    assert_eq!(f.your_discr, 77);
    s.set_admin_down(true, now);
    assert_eq!(s.receive(&poll, now).send, None);
}

#[test]
fn required_min_rx_zero_or_demand_stops_periodic_packets() {
    let mut p = Pair::new(Timers::new(ms(100), 3), Timers::new(ms(100), 3));
    p.run_to(ms(2000));
    let now = p.now;
    let quiet = ControlPacket {
        required_min_rx: 0,
        ..p.s[1].packet(false)
    };
    p.s[0].receive(&quiet, now);
    assert_eq!(p.s[0].tx_interval(), None);
    let demand = ControlPacket {
        flags: Flags {
            demand: true,
            ..Flags::default()
        },
        ..p.s[1].packet(false)
    };
    p.s[0].receive(&demand, now);
    assert_eq!(p.s[0].tx_interval(), None, "§6.8.7: Demand mode, both Up");
    // Only the detection deadline remains.
    assert_eq!(p.s[0].next_deadline(), Some(now + ms(300)));
}

#[test]
fn detection_in_down_only_forgets_the_remote() {
    let now = Instant::now();
    let mut s = Session::new(5, Timers::new(ms(100), 3), 9, now);
    let hello = ControlPacket {
        diag: Diag::None,
        state: State::AdminDown,
        flags: Flags::default(),
        detect_mult: 3,
        my_discr: 77,
        your_discr: 0,
        desired_min_tx: 1_000_000,
        required_min_rx: 1_000_000,
        required_min_echo_rx: 0,
        auth_type: None,
    };
    assert_eq!(
        s.receive(&hello, now).change,
        None,
        "AdminDown peer: stay Down"
    );
    assert_eq!(s.remote().discr, 77);
    let out = s.on_timer(now + Duration::from_secs(3));
    assert_eq!(out.change, None);
    assert_eq!(s.remote().discr, 0);
    assert_eq!(s.state(), State::Down);
}
