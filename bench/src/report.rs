//! Markdown tables of the results, and the generated sections of
//! `docs/benchmarks.md`.
//!
//! Each benchmark owns one section between `<!-- bench:NAME:start -->` and
//! `<!-- bench:NAME:end -->`; writing replaces that section and leaves the
//! rest of the file (hand-written text) alone, or appends it when missing.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::fanout::FanoutRow;
use crate::ingest::{IngestRow, KeepaliveRow};
use crate::receivers::Kind;

/// Table of bulk ingest rows, with each receiver's time relative to BIRD's.
pub fn ingest_table(rows: &[IngestRow]) -> String {
    let bird = rows.iter().find(|r| r.kind == Kind::Bird).map(|r| r.secs);
    let mut t = String::from(
        "| receiver | routes | time (s) | vs BIRD | poll every | RSS before (MiB) | RSS after (MiB) | peak RSS (MiB) | RSS growth per route (bytes) | CPU during ingest (s) | polling costs it (CPU ms/s) | every run (s) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {:.4} | {} | {} ms | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} | {:.0} | {} |",
            r.kind.label(),
            r.routes,
            r.secs,
            ratio(r.secs, bird),
            r.poll.as_secs_f64() * 1000.0,
            mib(r.before.rss_kib),
            mib(r.after.rss_kib),
            mib(r.after.hwm_kib),
            r.bytes_per_route(),
            r.cpu_secs(),
            r.poll_cpu_ms_per_s,
            runs(&r.runs),
        );
    }
    t
}

/// Table of the filter comparison's rows: each receiver's time with its
/// import filter relative to its own time without.
pub fn filter_table(rows: &[IngestRow]) -> String {
    let mut t = String::from(
        "| receiver | routes | import filter rules | time (s) | vs no filter | CPU during ingest (s) | poll every | every run (s) |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let rules = r.filter_rules.unwrap_or(0);
        let unfiltered = rows
            .iter()
            .find(|o| o.kind == r.kind && o.filter_rules.unwrap_or(0) == 0)
            .map(|o| o.secs);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.4} | {} | {:.2} | {} ms | {} |",
            r.kind.label(),
            r.routes,
            if rules == 0 {
                "none".to_string()
            } else {
                rules.to_string()
            },
            r.secs,
            ratio(r.secs, unfiltered),
            r.cpu_secs(),
            r.poll.as_secs_f64() * 1000.0,
            runs(&r.runs),
        );
    }
    t
}

/// Table of fan-out rows, with each reflector's time relative to the best
/// of the others.
pub fn fanout_table(rows: &[FanoutRow]) -> String {
    let best_other = rows
        .iter()
        .filter(|r| r.kind != Kind::Tortie)
        .map(|r| r.secs)
        .min_by(f64::total_cmp);
    let mut t = String::from(
        "| reflector | clients | routes | last client complete (s) | vs best other | median client (s) | RSS before (MiB) | RSS after (MiB) | peak RSS (MiB) | CPU during fan-out (s) | clients up in (s) | every run (s) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.3} | {} | {:.3} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {} |",
            r.kind.label(),
            r.clients,
            r.routes,
            r.secs,
            ratio(r.secs, best_other),
            r.median_secs,
            mib(r.before.rss_kib),
            mib(r.after.rss_kib),
            mib(r.after.hwm_kib),
            r.cpu_secs(),
            r.setup_secs,
            runs(&r.runs),
        );
    }
    t
}

/// Table of keepalive-under-load rows.
pub fn keepalive_table(rows: &[KeepaliveRow]) -> String {
    let mut t = String::from(
        "| receiver | routes x rounds | load (s) | CPU (s) | peak RSS (MiB) | probe hold time (s) | longest silence (ms) | probe session | receiver's view |\n\
         |---|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for r in rows {
        let session = match &r.probe_closed {
            None => "stayed Established".to_string(),
            Some(why) => format!("**dropped**: {why}"),
        };
        let _ = writeln!(
            t,
            "| {} | {} x {} (+1) | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} |",
            r.kind.label(),
            r.routes,
            r.rounds,
            r.load_secs,
            r.after.cpu_secs_since(&r.before),
            mib(r.after.hwm_kib),
            r.hold_time,
            r.max_silence_ms,
            session,
            if r.receiver_view.is_empty() {
                "-"
            } else {
                &r.receiver_view
            },
        );
    }
    t
}

/// Replaces (or appends) section `name` of the Markdown file at `path`.
pub fn write_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    std::fs::write(path, replace_section(&old, name, body))
        .with_context(|| format!("writing {}", path.display()))
}

// ===== helpers =====

/// `old` with the text between the markers of `name` replaced by `body`,
/// or with a new marked section at the end.
fn replace_section(old: &str, name: &str, body: &str) -> String {
    let start = format!("<!-- bench:{name}:start -->");
    let end = format!("<!-- bench:{name}:end -->");
    let section = format!("{start}\n{}\n{end}", body.trim_end());
    match (old.find(&start), old.find(&end)) {
        (Some(s), Some(e)) if e > s => {
            format!("{}{section}{}", &old[..s], &old[e + end.len()..])
        }
        _ => {
            let sep = if old.is_empty() || old.ends_with("\n\n") {
                ""
            } else if old.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{old}{sep}{section}\n")
        }
    }
}

/// Picks the median row by `secs` and records every run's time in it.
pub fn median<T: Clone>(
    mut rows: Vec<T>,
    secs: impl Fn(&T) -> f64,
    set_runs: impl Fn(&mut T, Vec<f64>),
) -> Option<T> {
    let all: Vec<f64> = rows.iter().map(&secs).collect();
    rows.sort_by(|a, b| secs(a).total_cmp(&secs(b)));
    let mut m = rows.get(rows.len() / 2)?.clone();
    set_runs(&mut m, all);
    Some(m)
}

fn runs(all: &[f64]) -> String {
    all.iter()
        .map(|s| format!("{s:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ratio(x: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 => format!("{:.2}x", x / b),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_its_section() {
        let doc = "# B\nintro\n<!-- bench:ingest:start -->\nold\n<!-- bench:ingest:end -->\ntail\n";
        let new = replace_section(doc, "ingest", "new table\n");
        assert_eq!(
            new,
            "# B\nintro\n<!-- bench:ingest:start -->\nnew table\n<!-- bench:ingest:end -->\ntail\n"
        );
        let added = replace_section(&new, "fanout", "f");
        assert!(added.starts_with(&new));
        assert!(added.ends_with("\n\n<!-- bench:fanout:start -->\nf\n<!-- bench:fanout:end -->\n"));
        assert_eq!(
            replace_section("", "x", "y"),
            "<!-- bench:x:start -->\ny\n<!-- bench:x:end -->\n"
        );
    }

    #[test]
    fn median_keeps_every_run() {
        let m = median(
            vec![(3.0, vec![]), (1.0, vec![]), (2.0, vec![])],
            |r| r.0,
            |r, all| r.1 = all,
        )
        .unwrap();
        assert_eq!(m, (2.0, vec![3.0, 1.0, 2.0]));
        assert_eq!(
            median(Vec::<(f64, Vec<f64>)>::new(), |r| r.0, |r, a| r.1 = a),
            None
        );
        assert_eq!(runs(&[0.12345, 2.0]), "0.1235, 2.0000");
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(1.0, Some(4.0)), "0.25x");
        assert_eq!(ratio(1.0, None), "-");
        assert_eq!(ratio(1.0, Some(0.0)), "-");
    }
}
