//! The node benchmarks' results and their Markdown tables.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Daemon, Topology, Trial};

/// Convergence of one daemon at one size.
#[derive(Clone, Debug)]
pub struct ConvergenceRow {
    pub daemon: Daemon,
    pub topology: Topology,
    pub nodes: usize,
    pub bring_up: Duration,
    pub trials: Vec<Trial>,
    /// CPU time of all daemons together per trial (a claim, its release
    /// and the pause after them).
    pub cpu_per_trial: Duration,
    /// Median and largest RSS of the daemons, KiB.
    pub rss_kib: (u64, u64),
    /// Median and largest anonymous part of it, KiB.
    pub anon_kib: (u64, u64),
}

/// Bring-up, heal and restart at one size.
#[derive(Clone, Debug)]
pub struct LifecycleRow {
    pub daemon: Daemon,
    pub nodes: usize,
    pub bring_up: Duration,
    /// Pairs answered, pairs tried, how long the matrix took.
    pub matrix: (usize, usize, Duration),
    pub heal: Vec<Duration>,
    /// (lost, sent) for `kill -9` and for SIGTERM.
    pub kill: (u32, u32),
    pub term: (u32, u32),
}

/// Scale: many nodes, one reflector.
#[derive(Clone, Debug)]
pub struct ScaleRow {
    pub daemon: Daemon,
    pub nodes: usize,
    pub bring_up: Duration,
    /// The reflector's RSS, and the median and largest of the others, KiB.
    pub rr_rss_kib: u64,
    pub rss_kib: (u64, u64),
    /// Of the others' RSS, the anonymous part (their own memory; the rest
    /// is the binary and libraries): median and largest, KiB.
    pub anon_kib: (u64, u64),
    /// CPU seconds per second of all daemons together while idle.
    pub idle_cpu: f64,
    pub trials: Vec<Trial>,
}

/// The `q` quantile (nearest rank) of `v`; zero for none.
pub fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort();
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// Median and largest of `v`.
pub fn median_max(v: &[u64]) -> (u64, u64) {
    let mut s = v.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => (0, 0),
        n => (s[n / 2], s[n - 1]),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn claims(t: &[Trial]) -> (Vec<Duration>, Vec<Duration>) {
    (
        t.iter().map(|t| t.claim).collect(),
        t.iter().map(|t| t.release).collect(),
    )
}

fn spreads(t: &[Trial]) -> (Vec<Duration>, Vec<Duration>) {
    (
        t.iter().map(|t| t.claim_spread).collect(),
        t.iter().map(|t| t.release_spread).collect(),
    )
}

/// The convergence table.
pub fn convergence_table(rows: &[ConvergenceRow]) -> String {
    let mut t = String::from(
        "| daemon | nodes | peering | trials | claim p50 / p99 (ms) | release p50 / p99 (ms) | origin's kernel -> all others: claim p50 / p99 (ms) | same, release p50 / p99 (ms) | bring-up: all routes (ms) | CPU of all daemons per trial (ms) | RSS per node: median / max (MiB) | of which anonymous: median / max (MiB) |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let (c, rel) = claims(&r.trials);
        let (cs, rs) = spreads(&r.trials);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} / {} | {} | {} | {} / {} | {} / {} |",
            r.daemon.label(),
            r.nodes,
            r.topology.label(),
            r.trials.len(),
            ms(quantile(&c, 0.5)),
            ms(quantile(&c, 0.99)),
            ms(quantile(&rel, 0.5)),
            ms(quantile(&rel, 0.99)),
            ms(quantile(&cs, 0.5)),
            ms(quantile(&cs, 0.99)),
            ms(quantile(&rs, 0.5)),
            ms(quantile(&rs, 0.99)),
            ms(r.bring_up),
            ms(r.cpu_per_trial),
            mib(r.rss_kib.0),
            mib(r.rss_kib.1),
            mib(r.anon_kib.0),
            mib(r.anon_kib.1),
        );
    }
    t
}

/// The bring-up, heal and restart table.
pub fn lifecycle_table(rows: &[LifecycleRow]) -> String {
    let mut t = String::from(
        "| daemon | nodes | bring-up: all routes (ms) | then ping matrix | heal p50 / max (ms) | `kill -9` + start: lost / sent | SIGTERM + start: lost / sent |\n\
         |---|---:|---:|---|---:|---:|---:|\n",
    );
    for r in rows {
        let (ok, tried, took) = r.matrix;
        let _ = writeln!(
            t,
            "| {} | {} | {} | {ok}/{tried} pairs answered ({} ms) | {} / {} | {} / {} | {} / {} |",
            r.daemon.label(),
            r.nodes,
            ms(r.bring_up),
            ms(took),
            ms(quantile(&r.heal, 0.5)),
            ms(quantile(&r.heal, 1.0)),
            r.kill.0,
            r.kill.1,
            r.term.0,
            r.term.1,
        );
    }
    t
}

/// The scale table.
pub fn scale_table(rows: &[ScaleRow]) -> String {
    let mut t = String::from(
        "| daemon | nodes | bring-up: all routes (ms) | RSS per client node: median / max (MiB) | of which anonymous: median / max (MiB) | reflector RSS (MiB) | idle CPU, all nodes (% of a core) | trials | claim p50 / p99 (ms) | release p50 / p99 (ms) | origin's kernel -> all others: claim p50 / p99 (ms) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let (c, rel) = claims(&r.trials);
        let (cs, _) = spreads(&r.trials);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} / {} | {} / {} | {} | {:.1} | {} | {} / {} | {} / {} | {} / {} |",
            r.daemon.label(),
            r.nodes,
            ms(r.bring_up),
            mib(r.rss_kib.0),
            mib(r.rss_kib.1),
            mib(r.anon_kib.0),
            mib(r.anon_kib.1),
            mib(r.rr_rss_kib),
            r.idle_cpu * 100.0,
            r.trials.len(),
            ms(quantile(&c, 0.5)),
            ms(quantile(&c, 0.99)),
            ms(quantile(&rel, 0.5)),
            ms(quantile(&rel, 0.99)),
            ms(quantile(&cs, 0.5)),
            ms(quantile(&cs, 0.99)),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<Duration> = (1..=20).map(d).collect();
        assert_eq!(quantile(&v, 0.5), d(10));
        assert_eq!(quantile(&v, 0.99), d(20));
        assert_eq!(quantile(&v, 1.0), d(20));
        assert_eq!(quantile(&[d(7)], 0.5), d(7));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
        assert_eq!(median_max(&[5, 1, 3]), (3, 5));
        assert_eq!(median_max(&[]), (0, 0));
    }

    #[test]
    fn tables_show_every_row() {
        let trials = vec![
            Trial {
                claim: d(4),
                release: d(3),
                claim_spread: d(1),
                release_spread: d(2),
            },
            Trial {
                claim: d(6),
                release: d(5),
                claim_spread: d(1),
                release_spread: d(2),
            },
        ];
        let t = convergence_table(&[ConvergenceRow {
            daemon: Daemon::Tortie,
            topology: Topology::Mesh,
            nodes: 10,
            bring_up: d(800),
            trials,
            cpu_per_trial: d(12),
            rss_kib: (4096, 5120),
            anon_kib: (1024, 2048),
        }]);
        assert!(
            t.contains("| tortie-node | 10 | full mesh | 2 | 4.0 / 6.0 | 3.0 / 5.0 | 1.0 / 1.0 | 2.0 / 2.0 | 800.0 | 12.0 | 4.0 / 5.0 | 1.0 / 2.0 |"),
            "{t}"
        );
        let l = lifecycle_table(&[LifecycleRow {
            daemon: Daemon::Bird,
            nodes: 10,
            bring_up: d(2600),
            matrix: (90, 90, d(300)),
            heal: vec![d(1500), d(500)],
            kill: (0, 9000),
            term: (400, 9000),
        }]);
        assert!(l.contains("90/90 pairs answered (300.0 ms)"), "{l}");
        assert!(
            l.contains("| 500.0 / 1500.0 | 0 / 9000 | 400 / 9000 |"),
            "{l}"
        );
    }
}
