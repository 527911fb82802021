//! CPU per 100 sessions: Tortie's BFD service with 100 IPv4 single-hop
//! sessions at 100 ms x 3 towards BIRD 2, then towards FRR bfdd, in
//! network namespaces (the tests' topology, plus 100 address pairs).
//! Measures the CPU time of this process (the service's thread; the main
//! thread sleeps) and of the daemon over a window once every session is
//! Up, and checks that no session flapped.
//!
//! `cargo bench -p bfd --bench sessions` (root). `BFD_BENCH_SECS` sets
//! the window (default 20 s).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bfd::{SessionConfig, State, Timers};
use common::daemons::{Daemon, Kind};
use common::*;

const SESSIONS: u32 = 100;

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
                "router id {B4};\nprotocol device {{ scan time 1; }}\nprotocol bfd {{\n  interface \"{IF_B}\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }};\n"
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
            s.push_str("log stdout warnings\nbfd\n");
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

async fn run(kind: Kind, window: Duration) {
    if let Some(why) = kind.missing() {
        say(&format!("SKIP bench {}: {why}", kind.name()));
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
    drop(bfd);
    drop(peer);
    drop(link);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = std::env::var("BFD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    for kind in [Kind::Bird, Kind::Frr] {
        run(kind, Duration::from_secs(secs)).await;
    }
}
