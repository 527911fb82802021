//! CPU per 100 sessions and detection time: Tortie's BFD service with 100
//! IPv4 single-hop sessions at 100 ms x 3 towards BIRD 2, then towards
//! FRR bfdd, in network namespaces (the tests' topology, plus 100 address
//! pairs), in one run.
//!
//! 1. CPU: the CPU time of this process (the service's thread; the main
//!    thread sleeps) and of the daemon over a window once every session
//!    is Up; no session may flap.
//! 2. Detection: `BFD_BENCH_CUTS` times (default 5), every packet in and
//!    out of the daemon's namespace is dropped by one `nft -f` (both
//!    sides lose the other at once); from the start of that command, the
//!    time until each of our 100 sessions went Down (the status's own
//!    instant) and until the daemon took each of its sessions Down (the
//!    instant its log gives: BIRD `debug { states }`, FRR `debug bfd
//!    peer`, microseconds; also polled with `birdc`/`vtysh` every 5 ms
//!    after the previous answer, printed beside it, which adds up to one
//!    poll and 5 ms). The drop removed, every session Up again on both
//!    sides before the next cut. Median and max over all sessions and
//!    cuts; target <= 350 ms.
//!
//! `cargo bench -p bfd --bench sessions` (root; needs `nft`).
//! `BFD_BENCH_SECS` sets the CPU window (default 20 s);
//! `BFD_BENCH_DEBUG=1` prints each daemon's log at the end.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bfd::{SessionConfig, State, Timers};
use common::daemons::{Daemon, Kind};
use common::*;

const SESSIONS: u32 = 100;
/// The target for 100 ms x 3.
const TARGET: Duration = Duration::from_millis(350);

fn a_addr(i: u32) -> String {
    format!("10.231.1.{}", i + 1)
}

fn b_addr(i: u32) -> String {
    format!("10.231.2.{}", i + 1)
}

fn conf(kind: Kind) -> String {
    let mut s = String::new();
    match kind {
        Kind::Bird => {
            s.push_str(&format!(
                "log stderr all;\ntimeformat log \"%F %T.%6f\";\nrouter id {B4};\nprotocol device {{ scan time 1; }}\nprotocol bfd {{\n  debug {{ states, events }};\n  interface \"{IF_B}\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }};\n"
            ));
            for i in 0..SESSIONS {
                s.push_str(&format!(
                    "  neighbor {} dev \"{IF_B}\" local {};\n",
                    a_addr(i),
                    b_addr(i)
                ));
            }
            s.push_str("}\n");
        }
        Kind::Frr => {
            s.push_str("log stdout debugging\nlog timestamp precision 6\ndebug bfd peer\nbfd\n");
            for i in 0..SESSIONS {
                s.push_str(&format!(
                    " peer {} local-address {}\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n !\n",
                    a_addr(i),
                    b_addr(i)
                ));
            }
            s.push_str("!\n");
        }
    }
    s
}

/// utime + stime of a process, in seconds.
fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

async fn run(kind: Kind, window: Duration, cuts: u64) {
    if let Some(why) = kind.missing() {
        say(&format!("SKIP bench {}: {why}", kind.name()));
        return;
    }
    if !have("nft") {
        say("SKIP bench: no nft (apt-get install nftables)");
        return;
    }
    let link = Link::new("bench").expect("namespaces");
    for i in 0..SESSIONS {
        link.a
            .ip(&["addr", "add", &format!("{}/16", a_addr(i)), "dev", IF_A])
            .unwrap();
        link.b
            .ip(&["addr", "add", &format!("{}/16", b_addr(i)), "dev", IF_B])
            .unwrap();
    }
    let peer = Daemon::start_with(kind, &link.b, &conf(kind));
    let bfd = NsBfd::start(&link.a);
    let t = Timers::new(Duration::from_millis(100), 3);
    let mut rxs = vec![];
    for i in 0..SESSIONS {
        let cfg = SessionConfig::single_hop(ip(&b_addr(i)))
            .with_local(ip(&a_addr(i)))
            .with_timers(t);
        rxs.push(bfd.handle.add(cfg).await.unwrap());
    }
    let start = Instant::now();
    for rx in rxs.iter_mut() {
        wait_status(rx, Duration::from_secs(30), "Up at 100 ms", |s| {
            s.state == State::Up && s.detection_time == Some(Duration::from_millis(300))
        })
        .await;
    }
    let all_up = start.elapsed();
    let me = std::process::id();
    let them = peer.pid().unwrap();
    let (c0, d0, t0) = (cpu(me), cpu(them), Instant::now());
    tokio::time::sleep(window).await;
    let (c1, d1, el) = (cpu(me), cpu(them), t0.elapsed().as_secs_f64());
    let c = bfd.handle.counters().await.unwrap();
    let flaps: u64 = rxs.iter().map(|rx| rx.borrow().downs).sum();
    say(&format!(
        "bench {} x{SESSIONS} at 100 ms x 3: all Up in {:.1} s; over {el:.0} s: tortie {:.2}% of a core, {} {:.2}%; \
         tortie sent {} received {} packets, {} discarded, {} tx errors, {flaps} flaps",
        kind.name(),
        all_up.as_secs_f64(),
        100.0 * (c1 - c0) / el,
        kind.name(),
        100.0 * (d1 - d0) / el,
        c.tx_packets,
        c.rx_packets,
        c.discarded_total(),
        c.tx_errors,
    ));
    assert_eq!(flaps, 0, "sessions flapped");
    assert!(
        peer.all_in(SESSIONS as usize, "up").is_ok(),
        "{}: not all Up after the window",
        kind.name()
    );

    // 2. Detection.
    let (mut ours, mut theirs, mut polled, mut polls) = (vec![], vec![], vec![], vec![]);
    for cut in 1..=cuts {
        let wall = unix_now();
        let t0 = Instant::now();
        let cut_off = link.cut_peer();
        let applied = t0.elapsed();
        // The daemon first: its times are polled, ours are exact.
        let mut seen: Vec<Option<Duration>> = vec![None; SESSIONS as usize];
        while seen.iter().any(Option::is_none) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{}: cut {cut}: sessions still up after 10 s: {:?}",
                kind.name(),
                peer.sessions()
            );
            let poll = Instant::now();
            let v = peer.sessions().unwrap();
            let at = t0.elapsed();
            polls.push(poll.elapsed());
            // Not back to back: the daemon has other work.
            std::thread::sleep(Duration::from_millis(5));
            for p in v.iter().filter(|p| p.state == "down") {
                if let Some(i) = (0..SESSIONS).position(|i| a_addr(i) == p.peer) {
                    seen[i].get_or_insert(at);
                }
            }
        }
        polled.extend(seen.into_iter().flatten());
        // The daemon's own instants, from its log (UTC, microseconds).
        let logged = log_downs(kind, &peer.log(), wall);
        let logged: Vec<Duration> = (0..SESSIONS)
            .filter_map(|i| logged.get(&a_addr(i)).copied())
            .collect();
        assert_eq!(
            logged.len(),
            SESSIONS as usize,
            "{}: cut {cut}: Down in its log for {} sessions only",
            kind.name(),
            logged.len()
        );
        theirs.extend(logged);
        for rx in rxs.iter_mut() {
            let (d, _) = detection_after(rx, t0, "cut").await;
            ours.push(d);
        }
        say(&format!(
            "bench {} cut {cut}: nft took {applied:?}; tortie {}; {} {} (polled: {})",
            kind.name(),
            summary(&ours[ours.len() - SESSIONS as usize..]),
            kind.name(),
            summary(&theirs[theirs.len() - SESSIONS as usize..]),
            summary(&polled[polled.len() - SESSIONS as usize..]),
        ));
        drop(cut_off);
        for rx in rxs.iter_mut() {
            wait_status(rx, Duration::from_secs(30), "Up after the cut", |s| {
                s.state == State::Up && s.detection_time == Some(Duration::from_millis(300))
            })
            .await;
        }
        poll_until(Duration::from_secs(30), "the daemon all Up again", || {
            peer.all_in(SESSIONS as usize, "up")
        })
        .await;
    }
    polls.sort();
    let mut line = format!(
        "bench {} detection over {cuts} cuts x{SESSIONS} (target <= {TARGET:?}): tortie {}; {} {} \
         (its log; polled {}, a poll took median {:?})",
        kind.name(),
        summary(&ours),
        kind.name(),
        summary(&theirs),
        summary(&polled),
        polls[polls.len() / 2],
    );
    let worst = ours.iter().max().copied().unwrap_or_default();
    let _ = write!(
        line,
        "; tortie {} the target",
        if worst <= TARGET { "met" } else { "MISSED" }
    );
    say(&line);
    if std::env::var("BFD_BENCH_DEBUG").is_ok() {
        say(&peer.log());
    }
    drop(bfd);
    drop(peer);
    drop(link);
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// From a daemon's log, each peer's first Up -> Down at or after `since`
/// (Unix seconds), as the time after `since`. BIRD (`debug { states }`,
/// `timeformat log "%F %T.%6f"`): `2026-12-05 04:13:15.697895 <TRACE>
/// bfd1: Session to ADDR changed state from Up to Down`; FRR bfdd (`debug
/// bfd peer`, `log timestamp precision 6`): `2026/12/05 04:15:45.424682
/// BFD: [..] state-change: [mhop:no peer:ADDR local:..] up -> down ...`.
/// Timestamps are the daemon's local time: this machine's is UTC.
fn log_downs(kind: Kind, log: &str, since: f64) -> std::collections::HashMap<String, Duration> {
    let mut out = std::collections::HashMap::new();
    for line in log.lines() {
        let peer = match kind {
            Kind::Bird if line.ends_with("changed state from Up to Down") => line
                .split("Session to ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next()),
            Kind::Frr if line.contains("] up -> down") => line
                .split("peer:")
                .nth(1)
                .and_then(|r| r.split_whitespace().next()),
            _ => None,
        };
        let (Some(peer), Some(at)) = (peer, line.get(..26).and_then(unix_of)) else {
            continue;
        };
        if at >= since {
            out.entry(peer.to_string())
                .or_insert(Duration::from_secs_f64(at - since));
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (or with `/`), UTC, as Unix seconds.
fn unix_of(ts: &str) -> Option<f64> {
    let n = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let secs = n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?;
    let frac: f64 = ts.get(19..)?.parse().ok()?;
    // Days from 1970-01-01 to y-m-d (the proleptic Gregorian calendar).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + secs) as f64 + frac)
}

/// "min A / median B / max C ms (n)".
fn summary(v: &[Duration]) -> String {
    let mut v = v.to_vec();
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) => format!(
            "min {:.0} / median {:.0} / max {:.0} ms (n={})",
            ms(*lo),
            ms(v[v.len() / 2]),
            ms(*hi),
            v.len()
        ),
        _ => "no samples".into(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (secs, cuts) = (env("BFD_BENCH_SECS", 20), env("BFD_BENCH_CUTS", 5));
    for kind in [Kind::Bird, Kind::Frr] {
        run(kind, Duration::from_secs(secs), cuts).await;
    }
}
