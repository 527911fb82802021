//! Memory and CPU of a process from `/proc/PID/status` (VmRSS, RssAnon,
//! VmHWM) and `/proc/PID/stat` (utime + stime).

use std::sync::OnceLock;

use anyhow::{Context, Result};

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Of which anonymous (the process's own: heap, stacks), KiB; the
    /// rest is file pages (the binary and libraries, shared with every
    /// process that maps them).
    pub anon_kib: u64,
    /// Peak resident set size so far, KiB.
    pub hwm_kib: u64,
    /// User + system CPU time, clock ticks.
    pub cpu_ticks: u64,
}

// ===== impl Sample =====

impl Sample {
    /// Reads `/proc/PID/status` and `/proc/PID/stat`.
    pub fn read(pid: u32) -> Result<Sample> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        Ok(Sample {
            rss_kib: status_field(&status, "VmRSS")
                .with_context(|| format!("no VmRSS in /proc/{pid}/status"))?,
            anon_kib: status_field(&status, "RssAnon")
                .with_context(|| format!("no RssAnon in /proc/{pid}/status"))?,
            hwm_kib: status_field(&status, "VmHWM")
                .with_context(|| format!("no VmHWM in /proc/{pid}/status"))?,
            cpu_ticks: stat_cpu_ticks(&stat)
                .with_context(|| format!("no utime/stime in /proc/{pid}/stat: {stat}"))?,
        })
    }

    /// CPU seconds spent between `earlier` and `self`.
    pub fn cpu_secs_since(&self, earlier: &Sample) -> f64 {
        self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / clock_ticks() as f64
    }

    /// CPU seconds since the process started.
    pub fn cpu_secs(&self) -> f64 {
        self.cpu_ticks as f64 / clock_ticks() as f64
    }
}

// ===== helpers =====

/// `NAME:   1234 kB` -> 1234.
fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// utime + stime: fields 14 and 15 of `/proc/PID/stat`. The command name
/// (field 2) may hold spaces and parentheses, so count from the last `)`.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14 -> index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK` (100 on Linux), read once.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let s = "Name:\tbird\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_field(s, "VmRSS"), Some(10240));
        assert_eq!(status_field(s, "VmHWM"), Some(20480));
        assert_eq!(status_field(s, "VmSwap"), None);
    }

    #[test]
    fn parses_stat_with_odd_command_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0";
        assert_eq!(stat_cpu_ticks(stat), Some(325));
        assert_eq!(stat_cpu_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn reads_own_process() {
        let me = Sample::read(std::process::id()).unwrap();
        assert!(me.rss_kib > 0 && me.hwm_kib >= me.rss_kib, "{me:?}");
    }
}
