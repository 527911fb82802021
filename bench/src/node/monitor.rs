//! When routes appear in and leave a namespace's kernel table: one
//! `ip monitor route` per namespace, its lines time-stamped as they
//! arrive (a pipe read: well under a millisecond behind the kernel).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A route change seen in one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at: Instant,
    /// The route's prefix (`10.244.3.0/26`).
    pub prefix: String,
    /// A `Deleted` line.
    pub deleted: bool,
}

/// `ip monitor route` in one namespace, running until dropped.
pub struct Monitor {
    child: Child,
    events: Arc<(Mutex<Vec<Event>>, Condvar)>,
}

// ===== impl Monitor =====

impl Monitor {
    /// Starts watching namespace `ns`; returns once the monitor is
    /// listening (it prints nothing until a change, so this probes with a
    /// route of its own, `blackhole 198.51.100.255/32`, until the monitor
    /// reports it; then removes it).
    pub fn start(ns: &str) -> Result<Monitor> {
        let mut child = Command::new("ip")
            // Line-buffered: `ip` writes to a pipe through stdio, which
            // would otherwise hold lines back until 4 KiB are pending.
            .args([
                "netns", "exec", ns, "stdbuf", "-oL", "ip", "monitor", "route",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting ip monitor in {ns}"))?;
        let out = child.stdout.take().context("monitor stdout")?;
        let events: Arc<(Mutex<Vec<Event>>, Condvar)> = Arc::default();
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                if let Some((prefix, deleted)) = parse(&line) {
                    let (lock, cv) = &*sink;
                    lock.lock().unwrap().push(Event {
                        at,
                        prefix,
                        deleted,
                    });
                    cv.notify_all();
                }
            }
        });
        let m = Monitor { child, events };
        let probe = "198.51.100.255/32";
        let start = Instant::now();
        loop {
            // Removed and added again each round: a route that is already
            // there makes no event.
            let _ = Command::new("ip")
                .args(["-n", ns, "route", "del", "blackhole", probe])
                .stderr(Stdio::null())
                .status();
            let round = Instant::now();
            let _ = Command::new("ip")
                .args(["-n", ns, "route", "add", "blackhole", probe])
                .status();
            if m.first_after(probe, false, round, Duration::from_millis(200))
                .is_some()
            {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("ip monitor in {ns} printed nothing within 10 s");
            }
        }
        let _ = Command::new("ip")
            .args(["-n", ns, "route", "del", "blackhole", probe])
            .status();
        Ok(m)
    }

    /// The first event for `prefix` (added, or `deleted`) at or after
    /// `since`, waiting up to `timeout` for it.
    pub fn first_after(
        &self,
        prefix: &str,
        deleted: bool,
        since: Instant,
        timeout: Duration,
    ) -> Option<Instant> {
        let (lock, cv) = &*self.events;
        let deadline = Instant::now() + timeout;
        let mut events = lock.lock().unwrap();
        loop {
            if let Some(e) = events
                .iter()
                .find(|e| e.at >= since && e.deleted == deleted && e.prefix == prefix)
            {
                return Some(e.at);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            events = cv.wait_timeout(events, deadline - now).unwrap().0;
        }
    }

    /// Forgets the events seen so far (a long run would keep them all).
    pub fn clear(&self) {
        self.events.0.lock().unwrap().clear();
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ===== helpers =====

/// `[Deleted ][type ]PREFIX ...` -> (PREFIX, deleted). Host routes print
/// without `/32`; those get it added. Lines that are not unicast/blackhole
/// route changes (`local`, `broadcast`, IPv6) give `None`.
fn parse(line: &str) -> Option<(String, bool)> {
    let mut words = line.split_whitespace().peekable();
    let deleted = words.peek() == Some(&"Deleted");
    if deleted {
        words.next();
    }
    let mut first = words.next()?;
    if matches!(first, "blackhole" | "unreachable" | "prohibit" | "unicast") {
        first = words.next()?;
    }
    let (addr, len) = first.split_once('/').unwrap_or((first, "32"));
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    Some((format!("{addr}/{len}"), deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_monitor_lines() {
        assert_eq!(
            parse("10.244.0.64/26 via 172.30.1.12 dev eth0 proto 116 "),
            Some(("10.244.0.64/26".into(), false))
        );
        assert_eq!(
            parse("Deleted 10.244.0.64/26 via 172.30.1.12 dev eth0 proto bird metric 32"),
            Some(("10.244.0.64/26".into(), true))
        );
        assert_eq!(
            parse("blackhole 10.244.200.0/26 proto 116"),
            Some(("10.244.200.0/26".into(), false))
        );
        assert_eq!(
            parse("Deleted blackhole 198.51.100.255 proto boot"),
            Some(("198.51.100.255/32".into(), true))
        );
        assert_eq!(
            parse("10.244.0.7 dev tort0123 proto 116 scope link"),
            Some(("10.244.0.7/32".into(), false))
        );
        assert_eq!(parse("local 172.30.1.11 dev eth0 table local"), None);
        assert_eq!(parse("fe80::/64 dev eth0 proto kernel"), None);
        assert_eq!(parse(""), None);
    }
}
